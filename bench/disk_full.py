#!/usr/bin/env python3
"""The full-disk check: perfhook's data directory on a small tmpfs, filled while alerts
arrive. Needs root (it mounts a tmpfs). Checks, and exits 1 if any fails:

1. deliveries refused while the disk is full answer 503 and are never notified;
2. no job is attempted more often than its backoff allows (attempts per id over a minute);
3. /readyz is 503 while full, and 200 again within 10 s once space is freed, with no restart;
4. delivery resumes: an alert sent after recovery is accepted and notified;
5. SIGTERM then exits 0.

    bench/disk_full.sh [--binary target/release/perfhook] [--full-seconds 60]
"""
import argparse
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

SECRET = "disk-full-check-secret-0123456789abcdef"


def signed(body: bytes) -> dict:
    t = str(int(time.time()))
    mac = hmac.new(SECRET.encode(), t.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"X-Perf-Signature": f"t={t},v1={mac}", "Content-Type": "application/json"}


def alert(event_id: str) -> bytes:
    return json.dumps(
        {"id": event_id, "type": "usage.threshold_reached", "livemode": True,
         "data": {"usage": {"percent": 80}, "pad": "x" * 700}},
        separators=(",", ":")).encode()


def post(url: str, body: bytes) -> int:
    request = urllib.request.Request(url, data=body, headers=signed(body), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


def notified(log_path: str) -> dict:
    counts = {}
    try:
        with open(log_path) as log:
            for line in log:
                event_id = json.loads(line)["id"]
                counts[event_id] = counts.get(event_id, 0) + 1
    except FileNotFoundError:
        pass
    return counts


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default="target/release/perfhook")
    parser.add_argument("--full-seconds", type=int, default=60)
    parser.add_argument("--size-mb", type=int, default=8)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="perfhook-disk-full-")
    mount = os.path.join(work, "tmpfs")
    os.makedirs(mount)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={args.size_mb}m", "tmpfs", mount], check=True)
    failures = []
    server = None
    try:
        log_path = os.path.join(work, "alerts.jsonl")
        config = os.path.join(work, "perfhook.toml")
        with open(config, "w") as f:
            f.write(f"""
[server]
listen = "127.0.0.1:18437"
[storage]
path = "{mount}/data"
cache_mb = 8
[outbox]
initial_backoff_ms = 1000
max_backoff_ms = 8000
[[endpoints]]
name = "perf"
path = "/webhooks/perf"
notifiers = ["file"]
secrets = [{{ name = "primary", env = "DISK_FULL_SECRET" }}]
[notifiers.file]
kind = "log"
target = "{log_path}"
""")
        stderr = open(os.path.join(work, "stderr.log"), "w")
        server = subprocess.Popen([args.binary, "serve", "--config", config],
                                  env={**os.environ, "DISK_FULL_SECRET": SECRET, "RUST_LOG": "info"},
                                  stdout=subprocess.DEVNULL, stderr=stderr)
        base = "http://127.0.0.1:18437"
        for _ in range(100):
            if get(base + "/healthz") == 200:
                break
            time.sleep(0.1)
        accepted, refused = [], []
        for n in range(200):
            event_id = f"evt_before_{n}"
            (accepted if post(base + "/webhooks/perf", alert(event_id)) == 200 else refused).append(event_id)
        print(f"before filling: {len(accepted)} accepted, {len(refused)} refused")
        # Fill the rest of the tmpfs.
        filler = os.path.join(mount, "filler")
        with open(filler, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        full_since = time.time()
        n = 0
        ready_while_full = []
        while time.time() - full_since < args.full_seconds:
            event_id = f"evt_full_{n}"
            n += 1
            status = post(base + "/webhooks/perf", alert(event_id))
            (accepted if status == 200 else refused).append(event_id)
            if n % 10 == 0:
                ready_while_full.append(get(base + "/readyz"))
            time.sleep(0.05)
        full_refused = [i for i in refused if i.startswith("evt_full_")]
        full_accepted = [i for i in accepted if i.startswith("evt_full_")]
        print(f"while full ({args.full_seconds} s): {len(full_accepted)} accepted, {len(full_refused)} refused (503)")
        counts = notified(log_path)
        refused_notified = [i for i in refused if counts.get(i)]
        print(f"refused yet notified: {len(refused_notified)}")
        if refused_notified:
            failures.append(f"refused deliveries were notified: {refused_notified[:5]}")
        if not full_refused:
            failures.append("the full disk refused nothing (is the tmpfs full?)")
        most = max(counts.values(), default=0)
        # Backoff 1 s doubling to 8 s: at most about 10 attempts in a minute per job.
        print(f"most notifications of one id while full: {most}")
        if most > 10:
            failures.append(f"a job was attempted {most} times in {args.full_seconds} s")
        if 200 in ready_while_full[1:]:
            failures.append(f"/readyz said ready while the disk was full: {ready_while_full}")
        os.remove(filler)
        freed = time.time()
        recovered = None
        while time.time() - freed < 30:
            if get(base + "/readyz") == 200:
                recovered = time.time() - freed
                break
            time.sleep(0.2)
        print(f"/readyz true again {recovered if recovered is None else round(recovered, 1)} s after space was freed")
        if recovered is None or recovered > 10:
            failures.append(f"/readyz did not recover within 10 s ({recovered})")
        status = post(base + "/webhooks/perf", alert("evt_after"))
        deadline = time.time() + 15
        while time.time() < deadline and not notified(log_path).get("evt_after"):
            time.sleep(0.2)
        after = notified(log_path)
        print(f"after recovery: status {status}, notified {after.get('evt_after', 0)}")
        if status != 200 or not after.get("evt_after"):
            failures.append("delivery did not resume after recovery")
        missing = [i for i in accepted if not after.get(i)]
        print(f"accepted but not notified by the end: {len(missing)} of {len(accepted)}")
        if missing:
            failures.append(f"accepted events were never notified: {missing[:5]}")
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=40)
        print(f"SIGTERM: exit {code}")
        if code != 0:
            failures.append(f"SIGTERM exited {code}")
        server = None
    finally:
        if server is not None:
            server.kill()
            server.wait()
        subprocess.run(["umount", mount], check=False)
    for failure in failures:
        print(f"FAILED: {failure}")
    print("disk-full check:", "FAILED" if failures else "passed", f"(logs in {work})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

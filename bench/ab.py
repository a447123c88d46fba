#!/usr/bin/env python3
"""Alternated comparison: perfhook builds or settings, run by run, under the same signed load.

The machines these figures come from are shared and noisy (the same binary has run at 6,600
and 11,300 req/s an hour apart), so a comparison is only fair between runs made in turns:
this script starts each candidate in turn, loads it for --duration seconds at --conc, stops
it, and repeats for --pairs rounds (the order reversed every other round). It prints each
run and the medians, with the server's CPU per request split by thread: actix's worker (the
handler), the store's writer, sled's I/O threads and the outbox (tokio) worker.

    bench/ab.py --pairs 5 before=/path/to/old/perfhook after=target/release/perfhook
    bench/ab.py --pairs 3 defaults=target/release/perfhook stored=target/release/perfhook:stored
    bench/ab.py --pairs 3 mi=target/release/perfhook "cache4=target/release/perfhook:defaults:cache_mb=4"

A candidate is LABEL=BINARY[:CONFIG[:OPTION=VALUE...]] with CONFIG one of
  defaults  the embedded defaults (log notifier on stdout, INFO logs), what users run;
  stored    `notifiers = []` with RUST_LOG=warn, as bench/load.sh's stored-only row;
(both with the operator API on a free port).
and OPTIONs `cache_mb=N` ([storage] cache_mb) or `env.NAME=VALUE` (an environment variable,
such as an allocator's options); the environment's own PERFHOOK_* variables apply to every
candidate. Needs the peer harness's load script, prepared by
bench/load.sh under target/bench-peers (or pass --lua), and wrk. Every request is signed
afresh with a unique id, like bench/load.sh; server on cpu1, wrk on cpu0.
"""

import argparse
import collections
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LUA = os.path.join(ROOT, "target", "bench-peers", "gen", "signed.lua")
SECRET = "perfhook-bench-secret-0123456789"  # a benchmark key, not a real secret
SECRET_ENV = "PERFHOOK_BENCH_SECRET"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(stat_path):
    """(name, user + system CPU seconds) from a /proc stat file."""
    with open(stat_path) as f:
        raw = f.read()
    fields = raw.rsplit(")", 1)[1].split()
    return raw.split("(", 1)[1].rsplit(")", 1)[0], (int(fields[11]) + int(fields[12])) / TICK


def cpu_snapshot(pid):
    """The process's CPU seconds (threads that ended included) and each live thread's."""
    threads = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            threads[tid] = cpu_seconds("/proc/%d/task/%s/stat" % (pid, tid))
        except OSError:
            pass  # the thread ended
    return cpu_seconds("/proc/%d/stat" % pid)[1], threads


def by_thread(before, after, requests):
    """µs per request by thread name (numbered names such as sled-io-3 folded together), a
    thread's delta taken by id; what threads that ended in between used is "ended threads"."""
    total = after[0] - before[0]
    per_name = collections.Counter()
    for tid, (name, seconds) in after[1].items():
        per_name[re.sub(r"-\d+$", "-N", name)] += seconds - before[1].get(tid, (name, 0.0))[1]
    ended = total - sum(per_name.values())
    if ended > 0:
        per_name["ended threads"] += ended
    return total / requests * 1e6, {name: round(s / requests * 1e6, 1)
                                    for name, s in per_name.items()}


def wrk(url, args, seconds):
    cmd = ["taskset", "-c", "0", "wrk", "-t1", "-c%d" % args.conc, "-d%ds" % seconds,
           "--timeout", "5s", "-s", args.lua, url, "--", "stripe", SECRET, "1024",
           os.urandom(4).hex()]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    line = [l for l in out.splitlines() if l.startswith("WRKJSON ")][-1]
    return json.loads(line[len("WRKJSON "):])


def run(candidate, args):
    label, binary, config, options = candidate
    workdir = tempfile.mkdtemp(prefix="perfhook-ab-", dir=args.data_root)
    port = free_port()
    cache = "".join("cache_mb = %s\n" % v for k, v in options.items() if k == "cache_mb")
    notifiers = "notifiers = []\n" if config == "stored" else ""
    with open(os.path.join(workdir, "perfhook.toml"), "w") as f:
        f.write(f"""[server]
listen = "127.0.0.1:{port}"
workers = 1

[storage]
path = "{workdir}/data"
{cache}
[admin]
listen = "127.0.0.1:0"

[[endpoints]]
name = "perf"
path = "/webhooks/perf"
secrets = [{{ name = "bench", env = "{SECRET_ENV}" }}]
{notifiers}""")
    env = dict(os.environ, **{SECRET_ENV: SECRET})
    env.pop("RUST_LOG", None)
    if config == "stored":
        env["RUST_LOG"] = "warn"
    env.update({k[len("env."):]: v for k, v in options.items() if k.startswith("env.")})
    with open(os.path.join(workdir, "stdout"), "w") as out, \
            open(os.path.join(workdir, "stderr"), "w") as err:
        proc = subprocess.Popen(["taskset", "-c", "1", binary, "serve", "--config",
                                 os.path.join(workdir, "perfhook.toml")],
                                env=env, stdout=out, stderr=err)
        try:
            url = "http://127.0.0.1:%d" % port
            deadline = time.time() + 30
            while True:
                try:
                    urllib.request.urlopen(url + "/healthz", timeout=1)
                    break
                except OSError:
                    if time.time() > deadline or proc.poll() is not None:
                        raise SystemExit("%s did not start; see %s" % (label, err.name))
                    time.sleep(0.1)
            wrk(url + "/webhooks/perf", args, 3)  # warm-up
            before = cpu_snapshot(proc.pid)
            result = wrk(url + "/webhooks/perf", args, args.duration)
            after = cpu_snapshot(proc.pid)
            with open("/proc/%d/status" % proc.pid) as f:
                rss_kib = [int(l.split()[1]) for l in f if l.startswith("VmHWM:")][0]
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                raise SystemExit("%s did not stop within 60 s of SIGTERM" % label)
    shutil.rmtree(workdir, ignore_errors=True)
    if code != 0:
        raise SystemExit("%s exited %d on SIGTERM" % (label, code))
    us_per_req, per_thread = by_thread(before, after, result["requests"])
    return {"req_s": result["rps"], "us_per_req": us_per_req, "p99_ms": result["p99_us"] / 1000,
            "peak_rss_mib": rss_kib / 1024, "non_2xx": result["err_status"],
            "us_per_req_by_thread": per_thread}


def parse_candidate(text):
    label, _, rest = text.partition("=")
    binary, _, rest = rest.partition(":")
    config, _, rest = rest.partition(":")
    config = config or "defaults"
    if config not in ("defaults", "stored"):
        raise SystemExit("unknown config %r in %s" % (config, text))
    # Split only where an option starts, so a value may hold colons (MALLOC_CONF=narenas:1).
    options = {}
    for option in re.split(r":(?=(?:cache_mb|env\.[A-Za-z_][A-Za-z0-9_]*)=)", rest) if rest else []:
        name, sep, value = option.partition("=")
        if not sep or not (name == "cache_mb" or re.fullmatch(r"env\.[A-Za-z_][A-Za-z0-9_]*", name)):
            raise SystemExit("unknown option %r in %s (cache_mb=N or env.NAME=VALUE)" % (option, text))
        options[name] = value
    return label, os.path.abspath(binary), config, options


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("candidates", nargs="+", metavar="LABEL=BINARY[:CONFIG[:OPTION=VALUE...]]")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--conc", type=int, default=64)
    ap.add_argument("--lua", default=LUA)
    ap.add_argument("--data-root", default=None)
    args = ap.parse_args()
    if not os.path.exists(args.lua):
        raise SystemExit("no %s: run bench/load.sh once (it prepares the harness) or pass --lua"
                         % args.lua)
    candidates = [parse_candidate(c) for c in args.candidates]
    runs = {c[0]: [] for c in candidates}
    for round_ in range(args.pairs):
        for candidate in candidates if round_ % 2 == 0 else candidates[::-1]:
            result = run(candidate, args)
            runs[candidate[0]].append(result)
            print(candidate[0], json.dumps(result), flush=True)
    print()
    print("| candidate | req/s median | server µs/req | p99 ms | peak RSS MiB | µs/req by thread |")
    print("|---|---:|---:|---:|---:|---|")
    for label, results in runs.items():
        names = {name for r in results for name in r["us_per_req_by_thread"]}
        # A thread that used nothing in a run counts as 0 there.
        medians = {name: statistics.median(r["us_per_req_by_thread"].get(name, 0.0)
                                           for r in results) for name in names}
        threads = ", ".join("%s %.1f" % (name, us)
                            for name, us in sorted(medians.items(), key=lambda t: -t[1])
                            if us >= 0.1)
        print("| %s | %s | %.1f | %.2f | %.1f–%.1f | %s |" % (
            label,
            "{:,.0f}".format(statistics.median(r["req_s"] for r in results)),
            statistics.median(r["us_per_req"] for r in results),
            statistics.median(r["p99_ms"] for r in results),
            min(r["peak_rss_mib"] for r in results), max(r["peak_rss_mib"] for r in results),
            threads))


if __name__ == "__main__":
    main()

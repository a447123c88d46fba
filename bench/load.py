#!/usr/bin/env python3
"""End-to-end load: perfhook against the peer receivers, same signed load, same machine, same run.

Drives the peer harness (not part of this repository: pass its parent with --shared DIR; it is
read from DIR/bench/peers and copied to target/bench-peers so the original stays untouched): wrk pinned to cpu0 signs every request afresh with a unique id; the receiver
under test is pinned to cpu1. For perfhook it also proves that every 2xx was a durable record:
after each concurrency the receiver is stopped and `perfhook store stats` must count exactly
the events the receiver reported accepted, and at least the 2xx answers wrk saw.

    bench/load.sh                               # perfhook and the peers, c=16,64, 3 x 10 s
    bench/load.sh --peers ""                    # perfhook only
    bench/load.sh --preload 1000000             # plus growth: 1M stored, and 1M being purged
    bench/load.sh --baseline-bin OLD            # plus the same rows for another perfhook binary
    bench/load.sh --postgres                    # plus stored-only on PostgreSQL (a private cluster)
    bench/load.sh --postgres-only --baseline-bin OLD   # PostgreSQL rows only, OLD's one-replica row beside
    bench/load.sh --postgres-only --no-replicas --sched-autogroup off   # the latency figure (see docs)

Rows: `perfhook` stores only (`notifiers = []`, warn logs); `perfhook-defaults` runs what a
user runs (the embedded log notifier on stdout, INFO logs on stderr, both to files);
`perfhook-notify` adds a log notifier to a file with warn logs; `perfhook-pg` is `perfhook` on
PostgreSQL ([storage] backend = "postgres", a private cluster started here, pinned to the
receiver's core so the server side has one core in every row; integrity counted in the
database); `perfhook-pg-2` is two such replicas sharing the database behind nginx
round-robin, all on that one core.

Options it does not know (e.g. --quiet-wait 30) go to the harness's run.sh.

Prints one table (medians of the runs) with perfhook's ratio to each peer, and writes it with
the raw data to target/bench-results/<stamp>/.
"""

import argparse
import atexit
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "perfhook")
PRELOAD = os.path.join(ROOT, "target", "release", "examples", "preload")
HARNESS = os.path.join(ROOT, "target", "bench-peers")
SECRET = "perfhook-bench-secret-0123456789"  # a benchmark key, not a real secret
SECRET_ENV = "PERFHOOK_BENCH_SECRET"


def sh(cmd, **kw):
    print("+ " + " ".join(cmd), flush=True)
    return subprocess.run(cmd, check=True, **kw)


def prepare_harness(shared):
    source = os.path.join(shared, "bench", "peers")
    if not os.path.isdir(source):
        raise SystemExit("no peer harness at %s (the project's shared folder)" % source)
    skip = shutil.ignore_patterns(".venv", "node_modules", "results", "run", "target")
    shutil.copytree(source, HARNESS, ignore=skip, dirs_exist_ok=True)
    sh(["bash", os.path.join(HARNESS, "setup.sh")])


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Postgres:
    """A private PostgreSQL cluster (initdb, pg_ctl) on a free port, as postgres under root."""

    def __init__(self, server_cpu, settings=()):
        bins = sorted(d for d in os.listdir("/usr/lib/postgresql")) if os.path.isdir("/usr/lib/postgresql") else []
        if not bins:
            raise SystemExit("--postgres: no PostgreSQL (apt-get install postgresql)")
        self.bin = os.path.join("/usr/lib/postgresql", bins[-1], "bin")
        self.root = os.geteuid() == 0
        self.dir = tempfile.mkdtemp(prefix="perfhook-bench-pg-")
        if self.root:
            shutil.chown(self.dir, "postgres", "postgres")
        self.port = free_port()
        self.databases = 0
        self.run(["initdb", "-D", self.dir, "-A", "trust", "-U", "perf", "-E", "UTF8"])
        self.run(["pg_ctl", "-D", self.dir, "-l", os.path.join(self.dir, "log"), "-w", "start", "-o",
                  "-p %d -k %s -c listen_addresses=127.0.0.1" % (self.port, self.dir)
                  + "".join(" -c %s" % setting for setting in settings)],
                 pin=server_cpu)

    def run(self, cmd, pin=None):
        cmd = [os.path.join(self.bin, cmd[0])] + cmd[1:]
        if self.root:
            cmd = ["runuser", "-u", "postgres", "--"] + cmd
        if pin is not None:
            cmd = ["taskset", "-c", str(pin)] + cmd
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)

    def psql(self, database, sql):
        out = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "perf", "-d", database,
                              "-tAc", sql], check=True, capture_output=True, text=True).stdout
        return out.strip()

    def create(self):
        self.databases += 1
        name = "bench_%d" % self.databases
        self.psql("postgres", "CREATE DATABASE %s" % name)
        return name, "postgres://perf@127.0.0.1:%d/%s" % (self.port, name)

    def stats(self, database):
        return {"events": int(self.psql(database, "SELECT count(*) FROM perfhook_events")),
                "disk_bytes": int(self.psql(database, "SELECT pg_database_size(current_database())"))}

    def stop(self):
        try:
            self.run(["pg_ctl", "-D", self.dir, "-m", "fast", "-w", "stop"])
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def write_config(path, port, data_dir, notify_file=None, defaults=False, postgres=False):
    if defaults:
        # The embedded defaults, but for the address, the data dir, the secret's variable
        # and one worker thread (the server has one core).
        with open(path, "w") as f:
            f.write(f"""[server]
listen = "127.0.0.1:{port}"
workers = 1

[storage]
path = "{data_dir}"

[[endpoints]]
name = "perf"
path = "/webhooks/perf"
secrets = [{{ name = "bench", env = "{SECRET_ENV}" }}]
""")
        return
    with open(path, "w") as f:
        f.write(f"""[server]
listen = "127.0.0.1:{port}"
workers = 1

[storage]
path = "{data_dir}"
backend = "{'postgres' if postgres else 'sled'}"

[admin]
listen = "127.0.0.1:0"

[[endpoints]]
name = "perf"
path = "/webhooks/perf"
scheme = "perf"
secrets = [{{ name = "bench", env = "{SECRET_ENV}" }}]
# Stored only, as the peers store only; the -notify rows add a log notifier to a file.
notifiers = [{'"file"' if notify_file else ''}]
""" + (f"""
[notifiers.file]
kind = "log"
target = "{notify_file}"
""" if notify_file else ""))


def http_get(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.status, r.read().decode()


class Receiver:
    """perfhook serve on cpu1 with its own config and data directory."""

    def __init__(self, workdir, data_dir, server_cpu, notify=False, defaults=False, binary=BIN,
                 database_url=None):
        self.port = free_port()
        self.config = os.path.join(workdir, "perfhook.toml")
        self.data_dir = data_dir
        notify_file = os.path.join(workdir, "alerts.jsonl") if notify else None
        write_config(self.config, self.port, data_dir, notify_file, defaults, postgres=bool(database_url))
        self.log = open(os.path.join(workdir, "serve.log"), "w")
        self.stdout = open(os.path.join(workdir, "stdout.jsonl"), "w")
        env = dict(os.environ, **{SECRET_ENV: SECRET})
        if database_url:
            env["PERFHOOK_DATABASE_URL"] = database_url
        if defaults:
            env.pop("RUST_LOG", None)
        else:
            env["RUST_LOG"] = "warn"
        self.proc = subprocess.Popen(
            ["taskset", "-c", str(server_cpu), binary, "serve", "--config", self.config],
            env=env, stdout=self.stdout, stderr=self.log)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if http_get(self.url("/healthz"))[0] == 200:
                    return
            except OSError:
                time.sleep(0.1)
        raise SystemExit("perfhook did not start; see %s" % self.log.name)

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def accepted(self):
        _, text = http_get(self.url("/metrics"))
        counts = {}
        for line in text.splitlines():
            if line.startswith("perfhook_requests_total{"):
                labels, value = line.rsplit(" ", 1)
                outcome = labels.split('outcome="')[1].split('"')[0]
                counts[outcome] = counts.get(outcome, 0) + int(float(value))
        return counts

    def peak_rss_kib(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        return None

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=60)
        self.log.close()
        self.stdout.close()
        if code != 0:
            raise SystemExit("perfhook exited %d on SIGTERM" % code)


def store_stats(data_dir, binary=BIN):
    out = subprocess.run([binary, "store", "stats", "--json", "--data-dir", data_dir],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def harness(args, out, extra):
    cmd = [os.path.join(HARNESS, "run.sh"), "--runs", str(args.runs), "--duration",
           str(args.duration), "--out", out] + args.harness_options + extra
    sh(cmd)
    records = []
    with open(os.path.join(out, "raw.jsonl")) as f:
        for line in f:
            r = json.loads(line)
            if r.get("phase") == "measure" and r.get("used"):
                records.append(r)
    return records


def measure_perfhook(args, label, conc, results, preload=None, no_check=True, notify=False,
                     defaults=False, binary=BIN, postgres=None):
    """One concurrency against a fresh perfhook; returns the integrity line."""
    workdir = tempfile.mkdtemp(prefix="perfhook-load-", dir=args.data_root)
    data_dir = os.path.join(workdir, "data")
    database, database_url = postgres.create() if postgres else (None, None)
    preloaded = 0
    if preload:
        count, mode = preload
        sh([PRELOAD, data_dir, str(count)] + (["--expired"] if mode == "expired" else []))
        preloaded = 0 if mode == "expired" else count
    rx = Receiver(workdir, data_dir, args.server_cpu, notify, defaults, binary, database_url)
    try:
        extra = ["--target-url", rx.url("/webhooks/perf"), "--secret", SECRET,
                 "--target-pid", str(rx.proc.pid), "--label", label, "--conc", str(conc)]
        if no_check:
            extra.append("--no-check")
        if postgres:
            # The database shares the receiver's core, so the harness sees it as foreign
            # load on every run: no point retrying for a quiet machine.
            extra += ["--max-retries", "0"]
        records = harness(args, os.path.join(results, "%s-c%d" % (label, conc)), extra)
        counts = rx.accepted()
        rss = rx.peak_rss_kib()
    finally:
        rx.stop()
    stats = postgres.stats(database) if postgres else store_stats(data_dir, binary)
    acked = sum(r["requests"] - r["err_status"] for r in records)
    accepted = counts.get("accepted", 0)
    if preload and preload[1] == "expired":
        # Retention purges the preloaded events while new ones (kept 30 days) arrive.
        ok = accepted <= stats["events"] <= accepted + preload[0]
    else:
        ok = stats["events"] - preloaded == accepted
    ok = ok and accepted >= acked
    line = {"label": label, "conc": conc, "stored_events": stats["events"], "preloaded": preloaded,
            "accepted_answers": accepted, "duplicate_answers": counts.get("duplicate", 0),
            "wrk_2xx_measured": acked, "disk_bytes": stats["disk_bytes"], "peak_rss_kib": rss,
            "ok": ok}
    print("integrity: %s" % json.dumps(line), flush=True)
    shutil.rmtree(workdir, ignore_errors=True)
    for r in records:
        r["peak_rss_kib"] = rss
    return records, line


class Balancer:
    """nginx round-robin in front of several replicas, on the server core like them."""

    def __init__(self, workdir, ports, server_cpu):
        self.port = free_port()
        self.workdir = workdir
        upstreams = "".join("server 127.0.0.1:%d; " % p for p in ports)
        conf = os.path.join(workdir, "nginx.conf")
        with open(conf, "w") as f:
            f.write("""worker_processes 1; daemon off; pid %s/nginx.pid; error_log %s/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  upstream replicas { %s keepalive 128; }
  server {
    listen 127.0.0.1:%d;
    location / { proxy_pass http://replicas; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
""" % (workdir, workdir, upstreams, self.port))
        self.proc = subprocess.Popen(["taskset", "-c", str(server_cpu), "nginx", "-c", conf, "-p", workdir],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def stop(self):
        self.proc.send_signal(signal.SIGQUIT)
        self.proc.wait(timeout=30)


def measure_pg_replicas(args, label, conc, results, postgres, count=2):
    """Several replicas sharing one database behind nginx; returns the integrity line."""
    workdir = tempfile.mkdtemp(prefix="perfhook-load-", dir=args.data_root)
    database, database_url = postgres.create()
    replicas = []
    balancer = None
    try:
        for i in range(count):
            replica_dir = os.path.join(workdir, "replica-%d" % i)
            os.makedirs(replica_dir)
            replicas.append(Receiver(replica_dir, os.path.join(replica_dir, "data"), args.server_cpu,
                                     database_url=database_url))
        balancer = Balancer(workdir, [r.port for r in replicas], args.server_cpu)
        extra = ["--target-url", balancer.url("/webhooks/perf"), "--secret", SECRET,
                 "--label", label, "--conc", str(conc), "--no-check", "--max-retries", "0"]
        records = harness(args, os.path.join(results, "%s-c%d" % (label, conc)), extra)
        counts = {}
        for r in replicas:
            for outcome, n in r.accepted().items():
                counts[outcome] = counts.get(outcome, 0) + n
        rss = max(r.peak_rss_kib() or 0 for r in replicas)
    finally:
        if balancer:
            balancer.stop()
        for r in replicas:
            r.stop()
    stats = postgres.stats(database)
    acked = sum(r["requests"] - r["err_status"] for r in records)
    accepted = counts.get("accepted", 0)
    # A request the balancer gave up on (wrk closing its connections at the end of a run)
    # may still be committed: stored can exceed the answers, never fall short of them.
    ok = stats["events"] >= accepted >= acked
    line = {"label": label, "conc": conc, "stored_events": stats["events"], "preloaded": 0,
            "accepted_answers": accepted, "duplicate_answers": counts.get("duplicate", 0),
            "wrk_2xx_measured": acked, "disk_bytes": stats["disk_bytes"], "peak_rss_kib": rss,
            "ok": ok}
    print("integrity: %s" % json.dumps(line), flush=True)
    shutil.rmtree(workdir, ignore_errors=True)
    for r in records:
        r["peak_rss_kib"] = rss
    return records, line


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def table(records, integrity, peers):
    cells = {}
    for r in records:
        cells.setdefault((r["peer"], r["conc"]), []).append(r)
    rows = ["| receiver | c | req/s | p50 ms | p99 ms | server CPU µs/req | peak RSS MiB | runs |",
            "|---|---:|---:|---:|---:|---:|---:|---:|"]
    summary = {}
    for (label, conc), rs in sorted(cells.items(), key=lambda kv: (kv[0][0] not in peers, kv[0])):
        rps = median([r["rps"] for r in rs])
        summary[(label, conc)] = rps
        rss = median([r.get("peak_rss_kib") for r in rs])
        rows.append("| %s | %d | %s | %.2f | %.2f | %s | %s | %d (%s) |" % (
            label, conc, "{:,.0f}".format(rps), median([r["p50_us"] for r in rs]) / 1000,
            median([r["p99_us"] for r in rs]) / 1000,
            "%.1f" % median([r["srv_cpu_us_per_req"] for r in rs]) if rs[0].get("srv_cpu_us_per_req") else "-",
            "%.1f" % (rss / 1024) if rss else "-", len(rs),
            " / ".join("{:,.0f}".format(r["rps"]) for r in rs)))
    ratios = ["", "| perfhook req/s ÷ peer | " + " | ".join("c=%d" % c for c in sorted({c for _, c in summary})) + " |",
              "|---|" + "---:|" * len({c for _, c in summary})]
    for peer in peers:
        cols = []
        for conc in sorted({c for _, c in summary}):
            ours, theirs = summary.get(("perfhook", conc)), summary.get((peer, conc))
            cols.append("%.2f×" % (ours / theirs) if ours and theirs else "-")
        ratios.append("| %s | %s |" % (peer, " | ".join(cols)))
    checks = ["", "Every 2xx a durable record (perfhook stopped, then `perfhook store stats`):", ""]
    for i in integrity:
        checks.append("- %s c=%d: stored %s (preloaded %s), accepted answers %s, wrk 2xx in measured runs %s, "
                      "disk %.0f MiB, peak RSS %.1f MiB: %s" % (
                          i["label"], i["conc"], "{:,}".format(i["stored_events"]), "{:,}".format(i["preloaded"]),
                          "{:,}".format(i["accepted_answers"]), "{:,}".format(i["wrk_2xx_measured"]),
                          i["disk_bytes"] / 2**20, (i["peak_rss_kib"] or 0) / 1024,
                          "ok" if i["ok"] else "MISMATCH"))
    return "\n".join(rows + ratios + checks)


AUTOGROUP = "/proc/sys/kernel/sched_autogroup_enabled"


def set_autogroup(value):
    """Sets the kernel's autogroup switch; returns what it was."""
    with open(AUTOGROUP) as f:
        before = f.read().strip()
    with open(AUTOGROUP, "w") as f:
        f.write(value)
    print("sched_autogroup_enabled: %s -> %s" % (before, value), flush=True)
    return before


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default=os.path.join(os.path.dirname(ROOT), "shared"))
    ap.add_argument("--peers", default="null A-noexec B C-fastify D-axum D-axum-full")
    ap.add_argument("--baseline-bin", default=None,
                    help="another perfhook binary measured in the same run (rows perfhook-before*)")
    ap.add_argument("--conc", default="16,64")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--server-cpu", type=int, default=1)
    ap.add_argument("--preload", type=int, default=0, help="also measure c=64 with N events stored, and while N purge")
    ap.add_argument("--data-root", default=None, help="where data directories go (default: the temp dir)")
    ap.add_argument("--postgres", action="store_true", help="also measure perfhook on PostgreSQL (a private cluster)")
    ap.add_argument("--postgres-only", action="store_true",
                    help="only the PostgreSQL rows (with --baseline-bin: that binary's one-replica row too)")
    ap.add_argument("--sched-autogroup", choices=["on", "off"], default=None,
                    help="set the kernel's per-session CPU sharing for the run (root; restored after)."
                         " With it on, the receiver and a database on the same core share it per"
                         " session, and the database's statements wait for their half")
    ap.add_argument("--no-replicas", action="store_true",
                    help="leave out the two-replica PostgreSQL row")
    ap.add_argument("--pg-setting", action="append", default=[], metavar="NAME=VALUE",
                    help="a server setting for the private cluster (repeatable), e.g. max_wal_size=8GB")
    args, args.harness_options = ap.parse_known_args()

    sh(["cargo", "build", "--release", "--locked", "--bin", "perfhook", "--example", "preload"], cwd=ROOT)
    prepare_harness(args.shared)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    results = os.path.join(ROOT, "target", "bench-results", stamp)
    os.makedirs(results, exist_ok=True)

    if args.sched_autogroup:
        restore = set_autogroup("1" if args.sched_autogroup == "on" else "0")
        atexit.register(set_autogroup, restore)
    records, integrity = [], []
    concs = [int(c) for c in args.conc.split(",") if c]
    if args.postgres_only:
        args.postgres = True
        concs_sled = []
    else:
        concs_sled = concs
    for i, conc in enumerate(concs_sled):
        rs, line = measure_perfhook(args, "perfhook", conc, results, no_check=i > 0)
        records += rs
        integrity.append(line)
    for label, kwargs in (("perfhook-defaults", {"defaults": True}),
                          ("perfhook-notify", {"notify": True})) if concs_sled else ():
        rs, line = measure_perfhook(args, label, 64, results, **kwargs)
        records += rs
        integrity.append(line)
    if args.baseline_bin and concs_sled:
        for label, kwargs in (("perfhook-before", {}), ("perfhook-before-defaults", {"defaults": True})):
            rs, line = measure_perfhook(args, label, 64, results, binary=args.baseline_bin, **kwargs)
            records += rs
            integrity.append(line)
    if args.postgres:
        if os.path.exists(AUTOGROUP) and not args.sched_autogroup:
            with open(AUTOGROUP) as f:
                if f.read().strip() == "1":
                    print("note: sched_autogroup is on: the receiver and the database share their one core"
                          " per session, which dominates the PostgreSQL rows' p99 (--sched-autogroup off;"
                          " docs/benchmarks.md)", flush=True)
        postgres = Postgres(args.server_cpu, args.pg_setting)
        try:
            for conc in concs:
                # The baseline first, then this build: a second run swaps nothing but the order.
                rows = [("perfhook-pg", BIN)]
                if args.baseline_bin and args.postgres_only:
                    rows.insert(0, ("perfhook-pg-before", args.baseline_bin))
                for label, binary in rows:
                    rs, line = measure_perfhook(args, label, conc, results, binary=binary,
                                                postgres=postgres)
                    records += rs
                    integrity.append(line)
            if args.no_replicas:
                pass
            elif shutil.which("nginx"):
                rs, line = measure_pg_replicas(args, "perfhook-pg-2", 64, results, postgres)
                records += rs
                integrity.append(line)
            else:
                print("perfhook-pg-2 skipped: no nginx to balance two replicas (the peers' setup.sh installs it)")
        finally:
            postgres.stop()
    if args.preload:
        for mode, label in (("kept", "perfhook-1M-stored"), ("expired", "perfhook-1M-purging")):
            rs, line = measure_perfhook(args, label, 64, results, preload=(args.preload, mode))
            records += rs
            integrity.append(line)
    peers = [p for p in args.peers.replace(",", " ").split() if p]
    if peers:
        records += harness(args, os.path.join(results, "peers"),
                           ["--peers", " ".join(peers), "--conc", args.conc])
    text = table(records, integrity, peers)
    with open(os.path.join(results, "summary.md"), "w") as f:
        f.write(text + "\n")
    print("\n" + text + "\n\nresults: %s" % results)
    if not all(i["ok"] for i in integrity):
        sys.exit(1)


if __name__ == "__main__":
    main()

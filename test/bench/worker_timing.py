#!/usr/bin/python3
"""asyncrr worker timing: deadline-to-notification delay and idle CPU.

Run by test/bench/worker_timing.sh, once per asyncrr.precision setting,
against a throwaway cluster with asyncrr preloaded and CREATE EXTENSION done:

  worker_timing.py measure --label L --expect-precision 1s --part FILE
                           [--requests 100] [--min-timeout 1.0] [--max-timeout 3.0]
                           [--idle-requests 100000] [--window 60] [--settle 5] [--seed N]
      (connection from the PG* environment variables)
  worker_timing.py report PART... --json OUT
      prints the table of every part and writes them together as JSON.

1. Delay: a session opens durable inbox "bench" (LISTEN), submits N
   requests (one transaction each) with random timeouts, reads each
   deadline back from asyncrr.status(), and waits for the N "timed_out"
   notifications.  Delay = client arrival time - server deadline (same
   host, same clock).  It is split into worker lag (finished_at, the
   server's clock_timestamp() when the worker ended the request, minus the
   deadline) and delivery (arrival - finished_at: the rest of the pass,
   commit with fsync, NOTIFY delivery).  Fails if any notification comes
   before its deadline, is not "timed_out", or does not come at all.
2. Idle CPU: utime+stime of the asyncrr worker (from /proc/PID/stat) over
   an idle window, first with no live requests, then with M live requests
   whose deadlines are an hour away (inserted in one transaction).  Over
   the same windows, baselines: an idle ordinary backend and the
   checkpointer.  Voluntary context switches of the worker are reported as
   an approximation of its wake-ups.
"""
import argparse
import datetime
import json
import os
import random
import select
import statistics
import sys
import time

import psycopg

CLK_TCK = os.sysconf("SC_CLK_TCK")


def fail(msg):
    print(f"worker_timing.py: FAILED: {msg}", file=sys.stderr)
    sys.exit(1)


def percentile(xs, p):
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    s = sorted(xs)
    k = max(1, -(-len(s) * p // 100))  # ceil(n*p/100), at least 1
    return s[int(k) - 1]


def summary(xs):
    return {"n": len(xs), "min": min(xs), "median": statistics.median(xs),
            "p90": percentile(xs, 90), "p99": percentile(xs, 99), "max": max(xs)}


def proc_cpu(pid):
    """(utime+stime in seconds, voluntary context switches) of a process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    vcs = None
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches:"):
                vcs = int(line.split()[1])
    return ticks / CLK_TCK, vcs


def worker_pid(conn, wait_s=30):
    give_up = time.time() + wait_s
    while True:
        row = conn.execute("SELECT pid FROM pg_stat_activity WHERE backend_type = 'asyncrr worker'").fetchone()
        if row:
            return row[0]
        if time.time() > give_up:
            fail("no 'asyncrr worker' in pg_stat_activity")
        time.sleep(0.2)


def epoch(ts):
    return ts.timestamp() if ts is not None else None


# ---------------------------------------------------------------------------
# 1. deadline -> timed_out notification
# ---------------------------------------------------------------------------
def measure_delay(args, admin):
    rng = random.Random(args.seed)
    req = psycopg.connect(autocommit=True)
    req.execute("SELECT asyncrr.open_inbox('bench')")

    arrivals = {}          # correlation_id -> (arrival epoch, status, during_submit)
    state = {"submitting": True}

    def record(n, t):
        try:
            p = json.loads(n.payload)
        except ValueError:
            fail(f"notification with a payload that is not JSON: {n.payload!r}")
        cid = p.get("correlation_id")
        if cid in arrivals:
            fail(f"second notification for {cid}")
        arrivals[cid] = (t, p.get("status"), state["submitting"])

    # notifications that arrive while a query runs (during the submits)
    req.add_notify_handler(lambda n: record(n, time.time()))

    reqs = {}              # correlation_id -> dict
    t0 = time.time()
    for i in range(args.requests):
        timeout = rng.uniform(args.min_timeout, args.max_timeout)
        with req.transaction():
            cid = req.execute(
                "SELECT asyncrr.submit('bench', jsonb_build_object('i', %s::int),"
                " timeout => make_interval(secs => %s))", [i, timeout]).fetchone()[0]
            deadline = req.execute("SELECT deadline FROM asyncrr.status(%s)", [cid]).fetchone()[0]
        reqs[str(cid)] = {"i": i, "timeout_s": timeout, "deadline": epoch(deadline)}
    submit_s = time.time() - t0
    state["submitting"] = False
    first_deadline = min(r["deadline"] for r in reqs.values())
    if time.time() > first_deadline:
        print(f"  note: submitting took {submit_s:.2f} s, past the first deadline; "
              "notifications that came meanwhile are stamped when a later submit read them", flush=True)

    # wait: select() on the socket, stamp, then drain libpq's notifies
    give_up = max(r["deadline"] for r in reqs.values()) + args.max_wait
    pg = req.pgconn
    while len(arrivals) < len(reqs):
        left = give_up - time.time()
        if left <= 0:
            break
        r, _, _ = select.select([req.fileno()], [], [], min(left, 1.0))
        if not r:
            continue
        t = time.time()
        pg.consume_input()
        while True:
            n = pg.notifies()
            if n is None:
                break
            record(type("N", (), {"payload": n.extra.decode()}), t)

    missing = [cid for cid in reqs if cid not in arrivals]
    if missing:
        fail(f"{len(missing)} of {len(reqs)} timed_out notifications never came "
             f"(waited until {args.max_wait:.0f} s after the last deadline); e.g. {missing[0]}")
    extra = [cid for cid in arrivals if cid not in reqs]
    if extra:
        fail(f"notifications for unknown requests: {extra[:3]}")

    for cid, r in reqs.items():
        row = admin.execute("SELECT state, finished_at FROM asyncrr.status(%s)", [cid]).fetchone()
        r["state"], r["finished_at"] = row[0], epoch(row[1])
        r["arrival"], r["notified_status"], r["during_submit"] = arrivals[cid]
        r["delay_ms"] = (r["arrival"] - r["deadline"]) * 1000
        r["worker_lag_ms"] = (r["finished_at"] - r["deadline"]) * 1000
        r["delivery_ms"] = (r["arrival"] - r["finished_at"]) * 1000
        r["correlation_id"] = cid

    bad = [r for r in reqs.values() if r["notified_status"] != "timed_out" or r["state"] != "timed_out"]
    if bad:
        fail(f"{len(bad)} requests did not end timed_out, e.g. {bad[0]}")
    early = [r for r in reqs.values() if r["delay_ms"] < 0 or r["worker_lag_ms"] < 0]
    if early:
        fail(f"{len(early)} requests timed out or notified before their deadline, e.g. {early[0]}")

    req.execute("SELECT count(*) FROM asyncrr.take_replies(1000)")
    req.close()
    rows = sorted(reqs.values(), key=lambda r: r["deadline"])
    return {
        "requests": len(rows),
        "timeouts_s": [args.min_timeout, args.max_timeout],
        "submit_s": submit_s,
        "arrived_during_submit": sum(r["during_submit"] for r in rows),
        "delay_ms": summary([r["delay_ms"] for r in rows]),
        "worker_lag_ms": summary([r["worker_lag_ms"] for r in rows]),
        "delivery_ms": summary([r["delivery_ms"] for r in rows]),
        "per_request": rows,
    }


# ---------------------------------------------------------------------------
# 2. idle CPU
# ---------------------------------------------------------------------------
def cpu_window(pids, window):
    before = {k: proc_cpu(p) for k, p in pids.items()}
    t0 = time.monotonic()
    time.sleep(window)
    wall = time.monotonic() - t0
    after = {k: proc_cpu(p) for k, p in pids.items()}
    out = {"window_s": wall}
    for k in pids:
        cpu = after[k][0] - before[k][0]
        out[k] = {"cpu_s": cpu, "pct_core": 100 * cpu / wall,
                  "vol_ctxsw_per_s": (after[k][1] - before[k][1]) / wall}
    return out


def vacuum_counts(admin):
    return admin.execute(
        "SELECT coalesce(autovacuum_count, 0) + coalesce(autoanalyze_count, 0) FROM pg_stat_all_tables"
        " WHERE schemaname = 'asyncrr' AND relname = 'request'").fetchone()[0]


def measure_idle(args, admin, wpid):
    idle = psycopg.connect(autocommit=True)
    pids = {
        "worker": wpid,
        "idle_backend": idle.execute("SELECT pg_backend_pid()").fetchone()[0],
        "checkpointer": admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'").fetchone()[0],
    }
    res = {"pids": pids}

    live = admin.execute("SELECT count(*) FROM asyncrr.pending").fetchone()[0]
    time.sleep(args.settle)
    print(f"  idle window, {live} live requests ({args.window:g} s)", flush=True)
    res["empty"] = cpu_window(pids, args.window)
    res["empty"]["live_requests"] = live

    loader = psycopg.connect(autocommit=True)  # kept open: its session inbox holds the requests
    t0 = time.time()
    with loader.transaction():
        loader.execute("SELECT count(asyncrr.submit('idle', jsonb_build_object('i', g), timeout => '1 hour'))"
                       " FROM generate_series(1, %s) g", [args.idle_requests])
    insert_s = time.time() - t0
    live = admin.execute("SELECT count(*) FROM asyncrr.pending").fetchone()[0]
    if live != args.idle_requests:
        fail(f"expected {args.idle_requests} live requests, found {live}")
    soonest = admin.execute("SELECT min(deadline) - now() FROM asyncrr.pending").fetchone()[0]
    if wpid != worker_pid(admin):
        fail("the asyncrr worker restarted during the run")
    time.sleep(args.settle)
    av0 = vacuum_counts(admin)
    print(f"  idle window, {live} live requests, first deadline in {soonest} ({args.window:g} s)", flush=True)
    res["loaded"] = cpu_window(pids, args.window)
    res["loaded"].update(live_requests=live, insert_s=insert_s,
                         autovacuum_or_analyze_during=vacuum_counts(admin) - av0)
    if wpid != worker_pid(admin):
        fail("the asyncrr worker restarted during the idle window")
    loader.close()
    idle.close()
    return res


def measure(args):
    admin = psycopg.connect(autocommit=True)
    precision = admin.execute("SHOW asyncrr.precision").fetchone()[0]
    if args.expect_precision and precision != args.expect_precision:
        fail(f"asyncrr.precision is {precision}, expected {args.expect_precision}")
    settings = dict(admin.execute(
        "SELECT name, setting FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit',"
        " 'server_version', 'asyncrr.batch_size')").fetchall())
    wpid = worker_pid(admin)
    admin.execute("SELECT asyncrr.create_queue('bench', default_timeout => '10 seconds')")
    admin.execute("SELECT asyncrr.create_queue('idle', default_timeout => '1 hour')")

    print(f"[{args.label}] precision {precision}: {args.requests} requests, "
          f"timeouts {args.min_timeout}-{args.max_timeout} s", flush=True)
    delay = measure_delay(args, admin)
    if wpid != worker_pid(admin):
        fail("the asyncrr worker restarted during the delay test")
    idle = measure_idle(args, admin, wpid)
    part = {"label": args.label, "precision": precision, "settings": settings,
            "started": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "loadavg": os.getloadavg(), "delay": delay, "idle": idle}
    with open(args.part, "w") as f:
        json.dump(part, f, indent=1)
    print_table([part])


def print_table(parts):
    print()
    print("deadline -> timed_out notification, ms (n = requests)")
    print(f"{'precision':>9} {'n':>4} | {'what':<12} {'median':>7} {'p90':>7} {'p99':>7} {'worst':>7} {'best':>7}")
    for p in parts:
        d = p["delay"]
        for key, name in (("delay_ms", "delay"), ("worker_lag_ms", " worker lag"),
                          ("delivery_ms", " delivery")):
            s = d[key]
            print(f"{p['precision']:>9} {s['n']:>4} | {name:<12} {s['median']:7.1f} {s['p90']:7.1f}"
                  f" {s['p99']:7.1f} {s['max']:7.1f} {s['min']:7.1f}")
    print()
    print("CPU while idle, % of one core (wake-ups/s ~ voluntary context switches/s)")
    print(f"{'precision':>9} {'live reqs':>9} {'window':>7} | {'worker':>7} {'wake/s':>6} "
          f"{'idle backend':>12} {'checkpointer':>12}")
    for p in parts:
        for key in ("empty", "loaded"):
            w = p["idle"][key]
            print(f"{p['precision']:>9} {w['live_requests']:>9} {w['window_s']:6.1f}s |"
                  f" {w['worker']['pct_core']:6.3f}% {w['worker']['vol_ctxsw_per_s']:6.1f}"
                  f" {w['idle_backend']['pct_core']:11.3f}% {w['checkpointer']['pct_core']:11.3f}%")
    print()


def report(args):
    parts = []
    for path in args.parts:
        with open(path) as f:
            parts.append(json.load(f))
    print_table(parts)
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump({"tool": "test/bench/worker_timing.py", "runs": parts}, f, indent=1)
    print(f"wrote {args.json}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("measure")
    m.add_argument("--label", default="run")
    m.add_argument("--expect-precision")
    m.add_argument("--part", required=True)
    m.add_argument("--requests", type=int, default=100)
    m.add_argument("--min-timeout", type=float, default=1.0)
    m.add_argument("--max-timeout", type=float, default=3.0)
    m.add_argument("--max-wait", type=float, default=30.0,
                   help="give up this many seconds after the last deadline")
    m.add_argument("--idle-requests", type=int, default=100000)
    m.add_argument("--window", type=float, default=60.0, help="idle window, seconds")
    m.add_argument("--settle", type=float, default=5.0, help="wait before an idle window, seconds")
    m.add_argument("--seed", type=int, default=None)
    r = sub.add_parser("report")
    r.add_argument("parts", nargs="+")
    r.add_argument("--json", required=True)
    args = ap.parse_args()
    if args.cmd == "measure":
        if not 0 < args.min_timeout <= args.max_timeout:
            fail("need 0 < --min-timeout <= --max-timeout")
        measure(args)
    else:
        report(args)


if __name__ == "__main__":
    main()

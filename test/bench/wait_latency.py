#!/usr/bin/python3
"""asyncrr wake-up latency of waiting without LISTEN (issue #5).

Run by test/bench/wait_latency.sh against a throwaway cluster with asyncrr
preloaded and CREATE EXTENSION done (connection from the PG* variables):

  wait_latency.py [--n 1000] [--call-seconds 10] [--callers "1 4"]
                  [--quick] [--json OUT]

Every latency is client-side (time.perf_counter(), one process) unless
called "server": those are clock_timestamp() differences on the server.

 wait     (a) A requester holding durable inbox "lat-wait" submits a
          request, a worker session claims it, the requester starts
          SELECT ... FROM asyncrr.wait(id, '30 s') in a thread; once its
          backend sleeps on its latch (pg_stat_activity wait_event
          "Extension"), the worker calls complete() (autocommit).
          client: complete()'s COMMIT returned to the worker -> wait()'s
                  result arrived at the requester (can be < 0: the waiter
                  is woken inside the commit, before the worker's reply
                  goes out);
          server: the request's finished_at (inside complete, before its
                  commit) -> clock_timestamp() as wait() returned its row
                  (before the requester's own commit of taken_at).
 claim    (b) A worker session sleeps in asyncrr.claim(q, wait => '30 s');
          the requester submits (autocommit).
          client: submit's COMMIT returned -> claim's result arrived;
          server: clock_timestamp() at the end of submit (before commit)
                  -> clock_timestamp() as claim returned its row.
 notify   Baseline for (a) with LISTEN/NOTIFY: a requester holding durable
          inbox "lat-notify" (open_inbox LISTENs) waits in select() on its
          socket; the worker completes.
          client: complete returned -> notification arrived, and -> the
                  reply was in hand from asyncrr.take_replies();
          server: finished_at -> clock_timestamp() in take_replies.
 call     (c) CALL asyncrr.call(q, payload) by 1 and 4 concurrent callers
          for --call-seconds each, against one worker session looping on
          claim(q, wait => '1 s') + complete(): latency per call and
          calls/s; and, from the server's stamps on each call's request,
          submitted_at -> claimed_at -> finished_at -> taken_at.
"""
import argparse
import datetime
import json
import os
import queue
import select
import statistics
import sys
import threading
import time

import psycopg
from psycopg.types.json import Jsonb

GOAL_MS = 1.0


def fail(msg):
    print(f"wait_latency.py: FAILED: {msg}", file=sys.stderr)
    sys.exit(1)


def percentile(xs, p):
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    s = sorted(xs)
    k = max(1, -(-len(s) * p // 100))
    return s[int(k) - 1]


def summary(xs):
    return {"n": len(xs), "min": min(xs), "median": statistics.median(xs),
            "p90": percentile(xs, 90), "p99": percentile(xs, 99), "max": max(xs)}


def connect():
    return psycopg.connect(autocommit=True)


def pid_of(conn):
    return conn.execute("SELECT pg_backend_pid()").fetchone()[0]


def wait_asleep(admin, pid, give_up_s=10.0):
    """Until backend pid sleeps on its latch in asyncrr (wait_event Extension)."""
    give_up = time.perf_counter() + give_up_s
    while True:
        row = admin.execute("SELECT wait_event FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone()
        if row and row[0] == "Extension":
            return
        if time.perf_counter() > give_up:
            fail(f"backend {pid} did not go to sleep (wait_event {row and row[0]!r})")
        time.sleep(0.0005)


class Runner:
    """Runs statements on one connection in its own thread; stamps the result."""

    def __init__(self, conn):
        self.conn = conn
        self.jobs = queue.Queue()
        self.results = queue.Queue()
        self.t = threading.Thread(target=self._loop, daemon=True)
        self.t.start()

    def _loop(self):
        while True:
            sql, args = self.jobs.get()
            if sql is None:
                return
            try:
                rows = self.conn.execute(sql, args).fetchall()
                self.results.put((time.perf_counter(), rows, None))
            except Exception as e:  # reported by the caller
                self.results.put((time.perf_counter(), None, e))

    def start(self, sql, args):
        self.jobs.put((sql, args))

    def result(self, timeout=60):
        t, rows, err = self.results.get(timeout=timeout)
        if err is not None:
            raise err
        return t, rows

    def stop(self):
        self.jobs.put((None, None))
        self.t.join()


def ms(seconds):
    return seconds * 1000.0


def bench_wait(args, admin):
    req, wrk = connect(), connect()
    req.execute("SELECT asyncrr.open_inbox('lat-wait')")
    rpid = pid_of(req)
    runner = Runner(req)
    client, server, commit = [], [], []
    for i in range(args.n):
        cid = req.execute("SELECT asyncrr.submit('lat', %s)", [Jsonb({"i": i})]).fetchone()[0]
        got = wrk.execute("SELECT correlation_id FROM asyncrr.claim('lat')").fetchone()
        if not got or got[0] != cid:
            fail(f"wait: claimed {got}, expected {cid}")
        runner.start("SELECT w.status, w.finished_at, clock_timestamp()"
                     " FROM asyncrr.wait(%s, '30 s') w", [cid])
        wait_asleep(admin, rpid)
        t0 = time.perf_counter()
        outcome = wrk.execute("SELECT asyncrr.complete(%s, %s)", [cid, Jsonb({"ok": i})]).fetchone()[0]
        t1 = time.perf_counter()
        t2, rows = runner.result()
        if outcome != "completed" or rows[0][0] != "completed":
            fail(f"wait: complete said {outcome}, wait said {rows}")
        client.append(ms(t2 - t1))
        server.append(ms((rows[0][2] - rows[0][1]).total_seconds()))
        commit.append(ms(t1 - t0))
    runner.stop()
    req.execute("SELECT asyncrr.close_inbox()")
    req.close()
    wrk.close()
    return {"client_ms": summary(client), "server_ms": summary(server),
            "complete_call_ms": summary(commit)}


def bench_claim(args, admin):
    req, wrk = connect(), connect()
    req.execute("SELECT asyncrr.open_inbox('lat-claim')")
    wpid = pid_of(wrk)
    runner = Runner(wrk)
    client, server, commit = [], [], []
    for i in range(args.n):
        runner.start("SELECT c.correlation_id, clock_timestamp()"
                     " FROM asyncrr.claim('lat', wait => '30 s') c", [])
        wait_asleep(admin, wpid)
        t0 = time.perf_counter()
        cid, submitted = req.execute("SELECT asyncrr.submit('lat', %s), clock_timestamp()",
                                     [Jsonb({"i": i})]).fetchone()
        t1 = time.perf_counter()
        t2, rows = runner.result()
        if len(rows) != 1 or rows[0][0] != cid:
            fail(f"claim: got {rows}, expected {cid}")
        client.append(ms(t2 - t1))
        server.append(ms((rows[0][1] - submitted).total_seconds()))
        commit.append(ms(t1 - t0))
        # untimed: finish the request and take its reply
        wrk.execute("SELECT asyncrr.complete(%s, '{}')", [cid])
        req.execute("SELECT count(*) FROM asyncrr.take_replies()")
    runner.stop()
    req.execute("SELECT asyncrr.close_inbox()")
    req.close()
    wrk.close()
    return {"client_ms": summary(client), "server_ms": summary(server),
            "submit_call_ms": summary(commit)}


def bench_notify(args, admin):
    req, wrk = connect(), connect()
    req.execute("SELECT asyncrr.open_inbox('lat-notify')")
    pg = req.pgconn
    to_note, to_reply, server = [], [], []
    for i in range(args.n):
        cid = req.execute("SELECT asyncrr.submit('lat', %s)", [Jsonb({"i": i})]).fetchone()[0]
        got = wrk.execute("SELECT correlation_id FROM asyncrr.claim('lat')").fetchone()
        if not got or got[0] != cid:
            fail(f"notify: claimed {got}, expected {cid}")
        while pg.notifies() is not None:  # nothing should be queued; drop it
            pass
        wrk.execute("SELECT asyncrr.complete(%s, %s)", [cid, Jsonb({"ok": i})])
        t1 = time.perf_counter()
        # the requester idles on its socket until the notification
        note = None
        give_up = t1 + 30
        while note is None:
            r, _, _ = select.select([req.fileno()], [], [], max(0.0, give_up - time.perf_counter()))
            if not r:
                fail(f"notify: no notification for {cid}")
            pg.consume_input()
            note = pg.notifies()
        t2 = time.perf_counter()
        if json.loads(note.extra.decode()).get("correlation_id") != str(cid):
            fail(f"notify: unexpected notification {note.extra!r}")
        rows = req.execute("SELECT t.correlation_id, t.finished_at, clock_timestamp()"
                           " FROM asyncrr.take_replies() t").fetchall()
        t3 = time.perf_counter()
        if len(rows) != 1 or rows[0][0] != cid:
            fail(f"notify: take_replies gave {rows}, expected {cid}")
        to_note.append(ms(t2 - t1))
        to_reply.append(ms(t3 - t1))
        server.append(ms((rows[0][2] - rows[0][1]).total_seconds()))
    req.execute("SELECT asyncrr.close_inbox()")
    req.close()
    wrk.close()
    return {"client_ms": summary(to_note), "client_reply_ms": summary(to_reply),
            "server_ms": summary(server)}


def bench_call(args, admin, callers):
    stop = threading.Event()         # callers: no new call
    stop_worker = threading.Event()  # the worker, once every call is answered
    errors = []

    def worker():
        try:
            c = connect()
            while not stop_worker.is_set():
                rows = c.execute("SELECT correlation_id, payload FROM asyncrr.claim('lat-call', wait => '1 s')").fetchall()
                for cid, payload in rows:
                    c.execute("SELECT asyncrr.complete(%s, %s)", [cid, Jsonb(payload)])
            c.close()
        except Exception as e:
            errors.append(e)

    lat = [[] for _ in range(callers)]

    def caller(k):
        try:
            c = connect()
            i = 0
            while not stop.is_set():
                t0 = time.perf_counter()
                body = {"callers": callers, "k": k, "i": i}
                row = c.execute("CALL asyncrr.call('lat-call', %s)", [Jsonb(body)]).fetchone()
                t1 = time.perf_counter()
                # (correlation_id, status, reply, error)
                if row[1] != "completed" or row[2] != body:
                    raise RuntimeError(f"call returned {row}")
                if t1 - t_start <= args.call_seconds:
                    lat[k].append(ms(t1 - t0))
                i += 1
            c.close()
        except Exception as e:
            errors.append(e)

    wt = threading.Thread(target=worker, daemon=True)
    wt.start()
    time.sleep(0.2)
    cts = [threading.Thread(target=caller, args=(k,), daemon=True) for k in range(callers)]
    t_start = time.perf_counter()
    for t in cts:
        t.start()
    time.sleep(args.call_seconds)
    stop.set()
    wall = time.perf_counter() - t_start
    for t in cts:
        t.join(timeout=30)
    stop_worker.set()
    wt.join(timeout=30)
    if errors:
        fail(f"call with {callers} callers: {errors[0]!r}")
    allx = [x for xs in lat for x in xs]
    if not allx:
        fail(f"call with {callers} callers: no call completed")
    # where the time goes, from the server's stamps of each call's request:
    # submitted_at is now() of the submit transaction, claimed_at and
    # finished_at clock_timestamp() in claim and complete, taken_at
    # clock_timestamp() when the caller's wait took the reply
    stages = admin.execute(
        "SELECT extract(epoch FROM claimed_at - submitted_at) * 1000,"
        "       extract(epoch FROM finished_at - claimed_at) * 1000,"
        "       extract(epoch FROM taken_at - finished_at) * 1000"
        "  FROM asyncrr.request WHERE queue_name = 'lat-call' AND (payload->>'callers')::int = %s"
        "   AND state = 'completed' AND taken_at IS NOT NULL", [callers]).fetchall()
    breakdown = {}
    if stages:
        for j, name in enumerate(("submit_to_claim_ms", "claim_to_complete_ms", "complete_to_taken_ms")):
            breakdown[name] = summary([float(r[j]) for r in stages])
    return {"callers": callers, "workers": 1, "seconds": wall, "calls": len(allx),
            "calls_per_s": len(allx) / wall, "latency_ms": summary(allx), "server_stages": breakdown}


def row(name, s):
    return (f"{name:<40} {s['n']:>5} {s['median']:8.3f} {s['p90']:8.3f} {s['p99']:8.3f}"
            f" {s['max']:8.3f}")


def print_table(res):
    print()
    print(f"wake-up latency, ms (fsync on, synchronous_commit on; nproc {os.cpu_count()},"
          f" load {' '.join(f'{x:.2f}' for x in res['loadavg'])})")
    print(f"{'what':<40} {'n':>5} {'median':>8} {'p90':>8} {'p99':>8} {'max':>8}")
    a, b, n = res["wait"], res["claim"], res["notify"]
    print(row("(a) complete -> wait() returns", a["client_ms"]))
    print(row("    server: finished_at -> wait returns", a["server_ms"]))
    print(row("    complete() call incl. commit", a["complete_call_ms"]))
    print(row("(b) submit -> claim(wait) returns", b["client_ms"]))
    print(row("    server: submit end -> claim returns", b["server_ms"]))
    print(row("    submit() call incl. commit", b["submit_call_ms"]))
    print(row("LISTEN: complete -> notification", n["client_ms"]))
    print(row("LISTEN: complete -> take_replies done", n["client_reply_ms"]))
    print(row("    server: finished_at -> take_replies", n["server_ms"]))
    for c in res["call"]:
        print(row(f"(c) CALL asyncrr.call, {c['callers']} caller(s)", c["latency_ms"])
              + f"   {c['calls_per_s']:.0f} calls/s")
        for key, name in (("submit_to_claim_ms", "server: submitted -> claimed"),
                          ("claim_to_complete_ms", "server: claimed -> finished"),
                          ("complete_to_taken_ms", "server: finished -> taken")):
            if key in c["server_stages"]:
                print(row(f"    {name}", c["server_stages"][key]))
    print()
    for key, name in (("wait", "(a)"), ("claim", "(b)")):
        m = res[key]["client_ms"]["median"]
        print(f"goal (issue #5): {name} median < {GOAL_MS:g} ms: {m:.3f} ms,"
              f" {'met' if m < GOAL_MS else 'NOT met'}")
    print()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000, help="round trips per measurement (a, b, LISTEN)")
    ap.add_argument("--call-seconds", type=float, default=10.0, help="seconds per CALL concurrency level")
    ap.add_argument("--callers", default="1 4", help="concurrent CALL callers, e.g. \"1 4\"")
    ap.add_argument("--quick", action="store_true", help="CI smoke: --n 50 --call-seconds 1.5")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    if args.quick:
        args.n, args.call_seconds = 50, 1.5
    if args.n < 1:
        fail("--n must be at least 1")

    admin = connect()
    settings = dict(admin.execute(
        "SELECT name, setting FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit',"
        " 'server_version', 'asyncrr.max_waiters', 'shared_preload_libraries')").fetchall())
    if settings.get("fsync") != "on" or settings.get("synchronous_commit") != "on":
        print(f"  note: fsync {settings.get('fsync')}, synchronous_commit {settings.get('synchronous_commit')}")
    admin.execute("SELECT asyncrr.create_queue('lat', default_timeout => '1 minute')")
    admin.execute("SELECT asyncrr.create_queue('lat-call', default_timeout => '1 minute')")

    res = {"tool": "test/bench/wait_latency.py", "n": args.n, "settings": settings,
           "started": datetime.datetime.now(datetime.timezone.utc).isoformat()}
    print(f"(a) wait: {args.n} round trips", flush=True)
    res["wait"] = bench_wait(args, admin)
    print(f"(b) claim with wait: {args.n} round trips", flush=True)
    res["claim"] = bench_claim(args, admin)
    print(f"baseline LISTEN/NOTIFY: {args.n} round trips", flush=True)
    res["notify"] = bench_notify(args, admin)
    res["call"] = []
    for k in [int(x) for x in args.callers.split()]:
        print(f"(c) CALL asyncrr.call: {k} caller(s), {args.call_seconds:g} s", flush=True)
        res["call"].append(bench_call(args, admin, k))
    left = admin.execute("SELECT count(*) FROM asyncrr.waiters").fetchone()[0]
    if left:
        fail(f"{left} waiters left in the registry")
    res["loadavg"] = os.getloadavg()
    print_table(res)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""One measurement through Python and psycopg 3 (run by run.sh --python;
usable alone): asyncrr through the Python client library (clients/python)
and the hand-written baseline, in the shapes of bench.js, printing the same
JSON object.

    python3 pybench.py --system asyncrr|baseline --variant call|inbox|table
        --shape A|B [--duration S] [--warmup S] --pg URL [--server-pids P,Q]

Requesters run in this process on asyncio (psycopg.AsyncConnection), one
task per connection (asyncrr ``call``: one task per connection, 16 of them in
shape B, as a CALL holds its connection; ``inbox``: each task keeps K
requests in flight on its connection, submitting with ``submit_async`` and
reading replies from ``Inbox.replies_async()``; the baseline the same with
its own statements). Each worker is a process of its own: the library's
``asyncrr.Worker`` (concurrency 10, batch 10), or for the baseline a loop
on a synchronous connection (LISTEN, claim with SKIP LOCKED, UPDATE +
pg_notify per reply).
"""
import argparse
import asyncio
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "clients", "python"))

import psycopg  # noqa: E402
from psycopg.types.json import Jsonb  # noqa: E402

import asyncrr  # noqa: E402

QUEUE = "rr"
PAYLOAD_BYTES = 100

# the baseline's statements: those of systems.js
BASELINE_SUBMIT = """WITH i AS (INSERT INTO rrbench_rr (queue, inbox, payload) VALUES (%s, %s, %s) RETURNING id)
    SELECT id, pg_notify('rr_work_' || %s, '') FROM i"""
BASELINE_TAKE = """DELETE FROM rrbench_rr WHERE id IN (SELECT id FROM rrbench_rr
    WHERE inbox = %s AND state = 'done' ORDER BY finished_at LIMIT 100 FOR UPDATE SKIP LOCKED)
    RETURNING id, reply"""
BASELINE_CLAIM = """UPDATE rrbench_rr SET state = 'claimed', claimed_at = now()
    WHERE id IN (SELECT id FROM rrbench_rr WHERE queue = %s AND state = 'pending'
                 ORDER BY prio DESC, id LIMIT 10 FOR UPDATE SKIP LOCKED)
    RETURNING id, payload"""
BASELINE_COMPLETE = """WITH u AS (UPDATE rrbench_rr SET state = 'done', reply = %s, finished_at = clock_timestamp()
    WHERE id = %s AND state = 'claimed' RETURNING id, inbox)
    SELECT pg_notify(inbox, id::text) FROM u"""

# ---- statements sent, per process (every cursor execute) --------------------
STATEMENTS = [0]


def _count(cls, name):
    orig = getattr(cls, name)
    if asyncio.iscoroutinefunction(orig):
        async def counted(self, *a, **k):
            STATEMENTS[0] += 1
            return await orig(self, *a, **k)
    else:
        def counted(self, *a, **k):
            STATEMENTS[0] += 1
            return orig(self, *a, **k)
    setattr(cls, name, counted)


_count(psycopg.Cursor, "execute")
_count(psycopg.AsyncCursor, "execute")


def pad(obj):
    s = json.dumps({**obj, "pad": ""}, separators=(",", ":"))
    return {**obj, "pad": "x" * max(0, PAYLOAD_BYTES - len(s))}


def payload(r, s):
    return pad({"r": r, "s": s})


def make_reply(p):
    return pad({"ok": True, "r": p["r"], "s": p["s"]})


def check(rep, p):
    if not rep or rep.get("s") != p["s"] or rep.get("r") != p["r"]:
        raise RuntimeError(f"wrong reply {rep!r} to request r={p['r']} s={p['s']}")


def now_ms():
    return time.monotonic() * 1000


# ---- workers (child processes) ----------------------------------------------

def worker_asyncrr(args, stop):
    w = asyncrr.Worker(args.pg + f"?application_name=rrbrokers-pyworker-{args.index}", QUEUE,
                       lambda p, h: make_reply(p), concurrency=10, batch=10)
    errors = []

    def run():
        try:
            w.run()
        except Exception as e:  # noqa: BLE001
            errors.append(f"run: {e}")
    t = threading.Thread(target=run)
    t.start()
    print("ready", flush=True)
    stop.wait()
    w.stop()
    t.join(30)
    if t.is_alive():
        errors.append("worker did not stop")
    return {"worker": dict(w.stats), "errors": errors}


def worker_baseline(args, stop):
    conn = psycopg.connect(args.pg, autocommit=True, application_name=f"rrbrokers pyworker {args.index}")
    notified = [0]
    conn.add_notify_handler(lambda n: notified.__setitem__(0, notified[0] + 1))
    conn.execute(f"LISTEN rr_work_{QUEUE}")
    stats = {"claims": 0, "emptyClaims": 0, "completed": 0}
    print("ready", flush=True)
    while not stop.is_set():
        notified[0] = 0
        rows = conn.execute(BASELINE_CLAIM, (QUEUE,), prepare=True).fetchall()
        stats["claims"] += 1
        if not rows:
            stats["emptyClaims"] += 1
            if notified[0] == 0:
                # sleep until a submit notifies (or 0.2 s, to see stop)
                select.select([conn.fileno()], [], [], 0.2)
                conn.pgconn.consume_input()
                while True:
                    n = conn.pgconn.notifies()
                    if n is None:
                        break
            continue
        for rid, p in rows:
            conn.execute(BASELINE_COMPLETE, (Jsonb(make_reply(p)), rid), prepare=True)
            stats["completed"] += 1
    conn.close()
    return {"worker": stats, "errors": []}


def worker_main(args):
    stop = threading.Event()

    def read_stdin():
        for line in sys.stdin:
            if line.strip() == "stop":
                break
        stop.set()
    threading.Thread(target=read_stdin, daemon=True).start()
    fn = worker_asyncrr if args.system == "asyncrr" else worker_baseline
    try:
        out = fn(args, stop)
    except Exception as e:  # noqa: BLE001
        out = {"errors": [f"{type(e).__name__}: {e}"]}
    out["statements"] = STATEMENTS[0]
    out["cpu_ms"] = cpu_ms()
    print(json.dumps(out), flush=True)


class WorkerProc:
    def __init__(self, args, index):
        self.p = subprocess.Popen(
            [sys.executable, __file__, "--role", "worker", "--index", str(index), "--system", args.system,
             "--variant", args.variant, "--pg", args.pg],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def ready(self):
        line = self.p.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"worker did not start ({line.strip()!r}, exit {self.p.poll()})")

    def stop(self):
        try:
            self.p.stdin.write("stop\n")
            self.p.stdin.flush()
            out, _ = self.p.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.p.kill()
            raise RuntimeError("worker did not stop cleanly")
        lines = [ln for ln in out.splitlines() if ln.strip()]
        if not lines:
            raise RuntimeError(f"worker ended without stats (exit {self.p.returncode})")
        return json.loads(lines[-1])


# ---- requesters --------------------------------------------------------------

class Run:
    def __init__(self, m_start, m_end):
        self.m_start, self.m_end = m_start, m_end
        self.lat = []
        self.total = 0

    def record(self, s, e):
        self.total += 1
        if s >= self.m_start and e <= self.m_end:
            self.lat.append(e - s)

    def going(self):
        return now_ms() < self.m_end


async def connect(args, idx):
    return await psycopg.AsyncConnection.connect(args.pg, autocommit=True,
                                                 application_name=f"rrbrokers pyrequester {idx}")


async def req_call(args, idx, run):
    conn = await connect(args, idx)
    seq = 0
    while run.going():
        p = payload(idx, seq)
        seq += 1
        s = now_ms()
        r = await asyncrr.call_async(conn, QUEUE, p, timeout=60)
        e = now_ms()
        if r.status != "completed":
            raise RuntimeError(f"call: {r.status} {r.error}")
        check(r.reply, p)
        run.record(s, e)
    await conn.close()


async def req_inbox(args, idx, k, run):
    conn = await connect(args, idx)
    inbox = asyncrr.Inbox(conn)
    await inbox.open_async()
    replies = inbox.replies_async()
    inflight = {}
    seq = 0
    while True:
        while run.going() and len(inflight) < k:
            p = payload(idx, seq)
            seq += 1
            s = now_ms()
            cid = await inbox.submit_async(QUEUE, p, timeout=60)
            inflight[str(cid)] = (s, p)
        if not inflight:
            break
        r = await asyncio.wait_for(replies.__anext__(), 60)
        e = now_ms()
        s, p = inflight.pop(str(r.correlation_id))
        if r.status != "completed":
            raise RuntimeError(f"inbox: {r.status} {r.error}")
        check(r.reply, p)
        run.record(s, e)
    await replies.aclose()
    await inbox.close_async()
    await conn.close()


async def wait_socket(conn, budget):
    """Wait up to budget s for the connection to be readable; return the
    number of notifications read (as the Python client's socket mode)."""
    async with conn.lock:
        conn.pgconn.consume_input()
        n = drain(conn)
        if n:
            return n
        loop = asyncio.get_running_loop()
        readable = loop.create_future()
        fd = conn.fileno()
        loop.add_reader(fd, lambda: readable.done() or readable.set_result(None))
        try:
            await asyncio.wait_for(readable, budget)
        except asyncio.TimeoutError:
            return 0
        finally:
            loop.remove_reader(fd)
        conn.pgconn.consume_input()
        return drain(conn)


def drain(conn):
    k = 0
    while conn.pgconn.notifies() is not None:
        k += 1
    return k


async def req_baseline(args, idx, k, run):
    conn = await connect(args, idx)
    inbox = f"rr_inbox_{idx}_{conn.pgconn.backend_pid}"
    notified = [0]
    conn.add_notify_handler(lambda n: notified.__setitem__(0, notified[0] + 1))
    await conn.execute(f"LISTEN {inbox}")
    inflight = {}
    seq = 0
    while True:
        while run.going() and len(inflight) < k:
            p = payload(idx, seq)
            seq += 1
            s = now_ms()
            cur = await conn.execute(BASELINE_SUBMIT, (QUEUE, inbox, Jsonb(p), QUEUE), prepare=True)
            inflight[(await cur.fetchone())[0]] = (s, p)
        if not inflight:
            break
        if notified[0] == 0:
            notified[0] += await wait_socket(conn, 1.0)   # 1 s: then take anyway
        notified[0] = 0
        cur = await conn.execute(BASELINE_TAKE, (inbox,), prepare=True)
        rows = await cur.fetchall()
        e = now_ms()
        for rid, rep in rows:
            s, p = inflight.pop(rid)
            check(rep, p)
            run.record(s, e)
    await conn.close()


# ---- server counters, fsyncs --------------------------------------------------

def server_stats(args):
    with psycopg.connect(args.pg, autocommit=True, application_name="rrbrokers stats") as c:
        r = c.execute("""SELECT (SELECT sum(xact_commit)::float8 FROM pg_stat_database),
            wal_bytes::float8, wal_sync::float8 FROM pg_stat_wal""").fetchone()
    return {"commits": r[0], "wal_bytes": r[1], "wal_sync": r[2]}


def start_perf(pids):
    if not pids:
        return None
    out = f"/tmp/rrbrokers-perf-py-{os.getpid()}.txt"
    try:
        p = subprocess.Popen(["perf", "stat", "-x", ",", "-o", out, "-e",
                              "syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync", "-p", pids],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError:
        return None
    return p, out


def stop_perf(h):
    if not h:
        return None
    p, out = h
    time.sleep(0.1)
    p.send_signal(signal.SIGINT)
    try:
        p.wait(5)
    except subprocess.TimeoutExpired:
        p.kill()
    try:
        n, seen = 0, False
        with open(out) as f:
            for line in f:
                fl = line.split(",")
                if len(fl) > 2 and "sys_enter_f" in fl[2] and fl[0].isdigit():
                    n += int(fl[0])
                    seen = True
        os.unlink(out)
        return n if seen else None
    except OSError:
        return None


def server_cpu_ms(pids):
    """CPU ms of the server: the first of pids, its reaped children, its live children."""
    if not pids:
        return None
    root = int(pids.split(",")[0])
    hz = os.sysconf("SC_CLK_TCK")

    def stat(pid):
        with open(f"/proc/{pid}/stat") as f:
            txt = f.read()
        fl = txt[txt.rindex(")") + 2:].split()
        return int(fl[1]), int(fl[11]) + int(fl[12]), int(fl[13]) + int(fl[14])
    try:
        _, own, children = stat(root)
        ticks = own + children
        for d in os.listdir("/proc"):
            if d.isdigit() and int(d) != root:
                try:
                    ppid, own, _ = stat(d)
                except OSError:
                    continue
                if ppid == root:
                    ticks += own
        return ticks * 1000 / hz
    except OSError:
        return None


def cpu_ms():
    t = os.times()
    return (t.user + t.system) * 1000


# ---- the measurement -----------------------------------------------------------

def reset(args):
    with psycopg.connect(args.pg, autocommit=True, application_name="rrbrokers reset") as c:
        if args.system == "asyncrr":
            c.execute("TRUNCATE asyncrr.request, asyncrr.dead_letter, asyncrr.inbox")
        else:
            c.execute("TRUNCATE rrbench_rr")
        c.execute("CHECKPOINT")


def main(args):
    if (args.system, args.variant) not in {("asyncrr", "call"), ("asyncrr", "inbox"), ("baseline", "table")}:
        raise SystemExit(f"pybench: no {args.system}/{args.variant}")
    R, K, W = (1, 1, 1) if args.shape == "A" else (4, 4, 2)
    if args.variant == "call":
        R, K = R * K, 1
    if args.system == "baseline":
        with psycopg.connect(args.pg, autocommit=True) as c:
            c.execute(open(os.path.join(HERE, "..", "baseline.sql")).read())
    reset(args)
    s0 = server_stats(args)
    STATEMENTS[0] = 0
    perf = start_perf(args.server_pids)
    srv0 = server_cpu_ms(args.server_pids)
    cpu0 = cpu_ms()
    workers = [WorkerProc(args, i) for i in range(W)]
    for w in workers:
        w.ready()

    t0 = now_ms()
    m_start = t0 + args.warmup * 1000
    run = Run(m_start, m_start + args.duration * 1000)

    async def requesters():
        if args.variant == "call":
            tasks = [req_call(args, i, run) for i in range(R)]
        elif args.variant == "inbox":
            tasks = [req_inbox(args, i, K, run) for i in range(R)]
        else:
            tasks = [req_baseline(args, i, K, run) for i in range(R)]
        await asyncio.wait_for(asyncio.gather(*tasks), args.warmup + args.duration + 60)

    failure = None
    try:
        asyncio.run(requesters())
    except BaseException as e:  # noqa: BLE001
        failure = e
    window = (min(now_ms(), run.m_end) - m_start) / 1000
    req_statements = STATEMENTS[0]
    req_cpu = cpu_ms() - cpu0
    wstats = []
    for w in workers:
        try:
            wstats.append(w.stop())
        except Exception as e:  # noqa: BLE001
            failure = failure or e
    fsyncs = stop_perf(perf)
    time.sleep(0.2)
    srv1 = server_cpu_ms(args.server_pids)
    s1 = server_stats(args)
    if failure:
        raise failure
    werr = [e for w in wstats for e in w.get("errors", [])]
    if werr:
        raise RuntimeError("worker errors: " + "; ".join(werr[:5]))

    lat = sorted(run.lat)
    total = run.total

    def pct(q):
        return round(lat[int((len(lat) - 1) * q)], 3) if lat else None

    def per(x, nd=3):
        return None if x is None or total == 0 else round(x / total, nd)
    statements = req_statements + sum(w.get("statements", 0) for w in wstats)
    out = {
        "system": args.system, "variant": args.variant, "shape": args.shape, "label": args.label,
        "driver": f"psycopg {psycopg.__version__}",
        "R": R, "K": K, "W": W, "payload_bytes": PAYLOAD_BYTES,
        "duration_s": round(window, 3), "count": len(lat), "rps": round(len(lat) / window, 1),
        "p50_ms": pct(0.5), "p90_ms": pct(0.9), "p99_ms": pct(0.99),
        "max_ms": round(lat[-1], 3) if lat else None,
        "mean_ms": round(sum(lat) / len(lat), 3) if lat else None,
        "total_round_trips": total,
        "statements_per_rt": per(statements),
        "commits_per_rt": per(s1["commits"] - s0["commits"]),
        "wal_bytes_per_rt": per(s1["wal_bytes"] - s0["wal_bytes"], 0),
        "wal_syncs_per_rt": per(s1["wal_sync"] - s0["wal_sync"]),
        "fsyncs_per_rt": per(fsyncs),
        "server_cpu_ms_per_rt": per(srv1 - srv0) if srv0 is not None and srv1 is not None else None,
        "requester_cpu_ms_per_rt": per(req_cpu),
        "worker_cpu_ms_per_rt": per(sum(w.get("cpu_ms", 0) for w in wstats)),
        "workers": [w.get("worker") for w in wstats],
    }
    print(json.dumps(out), flush=True)


def parse():
    ap = argparse.ArgumentParser()
    ap.add_argument("--system", required=True)
    ap.add_argument("--variant", required=True)
    ap.add_argument("--shape", default="A", choices=["A", "B"])
    ap.add_argument("--duration", type=float, default=10)
    ap.add_argument("--warmup", type=float, default=2)
    ap.add_argument("--pg", required=True)
    ap.add_argument("--amqp", default="")
    ap.add_argument("--nats", default="")
    ap.add_argument("--server-pids", default="")
    ap.add_argument("--label", default="")
    ap.add_argument("--role", default="main")
    ap.add_argument("--index", type=int, default=0)
    return ap.parse_args()


if __name__ == "__main__":
    a = parse()
    if a.role == "worker":
        worker_main(a)
    else:
        try:
            main(a)
        except BaseException as e:  # noqa: BLE001
            print(f"pybench {a.system}/{a.variant} {a.shape}: {type(e).__name__}: {e}", file=sys.stderr)
            sys.exit(1)

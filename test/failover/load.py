#!/usr/bin/python3
"""Load and checks for test/failover/run.sh: asyncrr under automatic
failover by pg_auto_failover.

  load.py load --dsn DSN --nodes P1,P2 --dir DIR [--requesters 3] [--workers 2]
      Requesters (durable inboxes "fo-r1"...) submit requests to queue "fo"
      and take replies; workers claim and complete (or fail, retry,
      ignore) them, as the payload asks.  Everyone connects with the
      multi-host DSN (target_session_attrs=read-write) and reconnects on
      failure.  A watcher polls each node directly (pg_stat_activity) for
      an asyncrr process on a node in recovery.  Runs until DIR/stop
      exists, then stops submitting and keeps working until the queue has
      no live request.  Each thread logs what the server acknowledged, in
      DIR/client-NAME.log:
        S id t          submit acknowledged at t (retried with the same id
                        after a connection loss: submit is idempotent)
        T id status     reply taken
        XT              a take was cut off: its replies may be taken unseen
        X id t|f        cancel() acknowledged, with its result
        C id token out  complete() acknowledged (out: completed, duplicate,
                        late); token is in the reply the worker sent
        F id out        fail() acknowledged (failed, retrying, dead_lettered,
                        duplicate, late)
        E id sqlstate   complete()/fail() refused (55000: the claim was lost)
        U text          an error nobody expected
        R t             reconnected at t (epoch seconds)

  load.py check --dsn DSN --dir DIR --logs PGLOGDIR --failovers FILE
      On the primary the DSN reaches (found with inet_server_port() and a
      write): waits until no request is live, takes every reply left in
      the inboxes, and checks that nothing acknowledged was lost, that no
      asyncrr worker ran on a standby, and that nothing was written while
      there was no primary.  Prints a report (and DIR/report.json); exits
      1 on any violation.
"""
import argparse
import collections
import datetime
import glob
import json
import os
import random
import re
import sys
import threading
import time
import uuid

import psycopg
from psycopg.types.json import Jsonb

QUEUE = "fo"
OPS = [("complete", 80), ("fail", 5), ("retry", 5), ("ignore", 5), ("cancel", 5)]
TIMEOUTS = [(3, 30), (5, 30), (10, 30), (20, 10)]


def weighted(choices):
    return random.choices([c for c, _ in choices], [w for _, w in choices])[0]


def connect(dsn, **kw):
    # ClientCursor: the simple query protocol, in which the server ends a
    # statement's answer (CommandComplete) only after its commit (with
    # synchronous replication: after the standby flushed it), and psycopg
    # returns only a complete answer.  An answer received is an
    # acknowledgement.
    return psycopg.connect(dsn, autocommit=True, cursor_factory=psycopg.ClientCursor, **kw)


def lost_connection(e):
    """Errors after which the connection is given up and made again: lost,
    or landed on a server that does not take writes (any more)."""
    return (isinstance(e, psycopg.OperationalError)
            or isinstance(e, psycopg.errors.ReadOnlySqlTransaction)
            or isinstance(e, psycopg.InterfaceError))


class Client(threading.Thread):
    def __init__(self, name, args, done, stopping):
        super().__init__(name=name, daemon=True)
        self.args = args
        self.done = done          # set: stop now
        self.stopping = stopping  # set: stop submitting, finish the work
        self.conn = None
        self.log = open(os.path.join(args.dir, f"client-{name}.log"), "a", buffering=1)
        self.reconnects = 0
        self.crashed = None

    def write(self, line):
        self.log.write(line + "\n")

    def connection(self):
        while self.conn is None and not self.done.is_set():
            try:
                c = connect(self.args.dsn, user=self.user, connect_timeout=2,
                            application_name=self.name)
                self.on_connect(c)
                self.conn = c
                self.reconnects += 1
                self.write(f"R {time.time():.3f}")
            except Exception as e:
                if not lost_connection(e):
                    raise
                time.sleep(0.1)
        return self.conn

    def drop(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:
                pass
        self.conn = None
        time.sleep(0.05)

    def on_connect(self, c):
        pass

    def run(self):
        try:
            self.body()
        except Exception as e:  # recorded, reported by check
            self.crashed = repr(e)
            self.write(f"U thread crashed: {e!r}")


class Requester(Client):
    user = "fo_requester"

    def __init__(self, *a):
        super().__init__(*a)
        self.inbox = "fo-" + self.name
        self.outstanding = set()
        self.unsent = None  # (ids, payloads, timeout): a submit not yet acknowledged
        self.to_cancel = []
        self.submitted = 0

    def on_connect(self, c):
        while True:
            try:
                c.execute("SELECT asyncrr.open_inbox(%s)", [self.inbox])
                return
            except psycopg.errors.ObjectInUse:
                time.sleep(0.1)  # our old backend on this server has not exited yet

    def take(self, c):
        try:
            rows = c.execute("SELECT correlation_id, status FROM asyncrr.take_replies(50)").fetchall()
        except Exception as e:
            if lost_connection(e):
                self.write("XT")
            raise
        for cid, status in rows:
            self.write(f"T {cid} {status}")
            self.outstanding.discard(str(cid))
        return len(rows)

    def submit(self, c):
        if self.unsent is None:
            n = 3 if random.random() < 0.2 else 1
            ids = [str(uuid.uuid4()) for _ in range(n)]
            payloads = [{"op": weighted(OPS), "n": self.submitted + i, "by": self.name}
                        for i in range(n)]
            self.unsent = (ids, payloads, weighted(TIMEOUTS))
        ids, payloads, timeout = self.unsent
        if len(ids) == 1:
            c.execute("SELECT asyncrr.submit(%s, %s, timeout => make_interval(secs => %s), correlation_id => %s)",
                      [QUEUE, Jsonb(payloads[0]), timeout, ids[0]]).fetchall()
        else:
            c.execute("SELECT asyncrr.submit_many(%s, %s::jsonb[], timeout => make_interval(secs => %s),"
                      " correlation_ids => %s::uuid[])",
                      [QUEUE, [json.dumps(p) for p in payloads], timeout, ids]).fetchall()
        for cid, p in zip(ids, payloads):
            self.write(f"S {cid} {time.time():.3f}")
            self.outstanding.add(cid)
            if p["op"] == "cancel":
                self.to_cancel.append(cid)
        self.submitted += len(ids)
        self.unsent = None

    def body(self):
        while not self.done.is_set():
            try:
                c = self.connection()
                if c is None:
                    break
                while self.to_cancel:
                    cid = self.to_cancel[0]
                    r = c.execute("SELECT asyncrr.cancel(%s)", [cid]).fetchone()[0]
                    self.write(f"X {cid} {'t' if r else 'f'}")
                    self.to_cancel.pop(0)
                if not self.stopping.is_set() and len(self.outstanding) < 30:
                    self.submit(c)
                    got = self.take(c)
                else:
                    got = self.take(c)
                    if got == 0:
                        time.sleep(0.05)
                time.sleep(0.01)
            except Exception as e:
                if not lost_connection(e):
                    raise
                self.drop()


class Worker(Client):
    user = "fo_worker"

    def __init__(self, *a, many=False):
        super().__init__(*a)
        self.many = many
        self.hand = []   # claimed rows not yet answered: (cid, op, attempt, token)

    def answer_one(self, c, cid, op, attempt, token):
        try:
            if op in ("complete", "cancel"):
                out = c.execute("SELECT asyncrr.complete(%s, %s, %s)",
                                [cid, Jsonb({"by": self.name, "attempt": attempt, "token": token}),
                                 attempt]).fetchone()[0]
                self.write(f"C {cid} {token} {out}")
            else:
                out = c.execute("SELECT asyncrr.fail(%s, %s, %s, retry => %s)",
                                [cid, f"asked to {op}", attempt, op == "retry"]).fetchone()[0]
                self.write(f"F {cid} {out}")
        except psycopg.errors.ObjectNotInPrerequisiteState as e:
            # 55000: the request is pending here: the claim was a lazy
            # commit that the failover undid, and nobody claimed it since
            self.write(f"E {cid} {e.sqlstate}")

    def answer(self, c):
        if self.many:
            batch = [h for h in self.hand if h[1] in ("complete", "cancel")]
            if len(batch) > 1:
                try:
                    rows = c.execute(
                        "SELECT correlation_id, outcome FROM asyncrr.complete_many(%s::uuid[], %s::jsonb[], %s::int[])",
                        [[h[0] for h in batch],
                         [json.dumps({"by": self.name, "attempt": h[2], "token": h[3]}) for h in batch],
                         [h[2] for h in batch]]).fetchall()
                    tokens = {h[0]: h[3] for h in batch}
                    for cid, out in rows:
                        self.write(f"C {cid} {tokens[str(cid)]} {out}")
                    self.hand = [h for h in self.hand if h not in batch]
                except psycopg.errors.ObjectNotInPrerequisiteState:
                    pass  # one of them lost its claim: answer them one by one
        while self.hand:
            self.answer_one(c, *self.hand[0])
            self.hand.pop(0)

    def body(self):
        while not self.done.is_set():
            try:
                c = self.connection()
                if c is None:
                    break
                if self.hand:
                    # answered again after a reconnect: complete() and fail()
                    # with the same attempt are idempotent (duplicate)
                    self.answer(c)
                c.execute("CALL asyncrr.wait_for_work(%s, '0.5 seconds')", [QUEUE])
                rows = c.execute("SELECT correlation_id, payload, attempt FROM asyncrr.claim(%s, 5, lease => '2 seconds', worker => %s)",
                                 [QUEUE, self.name]).fetchall()
                for cid, payload, attempt in rows:
                    if payload["op"] == "ignore":
                        continue  # the lease runs out; on the last attempt, a dead letter
                    self.hand.append((str(cid), payload["op"], attempt, uuid.uuid4().hex[:12]))
                self.answer(c)
            except Exception as e:
                if not lost_connection(e):
                    raise
                self.drop()


class Watcher(threading.Thread):
    """Polls each node directly: is an asyncrr process running while the
    node is in recovery?  (pg_is_in_recovery() after the look: a node still
    in recovery then was in recovery during it.)"""

    def __init__(self, args, done):
        super().__init__(name="watcher", daemon=True)
        self.args = args
        self.done = done
        self.log = open(os.path.join(args.dir, "watch.log"), "a", buffering=1)
        self.samples = collections.Counter()
        self.violations = []

    def run(self):
        conns = {}
        last = {}
        while not self.done.is_set():
            for port in self.args.nodes.split(","):
                try:
                    c = conns.get(port)
                    if c is None:
                        c = conns[port] = psycopg.connect(
                            f"host=127.0.0.1 port={port} dbname=app user=postgres connect_timeout=1",
                            autocommit=True, application_name="fo-watcher")
                    before = c.execute("SELECT pg_is_in_recovery()").fetchone()[0]
                    procs = c.execute("SELECT string_agg(backend_type || ':' || pid, ',') FROM pg_stat_activity"
                                      " WHERE backend_type IN ('asyncrr worker', 'asyncrr dispatcher')").fetchone()[0]
                    after = c.execute("SELECT pg_is_in_recovery()").fetchone()[0]
                    state = "standby" if after else ("primary" if not before else "promoting")
                    self.samples[state] += 1
                    if after and procs:
                        self.violations.append(f"{time.time():.3f} port {port} in recovery runs {procs}")
                        self.log.write(f"VIOLATION {self.violations[-1]}\n")
                    key = (state, bool(procs))
                    if last.get(port) != key:
                        self.log.write(f"{time.time():.3f} port {port} {state} asyncrr={procs or '-'}\n")
                        last[port] = key
                except Exception:
                    if port in conns and conns[port] is not None:
                        try:
                            conns[port].close()
                        except Exception:
                            pass
                    conns[port] = None
                    if last.get(port) != "down":
                        self.log.write(f"{time.time():.3f} port {port} down\n")
                        last[port] = "down"
            time.sleep(0.1)


def admin(dsn):
    """A connection to the primary, retried (at most 120 s)."""
    give_up = time.time() + 120
    while True:
        try:
            return connect(dsn, user="postgres", connect_timeout=2, application_name="fo-admin")
        except Exception as e:
            if not lost_connection(e) or time.time() > give_up:
                raise
            time.sleep(0.2)


def live_requests(dsn):
    while True:
        try:
            with admin(dsn) as c:
                return c.execute("SELECT count(*) FROM asyncrr.pending WHERE queue_name = %s", [QUEUE]).fetchone()[0]
        except Exception as e:
            if not lost_connection(e):
                raise
            time.sleep(0.2)


def cmd_load(args):
    done, stopping = threading.Event(), threading.Event()
    threads = [Requester(f"r{i}", args, done, stopping) for i in range(1, args.requesters + 1)]
    threads += [Worker(f"w{i}", args, done, stopping, many=(i % 2 == 0)) for i in range(1, args.workers + 1)]
    watcher = Watcher(args, done)
    for t in threads + [watcher]:
        t.start()
    stop_file = os.path.join(args.dir, "stop")
    while not os.path.exists(stop_file):
        time.sleep(0.2)
        if any(t.crashed for t in threads):
            break
    stopping.set()
    # finish the work: until no request is live (every timeout is <= 20 s)
    give_up = time.time() + 90
    while time.time() < give_up and not any(t.crashed for t in threads):
        if live_requests(args.dsn) == 0:
            break
        time.sleep(0.5)
    time.sleep(0.5)
    done.set()
    for t in threads:
        t.join(10)
    watcher.join(5)
    summary = {
        "reconnects": {t.name: t.reconnects - 1 for t in threads},
        "crashed": {t.name: t.crashed for t in threads if t.crashed},
        "watch_samples": dict(watcher.samples),
        "watch_violations": watcher.violations,
    }
    with open(os.path.join(args.dir, "load.json"), "w") as f:
        json.dump(summary, f)
    return 1 if summary["crashed"] else 0


# ----------------------------------------------------------------------
# check
# ----------------------------------------------------------------------
LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) (\S+) \[(\d+)\] (\w+):  (.*)$")


def parse_ts(s):
    return datetime.datetime.strptime(s + " +0000", "%Y-%m-%d %H:%M:%S.%f %z").timestamp()


def read_server_logs(logdir):
    """Every postmaster lifetime of the data nodes (log_directory is shared;
    log_filename names a file by start time, and a lifetime's file says which
    port it serves).  Returns [{port, start, lines: [(t, pid, level, msg)]}]."""
    lives = []
    for path in sorted(glob.glob(os.path.join(logdir, "*.log"))):
        life = None
        with open(path, errors="replace") as f:
            for raw in f:
                m = LOG_LINE.match(raw.rstrip("\n"))
                if not m:
                    continue
                t, _tz, pid, level, msg = m.groups()
                t = parse_ts(t)
                if msg.startswith("starting PostgreSQL"):
                    life = {"file": os.path.basename(path), "port": None, "start": t, "pm": pid, "lines": []}
                    lives.append(life)
                if life is None:
                    continue
                if life["port"] is None:
                    pm = re.search(r'listening on .*port (\d+)|\.s\.PGSQL\.(\d+)"', msg)
                    if pm:
                        life["port"] = pm.group(1) or pm.group(2)
                life["lines"].append((t, pid, level, msg))
    return lives


def analyse_lives(lives):
    """Per lifetime: standby or not, when it was promoted, when it was ready
    for connections, when the asyncrr worker started.  Violation: in a
    lifetime that began in standby mode, a worker start before recovery
    ended ("archive recovery complete", logged by the startup process before
    it exits; the postmaster then starts the workers registered for
    BgWorkerStart_RecoveryFinished, and only then logs "ready to accept
    connections", so the worker may log before that line)."""
    out, violations = [], []
    for life in lives:
        info = {"port": life["port"], "start": life["start"], "file": life["file"], "standby": False,
                "promote_request": None, "promoted": None, "recovery_end": None, "ready": None, "worker_starts": [],
                "read_only_on": [], "read_only_off": [], "worker_read_only_errors": []}
        pids = set()
        for t, pid, level, msg in life["lines"]:
            if msg.startswith("entering standby mode"):
                info["standby"] = True
            elif msg.startswith("received promote request"):
                info["promote_request"] = info["promote_request"] or t
            elif msg.startswith("selected new timeline ID"):
                info["promoted"] = info["promoted"] or t
            elif msg == "archive recovery complete":
                info["recovery_end"] = info["recovery_end"] or t
            elif msg == "database system is ready to accept connections":
                info["ready"] = info["ready"] or t
            elif msg.startswith("asyncrr worker started"):
                info["worker_starts"].append(t)
                pids.add(pid)
                if info["standby"] and (info["recovery_end"] is None or t < info["recovery_end"]
                                        or info["promoted"] is None or t < info["promoted"]):
                    violations.append(f"port {life['port']} ({life['file']}): asyncrr worker started at "
                                      f"{t:.3f} on a standby before its promotion ended recovery")
            elif msg == 'parameter "default_transaction_read_only" changed to "on"':
                info["read_only_on"].append(t)
            elif msg == 'parameter "default_transaction_read_only" changed to "off"':
                info["read_only_off"].append(t)
            elif pid in pids and level == "ERROR" and "read-only transaction" in msg:
                info["worker_read_only_errors"].append(t)
        out.append(info)
    return out, violations


def read_client_logs(d):
    ev = collections.defaultdict(list)
    for path in sorted(glob.glob(os.path.join(d, "client-*.log"))):
        name = os.path.basename(path)[len("client-"):-len(".log")]
        with open(path) as f:
            for line in f:
                parts = line.split()
                if parts:
                    ev[parts[0]].append((name, parts[1:]))
    return ev


def identify_primary(dsn):
    """The server the multi-host DSN reaches for writes: its port, proven
    by a write."""
    with admin(dsn) as c:
        c.execute("CREATE TABLE IF NOT EXISTS fo_check (at timestamptz, port int)")
        return c.execute("INSERT INTO fo_check VALUES (now(), inet_server_port()) RETURNING port").fetchone()[0]


def drain(dsn, inbox):
    taken = []
    while True:
        try:
            with connect(dsn, user="fo_requester", connect_timeout=2, application_name="fo-drain") as c:
                while True:
                    try:
                        c.execute("SELECT asyncrr.open_inbox(%s)", [inbox])
                        break
                    except psycopg.errors.ObjectInUse:
                        time.sleep(0.2)
                while True:
                    rows = c.execute("SELECT correlation_id, status FROM asyncrr.take_replies(1000)").fetchall()
                    if not rows:
                        return taken
                    taken += [(str(cid), st) for cid, st in rows]
        except Exception as e:
            if not lost_connection(e):
                raise
            time.sleep(0.2)


def pause(times, k):
    """The pause in acknowledgements that the failover made: the gap between
    consecutive times around k + 1 s (nothing can be acknowledged between
    the kill, give or take a reply already on its way, and the promotion)."""
    before = [t for t in times if t <= k + 1]
    after = [t for t in times if t > k + 1]
    return (before[-1], after[0]) if before and after else None


def rel_pair(p, rel):
    return None if p is None else [rel(p[0]), rel(p[1])]


def cmd_check(args):
    problems = []   # violations: any of them fails the run

    port = identify_primary(args.dsn)
    give_up = time.time() + 90
    while live_requests(args.dsn) and time.time() < give_up:
        time.sleep(0.5)

    ev = read_client_logs(args.dir)
    requesters = sorted({n for n, _ in ev["S"]})
    drained = {}
    for r in requesters:
        drained[r] = drain(args.dsn, "fo-" + r)
    with open(os.path.join(args.dir, "client-drain.log"), "w") as f:
        for r, rows in drained.items():
            for cid, st in rows:
                f.write(f"T {cid} {st}\n")
    ev = read_client_logs(args.dir)

    submitted = {a[0]: n for n, a in ev["S"]}
    ack_times = sorted(float(a[1]) for n, a in ev["S"])
    taken, dup_takes = {}, 0
    for n, (cid, st) in ev["T"]:
        if cid in taken:
            dup_takes += 1
            problems.append(f"reply {cid} was handed out twice")
        taken[cid] = st
    cut_takes = len(ev["XT"])
    completed_acks = collections.defaultdict(list)   # id -> tokens acknowledged 'completed'
    complete_outcomes = collections.Counter()
    for n, (cid, token, out) in ev["C"]:
        complete_outcomes[out] += 1
        if out == "completed":
            completed_acks[cid].append(token)
    fail_acks = {}
    fail_outcomes = collections.Counter()
    for n, (cid, out) in ev["F"]:
        fail_outcomes[out] += 1
        if out in ("failed", "dead_lettered"):
            if cid in fail_acks:
                problems.append(f"request {cid}: two fail() acknowledged as {fail_acks[cid]} and {out}")
            fail_acks[cid] = out
    cancel_acks = {cid: r for n, (cid, r) in ev["X"]}
    refused = collections.Counter(a[1] for n, a in ev["E"])
    unexpected = [" ".join(a) for n, a in ev["U"]]
    for u in unexpected:
        problems.append(f"client error: {u}")

    with admin(args.dsn) as c:
        rows = c.execute("""
            SELECT id::text, count(s.correlation_id), min(s.state), min(s.reply::text),
                   bool_and(r.taken_at IS NOT NULL), bool_and(s.state <> 'timed_out' OR s.finished_at >= s.deadline),
                   min(s.dead_letter_reason), min(r.inbox_name)
              FROM unnest(%s::uuid[]) id
              LEFT JOIN LATERAL asyncrr.status(id) s ON true
              LEFT JOIN asyncrr.request r ON r.correlation_id = id
             GROUP BY id""", [list(submitted)]).fetchall()
        server = {r[0]: r for r in rows}
        total_rows = c.execute("SELECT count(*) FROM asyncrr.request").fetchone()[0]
        dead_letters = dict(c.execute("SELECT reason, count(*) FROM asyncrr.dead_letter GROUP BY 1").fetchall())
        failovers = [json.loads(l) for l in open(args.failovers)] if os.path.exists(args.failovers) else []
        lives, log_violations = analyse_lives(read_server_logs(args.logs))
        problems += log_violations
        windows = []
        for fo in failovers:
            # the promoted node's lifetime that spans the failover
            life = next((l for l in lives if l["port"] == str(fo["new_port"]) and l["promoted"]
                         and l["promoted"] > fo["kill"]), None)
            fo["life"] = life
            if life is None:
                problems.append(f"failover {fo['n']}: no promotion of port {fo['new_port']} found in the server logs")
                continue
            writable = min([t for t in life["read_only_off"] if t >= life["promoted"]]
                           or [life["ready"] or life["promoted"]])
            fo["writable"] = writable
            windows.append((fo["kill"], writable))
        for fo in failovers:
            if "writable" not in fo:
                continue
            # requests whose deadline came while no server could end them:
            # ended by the promoted node's worker, how long after it could
            fo["due"] = c.execute("""
                SELECT count(*), max(extract(epoch FROM finished_at) - %s)
                  FROM asyncrr.request
                 WHERE state = 'timed_out' AND deadline > to_timestamp(%s) AND deadline < to_timestamp(%s)""",
                [fo["writable"], fo["kill"], fo["writable"]]).fetchone()
        for kill, writable in windows:
            n = c.execute("""
                SELECT count(*) FROM (
                  SELECT unnest(ARRAY[submitted_at, claimed_at, finished_at, taken_at]) t FROM asyncrr.request
                  UNION ALL SELECT dead_lettered_at FROM asyncrr.dead_letter
                  UNION ALL SELECT unnest(ARRAY[opened_at, released_at]) FROM asyncrr.inbox) s
                 WHERE t > to_timestamp(%s) AND t < to_timestamp(%s)""", [kill, writable]).fetchone()[0]
            if n:
                problems.append(f"{n} asyncrr timestamps between the kill ({kill:.3f}) and the promoted node "
                                f"accepting writes ({writable:.3f})")

    # --- requests and replies
    outcomes = collections.Counter()
    lost_requests, not_terminal, lost_replies, bad_dl = [], [], [], []
    for cid in submitted:
        r = server.get(cid)
        if r is None or r[1] == 0:
            lost_requests.append(cid)
            continue
        _, nrows, state, reply, taken_flag, not_early, dl_reason, inbox = r
        outcomes[state] += 1
        if nrows != 1:
            problems.append(f"request {cid}: {nrows} rows in asyncrr.status()")
        if state in ("pending", "claimed"):
            not_terminal.append(cid)
        if not not_early:
            problems.append(f"request {cid} timed out before its deadline")
        if not taken_flag:
            problems.append(f"request {cid}: reply ({state}) still in inbox {inbox} after the drain")
        if cid in taken and taken[cid] != state:
            problems.append(f"request {cid}: taken as {taken[cid]}, status() says {state}")
        want_dl = {"timed_out": "timeout", "dead_lettered": "max_attempts"}.get(state)
        if (want_dl is None and dl_reason is not None) or (want_dl and not (dl_reason or "").startswith(want_dl)):
            bad_dl.append(f"{cid} {state} dead letter {dl_reason}")
        toks = completed_acks.get(cid, [])
        if len(set(toks)) > 1:
            problems.append(f"request {cid}: complete() acknowledged 'completed' for {len(set(toks))} different replies")
        if toks:
            got = json.loads(reply)["token"] if reply and state == "completed" else None
            if state != "completed" or got not in toks:
                lost_replies.append(f"{cid}: completed with token {toks[0]}, now {state} reply {reply}")
        if cid in fail_acks and state != fail_acks[cid]:
            lost_replies.append(f"{cid}: fail() acknowledged {fail_acks[cid]}, now {state}")
        if cancel_acks.get(cid) == "t" and state != "cancelled":
            lost_replies.append(f"{cid}: cancel() acknowledged, now {state}")
    for cid in lost_requests:
        problems.append(f"LOST REQUEST {cid} (submit acknowledged to {submitted[cid]})")
    for cid in not_terminal:
        problems.append(f"request {cid} never reached a terminal outcome ({server[cid][2]})")
    for x in lost_replies:
        problems.append(f"LOST OUTCOME {x}")
    for x in bad_dl:
        problems.append(f"dead letter mismatch: {x}")
    unseen = [cid for cid in submitted if cid not in taken and server.get(cid) and server[cid][4]]
    if len(unseen) > 50 * cut_takes:
        problems.append(f"{len(unseen)} replies taken but never seen, from only {cut_takes} takes cut off")

    load = json.load(open(os.path.join(args.dir, "load.json"))) if os.path.exists(os.path.join(args.dir, "load.json")) else {}
    for v in load.get("watch_violations", []):
        problems.append(f"asyncrr process on a standby: {v}")
    for n, e in load.get("crashed", {}).items():
        problems.append(f"client {n} crashed: {e}")

    # --- report
    report = {
        "final_primary_port": port,
        "submitted": len(submitted), "outcomes": dict(outcomes), "rows_on_server": total_rows,
        "dead_letters": dead_letters,
        "taken_by_clients": len(taken), "taken_unseen": len(unseen), "takes_cut_off": cut_takes,
        "duplicate_takes": dup_takes,
        "complete_acks": dict(complete_outcomes), "fail_acks": dict(fail_outcomes),
        "cancel_acks": dict(collections.Counter(cancel_acks.values())),
        "complete_fail_refused": dict(refused),
        "reconnects": load.get("reconnects"), "watch_samples": load.get("watch_samples"),
        "failovers": [], "problems": problems,
    }
    for fo in failovers:
        life = fo.pop("life", None) or {}
        k = fo["kill"]

        def rel(t):
            return None if t is None else round(t - k, 2)
        due = fo.get("due") or (0, None)
        report["failovers"].append({
            "n": fo["n"], "killed_port": fo["old_port"], "promoted_port": fo["new_port"],
            "promote_request_s": rel(life.get("promote_request")), "promoted_s": rel(life.get("promoted")),
            "ready_s": rel(life.get("ready")),
            "worker_started_s": rel(next((t for t in sorted(life.get("worker_starts", [])) if t > k), None)),
            "writable_s": rel(fo.get("writable")),
            "worker_read_only_errors": len(life.get("worker_read_only_errors", [])),
            "first_write_s": rel(fo["write"]),
            # the pause in submit acknowledgements around the kill
            "submit_pause_s": rel_pair(pause(ack_times, k), rel),
            "timed_out_while_no_primary": due[0],
            "their_end_after_writable_max_s": None if due[1] is None else round(float(due[1]), 3),
            "rejoined_s": rel(fo.get("rejoin")), "rejoined_by": fo.get("rejoin_via"),
        })
    with open(os.path.join(args.dir, "report.json"), "w") as f:
        json.dump(report, f, indent=1, default=str)

    print(f"final primary: port {port} (identified by inet_server_port() and a write)")
    cols = [("promote_request_s", "promote"), ("promoted_s", "new TLI"), ("worker_started_s", "worker"),
            ("writable_s", "writable"), ("first_write_s", "1st write"), ("rejoined_s", "rejoined")]
    print("failover  killed->promoted  " + "  ".join(f"{h:>9}" for _, h in cols)
          + "      no submit acked  RO-errors  due  rejoined by")
    for f in report["failovers"]:
        p = f["submit_pause_s"] or ["?", "?"]
        print(f"  {f['n']:>3}     {f['killed_port']}->{f['promoted_port']}  "
              + "  ".join(f"{f[c]!s:>8}s" for c, _ in cols)
              + f"  {p[0]:>7}s .. {p[1]:>5}s  {f['worker_read_only_errors']:>9}  {f['timed_out_while_no_primary']:>3}"
              + f"  {f['rejoined_by']}")
    print("  seconds after the kill: the monitor's promote request, new timeline (recovery ends), asyncrr\n"
          "  worker started, promoted node writable (pg_autoctl lifts default_transaction_read_only), first\n"
          "  write through the multi-host DSN, old primary back as secondary; the pause in submit\n"
          "  acknowledgements around the kill.\n"
          "  RO-errors: asyncrr worker passes refused as read-only before 'writable'. due: requests whose\n"
          "  deadline came while no node could write; the new primary's worker timed them out at most "
          + ", ".join(f"{f['their_end_after_writable_max_s']}s" for f in report["failovers"])
          + " after 'writable'.")
    print(f"requests acknowledged: {len(submitted)}; outcomes: "
          + ", ".join(f"{k}={v}" for k, v in sorted(outcomes.items())))
    print(f"replies taken: {len(taken)} seen by clients (+{len(unseen)} taken unseen, {cut_takes} takes cut off), "
          f"{dup_takes} twice")
    print("complete() acks: " + ", ".join(f"{k}={v}" for k, v in sorted(complete_outcomes.items()))
          + "; fail() acks: " + ", ".join(f"{k}={v}" for k, v in sorted(fail_outcomes.items()))
          + f"; cancel() acks: {dict(collections.Counter(cancel_acks.values()))}"
          + f"; refused (claim lost): {dict(refused)}")
    print(f"dead letters: {dead_letters}; client reconnects: {load.get('reconnects')}")
    print(f"standby watch: {load.get('watch_samples')} samples, "
          f"{len(load.get('watch_violations', []))} with an asyncrr process on a node in recovery")
    print(f"lost requests: {len(lost_requests)}; lost outcomes/replies: {len(lost_replies)}; "
          f"not terminal: {len(not_terminal)}")
    if problems:
        print(f"FAILED: {len(problems)} problems")
        for p in problems[:50]:
            print("  " + p)
        return 1
    print("OK: no acknowledged request or reply lost; the asyncrr worker ran only on the primary")
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["load", "check"])
    ap.add_argument("--dsn", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--nodes", default="")
    ap.add_argument("--requesters", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--logs", default="")
    ap.add_argument("--failovers", default="")
    args = ap.parse_args()
    sys.exit(cmd_load(args) if args.mode == "load" else cmd_check(args))


if __name__ == "__main__":
    main()

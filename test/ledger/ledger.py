#!/usr/bin/python3
"""The crash ledger: asyncrr's promise, checked against what the server
acknowledged while it was being killed.

  ledger.py run --dsn DSN --pgdata DIR --pglog FILE --bindir DIR --workdir DIR
                [--kills N] [--gap MIN:MAX] [--requesters N] [--workers M]
                [--seed S] [--margin SECONDS] [--queue NAME]

The conductor (run) needs a running cluster with asyncrr preloaded and its
worker on the database of DSN (a superuser's), and must run as the OS user
that owns PGDATA: it stops and starts the cluster itself with pg_ctl.  It
creates the extension if needed, roles ledger_requester and ledger_worker,
and queue NAME (default "led"), then starts client processes of this same
file (ledger.py client ...), each writing its own ledger in
WORKDIR/ledger/, one JSON object a line, written with one write(2) each so
that a SIGKILL loses nothing written:

  requesters  durable  durable inbox "led-NAME", take_replies() after each
                       submit (sometimes submit_many), cancels some; a new
                       process (after a kill) or a reconnect (after a crash)
                       reopens the inbox and takes what waited; a submit cut
                       off by a crash is retried with the same id
              session  a session inbox, take_replies(), cancels some; after
                       a reconnect a new session inbox (the old replies
                       become requester_gone dead letters)
              call     CALL asyncrr.call with its own correlation id; one
                       cut off by a crash is called again with the same id
              waitd    submit, then CALL asyncrr.wait_for_reply, durable
                       inbox "led-NAME" (reconnects and takes what waited)
              waits    the same with a session inbox
  workers     claim with wait (claimw) or wait_for_work + claim (claimn);
              complete / complete_many (with and without attempt), fail,
              fail with retry (dead letter after max_attempts), holding a
              request past its lease or deadline, dropping it.

Each request's payload says what the worker does with it ("plan"), and
timeouts are 1 to 4 s with a 1 s lease, so that timeouts, lease expiries,
late replies, retries and dead letters happen all the time.

Meanwhile the conductor makes --kills kills, --gap seconds apart, of three
kinds in turn (shuffled): "immediate" (pg_ctl stop -m immediate, then
start), "backend" (SIGKILL of a random process of pg_stat_activity: a
client's backend, the asyncrr worker or dispatcher, the checkpointer...;
the postmaster then restarts the cluster), "client" (SIGKILL of a random
client process, and a new one in its place).  Between kills it watches for
live requests past deadline + asyncrr.precision + margin.

Then the load stops (SIGTERM: requesters stop submitting and take what
they wait for), the cluster settles (the background worker times out what
is left), every durable inbox is drained, and the ledger is checked against
asyncrr.request, asyncrr.status(), the dead letters, asyncrr.waiters,
asyncrr.inboxes, pg_stat_activity and the server log.  An operation whose
start is in the ledger and whose end is not (cut off by a crash or a kill)
is "uncertain": it may or may not have happened on the server, and is
checked as such.  Prints a report; exits 1 if anything failed, 2 if the
run itself could not be made.
"""
import argparse
import collections
import json
import os
import random
import select
import signal
import subprocess
import sys
import time
import uuid

import psycopg
from psycopg import conninfo as pg_conninfo
from psycopg.types.json import Jsonb

TERMINAL = ("completed", "failed", "timed_out", "cancelled", "dead_lettered")
LIVE = ("pending", "claimed")
REQUESTER_KINDS = ("durable", "session", "call", "waitd", "waits")
WORKER_KINDS = ("claimw", "claimn")
DURABLE_KINDS = ("durable", "waitd")
REQ_ROLE = "ledger_requester"
WRK_ROLE = "ledger_worker"
# how far the server's time of a take or an outcome may stray from the
# client's window around the call (same host clock; commit and scheduling)
SLACK = 0.5


# ----------------------------------------------------------------------
# The ledger files
# ----------------------------------------------------------------------
class Ledger:
    """Appends one JSON object a line, in one write(2) each."""

    def __init__(self, path, **base):
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.base = base

    def log(self, op, **kw):
        rec = dict(self.base)
        rec["op"] = op
        rec["t"] = round(time.time(), 6)
        rec.update(kw)
        os.write(self.fd, (json.dumps(rec, separators=(",", ":")) + "\n").encode())


class Lost(Exception):
    """The connection went away (server crash, backend killed)."""


def is_cut(conn, e):
    """Was this error the loss of the connection, rather than an answer?"""
    if conn is None or conn.broken or conn.closed:
        return True
    st = getattr(e, "sqlstate", None)
    if st is None:
        return isinstance(e, (psycopg.OperationalError, psycopg.InterfaceError))
    return st.startswith("08") or st in ("57P01", "57P02", "57P03")


def reply_id(reply):
    return reply.get("id") if isinstance(reply, dict) else None


# ----------------------------------------------------------------------
# Clients
# ----------------------------------------------------------------------
class Client:
    def __init__(self, a):
        self.a = a
        self.kind = a.kind
        self.name = a.name
        self.rnd = random.Random(a.seed)
        self.L = Ledger(a.ledger, c=a.name, g=a.gen, k=a.kind)
        self.seq = 0
        self.conn = None
        self.inbox = None
        self.stopping = False
        self.stop_deadline = None
        self.outstanding = {}       # acknowledged, reply not yet taken: id -> plan
        self.unsent = None          # durable: a submit cut off, retried with its ids
        self.unsent_call = None     # call: a call cut off, called again with its id
        self.counter = 0
        self.notified = 0
        self.prev_inbox = None
        self.taken = set()          # ids whose reply this process took
        signal.signal(signal.SIGTERM, self._term)

    def _term(self, *_):
        if not self.stopping:
            self.stopping = True
            self.stop_deadline = time.time() + 12

    # -- operations: start, then end / cut / err, all with the same seq --
    def start(self, op, **kw):
        self.seq += 1
        self.L.log(op, ph="start", seq=self.seq, **kw)
        return self.seq

    def run(self, op, seq, fn, **kw):
        """fn() on the connection; a cut connection is logged and raises Lost."""
        try:
            return fn()
        except psycopg.Error as e:
            if is_cut(self.conn, e):
                self.L.log(op, ph="cut", seq=seq, msg=str(e).strip()[:200], **kw)
                self.drop_conn()
                raise Lost() from e
            self.L.log(op, ph="err", seq=seq, sqlstate=e.sqlstate,
                       msg=str(e).strip().splitlines()[0][:300] if str(e).strip() else "", **kw)
            raise

    def drop_conn(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:
                pass
        self.conn = None

    def connect(self, role):
        dsn = pg_conninfo.make_conninfo(self.a.dsn, user=role,
                                        application_name=f"ledger-{self.name}",
                                        connect_timeout=5)
        while True:
            try:
                c = psycopg.connect(dsn, autocommit=True)
                c.add_notify_handler(self._notify)
                self.conn = c
                return c
            except psycopg.Error:
                if self.stopping and time.time() > self.stop_deadline:
                    raise SystemExit(0)
                time.sleep(0.2)

    def _notify(self, n):
        self.notified += 1

    def idle(self, secs):
        """Sleeps, waking early when the server sends something (a notification)."""
        if self.conn is None:
            time.sleep(secs)
            return
        try:
            select.select([self.conn.fileno()], [], [], secs)
        except (OSError, ValueError, psycopg.Error):
            time.sleep(secs)

    def new_plan(self, call=False):
        r = self.rnd.random()
        if call:
            plans = (("ok", .62), ("fail", .1), ("retry", .1), ("slow", .1), ("drop", .08))
        else:
            plans = (("ok", .55), ("fail", .08), ("retry", .08), ("slow", .11), ("drop", .06),
                     ("cancel", .12))
        for p, w in plans:
            if r < w:
                break
            r -= w
        hold = round(self.rnd.uniform(0.2, 2.5) if p == "slow" else self.rnd.uniform(0.3, 1.5), 2)
        self.counter += 1
        return p, {"plan": p, "hold": hold, "n": self.counter, "from": self.name}

    def new_timeout(self):
        return self.rnd.choice((1, 1.5, 2, 3, 4))

    # -- requesters --
    def open_inbox(self):
        durable = self.kind in DURABLE_KINDS
        want = f"led-{self.name}" if durable else None
        seq = self.start("open", inbox=want)
        give_up = time.time() + 30
        while True:
            try:
                ch = self.run("open", seq, lambda: self.conn.execute(
                    "SELECT asyncrr.open_inbox(%s)", [want]).fetchone()[0])
                break
            except psycopg.errors.ObjectInUse:
                # our old backend (killed process, or a crash) has not gone yet
                if time.time() > give_up:
                    raise
                time.sleep(0.1)
                seq = self.start("open", inbox=want)
        self.inbox = ch[len("asyncrr."):]
        self.L.log("open", ph="end", seq=seq, inbox=self.inbox, pid=self.conn.info.backend_pid)
        if not durable and self.outstanding:
            # the old session is gone with its inbox: those replies are not ours now
            self.L.log("abandon", ids=sorted(self.outstanding), inbox_was=self.prev_inbox)
            self.outstanding.clear()
        self.prev_inbox = self.inbox

    def connect_requester(self):
        self.connect(self.a.req_role)
        if self.kind == "call":
            return
        self.open_inbox()
        if self.kind in DURABLE_KINDS:
            # take what waited while we were away
            while self.take(100) == 100:
                pass
            if self.unsent is not None:
                self.submit(*self.unsent)

    def submit(self, ids=None, plans=None, timeout=None):
        if ids is None:
            n = self.rnd.randint(2, 4) if (self.kind == "durable" and self.rnd.random() < 0.2) else 1
            ids, plans = [], []
            for _ in range(n):
                _, payload = self.new_plan()
                ids.append(str(uuid.uuid4()))
                plans.append(payload)
            timeout = self.new_timeout()
        retry = self.unsent is not None
        if self.kind in DURABLE_KINDS:
            self.unsent = (ids, plans, timeout)
        seq = self.start("submit", ids=ids, inbox=self.inbox, plans=[p["plan"] for p in plans],
                         timeout=timeout, retry=retry)
        q = self.a.queue
        try:
            got = self.submit_sql(q, ids, plans, timeout, seq)
        except psycopg.Error:
            self.unsent = None          # an answer (logged as err): nothing to retry
            raise
        got = [str(x) for x in got]
        self.unsent = None
        self.L.log("submit", ph="end", seq=seq, ids=got, inbox=self.inbox)
        for i, p in zip(got, plans):
            # a retried submit whose first try had committed returns the id
            # again, even if its reply was taken since (after the reconnect)
            if i not in self.taken:
                self.outstanding[i] = (p["plan"], time.time())
        return got

    def submit_sql(self, q, ids, plans, timeout, seq):
        if len(ids) == 1:
            got = self.run("submit", seq, lambda: [self.conn.execute(
                "SELECT asyncrr.submit(%s, %s, timeout => %s::interval, correlation_id => %s::uuid)",
                [q, Jsonb(plans[0]), f"{timeout} seconds", ids[0]]).fetchone()[0]])
        else:
            got = self.run("submit", seq, lambda: [r[0] for r in self.conn.execute(
                "SELECT * FROM asyncrr.submit_many(%s, %s::jsonb[], timeout => %s::interval,"
                " correlation_ids => %s::uuid[])",
                [q, [Jsonb(p) for p in plans], f"{timeout} seconds", ids]).fetchall()])
        return got

    def take(self, limit):
        seq = self.start("take", inbox=self.inbox, limit=limit)
        t0 = time.time()
        rows = self.run("take", seq, lambda: self.conn.execute(
            "SELECT correlation_id, status, reply FROM asyncrr.take_replies(%s)", [limit]).fetchall(),
            inbox=self.inbox)
        out = [[str(i), s, reply_id(r)] for i, s, r in rows]
        self.L.log("take", ph="end", seq=seq, inbox=self.inbox, t0=t0, rows=out)
        for i, _, _ in out:
            self.outstanding.pop(i, None)
            self.taken.add(i)
        return len(out)

    def cancel(self):
        now = time.time()
        due = [i for i, (p, t) in self.outstanding.items() if p == "cancel" and now - t > 0.3]
        if not due and self.rnd.random() < 0.3:
            due = list(self.outstanding)
        if not due:
            return
        cid = self.rnd.choice(sorted(due))
        seq = self.start("cancel", id=cid)
        t0 = time.time()
        r = self.run("cancel", seq, lambda: self.conn.execute(
            "SELECT asyncrr.cancel(%s::uuid)", [cid]).fetchone()[0], id=cid)
        self.L.log("cancel", ph="end", seq=seq, id=cid, t0=t0, result=r)
        if self.outstanding.get(cid, ("", 0))[0] == "cancel":
            self.outstanding[cid] = ("cancelled", self.outstanding[cid][1])

    def wait(self, cid, timeout):
        seq = self.start("wait", id=cid, inbox=self.inbox, timeout=timeout)
        t0 = time.time()
        try:
            row = self.run("wait", seq, lambda: self.conn.execute(
                "CALL asyncrr.wait_for_reply(%s::uuid, %s::interval)",
                [cid, f"{timeout} seconds"]).fetchone(), id=cid)
        except psycopg.Error:
            self.outstanding.pop(cid, None)       # e.g. "already taken": logged as err
            raise
        status, reply, _ = row
        self.L.log("wait", ph="end", seq=seq, id=cid, inbox=self.inbox, t0=t0, status=status,
                   rid=reply_id(reply))
        if status in TERMINAL:
            self.outstanding.pop(cid, None)
            self.taken.add(cid)

    def call(self):
        if self.unsent_call is not None:
            cid, payload, timeout, tries = self.unsent_call
        else:
            _, payload = self.new_plan(call=True)
            cid, timeout, tries = str(uuid.uuid4()), self.new_timeout(), 0
        self.unsent_call = (cid, payload, timeout, tries + 1) if tries < 3 else None
        seq = self.start("call", id=cid, plan=payload["plan"], timeout=timeout, retry=tries)
        t0 = time.time()
        try:
            row = self.run("call", seq, lambda: self.conn.execute(
                "CALL asyncrr.call(%s, %s, timeout => %s::interval, correlation_id => %s::uuid)",
                [self.a.queue, Jsonb(payload), f"{timeout} seconds", cid]).fetchone(), id=cid)
        except psycopg.Error:
            self.unsent_call = None     # an answer (logged as err): nothing to call again
            raise
        self.unsent_call = None
        rid, status, reply, _ = row
        self.L.log("call", ph="end", seq=seq, id=str(rid), t0=t0, status=status, rid=reply_id(reply))

    def requester(self):
        kind = self.kind
        while True:
            if self.stopping:
                # a durable inbox keeps its replies for later (the drain); a
                # session inbox must be emptied before its session ends
                if kind in ("call",) + DURABLE_KINDS or not self.outstanding or \
                        time.time() > self.stop_deadline:
                    break
            try:
                if self.conn is None:
                    self.connect_requester()
                if kind == "call":
                    self.call()
                    time.sleep(self.rnd.uniform(0, 0.05))
                elif kind in ("durable", "session"):
                    if not self.stopping and len(self.outstanding) < 8:
                        self.submit()
                    if self.outstanding and self.rnd.random() < 0.15:
                        self.cancel()
                    self.take(self.rnd.randint(1, 20))
                    self.idle(self.rnd.uniform(0.01, 0.08))
                else:
                    if not self.stopping and len(self.outstanding) < 3:
                        self.submit()
                    if self.outstanding:
                        cid = self.rnd.choice(sorted(self.outstanding))
                        self.wait(cid, self.rnd.choice((0.3, 1, 2, 5)))
            except Lost:
                time.sleep(0.2)
            except psycopg.Error:
                if self.conn is not None and (self.conn.broken or self.conn.closed):
                    self.drop_conn()
                time.sleep(0.05)
        self.L.log("exit", left=sorted(self.outstanding), inbox=self.inbox,
                   connected=self.conn is not None, notified=self.notified)

    # -- workers --
    def worker(self):
        q = self.a.queue
        label = f"{self.name}.{self.a.gen}"
        while not self.stopping:
            try:
                if self.conn is None:
                    self.connect(self.a.wrk_role)
                k = self.rnd.randint(1, 5)
                lease = None if self.rnd.random() < 0.7 else "2 seconds"
                if self.kind == "claimw":
                    seq = self.start("claim", wait=True)
                    rows = self.run("claim", seq, lambda: self.conn.execute(
                        "SELECT correlation_id, payload, attempt FROM asyncrr.claim(%s, %s,"
                        " lease => %s::interval, worker => %s, wait => '0.5 seconds')",
                        [q, k, lease, label]).fetchall())
                else:
                    seq = self.start("claim", wait=False)
                    ready = self.run("claim", seq, lambda: self.conn.execute(
                        "CALL asyncrr.wait_for_work(%s, '0.5 seconds')", [q]).fetchone()[0])
                    rows = []
                    if ready:
                        rows = self.run("claim", seq, lambda: self.conn.execute(
                            "SELECT correlation_id, payload, attempt FROM asyncrr.claim(%s, %s,"
                            " lease => %s::interval, worker => %s)",
                            [q, k, lease, label]).fetchall())
                self.L.log("claim", ph="end", seq=seq,
                           got=[[str(i), a, p.get("plan")] for i, p, a in rows])
                self.work([(str(i), p, a) for i, p, a in rows])
            except Lost:
                time.sleep(0.2)
            except psycopg.Error:
                if self.conn is not None and (self.conn.broken or self.conn.closed):
                    self.drop_conn()
                time.sleep(0.05)
        self.L.log("exit")

    def work(self, rows):
        """Quick work first, then what is held (from the claim on) before its reply."""
        claimed = time.time()
        oks, held = [], []
        attempts = {cid: a for cid, _, a in rows}
        for cid, payload, attempt in rows:
            plan = payload.get("plan")
            att = attempt if self.rnd.random() < 0.7 else None
            if plan == "ok":
                oks.append((cid, att))
            elif plan in ("fail", "retry"):
                self.fail(cid, att, plan == "retry")
            elif plan in ("slow", "cancel"):
                held.append((float(payload.get("hold", 1)), cid, att))
            # "drop": nothing; its lease runs out
        if len(oks) >= 2 and self.rnd.random() < 0.6:
            self.complete_many(oks, rows)
        else:
            for cid, att in oks:
                self.complete(cid, att, attempts[cid])
        for hold, cid, att in sorted(held):
            time.sleep(max(0.0, claimed + hold - time.time()))
            self.complete(cid, att, attempts[cid])

    def complete(self, cid, att, attempt):
        seq = self.start("complete", id=cid, attempt=att)
        t0 = time.time()
        reply = Jsonb({"id": cid, "by": self.name, "attempt": attempt})
        if att is None:
            out = self.run("complete", seq, lambda: self.conn.execute(
                "SELECT asyncrr.complete(%s::uuid, %s)", [cid, reply]).fetchone()[0], id=cid)
        else:
            out = self.run("complete", seq, lambda: self.conn.execute(
                "SELECT asyncrr.complete(%s::uuid, %s, %s)", [cid, reply, att]).fetchone()[0], id=cid)
        self.L.log("complete", ph="end", seq=seq, id=cid, attempt=att, t0=t0, outcome=out)

    def complete_many(self, oks, rows):
        attempts = {cid: a for cid, _, a in rows}
        ids = [cid for cid, _ in oks]
        replies = [Jsonb({"id": cid, "by": self.name, "attempt": attempts[cid]}) for cid in ids]
        with_att = self.rnd.random() < 0.7
        atts = [att for _, att in oks] if with_att else None
        seq = self.start("complete_many", ids=ids, attempts=atts)
        t0 = time.time()
        out = self.run("complete_many", seq, lambda: self.conn.execute(
            "SELECT correlation_id, outcome FROM asyncrr.complete_many(%s::uuid[], %s::jsonb[], %s::int[])",
            [ids, replies, atts]).fetchall(), ids=ids)
        self.L.log("complete_many", ph="end", seq=seq, t0=t0,
                   outcomes=[[str(i), o] for i, o in out], attempts=atts)

    def fail(self, cid, att, retry):
        seq = self.start("fail", id=cid, attempt=att, retry=retry)
        t0 = time.time()
        if att is None:
            out = self.run("fail", seq, lambda: self.conn.execute(
                "SELECT asyncrr.fail(%s::uuid, %s, retry => %s)",
                [cid, "planned failure", retry]).fetchone()[0], id=cid)
        else:
            out = self.run("fail", seq, lambda: self.conn.execute(
                "SELECT asyncrr.fail(%s::uuid, %s, %s, retry => %s)",
                [cid, "planned failure", att, retry]).fetchone()[0], id=cid)
        self.L.log("fail", ph="end", seq=seq, id=cid, attempt=att, retry=retry, t0=t0, outcome=out)


def client_main(a):
    c = Client(a)
    c.L.log("begin", pid=os.getpid())
    try:
        if a.kind in WORKER_KINDS:
            c.worker()
        else:
            c.requester()
    except SystemExit:
        c.L.log("exit", left=sorted(c.outstanding), inbox=c.inbox, connected=False)
    return 0


# ----------------------------------------------------------------------
# The conductor
# ----------------------------------------------------------------------
class Conductor:
    def __init__(self, a):
        self.a = a
        self.rnd = random.Random(a.seed)
        self.dir = os.path.abspath(a.workdir)
        self.ldir = os.path.join(self.dir, "ledger")
        self.cdir = os.path.join(self.dir, "clients")
        os.makedirs(self.ldir, exist_ok=True)
        os.makedirs(self.cdir, exist_ok=True)
        self.L = Ledger(os.path.join(self.ldir, "conductor.jsonl"), c="conductor", g=0, k="conductor")
        self.conn = None
        self.procs = {}             # name -> [Popen, kind, gen]
        self.killed_pids = set()    # client processes we SIGKILLed
        self.outages = []           # (from, to): server down, or its worker not back
        self.kills = collections.Counter()
        self.kill_detail = collections.Counter()
        self.overdue = {}           # id -> (deadline, seen at) past deadline+precision+margin
        self.failures = collections.defaultdict(list)
        self.not_claimed = 0
        self.log_offset = os.path.getsize(a.pglog) if os.path.exists(a.pglog) else 0

    def say(self, msg):
        print(f"[ledger {time.strftime('%H:%M:%S')}] {msg}", flush=True)

    def fail(self, kind, msg, ids=()):
        self.failures[kind].append((msg, list(ids)))

    # -- the server --
    def db(self):
        while self.conn is None or self.conn.broken or self.conn.closed:
            try:
                self.conn = psycopg.connect(self.a.dsn, autocommit=True, connect_timeout=5,
                                            application_name="ledger-conductor")
            except psycopg.Error:
                time.sleep(0.2)
        return self.conn

    def q(self, sql, args=None, tries=50):
        for _ in range(tries):
            try:
                cur = self.db().execute(sql, args)
                return cur.fetchall() if cur.description is not None else []
            except psycopg.Error as e:
                if not is_cut(self.conn, e):
                    raise
                self.conn = None
                time.sleep(0.2)
        raise RuntimeError(f"no answer from the server to: {sql}")

    def pg_ctl(self, *args):
        return subprocess.run([os.path.join(self.a.bindir, "pg_ctl"), "-D", self.a.pgdata, *args],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def start_server(self):
        for attempt in range(5):
            r = self.pg_ctl("-l", self.a.pglog, "-w", "-t", "120", "start")
            if r.returncode == 0:
                return
            self.say(f"pg_ctl start failed (try {attempt + 1}): {r.stdout.strip()[-300:]}")
            time.sleep(2)
        raise RuntimeError("the server does not start again")

    def worker_pid(self):
        rows = self.q("SELECT pid FROM pg_stat_activity WHERE backend_type = 'asyncrr worker'")
        return rows[0][0] if rows else None

    def wait_worker(self, old_pid):
        """Until a server answers and runs an asyncrr worker other than old_pid."""
        give_up = time.time() + 90
        while time.time() < give_up:
            try:
                pid = self.worker_pid()
                if pid is not None and pid != old_pid:
                    return
            except (psycopg.Error, RuntimeError):
                self.conn = None
            time.sleep(0.1)
        raise RuntimeError("no new asyncrr worker within 90 s of a crash")

    def setup(self):
        a = self.a
        self.q("CREATE EXTENSION IF NOT EXISTS asyncrr")
        self.wait_worker(None)
        for role, member in ((REQ_ROLE, "asyncrr_requester"), (WRK_ROLE, "asyncrr_worker")):
            if not self.q("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]):
                self.q(f'CREATE ROLE "{role}" LOGIN IN ROLE {member}')
        if not self.q("SELECT 1 FROM asyncrr.queue WHERE queue_name = %s", [a.queue]):
            self.q("SELECT asyncrr.create_queue(%s, default_timeout => '3 seconds',"
                   " lease => '1 second', max_attempts => 3)", [a.queue])
        self.q("SELECT asyncrr.grant_queue(%s, %s, 'submit')", [a.queue, REQ_ROLE])
        self.q("SELECT asyncrr.grant_queue(%s, %s, 'claim')", [a.queue, WRK_ROLE])
        self.precision = self.q("SELECT setting::int FROM pg_settings WHERE name = 'asyncrr.precision'")[0][0] / 1000.0
        self.threshold = self.precision + a.margin

    # -- clients --
    def spawn(self, name, kind, gen):
        a = self.a
        out = open(os.path.join(self.cdir, f"{name}.{gen}.out"), "w")
        p = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "client", "--kind", kind, "--name", name,
             "--gen", str(gen), "--dsn", a.dsn, "--queue", a.queue,
             "--ledger", os.path.join(self.ldir, f"{name}.{gen}.jsonl"),
             "--seed", str(self.rnd.randrange(1 << 30)),
             "--req-role", REQ_ROLE, "--wrk-role", WRK_ROLE],
            stdout=out, stderr=subprocess.STDOUT)
        out.close()
        self.procs[name] = [p, kind, gen]
        self.L.log("spawn", name=name, kind=kind, gen=gen, pid=p.pid)

    def start_clients(self):
        kinds = [REQUESTER_KINDS[i % len(REQUESTER_KINDS)] for i in range(self.a.requesters)]
        n = collections.Counter()
        for kind in kinds:
            n[kind] += 1
            self.spawn(f"{kind}{n[kind]}", kind, 1)
        for i in range(self.a.workers):
            kind = WORKER_KINDS[i % len(WORKER_KINDS)]
            n[kind] += 1
            self.spawn(f"{kind}{n[kind]}", kind, 1)

    def stop_clients(self, kinds, grace):
        names = [n for n, (p, k, g) in self.procs.items() if k in kinds and p.poll() is None]
        for n in names:
            self.procs[n][0].send_signal(signal.SIGTERM)
        give_up = time.time() + grace
        for n in names:
            p = self.procs[n][0]
            try:
                p.wait(max(0.1, give_up - time.time()))
            except subprocess.TimeoutExpired:
                self.say(f"client {n} did not stop within {grace} s: SIGKILL")
                self.L.log("stop-kill", name=n, pid=p.pid)
                self.killed_pids.add(p.pid)
                p.kill()
                p.wait()

    # -- kills --
    def kill(self, kind):
        t0 = time.time()
        if kind == "immediate":
            old = self.worker_pid()
            self.L.log("kill", kind=kind, ph="start")
            r = self.pg_ctl("-m", "immediate", "-w", "stop")
            if r.returncode != 0:
                raise RuntimeError(f"pg_ctl stop failed: {r.stdout}")
            time.sleep(self.rnd.uniform(0, 0.5))
            self.start_server()
            self.conn = None
            self.wait_worker(old)
            self.kill_detail["immediate"] += 1
        elif kind == "backend":
            old = self.worker_pid()
            while True:
                # half the time a client's backend, else any other process,
                # each kind (asyncrr worker, dispatcher, checkpointer...) alike
                rows = self.q("SELECT pid, backend_type, coalesce(application_name, '')"
                              "  FROM pg_stat_activity WHERE pid <> pg_backend_pid()")
                clients = [r for r in rows if r[1] == "client backend"]
                others = collections.defaultdict(list)
                for r in rows:
                    if r[1] != "client backend":
                        others[r[1]].append(r)
                if clients and (not others or self.rnd.random() < 0.5):
                    pid, btype, app = self.rnd.choice(clients)
                else:
                    pid, btype, app = self.rnd.choice(others[self.rnd.choice(sorted(others))])
                try:
                    os.kill(pid, signal.SIGKILL)
                    break
                except ProcessLookupError:
                    continue
            t0 = time.time()
            self.L.log("kill", kind=kind, pid=pid, backend_type=btype, app=app)
            self.conn = None
            self.wait_worker(old)
            what = btype if btype != "client backend" else f"client backend ({app.split('-')[-1].rstrip('0123456789') or '?'})"
            self.kill_detail[f"backend: {what}"] += 1
        else:
            alive = [n for n, (p, k, g) in self.procs.items() if p.poll() is None]
            name = self.rnd.choice(sorted(alive))
            p, k, g = self.procs[name]
            self.L.log("kill", kind=kind, name=name, client_kind=k, gen=g, pid=p.pid)
            self.killed_pids.add(p.pid)
            p.kill()
            p.wait()
            self.spawn(name, k, g + 1)
            self.kill_detail[f"client: {k}"] += 1
        t1 = time.time()
        if kind != "client":
            self.outages.append((t0, t1))
            self.L.log("outage", t0=t0, t1=t1)
        self.kills[kind] += 1
        self.say(f"kill {sum(self.kills.values())}/{self.a.kills}: {kind}"
                 + (f" ({t1 - t0:.1f} s to a new worker)" if kind != "client" else ""))

    def effective_due(self, deadline):
        """When a request due at deadline must have ended by, outages considered."""
        d = deadline
        for a, b in sorted(self.outages):
            if a <= d + self.threshold and b > d:
                d = b
        return d + self.threshold

    def watch(self):
        """Live requests past deadline + precision + margin, outside outages."""
        try:
            rows = self.q("SELECT correlation_id::text, extract(epoch FROM deadline)::float8,"
                          " extract(epoch FROM now())::float8 FROM asyncrr.request"
                          " WHERE finished_at IS NULL AND deadline < now() - make_interval(secs => %s)",
                          [self.threshold], tries=3)
        except (psycopg.Error, RuntimeError):
            self.conn = None
            return
        for cid, deadline, now in rows:
            if now > self.effective_due(deadline) and (not self.outages or now > self.outages[-1][1] + self.threshold):
                self.overdue.setdefault(cid, (deadline, now))

    def load(self):
        a = self.a
        kinds = []
        while len(kinds) < a.kills:
            batch = ["immediate", "backend", "client"]
            self.rnd.shuffle(batch)
            kinds += batch
        kinds = kinds[:a.kills]
        gmin, gmax = a.gap
        for kind in kinds:
            until = time.time() + self.rnd.uniform(gmin, gmax)
            while time.time() < until:
                self.watch()
                time.sleep(0.3)
            self.kill(kind)
        until = time.time() + max(2.0, gmin)
        while time.time() < until:
            self.watch()
            time.sleep(0.3)

    def settle(self):
        self.say("stopping the requesters (they take what they wait for)")
        self.stop_clients(REQUESTER_KINDS, 25)
        self.say("stopping the workers")
        self.stop_clients(WORKER_KINDS, 15)
        t_stop = time.time()
        self.say("waiting for every request to end")
        give_up = time.time() + 30
        while time.time() < give_up:
            self.watch()
            if self.q("SELECT count(*) FROM asyncrr.request WHERE finished_at IS NULL")[0][0] == 0:
                break
            time.sleep(0.3)
        self.say(f"settled in {time.time() - t_stop:.1f} s; waiting for the worker to release inboxes")
        give_up = time.time() + 15
        while time.time() < give_up:
            if not self.dead_holders() and not self.q("SELECT 1 FROM asyncrr.waiters"):
                break
            time.sleep(0.3)

    def dead_holders(self):
        return self.q("SELECT name, holder_pid FROM asyncrr.inboxes i WHERE holder_pid IS NOT NULL"
                      " AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = i.holder_pid)")

    def drain(self):
        """Takes every reply left in every durable inbox, as the ledger's 'drain'."""
        L = Ledger(os.path.join(self.ldir, "drain.jsonl"), c="drain", g=0, k="drain")
        dsn = pg_conninfo.make_conninfo(self.a.dsn, user=REQ_ROLE, application_name="ledger-drain")
        n = 0
        seq = 0
        for (name,) in self.q("SELECT inbox_name FROM asyncrr.inbox WHERE durable ORDER BY 1"):
            with psycopg.connect(dsn, autocommit=True) as c:
                give_up = time.time() + 15
                while True:
                    try:
                        c.execute("SELECT asyncrr.open_inbox(%s)", [name])
                        break
                    except psycopg.errors.ObjectInUse:
                        if time.time() > give_up:
                            self.fail("dead holders", f"durable inbox {name} still held 15 s after the load")
                            break
                        time.sleep(0.2)
                else:
                    continue
                while True:
                    seq += 1
                    L.log("take", ph="start", seq=seq, inbox=name, limit=1000)
                    t0 = time.time()
                    rows = c.execute("SELECT correlation_id, status, reply FROM asyncrr.take_replies(1000)").fetchall()
                    L.log("take", ph="end", seq=seq, inbox=name, t0=t0,
                          rows=[[str(i), s, reply_id(r)] for i, s, r in rows])
                    n += len(rows)
                    if len(rows) < 1000:
                        break
                c.execute("SELECT asyncrr.close_inbox()")
        self.say(f"drained {n} replies from the durable inboxes")

    # -- the checks --
    def read_ledgers(self):
        recs = []
        for fn in sorted(os.listdir(self.ldir)):
            if fn.endswith(".jsonl"):
                with open(os.path.join(self.ldir, fn)) as f:
                    for line in f:
                        line = line.strip()
                        if line:
                            try:
                                recs.append(json.loads(line))
                            except ValueError:
                                self.fail("ledger", f"unreadable line in {fn}: {line[:100]}")
        recs.sort(key=lambda r: r["t"])
        return recs

    def check(self):
        recs = self.read_ledgers()
        by_id = collections.defaultdict(list)   # id -> ledger records mentioning it

        def mention(cid, r):
            if cid:
                by_id[cid].append(r)

        # operations: (client, gen, op, seq) -> {start, end}
        ops = {}
        for r in recs:
            if "seq" in r:
                key = (r["c"], r["g"], r["op"], r["seq"])
                ops.setdefault(key, {})[r["ph"]] = r
            mention(r.get("id"), r)
            for cid in r.get("ids") or ():
                mention(cid, r)
            for row in r.get("rows") or ():
                mention(row[0], r)
            for row in r.get("outcomes") or ():
                mention(row[0], r)
            for row in r.get("got") or ():
                mention(row[0], r)

        acked = {}           # id -> (inbox, kind)
        attempted = {}       # id -> inbox (submits and calls whose end is unknown)
        certain = collections.defaultdict(list)   # id -> [(via, client, status, rid, t0, t1, inbox, kind)]
        uncertain_id = collections.defaultdict(list)  # id -> [(op, t0, client)]
        uncertain_inbox = collections.defaultdict(list)  # inbox -> [(t0, limit, client)]
        already_taken = []   # (id, op, client, t)
        enders = collections.defaultdict(list)    # id -> [(what, state, t0, t1, client)]
        unexpected = []
        n_uncertain = collections.Counter()
        for (c, g, op, seq), ph in ops.items():
            s, e, cut, err = ph.get("start"), ph.get("end"), ph.get("cut"), ph.get("err")
            base = s or e or cut or err
            kind = base.get("k")
            if op == "submit":
                if e:
                    for cid in e["ids"]:
                        acked[cid] = (e["inbox"], kind)
                elif s and not err:
                    for cid in s["ids"]:
                        attempted.setdefault(cid, s["inbox"])
                    n_uncertain["submit"] += 1
            elif op == "call":
                if e:
                    acked[e["id"]] = ("_call", kind)
                    certain[e["id"]].append(("call", f"{c}.{g}", e["status"], e.get("rid"), e["t0"], e["t"], "_call", kind))
                elif s and not err:
                    attempted.setdefault(s["id"], "_call")
                    uncertain_id[s["id"]].append(("call", s["t"], f"{c}.{g}"))
                    n_uncertain["call"] += 1
            elif op == "take":
                if e:
                    for cid, st, rid in e["rows"]:
                        certain[cid].append(("drain" if c == "drain" else "take", f"{c}.{g}", st, rid,
                                             e["t0"], e["t"], e["inbox"], kind))
                elif s and not err:
                    uncertain_inbox[s["inbox"]].append((s["t"], s["limit"], f"{c}.{g}"))
                    n_uncertain["take"] += 1
            elif op == "wait":
                if e:
                    if e["status"] in TERMINAL:
                        certain[e["id"]].append(("wait", f"{c}.{g}", e["status"], e.get("rid"), e["t0"],
                                                 e["t"], e["inbox"], kind))
                    elif e["status"] not in LIVE:
                        self.fail("disagree", f"wait_for_reply returned state {e['status']}", [e["id"]])
                elif s and not err:
                    uncertain_id[s["id"]].append(("wait", s["t"], f"{c}.{g}"))
                    n_uncertain["wait"] += 1
            elif op == "cancel" and e:
                if e["result"]:
                    enders[e["id"]].append(("cancel", "cancelled", e["t0"], e["t"], f"{c}.{g}"))
            elif op == "complete" and e:
                if e["outcome"] == "completed":
                    enders[e["id"]].append(("complete", "completed", e["t0"], e["t"], f"{c}.{g}"))
                elif e["outcome"] not in ("late", "duplicate"):
                    self.fail("two outcomes", f"complete() returned {e['outcome']}", [e["id"]])
            elif op == "complete_many" and e:
                for cid, out in e["outcomes"]:
                    if out == "completed":
                        enders[cid].append(("complete_many", "completed", e["t0"], e["t"], f"{c}.{g}"))
                    elif out not in ("late", "duplicate"):
                        self.fail("two outcomes", f"complete_many() returned {out}", [cid])
                if sorted(x[0] for x in e["outcomes"]) != sorted(s["ids"] if s else [x[0] for x in e["outcomes"]]):
                    self.fail("ledger", "complete_many returned other ids than given", [x[0] for x in e["outcomes"]])
            elif op == "fail" and e:
                if e["outcome"] in ("failed", "dead_lettered"):
                    enders[e["id"]].append(("fail", e["outcome"], e["t0"], e["t"], f"{c}.{g}"))
                elif e["outcome"] not in ("retrying", "late", "duplicate"):
                    self.fail("two outcomes", f"fail() returned {e['outcome']}", [e["id"]])
            if err:
                st, msg = err.get("sqlstate"), err.get("msg", "")
                if st == "55000" and "was already taken" in msg and op in ("wait", "call"):
                    already_taken.append((err["id"], op, f"{c}.{g}", err["t"]))
                elif st == "55000" and "is not claimed" in msg and op in ("complete", "fail", "complete_many"):
                    self.not_claimed += 1
                elif st == "55006" and op == "open":
                    pass                # our old backend still held the inbox: retried
                else:
                    unexpected.append(f"{c}.{g} {op}: {st} {msg}")
        for u in unexpected:
            self.fail("client errors", u)

        # the server
        self.q("SET TIME ZONE 'UTC'")
        server = {}
        for row in self.q(
                "SELECT correlation_id::text, inbox_name, state, attempt,"
                " extract(epoch FROM submitted_at)::float8, extract(epoch FROM deadline)::float8,"
                " extract(epoch FROM finished_at)::float8, extract(epoch FROM taken_at)::float8,"
                " dead_letter_reason, reply->>'id', error, payload->>'plan', late_reply IS NOT NULL,"
                " EXISTS (SELECT 1 FROM asyncrr.dead_letter d WHERE d.correlation_id = r.correlation_id)"
                " FROM asyncrr.request r"):
            (cid, inbox, state, attempt, sub, dl, fin, taken, dlr, rid, error, plan, late, has_dl) = row
            server[cid] = dict(inbox=inbox, state=state, attempt=attempt, submitted=sub, deadline=dl,
                               finished=fin, taken=taken, dlr=dlr, rid=rid, error=error, plan=plan,
                               late=late, has_dl=has_dl)
        orphan_letters = self.q("SELECT correlation_id::text FROM asyncrr.dead_letter d WHERE NOT EXISTS"
                                " (SELECT 1 FROM asyncrr.request r WHERE r.correlation_id = d.correlation_id)")
        for (cid,) in orphan_letters:
            self.fail("outcome", "dead letter without its request", [cid])
        ids = sorted(acked)
        status_rows = collections.Counter()
        status_state = {}
        for i in range(0, len(ids), 2000):
            for cid, state, dlr in self.q(
                    "SELECT s.correlation_id::text, s.state, s.dead_letter_reason"
                    "  FROM unnest(%s::uuid[]) AS u(id) CROSS JOIN LATERAL asyncrr.status(u.id) s",
                    [ids[i:i + 2000]]):
                status_rows[cid] += 1
                status_state[cid] = (state, dlr)

        # 1. every acknowledged request is on the server, with one terminal outcome
        for cid, (inbox, kind) in acked.items():
            if cid not in server:
                self.fail("lost request", "acknowledged, not on the server", [cid])
                continue
            if status_rows[cid] != 1:
                self.fail("status", f"status() returned {status_rows[cid]} rows", [cid])
            srv = server[cid]
            if inbox != srv["inbox"]:
                self.fail("routing", f"acknowledged for inbox {inbox}, on the server in {srv['inbox']}", [cid])
            if cid in status_state and status_state[cid][0] != srv["state"]:
                self.fail("status", f"status() says {status_state[cid][0]}, the table {srv['state']}", [cid])
        for cid, srv in server.items():
            if srv["state"] not in TERMINAL:
                self.fail("not ended", f"still {srv['state']} after the cluster settled", [cid])
                continue
            if cid not in acked and cid not in attempted:
                self.fail("phantom", "a request on the server that no client submitted", [cid])
            dlr = (srv["dlr"] or "").split(" ")[0]
            want = {"timed_out": "timeout", "dead_lettered": "max_attempts"}.get(srv["state"])
            if want and dlr != want:
                self.fail("outcome", f"{srv['state']} with dead letter reason {srv['dlr']!r}", [cid])
            if not want and dlr not in ("", "requester_gone"):
                self.fail("outcome", f"{srv['state']} with dead letter reason {srv['dlr']!r}", [cid])
            if bool(dlr) != bool(srv["has_dl"]):
                self.fail("outcome", f"dead letter reason {srv['dlr']!r} but dead letter row {srv['has_dl']}", [cid])
            # 2. no request ends late, none times out early
            if srv["state"] == "timed_out" and srv["finished"] < srv["deadline"]:
                self.fail("early", f"timed out {srv['deadline'] - srv['finished']:.3f} s before its deadline", [cid])
            if srv["finished"] > self.effective_due(srv["deadline"]):
                self.fail("late", f"{srv['state']} {srv['finished'] - srv['deadline']:.2f} s after its deadline"
                          f" (allowed {self.threshold:.2f} s, outages considered)", [cid])
        for cid, (deadline, seen) in self.overdue.items():
            self.fail("late", f"seen live {seen - deadline:.2f} s after its deadline", [cid])

        # 3. what the workers and cancels were told agrees with the outcome
        for cid, ends in enders.items():
            srv = server.get(cid)
            if srv is None:
                self.fail("lost request", "ended by a client, not on the server", [cid])
                continue
            if len(ends) > 1:
                self.fail("two outcomes", "; ".join(f"{w} by {c} -> {st}" for w, st, _, _, c in ends), [cid])
            for what, st, t0, t1, c in ends:
                if st != srv["state"]:
                    self.fail("two outcomes", f"{what} by {c} was told {st}, the request is {srv['state']}", [cid])
                elif not (t0 - SLACK <= srv["finished"] <= t1 + SLACK):
                    self.fail("two outcomes", f"{what} by {c} was told {st}, but the request ended at"
                              f" {srv['finished'] - t0:+.3f} s from its call", [cid])

        # 4. replies taken: once, as status() says, by their own inbox, as the server recorded
        # when each inbox was last used by a client: the background worker takes
        # the replies of a session inbox only after its session has gone
        # (plus asyncrr.orphan_grace), keeping a dead letter reason the
        # request had (timeout, max_attempts) instead of requester_gone
        last_seen = collections.defaultdict(float)
        for r in recs:
            for key in ("inbox", "inbox_was"):
                if r.get(key):
                    last_seen[r[key]] = max(last_seen[r[key]], r["t"])

        def orphaned(cid, srv):
            if (srv["dlr"] or "").startswith("requester_gone"):
                return True
            if srv["inbox"] == "_call":
                return srv["taken"] >= srv["finished"] + 59
            return srv["inbox"].startswith("_session_") and srv["taken"] > last_seen[srv["inbox"]] + SLACK

        lazy_undone = 0
        covered_unseen = 0
        for cid, takes in certain.items():
            srv = server.get(cid)
            if srv is None:
                self.fail("lost request", "a reply was taken of a request not on the server", [cid])
                continue
            if cid not in acked and cid not in attempted:
                self.fail("foreign", "a reply was taken of a request no client submitted", [cid])
            if len(takes) > 1:
                self.fail("taken twice", "; ".join(f"{v} by {c} ({st})" for v, c, st, *_ in takes), [cid])
            for via, c, st, rid, t0, t1, inbox, kind in takes:
                if st != srv["state"]:
                    self.fail("disagree", f"{via} by {c} took {st}, status() says {srv['state']}", [cid])
                if inbox != srv["inbox"]:
                    self.fail("foreign", f"{via} by {c} took it from inbox {inbox}; it is of {srv['inbox']}", [cid])
                if st == "completed" and rid != cid:
                    self.fail("wrong reply", f"{via} by {c} took a reply for {rid}", [cid])
                if srv["taken"] is not None and t0 - SLACK <= srv["taken"] <= t1 + SLACK:
                    continue                      # the server's take is this one
                # a take from a session inbox may be undone by a crash
                # (asyncrr.lazy_commit); the background worker then takes the
                # reply once the session is gone.  No other take may be undone.
                undone = srv["taken"] is None or orphaned(cid, srv)
                if undone and via == "take" and kind not in DURABLE_KINDS:
                    lazy_undone += 1
                elif undone:
                    self.fail("take undone", f"{via} by {c} took it at {t0:.3f}..{t1:.3f}, the server"
                              + (" has it untaken" if srv["taken"] is None else
                                 f" took it again at {srv['taken']:.3f} for the dead letters"), [cid])
                elif len(takes) == 1:
                    self.fail("taken twice", f"{via} by {c} took it at {t0:.3f}..{t1:.3f}, the server"
                              f" records the take at {srv['taken']:.3f} ({srv['taken'] - t0:+.3f} s)", [cid])

        def covered(cid, srv):
            for op, t, c in uncertain_id.get(cid, ()):
                if srv["taken"] >= t - SLACK:
                    return True
            for t, limit, c in uncertain_inbox.get(srv["inbox"], ()):
                if t - SLACK <= srv["taken"] <= t + 3:
                    return True
            return False

        unseen = collections.Counter()
        for cid, srv in server.items():
            if srv["taken"] is None or cid in certain:
                continue
            if orphaned(cid, srv):
                unseen["by the background worker, requester gone"] += 1
                continue
            if srv["inbox"] == "_call" and srv["state"] == "cancelled" and \
                    (srv["error"] or "").startswith("cancelled: the caller of asyncrr.call is gone"):
                unseen["call cancelled as its caller went"] += 1
                if not uncertain_id.get(cid):
                    self.fail("unexplained take", "cancelled as its caller went, but no call of it was cut off", [cid])
                continue
            if covered(cid, srv):
                covered_unseen += 1
                unseen["taken by an uncertain take"] += 1
            else:
                self.fail("unexplained take", "taken on the server, by nothing in the ledger", [cid])
        for inbox, cuts in uncertain_inbox.items():
            limit = sum(x[1] for x in cuts)
            got = sum(1 for cid, srv in server.items() if srv["inbox"] == inbox and srv["taken"] is not None
                      and cid not in certain and not orphaned(cid, srv))
            if got > limit:
                self.fail("unexplained take", f"{got} replies of {inbox} taken unseen, its cut-off takes"
                          f" could take {limit}")
        for cid, op, c, t in already_taken:
            srv = server.get(cid)
            if srv is None or srv["taken"] is None:
                self.fail("disagree", f"{op} by {c}: 'already taken', but the server has it untaken", [cid])
            elif cid in certain:
                self.fail("taken twice", f"{op} by {c}: 'already taken', and also taken by"
                          f" {certain[cid][0][0]} of {certain[cid][0][1]}", [cid])
            elif not covered(cid, srv) and not orphaned(cid, srv):
                self.fail("taken twice", f"{op} by {c}: 'already taken', with no uncertain take of it", [cid])

        # 5. every reply of a durable inbox was handed out; a live session got its replies
        for cid, (inbox, kind) in acked.items():
            srv = server.get(cid)
            if srv and kind in DURABLE_KINDS and srv["taken"] is None:
                self.fail("lost reply", f"durable inbox {inbox}: never handed out, even by the drain", [cid])
        for r in recs:
            if r["op"] == "exit" and r.get("left") and r.get("connected") and r["k"] in ("session", "waits"):
                for cid in r["left"]:
                    srv = server.get(cid)
                    if srv and srv["finished"] is not None and srv["finished"] < r["t"] - 1.0 and \
                            cid not in certain:
                        self.fail("lost reply", f"{r['c']}.{r['g']} left with it untaken,"
                                  f" {r['t'] - srv['finished']:.1f} s after it ended", [cid])

        # 6. nothing left behind: waiters, waits, inbox holders, background processes
        for row in self.q("SELECT pid, waits_for FROM asyncrr.waiters"):
            self.fail("leaked waiter", f"asyncrr.waiters: pid {row[0]} waits for {row[1]}")
        for row in self.q("SELECT pid, backend_type, application_name, wait_event, left(query, 80)"
                          "  FROM pg_stat_activity WHERE wait_event_type = 'Extension'"
                          "   AND backend_type NOT IN ('asyncrr worker', 'asyncrr dispatcher')"):
            self.fail("leaked waiter", f"a backend sleeping in asyncrr after the load: {row}")
        for name, pid in self.dead_holders():
            self.fail("dead holders", f"inbox {name} held by dead pid {pid}")
        bg = dict(self.q("SELECT backend_type, count(*) FROM pg_stat_activity"
                         " WHERE backend_type IN ('asyncrr worker', 'asyncrr dispatcher') GROUP BY 1"))
        for t in ("asyncrr worker", "asyncrr dispatcher"):
            if bg.get(t) != 1:
                self.fail("background", f"{bg.get(t, 0)} {t} processes running")

        # 7. clients that died on their own
        for name, (p, kind, gen) in self.procs.items():
            if p.returncode not in (0, None) and p.pid not in self.killed_pids:
                self.fail("client crash", f"{name}.{gen} exited with {p.returncode}")
        for fn in sorted(os.listdir(self.cdir)):
            with open(os.path.join(self.cdir, fn), errors="replace") as f:
                text = f.read()
            if "Traceback" in text:
                self.fail("client crash", f"{fn}: {text.strip().splitlines()[-1][:300]}")

        # 8. the server log
        self.server_log_findings()

        self.report(recs, acked, attempted, server, certain, n_uncertain, unseen, lazy_undone,
                    already_taken, by_id)

    def server_log_findings(self):
        try:
            with open(self.a.pglog, errors="replace") as f:
                f.seek(self.log_offset)
                lines = f.read().splitlines()
        except OSError as e:
            self.fail("server log", f"cannot read {self.a.pglog}: {e}")
            return
        self.log_lines = lines
        for line in lines:
            if "terminated by signal" in line and "signal 9" not in line:
                self.fail("server log", line.strip()[:300])
            elif "TRAP:" in line or " PANIC: " in line or "is not live" in line:
                self.fail("server log", line.strip()[:300])
            elif ("asyncrr worker" in line or "asyncrr dispatcher" in line) and " ERROR: " in line:
                self.fail("server log", line.strip()[:300])

    def history(self, cid, by_id, server):
        out = [f"    --- {cid}"]
        try:
            for row in self.q("SELECT * FROM asyncrr.status(%s::uuid)", [cid]):
                out.append(f"    status(): {row}")
            for row in self.q("SELECT reason, attempt, worker, last_error, dead_lettered_at"
                              "  FROM asyncrr.dead_letters WHERE correlation_id = %s::uuid", [cid]):
                out.append(f"    dead letter: {row}")
        except Exception as e:
            out.append(f"    status(): {e}")
        srv = server.get(cid)
        if srv:
            out.append(f"    request: inbox {srv['inbox']}, taken_at {srv['taken']}, plan {srv['plan']}")
        for r in by_id.get(cid, [])[:40]:
            r = dict(r)
            if "rows" in r:
                r["rows"] = [x for x in r["rows"] if x[0] == cid]
            out.append("    ledger: " + json.dumps(r, separators=(",", ":"))[:400])
        for line in getattr(self, "log_lines", []):
            if cid in line:
                out.append("    server log: " + line.strip()[:300])
        return out

    def report(self, recs, acked, attempted, server, certain, n_uncertain, unseen, lazy_undone,
               already_taken, by_id):
        kinds = collections.Counter(k for _, k in acked.values())
        outcomes = collections.Counter(server[c]["state"] for c in acked if c in server)
        reasons = collections.Counter((server[c]["dlr"] or "").split(" ")[0] for c in acked
                                      if c in server and server[c]["dlr"])
        unacked_on_server = sum(1 for c in attempted if c not in acked and c in server)
        takes = collections.Counter(t[0] for ts in certain.values() for t in ts)
        late = sorted(server[c]["finished"] - server[c]["deadline"] for c in server
                      if server[c]["state"] == "timed_out")
        # after the deadline, or after the outage that held it up
        late_out = sorted(server[c]["finished"] - (self.effective_due(server[c]["deadline"]) - self.threshold)
                          for c in server if server[c]["state"] == "timed_out")
        lines = ["", "=== crash ledger report",
                 f"kills: {sum(self.kills.values())} ("
                 + ", ".join(f"{k} {v}" for k, v in sorted(self.kills.items())) + ")"]
        for k, v in sorted(self.kill_detail.items()):
            lines.append(f"    {k}: {v}")
        lines.append(f"requests acknowledged: {len(acked)} ("
                     + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())) + ")"
                     + f"; plus {unacked_on_server} whose submit was cut off but had committed")
        lines.append("outcomes: " + ", ".join(f"{k} {outcomes.get(k, 0)}" for k in TERMINAL))
        by_plan = collections.defaultdict(collections.Counter)
        for c in acked:
            if c in server:
                by_plan[server[c]["plan"]][server[c]["state"]] += 1
        for plan, cnt in sorted(by_plan.items(), key=lambda x: str(x[0])):
            lines.append(f"    plan {plan}: " + ", ".join(f"{k} {cnt[k]}" for k in TERMINAL if cnt[k]))
        lines.append("dead letters: " + (", ".join(f"{k} {v}" for k, v in sorted(reasons.items())) or "none"))
        lines.append(f"replies taken: {sum(takes.values())} ("
                     + ", ".join(f"{k} {v}" for k, v in sorted(takes.items())) + ")")
        lines.append("uncertain operations (cut off by a crash or kill): "
                     + (", ".join(f"{k} {v}" for k, v in sorted(n_uncertain.items()) if v) or "none"))
        lines.append("    replies taken on the server but unseen by a client: "
                     + (", ".join(f"{k} {v}" for k, v in sorted(unseen.items())) or "none")
                     + f"; 'already taken' answers after a cut-off take: {len(already_taken)}")
        lines.append(f"    complete()/fail() refused as 'not claimed' (lease ran out, no attempt given): {self.not_claimed}")
        lines.append(f"    session-inbox takes undone by a crash (asyncrr.lazy_commit): {lazy_undone}")
        if late:
            lines.append(f"timed out after the deadline: median {late[len(late) // 2] * 1000:.0f} ms,"
                         f" max {late[-1] * 1000:.0f} ms; counted from the deadline or the end of the"
                         f" outage that held it up: median {late_out[len(late_out) // 2] * 1000:.0f} ms,"
                         f" max {late_out[-1] * 1000:.0f} ms (allowed {self.threshold * 1000:.0f} ms;"
                         f" {len(self.outages)} outages, {sum(b - a for a, b in self.outages):.1f} s)")
        nfail = sum(len(v) for v in self.failures.values())
        lines.append(f"failures: {nfail}")
        for kind, items in sorted(self.failures.items()):
            lines.append(f"  {kind}: {len(items)}")
            shown = 0
            for msg, ids in items:
                if shown >= 8:
                    lines.append(f"    ... and {len(items) - shown} more")
                    break
                lines.append(f"    {msg}" + (f" [{', '.join(ids[:3])}]" if ids else ""))
                for cid in ids[:1]:
                    lines.extend(self.history(cid, by_id, server))
                shown += 1
        print("\n".join(lines), flush=True)
        with open(os.path.join(self.dir, "report.txt"), "w") as f:
            f.write("\n".join(lines) + "\n")

    def main(self):
        a = self.a
        try:
            self.setup()
        except Exception as e:
            self.say(f"setup failed: {e}")
            return 2
        self.say(f"{a.requesters} requesters, {a.workers} workers, {a.kills} kills {a.gap[0]}-{a.gap[1]} s apart,"
                 f" precision {self.precision * 1000:.0f} ms, margin {a.margin} s, seed {a.seed}")
        self.start_clients()
        try:
            self.load()
        except RuntimeError as e:
            self.say(f"the run could not go on: {e}")
            for p, _, _ in self.procs.values():
                p.kill()
            return 2
        self.settle()
        self.drain()
        self.check()
        return 1 if self.failures else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--dsn", required=True)
    r.add_argument("--pgdata", required=True)
    r.add_argument("--pglog", required=True)
    r.add_argument("--bindir", default="/usr/lib/postgresql/15/bin")
    r.add_argument("--workdir", required=True)
    r.add_argument("--kills", type=int, default=5)
    r.add_argument("--gap", default="2:5", type=lambda s: tuple(float(x) for x in s.split(":")))
    r.add_argument("--requesters", type=int, default=10)
    r.add_argument("--workers", type=int, default=6)
    r.add_argument("--seed", type=int, default=None)
    r.add_argument("--margin", type=float, default=1.5)
    r.add_argument("--queue", default="led")
    c = sub.add_parser("client")
    c.add_argument("--kind", required=True, choices=REQUESTER_KINDS + WORKER_KINDS)
    c.add_argument("--name", required=True)
    c.add_argument("--gen", type=int, required=True)
    c.add_argument("--dsn", required=True)
    c.add_argument("--queue", required=True)
    c.add_argument("--ledger", required=True)
    c.add_argument("--seed", type=int, required=True)
    c.add_argument("--req-role", default=REQ_ROLE)
    c.add_argument("--wrk-role", default=WRK_ROLE)
    a = ap.parse_args()
    if a.cmd == "client":
        return client_main(a)
    if a.seed is None:
        a.seed = random.randrange(1 << 30)
    return Conductor(a).main()


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""The soak: asyncrr under a steady mixed load for a long time, watching
whether its tables and indexes level off or keep growing.

  soak.py run --dsn DSN --minutes M --interval S --out DIR
              [--rate R] [--pglog FILE] [--label TEXT] [--seed S] [--hold-snapshot]
              [--setup-sql STATEMENT]...

The conductor (run) needs a running cluster with asyncrr preloaded and its
worker on the database of DSN (a superuser's), with asyncrr.retention and
asyncrr.dead_letter_retention short enough for retention to run many times
during the soak (test/soak/run.sh sets them).  It creates the extension if
needed and two queues:

  soak       default_timeout 10 s, lease 5 s, max_attempts 3; served by two
             worker processes, each the client library's asyncrr.Worker
             (concurrency 8, batch 10: CALL asyncrr.wait_for_work, claim(),
             complete_many(), fail(retry => true) for a handler's exception)
  soak_void  default_timeout 2 s; nobody serves it: its requests are never
             answered and end timed_out (dead letter reason timeout)

and starts the requesters (processes of this same file), which together
submit --rate requests a second (default 200) on a fixed schedule, open
loop (a request is sent when it is due, whatever the replies do):

  durable  35 %  durable inbox "soak-durable" (asyncrr.Inbox): what falls due
                 in each 50 ms tick is sent with submit(), or submit_many()
                 when several requests to one queue fell due together; it
                 takes replies as notified; every --interval*2 seconds it drops its
                 connection and reopens the inbox 0.5 s later: what came
                 meanwhile waited in the inbox
  session  35 %  a session inbox (asyncrr.Inbox(conn, None)), sending the same
                 way; every
                 --interval*1.5 seconds it drops its connection with
                 requests in flight: their replies become requester_gone
                 dead letters after asyncrr.orphan_grace
  call     30 %  CALL asyncrr.call (asyncrr.call), from 32 threads

Each request carries a plan for the worker, drawn at random:

  ok     88 %  the handler returns a reply: completed
  flaky   5 %  the handler raises half of the time: fail(retry => true),
               claimed again; completed, or dead_lettered (max_attempts)
               when the three attempts all fail
  doom    1 %  the handler always raises: dead_lettered after 3 attempts
  void    5 %  sent to soak_void (2 s timeout): timed_out, nobody answers
  slow    1 %  timeout 1 s, the handler takes 1.5 s: timed_out, and the
               worker's late complete() returns "late"

Every second the conductor reads pg_stat_activity for the oldest
backend_xmin (its own session excluded); every --interval seconds it
records, for each interval: requests sent and replies received per second,
p50/p99 round-trip latency of completed requests of plan ok (submit to
reply in hand; the whole CALL for asyncrr.call), the size of each asyncrr table
(pg_relation_size, pg_total_relation_size) and of each of its indexes,
n_dead_tup, HOT updates and autovacuum runs of each table, the rows of
asyncrr.request and asyncrr.dead_letter, and the oldest backend_xmin seen
(its age in transactions, and in seconds since the holder's transaction
or statement started).  Where contrib's pgstattuple can be created, each
sample also has the live/dead/free share of the heaps of asyncrr.request
and asyncrr.dead_letter (pgstattuple_approx) and the leaf pages, deleted
pages and leaf density of their busiest indexes (pgstatindex).  With
--pglog it also reads the server's autovacuum log lines
(log_autovacuum_min_duration = 0).

p50/p99 leave out the round trips that a requester's own restart came
across (in flight when it dropped its connection, or sent in the 2 s
after, while the one-threaded requester catches up on its schedule before
taking replies): they are reported apart.

Verdict, printed with the tables at the end and written to
DIR/soak-<M>min-<stamp>.{txt,json} (and the autovacuum log lines to
...-autovacuum.log):

  sizes level off: for each table (main fork, and total with indexes and
      TOAST) and each index, the largest size sampled in the last third of
      the run must not exceed the largest in the middle third by more than
      20 % + 32 pages (heap, total) or 20 % + 16 pages (index).  The first
      third is warm-up: requests and dead letters are not removed before
      retention has passed once.  A relation that grows with time grows
      from one third to the next by the same amount; one that levelled off
      only moves within its free-space churn.  The 20 % absorbs the churn
      (one autovacuum more or less before a sample).  The pages absorb
      what is discrete or transient.  A heap that several backends extend
      at once grows by 20 pages per waiting backend (PostgreSQL 15's
      RelationAddExtraBlocks), so a heap of a few dozen pages can jump by
      20-60 pages without any leak.  A relation is as large as the largest
      backlog it has held, and keeps that size (an index never shrinks; it
      reuses its pages): a 2-3 s stall of a shared machine leaves some 500
      untaken replies, and the small partial indexes (2 pages at rest)
      grow by up to 15 pages.  What the check is for grows far faster: with
      a snapshot held (--hold-snapshot) each request index grows by 100 kB
      or more every 10 s, the request heap by 4 MB.  A slow leak of a page a
      minute is for the full run to find, not the 2-minute one.
  throughput holds: requests sent, and requests accounted for (a reply
      taken, or abandoned in flight by a session requester's restart), are
      at least 95 % of --rate per second in each third of the run and over
      the whole run.  Thirds, not intervals: on a shared machine a client
      starved of CPU for a few seconds falls behind its schedule and then
      catches up (the pacer sends what fell due), which moves requests
      from one 10 s interval to the next; a system that cannot hold the
      rate falls behind for good.  Intervals below 90 % are listed.

--hold-snapshot is the negative control of the verdict: a session opens a
REPEATABLE READ transaction before the load starts and keeps its snapshot
to the end, so that VACUUM removes nothing; the run must then FAIL.
--setup-sql runs a statement after CREATE EXTENSION, to try a proposed fix
(a storage parameter of asyncrr.request, say) without changing the
extension; the report names it.  Both mark the names of the files written.

While it runs, a line per interval shows the latest sample (the clients'
counters in it may miss their last second; the final table is exact).

Exits 0 if both hold, 1 if either does not, 2 if the run could not be made.
"""
import argparse
import collections
import datetime
import json
import logging
import math
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time

import psycopg

HERE = os.path.dirname(os.path.abspath(__file__))

QUEUE = "soak"
VOID = "soak_void"
PLANS = [("ok", 88), ("flaky", 5), ("doom", 1), ("void", 5), ("slow", 1)]
SHARES = [("durable", 0.35), ("session", 0.35), ("call", 0.30)]
CALL_THREADS = 32
WORKERS = 2
WORKER_CONCURRENCY = 8
TICK = 0.05                 # requesters send what is due every 50 ms
RESTART_QUIET = 2.0         # round trips this long after a requester's restart are counted apart
MAX_BEHIND = 5.0            # a requester more than 5 s behind schedule skips (counted)
DURABLE_INBOX = "soak-durable"
# margins of the verdict: (fraction, pages)
MARGIN = {"heap": (0.20, 32), "total": (0.20, 32), "index": (0.20, 16)}
PAGE = 8192
THROUGHPUT_MIN = 0.95       # of --rate, in each third of the run and over the whole run


def load_client_library():
    """Import asyncrr from clients/python (run.sh copies it next to this file)."""
    for d in (os.path.join(HERE, "lib"), os.path.join(HERE, "..", "..", "clients", "python")):
        if os.path.isdir(os.path.join(d, "asyncrr")):
            sys.path.insert(0, d)
            break
    import asyncrr  # noqa: E402
    return asyncrr


def weighted(choices, rnd):
    return rnd.choices([c for c, _ in choices], [w for _, w in choices])[0]


def pct(values, p):
    """The p-th percentile (nearest rank) of values, or None."""
    if not values:
        return None
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(math.ceil(p / 100.0 * len(s))) - 1))
    return s[k]


# ---------------------------------------------------------------- clients


class Stats:
    """Per-second counters of a client process, written to stdout as JSON
    lines ({"sec": epoch second, ...}) once each second is over."""

    def __init__(self, name, on_orphan=lambda: None):
        self.name = name
        self.on_orphan = on_orphan
        self.lock = threading.Lock()
        self.buckets = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._flusher, daemon=True)
        self.thread.start()

    def _bucket(self, t=None):
        sec = int(t if t is not None else time.time())
        b = self.buckets.get(sec)
        if b is None:
            b = self.buckets[sec] = {"sent": 0, "skipped": 0, "got": collections.Counter(),
                                     "lat": [], "lat_r": [], "errors": 0, "abandoned": 0,
                                     "lag": 0.0,
                                     "worker": collections.Counter()}
        return b

    def sent(self, n=1):
        with self.lock:
            self._bucket()["sent"] += n

    def skipped(self, n):
        with self.lock:
            self._bucket()["skipped"] += n

    def lag(self, seconds):
        with self.lock:
            b = self._bucket()
            b["lag"] = max(b["lag"], seconds)

    def got(self, status, latency=None, disturbed=False, plan="ok"):
        """A reply; the round trip of a completed request of plan ok goes to
        "lat", or to "lat_r" if a restart of the requester came in its way.
        (A flaky request's round trip has retries in it, and a slow one
        that completed, its deadline having passed before the background
        worker's next pass, took 1.5 s by design.)"""
        with self.lock:
            b = self._bucket()
            b["got"][status] += 1
            if status == "completed" and plan == "slow":
                b["got"]["slow_completed"] += 1
            if latency is not None and status == "completed" and plan == "ok":
                b["lat_r" if disturbed else "lat"].append(round(latency * 1000.0, 2))

    def error(self, what):
        with self.lock:
            self._bucket()["errors"] += 1
        print(f"soak {self.name}: {what}", file=sys.stderr, flush=True)

    def abandoned(self, n):
        with self.lock:
            self._bucket()["abandoned"] += n

    def worker(self, delta):
        with self.lock:
            self._bucket()["worker"].update(delta)

    def _emit(self, final=False):
        now = int(time.time())
        with self.lock:
            secs = sorted(s for s in self.buckets if final or s < now)
            out = [(s, self.buckets.pop(s)) for s in secs]
        for s, b in out:
            rec = {"sec": s, "who": self.name, "sent": b["sent"], "skipped": b["skipped"],
                   "got": dict(b["got"]), "lat": b["lat"], "lat_r": b["lat_r"],
                   "errors": b["errors"],
                   "abandoned": b["abandoned"], "lag": round(b["lag"], 3),
                   "worker": dict(b["worker"])}
            sys.stdout.write(json.dumps(rec) + "\n")
        sys.stdout.flush()

    def _flusher(self):
        parent = os.getppid()
        while not self.stop.wait(0.5):
            try:
                self._emit()
            except (BrokenPipeError, ValueError):
                self.on_orphan()
                return
            if os.getppid() != parent:        # the conductor is gone
                self.on_orphan()
                return

    def close(self):
        self.stop.set()
        self.thread.join()
        try:
            self._emit(final=True)
        except (BrokenPipeError, ValueError):
            pass


class Pacer:
    """A fixed schedule of `rate` sends a second from `start` (epoch)."""

    def __init__(self, rate, start, stats):
        self.interval = 1.0 / rate
        self.next = start
        self.stats = stats
        self.lock = threading.Lock()

    def due(self, now):
        """How many sends are due at wall time now (skipping, and counting,
        what is more than MAX_BEHIND late)."""
        with self.lock:
            if self.next > now:
                return 0
            behind = now - self.next
            if behind > MAX_BEHIND:
                skip = int((behind - MAX_BEHIND) / self.interval) + 1
                self.next += skip * self.interval
                self.stats.skipped(skip)
            n = int((now - self.next) / self.interval) + 1
            self.stats.lag(now - self.next)
            self.next += n * self.interval
            return n

    def slot(self):
        """The next send time (one at a time, for the call threads)."""
        with self.lock:
            t = self.next
            self.next += self.interval
            return t


class Client:
    """A requester or worker process: `soak.py client --kind K ...`."""

    def __init__(self, a):
        self.a = a
        self.asyncrr = load_client_library()
        self.rnd = random.Random(a.seed)
        self.stopping = threading.Event()
        self.stats = Stats(a.name, on_orphan=self.stopping.set)
        self.n = 0
        signal.signal(signal.SIGTERM, lambda *_: self.stopping.set())
        signal.signal(signal.SIGINT, lambda *_: self.stopping.set())

    def dsn(self, suffix=""):
        return f"{self.a.dsn} application_name={self.a.name}{suffix}"

    def connect(self, suffix=""):
        return psycopg.connect(self.dsn(suffix), autocommit=True)

    def lost(self, conn, e):
        """After an error on conn: count it, close conn (if any) and pause
        before the caller reconnects."""
        self.stats.error(f"{type(e).__name__}: {e}")
        try:
            if conn is not None:
                conn.close()
        except Exception:
            pass
        time.sleep(0.5)

    def new_request(self):
        """(queue, payload, timeout) of the next request; payload["plan"] is its plan."""
        plan = weighted(PLANS, self.rnd)
        self.n += 1
        payload = {"plan": plan, "n": self.n, "from": self.a.name,
                   "pad": "x" * self.rnd.randint(50, 300)}
        if plan == "void":
            return VOID, payload, 2
        if plan == "slow":
            payload["sleep"] = 1.5
            return QUEUE, payload, 1
        return QUEUE, payload, None

    # ------------------------------------------------------------ inbox requesters

    def inbox_requester(self, durable):
        """Submit on schedule into one inbox; take replies as they come."""
        a = self.a
        pacer = Pacer(a.rate, a.start, self.stats)
        # correlation id -> (monotonic submit time, disturbed): disturbed if
        # in flight when the requester dropped its connection, or sent in
        # the catch-up after it (RESTART_QUIET s), when the requester, one
        # thread, sends what fell due meanwhile before it takes replies
        inflight = {}
        quiet_until = 0.0
        restart_every = a.restart_every
        next_restart = a.start + restart_every * (0.5 + self.rnd.random())
        conn = inbox = None
        while time.time() < a.start:
            time.sleep(0.01)
        while not self.stopping.is_set():
            try:
                if conn is None:
                    conn = self.connect()
                    inbox = self.asyncrr.Inbox(conn, DURABLE_INBOX if durable else None,
                                               batch=100, poll_interval=5, in_use_timeout=10)
                    inbox.open()
                now = time.time()
                if restart_every and now >= next_restart:
                    next_restart = now + restart_every
                    # Drop the connection without close_inbox(): a durable
                    # inbox keeps what comes meanwhile; a session inbox's
                    # replies become requester_gone dead letters.
                    conn.close()
                    conn = inbox = None
                    if not durable:
                        self.stats.abandoned(len(inflight))
                        inflight.clear()
                    for cid in inflight:
                        inflight[cid] = (inflight[cid][0], True, inflight[cid][2])
                    quiet_until = now + 0.5 + RESTART_QUIET
                    time.sleep(0.5)
                    continue
                # What fell due in this tick: one submit() per request, or one
                # submit_many() (one commit) per queue and timeout when several
                # fell due together, as a requester with a burst would do.
                groups = collections.defaultdict(list)
                for _ in range(pacer.due(now)):
                    q, payload, timeout = self.new_request()
                    groups[(q, timeout)].append(payload)
                for (q, timeout), payloads in groups.items():
                    if len(payloads) == 1:
                        ids = [inbox.submit(q, payloads[0], timeout=timeout)]
                    else:
                        ids = self.asyncrr.submit_many(conn, q, payloads, timeout=timeout)
                    t0, disturbed = time.monotonic(), time.time() < quiet_until
                    for cid, payload in zip(ids, payloads):
                        inflight[cid] = (t0, disturbed, payload["plan"])
                    self.stats.sent(len(ids))
                budget = max(0.0, min(pacer.next, now + TICK) - time.time())
                for r in inbox.replies(timeout=budget):
                    self.reply(inflight, r)
            except psycopg.Error as e:
                self.lost(conn, e)
                conn = inbox = None
        # Stopped: send nothing more; take the replies still to come (the
        # longest timeout is the queue's 10 s).
        until = time.time() + 12
        while inflight and time.time() < until:
            try:
                if conn is None:
                    conn = self.connect()
                    inbox = self.asyncrr.Inbox(conn, DURABLE_INBOX if durable else None,
                                               batch=100, poll_interval=1, in_use_timeout=10)
                for r in inbox.replies(timeout=0.5):
                    self.reply(inflight, r)
            except psycopg.Error as e:
                self.stats.error(f"{type(e).__name__}: {e}")
                conn = None
                time.sleep(0.5)
        if inflight:
            print(f"soak {a.name}: {len(inflight)} requests without a reply at the end",
                  file=sys.stderr, flush=True)
        if conn is not None:
            try:
                if inbox is not None:
                    inbox.close()
                conn.close()
            except psycopg.Error:
                pass

    def reply(self, inflight, r):
        """Count a reply taken from the inbox, with its round trip."""
        t0, disturbed, plan = inflight.pop(r.correlation_id, (None, False, None))
        self.stats.got(r.status, None if t0 is None else time.monotonic() - t0, disturbed, plan)

    # ------------------------------------------------------------ CALL asyncrr.call

    def call_requester(self):
        a = self.a
        pacer = Pacer(a.rate, a.start, self.stats)
        rnd_lock = threading.Lock()

        def thread_main(i):
            conn = None
            while not self.stopping.is_set():
                t = pacer.slot()
                now = time.time()
                if t > now:
                    if self.stopping.wait(t - now):
                        break
                elif now - t > MAX_BEHIND:
                    self.stats.skipped(1)
                    continue
                else:
                    self.stats.lag(now - t)
                with rnd_lock:
                    q, payload, timeout = self.new_request()
                try:
                    if conn is None:
                        conn = self.connect(f"-{i}")
                    self.stats.sent()
                    t0 = time.monotonic()
                    r = self.asyncrr.call(conn, q, payload, timeout=timeout)
                    self.stats.got(r.status, time.monotonic() - t0, plan=payload["plan"])
                except psycopg.Error as e:
                    self.lost(conn, e)
                    conn = None
            if conn is not None:
                conn.close()

        while time.time() < a.start - 1:
            time.sleep(0.01)
        threads = [threading.Thread(target=thread_main, args=(i,), daemon=True)
                   for i in range(a.threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    # ------------------------------------------------------------ workers

    def worker(self):
        a = self.a
        # The library logs each late reply and each handler error (here by
        # design, hundreds a minute); the counters are in the report.
        logging.getLogger("asyncrr.worker").setLevel(logging.ERROR)
        rnd = random.Random(a.seed)
        rnd_lock = threading.Lock()

        def handle(payload, headers):
            plan = payload.get("plan")
            if plan == "flaky":
                with rnd_lock:
                    bad = rnd.random() < 0.5
                if bad:
                    raise RuntimeError("flaky: failed this attempt")
            elif plan == "doom":
                raise RuntimeError("doomed: fails every attempt")
            elif plan == "slow":
                time.sleep(payload.get("sleep", 1.5))
            return {"n": payload.get("n"), "by": a.name, "pad": payload.get("pad", "")[:100]}

        w = self.asyncrr.Worker(self.dsn(), QUEUE, handle, concurrency=a.threads, batch=10,
                                name=a.name)
        last = dict(w.stats)

        def report():
            nonlocal last
            while not self.stopping.wait(1.0):
                cur = dict(w.stats)
                self.stats.worker({k: cur[k] - last.get(k, 0) for k in cur})
                last = cur
            cur = dict(w.stats)
            self.stats.worker({k: cur[k] - last.get(k, 0) for k in cur})

        def stopper():
            self.stopping.wait()
            w.stop()

        rep = threading.Thread(target=report, daemon=True)
        rep.start()
        threading.Thread(target=stopper, daemon=True).start()
        w.run()
        self.stopping.set()
        rep.join()

    def run(self):
        try:
            if self.a.kind == "durable":
                self.inbox_requester(True)
            elif self.a.kind == "session":
                self.inbox_requester(False)
            elif self.a.kind == "call":
                self.call_requester()
            elif self.a.kind == "worker":
                self.worker()
        finally:
            self.stats.close()


# ---------------------------------------------------------------- conductor

SIZES_SQL = """
SELECT c.relname, c.relkind::text, coalesce(t.relname, c.relname),
       pg_relation_size(c.oid), pg_total_relation_size(c.oid)
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_index i ON i.indexrelid = c.oid
  LEFT JOIN pg_class t ON t.oid = i.indrelid
 WHERE n.nspname = 'asyncrr' AND c.relkind IN ('r', 'i')
 ORDER BY coalesce(t.relname, c.relname), c.relkind DESC, c.relname
"""

TABLE_STATS_SQL = """
SELECT relname, n_live_tup, n_dead_tup, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del,
       autovacuum_count, autoanalyze_count, vacuum_count, analyze_count
  FROM pg_stat_user_tables WHERE schemaname = 'asyncrr'
"""

ROWS_SQL = """
SELECT (SELECT count(*) FROM asyncrr.request),
       (SELECT count(*) FROM asyncrr.request WHERE finished_at IS NULL),
       (SELECT count(*) FROM asyncrr.request WHERE finished_at IS NOT NULL AND taken_at IS NULL),
       (SELECT count(*) FROM asyncrr.dead_letter),
       (SELECT count(*) FROM asyncrr.inbox)
"""

XMIN_SQL = """
SELECT age(backend_xmin),
       extract(epoch FROM now() - coalesce(xact_start, query_start, backend_start))::float8,
       backend_type, coalesce(nullif(application_name, ''), backend_type), pid, state,
       left(regexp_replace(coalesce(query, ''), '\\s+', ' ', 'g'), 60)
  FROM pg_stat_activity
 WHERE backend_xmin IS NOT NULL AND pid <> pg_backend_pid()
 ORDER BY age(backend_xmin) DESC
"""

# What pgstattuple_approx() and pgstatindex() look at in each sample.
SPACE_TABLES = ("request", "dead_letter")
SPACE_INDEXES = ("request_pkey", "request_deadline_idx", "request_taken_idx",
                 "request_inbox_idx", "request_claim_idx", "dead_letter_time_idx")

# What the autovacuum workers are doing, polled with the snapshots: a
# VACUUM of asyncrr.request that waits in VacuumTruncate is trying (for up
# to 5 s) to take the ACCESS EXCLUSIVE lock it needs to cut empty pages off
# the table's end.
AUTOVAC_SQL = """
SELECT regexp_replace(query, '^autovacuum: ', ''), coalesce(wait_event, 'on CPU')
  FROM pg_stat_activity
 WHERE backend_type = 'autovacuum worker' AND query LIKE '%asyncrr.%'
"""

SHORT = {
    "queue": "queue", "queue_grant": "q_grant", "inbox": "inbox", "request": "request",
    "dead_letter": "dead_ltr",
    "queue_pkey": "queue_pk", "queue_grant_pkey": "qgrant_pk", "inbox_pkey": "inbox_pk",
    "inbox_holder_idx": "holder", "request_pkey": "req_pk", "request_claim_idx": "claim",
    "request_claimed_idx": "claimed", "request_deadline_idx": "deadline",
    "request_inbox_idx": "req_inbox", "request_taken_idx": "taken",
    "dead_letter_pkey": "dl_pk", "dead_letter_queue_idx": "dl_queue",
    "dead_letter_time_idx": "dl_time",
}


def short(name):
    return SHORT.get(name, name[:10])


def app_group(app):
    """soak-call-17 -> soak-call: holders grouped by client, not thread."""
    return re.sub(r"-\d+$", "", app or "")


class Conductor:
    def __init__(self, a):
        self.a = a
        self.procs = []
        self.records = []
        self.rec_lock = threading.Lock()
        self.samples = []
        self.xmin_polls = []
        self.holders = {}
        self.av_waits = collections.Counter()
        self.stopping = False
        self.log_lines = []

    def say(self, msg):
        print(f"{time.strftime('%H:%M:%S')} {msg}", flush=True)

    def db(self):
        return psycopg.connect(self.a.dsn + " application_name=soak-conductor", autocommit=True)

    def setup(self):
        with self.db() as c:
            c.execute("CREATE EXTENSION IF NOT EXISTS asyncrr")
            for q, timeout in ((QUEUE, "10 seconds"), (VOID, "2 seconds")):
                if not c.execute("SELECT 1 FROM asyncrr.queue WHERE queue_name = %s", (q,)).fetchone():
                    c.execute("SELECT asyncrr.create_queue(%s, %s::interval, '5 seconds', 3)",
                              (q, timeout))
            self.settings = dict(c.execute(
                "SELECT name, setting || coalesce(unit, '') FROM pg_settings"
                " WHERE name LIKE 'asyncrr.%' OR name LIKE 'autovacuum%'"
                "    OR name IN ('fsync', 'synchronous_commit', 'log_autovacuum_min_duration',"
                "                'shared_buffers', 'max_connections')").fetchall())
            for stmt in a_setup_sql(self.a):
                self.say(f"setup: {stmt}")
                c.execute(stmt)
            self.version = c.execute(
                "SELECT extversion FROM pg_extension WHERE extname = 'asyncrr'").fetchone()[0]
            # pgstattuple (contrib) for the space columns of the report, if there
            try:
                c.execute("CREATE EXTENSION IF NOT EXISTS pgstattuple")
                self.pgstattuple = True
            except psycopg.Error as e:
                self.say(f"no pgstattuple ({e}): the report has no space columns")
                self.pgstattuple = False

    def spawn(self, name, kind, rate, threads=1, restart_every=0.0):
        cmd = [sys.executable, os.path.abspath(__file__), "client", "--dsn", self.a.dsn,
               "--name", name, "--kind", kind, "--rate", str(rate), "--start", str(self.start),
               "--threads", str(threads), "--restart-every", str(restart_every),
               "--seed", str(self.rnd.randrange(1 << 30))]
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.procs.append((name, p))
        threading.Thread(target=self._reader, args=(name, p), daemon=True).start()

    def _reader(self, name, p):
        for line in p.stdout:
            try:
                rec = json.loads(line)
            except ValueError:
                print(f"{name}: {line.rstrip()}", flush=True)
                continue
            with self.rec_lock:
                self.records.append(rec)

    def poll_xmin(self, c):
        for what, wait in c.execute(AUTOVAC_SQL).fetchall():
            self.av_waits[(what, wait)] += 1
        rows = c.execute(XMIN_SQL).fetchall()
        t = time.time()
        # A vacuum's own backend_xmin holds back no other vacuum (PostgreSQL
        # leaves PROC_IN_VACUUM backends out of the horizon): listed among
        # the holders, not counted as the oldest.
        top = next((r for r in rows if r[2] != "autovacuum worker"), None)
        self.xmin_polls.append((t, top[0] if top else 0, top[1] if top else 0.0,
                                f"{top[3]}" if top else ""))
        for age_x, age_s, btype, app, pid, state, query in rows:
            key = (btype, app_group(app))
            h = self.holders.setdefault(key, {"polls": 0, "max_xids": 0, "max_s": 0.0,
                                               "query": ""})
            h["polls"] += 1
            if age_x > h["max_xids"]:
                h["max_xids"] = age_x
                h["query"] = query
            h["max_s"] = max(h["max_s"], age_s)

    def sample(self, c, i, t):
        s = {"i": i, "t": round(t - self.start, 1), "rel": {}, "tab": {}}
        for relname, kind, table, size, total in c.execute(SIZES_SQL).fetchall():
            s["rel"][relname] = {"kind": "table" if kind == "r" else "index", "table": table,
                                 "size": size, "total": total}
        for row in c.execute(TABLE_STATS_SQL).fetchall():
            s["tab"][row[0]] = dict(zip(("live", "dead", "ins", "upd", "hot", "del", "autovac",
                                         "autoanalyze", "vac", "analyze"), row[1:]))
        req, live, untaken, dl, inboxes = c.execute(ROWS_SQL).fetchone()
        s["rows"] = {"request": req, "live": live, "untaken": untaken, "dead_letter": dl,
                     "inbox": inboxes}
        if self.pgstattuple:
            s["space"] = {}
            for t in SPACE_TABLES:
                row = c.execute(
                    "SELECT table_len, scanned_percent, approx_tuple_percent, dead_tuple_percent,"
                    "       approx_free_percent FROM pgstattuple_approx(%s::regclass)",
                    (f"asyncrr.{t}",)).fetchone()
                s["space"][t] = dict(zip(("len", "scanned", "live", "dead", "free"), row))
            for x in SPACE_INDEXES:
                row = c.execute(
                    "SELECT leaf_pages, empty_pages, deleted_pages, avg_leaf_density"
                    "  FROM pgstatindex(%s::regclass)", (f"asyncrr.{x}",)).fetchone()
                s["space"][x] = dict(zip(("leaf", "empty", "deleted", "density"), row))
        self.samples.append(s)

    def run(self):
        a = self.a
        self.rnd = random.Random(a.seed)
        self.setup()
        self.start = time.time() + 3.0
        for name, share in SHARES:
            rate = a.rate * share
            if name == "call":
                self.spawn("soak-call", "call", rate, threads=CALL_THREADS)
            elif name == "durable":
                self.spawn("soak-durable", "durable", rate, restart_every=a.interval * 2)
            else:
                self.spawn("soak-session", "session", rate, restart_every=a.interval * 1.5)
        for w in range(WORKERS):
            self.spawn(f"soak-worker-{w + 1}", "worker", 0, threads=WORKER_CONCURRENCY)
        n = int(round(a.minutes * 60 / a.interval))
        self.say(f"soak: {a.rate:g} requests/s for {a.minutes:g} min, a sample every "
                 f"{a.interval:g} s ({n} samples); asyncrr {self.version}; "
                 + ", ".join(f"{k} = {v}" for k, v in sorted(self.settings.items())
                             if k.startswith("asyncrr.") or k in ("autovacuum_naptime",)))
        c = self.db()
        holder = None
        if a.hold_snapshot:
            # The negative control: a session that keeps one snapshot open
            # for the whole run, as a forgotten REPEATABLE READ transaction
            # would.  VACUUM can then remove nothing that died after it, and
            # the verdict must fail.
            holder = psycopg.connect(a.dsn + " application_name=soak-snapshot-holder")
            holder.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            holder.execute("SELECT count(*) FROM asyncrr.queue").fetchone()
            self.say("negative control: soak-snapshot-holder holds a snapshot for the whole run")
        while time.time() < self.start:
            time.sleep(0.05)
        try:
            for i in range(1, n + 1):
                t_end = self.start + i * a.interval
                while True:
                    now = time.time()
                    if now >= t_end:
                        break
                    self.poll_xmin(c)
                    for name, p in self.procs:
                        if p.poll() is not None:
                            raise RuntimeError(f"client {name} exited early ({p.returncode})")
                    time.sleep(max(0.0, min(1.0 - (time.time() - now), t_end - time.time())))
                self.sample(c, i, t_end)
                self.progress(i)
        finally:
            if holder is not None:
                holder.close()
            self.stop_clients()
            c.close()
        if a.pglog:
            self.read_autovacuum_log()
        return self.report()

    def stop_clients(self):
        for name, p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.time() + 40
        for name, p in self.procs:
            try:
                p.wait(max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                self.say(f"{name} did not stop: killing it")
                p.kill()
                p.wait()
        time.sleep(0.2)

    # ------------------------------------------------------------ aggregation

    def interval_stats(self, i):
        """Client counters of interval i: seconds [start+(i-1)*I, start+i*I)."""
        lo = self.start + (i - 1) * self.a.interval
        hi = self.start + i * self.a.interval
        agg = {"sent": 0, "skipped": 0, "got": collections.Counter(), "lat": [], "lat_r": [],
               "errors": 0,
               "abandoned": 0, "lag": 0.0, "worker": collections.Counter()}
        with self.rec_lock:
            recs = [r for r in self.records if lo <= r["sec"] < hi]
        for r in recs:
            agg["sent"] += r["sent"]
            agg["skipped"] += r["skipped"]
            agg["got"].update(r["got"])
            agg["lat"].extend(r["lat"])
            agg["lat_r"].extend(r.get("lat_r", []))
            agg["errors"] += r["errors"]
            agg["abandoned"] += r["abandoned"]
            agg["lag"] = max(agg["lag"], r["lag"])
            agg["worker"].update(r["worker"])
        secs = (min(hi, time.time()) - lo) or 1.0
        agg["secs"] = secs
        agg["replies"] = sum(v for k, v in agg["got"].items() if k != "slow_completed")
        agg["p50"] = pct(agg["lat"], 50)
        agg["p99"] = pct(agg["lat"], 99)
        xs = [x for x in self.xmin_polls if lo <= x[0] < hi]
        top = max(xs, key=lambda x: x[1]) if xs else (0, 0, 0.0, "")
        agg["xmin_xids"] = top[1]
        agg["xmin_s"] = max((x[2] for x in xs), default=0.0)
        agg["xmin_who"] = app_group(top[3])
        return agg

    def progress(self, i):
        s = self.samples[-1]
        time.sleep(1.2)           # the clients write each second once it is over (mostly)
        g = self.interval_stats(i)
        req = s["rel"].get("request", {})
        self.say(f"[{i}] t={s['t']:.0f}s sent {g['sent'] / g['secs']:.0f}/s replies "
                 f"{g['replies'] / g['secs']:.0f}/s p99 {fmt_ms(g['p99'])} ms; request "
                 f"{s['rows']['request']} rows, {kb(req.get('size', 0))} kB heap, "
                 f"{kb(req.get('total', 0))} kB total, n_dead_tup "
                 f"{s['tab'].get('request', {}).get('dead', 0)}; dead letters "
                 f"{s['rows']['dead_letter']}; oldest xmin {g['xmin_xids']} xids "
                 f"({g['xmin_who'] or '-'})")

    def read_autovacuum_log(self):
        """The autovacuum/autoanalyze messages of the asyncrr tables, with
        their continuation lines, from the server log."""
        try:
            with open(self.a.pglog, errors="replace") as f:
                lines = f.read().splitlines()
        except OSError as e:
            self.say(f"cannot read {self.a.pglog}: {e}")
            return
        keep, cur = [], None
        for line in lines:
            if line.startswith("\t") and cur is not None:
                cur.append(line)
                continue
            cur = None
            if re.search(r'automatic (vacuum|analyze) of table "[^"]*\.asyncrr\.', line):
                cur = [line]
                keep.append(cur)
        self.log_lines = keep
        self.autovac = []
        for msg in keep:
            head = msg[0]
            m = re.match(r"(\S+ \S+)", head)
            ts = m.group(1) if m else ""
            tm = re.search(r'automatic (vacuum|analyze) of table "[^"]*\.asyncrr\.(\w+)"', head)
            ent = {"ts": ts, "op": tm.group(1), "table": tm.group(2)}
            body = "\n".join(msg)
            for key, rx in (("removed", r"tuples: (\d+) removed"),
                            ("remain", r"tuples: \d+ removed, (\d+) remain"),
                            ("not_removable", r"(\d+) are dead but not yet removable"),
                            ("cutoff_age", r"which was (\d+) XIDs old"),
                            ("pages", r"pages: \d+ removed, (\d+) remain"),
                            ("index_scans", r"index scans: (\d+)"),
                            ("elapsed", r"elapsed: ([\d.]+) s")):
                mm = re.search(rx, body)
                if mm:
                    ent[key] = float(mm.group(1)) if key == "elapsed" else int(mm.group(1))
            ent["indexes"] = {}
            for mm in re.finditer(r'index "(\w+)": pages: (\d+) in total, (\d+) newly deleted, '
                                  r'(\d+) currently deleted, (\d+) reusable', body):
                ent["indexes"][mm.group(1)] = [int(x) for x in mm.group(2, 3, 4, 5)]
            self.autovac.append(ent)

    # ------------------------------------------------------------ verdict and report

    def verdict(self):
        n = len(self.samples)
        third = n // 3
        mid = self.samples[third:2 * third]
        last = self.samples[2 * third:]
        checks = []
        names = list(self.samples[-1]["rel"].keys())
        for rel in names:
            info = self.samples[-1]["rel"][rel]
            measures = [("heap", "size"), ("total", "total")] if info["kind"] == "table" \
                else [("index", "size")]
            for what, key in measures:
                m = max((s["rel"].get(rel, {}).get(key, 0) for s in mid), default=0)
                l = max((s["rel"].get(rel, {}).get(key, 0) for s in last), default=0)
                frac, pages = MARGIN[what]
                allowed = int(m * (1 + frac)) + pages * PAGE
                checks.append({"rel": rel, "table": info["table"], "what": what, "mid_max": m,
                               "last_max": l, "allowed": allowed, "ok": l <= allowed,
                               "growth": (l - m) / m if m else 0.0})
        # Throughput, by third of the run (as the sizes) and over the whole
        # run: requests sent, and requests accounted for (a reply taken, or
        # abandoned in flight by a session requester's restart: those end as
        # requester_gone dead letters, with nobody to count their replies).
        rate = self.a.rate
        per = []
        for i in range(1, n + 1):
            g = self.interval_stats(i)
            per.append((i, g["sent"], g["replies"] + g["abandoned"], g["secs"]))
        thr = []
        bounds = [("first", 0, third), ("middle", third, 2 * third), ("last", 2 * third, n),
                  ("whole run", 0, n)]
        for name, lo, hi in bounds:
            part = per[lo:hi]
            secs = sum(p[3] for p in part) or 1.0
            sent = sum(p[1] for p in part) / secs
            acc = sum(p[2] for p in part) / secs
            thr.append({"part": name, "sent_per_s": sent, "accounted_per_s": acc,
                        "ok": sent >= THROUGHPUT_MIN * rate and acc >= THROUGHPUT_MIN * rate})
        dips = [{"i": i, "sent_per_s": snt / secs, "accounted_per_s": acc / secs}
                for i, snt, acc, secs in per if acc / secs < 0.9 * rate or snt / secs < 0.9 * rate]
        return checks, thr, dips

    def report(self):
        a = self.a
        n = len(self.samples)
        if n < 3:
            print("too few samples for a verdict", flush=True)
            return 2
        out = []
        w = out.append
        stamp = datetime.datetime.fromtimestamp(self.start).strftime("%Y%m%dT%H%M%S")
        w(f"asyncrr soak ({a.label or ''}"
          f"{', negative control: a snapshot held throughout' if a.hold_snapshot else ''}):"
          f" {a.rate:g} requests/s for {a.minutes:g} min, "
          f"a sample every {a.interval:g} s, started {stamp}")
        w("settings: " + ", ".join(f"{k} = {v}" for k, v in sorted(self.settings.items())))
        if a_setup_sql(a):
            w("setup: " + "; ".join(a_setup_sql(a)))
        w("")
        # 1. load
        w("Load, latency, oldest snapshot (per interval ending at t; replies by outcome;")
        w("p50/p99: round trip of completed requests of plan ok; xmin: oldest backend_xmin seen in")
        w("the interval, polled every second, in transactions and seconds, and its holder)")
        hdr = (f"{'t s':>6} {'sent/s':>7} {'repl/s':>7} {'compl':>6} {'t_out':>5} {'dead':>5} "
               f"{'gone':>4} {'p50ms':>6} {'p99ms':>7} {'lag s':>5} {'xmin':>5} {'xmin s':>6} "
               f"{'holder':<14} {'req rows':>8} {'live':>5} {'dl rows':>7} {'inbox':>5}")
        w(hdr)
        all_lat = []
        lat_r = []
        tot = collections.Counter()
        for s in self.samples:
            g = self.interval_stats(s["i"])
            all_lat.extend(g["lat"])
            lat_r.extend(g["lat_r"])
            tot.update(g["got"])
            tot["sent"] += g["sent"]
            tot["skipped"] += g["skipped"]
            tot["errors"] += g["errors"]
            tot["abandoned"] += g["abandoned"]
            tot.update({"w_" + k: v for k, v in g["worker"].items()})
            w(f"{s['t']:>6.0f} {g['sent'] / g['secs']:>7.1f} {g['replies'] / g['secs']:>7.1f} "
              f"{g['got'].get('completed', 0):>6} {g['got'].get('timed_out', 0):>5} "
              f"{g['got'].get('dead_lettered', 0):>5} {g['abandoned']:>4} "
              f"{fmt_ms(g['p50']):>6} {fmt_ms(g['p99']):>7} {g['lag']:>5.2f} "
              f"{g['xmin_xids']:>5} {g['xmin_s']:>6.2f} {g['xmin_who'][:14]:<14} "
              f"{s['rows']['request']:>8} {s['rows']['live']:>5} {s['rows']['dead_letter']:>7} "
              f"{s['rows']['inbox']:>5}")
        w(f"whole run: {tot['sent']} sent ({tot['skipped']} skipped by the pacer), replies "
          + ", ".join(f"{k} {tot[k]}" for k in ("completed", "timed_out", "dead_lettered",
                                                 "failed", "cancelled") if tot[k])
          + f" (of which slow ones completed before their timeout ran: {tot['slow_completed']})"
          + f"; {tot['abandoned']} abandoned by session restarts; {tot['errors']} client errors;"
          f" p50 {fmt_ms(pct(all_lat, 50))} ms, p99 {fmt_ms(pct(all_lat, 99))} ms,"
          f" p99.9 {fmt_ms(pct(all_lat, 99.9))} ms, max {fmt_ms(max(all_lat, default=None))} ms;"
          f" workers: claimed {tot['w_claimed']}, completed {tot['w_completed']},"
          f" failed {tot['w_failed']}, late {tot['w_late']}, leases extended {tot['w_extended']}")
        by_who = collections.defaultdict(list)
        with self.rec_lock:
            for r in self.records:
                if r["lat"]:
                    by_who[app_group(r["who"])].extend(r["lat"])
        w("round trip of completed requests of plan ok, by requester: " + "; ".join(
            f"{who} p50 {fmt_ms(pct(l, 50))} / p99 {fmt_ms(pct(l, 99))} / max {fmt_ms(max(l))} ms"
            for who, l in sorted(by_who.items())))
        w(f"not in the above: {len(lat_r)} round trips that a requester's restart came across"
          f" (in flight when it dropped its connection, or sent in the {RESTART_QUIET:g} s"
          f" catch-up after): p50 {fmt_ms(pct(lat_r, 50))} ms, p99 {fmt_ms(pct(lat_r, 99))} ms,"
          f" max {fmt_ms(max(lat_r, default=None))} ms")
        w("")
        # 2. table sizes
        tables = [r for r, v in self.samples[-1]["rel"].items() if v["kind"] == "table"]
        indexes = [r for r, v in self.samples[-1]["rel"].items() if v["kind"] == "index"]
        w("Tables: pg_relation_size / pg_total_relation_size in kB, n_dead_tup")
        w(f"{'t s':>6} " + " ".join(f"{short(t):>21}" for t in tables))
        w(f"{'':>6} " + " ".join(f"{'heap':>6} {'total':>7} {'dead':>6}" for t in tables))
        for s in self.samples:
            cells = []
            for t in tables:
                r = s["rel"].get(t, {})
                cells.append(f"{kb(r.get('size', 0)):>6} {kb(r.get('total', 0)):>7} "
                             f"{s['tab'].get(t, {}).get('dead', 0):>6}")
            w(f"{s['t']:>6.0f} " + " ".join(cells))
        w("")
        w("Indexes: pg_relation_size in kB")
        w(f"{'t s':>6} " + " ".join(f"{short(x):>9}" for x in indexes))
        for s in self.samples:
            w(f"{s['t']:>6.0f} " + " ".join(
                f"{kb(s['rel'].get(x, {}).get('size', 0)):>9}" for x in indexes))
        w("(" + ", ".join(f"{short(x)} = {x}" for x in indexes if short(x) != x) + ")")
        w("")
        if self.pgstattuple and "space" in self.samples[-1]:
            w("Space (pgstattuple): heap % live tuples / dead tuples / free (pgstattuple_approx);"
              " index leaf pages, deleted pages, avg leaf density % (pgstatindex)")
            w(f"{'t s':>6} " + " ".join(f"{short(t) + ' live/dead/free':>23}" for t in SPACE_TABLES)
              + " " + " ".join(f"{short(x) + ' leaf/del/dens':>22}" for x in SPACE_INDEXES))
            for s in self.samples:
                sp = s.get("space", {})
                cells = [f"{sp[t]['live']:>7.0f}/{sp[t]['dead']:>3.0f}/{sp[t]['free']:>3.0f}"
                         if t in sp else "-" for t in SPACE_TABLES]
                icells = [f"{sp[x]['leaf']:>6}/{sp[x]['deleted']:>4}/{sp[x]['density']:>5.1f}"
                          if x in sp else "-" for x in SPACE_INDEXES]
                w(f"{s['t']:>6.0f} " + " ".join(f"{c:>23}" for c in cells) + " "
                  + " ".join(f"{c:>22}" for c in icells))
            w("")
        # 3. churn: updates, HOT, autovacuum
        w("Churn per interval: inserts, updates (HOT %), deletes, autovacuums/autoanalyzes of each table")
        busy = [t for t in tables if t in ("request", "dead_letter", "inbox")]
        w(f"{'t s':>6} " + " ".join(f"{short(t) + ' ins/upd/hot%/del/av/an':>36}" for t in busy))
        prev = None
        for s in self.samples:
            cells = []
            for t in busy:
                cur = s["tab"].get(t, {})
                p = (prev or {}).get("tab", {}).get(t, {})
                d = {k: cur.get(k, 0) - p.get(k, 0) for k in ("ins", "upd", "hot", "del",
                                                                "autovac", "autoanalyze")}
                hotp = f"{100.0 * d['hot'] / d['upd']:.0f}" if d["upd"] else "-"
                cells.append(f"{d['ins']:>7}/{d['upd']:>7}/{hotp:>3}/{d['del']:>7}/"
                             f"{d['autovac']:>2}/{d['autoanalyze']:>2}")
            w(f"{s['t']:>6.0f} " + " ".join(f"{c:>36}" for c in cells))
            prev = s
        w("")
        # 4. snapshot holders
        w("Sessions seen holding a snapshot (backend_xmin), polled every second (an autovacuum"
          " worker's holds back no other vacuum and is not in the xmin column above):")
        for (btype, app), h in sorted(self.holders.items(), key=lambda kv: -kv[1]["max_xids"]):
            w(f"  {btype:<22} {app:<20} in {h['polls']:>5} polls, oldest {h['max_xids']:>6} xids,"
              f" {h['max_s']:>7.2f} s  ({h['query']})")
        w("")
        if self.av_waits:
            w("Autovacuum workers on asyncrr tables seen in the polls (about one a second), by"
              " wait event:")
            for (what, wait), k in sorted(self.av_waits.items(), key=lambda kv: -kv[1]):
                w(f"  {k:>5} polls  {what:<40} {wait}")
            w("")
        # 5. autovacuum log
        if getattr(self, "autovac", None):
            w("Autovacuum (server log): runs per table; tuples removed; the most 'dead but not"
              " yet removable'; the oldest removable cutoff (how many XIDs old when the vacuum ended)")
            by = collections.defaultdict(list)
            for e in self.autovac:
                by[(e["table"], e["op"])].append(e)
            for (table, op), es in sorted(by.items()):
                if op == "vacuum":
                    w(f"  vacuum  {table:<12} {len(es):>3} runs, removed "
                      f"{sum(e.get('removed', 0) for e in es):>8}, not removable max "
                      f"{max((e.get('not_removable', 0) for e in es), default=0):>6}, cutoff age max "
                      f"{max((e.get('cutoff_age', 0) for e in es), default=0):>6}, index scans "
                      f"{sum(e.get('index_scans', 0) for e in es):>3}, heap pages at last run "
                      f"{es[-1].get('pages', '?')}, elapsed max "
                      f"{max((e.get('elapsed', 0.0) for e in es), default=0.0):.2f} s")
                    lastidx = es[-1]["indexes"]
                    for ix, (tot_p, newly, cur_d, reusable) in sorted(lastidx.items()):
                        w(f"          {ix:<24} last run: {tot_p:>5} pages, {newly:>4} newly deleted,"
                          f" {cur_d:>4} deleted, {reusable:>4} reusable")
                else:
                    w(f"  analyze {table:<12} {len(es):>3} runs")
            w("")
        # 6. verdict
        checks, thr, dips = self.verdict()
        third = n // 3
        mids = self.samples[third:2 * third]
        lasts = self.samples[2 * third:]
        w(f"Verdict: sizes must level off: max of the last third (t {lasts[0]['t']:.0f}-"
          f"{lasts[-1]['t']:.0f} s) <= max of the middle third (t {mids[0]['t']:.0f}-"
          f"{mids[-1]['t']:.0f} s) + 20 % + 32 pages (heap, total) or + 16 pages (index)")
        w(f"  {'relation':<24} {'':<6} {'mid max kB':>10} {'last max kB':>11} {'allowed kB':>10}"
          f" {'growth':>7}  ok")
        for ck in checks:
            w(f"  {ck['rel']:<24} {ck['what']:<6} {kb(ck['mid_max']):>10} {kb(ck['last_max']):>11}"
              f" {kb(ck['allowed']):>10} {100 * ck['growth']:>+6.0f}%  "
              f"{'ok' if ck['ok'] else 'GROWS'}")
        sizes_ok = all(ck["ok"] for ck in checks)
        w(f"Verdict: throughput must hold {a.rate:g}/s: requests sent, and requests accounted for"
          f" (replies taken + abandoned by a session restart), >= {100 * THROUGHPUT_MIN:.0f} %"
          f" of it in each third and over the whole run")
        for t in thr:
            w(f"  {t['part']:<10} sent {t['sent_per_s']:>6.1f}/s, accounted for"
              f" {t['accounted_per_s']:>6.1f}/s  {'ok' if t['ok'] else 'TOO LOW'}")
        for d in dips:
            w(f"  (interval {d['i']} dipped: sent {d['sent_per_s']:.1f}/s, accounted for"
              f" {d['accounted_per_s']:.1f}/s)")
        thr_ok = all(t["ok"] for t in thr)
        if not sizes_ok and not thr[2]["ok"]:
            w("  note: the load did not hold in the last third either: a relation that grew"
              " there may be sized for the backlog of a stall rather than leak; see the tables")
        w(f"SIZES: {'PASS' if sizes_ok else 'FAIL'} ("
          f"{sum(1 for c in checks if not c['ok'])} of {len(checks)} grow)"
          f"   THROUGHPUT: {'PASS' if thr_ok else 'FAIL'}"
          f"   => {'PASS' if sizes_ok and thr_ok else 'FAIL'}")
        text = "\n".join(out) + "\n"
        print("\n" + text, flush=True)
        os.makedirs(a.out, exist_ok=True)
        base = os.path.join(a.out, f"soak-{a.minutes:g}min-{stamp}"
                            + ("-hold-snapshot" if a.hold_snapshot else "")
                            + ("-setup-sql" if a_setup_sql(a) else ""))
        with open(base + ".txt", "w") as f:
            f.write(text)
        with open(base + ".json", "w") as f:
            json.dump({"rate": a.rate, "minutes": a.minutes, "interval": a.interval,
                       "settings": self.settings, "start": self.start,
                       "samples": self.samples,
                       "intervals": [{k: v for k, v in self.interval_stats(s["i"]).items()
                                      if k not in ("lat", "lat_r")} for s in self.samples],
                       "holders": [{"backend_type": k[0], "app": k[1], **v}
                                   for k, v in self.holders.items()],
                       "autovacuum": getattr(self, "autovac", []),
                       "checks": checks, "throughput": thr, "dips": dips,
                       "pass": sizes_ok and thr_ok}, f, indent=1, default=str)
        if self.log_lines:
            with open(base + "-autovacuum.log", "w") as f:
                for msg in self.log_lines:
                    f.write("\n".join(msg) + "\n")
        print(f"written: {base}.txt, .json" + (", -autovacuum.log" if self.log_lines else ""),
              flush=True)
        return 0 if sizes_ok and thr_ok else 1


def a_setup_sql(a):
    """The --setup-sql statements: a proposed fix to try (a storage parameter,
    say) without changing the extension."""
    return [x for x in (a.setup_sql or []) if x.strip()]


def kb(b):
    return int(round((b or 0) / 1024.0))


def fmt_ms(v):
    return "-" if v is None else (f"{v:.1f}" if v < 1000 else f"{v:.0f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--dsn", required=True)
    r.add_argument("--minutes", type=float, default=30)
    r.add_argument("--interval", type=float, default=60)
    r.add_argument("--rate", type=float, default=200)
    r.add_argument("--out", required=True)
    r.add_argument("--pglog")
    r.add_argument("--label", default="")
    r.add_argument("--seed", type=int, default=1)
    r.add_argument("--setup-sql", action="append",
                   help="a statement run after CREATE EXTENSION (to try a fix); repeatable")
    r.add_argument("--hold-snapshot", action="store_true",
                   help="negative control: hold one snapshot for the whole run (must FAIL)")
    c = sub.add_parser("client")
    c.add_argument("--dsn", required=True)
    c.add_argument("--name", required=True)
    c.add_argument("--kind", required=True, choices=("durable", "session", "call", "worker"))
    c.add_argument("--rate", type=float, default=0)
    c.add_argument("--start", type=float, required=True)
    c.add_argument("--threads", type=int, default=1)
    c.add_argument("--restart-every", type=float, default=0)
    c.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    if a.cmd == "client":
        Client(a).run()
        return 0
    # SIGTERM ends the run like ^C: the clients are stopped, the report skipped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))
    try:
        return Conductor(a).run()
    except (psycopg.Error, RuntimeError, OSError) as e:
        print(f"soak: the run could not be made: {type(e).__name__}: {e}", file=sys.stderr,
              flush=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())

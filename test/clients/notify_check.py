#!/usr/bin/python3
"""Client for test/t/007_notify.pl: how the notifications of replies reach
their requester, through the asyncrr dispatcher or not.

  notify_check.py CONNINFO OTHER_CONNINFO

CONNINFO is a database the dispatcher serves (asyncrr.database), with
asyncrr installed; OTHER_CONNINFO another database with asyncrr installed.
Prints one line per check, "name: value", for the test to compare.
"""
import sys
import time

import psycopg
from psycopg.types.json import Jsonb

conninfo, other_conninfo = sys.argv[1:3]


def connect(info=conninfo):
    return psycopg.connect(info, autocommit=True)


class Requester:
    """A session inbox and the notifications that reach it."""

    def __init__(self, info, queue):
        self.conn = connect(info)
        self.queue = queue
        self.notes = []
        self.conn.add_notify_handler(self.notes.append)
        self.conn.execute("SELECT asyncrr.open_inbox()")

    def submit(self, n):
        return [str(self.conn.execute("SELECT asyncrr.submit(%s, %s)",
                                      [self.queue, Jsonb({"i": i})]).fetchone()[0])
                for i in range(n)]

    def collect(self, expect, timeout=10.0):
        """Notifications until `expect` arrived (then 0.3 s more, to catch
        extras) or timeout; each as (correlation_id, status, sender pid),
        with whether its reply could be taken right after it arrived."""
        got, taken_ok = [], True
        until = time.time() + timeout
        settle = None
        while time.time() < (settle or until):
            self.conn.execute("SELECT 1")   # receives what has arrived
            while self.notes:
                n = self.notes.pop(0)
                payload = __import__("json").loads(n.payload)
                got.append((payload["correlation_id"], payload["status"], n.pid))
                ids = {str(r[0]) for r in self.conn.execute(
                    "SELECT correlation_id FROM asyncrr.take_replies(100000)")}
                taken = getattr(self, "taken", set())
                taken |= ids
                self.taken = taken
                taken_ok = taken_ok and payload["correlation_id"] in taken
            if len(got) >= expect and settle is None:
                settle = time.time() + 0.3
            time.sleep(0.01)
        return got, taken_ok


def report(name, value):
    print(f"{name}: {value}", flush=True)


def check(label, req, ids, expect_pid, run, expect_status="completed"):
    """Runs `run` (which ends the requests `ids`) and reports what arrived."""
    run()
    got, taken_ok = req.collect(len(ids))
    report(f"{label} ids", sorted(g[0] for g in got) == sorted(ids))
    report(f"{label} once", len(got) == len(set(g[0] for g in got)))
    report(f"{label} status", all(g[1] == expect_status for g in got))
    report(f"{label} sender", all(g[2] == expect_pid for g in got))
    report(f"{label} visible", taken_ok)


adm = connect()
dispatcher = adm.execute("SELECT pid FROM pg_stat_activity"
                         " WHERE backend_type = 'asyncrr dispatcher'").fetchone()[0]
adm.execute("SELECT asyncrr.create_queue('nq', default_timeout => '1 hour')")
req = Requester(conninfo, "nq")
wrk = connect()
wrk_pid = wrk.info.backend_pid


def claim():
    wrk.execute("SELECT count(*) FROM asyncrr.claim('nq', 100000)")


# 1. The dispatcher sends them after commit: nothing while the worker's
#    transaction is open, then one each, on the requester's channel, with
#    the reply visible by then.
ids = req.submit(3)
claim()
wrk.execute("BEGIN")
for i in ids:
    wrk.execute("SELECT asyncrr.complete(%s, '{}')", [i])
early, _ = req.collect(0, timeout=0.5)
report("before commit", len(early))
check("dispatched", req, ids, dispatcher, lambda: wrk.execute("COMMIT"))

# 2. A rolled-back outcome, and one of a rolled-back subtransaction, are
#    notified to nobody.
ids = req.submit(2)
claim()
wrk.execute("BEGIN")
wrk.execute("SELECT asyncrr.complete(%s, '{}')", [ids[0]])
wrk.execute("ROLLBACK")
wrk.execute("BEGIN")
wrk.execute("SAVEPOINT s")
wrk.execute("SELECT asyncrr.complete(%s, '{}')", [ids[0]])
wrk.execute("ROLLBACK TO SAVEPOINT s")
wrk.execute("SAVEPOINT t")
wrk.execute("SELECT asyncrr.fail(%s, 'no')", [ids[1]])
wrk.execute("RELEASE SAVEPOINT t")
check("subtransactions", req, [ids[1]], dispatcher, lambda: wrk.execute("COMMIT"),
      expect_status="failed")
wrk.execute("SELECT asyncrr.complete(%s, '{}')", [ids[0]])
req.collect(1)

# 3. asyncrr.notify_dispatch = off: the committing session sends them.
ids = req.submit(2)
claim()
wrk.execute("SET asyncrr.notify_dispatch = off")
check("dispatch off", req, ids, wrk_pid,
      lambda: [wrk.execute("SELECT asyncrr.complete(%s, '{}')", [i]) for i in ids])
wrk.execute("RESET asyncrr.notify_dispatch")

# 4. More than the dispatcher's ring holds, in one transaction: the
#    committing session sends them itself.
ids = [str(r[0]) for r in req.conn.execute(
    "SELECT asyncrr.submit('nq', jsonb_build_object('i', g)) FROM generate_series(1, 9000) g")]
claim()
check("ring full", req, ids, wrk_pid,
      lambda: wrk.execute("SELECT count(asyncrr.complete(correlation_id, '{}'))"
                          "  FROM asyncrr.request WHERE state = 'claimed'"))

# 5. A database the dispatcher does not serve: the session sends them.
oadm = connect(other_conninfo)
oadm.execute("SELECT asyncrr.create_queue('nq', default_timeout => '1 hour')")
oreq = Requester(other_conninfo, "nq")
owrk = connect(other_conninfo)
ids = oreq.submit(2)
owrk.execute("SELECT count(*) FROM asyncrr.claim('nq', 10)")
check("other database", oreq, ids, owrk.info.backend_pid,
      lambda: [owrk.execute("SELECT asyncrr.complete(%s, '{}')", [i]) for i in ids])

# 6. Back to the dispatcher.
ids = req.submit(2)
claim()
check("dispatched again", req, ids, dispatcher,
      lambda: [wrk.execute("SELECT asyncrr.complete(%s, '{}')", [i]) for i in ids])

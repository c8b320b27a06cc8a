#!/usr/bin/python3
"""asyncrr demo: two requesters and one worker on queue "demo.text".

Run by demo/run.sh, which sets PGHOST/PGPORT/PGDATABASE/PGUSER.  Needs
python3-psycopg (psycopg 3).

  requester A   a session inbox  (asyncrr.open_inbox())
  requester B   a durable inbox  (asyncrr.open_inbox('requester-b'))
  worker-1      a thread looping asyncrr.claim() -> complete() / fail()

A's third request asks for slow work with a 2-second timeout: the worker
holds it, the background worker times it out (A gets a timed_out reply, a
dead letter is kept), and the worker's complete() that comes after the
deadline is told "late".

Exits 0 if each requester got exactly the replies to its own requests.
"""
import json
import os
import sys
import threading
import time

import psycopg

QUEUE = "demo.text"
T0 = time.monotonic()
out = threading.RLock()     # one transcript line at a time


def say(who, text):
    with out:
        print(f"{time.monotonic() - T0:6.2f}s  {who:<9} {text}", flush=True)


def short(cid):
    return str(cid)[:8] + "…"


def connect(name):
    conn = psycopg.connect(application_name=name, autocommit=True)
    return conn


class Requester:
    def __init__(self, name, inbox_name=None):
        self.name = name
        self.conn = connect(f"requester {name}")
        self.submitted = {}         # correlation id -> payload
        self.notified = []          # (channel, payload dict)
        self.expected = None        # set once every request is submitted
        self.all_in = threading.Event()
        # Notifications that arrive while this connection runs a query are
        # handed to notify handlers, not to conn.notifies(): catch both.
        self.conn.add_notify_handler(self.on_notify)
        self.channel = self.conn.execute(
            "SELECT asyncrr.open_inbox(%s)", (inbox_name,)).fetchone()[0]
        kind = f"durable inbox {inbox_name!r}" if inbox_name else "a session inbox"
        say(name, f"open_inbox() → {kind}, LISTENing on channel {self.channel}")

    def submit(self, payload, timeout=None, correlation_id=None):
        cid = self.conn.execute(
            "SELECT asyncrr.submit(%s, %s::jsonb, timeout => %s::interval,"
            " correlation_id => %s::uuid)",
            (QUEUE, json.dumps(payload), timeout, correlation_id)).fetchone()[0]
        self.submitted[cid] = payload
        extra = f" (timeout {timeout})" if timeout else ""
        say(self.name, f"submitted {short(cid)} {json.dumps(payload)}{extra}")
        return cid

    def on_notify(self, n):
        body = json.loads(n.payload)
        self.notified.append((n.channel, body))
        mine = "its own" if body["correlation_id"] in map(str, self.submitted) else "NOT ITS OWN"
        say(self.name, f"notified on {n.channel}: {short(body['correlation_id'])} "
                       f"is {body['status']} ({mine})")
        self.check_all_in()

    def check_all_in(self):
        if self.expected is not None and len(self.notified) >= self.expected:
            self.all_in.set()

    def start_listening(self):
        """Print notifications as they arrive, until one per request came.

        conn.notifies() blocks while holding the connection, so this starts
        only once every request is submitted."""
        self.expected = len(self.submitted)
        self.check_all_in()

        def listen():
            if not self.all_in.is_set():
                for n in self.conn.notifies():      # blocks until one arrives
                    self.on_notify(n)
                    if self.all_in.is_set():
                        break
        threading.Thread(target=listen, daemon=True).start()

    def take_replies(self):
        rows = self.conn.execute(
            "SELECT correlation_id, status, reply, error FROM asyncrr.take_replies()").fetchall()
        for cid, status, reply, error in rows:
            what = json.dumps(reply) if reply is not None else f"error: {error}"
            say(self.name, f"took reply {short(cid)} {status:<9} {what}")
        return rows


def worker(stop, slow_done):
    conn = connect("worker-1")
    held = []       # (correlation id, deadline): slow work, finished too late
    while not stop.is_set():
        row = conn.execute(
            "SELECT correlation_id, payload, attempt, deadline"
            "  FROM asyncrr.claim(%s, worker => 'worker-1')", (QUEUE,)).fetchone()
        if row is None:
            for cid, deadline in list(held):
                state = conn.execute("SELECT state FROM asyncrr.status(%s)",
                                     (cid,)).fetchone()[0]
                if state != "claimed":      # the background worker ended it
                    with out:
                        outcome = conn.execute(
                            "SELECT asyncrr.complete(%s, %s::jsonb)",
                            (cid, json.dumps({"text": "done, but too late"}))).fetchone()[0]
                        say("worker-1", f"complete({short(cid)}) after its deadline → {outcome}"
                                        " (kept as late_reply on the dead letter)")
                    held.remove((cid, deadline))
                    slow_done.set()
            time.sleep(0.05)
            continue
        cid, payload, attempt, deadline = row
        say("worker-1", f"claimed {short(cid)} {json.dumps(payload)} (attempt {attempt})")
        op = payload.get("op")
        # Hold the transcript while the reply commits, so that the requester's
        # notification (sent at commit) is printed after this line.
        with out:
            if op == "upper":
                outcome = conn.execute(
                    "SELECT asyncrr.complete(%s, %s::jsonb)",
                    (cid, json.dumps({"text": payload["text"].upper()}))).fetchone()[0]
                say("worker-1", f"complete({short(cid)}) → {outcome}")
            elif op == "slow":
                held.append((cid, deadline))
                say("worker-1", f"working on {short(cid)} for longer than its timeout…")
            else:
                outcome = conn.execute(
                    "SELECT asyncrr.fail(%s, %s)", (cid, f"unknown op: {op}")).fetchone()[0]
                say("worker-1", f"fail({short(cid)}, 'unknown op: {op}') → {outcome}")
    conn.close()


def main():
    a = Requester("A")
    b = Requester("B", "requester-b")

    stop, slow_done = threading.Event(), threading.Event()
    w = threading.Thread(target=worker, args=(stop, slow_done), daemon=True)
    w.start()

    a1 = a.submit({"op": "upper", "text": "hello from A"})
    b.submit({"op": "upper", "text": "hello from B"})
    a.submit({"op": "upper", "text": "second from A"})
    b.submit({"op": "explode"})
    a.submit({"op": "slow"}, timeout="2 seconds")
    again = a.submit({"op": "upper", "text": "hello from A"}, correlation_id=a1)
    say("A", f"(same correlation id and payload again: {short(again)}, no second request)")

    for r in (a, b):
        r.start_listening()
    if not (a.all_in.wait(20) and b.all_in.wait(20)):
        say("demo", "FAILED: not every reply was notified within 20 s")
        return 1

    results = {}
    for r in (a, b):
        rows = r.take_replies()
        # take_replies() skips a reply whose row another transaction holds
        # at that instant (here: the worker's late complete() of the slow
        # request, which locks it to keep its late reply); it is there for
        # the next take.  Take until every reply is in, for 5 s at most.
        until = time.monotonic() + 5
        while len(rows) < len(r.submitted) and time.monotonic() < until:
            time.sleep(0.05)
            rows += r.take_replies()
        got = {str(cid) for cid, *_ in rows}
        sent = {str(cid) for cid in r.submitted}
        notified = {body["correlation_id"] for _, body in r.notified}
        results[r.name] = (got == sent and notified == sent)
        say(r.name, f"{len(rows)} replies for {len(sent)} requests, "
                    f"{'all its own' if results[r.name] else 'MISMATCH'}; "
                    f"take_replies() again → {len(r.take_replies())} rows")

    if not slow_done.wait(10):
        say("demo", "FAILED: the worker never finished the slow request")
        return 1
    stop.set()
    w.join(5)

    slow = next(cid for cid, p in a.submitted.items() if p.get("op") == "slow")
    st = a.conn.execute(
        "SELECT state, error, reply, dead_letter_reason FROM asyncrr.status(%s)",
        (slow,)).fetchone()
    say("A", f"status({short(slow)}) → state {st[0]}, error {st[1]!r}, "
             f"reply {json.dumps(st[2])}, dead letter reason {st[3]}")

    if not all(results.values()):
        say("demo", "FAILED: a requester got a reply that was not its own")
        return 1
    say("demo", "OK: each requester received exactly its own replies")
    return 0


if __name__ == "__main__":
    sys.exit(main())

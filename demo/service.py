#!/usr/bin/python3
"""One instance of a service that asks for work and takes the replies.

    service.py NAME JOURNAL

Run by demo/demo.py, three times (svc-1, svc-2, svc-3).  It holds the
durable inbox NAME (asyncrr.Inbox from clients/python), submits a request
to queue "demo" for each command line read on stdin
(``{"text": ..., "work": seconds, "timeout": seconds}``), and prints one
JSON line on stdout per event: ``open``, ``sent``, ``reply``, ``stop``.

Before it submits, it appends the request's correlation id to JOURNAL (a
real service would write it to its own tables), so that after a restart
it knows the replies that waited for it in its inbox are its own.  A reply
is "mine" when its id is in the journal (or it is the redrive of one) and
its content says it is for NAME.

Connection: the libpq environment (PGHOST, PGPORT, ...).  Exits on SIGTERM
or when stdin ends, closing the inbox (a durable inbox keeps its replies).
"""
import json
import os
import queue
import signal
import sys
import threading
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "clients", "python"))
import psycopg  # noqa: E402
import asyncrr  # noqa: E402

QUEUE = "demo"
NAME, JOURNAL = sys.argv[1], sys.argv[2]


def emit(ev, text=None, **fields):
    print(json.dumps({"ev": ev, "text": text, **fields}), flush=True)


def short(cid):
    return str(cid)[:8] + "…"


class Service:
    def __init__(self):
        self.journal = {}                    # correlation id -> {"n", "run"}
        if os.path.exists(JOURNAL):
            with open(JOURNAL) as f:
                for line in f:
                    e = json.loads(line)
                    self.journal[e["id"]] = e
        self.earlier = len(self.journal)     # requests sent by an earlier run
        self.run_id = uuid.uuid4().hex       # tells this run's requests from earlier ones
        self.replies = 0
        self.not_mine = 0
        self.conn = psycopg.connect(application_name=NAME, autocommit=True)
        # in_use_timeout: after a crash, the old backend may hold the inbox
        # for a moment; open_inbox() is refused (InboxInUse) until it is gone.
        self.inbox = asyncrr.Inbox(self.conn, NAME, in_use_timeout=15)
        self.inbox.open()
        again = f"; its earlier run sent #1-#{self.earlier}" if self.earlier else ""
        emit("open", f"opened its durable inbox '{NAME}' (pid {os.getpid()}){again}",
             pid=os.getpid())

    def send(self, cmd):
        n = len(self.journal) + 1
        cid = str(uuid.uuid4())
        entry = {"id": cid, "n": n, "run": self.run_id}
        with open(JOURNAL, "a") as f:        # journal first, then submit with that id
            f.write(json.dumps(entry) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.journal[cid] = entry
        payload = {"from": NAME, "n": n, "text": cmd["text"], "work": cmd.get("work", 0.3)}
        self.inbox.submit(QUEUE, payload, timeout=cmd.get("timeout"), correlation_id=cid)
        notes = []
        if payload["work"] >= 1:
            notes.append(f"{payload['work']:g} s of work")
        if cmd.get("timeout"):
            notes.append(f"timeout {cmd['timeout']:g} s")
        note = f" ({', '.join(notes)})" if notes else ""
        emit("sent", f"→ #{n} \"{cmd['text']}\"{note}", id=cid, n=n)

    def on_reply(self, r):
        cid = str(r.correlation_id)
        entry = self.journal.get(cid)
        redrive_of = None
        if entry is None:
            # Not one of ours by id: the redrive of one of ours?  status()
            # says "(redriven from <id>)" for a redriven request.
            st = asyncrr.status(self.conn, cid)
            reason = (st or {}).get("dead_letter_reason") or ""
            if "redriven from " in reason:
                redrive_of = reason.split("redriven from ", 1)[1].strip(" )")
                entry = self.journal.get(redrive_of)
        content_ok = r.reply is None or (isinstance(r.reply, dict) and r.reply.get("for") == NAME)
        mine = entry is not None and content_ok
        self.replies += 1
        if not mine:
            self.not_mine += 1
        n = entry["n"] if entry else None
        label = f"#{n}" if n else short(cid)
        if r.status == "completed" and isinstance(r.reply, dict):
            what = f"completed \"{r.reply.get('text')}\" by {r.reply.get('by')}"
        else:
            what = f"{r.status}: {r.error}"
        if not mine:
            note = "NOT MINE"
        elif redrive_of:
            note = f"mine: the redrive of #{n}"
        elif entry["run"] != self.run_id:
            note = "mine: sent before the restart, it waited in the inbox"
        else:
            note = "mine"
        emit("reply", f"← {label} {what} ({note})", id=cid, status=r.status, mine=mine,
             n=n, redrive_of=redrive_of)

    def run(self):
        commands = queue.Queue()

        def read_stdin():
            for line in sys.stdin:
                if line.strip():
                    commands.put(json.loads(line))
            commands.put(None)               # stdin ended: the demo has gone
        threading.Thread(target=read_stdin, daemon=True).start()

        stopping = []
        signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
        while not stopping:
            # replies() takes what is waiting, then waits for notifications
            # (here at most 0.2 s, to look at stdin in between).
            for r in self.inbox.replies(timeout=0.2):
                self.on_reply(r)
            while not stopping:
                try:
                    cmd = commands.get_nowait()
                except queue.Empty:
                    break
                if cmd is None:
                    stopping.append(True)
                else:
                    self.send(cmd)
        for r in self.inbox.take():          # anything that came in the last instant
            self.on_reply(r)
        self.inbox.close()                   # durable: untaken replies would wait
        verdict = "all mine" if not self.not_mine else f"{self.not_mine} NOT MINE"
        plural = "reply" if self.replies == 1 else "replies"
        emit("stop", f"stopped: {self.replies} {plural} in this run, {verdict}",
             replies=self.replies, not_mine=self.not_mine)


def main():
    try:
        Service().run()
    except (psycopg.Error, asyncrr.AsyncrrError) as exc:
        emit("error", f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

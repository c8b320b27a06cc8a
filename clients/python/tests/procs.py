"""Processes the tests start, kill and signal.

  procs.py worker DSN QUEUE CONCURRENCY BATCH LEASE SLEEP [release]
      a Worker with handle_signals=True whose handler prints
      "START <correlation id> <attempt>" when it starts and
      "END <correlation id>" when it ends, sleeping SLEEP seconds between,
      and returns {"echo": payload}; prints "EXIT <stats>" after run().
  procs.py requester DSN QUEUE INBOX
      opens the durable inbox INBOX, submits one request, prints
      "SUBMITTED <correlation id>", and sleeps until killed.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import psycopg  # noqa: E402

import asyncrr  # noqa: E402


def say(*words):
    print(*words, flush=True)


def worker(dsn, queue, concurrency, batch, lease, sleep, release=False):
    def handler(payload, headers):
        job = payload["n"]
        say("START", job)
        time.sleep(sleep)
        say("END", job)
        return {"echo": payload}

    w = asyncrr.Worker(dsn, queue, handler, concurrency=concurrency, batch=batch, lease=lease,
                       name=f"proc-{os.getpid()}", release_on_stop=release)
    say("READY")
    w.run(handle_signals=True)
    say("EXIT", json.dumps(w.stats))


def requester(dsn, queue, inbox_name):
    conn = psycopg.connect(dsn, autocommit=True)
    inbox = asyncrr.Inbox(conn, inbox_name).open()
    cid = inbox.submit(queue, {"from": "the first life"})
    say("SUBMITTED", cid)
    time.sleep(600)


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "worker":
        worker(args[0], args[1], int(args[2]), int(args[3]), float(args[4]), float(args[5]),
               len(args) > 6 and args[6] == "release")
    elif mode == "requester":
        requester(*args)
    else:
        sys.exit(__doc__)

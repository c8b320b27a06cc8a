#!/usr/bin/python3
"""A worker serving queue "demo", with asyncrr.Worker from clients/python.

    worker.py NAME

Run by demo/demo.py.  The job: upper-case the request's text, taking
``work`` seconds (from the payload), or at least 4 s while the file named
by $DEMO_SLOW_FLAG exists (the backend this worker depends on is slow).
The reply says whom it is for and which worker made it.  Prints one JSON
line per event on stdout (``ready``, ``start``, ``done``, ``stop``; jobs of
a second or more are marked ``show``).  Stops gracefully on SIGTERM or
when stdin ends.  Connection: the libpq environment.
"""
import json
import logging
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "clients", "python"))
import asyncrr  # noqa: E402

QUEUE = "demo"
NAME = sys.argv[1]
SLOW_FLAG = os.environ.get("DEMO_SLOW_FLAG", "")


def emit(ev, text=None, **fields):
    print(json.dumps({"ev": ev, "text": text, **fields}), flush=True)


class Events(logging.Handler):
    """The client's own log (lost claims, late replies, reconnects) as events."""

    def emit(self, record):
        emit("log", record.getMessage(), level=record.levelname)


def handle(payload, headers):
    label = f"{payload['from']}#{payload['n']}"
    work = float(payload.get("work", 0.3))
    slow = bool(SLOW_FLAG) and os.path.exists(SLOW_FLAG)
    if slow:
        work = max(work, 4.0)
    why = ", the backend is slow" if slow else ""
    emit("start", f"working on {label} ({work:g} s{why})", label=label, show=work >= 1)
    time.sleep(work)
    emit("done", f"finished {label}", label=label, show=work >= 1)
    return {"for": payload["from"], "n": payload["n"], "text": payload["text"].upper(), "by": NAME}


def main():
    log = logging.getLogger("asyncrr")
    log.addHandler(Events())
    log.setLevel(logging.WARNING)
    log.propagate = False
    # Connection from the environment; the name is the label on its claims.
    worker = asyncrr.Worker("", QUEUE, handle, concurrency=2, batch=2, name=NAME)

    def stop_when_stdin_ends():
        sys.stdin.read()
        worker.stop()
    threading.Thread(target=stop_when_stdin_ends, daemon=True).start()

    emit("ready", f"serving queue '{QUEUE}' (Python asyncrr.Worker, pid {os.getpid()})",
         pid=os.getpid())
    try:
        worker.run(handle_signals=True)
    except Exception as exc:
        emit("error", f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
        return 1
    s = worker.stats
    emit("stop", f"stopped: {s['completed']} completed, {s['late']} late since it started",
         stats=s)
    return 0


if __name__ == "__main__":
    sys.exit(main())

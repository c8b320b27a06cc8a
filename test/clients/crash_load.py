#!/usr/bin/python3
"""Load for test/t/003_crash.pl: requesters and workers that keep going
across server crashes and log only what the server acknowledged.

  crash_load.py requester CONNINFO NAME SECONDS LOG
      opens durable inbox "crash-NAME", submits requests to queue "crash"
      and takes replies; logs "S id" once a submit is acknowledged (a
      submit cut off by a crash is retried with the same id: submit is
      idempotent), "T id status" for every reply taken, and "XT" when a
      take was cut off (its replies may have been taken unseen).
  crash_load.py worker CONNINFO NAME SECONDS LOG
      claims and completes requests of queue "crash".
  crash_load.py drain CONNINFO NAME 0 LOG
      takes every reply left in inbox "crash-NAME", logging "T" lines.
"""
import sys
import time
import uuid

import psycopg
from psycopg.types.json import Jsonb

mode, conninfo, name, seconds, log_path = sys.argv[1:6]
end = time.time() + float(seconds)
log = open(log_path, "a", buffering=1)
conn = None


def connect():
    """A connection, retried while the server restarts (at most 60 s)."""
    give_up = time.time() + 60
    while True:
        try:
            c = psycopg.connect(conninfo, autocommit=True)
            if mode != "worker":
                while True:
                    try:
                        c.execute("SELECT asyncrr.open_inbox(%s)", ["crash-" + name])
                        break
                    except psycopg.errors.ObjectInUse:
                        time.sleep(0.1)  # our old backend has not exited yet
            return c
        except psycopg.OperationalError:
            if time.time() > give_up:
                raise
            time.sleep(0.2)


def take(c, limit):
    try:
        rows = c.execute("SELECT correlation_id, status FROM asyncrr.take_replies(%s)",
                         [limit]).fetchall()
    except psycopg.OperationalError:
        log.write("XT\n")
        raise
    for cid, status in rows:
        log.write(f"T {cid} {status}\n")
    return len(rows)


unsent = None
while mode == "drain" or time.time() < end:
    try:
        if conn is None:
            conn = connect()
        if mode == "drain":
            if take(conn, 1000) == 0:
                break
        elif mode == "requester":
            if unsent is None:
                unsent = str(uuid.uuid4())
            conn.execute("SELECT asyncrr.submit('crash', %s, timeout => '3 seconds', correlation_id => %s)",
                         [Jsonb({"id": unsent}), unsent])
            log.write(f"S {unsent}\n")
            unsent = None
            take(conn, 50)
        else:
            rows = conn.execute("SELECT correlation_id FROM asyncrr.claim('crash', 5, lease => '1 second', worker => %s)",
                                [name]).fetchall()
            for (cid,) in rows:
                conn.execute("SELECT asyncrr.complete(%s, %s)", [cid, Jsonb({"by": name})])
            if not rows:
                time.sleep(0.005)
    except psycopg.OperationalError:
        conn = None
        time.sleep(0.1)

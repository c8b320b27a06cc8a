#!/usr/bin/python3
"""Clients for test/t/009_client_faults.pl.

  client_faults.py load CALLER_CONNINFO WORKER_CONNINFO QUEUE MODE CALLERS PER_CALLER
      CALLERS requester connections (one thread each) make PER_CALLER round
      trips each on QUEUE while two worker connections claim in batches of
      10 (claim with wait => '1 second') and answer each batch with one
      complete_many, the reply {"echo": <payload>}.  MODE "call": CALL
      asyncrr.call; MODE "wait": submit() then wait() from a session inbox.
      Prints one line "trips=N completed=N wrong=N errors=N worker_errors=N"
      and, on stderr, the first few things that went wrong.
  client_faults.py hold CONNINFO SQL [SQL ...]
      one connection (autocommit); runs the statements in turn, printing
      "ROW a|b|..." for each row of the last one and "ERROR <sqlstate>
      <message>" for an error of any (and going on), then "DONE".  A "%s" in a statement is given
      the first column of the previous statement's first row.  The test
      finds the backend by the application_name in CONNINFO and may kill
      this process while a statement blocks.
"""
import json
import sys
import threading

import psycopg
from psycopg.types.json import Jsonb


def text(v):
    if v is None:
        return ""
    if isinstance(v, bool):
        return "t" if v else "f"
    if isinstance(v, (dict, list)):
        return json.dumps(v, sort_keys=True)
    return str(v)


def hold(conninfo, statements):
    conn = psycopg.connect(conninfo, autocommit=True)
    prev = None
    for i, sql in enumerate(statements):
        try:
            cur = conn.execute(sql, [prev] if "%s" in sql else None)
            if cur.description is not None:
                rows = cur.fetchall()
                if rows:
                    prev = rows[0][0]
                if i == len(statements) - 1:
                    for row in rows:
                        print("ROW " + "|".join(text(v) for v in row), flush=True)
        except psycopg.Error as e:
            print(f"ERROR {e.sqlstate} {str(e).splitlines()[0]}", flush=True)
    print("DONE", flush=True)


def load(caller_conninfo, worker_conninfo, queue, mode, callers, per_caller):
    lock = threading.Lock()
    count = {"trips": 0, "completed": 0, "wrong": 0, "errors": 0, "worker_errors": 0}
    problems = []
    stop = threading.Event()

    def note(what, message):
        with lock:
            count[what] += 1
            if len(problems) < 10:
                problems.append(f"{what}: {message}")

    def worker():
        try:
            conn = psycopg.connect(worker_conninfo, autocommit=True)
        except psycopg.Error as e:
            note("worker_errors", e)
            return
        while not stop.is_set():
            try:
                rows = conn.execute(
                    "SELECT correlation_id, payload FROM asyncrr.claim(%s, 10, wait => '1 second')",
                    [queue]).fetchall()
                if not rows:
                    continue
                outcomes = conn.execute(
                    "SELECT correlation_id, outcome FROM asyncrr.complete_many(%s, %s)",
                    [[r[0] for r in rows], [Jsonb({"echo": r[1]}) for r in rows]]).fetchall()
                for cid, outcome in outcomes:
                    if outcome != "completed":
                        note("worker_errors", f"complete_many({cid}) -> {outcome}")
            except psycopg.Error as e:
                note("worker_errors", e)

    def caller(c):
        try:
            conn = psycopg.connect(caller_conninfo, autocommit=True)
            if mode == "wait":
                conn.execute("SELECT asyncrr.open_inbox()")
        except psycopg.Error as e:
            note("errors", e)
            return
        for k in range(per_caller):
            payload = {"c": c, "n": k}
            try:
                if mode == "call":
                    status, reply, error = conn.execute(
                        "CALL asyncrr.call(%s, %s, timeout => '60 seconds')",
                        [queue, Jsonb(payload)]).fetchone()[1:4]
                else:
                    cid = conn.execute("SELECT asyncrr.submit(%s, %s, timeout => '60 seconds')",
                                       [queue, Jsonb(payload)]).fetchone()[0]
                    status, reply, error = conn.execute(
                        "SELECT status, reply, error FROM asyncrr.wait(%s, '60 seconds')",
                        [cid]).fetchone()
                with lock:
                    count["trips"] += 1
                if status == "completed" and reply == {"echo": payload}:
                    with lock:
                        count["completed"] += 1
                else:
                    note("wrong", f"{payload} -> {status} {reply} {error}")
            except psycopg.Error as e:
                note("errors", f"{payload}: {str(e).splitlines()[0]}")

    workers = [threading.Thread(target=worker) for _ in range(2)]
    threads = [threading.Thread(target=caller, args=(c,)) for c in range(callers)]
    for t in workers + threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    for t in workers:
        t.join()
    for p in problems:
        print(p, file=sys.stderr)
    print(" ".join(f"{k}={v}" for k, v in count.items()), flush=True)


if sys.argv[1] == "hold":
    hold(sys.argv[2], sys.argv[3:])
elif sys.argv[1] == "load":
    load(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6]), int(sys.argv[7]))
else:
    sys.exit("usage: client_faults.py load|hold ...")

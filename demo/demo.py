#!/usr/bin/python3
"""asyncrr demo: the problem asyncrr solves, with the two client libraries.

Run by demo/run.sh (as the postgres OS user, on a throwaway cluster where
queue "demo" exists), with PGHOST/PGPORT/PGDATABASE/PGUSER set, and
DEMO_STATE (a directory for journals and logs), DEMO_PSQL and DEMO_NODE.

The cast, each a process of its own:

  svc-1, svc-2, svc-3   three instances of one service (demo/service.py:
                        asyncrr.Inbox on a durable inbox each)
  worker-py             demo/worker.py, asyncrr.Worker (Python client)
  worker-js             demo/worker.js, Worker (Node client)

The children print one JSON line per event; this script narrates them, one
line per event, and plays the script: normal traffic, a worker killed
mid-job (its lease runs out, the other worker takes the request), an
instance killed mid-flight and started again (it takes the reply that
waited in its durable inbox), a request timing out into a dead letter that
is shown with psql and redriven.  It keeps a ledger of every request and
exits 0 only if every instance received exactly the replies to its own
requests, one each, and nothing is left pending or untaken.
"""
import json
import os
import queue
import re
import subprocess
import sys
import threading
import time

import psycopg

HERE = os.path.dirname(os.path.abspath(__file__))
STATE = os.environ["DEMO_STATE"]
PSQL = os.environ.get("DEMO_PSQL", "/usr/lib/postgresql/15/bin/psql")
NODE = os.environ.get("DEMO_NODE", "node")
PYTHON = "/usr/bin/python3"
SLOW_FLAG = os.path.join(STATE, "backend-is-slow")
T0 = time.monotonic()
INDENT = " " * 20
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def say(who, text):
    print(f"{time.monotonic() - T0:6.2f}s  {who:<10} {text}", flush=True)


def section(title):
    print(f"\n=== {title}", flush=True)


class Failed(Exception):
    pass


class Proc:
    """A child process that prints JSON events; restartable."""

    def __init__(self, demo, name, argv):
        self.demo, self.name, self.argv = demo, name, argv
        self.p = None
        self.stopping = False            # an exit is expected (killed or stopped)

    def start(self):
        env = dict(os.environ, PGAPPNAME=self.name, DEMO_SLOW_FLAG=SLOW_FLAG,
                   PYTHONDONTWRITEBYTECODE="1", PYTHONIOENCODING="utf-8")
        err = open(os.path.join(STATE, f"{self.name}.stderr"), "ab")
        self.p = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=err, env=env, cwd=STATE)
        err.close()
        self.stopping = False
        threading.Thread(target=self._read, args=(self.p,), daemon=True).start()

    def _read(self, p):
        for raw in p.stdout:
            text = raw.decode("utf-8", "replace").strip()
            try:
                ev = json.loads(text)
            except ValueError:
                ev = {"ev": "output", "text": text}
            self.demo.events.put((self, p, ev))
        self.demo.events.put((self, p, {"ev": "exit", "rc": p.wait()}))

    def send(self, **cmd):
        self.p.stdin.write((json.dumps(cmd) + "\n").encode())
        self.p.stdin.flush()

    def kill(self):
        self.stopping = True
        self.p.kill()                    # SIGKILL: no goodbye, no cleanup

    def terminate(self):
        self.stopping = True
        self.p.terminate()               # SIGTERM: a graceful stop

    def stderr_tail(self):
        try:
            with open(os.path.join(STATE, f"{self.name}.stderr"), errors="replace") as f:
                lines = [l.rstrip() for l in f if l.strip()]
        except OSError:
            return ""
        return lines[-1] if lines else ""


class Demo:
    def __init__(self):
        self.events = queue.Queue()
        self.history = []                # (proc name, popen, event), in arrival order
        self.ledger = {}                 # correlation id -> {"owner", "n", "replies": [...]}
        self.problems = []
        self.procs = {}
        self.labels = set()              # "svc-1#3" of every request sent
        self.deferred = []               # worker events about a request not yet shown sent
        self.starts = {}                 # label -> how many times a worker started it
        self.db = psycopg.connect(application_name="demo", autocommit=True)

    # ---------------------------------------------------------------- events

    def label(self, cid):
        e = self.ledger.get(cid)
        return f"{e['owner']}#{e['n']}" if e else cid[:8] + "…"

    def process(self, proc, p, ev):
        kind, name = ev.get("ev"), proc.name
        if kind in ("start", "done") and ev.get("label") not in self.labels:
            # A worker's news can overtake the instance's "sent": hold it.
            self.deferred.append((proc, p, ev))
            return
        if kind == "start":
            self.starts[ev["label"]] = self.starts.get(ev["label"], 0) + 1
            if self.starts[ev["label"]] > 1:
                ev["text"] += ": redelivered"
        if kind == "exit":
            if p is proc.p and not proc.stopping:
                tail = proc.stderr_tail()
                raise Failed(f"{name} exited unexpectedly (code {ev['rc']})"
                             + (f": {tail}" if tail else ""))
        elif kind == "sent":
            self.ledger[ev["id"]] = {"owner": name, "n": ev["n"], "replies": []}
            self.labels.add(f"{name}#{ev['n']}")
        elif kind == "reply":
            e = self.ledger.get(ev["id"])
            if e is None:
                self.problems.append(f"{name} got a reply to a request nobody sent: {ev['id']}")
            elif e["owner"] != name:
                self.problems.append(f"{name} got the reply to {self.label(ev['id'])}")
            else:
                e["replies"].append(ev["status"])
            if not ev.get("mine"):
                self.problems.append(f"{name} says a reply was not its own: {ev['text']}")
        elif kind == "error":
            raise Failed(f"{name}: {ev.get('text')}")
        self.history.append((name, p, ev))
        text = ev.get("text")
        if kind == "log":
            text = self.log_text(text)
        if text and ev.get("show", True):
            say(name, text)
        if kind == "sent" and self.deferred:
            held, self.deferred = self.deferred, []
            for item in held:
                self.process(*item)

    def log_text(self, msg):
        """A client library's warning, in the demo's words."""
        m = re.search(r"reply to (\S+) \(attempt \d+\) was late", msg or "")
        if m:
            return (f"complete({self.label(m.group(1))}) → late: the request had ended;"
                    " the reply is kept on its dead letter")
        m = re.search(r"lost the claim of (\S+?):", msg or "")
        if m:
            return f"extend_lease({self.label(m.group(1))}) refused: the request has ended"
        return UUID_RE.sub(lambda u: self.label(u.group(0)), msg or "")

    def drain(self):
        """Process the events that have arrived, without waiting."""
        while True:
            try:
                item = self.events.get_nowait()
            except queue.Empty:
                return
            self.process(*item)

    def mark(self):
        self.drain()
        return len(self.history)

    def wait(self, what, pred, timeout, since=0):
        """Process events until one since `since` satisfies pred(name, ev); return it."""
        deadline = time.monotonic() + timeout
        i = since
        while True:
            while i < len(self.history):
                name, _, ev = self.history[i]
                i += 1
                if pred(name, ev):
                    return name, ev
            left = deadline - time.monotonic()
            if left <= 0:
                raise Failed(f"no {what} within {timeout:g} s")
            try:
                self.process(*self.events.get(timeout=min(left, 0.2)))
            except queue.Empty:
                pass

    def pause(self, seconds):
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            try:
                self.process(*self.events.get(timeout=left))
            except queue.Empty:
                pass

    def until(self, what, check, timeout):
        """Poll check() (a database look) until true, processing events meanwhile."""
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise Failed(f"{what}: not within {timeout:g} s")
            self.pause(0.1)

    def wait_reply(self, cid, timeout, since=0):
        return self.wait(f"reply to {self.label(cid)}",
                         lambda n, ev: ev["ev"] == "reply" and ev["id"] == cid, timeout, since)[1]

    def send(self, svc, since=None, **cmd):
        """Have an instance submit a request; its correlation id."""
        mark = self.mark() if since is None else since
        self.procs[svc].send(**cmd)
        return self.wait(f"submit by {svc}",
                         lambda n, ev: n == svc and ev["ev"] == "sent", 10, mark)[1]["id"]

    # ---------------------------------------------------------------- tools

    def psql(self, sql, expanded=False):
        """Run a statement with psql and show it and its output."""
        self.drain()
        say("psql", sql)
        args = [PSQL, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-P", "footer=on"]
        if expanded:
            args += ["-x"]
        out = subprocess.run(args + ["-c", sql], capture_output=True, text=True)
        if out.returncode != 0:
            raise Failed(f"psql: {out.stderr.strip()}")
        for line in out.stdout.rstrip("\n").split("\n"):
            print(INDENT + line, flush=True)
        return out.stdout

    def one(self, sql, *args):
        return self.db.execute(sql, args).fetchone()

    def start(self, name, argv, ready_event):
        proc = self.procs.get(name) or Proc(self, name, argv)
        self.procs[name] = proc
        mark = self.mark()
        proc.start()
        self.wait(f"{ready_event} from {name}",
                  lambda n, ev: n == name and ev["ev"] == ready_event, 20, mark)
        return proc

    def start_worker(self, name):
        script = ([NODE, os.path.join(HERE, "worker.js")] if name.endswith("-js")
                  else [PYTHON, os.path.join(HERE, "worker.py")])
        self.start(name, script + [name], "ready")
        # Ready means: its backend sleeps in CALL asyncrr.wait_for_work.
        self.until(f"{name} waiting for work", lambda: self.one(
            "SELECT count(*) FROM asyncrr.waiters w JOIN pg_stat_activity a USING (pid)"
            " WHERE w.waits_for = 'work' AND a.application_name = %s", name)[0] > 0, 20)

    def start_service(self, name):
        self.start(name, [PYTHON, os.path.join(HERE, "service.py"), name,
                          os.path.join(STATE, f"{name}.journal")], "open")

    def is_start(self, label, worker=None):
        return lambda n, ev: (ev["ev"] == "start" and ev.get("label") == label
                              and (worker is None or n == worker))

    def is_done(self, label):
        return lambda n, ev: ev["ev"] == "done" and ev.get("label") == label

    # ---------------------------------------------------------------- the script

    def run(self):
        print("\nOne service runs as three instances (svc-1, svc-2, svc-3), each with its own\n"
              "durable inbox. They send requests to the shared queue 'demo', served by two workers\n"
              "(one Python, one Node): any worker may take any request, yet each reply must come\n"
              "back to the very instance that asked, and none may be lost when a worker dies, an\n"
              "instance restarts or a request times out.", flush=True)
        section("the workers and the three instances start")
        for w in ("worker-py", "worker-js"):
            self.start_worker(w)
        for s in ("svc-1", "svc-2", "svc-3"):
            self.start_service(s)

        section("1. six requests in flight at once: each reply goes to the instance that asked")
        words = {"svc-1": ["hello", "order 17"], "svc-2": ["bonjour", "order 23"],
                 "svc-3": ["hallo", "order 42"]}
        ids = [self.send(s, text=words[s][i], work=0.5) for i in (0, 1) for s in words]
        for cid in ids:
            self.wait_reply(cid, 15)

        section("2. a worker dies mid-job: its lease runs out and the other worker takes the request")
        mark = self.mark()
        cid = self.send("svc-1", text="resize cat.png", work=3, since=mark)
        job = self.label(cid)
        victim, _ = self.wait(f"a worker on {job}", self.is_start(job), 10, mark)
        other = "worker-py" if victim == "worker-js" else "worker-js"
        self.pause(0.5)
        say("demo", f"kill -9 {victim} (pid {self.procs[victim].p.pid}) mid-job: its 2 s"
                    f" lease on {job} is no longer extended")
        mark = self.mark()
        self.procs[victim].kill()
        self.wait(f"{other} taking over {job}", self.is_start(job, other), 15, mark)
        st = self.one("SELECT state, attempt, worker, error FROM asyncrr.status(%s)", cid)
        say("demo", f"asyncrr.status({job}): {st[0]} by {st[2]}, attempt {st[1]};"
                    f" error \"{st[3]}\"")
        say("demo", f"{victim} starts again")
        self.start_worker(victim)
        self.wait_reply(cid, 15)

        section("3. an instance restarts mid-flight: its reply waits for it in its durable inbox")
        mark = self.mark()
        cid = self.send("svc-2", text="invoice 7", work=3, since=mark)
        job = self.label(cid)
        self.wait(f"a worker on {job}", self.is_start(job), 10, mark)
        self.pause(0.3)
        say("demo", f"kill -9 svc-2 (pid {self.procs['svc-2'].p.pid}) while {job} is in flight;"
                    " the others carry on")
        self.procs["svc-2"].kill()
        others = [self.send("svc-1", text="order 51", work=0.5),
                  self.send("svc-3", text="order 52", work=0.5)]
        for o in others:
            self.wait_reply(o, 10)
        self.wait(f"the end of {job}", self.is_done(job), 10, mark)
        self.until("svc-2's reply waiting in its released inbox", lambda: self.one(
            "SELECT holder_pid IS NULL AND untaken_replies = 1 FROM asyncrr.inboxes"
            " WHERE name = 'svc-2'")[0], 10)
        self.psql("SELECT name, holder_pid, untaken_replies, live_requests"
                  " FROM asyncrr.inboxes ORDER BY name;")
        say("demo", "svc-2 starts again")
        mark = self.mark()
        self.start_service("svc-2")
        self.wait_reply(cid, 10, mark)

        section("4. a request times out: a dead letter, inspected with psql and redriven")
        open(SLOW_FLAG, "w").close()
        say("demo", "the backend the workers call slows down: every job now takes 4 s")
        mark = self.mark()
        cid = self.send("svc-3", text="quarterly report", work=0.5, timeout=2, since=mark)
        job = self.label(cid)
        self.wait(f"a worker on {job}", self.is_start(job), 10, mark)
        reply = self.wait_reply(cid, 10, mark)
        if reply["status"] != "timed_out":
            raise Failed(f"{job} ended {reply['status']}, not timed_out")
        self.wait(f"the end of {job}", self.is_done(job), 10, mark)
        self.until("the late reply on the dead letter", lambda: self.one(
            "SELECT late_reply IS NOT NULL FROM asyncrr.dead_letters WHERE correlation_id = %s",
            cid)[0], 10)
        self.pause(0.2)
        self.psql("SELECT correlation_id, reason, inbox, attempt, worker, payload, last_error,"
                  " late_reply FROM asyncrr.dead_letters;", expanded=True)
        os.unlink(SLOW_FLAG)
        say("demo", "the backend is fast again: redrive the dead letter (a new request, same"
                    " payload and inbox)")
        mark = self.mark()
        out = self.psql(f"SELECT asyncrr.redrive('{cid}');")
        new = UUID_RE.findall(out)
        if len(new) != 1:
            raise Failed(f"redrive returned no id: {out!r}")
        self.ledger[new[0]] = dict(self.ledger[cid], replies=[], redrive=True)
        self.starts.pop(job, None)       # a new request, not a redelivery
        self.wait_reply(new[0], 10, mark)

        section("5. everyone stops; what the database says")
        mark = self.mark()
        for s in ("svc-1", "svc-2", "svc-3"):
            self.procs[s].terminate()
        for s in ("svc-1", "svc-2", "svc-3"):
            self.wait(f"{s} stopping", lambda n, ev, s=s: n == s and ev["ev"] == "exit", 15, mark)
        for w in ("worker-py", "worker-js"):
            self.procs[w].terminate()
        for w in ("worker-py", "worker-js"):
            self.wait(f"{w} stopping", lambda n, ev, w=w: n == w and ev["ev"] == "exit", 15, mark)
        self.psql("SELECT queue_name, pending, claimed, completed, failed, timed_out, dead_letters"
                  " FROM asyncrr.queue_stats;")
        self.psql("SELECT queue_name, correlation_id, reason, last_error FROM asyncrr.dead_letters;")
        return self.check()

    def check(self):
        live, untaken = self.one(
            "SELECT (SELECT coalesce(sum(pending + claimed), 0) FROM asyncrr.queue_stats),"
            "       (SELECT coalesce(sum(untaken_replies), 0) FROM asyncrr.inboxes)")
        problems = list(self.problems)
        for cid, e in self.ledger.items():
            if len(e["replies"]) != 1:
                problems.append(f"{self.label(cid)} ({cid}): {len(e['replies'])} replies")
        if live:
            problems.append(f"{live} requests still pending or claimed")
        if untaken:
            problems.append(f"{untaken} replies left untaken")
        for p in problems:
            print(f"FAILED: {p}", flush=True)
        if problems:
            return 1
        statuses = [s for e in self.ledger.values() for s in e["replies"]]
        sent = sum(1 for e in self.ledger.values() if not e.get("redrive"))
        print(f"\nOK: each instance received exactly its own replies ({len(statuses)} replies to"
              f" {sent} requests and {len(statuses) - sent} redrive: {statuses.count('completed')}"
              f" completed, {statuses.count('timed_out')} timed out; none lost, none left pending"
              f" or untaken)", flush=True)
        return 0

    def cleanup(self):
        for proc in self.procs.values():
            if proc.p is not None and proc.p.poll() is None:
                proc.stopping = True
                proc.p.kill()
                proc.p.wait()


def main():
    demo = Demo()
    try:
        return demo.run()
    except Failed as exc:
        print(f"FAILED: {exc}", flush=True)
        return 1
    finally:
        demo.cleanup()


if __name__ == "__main__":
    sys.exit(main())

"""Worker: batches, retries, lease extension, SIGKILL and SIGTERM."""
import json
import os
import signal
import subprocess
import sys
import threading
import time

import psycopg
import pytest

import asyncrr
from conftest import HERE, RunningWorker, echo, wait_until


def states(conn, ids):
    return [asyncrr.status(conn, cid) for cid in ids]


class CountingWorker(asyncrr.Worker):
    """Counts the complete_many() batches."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.batches = []

    def _flush(self, claim=0):
        self.batches.append(sum(1 for r in self._results if r.ok))
        super()._flush(claim)


def test_worker_completes_in_batches(dsn, conn, queue):
    ids = asyncrr.submit_many(conn, queue, [{"i": i} for i in range(30)])
    w = RunningWorker(CountingWorker(dsn, queue, echo, batch=10))
    try:
        assert wait_until(lambda: w.worker.stats["completed"] == 30)
    finally:
        w.stop()
    assert w.worker.stats["claimed"] == 30
    assert sum(w.worker.batches) == 30 and len([b for b in w.worker.batches if b]) <= 6
    assert max(w.worker.batches) == 10
    # a busy worker claims with the statement that records its replies
    assert w.worker.stats["claimed_with_replies"] > 0
    for cid, st in zip(ids, states(conn, ids)):
        assert st["state"] == "completed" and st["attempt"] == 1
    for i, cid in enumerate(ids):
        assert asyncrr.wait(conn, cid, 1).reply["echo"] == {"i": i}


def test_worker_concurrency(dsn, conn, queue, start_worker):
    running, peak, lock = [0], [0], threading.Lock()

    def handler(payload, headers):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.2)
        with lock:
            running[0] -= 1
        return payload

    start_worker(queue, handler, concurrency=4, batch=4)
    ids = asyncrr.submit_many(conn, queue, [{"i": i} for i in range(8)])
    t0 = time.monotonic()
    replies = [asyncrr.wait(conn, cid, 10) for cid in ids]
    assert all(r.ok for r in replies)
    assert peak[0] == 4
    assert time.monotonic() - t0 < 1.5        # 8 x 0.2 s on 4 threads


def test_handler_exception_retries_then_succeeds(conn, make_queue, start_worker):
    queue = make_queue(max_attempts=3)
    attempts = []

    def handler(payload, headers):
        attempts.append(payload)
        if len(attempts) == 1:
            raise ValueError("first try fails")
        return {"ok": len(attempts)}

    w = start_worker(queue, handler)
    cid = asyncrr.submit(conn, queue, {"flaky": 1})
    reply = asyncrr.wait(conn, cid, 10)
    assert reply.ok and reply.reply == {"ok": 2}
    assert asyncrr.status(conn, cid)["attempt"] == 2
    assert w.stats["failed"] == 1


def test_handler_that_always_fails_ends_dead_lettered(conn, make_queue, start_worker):
    queue = make_queue(max_attempts=2)

    def handler(payload, headers):
        raise RuntimeError("cannot do " + payload["what"])

    start_worker(queue, handler)
    cid = asyncrr.submit(conn, queue, {"what": "this"})
    reply = asyncrr.wait(conn, cid, 10)
    assert reply.status == "dead_lettered"
    assert "RuntimeError: cannot do this" in reply.error
    st = asyncrr.status(conn, cid)
    assert st["attempt"] == 2 and st["dead_letter_reason"].startswith("max_attempts")


def test_unserializable_reply_is_a_handler_failure(conn, make_queue, start_worker):
    queue = make_queue(max_attempts=1)
    start_worker(queue, lambda p, h: {"nan": float("nan")})
    reply = asyncrr.wait(conn, asyncrr.submit(conn, queue, {}), 10)
    assert reply.status == "dead_lettered" and "ValueError" in reply.error


def test_lease_is_extended_while_the_handler_runs(conn, make_queue, start_worker):
    queue = make_queue(lease="1 second")
    w = start_worker(queue, lambda p, h: time.sleep(2.2) or "slow but sure")
    cid = asyncrr.submit(conn, queue, {})
    reply = asyncrr.wait(conn, cid, 10)
    assert reply.ok and reply.reply == "slow but sure"
    assert asyncrr.status(conn, cid)["attempt"] == 1        # never handed out again
    assert w.stats["extended"] >= 3


def test_worker_stops_promptly_when_idle(dsn, queue):
    w = RunningWorker(asyncrr.Worker(dsn, queue, echo, idle_timeout=30))
    time.sleep(0.5)                     # asleep in wait_for_work by now
    t0 = time.monotonic()
    w.stop()
    assert time.monotonic() - t0 < 2


def test_worker_on_unknown_queue_raises(dsn):
    w = asyncrr.Worker(dsn, "no-such-queue", echo)
    with pytest.raises(asyncrr.UnknownQueue):
        w.run()


def start_proc(dsn, queue, concurrency, batch, lease, sleep, *extra):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (os.path.dirname(HERE), os.environ.get("PYTHONPATH")) if p))
    proc = subprocess.Popen(
        [sys.executable, os.path.join(HERE, "procs.py"), "worker", dsn, queue,
         str(concurrency), str(batch), str(lease), str(sleep), *extra],
        stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "READY"
    return proc


def read_until(proc, prefix):
    lines = []
    for line in proc.stdout:
        lines.append(line.strip())
        if line.startswith(prefix):
            return lines
    return lines


def test_sigkill_mid_job_is_redelivered_after_the_lease(dsn, conn, make_queue, start_worker):
    queue = make_queue(lease="1 second")
    cid = asyncrr.submit(conn, queue, {"n": 1})
    proc = start_proc(dsn, queue, 1, 1, 1, 60)
    try:
        assert read_until(proc, "START")[-1] == "START 1"
        st = asyncrr.status(conn, cid)
        assert st["state"] == "claimed" and st["worker"] == f"proc-{proc.pid}"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    killed_at = time.monotonic()
    start_worker(queue, echo, lease=5)
    reply = asyncrr.wait(conn, cid, 10)
    assert reply.ok and reply.reply["echo"] == {"n": 1}
    # handed out again only once the 1 s lease (extended at most once) ran out
    assert time.monotonic() - killed_at < 6
    st = asyncrr.status(conn, cid)
    assert st["attempt"] == 2 and st["worker"] != f"proc-{proc.pid}"


def test_sigterm_finishes_what_it_holds(dsn, conn, queue):
    ids = asyncrr.submit_many(conn, queue, [{"n": i} for i in range(6)])
    proc = start_proc(dsn, queue, 2, 6, 30, 0.4)
    try:
        read_until(proc, "START")
        assert wait_until(lambda: sum(s["state"] == "claimed" for s in states(conn, ids)) == 6, 5)
        proc.send_signal(signal.SIGTERM)
        lines = read_until(proc, "EXIT")
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    stats = json.loads(lines[-1].split(" ", 1)[1])
    assert stats["completed"] == 6 and stats["released"] == 0
    for st in states(conn, ids):
        assert st["state"] == "completed" and st["attempt"] == 1


def test_sigterm_with_release_hands_back_unstarted_requests(dsn, conn, queue, start_worker):
    ids = asyncrr.submit_many(conn, queue, [{"n": i} for i in range(4)])
    proc = start_proc(dsn, queue, 1, 4, 30, 0.5, "release")
    try:
        read_until(proc, "START")
        proc.send_signal(signal.SIGTERM)
        lines = read_until(proc, "EXIT")
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    stats = json.loads(lines[-1].split(" ", 1)[1])
    assert stats["completed"] == 1 and stats["released"] == 3
    sts = states(conn, ids)
    assert sorted(s["state"] for s in sts) == ["completed", "pending", "pending", "pending"]
    for s in sts:
        if s["state"] == "pending":
            assert s["attempt"] == 1 and "worker stopped" in s["error"]
    # nothing lost: another worker does the rest
    start_worker(queue, echo)
    assert all(asyncrr.wait(conn, cid, 10).ok for cid in ids)


def test_run_async_cancel_stops_gracefully(dsn, conn, queue):
    import asyncio
    done = []

    def handler(payload, headers):
        time.sleep(0.3)
        done.append(payload)
        return payload

    async def main():
        w = asyncrr.Worker(dsn, queue, handler)
        task = asyncio.ensure_future(w.run_async())
        cid = await asyncio.get_running_loop().run_in_executor(
            None, asyncrr.submit, conn, queue, {"x": 1})
        while not w.stats["claimed"]:
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return cid
    cid = asyncio.run(main())
    assert done == [{"x": 1}]
    assert asyncrr.status(conn, cid)["state"] == "completed"


class ClaimCountingWorker(asyncrr.Worker):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.claims = 0

    def _claim(self, n):
        self.claims += 1
        super()._claim(n)


def test_worker_does_not_spin_on_a_locked_request(dsn, conn, queue):
    # A requester's cancel() in a transaction still open keeps the pending
    # request locked: wait_for_work() reports it claimable at once, and
    # claim() skips it.
    with psycopg.connect(dsn) as req:
        cid = asyncrr.submit(conn, queue, {})
        assert asyncrr.cancel(req, cid)               # locks the row, not committed
        w = RunningWorker(ClaimCountingWorker(dsn, queue, echo))
        try:
            time.sleep(1.5)
            spun = w.worker.claims
            req.rollback()
            assert wait_until(lambda: w.worker.stats["completed"] == 1)
        finally:
            w.stop()
    assert spun < 20, f"{spun} claims in 1.5 s"
    assert asyncrr.wait(conn, cid, 1).ok


class TinyPool:
    """The two methods of psycopg_pool.ConnectionPool a Worker uses."""

    def __init__(self, dsn):
        self.dsn, self.out, self.returned = dsn, 0, 0

    def getconn(self):
        self.out += 1
        return psycopg.connect(self.dsn)          # not autocommit: the worker sets it

    def putconn(self, conn):
        self.returned += 1
        conn.close()


def test_worker_with_a_pool(dsn, conn, queue):
    pool = TinyPool(dsn)
    w = RunningWorker(asyncrr.Worker(pool, queue, echo))
    try:
        assert asyncrr.call(conn, queue, {"pooled": True}, timeout=10).ok
    finally:
        w.stop()
    assert pool.out == 2 and pool.returned == 2

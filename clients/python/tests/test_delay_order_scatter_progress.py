"""asyncrr 0.3: delayed requests (not_before), order per key (ordering_key),
scatter-gather (scatter(), parts()) and progress reports
(Job.report_progress, Inbox(on_progress=...), status()'s progress)."""
import asyncio
import datetime
import threading
import time
import uuid

import psycopg
import pytest

import asyncrr
from conftest import echo, wait_until


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


class CountingInbox(asyncrr.Inbox):
    """Counts its take_replies() calls."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.takes = 0

    def _take_round(self, n=None):
        super()._take_round(n)
        self.takes += 1


# ---------------------------------------------------------------- not_before


def test_not_before_is_not_claimable_before_its_time(conn, admin, queue, start_worker):
    not_before = utcnow() + datetime.timedelta(seconds=1.5)
    cid = asyncrr.submit(conn, queue, {"n": 1}, timeout=30, not_before=not_before)
    st = asyncrr.status(conn, cid)
    assert st["state"] == "pending"
    assert st["deadline"] - not_before == datetime.timedelta(seconds=30)   # from not_before
    row = admin.execute("SELECT not_before FROM asyncrr.pending WHERE correlation_id = %s",
                        (cid,)).fetchone()
    assert row[0] == not_before
    assert admin.execute("SELECT count(*) FROM asyncrr.claim(%s)", (queue,)).fetchone()[0] == 0

    # A worker that sleeps in wait_for_work is woken at the time (the
    # background worker makes the request claimable), not at its idle timeout.
    claimed_at = []

    def handler(payload, headers):
        claimed_at.append(utcnow())
        return payload
    start_worker(queue, handler, idle_timeout=30)
    reply = asyncrr.wait(conn, cid, timeout=10)
    assert reply.ok and reply.reply == {"n": 1}
    assert claimed_at[0] >= not_before - datetime.timedelta(milliseconds=20)
    assert claimed_at[0] < not_before + datetime.timedelta(seconds=3)


def test_not_before_submit_many_async_and_bad_types(dsn, conn, admin, queue):
    later = utcnow() + datetime.timedelta(hours=1)
    ids = asyncrr.submit_many(conn, queue, [{"i": 0}, {"i": 1}], not_before=later)
    rows = admin.execute("SELECT correlation_id, not_before FROM asyncrr.pending"
                         " WHERE queue_name = %s", (queue,)).fetchall()
    assert sorted(rows) == sorted((cid, later) for cid in ids)

    async def main():
        aconn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
        async with aconn:
            one = await asyncrr.submit_async(aconn, queue, {"i": 2}, not_before=later,
                                             ordering_key="k")
            many = await asyncrr.submit_many_async(aconn, queue, [{"i": 3}], not_before=later)
            return [one] + many
    more = asyncio.run(main())
    rows = admin.execute("SELECT correlation_id, not_before, ordering_key FROM asyncrr.pending"
                         " WHERE correlation_id = ANY(%s) ORDER BY submitted_at", (more,)).fetchall()
    assert rows == [(more[0], later, "k"), (more[1], later, None)]
    # nothing of them is claimable for an hour
    assert admin.execute("SELECT count(*) FROM asyncrr.claim(%s, 10)", (queue,)).fetchone()[0] == 0

    with pytest.raises(TypeError):
        asyncrr.submit(conn, queue, {}, not_before=5)
    with pytest.raises(TypeError):
        asyncrr.submit(conn, queue, {}, ordering_key=7)


# ---------------------------------------------------------------- ordering_key


def test_ordering_key_runs_one_at_a_time_in_submit_order(conn, admin, queue, start_worker):
    lock = threading.Lock()
    events = []

    def handler(payload, headers):
        with lock:
            events.append(("start", payload["i"]))
        time.sleep(0.1)
        with lock:
            events.append(("end", payload["i"]))
        return payload

    ids = asyncrr.submit_many(conn, queue, [{"i": i} for i in range(4)], ordering_key="acct-1")
    ids += [asyncrr.submit(conn, queue, {"i": i}, ordering_key="acct-1") for i in (4, 5)]
    keys = admin.execute("SELECT DISTINCT ordering_key FROM asyncrr.pending WHERE queue_name = %s",
                         (queue,)).fetchall()
    assert keys == [("acct-1",)]
    # two workers, room for four at once: the key still lets one through at a time
    start_worker(queue, handler, concurrency=2, batch=2)
    start_worker(queue, handler, concurrency=2, batch=2)
    for i, cid in enumerate(ids):
        assert asyncrr.wait(conn, cid, timeout=15).reply == {"i": i}
    expected = []
    for i in range(6):
        expected += [("start", i), ("end", i)]
    assert events == expected


# ---------------------------------------------------------------- scatter


def test_scatter_straggler_times_the_gather_out(conn, make_queue, start_worker):
    qa, qb = make_queue(), make_queue()
    start_worker(qa, echo)                      # nobody serves qb
    gid = asyncrr.scatter(conn, [qa, qb], {"sku": 17}, timeout=1, headers={"trace": "s-1"})
    assert isinstance(gid, uuid.UUID)
    assert asyncrr.status(conn, gid)["queue_name"] == "(scatter)"
    parts = asyncrr.parts(conn, gid)
    assert [p["queue_name"] for p in parts] == sorted([qa, qb])
    assert set(parts[0]) == {"correlation_id", "queue_name", "state", "reply", "error"}
    assert gid not in [p["correlation_id"] for p in parts]

    reply = asyncrr.wait(conn, gid, timeout=10)
    assert reply.correlation_id == gid
    assert reply.status == "timed_out" and not reply.ok
    assert reply.reply == {
        qa: {"status": "completed", "reply": {"echo": {"sku": 17}, "headers": {"trace": "s-1"}}},
        qb: {"status": "timed_out"},
    }
    assert qb in reply.error and qa not in reply.error
    assert {p["queue_name"]: p["state"] for p in asyncrr.parts(conn, gid)} == {
        qa: "completed", qb: "timed_out"}
    assert asyncrr.parts(conn, uuid.uuid4()) == []
    with pytest.raises(asyncrr.UnknownQueue):
        asyncrr.scatter(conn, [qa, "no-such-queue"], {})
    with pytest.raises(TypeError):
        asyncrr.scatter(conn, qa, {})


def test_scatter_through_an_inbox_and_async(dsn, conn, make_queue, start_worker):
    qa, qb = make_queue(), make_queue()
    start_worker(qa, echo)
    start_worker(qb, echo)
    gid = uuid.uuid4()
    with asyncrr.Inbox(conn) as inbox:
        assert inbox.scatter([qa, qb], {"n": 1}, timeout=10, correlation_id=gid) == gid
        # the same gather again (queues in any order): the same id, nothing new
        assert inbox.scatter([qb, qa], {"n": 1}, correlation_id=gid) == gid
        got = []
        for reply in inbox.replies(timeout=10):
            got.append(reply)
            break
        # only the gather replies, never its parts
        assert inbox.take() == [] and list(inbox.replies(timeout=0.3)) == []
    assert [r.correlation_id for r in got] == [gid]
    assert got[0].status == "completed" and got[0].error is None
    assert got[0].reply == {q: {"status": "completed", "reply": {"echo": {"n": 1}, "headers": None}}
                            for q in (qa, qb)}

    async def main():
        aconn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
        async with aconn:
            g = await asyncrr.scatter_async(aconn, [qa, qb], [1, 2], timeout=10)
            r = await asyncrr.wait_async(aconn, g, 10)
            return g, r, await asyncrr.parts_async(aconn, g)
    g, r, ps = asyncio.run(main())
    assert r.correlation_id == g and r.ok
    assert r.reply[qa]["reply"]["echo"] == [1, 2]
    assert [(p["queue_name"], p["state"], p["reply"]["echo"]) for p in ps] == [
        (q, "completed", [1, 2]) for q in sorted([qa, qb])]


# ---------------------------------------------------------------- progress


def test_report_progress_reaches_the_requester(conn, queue, start_worker):
    told = threading.Event()
    results = []

    def handler(payload, headers, job):
        assert isinstance(job, asyncrr.Job) and job.attempt == 1
        results.append(job.report_progress({"pct": 50, "step": "resize"}))
        told.wait(10)            # until the requester has heard of it
        return {"done": True}
    w = start_worker(queue, handler, pass_job=True)

    seen = []

    def on_progress(cid):
        st = asyncrr.status(conn, cid)      # the callback may use the connection
        seen.append((cid, st["state"], st["progress"], st["progress_at"] is not None))
        told.set()
    with asyncrr.Inbox(conn, poll_interval=None, on_progress=on_progress) as inbox:
        cid = inbox.submit(queue, {"job": 1})
        t0 = time.monotonic()
        got = []
        for reply in inbox.replies(timeout=10):
            got.append(reply)
            break
    assert time.monotonic() - t0 < 5, "the handler waited for the callback in vain"
    assert results == [True]
    assert seen == [(cid, "claimed", {"pct": 50, "step": "resize"}, True)]
    assert [r.correlation_id for r in got] == [cid] and got[0].reply == {"done": True}
    st = asyncrr.status(conn, cid)           # kept after the end
    assert st["state"] == "completed" and st["progress"] == {"pct": 50, "step": "resize"}
    assert w.stats["progress"] == 1


def test_progress_notifications_take_nothing(conn, queue, start_worker):
    proceed = threading.Event()

    def handler(payload, headers, job):
        for pct in (25, 50, 75):
            assert job.report_progress({"pct": pct}) is True
            time.sleep(0.05)
        proceed.wait(10)
        return "done"
    start_worker(queue, handler, pass_job=True)

    inbox = CountingInbox(conn, poll_interval=None)
    takes_at = []

    def on_progress(cid):
        takes_at.append((cid, inbox.takes))
        if len(takes_at) == 3:
            proceed.set()
    inbox.on_progress = on_progress
    with inbox:
        cid = inbox.submit(queue, {"job": 2})
        got = []
        for reply in inbox.replies(timeout=10):
            got.append(reply)
            break
        takes_then = inbox.takes
    assert [c for c, _ in takes_at] == [cid] * 3
    first = takes_at[0][1]
    # no take for a progress notification (the first take is the one on entering replies())
    assert first <= 1 and [n for _, n in takes_at] == [first] * 3
    assert [r.correlation_id for r in got] == [cid] and got[0].reply == "done"
    assert takes_then <= first + 2


def test_report_progress_is_false_once_the_request_ended(conn, queue, start_worker):
    reported, cancelled = threading.Event(), threading.Event()
    results = []

    def handler(payload, headers, job):
        results.append(job.report_progress("first"))
        reported.set()
        cancelled.wait(10)
        results.append(job.report_progress("second"))
        return "too late"
    start_worker(queue, handler, pass_job=True)
    cid = asyncrr.submit(conn, queue, {})
    assert reported.wait(10)
    assert asyncrr.cancel(conn, cid) is True
    cancelled.set()
    assert wait_until(lambda: len(results) == 2)
    assert results == [True, False]
    assert asyncrr.status(conn, cid)["progress"] == "first"
    assert asyncrr.wait(conn, cid, 5).status == "cancelled"


def test_progress_on_an_async_inbox(dsn, queue, start_worker):
    told = threading.Event()

    def handler(payload, headers, job):
        job.report_progress(1)
        told.wait(10)
        return "ok"
    start_worker(queue, handler, pass_job=True)

    async def main():
        aconn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
        seen = []

        async def on_progress(cid):              # a coroutine function is awaited
            seen.append((await asyncrr.status_async(aconn, cid))["progress"])
            told.set()
        async with aconn:
            async with asyncrr.Inbox(aconn, poll_interval=None, on_progress=on_progress) as inbox:
                cid = await inbox.submit_async(queue, "x")
                async for reply in inbox.replies_async(timeout=10):
                    return cid, reply, seen
    cid, reply, seen = asyncio.run(main())
    assert reply.correlation_id == cid and reply.reply == "ok"
    assert seen == [1]

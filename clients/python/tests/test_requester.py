"""call(), submit() + wait(), and the smaller requester calls."""
import asyncio
import time
import uuid

import psycopg
import pytest

import asyncrr
from conftest import echo


def test_call_round_trip(conn, queue, start_worker):
    start_worker(queue, echo)
    reply = asyncrr.call(conn, queue, {"image": "cat.png"}, timeout=10)
    assert isinstance(reply, asyncrr.Reply)
    assert reply.ok and reply.status == "completed"
    assert reply.reply == {"echo": {"image": "cat.png"}, "headers": None}
    assert reply.error is None
    assert isinstance(reply.correlation_id, uuid.UUID)
    assert reply.raise_for_status() is reply


def test_call_with_correlation_id_and_timeout_types(conn, queue, start_worker):
    start_worker(queue, echo)
    cid = uuid.uuid4()
    import datetime
    reply = asyncrr.call(conn, queue, [1, 2], timeout=datetime.timedelta(seconds=5),
                         correlation_id=str(cid))
    assert reply.correlation_id == cid and reply.reply["echo"] == [1, 2]
    reply = asyncrr.call(conn, queue, "text", timeout="5 seconds")
    assert reply.reply["echo"] == "text"


def test_call_times_out(conn, queue):
    t0 = time.monotonic()
    reply = asyncrr.call(conn, queue, {"nobody": "listens"}, timeout=0.3)
    assert time.monotonic() - t0 < 5
    assert reply.status == "timed_out" and not reply.ok
    assert reply.error.startswith("no reply within")
    with pytest.raises(asyncrr.ReplyError) as info:
        reply.raise_for_status()
    assert info.value.reply is reply


def test_call_refuses_a_transaction(dsn, queue):
    with psycopg.connect(dsn) as c:            # not autocommit
        with pytest.raises(asyncrr.InTransactionBlock):
            asyncrr.call(c, queue, {})
        # refused before anything was sent: no transaction was opened
        assert c.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def test_submit_then_wait(conn, queue, start_worker):
    cid = asyncrr.submit(conn, queue, {"n": 1}, timeout=10, priority=5, headers={"trace": "t-1"})
    assert isinstance(cid, uuid.UUID)
    start_worker(queue, echo)
    reply = asyncrr.wait(conn, cid, timeout=10)
    assert reply.correlation_id == cid
    assert reply.reply == {"echo": {"n": 1}, "headers": {"trace": "t-1"}}


def test_wait_times_out_then_succeeds(conn, queue, start_worker):
    cid = asyncrr.submit(conn, queue, {"n": 2})
    with pytest.raises(asyncrr.Timeout) as info:
        asyncrr.wait(conn, cid, timeout=0.2)
    assert info.value.correlation_id == cid and info.value.status == "pending"
    assert isinstance(info.value, TimeoutError)
    start_worker(queue, echo)
    assert asyncrr.wait(conn, cid, timeout=None).ok     # None: as long as it takes


def test_submit_in_a_transaction(dsn, conn, queue, start_worker):
    start_worker(queue, echo)
    with psycopg.connect(dsn) as c:
        with c.transaction():
            cid = asyncrr.submit(c, queue, {"atomic": True})
            assert asyncrr.status(conn, cid) is None      # not committed yet
        c.autocommit = True
        assert asyncrr.wait(c, cid, 10).reply["echo"] == {"atomic": True}


def test_submit_is_idempotent(conn, queue):
    cid = uuid.uuid4()
    assert asyncrr.submit(conn, queue, {"a": 1}, correlation_id=cid) == cid
    assert asyncrr.submit(conn, queue, {"a": 1}, correlation_id=cid) == cid
    with pytest.raises(asyncrr.CorrelationIdConflict):
        asyncrr.submit(conn, queue, {"a": 2}, correlation_id=cid)


def test_submit_many_status_cancel(conn, queue):
    ids = asyncrr.submit_many(conn, queue, [{"i": i} for i in range(3)], timeout=30)
    assert len(ids) == 3 and len(set(ids)) == 3
    st = asyncrr.status(conn, ids[0])
    assert st["state"] == "pending" and st["queue_name"] == queue and st["attempt"] == 0
    assert asyncrr.cancel(conn, ids[0]) is True
    assert asyncrr.cancel(conn, ids[0]) is False
    reply = asyncrr.wait(conn, ids[0], 5)
    assert reply.status == "cancelled" and reply.error == "cancelled by the requester"
    assert asyncrr.status(conn, uuid.uuid4()) is None


def test_async_call_submit_wait(dsn, queue, start_worker):
    start_worker(queue, echo)

    async def main():
        aconn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
        async with aconn:
            r1 = await asyncrr.call_async(aconn, queue, {"async": 1}, timeout=10)
            cid = await asyncrr.submit_async(aconn, queue, {"async": 2})
            r2 = await asyncrr.wait_async(aconn, cid, 10)
            st = await asyncrr.status_async(aconn, cid)
            return r1, r2, st
    r1, r2, st = asyncio.run(main())
    assert r1.reply["echo"] == {"async": 1} and r2.reply["echo"] == {"async": 2}
    assert st["state"] == "completed"

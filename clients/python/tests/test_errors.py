"""SQLSTATEs become AsyncrrError subclasses."""
import uuid

import psycopg
import pytest

import asyncrr
from asyncrr.errors import from_psycopg


def test_unknown_queue(conn):
    with pytest.raises(asyncrr.UnknownQueue) as info:
        asyncrr.submit(conn, "no-such-queue", {})
    e = info.value
    assert isinstance(e, asyncrr.NotFound) and isinstance(e, asyncrr.AsyncrrError)
    assert e.sqlstate == "42704" and e.message_primary == 'queue "no-such-queue" does not exist'
    assert isinstance(e.__cause__, psycopg.errors.UndefinedObject) and e.pgerror is e.__cause__
    with pytest.raises(asyncrr.UnknownQueue):
        asyncrr.call(conn, "no-such-queue", {}, timeout=1)


def test_unknown_request(conn):
    with pytest.raises(asyncrr.UnknownRequest):
        asyncrr.cancel(conn, uuid.uuid4())
    with pytest.raises(asyncrr.UnknownRequest):
        asyncrr.wait(conn, uuid.uuid4(), 0)


def test_invalid_and_null_arguments(conn, admin, queue):
    with pytest.raises(asyncrr.InvalidArgument) as info:
        with asyncrr.errors.translate():
            admin.execute("SELECT asyncrr.create_queue('bad name')")
    assert info.value.detail.startswith("Queue names have")
    assert isinstance(info.value, ValueError)
    with pytest.raises(asyncrr.InvalidArgument):
        asyncrr.submit(conn, queue, {}, timeout=-1)
    with pytest.raises(asyncrr.InvalidArgument):
        asyncrr.submit(conn, queue, {}, headers=["not", "an", "object"])
    admin.execute("SELECT asyncrr.alter_queue(%s, max_priority => 10)", (queue,))
    with pytest.raises(asyncrr.InvalidArgument) as info:
        asyncrr.submit(conn, queue, {}, priority=11)
    assert "exceeds max_priority" in str(info.value)
    with pytest.raises(asyncrr.NullArgument) as info:
        asyncrr.submit(conn, None, {})
    assert info.value.sqlstate == "22004" and isinstance(info.value, asyncrr.InvalidArgument)


def test_queue_full_and_queue_exists(conn, admin, queue):
    admin.execute("SELECT asyncrr.alter_queue(%s, max_depth => 1)", (queue,))
    asyncrr.submit(conn, queue, {"n": 1})
    with pytest.raises(asyncrr.QueueFull):
        asyncrr.submit(conn, queue, {"n": 2})
    with pytest.raises(asyncrr.QueueExists):
        with asyncrr.errors.translate():
            admin.execute("SELECT asyncrr.create_queue(%s)", (queue,))


def test_payload_too_large(conn, queue):
    with pytest.raises(asyncrr.PayloadTooLarge) as info:
        asyncrr.submit(conn, queue, {"blob": "x" * (1024 * 1024 + 10)})
    assert info.value.sqlstate == "54000" and "max_payload_bytes" in info.value.detail


def test_not_permitted(cluster, admin, queue):
    admin.execute("DROP ROLE IF EXISTS outsider")
    admin.execute("CREATE ROLE outsider LOGIN IN ROLE asyncrr_requester")
    with psycopg.connect(cluster.dsn(user="outsider"), autocommit=True) as c:
        with pytest.raises(asyncrr.NotPermitted) as info:
            asyncrr.submit(c, queue, {})
        assert str(info.value) == f'permission denied for queue "{queue}"'
        assert isinstance(info.value, PermissionError)
        with pytest.raises(asyncrr.NotPermitted):       # not a worker at all
            asyncrr.Worker(cluster.dsn(user="outsider"), queue, lambda p, h: p).run()
        # another role's durable inbox
        with psycopg.connect(cluster.dsn(), autocommit=True) as owner:
            asyncrr.Inbox(owner, "owned-box").open().close()
        with pytest.raises(asyncrr.NotPermitted):
            asyncrr.Inbox(c, "owned-box").open()


def test_inbox_in_use_and_already_held(dsn, conn, queue):
    with asyncrr.Inbox(conn, "busy-box"):
        with psycopg.connect(dsn, autocommit=True) as other:
            with pytest.raises(asyncrr.InboxInUse) as info:
                asyncrr.Inbox(other, "busy-box").open()
            assert "PID" in info.value.detail
        with pytest.raises(asyncrr.InboxAlreadyHeld):
            asyncrr.Inbox(conn, "other-box").open()


def test_reply_already_taken(conn, queue):
    cid = asyncrr.submit(conn, queue, {})
    asyncrr.cancel(conn, cid)
    asyncrr.wait(conn, cid, 1)
    with pytest.raises(asyncrr.ReplyAlreadyTaken) as info:
        asyncrr.wait(conn, cid, 1)
    assert isinstance(info.value, asyncrr.WrongState)


def test_not_claimed(dsn, conn, queue):
    cid = asyncrr.submit(conn, queue, {})
    with pytest.raises(asyncrr.NotClaimed):
        with asyncrr.errors.translate():
            conn.execute("SELECT asyncrr.complete(%s, '1')", (cid,))


def test_query_cancelled(dsn, queue):
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("SET statement_timeout = '200ms'")
        cid = asyncrr.submit(c, queue, {})
        with pytest.raises(asyncrr.QueryCancelled):
            asyncrr.wait(c, cid, 5)
        # CALL asyncrr.call cancels its request when cancelled
        with pytest.raises(asyncrr.QueryCancelled):
            asyncrr.call(c, queue, {"n": 2}, timeout=5)


def test_wrong_isolation_level(dsn, queue):
    with psycopg.connect(dsn) as c:
        c.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        cid = asyncrr.submit(c, queue, {})
        c.commit()
        with pytest.raises(asyncrr.WrongIsolationLevel):
            asyncrr.wait(c, cid, 1)


def test_other_errors_pass_through(conn):
    with pytest.raises(psycopg.errors.UndefinedFunction):
        with asyncrr.errors.translate():
            conn.execute("SELECT asyncrr.no_such_function()")
    assert from_psycopg(psycopg.errors.UndefinedFunction("x")) is None

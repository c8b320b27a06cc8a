"""Requester calls: ``CALL asyncrr.call``, ``submit()``, waiting for one reply.

Every function takes a psycopg connection the caller owns and leaves its
transaction handling alone: ``submit()`` on a connection that is not in
autocommit mode becomes part of the caller's transaction (it is submitted
when the caller commits).  Each function has an ``..._async`` twin for a
:class:`psycopg.AsyncConnection`.

For many replies on one connection, use :class:`asyncrr.Inbox`.
"""
from __future__ import annotations

import datetime
import uuid
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import psycopg
from psycopg.types.json import Jsonb

from ._types import Duration, Reply, as_uuid, interval
from .errors import InTransactionBlock, Timeout, translate

__all__ = [
    "call", "submit", "submit_many", "wait", "cancel", "status", "scatter", "parts",
    "call_async", "submit_async", "submit_many_async", "wait_async", "cancel_async",
    "status_async", "scatter_async", "parts_async",
]

UuidLike = Union[str, uuid.UUID]

_CALL_SQL = "CALL asyncrr.call(%s, %s, %s::interval, %s::uuid)"
_SUBMIT_SQL = "SELECT asyncrr.submit(%s, %s, %s::interval, %s::uuid, %s, %s::jsonb)"
_SUBMIT_MANY_SQL = ("SELECT asyncrr.submit_many(%s, %s::jsonb[], %s::interval, %s::uuid[],"
                    " %s, %s::jsonb)")
_WAIT_SQL = "CALL asyncrr.wait_for_reply(%s::uuid, %s::interval)"
# not_before and ordering_key (asyncrr 0.3) are passed by name, and only
# when given: the statement of a plain submit is the same as before.
_NOT_BEFORE_ARG = ", not_before => %s::timestamptz"
_ORDERING_KEY_ARG = ", ordering_key => %s::text"
_CANCEL_SQL = "SELECT asyncrr.cancel(%s::uuid)"
_STATUS_SQL = ("SELECT correlation_id, queue_name, state, attempt, worker, submitted_at,"
               " deadline, finished_at, reply, error, dead_letter_reason,"
               " progress, progress_at"
               " FROM asyncrr.status(%s::uuid)")
_STATUS_COLUMNS = ("correlation_id", "queue_name", "state", "attempt", "worker",
                   "submitted_at", "deadline", "finished_at", "reply", "error",
                   "dead_letter_reason", "progress", "progress_at")
_SCATTER_SQL = "SELECT asyncrr.scatter(%s::text[], %s::jsonb, %s::interval, %s::uuid, %s::jsonb)"
_PARTS_SQL = ("SELECT correlation_id, queue_name, state, reply, error"
              " FROM asyncrr.parts(%s::uuid)")
_PARTS_COLUMNS = ("correlation_id", "queue_name", "state", "reply", "error")

# wait(timeout=None) waits in slices of this many seconds.
_FOREVER_SLICE = 3600.0


def _check_autocommit(conn) -> None:
    """CALL asyncrr.call commits: refuse a connection that is in a transaction or could open one."""
    if not conn.autocommit or conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        raise InTransactionBlock(
            "asyncrr.call needs a connection in autocommit mode, outside a transaction;"
            " use submit() and wait() inside transactions")


def _call_args(queue, payload, timeout, correlation_id):
    """Parameters of CALL asyncrr.call."""
    return (queue, Jsonb(payload), interval(timeout), as_uuid(correlation_id))


def _call_reply(row) -> Reply:
    """The Reply of a CALL asyncrr.call row."""
    cid, status_, reply, error = row
    return Reply(cid, status_, reply, error)


def _scheduling(sql: str, params: Tuple, not_before, ordering_key) -> Tuple[str, Tuple]:
    """A submit statement and its parameters with not_before and
    ordering_key added by name where given."""
    if not_before is not None:
        if not isinstance(not_before, datetime.datetime):
            raise TypeError(f"not_before must be a datetime, not {not_before!r}")
        sql = sql[:-1] + _NOT_BEFORE_ARG + ")"
        params += (not_before,)
    if ordering_key is not None:
        if not isinstance(ordering_key, str):
            raise TypeError(f"ordering_key must be a str, not {ordering_key!r}")
        sql = sql[:-1] + _ORDERING_KEY_ARG + ")"
        params += (ordering_key,)
    return sql, params


def _submit_args(queue, payload, timeout, correlation_id, priority, headers,
                 not_before=None, ordering_key=None):
    """Statement and parameters of asyncrr.submit()."""
    return _scheduling(_SUBMIT_SQL, (
        queue, Jsonb(payload), interval(timeout), as_uuid(correlation_id),
        0 if priority is None else priority,
        None if headers is None else Jsonb(headers)), not_before, ordering_key)


def _submit_many_args(queue, payloads, timeout, correlation_ids, priority, headers,
                      not_before=None, ordering_key=None):
    """Statement and parameters of asyncrr.submit_many()."""
    payloads = list(payloads)
    ids = None if correlation_ids is None else [as_uuid(c) for c in correlation_ids]
    return _scheduling(_SUBMIT_MANY_SQL, (
        queue, [Jsonb(p) for p in payloads], interval(timeout), ids,
        0 if priority is None else priority,
        None if headers is None else Jsonb(headers)), not_before, ordering_key)


def _scatter_args(queues, payload, timeout, correlation_id, headers):
    """Parameters of asyncrr.scatter()."""
    if isinstance(queues, str):
        raise TypeError("queues must be a list of queue names, not a str")
    return (list(queues), Jsonb(payload), interval(timeout), as_uuid(correlation_id),
            None if headers is None else Jsonb(headers))


def _part_rows(rows) -> List[Dict[str, Any]]:
    """parts() rows as dicts."""
    return [dict(zip(_PARTS_COLUMNS, r)) for r in rows]


def _wait_slices(timeout: Optional[Duration]):
    """The interval of each CALL wait_for_reply: one for a timeout, an
    endless series of long ones for None."""
    if timeout is None:
        while True:
            yield interval(_FOREVER_SLICE)
    else:
        yield interval(timeout)


def _wait_result(correlation_id, row, timeout) -> Optional[Reply]:
    """The Reply of a wait_for_reply row, or None while the request is live."""
    status_, reply, error = row
    if status_ in ("pending", "claimed"):
        return None
    return Reply(correlation_id, status_, reply, error)


def _timeout(correlation_id, status_, timeout) -> Timeout:
    """The Timeout raised when wait() got no reply."""
    return Timeout(f"no reply to request {correlation_id} within {timeout}"
                   f" (it is {status_})", correlation_id, status_)


def _status_row(row) -> Optional[Dict[str, Any]]:
    """A status() row as a dict."""
    return None if row is None else dict(zip(_STATUS_COLUMNS, row))


# ---------------------------------------------------------------- sync


def call(conn: psycopg.Connection, queue: str, payload: Any,
         timeout: Optional[Duration] = None,
         correlation_id: Optional[UuidLike] = None) -> Reply:
    """Submit a request and wait for its reply in one statement
    (``CALL asyncrr.call``).

    ``payload`` is any JSON-serializable value.  ``timeout`` (seconds, a
    :class:`~datetime.timedelta` or an interval string; default: the
    queue's ``default_timeout``) sets the request's deadline: with no reply
    by then the request ends ``timed_out`` and that is what is returned.
    ``correlation_id`` makes the call idempotent: calling again with the
    same id and payload waits for the same request.

    The connection must be in autocommit mode and outside a transaction
    (else :class:`~asyncrr.InTransactionBlock`, raised before anything is
    sent).  If the call is interrupted (``KeyboardInterrupt`` makes
    psycopg cancel the query) or the connection is lost, the server cancels
    the request.  Returns a :class:`~asyncrr.Reply` whatever the outcome;
    use :meth:`~asyncrr.Reply.raise_for_status` to turn a failure into an
    exception."""
    _check_autocommit(conn)
    with translate():
        row = conn.execute(_CALL_SQL, _call_args(queue, payload, timeout, correlation_id)).fetchone()
    return _call_reply(row)


def submit(conn: psycopg.Connection, queue: str, payload: Any,
           timeout: Optional[Duration] = None,
           correlation_id: Optional[UuidLike] = None,
           priority: Optional[int] = None,
           headers: Optional[Mapping[str, Any]] = None,
           not_before: Optional[datetime.datetime] = None,
           ordering_key: Optional[str] = None) -> uuid.UUID:
    """Enqueue a request (``asyncrr.submit``) and return its correlation id.

    The reply goes to the inbox this session holds; if it holds none, the
    server opens a session inbox (and LISTENs on it).  Open an
    :class:`~asyncrr.Inbox` first to choose a durable inbox.

    ``timeout``: time to the deadline (default: the queue's
    ``default_timeout``); ``correlation_id``: the id to use (default: a new
    random one; submitting the same id and payload again is a no-op);
    ``priority``: higher is claimed first (default 0); ``headers``: a JSON
    object handed to the worker with the payload.

    ``not_before`` (a :class:`~datetime.datetime`; give it a time zone, as
    a naive one is read in the session's ``TimeZone``): the request is not
    claimable before then (asyncrr's background worker makes it claimable
    within ``asyncrr.precision``); its deadline is ``not_before`` plus the
    timeout; a time in the past means now.  ``ordering_key``: within the
    queue, the request is claimable only once every earlier request with
    the same key (in submit order) has ended; a retry keeps its place.
    Both are passed by name (``not_before =>``, ``ordering_key =>``) and
    need asyncrr 0.3.

    On a connection that is not in autocommit mode the request is part of
    the open transaction and exists once the caller commits."""
    with translate():
        row = conn.execute(*_submit_args(
            queue, payload, timeout, correlation_id, priority, headers,
            not_before, ordering_key)).fetchone()
    return row[0]


def submit_many(conn: psycopg.Connection, queue: str, payloads: Iterable[Any],
                timeout: Optional[Duration] = None,
                correlation_ids: Optional[Sequence[Optional[UuidLike]]] = None,
                priority: Optional[int] = None,
                headers: Optional[Mapping[str, Any]] = None,
                not_before: Optional[datetime.datetime] = None,
                ordering_key: Optional[str] = None) -> List[uuid.UUID]:
    """Enqueue one request per payload in one statement
    (``asyncrr.submit_many``); all or nothing.  Returns the correlation ids
    in the order of ``payloads``.  The other arguments are as for
    :func:`submit` and apply to every request; ``correlation_ids``, if
    given, pairs an id (or ``None`` for a new one) with each payload.  With
    ``ordering_key`` the requests are handled one after the other, in the
    order of ``payloads``."""
    with translate():
        rows = conn.execute(*_submit_many_args(
            queue, payloads, timeout, correlation_ids, priority, headers,
            not_before, ordering_key)).fetchall()
    return [r[0] for r in rows]


def wait(conn: psycopg.Connection, correlation_id: UuidLike,
         timeout: Optional[Duration]) -> Reply:
    """Wait for the reply to one request of this session's inbox and take
    it (``CALL asyncrr.wait_for_reply``, which holds no snapshot while it
    sleeps).

    Returns the :class:`~asyncrr.Reply` as soon as the request has ended (at
    once if it has already).  Raises :class:`~asyncrr.Timeout` if
    ``timeout`` passes first (nothing is taken; the request goes on);
    ``timeout=None`` waits for as long as it takes.  Raises
    :class:`~asyncrr.UnknownRequest` for a request of another inbox (after
    a reconnect, open its durable inbox first) and
    :class:`~asyncrr.ReplyAlreadyTaken` if something else took the reply.

    The request must have been committed before: waiting in the transaction
    that submitted it lasts until the timeout.  On a connection that is not
    in autocommit mode the reply is taken when the caller commits."""
    cid = as_uuid(correlation_id)
    row = None
    for slice_ in _wait_slices(timeout):
        with translate():
            row = conn.execute(_WAIT_SQL, (cid, slice_)).fetchone()
        reply = _wait_result(cid, row, timeout)
        if reply is not None:
            return reply
    raise _timeout(cid, row[0], timeout)


def cancel(conn: psycopg.Connection, correlation_id: UuidLike) -> bool:
    """Give up on a live request of this role (``asyncrr.cancel``): it ends
    ``cancelled`` and its inbox gets that reply.  Returns False if it had
    already ended; raises :class:`~asyncrr.UnknownRequest` for an unknown
    id (or another role's)."""
    with translate():
        return conn.execute(_CANCEL_SQL, (as_uuid(correlation_id),)).fetchone()[0]


def status(conn: psycopg.Connection, correlation_id: UuidLike) -> Optional[Dict[str, Any]]:
    """The whole story of a request of this role (``asyncrr.status``) as a
    dict with the keys ``correlation_id``, ``queue_name``, ``state``,
    ``attempt``, ``worker``, ``submitted_at``, ``deadline``,
    ``finished_at``, ``reply``, ``error``, ``dead_letter_reason``,
    ``progress`` and ``progress_at`` (the last progress a worker reported
    with ``report_progress()``, and when; ``None`` if none; kept after the
    request ends); ``None`` for an unknown id.  Takes nothing.

    For a gather (:func:`scatter`) ``queue_name`` is ``(scatter)``."""
    with translate():
        return _status_row(conn.execute(_STATUS_SQL, (as_uuid(correlation_id),)).fetchone())


def scatter(conn: psycopg.Connection, queues: Sequence[str], payload: Any,
            timeout: Optional[Duration] = None,
            correlation_id: Optional[UuidLike] = None,
            headers: Optional[Mapping[str, Any]] = None) -> uuid.UUID:
    """Scatter-gather (``asyncrr.scatter``): one request per queue (its
    *parts*: 1 to 100 distinct queues, the same ``payload`` and
    ``headers``), gathered in one request whose correlation id is returned.

    Only the gather replies, to this session's inbox like :func:`submit`
    (take it with :func:`wait`, :meth:`Inbox.replies`, ...): once its last
    part has ended, or at its deadline (``timeout``, default: the smallest
    ``default_timeout`` of the queues; the parts share it).  Its
    :class:`~asyncrr.Reply` has as ``reply`` a dict keyed by queue name,
    ``{"q": {"status": "completed", "reply": ...}, "r": {"status":
    "failed", "error": "..."}, "s": {"status": "timed_out"}}``, and as
    ``status`` ``completed`` if every part completed, ``timed_out`` if one
    timed out, ``cancelled`` if one was cancelled (:func:`cancel` on the
    gather cancels its unfinished parts), else ``failed``; ``error`` then
    names the parts that did not complete.

    ``correlation_id`` makes it idempotent (the same queues, in any order,
    and payload return the same gather).  Nothing is written on an error.
    :func:`parts` lists the parts."""
    with translate():
        return conn.execute(_SCATTER_SQL, _scatter_args(
            queues, payload, timeout, correlation_id, headers)).fetchone()[0]


def parts(conn: psycopg.Connection, correlation_id: UuidLike) -> List[Dict[str, Any]]:
    """The parts of a gather of this role (``asyncrr.parts``), ordered by
    queue name, as dicts with the keys ``correlation_id``, ``queue_name``,
    ``state``, ``reply`` and ``error``; an empty list for an unknown id (or
    one that is not a gather).  Takes nothing."""
    with translate():
        return _part_rows(conn.execute(_PARTS_SQL, (as_uuid(correlation_id),)).fetchall())


# ---------------------------------------------------------------- async


async def call_async(conn: psycopg.AsyncConnection, queue: str, payload: Any,
                     timeout: Optional[Duration] = None,
                     correlation_id: Optional[UuidLike] = None) -> Reply:
    """:func:`call` on a :class:`psycopg.AsyncConnection`."""
    _check_autocommit(conn)
    with translate():
        cur = await conn.execute(_CALL_SQL, _call_args(queue, payload, timeout, correlation_id))
        row = await cur.fetchone()
    return _call_reply(row)


async def submit_async(conn: psycopg.AsyncConnection, queue: str, payload: Any,
                       timeout: Optional[Duration] = None,
                       correlation_id: Optional[UuidLike] = None,
                       priority: Optional[int] = None,
                       headers: Optional[Mapping[str, Any]] = None,
                       not_before: Optional[datetime.datetime] = None,
                       ordering_key: Optional[str] = None) -> uuid.UUID:
    """:func:`submit` on a :class:`psycopg.AsyncConnection`."""
    with translate():
        cur = await conn.execute(*_submit_args(
            queue, payload, timeout, correlation_id, priority, headers,
            not_before, ordering_key))
        row = await cur.fetchone()
    return row[0]


async def submit_many_async(conn: psycopg.AsyncConnection, queue: str, payloads: Iterable[Any],
                            timeout: Optional[Duration] = None,
                            correlation_ids: Optional[Sequence[Optional[UuidLike]]] = None,
                            priority: Optional[int] = None,
                            headers: Optional[Mapping[str, Any]] = None,
                            not_before: Optional[datetime.datetime] = None,
                            ordering_key: Optional[str] = None) -> List[uuid.UUID]:
    """:func:`submit_many` on a :class:`psycopg.AsyncConnection`."""
    with translate():
        cur = await conn.execute(*_submit_many_args(
            queue, payloads, timeout, correlation_ids, priority, headers,
            not_before, ordering_key))
        rows = await cur.fetchall()
    return [r[0] for r in rows]


async def wait_async(conn: psycopg.AsyncConnection, correlation_id: UuidLike,
                     timeout: Optional[Duration]) -> Reply:
    """:func:`wait` on a :class:`psycopg.AsyncConnection`."""
    cid = as_uuid(correlation_id)
    row = None
    for slice_ in _wait_slices(timeout):
        with translate():
            cur = await conn.execute(_WAIT_SQL, (cid, slice_))
            row = await cur.fetchone()
        reply = _wait_result(cid, row, timeout)
        if reply is not None:
            return reply
    raise _timeout(cid, row[0], timeout)


async def cancel_async(conn: psycopg.AsyncConnection, correlation_id: UuidLike) -> bool:
    """:func:`cancel` on a :class:`psycopg.AsyncConnection`."""
    with translate():
        cur = await conn.execute(_CANCEL_SQL, (as_uuid(correlation_id),))
        return (await cur.fetchone())[0]


async def status_async(conn: psycopg.AsyncConnection,
                       correlation_id: UuidLike) -> Optional[Dict[str, Any]]:
    """:func:`status` on a :class:`psycopg.AsyncConnection`."""
    with translate():
        cur = await conn.execute(_STATUS_SQL, (as_uuid(correlation_id),))
        return _status_row(await cur.fetchone())


async def scatter_async(conn: psycopg.AsyncConnection, queues: Sequence[str], payload: Any,
                        timeout: Optional[Duration] = None,
                        correlation_id: Optional[UuidLike] = None,
                        headers: Optional[Mapping[str, Any]] = None) -> uuid.UUID:
    """:func:`scatter` on a :class:`psycopg.AsyncConnection`."""
    with translate():
        cur = await conn.execute(_SCATTER_SQL, _scatter_args(
            queues, payload, timeout, correlation_id, headers))
        return (await cur.fetchone())[0]


async def parts_async(conn: psycopg.AsyncConnection,
                      correlation_id: UuidLike) -> List[Dict[str, Any]]:
    """:func:`parts` on a :class:`psycopg.AsyncConnection`."""
    with translate():
        cur = await conn.execute(_PARTS_SQL, (as_uuid(correlation_id),))
        return _part_rows(await cur.fetchall())

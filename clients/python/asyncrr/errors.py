"""Exceptions raised by the asyncrr client.

asyncrr reports every refusal with a SQLSTATE (doc/reference.md, "Errors").
The client turns a :class:`psycopg.Error` carrying one of those SQLSTATEs
into a subclass of :class:`AsyncrrError`; the original psycopg exception is
kept as ``__cause__`` and as :attr:`AsyncrrError.pgerror`.  Errors with any
other SQLSTATE, and errors without one (a lost connection, for example),
are raised unchanged as psycopg exceptions.

Where one SQLSTATE covers several situations, the message text picks a more
precise subclass (for example 42704 becomes :class:`UnknownQueue` for
``queue "q" does not exist`` and :class:`UnknownRequest` for
``request "..." does not exist``); every such subclass derives from the
class of its SQLSTATE, so ``except NotFound`` catches both.

Two exceptions are raised by the client itself, not by the server:
:class:`Timeout` (no reply within the time :func:`asyncrr.wait` was given)
and :class:`ReplyError` (from :meth:`asyncrr.Reply.raise_for_status`).
"""
from __future__ import annotations

import contextlib
import re
from typing import Dict, Iterator, List, Optional, Tuple, Type

import psycopg

__all__ = [
    "AsyncrrError",
    "InvalidArgument",
    "NullArgument",
    "CorrelationIdConflict",
    "InTransactionBlock",
    "NotPermitted",
    "NotFound",
    "UnknownQueue",
    "UnknownRequest",
    "UnknownDeadLetter",
    "QueueExists",
    "QueueFull",
    "PayloadTooLarge",
    "WrongState",
    "NotPreloaded",
    "WrongIsolationLevel",
    "InboxAlreadyHeld",
    "QueueNotEmpty",
    "NotClaimed",
    "ClaimSuperseded",
    "ReplyAlreadyTaken",
    "InboxInUse",
    "QueryCancelled",
    "Timeout",
    "ReplyError",
    "translate",
    "from_psycopg",
]


class AsyncrrError(Exception):
    """Base class of every exception the asyncrr client raises.

    Attributes (``None`` for the client's own :class:`Timeout` and
    :class:`ReplyError`):

    ``sqlstate``
        the five-character SQLSTATE reported by the server;
    ``message_primary``, ``detail``, ``hint``
        the server's message, DETAIL and HINT;
    ``pgerror``
        the :class:`psycopg.Error` that was translated.
    """

    #: SQLSTATE of the class (``None`` for errors made by the client).
    SQLSTATE: Optional[str] = None

    def __init__(self, message: str = "", *, pgerror: Optional[psycopg.Error] = None):
        super().__init__(message)
        self.pgerror = pgerror
        diag = pgerror.diag if pgerror is not None else None
        self.sqlstate: Optional[str] = (
            pgerror.sqlstate if pgerror is not None else self.SQLSTATE)
        self.message_primary: Optional[str] = diag.message_primary if diag else message
        self.detail: Optional[str] = diag.message_detail if diag else None
        self.hint: Optional[str] = diag.message_hint if diag else None


class InvalidArgument(AsyncrrError, ValueError):
    """22023 ``invalid_parameter_value``: an argument was refused.

    Invalid queue or inbox names, non-positive intervals, a priority over
    the queue's ``max_priority`` or a timeout over its ``max_timeout``,
    arrays of different lengths, headers that are not a JSON object, ..."""

    SQLSTATE = "22023"


class NullArgument(InvalidArgument):
    """22004 ``null_value_not_allowed``: a required argument was NULL."""

    SQLSTATE = "22004"


class CorrelationIdConflict(AsyncrrError):
    """23505 ``unique_violation``: the correlation id is already used by a
    request with another queue or payload, or by another role's request."""

    SQLSTATE = "23505"


class InTransactionBlock(AsyncrrError):
    """25001 ``active_sql_transaction``: ``CALL asyncrr.call`` needs
    autocommit and was run inside a transaction block.

    :func:`asyncrr.call` raises it itself, before sending anything, when the
    connection is not in autocommit mode or has a transaction open."""

    SQLSTATE = "25001"


class NotPermitted(AsyncrrError, PermissionError):
    """42501 ``insufficient_privilege``: the role lacks the asyncrr role a
    function needs, the queue privilege (``submit`` or ``claim``), or the
    durable inbox belongs to another role."""

    SQLSTATE = "42501"


class NotFound(AsyncrrError, LookupError):
    """42704 ``undefined_object``: something named does not exist (or is
    not visible to this role; asyncrr does not tell the two apart)."""

    SQLSTATE = "42704"


class UnknownQueue(NotFound):
    """42704 ``queue "q" does not exist``."""


class UnknownRequest(NotFound):
    """42704 ``request "..." does not exist``: no such request, another
    role's, one of a queue the worker may not claim from, or (for
    :func:`asyncrr.wait`) one of another inbox than this session's."""


class UnknownDeadLetter(NotFound):
    """42704 ``dead letter "..." does not exist`` (``redrive``)."""


class QueueExists(AsyncrrError):
    """42710 ``duplicate_object``: ``create_queue`` of an existing queue."""

    SQLSTATE = "42710"


class QueueFull(AsyncrrError):
    """53400 ``configuration_limit_exceeded``: the queue holds its
    ``max_depth`` live requests; nothing was written."""

    SQLSTATE = "53400"


class PayloadTooLarge(AsyncrrError):
    """54000 ``program_limit_exceeded``: a payload, headers, reply or error
    text larger than ``asyncrr.max_payload_bytes`` (also: a worker label
    over 200 bytes)."""

    SQLSTATE = "54000"


class WrongState(AsyncrrError):
    """55000 ``object_not_in_prerequisite_state``: the call does not fit the
    state of the request, inbox, queue, session or server."""

    SQLSTATE = "55000"


class NotPreloaded(WrongState):
    """55000: waiting in the server needs asyncrr in
    ``shared_preload_libraries``."""


class WrongIsolationLevel(WrongState):
    """55000: waiting in the server needs the READ COMMITTED isolation
    level."""


class InboxAlreadyHeld(WrongState):
    """55000 ``this session already holds inbox "..."``: close it first."""


class QueueNotEmpty(WrongState):
    """55000 ``queue "q" has N live requests`` (``drop_queue`` without
    ``force``)."""


class NotClaimed(WrongState):
    """55000 ``request "..." is not claimed``: ``complete``, ``fail`` or
    ``extend_lease`` of a request that is pending (its lease ran out) or
    that has ended."""


class ClaimSuperseded(WrongState):
    """55000 ``claim of request "..." is no longer current``: another claim
    of the request replaced this worker's (``extend_lease``)."""


class ReplyAlreadyTaken(WrongState):
    """55000 ``the reply to request "..." was already taken``."""


class InboxInUse(AsyncrrError):
    """55006 ``object_in_use``: another live session holds the durable
    inbox (the DETAIL names its PID)."""

    SQLSTATE = "55006"


class QueryCancelled(AsyncrrError):
    """57014 ``query_canceled``: a wait was cancelled, or reached
    ``statement_timeout`` (raised by PostgreSQL, not by asyncrr)."""

    SQLSTATE = "57014"


class Timeout(AsyncrrError, TimeoutError):
    """No reply within the time given to :func:`asyncrr.wait`.

    Raised by the client: the request is still live, nothing was taken, and
    a later wait may still get its reply.  ``correlation_id`` is the
    request's id and ``status`` its live state (``pending`` or
    ``claimed``)."""

    def __init__(self, message: str, correlation_id=None, status: Optional[str] = None):
        super().__init__(message)
        self.correlation_id = correlation_id
        self.status = status


class ReplyError(AsyncrrError):
    """Raised by :meth:`asyncrr.Reply.raise_for_status` for a request that
    did not end ``completed``; ``reply`` is the :class:`asyncrr.Reply`."""

    def __init__(self, reply):
        super().__init__(f"request {reply.correlation_id} ended {reply.status}: {reply.error}")
        self.reply = reply


_BY_SQLSTATE: Dict[str, Type[AsyncrrError]] = {
    cls.SQLSTATE: cls
    for cls in (InvalidArgument, NullArgument, CorrelationIdConflict, InTransactionBlock,
                NotPermitted, NotFound, QueueExists, QueueFull, PayloadTooLarge,
                WrongState, InboxInUse, QueryCancelled)
}

# Refinements by message text, tried in order within a SQLSTATE.
_BY_MESSAGE: Dict[str, List[Tuple["re.Pattern[str]", Type[AsyncrrError]]]] = {
    "42704": [
        (re.compile(r'^queue ".*" does not exist'), UnknownQueue),
        (re.compile(r'^request ".*" does not exist'), UnknownRequest),
        (re.compile(r'^dead letter ".*" does not exist'), UnknownDeadLetter),
    ],
    "55000": [
        (re.compile(r"requires asyncrr to be loaded via shared_preload_libraries"), NotPreloaded),
        (re.compile(r"requires the READ COMMITTED isolation level"), WrongIsolationLevel),
        (re.compile(r"^this session already holds inbox"), InboxAlreadyHeld),
        (re.compile(r'^queue ".*" has \d+ live requests'), QueueNotEmpty),
        (re.compile(r'^request ".*" is not claimed'), NotClaimed),
        (re.compile(r'^claim of request ".*" is no longer current'), ClaimSuperseded),
        (re.compile(r'^the reply to request ".*" was already taken'), ReplyAlreadyTaken),
    ],
}


def from_psycopg(err: psycopg.Error) -> Optional[AsyncrrError]:
    """The :class:`AsyncrrError` for a psycopg error, or ``None`` when its
    SQLSTATE is not one asyncrr documents."""
    state = getattr(err, "sqlstate", None)
    cls = _BY_SQLSTATE.get(state or "")
    if cls is None:
        return None
    primary = err.diag.message_primary or str(err)
    for pattern, sub in _BY_MESSAGE.get(state, ()):
        if pattern.search(primary):
            cls = sub
            break
    return cls(primary, pgerror=err)


@contextlib.contextmanager
def translate() -> Iterator[None]:
    """Context manager: re-raise a psycopg error with a documented asyncrr
    SQLSTATE as the matching :class:`AsyncrrError`; anything else passes
    through unchanged."""
    try:
        yield
    except psycopg.Error as err:
        mapped = from_psycopg(err)
        if mapped is None:
            raise
        raise mapped from err

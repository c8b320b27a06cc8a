"""The :class:`Reply` dataclass and small conversions shared by the client."""
from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass
from typing import Any, Optional, Union

from .errors import ReplyError

#: A duration as the client accepts it: seconds (int or float), a
#: :class:`datetime.timedelta`, or a PostgreSQL interval literal such as
#: ``"2 minutes"``.
Duration = Union[int, float, datetime.timedelta, str]

#: States in which a request has ended; ``pending`` and ``claimed`` are live.
FINAL_STATES = frozenset({"completed", "failed", "timed_out", "cancelled", "dead_lettered"})


@dataclass(frozen=True)
class Reply:
    """The outcome of a request, as asyncrr hands it out once.

    ``correlation_id``
        the request's id (:class:`uuid.UUID`);
    ``status``
        its final state: ``completed``, ``failed``, ``timed_out``,
        ``cancelled`` or ``dead_lettered``;
    ``reply``
        the worker's reply (decoded JSON) for ``completed``, else ``None``;
        for a gather (:func:`asyncrr.scatter`), whatever its status, the
        parts' outcomes keyed by queue name;
    ``error``
        the error text for the other states (``fail()``'s error,
        ``no reply within ...``, ``cancelled by the requester``, ...);
    ``finished_at``
        when it ended (``None`` where the server does not report it, as
        for ``CALL asyncrr.call``).
    """

    correlation_id: uuid.UUID
    status: str
    reply: Any
    error: Optional[str]
    finished_at: Optional[datetime.datetime] = None

    @property
    def ok(self) -> bool:
        """True if the request ended ``completed``."""
        return self.status == "completed"

    def raise_for_status(self) -> "Reply":
        """Return the reply if it is ``completed``; raise
        :class:`asyncrr.ReplyError` otherwise."""
        if not self.ok:
            raise ReplyError(self)
        return self


def interval(value: Optional[Duration]) -> Optional[Union[datetime.timedelta, str]]:
    """A duration as a value psycopg sends as an interval (with a
    ``::interval`` cast in the statement); ``None`` stays ``None``."""
    if value is None or isinstance(value, (datetime.timedelta, str)):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected seconds, a timedelta or an interval string, not {value!r}")
    return datetime.timedelta(seconds=value)


def seconds(value: Optional[Duration]) -> Optional[float]:
    """A duration in seconds, for the client's own clocks; an interval
    string is not accepted here (``None`` stays ``None``)."""
    if value is None:
        return None
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected seconds or a timedelta, not {value!r}")
    return float(value)


def as_uuid(value: Union[str, uuid.UUID, None]) -> Optional[uuid.UUID]:
    """A correlation id as a :class:`uuid.UUID` (``None`` stays ``None``)."""
    if value is None or isinstance(value, uuid.UUID):
        return value
    return uuid.UUID(str(value))

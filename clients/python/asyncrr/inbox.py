"""An inbox: many requests in flight on one connection, replies as they come.

:class:`Inbox` opens an inbox with ``asyncrr.open_inbox()``, which LISTENs on
its channel, and hands out the replies that arrive in it, taking them in
batches with ``asyncrr.take_replies()``.  A notification is only a wake-up
call: the replies are in the inbox, and the inbox is the truth.  So:

* on open, the LISTEN is committed first, then whatever is already waiting
  is taken (replies that came while the requester was away, in a durable
  inbox), and only then does the inbox wait for notifications: a reply that
  commits after the LISTEN is notified, one that committed before it is
  taken by the first take, and nothing falls in between;
* after every notification it takes again, until a take comes back short;
* a notified reply that a take did not return (``take_replies()`` skips
  rows another transaction holds, such as a worker's late ``complete()``)
  is looked for again, with a growing pause, for a few seconds;
* and every ``poll_interval`` seconds it takes once anyway, in case a
  notification was lost (they are not durable).

A notification whose status is ``progress`` (a worker's
``report_progress()``) is not a reply and leads to no take: it is handed to
the ``on_progress`` callback, if there is one, and dropped otherwise.

Replies that have been taken but not yet handed out stay in the object, so
breaking out of a loop loses nothing: the next loop, or :meth:`Inbox.take`,
returns them first.
"""
from __future__ import annotations

import asyncio
import collections
import datetime
import inspect
import json
import selectors
import time
import uuid
from typing import (Any, AsyncIterator, Callable, Deque, Dict, Iterator, List, Mapping,
                    Optional, Sequence, Set, Union)

import psycopg

from ._types import Duration, Reply, seconds
from .errors import InboxInUse, translate
from . import requester

__all__ = ["Inbox"]

_OPEN_SQL = "SELECT asyncrr.open_inbox(%s)"
_CLOSE_SQL = "SELECT asyncrr.close_inbox(%s)"
_TAKE_SQL = ("SELECT correlation_id, status, reply, error, finished_at"
             " FROM asyncrr.take_replies(%s)")
_CHANNEL_PREFIX = "asyncrr."

# A notified reply that takes do not return is looked for again after
# _RETRY_FIRST seconds, doubling up to _RETRY_MAX, and forgotten after
# _GIVE_UP seconds (someone else took it: a wait() on this session, say).
_RETRY_FIRST = 0.05
_RETRY_MAX = 1.0
_GIVE_UP = 10.0
# How many taken correlation ids are remembered, to ignore notifications
# that arrive after their reply was taken.
_RECENT = 4096

#: ``on_progress(correlation_id)``: told of a progress report (see :class:`Inbox`).
ProgressCallback = Callable[[uuid.UUID], Any]


def _notify_mode(conn) -> str:
    """How to wait for notifications with this psycopg.

    ``"socket"`` (psycopg 3.1, whose ``notifies()`` has no timeout): wait
    for the socket to be readable, read what came, and pass it to
    psycopg's notify handlers, ours among them.

    ``"notifies"`` (psycopg 3.2 and later): ``notifies(timeout=...,
    stop_after=1)``.  Since 3.2.4 psycopg also keeps every notification it
    reads during a query in a backlog that only ``notifies()`` empties, and
    hands that backlog out first: there the inbox registers no handler
    (psycopg warns about mixing the two), and calling ``notifies()`` is
    what keeps the backlog from growing.  Before 3.2.4 a handler catches
    the notifications read during queries.
    """
    try:
        params = inspect.signature(conn.notifies).parameters
    except (TypeError, ValueError):
        return "socket"
    return "notifies" if "timeout" in params and "stop_after" in params else "socket"


class Inbox:
    """The replies of one inbox, on a connection dedicated to it.

    ``conn``
        a :class:`psycopg.Connection` or :class:`psycopg.AsyncConnection` in
        autocommit mode (a session receives notifications only outside a
        transaction).  Use the connection for nothing but this inbox and
        the requests that reply to it (``submit()`` on the same connection
        is fine).
    ``name``
        ``None``: the session inbox (``_session_`` and 16 random hex
        digits), whose untaken replies become dead letters after the
        session ends; a name: a durable inbox, created if needed, that
        keeps its replies until a session opens it again.
    ``batch``
        replies per ``take_replies()`` call (default 100).
    ``poll_interval``
        seconds between takes made without a notification, in case one
        was lost (default 30; ``None``: never).
    ``in_use_timeout``
        how long :meth:`open` retries while another live session holds the
        durable inbox (:class:`~asyncrr.InboxInUse`), as after a restart
        whose old backend has not ended yet (default 0: no retry).
    ``on_progress``
        ``on_progress(correlation_id)`` (a :class:`uuid.UUID`) is called
        for each progress notification of the inbox: a worker reported
        progress (``report_progress()``, :meth:`asyncrr.Job.report_progress`)
        for one of its live requests.  The notification carries only the
        id: read the progress itself with :func:`asyncrr.status` (keys
        ``progress`` and ``progress_at``).  It is called from
        :meth:`replies` and :meth:`take` (their ``_async`` twins), between
        statements and never while one runs, so it may use the connection;
        on an :class:`psycopg.AsyncConnection` it may be a coroutine
        function.  Progress notifications are not replies: they lead to no
        take.  Without a callback they are ignored.  Like every
        notification they are not durable, and none is sent for the parts
        of a gather (:func:`asyncrr.scatter`).

    Synchronous use::

        with Inbox(conn, "billing-1") as inbox:
            inbox.submit("resize", {"image": "cat.png"})
            for reply in inbox.replies(timeout=10):
                ...

    With asyncio (``conn`` a :class:`psycopg.AsyncConnection`)::

        async with Inbox(aconn) as inbox:
            await inbox.submit_async("resize", {"image": "cat.png"})
            async for reply in inbox:
                ...

    The inbox is opened by ``with``/``async with``, :meth:`open`/
    :meth:`open_async`, or the first iteration.  Leaving the ``with`` block
    closes it (``close_inbox()``): a durable inbox keeps its replies for the
    next session that opens it.
    """

    def __init__(self, conn: Union[psycopg.Connection, psycopg.AsyncConnection],
                 name: Optional[str] = None, *, batch: int = 100,
                 poll_interval: Optional[float] = 30.0, in_use_timeout: float = 0.0,
                 on_progress: Optional[ProgressCallback] = None):
        """See the class docstring; nothing is sent to the server here."""
        if batch < 1:
            raise ValueError("batch must be at least 1")
        self.conn = conn
        self.requested_name = name
        self.batch = batch
        self.poll_interval = poll_interval
        self.in_use_timeout = in_use_timeout
        #: The progress callback (see the class docstring), or None.
        self.on_progress = on_progress
        #: The LISTEN channel, ``asyncrr.<inbox name>``, once open.
        self.channel: Optional[str] = None
        #: The inbox's name (for a session inbox, ``_session_...``), once open.
        self.name: Optional[str] = None
        self._buffer: Deque[Reply] = collections.deque()
        self._progress: Deque[uuid.UUID] = collections.deque()
        self._need_take = False
        self._more = False
        self._notified: Dict[str, float] = {}
        self._tried: Set[str] = set()
        self._retry_at: Optional[float] = None
        self._retry_delay = _RETRY_FIRST
        self._next_poll: Optional[float] = None
        self._recent: "collections.OrderedDict[str, None]" = collections.OrderedDict()
        self._handler_added = False
        self._mode = _notify_mode(conn)
        # psycopg >= 3.2.4 keeps notifications read during queries for
        # notifies() (a private attribute: only its presence is looked at).
        self._use_handler = not (self._mode == "notifies"
                                 and hasattr(conn, "_notifies_backlog"))

    def __repr__(self) -> str:
        """The inbox and its channel, for debugging."""
        state = f"channel={self.channel!r}" if self.channel else "closed"
        return f"<Inbox {self.requested_name or '(session)'} {state}>"

    @property
    def is_async(self) -> bool:
        """True for an inbox on a :class:`psycopg.AsyncConnection`."""
        return isinstance(self.conn, psycopg.AsyncConnection)

    # ------------------------------------------------------------ bookkeeping

    def _check_mode(self, want_async: bool) -> None:
        """Refuse sync methods on an async connection and the other way round."""
        if self.is_async != want_async:
            if want_async:
                raise TypeError("this Inbox is on a synchronous connection: use the"
                                " methods without _async and a plain for loop")
            raise TypeError("this Inbox is on an AsyncConnection: use the *_async"
                            " methods and async for")

    def _check_conn(self) -> None:
        """An inbox needs autocommit: notifications arrive only between transactions."""
        if not self.conn.autocommit:
            raise psycopg.ProgrammingError(
                "an Inbox needs a connection in autocommit mode: notifications"
                " reach a session only outside a transaction")

    def _on_notify(self, n: psycopg.Notify) -> None:
        """Note a notification of this channel: its reply is to be taken,
        or, for a progress report, the callback is to be told."""
        if n.channel != self.channel:
            return
        try:
            body = json.loads(n.payload)
            cid = str(uuid.UUID(body["correlation_id"]))
        except (ValueError, KeyError, TypeError):
            # Anyone may NOTIFY any channel: treat it as a plain wake-up.
            self._need_take = True
            return
        if body.get("status") == "progress":
            # Not a reply: nothing to take.  The callback runs later, from
            # the loop (this may run inside a query of the connection).
            if self.on_progress is not None:
                self._progress.append(uuid.UUID(cid))
            return
        if cid not in self._recent:
            self._notified.setdefault(cid, time.monotonic())

    def _add_handler(self) -> None:
        """Register the notify handler, where this psycopg needs one (see _notify_mode)."""
        if self._use_handler and not self._handler_added:
            self.conn.add_notify_handler(self._on_notify)
            self._handler_added = True

    def _opened(self, channel: str) -> None:
        """Record the channel open_inbox() returned; the first take is due."""
        self.channel = channel
        self.name = channel[len(_CHANNEL_PREFIX):] if channel.startswith(_CHANNEL_PREFIX) else channel
        self._need_take = True

    def _closed(self) -> None:
        """Forget the channel and the pending notifications; drop the handler."""
        if self._handler_added:
            self.conn.remove_notify_handler(self._on_notify)
            self._handler_added = False
        self.channel = None
        self._notified.clear()
        self._tried.clear()
        self._retry_at = None

    def _wants_take(self, now: float) -> bool:
        """Whether a take_replies() is due now."""
        if self._need_take or self._more:
            return True
        if any(cid not in self._tried for cid in list(self._notified)):
            return True
        if self._tried and self._retry_at is not None and now >= self._retry_at:
            return True
        return self._next_poll is not None and now >= self._next_poll

    def _budget(self, now: float, deadline: Optional[float]) -> Optional[float]:
        """Seconds to wait for a notification before the next thing to do."""
        ends = [t for t in (deadline,
                            self._retry_at if self._tried else None,
                            self._next_poll) if t is not None]
        return max(0.0, min(ends) - now) if ends else None

    def _after_take(self, rows: List[Reply], before: Set[str], asked: int) -> None:
        """Book-keeping after a take: what was taken, what is still missing, when to look again."""
        now = time.monotonic()
        for r in rows:
            cid = str(r.correlation_id)
            self._recent[cid] = None
            self._notified.pop(cid, None)
            self._tried.discard(cid)
        while len(self._recent) > _RECENT:
            self._recent.popitem(last=False)
        # Notified before this take started, yet not returned by it.
        self._tried.update(before.intersection(self._notified))
        for cid, seen in list(self._notified.items()):
            if now - seen > _GIVE_UP:
                del self._notified[cid]
                self._tried.discard(cid)
        if self._tried:
            self._retry_at = now + self._retry_delay
            self._retry_delay = min(self._retry_delay * 2, _RETRY_MAX)
        else:
            self._retry_at = None
            self._retry_delay = _RETRY_FIRST
        self._need_take = False
        self._more = len(rows) == asked
        self._next_poll = None if self.poll_interval is None else now + self.poll_interval
        self._buffer.extend(rows)

    def _deliver_progress(self) -> None:
        """Call on_progress for the progress notifications noted so far
        (one at a time: if it raises, the rest wait for the next call)."""
        while self._progress and self.on_progress is not None:
            self.on_progress(self._progress.popleft())

    async def _deliver_progress_async(self) -> None:
        """:meth:`_deliver_progress`, awaiting a callback that returns an awaitable."""
        while self._progress and self.on_progress is not None:
            result = self.on_progress(self._progress.popleft())
            if inspect.isawaitable(result):
                await result

    def _from_buffer(self, n: int) -> List[Reply]:
        """Up to n replies taken earlier and not yet handed out."""
        out = []
        while self._buffer and len(out) < n:
            out.append(self._buffer.popleft())
        return out

    def _drain(self) -> int:
        """Hand the notifications libpq has read to psycopg's handlers (ours
        among them); how many there were."""
        pgconn = self.conn.pgconn
        count = 0
        while True:
            n = pgconn.notifies()
            if n is None:
                return count
            count += 1
            if pgconn.notify_handler:
                pgconn.notify_handler(n)

    @staticmethod
    def _deadline(timeout: Optional[Duration]) -> Optional[float]:
        """The monotonic time a timeout ends, or None."""
        t = seconds(timeout)
        return None if t is None else time.monotonic() + t

    # ------------------------------------------------------------ sync API

    def open(self) -> "Inbox":
        """Open the inbox (``asyncrr.open_inbox()``) and LISTEN on its
        channel; the first take follows on the first iteration.  Returns
        the inbox.  Opening an open inbox does nothing."""
        self._check_mode(False)
        if self.channel is not None:
            return self
        self._check_conn()
        self._add_handler()
        until = time.monotonic() + self.in_use_timeout
        try:
            while True:
                try:
                    with translate():
                        channel = self.conn.execute(_OPEN_SQL, (self.requested_name,)).fetchone()[0]
                    break
                except InboxInUse:
                    if time.monotonic() >= until:
                        raise
                    time.sleep(0.1)
        except BaseException:
            self._closed()
            raise
        self._opened(channel)
        return self

    def close(self, cancel_pending: bool = False) -> int:
        """Release the inbox (``asyncrr.close_inbox()``) and stop listening.
        With ``cancel_pending``, first cancel its live requests.  Returns how
        many were cancelled.  Replies already taken but not handed out stay
        available from :meth:`take`."""
        self._check_mode(False)
        if self.channel is None:
            return 0
        try:
            with translate():
                return self.conn.execute(_CLOSE_SQL, (cancel_pending,)).fetchone()[0]
        finally:
            self._closed()

    def __enter__(self) -> "Inbox":
        """Open the inbox."""
        return self.open()

    def __exit__(self, exc_type, exc, tb) -> None:
        """Close the inbox (unless the connection is gone)."""
        if self.conn.closed or self.conn.broken:
            self._closed()
        else:
            self.close()

    def submit(self, queue: str, payload: Any, timeout: Optional[Duration] = None,
               correlation_id=None, priority: Optional[int] = None,
               headers: Optional[Mapping[str, Any]] = None,
               not_before: Optional[datetime.datetime] = None,
               ordering_key: Optional[str] = None) -> uuid.UUID:
        """:func:`asyncrr.submit` on this inbox's connection (opening the
        inbox first), so that the reply comes to this inbox."""
        self.open()
        return requester.submit(self.conn, queue, payload, timeout, correlation_id,
                                priority, headers, not_before, ordering_key)

    def scatter(self, queues: Sequence[str], payload: Any, timeout: Optional[Duration] = None,
                correlation_id=None,
                headers: Optional[Mapping[str, Any]] = None) -> uuid.UUID:
        """:func:`asyncrr.scatter` on this inbox's connection (opening the
        inbox first): the gather's reply, keyed by queue name, comes to this
        inbox like any other."""
        self.open()
        return requester.scatter(self.conn, queues, payload, timeout, correlation_id, headers)

    def _take_round(self, n: Optional[int] = None) -> None:
        """One take_replies(n) into the buffer."""
        n = n or self.batch
        before = set(self._notified)
        with translate():
            rows = self.conn.execute(_TAKE_SQL, (n,)).fetchall()
        self._after_take([Reply(*r) for r in rows], before, n)

    def take(self, max_replies: Optional[int] = None) -> List[Reply]:
        """Up to ``max_replies`` (default: ``batch``) replies, at once and
        without waiting: first those taken earlier but not yet handed out
        (also after :meth:`close`), else one ``take_replies()`` (opening the
        inbox if needed).  Calls ``on_progress`` for the progress
        notifications noted meanwhile."""
        n = max_replies or self.batch
        if not self._buffer:
            self.open()
            self._take_round(n)
        self._deliver_progress()
        return self._from_buffer(n)

    def _wait_notify(self, budget: Optional[float]) -> None:
        """Wait up to budget seconds (None: no limit) for notifications and note them."""
        conn = self.conn
        if self._mode == "notifies":
            for n in conn.notifies(timeout=budget, stop_after=1):
                self._on_notify(n)
            return
        with conn.lock:
            conn.pgconn.consume_input()
            if self._drain() or (budget is not None and budget <= 0):
                return
            with selectors.DefaultSelector() as sel:
                sel.register(conn.fileno(), selectors.EVENT_READ)
                ready = sel.select(budget)
            if ready:
                conn.pgconn.consume_input()
                self._drain()

    def replies(self, timeout: Optional[Duration] = None) -> Iterator[Reply]:
        """Yield replies as they arrive, for ``timeout`` seconds (``None``:
        forever; ``0``: only what is waiting now).

        The first thing it does is take what is already waiting.  It takes
        in batches of ``batch`` and hands them out one by one; breaking out
        of the loop keeps the rest for later.  The loop body may use the
        connection (to submit more requests, say).  ``on_progress`` is
        called from here as progress notifications arrive."""
        self._check_mode(False)
        self.open()
        deadline = self._deadline(timeout)
        first = True
        while True:
            self._deliver_progress()
            while self._buffer:
                yield self._buffer.popleft()
            now = time.monotonic()
            if first or (self._wants_take(now) and (deadline is None or now < deadline)):
                first = False
                self._take_round()
                continue
            if deadline is not None and now >= deadline:
                return
            self._wait_notify(self._budget(now, deadline))

    def __iter__(self) -> Iterator[Reply]:
        """``for reply in inbox``: :meth:`replies` without a timeout."""
        return self.replies()

    # ------------------------------------------------------------ async API

    async def open_async(self) -> "Inbox":
        """:meth:`open` for an inbox on an :class:`psycopg.AsyncConnection`."""
        self._check_mode(True)
        if self.channel is not None:
            return self
        self._check_conn()
        self._add_handler()
        until = time.monotonic() + self.in_use_timeout
        try:
            while True:
                try:
                    with translate():
                        cur = await self.conn.execute(_OPEN_SQL, (self.requested_name,))
                        channel = (await cur.fetchone())[0]
                    break
                except InboxInUse:
                    if time.monotonic() >= until:
                        raise
                    await asyncio.sleep(0.1)
        except BaseException:
            self._closed()
            raise
        self._opened(channel)
        return self

    async def close_async(self, cancel_pending: bool = False) -> int:
        """:meth:`close` for an inbox on an :class:`psycopg.AsyncConnection`."""
        self._check_mode(True)
        if self.channel is None:
            return 0
        try:
            with translate():
                cur = await self.conn.execute(_CLOSE_SQL, (cancel_pending,))
                return (await cur.fetchone())[0]
        finally:
            self._closed()

    async def __aenter__(self) -> "Inbox":
        """Open the inbox."""
        return await self.open_async()

    async def __aexit__(self, exc_type, exc, tb) -> None:
        """Close the inbox (unless the connection is gone)."""
        if self.conn.closed or self.conn.broken:
            self._closed()
        else:
            await self.close_async()

    async def submit_async(self, queue: str, payload: Any, timeout: Optional[Duration] = None,
                           correlation_id=None, priority: Optional[int] = None,
                           headers: Optional[Mapping[str, Any]] = None,
                           not_before: Optional[datetime.datetime] = None,
                           ordering_key: Optional[str] = None) -> uuid.UUID:
        """:meth:`submit` for an inbox on an :class:`psycopg.AsyncConnection`."""
        await self.open_async()
        return await requester.submit_async(self.conn, queue, payload, timeout,
                                            correlation_id, priority, headers,
                                            not_before, ordering_key)

    async def scatter_async(self, queues: Sequence[str], payload: Any,
                            timeout: Optional[Duration] = None, correlation_id=None,
                            headers: Optional[Mapping[str, Any]] = None) -> uuid.UUID:
        """:meth:`scatter` for an inbox on an :class:`psycopg.AsyncConnection`."""
        await self.open_async()
        return await requester.scatter_async(self.conn, queues, payload, timeout,
                                             correlation_id, headers)

    async def _take_round_async(self, n: Optional[int] = None) -> None:
        """One take_replies(n) into the buffer."""
        n = n or self.batch
        before = set(self._notified)
        with translate():
            cur = await self.conn.execute(_TAKE_SQL, (n,))
            rows = await cur.fetchall()
        self._after_take([Reply(*r) for r in rows], before, n)

    async def take_async(self, max_replies: Optional[int] = None) -> List[Reply]:
        """:meth:`take` for an inbox on an :class:`psycopg.AsyncConnection`."""
        n = max_replies or self.batch
        if not self._buffer:
            await self.open_async()
            await self._take_round_async(n)
        await self._deliver_progress_async()
        return self._from_buffer(n)

    async def _wait_notify_async(self, budget: Optional[float]) -> None:
        """Wait up to budget seconds (None: no limit) for notifications and note them."""
        conn = self.conn
        if self._mode == "notifies":
            async for n in conn.notifies(timeout=budget, stop_after=1):
                self._on_notify(n)
            return
        async with conn.lock:
            conn.pgconn.consume_input()
            if self._drain() or (budget is not None and budget <= 0):
                return
            loop = asyncio.get_running_loop()
            readable = loop.create_future()
            fd = conn.fileno()
            loop.add_reader(fd, lambda: readable.done() or readable.set_result(None))
            try:
                await asyncio.wait_for(readable, budget)
            except asyncio.TimeoutError:
                return
            finally:
                loop.remove_reader(fd)
            conn.pgconn.consume_input()
            self._drain()

    async def replies_async(self, timeout: Optional[Duration] = None) -> AsyncIterator[Reply]:
        """:meth:`replies` for an inbox on an :class:`psycopg.AsyncConnection`:
        ``async for reply in inbox.replies_async(timeout=5)``."""
        self._check_mode(True)
        await self.open_async()
        deadline = self._deadline(timeout)
        first = True
        while True:
            await self._deliver_progress_async()
            while self._buffer:
                yield self._buffer.popleft()
            now = time.monotonic()
            if first or (self._wants_take(now) and (deadline is None or now < deadline)):
                first = False
                await self._take_round_async()
                continue
            if deadline is not None and now >= deadline:
                return
            await self._wait_notify_async(self._budget(now, deadline))

    def __aiter__(self) -> AsyncIterator[Reply]:
        """``async for reply in inbox``: :meth:`replies_async` without a
        timeout."""
        return self.replies_async()

"""A worker: claims requests of a queue, runs a handler, records the replies.

The loop follows doc/reference.md: it sleeps in ``CALL
asyncrr.wait_for_work`` (which, unlike ``claim(..., wait => ...)``, holds
no snapshot while it sleeps and so does not hold back ``VACUUM``), claims
in batches with ``claim()`` (no wait), runs the handler in a thread pool,
records replies in batches with ``complete_many()`` (with
``complete_and_claim()`` when it has room for more work: the replies and
the next claim in one round trip and one commit), turns a handler's
exception into ``fail(..., retry => true)``, and extends the lease of a
request it has held for more than half its lease.

Two connections are used: the *main* one claims, completes, fails and
extends leases; the *waker* one only sleeps in ``wait_for_work``, so that
replies are recorded and leases extended while the worker waits for more
work.  Handlers touch neither, except through
:meth:`Job.report_progress`, which runs its one short statement on the main
connection (psycopg serializes the threads that share a connection).
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import queue as queue_mod
import signal
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import psycopg
from psycopg.types.json import Jsonb

from ._types import Duration, interval
from .errors import (AsyncrrError, NotClaimed, NotFound, PayloadTooLarge, WrongState,
                     translate)

__all__ = ["Worker", "Job"]

log = logging.getLogger("asyncrr.worker")

#: ``handler(payload, headers)`` (with ``pass_job=True``:
#: ``handler(payload, headers, job)``) returns the reply: any
#: JSON-serializable value.  An exception fails the attempt with retry.
Handler = Callable[..., Any]

_CLAIM_SQL = ("SELECT c.correlation_id, c.payload, c.headers, c.attempt, c.deadline,"
              " extract(epoch FROM c.lease_until - now())::float8"
              " FROM asyncrr.claim(%s, %s, %s::interval, %s) c")
_WAIT_SQL = "CALL asyncrr.wait_for_work(%s, %s::interval)"
_COMPLETE_MANY_SQL = ("SELECT correlation_id, outcome FROM asyncrr.complete_many("
                      "%s::uuid[], %s::jsonb[], %s::int[])")
# outcomes of the replies in the order given, then the claimed requests
_COMPLETE_AND_CLAIM_SQL = ("SELECT c.correlation_id, c.outcome, c.payload, c.headers, c.attempt,"
                           " c.deadline, extract(epoch FROM c.lease_until - now())::float8"
                           " FROM asyncrr.complete_and_claim(%s, %s::uuid[], %s::jsonb[],"
                           " %s::int[], %s, %s::interval, %s) c")
_COMPLETE_SQL = "SELECT asyncrr.complete(%s::uuid, %s::jsonb, %s::int)"
_FAIL_SQL = "SELECT asyncrr.fail(%s::uuid, %s, %s::int, %s::boolean)"
_EXTEND_SQL = "SELECT asyncrr.extend_lease(%s::uuid, %s::interval, %s::int)"
_PROGRESS_SQL = "SELECT asyncrr.report_progress(%s::uuid, %s::jsonb, %s::int)"

# Longest error text sent to fail(): asyncrr.max_payload_bytes bounds it.
_MAX_ERROR_CHARS = 4000
_STOPPING_ERROR = "worker stopped before handling the request"


@dataclass(eq=False)
class Job:
    """A claimed request held by a :class:`Worker` (what ``claim()``
    returned, and the client's bookkeeping of its lease).  A worker made
    with ``pass_job=True`` hands it to the handler as its third argument,
    for :meth:`report_progress` and the claim's details
    (``correlation_id``, ``attempt``, ``deadline``)."""

    correlation_id: uuid.UUID
    payload: Any
    headers: Optional[Dict[str, Any]]
    attempt: int
    deadline: Any
    lease: float                      # seconds, as claimed
    renew_at: float                   # time.monotonic() for the next extend_lease
    future: Optional[concurrent.futures.Future] = field(default=None, repr=False)
    started: bool = False
    done: bool = False
    lost: bool = False
    _worker: Optional["Worker"] = field(default=None, init=False, repr=False)

    def report_progress(self, progress: Any) -> bool:
        """Record the progress of this request and tell its requester
        (``asyncrr.report_progress(id, progress, attempt)``, with this
        claim's attempt).  ``progress`` is any JSON-serializable value; it
        replaces the previous one.

        Returns True if it was recorded: it is committed at once, the
        requester can read it with :func:`asyncrr.status` (``progress``,
        ``progress_at``), and its inbox gets a notification with status
        ``progress`` (:class:`asyncrr.Inbox`'s ``on_progress``).  Returns
        False, recording nothing, if the request has ended (timed out,
        cancelled) or this claim is no longer current (its lease ran out and
        another attempt began): the handler may as well give up.  The lease
        is not changed (the worker extends it as usual).

        Called from the handler's thread; it runs one statement on the
        worker's main connection, waiting for the (short) statement the
        worker may be running on it.  Raises :class:`asyncrr.PayloadTooLarge`
        beyond ``asyncrr.max_payload_bytes``, and psycopg's
        :class:`~psycopg.OperationalError` if the connection is lost (the
        worker reconnects by itself) or the worker is not running."""
        if self._worker is None:
            raise RuntimeError("this Job is not held by a running Worker")
        return self._worker._report_progress(self, progress)


@dataclass
class _Result:
    """What a handler thread produced for a Job: a reply (JSON text) or an error text."""
    job: Job
    ok: bool
    value: str                # reply as JSON text, or the error text
    retry: bool = True
    finished: float = field(default_factory=time.monotonic)


class Worker:
    """Serve one queue: ``Worker(conninfo_or_pool, queue, handler).run()``.

    ``conninfo_or_pool``
        a libpq connection string (the worker opens its two connections,
        in autocommit mode), or a pool with ``getconn()``/``putconn()``
        such as :class:`psycopg_pool.ConnectionPool` (two connections are
        held for as long as the worker runs).
    ``queue``
        the queue's name.
    ``handler``
        ``handler(payload, headers)``: returns the reply (any
        JSON-serializable value).  If it raises, the attempt is failed with
        retry (``fail(..., retry => true)``) and the exception's text as
        error: the request goes back to the queue, or ends
        ``dead_lettered`` on its last attempt.  Make it idempotent: a
        request whose lease ran out is handed to another worker.
    ``concurrency``
        handler threads (default 1).
    ``batch``
        requests per claim, and replies per ``complete_many()`` (default
        10).  The worker holds at most ``max(batch, concurrency)`` requests
        and claims again once a handler thread is idle.
    ``lease``
        lease per claim (seconds, timedelta or interval string; default:
        the queue's).  A request held for more than half its lease is
        extended by another lease (``extend_lease``), for as long as its
        handler runs; its deadline does not move.
    ``name``
        the worker label recorded on claims (default: the session's
        ``application_name``, else ``pid <pid>``).
    ``idle_timeout``
        longest single sleep in ``wait_for_work`` (default 30 s).
    ``flush_delay``
        longest time a finished reply waits to be recorded with others
        (default 0.05 s); replies are recorded at once when every held
        request is finished or ``batch`` are waiting.
    ``release_on_stop``
        what :meth:`stop` does with claimed requests whose handler has not
        started: ``False`` (default) runs them; ``True`` hands them back
        with ``fail(..., retry => true)``, which uses up an attempt (and
        dead-letters a request on its last one; asyncrr has no way to give
        a claim back without).
    ``pass_job``
        ``True``: call the handler as ``handler(payload, headers, job)``
        with the :class:`Job`, whose :meth:`Job.report_progress` reports
        progress to the requester (default ``False``:
        ``handler(payload, headers)``).

    :meth:`run` blocks until :meth:`stop`; ``run(handle_signals=True)`` (or
    :meth:`install_signal_handlers`) makes SIGTERM and SIGINT call
    :meth:`stop`.  On stop the worker claims nothing more, finishes (or
    releases) what it holds, records every outcome, and returns.
    """

    def __init__(self, conninfo_or_pool: Union[str, Any], queue: str, handler: Handler,
                 concurrency: int = 1, batch: int = 10, lease: Optional[Duration] = None, *,
                 name: Optional[str] = None, idle_timeout: float = 30.0,
                 flush_delay: float = 0.05, release_on_stop: bool = False,
                 pass_job: bool = False):
        """See the class docstring; no connection is made until run()."""
        if concurrency < 1 or batch < 1:
            raise ValueError("concurrency and batch must be at least 1")
        self.source = conninfo_or_pool
        self.queue = queue
        self.handler = handler
        self.concurrency = concurrency
        self.batch = batch
        self.lease = interval(lease)
        self.name = name
        self.idle_timeout = idle_timeout
        self.flush_delay = flush_delay
        self.release_on_stop = release_on_stop
        self.pass_job = pass_job
        #: Counters: ``claimed``, ``completed`` (recorded as completed),
        #: ``failed`` (fail() calls for handler errors), ``late`` (outcomes
        #: ``late`` or ``duplicate``), ``extended`` (extend_lease calls),
        #: ``released`` (handed back on stop), ``claimed_with_replies`` (of
        #: ``claimed``, those claimed by the statement that recorded replies),
        #: ``progress`` (progress reports recorded, :meth:`Job.report_progress`).
        self.stats: Dict[str, int] = dict.fromkeys(
            ("claimed", "completed", "failed", "late", "extended", "released",
             "claimed_with_replies", "progress"), 0)

        self._stopping = False
        self._running = False
        self._events: "queue_mod.SimpleQueue[Tuple]" = queue_mod.SimpleQueue()
        self._held: Dict[uuid.UUID, Job] = {}
        self._results: List[_Result] = []
        self._waiting_for_work = False
        self._empty_claims = 0              # consecutive claims that got nothing
        self._last_cancel = 0.0
        self._want_work = threading.Event()
        self._waker_lock = threading.Lock()
        self._waker_conn: Optional[psycopg.Connection] = None
        self._waker_sleeping = False
        self._waker_error: Optional[BaseException] = None
        self._conn: Optional[psycopg.Connection] = None
        self._executor: Optional[concurrent.futures.ThreadPoolExecutor] = None
        self._old_signals: Dict[int, Any] = {}

    # ------------------------------------------------------------ control

    def stop(self) -> None:
        """Ask :meth:`run` to stop: claim nothing more, finish (or release)
        what is held, record every outcome, return.  Safe to call from a
        signal handler or another thread, and more than once."""
        self._stopping = True
        self._events.put(("stop",))      # SimpleQueue.put is reentrant

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` was called."""
        return self._stopping

    def install_signal_handlers(self, signals: Sequence[int] = (signal.SIGTERM, signal.SIGINT)) -> None:
        """Make the given signals (default SIGTERM and SIGINT) call
        :meth:`stop`.  Only from the main thread.  :meth:`restore_signal_handlers`
        puts the previous handlers back."""
        for sig in signals:
            self._old_signals.setdefault(sig, signal.getsignal(sig))
            signal.signal(sig, lambda signum, frame: self.stop())

    def restore_signal_handlers(self) -> None:
        """Undo :meth:`install_signal_handlers`."""
        for sig, old in self._old_signals.items():
            signal.signal(sig, old)
        self._old_signals.clear()

    # ------------------------------------------------------------ connections

    def _connect(self) -> psycopg.Connection:
        """A connection in autocommit mode, new or from the pool."""
        if isinstance(self.source, str):
            return psycopg.connect(self.source, autocommit=True)
        conn = self.source.getconn()
        conn.autocommit = True
        return conn

    def _release(self, conn: Optional[psycopg.Connection]) -> None:
        """Close a connection, or give it back to the pool."""
        if conn is None:
            return
        if isinstance(self.source, str):
            conn.close()
        else:
            self.source.putconn(conn)

    # ------------------------------------------------------------ run

    def run(self, handle_signals: bool = False) -> None:
        """Serve the queue until :meth:`stop`.  With ``handle_signals``
        (main thread only), SIGTERM and SIGINT call :meth:`stop` while it
        runs.  An error that the worker cannot get past (an unknown queue,
        a missing privilege) stops it too: what it holds is finished and
        recorded first, then the error is raised."""
        if self._running:
            raise RuntimeError("this Worker is already running")
        self._running = True
        if handle_signals:
            self.install_signal_handlers()
        waker = threading.Thread(target=self._waker, name=f"asyncrr-waker-{self.queue}",
                                 daemon=True)
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=self.concurrency, thread_name_prefix=f"asyncrr-{self.queue}")
        error: Optional[BaseException] = None
        try:
            self._conn = self._connect()
            waker.start()
            try:
                self._loop()
            except BaseException as exc:
                # Record what the handlers finish before giving up.
                error = exc
                self._stopping = True
                self._drain_after_error()
        finally:
            self._stopping = True
            self._want_work.set()
            while waker.is_alive():
                self._cancel_waker()
                waker.join(0.2)
            self._executor.shutdown(wait=True)
            self._release(self._conn)
            self._conn = None
            if handle_signals:
                self.restore_signal_handlers()
            self._running = False
        if error is not None:
            raise error

    async def run_async(self) -> None:
        """:meth:`run` in a thread of the event loop's default executor.
        Cancelling the awaiting task stops the worker gracefully (the
        cancellation is re-raised once it has stopped)."""
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(None, self.run)
        try:
            await asyncio.shield(fut)
        except asyncio.CancelledError:
            self.stop()
            await fut
            raise

    def _loop(self) -> None:
        """The main loop: claim, extend leases, record outcomes, until stopped with nothing held."""
        max_held = max(self.batch, self.concurrency)
        while True:
            if self._waker_error is not None:
                raise self._waker_error
            now = time.monotonic()
            unfinished = sum(1 for j in self._held.values() if not j.done)
            if self._stopping:
                self._want_work.set()          # let the waker see it and end
                self._cancel_waker()
                if self.release_on_stop:
                    self._release_unstarted()
            elif not self._waiting_for_work and unfinished < self.concurrency:
                # room once the finished jobs are recorded
                room = max_held - len(self._held) + len(self._results)
                if room > 0:
                    self._flush(claim=room)
                    continue
                if self._results:
                    self._flush()
            self._extend_leases(now)
            if self._results and self._flush_due(now):
                self._flush()
            if self._stopping and not self._held:
                return
            self._dispatch(self._events_get(self._next_timer(now)))

    def _events_get(self, timeout: float):
        """The next event from the handler threads, the waker or stop(), or None after timeout."""
        try:
            return self._events.get(timeout=timeout)
        except queue_mod.Empty:
            return None

    def _dispatch(self, ev) -> None:
        """Apply an event and any others already queued."""
        while ev is not None:
            kind = ev[0]
            if kind == "done":
                result: _Result = ev[1]
                result.job.done = True
                self._results.append(result)
            elif kind == "work":
                self._waiting_for_work = False
            # "stop": the loop looks at self._stopping
            try:
                ev = self._events.get_nowait()
            except queue_mod.Empty:
                ev = None

    def _next_timer(self, now: float) -> float:
        """Seconds until the main loop has something to do without an event."""
        times = [now + 1.0]
        times += [j.renew_at for j in self._held.values() if not j.done and not j.lost]
        if self._results:
            times.append(min(r.finished for r in self._results) + self.flush_delay)
        if self._stopping:
            times.append(now + 0.2)
        return max(0.0, min(times) - now)

    def _flush_due(self, now: float) -> bool:
        """Whether the finished replies should be recorded now."""
        if self._stopping or len(self._results) >= self.batch:
            return True
        if all(j.done for j in self._held.values()):
            return True
        return now - min(r.finished for r in self._results) >= self.flush_delay

    # ------------------------------------------------------------ database steps

    def _db(self, fn, *args):
        """Run a step on the main connection; on a lost connection,
        reconnect (with a growing pause) and run it again."""
        delay = 0.2
        failing_since = None
        while True:
            try:
                if self._conn is None or self._conn.closed or self._conn.broken:
                    if self._conn is not None:
                        try:
                            self._release(self._conn)
                        except Exception:
                            pass
                        self._conn = None
                    self._conn = self._connect()
                return fn(*args)
            except psycopg.OperationalError as exc:
                if self._conn is not None and not self._conn.closed and not self._conn.broken:
                    raise       # a server-side error, not a lost connection
                failing_since = failing_since or time.monotonic()
                if self._stopping and time.monotonic() - failing_since > 10:
                    log.error("asyncrr worker %s: giving up after losing the connection: %s;"
                              " its claims return to the queue when their leases run out",
                              self.queue, exc)
                    self._held.clear()
                    self._results.clear()
                    raise
                log.warning("asyncrr worker %s: connection lost (%s); reconnecting", self.queue, exc)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _claim(self, n: int) -> None:
        """Claim up to n requests and hand them to the handler threads."""
        def step():
            t0 = time.monotonic()
            with translate():
                rows = self._conn.execute(_CLAIM_SQL, (self.queue, n, self.lease, self.name)).fetchall()
            return t0, rows
        t0, rows = self._db(step)
        self._start(t0, rows, n)

    def _start(self, t0: float, rows, n: int) -> None:
        """Hand claimed rows (claim() made at t0 for up to n) to the handler threads."""
        for cid, payload, headers, attempt, deadline, lease in rows:
            job = Job(cid, payload, headers, attempt, deadline, lease, t0 + lease / 2)
            job._worker = self
            self._held[cid] = job
            self.stats["claimed"] += 1
            job.future = self._executor.submit(self._run_job, job)
        self._empty_claims = 0 if rows else self._empty_claims + 1
        if len(rows) < n:
            self._waiting_for_work = True
            self._want_work.set()

    def _run_job(self, job: Job) -> None:
        """In a handler thread: run the handler, report a reply or an error."""
        job.started = True
        try:
            if self.pass_job:
                value = self.handler(job.payload, job.headers, job)
            else:
                value = self.handler(job.payload, job.headers)
            result = _Result(job, True, json.dumps(value, allow_nan=False))
        except BaseException as exc:     # whatever happens, the claim gets an outcome
            text = f"{type(exc).__name__}: {exc}"
            log.info("asyncrr worker %s: handler failed on %s (attempt %d): %s",
                     self.queue, job.correlation_id, job.attempt, text)
            result = _Result(job, False, text[:_MAX_ERROR_CHARS])
        self._events.put(("done", result))

    def _report_progress(self, job: Job, progress: Any) -> bool:
        """For Job.report_progress, in a handler thread: report_progress()
        on the main connection.  psycopg's connection lock serializes it
        with the main loop's statements (all short; the waker's long wait is
        on the other connection); in autocommit it commits at once.  It is
        not retried: a lost connection is the main loop's to re-establish."""
        conn = self._conn
        if conn is None or conn.closed or conn.broken:
            raise psycopg.OperationalError(
                f"asyncrr worker {self.queue}: no connection to report progress on"
                " (the worker is reconnecting or not running)")
        with translate():
            recorded = conn.execute(_PROGRESS_SQL, (job.correlation_id, Jsonb(progress),
                                                    job.attempt)).fetchone()[0]
        if recorded:
            self.stats["progress"] += 1     # a counter only: += from several threads
        return recorded

    def _release_unstarted(self) -> None:
        """On stop with release_on_stop: take back the jobs no thread has started."""
        for job in self._held.values():
            if not job.done and not job.started and job.future is not None and job.future.cancel():
                job.done = True
                self.stats["released"] += 1
                self._results.append(_Result(job, False, _STOPPING_ERROR))

    def _extend_leases(self, now: float) -> None:
        """extend_lease() every held request past half its lease."""
        for job in list(self._held.values()):
            if job.done or job.lost or now < job.renew_at:
                continue

            def step(job=job):
                t0 = time.monotonic()
                with translate():
                    self._conn.execute(_EXTEND_SQL, (job.correlation_id, interval(job.lease),
                                                     job.attempt))
                return t0
            try:
                t0 = self._db(step)
            except (WrongState, NotFound) as exc:
                # The lease ran out, the request timed out or was cancelled,
                # or another worker claimed it: the reply will be "late".
                job.lost = True
                log.warning("asyncrr worker %s: lost the claim of %s: %s",
                            self.queue, job.correlation_id, exc)
                continue
            job.renew_at = t0 + job.lease / 2
            self.stats["extended"] += 1

    def _flush(self, claim: int = 0) -> None:
        """Record the finished outcomes: complete_many() for replies, fail()
        for errors; then, with claim, claim up to that many requests, in
        the same statement as the replies when there are any
        (complete_and_claim())."""
        results, self._results = self._results, []
        oks = [r for r in results if r.ok]
        fails = [r for r in results if not r.ok]
        ids = [r.job.correlation_id for r in oks]
        values = [r.value for r in oks]
        attempts = [r.job.attempt for r in oks]
        claimed = None
        if oks:
            try:
                if claim:
                    def step():
                        t0 = time.monotonic()
                        with translate():
                            return t0, self._conn.execute(_COMPLETE_AND_CLAIM_SQL, (
                                self.queue, ids, values, attempts, claim, self.lease,
                                self.name)).fetchall()
                    t0, rows = self._db(step)
                    done, claimed = rows[:len(oks)], [row[:1] + row[2:] for row in rows[len(oks):]]
                else:
                    def step():
                        with translate():
                            return self._conn.execute(_COMPLETE_MANY_SQL,
                                                      (ids, values, attempts)).fetchall()
                    done = self._db(step)
                for (cid, outcome, *_), r in zip(done, oks):
                    self._outcome(r, outcome)
            except (AsyncrrError, psycopg.DataError) as exc:
                # One refused reply (or a refused claim) refuses the batch:
                # record them one by one; claim() below says what is wrong
                # with the claim.
                log.info("asyncrr worker %s: complete_many refused (%s); completing one by one",
                         self.queue, exc)
                for r in oks:
                    self._complete_one(r)
        for r in fails:
            self._fail_one(r)
        # a request whose claim we lost may already be ours again (claimed
        # above): forget only the job that finished
        for r in results:
            if self._held.get(r.job.correlation_id) is r.job:
                del self._held[r.job.correlation_id]
        if claimed is not None:
            self.stats["claimed_with_replies"] += len(claimed)
            self._start(t0, claimed, claim)
        elif claim and not self._stopping:
            self._claim(claim)

    def _outcome(self, r: _Result, outcome: str) -> None:
        """Count what complete() said about a reply."""
        if outcome == "completed":
            self.stats["completed"] += 1
        else:
            self.stats["late"] += 1
            log.warning("asyncrr worker %s: reply to %s (attempt %d) was %s",
                        self.queue, r.job.correlation_id, r.job.attempt, outcome)

    def _complete_one(self, r: _Result) -> None:
        """complete() one reply (after complete_many() refused a batch)."""
        def step():
            with translate():
                return self._conn.execute(_COMPLETE_SQL, (
                    r.job.correlation_id, r.value, r.job.attempt)).fetchone()[0]
        try:
            self._outcome(r, self._db(step))
        except PayloadTooLarge as exc:
            self._fail_one(_Result(r.job, False, f"reply refused: {exc}", retry=False))
        except (NotFound, NotClaimed) as exc:
            log.warning("asyncrr worker %s: could not complete %s: %s",
                        self.queue, r.job.correlation_id, exc)

    def _fail_one(self, r: _Result) -> None:
        """fail() one request, with retry unless the result says otherwise."""
        def step(text):
            with translate():
                return self._conn.execute(_FAIL_SQL, (
                    r.job.correlation_id, text, r.job.attempt, r.retry)).fetchone()[0]
        try:
            try:
                outcome = self._db(step, r.value)
            except PayloadTooLarge:
                outcome = self._db(step, r.value[:100])
        except (NotFound, NotClaimed) as exc:
            log.warning("asyncrr worker %s: could not fail %s: %s",
                        self.queue, r.job.correlation_id, exc)
            return
        if outcome in ("failed", "retrying", "dead_lettered"):
            self.stats["failed"] += 1
        else:
            self.stats["late"] += 1

    def _drain_after_error(self) -> None:
        """After an unexpected error: wait for running handlers and record
        their outcomes if the connection still works (best effort)."""
        try:
            while any(not j.done for j in self._held.values()):
                if self.release_on_stop:
                    self._release_unstarted()
                self._dispatch(self._events_get(0.2))
            if self._results:
                self._flush()
        except Exception as exc:     # the original error is what is raised
            log.error("asyncrr worker %s: could not record outcomes after an error: %s",
                      self.queue, exc)

    # ------------------------------------------------------------ waker

    def _cancel_waker(self) -> None:
        """Cancel the waker's wait_for_work, at most every 0.15 s."""
        now = time.monotonic()
        if now - self._last_cancel < 0.15:
            return
        self._last_cancel = now
        with self._waker_lock:
            if self._waker_sleeping and self._waker_conn is not None:
                try:
                    self._waker_conn.cancel()
                except psycopg.Error:
                    pass

    def _waker(self) -> None:
        """Sleep in wait_for_work whenever the main loop asks for work."""
        conn = None
        delay = 0.2
        try:
            while not self._stopping:
                if not self._want_work.wait(1.0) or self._stopping:
                    continue
                # wait_for_work returns at once while a claimable request is
                # locked by another transaction, though claim() skips it:
                # after claims that got nothing, pause (10 ms, doubling up to
                # 0.5 s) rather than spin.
                if self._empty_claims > 1:
                    time.sleep(min(0.01 * 2 ** (self._empty_claims - 2), 0.5))
                try:
                    if conn is None:
                        conn = self._connect()
                        with self._waker_lock:
                            self._waker_conn = conn
                    with self._waker_lock:
                        if self._stopping:
                            break
                        self._waker_sleeping = True
                    try:
                        with translate():
                            ready = conn.execute(_WAIT_SQL, (self.queue, interval(self.idle_timeout))
                                                 ).fetchone()[0]
                    finally:
                        with self._waker_lock:
                            self._waker_sleeping = False
                    delay = 0.2
                except psycopg.errors.QueryCanceled:
                    continue
                except AsyncrrError as exc:
                    if exc.sqlstate == "57014":
                        continue
                    self._waker_error = exc        # unknown queue, no privilege, ...
                    self._events.put(("error",))
                    return
                except psycopg.Error as exc:
                    if conn is not None and not (conn.closed or conn.broken):
                        self._waker_error = exc
                        self._events.put(("error",))
                        return
                    log.warning("asyncrr worker %s: waker connection lost (%s); reconnecting",
                                self.queue, exc)
                    with self._waker_lock:
                        self._waker_conn = None
                    self._release(conn)
                    conn = None
                    time.sleep(delay)
                    delay = min(delay * 2, 5.0)
                    continue
                if ready:
                    self._want_work.clear()
                    self._events.put(("work",))
        finally:
            with self._waker_lock:
                self._waker_conn = None
            if conn is not None:
                self._release(conn)

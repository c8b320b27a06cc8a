"""asyncrr: a Python client for asyncrr, durable request-reply in PostgreSQL.

Requesters::

    import psycopg, asyncrr
    conn = psycopg.connect("dbname=app", autocommit=True)
    reply = asyncrr.call(conn, "resize", {"image": "cat.png"}, timeout=10)
    cid = asyncrr.submit(conn, "resize", {"image": "dog.png"})
    reply = asyncrr.wait(conn, cid, timeout=10)

    with asyncrr.Inbox(conn, "billing-1") as inbox:       # a durable inbox
        for reply in inbox.replies(timeout=30):
            ...

    gid = asyncrr.scatter(conn, ["price", "stock"], {"sku": 17})   # one reply for both
    cid = asyncrr.submit(conn, "mail", {"to": "x"}, not_before=when, ordering_key="user-7")

Workers::

    asyncrr.Worker("dbname=app", "resize", handle, concurrency=4).run(handle_signals=True)

    def handle(payload, headers, job):                      # with pass_job=True
        job.report_progress({"pct": 50})
        ...

Every call is plain SQL against the asyncrr extension (doc/reference.md);
errors with a documented SQLSTATE are raised as :class:`AsyncrrError`
subclasses (:mod:`asyncrr.errors`).  Needs psycopg 3.1 or later.
"""
from ._types import FINAL_STATES, Duration, Reply
from .errors import (AsyncrrError, ClaimSuperseded, CorrelationIdConflict, InboxAlreadyHeld,
                     InboxInUse, InTransactionBlock, InvalidArgument, NotClaimed, NotFound,
                     NotPermitted, NotPreloaded, NullArgument, PayloadTooLarge, QueryCancelled,
                     QueueExists, QueueFull, QueueNotEmpty, ReplyAlreadyTaken, ReplyError,
                     Timeout, UnknownDeadLetter, UnknownQueue, UnknownRequest, WrongIsolationLevel,
                     WrongState)
from .inbox import Inbox
from .requester import (call, call_async, cancel, cancel_async, parts, parts_async, scatter,
                        scatter_async, status, status_async, submit, submit_async, submit_many,
                        submit_many_async, wait, wait_async)
from .worker import Job, Worker

__version__ = "0.3.0"

__all__ = [
    "Reply", "Duration", "FINAL_STATES",
    "call", "submit", "submit_many", "wait", "cancel", "status", "scatter", "parts",
    "call_async", "submit_async", "submit_many_async", "wait_async", "cancel_async",
    "status_async", "scatter_async", "parts_async",
    "Inbox", "Worker", "Job",
    "AsyncrrError", "InvalidArgument", "NullArgument", "CorrelationIdConflict",
    "InTransactionBlock", "NotPermitted", "NotFound", "UnknownQueue", "UnknownRequest",
    "UnknownDeadLetter", "QueueExists", "QueueFull", "PayloadTooLarge", "WrongState",
    "NotPreloaded", "WrongIsolationLevel", "InboxAlreadyHeld", "QueueNotEmpty", "NotClaimed",
    "ClaimSuperseded", "ReplyAlreadyTaken", "InboxInUse", "QueryCancelled", "Timeout",
    "ReplyError",
]

"""Inbox: LISTEN, take in batches, replies as they arrive, sync and async."""
import asyncio
import os
import signal
import subprocess
import sys
import threading
import time

import psycopg
import pytest

import asyncrr
from conftest import HERE, echo


def complete_all(dsn, queue, n=100, reply=None):
    """Claim and complete up to n requests of the queue in one go (no Worker)."""
    with psycopg.connect(dsn, autocommit=True) as w:
        rows = w.execute("SELECT correlation_id, payload, attempt FROM asyncrr.claim(%s, %s)",
                         (queue, n)).fetchall()
        for cid, payload, attempt in rows:
            w.execute("SELECT asyncrr.complete(%s, %s, %s)",
                      (cid, psycopg.types.json.Jsonb(reply or {"echo": payload}), attempt))
        return [r[0] for r in rows]


def test_inbox_sync_replies_as_they_arrive(conn, queue, start_worker):
    start_worker(queue, echo, batch=5)
    with asyncrr.Inbox(conn, batch=4) as inbox:
        assert inbox.channel.startswith("asyncrr._session_") and inbox.name.startswith("_session_")
        sent = {inbox.submit(queue, {"i": i}): i for i in range(12)}
        got = {}
        for reply in inbox.replies(timeout=15):
            got[reply.correlation_id] = reply
            if len(got) == len(sent):
                break
    assert set(got) == set(sent)
    for cid, i in sent.items():
        assert got[cid].reply["echo"] == {"i": i}


def test_inbox_takes_what_waits_on_open(dsn, conn, queue):
    # Replies already in a durable inbox before it is opened (no
    # notification will ever come for them) are handed out at once.
    with psycopg.connect(dsn, autocommit=True) as first:
        inbox = asyncrr.Inbox(first, "waiting-box").open()
        ids = [inbox.submit(queue, {"i": i}) for i in range(3)]
        inbox.close()
    assert sorted(complete_all(dsn, queue)) == sorted(ids)
    with asyncrr.Inbox(conn, "waiting-box", poll_interval=None) as inbox:
        t0 = time.monotonic()
        got = [r.correlation_id for r in inbox.replies(timeout=0)]
        assert time.monotonic() - t0 < 1
    assert sorted(got) == sorted(ids)


class HookedInbox(asyncrr.Inbox):
    """Runs hooks right after the LISTEN is committed and right after the
    first take, to put replies in the two places a race could hide them."""

    def __init__(self, *a, after_open=None, after_first_take=None, **kw):
        super().__init__(*a, **kw)
        self.after_open, self.after_first_take = after_open, after_first_take
        self.takes = 0

    def _opened(self, channel):
        super()._opened(channel)
        self.after_open()

    def _take_round(self, n=None):
        super()._take_round(n)
        self.takes += 1
        if self.takes == 1:
            self.after_first_take()


def test_inbox_loses_no_reply_between_listen_and_take(dsn, conn, queue):
    # Two requests submitted earlier by this inbox's previous session; one is
    # completed between open_inbox()'s LISTEN and the first take, the other
    # between the first take and the wait for notifications.  Polling is off:
    # only the take on open and the notification can deliver them.
    with psycopg.connect(dsn, autocommit=True) as first:
        inbox = asyncrr.Inbox(first, "race-box").open()
        a = inbox.submit(queue, {"which": "a"})
        b = inbox.submit(queue, {"which": "b"})
        inbox.close()

    def complete(cid):
        # claim() hands out the oldest first: a, then b
        with psycopg.connect(dsn, autocommit=True) as w:
            rid, attempt = w.execute("SELECT correlation_id, attempt FROM asyncrr.claim(%s, 1)",
                                     (queue,)).fetchone()
            assert rid == cid
            assert w.execute("SELECT asyncrr.complete(%s, '{\"ok\": 1}', %s)",
                             (rid, attempt)).fetchone()[0] == "completed"

    inbox = HookedInbox(conn, "race-box", poll_interval=None,
                        after_open=lambda: complete(a), after_first_take=lambda: complete(b))
    t0 = time.monotonic()
    got = []
    for reply in inbox.replies(timeout=10):
        got.append(reply.correlation_id)
        if len(got) == 2:
            break
    assert got == [a, b]
    assert time.monotonic() - t0 < 3
    inbox.close()


def test_inbox_retakes_a_notified_reply_that_was_locked(dsn, conn, admin, queue):
    # take_replies() skips rows another transaction holds; the notification
    # for such a reply is spent by then, so the inbox must look again.
    with asyncrr.Inbox(conn, poll_interval=None) as inbox:
        cid = inbox.submit(queue, {"locked": True})
        complete_all(dsn, queue)
        admin.autocommit = False
        admin.execute("SELECT 1 FROM asyncrr.request WHERE correlation_id = %s FOR UPDATE",
                      (cid,))
        unlock = threading.Timer(0.7, admin.commit)
        unlock.start()
        t0 = time.monotonic()
        got = []
        for reply in inbox.replies(timeout=5):
            got.append(reply.correlation_id)
            break
        elapsed = time.monotonic() - t0
        unlock.join()
    assert got == [cid]
    assert 0.6 < elapsed < 3


def test_inbox_break_keeps_the_rest(dsn, conn, queue):
    with asyncrr.Inbox(conn, batch=5) as inbox:
        ids = [inbox.submit(queue, {"i": i}) for i in range(7)]
        complete_all(dsn, queue)
        first = next(iter(inbox.replies(timeout=5)))       # takes 5, hands out 1
        rest = inbox.take(10)                              # the 4 others, then...
        rest += inbox.take(10)                             # ...the last 2
        assert inbox.take() == []
    assert sorted([first.correlation_id] + [r.correlation_id for r in rest]) == sorted(ids)


def test_inbox_async(dsn, queue, start_worker):
    start_worker(queue, echo, batch=10)

    async def main():
        aconn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
        async with aconn:
            async with asyncrr.Inbox(aconn, "async-box", batch=3) as inbox:
                sent = {await inbox.submit_async(queue, {"i": i}): i for i in range(8)}
                got = {}
                async for reply in inbox:
                    got[reply.correlation_id] = reply.reply["echo"]["i"]
                    if len(got) == len(sent):
                        break
                # nothing more comes: replies_async with a timeout ends
                t0 = time.monotonic()
                assert [r async for r in inbox.replies_async(timeout=0.3)] == []
                assert time.monotonic() - t0 < 2
                return sent, got
    sent, got = asyncio.run(asyncio.wait_for(main(), 20))
    assert got == sent


def test_inbox_wrong_mode_and_autocommit(dsn, conn):
    with pytest.raises(TypeError):
        asyncio.run(asyncrr.Inbox(conn).open_async())
    with psycopg.connect(dsn) as c:
        with pytest.raises(psycopg.ProgrammingError):
            asyncrr.Inbox(c).open()


def test_requester_restart_takes_reply_from_durable_inbox(dsn, conn, queue, cluster):
    # A requester process submits through a durable inbox and is killed.
    # The reply arrives while it is down; its next life opens the inbox and
    # takes the reply.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (os.path.dirname(HERE), os.environ.get("PYTHONPATH")) if p))
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "procs.py"), "requester",
                             dsn, queue, "restart-box"],
                            stdout=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline().split()
        assert line[:1] == ["SUBMITTED"], line
        cid = line[1]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert [str(c) for c in complete_all(dsn, queue)] == [cid]
    # The old backend may take a moment to notice its client has gone.
    with asyncrr.Inbox(conn, "restart-box", in_use_timeout=10, poll_interval=None) as inbox:
        got = list(inbox.replies(timeout=0))
    assert [str(r.correlation_id) for r in got] == [cid]
    assert got[0].reply == {"echo": {"from": "the first life"}}


def test_inbox_polls_when_notifications_are_lost(dsn, conn, queue):
    # Notifications are not durable; with them gone (here: UNLISTEN), the
    # inbox still takes the reply at its next poll.
    with asyncrr.Inbox(conn, poll_interval=0.5) as inbox:
        cid = inbox.submit(queue, {})
        conn.execute(f'UNLISTEN "{inbox.channel}"')
        assert list(inbox.replies(timeout=0)) == []
        complete_all(dsn, queue)
        t0 = time.monotonic()
        got = next(iter(inbox.replies(timeout=5)))
        assert got.correlation_id == cid and time.monotonic() - t0 < 1.5

"""Fixtures: one throwaway cluster for the whole session, a fresh queue per
test.  See pgcluster.py for how the cluster is made."""
from __future__ import annotations

import itertools
import os
import re
import sys
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE_ROOT = os.path.dirname(HERE)
# Test the package in this tree, installed or not.
sys.path.insert(0, PACKAGE_ROOT)
sys.path.insert(0, HERE)

import psycopg  # noqa: E402

import asyncrr  # noqa: E402
from pgcluster import Cluster  # noqa: E402

_names = itertools.count(1)


@pytest.fixture(scope="session")
def cluster():
    c = Cluster().start()
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture
def dsn(cluster):
    return cluster.dsn()


@pytest.fixture
def conn(dsn):
    c = psycopg.connect(dsn, autocommit=True)
    yield c
    c.close()


@pytest.fixture
def admin(dsn):
    """A second superuser connection, for setting up and looking on."""
    c = psycopg.connect(dsn, autocommit=True)
    yield c
    c.close()


@pytest.fixture
def make_queue(admin, request):
    """make_queue(**settings) creates a queue named after the test."""
    base = re.sub(r"[^A-Za-z0-9_.-]", "-", request.node.name)[:30]

    def make(default_timeout="30 seconds", lease="30 seconds", max_attempts=3):
        name = f"t{next(_names)}-{base}"
        admin.execute("SELECT asyncrr.create_queue(%s, %s::interval, %s::interval, %s)",
                      (name, default_timeout, lease, max_attempts))
        return name
    return make


@pytest.fixture
def queue(make_queue):
    return make_queue()


class RunningWorker:
    """A Worker running in a thread for the duration of a test."""

    def __init__(self, worker: asyncrr.Worker):
        self.worker = worker
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            self.worker.run()
        except BaseException as exc:   # reported by stop()
            self.error = exc

    def stop(self, timeout=15):
        self.worker.stop()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the worker did not stop"
        if self.error is not None:
            raise self.error


@pytest.fixture
def start_worker(dsn):
    """start_worker(queue, handler, **kw): a Worker in a thread, stopped
    (and checked) at the end of the test."""
    running = []

    def start(queue, handler, **kw):
        w = RunningWorker(asyncrr.Worker(dsn, queue, handler, **kw))
        running.append(w)
        return w.worker
    yield start
    for w in running:
        w.stop()


def echo(payload, headers):
    return {"echo": payload, "headers": headers}


def wait_until(predicate, timeout=10, step=0.05):
    """Polls predicate until it is true or timeout seconds pass; its last value."""
    until = time.monotonic() + timeout
    while time.monotonic() < until:
        if predicate():
            return True
        time.sleep(step)
    return predicate()

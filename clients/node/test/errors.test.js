'use strict';
// Errors mapped by SQLSTATE, each raised for real by the server.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const pg = require('pg');
const { TestCluster } = require('./helpers/cluster');
const asyncrr = require('../lib');

const {
  call, submit, wait, Inbox, mapError, AsyncrrError, InvalidArgumentError, NullValueError,
  CorrelationIdConflictError, TransactionBlockError, PermissionDeniedError, NotFoundError,
  AlreadyExistsError, QueueFullError, TooLargeError, InvalidStateError, InboxInUseError,
  CanceledError,
} = asyncrr;

/** assert.rejects with the class, its code, and the AsyncrrError base. */
async function rejectsWith(promise, Cls, code, message) {
  await assert.rejects(promise, (err) => {
    assert.ok(err instanceof Cls, `${err && err.name}: ${err && err.message} is a ${Cls.name}`);
    assert.ok(err instanceof AsyncrrError);
    assert.ok(err instanceof Error);
    assert.equal(err.code, code);
    assert.equal(err.name, Cls.name);
    assert.ok(err.cause instanceof pg.DatabaseError, 'the pg error is the cause');
    if (message) assert.match(err.message, message);
    return true;
  });
}

describe('errors', () => {
  let cluster;
  let c;

  before(async () => {
    cluster = await TestCluster.start();
    c = await cluster.connect();
    await c.query("SELECT asyncrr.create_queue('e')");
    await c.query("SELECT asyncrr.create_queue('small')");
    await c.query("SELECT asyncrr.alter_queue('small', max_depth => 1)");
  });

  after(async () => {
    if (c) await c.end();
    if (cluster) await cluster.stop();
  });

  it('42704 NotFoundError: no such queue', async () => {
    await rejectsWith(submit(c, 'nope', {}), NotFoundError, '42704', /queue "nope" does not exist/);
    await rejectsWith(call(c, 'nope', {}), NotFoundError, '42704');
  });

  it('22023 InvalidArgumentError and 22004 NullValueError', async () => {
    const s = await cluster.connect();
    try {
      await rejectsWith(Inbox.open(s, { name: 'bad name' }), InvalidArgumentError, '22023', /invalid inbox name/);
    } finally {
      await s.end();
    }
    await rejectsWith(submit(c, 'e', {}, { timeout: -5 }), InvalidArgumentError, '22023');
    await rejectsWith(submit(c, 'e', {}, { headers: [1, 2] }), InvalidArgumentError, '22023');
    await rejectsWith(submit(c, 'e', undefined), NullValueError, '22004');
    assert.ok(new NullValueError('x') instanceof InvalidArgumentError);
  });

  it('23505 CorrelationIdConflictError: an id used for another payload', async () => {
    const id = '00000000-0000-4000-8000-00000000abcd';
    await submit(c, 'e', { a: 1 }, { correlationId: id });
    await rejectsWith(submit(c, 'e', { a: 2 }, { correlationId: id }), CorrelationIdConflictError, '23505');
  });

  it('25001 TransactionBlockError: call() inside BEGIN', async () => {
    const t = await cluster.connect();
    try {
      await t.query('BEGIN');
      await rejectsWith(call(t, 'e', {}), TransactionBlockError, '25001', /cannot run inside a transaction block/);
      await t.query('ROLLBACK');
    } finally {
      await t.end();
    }
  });

  it('42501 PermissionDeniedError: a role without asyncrr roles, or without the queue privilege', async () => {
    await c.query('CREATE ROLE outsider LOGIN');
    await c.query('CREATE ROLE requester1 LOGIN IN ROLE asyncrr_requester');
    for (const user of ['outsider', 'requester1']) {
      const o = await cluster.connect({ user });
      try {
        await rejectsWith(submit(o, 'e', {}), PermissionDeniedError, '42501', /permission denied/);
      } finally {
        await o.end();
      }
    }
  });

  it('42710 AlreadyExistsError (mapError on a statement of your own)', async () => {
    const err = await c.query("SELECT asyncrr.create_queue('e')").catch((e) => e);
    const mapped = mapError(err);
    assert.ok(mapped instanceof AlreadyExistsError);
    assert.equal(mapped.code, '42710');
    assert.equal(mapError(mapped), mapped, 'mapping twice changes nothing');
    const plain = new Error('not from the server');
    assert.equal(mapError(plain), plain, 'other errors pass unchanged');
  });

  it('53400 QueueFullError: max_depth reached', async () => {
    const s = await cluster.connect();
    try {
      await submit(s, 'small', 1);
      await rejectsWith(submit(s, 'small', 2), QueueFullError, '53400', /is full/);
    } finally {
      await s.end();
    }
  });

  it('54000 TooLargeError: payload over asyncrr.max_payload_bytes', async () => {
    const big = { blob: 'x'.repeat(1100 * 1024) };
    await rejectsWith(submit(c, 'e', big), TooLargeError, '54000', /payload too large/);
  });

  it('55000 InvalidStateError: the session holds another inbox', async () => {
    const s = await cluster.connect();
    try {
      await submit(s, 'e', 'opens a session inbox');
      await rejectsWith(Inbox.open(s, { name: 'other' }), InvalidStateError, '55000', /already holds/);
    } finally {
      await s.end();
    }
  });

  it('55006 InboxInUseError: the durable inbox is held by another live session', async () => {
    const a = await cluster.connect();
    const b = await cluster.connect();
    try {
      const inbox = await Inbox.open(a, { name: 'shared' });
      await assert.rejects(Inbox.open(b, { name: 'shared' }), (err) => {
        assert.ok(err instanceof InboxInUseError);
        assert.equal(err.code, '55006');
        assert.match(err.detail, new RegExp(`PID ${a.processID}`));
        assert.ok(err.hint);
        return true;
      });
      await inbox.close();
      const again = await Inbox.open(b, { name: 'shared' });
      await again.close();
    } finally {
      await a.end();
      await b.end();
    }
  });

  it('57014 CanceledError: a wait cut short by statement_timeout', async () => {
    const s = await cluster.connect();
    try {
      const id = await submit(s, 'e', 'never answered');
      await s.query("SET statement_timeout = '200ms'");
      await rejectsWith(wait(s, id, 5000), CanceledError, '57014');
    } finally {
      await s.end();
    }
  });

  it('42704 from wait() for a request of another session', async () => {
    const a = await cluster.connect();
    const b = await cluster.connect();
    try {
      const id = await submit(a, 'e', 'mine');
      await Inbox.open(b);
      await rejectsWith(wait(b, id, 0), NotFoundError, '42704');
    } finally {
      await a.end();
      await b.end();
    }
  });

  it('argument errors caught before the server: TypeError', async () => {
    await assert.rejects(submit(c, 'e', {}, { timeout: { seconds: 1 } }), TypeError);
    await assert.rejects(submit(null, 'e', {}), TypeError);
    await assert.rejects(Inbox.open(c, { batch: 0 }), TypeError);
  });
});

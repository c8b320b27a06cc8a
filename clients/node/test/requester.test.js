'use strict';
// The requester side against a real cluster: call, submit + wait, Inbox.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { TestCluster, waitFor, sleep } = require('./helpers/cluster');
const asyncrr = require('../lib');

const { call, submit, wait, status, Inbox, Worker, Reply } = asyncrr;

describe('requester', () => {
  let cluster;
  let admin; // a connection for setup and checks
  const workers = [];

  /** A worker answering {"echo": payload} on `queue`, stopped in after(). */
  function echoWorker(queue, opts = {}) {
    const w = new Worker({ connectionString: cluster.connectionString }, queue,
      async (payload, headers) => ({ echo: payload, headers }),
      { concurrency: 4, idleWait: 5000, ...opts });
    workers.push(w);
    w.run();
    return w;
  }

  before(async () => {
    cluster = await TestCluster.start();
    admin = await cluster.connect();
    for (const q of ['rt', 'sw', 'inbox', 'durable', 'live']) {
      await admin.query('SELECT asyncrr.create_queue($1)', [q]);
    }
  });

  after(async () => {
    await Promise.all(workers.map((w) => w.stop()));
    if (admin) await admin.end();
    if (cluster) await cluster.stop();
  });

  it('call(): a round trip in one statement', async () => {
    echoWorker('rt');
    const c = await cluster.connect();
    try {
      const r = await call(c, 'rt', { image: 'cat.png', sizes: [1, 2] }, { timeout: 5000 });
      assert.ok(r instanceof Reply);
      assert.equal(r.status, 'completed');
      assert.ok(r.ok && r.done);
      assert.deepEqual(r.reply, { echo: { image: 'cat.png', sizes: [1, 2] }, headers: null });
      assert.equal(r.error, null);
      assert.match(r.correlationId, /^[0-9a-f-]{36}$/);

      // an array payload stays a JSON array (not a PostgreSQL array)
      const r2 = await call(c, 'rt', [1, 'two', { three: 3 }], { timeout: '5 seconds' });
      assert.deepEqual(r2.reply.echo, [1, 'two', { three: 3 }]);

      // call leaves no inbox in the session
      const { rows } = await c.query('SELECT count(*)::int AS n FROM asyncrr.inboxes WHERE holder_pid = pg_backend_pid()');
      assert.equal(rows[0].n, 0);

      // a pg.Pool works too
      const pool = new (require('pg').Pool)({ connectionString: cluster.connectionString, max: 1 });
      try {
        const r3 = await call(pool, 'rt', 'via pool', { timeout: 5000 });
        assert.equal(r3.reply.echo, 'via pool');
      } finally {
        await pool.end();
      }
    } finally {
      await c.end();
    }
  });

  it('call(): timed_out at the deadline when no worker answers', async () => {
    await admin.query("SELECT asyncrr.create_queue('nobody')");
    const c = await cluster.connect();
    try {
      const t0 = Date.now();
      const r = await call(c, 'nobody', { x: 1 }, { timeout: 300 });
      assert.ok(Date.now() - t0 >= 250);
      assert.equal(r.status, 'timed_out');
      assert.equal(r.ok, false);
      assert.equal(r.done, true);
      assert.match(r.error, /no reply within/);
    } finally {
      await c.end();
    }
  });

  it('submit() + wait(): the reply, and the live state after a timeout', async () => {
    const c = await cluster.connect();
    try {
      const id = await submit(c, 'sw', { n: 1 }, { headers: { trace: 'abc' }, priority: 5, timeout: 10000 });
      assert.match(id, /^[0-9a-f-]{36}$/);
      // no worker yet: wait returns the live state and takes nothing
      const pending = await wait(c, id, 100);
      assert.equal(pending.status, 'pending');
      assert.equal(pending.done, false);
      assert.equal(pending.correlationId, id);

      echoWorker('sw');
      const r = await wait(c, id, 5000);
      assert.equal(r.status, 'completed');
      assert.equal(r.correlationId, id);
      assert.deepEqual(r.reply, { echo: { n: 1 }, headers: { trace: 'abc' } });

      // an explicit correlation id is returned as given; a repeat is idempotent
      const mine = '00000000-0000-4000-8000-000000000001';
      assert.equal(await submit(c, 'sw', 'x', { correlationId: mine }), mine);
      assert.equal(await submit(c, 'sw', 'x', { correlationId: mine }), mine);
      const r2 = await wait(c, mine, '5 seconds');
      assert.equal(r2.reply.echo, 'x');
      const st = await status(c, mine);
      assert.equal(st.state, 'completed');
      assert.equal(st.queue, 'sw');
      assert.equal(await status(c, '00000000-0000-4000-8000-0000000000ff'), null);
    } finally {
      await c.end();
    }
  });

  it('Inbox: LISTENs and yields replies as they arrive, in batches', async () => {
    const c = await cluster.connect();
    const takes = [];
    const origQuery = c.query.bind(c);
    c.query = (...args) => {
      if (typeof args[0] === 'string' && args[0].includes('take_replies')) takes.push(args[1][0]);
      return origQuery(...args);
    };
    try {
      const inbox = await Inbox.open(c, { batch: 4, pollInterval: 0 });
      assert.match(inbox.name, /^_session_[0-9a-f]{16}$/);
      assert.equal(inbox.channel, `asyncrr.${inbox.name}`);
      assert.equal(inbox.durable, false);
      const listening = await origQuery('SELECT pg_listening_channels() AS ch');
      assert.deepEqual(listening.rows.map((r) => r.ch), [inbox.channel]);

      // With polling off, only a notification can wake the waiting receive().
      const first = inbox.receive({ timeout: 8000 });
      await sleep(100);
      const id0 = await inbox.submit('inbox', { i: 0 });
      echoWorker('inbox');
      const r0 = await first;
      assert.ok(r0, 'a notification woke the inbox');
      assert.equal(r0.correlationId, id0);
      assert.ok(r0.finishedAt instanceof Date);

      const ids = new Set();
      for (let i = 1; i <= 10; i++) ids.add(await submit(c, 'inbox', { i }));
      const got = new Set();
      for await (const reply of inbox) {
        assert.equal(reply.status, 'completed');
        assert.ok(ids.has(reply.correlationId), 'only replies of this inbox');
        assert.ok(!got.has(reply.correlationId), 'each reply once');
        got.add(reply.correlationId);
        if (got.size === ids.size) break;
      }
      assert.equal(got.size, 10);
      assert.ok(takes.every((n) => n === 4), 'take_replies(batch)');
      assert.deepEqual(await inbox.close(), []);
      assert.equal(await inbox.receive(), null, 'a closed inbox yields nothing');
      const after = await origQuery('SELECT count(*)::int AS n FROM pg_listening_channels()');
      assert.equal(after.rows[0].n, 0, 'close() UNLISTENs');
    } finally {
      await c.end();
    }
  });

  it('Inbox: a batch taken but not all yielded is not lost', async () => {
    const c = await cluster.connect();
    try {
      const inbox = await Inbox.open(c, { batch: 10 });
      const ids = [];
      for (let i = 0; i < 5; i++) ids.push(await inbox.submit('inbox', { i }));
      await waitFor(async () => {
        const { rows } = await admin.query("SELECT count(*)::int AS n FROM asyncrr.inboxes WHERE name = $1 AND untaken_replies = 5", [inbox.name]);
        return rows[0].n === 1;
      }, { what: 'five replies' });
      const seen = [];
      for await (const r of inbox) {
        seen.push(r.correlationId);
        break; // after one: four are taken and held by the inbox object
      }
      const second = await inbox.receive({ timeout: 1000 });
      seen.push(second.correlationId);
      const left = await inbox.close();
      assert.equal(left.length, 3, 'close() hands back the taken, unyielded replies');
      assert.deepEqual(new Set([...seen, ...left.map((r) => r.correlationId)]), new Set(ids));
    } finally {
      await c.end();
    }
  });

  it('durable Inbox: a restarted requester takes the reply that came while it was down', async () => {
    // The requester opens its durable inbox, submits, and goes away
    // without closing it (as a crashed process would).
    const c1 = await cluster.connect();
    const inbox1 = await Inbox.open(c1, { name: 'billing-1' });
    assert.equal(inbox1.channel, 'asyncrr.billing-1');
    assert.equal(inbox1.durable, true);
    const id = await inbox1.submit('durable', { invoice: 17 });
    await c1.end();

    // The reply comes while no requester holds the inbox: its notification
    // goes to nobody.
    echoWorker('durable');
    await waitFor(async () => {
      const { rows } = await admin.query('SELECT state FROM asyncrr.status($1)', [id]);
      return rows[0].state === 'completed';
    }, { what: 'the request to complete' });

    // The next instance opens the inbox and finds the reply on open.
    const c2 = await cluster.connect();
    try {
      let inbox2;
      await waitFor(async () => {
        try {
          inbox2 = await Inbox.open(c2, { name: 'billing-1', pollInterval: 0 });
          return true;
        } catch (err) {
          // the old backend may still be exiting
          if (err instanceof asyncrr.InboxInUseError) return false;
          throw err;
        }
      }, { what: 'the inbox to be free' });
      const r = await inbox2.receive({ timeout: 0 });
      assert.ok(r, 'the reply was taken on open, before any notification');
      assert.equal(r.correlationId, id);
      assert.equal(r.status, 'completed');
      assert.deepEqual(r.reply.echo, { invoice: 17 });
      assert.equal(await inbox2.receive({ timeout: 200 }), null, 'handed out once');
      await inbox2.close();

      // the reply is not in the inbox any more
      const { rows } = await admin.query("SELECT untaken_replies::int AS n FROM asyncrr.inboxes WHERE name = 'billing-1'");
      assert.equal(rows[0].n, 0);
    } finally {
      await c2.end();
    }
  });

  it('Inbox: replies keep coming while the inbox is iterated and submitted to concurrently', async () => {
    const c = await cluster.connect();
    try {
      echoWorker('live', { concurrency: 3 });
      const inbox = await Inbox.open(c, { batch: 3 });
      const n = 30;
      const ids = new Set();
      const submitting = (async () => {
        for (let i = 0; i < n; i++) {
          ids.add(await inbox.submit('live', { i }));
          if (i % 5 === 0) await sleep(10);
        }
      })();
      const got = new Set();
      const deadline = Date.now() + 15000;
      while (got.size < n && Date.now() < deadline) {
        const r = await inbox.receive({ timeout: 1000 });
        if (r) got.add(r.correlationId);
      }
      await submitting;
      assert.equal(got.size, n);
      assert.deepEqual(got, ids);
      await inbox.close();
    } finally {
      await c.end();
    }
  });
});

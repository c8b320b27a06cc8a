'use strict';
// asyncrr 0.3 against a real cluster: delayed requests (notBefore), order
// per key (orderingKey), scatter-gather (scatter, parts) and progress
// reports (ctx.reportProgress, the Inbox's 'progress' event, status()).

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { TestCluster, waitFor, sleep } = require('./helpers/cluster');
const asyncrr = require('../lib');

const { submit, submitMany, wait, status, cancel, scatter, parts, Inbox, Worker } = asyncrr;

describe('delayed, ordered, scattered, progress', () => {
  let cluster;
  let admin;
  const workers = [];
  const clients = [];

  function worker(queue, handler, opts = {}) {
    const w = new Worker({ connectionString: cluster.connectionString }, queue, handler,
      { idleWait: 30000, onError: (err, what) => console.error(`worker ${queue}: ${what}: ${err.message}`), ...opts });
    workers.push(w);
    w.run();
    return w;
  }

  async function connect() {
    const c = await cluster.connect();
    clients.push(c);
    return c;
  }

  before(async () => {
    cluster = await TestCluster.start();
    admin = await cluster.connect();
    for (const q of ['later', 'later2', 'keyed', 'sg_a', 'sg_b', 'sg_c', 'sg_d', 'prog', 'prog2', 'prog3']) {
      await admin.query('SELECT asyncrr.create_queue($1)', [q]);
    }
  });

  after(async () => {
    await Promise.all(workers.map((w) => w.stop({ timeout: 0 })));
    for (const c of clients) await c.end().catch(() => {});
    if (admin) await admin.end();
    if (cluster) await cluster.stop();
  });

  it('notBefore: not claimable before its time; a sleeping worker is woken at it', async () => {
    const c = await connect();
    const notBefore = new Date(Date.now() + 1500);
    const id = await submit(c, 'later', { n: 1 }, { timeout: 30000, notBefore });
    const st = await status(c, id);
    assert.equal(st.state, 'pending');
    assert.equal(st.deadline.getTime() - notBefore.getTime(), 30000, 'deadline = notBefore + timeout');
    const { rows } = await admin.query('SELECT not_before FROM asyncrr.pending WHERE correlation_id = $1', [id]);
    assert.equal(rows[0].not_before.getTime(), notBefore.getTime());
    const claim = await admin.query("SELECT count(*)::int AS n FROM asyncrr.claim('later')");
    assert.equal(claim.rows[0].n, 0, 'not claimable yet');

    // The worker sleeps in wait_for_work (idleWait 30 s): the background
    // worker wakes it when the request falls due.
    let claimedAt = null;
    worker('later', async (payload) => {
      claimedAt = Date.now();
      return payload;
    });
    const r = await wait(c, id, 10000);
    assert.equal(r.status, 'completed');
    assert.deepEqual(r.reply, { n: 1 });
    assert.ok(claimedAt >= notBefore.getTime() - 20, `claimed ${notBefore.getTime() - claimedAt} ms early`);
    assert.ok(claimedAt < notBefore.getTime() + 3000, 'claimed soon after its time');
  });

  it('notBefore and orderingKey with submitMany, a timestamp string, and bad types', async () => {
    const c = await connect();
    const later = new Date(Date.now() + 3600 * 1000);
    const ids = await submitMany(c, 'later2', [{ i: 0 }, { i: 1 }], { notBefore: later, orderingKey: 'k-1' });
    const one = await submit(c, 'later2', { i: 2 }, { notBefore: later.toISOString() });
    const { rows } = await admin.query(
      "SELECT correlation_id, not_before, ordering_key FROM asyncrr.pending WHERE queue_name = 'later2'");
    const byId = Object.fromEntries(rows.map((r) => [r.correlation_id, [r.not_before.getTime(), r.ordering_key]]));
    assert.deepEqual(byId, {
      [ids[0]]: [later.getTime(), 'k-1'],
      [ids[1]]: [later.getTime(), 'k-1'],
      [one]: [later.getTime(), null],
    });
    const claim = await admin.query("SELECT count(*)::int AS n FROM asyncrr.claim('later2', 10)");
    assert.equal(claim.rows[0].n, 0);
    await assert.rejects(submit(c, 'later2', {}, { notBefore: 12345 }), TypeError);
    await assert.rejects(submit(c, 'later2', {}, { notBefore: new Date(NaN) }), TypeError);
    await assert.rejects(submitMany(c, 'later2', [{}], { orderingKey: 7 }), TypeError);
  });

  it('orderingKey: one at a time, in submit order, across two workers', async () => {
    const c = await connect();
    const ids = await submitMany(c, 'keyed', [0, 1, 2, 3].map((i) => ({ i })), { orderingKey: 'acct-1' });
    for (const i of [4, 5]) ids.push(await submit(c, 'keyed', { i }, { orderingKey: 'acct-1' }));
    const keys = await admin.query("SELECT DISTINCT ordering_key FROM asyncrr.pending WHERE queue_name = 'keyed'");
    assert.deepEqual(keys.rows, [{ ordering_key: 'acct-1' }]);
    const events = [];
    const handler = async (payload) => {
      events.push(`start ${payload.i}`);
      await sleep(100);
      events.push(`end ${payload.i}`);
      return payload;
    };
    // room for four at once: the key lets one through at a time
    worker('keyed', handler, { concurrency: 2 });
    worker('keyed', handler, { concurrency: 2 });
    for (const [i, id] of ids.entries()) {
      const r = await wait(c, id, 15000);
      assert.equal(r.status, 'completed');
      assert.deepEqual(r.reply, { i });
    }
    assert.deepEqual(events, [0, 1, 2, 3, 4, 5].flatMap((i) => [`start ${i}`, `end ${i}`]));
  });

  it('scatter: a straggler times the gather out; the reply is keyed by queue; parts()', async () => {
    const c = await connect();
    worker('sg_a', async (payload, headers) => ({ echo: payload, headers }));
    // nobody serves sg_b
    const id = await scatter(c, ['sg_a', 'sg_b'], { sku: 17 }, { timeout: 1000, headers: { trace: 's-1' } });
    assert.match(id, /^[0-9a-f-]{36}$/);
    assert.equal((await status(c, id)).queue, '(scatter)');
    const ps = await parts(c, id);
    assert.deepEqual(ps.map((p) => p.queue), ['sg_a', 'sg_b']);
    assert.deepEqual(Object.keys(ps[0]).sort(), ['correlationId', 'error', 'queue', 'reply', 'state']);
    assert.ok(!ps.some((p) => p.correlationId === id));

    const r = await wait(c, id, 10000);
    assert.equal(r.correlationId, id);
    assert.equal(r.status, 'timed_out');
    assert.deepEqual(r.reply, {
      sg_a: { status: 'completed', reply: { echo: { sku: 17 }, headers: { trace: 's-1' } } },
      sg_b: { status: 'timed_out' },
    });
    assert.match(r.error, /sg_b/);
    assert.doesNotMatch(r.error, /sg_a/);
    assert.deepEqual((await parts(c, id)).map((p) => [p.queue, p.state]),
      [['sg_a', 'completed'], ['sg_b', 'timed_out']]);
    assert.deepEqual(await parts(c, '00000000-0000-4000-8000-0000000000ff'), []);
    await assert.rejects(scatter(c, ['sg_a', 'no-such-queue'], {}), asyncrr.NotFoundError);
    await assert.rejects(scatter(c, 'sg_a', {}), TypeError);
  });

  it('scatter through an Inbox: one reply, the gather\'s, never the parts', async () => {
    const c = await connect();
    worker('sg_c', async (payload) => ({ from: 'c', payload }));
    worker('sg_d', async (payload) => ({ from: 'd', payload }));
    const inbox = await Inbox.open(c, { pollInterval: 0 });
    const gid = '00000000-0000-4000-8000-0000000016a1';
    assert.equal(await inbox.scatter(['sg_c', 'sg_d'], [1, 2], { timeout: 10000, correlationId: gid }), gid);
    // the same gather again (queues in any order): the same id
    assert.equal(await inbox.scatter(['sg_d', 'sg_c'], [1, 2], { correlationId: gid }), gid);
    const r = await inbox.receive({ timeout: 10000 });
    assert.ok(r, 'the gather replied');
    assert.equal(r.correlationId, gid);
    assert.equal(r.status, 'completed');
    assert.equal(r.error, null);
    assert.deepEqual(r.reply, {
      sg_c: { status: 'completed', reply: { from: 'c', payload: [1, 2] } },
      sg_d: { status: 'completed', reply: { from: 'd', payload: [1, 2] } },
    });
    assert.equal(await inbox.receive({ timeout: 300 }), null, 'no part replies');
    await inbox.close();
  });

  it('ctx.reportProgress reaches the Inbox (\'progress\') and status()', async () => {
    const c = await connect();
    let told;
    const heard = new Promise((resolve) => { told = resolve; });
    const results = [];
    const w = worker('prog', async (payload, headers, ctx) => {
      results.push(await ctx.reportProgress({ pct: 50, step: 'resize' }));
      await Promise.race([heard, sleep(10000)]); // until the requester heard of it
      return { done: true };
    });
    const inbox = await Inbox.open(c, { pollInterval: 0 });
    const seen = [];
    inbox.on('progress', async (id) => {
      const st = await status(c, id);
      seen.push([id, st.state, st.progress, st.progressAt instanceof Date]);
      told();
    });
    const id = await inbox.submit('prog', { job: 1 });
    const t0 = Date.now();
    const r = await inbox.receive({ timeout: 10000 });
    assert.ok(Date.now() - t0 < 5000, 'the handler waited for the progress event in vain');
    assert.equal(r.correlationId, id);
    assert.deepEqual(r.reply, { done: true });
    assert.deepEqual(results, [true]);
    assert.deepEqual(seen, [[id, 'claimed', { pct: 50, step: 'resize' }, true]]);
    const st = await status(c, id); // kept after the end
    assert.equal(st.state, 'completed');
    assert.deepEqual(st.progress, { pct: 50, step: 'resize' });
    assert.equal(w.stats.progress, 1);
    await inbox.close();
  });

  it('a progress notification takes nothing and does not disturb the replies', async () => {
    const c = await connect();
    let proceed;
    const go = new Promise((resolve) => { proceed = resolve; });
    worker('prog2', async (payload, headers, ctx) => {
      for (const pct of [25, 50, 75]) {
        assert.equal(await ctx.reportProgress({ pct }), true);
        await sleep(50);
      }
      await Promise.race([go, sleep(10000)]);
      return 'done';
    });
    let takes = 0;
    const origQuery = c.query.bind(c);
    c.query = (...args) => {
      if (typeof args[0] === 'string' && args[0].includes('take_replies')) takes++;
      return origQuery(...args);
    };
    const inbox = await Inbox.open(c, { pollInterval: 0 });
    const takesAt = [];
    inbox.on('progress', (id) => {
      takesAt.push([id, takes]);
      if (takesAt.length === 3) proceed();
    });
    const id = await inbox.submit('prog2', { job: 2 });
    // a receive() is waiting all along: a progress notification must not make it take
    const r = await inbox.receive({ timeout: 10000 });
    assert.ok(r);
    assert.equal(r.correlationId, id);
    assert.equal(r.reply, 'done');
    assert.deepEqual(takesAt.map(([i]) => i), [id, id, id]);
    const first = takesAt[0][1];
    assert.ok(first <= 2, `${first} takes before the first progress`);
    assert.deepEqual(takesAt.map(([, n]) => n), [first, first, first], 'no take for a progress notification');
    assert.ok(takes <= first + 2, `${takes} takes in all`);
    await inbox.close();
  });

  it('ctx.reportProgress resolves false once the request has ended', async () => {
    const c = await connect();
    let reported;
    const isReported = new Promise((resolve) => { reported = resolve; });
    let cancelled;
    const isCancelled = new Promise((resolve) => { cancelled = resolve; });
    const results = [];
    worker('prog3', async (payload, headers, ctx) => {
      results.push(await ctx.reportProgress('first'));
      reported();
      await Promise.race([isCancelled, sleep(10000)]);
      results.push(await ctx.reportProgress('second'));
      return 'too late';
    });
    const id = await submit(c, 'prog3', {});
    await Promise.race([isReported, sleep(10000)]);
    assert.deepEqual(results, [true]);
    assert.equal(await cancel(c, id), true);
    cancelled();
    await waitFor(() => results.length === 2, { what: 'the second report' });
    assert.deepEqual(results, [true, false]);
    assert.equal((await status(c, id)).progress, 'first');
    assert.equal((await wait(c, id, 5000)).status, 'cancelled');
  });
});

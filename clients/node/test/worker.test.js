'use strict';
// The worker against a real cluster: batches, retries, leases, stop(),
// and worker processes that are killed or told to stop.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { TestCluster, waitFor, sleep } = require('./helpers/cluster');
const asyncrr = require('../lib');

const { submit, submitMany, wait, status, Inbox, Worker } = asyncrr;
const CHILD = path.join(__dirname, 'fixtures', 'worker-child.js');

describe('worker', () => {
  let cluster;
  let admin;
  const cleanups = [];

  const newWorker = (queue, handler, opts = {}) => {
    const w = new Worker({ connectionString: cluster.connectionString }, queue, handler,
      { idleWait: 5000, onError: (err, what) => console.error(`worker ${queue}: ${what}: ${err.message}`), ...opts });
    cleanups.push(() => w.stop({ timeout: 0 }));
    return w;
  };

  async function states(queue) {
    const { rows } = await admin.query(
      `SELECT state, count(*)::int AS n FROM asyncrr.pending WHERE queue_name = $1 GROUP BY state
       UNION ALL
       SELECT state, count(*)::int FROM asyncrr.request r WHERE queue_name = $1 AND state NOT IN ('pending', 'claimed') GROUP BY state`,
      [queue]);
    return Object.fromEntries(rows.map((r) => [r.state, r.n]));
  }

  /** A child process running test/fixtures/worker-child.js, with its output lines. */
  function child(queue, mode) {
    const proc = spawn(process.execPath, [CHILD, cluster.connectionString, queue, mode],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    const lines = [];
    let buf = '';
    proc.stdout.on('data', (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        lines.push(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
    });
    let stderr = '';
    proc.stderr.on('data', (d) => { stderr += d; });
    const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
    cleanups.push(() => { if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL'); });
    return { proc, lines, exited, stderr: () => stderr };
  }

  before(async () => {
    cluster = await TestCluster.start();
    admin = await cluster.connect();
    await admin.query("SELECT asyncrr.create_queue('batch')");
    await admin.query("SELECT asyncrr.create_queue('retry')");
    await admin.query("SELECT asyncrr.create_queue('broken', max_attempts => 2)");
    await admin.query("SELECT asyncrr.create_queue('long', lease => '1 second')");
    await admin.query("SELECT asyncrr.create_queue('stop1')");
    await admin.query("SELECT asyncrr.create_queue('stop2')");
    await admin.query("SELECT asyncrr.create_queue('killed', lease => '1 second')");
    await admin.query("SELECT asyncrr.create_queue('term')");
    await admin.query("SELECT asyncrr.create_queue('pooled')");
    await admin.query("SELECT asyncrr.create_queue('stream')");
    await admin.query("SELECT asyncrr.create_queue('stopclaim')");
  });

  after(async () => {
    for (const f of cleanups.reverse()) await f();
    if (admin) await admin.end();
    if (cluster) await cluster.stop();
  });

  it('keeps claiming under a closed loop of 16 callers (claims and batches of replies side by side)', async () => {
    // As test/bench/brokers runs it: two worker processes (fixture mode
    // echo: an instant handler, concurrency 10, batch 10), 16 callers each
    // sending its next request when its reply is in. The loop and the
    // batches of replies (complete_and_claim) claim side by side. A batch
    // that claimed nothing once gave back its slots without waking the
    // loop, which waited for a slot for good: within a second both
    // workers had stopped claiming.
    const kids = [child('stream', 'echo'), child('stream', 'echo')];
    await Promise.all(kids.map((k) => waitFor(() => k.lines.includes('READY'))));
    const callers = await Promise.all(Array.from({ length: 16 }, () => cluster.connect()));
    let calls = 0;
    try {
      const until = Date.now() + 4000;
      await Promise.all(callers.map(async (c, k) => {
        for (let i = 0; Date.now() < until; i++) {
          const r = await asyncrr.call(c, 'stream', { n: k * 100000 + i }, { timeout: 3000 });
          assert.equal(r.status, 'completed', `call ${k}/${i} after ${calls} calls: ${r.status} ${r.error}`);
          assert.equal(r.reply.n, k * 100000 + i);
          calls++;
        }
      }));
      assert.ok(calls > 200, `${calls} calls`);
    } finally {
      for (const c of callers) await c.end();
      for (const k of kids) k.proc.kill('SIGTERM');
      const ends = await Promise.all(kids.map((k) => k.exited));
      for (const [i, k] of kids.entries()) {
        assert.equal(k.stderr(), '', `worker ${i} reported no error`);
        assert.deepEqual(ends[i], { code: 0, signal: null });
      }
    }
  });

  it('claims in batches and completes in batches with complete_many', async () => {
    const c = await cluster.connect();
    try {
      const inbox = await Inbox.open(c);
      const ids = await submitMany(c, 'batch', Array.from({ length: 20 }, (_, i) => ({ i })));
      assert.equal(ids.length, 20);
      let running = 0;
      let maxRunning = 0;
      const w = newWorker('batch', async (payload) => {
        running++;
        maxRunning = Math.max(maxRunning, running);
        await sleep(50);
        running--;
        return { doubled: payload.i * 2 };
      }, { concurrency: 10, batch: 10 });
      const run = w.run();
      const got = new Map();
      for await (const r of inbox) {
        got.set(r.correlationId, r);
        if (got.size === 20) break;
      }
      for (const [i, id] of ids.entries()) {
        assert.equal(got.get(id).status, 'completed');
        assert.deepEqual(got.get(id).reply, { doubled: i * 2 });
      }
      assert.ok(maxRunning <= 10, `at most concurrency in flight (${maxRunning})`);
      assert.ok(maxRunning > 1, 'handlers ran concurrently');
      await w.stop();
      await run;
      assert.equal(w.stats.claimed, 20);
      assert.equal(w.stats.completed, 20);
      assert.ok(w.stats.completeCalls < 20, `complete_many took several replies at once (${w.stats.completeCalls} calls)`);
      assert.ok(w.stats.maxCompleteBatch > 1);
      assert.ok(w.stats.maxCompleteBatch <= 10, 'no more than batch per complete_many');
      assert.ok(w.stats.claimedWithReplies > 0,
        `the statement recording replies claimed the next ones (${w.stats.claimedWithReplies} of 20)`);
      await inbox.close();
    } finally {
      await c.end();
    }
  });

  it('a handler error fails with retry; the next attempt succeeds', async () => {
    const c = await cluster.connect();
    try {
      const seen = [];
      const w = newWorker('retry', async (payload, headers, ctx) => {
        seen.push(ctx.attempt);
        if (ctx.attempt === 1) throw new Error('transient trouble');
        return { attempt: ctx.attempt, payload };
      }, { concurrency: 2 });
      const run = w.run();
      const id = await submit(c, 'retry', 'job');
      const r = await wait(c, id, 10000);
      assert.equal(r.status, 'completed');
      assert.deepEqual(r.reply, { attempt: 2, payload: 'job' });
      assert.deepEqual(seen, [1, 2]);
      const st = await status(c, id);
      assert.equal(st.attempt, 2);
      assert.equal(w.stats.retried, 1);
      await w.stop();
      await run;
    } finally {
      await c.end();
    }
  });

  it('a handler that always fails: its message is the error, then a dead letter', async () => {
    const c = await cluster.connect();
    try {
      const w = newWorker('broken', async () => { throw new Error('always broken'); });
      const run = w.run();
      const id = await submit(c, 'broken', {});
      const r = await wait(c, id, 10000);
      assert.equal(r.status, 'dead_lettered');
      assert.equal(r.error, 'always broken');
      const { rows } = await admin.query('SELECT reason, last_error FROM asyncrr.dead_letters WHERE correlation_id = $1', [id]);
      assert.deepEqual(rows, [{ reason: 'max_attempts', last_error: 'always broken' }]);
      // The worker counts an outcome when fail()'s result reaches it, which
      // may be after the requester has the reply (the commit wakes both).
      await waitFor(() => w.stats.retried === 1 && w.stats.deadLettered === 1,
        { timeoutMs: 5000, what: 'the worker to count one retry and one dead letter' });
      await w.stop();
      await run;
    } finally {
      await c.end();
    }
  });

  it('extends the lease of a handler that runs longer than half its lease', async () => {
    const c = await cluster.connect();
    try {
      let calls = 0;
      const w = newWorker('long', async (payload, headers, ctx) => {
        calls++;
        await sleep(2600); // the queue's lease is 1 s
        return { attempt: ctx.attempt, aborted: ctx.signal.aborted };
      });
      const run = w.run();
      const id = await submit(c, 'long', 'slow job');
      const r = await wait(c, id, 10000);
      assert.equal(r.status, 'completed');
      assert.deepEqual(r.reply, { attempt: 1, aborted: false });
      assert.equal(calls, 1, 'not handed to another claim');
      assert.ok(w.stats.leaseExtensions >= 3, `extended ${w.stats.leaseExtensions} times`);
      await w.stop();
      await run;
    } finally {
      await c.end();
    }
  });

  it('stop() with claims held: finishes them, claims nothing more, loses none', async () => {
    const c = await cluster.connect();
    try {
      const ids = await submitMany(c, 'stop1', [1, 2, 3, 4, 5, 6]);
      let started = 0;
      const w = newWorker('stop1', async (n) => {
        started++;
        await sleep(400);
        return { n };
      }, { concurrency: 3, batch: 3 });
      const run = w.run();
      await waitFor(() => w.inFlight === 3, { what: 'three handlers in flight' });
      await w.stop();
      await run;
      assert.equal(started, 3);
      assert.equal(w.stats.completed, 3);
      assert.deepEqual(await states('stop1'), { completed: 3, pending: 3 });
      const { rows } = await admin.query(
        'SELECT count(*)::int AS n FROM asyncrr.request WHERE correlation_id = ANY($1) AND attempt = 0', [ids]);
      assert.equal(rows[0].n, 3, 'the other three were never claimed');
    } finally {
      await c.end();
    }
  });

  it('stop({timeout}) gives back what it cannot finish (fail with retry); another worker completes it', async () => {
    const c = await cluster.connect();
    try {
      const ids = await submitMany(c, 'stop2', ['a', 'b']);
      let aborted = 0;
      const w = newWorker('stop2', (p, h, ctx) => new Promise((resolve, reject) => {
        const t = setTimeout(() => resolve('too late'), 20000);
        ctx.signal.addEventListener('abort', () => {
          aborted++;
          clearTimeout(t);
          reject(ctx.signal.reason);
        });
      }), { concurrency: 2 });
      const run = w.run();
      await waitFor(() => w.inFlight === 2, { what: 'two handlers in flight' });
      const t0 = Date.now();
      await w.stop({ timeout: 100 });
      await run;
      assert.ok(Date.now() - t0 < 3000, 'stop() did not wait for the handlers');
      assert.equal(aborted, 2, 'the handlers were told (ctx.signal)');
      assert.equal(w.stats.abandoned, 2);
      assert.equal(w.stats.completed, 0);
      const { rows } = await admin.query(
        'SELECT s.state, s.attempt, s.error FROM unnest($1::uuid[]) AS u(id), asyncrr.status(u.id) AS s', [ids]);
      for (const row of rows) {
        assert.equal(row.state, 'pending', 'back in the queue at once, not after the lease');
        assert.equal(row.attempt, 1);
        assert.equal(row.error, 'worker stopped before the handler finished');
      }
      const w2 = newWorker('stop2', async (p, h, ctx) => ({ p, attempt: ctx.attempt }));
      const run2 = w2.run();
      for (const id of ids) {
        const r = await wait(c, id, 10000);
        assert.equal(r.status, 'completed');
        assert.equal(r.reply.attempt, 2);
      }
      await w2.stop();
      await run2;
    } finally {
      await c.end();
    }
  });

  it('a worker process SIGKILLed mid-job: the request is redelivered after its lease', async () => {
    const c = await cluster.connect();
    try {
      const ch = child('killed', 'hang');
      const id = await submit(c, 'killed', { job: 'k' }, { timeout: 20000 });
      await waitFor(() => ch.lines.some((l) => l.startsWith(`STARTED ${id} 1`)),
        { what: `the child to start the job (stderr: ${ch.stderr()})` });
      ch.proc.kill('SIGKILL');
      const { signal } = await ch.exited;
      assert.equal(signal, 'SIGKILL');
      const killedAt = Date.now();
      const { rows: [held] } = await admin.query(
        'SELECT state, attempt, lease_until FROM asyncrr.pending WHERE correlation_id = $1', [id]);
      assert.equal(held.state, 'claimed', 'the dead worker still holds it');
      assert.equal(held.attempt, 1);

      const w = newWorker('killed', async (p, h, ctx) => ({ redelivered: true, attempt: ctx.attempt }));
      const run = w.run();
      const r = await wait(c, id, 15000);
      assert.equal(r.status, 'completed');
      assert.deepEqual(r.reply, { redelivered: true, attempt: 2 });
      assert.ok(Date.now() - killedAt < 5000, 'within a few seconds of the 1 s lease');
      const st = await status(c, id);
      assert.equal(st.attempt, 2);
      assert.ok(st.finishedAt >= held.lease_until, 'not redelivered before the lease ran out');
      await w.stop();
      await run;
    } finally {
      await c.end();
    }
  });

  it('SIGTERM (handleSigterm): the worker process finishes its job and exits by itself', async () => {
    const c = await cluster.connect();
    try {
      const ch = child('term', 'slow');
      const id = await submit(c, 'term', 'x', { timeout: 20000 });
      const id2 = await submit(c, 'term', 'y', { timeout: 20000 });
      await waitFor(() => ch.lines.filter((l) => l.startsWith('STARTED')).length === 2,
        { what: `the child to start both jobs (stderr: ${ch.stderr()})` });
      ch.proc.kill('SIGTERM');
      const { code, signal } = await ch.exited;
      assert.equal(signal, null, `exited by itself (stderr: ${ch.stderr()})`);
      assert.equal(code, 0);
      assert.ok(ch.lines.includes('STOPPED'));
      for (const cid of [id, id2]) {
        const r = await wait(c, cid, 1000);
        assert.equal(r.status, 'completed');
        assert.deepEqual(r.reply, { by: 'child', attempt: 1 });
      }
    } finally {
      await c.end();
    }
  });

  it('works from a caller\'s pg.Pool, and stop() before any work resolves', async () => {
    const { Pool } = require('pg');
    const pool = new Pool({ connectionString: cluster.connectionString, max: 2 });
    const c = await cluster.connect();
    try {
      const w = new Worker({ pool }, 'pooled', async (p) => p + 1, { concurrency: 2, idleWait: 5000 });
      const run = w.run();
      const id = await submit(c, 'pooled', 41);
      const r = await wait(c, id, 5000);
      assert.equal(r.reply, 42);
      await w.stop();
      await run;
      assert.equal(pool.totalCount - pool.idleCount, 0, 'every connection given back');
      // the caller's pool is not ended
      assert.equal((await pool.query('SELECT 1 AS one')).rows[0].one, 1);

      const idle = new Worker({ pool }, 'pooled', async () => null);
      const run2 = idle.run();
      await sleep(100);
      const t0 = Date.now();
      await idle.stop();
      await run2;
      assert.ok(Date.now() - t0 < 2000, 'stop() ends the wait for work at once');
      assert.throws(() => new Worker({ pool: new Pool({ max: 1 }) }, 'pooled', async () => null), TypeError);
    } finally {
      await c.end();
      await pool.end();
    }
  });

  it('stop() during a batch of replies that claims: the requests it claims are finished, not left claimed', async () => {
    // The statement recording replies (complete_and_claim) is slowed down
    // by 300 ms; stop() comes while it is in flight, with no handler
    // running. The request it claims must run to its end before stop()
    // resolves (it once resolved at once, leaving the request claimed
    // until its lease ran out, and its reply to a pool already given up).
    const { Pool } = require('pg');
    const pool = new Pool({ connectionString: cluster.connectionString, max: 4 });
    const plain = pool.query.bind(pool);
    let slowed = 0;
    pool.query = (text, params) => {
      if (typeof text === 'string' && text.includes('complete_and_claim')) {
        slowed++;
        return sleep(300).then(() => plain(text, params));
      }
      return plain(text, params);
    };
    const c = await cluster.connect();
    try {
      const [first, second] = await submitMany(c, 'stopclaim', [{ n: 1 }, { n: 2 }]);
      const w = new Worker({ pool }, 'stopclaim', async (p) => {
        if (p.n === 3) await sleep(200);
        return { n: p.n };
      }, { concurrency: 2, batch: 2, idleWait: 5000, onError: (err, what) => console.error(`${what}: ${err.message}`) });
      const run = w.run();
      await waitFor(() => w.stats.claimed >= 2);
      // the third arrives while the first two are handled: the batch of
      // their replies claims it
      const [third] = await submitMany(c, 'stopclaim', [{ n: 3 }]);
      await waitFor(() => slowed > 0 && w.inFlight === 0);
      await w.stop();
      await run;
      assert.equal(w.inFlight, 0);
      for (const id of [first, second, third]) {
        assert.equal((await status(c, id)).state, 'completed', `request ${id}`);
      }
    } finally {
      await c.end();
      await pool.end();
    }
  });

  it('run() rejects for a queue that does not exist', async () => {
    const w = newWorker('no-such-queue', async () => null);
    await assert.rejects(w.run(), (err) => err instanceof asyncrr.NotFoundError && err.code === '42704');
  });
});

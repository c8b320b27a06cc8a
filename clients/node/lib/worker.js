'use strict';
/**
 * The worker side: a loop that sleeps until its queue has work, claims
 * requests in batches, runs an async handler on each with bounded
 * concurrency, and records the replies in batches.
 * @module asyncrr/worker
 */

const pg = require('pg');
const { mapError, AsyncrrError } = require('./errors');
const { toInterval, toJson, query } = require('./common');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Errors on which the loop gives up: the queue, the role or the setup is wrong. */
function isFatal(err) {
  if (!(err instanceof AsyncrrError)) return false;
  const code = err.code || '';
  return code.startsWith('42') || code.startsWith('22') || code === '55000' || code === '54000';
}

/** Errors of the connection (rather than of the statement). */
function isConnectionError(err) {
  if (!(err instanceof AsyncrrError)) return true;
  const code = err.code || '';
  return code.startsWith('08') || code.startsWith('57P') || code === '53300';
}

function errorText(err, max) {
  let s;
  if (err instanceof Error) s = err.message || err.name || 'Error';
  else if (typeof err === 'string') s = err;
  else {
    try {
      s = JSON.stringify(err);
    } catch {
      s = String(err);
    }
    if (s === undefined) s = String(err);
  }
  if (!s) s = 'handler failed';
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

/**
 * A worker for one queue.
 *
 * `run()` loops: claim up to `min(batch, free slots)` requests
 * (`asyncrr.claim(queue, n, lease, name)`, which returns at once); when
 * there was nothing to claim, sleep in `CALL asyncrr.wait_for_work(queue,
 * idleWait)`, which holds no snapshot while it sleeps (unlike
 * `claim(..., wait => ...)`, a SELECT that keeps its snapshot and so holds
 * back VACUUM). Each claimed request runs `handler(payload, headers, ctx)`
 * with at most `concurrency` in flight. What a handler returns is the
 * reply: replies are recorded with `asyncrr.complete_many()`, as many per
 * statement as have finished meanwhile (up to `batch`); while slots are
 * free, `asyncrr.complete_and_claim()` records them and claims the next
 * requests in the same statement, so a busy worker makes one round trip
 * and one commit per batch. A handler that
 * throws (or rejects) fails its request with `asyncrr.fail(id, message,
 * attempt, retry => true)`: it goes back to the queue, or, on its last
 * attempt, to the dead letters. While a handler runs longer than half its
 * lease, the lease is extended (`asyncrr.extend_lease`) every half lease.
 * Every call passes the claim's `attempt`, so a worker whose lease ran out
 * changes nothing (`late`). A handler may report progress with
 * `ctx.reportProgress(progress)` (`asyncrr.report_progress(id, progress,
 * attempt)`).
 *
 * `stop()` stops claiming, waits for the handlers it holds (up to
 * `stopTimeout`), fails the ones still running with `retry => true`,
 * records every reply, and resolves: no claim is left to expire.
 *
 * Connections: one for waiting and claiming, held while the worker runs,
 * and others from the pool for completing, failing, extending leases and
 * reporting progress.
 * A pool given in `{pool}` needs `max` >= 2.
 */
class Worker {
  /**
   * @param {{connectionString?: string, pool?: import('pg').Pool, [k: string]: any}} connection
   *   `pool`: a pg.Pool to use (not ended by the worker); otherwise a pool
   *   is made from `connectionString` and any other pg.Pool options given
   *   here, and ended when the worker stops.
   * @param {string} queue
   * @param {(payload: any, headers: any, ctx: import('../index').JobContext) => any} handler
   * @param {import('../index').WorkerOptions} [opts]
   */
  constructor(connection, queue, handler, opts = {}) {
    if (!connection || typeof connection !== 'object') throw new TypeError('connection options required');
    if (typeof queue !== 'string') throw new TypeError('queue must be a string');
    if (typeof handler !== 'function') throw new TypeError('handler must be a function');
    const concurrency = opts.concurrency === undefined ? 10 : opts.concurrency;
    const batch = opts.batch === undefined ? Math.min(concurrency, 10) : opts.batch;
    if (!Number.isInteger(concurrency) || concurrency < 1) throw new TypeError('concurrency must be a positive integer');
    if (!Number.isInteger(batch) || batch < 1) throw new TypeError('batch must be a positive integer');

    if (connection.pool) {
      this._pool = connection.pool;
      this._ownPool = false;
      const max = this._pool.options && this._pool.options.max;
      if (typeof max === 'number' && max < 2) throw new TypeError('the pool needs max >= 2 (one connection waits for work)');
    } else {
      const { pool, ...config } = connection; // eslint-disable-line no-unused-vars
      this._pool = new pg.Pool({ max: 4, ...config });
      this._ownPool = true;
      this._pool.on('error', (err) => this._report(err, 'idle connection'));
    }
    /** @type {string} */
    this.queue = queue;
    this._handler = handler;
    this._concurrency = concurrency;
    this._batch = batch;
    this._lease = toInterval(opts.lease, 'lease');
    this._name = opts.name === undefined ? null : opts.name;
    this._idleWait = toInterval(opts.idleWait === undefined ? 30000 : opts.idleWait, 'idleWait');
    this._stopTimeout = opts.stopTimeout === undefined ? 30000 : opts.stopTimeout;
    this._handleSigterm = Boolean(opts.handleSigterm);
    this._maxErrorLength = opts.maxErrorLength || 8192;
    this._onError = typeof opts.onError === 'function' ? opts.onError
      : (err, what) => process.emitWarning(`asyncrr worker (${queue}): ${what}: ${err && err.message}`);

    this._stopping = false;
    this._running = null; // the promise of run()
    this._done = null; // resolves when run() has finished, however
    this._jobs = new Set(); // running handlers (a request may be claimed again while a stale attempt runs)
    this._reserved = 0; // slots held for claims in flight
    this._completions = []; // finished handlers whose replies await complete_many
    this._flushing = null;
    this._ops = new Set(); // fail / extend_lease statements in flight
    this._slotWaiters = new Set();
    this._waiter = null; // the PoolClient that waits and claims
    this._waiterOnError = null;
    this._inWait = false;
    this._cancelSent = false;
    this._sigterm = null;

    /** Counters, for monitoring and tests. */
    this.stats = {
      claimed: 0, completed: 0, duplicate: 0, late: 0, failed: 0, retried: 0, deadLettered: 0,
      completeCalls: 0, maxCompleteBatch: 0, claimedWithReplies: 0, leaseExtensions: 0, leasesLost: 0, abandoned: 0, waits: 0,
      progress: 0,
    };
  }

  /** True from stop() (or SIGTERM) on. */
  get stopping() {
    return this._stopping;
  }

  /** Number of handlers running now. */
  get inFlight() {
    return this._jobs.size;
  }

  /**
   * Runs the worker until stop() (or SIGTERM, with `handleSigterm`). The
   * promise resolves once every claim it made has been completed or failed;
   * it rejects if the worker cannot work at all (no such queue, no
   * privilege, asyncrr not preloaded), after the same cleanup. Connection
   * errors are reported to `onError` and retried.
   * @returns {Promise<void>}
   */
  run() {
    if (!this._running) {
      this._running = this._main();
      this._done = this._running.then(() => {}, () => {});
    }
    return this._running;
  }

  /**
   * Stops the worker: no more claims; waits for running handlers up to
   * `timeout` milliseconds (default: the `stopTimeout` option), then fails
   * those still running with retry; records every reply; releases its
   * connections. Resolves when done (also if run() rejected).
   * @param {{timeout?: number}} [opts]
   * @returns {Promise<void>}
   */
  async stop(opts = {}) {
    if (opts.timeout !== undefined) this._stopTimeout = opts.timeout;
    if (!this._stopping) {
      this._stopping = true;
      this._wakeSlots();
      this._interruptWait();
    }
    if (this._done) await this._done;
  }

  async _main() {
    if (this._handleSigterm) {
      this._sigterm = () => {
        this.stop().catch(() => {});
      };
      process.on('SIGTERM', this._sigterm);
    }
    let fatal = null;
    try {
      await this._loop();
    } catch (err) {
      fatal = err;
    }
    this._stopping = true;
    try {
      await this._drain();
    } finally {
      if (this._sigterm) process.removeListener('SIGTERM', this._sigterm);
      this._releaseWaiter(this._cancelSent);
      if (this._ownPool) await this._pool.end().catch(() => {});
    }
    if (fatal) throw fatal;
  }

  _report(err, what) {
    try {
      this._onError(err, what);
    } catch {
      // an onError that throws must not stop the worker
    }
  }

  // ---- waiting and claiming -------------------------------------------

  async _loop() {
    let backoff = 0; // after a connection error
    let emptyAfterReady = 0; // wait_for_work said ready, claim found nothing
    while (!this._stopping) {
      // While replies are being recorded, their statement claims for the
      // free slots (complete_and_claim): one round trip per batch. The
      // loop goes on when it ends (_scheduleFlush wakes it).
      if (this._free() <= 0 || this._flushing) {
        await this._slotFreed();
        continue;
      }
      try {
        const client = await this._waiterClient();
        if (this._stopping) break;
        const flushClaims = this.stats.claimedWithReplies;
        const n = Math.min(this._batch, this._free());
        if (n <= 0) continue; // a batch of replies took the slots meanwhile
        const claimed = await this._claim(client, n);
        backoff = 0;
        if (claimed > 0 || this.stats.claimedWithReplies !== flushClaims) {
          // the work that woke us may have gone with a batch of replies
          emptyAfterReady = 0;
          if (claimed > 0) continue;
        }
        if (emptyAfterReady > 0) {
          // Claimable by wait_for_work's look but not by claim's (rows
          // locked by another transaction): do not spin.
          await this._sleepUnlessWoken(Math.min(1000, 10 * 2 ** Math.min(emptyAfterReady, 7)));
        }
        if (this._stopping) break;
        const ready = await this._waitForWork(client);
        emptyAfterReady = ready ? emptyAfterReady + 1 : 0;
      } catch (e) {
        const err = mapError(e);
        if (this._stopping && (err.code === '57014' || this._cancelSent)) break;
        if (isFatal(err)) throw err;
        this._report(err, 'waiting for work');
        this._releaseWaiter(true);
        backoff = Math.min(30000, backoff ? backoff * 2 : 500);
        await this._sleepUnlessWoken(backoff);
      }
    }
  }

  async _waiterClient() {
    if (!this._waiter) {
      const c = await this._pool.connect();
      this._waiterOnError = (err) => this._report(err, 'waiting connection');
      c.on('error', this._waiterOnError);
      this._waiter = c;
      this._cancelSent = false;
    }
    return this._waiter;
  }

  _releaseWaiter(destroy) {
    const c = this._waiter;
    this._waiter = null;
    if (c) {
      c.removeListener('error', this._waiterOnError);
      try {
        c.release(destroy ? true : undefined);
      } catch {
        // released already
      }
    }
  }

  /** Handler slots neither running nor held for a claim in flight. */
  _free() {
    return this._concurrency - this._jobs.size - this._reserved;
  }

  /**
   * Gives back slots held for a claim that has returned (its requests, if
   * any, are running by now): the loop may be waiting for one.
   */
  _unreserve(n) {
    this._reserved -= n;
    if (n > 0) this._wakeSlots();
  }

  /** Claims up to n requests and starts their handlers; returns how many. */
  async _claim(client, n) {
    this._reserved += n;
    try {
      const res = await query(client,
        `SELECT correlation_id, payload, headers, attempt, deadline, lease_until,
                (extract(epoch FROM lease_until - now()) * 1000)::float8 AS lease_ms
           FROM asyncrr.claim($1, $2, $3::interval, $4)`,
        [this.queue, n, this._lease, this._name]);
      this.stats.claimed += res.rows.length;
      // started before the slots are given back, so none is counted twice
      for (const row of res.rows) this._start(row);
      return res.rows.length;
    } finally {
      this._unreserve(n);
    }
  }

  async _waitForWork(client) {
    this._inWait = true;
    this.stats.waits++;
    try {
      if (this._stopping) return false;
      const res = await query(client,
        'CALL asyncrr.wait_for_work(queue_name => $1, timeout => $2::interval)',
        [this.queue, this._idleWait]);
      return res.rows[0].ready;
    } finally {
      this._inWait = false;
    }
  }

  /**
   * Ends a wait_for_work that is sleeping, with pg_cancel_backend() from
   * another connection; repeated until the wait has returned, as a cancel
   * that reaches the backend before it starts the statement is ignored.
   * The waiting connection is not reused afterwards.
   */
  async _interruptWait() {
    while (this._inWait && this._waiter) {
      const pid = this._waiter.processID;
      this._cancelSent = true;
      try {
        // tracked: stop() resolves only once this connection is back in the pool
        await this._track(this._pool.query('SELECT pg_cancel_backend($1)', [pid]));
      } catch (err) {
        // no spare connection, or no right to signal: end the wait by
        // closing its connection (the backend sees its client go).
        this._report(mapError(err), 'cancelling the wait for work');
        const c = this._waiter;
        if (c && this._inWait) {
          try {
            c.end();
          } catch {
            // gone already
          }
        }
        return;
      }
      await sleep(200);
    }
  }

  _slotFreed() {
    return new Promise((resolve) => this._slotWaiters.add(resolve));
  }

  _wakeSlots() {
    const ws = [...this._slotWaiters];
    this._slotWaiters.clear();
    for (const w of ws) w();
  }

  /**
   * Sleeps `ms` (Infinity: no limit), or less when a slot frees or stop()
   * is called. The timer is cleared either way: a pending timer would keep
   * the process alive after the worker stopped.
   */
  _sleepUnlessWoken(ms) {
    return new Promise((resolve) => {
      let timer = null;
      const done = () => {
        if (timer) clearTimeout(timer);
        this._slotWaiters.delete(done);
        resolve();
      };
      this._slotWaiters.add(done);
      if (Number.isFinite(ms)) timer = setTimeout(done, Math.max(0, ms));
    });
  }

  // ---- running handlers -----------------------------------------------

  _start(row) {
    const leaseMs = Math.max(Number(row.lease_ms) || 0, 20);
    const controller = new AbortController();
    const job = {
      id: row.correlation_id,
      attempt: row.attempt,
      leaseMs,
      controller,
      timer: null,
      extending: false,
      finished: false,
      abandoned: false,
    };
    this._jobs.add(job);
    job.timer = setInterval(() => this._extend(job), leaseMs / 2);
    const ctx = {
      correlationId: row.correlation_id,
      attempt: row.attempt,
      deadline: row.deadline,
      leaseUntil: row.lease_until,
      signal: controller.signal,
      reportProgress: (progress) => this._reportProgress(job, progress),
    };
    Promise.resolve()
      .then(() => this._handler(row.payload, row.headers, ctx))
      .then((value) => this._finish(job, true, value), (err) => this._finish(job, false, err));
  }

  _finish(job, ok, value) {
    if (job.finished) return;
    job.finished = true;
    clearInterval(job.timer);
    this._jobs.delete(job);
    this._wakeSlots();
    if (job.abandoned) return; // stop() failed it already
    if (ok) {
      let reply;
      try {
        reply = toJson(value);
      } catch (err) {
        this._failJob(job, `reply is not JSON: ${errorText(err, 200)}`);
        return;
      }
      this._completions.push({ job, reply });
      this._scheduleFlush();
    } else {
      this._failJob(job, errorText(value, this._maxErrorLength));
    }
  }

  _track(promise) {
    this._ops.add(promise);
    promise.finally(() => this._ops.delete(promise)).catch(() => {});
    return promise;
  }

  /** fail(id, error, attempt, retry => true), retried on connection errors. */
  _failJob(job, message) {
    return this._track((async () => {
      for (let tries = 1; ; tries++) {
        try {
          const res = await query(this._pool,
            'SELECT asyncrr.fail($1::uuid, $2, $3::integer, retry => true) AS outcome',
            [job.id, message, job.attempt]);
          const outcome = res.rows[0].outcome;
          this.stats.failed++;
          if (outcome === 'retrying') this.stats.retried++;
          else if (outcome === 'dead_lettered') this.stats.deadLettered++;
          else if (outcome === 'late') this.stats.late++;
          return;
        } catch (err) {
          if (!isConnectionError(err) || tries >= 5) {
            this._report(err, `fail(${job.id})`);
            return;
          }
          await sleep(200 * tries);
        }
      }
    })());
  }

  _extend(job) {
    if (job.extending || job.finished) return;
    job.extending = true;
    this._track((async () => {
      try {
        await query(this._pool, 'SELECT asyncrr.extend_lease($1::uuid, $2::interval, $3::integer)',
          [job.id, `${job.leaseMs} milliseconds`, job.attempt]);
        this.stats.leaseExtensions++;
      } catch (err) {
        if (err.code === '55000' || err.code === '42704') {
          // The claim is gone (lease ran out, request timed out or was
          // cancelled): stop extending, tell the handler. Its reply will
          // be recorded as late, changing nothing.
          clearInterval(job.timer);
          this.stats.leasesLost++;
          job.controller.abort(err);
        } else {
          this._report(err, `extend_lease(${job.id})`);
        }
      } finally {
        job.extending = false;
      }
    })());
  }

  /**
   * ctx.reportProgress: `asyncrr.report_progress(id, progress, attempt)` on
   * a connection of the pool (as extend_lease), committed at once. Resolves
   * to true if recorded, false if the request has ended or this claim is no
   * longer current; not retried (a connection error rejects). Tracked, so
   * stop() waits for it.
   */
  _reportProgress(job, progress) {
    let json;
    try {
      json = toJson(progress);
    } catch (err) {
      return Promise.reject(err);
    }
    return this._track((async () => {
      const res = await query(this._pool,
        'SELECT asyncrr.report_progress($1::uuid, $2::jsonb, $3::integer) AS recorded',
        [job.id, json, job.attempt]);
      const recorded = res.rows[0].recorded;
      if (recorded) this.stats.progress++;
      return recorded;
    })());
  }

  // ---- recording replies ----------------------------------------------

  _scheduleFlush() {
    if (this._flushing) return;
    this._flushing = (async () => {
      // Let handlers that finish in this turn of the event loop join.
      await new Promise((r) => setImmediate(r));
      while (this._completions.length > 0) {
        const items = this._completions.splice(0, this._batch);
        await this._completeBatch(items);
      }
    })().finally(() => {
      this._flushing = null;
      if (this._completions.length > 0) this._scheduleFlush();
      this._wakeSlots();
    });
  }

  _count(outcome) {
    if (outcome === 'completed') this.stats.completed++;
    else if (outcome === 'duplicate') this.stats.duplicate++;
    else if (outcome === 'late') this.stats.late++;
  }

  /**
   * Records a batch of replies. While the worker has free slots, the same
   * statement claims the next requests (complete_and_claim: one round trip
   * and one commit per batch for a busy worker); otherwise complete_many.
   * With `claim` false (after complete_and_claim was refused) replies only.
   */
  async _completeBatch(items, claim = true) {
    const ids = items.map((i) => i.job.id);
    const replies = items.map((i) => i.reply);
    const attempts = items.map((i) => i.job.attempt);
    for (let tries = 1; ; tries++) {
      const n = claim && !this._stopping ? Math.max(0, Math.min(this._batch, this._free())) : 0;
      this._reserved += n;
      try {
        const res = n > 0
          ? await query(this._pool,
            `SELECT correlation_id, outcome, payload, headers, attempt, deadline, lease_until,
                    (extract(epoch FROM lease_until - now()) * 1000)::float8 AS lease_ms
               FROM asyncrr.complete_and_claim($1, $2::uuid[], $3::jsonb[], $4::integer[], $5,
                                               $6::interval, $7)`,
            [this.queue, ids, replies, attempts, n, this._lease, this._name])
          : await query(this._pool,
            'SELECT correlation_id, outcome FROM asyncrr.complete_many($1::uuid[], $2::jsonb[], $3::integer[])',
            [ids, replies, attempts]);
        this.stats.completeCalls++;
        this.stats.maxCompleteBatch = Math.max(this.stats.maxCompleteBatch, items.length);
        const claimed = res.rows.filter((row) => row.outcome === 'claimed');
        for (const row of res.rows) this._count(row.outcome);
        if (claimed.length > 0) {
          this.stats.claimed += claimed.length;
          this.stats.claimedWithReplies += claimed.length;
          for (const row of claimed) this._start(row);
        }
        this._unreserve(n);
        return;
      } catch (err) {
        this._unreserve(n);
        if (isConnectionError(err) && tries < 5) {
          this._report(err, 'complete_many (retrying)');
          await sleep(200 * tries);
          continue;
        }
        if (n > 0 && !isConnectionError(err)) {
          // refused: by the claim (queue dropped, claim revoked) or by a
          // reply; record the replies alone
          this._report(err, 'complete_and_claim (recording the replies alone)');
          await this._completeBatch(items, false);
          return;
        }
        if (items.length === 1 || isConnectionError(err)) {
          this._report(err, `complete(${ids.join(', ')})`);
          return;
        }
        // The batch was refused whole (one request is unknown, or not ours
        // any more): record the others one by one.
        for (const item of items) await this._completeBatch([item], false);
        return;
      }
    }
  }

  // ---- stopping ---------------------------------------------------------

  async _drain() {
    this._interruptWait();
    const limit = this._stopTimeout;
    const deadline = typeof limit === 'number' && Number.isFinite(limit) ? Date.now() + limit : Infinity;
    while (this._jobs.size > 0 || this._reserved > 0) {
      const left = deadline - Date.now();
      if (left <= 0) break;
      await this._sleepUnlessWoken(left);
    }
    // A batch of replies may still be claiming: what it claims must start
    // before the abandoning below, to be given back like the rest.
    while (this._reserved > 0) await this._sleepUnlessWoken(Infinity);
    for (const job of [...this._jobs]) {
      // Still running at the stop timeout: give the request back.
      job.abandoned = true;
      job.finished = true;
      clearInterval(job.timer);
      this._jobs.delete(job);
      this.stats.abandoned++;
      job.controller.abort(new Error('worker stopped'));
      this._failJob(job, 'worker stopped before the handler finished');
    }
    for (;;) {
      if (this._flushing) await this._flushing;
      else if (this._completions.length > 0) this._scheduleFlush();
      else if (this._ops.size > 0) await Promise.allSettled([...this._ops]);
      else break;
    }
  }
}

module.exports = { Worker };

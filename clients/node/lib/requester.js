'use strict';
/**
 * The requester side: call, submit, wait, scatter, and the Inbox that
 * LISTENs for replies and takes them in batches.
 * @module asyncrr/requester
 */

const { EventEmitter } = require('node:events');
const { Reply, toInterval, toTimestamp, toJson, query, replyFromRow } = require('./common');
const { mapError } = require('./errors');

/**
 * The `not_before` and `ordering_key` arguments (asyncrr 0.3) of submit and
 * submit_many: added to `params`, by name and only when given (a plain
 * submit sends the statement it always did).
 * @param {any[]} params
 * @param {{notBefore?: Date|string|null, orderingKey?: string|null}} opts
 * @returns {string} the text to append to the argument list
 */
function schedulingArgs(params, opts) {
  let text = '';
  if (opts.notBefore !== undefined && opts.notBefore !== null) {
    params.push(toTimestamp(opts.notBefore, 'notBefore'));
    text += `, not_before => $${params.length}::timestamptz`;
  }
  if (opts.orderingKey !== undefined && opts.orderingKey !== null) {
    if (typeof opts.orderingKey !== 'string') throw new TypeError('orderingKey must be a string');
    params.push(opts.orderingKey);
    text += `, ordering_key => $${params.length}::text`;
  }
  return text;
}

/**
 * One round trip in one statement: `CALL asyncrr.call(...)`. It submits,
 * commits, sleeps in the server (holding no snapshot) until the reply is
 * recorded or the request's deadline passes, and returns the reply
 * (`status` `timed_out` at the deadline).
 *
 * The client must be in autocommit mode (not inside BEGIN ... COMMIT:
 * {@link TransactionBlockError}). A `pg.Pool` works as well as a client:
 * the call needs no inbox and no LISTEN.
 *
 * @param {import('pg').ClientBase|import('pg').Pool} client
 * @param {string} queue
 * @param {any} payload any JSON-serializable value
 * @param {{timeout?: number|string, correlationId?: string}} [opts]
 *   `timeout`: milliseconds or an interval string (default: the queue's
 *   `default_timeout`); `correlationId`: makes the call idempotent.
 * @returns {Promise<import('../index').Reply>}
 */
async function call(client, queue, payload, opts = {}) {
  const res = await query(client,
    'CALL asyncrr.call(queue_name => $1, payload => $2::jsonb, timeout => $3::interval, correlation_id => $4::uuid)',
    [queue, toJson(payload), toInterval(opts.timeout, 'timeout'), opts.correlationId || null]);
  return replyFromRow(res.rows[0]);
}

/**
 * `asyncrr.submit(...)`: enqueues a request whose reply goes to the inbox
 * this session holds (a session inbox is opened if it holds none), and
 * returns its correlation id. It may run inside the caller's transaction.
 * Use the same connection to {@link wait} for the reply or to read it from
 * an {@link Inbox}: a pg.Pool would submit from any of its connections.
 *
 * `notBefore` (a Date, or a timestamp string): the request is not claimable
 * before then (asyncrr's background worker makes it claimable within
 * `asyncrr.precision`); its deadline is `notBefore` plus the timeout; a
 * time in the past means now. `orderingKey`: within the queue, the request
 * is claimable only once every earlier request with the same key (in
 * submit order) has ended; a retry keeps its place. Both are passed by name
 * and need asyncrr 0.3.
 *
 * @param {import('pg').ClientBase} client
 * @param {string} queue
 * @param {any} payload any JSON-serializable value
 * @param {{timeout?: number|string, correlationId?: string, priority?: number, headers?: object,
 *   notBefore?: Date|string|null, orderingKey?: string|null}} [opts]
 * @returns {Promise<string>} the correlation id (a uuid)
 */
async function submit(client, queue, payload, opts = {}) {
  const params = [queue, toJson(payload), toInterval(opts.timeout, 'timeout'), opts.correlationId || null,
    opts.priority === undefined ? 0 : opts.priority, toJson(opts.headers)];
  const more = schedulingArgs(params, opts);
  const res = await query(client,
    `SELECT asyncrr.submit($1, $2::jsonb, $3::interval, $4::uuid, $5::integer, $6::jsonb${more}) AS id`,
    params);
  return res.rows[0].id;
}

/**
 * `asyncrr.submit_many(...)`: submits every payload in one statement, all
 * or nothing; returns the correlation ids in the order of `payloads`. The
 * options are as for {@link submit} and apply to every request; with
 * `orderingKey` they are handled one after the other in payload order.
 *
 * @param {import('pg').ClientBase} client
 * @param {string} queue
 * @param {any[]} payloads
 * @param {{timeout?: number|string, correlationIds?: (string|null)[], priority?: number, headers?: object,
 *   notBefore?: Date|string|null, orderingKey?: string|null}} [opts]
 * @returns {Promise<string[]>}
 */
async function submitMany(client, queue, payloads, opts = {}) {
  if (!Array.isArray(payloads)) throw new TypeError('payloads must be an array');
  const params = [queue, payloads.map(toJson), toInterval(opts.timeout, 'timeout'), opts.correlationIds || null,
    opts.priority === undefined ? 0 : opts.priority, toJson(opts.headers)];
  const more = schedulingArgs(params, opts);
  const res = await query(client,
    `SELECT id FROM asyncrr.submit_many($1, $2::jsonb[], $3::interval, $4::uuid[], $5::integer, $6::jsonb${more}) AS id`,
    params);
  return res.rows.map((r) => r.id);
}

/**
 * `asyncrr.scatter(...)`: scatter-gather. One request per queue (the
 * *parts*: 1 to 100 distinct queues, the same payload and headers), gathered
 * in one request whose correlation id is returned. Only the gather replies,
 * to this session's inbox like {@link submit} (take it with {@link wait} or
 * an {@link Inbox}): once its last part has ended, or at its deadline
 * (`timeout`, default: the smallest `default_timeout` of the queues; the
 * parts share it).
 *
 * The gather's Reply has as `reply` an object keyed by queue name,
 * `{q: {status: 'completed', reply: ...}, r: {status: 'failed', error: '...'},
 * s: {status: 'timed_out'}}`, and as `status` `completed` if every part
 * completed, `timed_out` if one timed out, `cancelled` if one was cancelled
 * ({@link cancel} on the gather cancels its unfinished parts), else
 * `failed`; `error` then names the parts that did not complete.
 * `correlationId` makes it idempotent (same queues, in any order, and
 * payload). {@link parts} lists the parts.
 *
 * @param {import('pg').ClientBase} client
 * @param {string[]} queues
 * @param {any} payload any JSON-serializable value
 * @param {{timeout?: number|string, correlationId?: string, headers?: object}} [opts]
 * @returns {Promise<string>} the gather's correlation id
 */
async function scatter(client, queues, payload, opts = {}) {
  if (!Array.isArray(queues)) throw new TypeError('queues must be an array of queue names');
  const res = await query(client,
    'SELECT asyncrr.scatter($1::text[], $2::jsonb, $3::interval, $4::uuid, $5::jsonb) AS id',
    [queues, toJson(payload), toInterval(opts.timeout, 'timeout'), opts.correlationId || null,
      toJson(opts.headers)]);
  return res.rows[0].id;
}

/**
 * `asyncrr.parts(id)`: the parts of a gather of this role ({@link scatter}),
 * ordered by queue name; empty for an unknown id (or one that is not a
 * gather). Takes nothing.
 * @param {import('pg').ClientBase|import('pg').Pool} client
 * @param {string} correlationId the gather's id
 * @returns {Promise<{correlationId: string, queue: string, state: string, reply: any, error: string|null}[]>}
 */
async function parts(client, correlationId) {
  const res = await query(client,
    'SELECT correlation_id, queue_name, state, reply, error FROM asyncrr.parts($1::uuid)', [correlationId]);
  return res.rows.map((r) => ({
    correlationId: r.correlation_id,
    queue: r.queue_name,
    state: r.state,
    reply: r.reply,
    error: r.error,
  }));
}

/**
 * `CALL asyncrr.wait_for_reply(...)`: waits, holding no snapshot, until the
 * request (of the inbox this session holds) has a reply, takes it and
 * returns it. If `timeout` passes first, returns a Reply whose `status` is
 * the live state (`pending` or `claimed`, `done` false) and takes nothing.
 *
 * @param {import('pg').ClientBase} client the connection that submitted it (or holds its durable inbox)
 * @param {string} correlationId
 * @param {number|string} [timeout] milliseconds or an interval string (default 30 seconds)
 * @returns {Promise<import('../index').Reply>}
 */
async function wait(client, correlationId, timeout) {
  const res = await query(client,
    'CALL asyncrr.wait_for_reply(correlation_id => $1::uuid, timeout => $2::interval)',
    [correlationId, toInterval(timeout === undefined ? '30 seconds' : timeout, 'timeout')]);
  return replyFromRow(res.rows[0], correlationId);
}

/**
 * `asyncrr.status(id)`: the whole story of a request of this role, or null
 * for an unknown id (or another role's). Does not take the reply.
 * `progress` and `progressAt` are the last progress a worker reported
 * (`ctx.reportProgress()`) and when (null if none; kept after the request
 * ends). For a gather ({@link scatter}) `queue` is `(scatter)`.
 * @param {import('pg').ClientBase|import('pg').Pool} client
 * @param {string} correlationId
 * @returns {Promise<null|{correlationId: string, queue: string, state: string, attempt: number,
 *   worker: string|null, submittedAt: Date, deadline: Date, finishedAt: Date|null, reply: any,
 *   error: string|null, deadLetterReason: string|null, progress: any, progressAt: Date|null}>}
 */
async function status(client, correlationId) {
  const res = await query(client, 'SELECT * FROM asyncrr.status($1::uuid)', [correlationId]);
  const r = res.rows[0];
  if (!r) return null;
  return {
    correlationId: r.correlation_id,
    queue: r.queue_name,
    state: r.state,
    attempt: r.attempt,
    worker: r.worker,
    submittedAt: r.submitted_at,
    deadline: r.deadline,
    finishedAt: r.finished_at,
    reply: r.reply,
    error: r.error,
    deadLetterReason: r.dead_letter_reason,
    progress: r.progress === undefined ? null : r.progress,
    progressAt: r.progress_at === undefined ? null : r.progress_at,
  };
}

/**
 * `asyncrr.cancel(id)`: ends a live request of this role as `cancelled`.
 * @param {import('pg').ClientBase|import('pg').Pool} client
 * @param {string} correlationId
 * @returns {Promise<boolean>} false if the request had already ended
 */
async function cancel(client, correlationId) {
  const res = await query(client, 'SELECT asyncrr.cancel($1::uuid) AS cancelled', [correlationId]);
  return res.rows[0].cancelled;
}

/**
 * An inbox held by one connection: the session inbox of that connection, or
 * a durable inbox (by name) that outlives it and is taken over by the next
 * connection that opens it.
 *
 * {@link Inbox.open} LISTENs on the inbox's channel (through
 * `asyncrr.open_inbox()`, effective when it commits), then takes the
 * replies already waiting (those that arrived while no requester held the
 * inbox), and only then waits: a notification is a wake-up call, and one
 * that arrives while a take runs leads to another take, so no reply is left
 * waiting. Replies are taken in batches of `batch` with
 * `asyncrr.take_replies(n)` and handed out one by one:
 *
 * ```js
 * const inbox = await Inbox.open(client, { name: 'billing-1' });
 * await submit(client, 'resize', { image: 'cat.png' });
 * for await (const reply of inbox) { ... }   // ends when inbox.close() is called
 * ```
 *
 * The connection must be in autocommit mode when the inbox is opened, and
 * must not be shared with other users of a pool while the inbox is open. A
 * reply is marked taken in the database when its batch is taken: replies
 * taken but not yet handed out when the inbox is closed are returned by
 * {@link Inbox#close}.
 *
 * The inbox is an EventEmitter: a worker's progress report
 * (`ctx.reportProgress()`) for one of its live requests emits `'progress'`
 * with the request's correlation id. The notification carries only the id:
 * read the progress itself with {@link status} (`progress`, `progressAt`).
 * Progress notifications are not replies and lead to no take; like every
 * notification they are not durable, and none is sent for the parts of a
 * gather.
 *
 * ```js
 * inbox.on('progress', async (id) => console.log(id, (await status(client, id)).progress));
 * ```
 */
class Inbox extends EventEmitter {
  /**
   * Opens an inbox on this connection (`asyncrr.open_inbox()`), LISTENs on
   * its channel, and takes the replies already waiting in it.
   *
   * @param {import('pg').ClientBase} client a connected pg.Client (or a PoolClient held for the inbox's life)
   * @param {{name?: string|null, batch?: number, pollInterval?: number}} [opts]
   *   `name`: a durable inbox (omitted or null: the session inbox);
   *   `batch`: replies per `take_replies()` (default 100);
   *   `pollInterval`: milliseconds after which to take anyway when no
   *   notification came (a safety net for notifications lost in a server
   *   crash; default 30000, 0 disables it).
   * @returns {Promise<Inbox>}
   */
  static async open(client, opts = {}) {
    const inbox = new Inbox(client, opts);
    await inbox._open();
    return inbox;
  }

  /** @private use Inbox.open() */
  constructor(client, opts) {
    super();
    if (!client || typeof client.query !== 'function' || typeof client.on !== 'function') {
      throw new TypeError('Inbox.open needs a connected pg.Client');
    }
    if (typeof client.totalCount === 'number') {
      throw new TypeError('Inbox.open needs one connection (a pg.Client or a PoolClient), not a pg.Pool');
    }
    const batch = opts.batch === undefined ? 100 : opts.batch;
    if (!Number.isInteger(batch) || batch < 1) throw new TypeError('batch must be a positive integer');
    /** @type {import('pg').ClientBase} */
    this.client = client;
    /** @type {string|null} the inbox's name (`_session_…` for a session inbox) */
    this.name = null;
    /** @type {string|null} its LISTEN/NOTIFY channel, `asyncrr.<name>` */
    this.channel = null;
    /** @type {boolean} */
    this.durable = Boolean(opts.name);
    this._requestedName = opts.name || null;
    this._batch = batch;
    this._pollInterval = opts.pollInterval === undefined ? 30000 : opts.pollInterval;
    this._buffer = [];
    this._mayHaveMore = true; // take before waiting: on open, and after a notification
    this._closed = false;
    this._failure = null;
    this._filling = null;
    this._waiters = new Set();
    this._onNotification = (msg) => {
      if (msg.channel !== this.channel) return;
      const progressOf = progressId(msg.payload);
      if (progressOf !== null) {
        // A progress report, not a reply: nothing to take. Emitted on the
        // next tick, out of pg's message handling.
        process.nextTick(() => this.emit('progress', progressOf));
        return;
      }
      // Any other notification on the channel means: take again. (The
      // payload names one reply, but replies are taken in batches anyway.)
      this._mayHaveMore = true;
      this._wake();
    };
    this._onEnd = () => {
      if (!this._closed && !this._failure) this._failure = new Error('the inbox\'s connection ended');
      this._wake();
    };
    this._onError = (err) => {
      if (!this._closed && !this._failure) this._failure = mapError(err);
      this._wake();
    };
  }

  async _open() {
    // Listen for notifications before the LISTEN takes effect, so that
    // none is missed between it and the first take.
    this.client.on('notification', this._onNotification);
    this.client.on('end', this._onEnd);
    this.client.on('error', this._onError);
    try {
      const res = await query(this.client, 'SELECT asyncrr.open_inbox($1) AS channel', [this._requestedName]);
      this.channel = res.rows[0].channel;
      this.name = this.channel.slice('asyncrr.'.length);
      // LISTEN is in effect now (open_inbox committed, in autocommit):
      // take what is already waiting, then wait.
      await this._fill();
    } catch (err) {
      this._detach();
      throw err;
    }
  }

  _detach() {
    this.client.removeListener('notification', this._onNotification);
    this.client.removeListener('end', this._onEnd);
    this.client.removeListener('error', this._onError);
  }

  _wake() {
    const ws = [...this._waiters];
    this._waiters.clear();
    for (const w of ws) w();
  }

  /** Sleeps until woken or `ms` pass; true if the time passed. */
  _sleep(ms) {
    return new Promise((resolve) => {
      let timer = null;
      const done = (timedOut) => {
        if (timer) clearTimeout(timer);
        this._waiters.delete(onWake);
        resolve(timedOut);
      };
      const onWake = () => done(false);
      this._waiters.add(onWake);
      if (Number.isFinite(ms)) timer = setTimeout(() => done(true), Math.max(0, ms));
    });
  }

  /** One take_replies(batch), shared by concurrent callers. */
  _fill() {
    if (!this._filling) {
      this._filling = (async () => {
        // A notification from here on sets _mayHaveMore again.
        this._mayHaveMore = false;
        try {
          const res = await query(this.client,
            'SELECT correlation_id, status, reply, error, finished_at FROM asyncrr.take_replies($1)',
            [this._batch]);
          for (const row of res.rows) this._buffer.push(replyFromRow(row));
          if (res.rows.length >= this._batch) this._mayHaveMore = true;
        } catch (err) {
          this._mayHaveMore = true;
          throw err;
        }
      })().finally(() => {
        this._filling = null;
        this._wake();
      });
    }
    return this._filling;
  }

  /**
   * The next reply: one already taken, or the next to arrive. Resolves to
   * null when `timeout` (milliseconds) passes first, or once the inbox is
   * closed. Rejects if the connection fails.
   * @param {number|{timeout?: number}} [opts]
   * @returns {Promise<import('../index').Reply|null>}
   */
  async receive(opts) {
    const timeout = typeof opts === 'number' ? opts : opts && opts.timeout;
    const deadline = timeout === undefined || timeout === null ? Infinity : Date.now() + timeout;
    for (;;) {
      if (this._buffer.length > 0) return this._buffer.shift();
      if (this._closed) return null;
      if (this._failure) throw this._failure;
      if (this._mayHaveMore || this._filling) {
        await this._fill();
        continue;
      }
      const left = deadline - Date.now();
      if (left <= 0) return null;
      const poll = this._pollInterval > 0 ? this._pollInterval : Infinity;
      const timedOut = await this._sleep(Math.min(left, poll));
      if (timedOut && poll <= left) this._mayHaveMore = true; // the safety-net take
    }
  }

  /**
   * Yields replies as they arrive, until the inbox is closed. Breaking out
   * of the loop loses nothing: replies taken but not yet yielded stay in the
   * inbox object for the next loop or {@link Inbox#receive}.
   * @returns {AsyncGenerator<import('../index').Reply, void, undefined>}
   */
  async *[Symbol.asyncIterator]() {
    for (;;) {
      const reply = await this.receive();
      if (reply === null) return;
      yield reply;
    }
  }

  /**
   * Submits a request whose reply comes to this inbox ({@link submit} on
   * the inbox's connection).
   * @param {string} queue
   * @param {any} payload
   * @param {{timeout?: number|string, correlationId?: string, priority?: number, headers?: object,
   *   notBefore?: Date|string|null, orderingKey?: string|null}} [opts]
   * @returns {Promise<string>}
   */
  submit(queue, payload, opts) {
    return submit(this.client, queue, payload, opts);
  }

  /**
   * Scatters a request whose gathered reply comes to this inbox
   * ({@link scatter} on the inbox's connection).
   * @param {string[]} queues
   * @param {any} payload
   * @param {{timeout?: number|string, correlationId?: string, headers?: object}} [opts]
   * @returns {Promise<string>} the gather's correlation id
   */
  scatter(queues, payload, opts) {
    return scatter(this.client, queues, payload, opts);
  }

  /**
   * Releases the inbox (`asyncrr.close_inbox()`, which UNLISTENs), and ends
   * iteration. A durable inbox keeps its untaken replies for the next
   * connection that opens it. With `cancelPending`, the inbox's live
   * requests are cancelled first.
   * @param {{cancelPending?: boolean}} [opts]
   * @returns {Promise<import('../index').Reply[]>} replies already taken from the database but
   *   not yet handed out (usually none)
   */
  async close(opts = {}) {
    if (this._closed) return [];
    this._closed = true;
    this._wake();
    if (this._filling) await this._filling.catch(() => {});
    try {
      if (!this._failure) {
        await query(this.client, 'SELECT asyncrr.close_inbox($1)', [Boolean(opts.cancelPending)]);
      }
    } finally {
      this._detach();
    }
    return this._buffer.splice(0);
  }
}

/**
 * The correlation id of a progress notification (`{"correlation_id": "…",
 * "status": "progress"}`), or null for any other payload.
 * @param {string} payload
 * @returns {string|null}
 */
function progressId(payload) {
  let body;
  try {
    body = JSON.parse(payload);
  } catch {
    return null;
  }
  if (body && body.status === 'progress' && typeof body.correlation_id === 'string') return body.correlation_id;
  return null;
}

module.exports = { call, submit, submitMany, wait, status, cancel, scatter, parts, Inbox, Reply };

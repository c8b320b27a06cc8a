'use strict';
// What the requester and the worker share: the Reply type, and turning
// JavaScript values into the parameters asyncrr's SQL functions take.

const { mapError } = require('./errors');

/** The states in which a request has ended (its reply is final). */
const FINAL_STATES = Object.freeze(['completed', 'failed', 'timed_out', 'cancelled', 'dead_lettered']);

/**
 * The reply to a request, as `take_replies()`, `CALL asyncrr.call` and
 * `CALL asyncrr.wait_for_reply` return it.
 *
 * `status` is the request's final state (`completed`, `failed`,
 * `timed_out`, `cancelled`, `dead_lettered`), or, from {@link wait} when
 * its timeout passed first, the live state (`pending` or `claimed`).
 * `reply` is the worker's reply (parsed JSON) for `completed`; `error` the
 * error text for the other final states. For a gather ({@link scatter}),
 * `reply` is the parts' outcomes keyed by queue name, whatever the status.
 */
class Reply {
  /**
   * @param {{correlationId: string, status: string, reply?: any, error?: string|null, finishedAt?: Date|null}} f
   */
  constructor(f) {
    /** @type {string} */
    this.correlationId = f.correlationId;
    /** @type {string} */
    this.status = f.status;
    /** @type {any} */
    this.reply = f.reply === undefined ? null : f.reply;
    /** @type {string|null} */
    this.error = f.error === undefined ? null : f.error;
    /** @type {Date|null} when the request ended (replies taken from an inbox only) */
    this.finishedAt = f.finishedAt === undefined ? null : f.finishedAt;
  }

  /** True when the request has ended (false for `pending` or `claimed`). */
  get done() {
    return FINAL_STATES.includes(this.status);
  }

  /** True when the request ended `completed`. */
  get ok() {
    return this.status === 'completed';
  }
}

/**
 * An interval parameter: a number is milliseconds; a string is passed to
 * PostgreSQL as an interval (`'30 seconds'`, `'2 min'`); null or undefined
 * is SQL NULL (the function's default).
 * @param {number|string|null|undefined} v
 * @param {string} what
 * @returns {string|null}
 */
function toInterval(v, what) {
  if (v === null || v === undefined) return null;
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new TypeError(`${what} must be a finite number of milliseconds`);
    return `${v} milliseconds`;
  }
  if (typeof v === 'string') return v;
  throw new TypeError(`${what} must be a number of milliseconds or an interval string`);
}

/**
 * A timestamptz parameter: a Date (pg sends it with its UTC offset), or a
 * string PostgreSQL reads as a timestamptz (`'2030-01-01T00:00:00Z'`);
 * null or undefined is SQL NULL.
 * @param {Date|string|null|undefined} v
 * @param {string} what
 * @returns {Date|string|null}
 */
function toTimestamp(v, what) {
  if (v === null || v === undefined) return null;
  if (v instanceof Date) {
    if (Number.isNaN(v.getTime())) throw new TypeError(`${what} is an invalid Date`);
    return v;
  }
  if (typeof v === 'string') return v;
  throw new TypeError(`${what} must be a Date or a timestamp string`);
}

/**
 * A jsonb parameter: the value serialized with JSON.stringify (always
 * explicitly, as `pg` would otherwise send a JavaScript array as a
 * PostgreSQL array); undefined is SQL NULL.
 * @param {any} v
 * @returns {string|null}
 */
function toJson(v) {
  if (v === undefined) return null;
  const s = JSON.stringify(v);
  return s === undefined ? null : s;
}

/**
 * Runs a statement, mapping a server error to an AsyncrrError subclass.
 * @param {{query: Function}} client a pg.Client, pg.PoolClient or pg.Pool
 * @param {string} text
 * @param {any[]} [params]
 */
async function query(client, text, params) {
  if (!client || typeof client.query !== 'function') {
    throw new TypeError('expected a pg.Client (or pg.Pool) as the first argument');
  }
  try {
    return await client.query(text, params);
  } catch (err) {
    throw mapError(err);
  }
}

/** A Reply from a row with correlation_id, status, reply, error (finished_at). */
function replyFromRow(row, correlationId) {
  return new Reply({
    correlationId: row.correlation_id || correlationId,
    status: row.status,
    reply: row.reply,
    error: row.error,
    finishedAt: row.finished_at,
  });
}

module.exports = { Reply, FINAL_STATES, toInterval, toTimestamp, toJson, query, replyFromRow };

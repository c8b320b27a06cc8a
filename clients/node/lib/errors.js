'use strict';
/**
 * Errors raised by asyncrr, mapped by SQLSTATE to Error subclasses.
 *
 * Every error the server raises for a statement of this client (a
 * `pg.DatabaseError`, which carries a SQLSTATE) is turned into an
 * {@link AsyncrrError}, or one of its subclasses when doc/reference.md
 * documents that SQLSTATE for asyncrr. Errors without a SQLSTATE (a refused
 * or lost connection, a bad argument caught in JavaScript) are passed on
 * unchanged.
 * @module asyncrr/errors
 */

const { DatabaseError } = require('pg');

/**
 * Base class: an error the server raised. `code` is its SQLSTATE; `detail`
 * and `hint` are the server's DETAIL and HINT, if any; `cause` is the
 * original `pg.DatabaseError`.
 */
class AsyncrrError extends Error {
  /**
   * @param {string} message
   * @param {{code?: string, detail?: string, hint?: string, cause?: Error}} [info]
   */
  constructor(message, info = {}) {
    super(message, info.cause ? { cause: info.cause } : undefined);
    this.name = new.target.name;
    /** @type {string|undefined} SQLSTATE */
    this.code = info.code;
    /** @type {string|undefined} */
    this.detail = info.detail;
    /** @type {string|undefined} */
    this.hint = info.hint;
  }
}

/** 22023 invalid_parameter_value: a bad name, interval, count, priority or timeout bound. */
class InvalidArgumentError extends AsyncrrError {}
/** 22004 null_value_not_allowed: a required argument was NULL (undefined). */
class NullValueError extends InvalidArgumentError {}
/** 23505 unique_violation: the correlation id is used by another request. */
class CorrelationIdConflictError extends AsyncrrError {}
/** 25001 active_sql_transaction: `CALL asyncrr.call` inside a transaction block. */
class TransactionBlockError extends AsyncrrError {}
/** 42501 insufficient_privilege: missing asyncrr role, queue privilege, or another role's inbox. */
class PermissionDeniedError extends AsyncrrError {}
/** 42704 undefined_object: no such queue, request, dead letter or role. */
class NotFoundError extends AsyncrrError {}
/** 42710 duplicate_object: the queue exists already. */
class AlreadyExistsError extends AsyncrrError {}
/** 53400 configuration_limit_exceeded: the queue holds `max_depth` live requests. */
class QueueFullError extends AsyncrrError {}
/** 54000 program_limit_exceeded: payload, headers, reply, error text or worker name too large. */
class TooLargeError extends AsyncrrError {}
/**
 * 55000 object_not_in_prerequisite_state: e.g. a reply already taken, a
 * claim that is no longer current, another inbox held by this session,
 * asyncrr not preloaded, or an isolation level other than READ COMMITTED.
 */
class InvalidStateError extends AsyncrrError {}
/** 55006 object_in_use: the durable inbox is held by another live session. */
class InboxInUseError extends AsyncrrError {}
/** 57014 query_canceled: a wait was cancelled or reached statement_timeout. */
class CanceledError extends AsyncrrError {}

/** SQLSTATE → class, for the SQLSTATEs doc/reference.md documents. */
const errorClasses = Object.freeze({
  '22004': NullValueError,
  '22023': InvalidArgumentError,
  '23505': CorrelationIdConflictError,
  '25001': TransactionBlockError,
  '42501': PermissionDeniedError,
  '42704': NotFoundError,
  '42710': AlreadyExistsError,
  '53400': QueueFullError,
  '54000': TooLargeError,
  '55000': InvalidStateError,
  '55006': InboxInUseError,
  '57014': CanceledError,
});

/**
 * Maps an error thrown by `pg` to an {@link AsyncrrError} subclass by its
 * SQLSTATE. Anything that is not a server error is returned unchanged.
 * @param {unknown} err
 * @returns {unknown}
 */
function mapError(err) {
  if (err instanceof AsyncrrError) return err;
  if (!(err instanceof DatabaseError) || typeof err.code !== 'string') return err;
  const Cls = errorClasses[err.code] || AsyncrrError;
  return new Cls(err.message, { code: err.code, detail: err.detail, hint: err.hint, cause: err });
}

module.exports = {
  AsyncrrError,
  InvalidArgumentError,
  NullValueError,
  CorrelationIdConflictError,
  TransactionBlockError,
  PermissionDeniedError,
  NotFoundError,
  AlreadyExistsError,
  QueueFullError,
  TooLargeError,
  InvalidStateError,
  InboxInUseError,
  CanceledError,
  errorClasses,
  mapError,
};

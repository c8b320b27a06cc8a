'use strict';
/**
 * asyncrr: a Node client for asyncrr, durable request-reply in PostgreSQL 15.
 *
 * Requester: {@link call}, {@link submit} + {@link wait}, {@link scatter} +
 * {@link parts}, {@link Inbox}.
 * Worker: {@link Worker}. Errors: {@link AsyncrrError} and its subclasses,
 * chosen by SQLSTATE.
 * @module asyncrr
 */

const errors = require('./errors');
const { Reply, FINAL_STATES } = require('./common');
const { call, submit, submitMany, wait, status, cancel, scatter, parts, Inbox } = require('./requester');
const { Worker } = require('./worker');

module.exports = {
  call,
  submit,
  submitMany,
  wait,
  status,
  cancel,
  scatter,
  parts,
  Inbox,
  Worker,
  Reply,
  FINAL_STATES,
  ...errors,
};

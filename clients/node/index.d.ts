// Type declarations for asyncrr, the Node client of asyncrr (durable
// request-reply in PostgreSQL 15). The SQL contract is doc/reference.md.

import type { ClientBase, DatabaseError, Pool, PoolConfig } from 'pg';
import { EventEmitter } from 'node:events';

/** Milliseconds, or a PostgreSQL interval string such as `'30 seconds'`. */
export type Interval = number | string;

/** The states in which a request has ended. */
export type FinalState = 'completed' | 'failed' | 'timed_out' | 'cancelled' | 'dead_lettered';
/** The states of a live request. */
export type LiveState = 'pending' | 'claimed';

export const FINAL_STATES: readonly FinalState[];

/** Anything with pg's `query()`: a pg.Client, a pg.PoolClient or a pg.Pool. */
export type Queryable = Pick<ClientBase, 'query'> | Pool;

/** The reply to a request. */
export class Reply<T = any> {
  constructor(fields: {
    correlationId: string;
    status: FinalState | LiveState;
    reply?: T | null;
    error?: string | null;
    finishedAt?: Date | null;
  });
  readonly correlationId: string;
  /** The final state; from `wait()` after its timeout, the live state. */
  readonly status: FinalState | LiveState;
  /** The worker's reply (parsed JSON) when `status` is `completed`; for a gather, a `GatherReply` whatever the status. */
  readonly reply: T | null;
  /** The error text for `failed`, `timed_out`, `cancelled`, `dead_lettered`. */
  readonly error: string | null;
  /** When the request ended (replies taken from an Inbox). */
  readonly finishedAt: Date | null;
  /** True when the request has ended. */
  readonly done: boolean;
  /** True when the request ended `completed`. */
  readonly ok: boolean;
}

export interface CallOptions {
  /** Time from submit to deadline (default: the queue's `default_timeout`). */
  timeout?: Interval;
  /** Makes the call idempotent. */
  correlationId?: string;
}

export interface SubmitOptions {
  timeout?: Interval;
  correlationId?: string;
  /** Higher is claimed first (default 0). */
  priority?: number;
  /** A JSON object handed to the worker with the payload. */
  headers?: Record<string, unknown> | null;
  /**
   * Not claimable before this time (a Date, or a timestamp string); the
   * deadline is `notBefore` + timeout; a time in the past means now.
   * Passed as `not_before =>` (asyncrr 0.3).
   */
  notBefore?: Date | string | null;
  /**
   * Claimable only once every earlier request of this key in the queue
   * (submit order) has ended. Passed as `ordering_key =>` (asyncrr 0.3).
   */
  orderingKey?: string | null;
}

export interface SubmitManyOptions {
  timeout?: Interval;
  correlationIds?: (string | null)[];
  priority?: number;
  headers?: Record<string, unknown> | null;
  /** As for `submit()`, for every request. */
  notBefore?: Date | string | null;
  /** One key for the whole batch: handled one after the other, in payload order. */
  orderingKey?: string | null;
}

export interface ScatterOptions {
  /** Time to the gather's deadline, shared by its parts (default: the smallest `default_timeout` of the queues). */
  timeout?: Interval;
  /** Makes the scatter idempotent (same queues, in any order, and payload). */
  correlationId?: string;
  /** A JSON object handed to every part's worker with the payload. */
  headers?: Record<string, unknown> | null;
}

/** One queue's outcome in a gather's reply. */
export interface PartOutcome<T = any> {
  status: FinalState;
  /** For `completed`. */
  reply?: T;
  /** For `failed`, `cancelled`, `dead_lettered`. */
  error?: string;
}

/** The `reply` of a gather: each part's outcome, keyed by queue name. */
export type GatherReply<T = any> = Record<string, PartOutcome<T>>;

/** A row of `asyncrr.parts()`. */
export interface Part {
  correlationId: string;
  queue: string;
  state: FinalState | LiveState;
  reply: any;
  error: string | null;
}

export interface RequestStatus {
  correlationId: string;
  queue: string;
  state: FinalState | LiveState;
  attempt: number;
  worker: string | null;
  submittedAt: Date;
  deadline: Date;
  finishedAt: Date | null;
  reply: any;
  error: string | null;
  deadLetterReason: string | null;
  /** The last progress a worker reported (`ctx.reportProgress()`), or null; kept after the end. */
  progress: any;
  /** When it was reported, or null. */
  progressAt: Date | null;
}

/** `CALL asyncrr.call(...)`: submit, wait and take the reply in one statement (autocommit only). */
export function call<T = any>(client: Queryable, queue: string, payload: unknown, opts?: CallOptions): Promise<Reply<T>>;
/** `asyncrr.submit(...)`: returns the correlation id; the reply goes to this connection's inbox. */
export function submit(client: ClientBase, queue: string, payload: unknown, opts?: SubmitOptions): Promise<string>;
/** `asyncrr.submit_many(...)`: all or nothing; the ids in the order of `payloads`. */
export function submitMany(client: ClientBase, queue: string, payloads: unknown[], opts?: SubmitManyOptions): Promise<string[]>;
/**
 * `CALL asyncrr.wait_for_reply(...)`: the reply once there is one (taken),
 * else after `timeout` (default 30 s) a Reply with the live state.
 */
export function wait<T = any>(client: ClientBase, correlationId: string, timeout?: Interval): Promise<Reply<T>>;
/** `asyncrr.status(id)`: null for an unknown id or another role's. */
export function status(client: Queryable, correlationId: string): Promise<RequestStatus | null>;
/** `asyncrr.cancel(id)`: false if the request had already ended. */
export function cancel(client: Queryable, correlationId: string): Promise<boolean>;
/**
 * `asyncrr.scatter(...)`: one request per queue, gathered in one request
 * whose id is returned; its reply (a `GatherReply`) comes to this
 * connection's inbox like any other.
 */
export function scatter(client: ClientBase, queues: string[], payload: unknown, opts?: ScatterOptions): Promise<string>;
/** `asyncrr.parts(id)`: a gather's parts by queue name; empty for an unknown id. */
export function parts(client: Queryable, correlationId: string): Promise<Part[]>;

export interface InboxOptions {
  /** A durable inbox; omitted or null: this connection's session inbox. */
  name?: string | null;
  /** Replies per `take_replies()` (default 100). */
  batch?: number;
  /** Take anyway after this many ms without a notification (default 30000; 0: never). */
  pollInterval?: number;
}

/**
 * An inbox held by one connection: LISTENs on its channel, takes what is
 * waiting on open, then yields replies as they arrive. Emits `'progress'`
 * (with the correlation id) when a worker reports progress for one of its
 * requests; read the progress with `status()`.
 */
export class Inbox extends EventEmitter implements AsyncIterable<Reply> {
  static open(client: ClientBase, opts?: InboxOptions): Promise<Inbox>;
  private constructor();
  readonly client: ClientBase;
  /** The inbox's name (`_session_…` for a session inbox). */
  readonly name: string;
  /** Its LISTEN/NOTIFY channel, `asyncrr.<name>`. */
  readonly channel: string;
  readonly durable: boolean;
  /** The next reply; null after `timeout` ms, or once the inbox is closed. */
  receive(opts?: number | { timeout?: number }): Promise<Reply | null>;
  /** Yields replies until the inbox is closed. */
  [Symbol.asyncIterator](): AsyncGenerator<Reply, void, undefined>;
  /** `submit()` on the inbox's connection. */
  submit(queue: string, payload: unknown, opts?: SubmitOptions): Promise<string>;
  /** `scatter()` on the inbox's connection: the gather's reply comes to this inbox. */
  scatter(queues: string[], payload: unknown, opts?: ScatterOptions): Promise<string>;
  /** A worker reported progress for the request `correlationId` (not a reply: nothing is taken). */
  on(event: 'progress', listener: (correlationId: string) => void): this;
  once(event: 'progress', listener: (correlationId: string) => void): this;
  off(event: 'progress', listener: (correlationId: string) => void): this;
  on(event: string | symbol, listener: (...args: any[]) => void): this;
  once(event: string | symbol, listener: (...args: any[]) => void): this;
  off(event: string | symbol, listener: (...args: any[]) => void): this;
  /**
   * `asyncrr.close_inbox()`; resolves to the replies taken but not yet
   * handed out (usually none).
   */
  close(opts?: { cancelPending?: boolean }): Promise<Reply[]>;
}

/** What a handler gets besides the payload and headers. */
export interface JobContext {
  correlationId: string;
  /** The claim's attempt (1 for the first). */
  attempt: number;
  deadline: Date;
  leaseUntil: Date;
  /** Aborted when the claim is lost (lease ran out, request ended) or stop() gives up on the handler. */
  signal: AbortSignal;
  /**
   * `asyncrr.report_progress(id, progress, attempt)` with this claim's
   * attempt, on a pool connection, committed at once: the requester's
   * Inbox emits `'progress'` and `status()` shows it. Resolves to false
   * (recording nothing) if the request has ended or the claim is no longer
   * current. Does not extend the lease.
   */
  reportProgress(progress: unknown): Promise<boolean>;
}

export type Handler<P = any, R = any> = (payload: P, headers: Record<string, unknown> | null, ctx: JobContext) => R | Promise<R>;

export type WorkerConnection =
  | { pool: Pool }
  | ({ connectionString?: string; pool?: undefined } & PoolConfig);

export interface WorkerOptions {
  /** Handlers in flight at most (default 10). */
  concurrency?: number;
  /** Requests per claim and replies per complete_many (default min(concurrency, 10)). */
  batch?: number;
  /** Lease per claim (default: the queue's lease). */
  lease?: Interval;
  /** The worker label recorded on claims (default: application_name, or the PID). */
  name?: string;
  /** How long one `wait_for_work` sleeps before looking again (default 30000 ms). */
  idleWait?: Interval;
  /** How long stop() waits for running handlers before failing them with retry (default 30000 ms). */
  stopTimeout?: number;
  /** Stop (gracefully) on SIGTERM while running (default false). */
  handleSigterm?: boolean;
  /** Longest error text passed to fail() (default 8192 characters). */
  maxErrorLength?: number;
  /** Errors the worker survives (connection errors, refused statements); default: process.emitWarning. */
  onError?: (err: unknown, what: string) => void;
}

export interface WorkerStats {
  claimed: number;
  completed: number;
  duplicate: number;
  late: number;
  failed: number;
  retried: number;
  deadLettered: number;
  /** Statements that recorded replies (complete_many or complete_and_claim). */
  completeCalls: number;
  maxCompleteBatch: number;
  /** Requests claimed by the statement that recorded replies (complete_and_claim). */
  claimedWithReplies: number;
  leaseExtensions: number;
  leasesLost: number;
  abandoned: number;
  waits: number;
  /** Progress reports recorded (`ctx.reportProgress()` that resolved true). */
  progress: number;
}

export class Worker<P = any, R = any> {
  constructor(connection: WorkerConnection, queue: string, handler: Handler<P, R>, opts?: WorkerOptions);
  readonly queue: string;
  readonly stats: WorkerStats;
  readonly stopping: boolean;
  readonly inFlight: number;
  /** Runs until stop(); rejects if the worker cannot work at all (no such queue, no privilege, ...). */
  run(): Promise<void>;
  /** Stops claiming, finishes (or fails with retry) what it holds, and resolves. */
  stop(opts?: { timeout?: number }): Promise<void>;
}

/** An error the server raised; `code` is its SQLSTATE. */
export class AsyncrrError extends Error {
  constructor(message: string, info?: { code?: string; detail?: string; hint?: string; cause?: Error });
  code: string | undefined;
  detail: string | undefined;
  hint: string | undefined;
  cause?: DatabaseError | unknown;
}
/** 22023 */
export class InvalidArgumentError extends AsyncrrError {}
/** 22004 */
export class NullValueError extends InvalidArgumentError {}
/** 23505 */
export class CorrelationIdConflictError extends AsyncrrError {}
/** 25001 */
export class TransactionBlockError extends AsyncrrError {}
/** 42501 */
export class PermissionDeniedError extends AsyncrrError {}
/** 42704 */
export class NotFoundError extends AsyncrrError {}
/** 42710 */
export class AlreadyExistsError extends AsyncrrError {}
/** 53400 */
export class QueueFullError extends AsyncrrError {}
/** 54000 */
export class TooLargeError extends AsyncrrError {}
/** 55000 */
export class InvalidStateError extends AsyncrrError {}
/** 55006 */
export class InboxInUseError extends AsyncrrError {}
/** 57014 */
export class CanceledError extends AsyncrrError {}

/** SQLSTATE → class. */
export const errorClasses: Readonly<Record<string, typeof AsyncrrError>>;
/** Maps a pg error to an AsyncrrError subclass by SQLSTATE; other errors unchanged. */
export function mapError(err: unknown): unknown;

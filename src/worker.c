/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The asyncrr background worker: ends requests whose deadline passed,
 *	  returns or dead-letters requests whose lease ran out, dead-letters
 *	  replies whose session is gone, and removes what retention allows.
 *
 * The rules live in src/request.c (asyncrr._expire_deadlines() and
 * friends, which end requests like every other caller); this file decides
 * when to run them.  It also cancels the requests of CALL asyncrr.call
 * whose caller went away while a worker's transaction held the request
 * (asyncrr_abandon_call).  Each step runs in its own transactions
 * of at most asyncrr.batch_size rows, repeated while a batch comes back
 * full, so a backlog never makes one giant transaction.
 *
 * The worker sleeps on its latch until the next deadline or lease end
 * (rounded up to asyncrr.precision), or one housekeeping interval.  It
 * publishes in shared memory when it plans to wake; a backend that commits
 * an earlier deadline or lease sets the worker's latch at commit.  While a
 * pass runs the published time is "now", so a commit the pass's snapshot
 * missed always wakes the worker once more.
 *
 * src/worker.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type_d.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "asyncrr.h"

PGDLLEXPORT void asyncrr_worker_main(Datum main_arg);

PG_FUNCTION_INFO_V1(asyncrr_note_deadline);

/*
 * How often the worker looks at inboxes and retention, at the most: once a
 * second, or once per precision step when that is longer (every pass also
 * ends what is due, so a shorter one would make a coarse precision moot).
 */
#define HOUSEKEEPING_MS Max(1000, asyncrr_precision)
/* How long to wait for the extension to be created, or after an error. */
#define RETRY_MS 1000

/* Requests of abandoned calls the worker holds for cancelling, at most. */
#define ABANDONED_MAX 256

typedef struct AsyncrrShared
{
	slock_t		mutex;
	int			worker_procno;	/* -1 while no worker runs */
	TimestampTz next_wakeup;	/* when the worker will look again */
	int			n_abandoned;
	pg_uuid_t	abandoned[ABANDONED_MAX];

	/*
	 * For asyncrr.metrics (src/metrics.c), nothing else.  Kept across
	 * restarts of the worker's process, so that a worker that is gone shows
	 * as an ever older last pass.  next_event: what the last completed pass
	 * found due next (DT_NOEND: nothing; DT_NOBEGIN: not known yet).  The
	 * last completed pass: its start and end (0 before the first), and the
	 * earliest deadline or lease end that was due when it started
	 * (next_event if it had come, else DT_NOEND; DT_NOBEGIN: not known).
	 */
	TimestampTz next_event;
	AsyncrrPass last_pass;
} AsyncrrShared;

static AsyncrrShared *shared = NULL;

/* backend side: the earliest deadline or lease end this transaction wrote */
static TimestampTz xact_earliest = DT_NOEND;

/* ----------------------------------------------------------------
 * Shared memory
 * ----------------------------------------------------------------
 */
void
asyncrr_worker_shmem_request(void)
{
	RequestAddinShmemSpace(MAXALIGN(sizeof(AsyncrrShared)));
}

/* Called with AddinShmemInitLock held. */
void
asyncrr_worker_shmem_startup(void)
{
	bool		found;

	shared = ShmemInitStruct("asyncrr", sizeof(AsyncrrShared), &found);
	if (!found)
	{
		SpinLockInit(&shared->mutex);
		shared->worker_procno = -1;
		shared->next_wakeup = DT_NOBEGIN;
		shared->n_abandoned = 0;
		shared->next_event = DT_NOBEGIN;
		shared->last_pass.started = shared->last_pass.ended = 0;
		shared->last_pass.due = DT_NOBEGIN;
	}
}

/* ----------------------------------------------------------------
 * Backend side: wake the worker when a commit moves its next wake-up earlier
 * ----------------------------------------------------------------
 */
void
asyncrr_worker_xact_callback(XactEvent event)
{
	TimestampTz earliest = xact_earliest;
	int			procno = -1;

	/*
	 * Only the end of the transaction counts: PRE_COMMIT comes first and
	 * must not use up what COMMIT acts on.  A prepared transaction's
	 * deadline is left to the next housekeeping pass.
	 */
	if (event != XACT_EVENT_COMMIT && event != XACT_EVENT_ABORT &&
		event != XACT_EVENT_PARALLEL_ABORT && event != XACT_EVENT_PREPARE)
		return;
	xact_earliest = DT_NOEND;
	if (event != XACT_EVENT_COMMIT || earliest == DT_NOEND || shared == NULL)
		return;

	SpinLockAcquire(&shared->mutex);
	if (earliest < shared->next_wakeup)
		procno = shared->worker_procno;
	SpinLockRelease(&shared->mutex);

	if (procno >= 0)
		SetLatch(&GetPGProcByNumber(procno)->procLatch);
}

/*
 * asyncrr._note_deadline(at timestamptz) RETURNS void
 *
 * Called by the SQL functions that write a deadline or a lease end; the
 * worker is woken at commit if it would otherwise sleep past it.  Does
 * nothing when asyncrr is not preloaded (there is no worker then).
 */
void
asyncrr_note_deadline_at(TimestampTz at)
{
	asyncrr_xact_changed();
	if (shared == NULL)
		return;
	if (at < xact_earliest)
		xact_earliest = at;
}

/* Adds id to the list of abandoned calls; *procno: the worker's, or -1. */
static bool
keep_abandoned(pg_uuid_t *id, int *procno)
{
	bool		kept = false;

	SpinLockAcquire(&shared->mutex);
	if (shared->n_abandoned < ABANDONED_MAX)
	{
		shared->abandoned[shared->n_abandoned++] = *id;
		kept = true;
	}
	*procno = shared->worker_procno;
	SpinLockRelease(&shared->mutex);
	return kept;
}

/*
 * The caller of CALL asyncrr.call is gone or was interrupted, and its
 * request could not be cancelled then (a worker's transaction held it, or
 * the call's own transaction was failing): the worker will, on its next
 * passes.  False if there is no room (or no worker).
 */
bool
asyncrr_abandon_call(pg_uuid_t *id)
{
	int			procno = -1;
	bool		kept;

	if (shared == NULL)
		return false;
	kept = keep_abandoned(id, &procno);
	if (procno >= 0)
		SetLatch(&GetPGProcByNumber(procno)->procLatch);
	return kept;
}

/*
 * Each step of the worker runs in a transaction of its own, with a
 * snapshot and SPI: begin_step() starts it and says whether the extension
 * is installed in this database; end_step() commits and goes back to the
 * memory context the step began in.
 */
static MemoryContext step_context = NULL;

static bool
begin_step(const char *activity)
{
	step_context = CurrentMemoryContext;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);
	return OidIsValid(get_extension_oid("asyncrr", true));
}

static void
end_step(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	/* CommitTransactionCommand leaves TopMemoryContext current */
	MemoryContextSwitchTo(step_context);
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/*
 * Cancels, in one transaction, the requests of abandoned calls; those a
 * worker's transaction still holds are kept for the next pass.
 */
static void
cancel_abandoned_calls(void)
{
	pg_uuid_t	ids[ABANDONED_MAX];
	int			n;

	SpinLockAcquire(&shared->mutex);
	n = shared->n_abandoned;
	memcpy(ids, shared->abandoned, n * sizeof(pg_uuid_t));
	shared->n_abandoned = 0;
	SpinLockRelease(&shared->mutex);
	if (n == 0)
		return;

	if (begin_step("asyncrr: cancelling the requests of abandoned calls"))
	{
		/*
		 * One that a transaction still holds is kept for the next pass,
		 * without waking this worker: going straight round would spin
		 * for as long as the row is held.
		 */
		for (int i = 0; i < n; i++)
		{
			int			procno;

			if (!asyncrr_cancel_call(&ids[i]))
				(void) keep_abandoned(&ids[i], &procno);
		}
	}
	end_step();
}

Datum
asyncrr_note_deadline(PG_FUNCTION_ARGS)
{
	asyncrr_note_deadline_at(PG_GETARG_TIMESTAMPTZ(0));
	PG_RETURN_VOID();
}

/*
 * The worker's last completed pass, for asyncrr.metrics: false if there was
 * none since the server started (or asyncrr is not preloaded).
 */
bool
asyncrr_worker_last_pass(AsyncrrPass *pass)
{
	if (shared == NULL)
		return false;
	SpinLockAcquire(&shared->mutex);
	*pass = shared->last_pass;
	SpinLockRelease(&shared->mutex);
	return pass->ended != 0;
}

/* ----------------------------------------------------------------
 * Worker side
 * ----------------------------------------------------------------
 */
/*
 * Registers one of asyncrr's background processes (this worker, the
 * dispatcher of notify.c): started after recovery, in asyncrr.database,
 * restarted one second after it exits.
 */
void
asyncrr_register_bgworker(const char *name, const char *function)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 1;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "asyncrr");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "%s", function);
	snprintf(worker.bgw_name, BGW_MAXLEN, "%s", name);
	snprintf(worker.bgw_type, BGW_MAXLEN, "%s", name);
	RegisterBackgroundWorker(&worker);
}

/* How each of them starts: signals, its database, its name. */
void
asyncrr_bgworker_connect(const char *name)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(asyncrr_database, NULL, 0);
	pgstat_report_appname(name);
}

void
asyncrr_register_worker(void)
{
	asyncrr_register_bgworker("asyncrr worker", "asyncrr_worker_main");
}

static void
publish_next_wakeup(TimestampTz at)
{
	SpinLockAcquire(&shared->mutex);
	shared->next_wakeup = at;
	SpinLockRelease(&shared->mutex);
}

static void
worker_detach(int code, Datum arg)
{
	SpinLockAcquire(&shared->mutex);
	shared->worker_procno = -1;
	shared->next_wakeup = DT_NOBEGIN;
	SpinLockRelease(&shared->mutex);
}

/*
 * Runs one SQL statement that returns a single bigint or timestamptz, in a
 * transaction of its own.  Returns false when the extension is not (yet)
 * installed in this database.  Errors propagate to the caller.
 */
static bool
run_in_xact(const char *activity, const char *sql, int nargs, Oid *argtypes,
			Datum *args, Datum *result, bool *isnull)
{
	bool		installed = begin_step(activity);

	if (installed)
	{
		int			ret = SPI_execute_with_args(sql, nargs, argtypes, args, NULL,
												false, 1);

		if (ret != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "asyncrr worker: unexpected result from \"%s\"", sql);
		*result = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, isnull);
	}
	end_step();
	return installed;
}

/*
 * Logs the error being handled and rolls back its transaction, so that the
 * worker can go on in context cxt: the state after begin_step() failed or a
 * statement raised an ERROR.
 */
static void
recover_from_error(MemoryContext cxt)
{
	MemoryContextSwitchTo(cxt);
	EmitErrorReport();
	FlushErrorState();
	AbortCurrentTransaction();
	/* AbortCurrentTransaction leaves TopMemoryContext current */
	MemoryContextSwitchTo(cxt);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/*
 * Set when a step of the current pass failed: the pass goes on with its
 * other steps, and the next one starts after the error backoff.
 */
static bool step_failed = false;

/*
 * This backend must never wait for a lock a client holds (request.c): set
 * in the background worker.
 */
bool		asyncrr_never_wait = false;

/*
 * Runs one maintenance step in batches until a batch comes back short.
 * Returns false if the extension is missing.  An ERROR in the step is
 * logged and ends that step only, so a step that keeps failing (one row it
 * cannot move, say) does not stop the others: requests still time out,
 * leases still run out, retention still removes.  A query cancel ends
 * the pass, not only the step (termination is FATAL, never caught).
 */
static bool
run_step(const char *activity, const char *sql, int nargs, Datum extra)
{
	Oid			argtypes[2] = {INT4OID, INTERVALOID};
	Datum		args[2];
	Datum		done;
	bool		isnull;
	volatile bool installed = true;
	MemoryContext cxt = CurrentMemoryContext;

	PG_TRY();
	{
		for (;;)
		{
			CHECK_FOR_INTERRUPTS();
			args[0] = Int32GetDatum(asyncrr_batch_size);
			args[1] = extra;
			if (!run_in_xact(activity, sql, nargs, argtypes, args, &done, &isnull))
			{
				installed = false;
				break;
			}
			if (isnull || DatumGetInt32(done) < asyncrr_batch_size)
				break;
		}
	}
	PG_CATCH();
	{
		if (geterrcode() == ERRCODE_QUERY_CANCELED)
			PG_RE_THROW();
		recover_from_error(cxt);
		step_failed = true;
	}
	PG_END_TRY();
	return installed;
}

static Datum
seconds_interval(int seconds)
{
	Interval   *iv = palloc0(sizeof(Interval));

	iv->time = (int64) seconds * USECS_PER_SEC;
	return IntervalPGetDatum(iv);
}

/*
 * One pass over every rule.  Returns the time of the next deadline or lease
 * end (DT_NOEND if none), or DT_NOBEGIN if the extension is missing.
 */
static TimestampTz
run_pass(bool housekeeping)
{
	Datum		next;
	bool		isnull;

	cancel_abandoned_calls();
	if (!run_step("asyncrr: ending requests past their deadline",
				  "SELECT asyncrr._expire_deadlines($1)", 1, (Datum) 0))
		return DT_NOBEGIN;
	run_step("asyncrr: returning requests whose lease ran out",
			 "SELECT asyncrr._expire_leases($1)", 1, (Datum) 0);
	if (housekeeping)
	{
		run_step("asyncrr: releasing inboxes of ended sessions",
				 "SELECT asyncrr._orphan_inboxes($1, $2)", 2,
				 seconds_interval(asyncrr_orphan_grace));
		run_step("asyncrr: removing ended requests past retention",
				 "SELECT asyncrr._purge_requests($1, $2)", 2,
				 seconds_interval(asyncrr_retention));
		run_step("asyncrr: removing dead letters past retention",
				 "SELECT asyncrr._purge_old_dead_letters($1, $2)", 2,
				 seconds_interval(asyncrr_dead_letter_retention));
	}
	if (!run_in_xact("asyncrr: finding the next deadline",
					 "SELECT asyncrr._next_event()", 0, NULL, NULL, &next, &isnull))
		return DT_NOBEGIN;
	return isnull ? DT_NOEND : DatumGetTimestampTz(next);
}

/*
 * Records a pass that ran to its end, for asyncrr.metrics (nothing here
 * reads it back but the next record_pass): when it started and ended, and
 * how late it started for what was due.  That is the next event the
 * previous pass found (the earliest deadline or lease end then, unrounded),
 * if it had come by the start of this one: a deadline committed later
 * and earlier than that woke the worker at its commit, before it was due.
 * next is what run_pass() returned; DT_NOBEGIN (no extension) is no pass.
 */
static void
record_pass(TimestampTz started, TimestampTz next)
{
	TimestampTz ended = GetCurrentTimestamp();

	SpinLockAcquire(&shared->mutex);
	if (next == DT_NOBEGIN)
		shared->next_event = DT_NOBEGIN;
	else
	{
		shared->last_pass.started = started;
		shared->last_pass.ended = ended;
		if (shared->next_event == DT_NOBEGIN)
			shared->last_pass.due = DT_NOBEGIN;
		else if (shared->next_event <= started)
			shared->last_pass.due = shared->next_event;
		else
			shared->last_pass.due = DT_NOEND;
		shared->next_event = next;
	}
	SpinLockRelease(&shared->mutex);
}

/* The wake-up time for an event: rounded up to the precision grain. */
static TimestampTz
round_up_to_precision(TimestampTz at)
{
	int64		grain = (int64) asyncrr_precision * 1000;

	if (at % grain == 0)
		return at;
	return at - (at % grain) + (at >= 0 ? grain : 0);
}

void
asyncrr_worker_main(Datum main_arg)
{
	MemoryContext pass_context;
	volatile TimestampTz last_housekeeping = 0;

	asyncrr_bgworker_connect("asyncrr worker");
	asyncrr_never_wait = true;

	SpinLockAcquire(&shared->mutex);
	shared->worker_procno = ASYNCRR_MY_PROCNO;
	shared->next_wakeup = DT_NOBEGIN;
	SpinLockRelease(&shared->mutex);
	before_shmem_exit(worker_detach, (Datum) 0);

	pass_context = AllocSetContextCreate(TopMemoryContext, "asyncrr worker pass",
										 ALLOCSET_DEFAULT_SIZES);
	ereport(LOG,
			(errmsg("asyncrr worker started in database \"%s\"", asyncrr_database)));

	for (;;)
	{
		TimestampTz now;
		TimestampTz pass_start;
		volatile TimestampTz wake;
		bool		housekeeping;
		volatile bool failed = false;
		long		sleep_ms;
		MemoryContext old_context;

		ResetLatch(MyLatch);
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		/* while the pass runs, any commit with a deadline wakes us again */
		publish_next_wakeup(DT_NOEND);

		now = pass_start = GetCurrentTimestamp();
		housekeeping = TimestampDifferenceExceeds(last_housekeeping, now, HOUSEKEEPING_MS);
		old_context = MemoryContextSwitchTo(pass_context);

		/*
		 * A standby, or a primary kept read-only (default_transaction_read_only,
		 * as pg_auto_failover does for a few seconds after a promotion): no
		 * step could write, so look again later rather than log an ERROR.
		 */
		if (RecoveryInProgress() || DefaultXactReadOnly)
		{
			CHECK_FOR_INTERRUPTS();
			wake = TimestampTzPlusMilliseconds(now, RETRY_MS);
		}
		else
		{
			PG_TRY();
			{
				TimestampTz next;

				/* a query cancel (SIGINT) ends this pass, not the worker */
				CHECK_FOR_INTERRUPTS();
				next = run_pass(housekeeping);

				if (housekeeping)
					last_housekeeping = now;
				/* a pass with a failing step is not a completed one (asyncrr.metrics) */
				if (!step_failed)
					record_pass(pass_start, next);
				if (next == DT_NOBEGIN)
					wake = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), RETRY_MS);
				else
				{
					wake = TimestampTzPlusMilliseconds(last_housekeeping, HOUSEKEEPING_MS);
					if (next != DT_NOEND && round_up_to_precision(next) < wake)
						wake = round_up_to_precision(next);
				}
			}
			PG_CATCH();
			{
				/* log it, roll back, and try again on the next pass */
				recover_from_error(pass_context);
				failed = true;
			}
			PG_END_TRY();
			if (step_failed)
			{
				step_failed = false;
				failed = true;
			}
			if (failed)
				wake = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), RETRY_MS);
		}

		MemoryContextSwitchTo(old_context);
		MemoryContextReset(pass_context);

		/*
		 * What came due during the pass is done at once.  What was due
		 * before it and is still there (a row a client holds locked) is
		 * looked at again one precision step later: going straight round
		 * would spin for as long as the lock is held.
		 */
		now = GetCurrentTimestamp();
		if (wake <= now && wake <= pass_start)
			wake = TimestampTzPlusMilliseconds(now, asyncrr_precision);
		publish_next_wakeup(wake);
		if (wake <= now)
			continue;
		/*
		 * round up, so that we never wake just before what we wait for;
		 * after an error, back off the whole RETRY_MS whatever sets the
		 * latch meanwhile (each commit with a deadline may)
		 */
		do
		{
			sleep_ms = (long) ((wake - now + 999) / 1000);
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 sleep_ms, PG_WAIT_EXTENSION);
			if (failed)
			{
				ResetLatch(MyLatch);
				CHECK_FOR_INTERRUPTS();
			}
			now = GetCurrentTimestamp();
		} while (failed && now < wake);
	}
}

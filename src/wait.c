/*-------------------------------------------------------------------------
 *
 * wait.c
 *	  Waiting without LISTEN: a shared-memory registry of backends sleeping
 *	  on their latch for a reply (asyncrr.wait, CALL asyncrr.call) or for
 *	  work in a queue (asyncrr.claim with wait), and the wake-ups sent at
 *	  commit by the transactions that make that reply or work exist.
 *
 * A waiter takes a slot holding its PGPROC number and a key (a hash of the
 * correlation id or of the queue name), then loops: note the slot's wake-up
 * count and reset its latch, look for what it waits for with a fresh
 * snapshot, sleep on the latch unless the count moved.  A transaction that
 * records a reply or makes a request claimable notes the key; when it
 * commits (its changes are visible by then) it bumps the count of every
 * waiter on that key and sets its latch.  The count makes the wake-up
 * survive a look that itself waited on the latch (a lock or buffer wait
 * resets it).  Hash collisions only cause a spurious wake-up and another
 * look; a transaction that notes very many keys wakes every waiter.
 *
 * While it sleeps a waiter watches its client's socket (WL_SOCKET_CLOSED),
 * and a waiting claim checks the connection again before it takes rows:
 * a client that has gone ends its backend at once ("connection to client
 * lost"), and a dead worker's backend claims nothing.  The procedures
 * (CALL asyncrr.call, wait_for_reply, wait_for_work) let go of their
 * snapshot before they sleep, so a sleeping procedure holds back no
 * VACUUM; the SELECT forms (wait(), claim with wait) cannot, and keep
 * their statement's snapshot for as long as they sleep.
 *
 * The registry has asyncrr.max_waiters slots.  When all are taken a waiter
 * polls every POLL_MS instead, and never fails.  A slot is given back when
 * the wait ends, when its transaction aborts (query cancel,
 * statement_timeout) and when the backend exits; a crashed backend takes
 * the whole shared memory with it through the postmaster's crash restart.
 *
 * src/wait.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "common/hashfn.h"
#include "fmgr.h"
#include "funcapi.h"
#include "libpq/libpq.h"
#include "libpq/libpq-be.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "tcop/pquery.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/portal.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"
#include "utils/wait_event.h"

#include "asyncrr.h"

/*
 * A call that must commit its submit before it waits, made inside a
 * transaction block: a worker cannot see the request until it commits.
 */
#define IN_BLOCK_HINT \
	"Submit with asyncrr.submit(), commit, then CALL asyncrr.wait_for_reply()."

PG_FUNCTION_INFO_V1(asyncrr_wait_register_reply);
PG_FUNCTION_INFO_V1(asyncrr_wait_register_work);
PG_FUNCTION_INFO_V1(asyncrr_wait_reset);
PG_FUNCTION_INFO_V1(asyncrr_wait_sleep);
PG_FUNCTION_INFO_V1(asyncrr_wait_unregister);
PG_FUNCTION_INFO_V1(asyncrr_wake_work_at_commit);
PG_FUNCTION_INFO_V1(asyncrr_call_precheck);
PG_FUNCTION_INFO_V1(asyncrr_waiters);
PG_FUNCTION_INFO_V1(asyncrr_wait);
PG_FUNCTION_INFO_V1(asyncrr_wait_for_reply);
PG_FUNCTION_INFO_V1(asyncrr_wait_for_work);
PG_FUNCTION_INFO_V1(asyncrr_call);

/* How often a waiter looks when the registry is full. */
#define POLL_MS 10

/* keys of the two kinds never meet: a reply key is odd, a work key even */
#define REPLY_KEY(h) ((h) | 1)
#define WORK_KEY(h)  ((h) & ~(uint32) 1)

typedef struct WaiterSlot
{
	int			procno;			/* -1: free */
	uint32		key;
	pg_atomic_uint32 wakeups;	/* bumped by every wake-up sent to it */
} WaiterSlot;

typedef struct WaiterRegistry
{
	LWLock	   *lock;
	int			nslots;
	WaiterSlot	slots[FLEXIBLE_ARRAY_MEMBER];
} WaiterRegistry;

int			asyncrr_max_waiters = 100;

static WaiterRegistry *registry = NULL;

/* this backend's slot, or -1; and whether it is waiting unregistered */
static int	my_slot = -1;
static bool my_polling = false;
static uint32 my_seen_wakeups = 0;

/* this backend's client has closed its connection */
static bool client_gone = false;

/*
 * Keys to wake when the current transaction commits.  Past MAX_WAKE_KEYS
 * (a transaction that ends thousands of requests) every waiter is woken
 * instead, which keeps both the noting and the waking cheap.
 */
#define MAX_WAKE_KEYS 64
static uint32 wake_keys[MAX_WAKE_KEYS];
static int	n_wake_keys = 0;
static bool wake_everyone = false;
static bool exit_hook_registered = false;

static Size
registry_size(void)
{
	return add_size(offsetof(WaiterRegistry, slots),
					mul_size(sizeof(WaiterSlot), asyncrr_max_waiters));
}

void
asyncrr_wait_shmem_request(void)
{
	RequestAddinShmemSpace(MAXALIGN(registry_size()));
	RequestNamedLWLockTranche("asyncrr", 1);
}

/* Called with AddinShmemInitLock held. */
void
asyncrr_wait_shmem_startup(void)
{
	bool		found;

	registry = ShmemInitStruct("asyncrr waiters", registry_size(), &found);
	if (!found)
	{
		registry->lock = &(GetNamedLWLockTranche("asyncrr"))->lock;
		registry->nslots = asyncrr_max_waiters;
		for (int i = 0; i < registry->nslots; i++)
		{
			registry->slots[i].procno = -1;
			pg_atomic_init_u32(&registry->slots[i].wakeups, 0);
		}
	}
}

/*
 * Set while a waiting procedure commits the transaction of its last look
 * (commit_before_sleep): its slot stays registered, so that no commit it
 * waits for can come between the look and the sleep unseen.
 */
static bool keep_slot_at_commit = false;

static void
release_slot(void)
{
	if (registry != NULL && my_slot >= 0)
	{
		LWLockAcquire(registry->lock, LW_EXCLUSIVE);
		registry->slots[my_slot].procno = -1;
		LWLockRelease(registry->lock);
		my_slot = -1;
	}
	my_polling = false;
}

/* Sets the latch of every waiter whose key this transaction noted. */
static void
wake_waiters(void)
{
	LWLockAcquire(registry->lock, LW_SHARED);
	for (int i = 0; i < registry->nslots; i++)
	{
		WaiterSlot *slot = &registry->slots[i];

		if (slot->procno < 0)
			continue;
		for (int k = 0; k < n_wake_keys || wake_everyone; k++)
		{
			if (wake_everyone || slot->key == wake_keys[k])
			{
				pg_atomic_fetch_add_u32(&slot->wakeups, 1);
				SetLatch(&GetPGProcByNumber(slot->procno)->procLatch);
				break;
			}
		}
	}
	LWLockRelease(registry->lock);
}

/* The transaction callback's part here (asyncrr.c calls it after notify.c's). */
void
asyncrr_wait_xact_callback(XactEvent event)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
			if (n_wake_keys > 0 || wake_everyone)
				wake_waiters();
			n_wake_keys = 0;
			wake_everyone = false;
			/* a procedure that commits between its looks keeps its slot */
			if (!keep_slot_at_commit)
				release_slot();
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			n_wake_keys = 0;
			wake_everyone = false;
			keep_slot_at_commit = false;
			release_slot();
			break;
		default:
			break;
	}
}

static void
wait_before_shmem_exit(int code, Datum arg)
{
	release_slot();
}

void
asyncrr_wait_subxact_callback(SubXactEvent event)
{
	/* an error caught inside a wait (PL/pgSQL EXCEPTION) ends the wait */
	if (event == SUBXACT_EVENT_ABORT_SUB)
		release_slot();
}

/* A waiter gives its slot back when its backend exits. */
static void
ensure_exit_hook(void)
{
	if (!exit_hook_registered)
	{
		before_shmem_exit(wait_before_shmem_exit, (Datum) 0);
		exit_hook_registered = true;
	}
}

/*
 * Refuses to wait where a wait could not work: without the registry, or
 * with a transaction snapshot, which would never show the commit waited for.
 */
static void
require_registry(const char *what)
{
	if (registry == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s requires asyncrr to be loaded via shared_preload_libraries", what),
				 errhint("Add asyncrr to shared_preload_libraries and restart the server.")));
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s requires the READ COMMITTED isolation level", what),
				 errdetail("A waiter must see what commits after its transaction began.")));
	ensure_exit_hook();
}

/* Notes a key whose waiters this transaction's commit must wake. */
static void
wake_at_commit(uint32 key)
{
	asyncrr_xact_changed();
	if (registry == NULL)
		return;					/* not preloaded: nobody can be waiting */

	if (wake_everyone)
		return;
	for (int k = 0; k < n_wake_keys; k++)
		if (wake_keys[k] == key)
			return;
	if (n_wake_keys == MAX_WAKE_KEYS)
		wake_everyone = true;
	else
		wake_keys[n_wake_keys++] = key;
}

static uint32
reply_key(pg_uuid_t *id)
{
	return REPLY_KEY(hash_bytes(id->data, UUID_LEN));
}

static uint32
work_key(text *queue)
{
	return WORK_KEY(hash_bytes((unsigned char *) VARDATA_ANY(queue),
							   VARSIZE_ANY_EXHDR(queue)));
}

/* For notify.c: wake the waiters of this reply when the transaction commits. */
void
asyncrr_wake_reply_at_commit(pg_uuid_t *id)
{
	wake_at_commit(reply_key(id));
}

/*
 * Takes a slot for this backend with the given key; if none is free the
 * backend polls instead.  One wait at a time per backend.
 */
static void
register_waiter(uint32 key, const char *what)
{
	require_registry(what);
	if (my_slot >= 0 || my_polling)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s cannot run while this session is already waiting", what)));

	LWLockAcquire(registry->lock, LW_EXCLUSIVE);
	for (int i = 0; i < registry->nslots; i++)
	{
		if (registry->slots[i].procno < 0)
		{
			registry->slots[i].procno = ASYNCRR_MY_PROCNO;
			registry->slots[i].key = key;
			my_slot = i;
			break;
		}
	}
	LWLockRelease(registry->lock);
	if (my_slot < 0)
		my_polling = true;
}

/* asyncrr._wait_register_reply(correlation_id uuid) RETURNS void */
Datum
asyncrr_wait_register_reply(PG_FUNCTION_ARGS)
{
	register_waiter(reply_key(PG_GETARG_UUID_P(0)), "asyncrr.wait");
	PG_RETURN_VOID();
}

/* For claim with wait (request.c): wait for work in this queue. */
void
asyncrr_waiter_register_work(text *queue)
{
	register_waiter(work_key(queue), "asyncrr.claim with wait");
}

/* asyncrr._wait_register_work(queue_name text) RETURNS void */
Datum
asyncrr_wait_register_work(PG_FUNCTION_ARGS)
{
	asyncrr_waiter_register_work(PG_GETARG_TEXT_PP(0));
	PG_RETURN_VOID();
}

/* The wait is over: give the slot back. */
void
asyncrr_waiter_release(void)
{
	release_slot();
}

/* asyncrr._wait_unregister() RETURNS void */
Datum
asyncrr_wait_unregister(PG_FUNCTION_ARGS)
{
	asyncrr_waiter_release();
	PG_RETURN_VOID();
}

/* Called before each look: a wake-up that comes after it is not lost. */
void
asyncrr_waiter_reset(void)
{
	if (my_slot >= 0)
		my_seen_wakeups = pg_atomic_read_u32(&registry->slots[my_slot].wakeups);
	ResetLatch(MyLatch);
}

/* asyncrr._wait_reset() RETURNS void */
Datum
asyncrr_wait_reset(PG_FUNCTION_ARGS)
{
	asyncrr_waiter_reset();
	PG_RETURN_VOID();
}

/* Does this backend serve a client whose connection can be watched? */
static bool
watches_client(void)
{
	return MyProcPort != NULL && whereToSendOutput == DestRemote &&
		WaitEventSetCanReportClosed();
}

/* Is the client still connected?  (Checked before a woken claim takes rows.) */
bool
asyncrr_client_alive(void)
{
	if (!client_gone && watches_client() && !pq_check_connection())
		client_gone = true;
	return !client_gone;
}

/*
 * Sleeps until the latch is set or "until" passes (at most POLL_MS when the
 * registry had no slot for us), watching the client's socket.  Returns
 * false when the wait must end now: the client has gone, or a query cancel
 * (pg_cancel_backend, statement_timeout) or termination is pending.  The
 * caller then does what it must first and calls asyncrr_waiter_stop().
 * Ends with the postmaster.
 */
bool
asyncrr_waiter_sleep(TimestampTz until)
{
	long		ms = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), until);

	if (my_polling && ms > POLL_MS)
		ms = POLL_MS;
	/* a wake-up whose latch a wait inside the look used up still counts */
	if (my_slot >= 0 &&
		pg_atomic_read_u32(&registry->slots[my_slot].wakeups) != my_seen_wakeups)
		ms = 0;
	if (ms > 0)
	{
		int			events = WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH;

		if (watches_client())
		{
			if (WaitLatchOrSocket(MyLatch, events | WL_SOCKET_CLOSED, MyProcPort->sock,
								  ms, PG_WAIT_EXTENSION) & WL_SOCKET_CLOSED)
				client_gone = true;
		}
		else
			(void) WaitLatch(MyLatch, events, ms, PG_WAIT_EXTENSION);
	}
	return !(client_gone || (InterruptPending && (QueryCancelPending || ProcDiePending)));
}

/*
 * Ends a wait that asyncrr_waiter_sleep() or asyncrr_client_alive() said
 * must end: raises the pending cancel or termination, or ends the backend
 * whose client has gone, as PostgreSQL does when it finds that out itself.
 */
void
asyncrr_waiter_stop(void)
{
	if (client_gone)
	{
		ClientConnectionLost = true;
		InterruptPending = true;
	}
	CHECK_FOR_INTERRUPTS();
}

/* asyncrr._wait_sleep(until timestamptz) RETURNS void */
Datum
asyncrr_wait_sleep(PG_FUNCTION_ARGS)
{
	if (!asyncrr_waiter_sleep(PG_GETARG_TIMESTAMPTZ(0)))
		asyncrr_waiter_stop();
	PG_RETURN_VOID();
}

/* Wake the claims waiting for work in this queue when this transaction commits. */
void
asyncrr_wake_queue_at_commit(text *queue)
{
	wake_at_commit(work_key(queue));
}

/* asyncrr._wake_work_at_commit(queue_name text) RETURNS void */
Datum
asyncrr_wake_work_at_commit(PG_FUNCTION_ARGS)
{
	asyncrr_wake_queue_at_commit(PG_GETARG_TEXT_PP(0));
	PG_RETURN_VOID();
}

/*
 * asyncrr._call_precheck(what text) RETURNS void
 *
 * For CALL asyncrr.call, which commits by itself and then waits: refuses,
 * before anything is written, to run inside a transaction block or
 * without the waiter registry.
 */
Datum
asyncrr_call_precheck(PG_FUNCTION_ARGS)
{
	require_registry(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	if (IsTransactionBlock())
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("%s cannot run inside a transaction block",
						text_to_cstring(PG_GETARG_TEXT_PP(0))),
				 errhint(IN_BLOCK_HINT)));
	PG_RETURN_VOID();
}

/*
 * asyncrr.list_waiters() RETURNS TABLE(pid integer, waits_for text)
 *
 * The backends of this database in the registry now; for a caller that is
 * not an administrator, only those that logged in as its role; none when
 * not preloaded.
 */
Datum
asyncrr_waiters(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	bool		admin = asyncrr_is_admin();
	Oid			me = asyncrr_caller();

	InitMaterializedSRF(fcinfo, 0);
	if (registry == NULL)
		return (Datum) 0;

	LWLockAcquire(registry->lock, LW_SHARED);
	for (int i = 0; i < registry->nslots; i++)
	{
		WaiterSlot *slot = &registry->slots[i];
		Datum		values[2];
		bool		nulls[2] = {false, false};
		PGPROC	   *proc;

		if (slot->procno < 0)
			continue;
		proc = GetPGProcByNumber(slot->procno);
		if (proc->databaseId != MyDatabaseId || (!admin && proc->roleId != me))
			continue;
		values[0] = Int32GetDatum(proc->pid);
		values[1] = CStringGetTextDatum((slot->key & 1) ? "reply" : "work");
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	LWLockRelease(registry->lock);
	return (Datum) 0;
}

/* ----------------------------------------------------------------
 * The waits: wait(), and the procedures that sleep holding no snapshot
 * ----------------------------------------------------------------
 */

/*
 * Lets go of this backend's snapshots before a procedure sleeps, as
 * PostgreSQL's own waits in procedures do: those its CALL statement holds
 * (the one its portal made active, or SPI brought back for the last look,
 * and the one it keeps for the procedure's INOUT results, which are copied
 * and detoasted) and the catalog snapshot.  Without them the backend shows
 * no backend_xmin.  Only when the procedure is the statement itself: a CALL
 * nested in a function or DO block keeps its caller's snapshots, which are
 * not ours to release.
 */
static void
release_snapshots(FunctionCallInfo fcinfo)
{
	Portal		portal = ActivePortal;
	PlannedStmt *stmt;

	if (portal == NULL || portal->commandTag != CMDTAG_CALL || list_length(portal->stmts) != 1)
		return;
	stmt = linitial_node(PlannedStmt, portal->stmts);
	if (stmt->utilityStmt == NULL || !IsA(stmt->utilityStmt, CallStmt) ||
		((CallStmt *) stmt->utilityStmt)->funcexpr->funcid != fcinfo->flinfo->fn_oid)
		return;

	if (ActiveSnapshotSet() && portal->portalSnapshot == GetActiveSnapshot())
	{
		PopActiveSnapshot();
		portal->portalSnapshot = NULL;
	}
	if (portal->holdSnapshot != NULL && portal->resowner != NULL)
	{
		UnregisterSnapshotFromOwner(portal->holdSnapshot, portal->resowner);
		portal->holdSnapshot = NULL;
	}
	InvalidateCatalogSnapshot();
}

/*
 * CALL asyncrr.call may have no SET clause (a procedure with one cannot
 * COMMIT), so it pins its search_path itself, as a SET clause would, in
 * each of its transactions: every statement asyncrr runs must be parsed
 * with pg_catalog first, whatever the caller's search_path.  While it
 * waits, also its IntervalStyle, as asyncrr._expire_deadlines does: a
 * timeout's error text ("no reply within 00:00:02") is the same whoever
 * ends the request.  (Not while it submits: errors speak the caller's.)  Returns the
 * GUC nesting level to restore with AtEOXact_GUC(true, level).
 */
static int
pin_search_path(bool waiting)
{
	int			level = NewGUCNestLevel();

	(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	/* a timeout's error text reads as the worker's would */
	if (waiting)
		(void) set_config_option("IntervalStyle", "postgres", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	return level;
}

/*
 * A procedure that may COMMIT ends the transaction of its last look before
 * it sleeps, so that it holds no lock while it sleeps (the look's locks on
 * asyncrr.request and its indexes would hold up ALTER TABLE, REINDEX,
 * VACUUM FULL and the like for as long as the wait).  It keeps its waiter
 * slot and its pinned settings (*pinned: the GUC nesting level, re-pinned
 * in the new transaction).
 */
static void
commit_before_sleep(int *pinned, bool waiting)
{
	AtEOXact_GUC(true, *pinned);
	keep_slot_at_commit = true;
	SPI_commit();
	keep_slot_at_commit = false;
	*pinned = pin_search_path(waiting);
}

/* Is this a procedure called where it may COMMIT (autocommit CALL)? */
static bool
nonatomic_call(FunctionCallInfo fcinfo)
{
	return fcinfo->context != NULL && IsA(fcinfo->context, CallContext) &&
		!((CallContext *) fcinfo->context)->atomic;
}

static Interval *
timeout_arg(FunctionCallInfo fcinfo, int arg)
{
	asyncrr_check_not_null("timeout", PG_ARGISNULL(arg));
	asyncrr_check_not_negative("timeout", PG_GETARG_INTERVAL_P(arg));
	return PG_GETARG_INTERVAL_P(arg);
}

static TimestampTz
from_now(Interval *i)
{
	return DatumGetTimestampTz(DirectFunctionCall2(timestamptz_pl_interval,
												   TimestampTzGetDatum(GetCurrentTimestamp()),
												   IntervalPGetDatum(i)));
}

/*
 * Waits for the reply of request id and takes it, into *r; or, at "until",
 * leaves its live state there and takes nothing.  For CALL asyncrr.call (call),
 * "until" is the request's deadline, when it is timed out and that outcome
 * taken; and a caller that goes or is cancelled cancels the request first,
 * in a transaction of its own.  A procedure (release) sleeps holding no
 * snapshot (fcinfo is the procedure's); one that may COMMIT (pinned: its
 * GUC nesting level) also commits before each sleep, to hold no lock.  The
 * caller is connected to SPI.
 */
static void
wait_for_reply(FunctionCallInfo fcinfo, pg_uuid_t *id, TimestampTz until, bool release,
			   bool call, AsyncrrReply *r, MemoryContext mcxt, int *pinned)
{
	AsyncrrTake got;
	volatile bool cancelled = false;

	register_waiter(reply_key(id), call ? "asyncrr.call" : "asyncrr.wait");
	PG_TRY();
	{
		for (;;)
		{
			asyncrr_waiter_reset();
			got = asyncrr_take_reply(id, r, mcxt);
			if (release)
				release_snapshots(fcinfo);
			if (got == ASYNCRR_TAKE_TAKEN)
				break;
			if (call)
				until = r->deadline;
			if (GetCurrentTimestamp() >= until)
			{
				if (!call)
					break;
				asyncrr_time_out(id);
				continue;
			}
			if (pinned != NULL)
				commit_before_sleep(pinned, call);
			if (!asyncrr_waiter_sleep(until))
			{
				if (call)
				{
					HOLD_INTERRUPTS();
					if (!asyncrr_cancel_call(id))
						(void) asyncrr_abandon_call(id);
					SPI_commit();
					cancelled = true;
					RESUME_INTERRUPTS();
				}
				asyncrr_waiter_stop();
				/* in case what was pending ended nothing: the request is cancelled */
				if (call)
					ereport(ERROR,
							(errcode(ERRCODE_QUERY_CANCELED),
							 errmsg("asyncrr.call was interrupted"),
							 errdetail("Its request was cancelled.")));
			}
		}
	}
	PG_CATCH();
	{
		/*
		 * Cancelled or timed out anywhere else (while a statement waits for
		 * a lock): the call's request, committed, would be left live.  The
		 * transaction is failing, so the background worker cancels it (a
		 * no-op if it has ended).  Other errors leave it to its deadline.
		 */
		if (call && !cancelled && geterrcode() == ERRCODE_QUERY_CANCELED)
			(void) asyncrr_abandon_call(id);
		PG_RE_THROW();
	}
	PG_END_TRY();
	release_slot();
}

/* A reply's status, reply and error, as three result columns. */
static void
reply_columns(AsyncrrReply *r, Datum *values, bool *nulls)
{
	values[0] = CStringGetTextDatum(r->state);
	nulls[0] = false;
	values[1] = r->reply;
	nulls[1] = r->reply_isnull;
	values[2] = r->error;
	nulls[2] = r->error_isnull;
}

/* The procedure's INOUT values, as the record a CALL returns. */
static Datum
procedure_result(FunctionCallInfo fcinfo, Datum *values, bool *nulls)
{
	TupleDesc	tupdesc;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "asyncrr: return type must be a row type");
	return HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls));
}

/* The common checks of wait() and wait_for_reply(). */
static pg_uuid_t *
reply_waited_for(FunctionCallInfo fcinfo, const char *fn, Interval **timeout)
{
	asyncrr_require("requester", fn);
	asyncrr_check_not_null("correlation id", PG_ARGISNULL(0));
	*timeout = timeout_arg(fcinfo, 1);
	require_registry(psprintf("asyncrr.%s", fn));
	asyncrr_check_waitable(PG_GETARG_UUID_P(0), false);
	return PG_GETARG_UUID_P(0);
}

/*
 * asyncrr.wait(correlation_id uuid, timeout interval)
 *     RETURNS TABLE(correlation_id uuid, status text, reply jsonb, error text,
 *                   finished_at timestamptz)
 *
 * Waits until a request of this session's inbox has a reply and takes it;
 * after timeout, returns its live state and takes nothing.  A SELECT: its
 * snapshot stays while it sleeps (wait_for_reply holds none).
 */
Datum
asyncrr_wait(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext mcxt = CurrentMemoryContext;
	Interval   *timeout;
	pg_uuid_t  *id;
	AsyncrrReply r;
	Datum		values[5];
	bool		nulls[5];

	InitMaterializedSRF(fcinfo, 0);
	SPI_connect();
	id = reply_waited_for(fcinfo, "wait", &timeout);
	wait_for_reply(fcinfo, id, from_now(timeout), false, false, &r, mcxt, NULL);
	SPI_finish();

	values[0] = UUIDPGetDatum(&r.id);
	nulls[0] = false;
	reply_columns(&r, &values[1], &nulls[1]);
	values[4] = r.finished_at;
	nulls[4] = r.finished_isnull;
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	return (Datum) 0;
}

/*
 * CALL asyncrr.wait_for_reply(correlation_id uuid, timeout interval,
 *                             INOUT status text, INOUT reply jsonb, INOUT error text)
 *
 * wait() as a procedure, which holds no snapshot while it sleeps, and, in
 * autocommit, no lock either (it commits before each sleep).  No SET
 * clause (a procedure with one cannot COMMIT): it pins its search_path.
 */
Datum
asyncrr_wait_for_reply(PG_FUNCTION_ARGS)
{
	MemoryContext mcxt = CurrentMemoryContext;
	bool		nonatomic = nonatomic_call(fcinfo);
	Interval   *timeout;
	pg_uuid_t  *id;
	AsyncrrReply r;
	Datum		values[3];
	bool		nulls[3];
	int			pinned;

	SPI_connect_ext(nonatomic ? SPI_OPT_NONATOMIC : 0);
	pinned = pin_search_path(false);
	id = reply_waited_for(fcinfo, "wait_for_reply", &timeout);
	wait_for_reply(fcinfo, id, from_now(timeout), true, false, &r, mcxt,
				   nonatomic ? &pinned : NULL);
	AtEOXact_GUC(true, pinned);
	SPI_finish();

	reply_columns(&r, values, nulls);
	PG_RETURN_DATUM(procedure_result(fcinfo, values, nulls));
}

/*
 * CALL asyncrr.wait_for_work(queue_name text, timeout interval, INOUT ready boolean)
 *
 * Sleeps, holding no snapshot (and, in autocommit, no lock: it commits
 * before each sleep), until a claim of the queue would take something
 * (ready true) or the timeout passes (false).  Claims nothing: the worker
 * claims next, and may find that another worker was first.  No SET clause
 * (a procedure with one cannot COMMIT): it pins its search_path.
 */
Datum
asyncrr_wait_for_work(PG_FUNCTION_ARGS)
{
	text	   *queue = PG_ARGISNULL(0) ? NULL : PG_GETARG_TEXT_PP(0);
	bool		nonatomic = nonatomic_call(fcinfo);
	Interval   *timeout;
	TimestampTz until;
	Datum		ready;
	bool		isnull = false;
	int			pinned;

	SPI_connect_ext(nonatomic ? SPI_OPT_NONATOMIC : 0);
	pinned = pin_search_path(false);
	asyncrr_check_claimable(queue);
	timeout = timeout_arg(fcinfo, 1);
	until = from_now(timeout);
	register_waiter(work_key(queue), "asyncrr.wait_for_work");
	for (;;)
	{
		bool		found;

		asyncrr_waiter_reset();
		found = asyncrr_queue_has_work(queue);
		release_snapshots(fcinfo);
		if (found || GetCurrentTimestamp() >= until)
		{
			ready = BoolGetDatum(found);
			break;
		}
		if (nonatomic)
			commit_before_sleep(&pinned, false);
		if (!asyncrr_waiter_sleep(until))
			asyncrr_waiter_stop();
	}
	release_slot();
	AtEOXact_GUC(true, pinned);
	SPI_finish();
	PG_RETURN_DATUM(procedure_result(fcinfo, &ready, &isnull));
}

/*
 * CALL asyncrr.call(queue_name text, payload jsonb, timeout interval,
 *                   INOUT correlation_id uuid, INOUT status text,
 *                   INOUT reply jsonb, INOUT error text)
 *
 * One round trip in one statement: submits to the call inbox, commits,
 * waits for the reply holding no snapshot, takes it and returns it.  At the
 * request's deadline it is timed out, as the worker would, and that is the
 * outcome returned.  Needs autocommit: it commits by itself.
 */
Datum
asyncrr_call(PG_FUNCTION_ARGS)
{
	MemoryContext mcxt = CurrentMemoryContext;
	pg_uuid_t  *id;
	AsyncrrReply r;
	Datum		values[4];
	bool		nulls[4];
	int			pinned;

	require_registry("asyncrr.call");
	if (!nonatomic_call(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("asyncrr.call cannot run inside a transaction block"),
				 errhint(IN_BLOCK_HINT)));
	asyncrr_require("requester", "call");

	SPI_connect_ext(SPI_OPT_NONATOMIC);
	pinned = pin_search_path(false);
	id = asyncrr_submit_call(PG_ARGISNULL(0) ? NULL : PG_GETARG_TEXT_PP(0),
							 PG_GETARG_DATUM(1), PG_ARGISNULL(1),
							 PG_ARGISNULL(2) ? NULL : PG_GETARG_INTERVAL_P(2),
							 PG_ARGISNULL(3) ? NULL : PG_GETARG_UUID_P(3));
	id = memcpy(MemoryContextAlloc(mcxt, sizeof(pg_uuid_t)), id, sizeof(pg_uuid_t));
	AtEOXact_GUC(true, pinned);
	SPI_commit();

	pinned = pin_search_path(true);
	asyncrr_check_waitable(id, true);
	wait_for_reply(fcinfo, id, 0, true, true, &r, mcxt, &pinned);
	AtEOXact_GUC(true, pinned);
	SPI_finish();

	values[0] = UUIDPGetDatum(id);
	nulls[0] = false;
	reply_columns(&r, &values[1], &nulls[1]);
	PG_RETURN_DATUM(procedure_result(fcinfo, values, nulls));
}

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

#include "access/xact.h"
#include "common/hashfn.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"
#include "utils/wait_event.h"

#include "asyncrr.h"

PG_FUNCTION_INFO_V1(asyncrr_wait_register_reply);
PG_FUNCTION_INFO_V1(asyncrr_wait_register_work);
PG_FUNCTION_INFO_V1(asyncrr_wait_reset);
PG_FUNCTION_INFO_V1(asyncrr_wait_sleep);
PG_FUNCTION_INFO_V1(asyncrr_wait_unregister);
PG_FUNCTION_INFO_V1(asyncrr_wake_work_at_commit);
PG_FUNCTION_INFO_V1(asyncrr_call_precheck);
PG_FUNCTION_INFO_V1(asyncrr_waiters);

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

/*
 * Keys to wake when the current transaction commits.  Past MAX_WAKE_KEYS
 * (a transaction that ends thousands of requests) every waiter is woken
 * instead, which keeps both the noting and the waking cheap.
 */
#define MAX_WAKE_KEYS 64
static uint32 wake_keys[MAX_WAKE_KEYS];
static int	n_wake_keys = 0;
static bool wake_everyone = false;
static bool callbacks_registered = false;

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

static void
wait_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_PREPARE:
			/* like NOTIFY: COMMIT PREPARED, elsewhere, could wake nobody */
			if (n_wake_keys > 0 || wake_everyone)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot PREPARE a transaction that has recorded asyncrr replies or made work claimable")));
			break;
		case XACT_EVENT_COMMIT:
			if (n_wake_keys > 0 || wake_everyone)
				wake_waiters();
			/* FALLTHROUGH */
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			n_wake_keys = 0;
			wake_everyone = false;
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

static void
wait_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					  SubTransactionId parentSubid, void *arg)
{
	/* an error caught inside a wait (PL/pgSQL EXCEPTION) ends the wait */
	if (event == SUBXACT_EVENT_ABORT_SUB)
		release_slot();
}

static void
ensure_callbacks(void)
{
	if (!callbacks_registered)
	{
		RegisterXactCallback(wait_xact_callback, NULL);
		RegisterSubXactCallback(wait_subxact_callback, NULL);
		before_shmem_exit(wait_before_shmem_exit, (Datum) 0);
		callbacks_registered = true;
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
	ensure_callbacks();
}

/* Notes a key whose waiters this transaction's commit must wake. */
static void
wake_at_commit(uint32 key)
{
	if (registry == NULL)
		return;					/* not preloaded: nobody can be waiting */
	ensure_callbacks();

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

/*
 * Sleeps until the latch is set or "until" passes (at most POLL_MS when the
 * registry had no slot for us).  Responds to query cancel and
 * statement_timeout, and ends with the postmaster.
 */
void
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
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 ms, PG_WAIT_EXTENSION);
	CHECK_FOR_INTERRUPTS();
}

/* asyncrr._wait_sleep(until timestamptz) RETURNS void */
Datum
asyncrr_wait_sleep(PG_FUNCTION_ARGS)
{
	asyncrr_waiter_sleep(PG_GETARG_TIMESTAMPTZ(0));
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
				 errhint("Use asyncrr.submit() and asyncrr.wait() instead.")));
	PG_RETURN_VOID();
}

/*
 * asyncrr._waiters() RETURNS TABLE(pid integer, waits_for text)
 *
 * The backends in the registry now; none when not preloaded.
 */
Datum
asyncrr_waiters(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	if (registry == NULL)
		return (Datum) 0;

	LWLockAcquire(registry->lock, LW_SHARED);
	for (int i = 0; i < registry->nslots; i++)
	{
		WaiterSlot *slot = &registry->slots[i];
		Datum		values[2];
		bool		nulls[2] = {false, false};

		if (slot->procno < 0)
			continue;
		values[0] = Int32GetDatum(GetPGProcByNumber(slot->procno)->pid);
		values[1] = CStringGetTextDatum((slot->key & 1) ? "reply" : "work");
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	LWLockRelease(registry->lock);
	return (Datum) 0;
}

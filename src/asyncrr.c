/*-------------------------------------------------------------------------
 *
 * asyncrr.c
 *	  Module load: settings, shared memory hooks and the background worker.
 *
 * asyncrr works when loaded on demand (CREATE EXTENSION and every SQL
 * function), but only shared_preload_libraries gives it its background
 * worker, which ends timed-out requests and expired leases, and the
 * shared memory through which commits wake that worker.
 *
 * Here too is the one transaction callback, which calls each module's part
 * in a stated order, and the one PREPARE policy.
 *
 * src/asyncrr.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "fmgr.h"
#include "miscadmin.h"
#include "postmaster/postmaster.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "asyncrr.h"

PG_MODULE_MAGIC;

int			asyncrr_max_payload_bytes = 1024 * 1024;
int			asyncrr_retention = 3600;
int			asyncrr_dead_letter_retention = 7 * 24 * 3600;
int			asyncrr_orphan_grace = 30;
int			asyncrr_precision = 1000;
int			asyncrr_batch_size = 1000;
char	   *asyncrr_database = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

void		_PG_init(void);

static void
request_shmem(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	asyncrr_worker_shmem_request();
	asyncrr_wait_shmem_request();
	asyncrr_notify_shmem_request();
}

static void
startup_shmem(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	asyncrr_worker_shmem_startup();
	asyncrr_wait_shmem_startup();
	asyncrr_notify_shmem_startup();
	LWLockRelease(AddinShmemInitLock);
}

static void
define_settings(void)
{
	DefineCustomIntVariable("asyncrr.max_payload_bytes",
							"Largest payload, headers or reply a request may carry.",
							NULL,
							&asyncrr_max_payload_bytes,
							1024 * 1024, 1, MaxAllocSize / 2,
							PGC_SIGHUP, GUC_UNIT_BYTE,
							NULL, NULL, NULL);

	DefineCustomIntVariable("asyncrr.retention",
							"How long ended requests and taken replies stay visible to asyncrr.status().",
							"The background worker removes them after this time.",
							&asyncrr_retention,
							3600, 1, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("asyncrr.dead_letter_retention",
							"How long dead letters are kept unless purged or redriven.",
							NULL,
							&asyncrr_dead_letter_retention,
							7 * 24 * 3600, 1, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("asyncrr.orphan_grace",
							"How long replies wait in the session inbox of a session that has ended before they are dead-lettered.",
							NULL,
							&asyncrr_orphan_grace,
							30, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("asyncrr.precision",
							"How far after its deadline a request may be timed out; the background worker batches wake-ups to this grain.",
							NULL,
							&asyncrr_precision,
							1000, 10, 60 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("asyncrr.batch_size",
							"How many requests the background worker handles in one transaction.",
							NULL,
							&asyncrr_batch_size,
							1000, 1, 1000000,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("asyncrr.lazy_commit",
							 "Lets a claim, or a take of replies from a session inbox, commit without waiting for the WAL flush when nothing else in its transaction wrote.",
							 "Losing such a commit in a crash is harmless: the request is claimed again, the session inbox is gone. See src/commit.c.",
							 &asyncrr_lazy_commit,
							 true,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);

	DefineCustomBoolVariable("asyncrr.notify_dispatch",
							 "Hands the notifications of replies to the asyncrr dispatcher, which sends them after commit.",
							 "Off: the committing transaction sends them itself, holding PostgreSQL's NOTIFY lock through its WAL flush.",
							 &asyncrr_notify_dispatch,
							 true,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);

	/*
	 * Settings fixed at server start: only a preloaded library may define
	 * them.
	 */
	if (process_shared_preload_libraries_in_progress)
	{
		DefineCustomIntVariable("asyncrr.max_waiters",
								"How many backends can wait at once in asyncrr.wait, CALL asyncrr.call and claims with wait.",
								"Waiters beyond this poll every 10 ms instead. Defaults to max_connections.",
								&asyncrr_max_waiters,
								MaxConnections, 1, MAX_BACKENDS,
								PGC_POSTMASTER, 0,
								NULL, NULL, NULL);
		DefineCustomStringVariable("asyncrr.database",
								   "Database in which the asyncrr background worker runs.",
								   NULL,
								   &asyncrr_database,
								   "postgres",
								   PGC_POSTMASTER, 0,
								   NULL, NULL, NULL);
	}

	MarkGUCPrefixReserved("asyncrr");
}

/* Did this transaction change asyncrr requests? */
static bool xact_changed = false;

/*
 * Called by whatever notes a commit-time effect of a change to requests:
 * a reply to notify (notify.c), waiters to wake (wait.c), a deadline for
 * the worker (worker.c).  Preloaded or not, the same transactions count.
 */
void
asyncrr_xact_changed(void)
{
	xact_changed = true;
}

/*
 * The one transaction callback.  A transaction that changed requests
 * cannot be prepared: what asyncrr does at commit (notify requesters, wake
 * waiters and the worker) COMMIT PREPARED, later and perhaps in another
 * session, could not do; NOTIFY has the same rule.  At PRE_COMMIT and
 * COMMIT the modules act in this order:
 *   1. notify.c: reserve dispatcher slots or queue the NOTIFYs, which
 *      PreCommit_Notify sends right after; at COMMIT, hand them over;
 *   2. wait.c: at COMMIT, once the changes are visible, wake the waiters;
 *   3. worker.c: at COMMIT, wake the worker for an earlier deadline;
 *   4. commit.c: last at PRE_COMMIT, once nothing else will write, decide
 *      whether this commit may skip the WAL flush.
 * Each resets its state at the end of the transaction, however it ends.
 */
static void
xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_PRE_PREPARE && xact_changed)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot PREPARE a transaction that has changed asyncrr requests"),
				 errdetail("asyncrr notifies requesters and wakes waiters when such a transaction commits, which COMMIT PREPARED could not do.")));
	asyncrr_notify_xact_callback(event);
	asyncrr_wait_xact_callback(event);
	asyncrr_worker_xact_callback(event);
	asyncrr_commit_xact_callback(event);
	if (event != XACT_EVENT_PRE_COMMIT && event != XACT_EVENT_PARALLEL_PRE_COMMIT &&
		event != XACT_EVENT_PRE_PREPARE)
		xact_changed = false;
}

/* A subtransaction's end: the notifications and waits made in it. */
static void
subxact_callback(SubXactEvent event, SubTransactionId mySubid,
				 SubTransactionId parentSubid, void *arg)
{
	asyncrr_notify_subxact_callback(event);
	asyncrr_wait_subxact_callback(event);
}

void
_PG_init(void)
{
	define_settings();
	RegisterXactCallback(xact_callback, NULL);
	RegisterSubXactCallback(subxact_callback, NULL);

	/* loaded on demand: the SQL functions work, but there is no worker */
	if (!process_shared_preload_libraries_in_progress)
		return;

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = request_shmem;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = startup_shmem;

	if (!IsBinaryUpgrade)
	{
		asyncrr_register_worker();
		asyncrr_register_dispatcher();
	}
}

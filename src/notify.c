/*-------------------------------------------------------------------------
 *
 * notify.c
 *	  How the news of a reply reaches its inbox: the one place that sends
 *	  notifications, and the dispatcher that sends them after commit.
 *
 * Every outcome of a request (complete, fail, cancel, timeout, dead letter)
 * goes through end_request() in request.c, which calls
 * asyncrr_notify_reply_at_commit() here.  That asks wait.c to set the latch
 * of any backend in asyncrr.wait() for this reply when the transaction
 * commits, and notes the notification: {"correlation_id": ..., "status":
 * ...} on channel asyncrr.<inbox>, never the reply body (replies can be
 * large and are taken with asyncrr.take_replies()).  The call inbox of
 * CALL asyncrr.call has no channel: its caller waits on its latch.
 *
 * A NOTIFY sent by the committing transaction itself takes a cluster-wide
 * lock in PreCommit_Notify and holds it through the commit's WAL flush, so
 * every transaction that notifies waits for the fsync of every other one:
 * with synchronous_commit on, completes could not share a WAL flush.  The
 * reply row is the durable record, not the notification; so when the
 * dispatcher runs, a committing transaction hands its notifications to it
 * through shared memory instead:
 *
 * - at PRE_COMMIT it reserves room for them in a ring (or, if it cannot,
 *   sends them as ordinary NOTIFYs of its own: never lost, only slower);
 * - at COMMIT, once its changes are visible, it writes them into the ring
 *   and sets the dispatcher's latch;
 * - the dispatcher (a background worker in asyncrr.database) sends what
 *   the ring holds as NOTIFYs in transactions of its own, which commit with
 *   synchronous_commit off, and only then frees those slots.
 *
 * So each reply is still notified once, on its owner's channel, after the
 * reply is visible.  A crash can lose a notification still in the ring;
 * it loses nothing else, since a crash also ends every listening session.
 * Notifications of a subtransaction that rolls back are dropped with it.
 * The dispatcher serves backends of its own database (NOTIFY is per
 * database); asyncrr.notify_dispatch = off makes a session send its own.
 *
 * src/notify.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/async.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "port/atomics.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/memutils.h"
#include "utils/uuid.h"
#include "utils/wait_event.h"

#include "asyncrr.h"

PG_FUNCTION_INFO_V1(asyncrr_channel);
PG_FUNCTION_INFO_V1(asyncrr_notify_reply);
PGDLLEXPORT void asyncrr_dispatcher_main(Datum main_arg);

/* Slots in the ring: about 0.8 MB of shared memory. */
#define RING_SLOTS 8192
/* Notifications the dispatcher sends in one transaction, at most. */
#define DISPATCH_BATCH 1000
/* Longest status ("dead_lettered"), with room to spare. */
#define STATUS_LEN 16

typedef struct Notice
{
	char		inbox[NAMEDATALEN];
	pg_uuid_t	id;
	char		status[STATUS_LEN];
} Notice;

typedef struct RingSlot
{
	pg_atomic_uint32 ready;		/* written and not yet sent */
	Notice		notice;
} RingSlot;

typedef struct NoticeRing
{
	slock_t		mutex;
	int			dispatcher_procno;	/* -1 while no dispatcher runs */
	Oid			database;		/* the dispatcher's */
	uint64		head;			/* next slot to write */
	uint64		tail;			/* next slot to send */
	uint64		reserved;		/* slots promised to committing backends */
	RingSlot	slots[RING_SLOTS];
} NoticeRing;

bool		asyncrr_notify_dispatch = true;

static NoticeRing *ring = NULL;

/* backend side: this transaction's notifications, with their subxact level */
typedef struct PendingNotice
{
	Notice		notice;
	int			level;
} PendingNotice;

static PendingNotice *pending = NULL;
static int	n_pending = 0;
static int	max_pending = 0;
static int	n_reserved = 0;		/* ring slots this transaction reserved */

/* ----------------------------------------------------------------
 * Shared memory
 * ----------------------------------------------------------------
 */
void
asyncrr_notify_shmem_request(void)
{
	RequestAddinShmemSpace(sizeof(NoticeRing));
}

void
asyncrr_notify_shmem_startup(void)
{
	bool		found;

	ring = ShmemInitStruct("asyncrr notice ring", sizeof(NoticeRing), &found);
	if (!found)
	{
		SpinLockInit(&ring->mutex);
		ring->dispatcher_procno = -1;
		ring->database = InvalidOid;
		ring->head = ring->tail = ring->reserved = 0;
		for (int i = 0; i < RING_SLOTS; i++)
			pg_atomic_init_u32(&ring->slots[i].ready, 0);
	}
}

/* ----------------------------------------------------------------
 * Sending
 * ----------------------------------------------------------------
 */

/* The channel of an inbox: "asyncrr." followed by the inbox name. */
static char *
inbox_channel(const char *inbox_name)
{
	return psprintf("%s%s", ASYNCRR_CHANNEL_PREFIX, inbox_name);
}

/* asyncrr._channel(inbox_name text) RETURNS text */
Datum
asyncrr_channel(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(inbox_channel(text_to_cstring(PG_GETARG_TEXT_PP(0)))));
}

/* Queues one notification as an ordinary NOTIFY of the current transaction. */
static void
send_notice(Notice *n)
{
	StringInfoData payload;

	initStringInfo(&payload);
	appendStringInfoString(&payload, "{\"correlation_id\": \"");
	appendStringInfoString(&payload,
						   DatumGetCString(DirectFunctionCall1(uuid_out,
															   UUIDPGetDatum(&n->id))));
	appendStringInfoString(&payload, "\", \"status\": ");
	escape_json(&payload, n->status);
	appendStringInfoChar(&payload, '}');
	Async_Notify(inbox_channel(n->inbox), payload.data);
	pfree(payload.data);
}

/* Can this backend hand notifications to the dispatcher? */
static bool
dispatcher_serves_us(void)
{
	bool		serves;

	if (ring == NULL || !asyncrr_notify_dispatch)
		return false;
	SpinLockAcquire(&ring->mutex);
	serves = ring->dispatcher_procno >= 0 && ring->database == MyDatabaseId;
	SpinLockRelease(&ring->mutex);
	return serves;
}

/* Reserves n slots; false if the ring is too full. */
static bool
reserve_slots(int n)
{
	bool		ok;

	SpinLockAcquire(&ring->mutex);
	ok = ring->head - ring->tail + ring->reserved + n <= RING_SLOTS;
	if (ok)
		ring->reserved += n;
	SpinLockRelease(&ring->mutex);
	return ok;
}

static void
unreserve_slots(void)
{
	if (n_reserved == 0)
		return;
	SpinLockAcquire(&ring->mutex);
	ring->reserved -= n_reserved;
	SpinLockRelease(&ring->mutex);
	n_reserved = 0;
}

/*
 * At COMMIT: writes the reserved notifications into the ring and wakes the
 * dispatcher.  Cannot fail: the room was reserved at PRE_COMMIT.
 */
static void
hand_to_dispatcher(void)
{
	uint64		first;
	int			procno;

	SpinLockAcquire(&ring->mutex);
	first = ring->head;
	ring->head += n_reserved;
	ring->reserved -= n_reserved;
	procno = ring->dispatcher_procno;
	SpinLockRelease(&ring->mutex);

	for (int i = 0; i < n_reserved; i++)
	{
		RingSlot   *slot = &ring->slots[(first + i) % RING_SLOTS];

		slot->notice = pending[i].notice;
		pg_write_barrier();
		pg_atomic_write_u32(&slot->ready, 1);
	}
	n_reserved = 0;
	/* a dispatcher that exits meanwhile drains the ring when it restarts */
	if (procno >= 0)
		SetLatch(&GetPGProcByNumber(procno)->procLatch);
}

/* The transaction callback's part here (asyncrr.c calls it first). */
void
asyncrr_notify_xact_callback(XactEvent event)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			if (n_pending == 0)
				break;
			if (dispatcher_serves_us() && reserve_slots(n_pending))
				n_reserved = n_pending;
			else
			{
				/* PreCommit_Notify, which comes next, sends these */
				for (int i = 0; i < n_pending; i++)
					send_notice(&pending[i].notice);
			}
			break;
		case XACT_EVENT_COMMIT:
			if (n_reserved > 0)
				hand_to_dispatcher();
			n_pending = 0;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			unreserve_slots();
			n_pending = 0;
			break;
		default:
			break;
	}
}

void
asyncrr_notify_subxact_callback(SubXactEvent event)
{
	int			level = GetCurrentTransactionNestLevel();

	if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		/* a rolled-back outcome is notified to nobody */
		while (n_pending > 0 && pending[n_pending - 1].level >= level)
			n_pending--;
	}
	else if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		for (int i = n_pending - 1; i >= 0 && pending[i].level >= level; i--)
			pending[i].level = level - 1;
	}
}

/* Notes a notification to send once the transaction commits. */
static void
notify_at_commit(const char *inbox, pg_uuid_t *id, const char *status)
{
	PendingNotice *p;

	if (strlen(inbox) >= NAMEDATALEN || strlen(status) >= STATUS_LEN)
		elog(ERROR, "asyncrr: inbox name \"%s\" or status \"%s\" too long", inbox, status);

	if (n_pending == max_pending)
	{
		max_pending = Max(16, max_pending * 2);
		pending = pending == NULL ?
			MemoryContextAlloc(TopMemoryContext, max_pending * sizeof(PendingNotice)) :
			repalloc(pending, max_pending * sizeof(PendingNotice));
	}
	p = &pending[n_pending++];
	strlcpy(p->notice.inbox, inbox, NAMEDATALEN);
	p->notice.id = *id;
	strlcpy(p->notice.status, status, STATUS_LEN);
	p->level = GetCurrentTransactionNestLevel();
}

/*
 * Notes the one notification of a reply, sent once the transaction commits
 * (request.c's end_with, the one place requests end, calls this); and
 * wakes the waiters of this reply at that commit.
 */
void
asyncrr_notify_reply_at_commit(text *inbox_name, pg_uuid_t *id, const char *status)
{
	char	   *inbox = text_to_cstring(inbox_name);

	asyncrr_xact_changed();
	asyncrr_wake_reply_at_commit(id);
	/* a CALL asyncrr.call waits on its latch and has no channel */
	if (strcmp(inbox, ASYNCRR_CALL_INBOX) == 0)
		return;
	notify_at_commit(inbox, id, status);
}

/*
 * Notes the notification of a progress report (status "progress"), at most
 * one per request per transaction; nobody waiting for the reply is woken,
 * since there is none yet.  (A notification already noted is at this
 * level or an outer one, the levels of those noted never decreasing: it
 * is sent, or dropped, with this report.)
 */
void
asyncrr_notify_progress_at_commit(text *inbox_name, pg_uuid_t *id)
{
	char	   *inbox = text_to_cstring(inbox_name);

	asyncrr_xact_changed();
	if (strcmp(inbox, ASYNCRR_CALL_INBOX) == 0)
		return;
	for (int i = 0; i < n_pending; i++)
		if (memcmp(pending[i].notice.id.data, id->data, UUID_LEN) == 0 &&
			strcmp(pending[i].notice.status, "progress") == 0)
			return;
	notify_at_commit(inbox, id, "progress");
}

/*
 * asyncrr._notify_reply(inbox_name text, correlation_id uuid, status text)
 *
 * The SQL entry of the above, kept for the 0.1 scripts.
 */
Datum
asyncrr_notify_reply(PG_FUNCTION_ARGS)
{
	asyncrr_notify_reply_at_commit(PG_GETARG_TEXT_PP(0), PG_GETARG_UUID_P(1),
								   text_to_cstring(PG_GETARG_TEXT_PP(2)));
	PG_RETURN_VOID();
}

/*
 * The dispatcher's backlog, for asyncrr.metrics: notifications written
 * into the ring and not yet sent (those being sent count until their
 * transaction has committed).  False if asyncrr is not preloaded.
 */
bool
asyncrr_dispatcher_backlog(uint64 *n)
{
	if (ring == NULL)
		return false;
	SpinLockAcquire(&ring->mutex);
	*n = ring->head - ring->tail;
	SpinLockRelease(&ring->mutex);
	return true;
}

/* ----------------------------------------------------------------
 * The dispatcher
 * ----------------------------------------------------------------
 */
void
asyncrr_register_dispatcher(void)
{
	asyncrr_register_bgworker("asyncrr dispatcher", "asyncrr_dispatcher_main");
}

static void
dispatcher_detach(int code, Datum arg)
{
	SpinLockAcquire(&ring->mutex);
	ring->dispatcher_procno = -1;
	ring->database = InvalidOid;
	SpinLockRelease(&ring->mutex);
}

/*
 * Sends the ready notifications at the tail of the ring, in one transaction
 * that commits without waiting for the WAL flush, and frees their slots
 * after the commit: an error leaves them to be sent on the next round.
 * Returns how many it sent.
 */
static int
dispatch_batch(void)
{
	uint64		tail;
	int			n = 0;

	SpinLockAcquire(&ring->mutex);
	tail = ring->tail;
	SpinLockRelease(&ring->mutex);

	while (n < DISPATCH_BATCH &&
		   pg_atomic_read_u32(&ring->slots[(tail + n) % RING_SLOTS].ready) == 1)
		n++;
	if (n == 0)
		return 0;
	pg_read_barrier();

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	pgstat_report_activity(STATE_RUNNING, "asyncrr: sending notifications");
	for (int i = 0; i < n; i++)
		send_notice(&ring->slots[(tail + i) % RING_SLOTS].notice);
	CommitTransactionCommand();

	for (int i = 0; i < n; i++)
		pg_atomic_write_u32(&ring->slots[(tail + i) % RING_SLOTS].ready, 0);
	SpinLockAcquire(&ring->mutex);
	ring->tail += n;
	SpinLockRelease(&ring->mutex);

	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
	return n;
}

void
asyncrr_dispatcher_main(Datum main_arg)
{
	asyncrr_bgworker_connect("asyncrr dispatcher");
	/* losing one of these commits loses a notification, never a reply */
	SetConfigOption("synchronous_commit", "off", PGC_SUSET, PGC_S_OVERRIDE);

	SpinLockAcquire(&ring->mutex);
	ring->dispatcher_procno = ASYNCRR_MY_PROCNO;
	ring->database = MyDatabaseId;
	SpinLockRelease(&ring->mutex);
	before_shmem_exit(dispatcher_detach, (Datum) 0);

	for (;;)
	{
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		if (dispatch_batch() > 0)
			continue;

		/*
		 * Nothing ready.  A slot being written right now sets our latch when
		 * it is ready; the timeout is only a safety net.
		 */
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 1000L, PG_WAIT_EXTENSION);
	}
}

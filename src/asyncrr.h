/*-------------------------------------------------------------------------
 *
 * asyncrr.h
 *	  Declarations shared by the asyncrr source files: settings and the
 *	  entry points each file offers the others.
 *
 * src/asyncrr.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef ASYNCRR_H
#define ASYNCRR_H

#include "postgres.h"

#include "access/xact.h"
#include "datatype/timestamp.h"
#include "executor/spi.h"
#include "storage/proc.h"
#include "utils/uuid.h"

/* This backend's PGPROC number (PostgreSQL 17 renamed it). */
#if PG_VERSION_NUM >= 170000
#define ASYNCRR_MY_PROCNO MyProcNumber
#else
#define ASYNCRR_MY_PROCNO (MyProc->pgprocno)
#endif

/* Longest queue or durable inbox name, in bytes. */
#define ASYNCRR_NAME_MAX 48

/* Prefix of every inbox's LISTEN/NOTIFY channel. */
#define ASYNCRR_CHANNEL_PREFIX "asyncrr."

/* Settings (asyncrr.c) */
extern int	asyncrr_max_payload_bytes;
extern int	asyncrr_retention;
extern int	asyncrr_dead_letter_retention;
extern int	asyncrr_orphan_grace;
extern int	asyncrr_precision;
extern int	asyncrr_batch_size;
extern char *asyncrr_database;

/*
 * The queue name of a scatter's gather (request.c): not a valid queue name
 * (check.c), so no queue has it and no claim takes a gather.
 */
#define ASYNCRR_SCATTER_QUEUE "(scatter)"

/* Inbox of the requests of CALL asyncrr.call: no channel, no inbox row. */
#define ASYNCRR_CALL_INBOX "_call"

/* Longest ordering key, in bytes. */
#define ASYNCRR_ORDERING_KEY_MAX 200

/* Longest worker name a claim records, in bytes. */
#define ASYNCRR_WORKER_NAME_MAX 200

/* request.c: what the waits of wait.c do to a request */
typedef enum AsyncrrTake
{
	ASYNCRR_TAKE_TAKEN,			/* it had a reply: taken now, into *r */
	ASYNCRR_TAKE_LIVE			/* it is still live: its state in *r */
} AsyncrrTake;

typedef struct AsyncrrReply
{
	pg_uuid_t	id;
	char	   *state;
	Datum		reply;
	bool		reply_isnull;
	Datum		error;
	bool		error_isnull;
	Datum		finished_at;
	bool		finished_isnull;
	TimestampTz deadline;
} AsyncrrReply;

extern void asyncrr_lock_queue(text *name, bool exclusive);
extern AsyncrrTake asyncrr_take_reply(pg_uuid_t *id, AsyncrrReply *r, MemoryContext mcxt);
extern void asyncrr_check_waitable(pg_uuid_t *id, bool call);
extern pg_uuid_t *asyncrr_submit_call(text *queue, Datum payload, bool payload_isnull,
									  Interval *timeout, pg_uuid_t *given);
extern void asyncrr_time_out(pg_uuid_t *id);
extern bool asyncrr_cancel_call(pg_uuid_t *id);
extern void asyncrr_check_claimable(text *queue);
extern bool asyncrr_queue_has_work(text *queue);

/* plan.c: a statement the C functions run, prepared on first use */
#define ASYNCRR_PLAN_MAX_ARGS 14
typedef struct AsyncrrPlan
{
	const char *sql;
	int			nargs;
	Oid			argtypes[ASYNCRR_PLAN_MAX_ARGS];
	SPIPlanPtr	plan;			/* NULL until first used */
	int			size_class;		/* of asyncrr.request when it was made */
	/* the same statement for a catalog not yet updated to 0.3, if it differs */
	struct AsyncrrPlan *before_0_3;
	/* read with the latest snapshot, not the transaction's (see plan.c) */
	bool		latest;
} AsyncrrPlan;

/* What a statement returned: n rows */
typedef struct AsyncrrRows
{
	uint64		n;
	SPITupleTable *table;
} AsyncrrRows;

extern AsyncrrRows *asyncrr_run(AsyncrrPlan *p, Datum *values, const char *nulls);
extern Datum asyncrr_value(AsyncrrRows *rows, uint64 row, int col, bool *isnull);
extern void asyncrr_done(AsyncrrRows *rows);

/* check.c */
extern void asyncrr_check_size_of(const char *what, Datum value);
extern void asyncrr_check_not_null(const char *what, bool isnull);
extern void asyncrr_check_positive(const char *what, Interval *value);
extern void asyncrr_check_not_negative(const char *what, Interval *value);

/* privilege.c */
typedef struct AsyncrrAsOwner
{
	Oid			userid;
	int			sec_context;
	Oid			acting_for;
} AsyncrrAsOwner;

extern void asyncrr_as_owner_begin(AsyncrrAsOwner *save);
extern void asyncrr_as_owner_end(AsyncrrAsOwner *save);
extern bool asyncrr_catalog_0_2(void);
extern Oid	asyncrr_queue_table(void);
extern Oid	asyncrr_caller(void);
extern const char *asyncrr_caller_name(void);
extern bool asyncrr_is_admin(void);
extern void asyncrr_require(const char *kind, const char *fn);
extern bool asyncrr_may(text *queue, const char *privilege);

/* inbox.c */
extern char *asyncrr_backend_id(void);
extern text *asyncrr_current_inbox_name(bool *durable);

/* asyncrr.c */
extern void asyncrr_xact_changed(void);

/* commit.c */
extern void asyncrr_commit_xact_callback(XactEvent event);
extern bool asyncrr_lazy_commit;
extern bool asyncrr_xact_unwritten(void);
extern void asyncrr_allow_lazy_commit(bool unwritten);

/* notify.c */
extern void asyncrr_notify_xact_callback(XactEvent event);
extern void asyncrr_notify_subxact_callback(SubXactEvent event);
extern bool asyncrr_notify_dispatch;
extern void asyncrr_notify_shmem_request(void);
extern void asyncrr_notify_shmem_startup(void);
extern void asyncrr_register_dispatcher(void);
extern void asyncrr_notify_reply_at_commit(text *inbox_name, pg_uuid_t *id,
										   const char *status);
extern void asyncrr_notify_progress_at_commit(text *inbox_name, pg_uuid_t *id);
extern bool asyncrr_dispatcher_backlog(uint64 *n);

/* worker.c */
typedef struct AsyncrrPass
{
	TimestampTz started;
	TimestampTz ended;
	TimestampTz due;			/* earliest deadline or lease end due at its
								 * start; DT_NOEND: none; DT_NOBEGIN: unknown */
} AsyncrrPass;

extern bool asyncrr_never_wait;
extern void asyncrr_worker_xact_callback(XactEvent event);
extern void asyncrr_register_bgworker(const char *name, const char *function);
extern void asyncrr_bgworker_connect(const char *name);
extern void asyncrr_register_worker(void);
extern void asyncrr_worker_shmem_request(void);
extern void asyncrr_worker_shmem_startup(void);
extern void asyncrr_note_deadline_at(TimestampTz at);
extern bool asyncrr_abandon_call(pg_uuid_t *id);
extern bool asyncrr_worker_last_pass(AsyncrrPass *pass);

/* wait.c */
extern void asyncrr_wait_xact_callback(XactEvent event);
extern void asyncrr_wait_subxact_callback(SubXactEvent event);
extern int	asyncrr_max_waiters;
extern void asyncrr_wait_shmem_request(void);
extern void asyncrr_wait_shmem_startup(void);
extern void asyncrr_wake_reply_at_commit(pg_uuid_t *id);
extern void asyncrr_wake_queue_at_commit(text *queue);
extern void asyncrr_waiter_register_work(text *queue);
extern void asyncrr_waiter_reset(void);
extern bool asyncrr_waiter_sleep(TimestampTz until);
extern void asyncrr_waiter_stop(void);
extern bool asyncrr_client_alive(void);
extern void asyncrr_waiter_release(void);

#endif							/* ASYNCRR_H */

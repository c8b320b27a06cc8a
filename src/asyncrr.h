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

#include "utils/uuid.h"

#include "storage/proc.h"

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

/* Inbox of the requests of CALL asyncrr.call: no channel, no inbox row. */
#define ASYNCRR_CALL_INBOX "_call"

/* worker.c */
extern void asyncrr_register_worker(void);
extern void asyncrr_worker_shmem_request(void);
extern void asyncrr_worker_shmem_startup(void);

/* wait.c */
extern int	asyncrr_max_waiters;
extern void asyncrr_wait_shmem_request(void);
extern void asyncrr_wait_shmem_startup(void);
extern void asyncrr_wake_reply_at_commit(pg_uuid_t *id);

#endif							/* ASYNCRR_H */

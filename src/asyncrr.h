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

/* worker.c */
extern void asyncrr_register_worker(void);
extern void asyncrr_shmem_request(void);
extern void asyncrr_shmem_startup(void);

#endif							/* ASYNCRR_H */

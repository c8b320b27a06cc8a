/*-------------------------------------------------------------------------
 *
 * metrics.c
 *	  What asyncrr.metrics needs from shared memory: the dispatcher's
 *	  backlog (notify.c) and the background worker's last completed pass
 *	  (worker.c), each read under its owner's lock.
 *
 * The view (asyncrr--0.3.sql) builds everything else from SQL: the queues'
 * counts from asyncrr.queue_stats, the waiters from asyncrr.list_waiters().
 * These facts are the worker's and the dispatcher's, which serve
 * asyncrr.database only, so they are given there and nowhere else (NULL
 * elsewhere, and when asyncrr is not preloaded).
 *
 * src/metrics.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "commands/dbcommands.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "asyncrr.h"

PG_FUNCTION_INFO_V1(asyncrr_background_stats);

/* Is this the database the worker and the dispatcher serve? */
static bool
in_asyncrr_database(void)
{
	return asyncrr_database != NULL &&
		get_database_oid(asyncrr_database, true) == MyDatabaseId;
}

/*
 * asyncrr.background_stats()
 *   RETURNS TABLE(dispatcher_backlog bigint, worker_pass_started timestamptz,
 *                 worker_pass_ended timestamptz, worker_lag interval)
 *
 * One row.  dispatcher_backlog: notifications handed to the dispatcher
 * and not yet sent.  The worker's last completed pass: when it started and
 * ended (NULL if none since the server started), and worker_lag, how long
 * after the earliest deadline or lease end the worker had found due it
 * started (0 if none had come; NULL for the first pass after the server
 * started, when the worker knew of none yet).
 */
Datum
asyncrr_background_stats(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Datum		values[4] = {0};
	bool		nulls[4] = {true, true, true, true};

	InitMaterializedSRF(fcinfo, 0);
	if (in_asyncrr_database())
	{
		uint64		backlog;
		AsyncrrPass pass;

		if (asyncrr_dispatcher_backlog(&backlog))
		{
			values[0] = Int64GetDatum((int64) backlog);
			nulls[0] = false;
		}
		if (asyncrr_worker_last_pass(&pass))
		{
			values[1] = TimestampTzGetDatum(pass.started);
			values[2] = TimestampTzGetDatum(pass.ended);
			nulls[1] = nulls[2] = false;
			if (pass.due != DT_NOBEGIN)
			{
				Interval   *lag = palloc0(sizeof(Interval));

				if (pass.due != DT_NOEND && pass.due < pass.started)
					lag->time = pass.started - pass.due;
				values[3] = IntervalPGetDatum(lag);
				nulls[3] = false;
			}
		}
	}
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	return (Datum) 0;
}

/*-------------------------------------------------------------------------
 *
 * inbox.c
 *	  What an inbox needs from the backend itself: the identity of this
 *	  session (PID and start time, so a reused PID is never mistaken for
 *	  the old holder) and LISTEN/UNLISTEN on the inbox's channel on the
 *	  caller's behalf.
 *
 * Which session holds which inbox is recorded in asyncrr.inbox; the SQL
 * functions in asyncrr--*.sql decide ownership and takeover.
 *
 * src/inbox.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "commands/async.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "asyncrr.h"

PG_FUNCTION_INFO_V1(asyncrr_backend_start);
PG_FUNCTION_INFO_V1(asyncrr_listen);
PG_FUNCTION_INFO_V1(asyncrr_unlisten);

/*
 * asyncrr._backend_start() RETURNS timestamptz
 *
 * The start time of this backend; equal to pg_stat_activity.backend_start.
 */
Datum
asyncrr_backend_start(PG_FUNCTION_ARGS)
{
	PG_RETURN_TIMESTAMPTZ(MyStartTimestamp);
}

/*
 * asyncrr._listen(channel text) / asyncrr._unlisten(channel text)
 *
 * Like LISTEN and UNLISTEN, these take effect when the transaction commits.
 */
Datum
asyncrr_listen(PG_FUNCTION_ARGS)
{
	Async_Listen(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	PG_RETURN_VOID();
}

Datum
asyncrr_unlisten(PG_FUNCTION_ARGS)
{
	Async_Unlisten(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	PG_RETURN_VOID();
}

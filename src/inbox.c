/*-------------------------------------------------------------------------
 *
 * inbox.c
 *	  What an inbox needs from the backend itself: the identity of this
 *	  session (PID and start time, so a reused PID is never mistaken for
 *	  the old holder), the inbox it holds, and LISTEN/UNLISTEN on the
 *	  inbox's channel on the caller's behalf.
 *
 * Which session holds which inbox is recorded in asyncrr.inbox; the SQL
 * functions in asyncrr--*.sql decide ownership and takeover.
 *
 * src/inbox.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/async.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "asyncrr.h"

PG_FUNCTION_INFO_V1(asyncrr_backend_start);
PG_FUNCTION_INFO_V1(asyncrr_listen);
PG_FUNCTION_INFO_V1(asyncrr_unlisten);
PG_FUNCTION_INFO_V1(asyncrr_backend_id_sql);
PG_FUNCTION_INFO_V1(asyncrr_current_inbox_sql);
PG_FUNCTION_INFO_V1(asyncrr_session_inbox_name);

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

/*
 * This backend, as recorded on the requests it claims (fencing, see
 * asyncrr.complete): "<pid>.<start time in microseconds since 1970, hex>".
 */
char *
asyncrr_backend_id(void)
{
	int64		start_us = MyStartTimestamp +
		(int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY;

	return psprintf("%d.%llx", MyProcPid, (unsigned long long) start_us);
}

/* asyncrr._backend_id() RETURNS text */
Datum
asyncrr_backend_id_sql(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(asyncrr_backend_id()));
}

/*
 * The row of the inbox this session holds now, or NULL.  The caller is
 * connected to SPI; the datum lives in SPI's memory.
 */
static AsyncrrPlan current_inbox_plan = {
	"SELECT i FROM asyncrr.inbox i WHERE i.holder_pid = $1 AND i.holder_started = $2",
	2, {INT4OID, TIMESTAMPTZOID}
};

static Datum
current_inbox(bool *isnull)
{
	Datum		args[2] = {Int32GetDatum(MyProcPid), TimestampTzGetDatum(MyStartTimestamp)};
	AsyncrrRows *inbox = asyncrr_run(&current_inbox_plan, args, NULL);

	if (inbox->n == 0)
	{
		*isnull = true;
		return (Datum) 0;
	}
	return asyncrr_value(inbox, 0, 1, isnull);
}

/*
 * The name of the inbox this session holds now for the caller, or NULL
 * (SPI memory); and whether it is durable, if asked.  An inbox is its
 * owner's: code that acts for another role in this session (SET ROLE, a
 * SECURITY DEFINER function) neither submits into it nor takes from it.
 * (A session still holds one inbox at a time: that role cannot open
 * another here.)
 */
text *
asyncrr_current_inbox_name(bool *durable)
{
	bool		isnull;
	Datum		row = current_inbox(&isnull);
	HeapTupleHeader inbox;

	if (isnull)
		return NULL;
	inbox = DatumGetHeapTupleHeader(row);
	if (strcmp(NameStr(*DatumGetName(GetAttributeByName(inbox, "owner_role", &isnull))),
			   asyncrr_caller_name()) != 0)
		return NULL;
	if (durable != NULL)
		*durable = DatumGetBool(GetAttributeByName(inbox, "durable", &isnull));
	return DatumGetTextPP(GetAttributeByName(inbox, "inbox_name", &isnull));
}

/* asyncrr._current_inbox() RETURNS asyncrr.inbox */
Datum
asyncrr_current_inbox_sql(PG_FUNCTION_ARGS)
{
	bool		isnull;
	Datum		row;

	SPI_connect();
	row = current_inbox(&isnull);
	if (!isnull)
		row = SPI_datumTransfer(row, false, -1);
	SPI_finish();
	if (isnull)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(row);
}

/*
 * asyncrr._session_inbox_name() RETURNS text
 *
 * The name of this session's session inbox, and so of its channel:
 * "_session_" and 64 random bits, drawn once per backend.  Nothing about
 * the backend is in it: a channel name that could be guessed (from the PID
 * and start time in pg_stat_activity, as in 0.2) could be LISTENed on by
 * anyone.  It starts with "_", which no durable inbox name may.
 */
Datum
asyncrr_session_inbox_name(PG_FUNCTION_ARGS)
{
	static char name[32] = "";

	if (name[0] == '\0')
	{
		uint64		bits;

		if (!pg_strong_random(&bits, sizeof(bits)))
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not generate random values")));
		snprintf(name, sizeof(name), "_session_%016llx", (unsigned long long) bits);
	}
	PG_RETURN_TEXT_P(cstring_to_text(name));
}

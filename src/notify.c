/*-------------------------------------------------------------------------
 *
 * notify.c
 *	  How the news of a reply reaches its inbox: the one place that sends
 *	  notifications.
 *
 * Every outcome of a request (complete, fail, cancel, timeout, dead letter)
 * goes through end_request() in request.c, which calls
 * asyncrr_notify_reply_at_commit() here, so a faster
 * delivery path can replace the body of notify_reply() without touching
 * any caller.  Today it queues an ordinary NOTIFY, which PostgreSQL
 * delivers only when the transaction that recorded the reply commits, and
 * asks wait.c to set the latch of any backend in asyncrr.wait() for this
 * reply at that commit: nobody is woken before the reply is visible.
 *
 * The payload is a small JSON object, {"correlation_id": ..., "status": ...},
 * never the reply body: replies can be large and are taken with
 * asyncrr.take_replies().
 *
 * src/notify.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "commands/async.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/uuid.h"

#include "asyncrr.h"

PG_FUNCTION_INFO_V1(asyncrr_channel);
PG_FUNCTION_INFO_V1(asyncrr_notify_reply);

/* The channel of an inbox: "asyncrr." followed by the inbox name. */
static char *
inbox_channel(text *inbox_name)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoString(&buf, ASYNCRR_CHANNEL_PREFIX);
	appendBinaryStringInfo(&buf, VARDATA_ANY(inbox_name),
						   VARSIZE_ANY_EXHDR(inbox_name));
	return buf.data;
}

/* asyncrr._channel(inbox_name text) RETURNS text */
Datum
asyncrr_channel(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(inbox_channel(PG_GETARG_TEXT_PP(0))));
}

/*
 * Queues the one notification of a reply on its inbox's channel
 * (request.c's end_request, the one place requests end, calls this).
 */
void
asyncrr_notify_reply_at_commit(text *inbox_name, pg_uuid_t *id, const char *status)
{
	char	   *channel = inbox_channel(inbox_name);
	StringInfoData payload;

	initStringInfo(&payload);
	appendStringInfoString(&payload, "{\"correlation_id\": \"");
	appendStringInfoString(&payload,
						   DatumGetCString(DirectFunctionCall1(uuid_out,
															   UUIDPGetDatum(id))));
	appendStringInfoString(&payload, "\", \"status\": ");
	escape_json(&payload, status);
	appendStringInfoChar(&payload, '}');

	/* a CALL asyncrr.call waits on its latch and has no channel */
	if (strcmp(channel, ASYNCRR_CHANNEL_PREFIX ASYNCRR_CALL_INBOX) != 0)
		Async_Notify(channel, payload.data);
	asyncrr_wake_reply_at_commit(id);
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

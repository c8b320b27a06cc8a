/*-------------------------------------------------------------------------
 *
 * check.c
 *	  Validation of user input that the SQL and C functions share: queue
 *	  and inbox names, the size limit on payloads, headers and replies,
 *	  required arguments and intervals in range.
 *
 * Names are checked against an allow-list here, in one place, so that no
 * name a user typed is ever quoted into SQL or a channel name unchecked.
 *
 * src/check.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/detoast.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "asyncrr.h"

PG_FUNCTION_INFO_V1(asyncrr_check_name);
PG_FUNCTION_INFO_V1(asyncrr_check_size);
PG_FUNCTION_INFO_V1(asyncrr_check_not_null_sql);
PG_FUNCTION_INFO_V1(asyncrr_check_positive_sql);
PG_FUNCTION_INFO_V1(asyncrr_check_not_negative_sql);

static bool
name_is_valid(const char *name, int len)
{
	if (len < 1 || len > ASYNCRR_NAME_MAX)
		return false;
	for (int i = 0; i < len; i++)
	{
		char		c = name[i];
		bool		alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			(c >= '0' && c <= '9');

		if (alnum)
			continue;
		if (i > 0 && (c == '_' || c == '.' || c == '-'))
			continue;
		return false;
	}
	return true;
}

/*
 * asyncrr._check_name(kind text, name text) RETURNS void
 *
 * kind is "queue" or "inbox"; it only shapes the message.
 */
Datum
asyncrr_check_name(PG_FUNCTION_ARGS)
{
	char	   *kind;
	text	   *name;

	if (PG_ARGISNULL(0))
		elog(ERROR, "asyncrr._check_name: kind must not be null");
	kind = text_to_cstring(PG_GETARG_TEXT_PP(0));

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s name must not be null", kind)));

	name = PG_GETARG_TEXT_PP(1);
	if (!name_is_valid(VARDATA_ANY(name), VARSIZE_ANY_EXHDR(name)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid %s name \"%s\"", kind, text_to_cstring(name)),
				 errdetail("%c%s names have 1 to %d letters, digits, \"_\", \".\" or \"-\", and start with a letter or digit.",
						   pg_toupper((unsigned char) kind[0]), kind + 1,
						   ASYNCRR_NAME_MAX)));
	PG_RETURN_VOID();
}

/*
 * asyncrr._check_size(what text, value jsonb) RETURNS void
 * asyncrr._check_size(what text, value text) RETURNS void
 *
 * Refuses a value larger than asyncrr.max_payload_bytes: payloads,
 * headers, replies, and fail()'s error texts.  The size is the
 * stored (uncompressed) size of the jsonb value, found without detoasting.
 */
void
asyncrr_check_size_of(const char *what, Datum value)
{
	Size		size = toast_raw_datum_size(value) - VARHDRSZ;

	if (size > (Size) asyncrr_max_payload_bytes)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("%s too large: %zu bytes", what, size),
				 errdetail("asyncrr.max_payload_bytes allows %d bytes.",
						   asyncrr_max_payload_bytes),
				 errhint("Store large documents elsewhere and send a reference, or raise asyncrr.max_payload_bytes.")));
}

Datum
asyncrr_check_size(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		elog(ERROR, "asyncrr._check_size: what must not be null");
	if (!PG_ARGISNULL(1))
		asyncrr_check_size_of(text_to_cstring(PG_GETARG_TEXT_PP(0)),
							  PG_GETARG_DATUM(1));
	PG_RETURN_VOID();
}

/* A NULL argument where a value is required. */
void
asyncrr_check_not_null(const char *what, bool isnull)
{
	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", what)));
}

/* asyncrr._check_not_null(what text, value anyelement) RETURNS void */
Datum
asyncrr_check_not_null_sql(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		elog(ERROR, "asyncrr._check_not_null: what must not be null");
	asyncrr_check_not_null(text_to_cstring(PG_GETARG_TEXT_PP(0)), PG_ARGISNULL(1));
	PG_RETURN_VOID();
}

/*
 * The longest interval asyncrr takes: one whose end, counted from now, is
 * a timestamp PostgreSQL can represent (and a deadline a DBA can believe).
 */
#define ASYNCRR_MAX_INTERVAL_YEARS 1000

/*
 * An interval that is out of range: at or below zero (or below it, when
 * zero_ok), or longer than ASYNCRR_MAX_INTERVAL_YEARS.
 */
static void
check_interval(const char *what, Interval *value, bool zero_ok)
{
	Interval	zero = {0};
	Interval	longest = {.month = ASYNCRR_MAX_INTERVAL_YEARS * MONTHS_PER_YEAR};
	bool		too_small;
	bool		too_long;

	too_small = DatumGetBool(DirectFunctionCall2(zero_ok ? interval_lt : interval_le,
												 IntervalPGetDatum(value),
												 IntervalPGetDatum(&zero)));
	too_long = DatumGetBool(DirectFunctionCall2(interval_gt, IntervalPGetDatum(value),
												IntervalPGetDatum(&longest)));
	if (too_small || too_long)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid %s \"%s\"", what,
						DatumGetCString(DirectFunctionCall1(interval_out,
															IntervalPGetDatum(value)))),
				 too_long ?
				 errdetail("The %s must be at most %d years.", what, ASYNCRR_MAX_INTERVAL_YEARS) :
				 zero_ok ?
				 errdetail("The %s must not be negative.", what) :
				 errdetail("The %s must be greater than zero.", what)));
}

/* A timeout, lease or extension must be a positive interval. */
void
asyncrr_check_positive(const char *what, Interval *value)
{
	asyncrr_check_not_null(what, value == NULL);
	check_interval(what, value, false);
}

/* A timeout or wait must not be a negative interval (zero: do not wait). */
void
asyncrr_check_not_negative(const char *what, Interval *value)
{
	check_interval(what, value, true);
}

/* asyncrr._check_positive(what text, value interval) RETURNS void */
Datum
asyncrr_check_positive_sql(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		elog(ERROR, "asyncrr._check_positive: what must not be null");
	asyncrr_check_positive(text_to_cstring(PG_GETARG_TEXT_PP(0)),
						   PG_ARGISNULL(1) ? NULL : PG_GETARG_INTERVAL_P(1));
	PG_RETURN_VOID();
}

/* asyncrr._check_not_negative(what text, value interval) RETURNS void */
Datum
asyncrr_check_not_negative_sql(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		elog(ERROR, "asyncrr._check_not_negative: what must not be null");
	asyncrr_check_not_null(text_to_cstring(PG_GETARG_TEXT_PP(0)), PG_ARGISNULL(1));
	asyncrr_check_not_negative(text_to_cstring(PG_GETARG_TEXT_PP(0)), PG_GETARG_INTERVAL_P(1));
	PG_RETURN_VOID();
}

/*-------------------------------------------------------------------------
 *
 * check.c
 *	  Validation of user input that the SQL functions share: queue and
 *	  inbox names, and the size limit on payloads, headers and replies.
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

#include "asyncrr.h"

PG_FUNCTION_INFO_V1(asyncrr_check_name);
PG_FUNCTION_INFO_V1(asyncrr_check_size);

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
 *
 * Refuses a value larger than asyncrr.max_payload_bytes.  The size is the
 * stored (uncompressed) size of the jsonb value, found without detoasting.
 */
Datum
asyncrr_check_size(PG_FUNCTION_ARGS)
{
	Size		size;

	if (PG_ARGISNULL(1))
		PG_RETURN_VOID();

	size = toast_raw_datum_size(PG_GETARG_DATUM(1)) - VARHDRSZ;
	if (size > (Size) asyncrr_max_payload_bytes)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("%s too large: %zu bytes",
						text_to_cstring(PG_GETARG_TEXT_PP(0)), size),
				 errdetail("asyncrr.max_payload_bytes allows %d bytes.",
						   asyncrr_max_payload_bytes),
				 errhint("Store large documents elsewhere and send a reference, or raise asyncrr.max_payload_bytes.")));
	PG_RETURN_VOID();
}

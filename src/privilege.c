/*-------------------------------------------------------------------------
 *
 * privilege.c
 *	  Who may do what (doc/security.md): membership in the asyncrr roles
 *	  and the per-queue grants of asyncrr.queue_grant.
 *
 * The caller is always session_user.  Inside the SECURITY DEFINER
 * functions current_user is the extension's owner, and SET ROLE must not
 * change whose requests a session sees.  Role membership comes from
 * PostgreSQL's own cache of it (is_member_of_role, which counts superusers
 * as members of every role), so a check costs no query; a queue grant is
 * one index lookup.  Every rule is here, once; the SQL functions call the
 * same code through asyncrr._is_admin(), _require() and _may().
 *
 * src/privilege.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"

#include "asyncrr.h"

PG_FUNCTION_INFO_V1(asyncrr_is_admin_sql);
PG_FUNCTION_INFO_V1(asyncrr_require_sql);
PG_FUNCTION_INFO_V1(asyncrr_may_sql);

static AsyncrrPlan grants_plan = {
	"SELECT g.role_name FROM asyncrr.queue_grant g"
	" WHERE g.queue_name = $1 AND g.privilege = $2",
	2, {TEXTOID, TEXTOID}
};

/* Is session_user a member of this role?  A role that does not exist has none. */
static bool
caller_is_member(const char *role)
{
	Oid			roleid = get_role_oid(role, true);

	return OidIsValid(roleid) && is_member_of_role(GetSessionUserId(), roleid);
}

/* The caller's name, for messages. */
const char *
asyncrr_caller_name(void)
{
	return GetUserNameFromId(GetSessionUserId(), false);
}

/* Is the caller an administrator (asyncrr_admin member or superuser)? */
bool
asyncrr_is_admin(void)
{
	return caller_is_member("asyncrr_admin");
}

/*
 * Refuses a caller that is not a member of asyncrr_<kind> (requester,
 * worker or admin); asyncrr_admin members pass every check.  fn names the
 * function in the message.
 */
void
asyncrr_require(const char *kind, const char *fn)
{
	bool		admin_only = strcmp(kind, "admin") == 0;

	if (asyncrr_is_admin() ||
		(!admin_only && caller_is_member(psprintf("asyncrr_%s", kind))))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied for function %s", fn),
			 errdetail("Role \"%s\" is not a member of %s.", asyncrr_caller_name(),
					   admin_only ? "asyncrr_admin" :
					   psprintf("asyncrr_%s or asyncrr_admin", kind))));
}

/*
 * May the caller use this privilege (submit or claim) on the queue?  It
 * needs membership in asyncrr_requester (submit) or asyncrr_worker (claim)
 * and a grant to a role it is a member of; or to be an administrator.  A
 * grant to a dropped role counts for no one.  The caller is connected to
 * SPI and runs as the extension's owner; its SPI_tuptable is kept.
 */
bool
asyncrr_may(text *queue, const char *privilege)
{
	Datum		args[2];
	uint64		n;
	bool		may = false;
	SPITupleTable *caller_result = SPI_tuptable;

	if (asyncrr_is_admin())
		return true;
	if (!caller_is_member(strcmp(privilege, "submit") == 0 ?
						  "asyncrr_requester" : "asyncrr_worker"))
		return false;

	args[0] = PointerGetDatum(queue);
	args[1] = CStringGetTextDatum(privilege);
	n = asyncrr_run(&grants_plan, args, NULL);
	for (uint64 i = 0; i < n && !may; i++)
	{
		bool		isnull;
		Name		role = DatumGetName(asyncrr_value(i, 1, &isnull));
		Oid			roleid = get_role_oid(NameStr(*role), true);

		may = OidIsValid(roleid) && is_member_of_role(GetSessionUserId(), roleid);
	}
	/* leave the caller's last result where it was */
	SPI_freetuptable(SPI_tuptable);
	SPI_tuptable = caller_result;
	return may;
}

/* asyncrr._is_admin() RETURNS boolean */
Datum
asyncrr_is_admin_sql(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(asyncrr_is_admin());
}

/* asyncrr._require(kind text, fn text) RETURNS void */
Datum
asyncrr_require_sql(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		elog(ERROR, "asyncrr._require: kind and fn must not be null");
	asyncrr_require(text_to_cstring(PG_GETARG_TEXT_PP(0)),
					text_to_cstring(PG_GETARG_TEXT_PP(1)));
	PG_RETURN_VOID();
}

/* asyncrr._may(queue_name text, privilege text) RETURNS boolean */
Datum
asyncrr_may_sql(PG_FUNCTION_ARGS)
{
	bool		may;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_BOOL(asyncrr_is_admin());
	SPI_connect();
	may = asyncrr_may(PG_GETARG_TEXT_PP(0), text_to_cstring(PG_GETARG_TEXT_PP(1)));
	SPI_finish();
	PG_RETURN_BOOL(may);
}

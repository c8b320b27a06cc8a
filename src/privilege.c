/*-------------------------------------------------------------------------
 *
 * privilege.c
 *	  Who may do what (doc/security.md): membership in the asyncrr roles
 *	  and the per-queue grants of asyncrr.queue_grant.
 *
 * asyncrr acts for the role in effect when its function is called:
 * current_user at the call, as row-level security does.  A SECURITY
 * DEFINER function owned by alice and run by bob acts as alice; SET ROLE
 * changes whom a session acts for.  So no user-facing function is itself
 * SECURITY DEFINER (that would hide the caller): each reads the caller on
 * entry and runs its statements as the extension's owner, through
 * asyncrr_as_owner_begin()/end() (plan.c does it for every statement the C
 * code runs; asyncrr_as_owner() does it for the functions written in SQL).
 * While asyncrr's own code runs as the owner, asyncrr_caller() still
 * answers the role it acts for.
 *
 * Role membership comes from PostgreSQL's own cache of it
 * (is_member_of_role, which counts superusers as members of every role),
 * so a check costs no query; a queue grant is one index lookup.  Every
 * rule is here, once; the SQL functions call the same code through
 * asyncrr._is_admin(), _require() and _caller().
 *
 * src/privilege.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "catalog/namespace.h"
#include "catalog/pg_namespace.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "nodes/makefuncs.h"
#include "parser/parse_func.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "asyncrr.h"

PG_FUNCTION_INFO_V1(asyncrr_is_admin_sql);
PG_FUNCTION_INFO_V1(asyncrr_require_sql);
PG_FUNCTION_INFO_V1(asyncrr_may_sql);
PG_FUNCTION_INFO_V1(asyncrr_caller_sql);
PG_FUNCTION_INFO_V1(asyncrr_as_owner);

static AsyncrrPlan grants_plan = {
	"SELECT g.role_name FROM asyncrr.queue_grant g"
	" WHERE g.queue_name = $1 AND g.privilege = $2",
	2, {TEXTOID, TEXTOID}
};

/* The role asyncrr's own code acts for while it runs as the owner, or InvalidOid. */
static Oid	acting_for = InvalidOid;

/*
 * Is the catalog still 0.2's, this library having been installed but
 * ALTER EXTENSION asyncrr UPDATE not yet run?  Its functions are SECURITY
 * DEFINER, which hides the caller, and 0.2 acted for session_user: so does
 * this library until the update, or every call would act for the owner.
 */
bool
asyncrr_catalog_0_2(void)
{
	/* looked up once per transaction: ALTER EXTENSION commits before use */
	static LocalTransactionId looked_in = InvalidLocalTransactionId;
	static bool is_0_2 = false;

	if (MyProc->lxid != looked_in)
	{
		is_0_2 = get_attnum(asyncrr_queue_table(), "max_timeout") == InvalidAttrNumber;
		looked_in = MyProc->lxid;
	}
	return is_0_2;
}

/* The role asyncrr acts for: the role in effect when its function was called. */
Oid
asyncrr_caller(void)
{
	if (OidIsValid(acting_for))
		return acting_for;
	return asyncrr_catalog_0_2() ? GetSessionUserId() : GetUserId();
}

/* The caller's name, for messages and owner_role. */
const char *
asyncrr_caller_name(void)
{
	return GetUserNameFromId(asyncrr_caller(), false);
}

/* Is the caller a member of this role?  A role that does not exist has none. */
static bool
caller_is_member(const char *role)
{
	Oid			roleid = get_role_oid(role, true);

	return OidIsValid(roleid) && is_member_of_role(asyncrr_caller(), roleid);
}

/*
 * The extension's owner: the owner of schema asyncrr, which the install
 * script creates.  Remembered for as long as the schema is the same one.
 */
static Oid
extension_owner(void)
{
	static Oid	schema = InvalidOid;
	static Oid	owner = InvalidOid;
	Oid			nsp = get_namespace_oid("asyncrr", true);

	if (!OidIsValid(nsp))
		elog(ERROR, "asyncrr: schema asyncrr does not exist");
	if (nsp != schema)
	{
		HeapTuple	tuple = SearchSysCache1(NAMESPACEOID, ObjectIdGetDatum(nsp));

		if (!HeapTupleIsValid(tuple))
			elog(ERROR, "cache lookup failed for namespace %u", nsp);
		owner = ((Form_pg_namespace) GETSTRUCT(tuple))->nspowner;
		ReleaseSysCache(tuple);
		schema = nsp;
	}
	return owner;
}

/*
 * Runs what follows as the extension's owner, acting for the current
 * caller, until asyncrr_as_owner_end(): the SECURITY DEFINER switch, made
 * by asyncrr itself so that it knows whom it acts for.  Nests.  The caller
 * must call asyncrr_as_owner_end() on every path, errors included
 * (PG_FINALLY).
 */
void
asyncrr_as_owner_begin(AsyncrrAsOwner *save)
{
	Oid			owner = extension_owner();

	GetUserIdAndSecContext(&save->userid, &save->sec_context);
	save->acting_for = acting_for;
	if (!OidIsValid(acting_for))
		acting_for = asyncrr_caller();
	SetUserIdAndSecContext(owner, save->sec_context | SECURITY_LOCAL_USERID_CHANGE);
}

void
asyncrr_as_owner_end(AsyncrrAsOwner *save)
{
	SetUserIdAndSecContext(save->userid, save->sec_context);
	acting_for = save->acting_for;
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
 * SPI.
 */
bool
asyncrr_may(text *queue, const char *privilege)
{
	Datum		args[2];
	AsyncrrRows *grants;
	bool		may = false;

	if (asyncrr_is_admin())
		return true;
	if (!caller_is_member(strcmp(privilege, "submit") == 0 ?
						  "asyncrr_requester" : "asyncrr_worker"))
		return false;

	args[0] = PointerGetDatum(queue);
	args[1] = CStringGetTextDatum(privilege);
	grants = asyncrr_run(&grants_plan, args, NULL);
	for (uint64 i = 0; i < grants->n && !may; i++)
	{
		bool		isnull;
		Name		role = DatumGetName(asyncrr_value(grants, i, 1, &isnull));
		Oid			roleid = get_role_oid(NameStr(*role), true);

		may = OidIsValid(roleid) && is_member_of_role(asyncrr_caller(), roleid);
	}
	asyncrr_done(grants);
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

/* asyncrr._caller() RETURNS name: the role asyncrr acts for, for the SQL functions */
Datum
asyncrr_caller_sql(PG_FUNCTION_ARGS)
{
	PG_RETURN_DATUM(DirectFunctionCall1(namein, CStringGetDatum(asyncrr_caller_name())));
}

/*
 * The user-facing entry of a function written in SQL or PL/pgSQL:
 * asyncrr.<name>(args) runs asyncrr._<name>(args), the body, as the
 * extension's owner, acting for its caller.  The body is executable by the
 * owner only; it is called here directly, as SECURITY DEFINER would.  Its
 * result, set-returning or not, is passed through.
 */
Datum
asyncrr_as_owner(PG_FUNCTION_ARGS)
{
	FmgrInfo   *body = fcinfo->flinfo->fn_extra;
	LOCAL_FCINFO(bodyinfo, FUNC_MAX_ARGS);
	AsyncrrAsOwner save;
	Datum		result;

	if (body == NULL)
	{
		Oid			fn = fcinfo->flinfo->fn_oid;
		Oid		   *argtypes;
		int			nargs;
		Oid			body_oid;

		(void) get_func_signature(fn, &argtypes, &nargs);
		body_oid = LookupFuncName(list_make2(makeString(get_namespace_name(get_func_namespace(fn))),
											 makeString(psprintf("_%s", get_func_name(fn)))),
								  nargs, argtypes, false);
		body = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(FmgrInfo));
		fmgr_info_cxt(body_oid, body, fcinfo->flinfo->fn_mcxt);
		fcinfo->flinfo->fn_extra = body;
	}

	InitFunctionCallInfoData(*bodyinfo, body, fcinfo->nargs, fcinfo->fncollation,
							 fcinfo->context, fcinfo->resultinfo);
	memcpy(bodyinfo->args, fcinfo->args, fcinfo->nargs * sizeof(NullableDatum));

	asyncrr_as_owner_begin(&save);
	PG_TRY();
	{
		result = FunctionCallInvoke(bodyinfo);
	}
	PG_FINALLY();
	{
		asyncrr_as_owner_end(&save);
	}
	PG_END_TRY();

	fcinfo->isnull = bodyinfo->isnull;
	return result;
}

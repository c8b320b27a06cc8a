/*-------------------------------------------------------------------------
 *
 * plan.c
 *	  How the C functions run SQL: saved SPI plans, prepared on first use
 *	  and kept for the life of the backend.
 *
 * A plan is replanned by the plan cache when a table it reads changes
 * (DROP/CREATE EXTENSION, ALTER, ANALYZE), so keeping it is safe.  The
 * callers run under a pinned search_path (the SET clauses of their SQL
 * declarations), and every name in the SQL text is qualified anyway.
 *
 * src/plan.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/spi.h"

#include "asyncrr.h"

/*
 * Runs a plan with the given arguments (nulls as for SPI_execute_plan: 'n'
 * for NULL, ' ' otherwise, or NULL when none is), preparing it first if
 * need be, as the extension's owner acting for the caller (privilege.c).
 * Returns the number of rows processed; SPI_tuptable holds the rows
 * returned.  The caller is connected to SPI.
 */
uint64
asyncrr_run(AsyncrrPlan *p, Datum *values, const char *nulls)
{
	AsyncrrAsOwner save;
	int			rc;

	asyncrr_as_owner_begin(&save);
	PG_TRY();
	{
		if (p->plan == NULL)
		{
			SPIPlanPtr	plan = SPI_prepare(p->sql, p->nargs, p->argtypes);

			if (plan == NULL)
				elog(ERROR, "asyncrr: could not prepare \"%s\": %s",
					 p->sql, SPI_result_code_string(SPI_result));
			if (SPI_keepplan(plan) != 0)
				elog(ERROR, "asyncrr: could not keep the plan of \"%s\"", p->sql);
			p->plan = plan;
		}
		rc = SPI_execute_plan(p->plan, values, nulls, false, 0);
	}
	PG_FINALLY();
	{
		asyncrr_as_owner_end(&save);
	}
	PG_END_TRY();
	if (rc < 0)
		elog(ERROR, "asyncrr: \"%s\" failed: %s", p->sql, SPI_result_code_string(rc));
	return SPI_processed;
}

/* Column col (from 1) of result row row (from 0) of the last asyncrr_run. */
Datum
asyncrr_value(uint64 row, int col, bool *isnull)
{
	return SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col, isnull);
}

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
 * Returns the rows it read (or wrote, with RETURNING), in SPI's memory
 * until SPI_finish or asyncrr_done: the caller keeps what it needs, and
 * one statement's rows are never another's.  Statements that return no
 * rows return an empty table.  The caller is connected to SPI.
 */
AsyncrrRows *
asyncrr_run(AsyncrrPlan *p, Datum *values, const char *nulls)
{
	AsyncrrAsOwner save;
	int			rc = 0;
	AsyncrrRows *rows;

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

	rows = palloc(sizeof(AsyncrrRows));
	rows->n = SPI_tuptable != NULL ? SPI_tuptable->numvals : 0;
	rows->table = SPI_tuptable;
	SPI_tuptable = NULL;
	return rows;
}

/* Column col (from 1) of row row (from 0) of what asyncrr_run returned. */
Datum
asyncrr_value(AsyncrrRows *rows, uint64 row, int col, bool *isnull)
{
	Assert(row < rows->n);
	return SPI_getbinval(rows->table->vals[row], rows->table->tupdesc, col, isnull);
}

/* Frees rows that are no longer needed (a loop that runs statements often). */
void
asyncrr_done(AsyncrrRows *rows)
{
	if (rows->table != NULL)
		SPI_freetuptable(rows->table);
	pfree(rows);
}

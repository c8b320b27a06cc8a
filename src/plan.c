/*-------------------------------------------------------------------------
 *
 * plan.c
 *	  How the C functions run SQL: saved SPI plans, prepared on first use
 *	  and kept for the life of the backend.
 *
 * A plan is replanned by the plan cache when a table it reads changes
 * (DROP/CREATE EXTENSION, ALTER, ANALYZE), so keeping it is safe; but not
 * when a table merely grows.  A plan made while asyncrr.request had no
 * pages reads it sequentially, which costs nothing then, and would go on
 * doing so as it grows, until an ANALYZE: a 200,000-request submit in one
 * transaction turned quadratic (over 10 minutes).  So a plan is also made
 * again whenever asyncrr.request has doubled or halved in pages since it
 * was made (its size class).  Together with statements that each have one
 * index to use (asyncrr--0.3.sql), that keeps plans good without planner
 * settings (test/t/011_plans.pl).
 *
 * The callers run under a pinned search_path (the SET clauses of their SQL
 * declarations), and every name in the SQL text is qualified anyway.
 *
 * src/plan.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/relation.h"
#include "catalog/namespace.h"
#include "executor/spi.h"
#include "port/pg_bitutils.h"
#include "storage/bufmgr.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"

#include "asyncrr.h"

/*
 * The size class of asyncrr.request: 0 when it has no pages, else 1 + the
 * base-2 logarithm of its number of pages (an lseek; no catalog read once
 * the relation is in the relcache).
 */
static int
request_size_class(void)
{
	Oid			nsp = get_namespace_oid("asyncrr", true);
	Oid			relid = OidIsValid(nsp) ? get_relname_relid("request", nsp) : InvalidOid;
	Relation	rel;
	BlockNumber pages;

	if (!OidIsValid(relid))
		return 0;
	rel = try_relation_open(relid, AccessShareLock);
	if (rel == NULL)
		return 0;
	pages = RelationGetNumberOfBlocks(rel);
	relation_close(rel, NoLock);
	return pages == 0 ? 0 : 1 + pg_leftmost_one_pos32(pages);
}

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

	/*
	 * This library serves a 0.1 or 0.2 catalog until ALTER EXTENSION asyncrr
	 * UPDATE has run: a statement that names what 0.3 added has a variant
	 * without it.
	 */
	if (p->before_0_3 != NULL && asyncrr_catalog_0_2())
		p = p->before_0_3;
	asyncrr_as_owner_begin(&save);
	PG_TRY();
	{
		int			size_class = request_size_class();

		if (p->plan != NULL && p->size_class != size_class)
		{
			SPI_freeplan(p->plan);
			p->plan = NULL;
		}
		if (p->plan == NULL)
		{
			SPIPlanPtr	plan = SPI_prepare(p->sql, p->nargs, p->argtypes);

			if (plan == NULL)
				elog(ERROR, "asyncrr: could not prepare \"%s\": %s",
					 p->sql, SPI_result_code_string(SPI_result));
			if (SPI_keepplan(plan) != 0)
				elog(ERROR, "asyncrr: could not keep the plan of \"%s\"", p->sql);
			p->plan = plan;
			p->size_class = size_class;
		}
		/*
		 * A statement that must see what has committed since a REPEATABLE
		 * READ transaction's snapshot (after it has locked the rows that
		 * decide, as ri_triggers.c does) reads with the latest snapshot.
		 */
		if (p->latest)
			rc = SPI_execute_snapshot(p->plan, values, nulls, GetLatestSnapshot(),
									  InvalidSnapshot, false, false, 0);
		else
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

/*-------------------------------------------------------------------------
 *
 * request.c
 *	  The hot path of a round trip, in C: submit, claim, complete and
 *	  take_replies; and end_request, the one place where a request ends.
 *
 * These were PL/pgSQL in 0.1.  Each call went through a dozen nested
 * SQL and PL/pgSQL helpers, each with its own SET clauses and, for the SQL
 * ones, a parse and plan on every call: about 1.4 ms of server time per
 * round trip against 0.3 ms for the same four statements written by hand
 * (doc/performance.md).  Here each function is one C call that checks its
 * arguments and privileges without a query (privilege.c), and runs a few
 * saved plans (plan.c).  The rules are the same, and so are the messages:
 * the regression suite is the specification.
 *
 * Every function here is declared with a pinned search_path.  Each
 * statement on asyncrr.request has one index it can use, so no plan
 * depends on the statistics (asyncrr--0.3.sql, at the indexes, says how).
 * None is SECURITY DEFINER: each acts for the role in effect when it is
 * called, and plan.c runs its statements as the extension's owner
 * (privilege.c).
 *
 * src/request.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_collation.h"
#include "commands/async.h"
#include "common/hashfn.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "port.h"
#include "storage/lmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "asyncrr.h"

PG_FUNCTION_INFO_V1(asyncrr_submit);
PG_FUNCTION_INFO_V1(asyncrr_submit_many);
PG_FUNCTION_INFO_V1(asyncrr_claim);
PG_FUNCTION_INFO_V1(asyncrr_complete);
PG_FUNCTION_INFO_V1(asyncrr_complete_many);
PG_FUNCTION_INFO_V1(asyncrr_complete_and_claim);
PG_FUNCTION_INFO_V1(asyncrr_take_replies);
PG_FUNCTION_INFO_V1(asyncrr_end_request_sql);
PG_FUNCTION_INFO_V1(asyncrr_request_for_update_sql);
PG_FUNCTION_INFO_V1(asyncrr_stale_claim_sql);
PG_FUNCTION_INFO_V1(asyncrr_close_inbox);
PG_FUNCTION_INFO_V1(asyncrr_lock_queue_sql);
PG_FUNCTION_INFO_V1(asyncrr_cancel);
PG_FUNCTION_INFO_V1(asyncrr_fail);
PG_FUNCTION_INFO_V1(asyncrr_extend_lease);
PG_FUNCTION_INFO_V1(asyncrr_report_progress);
PG_FUNCTION_INFO_V1(asyncrr_scatter);
PG_FUNCTION_INFO_V1(asyncrr_drop_queue);
PG_FUNCTION_INFO_V1(asyncrr_redrive);
PG_FUNCTION_INFO_V1(asyncrr_redrive_queue);
PG_FUNCTION_INFO_V1(asyncrr_expire_deadlines);
PG_FUNCTION_INFO_V1(asyncrr_expire_leases);
PG_FUNCTION_INFO_V1(asyncrr_orphan_inboxes);

/* ----------------------------------------------------------------
 * The statements
 * ----------------------------------------------------------------
 */

/*
 * A plan's before_0_3 is the same statement for a catalog that ALTER
 * EXTENSION asyncrr UPDATE TO '0.3' has not yet updated (plan.c): this
 * library serves it until then, without what 0.3 added.
 */
static AsyncrrPlan queue_plan_0_2 = {
	"SELECT default_timeout, lease, max_attempts, max_depth, NULL::integer, NULL::interval"
	"  FROM asyncrr.queue WHERE queue_name = $1",
	1, {TEXTOID}
};

static AsyncrrPlan queue_plan = {
	"SELECT default_timeout, lease, max_attempts, max_depth, max_priority, max_timeout"
	"  FROM asyncrr.queue WHERE queue_name = $1",
	1, {TEXTOID}, .before_0_3 = &queue_plan_0_2
};

/* submit: the ids among these that exist already, in id order */
static AsyncrrPlan known_ids_plan_0_2 = {
	"SELECT correlation_id, owner_role, queue_name, payload, NULL::text FROM asyncrr.request"
	" WHERE correlation_id = ANY ($1) ORDER BY correlation_id",
	1, {UUIDARRAYOID}
};

static AsyncrrPlan known_ids_plan = {
	"SELECT correlation_id, owner_role, queue_name, payload, ordering_key FROM asyncrr.request"
	" WHERE correlation_id = ANY ($1) ORDER BY correlation_id",
	1, {UUIDARRAYOID}, .before_0_3 = &known_ids_plan_0_2
};

/*
 * backpressure: counted under the statement's snapshot, not serialized;
 * pending (request_claim_idx), delayed (request_delayed_idx) and claimed
 * (request_claimed_idx) requests, up to $2 of each
 */
static AsyncrrPlan depth_plan_0_2 = {
	"SELECT (SELECT count(*) FROM (SELECT 1 FROM asyncrr.request l"
	"         WHERE l.state = 'pending' AND l.queue_name = $1 LIMIT $2) p)"
	"     + (SELECT count(*) FROM (SELECT 1 FROM asyncrr.request l"
	"         WHERE l.state = 'claimed' AND l.queue_name = $1 LIMIT $2) c)",
	2, {TEXTOID, INT4OID}
};

static AsyncrrPlan depth_plan = {
	"SELECT (SELECT count(*) FROM (SELECT 1 FROM asyncrr.request l"
	"         WHERE l.state = 'pending' AND l.not_before IS NULL AND l.queue_name = $1 LIMIT $2) p)"
	"     + (SELECT count(*) FROM (SELECT 1 FROM asyncrr.request l"
	"         WHERE l.state = 'pending' AND l.not_before IS NOT NULL AND l.queue_name = $1"
	"         LIMIT $2) d)"
	"     + (SELECT count(*) FROM (SELECT 1 FROM asyncrr.request l"
	"         WHERE l.state = 'claimed' AND l.queue_name = $1 LIMIT $2) c)",
	2, {TEXTOID, INT4OID}, .before_0_3 = &depth_plan_0_2
};

/* (named _open_inbox until 0.3) */
static AsyncrrPlan open_session_inbox_plan_0_2 = {
	"SELECT (asyncrr._open_inbox(asyncrr._session_inbox_name(), false)).inbox_name",
	0, {InvalidOid}
};

static AsyncrrPlan open_session_inbox_plan = {
	"SELECT (asyncrr._hold_inbox(asyncrr._session_inbox_name(), false)).inbox_name",
	0, {InvalidOid}, .before_0_3 = &open_session_inbox_plan_0_2
};

/*
 * New requests (submit, scatter, redrive): ids $1, payloads $4 and
 * ordering key places $13 (arrays, or one of each in insert_one_plan),
 * queue $2, inbox $3, headers $5, priority $6, max_attempts $7, timeout $8,
 * owner $9, the dead letter redriven $10, not_before $11 (NULL: now; the
 * deadline counts from it), ordering key $12, the gather of a part $14
 */
#define INSERT_REQUESTS(V, ID, PAYLOAD, SEQ, FROM) \
	"INSERT INTO asyncrr.request" \
	"       (correlation_id, queue_name, inbox_name, owner_role, payload, headers, priority," \
	"        state, max_attempts, submitted_at, timeout, deadline, redriven_from" \
	V##_INSERT_COLUMNS ")" \
	" SELECT " ID ", $2, $3, $9, " PAYLOAD ", $5, $6, 'pending', $7, now(), $8," \
	"        coalesce($11, now()) + $8, $10" V##_INSERT_VALUES(SEQ) \
	FROM \
	" ON CONFLICT DO NOTHING RETURNING deadline"

/* the columns 0.3 added; before 0.3, $11 to $14 are always NULL */
#define V0_3_INSERT_COLUMNS ", not_before, ordering_key, key_seq, gather"
#define V0_3_INSERT_VALUES(SEQ) ", $11, $12, " SEQ ", $14"
#define V0_2_INSERT_COLUMNS ""
#define V0_2_INSERT_VALUES(SEQ) ""

#define INSERT_ARGS 14, {UUIDARRAYOID, TEXTOID, TEXTOID, JSONBARRAYOID, JSONBOID, INT4OID, \
	INT4OID, INTERVALOID, NAMEOID, UUIDOID, TIMESTAMPTZOID, TEXTOID, INT8ARRAYOID, UUIDOID}
#define INSERT_ONE_ARGS 14, {UUIDOID, TEXTOID, TEXTOID, JSONBOID, JSONBOID, INT4OID, INT4OID, \
	INTERVALOID, NAMEOID, UUIDOID, TIMESTAMPTZOID, TEXTOID, INT8OID, UUIDOID}

/* Each insert plan, and its variant for a catalog before 0.3. */
#define INSERT_PLAN(NAME, ARGS, ...) \
	static AsyncrrPlan NAME##_0_2 = {INSERT_REQUESTS(V0_2, __VA_ARGS__), ARGS}; \
	static AsyncrrPlan NAME = {INSERT_REQUESTS(V0_3, __VA_ARGS__), ARGS, .before_0_3 = &NAME##_0_2}

INSERT_PLAN(insert_plan, INSERT_ARGS, "i.id", "i.payload", "i.seq",
			" FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($4),"
			"                 pg_catalog.unnest($13)) AS i(id, payload, seq)");
INSERT_PLAN(insert_one_plan, INSERT_ONE_ARGS, "$1", "$4", "$13", "");

/* places in the order of an ordering key: $1 of them, increasing */
static AsyncrrPlan key_places_plan = {
	"SELECT pg_catalog.array_agg(pg_catalog.nextval('asyncrr.request_key_seq'))"
	"  FROM pg_catalog.generate_series(1, $1)",
	1, {INT4OID}
};

/*
 * claim: first requests whose last lease ran out and that have attempts
 * left (they have waited longest), then pending ones, highest priority
 * first, then oldest.  Concurrent claimers skip each other's rows.
 */
static AsyncrrPlan expired_plan = {
	"SELECT ARRAY(SELECT c.correlation_id FROM asyncrr.request c"
	"              WHERE c.state = 'claimed' AND c.lease_until < $2 AND c.queue_name = $1"
	"                AND c.attempt < c.max_attempts AND c.deadline > $2"
	"              ORDER BY c.lease_until LIMIT $3 FOR UPDATE SKIP LOCKED)",
	3, {TEXTOID, TIMESTAMPTZOID, INT4OID}
};

/*
 * A pending request c is claimable when it is due (not_before NULL: the
 * worker clears it when its time comes) and no earlier request of its
 * ordering key in its queue is live.  A key is its role's: another role's
 * requests with the same key are of another key, and cannot hold it up.
 * Asked of each candidate as a claim meets it, through request_key_idx:
 * nothing is handed over when a request ends, so nothing can be lost
 * between the end of one and the next.
 */
#define CLAIMABLE(C) \
	" AND " C ".not_before IS NULL" \
	" AND (" C ".ordering_key IS NULL OR NOT EXISTS (" \
	"        SELECT 1 FROM asyncrr.request e" \
	"         WHERE e.state IN ('pending', 'claimed') AND e.queue_name = $1" \
	"           AND e.owner_role = " C ".owner_role AND e.ordering_key = " C ".ordering_key" \
	"           AND e.key_seq < " C ".key_seq))"

#define CLAIM(CLAIMABLE_C) \
	"WITH claimed AS (" \
	"  UPDATE asyncrr.request r" \
	"     SET state = 'claimed', attempt = r.attempt + 1, worker = $4," \
	"         claimed_at = $2, lease_until = $5, claimed_by = $6," \
	"         earlier_claimers = CASE WHEN r.claimed_by IS NULL THEN r.earlier_claimers" \
	"                                 ELSE r.earlier_claimers || r.claimed_by END" \
	"   WHERE r.correlation_id = ANY ($7 || ARRAY(" \
	"           SELECT c.correlation_id FROM asyncrr.request c" \
	"            WHERE c.state = 'pending' AND c.queue_name = $1 AND c.deadline > $2" \
	CLAIMABLE_C \
	"            ORDER BY c.priority DESC, c.submitted_at" \
	"            LIMIT $3 - pg_catalog.cardinality($7) FOR UPDATE SKIP LOCKED))" \
	"  RETURNING r.correlation_id, r.payload, r.headers, r.attempt, r.deadline," \
	"            r.lease_until, r.priority, r.submitted_at)" \
	" SELECT c.correlation_id, c.payload, c.headers, c.attempt, c.deadline, c.lease_until" \
	"   FROM claimed c ORDER BY c.priority DESC, c.submitted_at"

#define CLAIM_ARGS 7, {TEXTOID, TIMESTAMPTZOID, INT4OID, TEXTOID, TIMESTAMPTZOID, TEXTOID, \
	UUIDARRAYOID}

static AsyncrrPlan claim_plan_0_2 = {CLAIM(""), CLAIM_ARGS};

static AsyncrrPlan claim_plan = {CLAIM(CLAIMABLE("c")), CLAIM_ARGS, .before_0_3 = &claim_plan_0_2};

/* work that a claim skipped because another claim holds it locked */
#define PENDING(CLAIMABLE_C) \
	"SELECT c.correlation_id FROM asyncrr.request c" \
	" WHERE c.state = 'pending' AND c.queue_name = $1 AND c.deadline > $2" \
	CLAIMABLE_C \
	" ORDER BY c.priority DESC, c.submitted_at LIMIT 1"

static AsyncrrPlan pending_plan_0_2 = {PENDING(""), 2, {TEXTOID, TIMESTAMPTZOID}};

static AsyncrrPlan pending_plan = {
	PENDING(CLAIMABLE("c")), 2, {TEXTOID, TIMESTAMPTZOID}, .before_0_3 = &pending_plan_0_2
};

static AsyncrrPlan access_plan = {
	"SELECT correlation_id, queue_name, owner_role FROM asyncrr.request"
	" WHERE correlation_id = ANY ($1) ORDER BY correlation_id",
	1, {UUIDARRAYOID}
};

static AsyncrrPlan lock_row_plan = {
	"SELECT r FROM asyncrr.request r WHERE r.correlation_id = $1 FOR UPDATE",
	1, {UUIDOID}
};

/* cancel; a gather, to end it */
static AsyncrrPlan lock_state_plan = {
	"SELECT state FROM asyncrr.request WHERE correlation_id = $1 FOR UPDATE",
	1, {UUIDOID}
};

/* complete of one request: the same, without the array */
static AsyncrrPlan lock_claim_plan = {
	"SELECT correlation_id, state, attempt, claimed_by, earlier_claimers, max_attempts, queue_name"
	"  FROM asyncrr.request WHERE correlation_id = $1 FOR UPDATE",
	1, {UUIDOID}
};

/* complete: in id order, so that concurrent batches cannot deadlock */
static AsyncrrPlan lock_claims_plan = {
	"SELECT correlation_id, state, attempt, claimed_by, earlier_claimers, max_attempts, queue_name"
	"  FROM asyncrr.request WHERE correlation_id = ANY ($1) ORDER BY correlation_id FOR UPDATE",
	1, {UUIDARRAYOID}
};

/*
 * A dead letter: what the request was (FROM holds its row, with reason
 * REASON and time AT), for an outcome that keeps one (end_requests) and for
 * a reply whose requester is gone (orphan_replies).  EXTRA: the columns
 * 0.3 added, in both tables.
 */
#define DEAD_LETTER_EXTRA ", progress, progress_at, ordering_key"

#define INSERT_DEAD_LETTERS(EXTRA, REASON, AT, FROM) \
	"  INSERT INTO asyncrr.dead_letter" \
	"         (correlation_id, queue_name, inbox_name, owner_role, reason, payload, headers," \
	"          priority, timeout, attempt, worker, last_error, reply, late_reply," \
	"          submitted_at, dead_lettered_at" EXTRA ")" \
	"  SELECT correlation_id, queue_name, inbox_name, owner_role, " REASON ", payload," \
	"         headers, priority, timeout, attempt, worker, error, reply, late_reply," \
	"         submitted_at, " AT EXTRA " FROM " FROM

/*
 * end_requests: the outcome ($2, with error ERROR and dead letter reason
 * $5) becomes the reply of each request ($1) with its reply value ($3)
 * (arrays, or one of each in end_one_plan), only if it is still live (no
 * second outcome ever overwrites the first), with a dead letter when there
 * is a reason for one.  ERROR is $4, or made from the row for a timeout or
 * an expired lease.  Returns each ended request's id, inbox, gather (of a
 * part), queue and whether it has an ordering key.  A part's reply is
 * marked taken as it ends: its gather's is the one its requester takes.
 */
#define END_REQUESTS(V, REPLY, ERROR, FROM, MATCH) \
	"WITH ended AS (" \
	"  UPDATE asyncrr.request r" \
	"     SET state = $2, finished_at = pg_catalog.clock_timestamp(), reply = " REPLY "," \
	"         error = " ERROR ", dead_letter_reason = $5, lease_until = NULL" V##_END_SET \
	FROM \
	"   WHERE " MATCH " AND r.state IN ('pending', 'claimed')" \
	"  RETURNING r.*)," \
	" letter AS (" \
	INSERT_DEAD_LETTERS(V##_DEAD_LETTER_EXTRA, "dead_letter_reason", "finished_at", \
						"ended WHERE dead_letter_reason IS NOT NULL") \
	")" \
	" SELECT correlation_id, inbox_name, " V##_END_RETURNS " FROM ended"

#define V0_3_END_SET \
	", taken_at = CASE WHEN r.gather IS NULL THEN r.taken_at ELSE pg_catalog.clock_timestamp() END"
#define V0_3_DEAD_LETTER_EXTRA DEAD_LETTER_EXTRA
#define V0_3_END_RETURNS "gather, queue_name, ordering_key IS NOT NULL"
#define V0_2_END_SET ""
#define V0_2_DEAD_LETTER_EXTRA ""
#define V0_2_END_RETURNS "NULL::uuid, queue_name, false"

#define END_ARGS 5, {UUIDARRAYOID, TEXTOID, JSONBARRAYOID, TEXTOID, TEXTOID}
#define END_ONE_ARGS 5, {UUIDOID, TEXTOID, JSONBOID, TEXTOID, TEXTOID}

#define TIMEOUT_ERROR \
	"pg_catalog.format('no reply within %s', r.timeout) || coalesce('; last error: ' || r.error, '')"
#define LEASE_ERROR \
	"pg_catalog.format('lease expired on attempt %s of %s', r.attempt, r.max_attempts)"

/* Each end plan, and its variant for a catalog before 0.3. */
#define END_PLAN(NAME, ARGS, ...) \
	static AsyncrrPlan NAME##_0_2 = {END_REQUESTS(V0_2, __VA_ARGS__), ARGS}; \
	static AsyncrrPlan NAME = {END_REQUESTS(V0_3, __VA_ARGS__), ARGS, .before_0_3 = &NAME##_0_2}

END_PLAN(end_plan, END_ARGS, "i.reply", "$4",
		 " FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($3)) AS i(id, reply)",
		 "r.correlation_id = i.id");
END_PLAN(end_one_plan, END_ONE_ARGS, "$3", "$4", "", "r.correlation_id = $1");
END_PLAN(end_timed_out_plan, END_ARGS, "NULL", TIMEOUT_ERROR, "", "r.correlation_id = ANY ($1)");
END_PLAN(end_lease_expired_plan, END_ARGS, "NULL", LEASE_ERROR, "", "r.correlation_id = ANY ($1)");

/*
 * A gather: its parts, as its reply (an object keyed by queue name) and
 * what makes its status; how many are still live.
 */
static AsyncrrPlan gather_parts_plan = {
	"SELECT count(*) FILTER (WHERE p.state IN ('pending', 'claimed')),"
	"       bool_and(p.state = 'completed'), bool_or(p.state = 'timed_out'),"
	"       bool_or(p.state = 'cancelled'),"
	"       pg_catalog.jsonb_object_agg(p.queue_name,"
	"         CASE p.state WHEN 'completed'"
	"              THEN pg_catalog.jsonb_build_object('status', p.state, 'reply', p.reply)"
	"              WHEN 'timed_out' THEN pg_catalog.jsonb_build_object('status', p.state)"
	"              ELSE pg_catalog.jsonb_build_object('status', p.state, 'error', p.error) END),"
	"       'parts not completed: ' || pg_catalog.string_agg(p.queue_name || ' (' || p.state || ')', ', '"
	"                                  ORDER BY p.queue_name) FILTER (WHERE p.state <> 'completed')"
	"  FROM asyncrr.request p WHERE p.gather = $1",
	1, {UUIDOID}, .latest = true
};

/* a gather, locked without waiting (the background worker; else lock_state_plan) */
static AsyncrrPlan try_lock_gather_plan = {
	"SELECT state FROM asyncrr.request WHERE correlation_id = $1 FOR UPDATE SKIP LOCKED",
	1, {UUIDOID}
};

/* cancel(gather): its live parts, locked in id order (before the gather) */
static AsyncrrPlan live_parts_plan = {
	"SELECT correlation_id FROM asyncrr.request"
	" WHERE gather = $1 AND state IN ('pending', 'claimed') ORDER BY correlation_id FOR UPDATE",
	1, {UUIDOID}
};

/* cancel: is this request a gather?  (Never changes; read without a lock.) */
static AsyncrrPlan is_gather_plan = {
	"SELECT queue_name = '" ASYNCRR_SCATTER_QUEUE "' FROM asyncrr.request WHERE correlation_id = $1",
	1, {UUIDOID}
};

/* scatter: the queues of a gather's parts, sorted, for a repeated scatter */
static AsyncrrPlan part_queues_plan = {
	"SELECT pg_catalog.array_agg(p.queue_name ORDER BY p.queue_name COLLATE \"C\")"
	"  FROM asyncrr.request p WHERE p.gather = $1",
	1, {UUIDOID}
};

/* report_progress */
static AsyncrrPlan progress_plan = {
	"UPDATE asyncrr.request SET progress = $2, progress_at = pg_catalog.clock_timestamp()"
	" WHERE correlation_id = $1 RETURNING inbox_name, gather",
	2, {UUIDOID, JSONBOID}
};

/* complete or fail of a request that has ended: keep a late reply for audit */
static AsyncrrPlan late_reply_plan = {
	"WITH r AS (UPDATE asyncrr.request SET late_reply = $2 WHERE correlation_id = $1)"
	" UPDATE asyncrr.dead_letter SET late_reply = $2 WHERE correlation_id = $1",
	2, {UUIDOID, JSONBOID}
};

static AsyncrrPlan take_plan = {
	"WITH taken AS ("
	"  UPDATE asyncrr.request r SET taken_at = now()"
	"   WHERE r.correlation_id IN (SELECT c.correlation_id FROM asyncrr.request c"
	"                               WHERE c.inbox_name = $1"
	"                                 AND c.finished_at IS NOT NULL AND c.taken_at IS NULL"
	"                               ORDER BY c.finished_at LIMIT $2 FOR UPDATE SKIP LOCKED)"
	"  RETURNING r.correlation_id, r.state, r.reply, r.error, r.finished_at)"
	" SELECT t.correlation_id, t.state, t.reply, t.error, t.finished_at"
	"   FROM taken t ORDER BY t.finished_at, t.correlation_id",
	2, {TEXTOID, INT4OID}
};

/*
 * close_inbox(cancel_pending): the inbox's live requests, found through
 * request_inbox_idx, then locked in id order through the primary key; not
 * gathers, which end with their parts (a part before its gather)
 */
static AsyncrrPlan live_of_inbox_plan = {
	"SELECT correlation_id FROM asyncrr.request"
	" WHERE correlation_id = ANY (ARRAY("
	"         SELECT l.correlation_id FROM asyncrr.request l"
	"          WHERE l.inbox_name = $1 AND l.taken_at IS NULL AND l.state IN ('pending', 'claimed')"
	"            AND l.queue_name <> '" ASYNCRR_SCATTER_QUEUE "'))"
	"   AND state IN ('pending', 'claimed')"
	" ORDER BY correlation_id FOR UPDATE",
	1, {TEXTOID}
};

static AsyncrrPlan release_inbox_plan = {
	"UPDATE asyncrr.inbox SET holder_pid = NULL, holder_started = NULL, released_at = now()"
	" WHERE inbox_name = $1",
	1, {TEXTOID}
};

/* wait and call: the reply of one request, taken if it has one */
static AsyncrrPlan take_one_plan = {
	"UPDATE asyncrr.request SET taken_at = pg_catalog.clock_timestamp()"
	" WHERE correlation_id = $1 AND finished_at IS NOT NULL AND taken_at IS NULL"
	" RETURNING correlation_id, state, reply, error, finished_at, deadline",
	1, {UUIDOID}
};

/* ... or, when there was none to take, how the request stands now */
static AsyncrrPlan standing_plan = {
	"SELECT correlation_id, state, reply, error, finished_at, deadline, taken_at IS NOT NULL"
	"  FROM asyncrr.request WHERE correlation_id = $1",
	1, {UUIDOID}
};

/* wait: is the request one of this inbox's, and not a part of a scatter? */
static AsyncrrPlan in_inbox_plan_0_2 = {
	"SELECT 1 FROM asyncrr.request WHERE correlation_id = $1 AND inbox_name = $2",
	2, {UUIDOID, TEXTOID}
};

static AsyncrrPlan in_inbox_plan = {
	"SELECT 1 FROM asyncrr.request WHERE correlation_id = $1 AND inbox_name = $2 AND gather IS NULL",
	2, {UUIDOID, TEXTOID}, .before_0_3 = &in_inbox_plan_0_2
};

/* call: its request, if the caller made it through CALL asyncrr.call */
static AsyncrrPlan call_request_plan = {
	"SELECT 1 FROM asyncrr.request"
	" WHERE correlation_id = $1 AND inbox_name = '" ASYNCRR_CALL_INBOX "' AND owner_role = $2",
	2, {UUIDOID, NAMEOID}
};

/* a call whose caller is gone: its request, unless a worker is ending it now */
static AsyncrrPlan lock_live_plan = {
	"SELECT correlation_id FROM asyncrr.request"
	" WHERE correlation_id = $1 AND state IN ('pending', 'claimed') FOR UPDATE SKIP LOCKED",
	1, {UUIDOID}
};

static AsyncrrPlan mark_taken_plan = {
	"UPDATE asyncrr.request SET taken_at = pg_catalog.clock_timestamp() WHERE correlation_id = $1",
	1, {UUIDOID}
};


/*
 * wait_for_work: is there anything a claim of this queue would take now?
 * The first entry of each index in order: written as EXISTS, which drops
 * the ORDER BY, the planner read the table sequentially once the
 * statistics showed most requests pending in another queue (39 ms).
 */
#define WORK(CLAIMABLE_C) \
	"SELECT (SELECT 1 FROM asyncrr.request c" \
	"         WHERE c.state = 'pending' AND c.queue_name = $1 AND c.deadline > $2" \
	CLAIMABLE_C \
	"         ORDER BY c.priority DESC, c.submitted_at LIMIT 1) IS NOT NULL" \
	"    OR (SELECT 1 FROM asyncrr.request c" \
	"         WHERE c.state = 'claimed' AND c.queue_name = $1 AND c.lease_until < $2" \
	"           AND c.attempt < c.max_attempts AND c.deadline > $2" \
	"         ORDER BY c.lease_until LIMIT 1) IS NOT NULL"

static AsyncrrPlan work_plan_0_2 = {WORK(""), 2, {TEXTOID, TIMESTAMPTZOID}};

static AsyncrrPlan work_plan = {
	WORK(CLAIMABLE("c")), 2, {TEXTOID, TIMESTAMPTZOID}, .before_0_3 = &work_plan_0_2
};

/* fail(retry): back to the queue, keeping the error */
static AsyncrrPlan retry_plan = {
	"UPDATE asyncrr.request SET state = 'pending', lease_until = NULL, error = $2"
	" WHERE correlation_id = $1",
	2, {UUIDOID, TEXTOID}
};

static AsyncrrPlan extend_plan = {
	"UPDATE asyncrr.request SET lease_until = $2 WHERE correlation_id = $1",
	2, {UUIDOID, TIMESTAMPTZOID}
};

/*
 * drop_queue: the queue's live requests, pending (due and delayed) and
 * claimed, then locked in id order (as live_of_inbox_plan)
 */
#define LIVE_OF_QUEUE_0_2 \
	"SELECT l.correlation_id FROM asyncrr.request l WHERE l.state = 'pending' AND l.queue_name = $1" \
	" UNION ALL " \
	"SELECT l.correlation_id FROM asyncrr.request l WHERE l.state = 'claimed' AND l.queue_name = $1"

#define LIVE_OF_QUEUE \
	"SELECT l.correlation_id FROM asyncrr.request l" \
	" WHERE l.state = 'pending' AND l.not_before IS NULL AND l.queue_name = $1" \
	" UNION ALL " \
	"SELECT l.correlation_id FROM asyncrr.request l" \
	" WHERE l.state = 'pending' AND l.not_before IS NOT NULL AND l.queue_name = $1" \
	" UNION ALL " \
	"SELECT l.correlation_id FROM asyncrr.request l WHERE l.state = 'claimed' AND l.queue_name = $1"

#define COUNT_LIVE(LIVE) "SELECT count(*) FROM (" LIVE ") live"

static AsyncrrPlan count_live_plan_0_2 = {COUNT_LIVE(LIVE_OF_QUEUE_0_2), 1, {TEXTOID}};

static AsyncrrPlan count_live_plan = {
	COUNT_LIVE(LIVE_OF_QUEUE), 1, {TEXTOID}, .before_0_3 = &count_live_plan_0_2
};

#define LOCK_LIVE(LIVE) \
	"SELECT correlation_id FROM asyncrr.request" \
	" WHERE correlation_id = ANY (ARRAY(" LIVE "))" \
	"   AND state IN ('pending', 'claimed')" \
	" ORDER BY correlation_id FOR UPDATE"

static AsyncrrPlan live_of_queue_plan_0_2 = {LOCK_LIVE(LIVE_OF_QUEUE_0_2), 1, {TEXTOID}};

static AsyncrrPlan live_of_queue_plan = {
	LOCK_LIVE(LIVE_OF_QUEUE), 1, {TEXTOID}, .before_0_3 = &live_of_queue_plan_0_2
};

static AsyncrrPlan delete_queue_plan = {
	"WITH g AS (DELETE FROM asyncrr.queue_grant WHERE queue_name = $1)"
	" DELETE FROM asyncrr.queue WHERE queue_name = $1",
	1, {TEXTOID}
};

/* redrive: is the dead letter's request a part of a scatter?  Its gather. */
static AsyncrrPlan part_of_plan_0_2 = {
	"SELECT NULL::uuid WHERE false", 1, {UUIDOID}
};

static AsyncrrPlan part_of_plan = {
	"SELECT gather FROM asyncrr.request WHERE correlation_id = $1 AND gather IS NOT NULL",
	1, {UUIDOID}, .before_0_3 = &part_of_plan_0_2
};

/* redrive: the dead letter, removed, and what its new request needs */
static AsyncrrPlan take_dead_letter_plan_0_2 = {
	"DELETE FROM asyncrr.dead_letter WHERE correlation_id = $1"
	" RETURNING queue_name, inbox_name, owner_role, payload, headers, priority, timeout,"
	"           NULL::text",
	1, {UUIDOID}
};

static AsyncrrPlan take_dead_letter_plan = {
	"DELETE FROM asyncrr.dead_letter WHERE correlation_id = $1"
	" RETURNING queue_name, inbox_name, owner_role, payload, headers, priority, timeout,"
	"           ordering_key",
	1, {UUIDOID}, .before_0_3 = &take_dead_letter_plan_0_2
};

static AsyncrrPlan mark_redriven_plan = {
	"UPDATE asyncrr.request SET redriven_to = $2 WHERE correlation_id = $1",
	2, {UUIDOID, UUIDOID}
};

static AsyncrrPlan dead_letters_of_plan = {
	"SELECT correlation_id FROM asyncrr.dead_letter"
	" WHERE queue_name = $1 AND ($2 IS NULL OR reason = $2) ORDER BY dead_lettered_at",
	2, {TEXTOID, TEXTOID}
};

/*
 * The worker's steps.  Each reads request_deadline_idx, or request_claimed_idx
 * and request_inbox_idx queue by queue and inbox by inbox, in order, and
 * stops at the first entry not yet due.
 */
static AsyncrrPlan due_plan = {
	"SELECT correlation_id FROM asyncrr.request"
	" WHERE finished_at IS NULL AND deadline <= now()"
	"   AND queue_name <> '" ASYNCRR_SCATTER_QUEUE "'"
	" ORDER BY deadline LIMIT $1 FOR UPDATE SKIP LOCKED",
	1, {INT4OID}
};

/*
 * Gathers past their deadline: their parts time out with them (due_plan),
 * and end them; these are the ones whose last part a client held then.
 */
static AsyncrrPlan due_gathers_plan = {
	"SELECT correlation_id FROM asyncrr.request"
	" WHERE finished_at IS NULL AND deadline <= now()"
	"   AND queue_name = '" ASYNCRR_SCATTER_QUEUE "'"
	" ORDER BY deadline LIMIT $1 FOR UPDATE SKIP LOCKED",
	1, {INT4OID}
};

/* CALL asyncrr.call past its deadline: its request, if still live and due */
static AsyncrrPlan due_one_plan = {
	"SELECT correlation_id FROM asyncrr.request"
	" WHERE correlation_id = $1 AND state IN ('pending', 'claimed')"
	"   AND deadline <= pg_catalog.clock_timestamp() FOR UPDATE",
	1, {UUIDOID}
};

static AsyncrrPlan lease_expired_plan = {
	"SELECT e.correlation_id, e.attempt >= e.max_attempts, e.queue_name"
	"  FROM asyncrr.queue q"
	" CROSS JOIN LATERAL (SELECT r.correlation_id, r.attempt, r.max_attempts, r.queue_name"
	"                       FROM asyncrr.request r"
	"                      WHERE r.state = 'claimed' AND r.queue_name = q.queue_name"
	"                        AND r.lease_until <= now()"
	"                      ORDER BY r.lease_until LIMIT $1 FOR UPDATE SKIP LOCKED) e"
	" LIMIT $1",
	1, {INT4OID}
};

/*
 * Delayed requests whose time has come become claimable (request_delayed_idx,
 * queue by queue), and wake the claims waiting on their queue.
 */
static AsyncrrPlan delayed_due_plan_0_2 = {
	"SELECT NULL::uuid, NULL::text WHERE false", 1, {INT4OID}
};

static AsyncrrPlan delayed_due_plan = {
	"UPDATE asyncrr.request r SET not_before = NULL"
	" WHERE r.correlation_id = ANY (ARRAY("
	"         SELECT d.correlation_id FROM asyncrr.queue q"
	"          CROSS JOIN LATERAL (SELECT l.correlation_id FROM asyncrr.request l"
	"                               WHERE l.state = 'pending' AND l.not_before IS NOT NULL"
	"                                 AND l.queue_name = q.queue_name"
	"                                 AND l.not_before <= pg_catalog.statement_timestamp()"
	"                               ORDER BY l.not_before LIMIT $1 FOR UPDATE SKIP LOCKED) d"
	"          LIMIT $1))"
	" RETURNING r.correlation_id, r.queue_name",
	1, {INT4OID}, .before_0_3 = &delayed_due_plan_0_2
};

static AsyncrrPlan requeue_plan = {
	"UPDATE asyncrr.request r SET state = 'pending', lease_until = NULL, error = " LEASE_ERROR
	" WHERE r.correlation_id = ANY ($1)",
	1, {UUIDARRAYOID}
};

/*
 * Inboxes whose holder has exited; one a client holds locked (an open
 * transaction of open_inbox() on it) is left for a later pass: the worker
 * never waits for a client
 */
static AsyncrrPlan release_dead_holders_plan = {
	"UPDATE asyncrr.inbox SET holder_pid = NULL, holder_started = NULL, released_at = now()"
	" WHERE inbox_name = ANY (ARRAY("
	"         SELECT i.inbox_name FROM asyncrr.inbox i"
	"          WHERE i.holder_pid IS NOT NULL"
	"            AND NOT asyncrr._backend_alive(i.holder_pid, i.holder_started)"
	"          FOR UPDATE SKIP LOCKED))",
	0, {InvalidOid}
};

/*
 * Untaken replies whose requester is gone ($1 at most, grace $2): taken,
 * with a dead letter unless the request was dead-lettered already (it
 * keeps that one, even if since redriven or purged).  Inbox by inbox, each
 * read through request_inbox_idx oldest first: every reply of a session
 * inbox released more than grace ago, and the replies older than grace
 * (never less than a minute: a CALL takes its reply within moments) of an
 * inbox that has no row (the call inbox, a removed session inbox), found
 * by skipping through the index from one inbox name to the next.  Only
 * those names (they begin with "_") may lack a row: a durable inbox
 * without one is a restore in progress (pg_restore -j writes
 * asyncrr.request before asyncrr.inbox), and keeps its replies.
 */
#define ORPHAN_REPLIES(EXTRA) \
	"WITH RECURSIVE names(name) AS (" \
	"   (SELECT l.inbox_name FROM asyncrr.request l WHERE l.taken_at IS NULL" \
	"     ORDER BY l.inbox_name LIMIT 1)" \
	"   UNION ALL" \
	"   SELECT (SELECT l.inbox_name FROM asyncrr.request l" \
	"            WHERE l.taken_at IS NULL AND l.inbox_name > n.name" \
	"            ORDER BY l.inbox_name LIMIT 1)" \
	"     FROM names n WHERE n.name IS NOT NULL)," \
	" orphaned(name, upto) AS (" \
	"   SELECT i.inbox_name, 'infinity'::timestamptz FROM asyncrr.inbox i" \
	"    WHERE NOT i.durable AND i.holder_pid IS NULL AND i.released_at <= now() - $2" \
	"   UNION ALL" \
	"   SELECT n.name, now() - greatest($2, interval '1 minute') FROM names n" \
	"    WHERE n.name IS NOT NULL AND pg_catalog.starts_with(n.name, '_')" \
	"      AND NOT EXISTS (SELECT 1 FROM asyncrr.inbox i WHERE i.inbox_name = n.name))," \
	" gone AS (" \
	"   SELECT g.* FROM orphaned o" \
	"    CROSS JOIN LATERAL (SELECT q.* FROM asyncrr.request q" \
	"                         WHERE q.inbox_name = o.name AND q.taken_at IS NULL" \
	"                           AND q.finished_at <= o.upto" \
	"                         ORDER BY q.finished_at LIMIT $1 FOR UPDATE SKIP LOCKED) g" \
	"    LIMIT $1)," \
	" letter AS (" \
	INSERT_DEAD_LETTERS(EXTRA, "'requester_gone'", "now()", "gone WHERE dead_letter_reason IS NULL") \
	")," \
	" taken AS (" \
	"  UPDATE asyncrr.request r" \
	"     SET taken_at = now(), dead_letter_reason = coalesce(r.dead_letter_reason, 'requester_gone')" \
	"    FROM gone WHERE r.correlation_id = gone.correlation_id RETURNING 1)" \
	" SELECT count(*)::integer FROM taken"

static AsyncrrPlan orphan_replies_plan_0_2 = {ORPHAN_REPLIES(""), 2, {INT4OID, INTERVALOID}};

static AsyncrrPlan orphan_replies_plan = {
	ORPHAN_REPLIES(DEAD_LETTER_EXTRA), 2, {INT4OID, INTERVALOID},
	.before_0_3 = &orphan_replies_plan_0_2
};

/*
 * session inboxes released grace ($1) ago with nothing left in them (those
 * a client holds locked are left for a later pass): the
 * first entry of each in request_inbox_idx, in order (NOT EXISTS became
 * an anti-join reading all of the index for each inbox when the statistics
 * said it was nearly empty, and, without the order, a sequential scan when
 * they said most requests were of one inbox)
 */
static AsyncrrPlan remove_session_inboxes_plan = {
	"DELETE FROM asyncrr.inbox i"
	" WHERE i.inbox_name = ANY (ARRAY("
	"         SELECT l.inbox_name FROM asyncrr.inbox l"
	"          WHERE NOT l.durable AND l.holder_pid IS NULL AND l.released_at <= now() - $1"
	"          FOR UPDATE SKIP LOCKED))"
	"   AND (SELECT 1 FROM asyncrr.request q"
	"         WHERE q.inbox_name = i.inbox_name AND q.taken_at IS NULL"
	"         ORDER BY q.finished_at LIMIT 1) IS NULL",
	1, {INTERVALOID}
};

/* ----------------------------------------------------------------
 * Helpers
 * ----------------------------------------------------------------
 */

static void end_with(AsyncrrPlan *plan, int n, pg_uuid_t *ids, const char *state,
					 Datum *replies, bool *reply_nulls, text *error,
					 text *dead_letter_reason);

static bool
is_live(const char *state)
{
	return strcmp(state, "pending") == 0 || strcmp(state, "claimed") == 0;
}

/* A new correlation id: a version 4 UUID, as gen_random_uuid() makes. */
static void
random_uuid(pg_uuid_t *id)
{
	if (!pg_strong_random(id->data, UUID_LEN))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate random values")));
	id->data[6] = (id->data[6] & 0x0f) | 0x40;
	id->data[8] = (id->data[8] & 0x3f) | 0x80;
}

typedef struct Queue
{
	Interval	default_timeout;
	Interval	lease;
	int32		max_attempts;
	bool		has_max_depth;
	int32		max_depth;
	bool		has_max_priority;
	int32		max_priority;
	bool		has_max_timeout;
	Interval	max_timeout;
} Queue;

static char *
uuid_string(pg_uuid_t *id)
{
	return DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(id)));
}

static char *
interval_string(Interval *i)
{
	return DatumGetCString(DirectFunctionCall1(interval_out, IntervalPGetDatum(i)));
}

static TimestampTz
plus(TimestampTz t, Interval *i)
{
	return DatumGetTimestampTz(DirectFunctionCall2(timestamptz_pl_interval,
												   TimestampTzGetDatum(t),
												   IntervalPGetDatum(i)));
}

static void
refuse_unknown_request(pg_uuid_t *id)
{
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_OBJECT),
			 errmsg("request \"%s\" does not exist", uuid_string(id))));
}

static Datum
uuid_array(int n, pg_uuid_t *ids)
{
	Datum	   *elems = palloc(n * sizeof(Datum));

	for (int i = 0; i < n; i++)
		elems[i] = UUIDPGetDatum(&ids[i]);
	return PointerGetDatum(construct_array(elems, n, UUIDOID, UUID_LEN, false,
										   TYPALIGN_CHAR));
}

static Datum
jsonb_array(int n, Datum *values, bool *nulls)
{
	int			dims[1] = {n};
	int			lbs[1] = {1};

	return PointerGetDatum(construct_md_array(values, nulls, 1, dims, lbs, JSONBOID, -1,
											  false, TYPALIGN_INT));
}

/* The uuid in column 1 of row i. */
static pg_uuid_t *
row_id(AsyncrrRows *rows, uint64 i)
{
	bool		isnull;

	return DatumGetUUIDP(asyncrr_value(rows, i, 1, &isnull));
}

/* The ids in column 1 of all the rows, in their order. */
static pg_uuid_t *
row_ids(AsyncrrRows *rows)
{
	pg_uuid_t  *ids = palloc(Max(rows->n, 1) * sizeof(pg_uuid_t));

	for (uint64 i = 0; i < rows->n; i++)
		ids[i] = *row_id(rows, i);
	return ids;
}

/* The row (of rows in correlation id order, the id in column 1) with this id, or -1. */
static int64
find_row(AsyncrrRows *rows, pg_uuid_t *id)
{
	int64		lo = 0;
	int64		hi = (int64) rows->n - 1;

	while (lo <= hi)
	{
		int64		mid = (lo + hi) / 2;
		int			c = memcmp(row_id(rows, mid)->data, id->data, UUID_LEN);

		if (c == 0)
			return mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return -1;
}

/* The elements of a one-dimensional argument array, which must not be NULL. */
static int
array_arg(FunctionCallInfo fcinfo, int arg, const char *what, Oid type, int16 typlen,
		  bool typbyval, char typalign, Datum **elems, bool **nulls)
{
	int			n;

	asyncrr_check_not_null(what, PG_ARGISNULL(arg));
	if (ARR_NDIM(PG_GETARG_ARRAYTYPE_P(arg)) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a one-dimensional array", what),
				 errdetail("The array given has %d dimensions.", ARR_NDIM(PG_GETARG_ARRAYTYPE_P(arg)))));
	deconstruct_array(PG_GETARG_ARRAYTYPE_P(arg), type, typlen, typbyval, typalign,
					  elems, nulls, &n);
	return n;
}

static void
check_same_length(const char *what, int n, const char *other, int m)
{
	if (n != m)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s and %s differ in length", what, other),
				 errdetail("There are %d %s and %d %s.", n, what, m, other)));
}

/*
 * Locks a queue against a concurrent drop_queue until the transaction ends:
 * shared by submits, exclusive by drop_queue.  The lock is on an object of
 * a class of asyncrr's own (the OID of table asyncrr.queue, as pg_locks
 * shows in classid; the queue name's hash in objid), which no SQL command
 * can lock: an advisory lock could be taken by any role to stall a queue.
 * Taken before the queue's row is read, so a drop in flight is waited for
 * and then seen.
 */
/* Table asyncrr.queue (whose OID is also the class of the queues' locks). */
Oid
asyncrr_queue_table(void)
{
	return get_relname_relid("queue", get_namespace_oid("asyncrr", false));
}

void
asyncrr_lock_queue(text *name, bool exclusive)
{
	Oid			classid = asyncrr_queue_table();
	uint32		hash = DatumGetUInt32(hash_any((unsigned char *) VARDATA_ANY(name),
											   VARSIZE_ANY_EXHDR(name)));

	LockDatabaseObject(classid, (Oid) hash, 0,
					   exclusive ? AccessExclusiveLock : AccessShareLock);
	/* a prepared transaction would hold it without end (asyncrr.c) */
	asyncrr_xact_changed();
}

/*
 * The queue, for a caller that needs a privilege on it: submit (members of
 * asyncrr_requester) or claim (asyncrr_worker); the refusal names the
 * privilege as the function.  (privilege NULL: an administrator's
 * function, which checked its caller already.)  With lock, it is share-locked against a
 * concurrent drop_queue until commit (asyncrr_lock_queue).
 */
static void
lookup_queue(text *name, const char *privilege, bool lock, Queue *q)
{
	bool		isnull;
	Datum		value;
	AsyncrrRows *row;

	if (privilege != NULL)
		asyncrr_require(strcmp(privilege, "submit") == 0 ? "requester" : "worker", privilege);
	asyncrr_check_not_null("queue name", name == NULL);
	if (lock)
		asyncrr_lock_queue(name, false);

	row = asyncrr_run(&queue_plan, (Datum[]) {PointerGetDatum(name)}, NULL);
	if (row->n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("queue \"%s\" does not exist", text_to_cstring(name)),
				 errhint("Create it with asyncrr.create_queue().")));
	q->default_timeout = *DatumGetIntervalP(asyncrr_value(row, 0, 1, &isnull));
	q->lease = *DatumGetIntervalP(asyncrr_value(row, 0, 2, &isnull));
	q->max_attempts = DatumGetInt32(asyncrr_value(row, 0, 3, &isnull));
	value = asyncrr_value(row, 0, 4, &isnull);
	q->has_max_depth = !isnull;
	q->max_depth = isnull ? 0 : DatumGetInt32(value);
	value = asyncrr_value(row, 0, 5, &isnull);
	q->has_max_priority = !isnull;
	q->max_priority = isnull ? 0 : DatumGetInt32(value);
	value = asyncrr_value(row, 0, 6, &isnull);
	q->has_max_timeout = !isnull;
	if (!isnull)
		q->max_timeout = *DatumGetIntervalP(value);

	if (privilege != NULL && !asyncrr_may(name, privilege))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for queue \"%s\"", text_to_cstring(name)),
				 errdetail("Role \"%s\" has no %s privilege on it.",
						   asyncrr_caller_name(), privilege),
				 errhint("An asyncrr_admin member grants it with asyncrr.grant_queue().")));
}

/*
 * Refuses an id the caller may not touch exactly like an unknown one:
 * without privilege, requests of other roles (cancel); with privilege
 * "claim", requests of queues the caller may not claim from (complete,
 * fail, extend_lease).  Checked before the rows are locked, so a foreign
 * row is never locked or waited for; a request never changes queue or
 * owner.  One query for all the ids, and one grant lookup per queue met
 * in a row.
 */
static void
check_requests_access(int n, pg_uuid_t *ids, const char *privilege)
{
	AsyncrrRows *rows;
	const char *me;
	text	   *last_queue = NULL;
	bool		last_may = false;

	if (asyncrr_is_admin())
		return;
	me = asyncrr_caller_name();
	rows = asyncrr_run(&access_plan, (Datum[]) {uuid_array(n, ids)}, NULL);
	for (int i = 0; i < n; i++)
	{
		int64		row = find_row(rows, &ids[i]);
		bool		isnull;
		text	   *queue;

		if (row < 0)
			refuse_unknown_request(&ids[i]);
		if (privilege == NULL)
		{
			if (strcmp(NameStr(*DatumGetName(asyncrr_value(rows, row, 3, &isnull))), me) != 0)
				refuse_unknown_request(&ids[i]);
			continue;
		}
		queue = DatumGetTextPP(asyncrr_value(rows, row, 2, &isnull));
		if (last_queue == NULL ||
			VARSIZE_ANY_EXHDR(queue) != VARSIZE_ANY_EXHDR(last_queue) ||
			memcmp(VARDATA_ANY(queue), VARDATA_ANY(last_queue), VARSIZE_ANY_EXHDR(queue)) != 0)
		{
			last_queue = queue;
			last_may = asyncrr_may(queue, privilege);
		}
		if (!last_may)
			refuse_unknown_request(&ids[i]);
	}
	asyncrr_done(rows);
}

/* A request as a worker's claim of it stands (lock_claim_plan's row). */
typedef struct Claim
{
	char	   *state;
	int32		attempt;
	int32		max_attempts;
	text	   *queue;
	text	   *claimed_by;		/* NULL if none */
	ArrayType  *earlier_claimers;	/* NULL if none */
} Claim;

/*
 * Locks the requests a worker acts on, in correlation id order (the one
 * lock order: batches that overlap, and a forced drop_queue or
 * close_inbox(cancel_pending), cannot deadlock), after refusing ids of
 * queues the caller may not claim from as unknown ones.
 */
static AsyncrrRows *
lock_claims(int n, pg_uuid_t *ids)
{
	check_requests_access(n, ids, "claim");
	if (n == 1)
		return asyncrr_run(&lock_claim_plan, (Datum[]) {UUIDPGetDatum(&ids[0])}, NULL);
	return asyncrr_run(&lock_claims_plan, (Datum[]) {uuid_array(n, ids)}, NULL);
}

static void
read_claim(AsyncrrRows *rows, int64 row, Claim *c)
{
	bool		isnull;
	Datum		value;

	c->state = TextDatumGetCString(asyncrr_value(rows, row, 2, &isnull));
	c->attempt = DatumGetInt32(asyncrr_value(rows, row, 3, &isnull));
	value = asyncrr_value(rows, row, 4, &isnull);
	c->claimed_by = isnull ? NULL : DatumGetTextPP(value);
	value = asyncrr_value(rows, row, 5, &isnull);
	c->earlier_claimers = isnull ? NULL : DatumGetArrayTypeP(value);
	c->max_attempts = DatumGetInt32(asyncrr_value(rows, row, 6, &isnull));
	c->queue = DatumGetTextPP(asyncrr_value(rows, row, 7, &isnull));
}

/*
 * Fencing: is the caller's claim no longer the current one?  With the
 * claim's attempt: the request is at another attempt, or the lease of that
 * attempt ran out and the request went back to its queue.  Without it
 * (attempt_given false): this backend made an earlier claim of the request
 * and another backend the latest one.
 */
static bool
stale_claim(bool attempt_given, int32 attempt, Claim *c)
{
	char	   *me;
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	if (attempt_given)
	{
		if (attempt < 1)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid attempt %d", attempt),
					 errdetail("Attempts count from 1, as claim() returns them.")));
		return attempt != c->attempt || strcmp(c->state, "pending") == 0;
	}

	me = asyncrr_backend_id();
	if (c->claimed_by != NULL && strcmp(text_to_cstring(c->claimed_by), me) == 0)
		return false;
	if (c->earlier_claimers == NULL)
		return false;
	deconstruct_array(c->earlier_claimers, TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, &nulls, &n);
	for (int i = 0; i < n; i++)
		if (!nulls[i] && strcmp(TextDatumGetCString(elems[i]), me) == 0)
			return true;
	return false;
}

static void
refuse_not_claimed(pg_uuid_t *id)
{
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("request \"%s\" is not claimed", uuid_string(id)),
			 errdetail("Only a claimed request can be completed or failed."),
			 errhint("Claim it with asyncrr.claim() first.")));
}

/*
 * What complete() or fail() returns for a request that has already ended
 * (in state): "duplicate" when a worker ended it, "late" otherwise; a late
 * reply is kept for audit on the request and its dead letter.
 */
static const char *
after_end(pg_uuid_t *id, const char *state, Datum late_reply, bool late_isnull)
{
	if (strcmp(state, "completed") == 0 || strcmp(state, "failed") == 0)
		return "duplicate";
	if (!late_isnull)
		asyncrr_done(asyncrr_run(&late_reply_plan, (Datum[]) {UUIDPGetDatum(id), late_reply},
								 NULL));
	return "late";
}

static int
id_cmp(const void *a, const void *b)
{
	return memcmp(((const pg_uuid_t *) a)->data, ((const pg_uuid_t *) b)->data, UUID_LEN);
}

/*
 * Ends each gather (ids sorted, repeats allowed) whose parts have all
 * ended, with their replies as its reply: completed when every part
 * completed; timed_out when one timed out (the deadline came first);
 * cancelled when one was cancelled; else failed.  Returns how many it
 * ended.
 *
 * A part is locked before its gather (the order for every caller: see
 * cancel), and a gather is looked at by whoever ends one of its parts, after
 * that part has ended: of two transactions ending its last two parts, the
 * second to lock the gather sees the first's part ended once the first
 * commits (its parts are read with the latest snapshot, also under
 * REPEATABLE READ), and ends it.  The background worker does not wait for
 * a gather a client holds: it looks again at its next deadline step, and
 * failing that (a crash) at the gather's deadline (asyncrr_expire_deadlines).
 */
/*
 * Gathers the background worker found locked when one of their parts had
 * ended: it looks at them again at its next deadline step.  (A crash loses
 * the list; their deadline ends them then.)
 */
#define MAX_SKIPPED_GATHERS 10000
static pg_uuid_t *skipped_gathers = NULL;
static int	n_skipped_gathers = 0;

static void
remember_skipped_gather(pg_uuid_t *id)
{
	if (skipped_gathers == NULL)
		skipped_gathers = MemoryContextAlloc(TopMemoryContext,
											 MAX_SKIPPED_GATHERS * sizeof(pg_uuid_t));
	if (n_skipped_gathers < MAX_SKIPPED_GATHERS)
		skipped_gathers[n_skipped_gathers++] = *id;
}

static int
finish_gathers(int n, pg_uuid_t *ids)
{
	int			ended = 0;

	for (int i = 0; i < n; i++)
	{
		AsyncrrRows *row;
		AsyncrrRows *parts;
		bool		isnull;
		bool		live;
		Datum		reply;
		bool		reply_isnull;
		Datum		error;
		bool		error_isnull;
		const char *state;

		if (i > 0 && memcmp(ids[i].data, ids[i - 1].data, UUID_LEN) == 0)
			continue;
		row = asyncrr_run(asyncrr_never_wait ? &try_lock_gather_plan : &lock_state_plan,
						  (Datum[]) {UUIDPGetDatum(&ids[i])}, NULL);
		if (row->n == 0 && asyncrr_never_wait)
			remember_skipped_gather(&ids[i]);
		live = row->n > 0 && is_live(TextDatumGetCString(asyncrr_value(row, 0, 1, &isnull)));
		asyncrr_done(row);
		if (!live)
			continue;

		parts = asyncrr_run(&gather_parts_plan, (Datum[]) {UUIDPGetDatum(&ids[i])}, NULL);
		if (DatumGetInt64(asyncrr_value(parts, 0, 1, &isnull)) > 0)
		{
			asyncrr_done(parts);
			continue;
		}
		if (DatumGetBool(asyncrr_value(parts, 0, 2, &isnull)))
			state = "completed";
		else if (DatumGetBool(asyncrr_value(parts, 0, 3, &isnull)))
			state = "timed_out";
		else if (DatumGetBool(asyncrr_value(parts, 0, 4, &isnull)))
			state = "cancelled";
		else
			state = "failed";
		reply = asyncrr_value(parts, 0, 5, &reply_isnull);
		error = asyncrr_value(parts, 0, 6, &error_isnull);
		end_with(&end_one_plan, 1, &ids[i], state, &reply, &reply_isnull,
				 error_isnull ? NULL : DatumGetTextPP(error), NULL);
		asyncrr_done(parts);
		ended++;
	}
	return ended;
}

/*
 * The one place where requests end.  Every outcome goes through here:
 * complete, fail, cancel, close_inbox, drop_queue, the worker's deadlines
 * and leases.  Each of the n requests (distinct ids) gets this outcome as
 * its reply, with its own reply value, only if it is still live: no second
 * outcome ever overwrites the first.  A dead letter is kept when there is
 * a reason for one, and the one notification of each reply is queued on
 * its inbox's channel.  A part of a scatter is not notified: its gather
 * is, when its last part has ended (finish_gathers).  The end of a request
 * with an ordering key wakes the claims sleeping on its queue, since the
 * next of its key may be claimed now.  The caller is connected to SPI and
 * holds the rows' locks.
 */
static void
end_requests(int n, pg_uuid_t *ids, const char *state, Datum *replies, bool *reply_nulls,
			 text *error, text *dead_letter_reason)
{
	end_with(n == 1 ? &end_one_plan : &end_plan, n, ids, state, replies, reply_nulls,
			 error, dead_letter_reason);
}

/*
 * end_requests() with the plan that makes the error: end_plan or
 * end_one_plan (the error given), end_timed_out_plan or
 * end_lease_expired_plan (made from each row; replies are NULL).
 */
static void
end_with(AsyncrrPlan *plan, int n, pg_uuid_t *ids, const char *state,
		 Datum *replies, bool *reply_nulls, text *error, text *dead_letter_reason)
{
	Datum		args[5];
	char		nulls[6] = "     ";
	AsyncrrRows *ended;
	bool		isnull;
	pg_uuid_t  *gathers;
	int			n_gathers = 0;

	if (n == 0)
		return;
	args[0] = plan == &end_one_plan ? UUIDPGetDatum(&ids[0]) : uuid_array(n, ids);
	args[1] = CStringGetTextDatum(state);
	if (replies == NULL)
		nulls[2] = 'n';
	else if (plan == &end_one_plan)
	{
		args[2] = replies[0];
		nulls[2] = reply_nulls[0] ? 'n' : ' ';
	}
	else
		args[2] = jsonb_array(n, replies, reply_nulls);
	args[3] = PointerGetDatum(error);
	nulls[3] = error == NULL ? 'n' : ' ';
	args[4] = PointerGetDatum(dead_letter_reason);
	nulls[4] = dead_letter_reason == NULL ? 'n' : ' ';

	ended = asyncrr_run(plan, args, nulls);
	if (ended->n != (uint64) n)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 n == 1 ?
				 errmsg("asyncrr: request %s is not live", uuid_string(&ids[0])) :
				 errmsg("asyncrr: %d of %d requests to end are not live",
						n - (int) ended->n, n)));
	gathers = palloc(n * sizeof(pg_uuid_t));
	for (uint64 i = 0; i < ended->n; i++)
	{
		Datum		gather = asyncrr_value(ended, i, 3, &isnull);

		/* a part's end is told through its gather's */
		if (!isnull)
			gathers[n_gathers++] = *DatumGetUUIDP(gather);
		else
			asyncrr_notify_reply_at_commit(DatumGetTextPP(asyncrr_value(ended, i, 2, &isnull)),
										   row_id(ended, i), state);
		/* the next request of its ordering key may be claimed now */
		if (DatumGetBool(asyncrr_value(ended, i, 5, &isnull)))
			asyncrr_wake_queue_at_commit(DatumGetTextPP(asyncrr_value(ended, i, 4, &isnull)));
	}
	asyncrr_done(ended);
	if (n_gathers > 0)
	{
		qsort(gathers, n_gathers, sizeof(pg_uuid_t), id_cmp);
		finish_gathers(n_gathers, gathers);
	}
}

/* Copies rows into a materialized SRF's result. */
static void
return_rows(FunctionCallInfo fcinfo, AsyncrrRows *rows)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			natts = rsinfo->setDesc->natts;
	Datum	   *values = palloc(natts * sizeof(Datum));
	bool	   *nulls = palloc(natts * sizeof(bool));

	for (uint64 i = 0; i < rows->n; i++)
	{
		heap_deform_tuple(rows->table->vals[i], rows->table->tupdesc, values, nulls);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
}

/* ----------------------------------------------------------------
 * Requesters
 * ----------------------------------------------------------------
 */

typedef struct NewRequest
{
	pg_uuid_t	id;
	Datum		payload;
	Datum		key_place;		/* its place in its ordering key's order */
} NewRequest;

static int
new_request_cmp(const void *a, const void *b)
{
	return id_cmp(&((const NewRequest *) a)->id, &((const NewRequest *) b)->id);
}

/* What new requests have besides their ids and payloads. */
typedef struct NewRequests
{
	text	   *queue;
	text	   *inbox;
	Datum		headers;
	bool		headers_isnull;
	int32		priority;
	int32		max_attempts;
	Interval   *timeout;
	Datum		owner;
	pg_uuid_t  *redriven_from;	/* the dead letter redriven, or NULL */
	bool		has_not_before; /* else claimable now */
	TimestampTz not_before;
	text	   *ordering_key;	/* or NULL */
	Datum	   *key_places;		/* with an ordering key: each one's place */
	pg_uuid_t  *gather;			/* of a part of a scatter, or NULL */
} NewRequests;

/*
 * Inserts n new requests (distinct ids, in id order: batches that share
 * ids wait for each other rather than deadlock) into a queue and notes
 * their deadline (a delayed one's time too) and the work they make; an id
 * that exists already is skipped.  Returns how many were inserted.
 */
static uint64
insert_requests(int n, pg_uuid_t *ids, Datum *payloads, NewRequests *r)
{
	Datum		args[14];
	char		nulls[15] = "              ";
	AsyncrrRows *inserted;
	bool		isnull;

	args[0] = n == 1 ? UUIDPGetDatum(&ids[0]) : uuid_array(n, ids);
	args[1] = PointerGetDatum(r->queue);
	args[2] = PointerGetDatum(r->inbox);
	args[3] = n == 1 ? payloads[0] : jsonb_array(n, payloads, NULL);
	args[4] = r->headers;
	nulls[4] = r->headers_isnull ? 'n' : ' ';
	args[5] = Int32GetDatum(r->priority);
	args[6] = Int32GetDatum(r->max_attempts);
	args[7] = IntervalPGetDatum(r->timeout);
	args[8] = r->owner;
	args[9] = r->redriven_from == NULL ? (Datum) 0 : UUIDPGetDatum(r->redriven_from);
	nulls[9] = r->redriven_from == NULL ? 'n' : ' ';
	args[10] = TimestampTzGetDatum(r->not_before);
	nulls[10] = r->has_not_before ? ' ' : 'n';
	args[11] = PointerGetDatum(r->ordering_key);
	nulls[11] = r->ordering_key == NULL ? 'n' : ' ';
	if (r->ordering_key == NULL)
		nulls[12] = 'n';
	else if (n == 1)
		args[12] = r->key_places[0];
	else
		args[12] = PointerGetDatum(construct_array(r->key_places, n, INT8OID, 8,
												   FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	args[13] = r->gather == NULL ? (Datum) 0 : UUIDPGetDatum(r->gather);
	nulls[13] = r->gather == NULL ? 'n' : ' ';
	inserted = asyncrr_run(n == 1 ? &insert_one_plan : &insert_plan, args, nulls);
	if (inserted->n > 0)
	{
		/* one timeout for all: the deadlines differ by nothing */
		asyncrr_note_deadline_at(DatumGetTimestampTz(asyncrr_value(inserted, 0, 1, &isnull)));
		if (r->has_not_before)
			asyncrr_note_deadline_at(r->not_before);
		else
			asyncrr_wake_queue_at_commit(r->queue);
	}
	return inserted->n;
}

/*
 * Submits of one role's ordering key in one queue wait for each other until
 * commit, so that their places in the key's order are the order in which
 * they become visible: a claim never sees a later request of a key without
 * the earlier ones.  The lock is on an object of asyncrr's own class (the
 * OID of table asyncrr.request; 48 bits of the hash of queue, role and key
 * in objid and objsubid), which no SQL command can lock, and only that
 * role's submits of that key take it: another role would have to find a
 * key whose hash collides in 48 bits to make them wait.  Then returns n
 * places in the key's order, increasing.
 */
static Datum *
lock_ordering_key(text *queue, text *key, Datum owner, int n)
{
	Oid			classid = get_relname_relid("request", get_namespace_oid("asyncrr", false));
	StringInfoData whose;
	uint64		hash;
	AsyncrrRows *places;
	Datum	   *elems;
	bool	   *nulls;
	int			m;
	bool		isnull;

	/* queue, role and key, each with its length: no two triples alike */
	initStringInfo(&whose);
	appendStringInfo(&whose, "%d:", (int) VARSIZE_ANY_EXHDR(queue));
	appendBinaryStringInfo(&whose, VARDATA_ANY(queue), VARSIZE_ANY_EXHDR(queue));
	appendStringInfo(&whose, "%d:%s", (int) strlen(NameStr(*DatumGetName(owner))),
					 NameStr(*DatumGetName(owner)));
	appendBinaryStringInfo(&whose, VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key));
	/* 48 bits of its hash: objid and objsubid (a 16-bit field) */
	hash = DatumGetUInt64(hash_any_extended((unsigned char *) whose.data, whose.len, 0));
	LockDatabaseObject(classid, (Oid) hash, (uint16) (hash >> 32), ExclusiveLock);
	asyncrr_xact_changed();

	places = asyncrr_run(&key_places_plan, (Datum[]) {Int32GetDatum(n)}, NULL);
	deconstruct_array(DatumGetArrayTypeP(asyncrr_value(places, 0, 1, &isnull)), INT8OID, 8,
					  FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &elems, &nulls, &m);
	Assert(m == n);
	return elems;
}

/* Refuses a submit whose id is already used by a different request. */
static void
refuse_used_id(pg_uuid_t *id, const char *other_queue)
{
	ereport(ERROR,
			(errcode(ERRCODE_UNIQUE_VIOLATION),
			 errmsg("correlation id \"%s\" is already used by a different request",
					uuid_string(id)),
			 other_queue == NULL ? 0 :
			 errdetail("That request went to queue \"%s\" with another payload or queue.",
					   other_queue),
			 other_queue == NULL ?
			 errhint("Use a new correlation id.") :
			 errhint("Repeat a submit with the same queue and payload, or use a new correlation id.")));
}

/*
 * Marks in known[] the ids that exist already, after checking that each is
 * a repeat of the same request: same role (another role's id is a
 * conflict whatever the queue and payload, and nothing about that request
 * goes into the error), same queue, same payload, same ordering key (key;
 * a delay is not compared: it is forgotten once it has come).  Returns how
 * many.
 */
static int
find_repeats(int n, pg_uuid_t *ids, text *queue, Datum *payloads, text *key, bool *known)
{
	AsyncrrRows *rows = asyncrr_run(&known_ids_plan, (Datum[]) {uuid_array(n, ids)}, NULL);
	int			repeats = 0;

	for (int i = 0; i < n; i++)
	{
		int64		row = find_row(rows, &ids[i]);
		bool		isnull;
		text	   *old_queue;
		Datum		old_key;

		known[i] = row >= 0;
		if (!known[i])
			continue;
		repeats++;
		if (strcmp(NameStr(*DatumGetName(asyncrr_value(rows, row, 2, &isnull))),
				   asyncrr_caller_name()) != 0)
			refuse_used_id(&ids[i], NULL);
		old_queue = DatumGetTextPP(asyncrr_value(rows, row, 3, &isnull));
		if (!DatumGetBool(DirectFunctionCall2Coll(texteq, DEFAULT_COLLATION_OID,
												  PointerGetDatum(old_queue),
												  PointerGetDatum(queue))) ||
			!DatumGetBool(DirectFunctionCall2(jsonb_eq, asyncrr_value(rows, row, 4, &isnull),
											  payloads[i])))
			refuse_used_id(&ids[i], text_to_cstring(old_queue));
		old_key = asyncrr_value(rows, row, 5, &isnull);
		if (isnull != (key == NULL) ||
			(key != NULL &&
			 !DatumGetBool(DirectFunctionCall2Coll(texteq, C_COLLATION_OID, old_key,
												   PointerGetDatum(key)))))
			ereport(ERROR,
					(errcode(ERRCODE_UNIQUE_VIOLATION),
					 errmsg("correlation id \"%s\" is already used by a different request",
							uuid_string(&ids[i])),
					 errdetail("That request has another ordering key."),
					 errhint("Repeat a submit with the same queue, payload and ordering key, or use a new correlation id.")));
	}
	return repeats;
}

/* What submit() and submit_many() are given besides the queue, payloads and ids. */
typedef struct SubmitArgs
{
	Interval   *timeout;		/* NULL: the queue's default */
	bool		priority_isnull;
	int32		priority;
	Datum		headers;
	bool		headers_isnull;
	text	   *inbox;			/* NULL: this session's */
	bool		not_before_isnull;
	TimestampTz not_before;
	text	   *ordering_key;	/* or NULL */
	pg_uuid_t  *gather;			/* scatter's parts: their gather */
} SubmitArgs;

/* Reads submit()'s and submit_many()'s arguments from timeout (arg) on. */
static void
submit_args(FunctionCallInfo fcinfo, int arg, SubmitArgs *a)
{
	memset(a, 0, sizeof(SubmitArgs));
	a->timeout = PG_ARGISNULL(arg) ? NULL : PG_GETARG_INTERVAL_P(arg);
	a->priority_isnull = PG_ARGISNULL(arg + 2);
	a->priority = a->priority_isnull ? 0 : PG_GETARG_INT32(arg + 2);
	a->headers = PG_GETARG_DATUM(arg + 3);
	a->headers_isnull = PG_ARGISNULL(arg + 3);
	/* not_before and ordering_key: 0.3's signatures, which end with them */
	a->not_before_isnull = true;
	if (PG_NARGS() != arg + 6)
		return;
	a->not_before_isnull = PG_ARGISNULL(arg + 4);
	if (!a->not_before_isnull)
		a->not_before = PG_GETARG_TIMESTAMPTZ(arg + 4);
	if (!PG_ARGISNULL(arg + 5))
		a->ordering_key = PG_GETARG_TEXT_PP(arg + 5);
}

/* The inbox of new requests: the one given, else this session's, opened if need be. */
static text *
requester_inbox(text *inbox)
{
	bool		isnull;

	if (inbox == NULL)
		inbox = asyncrr_current_inbox_name(NULL);
	if (inbox == NULL)
	{
		AsyncrrRows *opened = asyncrr_run(&open_session_inbox_plan, NULL, NULL);

		inbox = DatumGetTextPP(asyncrr_value(opened, 0, 1, &isnull));
	}
	return inbox;
}

/* Refuses a timeout longer than the queue allows. */
static void
check_timeout(text *queue, Queue *q, Interval *timeout)
{
	asyncrr_check_positive("timeout", timeout);
	if (q->has_max_timeout &&
		DatumGetBool(DirectFunctionCall2(interval_gt, IntervalPGetDatum(timeout),
										 IntervalPGetDatum(&q->max_timeout))))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("timeout \"%s\" exceeds max_timeout \"%s\" of queue \"%s\"",
						interval_string(timeout), interval_string(&q->max_timeout),
						text_to_cstring(queue)),
				 errhint("An asyncrr_admin member sets the bound with asyncrr.alter_queue().")));
}

/* Refuses headers that are not a JSON object, or too large. */
static void
check_headers(Datum headers, bool headers_isnull)
{
	char	   *type;

	if (headers_isnull)
		return;
	type = TextDatumGetCString(DirectFunctionCall1(jsonb_typeof, headers));
	if (strcmp(type, "object") != 0)
	{
		char	   *given = DatumGetCString(DirectFunctionCall1(jsonb_out, headers));

		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid headers: expected a JSON object, not %s", type),
				 errdetail("The headers given were %s.",
						   pnstrdup(given, pg_mbcharcliplen(given, strlen(given), 100)))));
	}
	asyncrr_check_size_of("headers", headers);
}

/*
 * Backpressure: a full queue refuses n_new more requests.  Counted under
 * the statement's snapshot, not serialized: concurrent submits may each
 * see one free place (doc/security.md, "max_depth").
 */
static void
check_depth(text *queue, Queue *q, int n_new)
{
	AsyncrrRows *depth;
	int64		live;
	bool		isnull;

	if (!q->has_max_depth)
		return;
	depth = asyncrr_run(&depth_plan,
						(Datum[]) {PointerGetDatum(queue), Int32GetDatum(q->max_depth)}, NULL);
	live = DatumGetInt64(asyncrr_value(depth, 0, 1, &isnull));
	if (live + n_new > q->max_depth)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("queue \"%s\" is full", text_to_cstring(queue)),
				 live >= q->max_depth ?
				 errdetail("It holds its max_depth of %d live requests.", q->max_depth) :
				 errdetail("%d more would pass its max_depth of %d.", n_new, q->max_depth),
				 errhint("Retry later, or raise max_depth with asyncrr.alter_queue().")));
}

/*
 * Submits n requests to a queue, with the same options (SubmitArgs);
 * ids[i] is used as given unless fresh[i], when a new random id is put
 * there.  A repeat of a known id with the same queue and payload writes
 * nothing, not even a session inbox; anything else written is all or
 * nothing.  The caller is connected to SPI.
 */
static void
submit_requests(text *queue, int n, Datum *payloads, bool *payload_nulls,
				pg_uuid_t *ids, bool *fresh, SubmitArgs *a)
{
	Queue		q;
	bool	   *known = palloc0(n * sizeof(bool));
	int			repeats = 0;
	bool		any_given = false;
	int			n_new;
	NewRequest *news;
	pg_uuid_t  *new_ids;
	Datum	   *new_payloads;
	Datum	   *places = NULL;
	NewRequests r = {0};
	uint64		inserted;

	lookup_queue(queue, "submit", true, &q);
	r.timeout = a->timeout != NULL ? a->timeout : &q.default_timeout;

	for (int i = 0; i < n; i++)
	{
		if (fresh[i])
			random_uuid(&ids[i]);
		else
			any_given = true;
	}
	for (int i = 0; i < n; i++)
	{
		asyncrr_check_not_null("payload", payload_nulls[i]);
		asyncrr_check_size_of("payload", payloads[i]);
	}
	check_timeout(queue, &q, r.timeout);
	asyncrr_check_not_null("priority", a->priority_isnull);
	if (q.has_max_priority && a->priority > q.max_priority)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("priority %d exceeds max_priority %d of queue \"%s\"",
						a->priority, q.max_priority, text_to_cstring(queue)),
				 errhint("An asyncrr_admin member sets the bound with asyncrr.alter_queue().")));
	check_headers(a->headers, a->headers_isnull);
	if (!a->not_before_isnull)
	{
		if (TIMESTAMP_NOT_FINITE(a->not_before))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid not_before \"%s\"",
							DatumGetCString(DirectFunctionCall1(timestamptz_out,
																TimestampTzGetDatum(a->not_before)))),
					 errdetail("A request's not_before is a finite time.")));
		/* a time that has come means now */
		r.has_not_before = a->not_before > GetCurrentTimestamp();
		r.not_before = a->not_before;
		/*
		 * max_timeout bounds how long a request may stay live, its delay
		 * included: a delay is no way around it (and plus() refuses a
		 * deadline past the end of time)
		 */
		if (r.has_not_before && q.has_max_timeout &&
			plus(r.not_before, r.timeout) > plus(GetCurrentTimestamp(), &q.max_timeout))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("not_before \"%s\" with timeout \"%s\" exceeds max_timeout \"%s\" of queue \"%s\"",
							DatumGetCString(DirectFunctionCall1(timestamptz_out,
																TimestampTzGetDatum(r.not_before))),
							interval_string(r.timeout), interval_string(&q.max_timeout),
							text_to_cstring(queue)),
					 errdetail("A delayed request's deadline, not_before plus its timeout, is at most max_timeout from now."),
					 errhint("An asyncrr_admin member sets the bound with asyncrr.alter_queue().")));
		else if (r.has_not_before)
			(void) plus(r.not_before, r.timeout);
	}
	if (a->ordering_key != NULL)
	{
		int			len = VARSIZE_ANY_EXHDR(a->ordering_key);

		if (len < 1 || len > ASYNCRR_ORDERING_KEY_MAX)
			ereport(ERROR,
					(errcode(len < 1 ? ERRCODE_INVALID_PARAMETER_VALUE : ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 len < 1 ?
					 errmsg("invalid ordering key \"\"") :
					 errmsg("ordering key too long: %d bytes", len),
					 errdetail("An ordering key has 1 to %d bytes.", ASYNCRR_ORDERING_KEY_MAX)));
	}

	if (n == 0)
		return;

	/* fresh random ids cannot be known; a collision is still caught below */
	if (any_given)
		repeats = find_repeats(n, ids, queue, payloads, a->ordering_key, known);
	if (repeats == n)
		return;

	n_new = n - repeats;
	/* the places of an ordering key follow the payloads' order */
	r.owner = DirectFunctionCall1(namein, CStringGetDatum(asyncrr_caller_name()));
	if (a->ordering_key != NULL)
		places = lock_ordering_key(queue, a->ordering_key, r.owner, n_new);

	/*
	 * The new ones, in id order: two batches that share ids insert them in
	 * the same order, and wait for each other rather than deadlock.  But
	 * those of an ordering key in their key's order: batches of one key
	 * wait for each other anyway (lock_ordering_key), and a claim, reading
	 * requests of equal priority and submit time in the order they were
	 * inserted, then meets each key's head before the requests behind it.
	 */
	news = palloc(n_new * sizeof(NewRequest));
	for (int i = 0, k = 0; i < n; i++)
	{
		if (known[i])
			continue;
		news[k].id = ids[i];
		news[k].key_place = places != NULL ? places[k] : (Datum) 0;
		news[k++].payload = payloads[i];
	}
	if (a->ordering_key == NULL)
		qsort(news, n_new, sizeof(NewRequest), new_request_cmp);
	new_ids = palloc(n_new * sizeof(pg_uuid_t));
	new_payloads = palloc(n_new * sizeof(Datum));
	r.key_places = palloc(n_new * sizeof(Datum));
	for (int k = 0; k < n_new; k++)
	{
		new_ids[k] = news[k].id;
		new_payloads[k] = news[k].payload;
		r.key_places[k] = news[k].key_place;
	}

	check_depth(queue, &q, n_new);

	r.queue = queue;
	r.inbox = requester_inbox(a->inbox);
	r.headers = a->headers;
	r.headers_isnull = a->headers_isnull;
	r.priority = a->priority;
	r.max_attempts = q.max_attempts;
	r.ordering_key = a->ordering_key;
	r.gather = a->gather;
	inserted = insert_requests(n_new, new_ids, new_payloads, &r);
	if (inserted < (uint64) n_new)
	{
		/*
		 * Concurrent submits of some of these ids committed first (or an id
		 * appears twice): each must be a repeat of the same request.
		 */
		if (find_repeats(n_new, new_ids, queue, new_payloads, a->ordering_key, palloc(n_new)) + inserted <
			(uint64) n_new)
			elog(ERROR, "asyncrr: a submitted request conflicted but is not there");
	}
}

/*
 * asyncrr.submit(queue_name text, payload jsonb, timeout interval,
 *                correlation_id uuid, priority integer, headers jsonb,
 *                not_before timestamptz, ordering_key text) RETURNS uuid
 * asyncrr._submit(..., headers jsonb, inbox_name text) RETURNS uuid
 *
 * The second is 0.2's, for CALL asyncrr.call (its call inbox).
 */
Datum
asyncrr_submit(PG_FUNCTION_ARGS)
{
	Datum		payload = PG_GETARG_DATUM(1);
	bool		payload_isnull = PG_ARGISNULL(1);
	bool		fresh = PG_ARGISNULL(3);
	pg_uuid_t  *id = palloc(sizeof(pg_uuid_t));

	SubmitArgs	a;

	if (!fresh)
		*id = *PG_GETARG_UUID_P(3);
	if (PG_NARGS() == 7)
	{
		/* 0.2's asyncrr._submit(..., headers, inbox_name) */
		submit_args(fcinfo, 2, &a);
		a.inbox = PG_ARGISNULL(6) ? NULL : PG_GETARG_TEXT_PP(6);
	}
	else
		submit_args(fcinfo, 2, &a);
	SPI_connect();
	submit_requests(PG_ARGISNULL(0) ? NULL : PG_GETARG_TEXT_PP(0), 1, &payload,
					&payload_isnull, id, &fresh, &a);
	SPI_finish();
	PG_RETURN_UUID_P(id);
}

/*
 * asyncrr.submit_many(queue_name text, payloads jsonb[], timeout interval,
 *                     correlation_ids uuid[], priority integer, headers jsonb,
 *                     not_before timestamptz, ordering_key text)
 *     RETURNS SETOF uuid
 *
 * submit() for many payloads at once, all or nothing; the ids in payload
 * order.
 */
Datum
asyncrr_submit_many(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Datum	   *payloads;
	bool	   *payload_nulls;
	int			n;
	pg_uuid_t  *ids;
	bool	   *fresh;
	SubmitArgs	a;

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	asyncrr_require("requester", "submit");
	n = array_arg(fcinfo, 1, "payloads", JSONBOID, -1, false, TYPALIGN_INT,
				  &payloads, &payload_nulls);
	ids = palloc0(Max(n, 1) * sizeof(pg_uuid_t));
	fresh = palloc(Max(n, 1) * sizeof(bool));
	for (int i = 0; i < n; i++)
		fresh[i] = true;
	if (!PG_ARGISNULL(3))
	{
		Datum	   *given;
		bool	   *given_nulls;
		int			m = array_arg(fcinfo, 3, "correlation_ids", UUIDOID, UUID_LEN, false,
								  TYPALIGN_CHAR, &given, &given_nulls);

		check_same_length("payloads", n, "correlation_ids", m);
		for (int i = 0; i < n; i++)
		{
			fresh[i] = given_nulls[i];
			if (!given_nulls[i])
				ids[i] = *DatumGetUUIDP(given[i]);
		}
	}
	submit_args(fcinfo, 2, &a);
	SPI_connect();
	submit_requests(PG_ARGISNULL(0) ? NULL : PG_GETARG_TEXT_PP(0), n, payloads,
					payload_nulls, ids, fresh, &a);
	SPI_finish();
	for (int i = 0; i < n; i++)
	{
		Datum		value = UUIDPGetDatum(&ids[i]);
		bool		isnull = false;

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &value, &isnull);
	}
	return (Datum) 0;
}

/*
 * asyncrr.take_replies(max_replies integer)
 *     RETURNS TABLE(correlation_id uuid, status text, reply jsonb, error text,
 *                   finished_at timestamptz)
 */
Datum
asyncrr_take_replies(PG_FUNCTION_ARGS)
{
	text	   *inbox;
	bool		durable;
	bool		unwritten = asyncrr_xact_unwritten();

	InitMaterializedSRF(fcinfo, 0);
	asyncrr_require("requester", "take_replies");
	asyncrr_check_not_null("max_replies", PG_ARGISNULL(0));
	if (PG_GETARG_INT32(0) < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid max_replies %d", PG_GETARG_INT32(0)),
				 errdetail("max_replies must be at least 1.")));

	SPI_connect();
	inbox = asyncrr_current_inbox_name(&durable);
	if (inbox != NULL)
	{
		AsyncrrRows *taken = asyncrr_run(&take_plan,
										  (Datum[]) {PointerGetDatum(inbox), PG_GETARG_DATUM(0)},
										  NULL);

		return_rows(fcinfo, taken);
		if (taken->n > 0 && !durable)
			asyncrr_allow_lazy_commit(unwritten);
	}
	SPI_finish();
	return (Datum) 0;
}

/* ----------------------------------------------------------------
 * Workers
 * ----------------------------------------------------------------
 */

/*
 * Claims up to max_requests requests of queue under a lease (NULL: the
 * queue's) for worker (NULL: application_name, else the pid); with wait
 * (NULL: none), sleeps (wait.c) until a commit makes work in the queue or
 * the wait ends.  The queue is not locked: a claim may sleep, and must not
 * hold up drop_queue.  The caller is connected to SPI.
 */
static AsyncrrRows *
claim_requests(text *queue, bool max_requests_null, int32 max_requests,
			   Interval *lease, text *worker, Interval *wait)
{
	char	   *label;
	Interval	zero = {0};
	bool		waiting = false;
	bool		woken = false;
	TimestampTz until = 0;
	TimestampTz t;
	TimestampTz lease_until;
	Datum		args[7];
	Queue		q;
	AsyncrrRows *claimed;
	bool		unwritten = asyncrr_xact_unwritten();

	lookup_queue(queue, "claim", false, &q);

	if (lease == NULL)
		lease = &q.lease;
	if (worker != NULL)
	{
		label = text_to_cstring(worker);
		if (strlen(label) > ASYNCRR_WORKER_NAME_MAX)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("worker name too long: %zu bytes", strlen(label)),
					 errdetail("A worker name has at most %d bytes.", ASYNCRR_WORKER_NAME_MAX)));
	}
	else
	{
		const char *app = GetConfigOption("application_name", false, false);

		label = (app != NULL && app[0] != '\0') ?
			pnstrdup(app, pg_mbcliplen(app, strlen(app), ASYNCRR_WORKER_NAME_MAX)) :
			psprintf("pid %d", MyProcPid);
	}

	asyncrr_check_not_null("max_requests", max_requests_null);
	if (max_requests < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid max_requests %d", max_requests),
				 errdetail("max_requests must be at least 1.")));
	asyncrr_check_positive("lease", lease);
	if (wait != NULL)
	{
		asyncrr_check_not_negative("wait", wait);
		if (DatumGetBool(DirectFunctionCall2(interval_gt, IntervalPGetDatum(wait),
											 IntervalPGetDatum(&zero))))
		{
			waiting = true;
			until = plus(GetCurrentTimestamp(), wait);
			asyncrr_waiter_register_work(queue);
		}
	}

	args[0] = PointerGetDatum(queue);
	args[2] = Int32GetDatum(max_requests);
	args[3] = CStringGetTextDatum(label);
	args[5] = CStringGetTextDatum(asyncrr_backend_id());
	for (;;)
	{
		AsyncrrRows *expired;
		AsyncrrRows *pending;
		bool		isnull;
		bool		skipped;

		if (waiting)
		{
			asyncrr_waiter_reset();
			/* a dead worker's backend, woken, must not take work nobody receives */
			if (!asyncrr_client_alive())
				asyncrr_waiter_stop();
			/* nor a worker whose claim privilege was revoked while it slept */
			if (woken && !asyncrr_may(queue, "claim"))
			{
				claimed = palloc0(sizeof(AsyncrrRows));
				break;
			}
		}
		t = GetCurrentTimestamp();
		lease_until = plus(t, lease);
		args[1] = TimestampTzGetDatum(t);
		args[4] = TimestampTzGetDatum(lease_until);

		expired = asyncrr_run(&expired_plan, args, NULL);
		args[6] = asyncrr_value(expired, 0, 1, &isnull);
		claimed = asyncrr_run(&claim_plan, args, NULL);
		asyncrr_done(expired);
		if (claimed->n > 0 || !waiting || GetCurrentTimestamp() >= until)
			break;

		/* nothing yet: free what this look used, the wait may be long */
		asyncrr_done(claimed);
		woken = true;
		pending = asyncrr_run(&pending_plan, args, NULL);
		skipped = pending->n > 0;
		asyncrr_done(pending);
		if (skipped)
		{
			/*
			 * work we skipped because another claim holds it locked: if that
			 * claim rolls back, no commit will wake us, so look again soon
			 */
			if (!asyncrr_waiter_sleep(Min(until, TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 10))))
				asyncrr_waiter_stop();
		}
		/* sleep until a commit makes work in this queue, or the wait ends */
		else if (!asyncrr_waiter_sleep(until))
			asyncrr_waiter_stop();
	}
	if (waiting)
		asyncrr_waiter_release();

	if (claimed->n > 0)
	{
		asyncrr_note_deadline_at(lease_until);
		asyncrr_allow_lazy_commit(unwritten);
	}
	return claimed;
}

/*
 * asyncrr.claim(queue_name text, max_requests integer, lease interval,
 *               worker text, wait interval)
 *     RETURNS TABLE(correlation_id uuid, payload jsonb, headers jsonb,
 *                   attempt integer, deadline timestamptz, lease_until timestamptz)
 */
Datum
asyncrr_claim(PG_FUNCTION_ARGS)
{
	AsyncrrRows *claimed;

	InitMaterializedSRF(fcinfo, 0);
	SPI_connect();
	claimed = claim_requests(PG_ARGISNULL(0) ? NULL : PG_GETARG_TEXT_PP(0),
							 PG_ARGISNULL(1), PG_ARGISNULL(1) ? 0 : PG_GETARG_INT32(1),
							 PG_ARGISNULL(2) ? NULL : PG_GETARG_INTERVAL_P(2),
							 PG_ARGISNULL(3) ? NULL : PG_GETARG_TEXT_PP(3),
							 PG_ARGISNULL(4) ? NULL : PG_GETARG_INTERVAL_P(4));
	return_rows(fcinfo, claimed);
	SPI_finish();
	return (Datum) 0;
}

/*
 * Completes n requests: ids[i] gets replies[i], under the claim of
 * attempts[i] (if attempt_given[i]) or of this session (see stale_claim).
 * outcomes[i] becomes what complete() returns for it: "completed";
 * "duplicate" if a worker had already ended the request (also an id
 * repeated in the batch); "late" if it had ended otherwise or the claim is
 * no longer current.  An unknown id, or a request still pending, is an
 * error for the whole batch.  The rows are locked in id order, so batches
 * that overlap cannot deadlock.  The caller is connected to SPI.
 */
static void
complete_requests(int n, pg_uuid_t *ids, Datum *replies, bool *reply_nulls,
				  bool *attempt_given, int32 *attempts, const char **outcomes)
{
	AsyncrrRows *rows;
	char	  **states;
	pg_uuid_t  *end_ids = palloc(n * sizeof(pg_uuid_t));
	Datum	   *end_replies = palloc(n * sizeof(Datum));
	bool	   *end_nulls = palloc(n * sizeof(bool));
	int			n_end = 0;
	bool	   *ended_here;

	rows = lock_claims(n, ids);

	/* each row's state as this batch leaves it */
	states = palloc0(Max(rows->n, 1) * sizeof(char *));
	ended_here = palloc0(Max(rows->n, 1) * sizeof(bool));
	for (int i = 0; i < n; i++)
	{
		int64		row = find_row(rows, &ids[i]);
		Claim		c;

		if (row < 0)
			refuse_unknown_request(&ids[i]);
		if (!reply_nulls[i])
			asyncrr_check_size_of("reply", replies[i]);
		read_claim(rows, row, &c);
		if (states[row] == NULL)
			states[row] = c.state;
		c.state = states[row];

		if (stale_claim(attempt_given[i], attempts[i], &c))
			outcomes[i] = "late";
		else if (strcmp(c.state, "pending") == 0)
			refuse_not_claimed(&ids[i]);
		else if (strcmp(c.state, "claimed") == 0)
		{
			end_ids[n_end] = ids[i];
			end_replies[n_end] = replies[i];
			end_nulls[n_end++] = reply_nulls[i];
			states[row] = "completed";
			ended_here[row] = true;
			outcomes[i] = "completed";
		}
		else if (ended_here[row])
			outcomes[i] = "duplicate";	/* completed earlier in this batch */
		else
			outcomes[i] = after_end(&ids[i], c.state, replies[i], reply_nulls[i]);
	}
	end_requests(n_end, end_ids, "completed", end_replies, end_nulls, NULL, NULL);
}

/*
 * asyncrr.complete(correlation_id uuid, reply jsonb[, attempt integer]) RETURNS text
 *
 * Records the reply of the current claim (see complete_requests).
 */
Datum
asyncrr_complete(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *id;
	Datum		reply = PG_GETARG_DATUM(1);
	bool		reply_isnull = PG_ARGISNULL(1);
	bool		attempt_given = PG_NARGS() > 2 && !PG_ARGISNULL(2);
	int32		attempt = attempt_given ? PG_GETARG_INT32(2) : 0;
	const char *outcome;

	asyncrr_require("worker", "complete");
	asyncrr_check_not_null("correlation id", PG_ARGISNULL(0));
	id = PG_GETARG_UUID_P(0);
	SPI_connect();
	complete_requests(1, id, &reply, &reply_isnull, &attempt_given, &attempt, &outcome);
	SPI_finish();
	PG_RETURN_TEXT_P(cstring_to_text(outcome));
}

/* A batch of completions as complete_many() and complete_and_claim() take it. */
typedef struct Completions
{
	int			n;
	pg_uuid_t  *ids;
	Datum	   *replies;
	bool	   *reply_nulls;
	bool	   *attempt_given;
	int32	   *attempts;
	const char **outcomes;
} Completions;

/*
 * Reads the arrays correlation_ids, replies and attempts (may be NULL) from
 * arguments arg, arg + 1 and arg + 2.
 */
static void
completions_arg(FunctionCallInfo fcinfo, int arg, Completions *c)
{
	Datum	   *id_elems;
	bool	   *id_nulls;
	int			n;
	int			m;

	n = array_arg(fcinfo, arg, "correlation_ids", UUIDOID, UUID_LEN, false, TYPALIGN_CHAR,
				  &id_elems, &id_nulls);
	m = array_arg(fcinfo, arg + 1, "replies", JSONBOID, -1, false, TYPALIGN_INT,
				  &c->replies, &c->reply_nulls);
	check_same_length("correlation_ids", n, "replies", m);
	c->n = n;
	c->ids = palloc(Max(n, 1) * sizeof(pg_uuid_t));
	c->attempt_given = palloc0(Max(n, 1) * sizeof(bool));
	c->attempts = palloc0(Max(n, 1) * sizeof(int32));
	c->outcomes = palloc(Max(n, 1) * sizeof(char *));
	for (int i = 0; i < n; i++)
	{
		asyncrr_check_not_null("correlation id", id_nulls[i]);
		c->ids[i] = *DatumGetUUIDP(id_elems[i]);
	}
	if (!PG_ARGISNULL(arg + 2))
	{
		Datum	   *given;
		bool	   *given_nulls;
		int			k = array_arg(fcinfo, arg + 2, "attempts", INT4OID, 4, true, TYPALIGN_INT,
								  &given, &given_nulls);

		check_same_length("correlation_ids", n, "attempts", k);
		for (int i = 0; i < n; i++)
		{
			c->attempt_given[i] = !given_nulls[i];
			c->attempts[i] = given_nulls[i] ? 0 : DatumGetInt32(given[i]);
		}
	}
}

/*
 * asyncrr.complete_many(correlation_ids uuid[], replies jsonb[], attempts integer[])
 *     RETURNS TABLE(correlation_id uuid, outcome text)
 *
 * complete() for many requests in one call, in the order given.
 */
Datum
asyncrr_complete_many(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Completions c;

	InitMaterializedSRF(fcinfo, 0);
	asyncrr_require("worker", "complete_many");
	completions_arg(fcinfo, 0, &c);
	if (c.n == 0)
		return (Datum) 0;

	SPI_connect();
	complete_requests(c.n, c.ids, c.replies, c.reply_nulls, c.attempt_given, c.attempts,
					  c.outcomes);
	SPI_finish();
	for (int i = 0; i < c.n; i++)
	{
		Datum		values[2] = {UUIDPGetDatum(&c.ids[i]), CStringGetTextDatum(c.outcomes[i])};
		bool		nulls[2] = {false, false};

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * asyncrr.complete_and_claim(queue_name text, correlation_ids uuid[],
 *                            replies jsonb[], attempts integer[],
 *                            max_requests integer, lease interval, worker text)
 *     RETURNS TABLE(correlation_id uuid, outcome text, payload jsonb,
 *                   headers jsonb, attempt integer, deadline timestamptz,
 *                   lease_until timestamptz)
 *
 * complete_many() then claim() without wait, in one statement: a busy
 * worker's one round trip (and one commit) per batch.  Returns each
 * completion's id and outcome, in the order given, then each claimed
 * request with outcome 'claimed'.  It never sleeps: the replies must not
 * wait, uncommitted, for work to arrive.
 */
Datum
asyncrr_complete_and_claim(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Completions c;
	AsyncrrRows *claimed;
	Datum		values[7];
	bool		nulls[7];

	InitMaterializedSRF(fcinfo, 0);
	asyncrr_require("worker", "complete_and_claim");
	completions_arg(fcinfo, 1, &c);
	SPI_connect();
	if (c.n > 0)
		complete_requests(c.n, c.ids, c.replies, c.reply_nulls, c.attempt_given, c.attempts,
						  c.outcomes);
	claimed = claim_requests(PG_ARGISNULL(0) ? NULL : PG_GETARG_TEXT_PP(0),
							 PG_ARGISNULL(4), PG_ARGISNULL(4) ? 0 : PG_GETARG_INT32(4),
							 PG_ARGISNULL(5) ? NULL : PG_GETARG_INTERVAL_P(5),
							 PG_ARGISNULL(6) ? NULL : PG_GETARG_TEXT_PP(6),
							 NULL);

	for (int i = 0; i < c.n; i++)
	{
		memset(nulls, true, sizeof(nulls));
		values[0] = UUIDPGetDatum(&c.ids[i]);
		values[1] = CStringGetTextDatum(c.outcomes[i]);
		nulls[0] = nulls[1] = false;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	/* claimed rows: the columns of claim(), after the outcome */
	for (uint64 i = 0; i < claimed->n; i++)
	{
		heap_deform_tuple(claimed->table->vals[i], claimed->table->tupdesc,
						  values + 1, nulls + 1);
		values[0] = values[1];
		nulls[0] = nulls[1];
		values[1] = CStringGetTextDatum("claimed");
		nulls[1] = false;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	SPI_finish();
	return (Datum) 0;
}

/* ----------------------------------------------------------------
 * Requesters and workers: cancel, fail, extend_lease
 * ----------------------------------------------------------------
 */

/*
 * asyncrr.cancel(correlation_id uuid) RETURNS boolean
 *
 * Cancels a live request of the caller's role (administrators: any): its
 * requester gets a cancelled reply.  False if it had already ended.
 */
Datum
asyncrr_cancel(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *id;
	AsyncrrRows *row;
	bool		isnull;
	bool		live;

	asyncrr_require("requester", "cancel");
	asyncrr_check_not_null("correlation id", PG_ARGISNULL(0));
	id = PG_GETARG_UUID_P(0);
	SPI_connect();
	check_requests_access(1, id, NULL);
	row = asyncrr_run(&is_gather_plan, (Datum[]) {UUIDPGetDatum(id)}, NULL);
	if (row->n > 0 && DatumGetBool(asyncrr_value(row, 0, 1, &isnull)))
	{
		/*
		 * A gather: its live parts are cancelled, locked before it, and it
		 * ends with them (finish_gathers); or, if a worker left it with
		 * none (see there), now.
		 */
		AsyncrrRows *parts = asyncrr_run(&live_parts_plan, (Datum[]) {UUIDPGetDatum(id)}, NULL);

		end_requests((int) parts->n, row_ids(parts), "cancelled", NULL, NULL,
					 cstring_to_text("cancelled by the requester"), NULL);
		live = parts->n > 0 || finish_gathers(1, id) > 0;
		SPI_finish();
		PG_RETURN_BOOL(live);
	}
	asyncrr_done(row);
	row = asyncrr_run(&lock_state_plan, (Datum[]) {UUIDPGetDatum(id)}, NULL);
	if (row->n == 0)
		refuse_unknown_request(id);
	live = is_live(TextDatumGetCString(asyncrr_value(row, 0, 1, &isnull)));
	if (live)
		end_requests(1, id, "cancelled", NULL, NULL,
					 cstring_to_text("cancelled by the requester"), NULL);
	SPI_finish();
	PG_RETURN_BOOL(live);
}

/*
 * asyncrr.fail(correlation_id uuid, error text, attempt integer, retry boolean) RETURNS text
 *
 * Fails the current claim (with attempt, that attempt's): "failed";
 * with retry, "retrying" (back to its queue) or "dead_lettered" when that
 * was its last attempt; "duplicate" or "late" as for complete().
 */
Datum
asyncrr_fail(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *id;
	text	   *error;
	AsyncrrRows *row;
	Claim		c;
	const char *outcome;

	asyncrr_require("worker", "fail");
	asyncrr_check_not_null("correlation id", PG_ARGISNULL(0));
	id = PG_GETARG_UUID_P(0);
	SPI_connect();
	row = lock_claims(1, id);
	if (row->n == 0)
		refuse_unknown_request(id);
	asyncrr_check_not_null("error", PG_ARGISNULL(1));
	asyncrr_check_not_null("retry", PG_ARGISNULL(3));
	error = PG_GETARG_TEXT_PP(1);
	asyncrr_check_size_of("error", PointerGetDatum(error));
	read_claim(row, 0, &c);

	if (stale_claim(!PG_ARGISNULL(2), PG_ARGISNULL(2) ? 0 : PG_GETARG_INT32(2), &c))
		outcome = "late";
	else if (strcmp(c.state, "pending") == 0)
		refuse_not_claimed(id);
	else if (strcmp(c.state, "claimed") != 0)
		outcome = after_end(id, c.state, (Datum) 0, true);
	else if (!PG_GETARG_BOOL(3))
	{
		end_requests(1, id, "failed", NULL, NULL, error, NULL);
		outcome = "failed";
	}
	else if (c.attempt >= c.max_attempts)
	{
		end_requests(1, id, "dead_lettered", NULL, NULL, error, cstring_to_text("max_attempts"));
		outcome = "dead_lettered";
	}
	else
	{
		asyncrr_done(asyncrr_run(&retry_plan, (Datum[]) {UUIDPGetDatum(id), PointerGetDatum(error)},
								 NULL));
		asyncrr_wake_queue_at_commit(c.queue);
		outcome = "retrying";
	}
	SPI_finish();
	PG_RETURN_TEXT_P(cstring_to_text(outcome));
}

/*
 * asyncrr.report_progress(correlation_id uuid, progress jsonb[, attempt integer])
 *     RETURNS boolean
 *
 * Records the progress of the current claim (with attempt, that attempt's)
 * and tells the requester's inbox after commit (status "progress"; not for
 * a part of a scatter, whose requester hears of its gather only).  False,
 * recording nothing, when the request has ended or the claim is no longer
 * current; the lease is not changed.
 */
Datum
asyncrr_report_progress(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *id;
	AsyncrrRows *row;
	Claim		c;
	bool		attempt_given = PG_NARGS() > 2 && !PG_ARGISNULL(2);
	bool		recorded = false;

	asyncrr_require("worker", "report_progress");
	asyncrr_check_not_null("correlation id", PG_ARGISNULL(0));
	id = PG_GETARG_UUID_P(0);
	SPI_connect();
	row = lock_claims(1, id);
	if (row->n == 0)
		refuse_unknown_request(id);
	asyncrr_check_not_null("progress", PG_ARGISNULL(1));
	if (strcmp(TextDatumGetCString(DirectFunctionCall1(jsonb_typeof, PG_GETARG_DATUM(1))),
			   "null") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid progress: JSON null"),
				 errdetail("A progress report is a JSON value other than null, such as {\"pct\": 40}.")));
	asyncrr_check_size_of("progress", PG_GETARG_DATUM(1));
	read_claim(row, 0, &c);

	if (stale_claim(attempt_given, attempt_given ? PG_GETARG_INT32(2) : 0, &c))
		recorded = false;
	else if (strcmp(c.state, "pending") == 0)
		refuse_not_claimed(id);
	else if (strcmp(c.state, "claimed") == 0)
	{
		AsyncrrRows *done = asyncrr_run(&progress_plan,
										(Datum[]) {UUIDPGetDatum(id), PG_GETARG_DATUM(1)}, NULL);
		bool		isnull;

		(void) asyncrr_value(done, 0, 2, &isnull);	/* gather */
		if (isnull)
			asyncrr_notify_progress_at_commit(DatumGetTextPP(asyncrr_value(done, 0, 1, &isnull)),
											  id);
		recorded = true;
	}
	SPI_finish();
	PG_RETURN_BOOL(recorded);
}

/*
 * asyncrr.scatter(queue_names text[], payload jsonb, timeout interval,
 *                 correlation_id uuid, headers jsonb) RETURNS uuid
 *
 * One request, the gather (the id returned), made of one part per queue:
 * an ordinary request of that queue with the same payload and headers and
 * the gather's deadline (timeout, else the smallest default_timeout of the
 * queues).  The gather is a request of no queue (ASYNCRR_SCATTER_QUEUE) in
 * the caller's inbox, ended by finish_gathers when its parts have.  The
 * same gather id again, with the same queues and payload, returns it.
 */
#define SCATTER_MAX_QUEUES 100

static int
text_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/*
 * Is id a gather of this role already, with the same payload and queues
 * (names, sorted)?  False if there is no request with this id; an error
 * (23505) if it is another request.
 */
static bool
repeated_scatter(pg_uuid_t *id, int n, char **names, Datum payload)
{
	bool		known;
	AsyncrrRows *row;
	bool		isnull;
	Datum		had;
	Datum	   *old;
	int			m = 0;
	bool		same;

	if (find_repeats(1, id, cstring_to_text(ASYNCRR_SCATTER_QUEUE), &payload, NULL, &known) == 0)
		return false;
	row = asyncrr_run(&part_queues_plan, (Datum[]) {UUIDPGetDatum(id)}, NULL);
	had = asyncrr_value(row, 0, 1, &isnull);
	if (!isnull)
		deconstruct_array(DatumGetArrayTypeP(had), TEXTOID, -1, false, TYPALIGN_INT,
						  &old, NULL, &m);
	same = m == n;
	for (int i = 0; same && i < n; i++)
		same = strcmp(TextDatumGetCString(old[i]), names[i]) == 0;
	if (!same)
		ereport(ERROR,
				(errcode(ERRCODE_UNIQUE_VIOLATION),
				 errmsg("correlation id \"%s\" is already used by a different request",
						uuid_string(id)),
				 errdetail("That request is a scatter to other queues."),
				 errhint("Repeat a scatter with the same queues and payload, or use a new correlation id.")));
	asyncrr_done(row);
	return true;
}

Datum
asyncrr_scatter(PG_FUNCTION_ARGS)
{
	Datum	   *elems;
	bool	   *elem_nulls;
	int			n;
	char	  **names;
	Datum		payload = PG_GETARG_DATUM(1);
	bool		payload_isnull = PG_ARGISNULL(1);
	pg_uuid_t  *id = palloc(sizeof(pg_uuid_t));
	bool		fresh = PG_ARGISNULL(3);
	Interval   *timeout = PG_ARGISNULL(2) ? NULL : PG_GETARG_INTERVAL_P(2);
	SubmitArgs	a = {0};
	NewRequests g = {0};

	asyncrr_require("requester", "scatter");
	n = array_arg(fcinfo, 0, "queue_names", TEXTOID, -1, false, TYPALIGN_INT, &elems, &elem_nulls);
	if (n < 1 || n > SCATTER_MAX_QUEUES)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid number of queues %d", n),
				 errdetail("A scatter goes to 1 to %d distinct queues.", SCATTER_MAX_QUEUES)));
	names = palloc(n * sizeof(char *));
	for (int i = 0; i < n; i++)
	{
		asyncrr_check_not_null("queue name", elem_nulls[i]);
		names[i] = TextDatumGetCString(elems[i]);
	}
	qsort(names, n, sizeof(char *), text_cmp);
	for (int i = 1; i < n; i++)
		if (strcmp(names[i], names[i - 1]) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("queue \"%s\" appears twice in queue_names", names[i]),
					 errdetail("A scatter has one part per queue.")));
	asyncrr_check_not_null("payload", payload_isnull);
	asyncrr_check_size_of("payload", payload);
	check_headers(PG_GETARG_DATUM(4), PG_ARGISNULL(4));
	if (fresh)
		random_uuid(id);
	else
		*id = *PG_GETARG_UUID_P(3);

	SPI_connect();
	/* each queue exists and may be submitted to; the deadline's timeout */
	for (int i = 0; i < n; i++)
	{
		Queue		q;
		text	   *queue = cstring_to_text(names[i]);

		lookup_queue(queue, "submit", true, &q);
		if (timeout == NULL ||
			(PG_ARGISNULL(2) &&
			 DatumGetBool(DirectFunctionCall2(interval_lt, IntervalPGetDatum(&q.default_timeout),
											  IntervalPGetDatum(timeout)))))
		{
			timeout = palloc(sizeof(Interval));
			*timeout = q.default_timeout;
		}
	}

	/* the same gather again: same queues and payload */
	if (!fresh && repeated_scatter(id, n, names, payload))
	{
		SPI_finish();
		PG_RETURN_UUID_P(id);
	}

	/* the gather, then its parts (a part's deadline is the gather's) */
	g.queue = cstring_to_text(ASYNCRR_SCATTER_QUEUE);
	g.inbox = requester_inbox(NULL);
	g.headers = PG_GETARG_DATUM(4);
	g.headers_isnull = PG_ARGISNULL(4);
	g.max_attempts = 1;
	g.timeout = timeout;
	g.owner = DirectFunctionCall1(namein, CStringGetDatum(asyncrr_caller_name()));
	if (insert_requests(1, id, &payload, &g) == 0)
	{
		/* a concurrent scatter or submit of this id committed first */
		if (!repeated_scatter(id, n, names, payload))
			elog(ERROR, "asyncrr: a scatter conflicted but is not there");
		SPI_finish();
		PG_RETURN_UUID_P(id);
	}

	a.timeout = timeout;
	a.headers = g.headers;
	a.headers_isnull = g.headers_isnull;
	a.inbox = g.inbox;
	a.not_before_isnull = true;
	a.gather = id;
	for (int i = 0; i < n; i++)
	{
		pg_uuid_t	part;
		bool		part_fresh = true;

		submit_requests(cstring_to_text(names[i]), 1, &payload, &payload_isnull, &part,
						&part_fresh, &a);
	}
	SPI_finish();
	PG_RETURN_UUID_P(id);
}

/*
 * asyncrr.extend_lease(correlation_id uuid, extra interval, attempt integer)
 *     RETURNS timestamptz
 *
 * Heartbeat: the current claim's lease now ends extra from now.
 */
Datum
asyncrr_extend_lease(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *id;
	AsyncrrRows *row;
	Claim		c;
	bool		attempt_given = !PG_ARGISNULL(2);
	int32		attempt = attempt_given ? PG_GETARG_INT32(2) : 0;
	TimestampTz new_end;

	asyncrr_require("worker", "extend_lease");
	asyncrr_check_not_null("correlation id", PG_ARGISNULL(0));
	id = PG_GETARG_UUID_P(0);
	SPI_connect();
	row = lock_claims(1, id);
	if (row->n == 0)
		refuse_unknown_request(id);
	asyncrr_check_positive("lease extension", PG_ARGISNULL(1) ? NULL : PG_GETARG_INTERVAL_P(1));
	read_claim(row, 0, &c);
	if (stale_claim(attempt_given, attempt, &c))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("claim of request \"%s\" is no longer current", uuid_string(id)),
				 attempt_given ?
				 errdetail("Attempt %d is over: the request is %s, at attempt %d.",
						   attempt, c.state, c.attempt) :
				 errdetail("Another session has claimed it since.")));
	if (strcmp(c.state, "claimed") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("request \"%s\" is not claimed", uuid_string(id)),
				 errdetail("Its state is %s: the claim is no longer current.", c.state)));

	/* from the clock, as claim's lease: not from the transaction's start */
	new_end = plus(GetCurrentTimestamp(), PG_GETARG_INTERVAL_P(1));
	asyncrr_done(asyncrr_run(&extend_plan,
							 (Datum[]) {UUIDPGetDatum(id), TimestampTzGetDatum(new_end)}, NULL));
	asyncrr_note_deadline_at(new_end);
	SPI_finish();
	PG_RETURN_TIMESTAMPTZ(new_end);
}

/*
 * asyncrr.close_inbox(cancel_pending boolean) RETURNS integer
 *
 * Releases the inbox this session holds and UNLISTENs on its channel; with
 * cancel_pending, first cancels its live requests, locked in id order.
 * Returns how many were cancelled.
 */
Datum
asyncrr_close_inbox(PG_FUNCTION_ARGS)
{
	text	   *inbox;
	uint64		n = 0;

	asyncrr_require("requester", "close_inbox");
	asyncrr_check_not_null("cancel_pending", PG_ARGISNULL(0));
	SPI_connect();
	inbox = asyncrr_current_inbox_name(NULL);
	if (inbox != NULL)
	{
		if (PG_GETARG_BOOL(0))
		{
			AsyncrrRows *live = asyncrr_run(&live_of_inbox_plan,
											(Datum[]) {PointerGetDatum(inbox)}, NULL);

			n = live->n;
			end_requests((int) n, row_ids(live), "cancelled", NULL, NULL,
						 cstring_to_text("cancelled by close_inbox"), NULL);
		}
		asyncrr_done(asyncrr_run(&release_inbox_plan, (Datum[]) {PointerGetDatum(inbox)}, NULL));
		Async_Unlisten(psprintf("%s%s", ASYNCRR_CHANNEL_PREFIX, text_to_cstring(inbox)));
	}
	SPI_finish();
	PG_RETURN_INT32((int32) n);
}

/* ----------------------------------------------------------------
 * Administrators: drop_queue, redrive, redrive_queue
 * ----------------------------------------------------------------
 */

/*
 * asyncrr._lock_queue(queue_name text, exclusive boolean) RETURNS void
 *
 * For the SQL functions that change a queue (alter_queue, grant_queue,
 * revoke_queue).
 */
Datum
asyncrr_lock_queue_sql(PG_FUNCTION_ARGS)
{
	asyncrr_check_not_null("queue name", PG_ARGISNULL(0));
	asyncrr_check_not_null("exclusive", PG_ARGISNULL(1));
	asyncrr_lock_queue(PG_GETARG_TEXT_PP(0), PG_GETARG_BOOL(1));
	PG_RETURN_VOID();
}

/*
 * asyncrr.drop_queue(queue_name text, force boolean) RETURNS void
 *
 * Drops a queue and its grants; refused while it has live requests unless
 * force, which dead-letters them (reason queue_dropped), locked in id
 * order.  Waits for submits in flight and keeps new ones out.
 */
Datum
asyncrr_drop_queue(PG_FUNCTION_ARGS)
{
	text	   *queue;
	Queue		q;
	AsyncrrRows *live;
	bool		isnull;
	int64		n_live;

	asyncrr_require("admin", "drop_queue");
	asyncrr_check_not_null("force", PG_ARGISNULL(1));
	asyncrr_check_not_null("queue name", PG_ARGISNULL(0));
	queue = PG_GETARG_TEXT_PP(0);
	SPI_connect();
	asyncrr_lock_queue(queue, true);
	lookup_queue(queue, NULL, false, &q);

	live = asyncrr_run(&count_live_plan, (Datum[]) {PointerGetDatum(queue)}, NULL);
	n_live = DatumGetInt64(asyncrr_value(live, 0, 1, &isnull));
	if (n_live > 0 && !PG_GETARG_BOOL(1))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("queue \"%s\" has %lld live requests", text_to_cstring(queue),
						(long long) n_live),
				 errhint("Wait for them to end, or use force => true to dead-letter them.")));
	if (n_live > 0)
	{
		live = asyncrr_run(&live_of_queue_plan, (Datum[]) {PointerGetDatum(queue)}, NULL);
		end_requests((int) live->n, row_ids(live), "dead_lettered", NULL, NULL,
					 cstring_to_text(psprintf("queue \"%s\" was dropped", text_to_cstring(queue))),
					 cstring_to_text("queue_dropped"));
	}
	asyncrr_done(asyncrr_run(&delete_queue_plan, (Datum[]) {PointerGetDatum(queue)}, NULL));
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * Sends a dead letter back to its queue as a new request: new id, same
 * inbox, owner, payload, headers, priority, timeout and ordering key.
 * Returns the new id; or, if the dead letter is gone (a purge or another
 * redrive got to it first) or is of a part of a scatter, and missing_ok,
 * NULL.
 */
static pg_uuid_t *
redrive_one(pg_uuid_t *old_id, bool missing_ok)
{
	AsyncrrRows *letter;
	Queue		q;
	bool		isnull;
	text	   *queue;
	Datum		payload;
	Datum		key;
	NewRequests r = {0};
	pg_uuid_t  *new_id = palloc(sizeof(pg_uuid_t));
	AsyncrrRows *part;

	/*
	 * A part of a scatter: sent again alone, its reply would come to its
	 * requester as one of no request it made; its gather has ended.  Left
	 * as it is (redrive_queue skips it).
	 */
	part = asyncrr_run(&part_of_plan, (Datum[]) {UUIDPGetDatum(old_id)}, NULL);
	if (part->n > 0 && missing_ok)
		return NULL;
	if (part->n > 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("dead letter \"%s\" is a part of scatter \"%s\"", uuid_string(old_id),
						uuid_string(DatumGetUUIDP(asyncrr_value(part, 0, 1, &isnull)))),
				 errdetail("A part is answered through its gather, which has ended."),
				 errhint("Scatter again with asyncrr.scatter().")));
	asyncrr_done(part);

	letter = asyncrr_run(&take_dead_letter_plan, (Datum[]) {UUIDPGetDatum(old_id)}, NULL);
	if (letter->n == 0 && missing_ok)
	{
		asyncrr_done(letter);
		return NULL;
	}
	if (letter->n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("dead letter \"%s\" does not exist", uuid_string(old_id))));
	queue = DatumGetTextPP(asyncrr_value(letter, 0, 1, &isnull));
	if (strcmp(text_to_cstring(queue), ASYNCRR_SCATTER_QUEUE) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("dead letter \"%s\" is of a scatter", uuid_string(old_id)),
				 errdetail("A gather is the reply of its parts, not a request of a queue."),
				 errhint("Scatter again with asyncrr.scatter().")));
	lookup_queue(queue, NULL, true, &q);

	random_uuid(new_id);
	payload = asyncrr_value(letter, 0, 4, &isnull);
	r.queue = queue;
	r.inbox = DatumGetTextPP(asyncrr_value(letter, 0, 2, &isnull));
	r.headers = asyncrr_value(letter, 0, 5, &r.headers_isnull);
	r.priority = DatumGetInt32(asyncrr_value(letter, 0, 6, &isnull));
	r.max_attempts = q.max_attempts;
	r.timeout = DatumGetIntervalP(asyncrr_value(letter, 0, 7, &isnull));
	r.owner = asyncrr_value(letter, 0, 3, &isnull);
	r.redriven_from = old_id;
	/* a request of an ordering key joins the end of its key's order */
	key = asyncrr_value(letter, 0, 8, &isnull);
	if (!isnull)
	{
		r.ordering_key = DatumGetTextPP(key);
		r.key_places = lock_ordering_key(queue, r.ordering_key, r.owner, 1);
	}
	(void) insert_requests(1, new_id, &payload, &r);
	asyncrr_done(asyncrr_run(&mark_redriven_plan,
							 (Datum[]) {UUIDPGetDatum(old_id), UUIDPGetDatum(new_id)}, NULL));
	asyncrr_done(letter);
	return new_id;
}

/* asyncrr.redrive(correlation_id uuid) RETURNS uuid */
Datum
asyncrr_redrive(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *new_id;

	asyncrr_require("admin", "redrive");
	asyncrr_check_not_null("correlation id", PG_ARGISNULL(0));
	SPI_connect();
	new_id = redrive_one(PG_GETARG_UUID_P(0), false);
	SPI_finish();
	PG_RETURN_UUID_P(new_id);
}

/*
 * asyncrr.redrive_queue(queue_name text, reason text) RETURNS bigint
 *
 * Redrives every dead letter of a queue (with reason, only those), oldest
 * first; returns how many.  One that a concurrent purge or redrive removed
 * after it was listed is skipped.
 */
Datum
asyncrr_redrive_queue(PG_FUNCTION_ARGS)
{
	text	   *queue;
	Queue		q;
	AsyncrrRows *letters;
	Datum		args[2];
	char		nulls[3] = "  ";
	int64		n = 0;

	asyncrr_require("admin", "redrive_queue");
	asyncrr_check_not_null("queue name", PG_ARGISNULL(0));
	queue = PG_GETARG_TEXT_PP(0);
	SPI_connect();
	lookup_queue(queue, NULL, true, &q);
	if (!PG_ARGISNULL(1))
	{
		char	   *reason = text_to_cstring(PG_GETARG_TEXT_PP(1));

		if (strcmp(reason, "timeout") != 0 && strcmp(reason, "max_attempts") != 0 &&
			strcmp(reason, "queue_dropped") != 0 && strcmp(reason, "requester_gone") != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid dead letter reason \"%s\"", reason),
					 errdetail("Reasons are timeout, max_attempts, queue_dropped and requester_gone.")));
	}
	args[0] = PointerGetDatum(queue);
	args[1] = PG_GETARG_DATUM(1);
	nulls[1] = PG_ARGISNULL(1) ? 'n' : ' ';
	letters = asyncrr_run(&dead_letters_of_plan, args, nulls);
	for (uint64 i = 0; i < letters->n; i++)
		if (redrive_one(row_id(letters, i), true) != NULL)
			n++;
	SPI_finish();
	PG_RETURN_INT64(n);
}

/* ----------------------------------------------------------------
 * The background worker's steps (worker.c decides when to run them).
 * Each handles at most batch_size requests in the caller's transaction and
 * returns how many it handled; the worker repeats a step while it comes
 * back full.  SKIP LOCKED: a request a client holds is taken on a later
 * pass, and the steps never wait for, nor deadlock with, anyone.
 * ----------------------------------------------------------------
 */

/* Requests past their deadline (ids, locked): timed_out, with a dead letter. */
static void
time_out_requests(AsyncrrRows *due)
{
	end_with(&end_timed_out_plan, (int) due->n, row_ids(due), "timed_out", NULL, NULL,
			 NULL, cstring_to_text("timeout"));
}

/* asyncrr._expire_deadlines(batch_size integer) RETURNS integer */
Datum
asyncrr_expire_deadlines(PG_FUNCTION_ARGS)
{
	AsyncrrRows *due;
	AsyncrrRows *gathers;
	int32		n;

	asyncrr_check_not_null("batch_size", PG_ARGISNULL(0));
	SPI_connect();
	if (n_skipped_gathers > 0)
	{
		/* gathers skipped last time, a client holding them then */
		int			m = n_skipped_gathers;
		pg_uuid_t  *again = palloc(m * sizeof(pg_uuid_t));

		memcpy(again, skipped_gathers, m * sizeof(pg_uuid_t));
		n_skipped_gathers = 0;
		qsort(again, m, sizeof(pg_uuid_t), id_cmp);
		(void) finish_gathers(m, again);
	}
	due = asyncrr_run(&due_plan, (Datum[]) {PG_GETARG_DATUM(0)}, NULL);
	time_out_requests(due);
	n = (int32) due->n;
	/* gathers end with their last part; here, those whose part a client held */
	gathers = asyncrr_run(&due_gathers_plan, (Datum[]) {PG_GETARG_DATUM(0)}, NULL);
	n += finish_gathers((int) gathers->n, row_ids(gathers));
	SPI_finish();
	PG_RETURN_INT32(n);
}

/*
 * asyncrr._expire_leases(batch_size integer) RETURNS integer
 *
 * Claimed requests whose lease ran out go back to pending, or, when that
 * was their last attempt, are dead-lettered (reason max_attempts).  And
 * delayed requests whose time has come are made claimable.  Returns the
 * larger of the two counts (each at most batch_size).
 */
Datum
asyncrr_expire_leases(PG_FUNCTION_ARGS)
{
	AsyncrrRows *expired;
	AsyncrrRows *delayed;
	pg_uuid_t  *last = NULL;
	pg_uuid_t  *again = NULL;
	int			n_last = 0;
	int			n_again = 0;

	asyncrr_check_not_null("batch_size", PG_ARGISNULL(0));
	SPI_connect();
	expired = asyncrr_run(&lease_expired_plan, (Datum[]) {PG_GETARG_DATUM(0)}, NULL);
	last = palloc(Max(expired->n, 1) * sizeof(pg_uuid_t));
	again = palloc(Max(expired->n, 1) * sizeof(pg_uuid_t));
	for (uint64 i = 0; i < expired->n; i++)
	{
		bool		isnull;

		if (DatumGetBool(asyncrr_value(expired, i, 2, &isnull)))
			last[n_last++] = *row_id(expired, i);
		else
		{
			again[n_again++] = *row_id(expired, i);
			asyncrr_wake_queue_at_commit(DatumGetTextPP(asyncrr_value(expired, i, 3, &isnull)));
		}
	}
	end_with(&end_lease_expired_plan, n_last, last, "dead_lettered", NULL, NULL, NULL,
			 cstring_to_text("max_attempts"));
	if (n_again > 0)
		asyncrr_done(asyncrr_run(&requeue_plan, (Datum[]) {uuid_array(n_again, again)}, NULL));

	/* and delayed requests whose time has come may be claimed now */
	delayed = asyncrr_run(&delayed_due_plan, (Datum[]) {PG_GETARG_DATUM(0)}, NULL);
	for (uint64 i = 0; i < delayed->n; i++)
	{
		bool		isnull;

		asyncrr_wake_queue_at_commit(DatumGetTextPP(asyncrr_value(delayed, i, 2, &isnull)));
	}
	SPI_finish();
	PG_RETURN_INT32((int32) Max(expired->n, delayed->n));
}

/*
 * asyncrr._orphan_inboxes(batch_size integer, grace interval) RETURNS integer
 *
 * Inboxes whose holding backend has exited are released.  Replies waiting
 * in a session inbox released more than grace ago, or for grace in an
 * inbox that has no row (the call inbox of a CALL asyncrr.call that is
 * gone, a removed session inbox), move to the dead letters (reason
 * requester_gone), unless the request was dead-lettered already; a session
 * inbox with nothing left is removed.  Durable inboxes keep their replies.
 */
Datum
asyncrr_orphan_inboxes(PG_FUNCTION_ARGS)
{
	AsyncrrRows *orphaned;
	bool		isnull;
	int32		n;

	asyncrr_check_not_null("batch_size", PG_ARGISNULL(0));
	asyncrr_check_not_null("grace", PG_ARGISNULL(1));
	SPI_connect();
	asyncrr_done(asyncrr_run(&release_dead_holders_plan, NULL, NULL));
	orphaned = asyncrr_run(&orphan_replies_plan, (Datum[]) {PG_GETARG_DATUM(0), PG_GETARG_DATUM(1)},
						   NULL);
	n = DatumGetInt32(asyncrr_value(orphaned, 0, 1, &isnull));
	asyncrr_done(asyncrr_run(&remove_session_inboxes_plan, (Datum[]) {PG_GETARG_DATUM(1)}, NULL));
	SPI_finish();
	PG_RETURN_INT32(n);
}

/* ----------------------------------------------------------------
 * What the waits of wait.c do to a request
 * ----------------------------------------------------------------
 */

/*
 * Takes the reply of the request if it has one, else reports how it stands.
 * Under READ COMMITTED each statement sees what has committed by its start:
 * a reply recorded after the UPDATE began and before the SELECT is not
 * "taken by someone else", so that case looks again.  Values are copied,
 * detoasted, into mcxt: the caller may let go of its snapshot.  The caller
 * is connected to SPI.
 */
AsyncrrTake
asyncrr_take_reply(pg_uuid_t *id, AsyncrrReply *r, MemoryContext mcxt)
{
	for (;;)
	{
		AsyncrrRows *row = asyncrr_run(&take_one_plan, (Datum[]) {UUIDPGetDatum(id)}, NULL);
		bool		isnull;
		bool		taken_before = false;
		MemoryContext old;

		if (row->n == 0)
		{
			asyncrr_done(row);
			row = asyncrr_run(&standing_plan, (Datum[]) {UUIDPGetDatum(id)}, NULL);
			if (row->n == 0)
				refuse_unknown_request(id);
			(void) asyncrr_value(row, 0, 5, &r->finished_isnull);
			taken_before = DatumGetBool(asyncrr_value(row, 0, 7, &isnull));
			if (!r->finished_isnull && !taken_before)
			{
				asyncrr_done(row);
				continue;		/* recorded since the UPDATE began: take it */
			}
		}

		old = MemoryContextSwitchTo(mcxt);
		r->id = *row_id(row, 0);
		r->state = TextDatumGetCString(asyncrr_value(row, 0, 2, &isnull));
		r->reply = asyncrr_value(row, 0, 3, &r->reply_isnull);
		if (!r->reply_isnull)
			r->reply = PointerGetDatum(PG_DETOAST_DATUM_COPY(r->reply));
		r->error = asyncrr_value(row, 0, 4, &r->error_isnull);
		if (!r->error_isnull)
			r->error = PointerGetDatum(PG_DETOAST_DATUM_COPY(r->error));
		r->finished_at = asyncrr_value(row, 0, 5, &r->finished_isnull);
		r->deadline = DatumGetTimestampTz(asyncrr_value(row, 0, 6, &isnull));
		MemoryContextSwitchTo(old);
		asyncrr_done(row);

		if (r->finished_isnull)
			return ASYNCRR_TAKE_LIVE;
		if (taken_before)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("the reply to request \"%s\" was already taken", uuid_string(id)),
					 errdetail("The request ended as %s; see asyncrr.status().", r->state)));
		return ASYNCRR_TAKE_TAKEN;
	}
}

/*
 * Refuses, like an unknown id, a request that is not one of the inbox this
 * session holds (wait) or not one the caller made through CALL
 * asyncrr.call (call).  The caller is connected to SPI.
 */
void
asyncrr_check_waitable(pg_uuid_t *id, bool call)
{
	AsyncrrRows *row = NULL;

	if (call)
		row = asyncrr_run(&call_request_plan,
						  (Datum[]) {UUIDPGetDatum(id),
							  DirectFunctionCall1(namein, CStringGetDatum(asyncrr_caller_name()))},
						  NULL);
	else
	{
		text	   *inbox = asyncrr_current_inbox_name(NULL);

		if (inbox != NULL)
			row = asyncrr_run(&in_inbox_plan,
							  (Datum[]) {UUIDPGetDatum(id), PointerGetDatum(inbox)}, NULL);
	}
	if (row == NULL || row->n == 0)
		refuse_unknown_request(id);
	asyncrr_done(row);
}

/* CALL asyncrr.call's submit: one request, its reply to the call inbox. */
pg_uuid_t *
asyncrr_submit_call(text *queue, Datum payload, bool payload_isnull, Interval *timeout,
					pg_uuid_t *given)
{
	pg_uuid_t  *id = palloc0(sizeof(pg_uuid_t));
	bool		fresh = given == NULL;
	SubmitArgs	a = {0};

	if (given != NULL)
		*id = *given;
	a.timeout = timeout;
	a.headers_isnull = true;
	a.not_before_isnull = true;
	a.inbox = cstring_to_text(ASYNCRR_CALL_INBOX);
	submit_requests(queue, 1, &payload, &payload_isnull, id, &fresh, &a);
	return id;
}

/* A live request past its deadline ends as timed_out now, as the worker would end it. */
void
asyncrr_time_out(pg_uuid_t *id)
{
	time_out_requests(asyncrr_run(&due_one_plan, (Datum[]) {UUIDPGetDatum(id)}, NULL));
}

/*
 * The caller of CALL asyncrr.call is gone, or cancelled its call: its
 * request ends as cancelled at once, its reply taken (nobody will take
 * it); a worker holding its claim gets "late" from complete().  Returns
 * false if a transaction holds the request's row (a worker completing it
 * or extending its lease): then nothing is done, and the caller, which
 * must not wait, leaves it to the background worker (asyncrr_abandon_call).
 * True if it was cancelled or had ended.
 */
bool
asyncrr_cancel_call(pg_uuid_t *id)
{
	AsyncrrRows *row = asyncrr_run(&lock_live_plan, (Datum[]) {UUIDPGetDatum(id)}, NULL);
	bool		isnull;

	if (row->n == 0)
	{
		row = asyncrr_run(&standing_plan, (Datum[]) {UUIDPGetDatum(id)}, NULL);
		if (row->n > 0)
			(void) asyncrr_value(row, 0, 5, &isnull);	/* finished_at */
		return row->n == 0 || !isnull;
	}
	end_requests(1, id, "cancelled", NULL, NULL,
				 cstring_to_text("cancelled: the caller of asyncrr.call is gone"), NULL);
	asyncrr_done(asyncrr_run(&mark_taken_plan, (Datum[]) {UUIDPGetDatum(id)}, NULL));
	return true;
}

/*
 * wait_for_work: the caller's claim privilege on the queue is checked as
 * claim() checks it.
 */
void
asyncrr_check_claimable(text *queue)
{
	Queue		q;

	lookup_queue(queue, "claim", false, &q);
}

/* Would a claim of this queue take something now? */
bool
asyncrr_queue_has_work(text *queue)
{
	bool		isnull;
	AsyncrrRows *found = asyncrr_run(&work_plan,
									 (Datum[]) {PointerGetDatum(queue),
										 TimestampTzGetDatum(GetCurrentTimestamp())},
									 NULL);
	bool		has = DatumGetBool(asyncrr_value(found, 0, 1, &isnull));

	asyncrr_done(found);
	return has;
}

/* ----------------------------------------------------------------
 * For the catalogs of 0.1 and 0.2, whose SQL names these C functions,
 * until ALTER EXTENSION asyncrr UPDATE (and for installing those
 * versions, which validates every C function it creates).  0.3 does not
 * use them.
 * ----------------------------------------------------------------
 */

/*
 * asyncrr._end_request(correlation_id uuid, state text, reply jsonb,
 *                      error text, dead_letter_reason text) RETURNS void
 */
Datum
asyncrr_end_request_sql(PG_FUNCTION_ARGS)
{
	Datum		reply = PG_GETARG_DATUM(2);
	bool		reply_isnull = PG_ARGISNULL(2);

	asyncrr_check_not_null("correlation id", PG_ARGISNULL(0));
	asyncrr_check_not_null("state", PG_ARGISNULL(1));
	SPI_connect();
	end_requests(1, PG_GETARG_UUID_P(0), text_to_cstring(PG_GETARG_TEXT_PP(1)),
				 &reply, &reply_isnull,
				 PG_ARGISNULL(3) ? NULL : PG_GETARG_TEXT_PP(3),
				 PG_ARGISNULL(4) ? NULL : PG_GETARG_TEXT_PP(4));
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * asyncrr._request_for_update(correlation_id uuid, privilege text)
 *     RETURNS asyncrr.request
 */
Datum
asyncrr_request_for_update_sql(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *id = PG_ARGISNULL(0) ? NULL : PG_GETARG_UUID_P(0);
	AsyncrrRows *row;
	bool		isnull;
	Datum		request;

	asyncrr_check_not_null("correlation id", id == NULL);
	SPI_connect();
	check_requests_access(1, id, PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1)));
	row = asyncrr_run(&lock_row_plan, (Datum[]) {UUIDPGetDatum(id)}, NULL);
	if (row->n == 0)
		refuse_unknown_request(id);
	request = SPI_datumTransfer(asyncrr_value(row, 0, 1, &isnull), false, -1);
	SPI_finish();
	PG_RETURN_DATUM(request);
}

/* asyncrr._stale_claim(r asyncrr.request, attempt integer) RETURNS boolean */
Datum
asyncrr_stale_claim_sql(PG_FUNCTION_ARGS)
{
	HeapTupleHeader r;
	Claim		c;
	bool		isnull;
	Datum		value;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	r = PG_GETARG_HEAPTUPLEHEADER(0);
	value = GetAttributeByName(r, "state", &isnull);
	if (isnull)
		elog(ERROR, "asyncrr._stale_claim: a request without a state");
	c.state = TextDatumGetCString(value);
	c.attempt = DatumGetInt32(GetAttributeByName(r, "attempt", &isnull));
	value = GetAttributeByName(r, "claimed_by", &isnull);
	c.claimed_by = isnull ? NULL : DatumGetTextPP(value);
	value = GetAttributeByName(r, "earlier_claimers", &isnull);
	c.earlier_claimers = isnull ? NULL : DatumGetArrayTypeP(value);
	PG_RETURN_BOOL(stale_claim(!PG_ARGISNULL(1), PG_ARGISNULL(1) ? 0 : PG_GETARG_INT32(1), &c));
}

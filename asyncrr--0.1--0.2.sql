/* asyncrr 0.1 -> 0.2: the hot path in C (issue #7) */
\echo Use "ALTER EXTENSION asyncrr UPDATE TO '0.2'" to load this file. \quit

-- The round trip's functions (submit, claim, complete, take_replies) and
-- the helpers every function shares (privilege checks, argument checks,
-- the request lock, fencing, the one place where a request ends) move from
-- SQL and PL/pgSQL to C: src/request.c, src/privilege.c, src/check.c,
-- src/inbox.c.  Signatures, defaults, results, privileges and comments are
-- unchanged (CREATE OR REPLACE keeps grants and comments); so are the
-- rules and the messages.  What changes is the cost: one C call and a few
-- saved plans instead of a dozen nested functions, each with its SET
-- clauses and, for the SQL ones, a parse and plan on every call.
--
-- The functions that run queries keep their pinned search_path, and those
-- on the hot path enable_seqscan off (see asyncrr--0.1.sql) and jit off: a
-- plan with a disabled node costs more than jit_above_cost, and compiling
-- it took 180 ms per claim.

------------------------------------------------------------------------------
-- Helpers
------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION asyncrr._check_not_null(what text, value anyelement) RETURNS void
    LANGUAGE c IMMUTABLE AS 'MODULE_PATHNAME', 'asyncrr_check_not_null_sql';

CREATE OR REPLACE FUNCTION asyncrr._check_positive(what text, value interval) RETURNS void
    LANGUAGE c IMMUTABLE AS 'MODULE_PATHNAME', 'asyncrr_check_positive_sql';

CREATE OR REPLACE FUNCTION asyncrr._is_admin() RETURNS boolean
    LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'asyncrr_is_admin_sql';

CREATE OR REPLACE FUNCTION asyncrr._require(kind text, fn text) RETURNS void
    LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'asyncrr_require_sql';

CREATE OR REPLACE FUNCTION asyncrr._may(queue_name text, privilege text) RETURNS boolean
    LANGUAGE c STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'asyncrr_may_sql';

CREATE OR REPLACE FUNCTION asyncrr._backend_id() RETURNS text
    LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'asyncrr_backend_id_sql';

CREATE OR REPLACE FUNCTION asyncrr._current_inbox() RETURNS asyncrr.inbox
    LANGUAGE c STABLE SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'asyncrr_current_inbox_sql';

CREATE OR REPLACE FUNCTION asyncrr._request_for_update(correlation_id uuid, privilege text DEFAULT NULL)
    RETURNS asyncrr.request
    LANGUAGE c SET search_path = pg_catalog, pg_temp SET enable_seqscan = off SET jit = off
    AS 'MODULE_PATHNAME', 'asyncrr_request_for_update_sql';

CREATE OR REPLACE FUNCTION asyncrr._stale_claim(r asyncrr.request, attempt integer) RETURNS boolean
    LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'asyncrr_stale_claim_sql';

CREATE OR REPLACE FUNCTION asyncrr._end_request(correlation_id uuid, state text, reply jsonb, error text,
                                                dead_letter_reason text) RETURNS void
    LANGUAGE c SET search_path = pg_catalog, pg_temp SET enable_seqscan = off SET jit = off
    AS 'MODULE_PATHNAME', 'asyncrr_end_request_sql';

------------------------------------------------------------------------------
-- The round trip
------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION asyncrr._submit(queue_name text, payload jsonb, timeout interval,
                                           correlation_id uuid, priority integer, headers jsonb,
                                           inbox_name text) RETURNS uuid
    LANGUAGE c SET search_path = pg_catalog, pg_temp SET enable_seqscan = off SET jit = off
    AS 'MODULE_PATHNAME', 'asyncrr_submit';

CREATE OR REPLACE FUNCTION asyncrr.submit(queue_name text, payload jsonb, timeout interval DEFAULT NULL,
                                          correlation_id uuid DEFAULT NULL, priority integer DEFAULT 0,
                                          headers jsonb DEFAULT NULL) RETURNS uuid
    LANGUAGE c SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET enable_seqscan = off SET jit = off
    AS 'MODULE_PATHNAME', 'asyncrr_submit';

CREATE OR REPLACE FUNCTION asyncrr.take_replies(max_replies integer DEFAULT 100)
    RETURNS TABLE(correlation_id uuid, status text, reply jsonb, error text, finished_at timestamptz)
    LANGUAGE c SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET enable_seqscan = off SET jit = off
    AS 'MODULE_PATHNAME', 'asyncrr_take_replies';

CREATE OR REPLACE FUNCTION asyncrr.claim(queue_name text, max_requests integer DEFAULT 1,
                                         lease interval DEFAULT NULL, worker text DEFAULT NULL,
                                         wait interval DEFAULT NULL)
    RETURNS TABLE(correlation_id uuid, payload jsonb, headers jsonb, attempt integer,
                  deadline timestamptz, lease_until timestamptz)
    LANGUAGE c SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET enable_seqscan = off SET jit = off
    AS 'MODULE_PATHNAME', 'asyncrr_claim';

CREATE OR REPLACE FUNCTION asyncrr.complete(correlation_id uuid, reply jsonb, attempt integer) RETURNS text
    LANGUAGE c SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET enable_seqscan = off SET jit = off
    AS 'MODULE_PATHNAME', 'asyncrr_complete';

CREATE OR REPLACE FUNCTION asyncrr.complete(correlation_id uuid, reply jsonb) RETURNS text
    LANGUAGE c SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET enable_seqscan = off SET jit = off
    AS 'MODULE_PATHNAME', 'asyncrr_complete';

------------------------------------------------------------------------------
-- Batch forms: submit and complete many requests in one call
------------------------------------------------------------------------------

CREATE FUNCTION asyncrr.submit_many(queue_name text, payloads jsonb[], timeout interval DEFAULT NULL,
                                    correlation_ids uuid[] DEFAULT NULL, priority integer DEFAULT 0,
                                    headers jsonb DEFAULT NULL) RETURNS SETOF uuid
    LANGUAGE c SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET enable_seqscan = off SET jit = off
    AS 'MODULE_PATHNAME', 'asyncrr_submit_many';
COMMENT ON FUNCTION asyncrr.submit_many(text, jsonb[], interval, uuid[], integer, jsonb) IS
    'submit() for many payloads in one call, all or nothing (correlation_ids, if given, pair with payloads; NULL elements get new ids); returns the ids in payload order';

CREATE FUNCTION asyncrr.complete_many(correlation_ids uuid[], replies jsonb[], attempts integer[] DEFAULT NULL)
    RETURNS TABLE(correlation_id uuid, outcome text)
    LANGUAGE c SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET enable_seqscan = off SET jit = off
    AS 'MODULE_PATHNAME', 'asyncrr_complete_many';
COMMENT ON FUNCTION asyncrr.complete_many(uuid[], jsonb[], integer[]) IS
    'complete() for many claimed requests in one call, replies and attempts paired with the ids; returns each id with what complete() would return for it';

REVOKE ALL ON FUNCTION asyncrr.submit_many(text, jsonb[], interval, uuid[], integer, jsonb),
                       asyncrr.complete_many(uuid[], jsonb[], integer[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION asyncrr.submit_many(text, jsonb[], interval, uuid[], integer, jsonb)
    TO asyncrr_requester, asyncrr_admin;
GRANT EXECUTE ON FUNCTION asyncrr.complete_many(uuid[], jsonb[], integer[])
    TO asyncrr_worker, asyncrr_admin;

------------------------------------------------------------------------------
-- Retention finds requests through the index of taken replies: only the
-- take writes an entry there, not also the completion (one index entry
-- fewer per round trip).  Same query (asyncrr._purge_requests), same order.
------------------------------------------------------------------------------

DROP INDEX asyncrr.request_finished_idx;
CREATE INDEX request_taken_idx ON asyncrr.request (finished_at) WHERE taken_at IS NOT NULL;

------------------------------------------------------------------------------
-- The background worker keeps the planner's statistics of asyncrr.request
-- current.  Sessions keep their plans; a plan made while the table looked
-- empty (new, truncated, or emptied by retention) scans every live request
-- of a queue instead of looking them up, for as long as no ANALYZE
-- invalidates it: claims, completes and takes of 5 to 300 ms with 10,000
-- requests live, measured, until autovacuum got round to it.  The worker
-- analyzes the table whenever it has more than doubled since it was last
-- analyzed, which replans every session's statements.
------------------------------------------------------------------------------

CREATE FUNCTION asyncrr._refresh_statistics() RETURNS integer
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET lock_timeout = '100ms'
AS $$
BEGIN
    IF pg_catalog.pg_stat_get_live_tuples('asyncrr.request'::regclass)
       <= 2 * greatest((SELECT c.reltuples FROM pg_catalog.pg_class c
                                    WHERE c.oid = 'asyncrr.request'::regclass), 0) + 1000 THEN
        RETURN 0;
    END IF;
    ANALYZE asyncrr.request;
    RETURN 1;
EXCEPTION WHEN lock_not_available THEN
    RETURN 0;       -- (auto)vacuum is at it; it updates the statistics too
END
$$;
REVOKE ALL ON FUNCTION asyncrr._refresh_statistics() FROM PUBLIC;

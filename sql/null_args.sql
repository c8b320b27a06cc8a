-- A NULL in any argument of any asyncrr function or procedure is an error
-- or a no-op, never a crash, and never an internal error (XX000) from a
-- user-facing function.  Each function and procedure of schema asyncrr
-- (from pg_proc) is called once per argument, that argument NULL and the
-- others plausible values of their types (a queue that exists, a request
-- claimed by this session, short waits), and the SQLSTATEs seen are listed
-- per user-facing function ("ok": the call returned).  Internal functions
-- (name starting with "_") are called the same way; they may refuse with
-- XX000, which is not listed, as their set changes between versions.
--
-- Everything runs in one transaction that is rolled back, and each call in
-- a subtransaction that is rolled back too, so nothing is left behind and
-- the background worker never sees the fixtures.  CALL asyncrr.call in
-- there is refused, as it must be in a transaction block.
\set VERBOSITY terse
CREATE TEMP TABLE null_arg_outcome (fn regprocedure, arg text, outcome text);

BEGIN;
SET LOCAL statement_timeout = '60s';   -- a call that sleeps long fails the test
SELECT asyncrr.create_queue('na_q', default_timeout => '1 hour', lease => '1 hour');
SELECT asyncrr.submit('na_q', '{}', correlation_id => 'aaaa0000-0000-0000-0000-000000000001');
UNLISTEN *;
SELECT correlation_id, attempt FROM asyncrr.claim('na_q');

DO $$
DECLARE
    p record;
    types oid[];
    names text[];
    n integer;
    vals text[];
    call text;
    outcome text;
BEGIN
    FOR p IN SELECT f.oid, f.proname, f.prokind, f.proargtypes, f.proargnames, f.proargmodes,
                    f.proallargtypes, f.pronargs
               FROM pg_proc f
              WHERE f.pronamespace = 'asyncrr'::regnamespace AND f.prokind IN ('f', 'p')
              ORDER BY f.oid::regprocedure::text
    LOOP
        -- the input arguments (IN, INOUT, VARIADIC), with their names
        IF p.proallargtypes IS NULL THEN
            types := ARRAY(SELECT unnest(p.proargtypes::oid[]));   -- (an oidvector counts from 0)
            names := coalesce(p.proargnames, '{}');
        ELSE
            SELECT array_agg(t ORDER BY i), array_agg(coalesce(p.proargnames[i], '') ORDER BY i)
              INTO types, names
              FROM unnest(p.proallargtypes, p.proargmodes) WITH ORDINALITY AS a(t, m, i)
             WHERE m IN ('i', 'b', 'v');
        END IF;
        n := coalesce(cardinality(types), 0);
        vals := '{}';
        FOR j IN 1 .. n LOOP
            vals := vals || CASE format_type(types[j], NULL)
                WHEN 'text' THEN
                    CASE coalesce(names[j], '')
                        WHEN 'queue_name' THEN quote_literal('na_q')
                        WHEN 'inbox_name' THEN quote_literal('na-inbox')
                        WHEN 'privilege' THEN quote_literal('claim')
                        WHEN 'kind' THEN quote_literal('requester')
                        WHEN 'reason' THEN quote_literal('timeout')
                        WHEN 'state' THEN quote_literal('completed')
                        WHEN 'status' THEN quote_literal('completed')
                        WHEN 'worker' THEN quote_literal('na-worker')
                        ELSE quote_literal('na')
                    END
                WHEN 'name' THEN quote_literal(current_user) || '::name'
                WHEN 'uuid' THEN '''aaaa0000-0000-0000-0000-000000000001''::uuid'
                WHEN 'uuid[]' THEN 'ARRAY[''aaaa0000-0000-0000-0000-000000000001'']::uuid[]'
                WHEN 'jsonb' THEN '''{}''::jsonb'
                WHEN 'jsonb[]' THEN 'ARRAY[''{}'']::jsonb[]'
                WHEN 'integer' THEN CASE names[j] WHEN 'max_priority' THEN '100' ELSE '1' END
                WHEN 'integer[]' THEN 'ARRAY[1]'
                WHEN 'text[]' THEN 'ARRAY[''na_q'']'
                WHEN 'boolean' THEN 'false'
                WHEN 'interval' THEN CASE names[j] WHEN 'max_timeout' THEN '''1 day''::interval'
                                                   ELSE '''10 milliseconds''::interval' END
                WHEN 'timestamp with time zone' THEN 'now()'
                WHEN 'anyelement' THEN '''na''::text'
                WHEN 'asyncrr.request' THEN
                    '(SELECT r FROM asyncrr.request r WHERE r.correlation_id = ''aaaa0000-0000-0000-0000-000000000001'')'
                WHEN 'asyncrr.inbox' THEN '(SELECT i FROM asyncrr.inbox i LIMIT 1)'
                ELSE NULL
            END;
        END LOOP;

        FOR j IN 1 .. n LOOP
            IF array_position(vals, NULL) IS NOT NULL THEN
                INSERT INTO null_arg_outcome
                VALUES (p.oid, coalesce(nullif(names[j], ''), j::text),
                        'no value for type ' || coalesce(format_type(types[array_position(vals, NULL)], NULL), '?'));
                CONTINUE;
            END IF;
            call := format('%s %s(%s)',
                           CASE p.prokind WHEN 'p' THEN 'CALL' ELSE 'SELECT FROM' END,
                           p.oid::regproc::text,
                           (SELECT string_agg(CASE WHEN k = j THEN 'NULL::' || format_type(types[k], NULL)
                                                   ELSE vals[k] END, ', ' ORDER BY k)
                              FROM generate_series(1, n) k));
            BEGIN
                EXECUTE call;
                -- undo whatever it did
                RAISE EXCEPTION USING ERRCODE = 'NAOK0';
            EXCEPTION WHEN OTHERS THEN
                outcome := CASE SQLSTATE WHEN 'NAOK0' THEN 'ok' ELSE SQLSTATE END;
            END;
            INSERT INTO null_arg_outcome VALUES (p.oid, coalesce(nullif(names[j], ''), j::text), outcome);
        END LOOP;
    END LOOP;
END
$$;

-- per user-facing function and procedure, what the NULL arguments got
SELECT fn, string_agg(DISTINCT outcome, ' ' ORDER BY outcome) AS outcomes
  FROM null_arg_outcome
 WHERE fn::text !~ '^asyncrr\._'
 GROUP BY fn ORDER BY fn::text COLLATE "C";
-- which argument got an internal error (expected: no rows)
SELECT fn, arg FROM null_arg_outcome
 WHERE fn::text !~ '^asyncrr\._' AND outcome = 'XX000' ORDER BY fn::text COLLATE "C", arg;
-- the internal functions were called too; every function was called
-- (expected: 0 calls left out for want of a value of some type)
SELECT count(DISTINCT fn) FILTER (WHERE fn::text ~ '^asyncrr\._') > 10 AS internal_functions_called,
       count(*) FILTER (WHERE outcome IS NULL OR outcome LIKE 'no value%') AS not_called
  FROM null_arg_outcome;
ROLLBACK;

DROP TABLE null_arg_outcome;
-- the server is up, and the fixtures are gone
SELECT 1 AS up, (SELECT count(*) FROM asyncrr.queue WHERE queue_name = 'na_q') AS queues;

-- Upgrading: a database on asyncrr 0.1 keeps its queues and requests in
-- flight through ALTER EXTENSION asyncrr UPDATE, and then has exactly what
-- a new install has.
\set VERBOSITY terse
-- what a new install has: functions (body, settings, privileges), tables,
-- indexes and views of schema asyncrr
SELECT md5(string_agg(d, E'\n' ORDER BY d)) AS fresh FROM (
    SELECT format('%s(%s) %s %s %s %s %s %s %s', p.proname, pg_get_function_arguments(p.oid),
                  pg_get_function_result(p.oid), p.prosrc, p.probin, p.proconfig, p.prosecdef,
                  p.provolatile, p.proacl) AS d
      FROM pg_proc p WHERE p.pronamespace = 'asyncrr'::regnamespace
    UNION ALL SELECT indexdef FROM pg_indexes WHERE schemaname = 'asyncrr'
    UNION ALL SELECT format('%s %s', viewname, definition) FROM pg_views WHERE schemaname = 'asyncrr'
    UNION ALL SELECT format('%s %s', c.relname, c.relacl) FROM pg_class c
     WHERE c.relnamespace = 'asyncrr'::regnamespace AND c.relkind IN ('r', 'v')) x \gset

CREATE DATABASE regress_upgrade;
\c regress_upgrade
\set VERBOSITY terse
CREATE EXTENSION asyncrr VERSION '0.1';
SELECT extversion FROM pg_extension WHERE extname = 'asyncrr';
SELECT asyncrr.create_queue('up', default_timeout => '1 hour');
SELECT asyncrr.open_inbox('up-inbox');
UNLISTEN *;   -- keep this session's own notifications (they name its PID) out of the output
SELECT asyncrr.submit('up', '{"v": 1}', correlation_id => 'f0000000-0000-0000-0000-000000000001');
SELECT asyncrr.submit('up', '{"v": 2}', correlation_id => 'f0000000-0000-0000-0000-000000000002');
SELECT correlation_id, attempt FROM asyncrr.claim('up', 1);

ALTER EXTENSION asyncrr UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'asyncrr';

-- claimed under 0.1, completed under 0.2; submitted under 0.1, claimed and
-- completed under 0.2; each reply taken once
SELECT asyncrr.complete('f0000000-0000-0000-0000-000000000001', '{"r": 1}', attempt => 1);
SELECT correlation_id, attempt FROM asyncrr.claim('up', 1);
SELECT * FROM asyncrr.complete_many(ARRAY['f0000000-0000-0000-0000-000000000002']::uuid[],
                                    ARRAY['{"r": 2}']::jsonb[]);
SELECT correlation_id, status, reply FROM asyncrr.take_replies() ORDER BY 1;
SELECT count(*) AS left_over FROM asyncrr.take_replies();

SELECT md5(string_agg(d, E'\n' ORDER BY d)) = :'fresh' AS same_as_new_install FROM (
    SELECT format('%s(%s) %s %s %s %s %s %s %s', p.proname, pg_get_function_arguments(p.oid),
                  pg_get_function_result(p.oid), p.prosrc, p.probin, p.proconfig, p.prosecdef,
                  p.provolatile, p.proacl) AS d
      FROM pg_proc p WHERE p.pronamespace = 'asyncrr'::regnamespace
    UNION ALL SELECT indexdef FROM pg_indexes WHERE schemaname = 'asyncrr'
    UNION ALL SELECT format('%s %s', viewname, definition) FROM pg_views WHERE schemaname = 'asyncrr'
    UNION ALL SELECT format('%s %s', c.relname, c.relacl) FROM pg_class c
     WHERE c.relnamespace = 'asyncrr'::regnamespace AND c.relkind IN ('r', 'v')) x;

\c contrib_regression
DROP DATABASE regress_upgrade;

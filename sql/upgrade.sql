-- Upgrading: a database on asyncrr 0.1 keeps its queues and requests in
-- flight through ALTER EXTENSION asyncrr UPDATE, and then has exactly what
-- a new install has.
\set VERBOSITY terse
-- what a new install has: functions (body, settings, privileges), tables,
-- indexes and views of schema asyncrr
\i test/asyncrr_catalog.sql
SELECT md5(string_agg(d, E'\n' ORDER BY d)) AS fresh FROM asyncrr_catalog \gset

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

\i test/asyncrr_catalog.sql
SELECT md5(string_agg(d, E'\n' ORDER BY d)) = :'fresh' AS same_as_new_install FROM asyncrr_catalog;

\c contrib_regression
DROP DATABASE regress_upgrade;

-- Upgrading: a database on asyncrr 0.1 or 0.2 keeps its queues, inboxes,
-- requests, replies and dead letters through ALTER EXTENSION asyncrr
-- UPDATE, and then has exactly what a new install (asyncrr--0.3.sql) has.
\set VERBOSITY terse

-- what a new install has (test/asyncrr_catalog.sql), in a database of its
-- own: nothing the other suites did to contrib_regression counts
CREATE DATABASE regress_fresh;
\c regress_fresh
\set VERBOSITY terse
CREATE EXTENSION asyncrr;
SELECT extversion FROM pg_extension WHERE extname = 'asyncrr';
\set ECHO none
\i test/asyncrr_catalog.sql
\set ECHO all
SELECT kind, count(*) FROM asyncrr_catalog GROUP BY kind ORDER BY kind;
SELECT json_agg(json_build_array(kind, d)) AS fresh FROM asyncrr_catalog \gset
\c contrib_regression
DROP DATABASE regress_fresh;

------------------------------------------------------------------------------
-- From 0.1, in one step: requests of every kind made under 0.1 end under 0.3
------------------------------------------------------------------------------
CREATE DATABASE regress_upgrade;
\c regress_upgrade
\set VERBOSITY terse
CREATE EXTENSION asyncrr VERSION '0.1';
SELECT extversion FROM pg_extension WHERE extname = 'asyncrr';
SELECT asyncrr.create_queue('up', default_timeout => '1 hour');
SELECT asyncrr.create_queue('up-once', default_timeout => '1 hour', max_attempts => 1);
SELECT asyncrr.open_inbox('up-inbox');
UNLISTEN *;   -- keep this session's own notifications (they name its PID) out of the output
SELECT asyncrr.submit('up', '{"v": 1}', correlation_id => 'f0000000-0000-0000-0000-000000000001');
SELECT asyncrr.submit('up', '{"v": 2}', correlation_id => 'f0000000-0000-0000-0000-000000000002');
SELECT asyncrr.submit('up', '{"v": 3}', correlation_id => 'f0000000-0000-0000-0000-000000000003');
SELECT asyncrr.submit('up-once', '{"v": 4}', correlation_id => 'f0000000-0000-0000-0000-000000000004');
SELECT correlation_id, attempt FROM asyncrr.claim('up', 2);
SELECT correlation_id, attempt FROM asyncrr.claim('up-once', 1);
-- 1: claimed; 2: completed, reply not taken; 3: pending; 4: dead letter
SELECT asyncrr.complete('f0000000-0000-0000-0000-000000000002', '{"r": 2}', attempt => 1);
SELECT asyncrr.fail('f0000000-0000-0000-0000-000000000004', 'boom', attempt => 1, retry => true);

ALTER EXTENSION asyncrr UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'asyncrr';
SELECT correlation_id, state FROM asyncrr.pending ORDER BY 1;
SELECT correlation_id, reason, last_error FROM asyncrr.dead_letters;
SELECT name, durable, untaken_replies, live_requests FROM asyncrr.inboxes;

-- claimed under 0.1, completed under 0.3; submitted under 0.1, claimed and
-- completed under 0.3; dead-lettered under 0.1, redriven, claimed and
-- completed under 0.3; each reply taken once
SELECT asyncrr.complete('f0000000-0000-0000-0000-000000000001', '{"r": 1}', attempt => 1);
SELECT correlation_id, attempt FROM asyncrr.claim('up', 1);
SELECT * FROM asyncrr.complete_many(ARRAY['f0000000-0000-0000-0000-000000000003']::uuid[],
                                    ARRAY['{"r": 3}']::jsonb[]);
SELECT asyncrr.redrive('f0000000-0000-0000-0000-000000000004') IS NOT NULL AS redriven;
SELECT correlation_id AS redriven_id, payload, attempt FROM asyncrr.claim('up-once', 1) \gset
SELECT :'payload' AS payload, :attempt AS attempt;
SELECT asyncrr.complete(:'redriven_id', '{"r": 4}', attempt => :attempt);
SELECT status, reply FROM asyncrr.take_replies() ORDER BY reply::text;
SELECT count(*) AS left_over FROM asyncrr.take_replies();
SELECT state, dead_letter_reason LIKE 'max_attempts (redriven as %)' AS redriven
  FROM asyncrr.status('f0000000-0000-0000-0000-000000000004');
SELECT count(*) AS dead_letters FROM asyncrr.dead_letters;

-- and then it has what a new install has: nothing only in one of them
\set ECHO none
\i test/asyncrr_catalog.sql
\set ECHO all
SELECT * FROM pg_temp.asyncrr_catalog_diff(:'fresh');

\c contrib_regression
DROP DATABASE regress_upgrade;

------------------------------------------------------------------------------
-- From 0.2: requests of every kind, and a durable inbox that no session
-- holds, go through asyncrr--0.2--0.3.sql.  The requests are submitted
-- and claimed under 0.1, and completed, dead-lettered and left in their
-- inbox under 0.2 (the 0.3 library serves both catalogs until updated).
------------------------------------------------------------------------------
CREATE DATABASE regress_upgrade;
\c regress_upgrade
\set VERBOSITY terse
CREATE EXTENSION asyncrr VERSION '0.1';
SELECT asyncrr.create_queue('up2', default_timeout => '1 hour');
SELECT asyncrr.create_queue('up2-once', default_timeout => '1 hour', max_attempts => 1);
SELECT asyncrr.open_inbox('up2-inbox');
UNLISTEN *;
SELECT asyncrr.submit('up2', '{"v": 1}', correlation_id => 'e0000000-0000-0000-0000-000000000001');
SELECT asyncrr.submit('up2', '{"v": 2}', correlation_id => 'e0000000-0000-0000-0000-000000000002');
SELECT asyncrr.submit('up2', '{"v": 3}', correlation_id => 'e0000000-0000-0000-0000-000000000003');
SELECT asyncrr.submit('up2-once', '{"v": 4}', correlation_id => 'e0000000-0000-0000-0000-000000000004');
SELECT correlation_id, attempt FROM asyncrr.claim('up2', 2);
SELECT correlation_id, attempt FROM asyncrr.claim('up2-once', 1);

ALTER EXTENSION asyncrr UPDATE TO '0.2';
SELECT extversion FROM pg_extension WHERE extname = 'asyncrr';
-- 1: claimed; 2: completed, reply not taken; 3: pending; 4: dead letter;
-- the inbox released, its replies waiting
SELECT asyncrr.complete('e0000000-0000-0000-0000-000000000002', '{"r": 2}', attempt => 1);
SELECT asyncrr.fail('e0000000-0000-0000-0000-000000000004', 'boom', attempt => 1, retry => true);
SELECT asyncrr.close_inbox();
SELECT name, durable, holder_pid IS NULL AS free, untaken_replies, live_requests FROM asyncrr.inboxes;

ALTER EXTENSION asyncrr UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'asyncrr';

-- in a new session: the durable inbox is taken up again, the claim made
-- under 0.1 completed, the pending request claimed and completed, the dead
-- letter redriven, claimed and completed; each reply taken once
\c regress_upgrade
\set VERBOSITY terse
SELECT asyncrr.open_inbox('up2-inbox');
UNLISTEN *;
SELECT name, durable, holder_pid = pg_backend_pid() AS held, untaken_replies, live_requests
  FROM asyncrr.inboxes;
SELECT correlation_id, state FROM asyncrr.pending ORDER BY 1;
SELECT correlation_id, reason, last_error FROM asyncrr.dead_letters;
SELECT correlation_id, status, reply FROM asyncrr.take_replies() ORDER BY 1;
SELECT asyncrr.complete('e0000000-0000-0000-0000-000000000001', '{"r": 1}', attempt => 1);
SELECT correlation_id, attempt FROM asyncrr.claim('up2', 1);
SELECT asyncrr.complete('e0000000-0000-0000-0000-000000000003', '{"r": 3}', attempt => 1);
SELECT asyncrr.redrive('e0000000-0000-0000-0000-000000000004') IS NOT NULL AS redriven;
SELECT correlation_id AS redriven_id, payload, attempt FROM asyncrr.claim('up2-once', 1) \gset
SELECT :'payload' AS payload, :attempt AS attempt;
SELECT asyncrr.complete(:'redriven_id', '{"r": 4}', attempt => :attempt);
SELECT status, reply FROM asyncrr.take_replies() ORDER BY reply::text;
SELECT count(*) AS left_over FROM asyncrr.take_replies();
SELECT count(*) AS live FROM asyncrr.pending;
SELECT count(*) AS dead_letters FROM asyncrr.dead_letters;

\set ECHO none
\i test/asyncrr_catalog.sql
\set ECHO all
SELECT * FROM pg_temp.asyncrr_catalog_diff(:'fresh');

\c contrib_regression
DROP DATABASE regress_upgrade;

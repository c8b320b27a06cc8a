-- The background worker ends what no client ends: deadlines, expired
-- leases, replies whose requester is gone, and what retention allows.
-- (test/regress.conf: asyncrr.precision = 50ms, asyncrr.orphan_grace = 1s)
--
-- The worker acts on its own time, so each check polls with wait_until()
-- (sql/00_install.sql), capped at 20 s.

-- the worker runs, visible in pg_stat_activity (it may still be starting:
-- it retries each second until pg_regress has created this database)
SELECT wait_until($$SELECT EXISTS (SELECT 1 FROM pg_stat_activity
                    WHERE backend_type = 'asyncrr worker' AND datname = current_database())$$);
SELECT backend_type, application_name FROM pg_stat_activity
 WHERE backend_type = 'asyncrr worker';

SELECT asyncrr.create_queue('worker_q', default_timeout => '1 second', lease => '1 second',
                            max_attempts => 2);
-- a durable inbox; psql would print notifications with PIDs, so stop listening
SELECT asyncrr.open_inbox('worker-test');
UNLISTEN *;

-- 1. Deadlines: a request nobody claims is timed out, never before its
--    deadline, with a timed_out reply and a dead letter (reason timeout).
SELECT asyncrr.submit('worker_q', '{"n": 1}', correlation_id => '00000000-0000-0000-0001-000000000001');
-- a claimed request times out too, and its dead letter keeps attempt and worker
SELECT asyncrr.submit('worker_q', '{"n": 2}', timeout => '1 second', correlation_id => '00000000-0000-0000-0001-000000000002');
SELECT attempt FROM asyncrr.claim('worker_q', lease => '1 hour', worker => 'slow-worker');
SELECT wait_until($$SELECT count(*) = 2 FROM asyncrr.request
                    WHERE correlation_id::text LIKE '00000000-0000-0000-0001-%' AND state = 'timed_out'$$);
SELECT correlation_id, state, finished_at >= deadline AS not_early, error, dead_letter_reason
  FROM asyncrr.request WHERE correlation_id::text LIKE '00000000-0000-0000-0001-%' ORDER BY 1;
SELECT correlation_id, reason, attempt, worker, payload FROM asyncrr.dead_letters
 WHERE correlation_id::text LIKE '00000000-0000-0000-0001-%' ORDER BY 1;
SELECT correlation_id, status, reply, error FROM asyncrr.take_replies() ORDER BY 1;

-- A late complete after the timeout returns "late" and the reply is kept
-- on the dead letter for audit; nothing is sent.
SELECT asyncrr.complete('00000000-0000-0000-0001-000000000002', '{"late": true}');
SELECT late_reply FROM asyncrr.dead_letters WHERE correlation_id = '00000000-0000-0000-0001-000000000002';
SELECT count(*) AS new_replies FROM asyncrr.take_replies();

-- 2. Leases: a claim whose lease runs out goes back to pending (attempt
--    stays, the next claim makes it attempt 2); when the expired attempt
--    was the last of max_attempts (2), the request is dead-lettered.
SELECT asyncrr.submit('worker_q', '{"n": 3}', timeout => '1 minute', correlation_id => '00000000-0000-0000-0002-000000000001');
SELECT correlation_id, attempt FROM asyncrr.claim('worker_q', worker => 'crashing-worker');
SELECT wait_until($$SELECT state = 'pending' FROM asyncrr.request
                    WHERE correlation_id = '00000000-0000-0000-0002-000000000001'$$);
SELECT state, attempt, error FROM asyncrr.status('00000000-0000-0000-0002-000000000001');
SELECT correlation_id, attempt FROM asyncrr.claim('worker_q', worker => 'crashing-worker');
SELECT wait_until($$SELECT state = 'dead_lettered' FROM asyncrr.request
                    WHERE correlation_id = '00000000-0000-0000-0002-000000000001'$$);
SELECT state, attempt, error, dead_letter_reason FROM asyncrr.status('00000000-0000-0000-0002-000000000001');
SELECT reason, attempt, worker FROM asyncrr.dead_letters
 WHERE correlation_id = '00000000-0000-0000-0002-000000000001';
SELECT correlation_id, status, error FROM asyncrr.take_replies();

-- extend_lease keeps a claim alive past its original lease
SELECT asyncrr.submit('worker_q', '{"n": 4}', timeout => '1 minute', correlation_id => '00000000-0000-0000-0002-000000000002');
SELECT correlation_id, attempt FROM asyncrr.claim('worker_q', lease => '1 second');
SELECT asyncrr.extend_lease('00000000-0000-0000-0002-000000000002', '1 hour') > now() + interval '50 minutes' AS extended;
SELECT pg_sleep(1.5);
SELECT state, attempt FROM asyncrr.status('00000000-0000-0000-0002-000000000002');
SELECT asyncrr.complete('00000000-0000-0000-0002-000000000002', '{"done": 4}');
SELECT correlation_id, status, reply FROM asyncrr.take_replies();
SELECT asyncrr.close_inbox();

-- 3. Orphaned inboxes: a reply waiting in the session inbox of a session
--    that has ended moves to the dead letters (reason requester_gone)
--    after asyncrr.orphan_grace; the request keeps its outcome.
\c
SELECT asyncrr.submit('worker_q', '{"n": 5}', timeout => '1 minute', correlation_id => '00000000-0000-0000-0003-000000000001');
UNLISTEN *;  -- the session inbox's channel has this backend's PID in it
SELECT asyncrr.submit('worker_q', '{"n": 6}', timeout => '1 minute', correlation_id => '00000000-0000-0000-0003-000000000002');
SELECT count(*) FROM asyncrr.claim('worker_q', 2, lease => '1 hour');
SELECT asyncrr.complete('00000000-0000-0000-0003-000000000001', '{"done": 5}');
-- a request that timed out and was redriven keeps no dead letter
SELECT asyncrr.submit('worker_q', '{"n": 8}', timeout => '1 second', correlation_id => '00000000-0000-0000-0003-000000000004');
SELECT wait_until($$SELECT state = 'timed_out' FROM asyncrr.request
                    WHERE correlation_id = '00000000-0000-0000-0003-000000000004'$$);
SELECT asyncrr.redrive('00000000-0000-0000-0003-000000000004') IS NOT NULL AS redriven;
\c
-- the first reply waits in a dead session's inbox; the second request is
-- still live, and its reply follows the same path when it comes
SELECT wait_until($$SELECT count(*) = 1 FROM asyncrr.dead_letters
                    WHERE correlation_id::text LIKE '00000000-0000-0000-0003-%'$$);
SELECT asyncrr.complete('00000000-0000-0000-0003-000000000002', '{"done": 6}');
SELECT wait_until($$SELECT count(*) = 2 FROM asyncrr.dead_letters
                    WHERE correlation_id::text LIKE '00000000-0000-0000-0003-%'$$);
SELECT correlation_id, reason, reply FROM asyncrr.dead_letters
 WHERE correlation_id::text LIKE '00000000-0000-0000-0003-%' ORDER BY 1;
SELECT correlation_id, state, dead_letter_reason FROM asyncrr.status('00000000-0000-0000-0003-000000000001');
-- the redriven request's timed_out reply is dropped from the dead inbox,
-- but it does not come back as a dead letter (it would be redriven twice)
SELECT wait_until($$SELECT taken_at IS NOT NULL FROM asyncrr.request
                    WHERE correlation_id = '00000000-0000-0000-0003-000000000004'$$);
SELECT count(*) AS dead_letters_of_redriven FROM asyncrr.dead_letter
 WHERE correlation_id = '00000000-0000-0000-0003-000000000004';
SELECT state, dead_letter_reason FROM asyncrr.request
 WHERE redriven_from = '00000000-0000-0000-0003-000000000004';
-- and once nothing is left in it, the session inbox itself goes away
SELECT wait_until($$SELECT NOT EXISTS (SELECT 1 FROM asyncrr.inboxes i
                     WHERE NOT i.durable AND i.holder_pid IS NULL)$$);

-- Durable inboxes are never orphaned: the holder is released, the replies stay.
SELECT asyncrr.open_inbox('worker-durable');
UNLISTEN *;
SELECT asyncrr.submit('worker_q', '{"n": 7}', timeout => '1 minute', correlation_id => '00000000-0000-0000-0003-000000000003');
SELECT count(*) FROM asyncrr.claim('worker_q', lease => '1 hour');
SELECT asyncrr.complete('00000000-0000-0000-0003-000000000003', '{"done": 7}');
\c
SELECT wait_until($$SELECT holder_pid IS NULL FROM asyncrr.inboxes WHERE name = 'worker-durable'$$);
SELECT pg_sleep(1.5);  -- longer than orphan_grace
SELECT name, durable, untaken_replies FROM asyncrr.inboxes WHERE name = 'worker-durable';
SELECT asyncrr.open_inbox('worker-durable') \; UNLISTEN *;
SELECT correlation_id, status, reply FROM asyncrr.take_replies();
SELECT asyncrr.close_inbox();

-- 4. Retention: ended requests whose reply was taken are removed after
--    asyncrr.retention, unless a dead letter still refers to them; dead
--    letters after asyncrr.dead_letter_retention.
ALTER SYSTEM SET asyncrr.retention = '1s';
SELECT pg_reload_conf();
SELECT wait_until($$SELECT NOT EXISTS (SELECT 1 FROM asyncrr.request
                    WHERE correlation_id = '00000000-0000-0000-0002-000000000002')$$);
-- timed out and dead-lettered requests stay while their dead letter does
SELECT count(*) FROM asyncrr.request WHERE correlation_id::text LIKE '00000000-0000-0000-0001-%';
ALTER SYSTEM SET asyncrr.dead_letter_retention = '1s';
SELECT pg_reload_conf();
SELECT wait_until($$SELECT NOT EXISTS (SELECT 1 FROM asyncrr.dead_letter
                    WHERE correlation_id::text LIKE '00000000-0000-0000-000%')$$);
SELECT wait_until($$SELECT NOT EXISTS (SELECT 1 FROM asyncrr.request
                    WHERE correlation_id::text LIKE '00000000-0000-0000-000%')$$);
ALTER SYSTEM RESET asyncrr.retention;
ALTER SYSTEM RESET asyncrr.dead_letter_retention;
SELECT pg_reload_conf();

-- 5. The plans of the worker's steps, and of every other statement asyncrr
--    runs on asyncrr.request, are checked in test/t/011_plans.pl: captured
--    with auto_explain from the statements themselves (the worker's own
--    among them), at 0, 100,000 and 1,000,000 live requests and with stale
--    statistics.

SELECT asyncrr.drop_queue('worker_q');

-- 6. No plan depends on the statistics (5.), and autovacuum keeps them
-- current anyway: asyncrr.request, whose rows are updated several times
-- each and deleted in bulk, is vacuumed and analyzed at a small fraction of
-- changed rows; neither it nor asyncrr.dead_letter has its trailing empty
-- pages truncated by vacuum (an ACCESS EXCLUSIVE lock on a busy table).
SELECT relname, unnest(reloptions) AS setting FROM pg_class
 WHERE oid IN ('asyncrr.request'::regclass, 'asyncrr.dead_letter'::regclass)
 ORDER BY 1, 2;

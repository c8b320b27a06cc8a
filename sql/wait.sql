-- Waiting without LISTEN, within one session: asyncrr.wait, claim with
-- wait, CALL asyncrr.call.  (Wake-ups across sessions, cancellation and
-- pgbouncer are in test/t/005_wait.pl and test/t/006_pgbouncer.pl.)
SELECT asyncrr.create_queue('wait_q', default_timeout => '1 minute', lease => '1 minute');
SELECT asyncrr.open_inbox('wait-test');
UNLISTEN *;  -- psql would print notifications with PIDs

-- A reply that exists is returned at once, and taken: take_replies does
-- not hand it out again, and neither does a second wait.
SELECT asyncrr.submit('wait_q', '{"n": 1}', correlation_id => 'e5000000-0000-0000-0000-000000000001');
SELECT count(*) FROM asyncrr.claim('wait_q');
SELECT asyncrr.complete('e5000000-0000-0000-0000-000000000001', '{"r": 1}');
SELECT correlation_id, status, reply, error, finished_at IS NOT NULL AS finished
  FROM asyncrr.wait('e5000000-0000-0000-0000-000000000001', '5 seconds');
SELECT count(*) AS replies_left FROM asyncrr.take_replies();
\set VERBOSITY terse
SELECT * FROM asyncrr.wait('e5000000-0000-0000-0000-000000000001');
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY default

-- When the timeout passes first: one row with the live state and no reply,
-- and nothing is taken.
SELECT asyncrr.submit('wait_q', '{"n": 2}', correlation_id => 'e5000000-0000-0000-0000-000000000002');
SELECT clock_timestamp() AS before \gset
SELECT correlation_id, status, reply, error, finished_at
  FROM asyncrr.wait('e5000000-0000-0000-0000-000000000002', '200 milliseconds');
SELECT clock_timestamp() - :'before' >= interval '200 milliseconds' AS waited_the_timeout;
SELECT count(*) FROM asyncrr.claim('wait_q');
SELECT correlation_id, status, reply FROM asyncrr.wait('e5000000-0000-0000-0000-000000000002', '0');
SELECT asyncrr.fail('e5000000-0000-0000-0000-000000000002', 'no such thing');
-- the failed reply is still there for take_replies: the waits took nothing
SELECT correlation_id, status, error FROM asyncrr.take_replies();

-- Refused: an unknown id, an id of another inbox (the same error, so ids
-- cannot be probed), NULLs, a negative timeout, and isolation levels that
-- could never see the reply commit.
\set VERBOSITY terse
SELECT * FROM asyncrr.wait('e5000000-0000-0000-0000-00000000ffff');
\echo :LAST_ERROR_SQLSTATE
SELECT asyncrr.close_inbox();
SELECT asyncrr.open_inbox('wait-other');
UNLISTEN *;
SELECT * FROM asyncrr.wait('e5000000-0000-0000-0000-000000000001');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM asyncrr.wait(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT asyncrr.submit('wait_q', '{"n": 3}', correlation_id => 'e5000000-0000-0000-0000-000000000003');
SELECT * FROM asyncrr.wait('e5000000-0000-0000-0000-000000000003', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM asyncrr.wait('e5000000-0000-0000-0000-000000000003', '-1 second');
\echo :LAST_ERROR_SQLSTATE
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT * FROM asyncrr.wait('e5000000-0000-0000-0000-000000000003', '1 second');
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT count(*) FROM asyncrr.claim('wait_q', wait => '1 second');
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
\set VERBOSITY default
SELECT asyncrr.cancel('e5000000-0000-0000-0000-000000000003');
SELECT asyncrr.close_inbox();

-- claim with wait: on an empty queue it sleeps for the wait, then returns
-- no rows; with work it returns at once.
SELECT clock_timestamp() AS before \gset
SELECT count(*) FROM asyncrr.claim('wait_q', wait => '200 milliseconds');
SELECT clock_timestamp() - :'before' >= interval '200 milliseconds' AS waited_the_wait;
SELECT count(*) FROM asyncrr.claim('wait_q', wait => '0');
\set VERBOSITY terse
SELECT count(*) FROM asyncrr.claim('wait_q', wait => '-1 second');
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY default

-- CALL asyncrr.call refuses to run inside a transaction block, before it
-- writes anything.
SELECT count(*) AS requests_before FROM asyncrr.request \gset
BEGIN;
CALL asyncrr.call('wait_q', '{"n": 4}');
ROLLBACK;
CALL asyncrr.call('no_such_queue', '{"n": 4}');
SELECT count(*) = :requests_before AS nothing_written FROM asyncrr.request;

-- With nobody claiming, the call ends at the request's deadline: the
-- request is timed out exactly as the worker would, and the call says so.
CALL asyncrr.call('wait_q', '{"n": 5}', timeout => '300 milliseconds',
                  correlation_id => 'e5000000-0000-0000-0000-000000000005');
SELECT state, error, dead_letter_reason FROM asyncrr.status('e5000000-0000-0000-0000-000000000005');
-- its reply was handed out to the call and to nobody else, and no
-- session inbox was opened for it
SELECT taken_at IS NOT NULL AS taken, inbox_name FROM asyncrr.request
 WHERE correlation_id = 'e5000000-0000-0000-0000-000000000005';
SELECT count(*) AS session_inboxes FROM asyncrr.inboxes WHERE holder_pid = pg_backend_pid();

-- statement_timeout ends a wait like any statement, and frees its slot
SET statement_timeout = '200ms';
SELECT count(*) FROM asyncrr.claim('wait_q', wait => '1 minute');
RESET statement_timeout;

-- A transaction that changed requests cannot be prepared, preloaded or not
-- (test/t/004_not_preloaded.pl): its commit wakes waiters, which COMMIT
-- PREPARED, later and elsewhere, could not do (NOTIFY has the same rule).
SELECT asyncrr.open_inbox('wait-prepared');
UNLISTEN *;
BEGIN;
SELECT asyncrr.submit('wait_q', '{"n": 6}') IS NOT NULL AS submitted;
PREPARE TRANSACTION 'asyncrr_wait_test';
SELECT count(*) AS prepared FROM pg_prepared_xacts;
SELECT count(*) AS submitted FROM asyncrr.pending WHERE queue_name = 'wait_q';
SELECT asyncrr.close_inbox();
-- nor a submit that writes nothing (it repeats a request): it holds the
-- queue's lock, which a prepared transaction would keep without end
SELECT asyncrr.submit('wait_q', '{"n": 7}', correlation_id => 'e5000000-0000-0000-0000-000000000007') IS NOT NULL AS submitted;
UNLISTEN *;
BEGIN;
SELECT asyncrr.submit('wait_q', '{"n": 7}', correlation_id => 'e5000000-0000-0000-0000-000000000007') IS NOT NULL AS repeated;
PREPARE TRANSACTION 'asyncrr_wait_test_2';
SELECT count(*) AS prepared FROM pg_prepared_xacts;
SELECT asyncrr.cancel('e5000000-0000-0000-0000-000000000007');
SELECT asyncrr.close_inbox();

-- nobody is left waiting
SELECT count(*) AS waiters FROM asyncrr.waiters;
SELECT asyncrr.purge_dead_letters('0') >= 1 AS purged;
SELECT asyncrr.drop_queue('wait_q');

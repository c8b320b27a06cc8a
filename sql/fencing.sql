-- Fencing: a worker whose claim expired and was handed to another worker
-- (the attempt moved on) can no longer end the request or extend its
-- lease; the newer attempt's outcome is never overwritten.
-- (test/regress.conf: asyncrr.precision = 50ms.  The two-argument forms,
-- fenced per backend, need two live sessions: specs/claim-superseded.spec.)
\set VERBOSITY terse
SELECT asyncrr.create_queue('fn_q', default_timeout => '1 hour', lease => '1 hour', max_attempts => 3);
SELECT asyncrr.open_inbox('fn-inbox');
UNLISTEN *;   -- psql would print notifications with PIDs
SELECT asyncrr.submit('fn_q', '{"job": 1}', correlation_id => 'f0000000-0000-0000-0000-000000000001');

-- worker 1 claims with a lease of 1 second (attempt 1) ...
SELECT correlation_id, attempt FROM asyncrr.claim('fn_q', lease => '1 second', worker => 'w1');
-- ... the lease runs out and the background worker returns it to pending
SELECT wait_until($$SELECT state = 'pending' FROM asyncrr.status('f0000000-0000-0000-0000-000000000001')$$);
SELECT state, attempt, error FROM asyncrr.status('f0000000-0000-0000-0000-000000000001');
-- even before anyone claims it again, attempt 1 is over
SELECT asyncrr.complete('f0000000-0000-0000-0000-000000000001', '{"from": "w1"}', attempt => 1);
SELECT asyncrr.extend_lease('f0000000-0000-0000-0000-000000000001', '1 hour', attempt => 1);
\echo :LAST_ERROR_SQLSTATE

-- worker 2, another session, claims it: attempt 2
\c
SELECT asyncrr.open_inbox('fn-inbox');
UNLISTEN *;
SELECT correlation_id, attempt FROM asyncrr.claim('fn_q', lease => '1 hour', worker => 'w2');
SELECT attempt, claimed_by LIKE pg_backend_pid() || '.%' AS mine, cardinality(earlier_claimers) AS earlier
  FROM asyncrr.request WHERE correlation_id = 'f0000000-0000-0000-0000-000000000001';

-- worker 1 comes back: complete and fail with attempt 1 are "late" and
-- write nothing; extend_lease is refused (55000)
SELECT row(r.*)::text AS before FROM asyncrr.request r
 WHERE correlation_id = 'f0000000-0000-0000-0000-000000000001' \gset
SELECT asyncrr.complete('f0000000-0000-0000-0000-000000000001', '{"from": "w1"}', attempt => 1);
SELECT asyncrr.fail('f0000000-0000-0000-0000-000000000001', 'w1 failed', attempt => 1);
SELECT asyncrr.fail('f0000000-0000-0000-0000-000000000001', 'w1 failed', attempt => 1, retry => true);
\set VERBOSITY default
\set SHOW_CONTEXT never
SELECT asyncrr.extend_lease('f0000000-0000-0000-0000-000000000001', '1 hour', attempt => 1);
\set VERBOSITY terse
SELECT row(r.*)::text = :'before' AS nothing_written FROM asyncrr.request r
 WHERE correlation_id = 'f0000000-0000-0000-0000-000000000001';
SELECT state, attempt, worker, reply FROM asyncrr.status('f0000000-0000-0000-0000-000000000001');

-- worker 2's claim is current: its heartbeat and its complete succeed
SELECT asyncrr.extend_lease('f0000000-0000-0000-0000-000000000001', '2 hours', attempt => 2) > now() AS extended;
SELECT asyncrr.complete('f0000000-0000-0000-0000-000000000001', '{"from": "w2"}', attempt => 2);
-- afterwards: worker 1 is still "late" (its reply is not kept: it never
-- had the current claim), worker 2 again is "duplicate"
SELECT asyncrr.complete('f0000000-0000-0000-0000-000000000001', '{"from": "w1"}', attempt => 1);
SELECT asyncrr.complete('f0000000-0000-0000-0000-000000000001', '{"from": "w2"}', attempt => 2);
SELECT state, attempt, worker, reply FROM asyncrr.status('f0000000-0000-0000-0000-000000000001');
SELECT correlation_id, status, reply FROM asyncrr.take_replies();

-- With the right attempt after the request ended otherwise, the usual
-- outcomes: a timed-out or cancelled request is "late" and keeps the reply
SELECT asyncrr.submit('fn_q', '{"job": 2}', correlation_id => 'f0000000-0000-0000-0000-000000000002');
SELECT correlation_id, attempt FROM asyncrr.claim('fn_q', worker => 'w2');
SELECT asyncrr.cancel('f0000000-0000-0000-0000-000000000002');
SELECT asyncrr.complete('f0000000-0000-0000-0000-000000000002', '{"done": 2}', attempt => 1);
SELECT state, reply FROM asyncrr.status('f0000000-0000-0000-0000-000000000002');

-- fail with the current attempt and retry: back to pending, then attempt 2
SELECT asyncrr.submit('fn_q', '{"job": 3}', correlation_id => 'f0000000-0000-0000-0000-000000000003');
SELECT correlation_id, attempt FROM asyncrr.claim('fn_q');
SELECT asyncrr.fail('f0000000-0000-0000-0000-000000000003', 'flaky', attempt => 1, retry => true);
-- attempt 1 ended with that retry
SELECT asyncrr.complete('f0000000-0000-0000-0000-000000000003', '{}', attempt => 1);
SELECT correlation_id, attempt FROM asyncrr.claim('fn_q');
SELECT asyncrr.fail('f0000000-0000-0000-0000-000000000003', 'broken', attempt => 2);

-- bad attempts
SELECT asyncrr.complete('f0000000-0000-0000-0000-000000000003', '{}', attempt => 0);
\echo :LAST_ERROR_SQLSTATE
SELECT asyncrr.fail('f0000000-0000-0000-0000-000000000003', 'x', attempt => -1);
\echo :LAST_ERROR_SQLSTATE
-- NULL attempt: as the two-argument form
SELECT asyncrr.complete('f0000000-0000-0000-0000-000000000003', '{}', attempt => NULL);
SELECT correlation_id, status, error FROM asyncrr.take_replies() ORDER BY 1;

-- clean up
SELECT asyncrr.close_inbox();
SELECT asyncrr.drop_queue('fn_q');
DELETE FROM asyncrr.inbox WHERE inbox_name = 'fn-inbox';

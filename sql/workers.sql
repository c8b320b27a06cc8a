-- Workers: claim (order, lease, worker label, attempts), complete, fail
-- (failed / retrying / dead_lettered), duplicate outcomes and extend_lease.
\set VERBOSITY terse
SELECT asyncrr.create_queue('wk_main', lease => '1 minute', max_attempts => 2);
SELECT asyncrr.create_queue('wk_once', max_attempts => 1);
SELECT asyncrr.open_inbox() IS NOT NULL AS opened;
UNLISTEN *;   -- keep this session's own notifications (they name its PID) out of the output

-- an empty queue hands out nothing
SELECT count(*) AS claimed FROM asyncrr.claim('wk_main');

-- claim hands out the highest priority first, then the oldest
SELECT asyncrr.submit('wk_main', '{"n": 1}', correlation_id => 'c1000000-0000-0000-0000-000000000001');
SELECT asyncrr.submit('wk_main', '{"n": 2}', correlation_id => 'c1000000-0000-0000-0000-000000000002', priority => 5);
SELECT asyncrr.submit('wk_main', '{"n": 3}', correlation_id => 'c1000000-0000-0000-0000-000000000003',
                      headers => '{"h": "v"}');
SELECT asyncrr.submit('wk_main', '{"n": 4}', correlation_id => 'c1000000-0000-0000-0000-000000000004', priority => -1);
SELECT asyncrr.submit('wk_main', '{"n": 5}', correlation_id => 'c1000000-0000-0000-0000-000000000005', priority => 5);
-- the lease is the queue's (1 minute) unless given, counted from the moment
-- of the claim; attempt counts from 1; deadline is the request's
SELECT c.correlation_id, c.payload, c.headers, c.attempt,
       c.deadline = s.deadline AS deadline_ok,
       c.lease_until BETWEEN now() + interval '1 minute' AND clock_timestamp() + interval '1 minute' AS lease_ok
  FROM asyncrr.claim('wk_main', 2, worker => 'w-a') c, asyncrr.status(c.correlation_id) s ORDER BY 1;
SELECT c.correlation_id, c.payload, c.headers, c.attempt,
       c.lease_until BETWEEN now() + interval '5 minutes' AND clock_timestamp() + interval '5 minutes' AS lease_ok
  FROM asyncrr.claim('wk_main', 1, lease => '5 minutes', worker => 'w-b') c;
-- the worker label defaults to application_name, else 'pid <pid>'
SELECT correlation_id FROM asyncrr.claim('wk_main');
SELECT worker = current_setting('application_name') AS app_name
  FROM asyncrr.status('c1000000-0000-0000-0000-000000000003');
SET application_name = '';
SELECT correlation_id FROM asyncrr.claim('wk_main');
SELECT worker = 'pid ' || pg_backend_pid() AS pid_label
  FROM asyncrr.status('c1000000-0000-0000-0000-000000000004');
RESET application_name;
SELECT count(*) AS claimed FROM asyncrr.claim('wk_main', 10);
SELECT correlation_id, state, attempt, worker IN ('w-a', 'w-b') AS named, lease_until IS NOT NULL AS leased
  FROM asyncrr.pending WHERE queue_name = 'wk_main' ORDER BY 1;

-- complete: "completed", then "duplicate" for any later complete or fail;
-- the first reply stands
SELECT asyncrr.complete('c1000000-0000-0000-0000-000000000002', '{"r": 2}');
SELECT asyncrr.complete('c1000000-0000-0000-0000-000000000002', '{"r": "again"}');
SELECT asyncrr.fail('c1000000-0000-0000-0000-000000000002', 'oops');
SELECT state, attempt, worker, reply, error, finished_at IS NOT NULL AS finished
  FROM asyncrr.status('c1000000-0000-0000-0000-000000000002');

-- fail without retry: "failed", the error is the reply; then "duplicate"
SELECT asyncrr.fail('c1000000-0000-0000-0000-000000000005', 'bad input');
SELECT asyncrr.fail('c1000000-0000-0000-0000-000000000005', 'bad input', retry => true);
SELECT asyncrr.complete('c1000000-0000-0000-0000-000000000005', '{"r": 5}');
SELECT state, attempt, reply, error FROM asyncrr.status('c1000000-0000-0000-0000-000000000005');

-- fail with retry while attempts are left: "retrying"; the request is
-- pending again (no reply is sent) and the next claim is attempt 2
SELECT asyncrr.fail('c1000000-0000-0000-0000-000000000001', 'try again', retry => true);
SELECT state, attempt, error, finished_at FROM asyncrr.status('c1000000-0000-0000-0000-000000000001');
SELECT correlation_id, attempt FROM asyncrr.claim('wk_main', worker => 'w-c');
-- the last attempt used up: "dead_lettered" (reason max_attempts)
SELECT asyncrr.fail('c1000000-0000-0000-0000-000000000001', 'still broken', retry => true);
SELECT state, attempt, worker, error, dead_letter_reason FROM asyncrr.status('c1000000-0000-0000-0000-000000000001');
SELECT correlation_id, reason, attempt, worker, last_error, payload
  FROM asyncrr.dead_letters WHERE queue_name = 'wk_main' ORDER BY 1;
-- a later complete of a dead-lettered request is "late"; the reply is kept
-- on the dead letter for audit
SELECT asyncrr.complete('c1000000-0000-0000-0000-000000000001', '{"r": 1}');
SELECT late_reply FROM asyncrr.dead_letters WHERE correlation_id = 'c1000000-0000-0000-0000-000000000001';

-- max_attempts 1: the first retry is already dead_lettered
SELECT asyncrr.submit('wk_once', '{"n": 6}', correlation_id => 'c1000000-0000-0000-0000-000000000006');
SELECT correlation_id, attempt FROM asyncrr.claim('wk_once');
SELECT asyncrr.fail('c1000000-0000-0000-0000-000000000006', 'no luck', retry => true);

-- extend_lease moves the lease end to extra from the time of the call
-- (the clock, not the start of the transaction: here 1.5 s later, and a
-- 1-second extension must not end in the past) and returns it
BEGIN;
SELECT pg_sleep(1.5);
SELECT asyncrr.extend_lease('c1000000-0000-0000-0000-000000000003', '1 second') > clock_timestamp() AS ahead;
SELECT asyncrr.extend_lease('c1000000-0000-0000-0000-000000000003', '10 minutes') AS new_end \gset
SELECT :'new_end'::timestamptz BETWEEN clock_timestamp() + interval '9 minutes' AND clock_timestamp() + interval '10 minutes' AS extended,
       :'new_end'::timestamptz > now() + interval '10 minutes' AS after_transaction_start;
SELECT lease_until = :'new_end' AS stored
  FROM asyncrr.pending WHERE correlation_id = 'c1000000-0000-0000-0000-000000000003';
COMMIT;
SELECT lease_until AS lease_before FROM asyncrr.pending
 WHERE correlation_id = 'c1000000-0000-0000-0000-000000000003' \gset
-- ... and is an error once the claim is no longer current (ended, or
-- back to pending), or for a non-positive extension or an unknown id
SELECT asyncrr.extend_lease('c1000000-0000-0000-0000-000000000002', '1 minute');
\echo :LAST_ERROR_SQLSTATE
SELECT asyncrr.fail('c1000000-0000-0000-0000-000000000004', 'again', retry => true);
SELECT asyncrr.extend_lease('c1000000-0000-0000-0000-000000000004', '1 minute');
\echo :LAST_ERROR_SQLSTATE
SELECT asyncrr.extend_lease('c1000000-0000-0000-0000-000000000003', '0 seconds');
\echo :LAST_ERROR_SQLSTATE
SELECT asyncrr.extend_lease('c1000000-0000-0000-0000-000000000003', '-1 minute');
\echo :LAST_ERROR_SQLSTATE
SELECT asyncrr.extend_lease('c1000000-0000-0000-0000-000000000003', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT asyncrr.extend_lease('c1000000-0000-0000-0000-0000000000ff', '1 minute');
\echo :LAST_ERROR_SQLSTATE
SELECT lease_until = :'lease_before' AS lease_unchanged
  FROM asyncrr.pending WHERE correlation_id = 'c1000000-0000-0000-0000-000000000003';

-- completing or failing an unclaimed (pending) request is an error and
-- changes nothing
SELECT correlation_id, state, attempt FROM asyncrr.pending
 WHERE queue_name = 'wk_main' ORDER BY 1;
SELECT asyncrr.complete('c1000000-0000-0000-0000-000000000004', '{"r": 4}');
\echo :LAST_ERROR_SQLSTATE
SELECT asyncrr.fail('c1000000-0000-0000-0000-000000000004', 'nope');
\echo :LAST_ERROR_SQLSTATE
-- unknown and NULL ids, NULL error or retry
SELECT asyncrr.complete('c1000000-0000-0000-0000-0000000000ff', '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT asyncrr.complete(NULL, '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT asyncrr.fail('c1000000-0000-0000-0000-0000000000ff', 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT asyncrr.fail('c1000000-0000-0000-0000-000000000003', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT asyncrr.fail('c1000000-0000-0000-0000-000000000003', 'x', retry => NULL);
\echo :LAST_ERROR_SQLSTATE
-- a reply over asyncrr.max_payload_bytes (1MB) is refused; the request
-- stays claimed
SELECT asyncrr.complete('c1000000-0000-0000-0000-000000000003',
                        jsonb_build_object('big', repeat('x', 1100000)));
\echo :LAST_ERROR_SQLSTATE
SELECT correlation_id, state, attempt FROM asyncrr.pending
 WHERE queue_name = 'wk_main' ORDER BY 1;
-- claim errors: unknown or NULL queue, max_requests below 1, non-positive lease
SELECT * FROM asyncrr.claim('wk_missing');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM asyncrr.claim(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM asyncrr.claim('wk_main', 0);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM asyncrr.claim('wk_main', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM asyncrr.claim('wk_main', lease => '0 seconds');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM asyncrr.claim('wk_main', lease => '-1 second');
\echo :LAST_ERROR_SQLSTATE
SELECT correlation_id, state, attempt FROM asyncrr.pending
 WHERE queue_name = 'wk_main' ORDER BY 1;

-- finish: c...3 completes, c...4 is claimed again (attempt 2) and fails
SELECT asyncrr.complete('c1000000-0000-0000-0000-000000000003', '{"r": 3}');
SELECT correlation_id, attempt FROM asyncrr.claim('wk_main');
SELECT asyncrr.fail('c1000000-0000-0000-0000-000000000004', 'gave up');

-- the requester gets one reply per request, in the order they ended
SELECT correlation_id, status, reply, error FROM asyncrr.take_replies();

-- clean up
SELECT asyncrr.drop_queue('wk_main');
SELECT asyncrr.drop_queue('wk_once');

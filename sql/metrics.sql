-- asyncrr.metrics: one row per queue and measure, built on queue_stats
-- (whose visibility it keeps), and the instance-wide measures (queue_name
-- NULL): waiters, and in asyncrr.database the dispatcher's backlog and the
-- worker's last pass.  Values that depend on time are shown as booleans.
\set VERBOSITY terse
SELECT current_user AS super \gset

SELECT asyncrr.create_queue('mt_a', default_timeout => '1 hour', lease => '1 hour', max_attempts => 1);
SELECT asyncrr.create_queue('mt_b');
SELECT asyncrr.open_inbox('mt_inbox');
UNLISTEN *;   -- keep this session's own notifications (they name its PID) out of the output

-- in mt_a, one request of each outcome, one claimed and two pending; mt_b empty
SELECT asyncrr.submit('mt_a', '{"n": 1}', correlation_id => 'f3000000-0000-0000-0000-000000000001');
SELECT correlation_id FROM asyncrr.claim('mt_a');
SELECT asyncrr.complete('f3000000-0000-0000-0000-000000000001', '{}', attempt => 1);
SELECT asyncrr.submit('mt_a', '{"n": 2}', correlation_id => 'f3000000-0000-0000-0000-000000000002');
SELECT correlation_id FROM asyncrr.claim('mt_a');
SELECT asyncrr.fail('f3000000-0000-0000-0000-000000000002', 'bad', attempt => 1);
SELECT asyncrr.submit('mt_a', '{"n": 3}', correlation_id => 'f3000000-0000-0000-0000-000000000003');
SELECT correlation_id FROM asyncrr.claim('mt_a');
SELECT asyncrr.fail('f3000000-0000-0000-0000-000000000003', 'again', attempt => 1, retry => true);  -- dead_lettered
SELECT asyncrr.submit('mt_a', '{"n": 4}', correlation_id => 'f3000000-0000-0000-0000-000000000004');
SELECT asyncrr.cancel('f3000000-0000-0000-0000-000000000004');
SELECT asyncrr.submit('mt_a', '{"n": 5}', correlation_id => 'f3000000-0000-0000-0000-000000000005');
SELECT correlation_id FROM asyncrr.claim('mt_a');   -- left claimed
SELECT asyncrr.submit('mt_a', '{"n": 6}', correlation_id => 'f3000000-0000-0000-0000-000000000006');
SELECT asyncrr.submit('mt_a', '{"n": 7}', correlation_id => 'f3000000-0000-0000-0000-000000000007');
-- timed out by the background worker
SELECT asyncrr.submit('mt_a', '{"n": 8}', correlation_id => 'f3000000-0000-0000-0000-000000000008',
                      timeout => '10 milliseconds');
SELECT wait_until($$SELECT state = 'timed_out'
                      FROM asyncrr.status('f3000000-0000-0000-0000-000000000008')$$) AS timed_out;

-- the measures of each queue: counts exact, the oldest pending age as a
-- boolean (0 when nothing is pending)
SELECT queue_name, measure,
       CASE WHEN measure = 'oldest_pending_age_seconds' AND queue_name = 'mt_a'
            THEN (value > 0 AND value < 3600)::text ELSE value::text END AS value
  FROM asyncrr.metrics WHERE queue_name LIKE 'mt\_%' ORDER BY 1, 2;

-- the same numbers as queue_stats, measure by measure
SELECT count(*) AS compared, bool_and(m.value = v.value) AS same
  FROM asyncrr.queue_stats s
 CROSS JOIN LATERAL (VALUES ('pending', s.pending), ('claimed', s.claimed),
                            ('completed', s.completed), ('failed', s.failed),
                            ('timed_out', s.timed_out), ('cancelled', s.cancelled),
                            ('dead_lettered', s.dead_lettered),
                            ('dead_letters', s.dead_letters)) AS v(measure, value)
  JOIN asyncrr.metrics m ON m.queue_name = s.queue_name AND m.measure = v.measure
 WHERE s.queue_name LIKE 'mt\_%';

-- the instance-wide measures, in asyncrr.database: nobody waits now; the
-- dispatcher has sent everything; the worker passes often, and starts a
-- pass soon after what it found due (here asyncrr.precision is 50 ms:
-- both take well under 10 s)
SELECT wait_until($$SELECT count(*) = 2 FROM asyncrr.metrics
                    WHERE queue_name IS NULL AND measure LIKE 'worker\_%'$$) AS worker_passed,
       wait_until($$SELECT value = 0 FROM asyncrr.metrics
                    WHERE queue_name IS NULL AND measure = 'dispatcher_backlog'$$) AS dispatched;
SELECT measure,
       CASE WHEN measure LIKE 'worker\_%' THEN (value >= 0 AND value < 10)::text
            ELSE value::text END AS value
  FROM asyncrr.metrics WHERE queue_name IS NULL ORDER BY 1;

-- every measure has its help text
SELECT DISTINCT measure, help FROM asyncrr.metrics
 WHERE queue_name IS NULL OR queue_name LIKE 'mt\_%' ORDER BY 1;

-- and the raw facts behind the last three
SELECT dispatcher_backlog, worker_pass_started <= worker_pass_ended AS pass_ordered,
       worker_pass_ended <= clock_timestamp() AS pass_ended, worker_lag >= '0' AS lag_known
  FROM asyncrr.background_stats();

------------------------------------------------------------------------------
-- Who sees what: as in queue_stats.
------------------------------------------------------------------------------
CREATE ROLE regress_mt_req LOGIN IN ROLE asyncrr_requester;
CREATE ROLE regress_mt_wrk LOGIN IN ROLE asyncrr_worker;
CREATE ROLE regress_mt_stranger LOGIN IN ROLE asyncrr_requester;
CREATE ROLE regress_mt_nobody LOGIN;
SELECT asyncrr.grant_queue('mt_a', 'regress_mt_req', 'submit');
SELECT asyncrr.grant_queue('mt_a', 'regress_mt_wrk', 'claim');

-- a requester with submit on mt_a: mt_a only, counting its own requests
\c - regress_mt_req
SELECT asyncrr.open_inbox('mt_req') \; UNLISTEN *;
SELECT asyncrr.submit('mt_a', '{"n": 9}', correlation_id => 'f3000000-0000-0000-0000-000000000009');
SELECT queue_name, measure, value FROM asyncrr.metrics
 WHERE queue_name IS NOT NULL AND measure IN ('pending', 'claimed', 'completed', 'dead_letters')
 ORDER BY 1, 2;
SELECT asyncrr.close_inbox();
-- a worker with claim on mt_a: every request of mt_a counted
\c - regress_mt_wrk
SELECT queue_name, measure, value FROM asyncrr.metrics
 WHERE queue_name IS NOT NULL AND measure IN ('pending', 'claimed', 'completed', 'dead_letters')
 ORDER BY 1, 2;
-- a requester without any grant: no queue, the instance-wide measures only
\c - regress_mt_stranger
SELECT coalesce(queue_name, '(instance)') AS queue_name, count(*)
  FROM asyncrr.metrics GROUP BY 1 ORDER BY 1;
-- a role without an asyncrr role: refused
\c - regress_mt_nobody
SELECT count(*) FROM asyncrr.metrics;
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM asyncrr.background_stats();
\echo :LAST_ERROR_SQLSTATE

------------------------------------------------------------------------------
-- In another database than asyncrr.database: no dispatcher, no worker
-- there, so no rows for them; the queues and waiters as anywhere.
------------------------------------------------------------------------------
\c - :super
CREATE DATABASE regress_metrics_other;
\c regress_metrics_other
\set VERBOSITY terse
CREATE EXTENSION asyncrr;
SELECT asyncrr.create_queue('mt_elsewhere');
SELECT coalesce(queue_name, '(instance)') AS queue_name, measure, value
  FROM asyncrr.metrics ORDER BY 1, 2;
SELECT * FROM asyncrr.background_stats();
\c contrib_regression
DROP DATABASE regress_metrics_other;

-- clean up
SELECT asyncrr.open_inbox('mt_inbox') \; UNLISTEN *;
SELECT asyncrr.cancel(correlation_id) FROM asyncrr.pending WHERE queue_name = 'mt_a' ORDER BY 1;
SELECT count(*) AS taken FROM asyncrr.take_replies();
SELECT asyncrr.close_inbox();
\c - regress_mt_req
SELECT asyncrr.open_inbox('mt_req') \; UNLISTEN *;
SELECT count(*) AS taken FROM asyncrr.take_replies();
SELECT asyncrr.close_inbox();
\c - :super
DELETE FROM asyncrr.dead_letter WHERE queue_name = 'mt_a';
SELECT asyncrr.drop_queue('mt_a');
SELECT asyncrr.drop_queue('mt_b');
DELETE FROM asyncrr.inbox WHERE inbox_name IN ('mt_inbox', 'mt_req');
DROP ROLE regress_mt_req, regress_mt_wrk, regress_mt_stranger, regress_mt_nobody;

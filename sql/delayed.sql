-- Delayed requests: submit(not_before => ...) is not claimable before its
-- time; its deadline counts from it; the background worker (precision 50ms
-- here) makes it claimable when the time comes.
\set VERBOSITY terse
SELECT asyncrr.create_queue('dl_q', default_timeout => '1 hour');
UNLISTEN *;

-- an hour from now: pending, shown with its time, claimable by nobody
SELECT asyncrr.submit('dl_q', '{"pay": 1}', correlation_id => '16d00000-0000-0000-0000-000000000001',
                      not_before => now() + interval '1 hour');
UNLISTEN *;
SELECT state, not_before - submitted_at AS delay, deadline - not_before AS timeout
  FROM asyncrr.pending WHERE correlation_id = '16d00000-0000-0000-0000-000000000001';
SELECT state, deadline - submitted_at AS deadline_after
  FROM asyncrr.status('16d00000-0000-0000-0000-000000000001');
SELECT count(*) AS claimed FROM asyncrr.claim('dl_q', 10);
CALL asyncrr.wait_for_work('dl_q', '0 seconds');

-- a time that has come means now: claimable at once, deadline from now
SELECT asyncrr.submit('dl_q', '{"pay": 2}', correlation_id => '16d00000-0000-0000-0000-000000000002',
                      not_before => now() - interval '1 day');
SELECT not_before FROM asyncrr.pending WHERE correlation_id = '16d00000-0000-0000-0000-000000000002';
SELECT deadline - submitted_at AS deadline_after FROM asyncrr.status('16d00000-0000-0000-0000-000000000002');
SELECT correlation_id, payload FROM asyncrr.claim('dl_q', 10);

-- submit_many: all with the same time
SELECT count(*) AS submitted
  FROM asyncrr.submit_many('dl_q', ARRAY['{"m": 1}', '{"m": 2}']::jsonb[],
                           not_before => clock_timestamp() + interval '300 milliseconds');
SELECT count(*) AS claimed_now FROM asyncrr.claim('dl_q', 10);
-- the worker makes them claimable within its precision (50ms here)
SELECT pg_sleep(0.4);
DO $$
BEGIN
    FOR i IN 1..100 LOOP
        EXIT WHEN NOT EXISTS (SELECT 1 FROM asyncrr.pending WHERE queue_name = 'dl_q'
                                 AND not_before IS NOT NULL AND not_before < now() + interval '1 minute');
        PERFORM pg_sleep(0.05);
    END LOOP;
END $$;
SELECT payload FROM asyncrr.claim('dl_q', 10) ORDER BY payload::text;

-- queue_stats: a delayed request is not pending (waiting to be claimed)
-- and its age counts from its time
SELECT pending, delayed, claimed, oldest_pending_age FROM asyncrr.queue_stats WHERE queue_name = 'dl_q';

-- a delayed request counts towards max_depth
SELECT asyncrr.alter_queue('dl_q', max_depth => 4);
SELECT asyncrr.submit('dl_q', '{"full": true}');
SELECT asyncrr.alter_queue('dl_q', max_depth => 100);

-- cancel and drop_queue(force) end delayed requests like any other
SELECT asyncrr.cancel('16d00000-0000-0000-0000-000000000001');
SELECT state, error FROM asyncrr.status('16d00000-0000-0000-0000-000000000001');
SELECT asyncrr.submit('dl_q', '{"pay": 3}', correlation_id => '16d00000-0000-0000-0000-000000000003',
                      not_before => now() + interval '1 hour');
SELECT asyncrr.drop_queue('dl_q');
SELECT asyncrr.drop_queue('dl_q', force => true);
SELECT state, dead_letter_reason FROM asyncrr.status('16d00000-0000-0000-0000-000000000003');

-- bad times: an error naming the value, nothing written
SELECT asyncrr.create_queue('dl_q2');
-- a deadline past the end of time
SELECT asyncrr.submit('dl_q2', '{}', timeout => '1 day', not_before => '294276-12-31 00:00:00+00');
-- max_timeout bounds a request's whole life, its delay included
SELECT asyncrr.alter_queue('dl_q2', max_timeout => '1 hour');
DO $$
BEGIN
    PERFORM asyncrr.submit('dl_q2', '{}', timeout => '10 minutes', not_before => now() + interval '2 hours');
EXCEPTION WHEN invalid_parameter_value THEN
    RAISE NOTICE '%', regexp_replace(SQLERRM, '"[^"]*" with', '"(two hours from now)" with');
END $$;
SELECT asyncrr.submit('dl_q2', '{}', timeout => '10 minutes', not_before => now() + interval '30 minutes') IS NOT NULL AS within;
SELECT asyncrr.cancel(correlation_id) FROM asyncrr.pending WHERE queue_name = 'dl_q2';
SELECT asyncrr.submit('dl_q2', '{}', not_before => 'infinity');
SELECT asyncrr.submit('dl_q2', '{}', not_before => '-infinity');
SELECT count(*) AS written FROM asyncrr.pending WHERE queue_name = 'dl_q2';
SELECT asyncrr.drop_queue('dl_q2');
SELECT status, count(*) FROM asyncrr.take_replies() GROUP BY 1 ORDER BY 1;

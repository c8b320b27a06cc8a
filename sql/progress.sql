-- Progress reports: report_progress() by the worker holding the claim;
-- status() shows the latest, kept after the end and on a dead letter.
-- (The notification, status "progress": specs/progress-vs-complete.spec.)
\set VERBOSITY terse
SELECT asyncrr.create_queue('pg_q', default_timeout => '1 hour', lease => '1 hour', max_attempts => 1);
UNLISTEN *;
SELECT asyncrr.submit('pg_q', '{"job": 1}', correlation_id => '16b00000-0000-0000-0000-000000000001');
SELECT asyncrr.submit('pg_q', '{"job": 2}', correlation_id => '16b00000-0000-0000-0000-000000000002');
UNLISTEN *;
SELECT progress, progress_at FROM asyncrr.status('16b00000-0000-0000-0000-000000000001');

-- still pending: as complete(), an error
SELECT asyncrr.report_progress('16b00000-0000-0000-0000-000000000001', '{"pct": 0}');
SELECT count(*) FROM asyncrr.claim('pg_q', 2);
SELECT lease_until AS lease_before FROM asyncrr.pending
 WHERE correlation_id = '16b00000-0000-0000-0000-000000000001' \gset
SELECT asyncrr.report_progress('16b00000-0000-0000-0000-000000000001', '{"pct": 40}');
SELECT asyncrr.report_progress('16b00000-0000-0000-0000-000000000001', '{"pct": 60, "step": "resize"}', 1);
SELECT progress, progress_at IS NOT NULL AS reported, progress_at <= clock_timestamp() AS in_the_past
  FROM asyncrr.status('16b00000-0000-0000-0000-000000000001');
-- the lease is not changed
SELECT lease_until = :'lease_before' AS same_lease FROM asyncrr.pending
 WHERE correlation_id = '16b00000-0000-0000-0000-000000000001';
-- another attempt's report records nothing
SELECT asyncrr.report_progress('16b00000-0000-0000-0000-000000000001', '{"pct": 99}', 2);
SELECT progress FROM asyncrr.status('16b00000-0000-0000-0000-000000000001');

-- after the end: false, nothing recorded; the last one stays
SELECT asyncrr.complete('16b00000-0000-0000-0000-000000000001', '{"done": true}');
SELECT asyncrr.report_progress('16b00000-0000-0000-0000-000000000001', '{"pct": 100}');
SELECT state, progress FROM asyncrr.status('16b00000-0000-0000-0000-000000000001');
-- take_replies hands out the outcome only
SELECT status, reply FROM asyncrr.take_replies();

-- the dead letter keeps it too
SELECT asyncrr.report_progress('16b00000-0000-0000-0000-000000000002', '{"pct": 10}');
SELECT asyncrr.fail('16b00000-0000-0000-0000-000000000002', 'broke', retry => true);
SELECT reason, progress, progress_at IS NOT NULL AS reported
  FROM asyncrr.dead_letters WHERE correlation_id = '16b00000-0000-0000-0000-000000000002';
SELECT state, progress FROM asyncrr.status('16b00000-0000-0000-0000-000000000002');

-- bad input: an error naming it, nothing written
SELECT asyncrr.report_progress('16b00000-0000-0000-0000-0000000000ff', '{}');
SELECT asyncrr.report_progress(NULL, '{}');
SELECT asyncrr.submit('pg_q', '{"job": 3}', correlation_id => '16b00000-0000-0000-0000-000000000003');
UNLISTEN *;
SELECT count(*) FROM asyncrr.claim('pg_q');
SELECT asyncrr.report_progress('16b00000-0000-0000-0000-000000000003', NULL);
SELECT asyncrr.report_progress('16b00000-0000-0000-0000-000000000003', 'null');
SELECT asyncrr.report_progress('16b00000-0000-0000-0000-000000000003', jsonb_build_object('blob', repeat('x', 1100000)));
SELECT asyncrr.report_progress('16b00000-0000-0000-0000-000000000003', '{}', 0);
SELECT progress FROM asyncrr.status('16b00000-0000-0000-0000-000000000003');

-- a worker role without claim on the queue: as an unknown id
CREATE ROLE regress_pg_worker LOGIN IN ROLE asyncrr_worker;
SET ROLE regress_pg_worker;
SELECT asyncrr.report_progress('16b00000-0000-0000-0000-000000000003', '{"pct": 1}');
RESET ROLE;
DROP ROLE regress_pg_worker;
SELECT asyncrr.drop_queue('pg_q', force => true);
SELECT count(*) >= 0 AS drained FROM asyncrr.take_replies();

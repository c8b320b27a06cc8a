-- alter_queue: changing a queue's settings (NULL leaves one as it is), and
-- max_depth, the backpressure bound on a queue's live requests: a submit
-- over it fails at once (53400) and writes nothing.
\set VERBOSITY terse
SELECT asyncrr.create_queue('aq_main', default_timeout => '1 hour', lease => '5 minutes', max_attempts => 2);
CREATE TEMP VIEW aq_settings AS
SELECT queue_name, default_timeout, lease, max_attempts, max_depth FROM asyncrr.queue
 WHERE queue_name LIKE 'aq\_%';
TABLE aq_settings;

-- each setting alone; NULL (the default) leaves the others as they are
SELECT asyncrr.alter_queue('aq_main', default_timeout => '2 hours');
SELECT asyncrr.alter_queue('aq_main', lease => '10 minutes');
SELECT asyncrr.alter_queue('aq_main', max_attempts => 5);
SELECT asyncrr.alter_queue('aq_main', max_depth => 100);
TABLE aq_settings;
SELECT asyncrr.alter_queue('aq_main');
SELECT asyncrr.alter_queue('aq_main', NULL, NULL, NULL, NULL);
TABLE aq_settings;
-- all at once
SELECT asyncrr.alter_queue('aq_main', '30 minutes', '1 minute', 3, 2);
TABLE aq_settings;

-- new requests and claims use the new settings
SELECT asyncrr.open_inbox('aq-inbox');
UNLISTEN *;   -- psql would print notifications with PIDs
SELECT asyncrr.submit('aq_main', '{"n": 1}', correlation_id => 'a7000000-0000-0000-0000-000000000001');
SELECT deadline - submitted_at AS timeout FROM asyncrr.status('a7000000-0000-0000-0000-000000000001');
SELECT max_attempts FROM asyncrr.request WHERE correlation_id = 'a7000000-0000-0000-0000-000000000001';
SELECT correlation_id, lease_until BETWEEN now() + interval '1 minute' AND clock_timestamp() + interval '1 minute' AS queue_lease
  FROM asyncrr.claim('aq_main');

-- max_depth 2: the second request fills the queue ...
SELECT asyncrr.submit('aq_main', '{"n": 2}', correlation_id => 'a7000000-0000-0000-0000-000000000002');
SELECT queue_name, pending, claimed, max_depth FROM asyncrr.queue_stats WHERE queue_name = 'aq_main';
-- ... a third is refused at once (claimed requests count: they are live),
-- and writes nothing
SELECT count(*) AS requests FROM asyncrr.request WHERE queue_name = 'aq_main' \gset
\set VERBOSITY default
\set SHOW_CONTEXT never
SELECT asyncrr.submit('aq_main', '{"n": 3}', correlation_id => 'a7000000-0000-0000-0000-000000000003');
\set VERBOSITY terse
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) = :requests AS nothing_written FROM asyncrr.request WHERE queue_name = 'aq_main';
SELECT count(*) AS status_rows FROM asyncrr.status('a7000000-0000-0000-0000-000000000003');
-- a full queue refuses even a session that has no inbox yet, and opens none
\c
SELECT asyncrr.submit('aq_main', '{"n": 3}');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS my_inboxes FROM asyncrr.inboxes WHERE holder_pid = pg_backend_pid();
SELECT asyncrr.open_inbox('aq-inbox');
UNLISTEN *;
-- a repeat of a request already in the queue is still accepted: it adds nothing
SELECT asyncrr.submit('aq_main', '{"n": 2}', correlation_id => 'a7000000-0000-0000-0000-000000000002');
-- once a request ends there is room again
SELECT asyncrr.complete('a7000000-0000-0000-0000-000000000001', '{"r": 1}');
SELECT asyncrr.submit('aq_main', '{"n": 3}', correlation_id => 'a7000000-0000-0000-0000-000000000003');
-- a bound lowered below the queue's depth keeps what is there and refuses new ones
SELECT asyncrr.alter_queue('aq_main', max_depth => 1);
SELECT count(*) AS live FROM asyncrr.pending WHERE queue_name = 'aq_main';
SELECT asyncrr.submit('aq_main', '{"n": 4}');
\echo :LAST_ERROR_SQLSTATE
-- "unlimited" again: a bound no queue reaches
SELECT asyncrr.alter_queue('aq_main', max_depth => 2147483647);
SELECT asyncrr.submit('aq_main', '{"n": 4}', correlation_id => 'a7000000-0000-0000-0000-000000000004');
-- redrive (an administrator's decision) is not held to max_depth
SELECT asyncrr.alter_queue('aq_main', max_attempts => 1);
SELECT asyncrr.submit('aq_main', '{"n": 5}', priority => 9, correlation_id => 'a7000000-0000-0000-0000-000000000005');
SELECT asyncrr.alter_queue('aq_main', max_depth => 1);
SELECT correlation_id, attempt FROM asyncrr.claim('aq_main');
SELECT asyncrr.fail('a7000000-0000-0000-0000-000000000005', 'give up', retry => true);
SELECT count(*) AS live FROM asyncrr.pending WHERE queue_name = 'aq_main';
SELECT asyncrr.redrive('a7000000-0000-0000-0000-000000000005') IS NOT NULL AS redriven;
SELECT count(*) AS live FROM asyncrr.pending WHERE queue_name = 'aq_main';

-- Bad input: unknown queue 42704, NULL queue 22004, non-positive settings
-- 22023; nothing is changed
SELECT row(q.*)::text AS before FROM asyncrr.queue q WHERE queue_name = 'aq_main' \gset
SELECT asyncrr.alter_queue('aq_missing', max_depth => 5);
\echo :LAST_ERROR_SQLSTATE
SELECT asyncrr.alter_queue(NULL, max_depth => 5);
\echo :LAST_ERROR_SQLSTATE
SELECT asyncrr.alter_queue('aq_main', default_timeout => '0 seconds');
\echo :LAST_ERROR_SQLSTATE
SELECT asyncrr.alter_queue('aq_main', lease => '-1 minute');
\echo :LAST_ERROR_SQLSTATE
SELECT asyncrr.alter_queue('aq_main', max_attempts => 0);
\echo :LAST_ERROR_SQLSTATE
SELECT asyncrr.alter_queue('aq_main', max_depth => 0);
\echo :LAST_ERROR_SQLSTATE
SELECT asyncrr.alter_queue('aq_main', max_depth => -3);
\echo :LAST_ERROR_SQLSTATE
-- one bad setting among good ones changes none of them
SELECT asyncrr.alter_queue('aq_main', default_timeout => '5 hours', max_depth => 0);
\echo :LAST_ERROR_SQLSTATE
SELECT row(q.*)::text = :'before' AS unchanged FROM asyncrr.queue q WHERE queue_name = 'aq_main';

-- clean up
SELECT asyncrr.drop_queue('aq_main', force => true);
SELECT count(*) AS replies FROM asyncrr.take_replies();
SELECT asyncrr.close_inbox();
DELETE FROM asyncrr.inbox WHERE inbox_name = 'aq-inbox';

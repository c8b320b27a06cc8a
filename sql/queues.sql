-- Queues: create_queue with its defaults and settings, the names and
-- settings it refuses, and drop_queue (refused while requests are live;
-- drop_queue(force) is shown in dead_letters).
\set VERBOSITY terse

-- defaults: 30 s timeout, 30 s lease, 3 attempts
SELECT asyncrr.create_queue('qu_default');
SELECT asyncrr.create_queue('qu_custom', default_timeout => '2 minutes', lease => '10 seconds',
                            max_attempts => 5);
-- names may use letters, digits, "_", "." and "-" (48 at most)
SELECT asyncrr.create_queue('qu.v2-x');
SELECT asyncrr.create_queue('qu' || repeat('X', 46));
SELECT queue_name, default_timeout, lease, max_attempts
  FROM asyncrr.queue WHERE queue_name LIKE 'qu%' ORDER BY 1 COLLATE "C";

-- a queue starts empty in queue_stats
SELECT queue_name, pending, claimed, oldest_pending_age, completed, failed, timed_out,
       cancelled, dead_lettered, dead_letters
  FROM asyncrr.queue_stats WHERE queue_name LIKE 'qu%' ORDER BY 1 COLLATE "C";

-- refused: an existing name, bad names, non-positive timeout or lease,
-- max_attempts below 1, NULLs.  Nothing is written.
SELECT count(*) AS queues FROM asyncrr.queue \gset before_
SELECT asyncrr.create_queue('qu_default');
\echo :LAST_ERROR_SQLSTATE
SELECT asyncrr.create_queue('9 lives!');
\echo :LAST_ERROR_SQLSTATE
SELECT asyncrr.create_queue('');
\echo :LAST_ERROR_SQLSTATE
SELECT asyncrr.create_queue('_hidden');
\echo :LAST_ERROR_SQLSTATE
SELECT asyncrr.create_queue('-dash');
\echo :LAST_ERROR_SQLSTATE
SELECT asyncrr.create_queue('qu' || repeat('x', 47));
\echo :LAST_ERROR_SQLSTATE
SELECT asyncrr.create_queue(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT asyncrr.create_queue('qu_bad', default_timeout => '0 seconds');
\echo :LAST_ERROR_SQLSTATE
SELECT asyncrr.create_queue('qu_bad', default_timeout => '-5 seconds');
\echo :LAST_ERROR_SQLSTATE
SELECT asyncrr.create_queue('qu_bad', default_timeout => NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT asyncrr.create_queue('qu_bad', lease => '0 seconds');
\echo :LAST_ERROR_SQLSTATE
SELECT asyncrr.create_queue('qu_bad', lease => '-1 minute');
\echo :LAST_ERROR_SQLSTATE
SELECT asyncrr.create_queue('qu_bad', max_attempts => 0);
\echo :LAST_ERROR_SQLSTATE
SELECT asyncrr.create_queue('qu_bad', max_attempts => NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) = :before_queues AS nothing_written FROM asyncrr.queue;

-- drop_queue: unknown and NULL names are refused
SELECT asyncrr.drop_queue('qu_missing');
\echo :LAST_ERROR_SQLSTATE
SELECT asyncrr.drop_queue(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT asyncrr.drop_queue('qu_default', force => NULL);
\echo :LAST_ERROR_SQLSTATE

-- drop_queue refuses while the queue has live requests (pending or
-- claimed), and changes nothing
SELECT asyncrr.open_inbox() IS NOT NULL AS opened;
UNLISTEN *;   -- keep this session's own notifications (they name its PID) out of the output
SELECT asyncrr.submit('qu_default', '{"n": 1}', correlation_id => 'a1000000-0000-0000-0000-000000000001');
SELECT asyncrr.submit('qu_default', '{"n": 2}', correlation_id => 'a1000000-0000-0000-0000-000000000002');
SELECT correlation_id FROM asyncrr.claim('qu_default');
SELECT asyncrr.drop_queue('qu_default');
\echo :LAST_ERROR_SQLSTATE
SELECT queue_name, correlation_id, state FROM asyncrr.pending
 WHERE queue_name = 'qu_default' ORDER BY 2;
SELECT count(*) AS queues FROM asyncrr.queue WHERE queue_name = 'qu_default';

-- once every request has ended the queue can be dropped; the ended
-- requests keep their status
SELECT asyncrr.complete('a1000000-0000-0000-0000-000000000001', '{"ok": true}');
SELECT asyncrr.cancel('a1000000-0000-0000-0000-000000000002');
SELECT asyncrr.drop_queue('qu_default');
SELECT count(*) AS queues FROM asyncrr.queue WHERE queue_name = 'qu_default';
SELECT correlation_id, queue_name, state FROM asyncrr.status('a1000000-0000-0000-0000-000000000001');
SELECT correlation_id, status FROM asyncrr.take_replies() ORDER BY finished_at;

-- after a drop, submit and claim to that name are errors
SELECT asyncrr.submit('qu_default', '{"n": 3}');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM asyncrr.claim('qu_default');
\echo :LAST_ERROR_SQLSTATE

-- the name can be used again
SELECT asyncrr.create_queue('qu_default', max_attempts => 1);
SELECT queue_name, max_attempts FROM asyncrr.queue WHERE queue_name = 'qu_default';

-- clean up
SELECT asyncrr.drop_queue(queue_name) FROM asyncrr.queue WHERE queue_name LIKE 'qu%' ORDER BY 1 COLLATE "C";
SELECT count(*) AS queues FROM asyncrr.queue WHERE queue_name LIKE 'qu%';

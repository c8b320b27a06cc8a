-- Dead letters: drop_queue(force) dead-letters live requests (reason
-- queue_dropped) and replies dead_lettered to each requester; redrive,
-- redrive_queue and purge_dead_letters.
\set VERBOSITY terse
SELECT asyncrr.create_queue('dl_drop');
SELECT asyncrr.create_queue('dl_main', max_attempts => 1);
SELECT asyncrr.open_inbox('dl_requester');
UNLISTEN *;   -- keep this session's own notifications (they name its PID) out of the output

-- drop_queue(force => true): every live request (pending or claimed) is
-- dead-lettered, the requester gets a dead_lettered reply, ended requests
-- are left alone, the queue is gone
SELECT asyncrr.submit('dl_drop', '{"n": 1}', correlation_id => 'e1000000-0000-0000-0000-000000000001',
                      headers => '{"h": 1}', priority => 3);
SELECT asyncrr.submit('dl_drop', '{"n": 2}', correlation_id => 'e1000000-0000-0000-0000-000000000002');
SELECT asyncrr.submit('dl_drop', '{"n": 3}', correlation_id => 'e1000000-0000-0000-0000-000000000003');
SELECT correlation_id FROM asyncrr.claim('dl_drop', worker => 'w-dl');
SELECT asyncrr.cancel('e1000000-0000-0000-0000-000000000003');
SELECT asyncrr.drop_queue('dl_drop', force => true);
SELECT count(*) AS queues FROM asyncrr.queue WHERE queue_name = 'dl_drop';
SELECT count(*) AS live FROM asyncrr.pending WHERE queue_name = 'dl_drop';
SELECT correlation_id, state, attempt, error, dead_letter_reason FROM asyncrr.request
 WHERE queue_name = 'dl_drop' ORDER BY 1;
SELECT queue_name, correlation_id, reason, attempt, worker, last_error, payload, headers, reply,
       late_reply, inbox, dead_lettered_at >= submitted_at AS times_ok
  FROM asyncrr.dead_letters WHERE queue_name = 'dl_drop' ORDER BY 2;
SELECT correlation_id, status, reply, error FROM asyncrr.take_replies() ORDER BY finished_at, 1;
-- the worker holding the claimed one learns it is late; its reply is kept
-- on the dead letter
SELECT asyncrr.complete('e1000000-0000-0000-0000-000000000001', '{"r": 1}');
SELECT correlation_id, late_reply FROM asyncrr.dead_letters WHERE queue_name = 'dl_drop' ORDER BY 1;
-- submit to the dropped queue is an error
SELECT asyncrr.submit('dl_drop', '{"n": 4}');
\echo :LAST_ERROR_SQLSTATE

-- redrive needs the queue: refused (and the dead letter stays) while it
-- does not exist
SELECT asyncrr.redrive('e1000000-0000-0000-0000-000000000002');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS dead_letters FROM asyncrr.dead_letters WHERE queue_name = 'dl_drop';

-- redrive: a new request (new id, attempt from 1, same inbox, payload,
-- headers and priority); the dead letter goes away; the old id stays
-- dead_lettered; status of each names the other
SELECT asyncrr.create_queue('dl_drop');
SELECT asyncrr.redrive('e1000000-0000-0000-0000-000000000001') AS new_id \gset
SELECT :'new_id' <> 'e1000000-0000-0000-0000-000000000001' AS new_id_differs;
SELECT count(*) AS dead_letters FROM asyncrr.dead_letters WHERE correlation_id = 'e1000000-0000-0000-0000-000000000001';
SELECT state, dead_letter_reason = 'queue_dropped (redriven as ' || :'new_id' || ')' AS names_new
  FROM asyncrr.status('e1000000-0000-0000-0000-000000000001');
SELECT queue_name, state, attempt, worker, finished_at, reply, error,
       dead_letter_reason = '(redriven from e1000000-0000-0000-0000-000000000001)' AS names_old,
       deadline - submitted_at AS timeout
  FROM asyncrr.status(:'new_id');
SELECT r.payload, r.headers, r.priority, r.inbox_name FROM asyncrr.request r WHERE r.correlation_id = :'new_id';
SELECT correlation_id = :'new_id' AS new_one, payload, headers, attempt FROM asyncrr.claim('dl_drop');
SELECT asyncrr.complete(:'new_id', '{"r": "redriven"}');
SELECT correlation_id = :'new_id' AS new_one, status, reply FROM asyncrr.take_replies();
-- a dead letter is redriven once; unknown and NULL ids are errors
SELECT asyncrr.redrive('e1000000-0000-0000-0000-000000000001');
\echo :LAST_ERROR_SQLSTATE
SELECT asyncrr.redrive('e1000000-0000-0000-0000-0000000000ff');
\echo :LAST_ERROR_SQLSTATE
SELECT asyncrr.redrive(NULL);
\echo :LAST_ERROR_SQLSTATE

-- redrive_queue redrives every dead letter of a queue, or only those of
-- one reason, and returns how many
SELECT asyncrr.submit('dl_main', '{"n": 5}', correlation_id => 'e1000000-0000-0000-0000-000000000005');
SELECT asyncrr.submit('dl_main', '{"n": 6}', correlation_id => 'e1000000-0000-0000-0000-000000000006');
SELECT correlation_id, attempt FROM asyncrr.claim('dl_main', 2);
SELECT asyncrr.fail('e1000000-0000-0000-0000-000000000005', 'boom', retry => true);
SELECT asyncrr.fail('e1000000-0000-0000-0000-000000000006', 'bang', retry => true);
SELECT correlation_id, reason, last_error FROM asyncrr.dead_letters
 WHERE queue_name IN ('dl_main', 'dl_drop') ORDER BY 1;
SELECT asyncrr.redrive_queue('dl_main', 'timeout');
SELECT asyncrr.redrive_queue('dl_drop', 'max_attempts');
SELECT asyncrr.redrive_queue('dl_main', 'max_attempts');
SELECT count(*) AS dead_letters FROM asyncrr.dead_letters WHERE queue_name = 'dl_main';
SELECT r.redriven_from, s.state, s.attempt, r.payload,
       s.dead_letter_reason = '(redriven from ' || r.redriven_from || ')' AS names_old,
       (SELECT o.dead_letter_reason = 'max_attempts (redriven as ' || r.correlation_id || ')'
          FROM asyncrr.status(r.redriven_from) o) AS old_names_new
  FROM asyncrr.request r, asyncrr.status(r.correlation_id) s
 WHERE r.queue_name = 'dl_main' AND r.redriven_from IS NOT NULL ORDER BY 1;
SELECT asyncrr.redrive_queue('dl_drop');
SELECT count(*) AS dead_letters FROM asyncrr.dead_letters WHERE queue_name = 'dl_drop';
SELECT asyncrr.cancel(correlation_id) FROM asyncrr.pending WHERE queue_name = 'dl_drop';
-- errors: unknown or NULL queue, unknown reason
SELECT asyncrr.redrive_queue('dl_missing');
\echo :LAST_ERROR_SQLSTATE
SELECT asyncrr.redrive_queue(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT asyncrr.redrive_queue('dl_main', 'bored');
\echo :LAST_ERROR_SQLSTATE

-- purge_dead_letters removes dead letters older than the age given (0:
-- all) and returns how many; a negative or NULL age is an error
SELECT payload, attempt FROM asyncrr.claim('dl_main', 2) ORDER BY 1;
SELECT asyncrr.fail(correlation_id, 'again', retry => true) FROM asyncrr.pending
 WHERE queue_name = 'dl_main' ORDER BY 1;
SELECT count(*) AS dead_letters FROM asyncrr.dead_letters WHERE queue_name = 'dl_main';
SELECT asyncrr.purge_dead_letters('1 hour');
SELECT asyncrr.purge_dead_letters('-1 second');
\echo :LAST_ERROR_SQLSTATE
SELECT asyncrr.purge_dead_letters(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT asyncrr.purge_dead_letters('0') >= 2 AS purged;
SELECT count(*) AS dead_letters FROM asyncrr.dead_letters WHERE queue_name = 'dl_main';

-- the requester got one reply per ended request
SELECT status, error, count(*) FROM asyncrr.take_replies() GROUP BY 1, 2 ORDER BY 1, 2;

-- clean up
SELECT asyncrr.close_inbox();
SELECT asyncrr.drop_queue('dl_main');
SELECT asyncrr.drop_queue('dl_drop');
DELETE FROM asyncrr.inbox WHERE inbox_name = 'dl_requester';

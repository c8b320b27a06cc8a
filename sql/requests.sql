-- Requests, from the requester's side: submit (defaults, idempotency),
-- take_replies, cancel and status.
\set VERBOSITY terse
SELECT asyncrr.create_queue('rq_main');
SELECT asyncrr.create_queue('rq_other', default_timeout => '5 minutes');

-- Before anything is submitted this session holds no inbox, and
-- take_replies has nothing to hand out.
SELECT count(*) AS my_inboxes FROM asyncrr.inboxes WHERE holder_pid = pg_backend_pid();
SELECT * FROM asyncrr.take_replies();

-- submit opens a session inbox implicitly (and LISTENs on its channel),
-- and returns the correlation id it was given
SELECT asyncrr.submit('rq_main', '{"op": "add", "a": 1, "b": 2}',
                      correlation_id => 'b1000000-0000-0000-0000-000000000001');
SELECT name LIKE '\_session\_%' AS session_name, durable, channel = 'asyncrr.' || name AS channel_ok,
       pg_listening_channels() = channel AS listening
  FROM asyncrr.inboxes WHERE holder_pid = pg_backend_pid();
UNLISTEN *;   -- keep this session's own notifications (they name its PID) out of the output

-- without a correlation id, a new one is generated
SELECT asyncrr.submit('rq_main', '{"op": "noop"}') IS NOT NULL AS generated;

-- a new request is pending; its deadline is submitted_at + the queue's
-- default timeout, or + the timeout given
SELECT asyncrr.submit('rq_other', '{"op": "x"}', correlation_id => 'b1000000-0000-0000-0000-000000000002');
SELECT asyncrr.submit('rq_main', '{"op": "y"}', timeout => '1 hour', priority => 7,
                      correlation_id => 'b1000000-0000-0000-0000-000000000003',
                      headers => '{"trace": "t-1"}');
SELECT correlation_id, queue_name, state, attempt, worker, deadline - submitted_at AS timeout,
       finished_at, reply, error, dead_letter_reason
  FROM asyncrr.status('b1000000-0000-0000-0000-000000000001')
UNION ALL
SELECT correlation_id, queue_name, state, attempt, worker, deadline - submitted_at,
       finished_at, reply, error, dead_letter_reason
  FROM asyncrr.status('b1000000-0000-0000-0000-000000000002')
UNION ALL
SELECT correlation_id, queue_name, state, attempt, worker, deadline - submitted_at,
       finished_at, reply, error, dead_letter_reason
  FROM asyncrr.status('b1000000-0000-0000-0000-000000000003')
 ORDER BY 1;
-- the request goes to this session's inbox, with its priority and headers
SELECT correlation_id, r.priority, r.headers, p.inbox = (SELECT name FROM asyncrr.inboxes
                                                      WHERE holder_pid = pg_backend_pid()) AS my_inbox
  FROM asyncrr.request r JOIN asyncrr.pending p USING (correlation_id)
 WHERE correlation_id BETWEEN 'b1000000-0000-0000-0000-000000000000' AND 'b1000000-0000-0000-0000-0000000000ff'
 ORDER BY 1;

-- status of an unknown id: no row
SELECT count(*) AS rows FROM asyncrr.status('b1000000-0000-0000-0000-0000000000ff');

-- Idempotency: the same id with the same queue and payload returns the id
-- and writes nothing (even with another timeout or priority)...
SELECT count(*) AS requests, max(submitted_at) AS last_submit FROM asyncrr.request
 WHERE queue_name LIKE 'rq\_%' \gset before_
SELECT asyncrr.submit('rq_main', '{"b": 2, "a": 1, "op": "add"}',
                      correlation_id => 'b1000000-0000-0000-0000-000000000001');
SELECT asyncrr.submit('rq_main', '{"op": "add", "a": 1, "b": 2}', timeout => '1 hour', priority => 9,
                      correlation_id => 'b1000000-0000-0000-0000-000000000001');
SELECT count(*) = :before_requests AS nothing_written, max(submitted_at) = :'before_last_submit' AS unchanged
  FROM asyncrr.request WHERE queue_name LIKE 'rq\_%';
SELECT state, deadline - submitted_at AS timeout FROM asyncrr.status('b1000000-0000-0000-0000-000000000001');
-- ... while the same id with another payload or another queue is an
-- error that names the id (unique_violation), and writes nothing
SELECT asyncrr.submit('rq_main', '{"op": "add", "a": 1, "b": 3}',
                      correlation_id => 'b1000000-0000-0000-0000-000000000001');
\echo :LAST_ERROR_SQLSTATE
SELECT asyncrr.submit('rq_other', '{"op": "add", "a": 1, "b": 2}',
                      correlation_id => 'b1000000-0000-0000-0000-000000000001');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) = :before_requests AS nothing_written FROM asyncrr.request WHERE queue_name LIKE 'rq\_%';
SELECT queue_name, payload FROM asyncrr.request WHERE correlation_id = 'b1000000-0000-0000-0000-000000000001';

-- An ended request is still idempotent: submitting it again does not
-- start it over.
SELECT asyncrr.cancel('b1000000-0000-0000-0000-000000000002');
SELECT asyncrr.submit('rq_other', '{"op": "x"}', correlation_id => 'b1000000-0000-0000-0000-000000000002');
SELECT state FROM asyncrr.status('b1000000-0000-0000-0000-000000000002');

-- cancel: true for a live request (pending or claimed), false once it has
-- ended; the requester gets a "cancelled" reply
SELECT correlation_id FROM asyncrr.claim('rq_main', 1, worker => 'w1');   -- the priority 7 one
SELECT asyncrr.cancel('b1000000-0000-0000-0000-000000000003');
SELECT asyncrr.cancel('b1000000-0000-0000-0000-000000000003');
SELECT correlation_id, state, attempt, worker, finished_at IS NOT NULL AS finished, error
  FROM asyncrr.status('b1000000-0000-0000-0000-000000000003');
-- a worker's later complete or fail is "late": nothing is sent, the late
-- reply is kept for audit (status shows it)
SELECT asyncrr.complete('b1000000-0000-0000-0000-000000000003', '{"too": "late"}');
SELECT asyncrr.fail('b1000000-0000-0000-0000-000000000003', 'too late as well');
SELECT state, reply, error FROM asyncrr.status('b1000000-0000-0000-0000-000000000003');
SELECT late_reply FROM asyncrr.request WHERE correlation_id = 'b1000000-0000-0000-0000-000000000003';

-- complete the first request and fail the generated one
SELECT correlation_id FROM asyncrr.claim('rq_main', 1, worker => 'w1');
SELECT asyncrr.complete('b1000000-0000-0000-0000-000000000001', '{"sum": 3}');
SELECT asyncrr.cancel('b1000000-0000-0000-0000-000000000001');
SELECT count(*) AS claimed FROM asyncrr.claim('rq_main', 1, worker => 'w1');
SELECT asyncrr.fail(correlation_id, 'cannot noop') FROM asyncrr.pending
 WHERE queue_name = 'rq_main' AND state = 'claimed';

-- take_replies hands out the replies of this session's inbox, oldest
-- first, at most max_replies at a time, each exactly once
SELECT count(*) AS waiting FROM asyncrr.inboxes i
  JOIN asyncrr.request r ON r.inbox_name = i.name
 WHERE i.holder_pid = pg_backend_pid() AND r.finished_at IS NOT NULL AND r.taken_at IS NULL;
SELECT correlation_id, status, reply, error, finished_at IS NOT NULL AS finished
  FROM asyncrr.take_replies(2);
SELECT correlation_id = 'b1000000-0000-0000-0000-000000000001' AS first, status, reply, error
  FROM asyncrr.take_replies();
SELECT * FROM asyncrr.take_replies();
-- a taken reply is still visible through status
SELECT correlation_id, state, reply FROM asyncrr.status('b1000000-0000-0000-0000-000000000001');

-- errors: unknown and NULL ids
SELECT asyncrr.cancel('b1000000-0000-0000-0000-0000000000ff');
\echo :LAST_ERROR_SQLSTATE
SELECT asyncrr.cancel(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS rows FROM asyncrr.status(NULL);

-- A repeated submit from a new session (say, a client retrying after a
-- reconnect) also writes nothing: not even a session inbox for the new
-- session.
\c
\set VERBOSITY terse
SELECT asyncrr.submit('rq_main', '{"op": "add", "a": 1, "b": 2}',
                      correlation_id => 'b1000000-0000-0000-0000-000000000001');
SELECT count(*) AS my_inboxes FROM asyncrr.inbox WHERE holder_pid = pg_backend_pid();
SELECT count(*) AS listening FROM pg_listening_channels();
SELECT asyncrr.submit('rq_main', '{"op": "other"}',
                      correlation_id => 'b1000000-0000-0000-0000-000000000001');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS my_inboxes FROM asyncrr.inbox WHERE holder_pid = pg_backend_pid();

-- clean up
SELECT asyncrr.drop_queue('rq_main');
SELECT asyncrr.drop_queue('rq_other');

-- Bad input to submit, and to the other calls not covered elsewhere: each
-- refused call reports its SQLSTATE and writes nothing -- no request, no
-- pending row, not even the session inbox submit would have opened.
\set VERBOSITY terse
SELECT asyncrr.create_queue('bi_main');
CREATE TEMP VIEW written AS
SELECT (SELECT count(*) FROM asyncrr.request WHERE queue_name LIKE 'bi\_%') AS requests,
       (SELECT count(*) FROM asyncrr.pending WHERE queue_name LIKE 'bi\_%') AS pending,
       (SELECT count(*) FROM asyncrr.inbox WHERE holder_pid = pg_backend_pid()) AS my_inboxes;
TABLE written;

-- unknown or NULL queue: undefined_object, null_value_not_allowed
SELECT asyncrr.submit('bi_missing', '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT asyncrr.submit(NULL, '{}');
\echo :LAST_ERROR_SQLSTATE
-- NULL payload
SELECT asyncrr.submit('bi_main', NULL);
\echo :LAST_ERROR_SQLSTATE
-- zero or negative timeout: invalid_parameter_value
SELECT asyncrr.submit('bi_main', '{}', timeout => '0 seconds');
\echo :LAST_ERROR_SQLSTATE
SELECT asyncrr.submit('bi_main', '{}', timeout => '-1 minute');
\echo :LAST_ERROR_SQLSTATE
-- NULL priority
SELECT asyncrr.submit('bi_main', '{}', priority => NULL);
\echo :LAST_ERROR_SQLSTATE
-- headers must be a JSON object: invalid_parameter_value
SELECT asyncrr.submit('bi_main', '{}', headers => '["a", "b"]');
\echo :LAST_ERROR_SQLSTATE
SELECT asyncrr.submit('bi_main', '{}', headers => '"trace"');
\echo :LAST_ERROR_SQLSTATE
SELECT asyncrr.submit('bi_main', '{}', headers => 'null');
\echo :LAST_ERROR_SQLSTATE
-- a payload over asyncrr.max_payload_bytes (1MB by default):
-- program_limit_exceeded; headers are held to the same limit
SELECT asyncrr.submit('bi_main', jsonb_build_object('blob', repeat('x', 1100000)));
\echo :LAST_ERROR_SQLSTATE
SELECT asyncrr.submit('bi_main', '{}', headers => jsonb_build_object('blob', repeat('x', 1100000)));
\echo :LAST_ERROR_SQLSTATE
-- nothing was written by any of them
TABLE written;
-- just under the limit is accepted
SELECT asyncrr.submit('bi_main', jsonb_build_object('blob', repeat('x', 1000000)),
                      correlation_id => 'a9000000-0000-0000-0000-000000000001');
UNLISTEN *;   -- keep this session's own notifications (they name its PID) out of the output
TABLE written;

-- idempotency conflict: unique_violation naming the id; nothing written
SELECT asyncrr.submit('bi_main', '{"other": true}', correlation_id => 'a9000000-0000-0000-0000-000000000001');
\echo :LAST_ERROR_SQLSTATE
TABLE written;

-- take_replies: max_replies below 1 or NULL
SELECT * FROM asyncrr.take_replies(0);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM asyncrr.take_replies(NULL);
\echo :LAST_ERROR_SQLSTATE
-- close_inbox: NULL cancel_pending
SELECT asyncrr.close_inbox(NULL);
\echo :LAST_ERROR_SQLSTATE

-- the full error report of a few of them (message, detail, hint)
\set VERBOSITY default
\set SHOW_CONTEXT never
SELECT asyncrr.submit('bi_missing', '{}');
SELECT asyncrr.submit('bi_main', '{}', timeout => '0 seconds');
SELECT asyncrr.submit('bi_main', '{}', headers => '[1]');
SELECT asyncrr.open_inbox('9 lives!');
\set VERBOSITY terse

-- the accepted request is still pending, untouched
SELECT correlation_id, state, attempt FROM asyncrr.pending WHERE queue_name = 'bi_main';
TABLE written;

-- clean up
SELECT asyncrr.cancel('a9000000-0000-0000-0000-000000000001');
SELECT correlation_id, status FROM asyncrr.take_replies();
SELECT asyncrr.drop_queue('bi_main');

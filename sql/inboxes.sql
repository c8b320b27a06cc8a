-- Inboxes: open_inbox (session and durable), its LISTEN, the names it
-- accepts, close_inbox (with and without cancel_pending), replies kept in
-- a durable inbox for its next holder, and takeover once the holder's
-- backend has exited.  (A second live session being refused is in the
-- isolation spec durable-inbox-takeover.)  Where this session takes an
-- inbox whose replies the dispatcher may not have notified yet, it
-- UNLISTENs in the same transaction (\; or BEGIN), so that it is never
-- listening when such a notification is sent (test/regress.conf).
\set VERBOSITY terse
SELECT asyncrr.create_queue('ib_main');

-- open_inbox() opens a session inbox: its name starts with "_session_"
-- (no durable name can), the channel is "asyncrr." || name, and the
-- session LISTENs on it.  Opening it again returns the same channel.
SELECT asyncrr.open_inbox() AS channel \gset
SELECT name LIKE '\_session\_%' AS session_name, NOT durable AS session, :'channel' = 'asyncrr.' || name AS channel_ok,
       owner_role = current_user AS mine, untaken_replies, live_requests, opened_at IS NOT NULL AS opened
  FROM asyncrr.inboxes WHERE holder_pid = pg_backend_pid();
SELECT pg_listening_channels() = :'channel' AS listening;
SELECT asyncrr.open_inbox() = :'channel' AS same_channel;
SELECT count(*) AS my_inboxes FROM asyncrr.inboxes WHERE holder_pid = pg_backend_pid();
-- a session holds one inbox at a time (the message names the session
-- inbox, which names the PID: show only the SQLSTATE)
\set VERBOSITY sqlstate
SELECT asyncrr.open_inbox('ib_alice');
\set VERBOSITY terse

-- close_inbox releases it and UNLISTENs; with nothing to cancel it returns 0
SELECT asyncrr.close_inbox();
SELECT count(*) AS my_inboxes FROM asyncrr.inboxes WHERE holder_pid = pg_backend_pid();
SELECT count(*) AS listening FROM pg_listening_channels();
-- closing when no inbox is held is harmless
SELECT asyncrr.close_inbox();

-- a durable inbox has the name given; its channel is "asyncrr." || name
SELECT asyncrr.open_inbox('ib_alice');
SELECT name, channel, durable, holder_pid = pg_backend_pid() AS held_by_me, released_at
  FROM asyncrr.inboxes WHERE name = 'ib_alice';
SELECT pg_listening_channels();
UNLISTEN *;   -- keep this session's own notifications (they name its PID) out of the output
SELECT asyncrr.open_inbox('ib_alice');

-- submit addresses the inbox the session holds
SELECT asyncrr.submit('ib_main', '{"n": 1}', correlation_id => 'd1000000-0000-0000-0000-000000000001');
SELECT asyncrr.submit('ib_main', '{"n": 2}', correlation_id => 'd1000000-0000-0000-0000-000000000002');
SELECT asyncrr.submit('ib_main', '{"n": 3}', correlation_id => 'd1000000-0000-0000-0000-000000000003');
SELECT correlation_id, inbox FROM asyncrr.pending WHERE queue_name = 'ib_main' ORDER BY 1;
SELECT correlation_id FROM asyncrr.claim('ib_main');
SELECT asyncrr.complete('d1000000-0000-0000-0000-000000000001', '{"r": 1}');
SELECT name, untaken_replies, live_requests FROM asyncrr.inboxes WHERE name = 'ib_alice';

-- close_inbox(cancel_pending => true) cancels the inbox's live requests
-- and returns how many; the durable inbox keeps every reply
SELECT correlation_id FROM asyncrr.claim('ib_main');
SELECT asyncrr.close_inbox(cancel_pending => true);
SELECT name, holder_pid, untaken_replies, live_requests, released_at IS NOT NULL AS released
  FROM asyncrr.inboxes WHERE name = 'ib_alice';
SELECT count(*) AS listening FROM pg_listening_channels();
-- the worker's complete after the cancel is late
SELECT asyncrr.complete('d1000000-0000-0000-0000-000000000002', '{"r": 2}');
-- with no inbox held, take_replies returns nothing
SELECT * FROM asyncrr.take_replies();

-- close_inbox() without cancel_pending leaves requests live: their replies
-- wait in the durable inbox while nobody holds it
BEGIN;
SELECT asyncrr.open_inbox('ib_alice') AS channel \gset
UNLISTEN *;
COMMIT;
SELECT asyncrr.submit('ib_main', '{"n": 4}', correlation_id => 'd1000000-0000-0000-0000-000000000004');
SELECT asyncrr.close_inbox();
SELECT correlation_id, state FROM asyncrr.pending WHERE queue_name = 'ib_main' ORDER BY 1;
SELECT correlation_id FROM asyncrr.claim('ib_main');
SELECT asyncrr.complete('d1000000-0000-0000-0000-000000000004', '{"r": 4}');
SELECT name, holder_pid, untaken_replies, live_requests FROM asyncrr.inboxes WHERE name = 'ib_alice';

-- Takeover: the next holder gets every reply kept in the durable inbox,
-- even after the session that held it has exited.
SELECT asyncrr.open_inbox('ib_alice') = :'channel' AS same_channel \; UNLISTEN *;
SELECT pg_backend_pid() AS old_pid \gset
\c
\set VERBOSITY terse
-- wait (at most 30 s) until the old backend is gone
SET asyncrr_test.old_pid = :old_pid;
DO $$
BEGIN
    FOR i IN 1 .. 300 LOOP
        EXIT WHEN NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = current_setting('asyncrr_test.old_pid')::integer);
        PERFORM pg_sleep(0.1);
        PERFORM pg_stat_clear_snapshot();
    END LOOP;
END
$$;
SELECT count(*) AS old_backend FROM pg_stat_activity WHERE pid = :old_pid;
SELECT asyncrr.open_inbox('ib_alice') = :'channel' AS taken_over \; UNLISTEN *;
SELECT holder_pid = pg_backend_pid() AS held_by_me FROM asyncrr.inboxes WHERE name = 'ib_alice';
SELECT correlation_id, status, reply, error FROM asyncrr.take_replies();
SELECT * FROM asyncrr.take_replies();

-- inbox names: 1 to 48 of [A-Za-z0-9_.-], starting with a letter or digit;
-- anything else is invalid_parameter_value and writes nothing
SELECT asyncrr.close_inbox();
SELECT count(*) AS inboxes FROM asyncrr.inbox \gset before_
SELECT asyncrr.open_inbox('');
\echo :LAST_ERROR_SQLSTATE
SELECT asyncrr.open_inbox('_session_1_2');
\echo :LAST_ERROR_SQLSTATE
SELECT asyncrr.open_inbox('.hidden');
\echo :LAST_ERROR_SQLSTATE
SELECT asyncrr.open_inbox('-x');
\echo :LAST_ERROR_SQLSTATE
SELECT asyncrr.open_inbox('9 lives!');
\echo :LAST_ERROR_SQLSTATE
SELECT asyncrr.open_inbox('a/b');
\echo :LAST_ERROR_SQLSTATE
SELECT asyncrr.open_inbox('ib' || repeat('x', 47));
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) = :before_inboxes AS nothing_written FROM asyncrr.inbox;
SELECT count(*) AS listening FROM pg_listening_channels();
-- the longest and shortest names are fine
SELECT asyncrr.open_inbox('ib' || repeat('x', 46)) = 'asyncrr.ib' || repeat('x', 46) AS ok;
SELECT asyncrr.close_inbox();
SELECT asyncrr.open_inbox('9');
SELECT asyncrr.close_inbox();
SELECT asyncrr.open_inbox('Ib_A.b-9');
SELECT asyncrr.close_inbox();
SELECT name, durable, holder_pid FROM asyncrr.inboxes
 WHERE name IN ('9', 'Ib_A.b-9', 'ib' || repeat('x', 46), 'ib_alice') ORDER BY 1 COLLATE "C";

-- clean up (durable inboxes have no drop function: remove the rows)
SELECT asyncrr.drop_queue('ib_main');
DELETE FROM asyncrr.inbox WHERE inbox_name IN ('9', 'Ib_A.b-9', 'ib' || repeat('x', 46), 'ib_alice');

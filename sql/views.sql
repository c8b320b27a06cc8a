-- Views: asyncrr.pending (live requests), asyncrr.queue_stats (per queue
-- counts by state), asyncrr.dead_letters and asyncrr.inboxes; who may read
-- them (per role in roles.sql).
\set VERBOSITY terse
SELECT asyncrr.create_queue('vw_a', max_attempts => 1);
SELECT asyncrr.create_queue('vw_b');
SELECT asyncrr.open_inbox('vw_inbox');
UNLISTEN *;   -- keep this session's own notifications (they name its PID) out of the output

-- one request of every outcome in vw_a, and two live ones
SELECT asyncrr.submit('vw_a', '{"n": 1}', correlation_id => 'f1000000-0000-0000-0000-000000000001');
SELECT asyncrr.submit('vw_a', '{"n": 2}', correlation_id => 'f1000000-0000-0000-0000-000000000002');
SELECT asyncrr.submit('vw_a', '{"n": 3}', correlation_id => 'f1000000-0000-0000-0000-000000000003');
SELECT asyncrr.submit('vw_a', '{"n": 4}', correlation_id => 'f1000000-0000-0000-0000-000000000004');
SELECT asyncrr.submit('vw_a', '{"n": 5}', correlation_id => 'f1000000-0000-0000-0000-000000000005');
SELECT asyncrr.submit('vw_a', '{"n": 6}', correlation_id => 'f1000000-0000-0000-0000-000000000006', priority => 2);
SELECT count(*) AS claimed FROM asyncrr.claim('vw_a', 3, worker => 'w-vw');   -- 6, 1, 2
SELECT asyncrr.complete('f1000000-0000-0000-0000-000000000001', '{}');
SELECT asyncrr.fail('f1000000-0000-0000-0000-000000000002', 'no', retry => true);   -- dead_lettered
SELECT asyncrr.cancel('f1000000-0000-0000-0000-000000000003');
SELECT correlation_id FROM asyncrr.claim('vw_a', worker => 'w-vw');
SELECT asyncrr.fail('f1000000-0000-0000-0000-000000000004', 'bad');

-- pending: live requests only, with state, priority, attempt, worker,
-- deadline, lease and inbox
SELECT queue_name, correlation_id, state, priority, attempt, worker,
       deadline > submitted_at AS deadline_ok, lease_until IS NOT NULL AS leased, inbox
  FROM asyncrr.pending WHERE queue_name LIKE 'vw\_%' ORDER BY 1, 2;

-- queue_stats: one row per queue, even an empty one
SELECT queue_name, pending, claimed, oldest_pending_age IS NOT NULL AS has_oldest, completed, failed,
       timed_out, cancelled, dead_lettered, dead_letters
  FROM asyncrr.queue_stats WHERE queue_name LIKE 'vw\_%' ORDER BY 1;

-- dead_letters
SELECT queue_name, correlation_id, reason, attempt, worker, last_error, payload, headers, reply,
       late_reply, inbox, dead_lettered_at >= submitted_at AS times_ok
  FROM asyncrr.dead_letters WHERE queue_name LIKE 'vw\_%' ORDER BY 1, 2;

-- inboxes: untaken replies and live requests; taking the replies empties it
SELECT name, channel, durable, holder_pid = pg_backend_pid() AS mine, untaken_replies, live_requests,
       opened_at IS NOT NULL AS opened, released_at
  FROM asyncrr.inboxes WHERE name = 'vw_inbox';
SELECT count(*) AS taken FROM asyncrr.take_replies();
SELECT untaken_replies, live_requests FROM asyncrr.inboxes WHERE name = 'vw_inbox';

-- a role that holds none of the asyncrr roles cannot read any view, nor
-- the tables; a requester reads the views but sees only its own rows (none
-- of these: they are the superuser's) and still not the tables.
-- (The views go by current_user: SET ROLE would do as well.)
CREATE ROLE regress_asyncrr_viewer;
SET SESSION AUTHORIZATION regress_asyncrr_viewer;
SELECT count(*) AS pending FROM asyncrr.pending WHERE queue_name LIKE 'vw\_%';
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM asyncrr.dead_letters;
\echo :LAST_ERROR_SQLSTATE
RESET SESSION AUTHORIZATION;
GRANT asyncrr_requester TO regress_asyncrr_viewer;
SET SESSION AUTHORIZATION regress_asyncrr_viewer;
SELECT count(*) AS pending FROM asyncrr.pending WHERE queue_name LIKE 'vw\_%';
SELECT queue_name, pending FROM asyncrr.queue_stats WHERE queue_name LIKE 'vw\_%' ORDER BY 1;
SELECT count(*) AS inboxes FROM asyncrr.inboxes WHERE name = 'vw_inbox';
SELECT count(*) AS dead_letters FROM asyncrr.dead_letters;
SELECT count(*) FROM asyncrr.request;
\echo :LAST_ERROR_SQLSTATE
RESET SESSION AUTHORIZATION;
DROP ROLE regress_asyncrr_viewer;

-- clean up
SELECT asyncrr.cancel(correlation_id) FROM asyncrr.pending WHERE queue_name LIKE 'vw\_%' ORDER BY 1;
SELECT count(*) AS taken FROM asyncrr.take_replies();
SELECT asyncrr.close_inbox();
SELECT asyncrr.drop_queue('vw_a');
SELECT asyncrr.drop_queue('vw_b');
DELETE FROM asyncrr.inbox WHERE inbox_name = 'vw_inbox';

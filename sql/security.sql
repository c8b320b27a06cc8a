-- Hardening of asyncrr 0.3 (issue 11): session inbox channels that name
-- no backend and cannot be guessed; internal functions that only the
-- extension's owner may execute; bounds on fail()'s error text, claim()'s
-- worker name and, per queue, on priority and timeout -- each refused call
-- with its SQLSTATE and nothing written; and asyncrr._check_size(NULL, ...)
-- no longer crashes the server (last, so that a crash loses nothing else).
\set VERBOSITY terse
SELECT current_user AS super \gset

CREATE ROLE regress_sec_requester IN ROLE asyncrr_requester;
CREATE ROLE regress_sec_worker IN ROLE asyncrr_worker;
CREATE ROLE regress_sec_admin IN ROLE asyncrr_admin;

------------------------------------------------------------------------------
-- Session inbox channels: asyncrr._session_<16 or more hex digits>, random
-- (no PID, no backend start time), the same for the life of the backend,
-- another in another backend.
------------------------------------------------------------------------------
\c - :super
SELECT asyncrr.open_inbox() AS ch1 \gset
UNLISTEN *;   -- psql would print notifications with PIDs
SELECT :'ch1' ~ '^asyncrr\._session_[0-9a-f]{16,}$' AS random_form,
       :'ch1' !~ ('(^|[^0-9])' || pg_backend_pid() || '([^0-9]|$)') AS no_pid,
       strpos(:'ch1', to_hex((extract(epoch FROM a.backend_start) * 1000000)::bigint)) = 0
           AS no_start_time
  FROM pg_stat_activity a WHERE a.pid = pg_backend_pid();
SELECT channel = :'ch1' AS listed FROM asyncrr.inboxes WHERE holder_pid = pg_backend_pid();
-- the same again, and after closing and reopening
SELECT asyncrr.open_inbox() = :'ch1' AS same_again;
SELECT asyncrr.close_inbox();
SELECT asyncrr.open_inbox() = :'ch1' AS same_after_reopen;
UNLISTEN *;
-- another backend, another channel
\c - :super
SELECT asyncrr.open_inbox() AS ch2 \gset
UNLISTEN *;
SELECT :'ch2' ~ '^asyncrr\._session_[0-9a-f]{16,}$' AS random_form, :'ch2' <> :'ch1' AS differs;
-- and a requester's, likewise
\c - :super
SET SESSION AUTHORIZATION regress_sec_requester;
SELECT asyncrr.open_inbox() AS ch3 \gset
UNLISTEN *;
SELECT :'ch3' ~ '^asyncrr\._session_[0-9a-f]{16,}$' AS random_form,
       :'ch3' NOT IN (:'ch1', :'ch2') AS differs;
SELECT asyncrr.close_inbox();
\c - :super
DELETE FROM asyncrr.inbox WHERE 'asyncrr.' || inbox_name IN (:'ch1', :'ch2', :'ch3');

------------------------------------------------------------------------------
-- Internal functions (name starting with "_") are the extension owner's
-- only: none is executable by the three asyncrr roles nor by their members.
------------------------------------------------------------------------------
SELECT count(*) > 10 AS has_internal_functions FROM pg_proc
 WHERE pronamespace = 'asyncrr'::regnamespace AND proname LIKE '\_%';
-- (expected: no rows)
SELECT p.oid::regprocedure AS function, r.rolname
  FROM pg_proc p,
       (VALUES ('asyncrr_requester'), ('asyncrr_worker'), ('asyncrr_admin'),
               ('regress_sec_requester'), ('regress_sec_worker'), ('regress_sec_admin')) r(rolname)
 WHERE p.pronamespace = 'asyncrr'::regnamespace AND p.proname LIKE '\_%'
   AND has_function_privilege(r.rolname, p.oid, 'EXECUTE')
 ORDER BY 1::text, 2;
-- called anyway: 42501 (_lock_queue would let any role stall a queue); the
-- waiters view still works: it reads asyncrr.list_waiters(), which filters
SET SESSION AUTHORIZATION regress_sec_requester;
SELECT * FROM try_each(
    $$SELECT asyncrr._lock_queue('x', true)$$,
    $$SELECT asyncrr._channel('x')$$,
    $$SELECT asyncrr._is_admin()$$,
    $$SELECT asyncrr._sees('x')$$,
    $$SELECT count(*) FROM asyncrr.waiters$$);
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION regress_sec_worker;
SELECT * FROM try_each(
    $$SELECT asyncrr._lock_queue('x', true)$$,
    $$SELECT asyncrr._require('worker', 'x')$$,
    $$SELECT count(*) FROM asyncrr.waiters$$);
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION regress_sec_admin;
SELECT * FROM try_each(
    $$SELECT asyncrr._lock_queue('x', true)$$,
    $$SELECT asyncrr._is_admin()$$,
    $$SELECT count(*) FROM asyncrr.waiters$$);
RESET SESSION AUTHORIZATION;

------------------------------------------------------------------------------
-- fail(): an error text over asyncrr.max_payload_bytes (1 MB by default; a
-- server-wide setting) is refused with 54000, the request unchanged.
------------------------------------------------------------------------------
\c - :super
SELECT asyncrr.create_queue('sec_q', default_timeout => '1 hour', lease => '1 hour');
SELECT asyncrr.submit('sec_q', '{"n": 1}', correlation_id => '5ec00000-0000-0000-0000-000000000001');
UNLISTEN *;
SELECT correlation_id, attempt FROM asyncrr.claim('sec_q', worker => 'sec-worker');
SELECT asyncrr.fail('5ec00000-0000-0000-0000-000000000001', repeat('x', 1100000));
\echo :LAST_ERROR_SQLSTATE
SELECT asyncrr.fail('5ec00000-0000-0000-0000-000000000001', repeat('x', 1100000), retry => true);
\echo :LAST_ERROR_SQLSTATE
SELECT asyncrr.fail('5ec00000-0000-0000-0000-000000000001', repeat('x', 1100000), 1);
\echo :LAST_ERROR_SQLSTATE
SELECT asyncrr.fail('5ec00000-0000-0000-0000-000000000001', repeat('x', 1100000), 1, true);
\echo :LAST_ERROR_SQLSTATE
SELECT state, attempt, worker, error FROM asyncrr.status('5ec00000-0000-0000-0000-000000000001');
SELECT count(*) AS dead_letters FROM asyncrr.dead_letter WHERE queue_name = 'sec_q';
-- a short one is fine
SELECT asyncrr.fail('5ec00000-0000-0000-0000-000000000001', 'gave up', 1);
SELECT state, attempt, error FROM asyncrr.status('5ec00000-0000-0000-0000-000000000001');

------------------------------------------------------------------------------
-- claim(): a worker name over 200 bytes is refused with 54000 and claims
-- nothing, waiting or not; 200 bytes are accepted.
------------------------------------------------------------------------------
SELECT asyncrr.submit('sec_q', '{"n": 2}', correlation_id => '5ec00000-0000-0000-0000-000000000002');
SELECT * FROM asyncrr.claim('sec_q', worker => repeat('w', 201));
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM asyncrr.claim('sec_q', worker => repeat('w', 201), wait => '1 second');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM asyncrr.claim('sec_q', 10, worker => repeat('w', 1000));
\echo :LAST_ERROR_SQLSTATE
SELECT state, attempt, worker FROM asyncrr.status('5ec00000-0000-0000-0000-000000000002');
SELECT correlation_id, attempt FROM asyncrr.claim('sec_q', worker => repeat('w', 200));
SELECT state, attempt, length(worker) AS worker_bytes
  FROM asyncrr.status('5ec00000-0000-0000-0000-000000000002');
SELECT asyncrr.complete('5ec00000-0000-0000-0000-000000000002', '{"ok": true}');

------------------------------------------------------------------------------
-- Per-queue bounds on priority and timeout (alter_queue's max_priority and
-- max_timeout, NULL: no bound): submit, submit_many and CALL asyncrr.call
-- over them are refused with 22023 and write nothing, not even the session
-- inbox; at the bound they are accepted.
------------------------------------------------------------------------------
\c - :super
SELECT asyncrr.create_queue('sec_bounded', default_timeout => '1 hour', lease => '1 hour');
SELECT asyncrr.alter_queue('sec_bounded', max_priority => 100, max_timeout => '1 day');
SELECT queue_name, max_priority, max_timeout FROM asyncrr.queue WHERE queue_name LIKE 'sec\_%' ORDER BY 1;
CREATE TEMP VIEW written AS
SELECT (SELECT count(*) FROM asyncrr.request WHERE queue_name = 'sec_bounded') AS requests,
       (SELECT count(*) FROM asyncrr.inbox WHERE holder_pid = pg_backend_pid()) AS my_inboxes;
TABLE written;
SELECT asyncrr.submit('sec_bounded', '{}', priority => 101);
\echo :LAST_ERROR_SQLSTATE
SELECT asyncrr.submit('sec_bounded', '{}', priority => 5000);
\echo :LAST_ERROR_SQLSTATE
SELECT asyncrr.submit('sec_bounded', '{}', timeout => '2 days');
\echo :LAST_ERROR_SQLSTATE
SELECT asyncrr.submit('sec_bounded', '{}', timeout => '1 day 1 second');
\echo :LAST_ERROR_SQLSTATE
SELECT asyncrr.submit_many('sec_bounded', ARRAY['{"n": 1}', '{"n": 2}']::jsonb[], priority => 101);
\echo :LAST_ERROR_SQLSTATE
SELECT asyncrr.submit_many('sec_bounded', ARRAY['{"n": 1}', '{"n": 2}']::jsonb[], timeout => '2 days');
\echo :LAST_ERROR_SQLSTATE
-- (a statement_timeout, lest a call that is let through wait two days)
SET statement_timeout = '5s';
CALL asyncrr.call('sec_bounded', '{}', timeout => '2 days');
\echo :LAST_ERROR_SQLSTATE
RESET statement_timeout;
TABLE written;
-- at the bounds: accepted
SELECT asyncrr.submit('sec_bounded', '{}', priority => 100, timeout => '1 day',
                      correlation_id => '5ec00000-0000-0000-0000-0000000000b1');
UNLISTEN *;
SELECT asyncrr.submit_many('sec_bounded', ARRAY['{"n": 1}', '{"n": 2}']::jsonb[], priority => 100,
                           timeout => '1 day',
                           correlation_ids => ARRAY['5ec00000-0000-0000-0000-0000000000b2',
                                                    '5ec00000-0000-0000-0000-0000000000b3']::uuid[]);
-- the queue's default timeout (1 hour) is within the bound
SELECT asyncrr.submit('sec_bounded', '{}', correlation_id => '5ec00000-0000-0000-0000-0000000000b4');
TABLE written;
SELECT correlation_id, priority FROM asyncrr.pending WHERE queue_name = 'sec_bounded' ORDER BY 1;
-- alter_queue leaves a bound it is not given as it was
SELECT asyncrr.alter_queue('sec_bounded', max_depth => 10);
SELECT queue_name, max_priority, max_timeout, max_depth FROM asyncrr.queue WHERE queue_name = 'sec_bounded';
-- a queue without bounds takes any priority and timeout
SELECT asyncrr.submit('sec_q', '{}', priority => 5000, timeout => '1 year',
                      correlation_id => '5ec00000-0000-0000-0000-000000000003');
SELECT correlation_id, priority FROM asyncrr.pending WHERE queue_name = 'sec_q' ORDER BY 1;

-- clean up
\c - :super
SELECT asyncrr.drop_queue('sec_q', force => true);
SELECT asyncrr.drop_queue('sec_bounded', force => true);
DELETE FROM asyncrr.dead_letter WHERE queue_name LIKE 'sec\_%';
DELETE FROM asyncrr.inbox i
 WHERE EXISTS (SELECT 1 FROM asyncrr.request r
                WHERE r.inbox_name = i.inbox_name AND r.queue_name LIKE 'sec\_%');
DELETE FROM asyncrr.request WHERE queue_name LIKE 'sec\_%';
DROP ROLE regress_sec_requester, regress_sec_worker, regress_sec_admin;

------------------------------------------------------------------------------
-- asyncrr._check_size with a NULL name: an error or nothing, but the
-- server stays up (0.2: a NULL dereference, and a crash).
------------------------------------------------------------------------------
DO $$
BEGIN
    PERFORM asyncrr._check_size(NULL, '{}');
EXCEPTION WHEN OTHERS THEN
    NULL;
END
$$;
DO $$
BEGIN
    PERFORM asyncrr._check_size(NULL, jsonb_build_object('blob', repeat('x', 1100000)));
EXCEPTION WHEN OTHERS THEN
    NULL;
END
$$;
SELECT 'still up' AS server;

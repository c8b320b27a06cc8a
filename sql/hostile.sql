-- Hostile input (issue "prove the promise", item 5): bad calls to every
-- user-facing function, table-driven.  Each must be refused with an ERROR
-- whose SQLSTATE is not internal (not XX..., not 42883), whose message
-- names the bad value or the argument, and that changes no row of any
-- asyncrr table.  Some are refused by PostgreSQL before asyncrr is called
-- (a cast: 22P02, 22003, 22007; a schema the role may not use: 42501;
-- no schema: 3F000): shown too, as what a client gets.  hostile_run() runs one case in a subtransaction, catches
-- its error, and compares a snapshot of every table of schema asyncrr
-- (count, and an md5 of its rows' text) from before and after; it prints
-- the case, the SQLSTATE ("ok" when the call returned), the message
-- (control characters shown as \xNN, long ones cut) and "unchanged" or what
-- changed.  A call that returns is undone (the subtransaction is rolled
-- back after the snapshot).  A few cases are accepted by design (the
-- reference sets no bound there): they say so in a comment and are marked
-- 'accepted' in the case table.  The summary at the end lists every case
-- that broke a rule (expected: none).
--
-- NULL in each argument of each function is sql/null_args.sql's; here only
-- what it does not reach: NULL elements of array arguments, and CALL
-- asyncrr.call (which null_args can only call inside a transaction block,
-- where it is refused first).  CALL asyncrr.call commits, so it cannot run
-- inside hostile_run's subtransaction: its cases run at the top level,
-- with the same snapshot before and after (hostile_top()).
--
-- DROP EXTENSION + CREATE EXTENSION runs in a database of its own,
-- created and dropped here, so that the fixtures of 00_install and the
-- background worker of this database are left alone.
\set VERBOSITY terse
\pset format unaligned
SELECT current_database() AS main_db \gset

------------------------------------------------------------------------------
-- The helpers (dropped at the end).
------------------------------------------------------------------------------

-- Every table of schema asyncrr: its row count and an md5 of its rows.
CREATE FUNCTION hostile_snapshot() RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    t text;
    n bigint;
    h text;
    s jsonb := '{}';
BEGIN
    FOR t IN SELECT c.relname FROM pg_class c
              WHERE c.relnamespace = to_regnamespace('asyncrr') AND c.relkind = 'r'
              ORDER BY 1
    LOOP
        EXECUTE format('SELECT count(*), md5(coalesce(string_agg(md5(x::text), %L ORDER BY md5(x::text)), %L))'
                       ' FROM asyncrr.%I x', '', '', t)
           INTO n, h;
        s := s || jsonb_build_object(t, jsonb_build_object('n', n, 'md5', h));
    END LOOP;
    RETURN s;
END
$$;

-- What differs between two snapshots: "unchanged", or per table how many
-- rows it gained or lost, or "rows changed".
CREATE FUNCTION hostile_diff(before jsonb, after jsonb) RETURNS text LANGUAGE sql AS $$
    SELECT coalesce(string_agg(
               CASE WHEN b.v IS NULL THEN t || ' created'
                    WHEN a.v IS NULL THEN t || ' gone'
                    WHEN b.v->'n' <> a.v->'n'
                    THEN format('%s: %s rows', t, to_char((a.v->>'n')::bigint - (b.v->>'n')::bigint, 'FMSG999999'))
                    ELSE t || ': rows changed' END, '; ' ORDER BY t),
           'unchanged')
      FROM (SELECT jsonb_object_keys(before) UNION SELECT jsonb_object_keys(after)) k(t)
      LEFT JOIN LATERAL (SELECT before->t) b(v) ON true
      LEFT JOIN LATERAL (SELECT after->t) a(v) ON true
     WHERE b.v IS DISTINCT FROM a.v
$$;

-- A message as printed: control characters as \xNN, over 100 characters cut.
CREATE FUNCTION hostile_show(m text) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    cut text := CASE WHEN length(m) > 100 THEN left(m, 90) ELSE m END;
    s text := '';
    c text;
BEGIN
    IF m IS NULL THEN
        RETURN NULL;
    END IF;
    FOREACH c IN ARRAY regexp_split_to_array(cut, '') LOOP
        s := s || CASE WHEN ascii(c) < 32 OR ascii(c) = 127 THEN '\x' || lpad(to_hex(ascii(c)), 2, '0') ELSE c END;
    END LOOP;
    IF length(m) > 100 THEN
        s := s || format('... (%s characters)', length(m));
    END IF;
    RETURN s;
END
$$;

CREATE TEMP TABLE hostile_result (
    ord serial, case_name text, code text, message text, changes text,
    needle text, expect text);

-- One case: runs call (as as_role, if given) in a subtransaction and
-- reports it.  needle: what the message must contain (the bad value, or
-- the argument's name).  expect 'accepted': accepted by design.
CREATE FUNCTION hostile_run(case_name text, call text, needle text,
                            expect text DEFAULT NULL, as_role name DEFAULT NULL)
RETURNS TABLE("case" text, sqlstate text, message text, changes text)
LANGUAGE plpgsql AS $$
DECLARE
    before jsonb := hostile_snapshot();
    after jsonb;
    code text;
    msg text;
    result text;
BEGIN
    BEGIN
        IF as_role IS NOT NULL THEN
            EXECUTE format('SET LOCAL ROLE %I', as_role);
        END IF;
        EXECUTE call INTO result;
        IF as_role IS NOT NULL THEN
            RESET ROLE;
        END IF;
        after := hostile_snapshot();
        code := 'ok';
        msg := rtrim('returned ' || coalesce(result, 'NULL'));
        RAISE EXCEPTION USING ERRCODE = 'HOS00';   -- undo what it did
    EXCEPTION WHEN OTHERS THEN
        IF SQLSTATE <> 'HOS00' THEN
            code := SQLSTATE;
            msg := SQLERRM;
            after := hostile_snapshot();
        END IF;
    END;
    INSERT INTO hostile_result (case_name, code, message, changes, needle, expect)
    VALUES (hostile_run.case_name, code, msg, hostile_diff(before, after), needle, expect);
    RETURN QUERY SELECT r.case_name, r.code, hostile_show(r.message), r.changes
                   FROM hostile_result r ORDER BY r.ord DESC LIMIT 1;
END
$$;

-- A case run at the top level (CALL asyncrr.call): psql passes what the
-- statement before did (:ERROR, :LAST_ERROR_SQLSTATE, :LAST_ERROR_MESSAGE)
-- and the snapshot taken before it.
CREATE FUNCTION hostile_top(case_name text, failed boolean, code text, msg text, before jsonb,
                            needle text, expect text DEFAULT NULL)
RETURNS TABLE("case" text, sqlstate text, message text, changes text)
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO hostile_result (case_name, code, message, changes, needle, expect)
    VALUES (case_name, CASE WHEN failed THEN code ELSE 'ok' END,
            CASE WHEN failed THEN msg ELSE 'returned' END,
            hostile_diff(before, hostile_snapshot()), needle, expect);
    RETURN QUERY SELECT r.case_name, r.code, hostile_show(r.message), r.changes
                   FROM hostile_result r ORDER BY r.ord DESC LIMIT 1;
END
$$;

------------------------------------------------------------------------------
-- Fixtures.  The snapshots cover every row of every asyncrr table, so the
-- background worker must have nothing to do while the cases run: wait
-- until the earlier suites' sessions are gone and released, and no live
-- request of theirs is due within the next minutes.
------------------------------------------------------------------------------
SELECT wait_until($$
    SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity
                        WHERE datname = current_database() AND backend_type = 'client backend'
                          AND pid <> pg_backend_pid())
       AND NOT EXISTS (SELECT 1 FROM asyncrr.inbox
                        WHERE (holder_pid IS NULL AND NOT durable)
                           OR (holder_pid IS NOT NULL
                               AND NOT asyncrr._backend_alive(holder_pid, holder_started)))
       AND NOT EXISTS (SELECT 1 FROM asyncrr.request r
                        WHERE r.finished_at IS NOT NULL AND r.taken_at IS NULL
                          AND NOT EXISTS (SELECT 1 FROM asyncrr.inbox i WHERE i.inbox_name = r.inbox_name))
       AND NOT EXISTS (SELECT 1 FROM asyncrr.request
                        WHERE state IN ('pending', 'claimed')
                          AND least(deadline, lease_until) < now() + interval '10 minutes')$$, 180)
       AS background_worker_idle;
-- a call that sleeps instead of being refused fails the test, not hangs it
SET statement_timeout = '120s';

CREATE ROLE regress_hos_nobody LOGIN;                           -- no asyncrr role at all
CREATE ROLE regress_hos_requester IN ROLE asyncrr_requester;    -- no grant on any queue
CREATE ROLE regress_hos_worker IN ROLE asyncrr_worker;          -- no grant on any queue

-- hos_q: a pending request (P, ...01) and a claimed one (C, ...02, attempt 1);
-- hos_bounded: empty, max_priority 100; hos_dropped: dropped; hos_gone:
-- force-dropped with a request in it, which left a dead letter (G, ...03);
-- all in this session's session inbox.  (UNLISTEN in the same transaction:
-- the dead letter's notification is on its way.)
BEGIN;
SELECT asyncrr.create_queue('hos_q', default_timeout => '1 hour', lease => '1 hour');
SELECT asyncrr.create_queue('hos_bounded', default_timeout => '1 hour', lease => '1 hour');
SELECT asyncrr.alter_queue('hos_bounded', max_priority => 100);
SELECT asyncrr.create_queue('hos_dropped');
SELECT asyncrr.drop_queue('hos_dropped');
SELECT asyncrr.create_queue('hos_gone', default_timeout => '1 hour');
SELECT asyncrr.submit('hos_q', '{"p": 1}', correlation_id => 'b0571e00-0000-4000-8000-000000000001');
SELECT asyncrr.submit('hos_q', '{"c": 2}', correlation_id => 'b0571e00-0000-4000-8000-000000000002',
                      priority => 10);
SELECT asyncrr.submit('hos_gone', '{"g": 3}', correlation_id => 'b0571e00-0000-4000-8000-000000000003');
SELECT correlation_id, attempt FROM asyncrr.claim('hos_q', worker => 'hos-worker');
SELECT asyncrr.drop_queue('hos_gone', force => true);
UNLISTEN *;
COMMIT;
SELECT correlation_id, queue_name, state, attempt FROM asyncrr.status('b0571e00-0000-4000-8000-000000000001')
UNION ALL
SELECT correlation_id, queue_name, state, attempt FROM asyncrr.status('b0571e00-0000-4000-8000-000000000002')
UNION ALL
SELECT correlation_id, queue_name, state, attempt FROM asyncrr.status('b0571e00-0000-4000-8000-000000000003');
SELECT queue_name, correlation_id, reason FROM asyncrr.dead_letters WHERE queue_name LIKE 'hos\_%';
SELECT queue_name, max_priority FROM asyncrr.queue WHERE queue_name LIKE 'hos\_%' ORDER BY 1;

------------------------------------------------------------------------------
-- Queue and inbox names: quotes, backslashes, control characters, Unicode
-- look-alikes (Cyrillic "о" in "hоs_q", fullwidth letters, a zero-width
-- space), 10,000 characters.  Names are 1 to 48 ASCII letters, digits, "_",
-- ".", "-": a new name is refused with 22023; an unknown one is not found
-- (42704), look-alikes of an existing queue included.
------------------------------------------------------------------------------
SELECT r.* FROM (VALUES
    ('create_queue: single quote', $$SELECT asyncrr.create_queue('o''brien')$$, 'o''brien'),
    ('create_queue: double quote', $$SELECT asyncrr.create_queue('a"b')$$, 'a"b'),
    ('create_queue: backslash', $$SELECT asyncrr.create_queue(E'a\\b')$$, E'a\\b'),
    ('create_queue: \x01', $$SELECT asyncrr.create_queue(E'hos\x01q')$$, E'hos\x01q'),
    ('create_queue: newline', $$SELECT asyncrr.create_queue(E'hos\nq')$$, E'hos\nq'),
    ('create_queue: Cyrillic look-alike', $$SELECT asyncrr.create_queue('hоs_q')$$, 'hоs_q'),
    ('create_queue: fullwidth letters', $$SELECT asyncrr.create_queue('ｈｏｓ_q')$$, 'ｈｏｓ_q'),
    ('create_queue: zero-width space', $$SELECT asyncrr.create_queue(E'hos_q\u200b')$$, 'hos_q'),
    ('create_queue: trailing space', $$SELECT asyncrr.create_queue('hos_q ')$$, 'hos_q '),
    ('create_queue: empty name', $$SELECT asyncrr.create_queue('')$$, 'queue name'),
    ('create_queue: 49 bytes', $$SELECT asyncrr.create_queue(repeat('q', 49))$$, repeat('q', 49)),
    ('create_queue: 10,000 characters', $$SELECT asyncrr.create_queue(repeat('q', 10000))$$, repeat('q', 10000)),
    ('open_inbox: single quote', $$SELECT asyncrr.open_inbox('o''brien')$$, 'o''brien'),
    ('open_inbox: backslash', $$SELECT asyncrr.open_inbox(E'in\\box')$$, E'in\\box'),
    ('open_inbox: \x01', $$SELECT asyncrr.open_inbox(E'inbox\x01')$$, E'inbox\x01'),
    ('open_inbox: newline', $$SELECT asyncrr.open_inbox(E'in\nbox')$$, E'in\nbox'),
    ('open_inbox: Cyrillic look-alike', $$SELECT asyncrr.open_inbox('іnbox')$$, 'іnbox'),
    ('open_inbox: 10,000 characters', $$SELECT asyncrr.open_inbox(repeat('i', 10000))$$, repeat('i', 10000)),
    ('open_inbox: a session inbox name', $$SELECT asyncrr.open_inbox('_session_0123456789abcdef')$$, '_session_0123456789abcdef'),
    ('open_inbox: the call inbox', $$SELECT asyncrr.open_inbox('_call')$$, '_call'),
    ('submit: queue with a quote', $$SELECT asyncrr.submit('hos''q', '{}')$$, 'hos''q'),
    ('submit: queue look-alike of hos_q', $$SELECT asyncrr.submit('hоs_q', '{}')$$, 'hоs_q'),
    ('submit: queue of 10,000 characters', $$SELECT asyncrr.submit(repeat('q', 10000), '{}')$$, repeat('q', 10000)),
    ('submit_many: queue with \x01', $$SELECT asyncrr.submit_many(E'hos_q\x01', ARRAY['{}']::jsonb[])$$, E'hos_q\x01'),
    ('claim: queue with a newline', $$SELECT count(*) FROM asyncrr.claim(E'hos_q\n')$$, E'hos_q\n'),
    ('claim: queue with a backslash', $$SELECT count(*) FROM asyncrr.claim(E'hos\\q')$$, E'hos\\q'),
    ('wait_for_work: queue look-alike', $$CALL asyncrr.wait_for_work('hоs_q', '0')$$, 'hоs_q'),
    ('alter_queue: queue with a quote', $$SELECT asyncrr.alter_queue('hos_q''', max_depth => 5)$$, 'hos_q'''),
    ('drop_queue: queue look-alike', $$SELECT asyncrr.drop_queue('hоs_q')$$, 'hоs_q'),
    ('grant_queue: queue with \x01', $$SELECT asyncrr.grant_queue(E'hos_q\x01', 'regress_hos_worker', 'claim')$$, E'hos_q\x01'),
    ('grant_queue: role with a quote', $$SELECT asyncrr.grant_queue('hos_q', 'regress_hos''worker', 'claim')$$, 'regress_hos''worker'),
    ('grant_queue: role look-alike', $$SELECT asyncrr.grant_queue('hos_q', 'regress_hоs_worker', 'claim')$$, 'regress_hоs_worker'),
    ('grant_queue: role "public"', $$SELECT asyncrr.grant_queue('hos_q', 'public', 'submit')$$, 'public'),
    ('grant_queue: privilege in capitals', $$SELECT asyncrr.grant_queue('hos_q', 'regress_hos_worker', 'CLAIM')$$, 'CLAIM'),
    ('grant_queue: privilege with SQL in it', $$SELECT asyncrr.grant_queue('hos_q', 'regress_hos_worker', 'claim''); DROP TABLE x; --')$$, 'claim''); DROP TABLE x; --'),
    ('revoke_queue: privilege with a newline', $$SELECT asyncrr.revoke_queue('hos_q', 'regress_hos_worker', E'claim\n')$$, E'claim\n'),
    ('redrive_queue: queue of 10,000 characters', $$SELECT asyncrr.redrive_queue(repeat('q', 10000))$$, repeat('q', 10000)),
    ('redrive_queue: reason in capitals', $$SELECT asyncrr.redrive_queue('hos_q', 'TIMEOUT')$$, 'TIMEOUT'),
    ('redrive_queue: reason with \x01', $$SELECT asyncrr.redrive_queue('hos_q', E'timeout\x01')$$, E'timeout\x01')
) c(name, call, needle), LATERAL hostile_run(c.name, c.call, c.needle) r;

------------------------------------------------------------------------------
-- Intervals: negative, zero and absurd timeouts, leases, waits,
-- extensions and ages.  1,000,000 years is refused (22023, naming the
-- value) like a non-positive interval: the deadline, lease end or wake-up
-- it asks for lies past the end of timestamptz (294276 AD), so it can
-- never be honoured; a queue's default_timeout or lease of that length
-- would make every submit or claim that falls back on it fail.  200,000
-- years can be represented (accepted by design: only max_timeout bounds a
-- timeout).  'infinity' is no interval in PostgreSQL 15: the cast refuses
-- it before asyncrr is called.  (asyncrr 0.3 when this test was written:
-- create_queue and alter_queue accept 1,000,000 years, and every other
-- function -- and CALL asyncrr.call below -- fails with 22008 "timestamp
-- out of range", which names neither the value nor the argument.)
------------------------------------------------------------------------------
SELECT r.* FROM (VALUES
    ('create_queue: default_timeout -1 s', $$SELECT asyncrr.create_queue('hos_new', default_timeout => '-1 s')$$, '1 sec ago', NULL),
    ('create_queue: lease 0', $$SELECT asyncrr.create_queue('hos_new', lease => '0')$$, 'lease', NULL),
    ('create_queue: default_timeout 1000000 years', $$SELECT asyncrr.create_queue('hos_new', default_timeout => '1000000 years')$$, '1000000 years', NULL),
    ('create_queue: lease 1000000 years', $$SELECT asyncrr.create_queue('hos_new', lease => '1000000 years')$$, '1000000 years', NULL),
    ('create_queue: lease infinity', $$SELECT asyncrr.create_queue('hos_new', lease => 'infinity')$$, 'infinity', NULL),
    ('alter_queue: default_timeout 0', $$SELECT asyncrr.alter_queue('hos_q', default_timeout => '0')$$, 'default timeout', NULL),
    ('alter_queue: lease -1 s', $$SELECT asyncrr.alter_queue('hos_q', lease => '-1 s')$$, '1 sec ago', NULL),
    ('alter_queue: max_timeout -1 s', $$SELECT asyncrr.alter_queue('hos_q', max_timeout => '-1 s')$$, '1 sec ago', NULL),
    ('alter_queue: max_timeout 0', $$SELECT asyncrr.alter_queue('hos_q', max_timeout => '0')$$, 'max_timeout', NULL),
    ('alter_queue: default_timeout 1000000 years', $$SELECT asyncrr.alter_queue('hos_q', default_timeout => '1000000 years')$$, '1000000 years', NULL),
    ('alter_queue: lease 1000000 years', $$SELECT asyncrr.alter_queue('hos_q', lease => '1000000 years')$$, '1000000 years', NULL),
    ('submit: timeout 1000000 years', $$SELECT asyncrr.submit('hos_q', '{}', timeout => '1000000 years')$$, '1000000 years', NULL),
    ('submit: timeout infinity', $$SELECT asyncrr.submit('hos_q', '{}', timeout => 'infinity')$$, 'infinity', NULL),
    -- accepted by design: intervals up to 1,000 years (check.c), and hos_q
    -- sets no max_timeout; one more year is refused
    ('submit: timeout 1000 years', $$SELECT asyncrr.submit('hos_q', '{}', timeout => '1000 years', correlation_id => 'b0571e00-0000-4000-8000-0000000000a4')$$, NULL, 'accepted'),
    ('submit: timeout 1001 years', $$SELECT asyncrr.submit('hos_q', '{}', timeout => '1001 years')$$, '1001 years', NULL),
    ('submit: timeout 1 month -30 days', $$SELECT asyncrr.submit('hos_q', '{}', timeout => '1 month -30 days')$$, 'timeout', NULL),
    ('submit_many: timeout 0', $$SELECT asyncrr.submit_many('hos_q', ARRAY['{}']::jsonb[], timeout => '0')$$, 'timeout', NULL),
    ('submit_many: timeout -1 s', $$SELECT asyncrr.submit_many('hos_q', ARRAY['{}']::jsonb[], timeout => '-1 s')$$, '1 sec ago', NULL),
    ('submit_many: timeout 1000000 years', $$SELECT asyncrr.submit_many('hos_q', ARRAY['{}']::jsonb[], timeout => '1000000 years')$$, '1000000 years', NULL),
    ('claim: lease -1 s', $$SELECT count(*) FROM asyncrr.claim('hos_q', lease => '-1 s')$$, '1 sec ago', NULL),
    ('claim: lease 0', $$SELECT count(*) FROM asyncrr.claim('hos_q', lease => '0')$$, 'lease', NULL),
    ('claim: lease 1000000 years', $$SELECT count(*) FROM asyncrr.claim('hos_q', lease => '1000000 years')$$, '1000000 years', NULL),
    ('claim: wait -1 s', $$SELECT count(*) FROM asyncrr.claim('hos_q', wait => '-1 s')$$, '1 sec ago', NULL),
    ('claim: wait 1000000 years', $$SELECT count(*) FROM asyncrr.claim('hos_bounded', wait => '1000000 years')$$, '1000000 years', NULL),
    ('extend_lease: extra -1 s', $$SELECT asyncrr.extend_lease('b0571e00-0000-4000-8000-000000000002', '-1 s')$$, '1 sec ago', NULL),
    ('extend_lease: extra 0', $$SELECT asyncrr.extend_lease('b0571e00-0000-4000-8000-000000000002', '0', 1)$$, 'lease extension', NULL),
    ('extend_lease: extra 1000000 years', $$SELECT asyncrr.extend_lease('b0571e00-0000-4000-8000-000000000002', '1000000 years', 1)$$, '1000000 years', NULL),
    ('wait: timeout -1 s', $$SELECT count(*) FROM asyncrr.wait('b0571e00-0000-4000-8000-000000000001', '-1 s')$$, '1 sec ago', NULL),
    ('wait: timeout 1000000 years', $$SELECT count(*) FROM asyncrr.wait('b0571e00-0000-4000-8000-000000000001', '1000000 years')$$, '1000000 years', NULL),
    ('wait_for_reply: timeout -1 s', $$CALL asyncrr.wait_for_reply('b0571e00-0000-4000-8000-000000000001', '-1 s')$$, '1 sec ago', NULL),
    ('wait_for_reply: timeout 1000000 years', $$CALL asyncrr.wait_for_reply('b0571e00-0000-4000-8000-000000000001', '1000000 years')$$, '1000000 years', NULL),
    ('wait_for_work: timeout -1 s', $$CALL asyncrr.wait_for_work('hos_bounded', '-1 s')$$, '1 sec ago', NULL),
    ('wait_for_work: timeout 1000000 years', $$CALL asyncrr.wait_for_work('hos_bounded', '1000000 years')$$, '1000000 years', NULL),
    ('purge_dead_letters: older_than -1 s', $$SELECT asyncrr.purge_dead_letters('-1 s')$$, '1 sec ago', NULL),
    ('purge_dead_letters: older_than 1000000 years', $$SELECT asyncrr.purge_dead_letters('1000000 years')$$, '1000000 years', NULL)
) c(name, call, needle, expect), LATERAL hostile_run(c.name, c.call, c.needle, c.expect) r;

------------------------------------------------------------------------------
-- Counts and attempts: 0, -1, int min, 2^31 (no integer: the cast
-- refuses it); 10^9 where there is no upper bound (accepted by design:
-- claim and take_replies hand out what there is); attempts of no claim;
-- arrays of different lengths; an id twice in one batch.
------------------------------------------------------------------------------
SELECT r.* FROM (VALUES
    ('claim: max_requests 0', $$SELECT count(*) FROM asyncrr.claim('hos_q', 0)$$, 'max_requests', NULL),
    ('claim: max_requests -1', $$SELECT count(*) FROM asyncrr.claim('hos_q', -1)$$, 'max_requests -1', NULL),
    ('claim: max_requests int min', $$SELECT count(*) FROM asyncrr.claim('hos_q', '-2147483648')$$, '-2147483648', NULL),
    -- accepted by design: no upper bound; the queue is empty
    ('claim: max_requests 10^9', $$SELECT count(*) FROM asyncrr.claim('hos_bounded', 1000000000)$$, NULL, 'accepted'),
    ('claim: max_requests 2^31', $$SELECT count(*) FROM asyncrr.claim('hos_q', '2147483648')$$, '2147483648', NULL),
    ('take_replies: max_replies -1', $$SELECT count(*) FROM asyncrr.take_replies(-1)$$, 'max_replies -1', NULL),
    -- accepted by design: no upper bound; this session's inbox holds one
    -- reply (G's), which is taken -- and the take is undone
    ('take_replies: max_replies 10^9', $$SELECT count(*) FROM asyncrr.take_replies(1000000000)$$, NULL, 'accepted'),
    ('create_queue: max_attempts 0', $$SELECT asyncrr.create_queue('hos_new', max_attempts => 0)$$, 'max_attempts 0', NULL),
    ('create_queue: max_attempts int min', $$SELECT asyncrr.create_queue('hos_new', max_attempts => '-2147483648')$$, '-2147483648', NULL),
    ('alter_queue: max_attempts -1', $$SELECT asyncrr.alter_queue('hos_q', max_attempts => -1)$$, 'max_attempts -1', NULL),
    ('alter_queue: max_depth 0', $$SELECT asyncrr.alter_queue('hos_q', max_depth => 0)$$, 'max_depth 0', NULL),
    ('alter_queue: max_depth int min', $$SELECT asyncrr.alter_queue('hos_q', max_depth => '-2147483648')$$, '-2147483648', NULL),
    ('complete: attempt 0', $$SELECT asyncrr.complete('b0571e00-0000-4000-8000-000000000002', '{}', 0)$$, 'attempt 0', NULL),
    ('complete: attempt int min', $$SELECT asyncrr.complete('b0571e00-0000-4000-8000-000000000002', '{}', '-2147483648')$$, '-2147483648', NULL),
    -- accepted by design: another attempt's claim is fenced, "late", nothing written
    ('complete: attempt int max', $$SELECT asyncrr.complete('b0571e00-0000-4000-8000-000000000002', '{}', 2147483647)$$, NULL, 'accepted'),
    ('fail: attempt -1', $$SELECT asyncrr.fail('b0571e00-0000-4000-8000-000000000002', 'x', -1)$$, 'attempt -1', NULL),
    ('fail: attempt 0, retry', $$SELECT asyncrr.fail('b0571e00-0000-4000-8000-000000000002', 'x', 0, true)$$, 'attempt 0', NULL),
    ('extend_lease: attempt -1', $$SELECT asyncrr.extend_lease('b0571e00-0000-4000-8000-000000000002', '1 hour', -1)$$, 'attempt -1', NULL),
    ('extend_lease: attempt int max', $$SELECT asyncrr.extend_lease('b0571e00-0000-4000-8000-000000000002', '1 hour', 2147483647)$$, 'b0571e00-0000-4000-8000-000000000002', NULL),
    -- accepted by design: another attempt's claim is fenced, "late", nothing written
    ('fail: attempt int max', $$SELECT asyncrr.fail('b0571e00-0000-4000-8000-000000000002', 'x', 2147483647, true)$$, NULL, 'accepted'),
    ('complete_many: an attempt 0', $$SELECT count(*) FROM asyncrr.complete_many(ARRAY['b0571e00-0000-4000-8000-000000000002']::uuid[], ARRAY['{}']::jsonb[], ARRAY[0])$$, 'attempt 0', NULL),
    ('complete_many: attempts shorter', $$SELECT count(*) FROM asyncrr.complete_many(ARRAY['b0571e00-0000-4000-8000-000000000002']::uuid[], ARRAY['{}']::jsonb[], '{}'::int[])$$, 'attempts', NULL),
    ('complete_many: replies longer', $$SELECT count(*) FROM asyncrr.complete_many(ARRAY['b0571e00-0000-4000-8000-000000000002']::uuid[], ARRAY['{}', '{}']::jsonb[])$$, 'replies', NULL),
    ('submit_many: an id twice, two payloads', $$SELECT count(*) FROM asyncrr.submit_many('hos_q', ARRAY['{"a": 1}', '{"a": 2}']::jsonb[], correlation_ids => ARRAY['b0571e00-0000-4000-8000-0000000000a5', 'b0571e00-0000-4000-8000-0000000000a5']::uuid[])$$, 'b0571e00-0000-4000-8000-0000000000a5', NULL),
    ('submit_many: correlation_ids longer', $$SELECT count(*) FROM asyncrr.submit_many('hos_q', ARRAY['{}']::jsonb[], correlation_ids => ARRAY[NULL, NULL]::uuid[])$$, 'correlation_ids', NULL)
) c(name, call, needle, expect), LATERAL hostile_run(c.name, c.call, c.needle, c.expect) r;

------------------------------------------------------------------------------
-- Priority: extremes, and over the queue's max_priority (100 on
-- hos_bounded).  No lower bound: int min is accepted by design.
------------------------------------------------------------------------------
SELECT r.* FROM (VALUES
    ('submit: priority 101 over max_priority', $$SELECT asyncrr.submit('hos_bounded', '{}', priority => 101)$$, 'priority 101', NULL),
    ('submit: priority int max over max_priority', $$SELECT asyncrr.submit('hos_bounded', '{}', priority => 2147483647)$$, 'priority 2147483647', NULL),
    ('submit_many: priority int max over max_priority', $$SELECT count(*) FROM asyncrr.submit_many('hos_bounded', ARRAY['{}', '{}']::jsonb[], priority => 2147483647)$$, 'priority 2147483647', NULL),
    ('submit: priority 2^31', $$SELECT asyncrr.submit('hos_q', '{}', priority => '2147483648')$$, '2147483648', NULL),
    -- accepted by design: no lower bound
    ('submit: priority int min', $$SELECT asyncrr.submit('hos_bounded', '{}', priority => '-2147483648', correlation_id => 'b0571e00-0000-4000-8000-0000000000a1')$$, NULL, 'accepted')
) c(name, call, needle, expect), LATERAL hostile_run(c.name, c.call, c.needle, c.expect) r;

------------------------------------------------------------------------------
-- Headers that are not JSON objects (submit's array, string and null are
-- in sql/bad_input.sql); payloads, headers, replies over
-- asyncrr.max_payload_bytes (1 MB); NULL elements of array arguments
-- (refused where the reference says so, accepted by design elsewhere).
------------------------------------------------------------------------------
SELECT r.* FROM (VALUES
    ('submit: headers a number', $$SELECT asyncrr.submit('hos_q', '{}', headers => '42')$$, 'headers', NULL),
    ('submit: headers a boolean', $$SELECT asyncrr.submit('hos_q', '{}', headers => 'true')$$, 'headers', NULL),
    ('submit_many: headers an array', $$SELECT count(*) FROM asyncrr.submit_many('hos_q', ARRAY['{}']::jsonb[], headers => '[{"a": 1}]')$$, 'headers', NULL),
    ('submit_many: headers a string', $$SELECT count(*) FROM asyncrr.submit_many('hos_q', ARRAY['{}']::jsonb[], headers => '"x"')$$, 'headers', NULL),
    ('submit_many: headers JSON null', $$SELECT count(*) FROM asyncrr.submit_many('hos_q', ARRAY['{}']::jsonb[], headers => 'null')$$, 'headers', NULL),
    ('submit_many: headers a number', $$SELECT count(*) FROM asyncrr.submit_many('hos_q', ARRAY['{}']::jsonb[], headers => '-1e308')$$, 'headers', NULL),
    ('submit_many: a payload over 1 MB', $$SELECT count(*) FROM asyncrr.submit_many('hos_q', ARRAY['{}', jsonb_build_object('blob', repeat('x', 1100000))])$$, 'payload', NULL),
    ('submit_many: headers over 1 MB', $$SELECT count(*) FROM asyncrr.submit_many('hos_q', ARRAY['{}']::jsonb[], headers => jsonb_build_object('blob', repeat('x', 1100000)))$$, 'headers', NULL),
    ('complete: reply over 1 MB', $$SELECT asyncrr.complete('b0571e00-0000-4000-8000-000000000002', jsonb_build_object('blob', repeat('x', 1100000)))$$, 'reply', NULL),
    ('complete_many: a reply over 1 MB', $$SELECT count(*) FROM asyncrr.complete_many(ARRAY['b0571e00-0000-4000-8000-000000000002']::uuid[], ARRAY[jsonb_build_object('blob', repeat('x', 1100000))])$$, 'reply', NULL),
    ('submit_many: a NULL payload element', $$SELECT count(*) FROM asyncrr.submit_many('hos_q', ARRAY['{}', NULL]::jsonb[])$$, 'payload', NULL),
    ('complete_many: a NULL id element', $$SELECT count(*) FROM asyncrr.complete_many(ARRAY['b0571e00-0000-4000-8000-000000000002', NULL]::uuid[], ARRAY['{}', '{}']::jsonb[])$$, 'correlation id', NULL),
    -- accepted by design: a NULL id element gets a new id
    ('submit_many: a NULL id element', $$SELECT count(*) FROM asyncrr.submit_many('hos_q', ARRAY['{}', '{}']::jsonb[], correlation_ids => ARRAY[NULL, 'b0571e00-0000-4000-8000-0000000000a6']::uuid[])$$, NULL, 'accepted'),
    -- accepted by design: a NULL reply element is a NULL reply
    ('complete_many: a NULL reply element', $$SELECT string_agg(outcome, ',') FROM asyncrr.complete_many(ARRAY['b0571e00-0000-4000-8000-000000000002']::uuid[], ARRAY[NULL]::jsonb[])$$, NULL, 'accepted'),
    -- accepted by design: a NULL attempt element means "no attempt"
    ('complete_many: a NULL attempt element', $$SELECT string_agg(outcome, ',') FROM asyncrr.complete_many(ARRAY['b0571e00-0000-4000-8000-000000000002']::uuid[], ARRAY['{}']::jsonb[], ARRAY[NULL]::int[])$$, NULL, 'accepted'),
    -- accepted by design: a JSON null is a payload (a SQL NULL is not)
    ('submit: payload JSON null', $$SELECT asyncrr.submit('hos_q', 'null', correlation_id => 'b0571e00-0000-4000-8000-0000000000a7')$$, NULL, 'accepted')
) c(name, call, needle, expect), LATERAL hostile_run(c.name, c.call, c.needle, c.expect) r;

------------------------------------------------------------------------------
-- JSON nested 10,000 deep (about 20 kB of text, well under 1 MB).  The
-- reference sets no depth limit: as payload, object headers and reply it
-- is accepted by design, and stored (then undone); nested arrays as
-- headers are still not an object.
------------------------------------------------------------------------------
SELECT r.* FROM (VALUES
    -- accepted by design
    ('submit: payload 10,000 deep', $$SELECT asyncrr.submit('hos_q', (repeat('[', 10000) || repeat(']', 10000))::jsonb, correlation_id => 'b0571e00-0000-4000-8000-0000000000a2')$$, NULL, 'accepted'),
    -- accepted by design
    ('submit: headers 10,000 deep', $$SELECT asyncrr.submit('hos_q', '{}', headers => (repeat('{"a": ', 10000) || '1' || repeat('}', 10000))::jsonb, correlation_id => 'b0571e00-0000-4000-8000-0000000000a3')$$, NULL, 'accepted'),
    ('submit: headers an array 10,000 deep', $$SELECT asyncrr.submit('hos_q', '{}', headers => (repeat('[', 10000) || repeat(']', 10000))::jsonb)$$, 'headers', NULL),
    -- accepted by design
    ('complete: reply 10,000 deep', $$SELECT asyncrr.complete('b0571e00-0000-4000-8000-000000000002', (repeat('[', 10000) || repeat(']', 10000))::jsonb, 1)$$, NULL, 'accepted'),
    -- accepted by design
    ('complete_many: reply 10,000 deep', $$SELECT string_agg(outcome, ',') FROM asyncrr.complete_many(ARRAY['b0571e00-0000-4000-8000-000000000002']::uuid[], ARRAY[(repeat('{"a": ', 10000) || '1' || repeat('}', 10000))::jsonb])$$, NULL, 'accepted')
) c(name, call, needle, expect), LATERAL hostile_run(c.name, c.call, c.needle, c.expect) r;

------------------------------------------------------------------------------
-- Correlation ids: text that is no UUID (refused by the cast, 22P02), and
-- UUIDs of no request, or of a request in the wrong state.
------------------------------------------------------------------------------
SELECT r.* FROM (VALUES
    ('cancel: not a uuid', $$SELECT asyncrr.cancel('not-a-uuid')$$, 'not-a-uuid'),
    ('submit: correlation_id not a uuid', $$SELECT asyncrr.submit('hos_q', '{}', correlation_id => 'b0571e00-0000-4000-8000-00000000000g')$$, 'b0571e00-0000-4000-8000-00000000000g'),
    ('submit_many: a correlation id not a uuid', $$SELECT count(*) FROM asyncrr.submit_many('hos_q', ARRAY['{}']::jsonb[], correlation_ids => '{b0571e00-0000-4000-8000-0000000000011}')$$, 'b0571e00-0000-4000-8000-0000000000011'),
    ('complete: id with a quote', $$SELECT asyncrr.complete('b0571e00''', '{}')$$, 'b0571e00'''),
    ('status: id empty', $$SELECT count(*) FROM asyncrr.status('')$$, '""'),
    ('wait: id with a newline', $$SELECT count(*) FROM asyncrr.wait(E'b0571e00-0000-4000-8000-000000000001\n', '0')$$, 'b0571e00-0000-4000-8000-000000000001'),
    ('redrive: id of 10,000 characters', $$SELECT asyncrr.redrive('$$ || repeat('b', 10000) || $$')$$, repeat('b', 10000)),
    ('cancel: unknown id', $$SELECT asyncrr.cancel('b0571e00-0000-4000-8000-0000000000ff')$$, 'b0571e00-0000-4000-8000-0000000000ff'),
    ('complete: unknown id', $$SELECT asyncrr.complete('b0571e00-0000-4000-8000-0000000000ff', '{}')$$, 'b0571e00-0000-4000-8000-0000000000ff'),
    ('fail: unknown id', $$SELECT asyncrr.fail('b0571e00-0000-4000-8000-0000000000ff', 'x', 1)$$, 'b0571e00-0000-4000-8000-0000000000ff'),
    ('extend_lease: unknown id', $$SELECT asyncrr.extend_lease('b0571e00-0000-4000-8000-0000000000ff', '1 hour')$$, 'b0571e00-0000-4000-8000-0000000000ff'),
    ('wait: unknown id', $$SELECT count(*) FROM asyncrr.wait('b0571e00-0000-4000-8000-0000000000ff', '0')$$, 'b0571e00-0000-4000-8000-0000000000ff'),
    ('redrive: id of no dead letter', $$SELECT asyncrr.redrive('b0571e00-0000-4000-8000-000000000001')$$, 'b0571e00-0000-4000-8000-000000000001'),
    ('complete: a pending request', $$SELECT asyncrr.complete('b0571e00-0000-4000-8000-000000000001', '{}')$$, 'b0571e00-0000-4000-8000-000000000001'),
    ('extend_lease: a pending request', $$SELECT asyncrr.extend_lease('b0571e00-0000-4000-8000-000000000001', '1 hour')$$, 'b0571e00-0000-4000-8000-000000000001'),
    ('complete_many: an unknown id', $$SELECT count(*) FROM asyncrr.complete_many(ARRAY['b0571e00-0000-4000-8000-000000000002', 'b0571e00-0000-4000-8000-0000000000ff']::uuid[], ARRAY['{}', '{}']::jsonb[])$$, 'b0571e00-0000-4000-8000-0000000000ff')
) c(name, call, needle), LATERAL hostile_run(c.name, c.call, c.needle) r;

------------------------------------------------------------------------------
-- A dropped queue (hos_dropped), and the dead letter of a force-dropped
-- one (G of hos_gone): not found, and the dead letter stays.
------------------------------------------------------------------------------
SELECT r.* FROM (VALUES
    ('submit: dropped queue', $$SELECT asyncrr.submit('hos_dropped', '{}')$$, 'hos_dropped'),
    ('submit_many: dropped queue', $$SELECT count(*) FROM asyncrr.submit_many('hos_dropped', ARRAY['{}']::jsonb[])$$, 'hos_dropped'),
    ('claim: dropped queue', $$SELECT count(*) FROM asyncrr.claim('hos_dropped')$$, 'hos_dropped'),
    ('claim with wait: dropped queue', $$SELECT count(*) FROM asyncrr.claim('hos_dropped', wait => '1 s')$$, 'hos_dropped'),
    ('wait_for_work: dropped queue', $$CALL asyncrr.wait_for_work('hos_dropped', '1 s')$$, 'hos_dropped'),
    ('alter_queue: dropped queue', $$SELECT asyncrr.alter_queue('hos_dropped', max_depth => 1)$$, 'hos_dropped'),
    ('drop_queue: dropped queue', $$SELECT asyncrr.drop_queue('hos_dropped')$$, 'hos_dropped'),
    ('drop_queue force: dropped queue', $$SELECT asyncrr.drop_queue('hos_dropped', true)$$, 'hos_dropped'),
    ('grant_queue: dropped queue', $$SELECT asyncrr.grant_queue('hos_dropped', 'regress_hos_worker', 'all')$$, 'hos_dropped'),
    ('revoke_queue: dropped queue', $$SELECT asyncrr.revoke_queue('hos_dropped', 'regress_hos_worker', 'all')$$, 'hos_dropped'),
    ('redrive_queue: dropped queue', $$SELECT asyncrr.redrive_queue('hos_gone')$$, 'hos_gone'),
    ('redrive: dead letter of a dropped queue', $$SELECT asyncrr.redrive('b0571e00-0000-4000-8000-000000000003')$$, 'hos_gone')
) c(name, call, needle), LATERAL hostile_run(c.name, c.call, c.needle) r;

------------------------------------------------------------------------------
-- Roles: a LOGIN role with no asyncrr role (SET ROLE): PostgreSQL refuses
-- the schema; a requester without a grant; a requester calling a worker's
-- or an administrator's function; a worker calling a requester's.
------------------------------------------------------------------------------
SELECT r.* FROM (VALUES
    ('no role: submit', $$SELECT asyncrr.submit('hos_q', '{}')$$, 'asyncrr', 'regress_hos_nobody'),
    ('no role: claim', $$SELECT count(*) FROM asyncrr.claim('hos_q')$$, 'asyncrr', 'regress_hos_nobody'),
    ('no role: complete', $$SELECT asyncrr.complete('b0571e00-0000-4000-8000-000000000002', '{}')$$, 'asyncrr', 'regress_hos_nobody'),
    ('no role: open_inbox with a hostile name', $$SELECT asyncrr.open_inbox(E'x\x01''')$$, 'asyncrr', 'regress_hos_nobody'),
    ('no role: create_queue', $$SELECT asyncrr.create_queue('hos_new')$$, 'asyncrr', 'regress_hos_nobody'),
    ('no role: purge_dead_letters', $$SELECT asyncrr.purge_dead_letters('0')$$, 'asyncrr', 'regress_hos_nobody'),
    ('no role: read a table', $$SELECT count(*) FROM asyncrr.request$$, 'asyncrr', 'regress_hos_nobody'),
    ('requester: submit without a grant', $$SELECT asyncrr.submit('hos_q', '{}')$$, 'hos_q', 'regress_hos_requester'),
    ('requester: submit_many without a grant', $$SELECT count(*) FROM asyncrr.submit_many('hos_q', ARRAY['{}']::jsonb[])$$, 'hos_q', 'regress_hos_requester'),
    ('requester: claim', $$SELECT count(*) FROM asyncrr.claim('hos_q')$$, 'claim', 'regress_hos_requester'),
    ('requester: complete', $$SELECT asyncrr.complete('b0571e00-0000-4000-8000-000000000002', '{}')$$, 'complete', 'regress_hos_requester'),
    ('requester: cancel another role''s request', $$SELECT asyncrr.cancel('b0571e00-0000-4000-8000-000000000001')$$, 'b0571e00-0000-4000-8000-000000000001', 'regress_hos_requester'),
    ('requester: create_queue', $$SELECT asyncrr.create_queue('hos_new')$$, 'create_queue', 'regress_hos_requester'),
    ('requester: grant_queue to itself', $$SELECT asyncrr.grant_queue('hos_q', 'regress_hos_requester', 'all')$$, 'grant_queue', 'regress_hos_requester'),
    ('requester: redrive', $$SELECT asyncrr.redrive('b0571e00-0000-4000-8000-000000000003')$$, 'redrive', 'regress_hos_requester'),
    ('requester: an internal function', $$SELECT asyncrr._lock_queue('hos_q', true)$$, '_lock_queue', 'regress_hos_requester'),
    ('worker: claim without a grant', $$SELECT count(*) FROM asyncrr.claim('hos_q')$$, 'hos_q', 'regress_hos_worker'),
    ('worker: complete without a grant', $$SELECT asyncrr.complete('b0571e00-0000-4000-8000-000000000002', '{}')$$, 'b0571e00-0000-4000-8000-000000000002', 'regress_hos_worker'),
    ('worker: wait_for_work without a grant', $$CALL asyncrr.wait_for_work('hos_q', '0')$$, 'hos_q', 'regress_hos_worker'),
    ('worker: submit', $$SELECT asyncrr.submit('hos_q', '{}')$$, 'submit', 'regress_hos_worker'),
    ('worker: open_inbox', $$SELECT asyncrr.open_inbox('hos-inbox')$$, 'open_inbox', 'regress_hos_worker')
) c(name, call, needle, as_role), LATERAL hostile_run(c.name, c.call, c.needle, NULL, c.as_role) r;

------------------------------------------------------------------------------
-- CALL asyncrr.call, at the top level (it commits): NULL queue and
-- payload, a dropped and a look-alike queue, a payload over 1 MB, bad
-- timeouts, no asyncrr role.  Each one refused before it writes anything.
------------------------------------------------------------------------------
SELECT hostile_snapshot() AS snap \gset
CALL asyncrr.call(NULL, '{}');
SELECT * FROM hostile_top('call: NULL queue', :'ERROR', :'LAST_ERROR_SQLSTATE', :'LAST_ERROR_MESSAGE', :'snap', 'queue name');
SELECT hostile_snapshot() AS snap \gset
CALL asyncrr.call('hos_q', NULL);
SELECT * FROM hostile_top('call: NULL payload', :'ERROR', :'LAST_ERROR_SQLSTATE', :'LAST_ERROR_MESSAGE', :'snap', 'payload');
SELECT hostile_snapshot() AS snap \gset
CALL asyncrr.call('hos_dropped', '{}', '1 s');
SELECT * FROM hostile_top('call: dropped queue', :'ERROR', :'LAST_ERROR_SQLSTATE', :'LAST_ERROR_MESSAGE', :'snap', 'hos_dropped');
SELECT hostile_snapshot() AS snap \gset
CALL asyncrr.call('hоs_q', '{}', '1 s');
SELECT * FROM hostile_top('call: queue look-alike', :'ERROR', :'LAST_ERROR_SQLSTATE', :'LAST_ERROR_MESSAGE', :'snap', 'hоs_q');
SELECT hostile_snapshot() AS snap \gset
CALL asyncrr.call(E'hos_q\n', '{}', '1 s');
SELECT * FROM hostile_top('call: queue with a newline', :'ERROR', :'LAST_ERROR_SQLSTATE', :'LAST_ERROR_MESSAGE', :'snap', E'hos_q\n');
SELECT hostile_snapshot() AS snap \gset
CALL asyncrr.call('hos_q', jsonb_build_object('blob', repeat('x', 1100000)), '1 s');
SELECT * FROM hostile_top('call: payload over 1 MB', :'ERROR', :'LAST_ERROR_SQLSTATE', :'LAST_ERROR_MESSAGE', :'snap', 'payload');
SELECT hostile_snapshot() AS snap \gset
CALL asyncrr.call('hos_q', '{}', '-1 s');
SELECT * FROM hostile_top('call: timeout -1 s', :'ERROR', :'LAST_ERROR_SQLSTATE', :'LAST_ERROR_MESSAGE', :'snap', '1 sec ago');
SELECT hostile_snapshot() AS snap \gset
CALL asyncrr.call('hos_q', '{}', '0');
SELECT * FROM hostile_top('call: timeout 0', :'ERROR', :'LAST_ERROR_SQLSTATE', :'LAST_ERROR_MESSAGE', :'snap', 'timeout');
SELECT hostile_snapshot() AS snap \gset
CALL asyncrr.call('hos_q', '{}', '1000000 years');
SELECT * FROM hostile_top('call: timeout 1000000 years', :'ERROR', :'LAST_ERROR_SQLSTATE', :'LAST_ERROR_MESSAGE', :'snap', '1000000 years');
SELECT hostile_snapshot() AS snap \gset
CALL asyncrr.call('hos_bounded', '{}', correlation_id => 'b0571e00-0000-4000-8000-000000000001');
SELECT * FROM hostile_top('call: id of another queue''s request', :'ERROR', :'LAST_ERROR_SQLSTATE', :'LAST_ERROR_MESSAGE', :'snap', 'b0571e00-0000-4000-8000-000000000001');
SELECT hostile_snapshot() AS snap \gset
SET ROLE regress_hos_nobody;
CALL asyncrr.call('hos_q', '{}', '1 s');
\set failed :ERROR
RESET ROLE;
SELECT * FROM hostile_top('no role: call', :'failed', :'LAST_ERROR_SQLSTATE', :'LAST_ERROR_MESSAGE', :'snap', 'asyncrr');
SELECT hostile_snapshot() AS snap \gset
SET ROLE regress_hos_requester;
CALL asyncrr.call('hos_q', '{}', '1 s');
\set failed :ERROR
RESET ROLE;
SELECT * FROM hostile_top('requester: call without a grant', :'failed', :'LAST_ERROR_SQLSTATE', :'LAST_ERROR_MESSAGE', :'snap', 'hos_q');

------------------------------------------------------------------------------
-- The fixtures are as they were.
------------------------------------------------------------------------------
SELECT correlation_id, queue_name, state, attempt, worker FROM asyncrr.status('b0571e00-0000-4000-8000-000000000001')
UNION ALL
SELECT correlation_id, queue_name, state, attempt, worker FROM asyncrr.status('b0571e00-0000-4000-8000-000000000002')
UNION ALL
SELECT correlation_id, queue_name, state, attempt, worker FROM asyncrr.status('b0571e00-0000-4000-8000-000000000003');
SELECT queue_name, correlation_id, reason FROM asyncrr.dead_letters WHERE queue_name LIKE 'hos\_%';
SELECT queue_name, default_timeout, lease, max_attempts, max_depth, max_priority, max_timeout
  FROM asyncrr.queue WHERE queue_name LIKE 'hos\_%' ORDER BY 1;
SELECT count(*) AS grants FROM asyncrr.queue_grant WHERE queue_name LIKE 'hos\_%';

------------------------------------------------------------------------------
-- Every case that broke a rule (expected: none): an internal error or a
-- missing function, a refusal where acceptance is by design or the
-- reverse, a message that does not name the bad value or the argument, a
-- row changed by a refused call.
------------------------------------------------------------------------------
SELECT count(*) AS cases, count(*) FILTER (WHERE expect = 'accepted') AS accepted_by_design
  FROM hostile_result;
CREATE FUNCTION hostile_broken() RETURNS TABLE("case" text, sqlstate text, message text, changes text, broke text)
LANGUAGE sql AS $$
SELECT case_name, code, hostile_show(message), changes,
       concat_ws(', ',
                 CASE WHEN code LIKE 'XX%' THEN 'internal error' END,
                 CASE WHEN code = '42883' THEN 'no such function' END,
                 CASE WHEN code = 'ok' AND expect IS DISTINCT FROM 'accepted' THEN 'accepted' END,
                 CASE WHEN code <> 'ok' AND expect = 'accepted' THEN 'refused' END,
                 CASE WHEN code <> 'ok' AND strpos(message, needle) = 0 THEN 'does not name ' || hostile_show(needle) END,
                 CASE WHEN code <> 'ok' AND changes <> 'unchanged' THEN 'changed rows' END)
  FROM hostile_result
 WHERE code LIKE 'XX%' OR code = '42883'
    OR (code = 'ok') <> (expect IS NOT DISTINCT FROM 'accepted')
    OR (code <> 'ok' AND strpos(message, needle) = 0)
    OR (code <> 'ok' AND changes <> 'unchanged')
 ORDER BY ord
$$;
SELECT * FROM hostile_broken();

-- clean up: the queues, their requests and dead letters, this session's
-- inbox, the roles
SELECT asyncrr.drop_queue(queue_name, force => true) FROM asyncrr.queue WHERE queue_name LIKE 'hos\_%' ORDER BY queue_name;
SELECT asyncrr.close_inbox() \; UNLISTEN *;
DELETE FROM asyncrr.dead_letter WHERE queue_name LIKE 'hos\_%';
DELETE FROM asyncrr.request WHERE queue_name LIKE 'hos\_%';
DELETE FROM asyncrr.inbox WHERE inbox_name = asyncrr._session_inbox_name();
DROP ROLE regress_hos_nobody, regress_hos_requester, regress_hos_worker;

------------------------------------------------------------------------------
-- DROP EXTENSION + CREATE EXTENSION in one session, in a database of its
-- own: the backend keeps its saved plans and cached lookups across them.
-- Calls in between find no schema (3F000); after CREATE EXTENSION, the
-- queues, requests and dead letters from before are unknown, and a new
-- round trip works.  The helpers go along (their text, through psql
-- variables).
------------------------------------------------------------------------------
SELECT pg_get_functiondef('hostile_snapshot'::regproc) AS def_snapshot,
       pg_get_functiondef('hostile_diff'::regproc) AS def_diff,
       pg_get_functiondef('hostile_show'::regproc) AS def_show,
       pg_get_functiondef('hostile_run'::regproc) AS def_run,
       pg_get_functiondef('hostile_broken'::regproc) AS def_broken \gset
DROP TABLE hostile_result;
DROP FUNCTION hostile_run, hostile_top, hostile_broken, hostile_snapshot, hostile_diff, hostile_show;
CREATE DATABASE regress_hostile_db;
\c regress_hostile_db
\set VERBOSITY terse
\pset format unaligned
SET statement_timeout = '120s';
CREATE EXTENSION asyncrr;
CREATE TEMP TABLE hostile_result (
    ord serial, case_name text, code text, message text, changes text,
    needle text, expect text);
:def_snapshot;
:def_diff;
:def_show;
:def_run;
:def_broken;
-- the C functions' plans are made and kept: a round trip, a dead letter
BEGIN;
SELECT asyncrr.create_queue('hos_old', default_timeout => '1 hour', lease => '1 hour');
SELECT asyncrr.submit('hos_old', '{"n": 1}', correlation_id => 'b0571e00-0000-4000-8000-000000000011');
SELECT asyncrr.submit('hos_old', '{"n": 2}', correlation_id => 'b0571e00-0000-4000-8000-000000000012');
UNLISTEN *;
COMMIT;
SELECT correlation_id, attempt FROM asyncrr.claim('hos_old', 1);
SELECT asyncrr.complete('b0571e00-0000-4000-8000-000000000011', '{"r": 1}', 1);
SELECT correlation_id, status, reply FROM asyncrr.take_replies();
SELECT asyncrr.drop_queue('hos_old', force => true);
SELECT queue_name, correlation_id, reason FROM asyncrr.dead_letters;
SELECT correlation_id, status, error FROM asyncrr.wait('b0571e00-0000-4000-8000-000000000012', '0');
SELECT asyncrr.cancel('b0571e00-0000-4000-8000-000000000012');
UNLISTEN *;

DROP EXTENSION asyncrr;
SELECT r.* FROM (VALUES
    ('dropped extension: submit', $$SELECT asyncrr.submit('hos_old', '{}')$$, 'asyncrr'),
    ('dropped extension: take_replies', $$SELECT count(*) FROM asyncrr.take_replies()$$, 'asyncrr'),
    ('dropped extension: complete', $$SELECT asyncrr.complete('b0571e00-0000-4000-8000-000000000011', '{}')$$, 'asyncrr')
) c(name, call, needle), LATERAL hostile_run(c.name, c.call, c.needle) r;

CREATE EXTENSION asyncrr;
SELECT r.* FROM (VALUES
    ('re-created: submit to a queue from before', $$SELECT asyncrr.submit('hos_old', '{}')$$, 'hos_old', NULL),
    ('re-created: claim from a queue from before', $$SELECT count(*) FROM asyncrr.claim('hos_old')$$, 'hos_old', NULL),
    ('re-created: cancel a request from before', $$SELECT asyncrr.cancel('b0571e00-0000-4000-8000-000000000012')$$, 'b0571e00-0000-4000-8000-000000000012', NULL),
    ('re-created: complete a request from before', $$SELECT asyncrr.complete('b0571e00-0000-4000-8000-000000000011', '{}', 1)$$, 'b0571e00-0000-4000-8000-000000000011', NULL),
    ('re-created: fail a request from before', $$SELECT asyncrr.fail('b0571e00-0000-4000-8000-000000000011', 'x')$$, 'b0571e00-0000-4000-8000-000000000011', NULL),
    ('re-created: extend_lease a request from before', $$SELECT asyncrr.extend_lease('b0571e00-0000-4000-8000-000000000011', '1 hour')$$, 'b0571e00-0000-4000-8000-000000000011', NULL),
    ('re-created: wait for a request from before', $$SELECT count(*) FROM asyncrr.wait('b0571e00-0000-4000-8000-000000000012', '0')$$, 'b0571e00-0000-4000-8000-000000000012', NULL),
    ('re-created: redrive a dead letter from before', $$SELECT asyncrr.redrive('b0571e00-0000-4000-8000-000000000012')$$, 'b0571e00-0000-4000-8000-000000000012', NULL),
    ('re-created: redrive_queue of a queue from before', $$SELECT asyncrr.redrive_queue('hos_old')$$, 'hos_old', NULL),
    ('re-created: drop_queue of a queue from before', $$SELECT asyncrr.drop_queue('hos_old')$$, 'hos_old', NULL),
    -- accepted by design: the inbox from before is gone, nothing to take
    ('re-created: take_replies', $$SELECT count(*) FROM asyncrr.take_replies()$$, NULL, 'accepted'),
    -- accepted by design: the inbox from before is gone, nothing to close
    ('re-created: close_inbox', $$SELECT asyncrr.close_inbox(true)$$, NULL, 'accepted'),
    -- accepted by design: no row for an unknown id
    ('re-created: status of a request from before', $$SELECT count(*) FROM asyncrr.status('b0571e00-0000-4000-8000-000000000012')$$, NULL, 'accepted')
) c(name, call, needle, expect), LATERAL hostile_run(c.name, c.call, c.needle, c.expect) r;
-- and a round trip works in the new catalog, in this session
BEGIN;
SELECT asyncrr.create_queue('hos_old', default_timeout => '1 hour', lease => '1 hour');
SELECT asyncrr.submit('hos_old', '{"n": 3}', correlation_id => 'b0571e00-0000-4000-8000-000000000013');
UNLISTEN *;
COMMIT;
SELECT correlation_id, attempt FROM asyncrr.claim('hos_old', 10);
SELECT asyncrr.complete('b0571e00-0000-4000-8000-000000000013', '{"r": 3}', 1);
SELECT correlation_id, status, reply FROM asyncrr.take_replies();
SELECT correlation_id, state FROM asyncrr.status('b0571e00-0000-4000-8000-000000000013');
-- the cases here that broke a rule (expected: none)
SELECT count(*) AS cases FROM hostile_result;
SELECT * FROM hostile_broken();
\c :main_db
DROP DATABASE regress_hostile_db WITH (FORCE);
-- nothing of this test is left
SELECT (SELECT count(*) FROM asyncrr.queue WHERE queue_name LIKE 'hos\_%') AS queues,
       (SELECT count(*) FROM asyncrr.request WHERE queue_name LIKE 'hos\_%') AS requests,
       (SELECT count(*) FROM asyncrr.dead_letter WHERE queue_name LIKE 'hos\_%') AS dead_letters,
       (SELECT count(*) FROM pg_roles WHERE rolname LIKE 'regress\_hos\_%') AS roles,
       (SELECT count(*) FROM pg_proc WHERE proname LIKE 'hostile\_%') AS functions;

/* asyncrr 0.2 -> 0.3: clients that die, cancel and misbehave */
\echo Use "ALTER EXTENSION asyncrr UPDATE TO '0.3'" to load this file. \quit

-- What changes (doc/security.md, doc/reference.md):
-- - asyncrr acts for the role in effect when its function is called
--   (current_user), not session_user.  No user-facing function is SECURITY
--   DEFINER any more, since that hides the caller: the C functions run
--   their statements as the extension's owner themselves (src/plan.c), and
--   each function written in SQL is split into its user-facing entry, a C
--   function that calls the body asyncrr._<name> as the owner acting for
--   its caller (src/privilege.c), and that body.
-- - Queues are locked with a lock no SQL command can take (src/request.c),
--   not an advisory lock that any role could hold to stall a queue.
-- - close_inbox() releases only the caller's inbox (0.2 released every one:
--   under #variable_conflict use_column its WHERE clause compared the
--   column with itself); it and drop_queue(force) lock requests in
--   correlation-id order, as complete_many does.
-- - wait(), CALL asyncrr.call and the new procedures wait_for_reply and
--   wait_for_work are in C (src/wait.c): they watch the client connection
--   while they sleep, never report a reply as taken unless it was, and the
--   procedures hold no snapshot while they sleep.  A call whose caller goes
--   or is cancelled cancels its request.
-- - Session inbox names (and channels) are random: 64 bits.
-- - Internal functions are for the extension's owner only; the views
--   filter without them, and asyncrr.waiters reads asyncrr.list_waiters().
-- - Bounds: fail()'s error text (asyncrr.max_payload_bytes), claim()'s
--   worker name (200 bytes), and per-queue max_priority and max_timeout.
-- - The view asyncrr.metrics, with asyncrr.background_stats() (src/metrics.c).

------------------------------------------------------------------------------
-- Per-queue bounds on what a requester may ask for
------------------------------------------------------------------------------

ALTER TABLE asyncrr.queue
    ADD COLUMN max_priority integer,
    ADD COLUMN max_timeout interval CHECK (max_timeout > interval '0');

------------------------------------------------------------------------------
-- Delayed requests, order per key, scatter-gather, progress (issue 16)
------------------------------------------------------------------------------

ALTER TABLE asyncrr.request
    ADD COLUMN not_before timestamptz,
    ADD COLUMN ordering_key text,
    ADD COLUMN key_seq bigint,
    ADD COLUMN gather uuid,
    ADD COLUMN progress jsonb,
    ADD COLUMN progress_at timestamptz,
    ADD CHECK ((ordering_key IS NULL) = (key_seq IS NULL));
ALTER TABLE asyncrr.dead_letter
    ADD COLUMN progress jsonb,
    ADD COLUMN progress_at timestamptz,
    ADD COLUMN ordering_key text;
-- Places in the order of an ordering key (src/request.c)
CREATE SEQUENCE asyncrr.request_key_seq;
REVOKE ALL ON SEQUENCE asyncrr.request_key_seq FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('asyncrr.request_key_seq', '');

------------------------------------------------------------------------------
-- Helpers
------------------------------------------------------------------------------

-- The role asyncrr acts for: the role in effect when its function was called.
CREATE FUNCTION asyncrr._caller() RETURNS name
    LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'asyncrr_caller_sql';

-- A queue's lock against drop_queue: shared (submit) or exclusive (drop).
CREATE FUNCTION asyncrr._lock_queue(queue_name text, exclusive boolean) RETURNS void
    LANGUAGE c AS 'MODULE_PATHNAME', 'asyncrr_lock_queue_sql';

CREATE OR REPLACE FUNCTION asyncrr._check_size(what text, value jsonb) RETURNS void
    LANGUAGE c STABLE STRICT AS 'MODULE_PATHNAME', 'asyncrr_check_size';
CREATE FUNCTION asyncrr._check_size(what text, value text) RETURNS void
    LANGUAGE c STABLE STRICT AS 'MODULE_PATHNAME', 'asyncrr_check_size';

-- A session inbox's name: "_session_" and 64 random bits, drawn once per
-- backend.  It starts with "_", which no durable inbox name may.
CREATE OR REPLACE FUNCTION asyncrr._session_inbox_name() RETURNS text
    LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'asyncrr_session_inbox_name';


CREATE OR REPLACE FUNCTION asyncrr._sees(owner_role name) RETURNS boolean
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
    SELECT $1 = asyncrr._caller() OR asyncrr._is_admin()
$$;

CREATE OR REPLACE FUNCTION asyncrr._queue(queue_name text, lock boolean DEFAULT true) RETURNS asyncrr.queue
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    q asyncrr.queue;
BEGIN
    PERFORM asyncrr._check_not_null('queue name', queue_name);
    -- drop_queue takes this lock exclusively: no request can slip into a
    -- queue that is being dropped.  Taken before the row is read, so that
    -- a drop in flight is waited for and then seen.
    IF lock THEN
        PERFORM asyncrr._lock_queue(_queue.queue_name, false);
    END IF;
    SELECT * INTO q FROM asyncrr.queue WHERE queue.queue_name = _queue.queue_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'queue "%" does not exist', queue_name
            USING ERRCODE = 'undefined_object',
                  HINT = 'Create it with asyncrr.create_queue().';
    END IF;
    RETURN q;
END
$$;


-- Opens (or re-opens) an inbox for this session and LISTENs on its channel
-- (0.2's _open_inbox: the name now belongs to open_inbox's body).
ALTER FUNCTION asyncrr._open_inbox(text, boolean) RENAME TO _hold_inbox;
CREATE OR REPLACE FUNCTION asyncrr._hold_inbox(inbox_name text, durable boolean) RETURNS asyncrr.inbox
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    cur asyncrr.inbox := asyncrr._current_inbox();
    i asyncrr.inbox;
BEGIN
    IF cur.inbox_name IS NOT NULL THEN
        -- held for its owner only: code acting for another role in this
        -- session (SET ROLE, SECURITY DEFINER) cannot use it
        IF cur.inbox_name = _hold_inbox.inbox_name AND cur.owner_role = asyncrr._caller() THEN
            RETURN cur;
        END IF;
        RAISE EXCEPTION 'this session already holds inbox "%"', cur.inbox_name
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'A session holds one inbox at a time: call asyncrr.close_inbox() first.';
    END IF;

    INSERT INTO asyncrr.inbox (inbox_name, durable, owner_role)
    VALUES (_hold_inbox.inbox_name, _hold_inbox.durable, asyncrr._caller())
    ON CONFLICT DO NOTHING;
    SELECT * INTO i FROM asyncrr.inbox WHERE inbox_name = _hold_inbox.inbox_name FOR UPDATE;

    -- a durable inbox belongs to the role that first opened it
    IF NOT asyncrr._sees(i.owner_role) THEN
        RAISE EXCEPTION 'permission denied for inbox "%"', i.inbox_name
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'The inbox belongs to another role.',
                  HINT = 'Choose another inbox name.';
    END IF;

    IF i.holder_pid IS NOT NULL
       AND asyncrr._backend_alive(i.holder_pid, i.holder_started) THEN
        RAISE EXCEPTION 'inbox "%" is held by another session', i.inbox_name
            USING ERRCODE = 'object_in_use',
                  DETAIL = format('The backend with PID %s has held it since %s.', i.holder_pid, i.opened_at),
                  HINT = 'Only one live session holds a durable inbox; it is free as soon as that session ends or calls asyncrr.close_inbox().';
    END IF;

    UPDATE asyncrr.inbox
       SET holder_pid = pg_catalog.pg_backend_pid(),
           holder_started = asyncrr._backend_start(),
           opened_at = now(),
           released_at = NULL
     WHERE inbox_name = i.inbox_name
    RETURNING * INTO i;

    PERFORM asyncrr._listen(asyncrr._channel(i.inbox_name));
    RETURN i;
END
$$;

------------------------------------------------------------------------------
-- The functions written in SQL: a C entry (asyncrr_as_owner) that runs the
-- body asyncrr._<name> as the extension's owner, acting for the caller.
-- The body's code is 0.2's, with the caller as asyncrr._caller().
------------------------------------------------------------------------------

DROP FUNCTION asyncrr.open_inbox(text);
CREATE FUNCTION asyncrr._open_inbox(inbox_name text) RETURNS text
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM asyncrr._require('requester', 'open_inbox');
    IF inbox_name IS NULL THEN
        RETURN asyncrr._channel((asyncrr._hold_inbox(asyncrr._session_inbox_name(), false)).inbox_name);
    END IF;
    PERFORM asyncrr._check_name('inbox', inbox_name);
    RETURN asyncrr._channel((asyncrr._hold_inbox(inbox_name, true)).inbox_name);
END
$$;
CREATE FUNCTION asyncrr.open_inbox(inbox_name text DEFAULT NULL) RETURNS text
    LANGUAGE c SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'asyncrr_as_owner';
COMMENT ON FUNCTION asyncrr.open_inbox(text) IS
    'open this session''s reply inbox (NULL: a session inbox; a name: a durable inbox, which belongs to the role that first opened it), LISTEN on it, return its channel';

CREATE OR REPLACE FUNCTION asyncrr.cancel(correlation_id uuid) RETURNS boolean
    LANGUAGE c SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'asyncrr_cancel';

DROP FUNCTION asyncrr.status(uuid);
CREATE FUNCTION asyncrr._status(correlation_id uuid)
    RETURNS TABLE(correlation_id uuid, queue_name text, state text, attempt integer, worker text,
                  submitted_at timestamptz, deadline timestamptz, finished_at timestamptz,
                  reply jsonb, error text, dead_letter_reason text,
                  progress jsonb, progress_at timestamptz)
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
    SELECT asyncrr._require('requester', 'status');
    SELECT r.correlation_id, r.queue_name, r.state, r.attempt, r.worker,
           r.submitted_at, r.deadline, r.finished_at,
           coalesce(r.reply, r.late_reply), r.error,
           nullif(concat_ws(' ', r.dead_letter_reason,
                            '(redriven as ' || r.redriven_to || ')',
                            '(redriven from ' || r.redriven_from || ')'), ''),
           r.progress, r.progress_at
      FROM asyncrr.request r
     WHERE r.correlation_id = $1 AND asyncrr._sees(r.owner_role)
$$;
CREATE FUNCTION asyncrr.status(correlation_id uuid)
    RETURNS TABLE(correlation_id uuid, queue_name text, state text, attempt integer, worker text,
                  submitted_at timestamptz, deadline timestamptz, finished_at timestamptz,
                  reply jsonb, error text, dead_letter_reason text,
                  progress jsonb, progress_at timestamptz)
    LANGUAGE c STABLE SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'asyncrr_as_owner';
COMMENT ON FUNCTION asyncrr.status(uuid) IS
    'the whole story of one request of this role, live or ended: one row, or none for an unknown id or another role''s';

CREATE OR REPLACE FUNCTION asyncrr.fail(correlation_id uuid, error text, attempt integer, retry boolean DEFAULT false)
    RETURNS text
    LANGUAGE c SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'asyncrr_fail';

CREATE OR REPLACE FUNCTION asyncrr.extend_lease(correlation_id uuid, extra interval, attempt integer)
    RETURNS timestamptz
    LANGUAGE c SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'asyncrr_extend_lease';

DROP FUNCTION asyncrr.create_queue(text, interval, interval, integer);
CREATE FUNCTION asyncrr._create_queue(queue_name text,
                                     default_timeout interval,
                                     lease interval,
                                     max_attempts integer) RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    PERFORM asyncrr._require('admin', 'create_queue');
    PERFORM asyncrr._check_name('queue', _create_queue.queue_name);
    PERFORM asyncrr._check_positive('default timeout', _create_queue.default_timeout);
    PERFORM asyncrr._check_positive('lease', _create_queue.lease);
    PERFORM asyncrr._check_not_null('max_attempts', _create_queue.max_attempts);
    IF _create_queue.max_attempts < 1 THEN
        RAISE EXCEPTION 'invalid max_attempts %', _create_queue.max_attempts
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'max_attempts must be at least 1.';
    END IF;

    INSERT INTO asyncrr.queue (queue_name, default_timeout, lease, max_attempts)
    VALUES (_create_queue.queue_name, _create_queue.default_timeout, _create_queue.lease,
            _create_queue.max_attempts)
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'queue "%" already exists', _create_queue.queue_name
            USING ERRCODE = 'duplicate_object';
    END IF;
END
$$;
CREATE FUNCTION asyncrr.create_queue(queue_name text,
                                     default_timeout interval DEFAULT '30 seconds',
                                     lease interval DEFAULT '30 seconds',
                                     max_attempts integer DEFAULT 3) RETURNS void
    LANGUAGE c SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'asyncrr_as_owner';
COMMENT ON FUNCTION asyncrr.create_queue(text, interval, interval, integer) IS
    'create a queue: default request timeout, claim lease, and how many claims a request gets';

CREATE OR REPLACE FUNCTION asyncrr.drop_queue(queue_name text, force boolean DEFAULT false) RETURNS void
    LANGUAGE c SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'asyncrr_drop_queue';

DROP FUNCTION asyncrr.grant_queue(text, name, text);
CREATE FUNCTION asyncrr._grant_queue(queue_name text, role_name name, privilege text) RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    privs text[] := asyncrr._queue_privileges('grant_queue', _grant_queue.queue_name,
                                              _grant_queue.role_name, _grant_queue.privilege);
    q asyncrr.queue := asyncrr._queue(_grant_queue.queue_name);
BEGIN
    INSERT INTO asyncrr.queue_grant (queue_name, privilege, role_name, granted_by)
    SELECT q.queue_name, p, _grant_queue.role_name, asyncrr._caller() FROM pg_catalog.unnest(privs) p
    ON CONFLICT DO NOTHING;
END
$$;
CREATE FUNCTION asyncrr.grant_queue(queue_name text, role_name name, privilege text) RETURNS void
    LANGUAGE c SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'asyncrr_as_owner';
COMMENT ON FUNCTION asyncrr.grant_queue(text, name, text) IS
    'let a role (and its members) submit to (submit) or claim from (claim) a queue, or both (all)';

DROP FUNCTION asyncrr.revoke_queue(text, name, text);
CREATE FUNCTION asyncrr._revoke_queue(queue_name text, role_name name, privilege text) RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    privs text[] := asyncrr._queue_privileges('revoke_queue', _revoke_queue.queue_name,
                                              _revoke_queue.role_name, _revoke_queue.privilege);
    q asyncrr.queue := asyncrr._queue(_revoke_queue.queue_name);
BEGIN
    DELETE FROM asyncrr.queue_grant
     WHERE queue_name = q.queue_name AND role_name = _revoke_queue.role_name
       AND privilege = ANY (privs);
END
$$;
CREATE FUNCTION asyncrr.revoke_queue(queue_name text, role_name name, privilege text) RETURNS void
    LANGUAGE c SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'asyncrr_as_owner';
COMMENT ON FUNCTION asyncrr.revoke_queue(text, name, text) IS
    'take back a privilege (submit, claim or all) on a queue from a role; revoking what was not granted does nothing';

CREATE OR REPLACE FUNCTION asyncrr.redrive(correlation_id uuid) RETURNS uuid
    LANGUAGE c SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'asyncrr_redrive';

CREATE OR REPLACE FUNCTION asyncrr.redrive_queue(queue_name text, reason text DEFAULT NULL) RETURNS bigint
    LANGUAGE c SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'asyncrr_redrive_queue';

CREATE FUNCTION asyncrr._check_not_negative(what text, value interval) RETURNS void
    LANGUAGE c IMMUTABLE AS 'MODULE_PATHNAME', 'asyncrr_check_not_negative_sql';
REVOKE ALL ON FUNCTION asyncrr._check_not_negative(text, interval) FROM PUBLIC;
DROP FUNCTION asyncrr.purge_dead_letters(interval);
CREATE FUNCTION asyncrr._purge_dead_letters(older_than interval) RETURNS bigint
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    n bigint;
BEGIN
    PERFORM asyncrr._require('admin', 'purge_dead_letters');
    PERFORM asyncrr._check_not_negative('older_than', _purge_dead_letters.older_than);
    DELETE FROM asyncrr.dead_letter WHERE dead_lettered_at <= now() - _purge_dead_letters.older_than;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
CREATE FUNCTION asyncrr.purge_dead_letters(older_than interval) RETURNS bigint
    LANGUAGE c SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'asyncrr_as_owner';
COMMENT ON FUNCTION asyncrr.purge_dead_letters(interval) IS
    'remove dead letters older than the given age (0: all); returns how many';

DROP FUNCTION asyncrr.alter_queue(text, interval, interval, integer, integer);
CREATE FUNCTION asyncrr._alter_queue(queue_name text, default_timeout interval, lease interval,
                                     max_attempts integer, max_depth integer, max_priority integer,
                                     max_timeout interval) RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    q asyncrr.queue;
BEGIN
    PERFORM asyncrr._require('admin', 'alter_queue');
    q := asyncrr._queue(_alter_queue.queue_name);
    IF _alter_queue.default_timeout IS NOT NULL THEN
        PERFORM asyncrr._check_positive('default timeout', _alter_queue.default_timeout);
    END IF;
    IF _alter_queue.lease IS NOT NULL THEN
        PERFORM asyncrr._check_positive('lease', _alter_queue.lease);
    END IF;
    IF _alter_queue.max_timeout IS NOT NULL THEN
        PERFORM asyncrr._check_positive('max_timeout', _alter_queue.max_timeout);
    END IF;
    IF _alter_queue.max_attempts < 1 THEN
        RAISE EXCEPTION 'invalid max_attempts %', _alter_queue.max_attempts
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'max_attempts must be at least 1.';
    END IF;
    IF _alter_queue.max_depth < 1 THEN
        RAISE EXCEPTION 'invalid max_depth %', _alter_queue.max_depth
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'max_depth must be at least 1.';
    END IF;
    -- a submit without a timeout gets the default one, which must fit
    IF coalesce(_alter_queue.default_timeout, q.default_timeout)
       > coalesce(_alter_queue.max_timeout, q.max_timeout) THEN
        RAISE EXCEPTION 'default timeout "%" exceeds max_timeout "%" of queue "%"',
                        coalesce(_alter_queue.default_timeout, q.default_timeout),
                        coalesce(_alter_queue.max_timeout, q.max_timeout), q.queue_name
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    UPDATE asyncrr.queue
       SET default_timeout = coalesce(_alter_queue.default_timeout, default_timeout),
           lease = coalesce(_alter_queue.lease, lease),
           max_attempts = coalesce(_alter_queue.max_attempts, max_attempts),
           max_depth = coalesce(_alter_queue.max_depth, max_depth),
           max_priority = coalesce(_alter_queue.max_priority, max_priority),
           max_timeout = coalesce(_alter_queue.max_timeout, max_timeout)
     WHERE queue_name = q.queue_name;
END
$$;
CREATE FUNCTION asyncrr.alter_queue(queue_name text, default_timeout interval DEFAULT NULL,
                                    lease interval DEFAULT NULL, max_attempts integer DEFAULT NULL,
                                    max_depth integer DEFAULT NULL, max_priority integer DEFAULT NULL,
                                    max_timeout interval DEFAULT NULL) RETURNS void
    LANGUAGE c SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'asyncrr_as_owner';
COMMENT ON FUNCTION asyncrr.alter_queue(text, interval, interval, integer, integer, integer, interval) IS
    'change a queue''s settings (NULL: unchanged); new requests and claims use them; max_depth bounds its live requests, max_priority and max_timeout what a submit may ask for';

-- The short forms call the full ones as their caller.
CREATE OR REPLACE FUNCTION asyncrr.fail(correlation_id uuid, error text, retry boolean DEFAULT false) RETURNS text
    LANGUAGE sql SET search_path = pg_catalog, pg_temp
AS $$
    SELECT asyncrr.fail($1, $2, NULL::integer, $3)
$$;
ALTER FUNCTION asyncrr.fail(uuid, text, boolean) SECURITY INVOKER;

CREATE OR REPLACE FUNCTION asyncrr.extend_lease(correlation_id uuid, extra interval) RETURNS timestamptz
    LANGUAGE sql SET search_path = pg_catalog, pg_temp
AS $$
    SELECT asyncrr.extend_lease($1, $2, NULL::integer)
$$;
ALTER FUNCTION asyncrr.extend_lease(uuid, interval) SECURITY INVOKER;

------------------------------------------------------------------------------
-- The functions in C act for their caller and run their statements as the
-- owner themselves.
------------------------------------------------------------------------------

ALTER FUNCTION asyncrr.submit(text, jsonb, interval, uuid, integer, jsonb) SECURITY INVOKER;
ALTER FUNCTION asyncrr.submit_many(text, jsonb[], interval, uuid[], integer, jsonb) SECURITY INVOKER;
ALTER FUNCTION asyncrr.take_replies(integer) SECURITY INVOKER;
ALTER FUNCTION asyncrr.claim(text, integer, interval, text, interval) SECURITY INVOKER;
ALTER FUNCTION asyncrr.complete(uuid, jsonb, integer) SECURITY INVOKER;
ALTER FUNCTION asyncrr.complete(uuid, jsonb) SECURITY INVOKER;
ALTER FUNCTION asyncrr.complete_many(uuid[], jsonb[], integer[]) SECURITY INVOKER;

CREATE OR REPLACE FUNCTION asyncrr.close_inbox(cancel_pending boolean DEFAULT false) RETURNS integer
    LANGUAGE c SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'asyncrr_close_inbox';
ALTER FUNCTION asyncrr.close_inbox(boolean) SECURITY INVOKER;

------------------------------------------------------------------------------
-- The background worker's steps that change requests are C, with the rest
-- of the state changes (src/request.c); the helpers only the SQL versions
-- of those needed go (at the end, once the views no longer use _may).
------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION asyncrr._expire_deadlines(batch_size integer) RETURNS integer
    LANGUAGE c SET search_path = pg_catalog, pg_temp SET IntervalStyle = postgres
    AS 'MODULE_PATHNAME', 'asyncrr_expire_deadlines';
CREATE OR REPLACE FUNCTION asyncrr._expire_leases(batch_size integer) RETURNS integer
    LANGUAGE c SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'asyncrr_expire_leases';
CREATE OR REPLACE FUNCTION asyncrr._orphan_inboxes(batch_size integer, grace interval) RETURNS integer
    LANGUAGE c SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'asyncrr_orphan_inboxes';

------------------------------------------------------------------------------
-- Waiting (src/wait.c)
------------------------------------------------------------------------------

DROP FUNCTION asyncrr.wait(uuid, interval);
DROP FUNCTION asyncrr._wait(uuid, interval);
DROP FUNCTION asyncrr._wait_reply(uuid, timestamptz);
DROP PROCEDURE asyncrr.call(text, jsonb, interval, uuid, text, jsonb, text);
DROP FUNCTION asyncrr._call_wait(uuid);
DROP FUNCTION asyncrr._call_submit(text, jsonb, interval, uuid);
DROP FUNCTION asyncrr._submit(text, jsonb, interval, uuid, integer, jsonb, text);
DROP FUNCTION asyncrr._call_precheck(text);
DROP FUNCTION asyncrr._wait_register_reply(uuid);
DROP FUNCTION asyncrr._wait_register_work(text);
DROP FUNCTION asyncrr._wait_reset();
DROP FUNCTION asyncrr._wait_sleep(timestamptz);
DROP FUNCTION asyncrr._wait_unregister();

CREATE FUNCTION asyncrr.wait(correlation_id uuid, timeout interval DEFAULT '30 seconds')
    RETURNS TABLE(correlation_id uuid, status text, reply jsonb, error text, finished_at timestamptz)
    LANGUAGE c SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'asyncrr_wait';
COMMENT ON FUNCTION asyncrr.wait(uuid, interval) IS
    'wait (without LISTEN) until a request of this session''s inbox has a reply and take it; after timeout, return its live state and take nothing';

-- The procedures that sleep have no SET clause: a procedure with one
-- cannot COMMIT, and they commit before each sleep, to hold no lock while
-- they sleep.  They pin their search_path themselves (src/wait.c).
CREATE PROCEDURE asyncrr.wait_for_reply(correlation_id uuid, timeout interval DEFAULT '30 seconds',
                                        INOUT status text DEFAULT NULL, INOUT reply jsonb DEFAULT NULL,
                                        INOUT error text DEFAULT NULL)
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'asyncrr_wait_for_reply';
COMMENT ON PROCEDURE asyncrr.wait_for_reply(uuid, interval, text, jsonb, text) IS
    'wait() as a procedure, holding no snapshot (and in autocommit no lock) while it sleeps: the reply''s status, reply and error once it has one (taken), else the live status after timeout';

CREATE PROCEDURE asyncrr.wait_for_work(queue_name text, timeout interval DEFAULT '30 seconds',
                                       INOUT ready boolean DEFAULT NULL)
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'asyncrr_wait_for_work';
COMMENT ON PROCEDURE asyncrr.wait_for_work(text, interval, boolean) IS
    'sleep, holding no snapshot (and in autocommit no lock), until a claim of this queue would take something (ready) or the timeout passes (not ready); claims nothing';

CREATE PROCEDURE asyncrr.call(queue_name text, payload jsonb, timeout interval DEFAULT NULL,
                              INOUT correlation_id uuid DEFAULT NULL, INOUT status text DEFAULT NULL,
                              INOUT reply jsonb DEFAULT NULL, INOUT error text DEFAULT NULL)
    LANGUAGE c AS 'MODULE_PATHNAME', 'asyncrr_call';
COMMENT ON PROCEDURE asyncrr.call(text, jsonb, interval, uuid, text, jsonb, text) IS
    'one round trip in one statement: submit, commit, wait for the reply holding no snapshot and return it; needs autocommit, works through transaction pooling';

DROP VIEW asyncrr.waiters;
DROP FUNCTION asyncrr._waiters();
CREATE FUNCTION asyncrr.list_waiters() RETURNS TABLE(pid integer, waits_for text)
    LANGUAGE c SET search_path = pg_catalog, pg_temp AS 'MODULE_PATHNAME', 'asyncrr_waiters';
COMMENT ON FUNCTION asyncrr.list_waiters() IS
    'backends of this database sleeping in an asyncrr wait; a non-administrator sees only those of its own role';

------------------------------------------------------------------------------
-- Plans that do not depend on the statistics: each statement on
-- asyncrr.request has one index it can use (asyncrr--0.3.sql), so the
-- planner methods need no longer be switched off (src/plan.c remakes a
-- kept plan when the table has doubled or halved); the worker no longer
-- analyzes the table itself.
------------------------------------------------------------------------------

DROP INDEX asyncrr.request_lease_idx, asyncrr.request_live_queue_idx,
           asyncrr.request_live_inbox_idx, asyncrr.request_reply_idx,
           asyncrr.request_deadline_idx, asyncrr.request_claim_idx;
-- claim: the next claimable request of a queue, highest priority, then oldest
-- (one entry per request, without deduplication: requests submitted in
-- one transaction share their key, and a posting list of them could be
-- marked dead only once all were claimed, so each claim read them all again)
CREATE INDEX request_claim_idx ON asyncrr.request (queue_name, priority DESC, submitted_at)
    WITH (deduplicate_items = off)
    WHERE state = 'pending' AND not_before IS NULL;
-- the worker, queue by queue: delayed requests whose time has come
CREATE INDEX request_delayed_idx ON asyncrr.request (queue_name, not_before)
    WHERE state = 'pending' AND not_before IS NOT NULL;
-- claim: is an earlier request of this ordering key (of its queue and
-- role) still live?
CREATE INDEX request_key_idx ON asyncrr.request (queue_name, owner_role, ordering_key, key_seq)
    WHERE ordering_key IS NOT NULL AND state IN ('pending', 'claimed');
-- a scatter's parts
CREATE INDEX request_gather_idx ON asyncrr.request (gather) WHERE gather IS NOT NULL;
CREATE INDEX request_claimed_idx ON asyncrr.request (queue_name, lease_until)
    WHERE state = 'claimed';
CREATE INDEX request_deadline_idx ON asyncrr.request (deadline) WHERE finished_at IS NULL;
CREATE INDEX request_inbox_idx ON asyncrr.request (inbox_name, finished_at)
    WHERE taken_at IS NULL;
ALTER TABLE asyncrr.request SET (autovacuum_vacuum_scale_factor = 0.02,
                                 autovacuum_analyze_scale_factor = 0.05,
                                 autovacuum_vacuum_insert_scale_factor = 0.05,
                                 vacuum_truncate = off);
-- Vacuum does not give the empty pages at the end back to the file system:
-- that needs an ACCESS EXCLUSIVE lock, which a busy queue's next statement
-- takes from it at once (the 30-minute soak saw autovacuum spend ~5 s a
-- minute failing to truncate), and the pages are refilled within seconds.
ALTER TABLE asyncrr.dead_letter SET (vacuum_truncate = off);

DROP FUNCTION asyncrr._refresh_statistics();
ALTER FUNCTION asyncrr.submit(text, jsonb, interval, uuid, integer, jsonb) RESET jit;
ALTER FUNCTION asyncrr.submit(text, jsonb, interval, uuid, integer, jsonb) RESET enable_seqscan;
ALTER FUNCTION asyncrr.submit_many(text, jsonb[], interval, uuid[], integer, jsonb) RESET jit;
ALTER FUNCTION asyncrr.submit_many(text, jsonb[], interval, uuid[], integer, jsonb) RESET enable_seqscan;
ALTER FUNCTION asyncrr.take_replies(integer) RESET jit;
ALTER FUNCTION asyncrr.take_replies(integer) RESET enable_seqscan;
ALTER FUNCTION asyncrr.claim(text, integer, interval, text, interval) RESET jit;
ALTER FUNCTION asyncrr.claim(text, integer, interval, text, interval) RESET enable_seqscan;
ALTER FUNCTION asyncrr.complete(uuid, jsonb, integer) RESET jit;
ALTER FUNCTION asyncrr.complete(uuid, jsonb, integer) RESET enable_seqscan;
ALTER FUNCTION asyncrr.complete(uuid, jsonb) RESET jit;
ALTER FUNCTION asyncrr.complete(uuid, jsonb) RESET enable_seqscan;
ALTER FUNCTION asyncrr.complete_many(uuid[], jsonb[], integer[]) RESET jit;
ALTER FUNCTION asyncrr.complete_many(uuid[], jsonb[], integer[]) RESET enable_seqscan;

CREATE OR REPLACE FUNCTION asyncrr._purge_requests(batch_size integer, retention interval) RETURNS integer
    LANGUAGE sql SET search_path = pg_catalog, pg_temp
AS $$
    WITH gone AS (
        DELETE FROM asyncrr.request r
         WHERE r.correlation_id = ANY (ARRAY(
                SELECT q.correlation_id FROM asyncrr.request q
                 WHERE q.finished_at < now() - $2 AND q.taken_at IS NOT NULL
                   AND NOT EXISTS (SELECT 1 FROM asyncrr.dead_letter d
                                    WHERE d.correlation_id = q.correlation_id)
                   -- a part makes its gather's reply: kept while the gather is
                   -- live (one look through the primary key, not an anti-join)
                   AND (q.gather IS NULL
                        OR coalesce((SELECT g.finished_at IS NOT NULL FROM asyncrr.request g
                                      WHERE g.correlation_id = q.gather), true))
                 ORDER BY q.finished_at
                 LIMIT $1
                 FOR UPDATE SKIP LOCKED))
        RETURNING 1)
    SELECT count(*)::integer FROM gone
$$;

CREATE OR REPLACE FUNCTION asyncrr._next_event() RETURNS timestamptz
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
    SELECT least((SELECT r.deadline FROM asyncrr.request r WHERE r.finished_at IS NULL
                   ORDER BY r.deadline LIMIT 1),
                 (SELECT min(l.lease_until) FROM asyncrr.queue q
                   CROSS JOIN LATERAL (SELECT r.lease_until FROM asyncrr.request r
                                        WHERE r.state = 'claimed' AND r.queue_name = q.queue_name
                                        ORDER BY r.lease_until LIMIT 1) l),
                 (SELECT min(d.not_before) FROM asyncrr.queue q
                   CROSS JOIN LATERAL (SELECT r.not_before FROM asyncrr.request r
                                        WHERE r.state = 'pending' AND r.not_before IS NOT NULL
                                          AND r.queue_name = q.queue_name
                                        ORDER BY r.not_before LIMIT 1) d))
$$;

------------------------------------------------------------------------------
-- Views: they filter for the role reading them (current_user), with no
-- internal function.
------------------------------------------------------------------------------

CREATE OR REPLACE VIEW asyncrr.pending WITH (security_barrier) AS
SELECT r.queue_name, r.correlation_id, r.state, r.priority, r.attempt, r.worker,
       r.submitted_at, r.deadline, r.lease_until, r.inbox_name AS inbox, r.owner_role AS owner,
       r.not_before, r.ordering_key
  FROM asyncrr.request r
 WHERE r.state IN ('pending', 'claimed')
   AND (pg_catalog.pg_has_role(current_user, 'asyncrr_admin', 'MEMBER') OR r.owner_role = current_user);

CREATE OR REPLACE VIEW asyncrr.dead_letters WITH (security_barrier) AS
SELECT d.queue_name, d.correlation_id, d.reason, d.attempt, d.worker, d.last_error,
       d.payload, d.headers, d.reply, d.late_reply, d.inbox_name AS inbox,
       d.submitted_at, d.dead_lettered_at, d.owner_role AS owner, d.progress, d.progress_at
  FROM asyncrr.dead_letter d
 WHERE pg_catalog.pg_has_role(current_user, 'asyncrr_admin', 'MEMBER') OR d.owner_role = current_user;
COMMENT ON VIEW asyncrr.pending IS 'live requests (pending or claimed) of this role (administrators: all), with their deadlines, leases, inboxes, the time a delayed one becomes claimable (not_before) and ordering keys';
COMMENT ON VIEW asyncrr.dead_letters IS 'dead-lettered requests of this role (administrators: all) with reason, payload, attempt, last error, any late reply and the last progress reported';

-- A worker with claim on a queue sees all of its requests counted; a
-- requester with submit only its own.  (The rule of src/privilege.c's
-- asyncrr_may(), for the reader.)
CREATE OR REPLACE VIEW asyncrr.queue_stats WITH (security_barrier) AS
WITH me AS (
    SELECT pg_catalog.pg_has_role(current_user, 'asyncrr_admin', 'MEMBER') AS admin,
           pg_catalog.pg_has_role(current_user, 'asyncrr_worker', 'MEMBER') AS worker,
           pg_catalog.pg_has_role(current_user, 'asyncrr_requester', 'MEMBER') AS requester),
q AS (
    SELECT q.queue_name, q.max_depth,
           me.admin OR (me.worker AND EXISTS (
               SELECT 1 FROM asyncrr.queue_grant g JOIN pg_catalog.pg_roles r ON r.rolname = g.role_name
                WHERE g.queue_name = q.queue_name AND g.privilege = 'claim'
                  AND pg_catalog.pg_has_role(current_user, r.oid, 'MEMBER'))) AS whole,
           me.admin OR (me.requester AND EXISTS (
               SELECT 1 FROM asyncrr.queue_grant g JOIN pg_catalog.pg_roles r ON r.rolname = g.role_name
                WHERE g.queue_name = q.queue_name AND g.privilege = 'submit'
                  AND pg_catalog.pg_has_role(current_user, r.oid, 'MEMBER'))) AS own
      FROM asyncrr.queue q, me)
SELECT q.queue_name,
       count(*) FILTER (WHERE r.state = 'pending' AND r.not_before IS NULL) AS pending,
       count(*) FILTER (WHERE r.state = 'claimed')       AS claimed,
       -- claimable since: submitted, or the time a delayed one was due (its
       -- deadline counts from there)
       now() - min(r.deadline - r.timeout) FILTER (WHERE r.state = 'pending' AND r.not_before IS NULL)
           AS oldest_pending_age,
       count(*) FILTER (WHERE r.state = 'completed')     AS completed,
       count(*) FILTER (WHERE r.state = 'failed')        AS failed,
       count(*) FILTER (WHERE r.state = 'timed_out')     AS timed_out,
       count(*) FILTER (WHERE r.state = 'cancelled')     AS cancelled,
       count(*) FILTER (WHERE r.state = 'dead_lettered') AS dead_lettered,
       (SELECT count(*) FROM asyncrr.dead_letter d
         WHERE d.queue_name = q.queue_name AND (q.whole OR d.owner_role = current_user)) AS dead_letters,
       q.max_depth,
       count(*) FILTER (WHERE r.state = 'pending' AND r.not_before IS NOT NULL) AS delayed
  FROM q
  LEFT JOIN asyncrr.request r ON r.queue_name = q.queue_name AND (q.whole OR r.owner_role = current_user)
 WHERE q.whole OR q.own
 GROUP BY q.queue_name, q.max_depth, q.whole;
COMMENT ON VIEW asyncrr.queue_stats IS 'per queue this role may use: live requests, age of the oldest claimable one, outcomes of the requests still retained (with submit only: its own), max_depth, delayed requests';

CREATE OR REPLACE VIEW asyncrr.inboxes WITH (security_barrier) AS
SELECT i.inbox_name AS name, 'asyncrr.' OPERATOR(pg_catalog.||) i.inbox_name AS channel, i.durable,
       i.holder_pid, i.owner_role,
       (SELECT count(*) FROM asyncrr.request r
         WHERE r.inbox_name = i.inbox_name AND r.finished_at IS NOT NULL AND r.taken_at IS NULL)
           AS untaken_replies,
       (SELECT count(*) FROM asyncrr.request r
         WHERE r.inbox_name = i.inbox_name AND r.taken_at IS NULL AND r.finished_at IS NULL)
           AS live_requests,
       i.opened_at, i.released_at
  FROM asyncrr.inbox i
 WHERE pg_catalog.pg_has_role(current_user, 'asyncrr_admin', 'MEMBER') OR i.owner_role = current_user;

CREATE OR REPLACE VIEW asyncrr.queue_grants WITH (security_barrier) AS
SELECT g.queue_name, g.role_name, g.privilege, g.granted_by, g.granted_at
  FROM asyncrr.queue_grant g
 WHERE pg_catalog.pg_has_role(current_user, 'asyncrr_admin', 'MEMBER')
    OR pg_catalog.pg_has_role(current_user,
                              (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = g.role_name),
                              'MEMBER');

CREATE VIEW asyncrr.waiters AS
SELECT w.pid, w.waits_for FROM asyncrr.list_waiters() w;
COMMENT ON VIEW asyncrr.waiters IS 'backends sleeping in asyncrr.wait, CALL asyncrr.call, wait_for_reply (waits_for reply), claim with wait or wait_for_work (work); a non-administrator sees its own role''s only';

------------------------------------------------------------------------------
-- Metrics: one row per queue and measure, and the instance-wide measures
-- (queue_name NULL).  The queues and their counts are asyncrr.queue_stats',
-- seen as it lets this role see them; the waiters are
-- asyncrr.list_waiters()', filtered likewise; the dispatcher's backlog and
-- the worker's last pass come from shared memory (src/metrics.c), in
-- asyncrr.database only.  A measure that cannot be known here has no row.
-- The Prometheus metric of a measure is asyncrr_queue_<measure> or
-- asyncrr_<measure> (contrib/prometheus/asyncrr_queries.yaml).
------------------------------------------------------------------------------

CREATE FUNCTION asyncrr.background_stats()
    RETURNS TABLE(dispatcher_backlog bigint, worker_pass_started timestamptz,
                  worker_pass_ended timestamptz, worker_lag interval)
    LANGUAGE c SET search_path = pg_catalog, pg_temp AS 'MODULE_PATHNAME', 'asyncrr_background_stats';
COMMENT ON FUNCTION asyncrr.background_stats() IS
    'in asyncrr.database: notifications not yet sent by the dispatcher, and the background worker''s last completed pass: its start, its end, how late it started for what was due';

CREATE VIEW asyncrr.metrics WITH (security_barrier) AS
SELECT s.queue_name, m.measure, m.value, m.help
  FROM asyncrr.queue_stats s
 CROSS JOIN LATERAL (VALUES
    ('pending', s.pending::float8, 'requests of the queue waiting to be claimed, their time come'),
    ('delayed', s.delayed::float8, 'requests of the queue whose not_before has not come'),
    ('claimed', s.claimed::float8, 'requests of the queue claimed by a worker and not ended'),
    ('oldest_pending_age_seconds',
     coalesce(EXTRACT(epoch FROM s.oldest_pending_age)::float8, 0),
     'age in seconds of the oldest pending request of the queue (0: none pending)'),
    ('completed', s.completed::float8, 'retained requests of the queue that ended completed'),
    ('failed', s.failed::float8, 'retained requests of the queue that ended failed'),
    ('timed_out', s.timed_out::float8, 'retained requests of the queue that ended timed_out'),
    ('cancelled', s.cancelled::float8, 'retained requests of the queue that ended cancelled'),
    ('dead_lettered', s.dead_lettered::float8, 'retained requests of the queue that ended dead_lettered'),
    ('dead_letters', s.dead_letters::float8, 'dead letters of the queue, any reason')) AS m(measure, value, help)
UNION ALL
SELECT NULL, m.measure, m.value, m.help
  FROM (SELECT count(*) FILTER (WHERE w.waits_for = 'reply') AS reply,
               count(*) FILTER (WHERE w.waits_for = 'work') AS work
          FROM asyncrr.list_waiters() w) w,
       asyncrr.background_stats() b
 CROSS JOIN LATERAL (VALUES
    ('waiters_for_reply', w.reply::float8,
     'backends of this database sleeping until a reply comes (wait, wait_for_reply, call)'),
    ('waiters_for_work', w.work::float8,
     'backends of this database sleeping until there is work (claim with wait, wait_for_work)'),
    ('dispatcher_backlog', b.dispatcher_backlog::float8,
     'notifications of replies handed to the dispatcher and not yet sent'),
    ('worker_last_pass_age_seconds',
     EXTRACT(epoch FROM pg_catalog.clock_timestamp() - b.worker_pass_ended)::float8,
     'seconds since the background worker''s last completed pass ended'),
    ('worker_lag_seconds', EXTRACT(epoch FROM b.worker_lag)::float8,
     'seconds the worker''s last completed pass started after the earliest deadline or lease end it had found due (0: none had come)')) AS m(measure, value, help)
 WHERE m.value IS NOT NULL;
COMMENT ON VIEW asyncrr.metrics IS 'one row per queue this role may use (as in queue_stats) and measure, and the instance-wide measures (queue_name NULL): depth, oldest pending age, outcomes, dead letters, waiters, dispatcher backlog, worker''s last pass and lag';

-- The helpers that only the SQL versions of the state changes needed.
DROP FUNCTION asyncrr._time_out(uuid);
DROP FUNCTION asyncrr._end_request(uuid, text, jsonb, text, text);
DROP FUNCTION asyncrr._after_end(asyncrr.request, jsonb);
DROP FUNCTION asyncrr._stale_claim(asyncrr.request, integer);
DROP FUNCTION asyncrr._request_for_update(uuid, text);
DROP FUNCTION asyncrr._note_deadline(timestamptz);
DROP FUNCTION asyncrr._wake_work_at_commit(text);
DROP FUNCTION asyncrr._notify_reply(text, uuid, text);
DROP FUNCTION asyncrr._unlisten(text);
DROP FUNCTION asyncrr._queue(text, text, boolean);
DROP FUNCTION asyncrr._may(text, text);
DROP FUNCTION asyncrr._backend_id();

-- one round trip per batch for a busy worker (issue 15)
CREATE FUNCTION asyncrr.complete_and_claim(queue_name text, correlation_ids uuid[], replies jsonb[],
                                           attempts integer[] DEFAULT NULL,
                                           max_requests integer DEFAULT 1,
                                           lease interval DEFAULT NULL, worker text DEFAULT NULL)
    RETURNS TABLE(correlation_id uuid, outcome text, payload jsonb, headers jsonb,
                  attempt integer, deadline timestamptz, lease_until timestamptz)
    LANGUAGE c SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'asyncrr_complete_and_claim';
COMMENT ON FUNCTION asyncrr.complete_and_claim(text, uuid[], jsonb[], integer[], integer, interval, text) IS
    'complete_many() then claim() without waiting, in one statement and one commit: a busy worker''s one round trip per batch; returns each completion''s outcome, then the claimed requests (outcome claimed); never sleeps';

-- delayed requests and order per key (issue 16): two trailing arguments
DROP FUNCTION asyncrr.submit(text, jsonb, interval, uuid, integer, jsonb);
DROP FUNCTION asyncrr.submit_many(text, jsonb[], interval, uuid[], integer, jsonb);
CREATE FUNCTION asyncrr.submit(queue_name text, payload jsonb, timeout interval DEFAULT NULL,
                               correlation_id uuid DEFAULT NULL, priority integer DEFAULT 0,
                               headers jsonb DEFAULT NULL, not_before timestamptz DEFAULT NULL,
                               ordering_key text DEFAULT NULL) RETURNS uuid
    LANGUAGE c SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'asyncrr_submit';
COMMENT ON FUNCTION asyncrr.submit(text, jsonb, interval, uuid, integer, jsonb, timestamptz, text) IS
    'enqueue a request whose reply goes to this session''s inbox; idempotent per correlation id; not claimable before not_before; claimed after the earlier requests of its ordering_key in the queue have ended; returns the id';

CREATE FUNCTION asyncrr.submit_many(queue_name text, payloads jsonb[], timeout interval DEFAULT NULL,
                                    correlation_ids uuid[] DEFAULT NULL, priority integer DEFAULT 0,
                                    headers jsonb DEFAULT NULL, not_before timestamptz DEFAULT NULL,
                                    ordering_key text DEFAULT NULL) RETURNS SETOF uuid
    LANGUAGE c SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'asyncrr_submit_many';
COMMENT ON FUNCTION asyncrr.submit_many(text, jsonb[], interval, uuid[], integer, jsonb, timestamptz, text) IS
    'submit() for many payloads in one call, all or nothing (correlation_ids, if given, pair with payloads; NULL elements get new ids; one ordering_key keeps payload order); returns the ids in payload order';

-- Scatter-gather (src/request.c): a gather is a request of no queue whose
-- parts are ordinary requests of theirs; it ends when its last part does.
CREATE FUNCTION asyncrr.scatter(queue_names text[], payload jsonb, timeout interval DEFAULT NULL,
                                correlation_id uuid DEFAULT NULL, headers jsonb DEFAULT NULL)
    RETURNS uuid
    LANGUAGE c SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'asyncrr_scatter';
COMMENT ON FUNCTION asyncrr.scatter(text[], jsonb, interval, uuid, jsonb) IS
    'one request (the gather, whose id it returns) made of one request per queue with the same payload; its reply, once every part has ended or at its deadline, is an object keyed by queue name; idempotent per correlation id';

CREATE FUNCTION asyncrr._parts(correlation_id uuid)
    RETURNS TABLE(correlation_id uuid, queue_name text, state text, reply jsonb, error text)
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
    SELECT asyncrr._require('requester', 'parts');
    SELECT p.correlation_id, p.queue_name, p.state, p.reply, p.error
      FROM asyncrr.request p
     WHERE p.gather = $1 AND asyncrr._sees(p.owner_role)
     ORDER BY p.queue_name
$$;
CREATE FUNCTION asyncrr.parts(correlation_id uuid)
    RETURNS TABLE(correlation_id uuid, queue_name text, state text, reply jsonb, error text)
    LANGUAGE c STABLE SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'asyncrr_as_owner';
COMMENT ON FUNCTION asyncrr.parts(uuid) IS
    'the parts of a gather of this role (asyncrr.scatter), by queue name: id, queue, state, reply, error; none for an unknown id or another role''s';

-- Progress of a long job: recorded on the request, told to the
-- requester's channel after commit (status progress); the reply is unchanged.
CREATE FUNCTION asyncrr.report_progress(correlation_id uuid, progress jsonb, attempt integer)
    RETURNS boolean
    LANGUAGE c SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'asyncrr_report_progress';
COMMENT ON FUNCTION asyncrr.report_progress(uuid, jsonb, integer) IS
    'record the progress of the claim with this attempt and tell the requester (status progress); false, recording nothing, if the request has ended or the claim is no longer current';

CREATE FUNCTION asyncrr.report_progress(correlation_id uuid, progress jsonb) RETURNS boolean
    LANGUAGE c SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'asyncrr_report_progress';
COMMENT ON FUNCTION asyncrr.report_progress(uuid, jsonb) IS
    'record the progress of a claimed request and tell its requester (status progress); false, recording nothing, if it has ended or this session''s claim was superseded';

------------------------------------------------------------------------------
-- Privileges (doc/security.md): the internal functions are the owner's
-- alone; each role may run its user-facing functions.
------------------------------------------------------------------------------

REVOKE ALL ON ALL ROUTINES IN SCHEMA asyncrr FROM PUBLIC, asyncrr_requester, asyncrr_worker, asyncrr_admin;

GRANT EXECUTE ON FUNCTION
    asyncrr.open_inbox(text),
    asyncrr.submit(text, jsonb, interval, uuid, integer, jsonb, timestamptz, text),
    asyncrr.submit_many(text, jsonb[], interval, uuid[], integer, jsonb, timestamptz, text),
    asyncrr.scatter(text[], jsonb, interval, uuid, jsonb), asyncrr.parts(uuid),
    asyncrr.take_replies(integer), asyncrr.cancel(uuid), asyncrr.close_inbox(boolean),
    asyncrr.status(uuid), asyncrr.wait(uuid, interval)
TO asyncrr_requester, asyncrr_admin;
GRANT EXECUTE ON PROCEDURE
    asyncrr.call(text, jsonb, interval, uuid, text, jsonb, text),
    asyncrr.wait_for_reply(uuid, interval, text, jsonb, text)
TO asyncrr_requester, asyncrr_admin;

GRANT EXECUTE ON FUNCTION
    asyncrr.claim(text, integer, interval, text, interval),
    asyncrr.complete(uuid, jsonb), asyncrr.complete(uuid, jsonb, integer),
    asyncrr.complete_many(uuid[], jsonb[], integer[]),
    asyncrr.complete_and_claim(text, uuid[], jsonb[], integer[], integer, interval, text),
    asyncrr.fail(uuid, text, boolean), asyncrr.fail(uuid, text, integer, boolean),
    asyncrr.extend_lease(uuid, interval), asyncrr.extend_lease(uuid, interval, integer),
    asyncrr.report_progress(uuid, jsonb), asyncrr.report_progress(uuid, jsonb, integer)
TO asyncrr_worker, asyncrr_admin;
GRANT EXECUTE ON PROCEDURE asyncrr.wait_for_work(text, interval, boolean)
TO asyncrr_worker, asyncrr_admin;

GRANT EXECUTE ON FUNCTION
    asyncrr.create_queue(text, interval, interval, integer), asyncrr.drop_queue(text, boolean),
    asyncrr.alter_queue(text, interval, interval, integer, integer, integer, interval),
    asyncrr.grant_queue(text, name, text), asyncrr.revoke_queue(text, name, text),
    asyncrr.redrive(uuid), asyncrr.redrive_queue(text, text), asyncrr.purge_dead_letters(interval)
TO asyncrr_admin;

GRANT EXECUTE ON FUNCTION asyncrr.list_waiters(), asyncrr.background_stats()
TO asyncrr_requester, asyncrr_worker, asyncrr_admin;
GRANT SELECT ON asyncrr.waiters, asyncrr.metrics TO asyncrr_requester, asyncrr_worker, asyncrr_admin;

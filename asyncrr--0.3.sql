/* asyncrr--0.3.sql: durable request-reply for PostgreSQL */

\echo Use "CREATE EXTENSION asyncrr" to load this file. \quit

-- The whole of version 0.3 in one script, for CREATE EXTENSION.  A database
-- on an earlier version gets the same catalog through asyncrr--0.1--0.2.sql
-- and asyncrr--0.2--0.3.sql (sql/upgrade.sql compares the two).
--
-- asyncrr acts for the role in effect when its function is called
-- (current_user; doc/security.md).  No function is SECURITY DEFINER, since
-- that would hide the caller: the functions in C run their statements as
-- the extension's owner themselves (src/plan.c), and each user-facing
-- function written in SQL is a C entry that runs its body, asyncrr._<name>,
-- as the owner acting for its caller (src/privilege.c).

------------------------------------------------------------------------------
-- Roles (doc/security.md).  Cluster-wide, so created only if absent and left
-- in place by DROP EXTENSION.  NOLOGIN: they are granted to login roles.
--   asyncrr_requester  open inboxes, submit, take, cancel, status (its own requests)
--   asyncrr_worker     claim, complete, fail, extend_lease (on queues granted to it)
--   asyncrr_admin      everything: queues, grants, redrive, purge; sees all requests
------------------------------------------------------------------------------

DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['asyncrr_requester', 'asyncrr_worker', 'asyncrr_admin'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', r);
        ELSIF EXISTS (SELECT 1 FROM pg_catalog.pg_roles
                       WHERE rolname = r AND (rolcanlogin OR rolsuper OR rolcreaterole
                                              OR rolreplication OR rolbypassrls)) THEN
            -- someone else's role under our name: adopting it could hand
            -- asyncrr's privileges to whoever made it
            RAISE EXCEPTION 'role "%" already exists and is not a plain NOLOGIN role', r
                USING ERRCODE = 'duplicate_object',
                      HINT = 'asyncrr grants its privileges to this role: drop or rename it, or make it NOLOGIN NOSUPERUSER NOCREATEROLE, then retry.';
        END IF;
        -- a plain NOLOGIN role of that name (an earlier install's) is reused
    END LOOP;
END
$$;

CREATE SCHEMA asyncrr;
COMMENT ON SCHEMA asyncrr IS 'asyncrr: durable request-reply with per-session reply inboxes';
REVOKE ALL ON SCHEMA asyncrr FROM PUBLIC;
GRANT USAGE ON SCHEMA asyncrr TO asyncrr_requester, asyncrr_worker, asyncrr_admin;

------------------------------------------------------------------------------
-- Storage.  Nobody but the extension's owner may touch these tables; every
-- change goes through the functions below, which run their statements as
-- the owner on behalf of their caller.  The views at the end are the way
-- to look.
------------------------------------------------------------------------------

CREATE TABLE asyncrr.queue (
    queue_name      text PRIMARY KEY,
    default_timeout interval NOT NULL CHECK (default_timeout > interval '0'),
    lease           interval NOT NULL CHECK (lease > interval '0'),
    max_attempts    integer NOT NULL CHECK (max_attempts >= 1),
    max_depth       integer CHECK (max_depth >= 1),    -- live requests at most; NULL: unlimited
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- bounds on what a requester may ask for: a submit with a higher
    -- priority or a longer timeout is refused; NULL: unbounded
    max_priority    integer,
    max_timeout     interval CHECK (max_timeout > interval '0')
);
COMMENT ON TABLE asyncrr.queue IS 'asyncrr queues and their settings (change with asyncrr.create_queue/alter_queue/drop_queue)';

-- Who may submit to or claim from a queue, besides asyncrr_admin members
-- and superusers.  By role name, like owner_role: granted with
-- asyncrr.grant_queue(), removed by revoke_queue() and drop_queue().
CREATE TABLE asyncrr.queue_grant (
    queue_name  text NOT NULL,
    privilege   text NOT NULL CHECK (privilege IN ('submit', 'claim')),
    role_name   name NOT NULL,
    granted_by  name NOT NULL,
    granted_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (queue_name, privilege, role_name)
);
COMMENT ON TABLE asyncrr.queue_grant IS 'asyncrr per-queue privileges (change with asyncrr.grant_queue/revoke_queue)';

-- An inbox is where replies wait for their requester.  A session inbox
-- belongs to one backend (holder_pid + holder_started, so that a reused PID
-- is never taken for the old one); a durable inbox outlives sessions and is
-- held by at most one live session at a time.
CREATE TABLE asyncrr.inbox (
    inbox_name      text PRIMARY KEY,
    durable         boolean NOT NULL,
    owner_role      name NOT NULL,
    holder_pid      integer,
    holder_started  timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    opened_at       timestamptz,
    released_at     timestamptz,
    CHECK ((holder_pid IS NULL) = (holder_started IS NULL))
);
CREATE INDEX inbox_holder_idx ON asyncrr.inbox (holder_pid) WHERE holder_pid IS NOT NULL;
COMMENT ON TABLE asyncrr.inbox IS 'asyncrr reply inboxes and the session holding each';

-- One row per request, live or ended; its reply (once it ends) is the
-- state/reply/error/finished_at columns, taken once through taken_at.
CREATE TABLE asyncrr.request (
    correlation_id      uuid PRIMARY KEY,
    queue_name          text NOT NULL,
    inbox_name          text NOT NULL,
    owner_role          name NOT NULL,
    payload             jsonb NOT NULL,
    headers             jsonb,
    priority            integer NOT NULL,
    state               text NOT NULL CHECK (state IN ('pending', 'claimed', 'completed', 'failed',
                                                       'timed_out', 'cancelled', 'dead_lettered')),
    attempt             integer NOT NULL DEFAULT 0,
    max_attempts        integer NOT NULL,
    worker              text,
    submitted_at        timestamptz NOT NULL,
    timeout             interval NOT NULL,
    deadline            timestamptz NOT NULL,
    claimed_at          timestamptz,
    lease_until         timestamptz,
    finished_at         timestamptz,
    reply               jsonb,
    error               text,
    dead_letter_reason  text,
    late_reply          jsonb,
    taken_at            timestamptz,
    redriven_from       uuid,
    redriven_to         uuid,
    -- fencing: the backend that made the latest claim, and those that made
    -- the earlier ones (asyncrr_backend_id() and stale_claim() in src/)
    claimed_by          text,
    earlier_claimers    text[],
    -- a delayed request: not claimable before this time, when the worker
    -- clears it (its deadline counts from it); NULL: claimable
    not_before          timestamptz,
    -- order per key: within a queue, a request with a key is claimed only
    -- when no request of its key with a smaller key_seq is live
    ordering_key        text,
    key_seq             bigint,
    -- a part of a scatter: its gather (a request of queue "(scatter)")
    gather              uuid,
    -- the latest progress its worker reported, and when
    progress            jsonb,
    progress_at         timestamptz,
    CHECK ((state IN ('pending', 'claimed')) = (finished_at IS NULL)),
    CHECK ((state = 'claimed') = (lease_until IS NOT NULL)),
    CHECK ((ordering_key IS NULL) = (key_seq IS NULL))
);
-- Each statement on asyncrr.request has one index it can use (src/request.c):
-- the partial indexes' predicates are written so that no statement's WHERE
-- clause implies two of them.  So no plan depends on the statistics, which
-- say the table is empty for a while after retention emptied it.
--
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
-- claim and the worker, queue by queue: leases that ran out
CREATE INDEX request_claimed_idx ON asyncrr.request (queue_name, lease_until)
    WHERE state = 'claimed';
-- the worker: deadlines of live requests
CREATE INDEX request_deadline_idx ON asyncrr.request (deadline) WHERE finished_at IS NULL;
-- an inbox's live requests (finished_at NULL, first) and untaken replies
-- (oldest first): take_replies, close_inbox(cancel_pending), the worker
CREATE INDEX request_inbox_idx ON asyncrr.request (inbox_name, finished_at)
    WHERE taken_at IS NULL;
-- retention (asyncrr._purge_requests) finds requests through the index of
-- taken replies: only the take writes an entry there, not also the
-- completion (one index entry fewer per round trip)
CREATE INDEX request_taken_idx ON asyncrr.request (finished_at) WHERE taken_at IS NOT NULL;
-- A queue's rows are updated many times and deleted in bulk: vacuum and
-- analyze it at a small fraction of dead or changed rows, not 20% and 10%.
ALTER TABLE asyncrr.request SET (autovacuum_vacuum_scale_factor = 0.02,
                                 autovacuum_analyze_scale_factor = 0.05,
                                 autovacuum_vacuum_insert_scale_factor = 0.05,
                                 vacuum_truncate = off);
-- Vacuum does not give the empty pages at the end back to the file system:
-- that needs an ACCESS EXCLUSIVE lock, which a busy queue's next statement
-- takes from it at once (the 30-minute soak saw autovacuum spend ~5 s a
-- minute failing to truncate), and the pages are refilled within seconds.
-- (asyncrr.dead_letter: the same, below.)
COMMENT ON TABLE asyncrr.request IS 'asyncrr requests, live and ended, with their replies';

CREATE TABLE asyncrr.dead_letter (
    correlation_id    uuid PRIMARY KEY,
    queue_name        text NOT NULL,
    inbox_name        text NOT NULL,
    owner_role        name NOT NULL,
    reason            text NOT NULL,
    payload           jsonb NOT NULL,
    headers           jsonb,
    priority          integer NOT NULL,
    timeout           interval NOT NULL,
    attempt           integer NOT NULL,
    worker            text,
    last_error        text,
    reply             jsonb,
    late_reply        jsonb,
    submitted_at      timestamptz NOT NULL,
    dead_lettered_at  timestamptz NOT NULL,
    progress          jsonb,
    progress_at       timestamptz,
    ordering_key      text
);
CREATE INDEX dead_letter_queue_idx ON asyncrr.dead_letter (queue_name, reason);
CREATE INDEX dead_letter_time_idx ON asyncrr.dead_letter (dead_lettered_at);
ALTER TABLE asyncrr.dead_letter SET (vacuum_truncate = off);
COMMENT ON TABLE asyncrr.dead_letter IS 'asyncrr dead letters: requests that could not end normally, kept for inspection and redrive';

REVOKE ALL ON asyncrr.queue, asyncrr.queue_grant, asyncrr.inbox, asyncrr.request, asyncrr.dead_letter
    FROM PUBLIC;

-- pg_dump keeps the rows of these tables
SELECT pg_catalog.pg_extension_config_dump('asyncrr.queue', '');
SELECT pg_catalog.pg_extension_config_dump('asyncrr.queue_grant', '');
SELECT pg_catalog.pg_extension_config_dump('asyncrr.inbox', '');
SELECT pg_catalog.pg_extension_config_dump('asyncrr.request', '');
SELECT pg_catalog.pg_extension_config_dump('asyncrr.dead_letter', '');

-- Places in the order of an ordering key (src/request.c)
CREATE SEQUENCE asyncrr.request_key_seq;
REVOKE ALL ON SEQUENCE asyncrr.request_key_seq FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('asyncrr.request_key_seq', '');

------------------------------------------------------------------------------
-- Internal helpers, in C: src/check.c, src/inbox.c, src/privilege.c,
-- src/request.c, src/wait.c.  Like every internal function, for the
-- extension's owner only.
------------------------------------------------------------------------------

-- Argument checks: a valid queue or inbox name; a payload, reply or error
-- text within asyncrr.max_payload_bytes; a value where one is required; a
-- positive timeout, lease or extension.
CREATE FUNCTION asyncrr._check_name(kind text, name text) RETURNS void
    LANGUAGE c IMMUTABLE AS 'MODULE_PATHNAME', 'asyncrr_check_name';
CREATE FUNCTION asyncrr._check_size(what text, value jsonb) RETURNS void
    LANGUAGE c STABLE STRICT AS 'MODULE_PATHNAME', 'asyncrr_check_size';
CREATE FUNCTION asyncrr._check_size(what text, value text) RETURNS void
    LANGUAGE c STABLE STRICT AS 'MODULE_PATHNAME', 'asyncrr_check_size';
CREATE FUNCTION asyncrr._check_not_null(what text, value anyelement) RETURNS void
    LANGUAGE c IMMUTABLE AS 'MODULE_PATHNAME', 'asyncrr_check_not_null_sql';
CREATE FUNCTION asyncrr._check_positive(what text, value interval) RETURNS void
    LANGUAGE c IMMUTABLE AS 'MODULE_PATHNAME', 'asyncrr_check_positive_sql';
CREATE FUNCTION asyncrr._check_not_negative(what text, value interval) RETURNS void
    LANGUAGE c IMMUTABLE AS 'MODULE_PATHNAME', 'asyncrr_check_not_negative_sql';

-- An inbox's channel, and LISTEN on it (src/notify.c sends the one
-- notification of each reply; close_inbox UNLISTENs).
CREATE FUNCTION asyncrr._channel(inbox_name text) RETURNS text
    LANGUAGE c IMMUTABLE STRICT AS 'MODULE_PATHNAME', 'asyncrr_channel';
CREATE FUNCTION asyncrr._listen(channel text) RETURNS void
    LANGUAGE c STRICT AS 'MODULE_PATHNAME', 'asyncrr_listen';

-- Privileges (doc/security.md).  The caller is the role in effect when its
-- asyncrr function was called; SET ROLE changes whom a session acts for.
-- Every check is one of these (src/privilege.c); no function repeats the
-- rules.  Superusers are members of every role.
--
-- The role asyncrr acts for.
CREATE FUNCTION asyncrr._caller() RETURNS name
    LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'asyncrr_caller_sql';
-- Is the caller an administrator?
CREATE FUNCTION asyncrr._is_admin() RETURNS boolean
    LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'asyncrr_is_admin_sql';
-- Refuses a caller that is not a member of asyncrr_<kind> (requester,
-- worker or admin); asyncrr_admin members pass every check.  fn names the
-- function in the message.
CREATE FUNCTION asyncrr._require(kind text, fn text) RETURNS void
    LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'asyncrr_require_sql';

-- A queue's lock against drop_queue: shared (submit) or exclusive (drop).
-- A lock no SQL command can take, unlike an advisory lock, which any role
-- could hold to stall a queue.
CREATE FUNCTION asyncrr._lock_queue(queue_name text, exclusive boolean) RETURNS void
    LANGUAGE c AS 'MODULE_PATHNAME', 'asyncrr_lock_queue_sql';

-- This backend's start time (with its PID, who holds an inbox).
CREATE FUNCTION asyncrr._backend_start() RETURNS timestamptz
    LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'asyncrr_backend_start';

-- A session inbox's name: "_session_" and 64 random bits, drawn once per
-- backend.  It starts with "_", which no durable inbox name may, so the
-- two can never collide.
CREATE FUNCTION asyncrr._session_inbox_name() RETURNS text
    LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'asyncrr_session_inbox_name';

-- The inbox this session holds now, if any.
CREATE FUNCTION asyncrr._current_inbox() RETURNS asyncrr.inbox
    LANGUAGE c STABLE SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'asyncrr_current_inbox_sql';

------------------------------------------------------------------------------
-- Internal helpers, in SQL.
------------------------------------------------------------------------------

-- Is the backend (pid, started) still alive?
CREATE FUNCTION asyncrr._backend_alive(pid integer, started timestamptz) RETURNS boolean
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
    SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_get_activity($1) a
                    WHERE a.backend_start = $2)
$$;

-- May the caller see (status, cancel, wait on) a request of this owner?
CREATE FUNCTION asyncrr._sees(owner_role name) RETURNS boolean
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
    SELECT $1 = asyncrr._caller() OR asyncrr._is_admin()
$$;

-- The queue, share-locked against a concurrent drop_queue until commit.
-- Unknown and NULL names are refused here, for every caller.
CREATE FUNCTION asyncrr._queue(queue_name text, lock boolean DEFAULT true) RETURNS asyncrr.queue
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

-- Opens (or re-opens) an inbox for this session and LISTENs on its channel.
CREATE FUNCTION asyncrr._hold_inbox(inbox_name text, durable boolean) RETURNS asyncrr.inbox
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
-- Queues
--
-- Every change to a request is made in C (src/request.c: one function
-- ends requests, one lock order).  Here and below, a user-facing function
-- written in SQL or PL/pgSQL (administration, inboxes, status) comes in
-- two parts: its body asyncrr._<name>, and asyncrr.<name>, a C entry
-- (asyncrr_as_owner) that runs the body as the extension's owner, acting
-- for the caller (asyncrr._caller()).
--
-- No function switches a planner method off: every statement on
-- asyncrr.request has one index to use (see the indexes), and src/plan.c
-- makes a kept plan again when the table has doubled or halved in size
-- (test/t/011_plans.pl checks the plans).
------------------------------------------------------------------------------

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

CREATE FUNCTION asyncrr.drop_queue(queue_name text, force boolean DEFAULT false) RETURNS void
    LANGUAGE c SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'asyncrr_drop_queue';
COMMENT ON FUNCTION asyncrr.drop_queue(text, boolean) IS
    'drop a queue and its grants; refused while it has live requests unless force, which dead-letters them (reason queue_dropped)';

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

-- The privileges grant_queue and revoke_queue mean, checked; the role must
-- exist (or, for revoke_queue, at least still hold a grant).
CREATE FUNCTION asyncrr._queue_privileges(fn text, queue_name text, role_name name, privilege text)
    RETURNS text[]
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM asyncrr._require('admin', fn);
    PERFORM asyncrr._check_not_null('queue name', queue_name);
    PERFORM asyncrr._check_not_null('role name', role_name);
    PERFORM asyncrr._check_not_null('privilege', privilege);
    IF privilege NOT IN ('submit', 'claim', 'all') THEN
        RAISE EXCEPTION 'invalid queue privilege "%"', privilege
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'Queue privileges are submit, claim and all.';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles r WHERE r.rolname = role_name)
       AND (fn = 'grant_queue'
            OR NOT EXISTS (SELECT 1 FROM asyncrr.queue_grant g WHERE g.role_name = _queue_privileges.role_name)) THEN
        RAISE EXCEPTION 'role "%" does not exist', role_name
            USING ERRCODE = 'undefined_object';
    END IF;
    RETURN CASE privilege WHEN 'all' THEN ARRAY['submit', 'claim'] ELSE ARRAY[privilege] END;
END
$$;

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

------------------------------------------------------------------------------
-- Requesters
------------------------------------------------------------------------------

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

-- The round trip (submit, take_replies; claim, complete below) is in C
-- (src/request.c, src/inbox.c): one C call and a few saved plans instead of
-- a dozen nested functions.
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

CREATE FUNCTION asyncrr.take_replies(max_replies integer DEFAULT 100)
    RETURNS TABLE(correlation_id uuid, status text, reply jsonb, error text, finished_at timestamptz)
    LANGUAGE c SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'asyncrr_take_replies';
COMMENT ON FUNCTION asyncrr.take_replies(integer) IS
    'return and consume the replies waiting in this session''s inbox, oldest first; each reply is handed out once';

CREATE FUNCTION asyncrr.cancel(correlation_id uuid) RETURNS boolean
    LANGUAGE c SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'asyncrr_cancel';
COMMENT ON FUNCTION asyncrr.cancel(uuid) IS
    'cancel a live request of this role (its requester gets a cancelled reply); false if it had already ended';

-- It locks the requests it cancels in correlation-id order, the one lock
-- order (src/request.c), as complete_many and drop_queue do.
CREATE FUNCTION asyncrr.close_inbox(cancel_pending boolean DEFAULT false) RETURNS integer
    LANGUAGE c SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'asyncrr_close_inbox';
COMMENT ON FUNCTION asyncrr.close_inbox(boolean) IS
    'UNLISTEN and release this session''s inbox (a durable one keeps its replies); optionally cancel its live requests; returns how many were cancelled';

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

------------------------------------------------------------------------------
-- Workers
------------------------------------------------------------------------------

CREATE FUNCTION asyncrr.claim(queue_name text, max_requests integer DEFAULT 1,
                              lease interval DEFAULT NULL, worker text DEFAULT NULL,
                              wait interval DEFAULT NULL)
    RETURNS TABLE(correlation_id uuid, payload jsonb, headers jsonb, attempt integer,
                  deadline timestamptz, lease_until timestamptz)
    LANGUAGE c SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'asyncrr_claim';
COMMENT ON FUNCTION asyncrr.claim(text, integer, interval, text, interval) IS
    'hand out up to max_requests requests of a queue under a lease, highest priority then oldest; concurrent claimers skip each other; with wait, sleep until work arrives; needs claim on the queue';

-- complete, fail and extend_lease come in two forms.  Given the attempt
-- that claim() returned, a call for any other attempt, or for an attempt
-- whose lease ran out and returned the request to its queue, is "late"
-- (extend_lease: 55000) and writes nothing.  Without it (attempt NULL, or
-- the shorter signatures), the same holds for a backend that made an
-- earlier claim of the request but not the latest; any other caller with
-- claim on the queue is taken to act for the current claim.  The short
-- forms call the full ones as their caller.
CREATE FUNCTION asyncrr.complete(correlation_id uuid, reply jsonb, attempt integer) RETURNS text
    LANGUAGE c SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'asyncrr_complete';
COMMENT ON FUNCTION asyncrr.complete(uuid, jsonb, integer) IS
    'record the reply of the claim with this attempt: completed, duplicate if the request had already ended, late if it had timed out or the claim is no longer current';

CREATE FUNCTION asyncrr.complete(correlation_id uuid, reply jsonb) RETURNS text
    LANGUAGE c SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'asyncrr_complete';
COMMENT ON FUNCTION asyncrr.complete(uuid, jsonb) IS
    'record the reply to a claimed request: completed, or duplicate / late if it had already ended or this session''s claim was superseded';

CREATE FUNCTION asyncrr.complete_many(correlation_ids uuid[], replies jsonb[], attempts integer[] DEFAULT NULL)
    RETURNS TABLE(correlation_id uuid, outcome text)
    LANGUAGE c SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'asyncrr_complete_many';
COMMENT ON FUNCTION asyncrr.complete_many(uuid[], jsonb[], integer[]) IS
    'complete() for many claimed requests in one call, replies and attempts paired with the ids; returns each id with what complete() would return for it';

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

CREATE FUNCTION asyncrr.fail(correlation_id uuid, error text, attempt integer, retry boolean DEFAULT false)
    RETURNS text
    LANGUAGE c SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'asyncrr_fail';
COMMENT ON FUNCTION asyncrr.fail(uuid, text, integer, boolean) IS
    'fail the claim with this attempt: failed, retrying or dead_lettered; duplicate / late as for complete()';

CREATE FUNCTION asyncrr.fail(correlation_id uuid, error text, retry boolean DEFAULT false) RETURNS text
    LANGUAGE sql SET search_path = pg_catalog, pg_temp
AS $$
    SELECT asyncrr.fail($1, $2, NULL::integer, $3)
$$;
COMMENT ON FUNCTION asyncrr.fail(uuid, text, boolean) IS
    'fail a claimed request: failed, retrying (back to the queue), or dead_lettered when retries are used up; duplicate / late if it had already ended';

CREATE FUNCTION asyncrr.extend_lease(correlation_id uuid, extra interval, attempt integer)
    RETURNS timestamptz
    LANGUAGE c SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'asyncrr_extend_lease';
COMMENT ON FUNCTION asyncrr.extend_lease(uuid, interval, integer) IS
    'heartbeat for the claim with this attempt: its lease now ends extra from now; returns the new end';

CREATE FUNCTION asyncrr.extend_lease(correlation_id uuid, extra interval) RETURNS timestamptz
    LANGUAGE sql SET search_path = pg_catalog, pg_temp
AS $$
    SELECT asyncrr.extend_lease($1, $2, NULL::integer)
$$;
COMMENT ON FUNCTION asyncrr.extend_lease(uuid, interval) IS
    'heartbeat for long work: the claim''s lease now ends extra from now; returns the new end';

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
-- Waiting without LISTEN (src/wait.c): a backend sleeps on its latch and
-- the commit that records its reply, or makes work in its queue, wakes it.
-- While they sleep they watch the client connection; they never report a
-- reply as taken unless it was; the procedures hold no snapshot while they
-- sleep.  A call whose caller goes or is cancelled cancels its request.
------------------------------------------------------------------------------

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

CREATE FUNCTION asyncrr.list_waiters() RETURNS TABLE(pid integer, waits_for text)
    LANGUAGE c SET search_path = pg_catalog, pg_temp AS 'MODULE_PATHNAME', 'asyncrr_waiters';
COMMENT ON FUNCTION asyncrr.list_waiters() IS
    'backends of this database sleeping in an asyncrr wait; a non-administrator sees only those of its own role';

------------------------------------------------------------------------------
-- Dead letters
------------------------------------------------------------------------------

CREATE FUNCTION asyncrr.redrive(correlation_id uuid) RETURNS uuid
    LANGUAGE c SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'asyncrr_redrive';
COMMENT ON FUNCTION asyncrr.redrive(uuid) IS
    'send a dead-lettered request back to its queue as a new request (new id, same inbox, payload and headers); returns the new id';

CREATE FUNCTION asyncrr.redrive_queue(queue_name text, reason text DEFAULT NULL) RETURNS bigint
    LANGUAGE c SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'asyncrr_redrive_queue';
COMMENT ON FUNCTION asyncrr.redrive_queue(text, text) IS
    'redrive every dead letter of a queue (optionally only those with one reason); returns how many';

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

------------------------------------------------------------------------------
-- psql inspection.  Each view shows an administrator everything and anyone
-- else only its own: its requests, its inboxes, its dead letters, the
-- queues and grants that concern it.  They filter for the role reading
-- them (current_user), with no internal function.  security_barrier: a
-- caller's own functions in a WHERE clause never see the rows filtered out.
------------------------------------------------------------------------------

CREATE VIEW asyncrr.pending WITH (security_barrier) AS
SELECT r.queue_name, r.correlation_id, r.state, r.priority, r.attempt, r.worker,
       r.submitted_at, r.deadline, r.lease_until, r.inbox_name AS inbox, r.owner_role AS owner,
       r.not_before, r.ordering_key
  FROM asyncrr.request r
 WHERE r.state IN ('pending', 'claimed')
   AND (pg_catalog.pg_has_role(current_user, 'asyncrr_admin', 'MEMBER') OR r.owner_role = current_user);
COMMENT ON VIEW asyncrr.pending IS 'live requests (pending or claimed) of this role (administrators: all), with their deadlines, leases, inboxes, the time a delayed one becomes claimable (not_before) and ordering keys';

CREATE VIEW asyncrr.dead_letters WITH (security_barrier) AS
SELECT d.queue_name, d.correlation_id, d.reason, d.attempt, d.worker, d.last_error,
       d.payload, d.headers, d.reply, d.late_reply, d.inbox_name AS inbox,
       d.submitted_at, d.dead_lettered_at, d.owner_role AS owner, d.progress, d.progress_at
  FROM asyncrr.dead_letter d
 WHERE pg_catalog.pg_has_role(current_user, 'asyncrr_admin', 'MEMBER') OR d.owner_role = current_user;
COMMENT ON VIEW asyncrr.dead_letters IS 'dead-lettered requests of this role (administrators: all) with reason, payload, attempt, last error, any late reply and the last progress reported';

-- A worker with claim on a queue sees all of its requests counted; a
-- requester with submit only its own.  (The rule of src/privilege.c's
-- asyncrr_may(), for the reader.)
CREATE VIEW asyncrr.queue_stats WITH (security_barrier) AS
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

CREATE VIEW asyncrr.inboxes WITH (security_barrier) AS
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
COMMENT ON VIEW asyncrr.inboxes IS 'reply inboxes of this role (administrators: all): name, channel, durable or session, holding backend, untaken replies';

CREATE VIEW asyncrr.queue_grants WITH (security_barrier) AS
SELECT g.queue_name, g.role_name, g.privilege, g.granted_by, g.granted_at
  FROM asyncrr.queue_grant g
 WHERE pg_catalog.pg_has_role(current_user, 'asyncrr_admin', 'MEMBER')
    OR pg_catalog.pg_has_role(current_user,
                              (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = g.role_name),
                              'MEMBER');
COMMENT ON VIEW asyncrr.queue_grants IS 'per-queue privileges (administrators: all; others: those that apply to them)';

-- asyncrr.list_waiters() does the filtering.
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

------------------------------------------------------------------------------
-- The background worker's rules (src/worker.c decides when to run them).
-- Each handles at most batch_size rows in the caller's transaction and
-- returns how many it handled; the worker repeats a step while it comes back
-- full.  SKIP LOCKED: a row a client holds is simply taken on the next pass.
------------------------------------------------------------------------------

-- The worker's steps read request_deadline_idx, and request_claimed_idx
-- and request_inbox_idx queue by queue and inbox by inbox, in order, and
-- stop at the first entry not yet due.
--
-- Live requests past their deadline end as timed_out, with a dead letter
-- (reason timeout).
CREATE FUNCTION asyncrr._expire_deadlines(batch_size integer) RETURNS integer
    LANGUAGE c SET search_path = pg_catalog, pg_temp SET IntervalStyle = postgres
    AS 'MODULE_PATHNAME', 'asyncrr_expire_deadlines';

-- Claimed requests whose lease ran out go back to pending, or, when that
-- was their last attempt, are dead-lettered (reason max_attempts); delayed
-- requests whose time has come become claimable.
CREATE FUNCTION asyncrr._expire_leases(batch_size integer) RETURNS integer
    LANGUAGE c SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'asyncrr_expire_leases';

-- Inboxes whose holding backend has exited are released.  Replies waiting
-- in a session inbox released more than grace ago, or for grace in an
-- inbox that has no row (the call inbox of a CALL asyncrr.call that is
-- gone, a removed session inbox), move to the dead letters (reason
-- requester_gone); a session inbox with nothing left is removed.  Durable
-- inboxes keep their replies.
CREATE FUNCTION asyncrr._orphan_inboxes(batch_size integer, grace interval) RETURNS integer
    LANGUAGE c SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'asyncrr_orphan_inboxes';

-- Ended requests whose reply was taken (or dead-lettered) more than
-- retention ago, unless a dead letter still refers to them or they are
-- parts of a gather still live.
CREATE FUNCTION asyncrr._purge_requests(batch_size integer, retention interval) RETURNS integer
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

CREATE FUNCTION asyncrr._purge_old_dead_letters(batch_size integer, retention interval) RETURNS integer
    LANGUAGE sql SET search_path = pg_catalog, pg_temp
AS $$
    WITH gone AS (
        DELETE FROM asyncrr.dead_letter d
         WHERE d.correlation_id IN (
                SELECT o.correlation_id FROM asyncrr.dead_letter o
                 WHERE o.dead_lettered_at < now() - $2
                 ORDER BY o.dead_lettered_at
                 LIMIT $1
                 FOR UPDATE SKIP LOCKED)
        RETURNING 1)
    SELECT count(*)::integer FROM gone
$$;

-- When the worker must look next: the earliest deadline (the first entry
-- of request_deadline_idx), lease end (the first of each queue's in
-- request_claimed_idx) or time a delayed request becomes claimable (the
-- first of each queue's in request_delayed_idx).
CREATE FUNCTION asyncrr._next_event() RETURNS timestamptz
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
-- Privileges (doc/security.md).  Nothing is for PUBLIC: a role holds one of
-- the three asyncrr roles or may do nothing.  The tables are granted to no
-- one, and the internal functions are the owner's alone; each role may run
-- its user-facing functions, which check the caller's queue privileges and
-- ownership themselves.
------------------------------------------------------------------------------

REVOKE ALL ON ALL ROUTINES IN SCHEMA asyncrr FROM PUBLIC;

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

GRANT SELECT ON asyncrr.pending, asyncrr.queue_stats, asyncrr.inboxes, asyncrr.dead_letters,
                asyncrr.queue_grants, asyncrr.waiters, asyncrr.metrics
TO asyncrr_requester, asyncrr_worker, asyncrr_admin;

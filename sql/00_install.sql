-- Installing asyncrr creates schema asyncrr with every user-facing object
-- commented, and leaves nothing writable by PUBLIC.
CREATE EXTENSION asyncrr;

SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
 WHERE e.extname = 'asyncrr';

-- every function and view a user calls or reads has a comment
SELECT p.proname, pg_get_function_identity_arguments(p.oid) AS args,
       obj_description(p.oid, 'pg_proc') IS NOT NULL AS commented
  FROM pg_proc p WHERE p.pronamespace = 'asyncrr'::regnamespace AND p.proname !~ '^_'
 ORDER BY 1, 2;
SELECT c.relname, c.relkind, obj_description(c.oid, 'pg_class') IS NOT NULL AS commented
  FROM pg_class c WHERE c.relnamespace = 'asyncrr'::regnamespace AND c.relkind IN ('r', 'v')
 ORDER BY 1;

-- no table or view of asyncrr grants PUBLIC anything (roles.sql: nor the
-- asyncrr roles anything on a table)
SELECT c.relname, a.privilege_type
  FROM pg_class c, aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a
 WHERE c.relnamespace = 'asyncrr'::regnamespace AND a.grantee = 0
 ORDER BY 1, 2;

-- no function is executable by PUBLIC, internal or not
SELECT p.proname
  FROM pg_proc p, aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
 WHERE p.pronamespace = 'asyncrr'::regnamespace AND a.grantee = 0
 ORDER BY 1;

-- user-facing functions, and every function written in SQL, run with a
-- pinned search_path; the exceptions are the procedures that sleep (call,
-- wait_for_reply, wait_for_work), which COMMIT and so can have no SET
-- clause: they pin their search_path themselves (src/wait.c)
SELECT p.proname FROM pg_proc p
 WHERE p.pronamespace = 'asyncrr'::regnamespace
   AND NOT coalesce(p.proconfig @> '{"search_path=pg_catalog, pg_temp"}', false)
   AND (p.prolang <> (SELECT oid FROM pg_language WHERE lanname = 'c') OR p.proname !~ '^_')
 ORDER BY 1;

-- no function is SECURITY DEFINER: that would hide whom asyncrr acts for
-- (src/privilege.c); they run their statements as the owner themselves
SELECT p.proname FROM pg_proc p
 WHERE p.pronamespace = 'asyncrr'::regnamespace AND p.prosecdef
 ORDER BY 1;

-- the functions of a round trip switch no planner method off: their plans
-- are good without (asyncrr--0.3.sql says why, test/t/011_plans.pl checks)
SELECT p.proname, pg_get_function_identity_arguments(p.oid) AS args FROM pg_proc p
 WHERE p.pronamespace = 'asyncrr'::regnamespace
   AND p.proname IN ('submit', 'submit_many', 'claim', 'complete', 'complete_many',
                     'take_replies', 'cancel', 'fail', 'extend_lease', 'close_inbox', 'wait')
   AND p.prolang = (SELECT oid FROM pg_language WHERE lanname = 'c')
   AND p.proconfig IS DISTINCT FROM '{"search_path=pg_catalog, pg_temp"}';

-- the version installed is the newest; 0.1 is reached through its update
SELECT extversion FROM pg_extension WHERE extname = 'asyncrr';

-- Fixtures for the suites that follow.
--
-- Runs each statement in its own subtransaction and reports "ok" or the
-- SQLSTATE and message it failed with.
CREATE FUNCTION try_each(VARIADIC calls text[]) RETURNS TABLE(call text, outcome text)
LANGUAGE plpgsql AS $$
DECLARE
    dummy text;
BEGIN
    FOREACH call IN ARRAY calls LOOP
        BEGIN
            EXECUTE call INTO dummy;
            outcome := 'ok';
        EXCEPTION WHEN OTHERS THEN
            outcome := SQLSTATE || ' ' || SQLERRM;
        END;
        RETURN NEXT;
    END LOOP;
END
$$;

-- Polls a condition until it holds,
-- for at most the given seconds (what the background worker does happens
-- on its own time).  Sees pg_stat_activity anew on every lap.
CREATE FUNCTION wait_until(cond text, seconds integer DEFAULT 20) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    ok boolean;
    stop timestamptz := clock_timestamp() + make_interval(secs => seconds);
BEGIN
    LOOP
        EXECUTE cond INTO ok;
        IF ok THEN RETURN true; END IF;
        IF clock_timestamp() > stop THEN RETURN false; END IF;
        PERFORM pg_sleep(0.05);
        PERFORM pg_stat_clear_snapshot();
    END LOOP;
END
$$;

-- The suites run with asyncrr's default settings, as users run it: the
-- notifications of replies are sent after commit by the asyncrr dispatcher
-- (src/notify.c), which serves this database.  (The Makefile's
-- installcheck-nodispatch runs the few files that need it off.)
SELECT current_setting('asyncrr.notify_dispatch') AS notify_dispatch;
SELECT wait_until($$SELECT count(*) = 1 FROM pg_stat_activity
                    WHERE backend_type = 'asyncrr dispatcher' AND datname = current_database()$$)
       AS dispatcher_serves_this_database;

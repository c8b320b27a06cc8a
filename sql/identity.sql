-- Whom asyncrr acts for (asyncrr 0.3): the role in effect where its
-- function is called (current_user at the call site), not session_user.
-- A SECURITY DEFINER function owned by alice and run by bob acts as alice:
-- it submits as alice, sees alice's requests (status, cancel, the pending
-- and dead_letters views) and not bob's ("request ... does not exist").
-- So does a trigger function owned by alice, fired by bob's insert.  SET
-- ROLE alice in bob's session acts as alice; bob's plain calls act as bob.
--
-- The roles cannot log in: the sessions take their identity with SET
-- SESSION AUTHORIZATION and SET ROLE.  Each part that submits runs in a
-- fresh backend (\c), so that the session inbox it opens is its own.
\set VERBOSITY terse
SELECT current_user AS super \gset

CREATE ROLE regress_alice IN ROLE asyncrr_requester;
CREATE ROLE regress_bob IN ROLE asyncrr_requester;
SELECT asyncrr.create_queue('id_q', default_timeout => '1 hour', lease => '1 hour');
SELECT asyncrr.grant_queue('id_q', 'regress_alice', 'submit');
SELECT asyncrr.grant_queue('id_q', 'regress_bob', 'submit');

-- alice's functions, SECURITY DEFINER (EXECUTE stays with PUBLIC: bob may
-- call them)
CREATE FUNCTION id_whoami(OUT current_user_ name, OUT session_user_ name)
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT current_user, session_user $$;
CREATE FUNCTION id_submit(id uuid) RETURNS uuid
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT asyncrr.submit('id_q', jsonb_build_object('via', 'definer'), correlation_id => id) $$;
CREATE FUNCTION id_status(id uuid) RETURNS TABLE(correlation_id uuid, state text)
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT s.correlation_id, s.state FROM asyncrr.status(id) s $$;
CREATE FUNCTION id_cancel(id uuid) RETURNS boolean
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT asyncrr.cancel(id) $$;
CREATE FUNCTION id_pending() RETURNS TABLE(correlation_id uuid, owner name)
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT p.correlation_id, p.owner FROM asyncrr.pending p WHERE p.queue_name = 'id_q' $$;
CREATE FUNCTION id_dead_letters() RETURNS TABLE(correlation_id uuid, reason text, owner name)
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT d.correlation_id, d.reason, d.owner FROM asyncrr.dead_letters d WHERE d.queue_name = 'id_q' $$;
-- the trigger: every order bob inserts becomes a request, submitted by
-- alice's trigger function
CREATE TABLE id_orders (id uuid PRIMARY KEY);
GRANT INSERT ON id_orders TO regress_bob;
CREATE FUNCTION id_order_submitted() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM asyncrr.submit('id_q', jsonb_build_object('via', 'trigger'), correlation_id => NEW.id);
    RETURN NEW;
END
$$;
CREATE TRIGGER id_order_submitted AFTER INSERT ON id_orders
    FOR EACH ROW EXECUTE FUNCTION id_order_submitted();
ALTER FUNCTION id_whoami() OWNER TO regress_alice;
ALTER FUNCTION id_submit(uuid) OWNER TO regress_alice;
ALTER FUNCTION id_status(uuid) OWNER TO regress_alice;
ALTER FUNCTION id_cancel(uuid) OWNER TO regress_alice;
ALTER FUNCTION id_pending() OWNER TO regress_alice;
ALTER FUNCTION id_dead_letters() OWNER TO regress_alice;
ALTER FUNCTION id_order_submitted() OWNER TO regress_alice;

-- Who owns which request, and which inbox it went to (by owner), as the
-- superuser sees it in the table
CREATE VIEW id_requests AS
SELECT r.correlation_id, r.owner_role, r.state, r.payload->>'via' AS via
  FROM asyncrr.request r WHERE r.queue_name = 'id_q';
CREATE VIEW id_nothing_foreign AS
SELECT count(*) AS requests_in_another_roles_inbox
  FROM asyncrr.request r JOIN asyncrr.inbox i USING (inbox_name)
 WHERE r.queue_name = 'id_q' AND r.owner_role <> i.owner_role;

------------------------------------------------------------------------------
-- alice and bob each submit, plainly: one request each, and one each that
-- times out (for the dead_letters view).
------------------------------------------------------------------------------
\c - :super
SET SESSION AUTHORIZATION regress_alice;
SELECT current_user, session_user;
SELECT asyncrr.submit('id_q', '{"via": "plain"}', correlation_id => 'a1d00000-0000-0000-0000-000000000001');
SELECT asyncrr.submit('id_q', '{"via": "plain"}', correlation_id => 'a1d00000-0000-0000-0000-0000000000d1',
                      timeout => '100 milliseconds');
UNLISTEN *;
\c - :super
SET SESSION AUTHORIZATION regress_bob;
SELECT current_user, session_user;
SELECT asyncrr.submit('id_q', '{"via": "plain"}', correlation_id => 'b0b00000-0000-0000-0000-000000000001');
SELECT asyncrr.submit('id_q', '{"via": "plain"}', correlation_id => 'b0b00000-0000-0000-0000-0000000000d1',
                      timeout => '100 milliseconds');
UNLISTEN *;
\c - :super
SELECT wait_until($$SELECT count(*) = 2 FROM asyncrr.dead_letter WHERE queue_name = 'id_q'$$);
SELECT * FROM id_requests ORDER BY 1;

------------------------------------------------------------------------------
-- bob, plainly: acts as bob.
------------------------------------------------------------------------------
\c - :super
SET SESSION AUTHORIZATION regress_bob;
SELECT correlation_id, state FROM asyncrr.status('b0b00000-0000-0000-0000-000000000001');
SELECT count(*) AS alices_visible FROM asyncrr.status('a1d00000-0000-0000-0000-000000000001');
SELECT asyncrr.cancel('a1d00000-0000-0000-0000-000000000001');
\echo :LAST_ERROR_SQLSTATE
SELECT correlation_id, owner FROM asyncrr.pending WHERE queue_name = 'id_q' ORDER BY 1;
SELECT correlation_id, reason, owner FROM asyncrr.dead_letters WHERE queue_name = 'id_q' ORDER BY 1;

------------------------------------------------------------------------------
-- bob calls alice's SECURITY DEFINER functions: they act as alice.
------------------------------------------------------------------------------
SELECT * FROM id_whoami();
-- submits as alice
SELECT id_submit('a1d00000-0000-0000-0000-000000000002');
UNLISTEN *;   -- (its session inbox's channel is random)
-- sees alice's requests, not bob's
SELECT * FROM id_status('a1d00000-0000-0000-0000-000000000001');
SELECT count(*) AS bobs_visible FROM id_status('b0b00000-0000-0000-0000-000000000001');
SELECT * FROM id_pending() ORDER BY 1;
SELECT * FROM id_dead_letters() ORDER BY 1;
-- cancels alice's request; bob's does not exist for it
SELECT id_cancel('a1d00000-0000-0000-0000-000000000002');
SELECT id_cancel('b0b00000-0000-0000-0000-000000000001');
\echo :LAST_ERROR_SQLSTATE
-- and back in bob's own call, bob again
SELECT count(*) AS alices_visible FROM asyncrr.status('a1d00000-0000-0000-0000-000000000002');
UNLISTEN *;

------------------------------------------------------------------------------
-- bob's insert fires alice's trigger function: the request is alice's.
------------------------------------------------------------------------------
\c - :super
SET SESSION AUTHORIZATION regress_bob;
INSERT INTO id_orders VALUES ('a1d00000-0000-0000-0000-000000000003');
SELECT count(*) AS bob_sees_it FROM asyncrr.status('a1d00000-0000-0000-0000-000000000003');
SELECT * FROM id_status('a1d00000-0000-0000-0000-000000000003');
UNLISTEN *;

------------------------------------------------------------------------------
-- SET ROLE alice in a session of bob's: acts as alice; RESET ROLE: bob.
------------------------------------------------------------------------------
\c - :super
GRANT regress_alice TO regress_bob;
SET SESSION AUTHORIZATION regress_bob;
SET ROLE regress_alice;
SELECT current_user, session_user;
SELECT asyncrr.submit('id_q', '{"via": "set role"}', correlation_id => 'a1d00000-0000-0000-0000-000000000004');
SELECT correlation_id, owner FROM asyncrr.pending WHERE queue_name = 'id_q' ORDER BY 1;
SELECT count(*) AS bobs_visible FROM asyncrr.status('b0b00000-0000-0000-0000-000000000001');
UNLISTEN *;
RESET ROLE;
SELECT current_user, session_user;
SELECT count(*) AS alices_visible FROM asyncrr.status('a1d00000-0000-0000-0000-000000000004');
SELECT correlation_id, owner FROM asyncrr.pending WHERE queue_name = 'id_q' ORDER BY 1;
\c - :super
REVOKE regress_alice FROM regress_bob;

------------------------------------------------------------------------------
-- What the table holds: each request owned by the role it was submitted
-- as, and in an inbox of that role.
------------------------------------------------------------------------------
SELECT * FROM id_requests ORDER BY 1;
SELECT * FROM id_nothing_foreign;

------------------------------------------------------------------------------
-- An inbox is its owner's: in a session that holds alice's inbox, code
-- acting for bob can neither submit into it nor take its replies (nor open
-- another: a session holds one inbox at a time).
------------------------------------------------------------------------------
\c - :super
SET ROLE regress_alice;
SELECT asyncrr.open_inbox() ~ '^asyncrr\._session_' AS alices_session_inbox;
UNLISTEN *;
SELECT asyncrr.submit('id_q', '{"mine": "alice"}', correlation_id => 'c1000000-0000-0000-0000-000000000001') IS NOT NULL AS submitted;
RESET ROLE;
SET ROLE regress_bob;
\set VERBOSITY sqlstate
SELECT asyncrr.submit('id_q', '{"mine": "bob"}', correlation_id => 'c1000000-0000-0000-0000-000000000002');
SELECT asyncrr.open_inbox();
\set VERBOSITY default
SELECT count(*) AS taken_by_bob FROM asyncrr.take_replies();
SELECT asyncrr.close_inbox() AS closed_by_bob;
RESET ROLE;
SELECT correlation_id, owner_role, inbox_name ~ '^_session_' AS session_inbox
  FROM asyncrr.request WHERE correlation_id::text LIKE 'c1000000%' ORDER BY 1;
SELECT count(*) AS held_by_this_session FROM asyncrr.inbox
 WHERE holder_pid = pg_backend_pid() AND owner_role = 'regress_alice';

-- clean up
SELECT asyncrr.drop_queue('id_q', force => true);
DELETE FROM asyncrr.dead_letter WHERE queue_name = 'id_q';
DELETE FROM asyncrr.request WHERE queue_name = 'id_q';
DELETE FROM asyncrr.inbox WHERE owner_role IN ('regress_alice', 'regress_bob');
DROP VIEW id_requests, id_nothing_foreign;
DROP TABLE id_orders;
DROP FUNCTION id_whoami(), id_submit(uuid), id_status(uuid), id_cancel(uuid), id_pending(),
              id_dead_letters(), id_order_submitted();
DROP ROLE regress_alice, regress_bob;

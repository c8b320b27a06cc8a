-- Roles and per-queue privileges (doc/security.md): every function called
-- by each kind of role, allowed or refused; nothing written by a refused
-- call; another tenant's ids indistinguishable from unknown ones; grant and
-- revoke; durable inbox ownership; who sees what in the views.
--
-- Each role logs in for real (\c), so that current_user, the identity
-- asyncrr goes by, is that role.
--
-- A session that takes a durable inbox UNLISTENs in the same transaction
-- (\;): the dispatcher may still be sending the notifications of replies
-- ended earlier (test/regress.conf), and psql would print them with a PID.
\set VERBOSITY terse
SELECT current_user AS super \gset

-- the extension created three NOLOGIN roles
SELECT rolname, rolcanlogin, rolsuper, rolinherit FROM pg_roles
 WHERE rolname IN ('asyncrr_requester', 'asyncrr_worker', 'asyncrr_admin') ORDER BY 1;

CREATE ROLE regress_alice LOGIN IN ROLE asyncrr_requester;
CREATE ROLE regress_bob LOGIN IN ROLE asyncrr_requester;
CREATE ROLE regress_wally LOGIN IN ROLE asyncrr_worker;
CREATE ROLE regress_ada LOGIN IN ROLE asyncrr_admin;
CREATE ROLE regress_nobody LOGIN;
-- a group role: a grant to it reaches its members
CREATE ROLE regress_billing_workers NOLOGIN;
GRANT regress_billing_workers TO regress_wally;

-- Everything this test could change, as one hash (holder columns left out:
-- the worker releases the inboxes of ended sessions on its own; and only
-- this file's roles' inboxes: the worker removes the session inbox another
-- file left, e.g. batches.sql's, on its own time too).
CREATE FUNCTION regress_fingerprint() RETURNS text
LANGUAGE sql AS $$
    SELECT md5(concat_ws('|',
        (SELECT string_agg(q::text, ',' ORDER BY q.queue_name) FROM asyncrr.queue q
          WHERE q.queue_name LIKE 'rl\_%'),
        (SELECT string_agg(g::text, ',' ORDER BY g.queue_name, g.privilege, g.role_name)
           FROM asyncrr.queue_grant g WHERE g.queue_name LIKE 'rl\_%'),
        (SELECT string_agg(r::text, ',' ORDER BY r.correlation_id) FROM asyncrr.request r
          WHERE r.queue_name LIKE 'rl\_%'),
        (SELECT string_agg(d::text, ',' ORDER BY d.correlation_id) FROM asyncrr.dead_letter d
          WHERE d.queue_name LIKE 'rl\_%'),
        (SELECT string_agg(format('%s %s %s', i.inbox_name, i.durable, i.owner_role), ','
                           ORDER BY i.inbox_name)
           FROM asyncrr.inbox i
          WHERE i.owner_role IN ('regress_alice', 'regress_bob', 'regress_wally', 'regress_ada',
                                 'regress_nobody', 'regress_billing_workers'))))
$$;

-- Who may execute what: nothing for PUBLIC, each function for the roles
-- that need it (the extension's owner, a superuser, is left out).
SELECT p.oid::regprocedure AS function, string_agg(g.rolname, ', ' ORDER BY g.rolname) AS roles
  FROM pg_proc p, aclexplode(p.proacl) a LEFT JOIN pg_roles g ON g.oid = a.grantee
 WHERE p.pronamespace = 'asyncrr'::regnamespace AND a.privilege_type = 'EXECUTE'
   AND a.grantee <> p.proowner
 GROUP BY p.oid ORDER BY p.oid::regprocedure::text;
-- PUBLIC and the three roles hold no privilege on any table (all changes go
-- through the functions); on the views only SELECT
SELECT c.relname, c.relkind, coalesce(g.rolname, 'PUBLIC') AS grantee, a.privilege_type
  FROM pg_class c, aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a
  LEFT JOIN pg_roles g ON g.oid = a.grantee
 WHERE c.relnamespace = 'asyncrr'::regnamespace AND c.relkind IN ('r', 'v')
   AND (a.grantee = 0 OR g.rolname IN ('asyncrr_requester', 'asyncrr_worker', 'asyncrr_admin'))
 ORDER BY 1, 3, 4;
-- the schema: USAGE for the three roles only
SELECT coalesce(g.rolname, 'PUBLIC') AS grantee, a.privilege_type
  FROM pg_namespace n, aclexplode(n.nspacl) a LEFT JOIN pg_roles g ON g.oid = a.grantee
 WHERE n.nspname = 'asyncrr' AND a.grantee <> n.nspowner ORDER BY 1;

------------------------------------------------------------------------------
-- Setting up: the administrator creates the queues and grants.
------------------------------------------------------------------------------
\c - regress_ada
SELECT asyncrr.create_queue('rl_billing', default_timeout => '1 hour', lease => '1 hour');
SELECT asyncrr.create_queue('rl_mail', default_timeout => '1 hour', lease => '1 hour');
SELECT asyncrr.grant_queue('rl_billing', 'regress_alice', 'submit');
SELECT asyncrr.grant_queue('rl_billing', 'regress_bob', 'submit');
SELECT asyncrr.grant_queue('rl_billing', 'regress_billing_workers', 'claim');
-- granting twice is harmless
SELECT asyncrr.grant_queue('rl_billing', 'regress_bob', 'submit');
SELECT queue_name, role_name, privilege, granted_by FROM asyncrr.queue_grants
 WHERE queue_name LIKE 'rl\_%' ORDER BY 1, 2, 3;
-- an administrator may submit anywhere; a request in rl_mail
SELECT asyncrr.open_inbox('rl-ada') \; UNLISTEN *;
SELECT asyncrr.submit('rl_mail', '{"to": "x"}', correlation_id => 'e0000000-0000-0000-0000-00000000000d');

-- alice and bob, requesters, each submit to rl_billing from a durable inbox
\c - regress_alice
SELECT asyncrr.open_inbox('rl-alice') \; UNLISTEN *;
SELECT asyncrr.submit('rl_billing', '{"inv": 1}', correlation_id => 'a0000000-0000-0000-0000-000000000001');
SELECT asyncrr.submit('rl_billing', '{"inv": 2}', correlation_id => 'a0000000-0000-0000-0000-000000000002');
\c - regress_bob
SELECT asyncrr.open_inbox('rl-bob') \; UNLISTEN *;
SELECT asyncrr.submit('rl_billing', '{"inv": 3}', correlation_id => 'b0000000-0000-0000-0000-000000000001');

\c - :super
SELECT regress_fingerprint() AS fp \gset

------------------------------------------------------------------------------
-- A role that holds none of the asyncrr roles is refused everything.
------------------------------------------------------------------------------
\c - regress_nobody
SELECT * FROM try_each(
    $$SELECT asyncrr.create_queue('rl_x')$$,
    $$SELECT asyncrr.drop_queue('rl_billing')$$,
    $$SELECT asyncrr.alter_queue('rl_billing', max_depth => 1)$$,
    $$SELECT asyncrr.grant_queue('rl_billing', 'regress_nobody', 'all')$$,
    $$SELECT asyncrr.revoke_queue('rl_billing', 'regress_alice', 'all')$$,
    $$SELECT asyncrr.open_inbox()$$,
    $$SELECT asyncrr.submit('rl_billing', '{}')$$,
    $$SELECT * FROM asyncrr.take_replies()$$,
    $$SELECT asyncrr.cancel('a0000000-0000-0000-0000-000000000001')$$,
    $$SELECT asyncrr.close_inbox()$$,
    $$SELECT * FROM asyncrr.status('a0000000-0000-0000-0000-000000000001')$$,
    $$SELECT * FROM asyncrr.wait('a0000000-0000-0000-0000-000000000001', '0')$$,
    $$CALL asyncrr.call('rl_billing', '{}')$$,
    $$SELECT * FROM asyncrr.claim('rl_billing')$$,
    $$SELECT * FROM asyncrr.claim('rl_billing', wait => '1 second')$$,
    $$SELECT asyncrr.complete('a0000000-0000-0000-0000-000000000001', '{}')$$,
    $$SELECT asyncrr.complete('a0000000-0000-0000-0000-000000000001', '{}', 1)$$,
    $$SELECT asyncrr.fail('a0000000-0000-0000-0000-000000000001', 'x')$$,
    $$SELECT asyncrr.fail('a0000000-0000-0000-0000-000000000001', 'x', attempt => 1)$$,
    $$SELECT asyncrr.extend_lease('a0000000-0000-0000-0000-000000000001', '1 hour')$$,
    $$SELECT asyncrr.extend_lease('a0000000-0000-0000-0000-000000000001', '1 hour', 1)$$,
    $$SELECT asyncrr.redrive('a0000000-0000-0000-0000-000000000001')$$,
    $$SELECT asyncrr.redrive_queue('rl_billing')$$,
    $$SELECT asyncrr.purge_dead_letters('0')$$,
    $$SELECT count(*) FROM asyncrr.pending$$,
    $$SELECT count(*) FROM asyncrr.dead_letters$$,
    $$SELECT count(*) FROM asyncrr.queue_stats$$,
    $$SELECT count(*) FROM asyncrr.inboxes$$,
    $$SELECT count(*) FROM asyncrr.queue_grants$$,
    $$SELECT count(*) FROM asyncrr.request$$,
    $$DELETE FROM asyncrr.request$$);

------------------------------------------------------------------------------
-- A requester: everything but its own requests and inboxes is refused.
------------------------------------------------------------------------------
\c - regress_alice
SELECT * FROM try_each(
    $$SELECT asyncrr.create_queue('rl_x')$$,
    $$SELECT asyncrr.drop_queue('rl_billing', force => true)$$,
    $$SELECT asyncrr.alter_queue('rl_billing', max_depth => 1)$$,
    $$SELECT asyncrr.grant_queue('rl_mail', 'regress_alice', 'submit')$$,
    $$SELECT asyncrr.revoke_queue('rl_billing', 'regress_bob', 'all')$$,
    $$SELECT * FROM asyncrr.claim('rl_billing')$$,
    $$SELECT asyncrr.complete('a0000000-0000-0000-0000-000000000001', '{}')$$,
    $$SELECT asyncrr.complete('a0000000-0000-0000-0000-000000000001', '{}', 1)$$,
    $$SELECT asyncrr.fail('a0000000-0000-0000-0000-000000000001', 'x')$$,
    $$SELECT asyncrr.fail('a0000000-0000-0000-0000-000000000001', 'x', attempt => 1)$$,
    $$SELECT asyncrr.extend_lease('a0000000-0000-0000-0000-000000000001', '1 hour')$$,
    $$SELECT asyncrr.extend_lease('a0000000-0000-0000-0000-000000000001', '1 hour', 1)$$,
    $$SELECT asyncrr.redrive('a0000000-0000-0000-0000-000000000001')$$,
    $$SELECT asyncrr.redrive_queue('rl_billing')$$,
    $$SELECT asyncrr.purge_dead_letters('0')$$,
    -- no submit privilege on rl_mail; bob's durable inbox
    $$SELECT asyncrr.submit('rl_mail', '{}')$$,
    $$SELECT asyncrr.open_inbox('rl-bob')$$,
    -- the tables, directly
    $$SELECT count(*) FROM asyncrr.request$$,
    $$INSERT INTO asyncrr.queue VALUES ('rl_y', '1 hour', '1 hour', 1)$$,
    $$UPDATE asyncrr.request SET state = 'completed'$$,
    $$DELETE FROM asyncrr.queue_grant$$,
    $$UPDATE asyncrr.inbox SET owner_role = 'regress_alice'$$);

------------------------------------------------------------------------------
-- A worker: only claim, complete, fail and extend_lease, and only on the
-- queues granted to it (here through its group role).
------------------------------------------------------------------------------
\c - regress_wally
SELECT * FROM try_each(
    $$SELECT asyncrr.create_queue('rl_x')$$,
    $$SELECT asyncrr.drop_queue('rl_billing', force => true)$$,
    $$SELECT asyncrr.alter_queue('rl_billing', max_depth => 1)$$,
    $$SELECT asyncrr.grant_queue('rl_mail', 'regress_wally', 'claim')$$,
    $$SELECT asyncrr.revoke_queue('rl_billing', 'regress_billing_workers', 'claim')$$,
    $$SELECT asyncrr.open_inbox()$$,
    $$SELECT asyncrr.submit('rl_billing', '{}')$$,
    $$SELECT * FROM asyncrr.take_replies()$$,
    $$SELECT asyncrr.cancel('a0000000-0000-0000-0000-000000000001')$$,
    $$SELECT asyncrr.close_inbox()$$,
    $$SELECT * FROM asyncrr.status('a0000000-0000-0000-0000-000000000001')$$,
    $$SELECT * FROM asyncrr.wait('a0000000-0000-0000-0000-000000000001', '0')$$,
    $$CALL asyncrr.call('rl_billing', '{}')$$,
    $$SELECT asyncrr.redrive('a0000000-0000-0000-0000-000000000001')$$,
    $$SELECT asyncrr.redrive_queue('rl_billing')$$,
    $$SELECT asyncrr.purge_dead_letters('0')$$,
    -- no claim privilege on rl_mail, nor on its requests
    $$SELECT * FROM asyncrr.claim('rl_mail')$$,
    $$SELECT * FROM asyncrr.claim('rl_mail', wait => '1 second')$$,
    $$SELECT asyncrr.complete('e0000000-0000-0000-0000-00000000000d', '{}')$$,
    $$SELECT asyncrr.fail('e0000000-0000-0000-0000-00000000000d', 'x', retry => true)$$,
    $$SELECT asyncrr.extend_lease('e0000000-0000-0000-0000-00000000000d', '1 hour')$$,
    $$SELECT count(*) FROM asyncrr.request$$,
    $$UPDATE asyncrr.request SET state = 'pending'$$);

\c - :super
-- none of the refused calls of nobody, alice and wally wrote anything
SELECT regress_fingerprint() = :'fp' AS nothing_written;

\c - regress_alice
-- allowed: its own requests and inbox, and the views
SELECT * FROM try_each(
    $$SELECT asyncrr.open_inbox('rl-alice')$$,
    $$SELECT asyncrr.submit('rl_billing', '{"inv": 4}', correlation_id => 'a0000000-0000-0000-0000-000000000004')$$,
    $$SELECT * FROM asyncrr.status('a0000000-0000-0000-0000-000000000004')$$,
    $$SELECT asyncrr.cancel('a0000000-0000-0000-0000-000000000004')$$,
    $$SELECT * FROM asyncrr.take_replies()$$,
    $$SELECT asyncrr.close_inbox()$$,
    $$SELECT count(*) FROM asyncrr.pending$$,
    $$SELECT count(*) FROM asyncrr.dead_letters$$,
    $$SELECT count(*) FROM asyncrr.queue_stats$$,
    $$SELECT count(*) FROM asyncrr.inboxes$$,
    $$SELECT count(*) FROM asyncrr.queue_grants$$);
UNLISTEN *;
SELECT correlation_id, state FROM asyncrr.status('a0000000-0000-0000-0000-000000000004');


------------------------------------------------------------------------------
-- Tenants: another role's ids behave exactly as unknown ones.
------------------------------------------------------------------------------
\c - regress_bob
SELECT asyncrr.open_inbox('rl-bob') \; UNLISTEN *;
-- status: no row for alice's request, as for an id that never existed
SELECT count(*) AS alices FROM asyncrr.status('a0000000-0000-0000-0000-000000000001');
SELECT count(*) AS unknown FROM asyncrr.status('a0000000-0000-0000-0000-0000000000ff');
-- cancel: the same SQLSTATE and message (but for the id itself)
SELECT replace(outcome, 'a0000000-0000-0000-0000-000000000001', '<id>') AS alices
  FROM try_each($$SELECT asyncrr.cancel('a0000000-0000-0000-0000-000000000001')$$);
SELECT replace(outcome, 'a0000000-0000-0000-0000-0000000000ff', '<id>') AS unknown
  FROM try_each($$SELECT asyncrr.cancel('a0000000-0000-0000-0000-0000000000ff')$$);
-- wait: the same SQLSTATE and message as for an unknown id
SELECT replace(outcome, 'a0000000-0000-0000-0000-000000000001', '<id>') AS alices
  FROM try_each($$SELECT * FROM asyncrr.wait('a0000000-0000-0000-0000-000000000001', '0')$$);
SELECT replace(outcome, 'a0000000-0000-0000-0000-0000000000ff', '<id>') AS unknown
  FROM try_each($$SELECT * FROM asyncrr.wait('a0000000-0000-0000-0000-0000000000ff', '0')$$);
-- submit with alice's id: a conflict that tells nothing about her request,
-- whether or not queue and payload match hers
SELECT outcome FROM try_each(
    $$SELECT asyncrr.submit('rl_billing', '{"inv": 1}', correlation_id => 'a0000000-0000-0000-0000-000000000001')$$,
    $$SELECT asyncrr.submit('rl_billing', '{"inv": 9}', correlation_id => 'a0000000-0000-0000-0000-000000000001')$$);
-- the views show bob his own only: one pending request, his inbox, his
-- queue (counting only his requests), the grants that apply to him
SELECT correlation_id, owner, inbox FROM asyncrr.pending ORDER BY 1;
SELECT name, owner_role, live_requests FROM asyncrr.inboxes ORDER BY 1;
SELECT queue_name, pending, claimed FROM asyncrr.queue_stats ORDER BY 1;
SELECT queue_name, role_name, privilege FROM asyncrr.queue_grants ORDER BY 1, 2, 3;
-- his own request he may see and cancel
SELECT correlation_id, queue_name, state FROM asyncrr.status('b0000000-0000-0000-0000-000000000001');

-- A durable inbox belongs to the role that first opened it.
\c - regress_alice
SELECT outcome FROM try_each($$SELECT asyncrr.open_inbox('rl-bob')$$);
SELECT asyncrr.open_inbox('rl-alice') \; UNLISTEN *;
SELECT correlation_id, owner FROM asyncrr.pending ORDER BY 1;

------------------------------------------------------------------------------
-- The worker sees whole queues it may claim from, and works on them.
------------------------------------------------------------------------------
\c - regress_wally
SELECT queue_name, pending, claimed FROM asyncrr.queue_stats ORDER BY 1;
SELECT count(*) AS pending_visible FROM asyncrr.pending;   -- not its requests
SELECT correlation_id, payload, attempt FROM asyncrr.claim('rl_billing', 3, worker => 'wally');
SELECT asyncrr.complete('a0000000-0000-0000-0000-000000000001', '{"paid": 1}');
SELECT asyncrr.fail('a0000000-0000-0000-0000-000000000002', 'card declined');
SELECT asyncrr.extend_lease('b0000000-0000-0000-0000-000000000001', '2 hours') > now() AS extended;
SELECT asyncrr.complete('b0000000-0000-0000-0000-000000000001', '{"paid": 3}', 1);
-- a request of rl_mail is as unknown to it as an id that never existed
SELECT replace(outcome, 'e0000000-0000-0000-0000-00000000000d', '<id>') AS mail
  FROM try_each($$SELECT asyncrr.complete('e0000000-0000-0000-0000-00000000000d', '{}')$$);
SELECT replace(outcome, 'e0000000-0000-0000-0000-0000000000ff', '<id>') AS unknown
  FROM try_each($$SELECT asyncrr.complete('e0000000-0000-0000-0000-0000000000ff', '{}')$$);

-- each reply reached its owner's inbox only
\c - regress_alice
SELECT asyncrr.open_inbox('rl-alice') \; UNLISTEN *;
SELECT correlation_id, status, reply, error FROM asyncrr.take_replies() ORDER BY 1;
SELECT correlation_id, state, reply FROM asyncrr.status('a0000000-0000-0000-0000-000000000001');
\c - regress_bob
SELECT asyncrr.open_inbox('rl-bob') \; UNLISTEN *;
SELECT correlation_id, status, reply FROM asyncrr.take_replies() ORDER BY 1;
\c - :super
SELECT count(*) AS foreign_inbox_requests
  FROM asyncrr.request r JOIN asyncrr.inbox i USING (inbox_name)
 WHERE r.queue_name LIKE 'rl\_%' AND r.owner_role <> i.owner_role;

------------------------------------------------------------------------------
-- Grant, then revoke.
------------------------------------------------------------------------------
\c - regress_ada
SELECT asyncrr.grant_queue('rl_mail', 'regress_alice', 'all');
SELECT asyncrr.grant_queue('rl_mail', 'regress_wally', 'claim');
SELECT queue_name, role_name, privilege FROM asyncrr.queue_grants
 WHERE queue_name = 'rl_mail' ORDER BY 1, 2, 3;
\c - regress_alice
SELECT asyncrr.open_inbox('rl-alice') \; UNLISTEN *;
SELECT asyncrr.submit('rl_mail', '{"to": "a"}', correlation_id => 'a0000000-0000-0000-0000-000000000005');
-- "claim" granted to a requester is no use without asyncrr_worker
SELECT outcome FROM try_each($$SELECT * FROM asyncrr.claim('rl_mail')$$);
\c - regress_wally
SELECT correlation_id, attempt FROM asyncrr.claim('rl_mail', 5) ORDER BY 1;
SELECT asyncrr.complete('a0000000-0000-0000-0000-000000000005', '{"sent": true}', 1);
\c - regress_ada
SELECT asyncrr.revoke_queue('rl_mail', 'regress_alice', 'all');
SELECT asyncrr.revoke_queue('rl_mail', 'regress_wally', 'claim');
-- revoking what is not granted does nothing
SELECT asyncrr.revoke_queue('rl_mail', 'regress_bob', 'submit');
SELECT count(*) AS mail_grants FROM asyncrr.queue_grants WHERE queue_name = 'rl_mail';
\c - regress_alice
SELECT outcome FROM try_each($$SELECT asyncrr.submit('rl_mail', '{"to": "b"}')$$);
-- her request stays hers
SELECT correlation_id, state FROM asyncrr.status('a0000000-0000-0000-0000-000000000005');
\c - regress_wally
SELECT outcome FROM try_each(
    $$SELECT * FROM asyncrr.claim('rl_mail')$$,
    $$SELECT asyncrr.complete('e0000000-0000-0000-0000-00000000000d', '{}')$$);

------------------------------------------------------------------------------
-- Bad input to grant_queue and revoke_queue writes nothing.
------------------------------------------------------------------------------
\c - :super
SELECT regress_fingerprint() AS fp \gset
\c - regress_ada
SELECT * FROM try_each(
    $$SELECT asyncrr.grant_queue('rl_missing', 'regress_alice', 'submit')$$,
    $$SELECT asyncrr.grant_queue('rl_mail', 'regress_nosuch', 'submit')$$,
    $$SELECT asyncrr.grant_queue('rl_mail', 'regress_alice', 'read')$$,
    $$SELECT asyncrr.grant_queue('rl_mail', 'regress_alice', 'SUBMIT')$$,
    $$SELECT asyncrr.grant_queue(NULL, 'regress_alice', 'submit')$$,
    $$SELECT asyncrr.grant_queue('rl_mail', NULL, 'submit')$$,
    $$SELECT asyncrr.grant_queue('rl_mail', 'regress_alice', NULL)$$,
    $$SELECT asyncrr.grant_queue('rl_mail', 'public', 'submit')$$,
    $$SELECT asyncrr.revoke_queue('rl_missing', 'regress_alice', 'submit')$$,
    $$SELECT asyncrr.revoke_queue('rl_billing', 'regress_nosuch', 'submit')$$,
    $$SELECT asyncrr.revoke_queue('rl_billing', 'regress_alice', 'any')$$,
    $$SELECT asyncrr.revoke_queue(NULL, 'regress_alice', 'submit')$$,
    $$SELECT asyncrr.revoke_queue('rl_billing', NULL, 'submit')$$,
    $$SELECT asyncrr.revoke_queue('rl_billing', 'regress_alice', NULL)$$);
\c - :super
SELECT regress_fingerprint() = :'fp' AS nothing_written;

------------------------------------------------------------------------------
-- Identity is the role in effect when a function is called (current_user),
-- as for row-level security: SET ROLE changes whose requests a session
-- sees and who owns what it submits.  (sql/identity.sql: SECURITY DEFINER
-- functions and triggers.)
------------------------------------------------------------------------------
\c - regress_alice
SELECT asyncrr.open_inbox('rl-alice') \; UNLISTEN *;
SELECT asyncrr.submit('rl_billing', '{"inv": 6}', correlation_id => 'a0000000-0000-0000-0000-000000000006');
SELECT correlation_id, owner FROM asyncrr.pending ORDER BY 1;
-- as asyncrr_requester, alice's session acts for that role, which owns nothing
SET ROLE asyncrr_requester;
SELECT current_user, session_user;
SELECT correlation_id, owner FROM asyncrr.pending ORDER BY 1;
SELECT asyncrr.cancel('a0000000-0000-0000-0000-000000000006');
RESET ROLE;
-- a superuser acting as alice with SET ROLE is alice: she owns what it
-- submits and the inbox it opens, and sees them
\c - :super
SET ROLE regress_alice;
SELECT asyncrr.open_inbox('rl-super') \; UNLISTEN *;
SELECT asyncrr.submit('rl_billing', '{"inv": 7}', correlation_id => 'a0000000-0000-0000-0000-000000000007');
RESET ROLE;
SELECT owner FROM asyncrr.pending
 WHERE correlation_id = 'a0000000-0000-0000-0000-000000000007';
\c - regress_alice
SELECT count(*) AS visible FROM asyncrr.status('a0000000-0000-0000-0000-000000000007');

-- A grant to a role without asyncrr_requester, or EXECUTE given to it
-- directly, does not let it in: the functions check membership themselves.
\c - regress_ada
SELECT asyncrr.grant_queue('rl_billing', 'regress_nobody', 'all');
\c - :super
GRANT USAGE ON SCHEMA asyncrr TO regress_nobody;
GRANT EXECUTE ON FUNCTION asyncrr.submit(text, jsonb, interval, uuid, integer, jsonb),
                          asyncrr.status(uuid), asyncrr.claim(text, integer, interval, text, interval)
   TO regress_nobody;
SELECT regress_fingerprint() AS fp \gset
\c - regress_nobody
SELECT * FROM try_each(
    $$SELECT asyncrr.submit('rl_billing', '{}')$$,
    $$SELECT * FROM asyncrr.status('a0000000-0000-0000-0000-000000000001')$$,
    $$SELECT * FROM asyncrr.claim('rl_billing')$$);
\c - :super
SELECT regress_fingerprint() = :'fp' AS nothing_written;
REVOKE ALL ON FUNCTION asyncrr.submit(text, jsonb, interval, uuid, integer, jsonb),
                       asyncrr.status(uuid), asyncrr.claim(text, integer, interval, text, interval)
  FROM regress_nobody;
REVOKE USAGE ON SCHEMA asyncrr FROM regress_nobody;

------------------------------------------------------------------------------
-- The administrator sees everything, and drop_queue removes the grants.
------------------------------------------------------------------------------
\c - regress_ada
SELECT correlation_id, CASE WHEN owner = :'super' THEN '(superuser)' ELSE owner END AS owner
  FROM asyncrr.pending WHERE queue_name LIKE 'rl\_%' ORDER BY 1;
SELECT name, CASE WHEN owner_role = :'super' THEN '(superuser)' ELSE owner_role END AS owner_role
  FROM asyncrr.inboxes WHERE name LIKE 'rl-%' ORDER BY 1;
SELECT correlation_id, state FROM asyncrr.status('b0000000-0000-0000-0000-000000000001');
SELECT asyncrr.cancel('a0000000-0000-0000-0000-000000000006');
SELECT asyncrr.drop_queue('rl_billing', force => true);
SELECT asyncrr.drop_queue('rl_mail', force => true);
SELECT count(*) AS grants_left FROM asyncrr.queue_grants WHERE queue_name LIKE 'rl\_%';

-- clean up
\c - :super
DELETE FROM asyncrr.inbox WHERE inbox_name LIKE 'rl-%';
DROP FUNCTION regress_fingerprint();
DROP ROLE regress_alice, regress_bob, regress_wally, regress_ada, regress_nobody,
          regress_billing_workers;

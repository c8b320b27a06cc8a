-- Order per key: within a queue, a request with an ordering key is claimed
-- only when no earlier request of its key is pending or claimed; other
-- keys and requests without one run in parallel.
\set VERBOSITY terse
SELECT asyncrr.create_queue('ok_q', default_timeout => '1 hour', lease => '1 hour', max_attempts => 3);
UNLISTEN *;
SELECT asyncrr.submit('ok_q', '{"acct": 42, "n": 1}', correlation_id => '16c00000-0000-0000-0000-000000000001',
                      ordering_key => 'account-42');
SELECT asyncrr.submit('ok_q', '{"acct": 42, "n": 2}', correlation_id => '16c00000-0000-0000-0000-000000000002',
                      ordering_key => 'account-42');
SELECT asyncrr.submit('ok_q', '{"acct": 42, "n": 3}', correlation_id => '16c00000-0000-0000-0000-000000000003',
                      ordering_key => 'account-42');
SELECT asyncrr.submit('ok_q', '{"acct": 7, "n": 1}', correlation_id => '16c00000-0000-0000-0000-000000000004',
                      ordering_key => 'account-7');
SELECT asyncrr.submit('ok_q', '{"none": 1}', correlation_id => '16c00000-0000-0000-0000-000000000005');
UNLISTEN *;
SELECT correlation_id, ordering_key FROM asyncrr.pending WHERE queue_name = 'ok_q' ORDER BY correlation_id;

-- one of each key, and the one without
SELECT payload, attempt FROM asyncrr.claim('ok_q', 10) ORDER BY payload::text;
SELECT count(*) AS more FROM asyncrr.claim('ok_q', 10);
CALL asyncrr.wait_for_work('ok_q', '0 seconds');

-- the head ends: the next of its key may be claimed
SELECT asyncrr.complete('16c00000-0000-0000-0000-000000000001', '{"ok": 1}');
CALL asyncrr.wait_for_work('ok_q', '0 seconds');
SELECT payload, attempt FROM asyncrr.claim('ok_q', 10);

-- a retry keeps its place at the head
SELECT asyncrr.fail('16c00000-0000-0000-0000-000000000002', 'try again', retry => true);
SELECT payload, attempt FROM asyncrr.claim('ok_q', 10);

-- a later request may be cancelled while it waits; the head goes on
SELECT asyncrr.cancel('16c00000-0000-0000-0000-000000000003');
SELECT asyncrr.submit('ok_q', '{"acct": 42, "n": 4}', correlation_id => '16c00000-0000-0000-0000-000000000006',
                      ordering_key => 'account-42');
SELECT count(*) AS blocked FROM asyncrr.claim('ok_q', 10);
-- a head that fails for good releases the next
SELECT asyncrr.fail('16c00000-0000-0000-0000-000000000002', 'no');
SELECT payload FROM asyncrr.claim('ok_q', 10);

-- submit_many with a key keeps the payloads' order, whatever the ids
SELECT count(*) FROM asyncrr.submit_many('ok_q',
    ARRAY['{"b": 1}', '{"b": 2}', '{"b": 3}']::jsonb[],
    correlation_ids => ARRAY['16c00000-0000-0000-0000-0000000000f3', '16c00000-0000-0000-0000-0000000000f1',
                             '16c00000-0000-0000-0000-0000000000f2']::uuid[],
    ordering_key => 'batch');
CREATE TEMP TABLE ok_order (n serial, payload jsonb);
DO $$
DECLARE
    r record;
BEGIN
    FOR i IN 1..3 LOOP
        FOR r IN SELECT * FROM asyncrr.claim('ok_q', 10) WHERE payload ? 'b' LOOP
            INSERT INTO ok_order (payload) VALUES (r.payload);
            PERFORM asyncrr.complete(r.correlation_id, '{}');
        END LOOP;
    END LOOP;
END $$;
SELECT n, payload FROM ok_order ORDER BY n;

-- a lease that runs out returns the head to its queue, still the head
SELECT asyncrr.submit('ok_q', '{"l": 1}', correlation_id => '16c00000-0000-0000-0000-000000000011',
                      ordering_key => 'lease');
SELECT asyncrr.submit('ok_q', '{"l": 2}', correlation_id => '16c00000-0000-0000-0000-000000000012',
                      ordering_key => 'lease');
SELECT payload FROM asyncrr.claim('ok_q', 10, lease => '10 milliseconds') WHERE payload ? 'l';
SELECT pg_sleep(0.1);
SELECT payload, attempt FROM asyncrr.claim('ok_q', 10) WHERE payload ? 'l';

-- a dead letter keeps its key, and a redrive joins the end of its key
SELECT asyncrr.fail('16c00000-0000-0000-0000-000000000011', 'gone', retry => true);
SELECT payload, attempt FROM asyncrr.claim('ok_q', 10) WHERE payload ? 'l';
SELECT asyncrr.fail('16c00000-0000-0000-0000-000000000011', 'gone for good', retry => true);
SELECT reason FROM asyncrr.dead_letters WHERE correlation_id = '16c00000-0000-0000-0000-000000000011';
SELECT asyncrr.redrive('16c00000-0000-0000-0000-000000000011') IS NOT NULL AS redriven;
SELECT payload FROM asyncrr.claim('ok_q', 10) WHERE payload ? 'l';
SELECT ordering_key, state, count(*) FROM asyncrr.pending WHERE queue_name = 'ok_q'
 GROUP BY 1, 2 ORDER BY 1, 2;

-- a key is its role's: another role's requests with the same key are not
-- held up by this role's, nor can they hold them up
CREATE ROLE regress_ok_other LOGIN IN ROLE asyncrr_requester;
SELECT asyncrr.grant_queue('ok_q', 'regress_ok_other', 'submit');
SELECT asyncrr.submit('ok_q', '{"mine": 1}', ordering_key => 'shared', correlation_id => '16c00000-0000-0000-0000-000000000021');
SELECT payload FROM asyncrr.claim('ok_q', 10) WHERE payload ? 'mine';
SELECT asyncrr.close_inbox();
SET ROLE regress_ok_other;
SELECT asyncrr.open_inbox('ok-other');
SELECT asyncrr.submit('ok_q', '{"theirs": 1}', ordering_key => 'shared', not_before => now() + interval '1 day') IS NOT NULL AS delayed_head;
SELECT asyncrr.submit('ok_q', '{"theirs": 2}', ordering_key => 'shared') IS NOT NULL AS behind_it;
UNLISTEN *;
SELECT asyncrr.close_inbox();
RESET ROLE;
SELECT asyncrr.submit('ok_q', '{"mine": 2}', ordering_key => 'shared') IS NOT NULL AS mine_behind;
UNLISTEN *;
SELECT asyncrr.complete('16c00000-0000-0000-0000-000000000021', '{}');
SELECT payload FROM asyncrr.claim('ok_q', 10) WHERE payload ? 'mine' OR payload ? 'theirs';
SELECT ordering_key, owner, state, count(*) FROM asyncrr.pending WHERE ordering_key = 'shared'
 GROUP BY 1, 2, 3 ORDER BY 2, 3;

-- the same id again with another ordering key is another request
SELECT asyncrr.submit('ok_q', '{"mine": 3}', ordering_key => 'one', correlation_id => '16c00000-0000-0000-0000-000000000022');
SELECT asyncrr.submit('ok_q', '{"mine": 3}', ordering_key => 'one', correlation_id => '16c00000-0000-0000-0000-000000000022');
SELECT asyncrr.submit('ok_q', '{"mine": 3}', ordering_key => 'two', correlation_id => '16c00000-0000-0000-0000-000000000022');
SELECT asyncrr.submit('ok_q', '{"mine": 3}', correlation_id => '16c00000-0000-0000-0000-000000000022');

-- bad keys: an error naming the fault, nothing written
SELECT count(*) AS live FROM asyncrr.pending WHERE queue_name = 'ok_q';
SELECT asyncrr.submit('ok_q', '{"bad": 1}', ordering_key => '');
SELECT asyncrr.submit('ok_q', '{"bad": 2}', ordering_key => repeat('k', 201));
SELECT count(*) FROM asyncrr.submit_many('ok_q', ARRAY['{"bad": 3}']::jsonb[], ordering_key => '');
SELECT count(*) AS live FROM asyncrr.pending WHERE queue_name = 'ok_q';
SELECT asyncrr.drop_queue('ok_q', force => true);
-- (the other role's durable inbox goes with the role)
DELETE FROM asyncrr.dead_letter WHERE inbox_name = 'ok-other';
DELETE FROM asyncrr.request WHERE inbox_name = 'ok-other';
DELETE FROM asyncrr.inbox WHERE inbox_name = 'ok-other';
DROP ROLE regress_ok_other;
SELECT status, count(*) FROM asyncrr.take_replies() GROUP BY 1 ORDER BY 1;

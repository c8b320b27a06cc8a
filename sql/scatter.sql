-- Scatter-gather: one request (the gather) made of one part per queue;
-- the gather ends when its last part ends, or at its deadline.
\set VERBOSITY terse
SELECT asyncrr.create_queue('sg_a', default_timeout => '1 hour');
SELECT asyncrr.create_queue('sg_b', default_timeout => '30 minutes');
SELECT asyncrr.create_queue('sg_c', default_timeout => '2 hours');
UNLISTEN *;

SELECT asyncrr.scatter(ARRAY['sg_a', 'sg_b', 'sg_c'], '{"sku": 17}', headers => '{"trace": "t-9"}',
                       correlation_id => '16a00000-0000-0000-0000-000000000001');
UNLISTEN *;
-- the gather: pending, of no queue, deadline from the smallest default timeout
SELECT queue_name, state, deadline - submitted_at AS timeout
  FROM asyncrr.status('16a00000-0000-0000-0000-000000000001');
SELECT queue_name, state, reply, error FROM asyncrr.parts('16a00000-0000-0000-0000-000000000001');
-- each part is an ordinary request of its queue with the gather's deadline
SELECT p.queue_name, s.deadline = g.deadline AS same_deadline
  FROM asyncrr.parts('16a00000-0000-0000-0000-000000000001') p,
       LATERAL asyncrr.status(p.correlation_id) s, asyncrr.status('16a00000-0000-0000-0000-000000000001') g
 ORDER BY 1;

-- the same gather again: the same id, nothing new (queues in any order)
SELECT asyncrr.scatter(ARRAY['sg_c', 'sg_a', 'sg_b'], '{"sku": 17}',
                       correlation_id => '16a00000-0000-0000-0000-000000000001');
SELECT count(*) AS parts FROM asyncrr.parts('16a00000-0000-0000-0000-000000000001');
-- (queue names compared byte by byte, whatever the collation)
SELECT asyncrr.create_queue('SG_Up');
SELECT asyncrr.scatter(ARRAY['sg_a', 'SG_Up', 'sg-c'], '{"case": 1}', correlation_id => '16a00000-0000-0000-0000-0000000000c1');
SELECT asyncrr.create_queue('sg-c');
SELECT asyncrr.scatter(ARRAY['sg_a', 'SG_Up', 'sg-c'], '{"case": 1}', correlation_id => '16a00000-0000-0000-0000-0000000000c1');
UNLISTEN *;
SELECT asyncrr.scatter(ARRAY['sg-c', 'sg_a', 'SG_Up'], '{"case": 1}', correlation_id => '16a00000-0000-0000-0000-0000000000c1');
SELECT asyncrr.cancel('16a00000-0000-0000-0000-0000000000c1');
SELECT asyncrr.drop_queue('SG_Up');
SELECT asyncrr.drop_queue('sg-c');
SELECT status FROM asyncrr.take_replies();
-- ... but not with other queues or another payload
SELECT asyncrr.scatter(ARRAY['sg_a', 'sg_b'], '{"sku": 17}',
                       correlation_id => '16a00000-0000-0000-0000-000000000001');
SELECT asyncrr.scatter(ARRAY['sg_a', 'sg_b', 'sg_c'], '{"sku": 18}',
                       correlation_id => '16a00000-0000-0000-0000-000000000001');

-- workers see ordinary requests
SELECT payload, headers FROM asyncrr.claim('sg_a');
SELECT asyncrr.complete((SELECT correlation_id FROM asyncrr.parts('16a00000-0000-0000-0000-000000000001')
                          WHERE queue_name = 'sg_a'), '{"price": 10}');
-- a part's end is not a reply of its own
SELECT count(*) AS replies FROM asyncrr.take_replies();
SELECT state FROM asyncrr.status('16a00000-0000-0000-0000-000000000001');
SELECT count(*) FROM asyncrr.claim('sg_b');
SELECT asyncrr.fail((SELECT correlation_id FROM asyncrr.parts('16a00000-0000-0000-0000-000000000001')
                      WHERE queue_name = 'sg_b'), 'out of stock');
SELECT count(*) FROM asyncrr.claim('sg_c');
SELECT asyncrr.complete((SELECT correlation_id FROM asyncrr.parts('16a00000-0000-0000-0000-000000000001')
                          WHERE queue_name = 'sg_c'), '{"price": 12}');
-- the last part ended: one reply, the gather's
SELECT correlation_id, status, reply, error FROM asyncrr.take_replies();
SELECT count(*) AS more FROM asyncrr.take_replies();
SELECT queue_name, state, reply, error FROM asyncrr.parts('16a00000-0000-0000-0000-000000000001');
-- a part is not waited for: as an unknown id
DO $$
BEGIN
    PERFORM asyncrr.wait((SELECT correlation_id FROM asyncrr.parts('16a00000-0000-0000-0000-000000000001')
                           WHERE queue_name = 'sg_a'), '0 seconds');
EXCEPTION WHEN undefined_object THEN
    RAISE NOTICE 'wait(part): %', SQLSTATE;
END $$;

-- retention keeps the parts of a live gather: its reply is made of them
SELECT asyncrr.scatter(ARRAY['sg_a', 'sg_b'], '{"q": 7}', correlation_id => '16a00000-0000-0000-0000-000000000007');
UNLISTEN *;
SELECT count(*) FROM (SELECT asyncrr.fail(c.correlation_id, 'early') FROM asyncrr.claim('sg_a') c) done;
UPDATE asyncrr.request SET finished_at = finished_at - interval '1 day'
 WHERE gather = '16a00000-0000-0000-0000-000000000007' AND state = 'failed';
SELECT asyncrr._purge_requests(100, '1 hour') AS purged;
SELECT count(*) FROM (SELECT asyncrr.complete(c.correlation_id, '{}') FROM asyncrr.claim('sg_b') c) done;
SELECT status, reply, error FROM asyncrr.wait('16a00000-0000-0000-0000-000000000007', '1 second');
UPDATE asyncrr.request SET finished_at = finished_at - interval '1 day'
 WHERE gather = '16a00000-0000-0000-0000-000000000007' AND state = 'completed';
SELECT asyncrr._purge_requests(100, '1 hour') AS purged;

-- a gather's dead letter cannot be redriven: it is no queue's request
INSERT INTO asyncrr.dead_letter (correlation_id, queue_name, inbox_name, owner_role, reason, payload,
                                 priority, timeout, attempt, submitted_at, dead_lettered_at)
VALUES ('16a00000-0000-0000-0000-0000000000d1', '(scatter)', 'gone', current_user, 'requester_gone', '{}',
        0, '1 hour', 1, now(), now());
SELECT asyncrr.redrive('16a00000-0000-0000-0000-0000000000d1');
DELETE FROM asyncrr.dead_letter WHERE correlation_id = '16a00000-0000-0000-0000-0000000000d1';

-- every part completed: completed; wait() takes the gather
SELECT asyncrr.scatter(ARRAY['sg_a', 'sg_b'], '{"q": 2}', correlation_id => '16a00000-0000-0000-0000-000000000002');
UNLISTEN *;
SELECT count(*) FROM (SELECT asyncrr.complete(c.correlation_id, jsonb_build_object('from', q))
                        FROM unnest(ARRAY['sg_a', 'sg_b']) q, LATERAL asyncrr.claim(q) c) done;
SELECT status, reply, error FROM asyncrr.wait('16a00000-0000-0000-0000-000000000002', '5 seconds');

-- a straggler: at the deadline it times out, and so does the gather
SELECT asyncrr.scatter(ARRAY['sg_a', 'sg_b', 'sg_c'], '{"q": 3}', timeout => '300 milliseconds',
                       correlation_id => '16a00000-0000-0000-0000-000000000003');
UNLISTEN *;
SELECT count(*) FROM (SELECT asyncrr.complete(c.correlation_id, jsonb_build_object('from', q))
                        FROM unnest(ARRAY['sg_a', 'sg_b']) q, LATERAL asyncrr.claim(q) c) done;
SELECT status, reply, error FROM asyncrr.wait('16a00000-0000-0000-0000-000000000003', '5 seconds');
SELECT queue_name, state FROM asyncrr.parts('16a00000-0000-0000-0000-000000000003');
SELECT reason FROM asyncrr.dead_letters d JOIN asyncrr.parts('16a00000-0000-0000-0000-000000000003') p
    USING (correlation_id);

-- a part's dead letter is not redriven: its gather has ended
DO $$
BEGIN
    PERFORM asyncrr.redrive((SELECT correlation_id FROM asyncrr.parts('16a00000-0000-0000-0000-000000000003')
                              WHERE queue_name = 'sg_c'));
EXCEPTION WHEN object_not_in_prerequisite_state THEN
    RAISE NOTICE 'redrive(part): %', SQLSTATE;
END $$;
SELECT asyncrr.redrive_queue('sg_c') AS redriven;

-- cancel(gather) cancels its unfinished parts; the gather ends cancelled
SELECT asyncrr.scatter(ARRAY['sg_a', 'sg_b'], '{"q": 4}', correlation_id => '16a00000-0000-0000-0000-000000000004');
UNLISTEN *;
SELECT count(*) FROM (SELECT asyncrr.complete(c.correlation_id, '{"fast": true}') FROM asyncrr.claim('sg_a') c) done;
SELECT asyncrr.cancel('16a00000-0000-0000-0000-000000000004');
SELECT asyncrr.cancel('16a00000-0000-0000-0000-000000000004');
SELECT queue_name, state, error FROM asyncrr.parts('16a00000-0000-0000-0000-000000000004');
SELECT status, reply, error FROM asyncrr.wait('16a00000-0000-0000-0000-000000000004', '1 second');

-- close_inbox(cancel_pending) cancels parts, and so the gather
SELECT asyncrr.scatter(ARRAY['sg_a', 'sg_c'], '{"q": 5}', correlation_id => '16a00000-0000-0000-0000-000000000005');
UNLISTEN *;
SELECT asyncrr.close_inbox(cancel_pending => true);
SELECT state, error FROM asyncrr.status('16a00000-0000-0000-0000-000000000005');

-- a queue dropped with force dead-letters its part; the gather fails
SELECT asyncrr.create_queue('sg_gone');
SELECT asyncrr.scatter(ARRAY['sg_a', 'sg_gone'], '{"q": 6}', correlation_id => '16a00000-0000-0000-0000-000000000006');
UNLISTEN *;
SELECT asyncrr.drop_queue('sg_gone', force => true);
SELECT count(*) FROM (SELECT asyncrr.complete(c.correlation_id, '{}') FROM asyncrr.claim('sg_a') c) done;
SELECT status, reply, error FROM asyncrr.wait('16a00000-0000-0000-0000-000000000006', '1 second');

-- bad input: an error naming it, nothing written
SELECT asyncrr.submit('sg_a', '{}', correlation_id => '16a00000-0000-0000-0000-0000000000aa');
SELECT asyncrr.alter_queue('sg_b', default_timeout => '1 minute', max_timeout => '1 minute');
SELECT count(*) AS requests_before FROM asyncrr.pending \gset
SELECT asyncrr.scatter(ARRAY[]::text[], '{}');
SELECT asyncrr.scatter(NULL, '{}');
SELECT asyncrr.scatter(ARRAY['sg_a', NULL], '{}');
SELECT asyncrr.scatter(ARRAY['sg_a', 'sg_a'], '{}');
SELECT asyncrr.scatter(ARRAY[['sg_a'], ['sg_b']], '{}');
SELECT asyncrr.scatter(ARRAY['sg_a', 'sg_nope'], '{}');
SELECT asyncrr.scatter((SELECT array_agg('q' || i) FROM generate_series(1, 101) i), '{}');
SELECT asyncrr.scatter(ARRAY['sg_a'], NULL);
SELECT asyncrr.scatter(ARRAY['sg_a'], '{}', headers => '[1]');
SELECT asyncrr.scatter(ARRAY['sg_a'], '{}', timeout => '-1 second');
SELECT asyncrr.scatter(ARRAY['sg_a', 'sg_b'], '{}', timeout => '5 minutes');
SELECT asyncrr.scatter(ARRAY['sg_a'], '{}', correlation_id => '16a00000-0000-0000-0000-0000000000aa');
SELECT count(*) - :requests_before AS written FROM asyncrr.pending;

-- privileges: submit on every queue; another role's gather is unknown
CREATE ROLE regress_sg_req LOGIN IN ROLE asyncrr_requester;
SELECT asyncrr.grant_queue('sg_a', 'regress_sg_req', 'submit');
SET ROLE regress_sg_req;
SELECT asyncrr.scatter(ARRAY['sg_a', 'sg_b'], '{}');
SELECT count(*) AS foreign_parts FROM asyncrr.parts('16a00000-0000-0000-0000-000000000001');
SELECT * FROM asyncrr.status('16a00000-0000-0000-0000-000000000001');
SELECT asyncrr.cancel('16a00000-0000-0000-0000-000000000001');
RESET ROLE;
SELECT asyncrr.revoke_queue('sg_a', 'regress_sg_req', 'submit');
DROP ROLE regress_sg_req;
SELECT asyncrr.drop_queue(q, force => true) FROM unnest(ARRAY['sg_a', 'sg_b', 'sg_c']) q;

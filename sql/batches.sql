-- Batch forms: submit_many and complete_many do what submit and complete do,
-- for many requests in one call.  Their checks are all or nothing: a batch
-- that is refused writes nothing.
\set VERBOSITY terse
SELECT current_user AS super \gset
SELECT asyncrr.create_queue('bt_main', default_timeout => '1 hour');
SELECT asyncrr.create_queue('bt_small');
SELECT asyncrr.alter_queue('bt_small', max_depth => 3);
SELECT asyncrr.open_inbox() IS NOT NULL AS opened;
UNLISTEN *;   -- keep this session's own notifications (they name its PID) out of the output
SELECT count(*) AS requests_before FROM asyncrr.request \gset

-- ids come back in payload order: given ones as given, NULL ones new
SELECT array_agg(id) AS ids
  FROM asyncrr.submit_many('bt_main',
         ARRAY['{"n": 1}', '{"n": 2}', '{"n": 3}']::jsonb[],
         correlation_ids => ARRAY['ba100000-0000-0000-0000-000000000001',
                                  NULL,
                                  'ba100000-0000-0000-0000-000000000003']::uuid[],
         priority => 2, headers => '{"batch": true}') id \gset
SELECT (:'ids'::uuid[])[1] AS first, (:'ids'::uuid[])[3] AS third,
       (:'ids'::uuid[])[2] = r.correlation_id AS second_is_new
  FROM asyncrr.request r WHERE r.queue_name = 'bt_main' AND r.payload = '{"n": 2}';
SELECT r.correlation_id = 'ba100000-0000-0000-0000-000000000001' AS first_given,
       r.payload, r.state, r.priority, r.headers, r.deadline = r.submitted_at + interval '1 hour' AS deadline_ok
  FROM asyncrr.request r WHERE r.queue_name = 'bt_main' ORDER BY r.payload->>'n';
SELECT count(*) AS n, count(DISTINCT inbox_name) AS inboxes, count(DISTINCT submitted_at) AS instants
  FROM asyncrr.request WHERE queue_name = 'bt_main';

-- without correlation_ids every id is new
SELECT count(*) AS submitted, count(DISTINCT id) AS distinct_ids
  FROM asyncrr.submit_many('bt_main', ARRAY['{"m": 1}', '{"m": 2}']::jsonb[]) id;

-- a repeat of the same requests is a no-op that returns the same ids; with
-- new ones among them, only those are written
SELECT count(*) AS requests_before_repeat FROM asyncrr.request \gset
SELECT * FROM asyncrr.submit_many('bt_main', ARRAY['{"n": 1}', '{"n": 3}']::jsonb[],
         correlation_ids => ARRAY['ba100000-0000-0000-0000-000000000001',
                                  'ba100000-0000-0000-0000-000000000003']::uuid[]);
SELECT * FROM asyncrr.submit_many('bt_main', ARRAY['{"n": 1}', '{"n": 4}']::jsonb[],
         correlation_ids => ARRAY['ba100000-0000-0000-0000-000000000001',
                                  'ba100000-0000-0000-0000-000000000004']::uuid[]);
SELECT count(*) - :requests_before_repeat AS written FROM asyncrr.request;

-- an empty batch does nothing, but still needs a queue it may submit to
SELECT count(*) FROM asyncrr.submit_many('bt_main', '{}'::jsonb[]);
SELECT count(*) FROM asyncrr.submit_many('no_such_queue', '{}'::jsonb[]);

SELECT count(*) AS fits FROM asyncrr.submit_many('bt_small', ARRAY['{"s": 1}', '{"s": 2}']::jsonb[]);

-- refused, and nothing written: a known id with another payload, even
-- beside new ones; NULL arrays and elements; arrays of different lengths;
-- a batch larger than the room its queue has left (3 live requests at
-- most, 2 there); an oversized payload
SELECT count(*) AS requests_before_refusals FROM asyncrr.request \gset
SELECT asyncrr.submit_many('bt_main', ARRAY['{"new": 1}', '{"n": 99}']::jsonb[],
         correlation_ids => ARRAY['ba100000-0000-0000-0000-000000000009',
                                  'ba100000-0000-0000-0000-000000000003']::uuid[]);
SELECT asyncrr.submit_many('bt_main', NULL);
SELECT asyncrr.submit_many('bt_main', ARRAY['{"a": 1}', NULL]::jsonb[]);
SELECT asyncrr.submit_many('bt_main', ARRAY['{"a": 1}']::jsonb[],
         correlation_ids => ARRAY[gen_random_uuid(), gen_random_uuid()]);
SELECT asyncrr.submit_many('bt_small', ARRAY['{"s": 3}', '{"s": 4}']::jsonb[]);
SELECT asyncrr.submit_many('bt_main', ARRAY['{"a": 1}'::jsonb, jsonb_build_object('a', repeat('x', 1100000))]);
SELECT asyncrr.submit_many('no_such_queue', ARRAY['{"a": 1}']::jsonb[]);
SELECT count(*) - :requests_before_refusals AS written FROM asyncrr.request;

-- complete_many: outcomes in the order given.  An id given twice is
-- completed once, then a duplicate; an ended request is a duplicate (a
-- worker ended it) or late (it timed out); a stale attempt is late.
SELECT count(*) AS claimed FROM asyncrr.claim('bt_main', 10);
SELECT asyncrr.complete('ba100000-0000-0000-0000-000000000004', '{"done": "before"}');
SELECT CASE WHEN c.correlation_id = (:'ids'::uuid[])[2] THEN 'the new one'
            ELSE c.correlation_id::text END AS id, c.outcome
  FROM asyncrr.complete_many(
         ARRAY['ba100000-0000-0000-0000-000000000001', 'ba100000-0000-0000-0000-000000000003',
               'ba100000-0000-0000-0000-000000000001', 'ba100000-0000-0000-0000-000000000004',
               (:'ids'::uuid[])[2]]::uuid[],
         ARRAY['{"r": 1}', '{"r": 3}', '{"r": "again"}', '{"r": 4}', NULL]::jsonb[],
         attempts => ARRAY[1, 2, 1, NULL, NULL]) c;
SELECT correlation_id = (:'ids'::uuid[])[2] AS unnamed, state, reply, error
  FROM asyncrr.request
 WHERE correlation_id::text LIKE 'ba100000-%' OR correlation_id = (:'ids'::uuid[])[2]
 ORDER BY correlation_id::text LIKE 'ba100000-%', correlation_id;
-- each completed reply is in the inbox once
SELECT count(*) AS replies, count(DISTINCT correlation_id) AS distinct_replies
  FROM asyncrr.take_replies();

-- refused, and nothing written: an unknown id, a request not claimed (even
-- after a good one), NULL ids, arrays of different lengths
SELECT asyncrr.submit('bt_main', '{"late": 1}', correlation_id => 'ba200000-0000-0000-0000-000000000001');
SELECT count(*) AS requests_before_refusals FROM asyncrr.request WHERE state = 'completed' \gset
SELECT * FROM asyncrr.complete_many(ARRAY['ba300000-0000-0000-0000-000000000000']::uuid[],
                                    ARRAY['{}']::jsonb[]);
SELECT correlation_id FROM asyncrr.claim('bt_main', 1);
SELECT asyncrr.submit('bt_main', '{"late": 2}', correlation_id => 'ba200000-0000-0000-0000-000000000002');
SELECT * FROM asyncrr.complete_many(ARRAY['ba200000-0000-0000-0000-000000000001',
                                          'ba200000-0000-0000-0000-000000000002']::uuid[],
                                    ARRAY['{}', '{}']::jsonb[]);
SELECT * FROM asyncrr.complete_many(ARRAY['ba200000-0000-0000-0000-000000000001', NULL]::uuid[],
                                    ARRAY['{}', '{}']::jsonb[]);
SELECT * FROM asyncrr.complete_many(ARRAY['ba200000-0000-0000-0000-000000000001']::uuid[],
                                    ARRAY['{}', '{}']::jsonb[]);
SELECT * FROM asyncrr.complete_many(ARRAY['ba200000-0000-0000-0000-000000000001']::uuid[],
                                    ARRAY['{}']::jsonb[], attempts => ARRAY[0]);
SELECT * FROM asyncrr.complete_many(NULL, ARRAY['{}']::jsonb[]);
SELECT count(*) - :requests_before_refusals AS written FROM asyncrr.request WHERE state = 'completed';
SELECT * FROM asyncrr.complete_many('{}', '{}');

-- the roles: a requester may not complete, a worker may not submit
CREATE ROLE regress_bt_requester LOGIN IN ROLE asyncrr_requester;
CREATE ROLE regress_bt_worker LOGIN IN ROLE asyncrr_worker;
SELECT asyncrr.grant_queue('bt_main', 'regress_bt_requester', 'submit');
\c - regress_bt_requester
\set VERBOSITY terse
SELECT count(*) FROM asyncrr.submit_many('bt_main', ARRAY['{"by": "requester"}']::jsonb[]);
SELECT * FROM asyncrr.complete_many(ARRAY['ba200000-0000-0000-0000-000000000001']::uuid[], ARRAY['{}']::jsonb[]);
\c - regress_bt_worker
\set VERBOSITY terse
SELECT count(*) FROM asyncrr.submit_many('bt_main', ARRAY['{"by": "worker"}']::jsonb[]);
-- without claim on the queue, its requests are unknown to this worker
SELECT * FROM asyncrr.complete_many(ARRAY['ba200000-0000-0000-0000-000000000001']::uuid[], ARRAY['{}']::jsonb[]);
\c - :super
\set VERBOSITY terse
SELECT asyncrr.grant_queue('bt_main', 'regress_bt_worker', 'claim');
SELECT asyncrr.submit('bt_small', '{"other": 1}', correlation_id => 'ba200000-0000-0000-0000-000000000003');
SELECT count(*) AS claimed FROM asyncrr.claim('bt_small', 10);
\c - regress_bt_worker
\set VERBOSITY terse
-- a batch with one request of a queue the worker may not claim from is
-- refused whole, as if that id did not exist
SELECT * FROM asyncrr.complete_many(ARRAY['ba200000-0000-0000-0000-000000000001',
                                          'ba200000-0000-0000-0000-000000000003']::uuid[],
                                    ARRAY['{"by": "worker"}', '{}']::jsonb[]);
SELECT * FROM asyncrr.complete_many(ARRAY['ba200000-0000-0000-0000-000000000001']::uuid[], ARRAY['{"by": "worker"}']::jsonb[]);
-- complete_and_claim: the completions, then a claim, in one statement;
-- the claim sees the queue as the completions leave it
\c - :super
\set VERBOSITY terse
SELECT asyncrr.create_queue('bt_cc', default_timeout => '1 hour');
SELECT asyncrr.grant_queue('bt_cc', 'regress_bt_worker', 'claim');
SELECT count(*) AS submitted FROM asyncrr.submit_many('bt_cc',
         ARRAY['{"c": 1}', '{"c": 2}', '{"c": 3}', '{"c": 4}']::jsonb[],
         correlation_ids => ARRAY['bacc0000-0000-0000-0000-000000000001', 'bacc0000-0000-0000-0000-000000000002',
                                  'bacc0000-0000-0000-0000-000000000003', 'bacc0000-0000-0000-0000-000000000004']::uuid[]);
\c - regress_bt_worker
\set VERBOSITY terse
-- nothing to complete: a plain claim (no wait), with the claim's defaults
SELECT correlation_id, outcome, payload, attempt, lease_until > now() AS leased
  FROM asyncrr.complete_and_claim('bt_cc', '{}', '{}', max_requests => 2);
-- complete those two (their outcomes first, in the order given), claim the
-- next two, for the worker named
SELECT correlation_id, outcome, payload, attempt
  FROM asyncrr.complete_and_claim('bt_cc',
         ARRAY['bacc0000-0000-0000-0000-000000000001', 'bacc0000-0000-0000-0000-000000000002']::uuid[],
         ARRAY['{"r": 1}', '{"r": 2}']::jsonb[], ARRAY[1, 1], max_requests => 5, worker => 'cc-worker');
-- a stale attempt is late and writes nothing; the queue is empty now
SELECT correlation_id, outcome, payload IS NULL AS no_payload
  FROM asyncrr.complete_and_claim('bt_cc', ARRAY['bacc0000-0000-0000-0000-000000000003']::uuid[],
                                  ARRAY['{"stale": true}']::jsonb[], ARRAY[7]);
-- refused whole, nothing written: an unknown queue after valid completions,
-- a bad max_requests, arrays of different lengths, a NULL queue
SELECT count(*) FROM asyncrr.complete_and_claim('no_such_queue',
         ARRAY['bacc0000-0000-0000-0000-000000000003']::uuid[], ARRAY['{"r": 3}']::jsonb[]);
SELECT count(*) FROM asyncrr.complete_and_claim('bt_cc',
         ARRAY['bacc0000-0000-0000-0000-000000000003']::uuid[], ARRAY['{"r": 3}']::jsonb[], max_requests => 0);
SELECT count(*) FROM asyncrr.complete_and_claim('bt_cc',
         ARRAY['bacc0000-0000-0000-0000-000000000003']::uuid[], ARRAY['{"r": 3}', '{}']::jsonb[]);
SELECT count(*) FROM asyncrr.complete_and_claim(NULL,
         ARRAY['bacc0000-0000-0000-0000-000000000003']::uuid[], ARRAY['{"r": 3}']::jsonb[]);
\c - :super
SELECT correlation_id, state, reply, worker FROM asyncrr.request
 WHERE queue_name = 'bt_cc' ORDER BY correlation_id;
-- a requester may not call it
SET ROLE regress_bt_requester;
SELECT count(*) FROM asyncrr.complete_and_claim('bt_cc', '{}', '{}');
RESET ROLE;
SELECT asyncrr.drop_queue('bt_cc', force => true);

\c - :super
SELECT asyncrr.drop_queue('bt_main', force => true);
SELECT asyncrr.drop_queue('bt_small', force => true);
DROP ROLE regress_bt_requester;
DROP ROLE regress_bt_worker;

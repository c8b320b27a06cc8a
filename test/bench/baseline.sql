-- The hand-written baseline's table, the way people write it: one plain
-- table, a partial index to claim from and one to take replies from.  Used
-- by every benchmark that compares asyncrr with it: test/bench/run.sh and
-- percall.sh (rrbench.c's statements), test/bench/brokers/ (systems.js,
-- pybench.py).
CREATE TABLE IF NOT EXISTS rrbench_rr (
    id           bigserial PRIMARY KEY,
    queue        text NOT NULL,
    inbox        text NOT NULL,
    payload      jsonb NOT NULL,
    prio         integer NOT NULL DEFAULT 0,
    state        text NOT NULL DEFAULT 'pending',
    reply        jsonb,
    submitted_at timestamptz NOT NULL DEFAULT now(),
    claimed_at   timestamptz,
    finished_at  timestamptz
);
CREATE INDEX IF NOT EXISTS rrbench_rr_claim ON rrbench_rr (queue, prio DESC, id) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS rrbench_rr_take ON rrbench_rr (inbox, finished_at) WHERE state = 'done';

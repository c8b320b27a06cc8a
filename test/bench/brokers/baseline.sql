-- The hand-written baseline's table (systems.js, pybench.py): the way people
-- write it, as test/bench/rrbench.c's rrbench_rr.
CREATE TABLE IF NOT EXISTS rr_baseline (
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
CREATE INDEX IF NOT EXISTS rr_baseline_claim ON rr_baseline (queue, prio DESC, id) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS rr_baseline_take ON rr_baseline (inbox, finished_at) WHERE state = 'done';

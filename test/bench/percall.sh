#!/usr/bin/env bash
# asyncrr per-call cost (issue #7): server time and WAL of each call of one
# round trip (submit, claim, complete, take), asyncrr next to the
# hand-written baseline, one session doing all four in turn with pgbench
# (-M prepared, per-statement latencies), synchronous_commit = off so that
# the figures are CPU and WAL rather than fsync waits.
#
#     sudo bash test/bench/percall.sh [--transactions N]   (default 5000)
#
# Run test/bench/run.sh first (it installs packages and the extension).
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/../.."
. test/lib.sh
n=5000
[ "${1:-}" = --transactions ] && n=$2

make_workdir percall
cleanup_on_exit percall
cluster_start 5470 "synchronous_commit = off" "shared_buffers = 256MB"
sql() { as_pg "$PGBIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$work" -p "$port" -U postgres -d postgres "$@"; }
sql <<'EOF'
CREATE EXTENSION asyncrr;
SELECT asyncrr.create_queue('rr', default_timeout => '1 hour');
EOF
sql <test/bench/baseline.sql
cat >"$work/asyncrr.pgb" <<'EOF'
SELECT asyncrr.submit('rr', '{"r": 1}') AS id \gset
SELECT count(*) FROM asyncrr.claim('rr', 1);
SELECT asyncrr.complete(:id::uuid, '{"ok": true}');
SELECT count(*) FROM asyncrr.take_replies(100);
EOF
cat >"$work/baseline.pgb" <<'EOF'
WITH i AS (INSERT INTO rrbench_rr (queue, inbox, payload) VALUES ('rr', 'rrbench_inbox', '{"r": 1}') RETURNING id) SELECT id, pg_notify('rrbench_work_rr', '') FROM i \gset
UPDATE rrbench_rr SET state = 'claimed', claimed_at = now() WHERE id IN (SELECT id FROM rrbench_rr WHERE queue = 'rr' AND state = 'pending' ORDER BY prio DESC, id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id;
WITH u AS (UPDATE rrbench_rr SET state = 'done', reply = '{"ok": true}', finished_at = clock_timestamp() WHERE id = :id AND state = 'claimed' RETURNING id, inbox) SELECT pg_notify(inbox, id::text) FROM u;
DELETE FROM rrbench_rr WHERE id IN (SELECT id FROM rrbench_rr WHERE inbox = 'rrbench_inbox' AND state = 'done' ORDER BY finished_at LIMIT 100 FOR UPDATE SKIP LOCKED) RETURNING id;
EOF
chown postgres: "$work"/*.pgb
for mode in asyncrr baseline; do
	l0=$(sql -c "SELECT pg_current_wal_insert_lsn()")
	as_pg "$PGBIN/pgbench" -n -h "$work" -p "$port" -U postgres -M prepared -r -c 1 -t "$n" \
		-f "$work/$mode.pgb" postgres >"$work/$mode.out"
	l1=$(sql -c "SELECT pg_current_wal_insert_lsn()")
	wal=$(sql -c "SELECT round(pg_wal_lsn_diff('$l1', '$l0') / $n)")
	echo "== $mode: $n round trips in one session, synchronous_commit off"
	grep -E '^tps|latency average' "$work/$mode.out"
	echo "   per-statement latency (ms):"
	sed -n '/statement latencies/,$p' "$work/$mode.out" | tail -n +2 | cut -c1-110
	echo "   WAL per round trip: $wal bytes"
done

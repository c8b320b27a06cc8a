#!/usr/bin/env bash
# asyncrr order per key (issue 16): with 1,000,000 pending requests over
# 10,000 ordering keys, do claims take the same time (within 20 %) as in a
# queue without keys?  A benchmark: exits 0 whatever the figures, 1 if
# something is broken (a claim out of key order, two claimed requests of
# one key, a claim that found nothing, an error in the server log).
#
# Run as root on Debian 12, after make install (or test/run_tests.sh):
#     sudo bash test/bench/ordering_keys.sh [--pending N] [--keys K]
#         [--claims M] [--workers W] [--rounds R] [--latency-samples L]
#         [--layouts "interleaved runs"] [--fill-batch B] [--seed S] [--smoke]
#
# Starts a throwaway cluster (fsync and synchronous_commit on, asyncrr and
# pg_stat_statements preloaded, shared_buffers 256MB, max_wal_size 4GB,
# checkpoint_timeout 30min; loopback port from 5530 and a socket in its
# directory), and runs test/bench/ordering_keys.py against it, which:
#   - fills queue bench_plain with N pending requests without key, and
#     bench_keyed with N over K keys (N/K each) interleaved as traffic
#     mixes them: N/K rounds of one request of every key, in a new random
#     order each round (submit() with ordering_key, two connections); with
#     --layouts "... runs" also bench_runs, each key's N/K requests one
#     after the other (submit_many() per key): the claim's worst case.
#     B requests a transaction (default 10; see ordering_keys.py);
#   - R rounds, the queues in alternating order, each measurement after
#     VACUUM ANALYZE + CHECKPOINT: L claims alone on one connection
#     (claim p50, client side), then M claims by W pgbench clients each
#     looping claim(queue, 1) + complete(id, '{}') (claims/s; the claim's
#     mean server time from pg_stat_statements), index entries read per
#     claim; checks after each measurement of a keyed queue;
#   - EXPLAIN (ANALYZE, BUFFERS) of the claim's inner SELECT per queue.
# Defaults: N 1,000,000, K 10,000, M 20,000, W 4, R 3, L 2,000, layouts
# interleaved (~5 min on 2 cores, 3 of them filling).  --smoke
# (test/run_tests.sh): N 20,000, K 200, M 2,000, R 1, L 200, layouts
# "interleaved runs", ~15 s.  Prints the table, last line "ordering keys:
# keyed X claims/s vs plain Y claims/s (ratio Z); ..."; writes
# test/bench/out/ordering_keys.json and ordering_keys_plans.txt.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/../.."
top=$(pwd)
. test/lib.sh
PY=/usr/bin/python3

flags=()
smoke=()
while [ $# -gt 0 ]; do
	case "$1" in
	--smoke) smoke=(--pending 20000 --keys 200 --claims 2000 --rounds 1 --latency-samples 200
		--layouts "interleaved runs"); shift ;;
	--pending|--keys|--claims|--workers|--rounds|--latency-samples|--layouts|--seed|--fill-batch)
		[ $# -ge 2 ] || { sed -n '2,35p' "$0" >&2; exit 2; }
		flags+=("$1" "$2"); shift 2 ;;
	*) sed -n '2,35p' "$0" >&2; exit 2 ;;
	esac
done

require_root test/bench/ordering_keys.sh
require_installed_and_psycopg "$PY"
[ -x "$PGBIN/pgbench" ] || { echo "no $PGBIN/pgbench (package postgresql-15)" >&2; exit 2; }

# a throwaway cluster, removed on exit whatever happens
make_workdir ordering-keys
cleanup_on_exit ordering_keys
cluster_start 5530 "shared_preload_libraries = 'asyncrr, pg_stat_statements'" \
	"shared_buffers = 256MB" "max_wal_size = 4GB" "checkpoint_timeout = 30min"
say "cluster in $work (port $port), nproc $(nproc), load $(cut -d' ' -f1-3 /proc/loadavg)"
as_pg "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$work" -p "$port" -U postgres -d postgres \
	-c "CREATE EXTENSION asyncrr" -c "CREATE EXTENSION pg_stat_statements"

mkdir -p "$top/test/bench/out"
# (smoke sizes first: explicit options given with --smoke override them)
PGHOST="$work" PGPORT="$port" PGDATABASE=postgres PGUSER=postgres PYTHONDONTWRITEBYTECODE=1 \
	"$PY" "$top/test/bench/ordering_keys.py" "${smoke[@]}" "${flags[@]}" --workdir "$work" \
	--pgbench "$PGBIN/pgbench" --json "$top/test/bench/out/ordering_keys.json" \
	--plans "$top/test/bench/out/ordering_keys_plans.txt"

# VACUUM cancels autovacuum on the table
if grep -E 'ERROR|FATAL|PANIC|terminated by signal' "$work/server.log" \
	| grep -v -e 'canceling autovacuum task'; then
	echo "errors in the server log (above)" >&2
	exit 1
fi

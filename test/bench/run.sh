#!/usr/bin/env bash
# asyncrr round-trip benchmark (issue #7, part 1), with a hand-written
# baseline measured in the same run, on the same cluster.
#
# Run as root on a fresh Debian 12 machine:
#     sudo bash test/bench/run.sh [--quick] [--duration S] [--warmup S]
#         [--batch N] [--backlog "100000 1000000"] [--idle-window S] [--no-off]
#         [--no-waits] [--perf] [--configs "R,K,W ..."] [--only "roundtrip batch backlog idle waits"]
#
# Installs what is missing (apt), builds and installs the extension, builds
# test/bench/rrbench.c, then for synchronous_commit = on and then off starts
# a throwaway cluster (fsync on, asyncrr preloaded), and runs, each test in
# both modes (asyncrr, baseline) one after the other:
#   round trip   (R,K,W) = (1,1,1), (4,4,2), (16,4,4)
#   batch        --batch requests (default 100,000), submitted 1,000 per
#                transaction, claimed 100 at a time, completed per claim
#   backlog      (4,4,2) with 0 and each --backlog count of live requests
#                waiting in another queue (pending), then in the same queue
#                (claimed under a 1-day lease; see load_backlog)
#                (synchronous_commit = on only)
#   idle         the asyncrr worker's CPU over --idle-window seconds with
#                100,000 live requests an hour or more from their deadlines
#                (synchronous_commit = on only)
#   waits        (4,4,2) again with pg_stat_activity sampled every 10 ms
# Prints a table (asyncrr, baseline, ratio) and writes
# test/bench/out/rrbench.json.  --quick: everything tiny, under ~30 s (the
# CI smoke).  Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/../.."
top=$(pwd)
. test/lib.sh
say() { printf '\n=== %s\n' "$*" >&2; }	# stdout is the table
PY=/usr/bin/python3

duration=15
warmup=3
batch=100000
backlog="100000 1000000"
idle_window=60
idle_requests=100000
syncs="on off"
waits=1
perf=0
configs="1,1,1 4,4,2 16,4,4"
quick=0
settle_s=2
only=" roundtrip batch backlog idle waits "
run_part() { [[ "$only" == *" $1 "* ]]; }
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) quick=1; duration=0.5; warmup=0.2; batch=1000; backlog="1000"; idle_window=1;
		idle_requests=1000; syncs="on"; settle_s=0; shift ;;
	--duration) duration=$2; shift 2 ;;
	--warmup) warmup=$2; shift 2 ;;
	--batch) batch=$2; shift 2 ;;
	--backlog) backlog=$2; shift 2 ;;
	--idle-window) idle_window=$2; shift 2 ;;
	--idle-requests) idle_requests=$2; shift 2 ;;
	--no-off) syncs="on"; shift ;;
	--no-waits) waits=0; shift ;;
	--perf) perf=1; shift ;;
	--configs) configs=$2; shift 2 ;;
	--only) only=" $2 "; shift 2 ;;
	*) sed -n '2,27p' "$0" >&2; exit 2 ;;
	esac
done

require_root test/bench/run.sh

# 1. packages (progress goes to stderr: stdout is the table)
packages=(postgresql-15 postgresql-server-dev-15 libpq-dev make gcc python3)
[ "$perf" = 1 ] && packages+=(linux-perf)
install_packages "${packages[@]}" >&2

# 2. build and install the extension, build the driver
build_and_install >&2
mkdir -p "$top/test/bench/out"
gcc -O2 -Wall -pthread -I"$("$PG_CONFIG" --includedir)" -o "$top/test/bench/out/rrbench" \
	"$top/test/bench/rrbench.c" -L"$("$PG_CONFIG" --libdir)" -lpq
rev=$(git -C "$top" describe --always --dirty 2>/dev/null || echo '?')

# 3. throwaway cluster, removed on exit whatever happens
make_workdir rrbench
mkdir -p "$top/test/bench/out"
results="$top/test/bench/out/rrbench.jsonl"	# one line per measurement, as it comes
: >"$results"
log_errors=0
cleanup() {
	local rc=$?
	[ -n "${perf_pid:-}" ] && kill "$perf_pid" 2>/dev/null || true
	(exit "$rc")
	cleanup_now >&2
}
cleanup_on_exit rrbench
trap cleanup EXIT

sql() { as_pg "$PGBIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$work" -p "$port" -U postgres -d postgres "$@"; }

start_cluster() {
	local sync=$1
	cluster_start 5490 "synchronous_commit = $sync" "shared_buffers = 256MB" \
		"max_wal_size = 4GB" "max_connections = 100"
	say "cluster: fsync on, synchronous_commit $sync, in $work (port $port)" >&2
	sql <<'EOF'
CREATE EXTENSION asyncrr;
SELECT asyncrr.create_queue('rr', default_timeout => '1 hour');
SELECT asyncrr.create_queue('rr_other', default_timeout => '1 hour');
EOF
	sql <test/bench/baseline.sql
	export PGHOST="$work" PGPORT="$port" PGDATABASE=postgres PGUSER=postgres
}

# back to empty, checkpointed tables between measurements.  No ANALYZE of
# the empty tables: statistics saying "0 rows" make the planner cache
# sequential-scan plans that get slower as the tables fill during the run
# (never-analyzed tables are estimated at 10 pages at least instead).
reset_state() {
	sql -c "TRUNCATE asyncrr.request, asyncrr.dead_letter, asyncrr.inbox, rrbench_rr" -c "CHECKPOINT"
}
settle() { sql -c "VACUUM ANALYZE asyncrr.request, asyncrr.inbox, rrbench_rr" -c "CHECKPOINT"; }

bench() {	# bench MODE LABEL rrbench-args...
	local mode=$1 lbl=$2
	shift 2
	local out
	out=$("$top/test/bench/out/rrbench" --mode "$mode" --label "$lbl" "$@")
	echo "{\"sync\": \"$sync\", ${out#\{}" >>"$results"
	echo "  $mode $lbl: $out" >&2
}

# N live requests in queue Q, deadlines a day away, that no bench worker
# takes: in rr_other pending (nobody claims that queue); in rr, the bench's
# own queue, claimed under a 1-day lease by a worker that went quiet (a
# pending one there would be claimed and drained by the bench workers).
load_backlog() {
	local n=$1 q=$2 chunk=100000 done=0 k st=pending
	[ "$q" = rr ] && st=claimed
	while [ "$done" -lt "$n" ]; do
		k=$(( n - done < chunk ? n - done : chunk ))
		sql -c "SELECT asyncrr.open_inbox('rrbench_backlog')" \
			-c "SELECT count(asyncrr.submit('$q', '{\"b\": 1}', '1 day', priority => -1)) FROM generate_series(1, $k)" >/dev/null
		if [ "$st" = claimed ]; then
			sql -c "SELECT count(*) FROM asyncrr.claim('$q', $k, lease => '1 day', worker => 'rrbench stalled')" >/dev/null
		fi
		sql -c "INSERT INTO rrbench_rr (queue, inbox, payload, prio, state) SELECT '$q', 'rrbench_backlog', '{\"b\": 1}', -1, '$st' FROM generate_series(1, $k)"
		done=$((done + k))
	done
}

worker_cpu() {	# utime+stime ticks of the asyncrr background worker
	local pid
	pid=$(sql -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'asyncrr worker'")
	[ -n "$pid" ] || { echo "no asyncrr worker" >&2; exit 1; }
	awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$pid/stat"
}

for sync in $syncs; do
	start_cluster "$sync"

	run_part roundtrip && say "round trip (synchronous_commit $sync)"
	run_part roundtrip && for cfg in $configs; do
		IFS=, read -r R K W <<<"$cfg"
		for mode in asyncrr baseline; do
			reset_state
			bench "$mode" "rt" --test roundtrip -R "$R" -K "$K" -W "$W" \
				--duration "$duration" --warmup "$warmup"
		done
	done

	run_part batch && say "batch (synchronous_commit $sync)"
	run_part batch && for mode in asyncrr baseline; do
		reset_state
		bench "$mode" "batch" --test batch -W 2 --claim-n 100 --submit-batch 1000 \
			--total "$batch" --duration 600
	done

	if [ "$sync" = on ] && run_part backlog; then
		say "backlog: (4,4,2) with requests waiting elsewhere"
		for where in other same; do
			[ "$where" = other ] && q=rr_other || q=rr
			reset_state
			for mode in asyncrr baseline; do
				bench "$mode" "backlog $where 0" --test roundtrip -R 4 -K 4 -W 2 \
					--duration "$duration" --warmup "$warmup"
			done
			have=0
			for n in $backlog; do
				say "loading $((n - have)) more waiting requests into $q"
				load_backlog $((n - have)) "$q"
				have=$n
				settle
				for mode in asyncrr baseline; do
					bench "$mode" "backlog $where $n" --test roundtrip -R 4 -K 4 -W 2 \
						--duration "$duration" --warmup "$warmup"
				done
			done
		done
	fi
	if [ "$sync" = on ] && run_part idle; then
		say "idle: asyncrr worker CPU over ${idle_window}s with $idle_requests live requests"
		reset_state
		load_backlog "$idle_requests" rr_other
		settle
		sleep "$settle_s"
		c0=$(worker_cpu); t0=$(date +%s.%N)
		sleep "$idle_window"
		c1=$(worker_cpu); t1=$(date +%s.%N)
		live=$(sql -c "SELECT count(*) FROM asyncrr.request WHERE state IN ('pending', 'claimed')")
		tck=$(getconf CLK_TCK)
		echo "{\"sync\": \"$sync\", \"test\": \"idle\", \"label\": \"idle\", \"mode\": \"asyncrr\", \"live\": $live, \"window_s\": $(awk "BEGIN{print $t1-$t0}"), \"cpu_s\": $(awk "BEGIN{print ($c1-$c0)/$tck}"), \"cpu_pct\": $(awk "BEGIN{print 100*($c1-$c0)/$tck/($t1-$t0)}")}" >>"$results"
		tail -n1 "$results" >&2
	fi

	if [ "$waits" = 1 ] && run_part waits; then
		say "where the time goes: (4,4,2), pg_stat_activity every 10 ms"
		for mode in asyncrr baseline; do
			reset_state
			if [ "$perf" = 1 ] && [ "$sync" = on ]; then
				perf record -a -g -F 499 -o "$work/perf-$mode.data" -- sleep "$(awk "BEGIN{print $warmup+$duration}")" \
					>/dev/null 2>&1 &
				perf_pid=$!
			fi
			bench "$mode" "waits" --test roundtrip -R 4 -K 4 -W 2 --duration "$duration" \
				--warmup "$warmup" --sample-waits
			if [ -n "${perf_pid:-}" ]; then
				wait "$perf_pid" || true
				perf_pid=
				perf report -i "$work/perf-$mode.data" --no-children --sort comm,dso,sym -g none --stdio 2>/dev/null \
					| grep -v '^#' | grep -v '^$' | grep '%' | head -40 >"$top/test/bench/out/perf-$mode.txt" || true
				echo "  perf profile: test/bench/out/perf-$mode.txt" >&2
			fi
		done
	fi

	# (the driver cancels its idle workers' claim(wait) at the end of each
	# run, and may close a connection whose claim is still answering;
	# TRUNCATE cancels autovacuum)
	if grep -E 'ERROR|FATAL|PANIC|terminated by signal' "$work/server.log" \
		| grep -v -e 'canceling statement due to user request' -e 'canceling autovacuum task' \
			-e 'connection to client lost' \
			-e 'asyncrr worker.* administrator command'; then
		echo "errors in the server log (above)" >&2
		log_errors=1
	fi
	cluster_stop
done

say "results (rev $rev, nproc $(nproc), load $(cut -d' ' -f1-3 /proc/loadavg))"
"$PY" "$top/test/bench/report.py" "$results" "$top/test/bench/out/rrbench.json" "$rev"
[ "$log_errors" = 0 ] || exit 1

#!/usr/bin/env bash
# Runs every asyncrr test suite on throwaway clusters.
#
# Run as root on a fresh Debian 12 machine: installs what is missing
# (apt), builds and installs the extension, then, as the postgres OS user
# (initdb refuses root), runs on a copy of the tree:
#   - pg_regress   sql/*.sql      (temp instance, test/regress.conf)
#   - isolation    specs/*.spec   (temp instance, test/isolation.conf) less
#                  the Makefile's ISOLATION_NODISPATCH, which run next
#   - isolation    ISOLATION_NODISPATCH, asyncrr.notify_dispatch = off (make
#                  installcheck-nodispatch; test/nodispatch.conf appended)
#   - TAP          test/t/*.pl    (PostgreSQL::Test::Cluster clusters)
#   - bench smoke  test/bench/run.sh --quick (its own cluster, ~30 s), and
#                  test/bench/ordering_keys.sh --smoke (claims with ordering
#                  keys against claims without, ~15 s)
#   - failover     test/failover/run.sh --failovers 1 (pg_auto_failover)
#   - soak         test/soak/run.sh --minutes 2 (sizes must level off)
#   - clients      clients/python/run_tests.sh (pytest, psycopg 3) and
#                  clients/node/run_tests.sh (node --test, pg from npm),
#                  each on clusters of its own
#   - metrics      test/metrics/run.sh: postgres_exporter scraping asyncrr.metrics
#   - package      test/package/run.sh: the Debian package built, installed,
#                  its regression suite run, removed
# Exits non-zero if anything failed; the last line is "N passed, M failed".
set -u
cd "$(dirname "$(readlink -f "$0")")/.."
top=$(pwd)
. test/lib.sh

require_root test/run_tests.sh
install_packages make gcc postgresql-15 postgresql-server-dev-15 libpq-dev libipc-run-perl \
	pgbouncer python3-psycopg || {
	echo "could not install the packages the tests need"; echo "0 passed, 1 failed"; exit 1; }
# Debian's postgresql-common starts a cluster on 5432 on install; our
# suites use their own ports and sockets and do not need it.

make -s PG_CONFIG="$PG_CONFIG" clean >/dev/null
build_and_install || { echo "build failed"; echo "0 passed, 1 failed"; exit 1; }

work=$(mktemp -d /tmp/asyncrr-tests.XXXXXX)
cp -a "$top"/. "$work/tree"
chown -R postgres: "$work"
trap 'bash "$top/test/small_fs.sh" umount >/dev/null 2>&1; rm -rf "$work"' EXIT
as_pg() { (cd "$work/tree" && runuser -u postgres -- "$@"); }

passed=0
failed=0
suite() {
	local name=$1; shift
	say "$name"
	local log="$work/$name.log"
	as_pg "$@" >"$log" 2>&1
	local rc=$?
	cat "$log"
	local ok bad
	case $name in
	tap)
		ok=$(grep -cE '^test/t/[^ ]+\.pl \.+ ok' "$log")
		bad=$(grep -cE '^test/t/[^ ]+\.pl \.+ ' "$log")
		bad=$((bad - ok)) ;;
	*)
		ok=$(grep -cE '\.\.\. ok' "$log")
		bad=$(grep -cE '\.\.\. FAILED|\.\.\. failed' "$log") ;;
	esac
	if [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ]; then bad=1; fi
	# keep what pg_regress produced, where a developer looks for it
	rm -rf "${top:?}/log"
	[ -d "$work/tree/tmp_check/log" ] && cp -a "$work/tree/tmp_check/log" "$top/log"
	for r in results output_iso output_iso_nodispatch; do
		[ -d "$work/tree/$r" ] && { rm -rf "${top:?}/$r"; cp -a "$work/tree/$r" "$top/$r"; }
	done
	for d in "$work"/tree/regression.diffs "$work"/tree/output_iso/regression.diffs \
		"$work"/tree/output_iso_nodispatch/regression.diffs; do
		[ -s "$d" ] && { echo "--- $d"; head -c 20000 "$d"; rm -f "$d"; }
	done
	[ "$name" = tap ] && [ "$rc" -ne 0 ] && for l in "$work"/tree/tmp_check/log/regress_log_*; do
		[ -f "$l" ] && { echo "--- $l (tail)"; tail -n 60 "$l"; }
	done
	passed=$((passed + ok))
	failed=$((failed + bad))
}

suite regress   make -s PG_CONFIG="$PG_CONFIG" installcheck ISOLATION= TAP_TESTS=
suite isolation make -s PG_CONFIG="$PG_CONFIG" installcheck REGRESS= TAP_TESTS=
suite isolation-nodispatch make -s PG_CONFIG="$PG_CONFIG" installcheck-nodispatch
if ls "$work"/tree/test/t/*.pl >/dev/null 2>&1; then
	# a small filesystem for 014_faults.pl to fill (root mounts it)
	bash "$top/test/small_fs.sh" mount >/dev/null ||
		echo "no small filesystem: 014_faults.pl skips its disk-full part"
	suite tap   make -s PG_CONFIG="$PG_CONFIG" installcheck REGRESS= ISOLATION= PROVE_FLAGS="-I test/perl"
fi

# Scripts that pass or fail as a whole (exit 0 or not), on throwaway
# clusters of their own; each counts as one test.
whole_suite() {
	local name=$1; shift
	say "$name"
	if "$@" >"$work/$name.log" 2>&1; then
		tail -n 25 "$work/$name.log"
		passed=$((passed + 1))
	else
		tail -n 80 "$work/$name.log"
		echo "$name FAILED"
		failed=$((failed + 1))
	fi
}

# The benchmark, as a smoke test: a few seconds of each measurement, both
# modes; it passes if every measurement ran and the server logged no error
# (figures are not judged: doc/performance.md).
whole_suite "bench smoke" bash "$top/test/bench/run.sh" --quick
# and the ordering keys benchmark, small: claims of queues with and without
# keys (interleaved, and in runs per key); it fails if a claim broke the
# order of a key (checked after each measurement) or the server logged an
# error.
whole_suite "bench smoke (ordering keys)" bash "$top/test/bench/ordering_keys.sh" --smoke

# One automatic failover under load: pg_auto_failover (a monitor, a
# primary, a synchronous secondary) promotes the secondary after the
# primary is killed; nothing acknowledged may be lost, and the asyncrr
# worker acts only after promotion.
whole_suite "failover" bash "$top/test/failover/run.sh" --failovers 1

# The soak, 2 minutes: a steady mixed load; fails if any asyncrr table or
# index keeps growing, the rate does not hold, or a request is lost.
whole_suite "soak" bash "$top/test/soak/run.sh" --minutes 2

# Scripts that end with their own "N passed, M failed", counted here test
# by test: the client libraries, each against throwaway clusters of its
# own (each installs what it needs: apt; npm for the Node client), and the
# Debian package (built, installed, tested, removed; the files installed
# above are put back).
counted_suite() {
	local name=$1 script=$2 line ok=0 bad=1
	say "$name"
	bash "$script" >"$work/$name.log" 2>&1
	local rc=$?
	tail -n 60 "$work/$name.log"
	line=$(tail -n 1 "$work/$name.log")
	if [[ $line =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
		ok=${BASH_REMATCH[1]}
		bad=${BASH_REMATCH[2]}
	fi
	if [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ]; then bad=1; fi
	passed=$((passed + ok))
	failed=$((failed + bad))
}
counted_suite "python client" "$top/clients/python/run_tests.sh"
counted_suite "node client" "$top/clients/node/run_tests.sh"
counted_suite "metrics exporter" "$top/test/metrics/run.sh"
counted_suite "debian package" "$top/test/package/run.sh"

echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

#!/usr/bin/env bash
# The soak (test/soak/soak.py) on a throwaway cluster: a steady mixed load,
# and a check that asyncrr's tables and indexes level off.
#
#   sudo bash test/soak/run.sh --minutes 30     # the full run: a sample a minute
#   sudo bash test/soak/run.sh --minutes 2      # CI: a sample every 10 s
#   sudo bash test/soak/run.sh --minutes 10 --rate 100
#
# Run as root on Debian 12 with the extension already installed (this
# builds nothing; test/run_tests.sh or `make install` installs it) and
# python3-psycopg.  Starts a cluster as the postgres OS user on a free
# loopback port (from 5880), asyncrr preloaded with its worker on database
# postgres, fsync and synchronous_commit on, autovacuum on, every
# autovacuum logged; runs the soak; removes the cluster.  The report goes
# to stdout and to test/soak/out/soak-<M>min-<stamp>.{txt,json} (with the
# autovacuum log lines in ...-autovacuum.log).
#
# Settings, by length of run:
#
#                            full (> 5 min)   short (<= 5 min, CI)
#   sample interval          60 s             10 s
#   asyncrr.retention        1min             20s
#   dead_letter_retention    1min             20s
#   autovacuum_naptime       1min (default)   10s
#   asyncrr.orphan_grace     5s               5s
#
# The short run compresses time: a request row lives about retention + its
# timeout, a dead letter dead_letter_retention, so with 20 s the tables
# reach their steady population after about 25 s, and retention has
# removed some five generations of rows by the end of a 2-minute run.
# autovacuum_naptime: the full run keeps the default.  In 2 minutes the
# default would give each table at most two autovacuums, the first still
# in the warm-up third, and no table could level off within the run,
# leaking or not.  asyncrr.request passes its own vacuum threshold (50 +
# 2 % of its rows, set in asyncrr--0.3.sql) within a second at this rate,
# so the naptime alone sets how often it is vacuumed: at 10 s, about 12
# times, 4 in each third the verdict compares.  Between two vacuums it
# gathers 4 dead row versions per request (claim, complete, take, delete),
# 8,000 at 200/s in 10 s, twice its ~4,000 live rows; the full run (1 min
# naptime, 1 min retention) gathers four times its live rows, so the short
# run is no harsher on space reuse than production-like settings, only
# faster.
#
# Arguments: --minutes M (default 30), and any of soak.py run's --rate R,
# --interval S, --seed N, --hold-snapshot (the negative control: a session
# holds one snapshot through the run, nothing can be vacuumed, and the
# verdict must say FAIL), --setup-sql STATEMENT (run after CREATE EXTENSION,
# to try a fix such as a storage parameter of asyncrr.request; repeatable).
# Exits with the soak's status: 0 pass, 1 a size
# kept growing or the throughput did not hold, 2 the run could not be made
# (the server log is then kept and its directory named).
set -u
cd "$(dirname "$(readlink -f "$0")")/../.." || exit 2
. test/lib.sh

require_root test/soak/run.sh
PYTHON=/usr/bin/python3
minutes=30
extra=()
while [ $# -gt 0 ]; do
	case "$1" in
	--minutes) minutes=$2; shift 2 ;;
	--rate | --interval | --seed) extra+=("$1" "$2"); shift 2 ;;
	--hold-snapshot) extra+=("$1"); shift ;;
	--setup-sql) extra+=("$1" "$2"); shift 2 ;;
	*) echo "unknown argument $1 (--minutes M, --rate R, --interval S, --seed N," \
		"--hold-snapshot, --setup-sql STATEMENT)" >&2
		exit 2 ;;
	esac
done
if ! [[ "$minutes" =~ ^[0-9]+([.][0-9]+)?$ ]]; then
	echo "--minutes wants a number" >&2
	exit 2
fi
require_installed_and_psycopg "$PYTHON"

if awk "BEGIN { exit !($minutes <= 5) }"; then
	interval=10 retention=20s naptime=10s label=short
else
	interval=60 retention=1min naptime="" label=full
fi

make_workdir soak
finish() {
	local rc=$?
	cluster_stop
	if [ "$rc" -ge 2 ] && [ -d "$work" ]; then
		keep=$(mktemp -d /tmp/asyncrr-soak-kept.XXXXXX)
		cp -a "$work/server.log" "$keep/" 2>/dev/null
		echo "kept the server log in $keep"
	fi
	rm -rf "$work"
	exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT TERM

mkdir -p "$work/lib" "$work/out"
cp test/soak/soak.py "$work/soak.py"
cp -r clients/python/asyncrr "$work/lib/asyncrr"
chown -R postgres: "$work"
settings=("autovacuum = on" "log_autovacuum_min_duration = 0"
	"asyncrr.retention = '$retention'" "asyncrr.dead_letter_retention = '$retention'"
	"asyncrr.orphan_grace = '5s'" "max_connections = 100"
	"log_line_prefix = '%m [%p] %b %a '")
[ -n "$naptime" ] && settings+=("autovacuum_naptime = '$naptime'")
cluster_start 5880 "${settings[@]}" || { echo "the cluster did not start"; exit 2; }
echo "cluster on 127.0.0.1:$port, data in $work/data ($label run: retention $retention," \
	"autovacuum_naptime ${naptime:-1min})"

as_pg "$PYTHON" "$work/soak.py" run \
	--dsn "host=127.0.0.1 port=$port dbname=postgres user=postgres" \
	--minutes "$minutes" --interval "$interval" --out "$work/out" \
	--pglog "$work/server.log" --label "$label" "${extra[@]}"
rc=$?
mkdir -p test/soak/out
cp "$work"/out/* test/soak/out/ 2>/dev/null
exit "$rc"

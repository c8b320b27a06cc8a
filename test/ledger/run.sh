#!/usr/bin/env bash
# The crash ledger (test/ledger/ledger.py) on a throwaway cluster.
#
#   sudo bash test/ledger/run.sh               # 5 kills, about a minute
#   sudo bash test/ledger/run.sh --kills 50    # the full run: minutes
#   sudo bash test/ledger/run.sh --kills 20 --seed 7 --gap 1:3
#
# Run as root on Debian 12 with the extension already installed (this
# builds nothing; test/run_tests.sh or `make install` installs it) and
# python3-psycopg.  Starts a cluster as the postgres OS user on a free
# loopback port (from 5860), asyncrr preloaded with its worker on database
# postgres, asyncrr.precision 100ms, fsync and synchronous_commit on; runs
# the ledger, which kills and restarts that cluster itself; removes it.
# Arguments go to `ledger.py run` (--kills, --gap MIN:MAX, --requesters,
# --workers, --seed, --margin).  Exits with the ledger's status: 0 no
# failure, 1 failures (the server log and the ledgers are then kept, and
# their directory named), 2 the run could not be made.
set -u
cd "$(dirname "$(readlink -f "$0")")/../.."
. test/lib.sh

require_root test/ledger/run.sh
PYTHON=/usr/bin/python3
require_installed_and_psycopg "$PYTHON"

make_workdir ledger
keep=""
finish() {
	local rc=$?
	cluster_stop
	if [ "$rc" -ne 0 ] && [ -d "$work" ]; then
		keep=$(mktemp -d /tmp/asyncrr-ledger-kept.XXXXXX)
		cp -a "$work/server.log" "$work/run" "$keep/" 2>/dev/null
		echo "kept the server log, the ledgers and the report in $keep"
	fi
	rm -rf "$work"
	exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT TERM

cp test/ledger/ledger.py "$work/ledger.py"
mkdir "$work/run"
chown -R postgres: "$work"
cluster_start 5860 "asyncrr.precision = '100ms'" "asyncrr.orphan_grace = '1s'" \
	"restart_after_crash = on" "log_line_prefix = '%m [%p] %b %a '" "max_connections = 200" ||
	{ echo "the cluster did not start"; exit 2; }
echo "cluster on 127.0.0.1:$port, data in $work/data"

as_pg "$PYTHON" "$work/ledger.py" run \
	--dsn "host=127.0.0.1 port=$port dbname=postgres user=postgres" \
	--pgdata "$work/data" --pglog "$work/server.log" --bindir "$PGBIN" \
	--workdir "$work/run" "$@"

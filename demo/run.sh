#!/usr/bin/env bash
# asyncrr demo: three instances of one service, two workers (one Python,
# one Node) on one queue, on a throwaway PostgreSQL 15 cluster; a worker
# killed mid-job, an instance restarted mid-flight, a request timed out
# into a dead letter and redriven.  About 20 s once built.
#
# Run as root on a fresh Debian 12 machine:   sudo bash demo/run.sh
#
# It installs what is missing (apt; node and npm too, and the Node
# client's npm dependencies), builds and installs the extension, starts a
# cluster in a temporary directory as the postgres OS user (initdb refuses
# root) with asyncrr in shared_preload_libraries, creates queue "demo" and
# runs demo/demo.py, which plays the scenes with demo/service.py,
# demo/worker.py and demo/worker.js, shows the views with psql and checks
# that each instance received exactly its own replies.  Then it stops the
# cluster and removes the directory.  Exits 0 on success, non-zero on any
# failure.  Re-runnable.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
. test/lib.sh

require_root demo/run.sh

# 1. packages (node and npm only if missing: a node from elsewhere will do)
missing_node=()
command -v node >/dev/null || missing_node+=(nodejs)
command -v npm >/dev/null || missing_node+=(npm)
install_packages postgresql-15 postgresql-server-dev-15 libpq-dev make gcc python3-psycopg \
	"${missing_node[@]}"
if [ ! -d clients/node/node_modules ]; then
	say "npm install (the Node client's dependency, pg)"
	(cd clients/node && npm install --no-audit --no-fund --loglevel=error)
fi

# 2. build and install
build_and_install

# 3. a throwaway cluster, removed on exit whatever happens
make_workdir demo
cleanup_on_exit demo

cluster_start 5497
say "a throwaway cluster in $work (port $port)"

export PGHOST="$work" PGPORT="$port" PGDATABASE=postgres PGUSER=postgres
psql() { as_pg env PGHOST="$PGHOST" PGPORT="$PGPORT" PGDATABASE="$PGDATABASE" PGUSER="$PGUSER" \
	"$PGBIN/psql" -X -v ON_ERROR_STOP=1 -q "$@"; }

setup="CREATE EXTENSION asyncrr;
SELECT asyncrr.create_queue('demo', default_timeout => '30 seconds', lease => '2 seconds');"
say "the extension, and a queue whose claims last 2 s unless extended"
echo "$setup"
echo "$setup" | psql >/dev/null

# 4. the demo, run as postgres from a copy of demo/ and of the two clients
# (the tree may not be readable by postgres), in the same layout.
mkdir -p "$work/demo" "$work/clients/python" "$work/clients/node" "$work/state"
cp demo/demo.py demo/service.py demo/worker.py demo/worker.js "$work/demo/"
cp -r clients/python/asyncrr "$work/clients/python/"
cp -r clients/node/lib clients/node/node_modules clients/node/package.json "$work/clients/node/"
chown -R postgres: "$work/demo" "$work/clients" "$work/state"
as_pg env PGHOST="$PGHOST" PGPORT="$PGPORT" PGDATABASE="$PGDATABASE" PGUSER="$PGUSER" \
	DEMO_STATE="$work/state" DEMO_PSQL="$PGBIN/psql" DEMO_NODE="$(command -v node)" \
	PYTHONIOENCODING=utf-8 PYTHONDONTWRITEBYTECODE=1 /usr/bin/python3 "$work/demo/demo.py"

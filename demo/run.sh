#!/usr/bin/env bash
# asyncrr demo: two requesters and one worker exchange requests and replies
# on a throwaway PostgreSQL 15 cluster.
#
# Run as root on a fresh Debian 12 machine:   sudo bash demo/run.sh
#
# It installs what is missing (apt), builds and installs the extension,
# starts a cluster in a temporary directory as the postgres OS user (initdb
# refuses root) with asyncrr in shared_preload_libraries, runs demo/demo.py,
# shows the views, then stops the cluster and removes the directory.
# Exits 0 on success, non-zero on any failure.  Re-runnable.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
top=$(pwd)
. test/lib.sh

require_root demo/run.sh

# 1. packages, 2. build and install
install_packages postgresql-15 postgresql-server-dev-15 libpq-dev make gcc python3-psycopg
build_and_install

# 3. a throwaway cluster, removed on exit whatever happens
make_workdir demo
cleanup_on_exit demo

cluster_start 5497
say "a throwaway cluster in $work (port $port)"

export PGHOST="$work" PGPORT="$port" PGDATABASE=postgres PGUSER=postgres
psql() { as_pg env PGHOST="$PGHOST" PGPORT="$PGPORT" PGDATABASE="$PGDATABASE" PGUSER="$PGUSER" \
	"$PGBIN/psql" -X -v ON_ERROR_STOP=1 -q "$@"; }

say "CREATE EXTENSION asyncrr; a queue"
psql -e <<'SQL'
CREATE EXTENSION asyncrr;
SELECT asyncrr.create_queue('demo.text', default_timeout => '10 seconds', lease => '5 seconds');
SQL
psql -c "SELECT backend_type, datname FROM pg_stat_activity WHERE backend_type = 'asyncrr worker'"

# 4. two requesters and a worker (demo/demo.py, run as postgres from a copy)
say "two requesters (A, B) and one worker"
cp "$top/demo/demo.py" "$work/demo.py"
chown postgres: "$work/demo.py"
as_pg env PGHOST="$PGHOST" PGPORT="$PGPORT" PGDATABASE="$PGDATABASE" PGUSER="$PGUSER" \
	PYTHONIOENCODING=utf-8 PYTHONDONTWRITEBYTECODE=1 /usr/bin/python3 "$work/demo.py"

# 5. the views.  The background worker releases the inboxes of the ended
# sessions on its next housekeeping pass (about once a second).
for _ in $(seq 50); do
	held=$(psql -At -c "SELECT count(*) FROM asyncrr.inboxes WHERE holder_pid IS NOT NULL")
	[ "$held" = 0 ] && break
	sleep 0.1
done

say "the views"
psql -e <<'SQL'
SELECT * FROM asyncrr.queue_stats;
SELECT name, channel, durable, holder_pid, untaken_replies, live_requests FROM asyncrr.inboxes ORDER BY name;
\x on
SELECT * FROM asyncrr.dead_letters;
\x off
SQL

say "the API"
psql -c "\\pset format wrapped" -c "\\pset columns 160" -c "\\df asyncrr.[a-z]*"

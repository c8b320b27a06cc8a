#!/usr/bin/env bash
# asyncrr wake-up latency of waiting without LISTEN (issue #5): complete ->
# asyncrr.wait() returning, submit -> asyncrr.claim(wait) returning, CALL
# asyncrr.call round trips and calls/s, and the first again with
# LISTEN/NOTIFY as a baseline.
#
# Run as root on a fresh Debian 12 machine:
#     sudo bash test/bench/wait_latency.sh [--quick] [--n ROUND_TRIPS]
#         [--call-seconds S] [--callers "1 4"]
#
# Installs what is missing (apt), builds and installs the extension, starts
# a throwaway cluster (fsync and synchronous_commit on, asyncrr preloaded,
# all other settings default), runs test/bench/wait_latency.py against it
# over the Unix socket, removes it.  Prints a table (median, p90, p99, max
# in ms) and writes test/bench/out/wait_latency.json.  --n is the number of
# round trips per measurement (default 1000); --quick (CI smoke, under
# 20 s) is --n 50 and 1.5 s per CALL concurrency level.  Exits non-zero on
# any failure.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/../.."
top=$(pwd)
. test/lib.sh
PY=/usr/bin/python3

flags=()
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) flags+=(--quick); shift ;;
	--n|--call-seconds|--callers) flags+=("$1" "$2"); shift 2 ;;
	*) echo "usage: $0 [--quick] [--n ROUND_TRIPS] [--call-seconds S] [--callers \"1 4\"]" >&2; exit 2 ;;
	esac
done

require_root test/bench/wait_latency.sh
install_packages postgresql-15 postgresql-server-dev-15 python3-psycopg make gcc
build_and_install

# a throwaway cluster, removed on exit whatever happens
make_workdir bench
cleanup_on_exit wait_latency

cluster_start 5498
say "cluster in $work (port $port)"
as_pg "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$work" -p "$port" -U postgres -d postgres \
	-c "CREATE EXTENSION asyncrr"

say "measuring (nproc $(nproc), load $(cut -d' ' -f1-3 /proc/loadavg))"
PGHOST="$work" PGPORT="$port" PGDATABASE=postgres PGUSER=postgres PYTHONDONTWRITEBYTECODE=1 \
	"$PY" "$top/test/bench/wait_latency.py" "${flags[@]}" --json "$top/test/bench/out/wait_latency.json"
if grep -E 'ERROR|FATAL|PANIC|terminated by signal' "$work/server.log"; then
	echo "errors in the server log (above)" >&2
	exit 1
fi

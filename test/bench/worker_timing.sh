#!/usr/bin/env bash
# asyncrr worker timing (issue #4): delay from a request's deadline to its
# timed_out notification, and the worker's CPU use while idle with many live
# requests far from their deadlines.
#
# Run as root on a fresh Debian 12 machine:
#     sudo bash test/bench/worker_timing.sh [--window SECONDS] [--precisions "1s 100ms"]
#         [-- extra worker_timing.py measure flags, e.g. --requests 50 --seed 1]
#
# Installs what is missing (apt), builds and installs the extension, then
# for each asyncrr.precision (default: "1s 100ms") starts a throwaway
# cluster (fsync and synchronous_commit on, asyncrr preloaded, all other
# asyncrr settings default), runs test/bench/worker_timing.py against it and
# removes it.  Prints one table for all settings and writes
# test/bench/out/worker_timing.json.  --window is the idle CPU window
# (default 60 s; a smoke run may use 5).  Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/../.."
top=$(pwd)
. test/lib.sh
PY=/usr/bin/python3

window=60
precisions="1s 100ms"
extra=()
while [ $# -gt 0 ]; do
	case "$1" in
	--window) window=$2; shift 2 ;;
	--precisions) precisions=$2; shift 2 ;;
	--) shift; extra=("$@"); break ;;
	*) echo "usage: $0 [--window SECONDS] [--precisions \"1s 100ms\"] [-- measure flags]" >&2; exit 2 ;;
	esac
done

require_root test/bench/worker_timing.sh
install_packages postgresql-15 postgresql-server-dev-15 python3-psycopg make gcc
build_and_install

# throwaway clusters, removed on exit whatever happens
make_workdir bench
cleanup_on_exit worker_timing

parts=()
for precision in $precisions; do
	conf=()
	[ "$precision" = 1s ] || conf=("asyncrr.precision = '$precision'")
	cluster_start 5498 "${conf[@]}"
	say "cluster with asyncrr.precision = $precision in $work (port $port)"
	as_pg "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$work" -p "$port" -U postgres -d postgres \
		-c "CREATE EXTENSION asyncrr"

	part="$work/part-$precision.json"
	PGHOST="$work" PGPORT="$port" PGDATABASE=postgres PGUSER=postgres PYTHONDONTWRITEBYTECODE=1 \
		"$PY" "$top/test/bench/worker_timing.py" measure --label "precision $precision" \
		--expect-precision "$precision" --part "$part" --window "$window" "${extra[@]}"
	parts+=("$part")
	if grep -E 'ERROR|FATAL|PANIC|terminated by signal' "$work/server.log"; then
		echo "errors in the server log (above)" >&2
		exit 1
	fi
	cluster_stop
done

say "all settings (nproc $(nproc), load $(cut -d' ' -f1-3 /proc/loadavg))"
"$PY" "$top/test/bench/worker_timing.py" report "${parts[@]}" --json "$top/test/bench/out/worker_timing.json"

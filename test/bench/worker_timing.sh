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
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
PGBIN=/usr/lib/postgresql/15/bin
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

say() { printf '\n=== %s\n' "$*"; }

if [ "$(id -u)" -ne 0 ]; then
	echo "run as root: sudo bash test/bench/worker_timing.sh" >&2
	exit 1
fi

# 1. packages
packages=(postgresql-15 postgresql-server-dev-15 python3-psycopg make gcc)
missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	say "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# 2. build and install
say "building and installing asyncrr"
make -s PG_CONFIG="$PG_CONFIG" >/dev/null
make -s PG_CONFIG="$PG_CONFIG" install >/dev/null
echo "installed $("$PG_CONFIG" --pkglibdir)/asyncrr.so ($(git -C "$top" describe --always --dirty 2>/dev/null || echo '?'))"

# 3. throwaway clusters, removed on exit whatever happens
work=$(mktemp -d /tmp/asyncrr-bench.XXXXXX)
chown postgres: "$work"
as_pg() { (cd "$work" && runuser -u postgres -- "$@"); }
stop_cluster() {
	if [ -f "$work/data/postmaster.pid" ]; then
		as_pg "$PGBIN/pg_ctl" -D "$work/data" -m fast -w stop >/dev/null 2>&1 || true
	fi
}
cleanup() {
	local rc=$?
	stop_cluster
	if [ "$rc" -ne 0 ] && [ -f "$work/server.log" ]; then
		echo "--- server log (tail)"; tail -n 30 "$work/server.log"
	fi
	rm -rf "$work"
	[ "$rc" -eq 0 ] && echo "worker_timing finished: clusters stopped, $work removed" \
		|| echo "worker_timing FAILED (exit $rc)" >&2
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

parts=()
for precision in $precisions; do
	port=5498
	while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
		port=$((port + 1))
	done
	say "cluster with asyncrr.precision = $precision in $work (port $port)"
	rm -rf "$work/data" "$work/server.log"
	as_pg "$PGBIN/initdb" -D "$work/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
	cat >>"$work/data/postgresql.conf" <<EOF

# asyncrr worker timing
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$work'
fsync = on
synchronous_commit = on
shared_preload_libraries = 'asyncrr'
asyncrr.database = 'postgres'
EOF
	[ "$precision" = 1s ] || echo "asyncrr.precision = '$precision'" >>"$work/data/postgresql.conf"
	as_pg "$PGBIN/pg_ctl" -D "$work/data" -l "$work/server.log" -w start >/dev/null
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
	stop_cluster
done

say "all settings (nproc $(nproc), load $(cut -d' ' -f1-3 /proc/loadavg))"
"$PY" "$top/test/bench/worker_timing.py" report "${parts[@]}" --json "$top/test/bench/out/worker_timing.json"

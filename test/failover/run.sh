#!/usr/bin/env bash
# Automatic failover with pg_auto_failover under an asyncrr load.
#
#   bash test/failover/run.sh [--failovers N] [--keep]     (as root)
#
# On this machine, on loopback ports, as the postgres OS user: a
# pg_auto_failover monitor, a primary and a secondary with synchronous
# replication (asyncrr preloaded, its worker in database "app").
# test/failover/load.py runs requesters (durable inboxes) and workers
# through the multi-host connection string
#   host=127.0.0.1,127.0.0.1 port=P1,P2 target_session_attrs=read-write
# reconnecting on failure.  N times (default 3): wait until the formation is
# primary + secondary, kill the primary's whole process group (pg_autoctl,
# postmaster) and the postmaster's children with SIGKILL, let the monitor
# promote the secondary, find the new primary through the multi-host
# string (inet_server_port() and a write), then restart the old primary's
# pg_autoctl: it rejoins as secondary (pg_rewind).  Then load.py checks,
# on the final primary, that every acknowledged submit has exactly one
# terminal outcome, every acknowledged reply is there, and that no asyncrr
# worker ran on a standby, and prints a report.  Exits non-zero on any loss
# or violation.  --failovers 1 takes about a minute.
#
# Needs the extension installed (make install); installs
# postgresql-15-auto-failover and python3-psycopg with apt if missing.
# The work directory is removed on success, kept on failure or with --keep.
set -u
cd "$(dirname "$(readlink -f "$0")")/../.."
top=$(pwd)
. test/lib.sh

failovers=3
keep=0
while [ $# -gt 0 ]; do
	case $1 in
	--failovers) failovers=$2; shift 2 ;;
	--failovers=*) failovers=${1#*=}; shift ;;
	--keep) keep=1; shift ;;
	*) echo "usage: $0 [--failovers N] [--keep]" >&2; exit 2 ;;
	esac
done
case $failovers in '' | *[!0-9]*) echo "--failovers: a number" >&2; exit 2 ;; esac

require_root test/failover/run.sh
install_packages postgresql-15 postgresql-15-auto-failover python3-psycopg || exit 1
if [ ! -f "$("$PG_CONFIG" --pkglibdir)/asyncrr.so" ]; then
	echo "asyncrr is not installed: make install first" >&2
	exit 1
fi
PYTHON=/usr/bin/python3
LOAD=$top/test/failover/load.py

start=$(date +%s.%N)
elapsed() { printf '%6.1fs' "$(echo "$(date +%s.%N) - $start" | bc)"; }
step() { printf '[%s] %s\n' "$(elapsed)" "$*"; }

make_workdir failover
mkdir -p "$work/run" "$work/pglog" "$work/load"
chmod 700 "$work/run"
chown -R postgres: "$work"

# pg_autoctl keeps its configuration and state under HOME / XDG_*: here.
pgenv=(env HOME="$work" XDG_CONFIG_HOME="$work/config" XDG_DATA_HOME="$work/share"
	XDG_RUNTIME_DIR="$work/run" PGHOST="$work" PATH="$PGBIN:/usr/bin:/bin"
	PG_CONFIG="$PG_CONFIG")
autoctl() { as_pg "${pgenv[@]}" pg_autoctl "$@"; }

# below the ephemeral range (32768-60999), where a client connection's own
# end may hold a port a node must bind again after a restart
pm_port=$(free_port 25400)
p1=$(free_port $((pm_port + 1)))
p2=$(free_port $((p1 + 1)))
declare -A port=([node1]=$p1 [node2]=$p2)
other() { [ "$1" = node1 ] && echo node2 || echo node1; }
monitor_uri="postgres://autoctl_node@127.0.0.1:$pm_port/pg_auto_failover?sslmode=disable"
DSN="host=127.0.0.1,127.0.0.1 port=$p1,$p2 dbname=app target_session_attrs=read-write"

# SQL on one node, or on the monitor
q() { as_pg "$PGBIN/psql" -h "$work" -p "$1" -d "$2" -U postgres -XAtq -v ON_ERROR_STOP=1 -c "$3"; }
mq() { q "$pm_port" pg_auto_failover "$1"; }

load_pid=
cleanup() {
	local rc=$?
	trap - EXIT
	[ -n "$load_pid" ] && kill "$load_pid" 2>/dev/null
	local n f pid i
	for n in node1 node2 monitor; do
		[ -f "$work/run/pg_autoctl$work/$n/pg_autoctl.pid" ] &&
			(cd "$work" && timeout 30 runuser -u postgres -- "${pgenv[@]}" pg_autoctl stop --pgdata "$work/$n" >/dev/null 2>&1)
	done
	for ((i = 0; i < 50; i++)); do
		alive=0
		for n in node1 node2 monitor; do
			[ -f "$work/$n/postmaster.pid" ] && kill -0 "$(head -1 "$work/$n/postmaster.pid")" 2>/dev/null && alive=1
		done
		[ "$alive" -eq 0 ] && break
		sleep 0.2
	done
	# whatever did not stop: pg_autoctl's process group, the postmaster
	# (only processes of the postgres user that we started)
	for n in node1 node2 monitor; do
		for f in "$work/run/pg_autoctl$work/$n/pg_autoctl.pid" "$work/$n/postmaster.pid"; do
			[ -f "$f" ] || continue
			pid=$(head -1 "$f" 2>/dev/null)
			case $(ps -o user=,comm= -p "$pid" 2>/dev/null) in
			"postgres pg_autoctl"* | "postgres postgres"*) kill -9 -- "-$pid" "$pid" 2>/dev/null ;;
			esac
		done
	done
	if [ "$rc" -ne 0 ] || [ "$keep" -eq 1 ]; then
		echo "work directory kept: $work (pg_autoctl logs: $work/*.autoctl.log, server logs: $work/pglog," \
			"client logs: $work/load)"
	else
		rm -rf "$work"
	fi
	[ "$rc" -eq 0 ] && echo "failover test finished: OK" || echo "failover test FAILED (exit $rc)" >&2
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() { echo "ERROR: $*" >&2; exit 1; }

# Runs pg_autoctl in a process group (and session) of its own.
run_node() {
	as_pg "${pgenv[@]}" setsid -f pg_autoctl run --pgdata "$work/$1" >>"$work/$1.autoctl.log" 2>&1 </dev/null
}

# A data directory made by initdb, with what must be set before
# pg_autoctl create: the socket here, small shared buffers (pg_autoctl's
# tuning asks for a quarter of the RAM), asyncrr preloaded.
init_pgdata() {
	as_pg "$PGBIN/initdb" -D "$work/$1" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >/dev/null || die "initdb $1"
	cat >>"$work/$1/postgresql.auto.conf" <<-EOF
		unix_socket_directories = '$work'
		shared_buffers = '64MB'
		max_connections = 50
		$2
	EOF
}

# Waits (at most $2 s) until the monitor shows one node primary and one
# secondary, reported and assigned.
wait_healthy() {
	local what=$1 limit=${2:-120} s i
	for ((i = 0; i < limit * 5; i++)); do
		s=$(mq "SELECT string_agg(reportedstate || '/' || goalstate, ' ' ORDER BY reportedstate)
		          FROM pgautofailover.node" 2>/dev/null)
		[ "$s" = "primary/primary secondary/secondary" ] && return 0
		sleep 0.2
	done
	die "$what: the formation did not become primary + secondary in ${limit}s (last: $s)"
}
primary_node() {
	mq "SELECT nodename FROM pgautofailover.node WHERE reportedstate = 'primary' AND goalstate = 'primary'"
}

# ------------------------------------------------------------------ setup
step "work directory $work; monitor on port $pm_port, nodes on $p1 and $p2"

init_pgdata monitor "shared_buffers = '32MB'"
autoctl create monitor --pgdata "$work/monitor" --pgport "$pm_port" --hostname 127.0.0.1 \
	--auth trust --no-ssl >"$work/monitor.autoctl.log" 2>&1 || die "pg_autoctl create monitor (see $work/monitor.autoctl.log)"
autoctl config set --pgdata "$work/monitor" postgresql.listen_addresses 127.0.0.1 >/dev/null
run_node monitor
for i in $(seq 1 100); do mq "SELECT 1" >/dev/null 2>&1 && break; sleep 0.2; done
# Failover in seconds rather than in about a minute after a hard kill.
mq "ALTER SYSTEM SET pgautofailover.health_check_period = 1000" &&
	mq "ALTER SYSTEM SET pgautofailover.health_check_timeout = 1000" &&
	mq "ALTER SYSTEM SET pgautofailover.health_check_max_retries = 1" &&
	mq "ALTER SYSTEM SET pgautofailover.health_check_retry_delay = 500" &&
	mq "ALTER SYSTEM SET pgautofailover.node_considered_unhealthy_timeout = 3000" &&
	mq "ALTER SYSTEM SET pgautofailover.primary_demote_timeout = 3000" &&
	mq "SELECT pg_reload_conf()" >/dev/null || die "monitor settings"
step "monitor running"

# The server logs of both nodes go to one directory outside the data
# directories (pg_rewind would copy the other node's over them), one file
# per postmaster start; each file says which port it serves.
init_pgdata node1 "shared_preload_libraries = 'asyncrr, pg_stat_statements'
asyncrr.database = 'app'
asyncrr.retention = '1d'
logging_collector = on
log_directory = '$work/pglog'
log_filename = 'postgresql-%Y%m%d_%H%M%S.log'
log_rotation_age = 0
log_rotation_size = 0
log_line_prefix = '%m [%p] '
checkpoint_timeout = '30s'"
node_opts=(--pghost "$work" --listen 127.0.0.1 --hostname 127.0.0.1 --dbname app
	--monitor "$monitor_uri" --auth trust --no-ssl)
autoctl create postgres --pgdata "$work/node1" --pgport "$p1" --name node1 "${node_opts[@]}" \
	>"$work/node1.autoctl.log" 2>&1 || die "pg_autoctl create postgres node1 (see $work/node1.autoctl.log)"
run_node node1
for i in $(seq 1 100); do
	[ "$(mq "SELECT reportedstate FROM pgautofailover.node WHERE nodename = 'node1'")" = single ] &&
		q "$p1" app "SELECT 1" >/dev/null 2>&1 && break
	sleep 0.2
done
q "$p1" app "
	CREATE EXTENSION asyncrr;
	SELECT asyncrr.create_queue('fo', default_timeout => '10 seconds', lease => '2 seconds', max_attempts => 3);
	CREATE ROLE fo_requester LOGIN IN ROLE asyncrr_requester;
	CREATE ROLE fo_worker LOGIN IN ROLE asyncrr_worker;
	SELECT asyncrr.grant_queue('fo', 'fo_requester', 'submit');
	SELECT asyncrr.grant_queue('fo', 'fo_worker', 'claim');" >/dev/null || die "creating the extension on node1"
step "node1 running (single), asyncrr created in database app"

# pg_basebackup asks for a spread checkpoint: with what CREATE DATABASE and
# CREATE EXTENSION left dirty, that takes about 20 s; flushed now, about 1 s.
q "$p1" app "CHECKPOINT" || die "checkpoint on node1"
mkdir -p "$work/node2" && chmod 700 "$work/node2" && chown postgres: "$work/node2"
autoctl create postgres --pgdata "$work/node2" --pgport "$p2" --name node2 "${node_opts[@]}" \
	>"$work/node2.autoctl.log" 2>&1 || die "pg_autoctl create postgres node2 (see $work/node2.autoctl.log)"
run_node node2
wait_healthy "setup"
[ "$(q "$p1" app "SHOW synchronous_standby_names")" != "" ] || die "no synchronous replication on node1"
step "node2 running (secondary); node1 has synchronous_standby_names = '$(q "$p1" app "SHOW synchronous_standby_names")'"

# ------------------------------------------------------------------ load
"$PYTHON" "$LOAD" load --dsn "$DSN" --nodes "$p1,$p2" --dir "$work/load" \
	>"$work/load/load.out" 2>&1 &
load_pid=$!
step "load started: 3 requesters, 2 workers, through \"$DSN\""

# Kills a node as a machine would die: pg_autoctl's process group (which
# holds the postmaster) and the postmaster's children, which are session
# leaders of their own (PostgreSQL's children call setsid()).
kill_node() {
	local pgdata=$work/$1 pm pgid kids apid
	pm=$(head -1 "$pgdata/postmaster.pid")
	apid=$(head -1 "$work/run/pg_autoctl$pgdata/pg_autoctl.pid")
	pgid=$(ps -o pgid= -p "$pm" | tr -d ' ')
	[ -n "$pgid" ] && [ "$pgid" = "$apid" ] && [ "$pgid" != "$(ps -o pgid= -p $$ | tr -d ' ')" ] ||
		die "the postmaster of $1 ($pm) is not in pg_autoctl's process group ($apid)"
	kids=$(ps -o pid= --ppid "$pm")
	kill -9 -- "-$pgid" "$pm" $kids
}

: >"$work/failovers.jsonl"
for ((n = 1; n <= failovers; n++)); do
	wait_healthy "before failover $n"
	sleep 4   # load on the healthy pair: requests in every state
	old=$(primary_node)
	[ -n "$old" ] || die "no primary before failover $n"
	new=$(other "$old")
	[ "$(q "${port[$new]}" app "SELECT pg_is_in_recovery()")" = t ] || die "$new is not in recovery"
	sync=$(q "${port[$old]}" app "SELECT current_setting('synchronous_standby_names') || ' ' || string_agg(sync_state, ',')
	                                FROM pg_stat_replication")
	case $sync in "ANY 1 "*" quorum" | *" sync") ;; *) die "no synchronous standby before failover $n: $sync" ;; esac
	kill_node "$old"
	kill_t=$(date +%s.%N)
	step "failover $n: killed $old (port ${port[$old]}), the primary"
	# the new primary: the first write through the multi-host string
	got=
	for ((i = 0; i < 600; i++)); do
		got=$(as_pg "$PGBIN/psql" "$DSN connect_timeout=1 user=postgres" -XAtq -v ON_ERROR_STOP=1 -c "
			CREATE TABLE IF NOT EXISTS fo_probe (at timestamptz, port int);
			INSERT INTO fo_probe VALUES (now(), inet_server_port()) RETURNING port" 2>/dev/null) && break
		sleep 0.1
	done
	write_t=$(date +%s.%N)
	[ "$got" = "${port[$new]}" ] || die "failover $n: no write on $new (port ${port[$new]}) within 60 s (got '$got')"
	step "failover $n: $new (port $got) took a write, $(echo "$write_t - $kill_t" | bc | xargs printf '%.1f') s after the kill"
	from=$(($(wc -l <"$work/$old.autoctl.log") + 1))
	run_node "$old"
	wait_healthy "rejoin after failover $n" 120
	rejoin_t=$(date +%s.%N)
	via=$(tail -n +"$from" "$work/$old.autoctl.log" | grep -o -m1 -E 'no rewind required|Done!|base backup completed' |
		sed -e 's/Done!/pg_rewind/' -e 's/no rewind required/pg_rewind: no rewind required/' -e 's/base backup completed/pg_basebackup/')
	step "failover $n: $old rejoined as secondary, $(echo "$rejoin_t - $kill_t" | bc | xargs printf '%.1f') s after the kill (${via:-?})"
	# pg_autoctl falls back to a new base backup when pg_rewind fails: why
	[ "$via" = pg_basebackup ] && tail -n +"$from" "$work/$old.autoctl.log" |
		grep -i -A6 -m1 -E 'pg_rewind: (error|fatal)' | cut -c1-200
	printf '{"n": %d, "old_port": %d, "new_port": %d, "kill": %s, "write": %s, "rejoin": %s, "rejoin_via": "%s"}\n' \
		"$n" "${port[$old]}" "${port[$new]}" "$kill_t" "$write_t" "$rejoin_t" "$via" >>"$work/failovers.jsonl"
	kill -0 "$load_pid" 2>/dev/null || die "the load stopped (see $work/load/load.out)"
done

sleep 2
touch "$work/load/stop"
step "stopping the load: finishing the live requests"
wait "$load_pid"
load_rc=$?
load_pid=
[ -s "$work/load/load.out" ] && cat "$work/load/load.out"
step "load finished (exit $load_rc); checking on the primary"

# ------------------------------------------------------------------ check
"$PYTHON" "$LOAD" check --dsn "$DSN" --dir "$work/load" --logs "$work/pglog" \
	--failovers "$work/failovers.jsonl"
check_rc=$?
as_pg "${pgenv[@]}" pg_autoctl show state --pgdata "$work/monitor" 2>/dev/null
step "done"
[ "$load_rc" -eq 0 ] && [ "$check_rc" -eq 0 ]

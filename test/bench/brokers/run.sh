#!/usr/bin/env bash
# Request-reply through real drivers, in one run (issue #15, item 1):
# asyncrr (its Node and Python client libraries) against a hand-written
# PostgreSQL baseline (node-postgres and psycopg 3), RabbitMQ (amqplib) and
# NATS (nats.js), each with ~100-byte payloads in the same two shapes:
#   A  one requester, one request at a time, one worker: p50/p90/p99
#   B  4 requester connections x 4 in flight, 2 workers: round trips/s and
#      latency under load
# for --duration seconds each (after a warm-up), in rounds (asyncrr,
# baseline, rabbit, nats, then again) so that noise hits all alike; the
# table shows the median of the --repeats rounds.
#
# Run as root on Debian 12:
#     bash test/bench/brokers/run.sh [--duration S] [--warmup S] [--repeats N]
#         [--quick] [--only "asyncrr baseline rabbit nats"] [--python | --no-python]
#
#   --quick      tiny (0.5 s per measurement, one round, no Python): a smoke
#                test for CI, under a minute
#   --no-python  without the Python (psycopg 3) drivers for asyncrr and the
#                baseline (test/bench/brokers/pybench.py); --python: with
#                them (the default but for --quick)
#
# Installs what is missing (apt: postgresql-15, nodejs, npm, rabbitmq-server,
# nats-server; npm ci here), builds and installs the extension only if it is
# not installed, stops the Debian services of RabbitMQ and NATS if they
# run, and starts its own servers on free loopback ports with their data in
# a temporary directory, removed at the end:
#   PostgreSQL 15: fsync on, synchronous_commit on, asyncrr preloaded
#     (asyncrr and the baseline table on one cluster);
#   RabbitMQ (as user rabbitmq, own epmd), as shipped (fsync on);
#   nats-server (as user nats), core only.
# Systems and variants: asyncrr call, asyncrr inbox, baseline table, rabbit
# durable, rabbit direct, nats core (systems.js says what each does).
# Results: test/bench/brokers/out/results.jsonl (one line per measurement)
# and out/brokers.json (medians); the table on stdout. Exits non-zero if
# any system failed to run.
set -euo pipefail
here=$(dirname "$(readlink -f "$0")")
cd "$here/../../.."
top=$(pwd)
. test/lib.sh
say() { printf '\n=== %s\n' "$*" >&2; }	# stdout is the table

duration='' warmup='' repeats='' python='' quick=0
only="asyncrr baseline rabbit nats"
while [ $# -gt 0 ]; do
	case "$1" in
	--duration) duration=$2; shift 2 ;;
	--warmup) warmup=$2; shift 2 ;;
	--repeats) repeats=$2; shift 2 ;;
	--quick) quick=1; shift ;;
	--only) only=$2; shift 2 ;;
	--python) python=1; shift ;;
	--no-python) python=0; shift ;;
	*) sed -n '2,39p' "$0" >&2; exit 2 ;;
	esac
done
if [ "$quick" = 1 ]; then	# what is given explicitly stays
	: "${duration:=0.5}" "${warmup:=0.3}" "${repeats:=1}" "${python:=0}"
else
	: "${duration:=10}" "${warmup:=2}" "${repeats:=3}" "${python:=1}"
fi
for s in $only; do
	case "$s" in asyncrr | baseline | rabbit | nats) ;; *) echo "unknown system $s" >&2; exit 2 ;; esac
done
want() { [[ " $only " == *" $1 "* ]]; }
pg_wanted() { want asyncrr || want baseline; }

require_root test/bench/brokers/run.sh
t_start=$(date +%s)

# 1. packages
packages=(postgresql-15)
# node and npm: Debian's, unless some node (with its npm) is there already
command -v node >/dev/null || packages+=(nodejs)
command -v npm >/dev/null || packages+=(npm)
want rabbit && packages+=(rabbitmq-server)
want nats && packages+=(nats-server)
[ "$python" = 1 ] && packages+=(python3 python3-psycopg)
install_packages "${packages[@]}" >&2
# The Debian packages may have started their services: stop them (not
# ours to measure). Looked up without their CLIs: `service rabbitmq-server
# status` runs rabbitmqctl, which starts an epmd on all interfaces.
stop_service() {	# stop_service NAME PIDFILE
	if [ -d /run/systemd/system ]; then
		if systemctl is-active --quiet "$1"; then
			say "stopping the $1 service"
			systemctl stop "$1" >&2 || true
		fi
	elif [ -n "$2" ] && [ -s "$2" ] && kill -0 "$(cat "$2")" 2>/dev/null && [ -x "/etc/init.d/$1" ]; then
		say "stopping the $1 service"
		service "$1" stop >&2 || true
	fi
}
want rabbit && stop_service rabbitmq-server /run/rabbitmq/pid
want nats && stop_service nats-server ''	# (a systemd unit only)
if pg_wanted && [ ! -f "$("$PG_CONFIG" --pkglibdir)/asyncrr.so" ]; then
	build_and_install >&2
fi
if [ ! -d "$here/node_modules" ] || [ "$here/package-lock.json" -nt "$here/node_modules/.package-lock.json" ]; then
	say "npm ci in test/bench/brokers"
	(cd "$here" && npm ci --no-audit --no-fund --loglevel=error) >&2
fi
export NODE_PATH="$here/node_modules"	# pg for clients/node, if its own node_modules is missing
export PYTHONDONTWRITEBYTECODE=1
rev=$(git -C "$top" describe --always --dirty 2>/dev/null || echo '?')

# 2. servers, in a temporary directory removed on exit whatever happens
make_workdir brokers
chmod 711 "$work"
out="$here/out"
mkdir -p "$out"
results="$out/results.jsonl"
: >"$results"
rabbit_pid='' epmd_pid='' nats_pid='' beam_pid=''
stop_servers() {
	if [ -n "$nats_pid" ]; then
		kill -TERM "$nats_pid" 2>/dev/null || true
		wait "$nats_pid" 2>/dev/null || true
		nats_pid=''
	fi
	if [ -n "$rabbit_pid" ]; then
		# the rabbitmq-server script stops the VM on TERM and waits for it
		kill -TERM "$rabbit_pid" 2>/dev/null || true
		local i
		for i in $(seq 1 100); do
			kill -0 "$rabbit_pid" 2>/dev/null || break
			sleep 0.2
		done
		if kill -0 "$rabbit_pid" 2>/dev/null; then
			[ -n "$beam_pid" ] && kill -KILL "$beam_pid" 2>/dev/null || true
			kill -KILL "$rabbit_pid" 2>/dev/null || true
		fi
		wait "$rabbit_pid" 2>/dev/null || true
		rabbit_pid=''
	fi
	if [ -n "$epmd_pid" ]; then
		kill -TERM "$epmd_pid" 2>/dev/null || true
		wait "$epmd_pid" 2>/dev/null || true
		epmd_pid=''
	fi
	cluster_stop
}
cleanup() {
	local rc=$?
	stop_servers >&2
	if [ "$rc" -ne 0 ]; then
		for f in "$work/server.log" "$work/rabbit/stdout" "$work/nats/nats.log"; do
			[ -s "$f" ] && { echo "--- $f (tail)"; tail -n 15 "$f"; } >&2
		done
	fi
	rm -rf "$work"
	if [ "$rc" -eq 0 ]; then
		echo "brokers finished: servers stopped, $work removed" >&2
	else
		echo "brokers FAILED (exit $rc)" >&2
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

failed_systems=()
declare -A down=()	# system -> why it could not start

start_rabbit() {	# in the background; rabbit_ready waits for it
	local d="$work/rabbit"
	mkdir -p "$d/mnesia" "$d/log" "$d/home"
	amqp_port=$(free_port 5780)
	local dist_port epmd_port
	dist_port=$(free_port 25780)
	epmd_port=$(free_port 4380)
	cat >"$d/rabbitmq.conf" <<-EOF
		listeners.tcp.default = 127.0.0.1:$amqp_port
		disk_free_limit.absolute = 50MB
		log.console = false
		log.file.level = warning
	EOF
	echo '[].' >"$d/enabled_plugins"
	: >"$d/rabbitmq-env.conf"
	chown -R rabbitmq: "$d"
	setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups \
		epmd -port "$epmd_port" -address 127.0.0.1 >"$d/epmd.log" 2>&1 &
	epmd_pid=$!
	(
		cd "$d"
		exec env -i PATH=/usr/sbin:/usr/bin:/bin HOME="$d/home" LANG=C.UTF-8 \
			ERL_EPMD_PORT="$epmd_port" ERL_EPMD_ADDRESS=127.0.0.1 \
			RABBITMQ_NODENAME="rrbrokers$$@localhost" RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
			RABBITMQ_NODE_PORT="$amqp_port" RABBITMQ_DIST_PORT="$dist_port" \
			RABBITMQ_CONFIG_FILE="$d/rabbitmq.conf" RABBITMQ_CONF_ENV_FILE="$d/rabbitmq-env.conf" \
			RABBITMQ_ENABLED_PLUGINS_FILE="$d/enabled_plugins" RABBITMQ_MNESIA_BASE="$d/mnesia" \
			RABBITMQ_LOG_BASE="$d/log" \
			RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS='-kernel inet_dist_use_interface {127,0,0,1}' \
			setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups /usr/lib/rabbitmq/bin/rabbitmq-server
	) >"$d/stdout" 2>&1 &
	rabbit_pid=$!
	amqp_url="amqp://guest:guest@127.0.0.1:$amqp_port"
}
descendant() {	# descendant PID NAME: the first process named NAME below PID
	local c
	for c in $(pgrep -P "$1" || true); do
		if [ "$(cat "/proc/$c/comm" 2>/dev/null)" = "$2" ]; then echo "$c"; return 0; fi
		descendant "$c" "$2" && return 0
	done
	return 1
}
rabbit_ready() {
	local i
	for i in $(seq 1 240); do	# up to 60 s
		if ! kill -0 "$rabbit_pid" 2>/dev/null; then
			down[rabbit]="rabbitmq-server exited while starting"
			rabbit_pid=''
			return 1
		fi
		if grep -q 'Starting broker.*completed' "$work/rabbit/stdout" 2>/dev/null &&
			(exec 3<>"/dev/tcp/127.0.0.1/$amqp_port") 2>/dev/null; then
			beam_pid=$(descendant "$rabbit_pid" beam.smp)
			echo "rabbitmq on 127.0.0.1:$amqp_port (beam pid ${beam_pid:-?})" >&2
			return 0
		fi
		sleep 0.25
	done
	down[rabbit]="rabbitmq-server not ready after 60 s"
	return 1
}

start_nats() {
	local d="$work/nats"
	mkdir -p "$d"
	chown nats: "$d"
	nats_port=$(free_port 4290)
	setpriv --reuid=nats --regid=nats --init-groups \
		nats-server -a 127.0.0.1 -p "$nats_port" -l "$d/nats.log" >"$d/stdout" 2>&1 &
	nats_pid=$!
	local i
	for i in $(seq 1 80); do
		(exec 3<>"/dev/tcp/127.0.0.1/$nats_port") 2>/dev/null && break
		kill -0 "$nats_pid" 2>/dev/null || { nats_pid=''; break; }
		sleep 0.25
	done
	if [ -z "$nats_pid" ] || ! (exec 3<>"/dev/tcp/127.0.0.1/$nats_port") 2>/dev/null; then
		down[nats]="nats-server did not start"
		return 1
	fi
	nats_url="nats://127.0.0.1:$nats_port"
	echo "nats on 127.0.0.1:$nats_port (pid $nats_pid)" >&2
}

start_pg() {
	cluster_start 5560 "shared_buffers = 256MB" "max_wal_size = 4GB" "checkpoint_timeout = 30min" \
		"max_connections = 100" >&2
	as_pg "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$work" -p "$port" -U postgres -d postgres <<-'EOF' >&2
		CREATE EXTENSION asyncrr;
		SELECT asyncrr.create_queue('rr', default_timeout => '1 hour');
	EOF
	pg_url="postgresql://postgres@127.0.0.1:$port/postgres"
	pg_pid=$(head -1 "$work/data/postmaster.pid")
	echo "postgresql on 127.0.0.1:$port (fsync on, synchronous_commit on; asyncrr $(as_pg "$PGBIN/psql" -X -A -t -h "$work" -p "$port" -U postgres -d postgres -c "SELECT extversion FROM pg_extension WHERE extname = 'asyncrr'"))" >&2
}
pg_pids() {	# the postmaster and its children now (later ones are inherited by perf)
	{ echo "$pg_pid"; pgrep -P "$pg_pid" || true; } | paste -sd, -
}

say "starting servers"
want rabbit && start_rabbit
if want nats; then start_nats || true; fi
if pg_wanted; then
	if ! start_pg; then
		want asyncrr && down[asyncrr]="postgresql did not start"
		want baseline && down[baseline]="postgresql did not start"
	fi
fi
if want rabbit; then rabbit_ready || true; fi

variants_of() {
	case "$1" in
	asyncrr) echo "inbox call" ;;
	baseline) echo "table" ;;
	rabbit) echo "durable direct" ;;
	nats) echo "core" ;;
	esac
}
py_variants_of() {
	case "$1" in
	asyncrr) echo "py-inbox py-call" ;;
	baseline) echo "py-table" ;;
	esac
}

measure() {	# measure SYSTEM VARIANT SHAPE ROUND
	local sys=$1 var=$2 shape=$3 round=$4 line rc pids='' cmd
	case "$sys" in
	asyncrr | baseline) pids=$(pg_pids) ;;
	rabbit) pids=$beam_pid ;;
	nats) pids=$nats_pid ;;
	esac
	if [[ "$var" == py-* ]]; then
		cmd=(/usr/bin/python3 "$here/pybench.py" --system "$sys" --variant "${var#py-}")
	else
		cmd=(node "$here/bench.js" --system "$sys" --variant "$var")
	fi
	cmd+=(--shape "$shape" --duration "$duration" --warmup "$warmup"
		--pg "${pg_url:-}" --amqp "${amqp_url:-}" --nats "${nats_url:-}" --label "round $round")
	[ -n "$pids" ] && cmd+=(--server-pids "$pids")	# fsyncs (perf, if there) and CPU time
	set +e
	line=$(timeout --kill-after=10 "$(awk "BEGIN{print int($duration + $warmup + 120)}")" "${cmd[@]}" 2>"$work/err.txt")
	rc=$?
	set -e
	if [ "$rc" -eq 0 ] && [ -n "$line" ]; then
		[[ "$var" == py-* ]] && line=${line/\"variant\": \"${var#py-}\"/\"variant\": \"$var\"}
		echo "$line" >>"$results"
		printf '  %-8s %-9s %s  %s\n' "$sys" "$var" "$shape" \
			"$(node -e 'const r=JSON.parse(process.argv[1]);console.log(`${r.rps}/s p50 ${r.p50_ms} p90 ${r.p90_ms} p99 ${r.p99_ms} ms (n=${r.count})`)' "$line")" >&2
	else
		echo "  $sys $var $shape: FAILED (exit $rc)" >&2
		sed 's/^/    /' "$work/err.txt" | tail -n 20 >&2
		printf '{"system": "%s", "variant": "%s", "shape": "%s", "label": "round %s", "failed": true, "exit": %d}\n' \
			"$sys" "$var" "$shape" "$round" "$rc" >>"$results"
		[[ " ${failed_systems[*]:-} " == *" $sys "* ]] || failed_systems+=("$sys")
	fi
}

for round in $(seq 1 "$repeats"); do
	say "round $round of $repeats (load $(cut -d' ' -f1-3 /proc/loadavg))"
	for sys in asyncrr baseline rabbit nats; do
		want "$sys" || continue
		vs=$(variants_of "$sys")
		[ "$python" = 1 ] && vs="$vs $(py_variants_of "$sys")"
		if [ -n "${down[$sys]:-}" ]; then
			echo "  $sys: not run: ${down[$sys]}" >&2
			for var in $vs; do
				for shape in A B; do
					printf '{"system": "%s", "variant": "%s", "shape": "%s", "label": "round %s", "failed": true, "reason": "%s"}\n' \
						"$sys" "$var" "$shape" "$round" "${down[$sys]}" >>"$results"
				done
			done
			[[ " ${failed_systems[*]:-} " == *" $sys "* ]] || failed_systems+=("$sys")
			continue
		fi
		for var in $vs; do
			for shape in A B; do
				measure "$sys" "$var" "$shape" "$round"
			done
		done
	done
done

# errors in the server logs (cancels of waits at a worker's stop are normal)
if pg_wanted && [ -f "$work/server.log" ] &&
	grep -E 'ERROR|FATAL|PANIC|terminated by signal' "$work/server.log" |
	grep -v -e 'canceling statement due to user request' -e 'connection to client lost' \
		-e 'canceling autovacuum task' -e 'asyncrr worker.* administrator command' >&2; then
	echo "errors in the PostgreSQL log (above)" >&2
	failed_systems+=("postgresql-log")
fi

stop_servers >&2
say "results (rev $rev, nproc $(nproc), load $(cut -d' ' -f1-3 /proc/loadavg), $(($(date +%s) - t_start)) s)"
node "$here/report.js" "$results" "$out/brokers.json" "$rev" "$duration" "$repeats"
if [ ${#failed_systems[@]} -gt 0 ]; then
	echo "FAILED: ${failed_systems[*]}" >&2
	exit 1
fi

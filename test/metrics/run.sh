#!/usr/bin/env bash
# asyncrr.metrics through Prometheus' postgres_exporter, end to end.
#
# Run as root on Debian 12 (no sudo needed):  bash test/metrics/run.sh
#
# Installs what is missing with apt (prometheus-postgres-exporter, curl,
# python3).  If that install is what brought the exporter, and systemd
# runs, the package's own service (which it enables and may start, on port
# 9187) is stopped and disabled again; an exporter installed before is
# left as it was.  Then, on a throwaway cluster started as the postgres OS
# user (test/lib.sh: asyncrr preloaded, its worker in database postgres):
#
#   1. state    queue "orders": requests completed, failed, cancelled,
#               timed out by the worker, dead-lettered, one claimed, three
#               pending; queue "idle" with a session waiting for work in
#               it (CALL asyncrr.wait_for_work), queue "slow" with one
#               waiting for its reply (CALL asyncrr.wait_for_reply); queue
#               "empty"
#   2. exporter our own prometheus-postgres-exporter process, as the postgres
#               OS user, on a free loopback port, with
#               --extend.query-path=contrib/prometheus/asyncrr_queries.yaml
#               and DATA_SOURCE_NAME for the login asyncrr_monitor
#               (asyncrr_admin and pg_monitor, no superuser)
#   3. scrape   /metrics with curl, between two readings of
#               SELECT * FROM asyncrr.metrics as asyncrr_monitor; for every
#               row of the view one series, asyncrr_queue_<measure>{queue}
#               or asyncrr_<measure>, with the row's help as HELP and TYPE
#               gauge, and no other asyncrr_* series; counts equal, ages
#               between the two readings; the counts are those of step 1
#   4. again    one more request completed: the next scrape shows it
#
# The exporter, the waiting sessions and the cluster are stopped, and the
# work directory removed, however the script ends.  Needs the extension
# installed (make install, or test/run_tests.sh).  About 10 seconds.
# Exits non-zero if anything failed; the last line is "N passed, M failed".
set -u
cd "$(dirname "$(readlink -f "$0")")/../.."
top=$(pwd)
. test/lib.sh

require_root test/metrics/run.sh

passed=0
failed=0
pass() { echo "PASS: $*"; passed=$((passed + 1)); }
fail() { echo "FAIL: $*"; failed=$((failed + 1)); }
finish() {
	if [ "$failed" -gt 0 ]; then
		[ -f "${work:-}/exporter.log" ] && { echo "--- exporter log (tail)"; tail -n 20 "$work/exporter.log"; }
		[ -f "${work:-}/server.log" ] && { echo "--- server log (tail)"; tail -n 20 "$work/server.log"; }
	fi
	echo
	echo "metrics test took ${SECONDS}s"
	echo "$passed passed, $failed failed"
	[ "$failed" -eq 0 ] && exit 0
	exit 1
}

EXPORTER=/usr/bin/prometheus-postgres-exporter
had_exporter=
dpkg-query -W -f='${Status}' prometheus-postgres-exporter 2>/dev/null | grep -q 'ok installed' &&
	had_exporter=1
if ! install_packages prometheus-postgres-exporter curl python3; then
	fail "apt-get install prometheus-postgres-exporter curl python3"
	finish
fi
if [ -z "$had_exporter" ] && [ -d /run/systemd/system ]; then
	# installed just now: its service is not ours to leave running
	systemctl disable --now prometheus-postgres-exporter >/dev/null 2>&1 || true
fi
echo "$("$EXPORTER" --version 2>&1 | head -n 1)"
if [ ! -f "$("$PG_CONFIG" --pkglibdir)/asyncrr.so" ]; then
	fail "asyncrr is not installed: make install first"
	finish
fi

make_workdir metrics
pids=()          # processes this script started (exporter, waiting psql)
cleanup() {
	local rc=$? p
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null
	done
	for p in "${pids[@]}"; do
		for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
		kill -9 "$p" 2>/dev/null
	done
	cluster_stop
	rm -rf "$work"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Starts "$@" as the postgres OS user in the background, its output in
# $work/$name.log; its PID (that of the command itself, not of runuser)
# is added to pids.
start_bg() {
	local name=$1; shift
	as_pg bash -c 'echo $$ >"$0"; exec "$@"' "$work/$name.pid" "$@" >"$work/$name.log" 2>&1 &
	for _ in $(seq 50); do [ -s "$work/$name.pid" ] && break; sleep 0.1; done
	pids+=("$(cat "$work/$name.pid")")
}

cluster_start 5480 "asyncrr.precision = '100ms'"
echo "cluster on port $port (socket in $work)"
psql_as() {    # psql_as ROLE SQL: tab-separated, unaligned, no header
	local role=$1; shift
	as_pg "$PGBIN/psql" -h "$work" -p "$port" -d postgres -U "$role" -XAtq -F $'\t' -v ON_ERROR_STOP=1 -c "$1"
}
q() { psql_as postgres "$1"; }

# --- 1. state -------------------------------------------------------------------
if q "CREATE EXTENSION asyncrr;
      CREATE ROLE asyncrr_monitor LOGIN;
      GRANT asyncrr_admin, pg_monitor TO asyncrr_monitor;
      SELECT asyncrr.create_queue('orders', default_timeout => '1 hour', lease => '1 hour', max_attempts => 1);
      SELECT asyncrr.create_queue('idle');
      SELECT asyncrr.create_queue('slow', default_timeout => '1 hour');
      SELECT asyncrr.create_queue('empty');" >/dev/null; then
	pass "extension, monitoring login and queues created"
else
	fail "creating the extension, the login and the queues"
	finish
fi

# In one session: each claim takes the one request just submitted.
cid() { printf '00000000-0000-0000-0000-%012d' "$1"; }
if q "SELECT asyncrr.open_inbox('test');
      SELECT asyncrr.submit('orders', '{}', correlation_id => '$(cid 1)');
      SELECT count(*) FROM asyncrr.claim('orders');
      SELECT asyncrr.complete('$(cid 1)', '{}', 1);
      SELECT asyncrr.submit('orders', '{}', correlation_id => '$(cid 2)');
      SELECT count(*) FROM asyncrr.claim('orders');
      SELECT asyncrr.complete('$(cid 2)', '{}', 1);
      SELECT asyncrr.submit('orders', '{}', correlation_id => '$(cid 3)');
      SELECT count(*) FROM asyncrr.claim('orders');
      SELECT asyncrr.fail('$(cid 3)', 'bad input', 1);
      SELECT asyncrr.submit('orders', '{}', correlation_id => '$(cid 4)');
      SELECT asyncrr.cancel('$(cid 4)');
      SELECT asyncrr.submit('orders', '{}', correlation_id => '$(cid 5)');
      SELECT count(*) FROM asyncrr.claim('orders');
      SELECT asyncrr.fail('$(cid 5)', 'again', 1, retry => true);
      SELECT asyncrr.submit('orders', '{}', correlation_id => '$(cid 6)');
      SELECT count(*) FROM asyncrr.claim('orders');
      SELECT asyncrr.submit('orders', '{}', correlation_id => '$(cid 7)');
      SELECT asyncrr.submit('orders', '{}', correlation_id => '$(cid 8)');
      SELECT asyncrr.submit('orders', '{}', correlation_id => '$(cid 9)');
      SELECT asyncrr.submit('orders', '{}', correlation_id => '$(cid 10)', timeout => '200 milliseconds');" \
	>/dev/null; then
	pass "requests submitted, claimed, completed, failed, cancelled"
else
	fail "making the requests"
	finish
fi
timed_out=
for _ in $(seq 100); do
	[ "$(q "SELECT state FROM asyncrr.status('$(cid 10)')")" = timed_out ] && { timed_out=1; break; }
	sleep 0.1
done
[ -n "$timed_out" ] && pass "the worker timed out request 10" || fail "request 10 was not timed out in 10 s"

# two sessions that sleep in asyncrr until this script stops them
start_bg wait-work "$PGBIN/psql" -h "$work" -p "$port" -d postgres -U postgres -Xq \
	-c "CALL asyncrr.wait_for_work('idle', '5 minutes')"
start_bg wait-reply "$PGBIN/psql" -h "$work" -p "$port" -d postgres -U postgres -Xq \
	-c "SELECT asyncrr.submit('slow', '{}', correlation_id => '$(cid 11)')" \
	-c "CALL asyncrr.wait_for_reply('$(cid 11)', '5 minutes')"
waiting=
for _ in $(seq 100); do
	[ "$(q "SELECT count(*) FROM asyncrr.waiters")" = 2 ] && { waiting=1; break; }
	sleep 0.1
done
[ -n "$waiting" ] && pass "two sessions wait (asyncrr.waiters)" || fail "the waiting sessions are not in asyncrr.waiters"

# --- 2. exporter ----------------------------------------------------------------
cp "$top/contrib/prometheus/asyncrr_queries.yaml" "$work/queries.yaml"
chown postgres: "$work/queries.yaml"
eport=$(free_port 9480)
start_bg exporter env DATA_SOURCE_NAME="postgresql://asyncrr_monitor@127.0.0.1:$port/postgres?sslmode=disable" \
	"$EXPORTER" --web.listen-address="127.0.0.1:$eport" --extend.query-path="$work/queries.yaml"
up=
for _ in $(seq 100); do
	curl -sf -o /dev/null "http://127.0.0.1:$eport/metrics" && { up=1; break; }
	sleep 0.1
done
if [ -n "$up" ]; then
	pass "exporter serving on 127.0.0.1:$eport"
else
	fail "the exporter did not serve /metrics in 10 s"
	finish
fi

# --- 3. scrape, between two readings of the view ----------------------------------
VIEW_SQL="SELECT coalesce(queue_name, ''), measure, value, help FROM asyncrr.metrics ORDER BY 1, 2"
read_and_scrape() {    # $1: a name for the files
	psql_as asyncrr_monitor "$VIEW_SQL" >"$work/$1.before" &&
		curl -sf "http://127.0.0.1:$eport/metrics" >"$work/$1.scrape" &&
		psql_as asyncrr_monitor "$VIEW_SQL" >"$work/$1.after"
}

# compare NAME EXPECTED...: one PASS or FAIL line per check; EXPECTED are
# queue/measure=value pairs the view must show
compare() {
	python3 - "$work/$1" "${@:2}" <<'PYEOF'
import math, re, sys

import os
base, expected = sys.argv[1], sys.argv[2:]
tag = os.path.basename(base)
TIMED = {"oldest_pending_age_seconds", "worker_last_pass_age_seconds", "worker_lag_seconds"}
# may change at any moment, the scrape shows a value between the readings
MOVING = {"waiters_for_reply", "waiters_for_work", "dispatcher_backlog"}

def view(path):
    rows = {}
    for line in open(path, encoding="utf-8"):
        queue, measure, value, help_ = line.rstrip("\n").split("\t")
        rows[(queue, measure)] = (float(value), help_)
    return rows

def unescape(s):
    return re.sub(r'\\(.)', lambda m: "\n" if m.group(1) == "n" else m.group(1), s)

def scrape(path):
    helps, types, samples = {}, {}, {}
    sample_re = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$')
    label_re = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
    for line in open(path, encoding="utf-8"):
        line = line.rstrip("\n")
        if line.startswith("# HELP "):
            name, _, text = line[7:].partition(" ")
            helps[name] = unescape(text)
        elif line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            types[name] = kind
        elif line and not line.startswith("#"):
            m = sample_re.match(line)
            if not m:
                continue
            labels = {k: unescape(v) for k, v in label_re.findall(m.group(2) or "")}
            samples.setdefault(m.group(1), []).append((labels, float(m.group(3))))
    return helps, types, samples

before, after = view(base + ".before"), view(base + ".after")
helps, types, samples = scrape(base + ".scrape")
ok = bad = 0
def check(cond, what):
    global ok, bad
    print(("PASS: " if cond else "FAIL: ") + what)
    if cond: ok += 1
    else: bad += 1

check(set(before) == set(after), f"{tag}: the view's rows are the same before and after the scrape")
errors = [v for l, v in samples.get("pg_exporter_user_queries_load_error", [])
          if l.get("filename", "").endswith("queries.yaml")]
check(errors == [0.0], f"{tag}: the exporter loaded asyncrr_queries.yaml (load error {errors})")
check(samples.get("pg_up", [({}, 0)])[0][1] == 1.0, f"{tag}: pg_up is 1")

# every row of the view: its series, HELP, TYPE and value
seen = set()
problems = []
for (queue, measure), (value, help_) in sorted(before.items()):
    name = f"asyncrr_queue_{measure}" if queue else f"asyncrr_{measure}"
    found = [v for labels, v in samples.get(name, []) if labels.get("queue", "") == queue]
    seen.add((name, queue))
    if len(found) != 1:
        problems.append(f"{name}{{queue={queue!r}}}: {len(found)} series")
        continue
    got = found[0]
    if helps.get(name) != help_:
        problems.append(f"{name}: HELP {helps.get(name)!r}, view {help_!r}")
    if types.get(name) != "gauge":
        problems.append(f"{name}: TYPE {types.get(name)}")
    if measure in TIMED:
        lo = min(value, after[(queue, measure)][0])
        hi = max(value, after[(queue, measure)][0])
        if measure == "oldest_pending_age_seconds":
            # grows with time: the scrape came between the two readings
            good = lo - 0.001 <= got <= hi + 0.001
        else:
            # restarts with each pass of the worker (every 100 ms to 1 s here)
            good = 0 <= got <= max(hi, 1.5)
        if not good:
            problems.append(f"{name}{{queue={queue!r}}}: scraped {got}, view {lo}..{hi}")
    elif measure in MOVING:
        lo = min(value, after[(queue, measure)][0])
        hi = max(value, after[(queue, measure)][0])
        if not lo <= got <= hi:
            problems.append(f"{name}: scraped {got}, view {lo}..{hi}")
    elif got != value or value != after[(queue, measure)][0]:
        problems.append(f"{name}{{queue={queue!r}}}: scraped {got}, view {value} then {after[(queue, measure)][0]}")
check(not problems, f"{tag}: {len(before)} rows of asyncrr.metrics, each scraped with its help and value"
      + ("".join("\n      " + p for p in problems)))

extra = sorted(f"{n}{{queue={l.get('queue', '')!r}}}" for n, series in samples.items()
               if n.startswith("asyncrr_") for l, _ in series if (n, l.get("queue", "")) not in seen)
check(not extra, f"{tag}: no asyncrr_* series without a row in the view {extra}")

for e in expected:
    key, _, want = e.partition("=")
    queue, _, measure = key.rpartition("/")
    have = before.get((queue, measure), (None,))[0]
    if want == ">0":
        good = have is not None and have > 0
    else:
        good = have == float(want)
    check(good, f"{tag}: asyncrr.metrics {queue or '(instance)'} {measure} = {have} (expected {want})")
print(f"COUNTS {ok} {bad}")
PYEOF
}

run_compare() {
	local out line
	out=$(compare "$@")
	while IFS= read -r line; do
		case $line in
		"PASS: "*) pass "${line#PASS: }" ;;
		"FAIL: "*) fail "${line#FAIL: }" ;;
		"COUNTS "*) ;;
		*) echo "$line" ;;
		esac
	done <<<"$out"
	grep -q '^COUNTS ' <<<"$out" || fail "$1: the comparison did not run"
}

if read_and_scrape first; then
	pass "scraped /metrics between two readings of asyncrr.metrics"
	grep '^asyncrr_' "$work/first.scrape" | sed 's/^/    /'
	run_compare first \
		orders/pending=3 orders/claimed=1 orders/completed=2 orders/failed=1 orders/cancelled=1 \
		orders/timed_out=1 orders/dead_lettered=1 orders/dead_letters=2 \
		'orders/oldest_pending_age_seconds=>0' \
		slow/pending=1 idle/pending=0 empty/pending=0 empty/oldest_pending_age_seconds=0 \
		/waiters_for_reply=1 /waiters_for_work=1 /dispatcher_backlog=0
else
	fail "reading the view or scraping"
fi

# --- 4. a change shows in the next scrape -----------------------------------------
if q "SELECT count(*) FROM asyncrr.claim('orders');
      SELECT asyncrr.complete('$(cid 7)', '{}', 1);" >/dev/null &&
	read_and_scrape second; then
	run_compare second orders/pending=2 orders/claimed=1 orders/completed=3
else
	fail "completing one more request, or scraping again"
fi

finish

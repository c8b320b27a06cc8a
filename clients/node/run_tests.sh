#!/usr/bin/env bash
# Runs the tests of the asyncrr Node client (clients/node/test/*.test.js)
# with node's built-in test runner. Each test file starts its own
# throwaway PostgreSQL 15 cluster with asyncrr preloaded (as the postgres
# OS user when run as root) and removes it afterwards.
#
# Run as root on Debian 12, with the extension built and installed
# (make install at the top of the tree, or bash test/run_tests.sh).
# Installs node and npm with apt if missing, and the npm dependencies
# (pg) if node_modules is missing. The last line is "N passed, M failed";
# the exit status is non-zero if anything failed.
set -u
cd "$(dirname "$(readlink -f "$0")")"

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
fail_setup() {
	echo "$*" >&2
	echo "0 passed, 1 failed"
	exit 1
}

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	echo "=== installing nodejs and npm"
	DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null ||
		fail_setup "could not install nodejs and npm"
fi
[ -x "$PGBIN/initdb" ] || fail_setup "PostgreSQL 15 is not installed ($PGBIN/initdb missing)"
pkglibdir=$("$PGBIN/pg_config" --pkglibdir 2>/dev/null || echo /usr/lib/postgresql/15/lib)
[ -f "$pkglibdir/asyncrr.so" ] ||
	fail_setup "asyncrr is not installed in $pkglibdir: run make install at the top of the tree first"

if [ ! -d node_modules ]; then
	echo "=== npm install"
	npm install --no-audit --no-fund --loglevel=error || fail_setup "npm install failed"
fi

# The clusters go in a directory of this run, removed at the end, with
# anything a killed test left running in it.
tmp=$(mktemp -d /tmp/asyncrr-node-tests.XXXXXX)
chmod 755 "$tmp"
cleanup() {
	local d
	for d in "$tmp"/asyncrr-node-*/data; do
		[ -f "$d/postmaster.pid" ] || continue
		if [ "$(id -u)" -eq 0 ]; then
			runuser -u postgres -- "$PGBIN/pg_ctl" -D "$d" -m immediate -w stop >/dev/null 2>&1
		else
			"$PGBIN/pg_ctl" -D "$d" -m immediate -w stop >/dev/null 2>&1
		fi
	done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# One test file at a time (each has its own cluster; the machine is small).
args=(--test)
node_version=$(node -p 'process.versions.node')
if node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=10)?0:1)'; then
	args+=(--test-concurrency=1)
fi
echo "=== node $node_version: node --test test/*.test.js"
ASYNCRR_NODE_TEST_TMP=$tmp timeout -k 5 170 node "${args[@]}" \
	--test-reporter=spec --test-reporter-destination=stdout \
	--test-reporter=tap --test-reporter-destination="$tmp/results.tap" \
	test/*.test.js
rc=$?

count() { grep -E "^# $1 [0-9]+" "$tmp/results.tap" 2>/dev/null | tail -n 1 | awk '{print $3}'; }
passed=$(count pass)
failed=$(count fail)
cancelled=$(count cancelled)
passed=${passed:-0}
failed=$((${failed:-0} + ${cancelled:-0}))
if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
	echo "the tests did not finish within 170 s" >&2
fi
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

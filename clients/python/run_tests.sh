#!/bin/bash
# Runs the Python client's tests: as root on Debian 12,
#
#   bash clients/python/run_tests.sh [pytest arguments]
#
# Installs python3-psycopg and python3-pytest with apt if they are missing,
# then runs pytest with Debian's python3 against a throwaway cluster that
# tests/conftest.py starts (as the postgres OS user) and removes.  The
# asyncrr extension must be built and installed already (make install, or
# bash test/run_tests.sh).  Ends with the line "N passed, M failed"; exits
# non-zero if anything failed.
set -u
cd "$(dirname "$0")" || exit 1
PY=/usr/bin/python3
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}

missing=()
for p in python3-psycopg python3-pytest; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "missing ${missing[*]}: run as root to install them" >&2
		echo "0 passed, 1 failed"
		exit 1
	fi
	echo "=== installing ${missing[*]}"
	if ! { DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; }; then
		echo "apt-get install ${missing[*]} failed" >&2
		echo "0 passed, 1 failed"
		exit 1
	fi
fi

if [ ! -f "$("$PG_CONFIG" --pkglibdir 2>/dev/null)/asyncrr.so" ]; then
	echo "asyncrr is not installed: build and install it first (make install, as README.md says)" >&2
	echo "0 passed, 1 failed"
	exit 1
fi

report=$(mktemp /tmp/asyncrr-python-report.XXXXXX.xml)
trap 'rm -f "$report"' EXIT
echo "=== pytest ($($PY -c 'import psycopg, pytest; print("psycopg", psycopg.__version__, "pytest", pytest.__version__)'))"
# Keep the tree clean, and the whole run well under 3 minutes.
PYTHONDONTWRITEBYTECODE=1 timeout -k 10 150 \
	"$PY" -m pytest -p no:cacheprovider -q -rfE --junitxml="$report" tests "$@"
rc=$?

counts=$("$PY" - "$report" <<'PYEOF'
import sys
import xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except Exception:
    print("")
    sys.exit()
suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
n = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
print(n["tests"] - n["failures"] - n["errors"] - n["skipped"], n["failures"] + n["errors"])
PYEOF
)
if [ -z "$counts" ]; then
	echo "pytest did not finish (exit $rc)" >&2
	echo "0 passed, 1 failed"
	exit 1
fi
set -- $counts
passed=$1 failed=$2
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
	echo "pytest exited with $rc" >&2
	failed=1
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

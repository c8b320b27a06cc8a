# test/lib.sh: what the demo, the test runner and the benchmarks share.
# Source it from a script run as root at the top of the tree:
#
#   . test/lib.sh
#   require_root demo/run.sh
#   install_packages postgresql-15 postgresql-server-dev-15 ...
#   build_and_install
#   make_workdir demo            # $work: a temp dir owned by postgres
#   cluster_start 5497 "asyncrr.precision = '100ms'"   # $port, socket in $work
#   ...; cluster_stop
#
# initdb and postgres refuse root, so clusters run as the postgres OS user.

PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
PGBIN=/usr/lib/postgresql/15/bin

say() { printf '\n=== %s\n' "$*"; }

require_root() {
	if [ "$(id -u)" -ne 0 ]; then
		echo "run as root: sudo bash $1" >&2
		exit 1
	fi
}

# Installs the Debian packages given that are missing.
install_packages() {
	local p missing=()
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	say "installing ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# What building the extension needs: PGXS, and the Kerberos headers that
# PostgreSQL's libpq/libpq-be.h includes (Debian builds it with GSSAPI).
BUILD_PACKAGES=(make gcc postgresql-15 postgresql-server-dev-15 libpq-dev libkrb5-dev)

# Builds and installs the extension from this tree.
build_and_install() {
	install_packages "${BUILD_PACKAGES[@]}" || return 1
	say "building and installing asyncrr"
	make -s PG_CONFIG="$PG_CONFIG" >/dev/null &&
		make -s PG_CONFIG="$PG_CONFIG" install >/dev/null &&
		echo "installed $("$PG_CONFIG" --pkglibdir)/asyncrr.so ($(git describe --always --dirty 2>/dev/null || echo '?'))"
}

# For the scripts that build nothing and drive the load in Python (the
# ledger, the soak): exits with 2 unless the extension is installed and
# python $1 has psycopg.
require_installed_and_psycopg() {
	if [ ! -f "$("$PG_CONFIG" --pkglibdir)/asyncrr.so" ] ||
		[ ! -f "$("$PG_CONFIG" --sharedir)/extension/asyncrr.control" ]; then
		echo "asyncrr is not installed: run make install (or test/run_tests.sh) first" >&2
		exit 2
	fi
	if ! "$1" -c 'import psycopg' 2>/dev/null; then
		echo "python3-psycopg is not installed (apt-get install python3-psycopg)" >&2
		exit 2
	fi
}

# A temporary directory owned by postgres, in $work.
make_workdir() {
	work=$(mktemp -d "/tmp/asyncrr-$1.XXXXXX")
	chown postgres: "$work"
}

as_pg() { (cd "$work" && runuser -u postgres -- "$@"); }

# The first free loopback port from $1 on.
free_port() {
	local p=$1
	while (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do
		p=$((p + 1))
	done
	echo "$p"
}

# A new cluster in $work/data on a free port from $1 ($port), listening on
# loopback and on a socket in $work, fsync and synchronous_commit on,
# asyncrr preloaded with its worker on database postgres; the remaining
# arguments are extra postgresql.conf lines.  Log: $work/server.log.
cluster_start() {
	port=$(free_port "$1")
	shift
	rm -rf "$work/data" "$work/server.log"
	as_pg "$PGBIN/initdb" -D "$work/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
	{
		echo
		echo "# throwaway asyncrr cluster"
		echo "port = $port"
		echo "listen_addresses = '127.0.0.1'"
		echo "unix_socket_directories = '$work'"
		echo "fsync = on"
		echo "synchronous_commit = on"
		echo "shared_preload_libraries = 'asyncrr'"
		echo "asyncrr.database = 'postgres'"
		local line
		for line in "$@"; do echo "$line"; done
	} >>"$work/data/postgresql.conf"
	as_pg "$PGBIN/pg_ctl" -D "$work/data" -l "$work/server.log" -w start >/dev/null
}

cluster_stop() {
	if [ -n "${work:-}" ] && [ -f "$work/data/postmaster.pid" ]; then
		as_pg "$PGBIN/pg_ctl" -D "$work/data" -m fast -w stop >/dev/null 2>&1 || true
	fi
}

# On exit, whatever happens: stop the cluster, show the server log's tail
# if the script failed, remove $work, and say how it ended ($1 names it).
cleanup_on_exit() {
	cleanup_what=$1
	trap cleanup_now EXIT
	trap 'exit 130' INT TERM
}
cleanup_now() {
	local rc=$?
	cluster_stop
	if [ "$rc" -ne 0 ] && [ -f "$work/server.log" ]; then
		echo "--- server log (tail)"; tail -n 30 "$work/server.log"
	fi
	rm -rf "$work"
	if [ "$rc" -eq 0 ]; then
		echo "$cleanup_what finished: cluster stopped, $work removed"
	else
		echo "$cleanup_what FAILED (exit $rc)" >&2
	fi
	exit "$rc"
}

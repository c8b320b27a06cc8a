#!/usr/bin/env bash
# Builds the Debian package postgresql-15-asyncrr (debian/, pg_buildext)
# and tests it as installed.
#
# Run as root on Debian 12 (no sudo needed):  bash test/package/run.sh
#
#   1. build      installs what is missing (apt), copies the working tree
#                 (uncommitted work included; .git, test output and build
#                 output left out) to a temp dir, makes the orig tarball
#                 from it and runs dpkg-buildpackage -us -uc there: the
#                 tree this is run from is not built in nor cleaned
#   2. install    dpkg -i of the .deb; its files replace those a source
#                 install (make install) put there
#   3. file list  dpkg -L holds asyncrr.so, asyncrr.control and every
#                 asyncrr--*.sql of the tree; dpkg --verify finds them intact
#   4. regress    pg_regress (make installcheck ISOLATION= TAP_TESTS=) as
#                 the postgres OS user, on a copy of the tree without any
#                 build output: the temp instance loads the packaged files
#   5. remove     dpkg -r; the package's files are gone
#   6. restore    the asyncrr files that were installed when this started
#                 (test/run_tests.sh installs them from source first, and
#                 other suites may follow) are put back byte for byte, from
#                 a copy taken at the start; none if there were none (if
#                 asyncrr was installed over the package meanwhile, that
#                 install is what is put back)
# Steps 5 and 6 also run, uncounted, if the script stops half way.
#
# Step 6 puts back what it found rather than running make install here:
# that is the same files when the source install came from this tree, as
# in test/run_tests.sh, and it neither rebuilds this tree (whose sources
# may have changed meanwhile) nor replaces an install made from another.
# Exits non-zero if anything failed; the last line is "N passed, M failed".
set -u
cd "$(dirname "$(readlink -f "$0")")/../.."
top=$(pwd)
. test/lib.sh

require_root test/package/run.sh

PGVER=15
PKG=postgresql-$PGVER-asyncrr

passed=0
failed=0
pass() { echo "PASS: $*"; passed=$((passed + 1)); }
fail() { echo "FAIL: $*"; failed=$((failed + 1)); }
finish() {
	echo
	echo "package test took ${SECONDS}s"
	echo "$passed passed, $failed failed"
	[ "$failed" -eq 0 ] && exit 0
	exit 1
}

pkglibdir=$("$PG_CONFIG" --pkglibdir 2>/dev/null || echo "/usr/lib/postgresql/$PGVER/lib")
extdir=$("$PG_CONFIG" --sharedir 2>/dev/null || echo "/usr/share/postgresql/$PGVER")/extension

work=$(mktemp -d /tmp/asyncrr-package.XXXXXX)
chmod 755 "$work"

# --- removal and restore, also when the script stops half way ----------------
installed_pkg=     # set once dpkg -i has run
install_ok=        # set once it has succeeded
restored=
remove_package() {
	dpkg -r "$PKG" >"$work/remove.log" 2>&1
	local rc=$?
	# no conffiles, but purge whatever dpkg may keep about it
	if dpkg-query -W -f='${Status}' "$PKG" 2>/dev/null | grep -q config-files; then
		dpkg --purge "$PKG" >>"$work/remove.log" 2>&1
	fi
	return $rc
}
restore_found() {
	[ -f "$work/found.tar" ] || return 0
	tar -C / -xpf "$work/found.tar" >"$work/restore.log" 2>&1 &&
		(cd / && sha256sum --quiet -c "$work/found.sums") >>"$work/restore.log" 2>&1
}
cleanup() {
	local rc=$?
	if [ -n "$installed_pkg" ] && [ -z "$restored" ]; then
		echo "stopped half way: removing $PKG and putting back the asyncrr files found"
		[ -n "$install_ok" ] && package_overwritten && keep_found
		remove_package
		restore_found
	fi
	rm -rf "$work"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Keeps the asyncrr files installed now in $work/found.tar, for step 6.
keep_found() {
	local f
	found=()
	rm -f "$work/found.tar" "$work/found.sums"
	for f in "$pkglibdir/asyncrr.so" "$pkglibdir/bitcode/asyncrr" "$pkglibdir/bitcode/asyncrr.index.bc" \
		"$extdir"/asyncrr.control "$extdir"/asyncrr--*.sql; do
		[ -e "$f" ] && found+=("$f")
	done
	[ ${#found[@]} -gt 0 ] || return 0
	tar -C / --format=posix -cf "$work/found.tar" "${found[@]#/}" 2>/dev/null
	(cd / && find "${found[@]}" -type f -exec sha256sum {} +) >"$work/found.sums"
}
# Whether files of the package differ from it: someone installed asyncrr
# (make install) over it while this ran.  The machine is meant to be ours
# alone while this runs, but on a shared one it happens.
package_overwritten() {
	dpkg --verify "$PKG" >"$work/verify.log" 2>&1
	[ -s "$work/verify.log" ]
}
keep_found
found_when="found at the start"
if [ ${#found[@]} -gt 0 ]; then
	echo "asyncrr installed now: ${#found[@]} files, kept for step 6"
else
	echo "asyncrr is not installed now"
fi
if dpkg-query -W -f='${Status}' "$PKG" 2>/dev/null | grep -q 'ok installed'; then
	echo "note: $PKG is installed already (left by an earlier run?): it is removed at the end"
fi

# --- what building the package needs --------------------------------------
# postgresql-server-dev-all (dh --with pgxs_loop) is asked for at the
# version of the postgresql-common installed, while the archive has it:
# otherwise apt would upgrade postgresql-common along with it.
say "packages"
want=("${BUILD_PACKAGES[@]}" dpkg-dev debhelper fakeroot postgresql-server-dev-all)
missing=()
for p in "${want[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	common=$(dpkg-query -W -f='${Version}' postgresql-common 2>/dev/null)
	pinned=()
	for p in "${missing[@]}"; do
		if [ "$p" = postgresql-server-dev-all ] && [ -n "$common" ] &&
			apt-cache show "$p=$common" >/dev/null 2>&1; then
			pinned+=("$p=$common")
		else
			pinned+=("$p")
		fi
	done
	apt-get install -y -qq --no-install-recommends "${pinned[@]}" >/dev/null ||
		apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || {
		fail "build: could not install ${missing[*]}"
		finish
	}
else
	echo "all there: ${want[*]}"
fi

# --- 1. build --------------------------------------------------------------
say "build"
src_name=$(dpkg-parsechangelog -l debian/changelog -S Source)
version=$(dpkg-parsechangelog -l debian/changelog -S Version)
upstream=${version%-*}
arch=$(dpkg --print-architecture)
srcdir=$work/build/$src_name-$upstream
mkdir -p "$srcdir" "$work/regress"
# The working tree as it is, less what the builds and the suites leave.
tar -C "$top" -cf - \
	--anchored \
	--exclude=./.git --exclude='./tmp_check*' --exclude=./results \
	--exclude='./output_iso*' --exclude=./log --exclude=./regression.diffs \
	--exclude=./regression.out --exclude=./test/bench/out \
	--exclude=./debian/.debhelper --exclude=./debian/files \
	--exclude='./debian/*.substvars' --exclude=./debian/debhelper-build-stamp \
	--exclude='./debian/*.debhelper.log' --exclude='./debian/postgresql-*-asyncrr' \
	--exclude='./debian/postgresql-*-asyncrr-dbgsym' \
	--no-anchored \
	--exclude=node_modules --exclude=__pycache__ --exclude=.pytest_cache \
	--exclude='*.o' --exclude='*.so' --exclude='*.bc' \
	. | tar -C "$srcdir" -xf -
cp -a "$srcdir" "$work/regress/tree"
chown -R postgres: "$work/regress"
tar -C "$work/build" --exclude="$src_name-$upstream/debian" --owner=0 --group=0 \
	-czf "$work/build/${src_name}_$upstream.orig.tar.gz" "$src_name-$upstream"
deb=$work/build/${PKG}_${version}_$arch.deb
build_start=$SECONDS
(cd "$srcdir" && dpkg-buildpackage -us -uc) >"$work/build.log" 2>&1
rc=$?
if [ "$rc" -eq 0 ] && [ -f "$deb" ]; then
	grep -E '^dpkg-(source|deb): ' "$work/build.log" | sed 's|'"$work"'/build/||g'
	pass "build: $(basename "$deb") in $((SECONDS - build_start))s"
else
	tail -n 60 "$work/build.log"
	fail "build: dpkg-buildpackage exited $rc"
	finish
fi

# --- 2. install ------------------------------------------------------------
say "install"
installed_pkg=1
if dpkg -i "$deb" >"$work/install.log" 2>&1 &&
	[ "$(dpkg-query -W -f='${Status} ${Version}' "$PKG" 2>/dev/null)" = "install ok installed $version" ]; then
	grep -E '^(Unpacking|Setting up)' "$work/install.log"
	pass "install: $PKG $version"
	install_ok=1
else
	cat "$work/install.log"
	fail "install: dpkg -i $(basename "$deb")"
	install_ok=
fi

# --- 3. file list ----------------------------------------------------------
if [ -n "$install_ok" ]; then
	say "file list"
	dpkg -L "$PKG" >"$work/files" 2>&1
	expect=("$pkglibdir/asyncrr.so" "$extdir/asyncrr.control")
	for f in "$srcdir"/asyncrr--*.sql; do
		expect+=("$extdir/$(basename "$f")")
	done
	absent=()
	for f in "${expect[@]}"; do
		grep -qxF "$f" "$work/files" || absent+=("$f")
	done
	grep -E '/asyncrr(\.so|\.control|--[^/]*\.sql)$' "$work/files"
	if package_overwritten; then
		cat "$work/verify.log"
		fail "file list: dpkg --verify $PKG finds files changed or missing"
	elif [ ${#absent[@]} -gt 0 ]; then
		fail "file list: not in dpkg -L $PKG: ${absent[*]}"
	else
		pass "file list: ${#expect[@]} files expected, all there and intact"
	fi
fi

# --- 4. regress ------------------------------------------------------------
if [ -n "$install_ok" ]; then
	say "regress (against the installed package)"
	(cd "$work/regress/tree" && runuser -u postgres -- \
		make -s PG_CONFIG="$PG_CONFIG" installcheck ISOLATION= TAP_TESTS=) >"$work/regress.log" 2>&1
	rc=$?
	cat "$work/regress.log"
	ok=$(grep -cE '\.\.\. ok' "$work/regress.log")
	bad=$(grep -cE '\.\.\. FAILED|\.\.\. failed' "$work/regress.log")
	if package_overwritten; then
		cat "$work/verify.log"
		fail "regress: not a test of the package: its files were replaced while it ran (a make install elsewhere?)"
	elif [ "$rc" -eq 0 ] && [ "$bad" -eq 0 ] && [ "$ok" -gt 0 ]; then
		pass "regress: $ok tests"
	else
		d=$work/regress/tree/regression.diffs
		[ -s "$d" ] && { echo "--- regression.diffs"; head -c 20000 "$d"; }
		fail "regress: $ok ok, $bad failed, make exited $rc"
	fi
fi

# --- 5. remove -------------------------------------------------------------
say "remove"
if [ -n "$install_ok" ] && package_overwritten; then
	# what was installed over the package is what step 6 puts back
	echo "files of $PKG were replaced while this ran (a make install elsewhere?):"
	cat "$work/verify.log"
	keep_found
	found_when="installed over the package while this ran"
	echo "step 6 puts back those, not the ones found at the start"
fi
if remove_package && ! dpkg-query -W -f='${Status}' "$PKG" 2>/dev/null | grep -q 'ok installed' &&
	[ ! -e "$pkglibdir/asyncrr.so" ] && [ ! -e "$extdir/asyncrr.control" ]; then
	grep -E "^Removing $PKG" "$work/remove.log"
	pass "remove: dpkg -r $PKG; its files are gone"
else
	cat "$work/remove.log"
	fail "remove: dpkg -r $PKG"
fi

# --- 6. restore ------------------------------------------------------------
say "restore"
restored=1
if [ ! -f "$work/found.tar" ]; then
	echo "asyncrr was not installed when this started: nothing to put back"
	pass "restore: nothing to put back"
elif restore_found; then
	pass "restore: the ${#found[@]} asyncrr files $found_when are back, byte for byte"
else
	cat "$work/restore.log"
	fail "restore: could not put back the asyncrr files found at the start"
fi

finish

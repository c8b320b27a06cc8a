#!/usr/bin/env bash
# The small filesystem that test/t/014_faults.pl fills up to test a disk
# full during a pass of the background worker (its part b).  The TAP tests
# run as the postgres OS user, who cannot mount anything, so root prepares
# it first:
#
#   bash test/small_fs.sh mount   [DIR]   # before the TAP suite
#   bash test/small_fs.sh umount  [DIR]   # after it
#
# DIR defaults to /tmp/asyncrr-small-fs, where 014_faults.pl looks (or set
# ASYNCRR_SMALL_FS to DIR for it).  It is an 8 MB tmpfs owned by postgres;
# where tmpfs cannot be mounted, an ext2 image on a loop device.  Without
# it, 014_faults.pl skips part b and says so.
set -u
cmd=${1:-}
dir=${2:-/tmp/asyncrr-small-fs}
img="$dir.img"

case $cmd in
mount)
	[ "$(id -u)" -eq 0 ] || { echo "run as root: sudo bash $0 mount" >&2; exit 1; }
	mkdir -p "$dir"
	if ! mountpoint -q "$dir"; then
		if ! mount -t tmpfs -o size=8M,mode=0700 asyncrr-small-fs "$dir" 2>/dev/null; then
			rm -f "$img"
			truncate -s 8M "$img" && mkfs.ext2 -q -F -m 0 "$img" &&
				mount -o loop "$img" "$dir" || {
				echo "could not mount a small filesystem on $dir" >&2
				exit 1
			}
		fi
	fi
	chown postgres: "$dir" && chmod 0700 "$dir"
	echo "$dir"
	;;
umount)
	[ "$(id -u)" -eq 0 ] || { echo "run as root: sudo bash $0 umount" >&2; exit 1; }
	mountpoint -q "$dir" && umount "$dir"
	rm -f "$img"
	rmdir "$dir" 2>/dev/null
	exit 0
	;;
*)
	echo "usage: $0 mount|umount [DIR]" >&2
	exit 2
	;;
esac

#!/bin/sh
# A small XFS file system (reflinks on) on a loop device, for the tests of
# incremental dumps, which share unchanged image data with the base image:
#   reflink-fs.sh mount DIR [SIZE]   backing file DIR.xfs, sparse, SIZE (4G)
#   reflink-fs.sh umount DIR    unmount, remove the backing file
set -eu
dir=$2
case $1 in
mount)
	mkdir -p "$dir"
	if mountpoint -q "$dir"; then exit 0; fi
	rm -f "$dir.xfs"
	truncate -s "${3:-4G}" "$dir.xfs"
	mkfs.xfs -q -m reflink=1 "$dir.xfs"
	mount -o loop "$dir.xfs" "$dir"
	;;
umount)
	if mountpoint -q "$dir"; then umount "$dir"; fi
	rm -f "$dir.xfs"
	rmdir "$dir" 2>/dev/null || true
	;;
*)
	echo "usage: $0 mount|umount DIR" >&2
	exit 2
	;;
esac

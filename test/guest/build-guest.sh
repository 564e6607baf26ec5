#!/bin/bash
# Build the integration-test guest: a Debian cloud kernel plus a tiny busybox
# initramfs whose /init runs the memory-verification workload on ttyS0.
#
#   test/guest/build-guest.sh OUTDIR
#
# Produces OUTDIR/vmlinuz, OUTDIR/initramfs.cpio.gz and OUTDIR/workload (the
# workload is a plain static binary, so tests can also run it on the host).
# Idempotent: the kernel .deb is cached in OUTDIR/dl and every step is skipped
# when its output is newer than its inputs.
set -euo pipefail

if [ $# -ne 1 ]; then
	echo "usage: $0 OUTDIR" >&2
	exit 2
fi

SRC=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$1"
OUT=$(cd "$1" && pwd)
DL="$OUT/dl"
META=linux-image-cloud-amd64

log() { echo "build-guest: $*" >&2; }

# Print the versioned kernel package the metapackage depends on, e.g.
# linux-image-6.1.0-56-cloud-amd64, or nothing if apt has no candidate.
resolve_kernel_pkg() {
	apt-cache depends "$META" 2>/dev/null |
		sed -n 's/^ *Depends: \(linux-image-[^ ]*-cloud-amd64\)$/\1/p' |
		head -n1 || true
}

# Newest cached kernel .deb, used when apt cannot tell us anything (offline).
cached_deb() {
	ls -1 "$DL"/linux-image-*-cloud-amd64_*.deb 2>/dev/null | sort -V | tail -n1 || true
}

fetch_kernel_deb() {
	local pkg deb

	mkdir -p "$DL"
	pkg=$(resolve_kernel_pkg)
	if [ -z "$pkg" ]; then
		log "apt-cache knows no $META, running apt-get update"
		apt-get update -qq >&2 || log "apt-get update failed"
		pkg=$(resolve_kernel_pkg)
	fi
	if [ -z "$pkg" ]; then
		deb=$(cached_deb)
		[ -n "$deb" ] || { log "cannot resolve $META and no cached .deb"; exit 1; }
		log "using cached $(basename "$deb")"
		echo "$deb"
		return
	fi

	deb=$(ls -1 "$DL/${pkg}"_*.deb 2>/dev/null | sort -V | tail -n1 || true)
	if [ -z "$deb" ]; then
		log "downloading $pkg"
		# apt drops privileges to _apt for downloads; let it write here
		# so it does not warn about an unsandboxed download.
		if [ "$(id -u)" = 0 ] && id _apt >/dev/null 2>&1; then
			chown _apt "$DL"
		fi
		(cd "$DL" && apt-get download -q "$pkg" >&2)
		deb=$(ls -1 "$DL/${pkg}"_*.deb | sort -V | tail -n1)
	fi
	echo "$deb"
}

# The virtio modules the balloon and virtio-mem need, in load order (virtio
# is modular in the cloud kernel; everything else the guest uses is built in).
MODULES="virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_balloon virtio_mem"

# Extract boot/vmlinuz-* (and the config, handy for debugging) and the
# virtio modules into OUT/modules.
extract_kernel() {
	local deb=$1 tmp m

	if [ -s "$OUT/vmlinuz" ] && [ "$OUT/vmlinuz" -nt "$deb" ] &&
	   [ -s "$OUT/modules/virtio_mem.ko" ]; then
		return
	fi
	tmp=$(mktemp -d "$OUT/.kx.XXXXXX")
	dpkg-deb --fsys-tarfile "$deb" |
		tar -x -C "$tmp" --wildcards './boot/vmlinuz-*' './boot/config-*' \
		    './lib/modules/*/kernel/drivers/virtio/*'
	cp "$tmp"/boot/config-* "$OUT/kernel.config"
	rm -rf "$OUT/modules"
	mkdir -p "$OUT/modules"
	for m in $MODULES; do
		cp "$tmp"/lib/modules/*/kernel/drivers/virtio/$m.ko "$OUT/modules/"
	done
	mv "$tmp"/boot/vmlinuz-* "$OUT/vmlinuz"
	touch "$OUT/vmlinuz"
	rm -rf "$tmp"
	log "kernel $(basename "$deb")"
}

build_workload() {
	if [ "$OUT/workload" -nt "$SRC/workload.c" ] && [ "$OUT/workload" -nt "$SRC/wl-pattern.h" ]; then
		return
	fi
	gcc -O2 -static -std=gnu11 -Wall -Wextra -Werror \
		-o "$OUT/workload.tmp" "$SRC/workload.c"
	mv "$OUT/workload.tmp" "$OUT/workload"
	log "built workload"
}

# Emit one newc cpio header + name for a character device node.  GNU cpio
# can only archive nodes that exist on disk (mknod needs root), so the one
# node the kernel wants before /init runs, /dev/console, is written by hand.
newc_chardev() {
	local name=$1 mode=$2 major=$3 minor=$4 ino=$5
	local namesize=$(( ${#name} + 1 ))

	# magic ino mode uid gid nlink mtime filesize devmaj devmin
	# rdevmaj rdevmin namesize check, then the name, NUL, pad to 4.
	printf '070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X' \
		"$ino" "$mode" 0 0 1 0 0 0 0 "$major" "$minor" "$namesize" 0
	printf '%s\0' "$name"
	local pad=$(( (4 - (110 + namesize) % 4) % 4 ))
	head -c "$pad" /dev/zero
}

build_initramfs() {
	local img="$OUT/initramfs.cpio.gz" root applet
	local bb=/bin/busybox

	[ -x "$bb" ] || { log "busybox-static is not installed"; exit 1; }
	if [ -s "$img" ] && [ "$img" -nt "$OUT/workload" ] &&
	   [ "$img" -nt "$OUT/modules/virtio_mem.ko" ] &&
	   [ "$img" -nt "$SRC/init" ] && [ "$img" -nt "$bb" ] &&
	   [ "$img" -nt "$0" ]; then
		return
	fi

	root=$(mktemp -d "$OUT/.root.XXXXXX")
	mkdir -p "$root"/{bin,proc,sys,dev,tmp,lib/modules}
	cp "$OUT"/modules/*.ko "$root/lib/modules/"
	cp "$bb" "$root/bin/busybox"
	# Applet links at build time: /init needs /bin/sh before it can run
	# anything, and it keeps boot a few milliseconds shorter.
	for applet in $("$bb" --list); do
		[ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
	done
	install -m 0755 "$SRC/init" "$root/init"
	install -m 0755 "$OUT/workload" "$root/workload"

	{
		(cd "$root" && find . -mindepth 1 | LC_ALL=C sort |
			cpio --quiet -o -H newc -R 0:0 --reproducible)
		# A second archive, concatenated: the kernel unpacks both.
		newc_chardev dev/console $((8#020600)) 5 1 900001
		printf '070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X' \
			0 0 0 0 1 0 0 0 0 0 0 11 0
		printf 'TRAILER!!!\0'
		head -c 3 /dev/zero  # 110 + 11 = 121, pad to 124
	} | gzip -9 -n > "$img.tmp"
	mv "$img.tmp" "$img"
	rm -rf "$root"
	log "built $(basename "$img") ($(stat -c %s "$img") bytes)"
}

deb=$(fetch_kernel_deb)
extract_kernel "$deb"
build_workload
build_initramfs

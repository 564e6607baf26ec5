#!/bin/bash
# Find a CRIU >= 4.0 that works on this kernel, or build one from Debian's
# source package (trixie) into build/criu. Writes build/criu.mk with
#   CRIU     - the criu binary every test, the demo and the plugin use
#   CRIU_INC - directory holding the matching criu-plugin.h
# Debian 12's criu 3.17 does not run on kernel 6.x, hence the source build.
#
#   scripts/criu.sh           find one, or build one (make deps)
#   scripts/criu.sh --find    find one only, never download or build (make)
set -euo pipefail

find_only=
[ "${1:-}" = --find ] && find_only=1

top=$(cd "$(dirname "$0")/.." && pwd)
build="$top/build"
out="$build/criu.mk"
want_major=4
mkdir -p "$build"

emit() {
	# Copy only criu-plugin.h: CRIU's include dir shadows libc headers.
	mkdir -p "$build/criu-include"
	cp "$2/criu-plugin.h" "$build/criu-include/criu-plugin.h"
	printf 'CRIU := %s\nCRIU_INC := %s\nCRIU_VERSION := %s\n' "$1" "$build/criu-include" "$3" >"$out.tmp"
	mv "$out.tmp" "$out"
	echo "criu: using $1 ($3)"
}

version_of() { "$1" --version 2>/dev/null | sed -n 's/^Version: *//p'; }

# 1. A system criu that is new enough, works here and ships its plugin header.
if sys=$(command -v criu 2>/dev/null); then
	v=$(version_of "$sys")
	if [ "${v%%.*}" -ge "$want_major" ] 2>/dev/null && [ -f /usr/include/criu/criu-plugin.h ] &&
		"$sys" check >/dev/null 2>&1; then
		emit "$sys" /usr/include/criu "$v"
		exit 0
	fi
fi

# Our patches to CRIU (scripts/criu-patches, each meant for upstream); a
# build tree records the ones applied in .criu-qemu-patches.
patches_dir="$top/scripts/criu-patches"
want_patches=$(cd "$patches_dir" && ls *.patch 2>/dev/null | sort | tr '\n' ' ')

apply_patches() {
	local p
	for p in $want_patches; do
		grep -qx "$p" "$1/.criu-qemu-patches" 2>/dev/null && continue
		patch -d "$1" -p1 -N -s <"$patches_dir/$p" || { echo "criu: patch $p failed" >&2; exit 1; }
		echo "$p" >>"$1/.criu-qemu-patches"
	done
}

patched() {
	local p
	for p in $want_patches; do
		grep -qx "$p" "$1/.criu-qemu-patches" 2>/dev/null || return 1
	done
}

build_criu() {
	make -C "$src" -j"$(nproc)" criu >"$build/criu-build.log" 2>&1 ||
		{ tail -30 "$build/criu-build.log" >&2; echo "criu: build failed" >&2; exit 1; }
}

# 2. Our own build, if it is already there (patched as it should be).
src="$build/criu-src"
bin="$src/criu/criu"
if [ -x "$bin" ] && [ -f "$src/criu/include/criu-plugin.h" ]; then
	if ! patched "$src"; then
		[ -n "$find_only" ] && { echo "criu: $src lacks our patches; run 'make deps'" >&2; exit 1; }
		apply_patches "$src"
		build_criu
	fi
	emit "$bin" "$src/criu/include" "$(version_of "$bin")"
	exit 0
fi

if [ -n "$find_only" ]; then
	echo "criu: no CRIU >= $want_major.0 with criu-plugin.h here; run 'make deps' to build one" >&2
	exit 1
fi

# 3. Fetch Debian trixie's criu source with a private apt configuration so the
#    system's sources stay untouched, and build only the criu binary.
apt_dir="$build/apt"
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/dl"
source "$(dirname "$0")/apt-mirror.sh"
mirror=$(debian_mirror)
echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror trixie main" \
	>"$apt_dir/sources.list"
apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
	-o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache" -o "APT::Get::List-Cleanup=0")
apt-get -q "${apt_opts[@]}" update
# The .dsc may be gone from the mirror while the orig tarball is still served;
# apt checks the tarball's SHA256 against the signed Sources index either way.
(cd "$apt_dir/dl" && apt-get -q "${apt_opts[@]}" source --download-only criu) || true
tarball=$(ls "$apt_dir"/dl/criu_*.orig.tar.* 2>/dev/null | sort -V | tail -1)
[ -n "$tarball" ] || { echo "criu: could not download Debian's criu source" >&2; exit 1; }

rm -rf "$src" "$build/criu-unpack"
mkdir -p "$build/criu-unpack"
tar -C "$build/criu-unpack" -xf "$tarball"
mv "$build/criu-unpack"/criu-* "$src"
rmdir "$build/criu-unpack"
apply_patches "$src"
build_criu
"$bin" check >/dev/null 2>&1 || echo "criu: warning: 'criu check' reports problems (see criu check)" >&2
emit "$bin" "$src/criu/include" "$(version_of "$bin")"

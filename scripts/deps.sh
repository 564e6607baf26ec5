#!/bin/bash
# Install the Debian packages the project builds and tests with, and the
# container engines (scripts/engines.sh). Idempotent: a second run only
# checks dpkg and rewrites the engines' test configuration.
set -euo pipefail

PKGS=(
	build-essential pkg-config patch
	protobuf-c-compiler libprotobuf-c-dev protobuf-compiler libprotobuf-dev python3-protobuf
	liburing-dev libjansson-dev libxxhash-dev libcmocka-dev libfuse3-dev
	clang-14 libclang-rt-14-dev
	bpftool libbpf-dev libelf-dev zlib1g-dev
	libnl-3-dev libnl-route-3-dev libnet1-dev libcap-dev libaio-dev libbsd-dev
	libgnutls28-dev uuid-dev
	qemu-system-x86 busybox-static cpio xz-utils dpkg-dev
	python3 python3-pytest python3-xxhash iproute2 e2fsprogs xfsprogs
)

missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "deps: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The container engines the integration tests use (Podman, runc, a local
# registry) and their test configuration.
"$(dirname "$0")/engines.sh"

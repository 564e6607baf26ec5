#!/bin/bash
# Container engines for the integration tests (test/integration/test_podman.py,
# test_containerd.py): Podman with runc, containerd (the tests start their
# own, scripts/containerd.sh), and Debian's docker-registry as a local OCI
# registry (the tests run it themselves, on loopback, with a private
# configuration).
# Installs only what is missing, then writes the containers.conf Podman
# needs on these machines into build/engines/containers.conf; the tests
# point CONTAINERS_CONF at it, so /etc/containers stays as it is.
# Run by scripts/deps.sh (make deps, make check); idempotent.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
out="$top/build/engines"

# runc named explicitly: podman depends on "crun | runc", and crun does not
# work on these machines.
PKGS=(podman runc docker-registry containerd)
missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "engines: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# runc: crun fails here. cgroupfs and file events: no systemd, no journald.
# default_ulimits: Podman raises nofile/nproc to its own defaults (and
# runc then fails "error setting rlimits": root here lacks
# CAP_SYS_RESOURCE); 16384 each, or less where this shell's hard limit is
# lower, is below what conmon passes on (seen: nofile 20000 and nproc
# 32768 fail, 16384 works).
lim() { local h; h=$(ulimit -H "$1"); [ "$h" = unlimited ] || [ "$h" -gt 16384 ] && h=16384; echo "$h"; }
nofile=$(lim -n)
nproc=$(lim -u)
mkdir -p "$out"
cat >"$out/containers.conf.tmp" <<EOF
# Written by scripts/engines.sh for the integration tests (CONTAINERS_CONF).
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
mv "$out/containers.conf.tmp" "$out/containers.conf"

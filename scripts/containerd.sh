#!/bin/bash
# A private containerd for the tests (test/integration/test_containerd.py):
# its own socket, state and root directories under one directory, so it
# never meets a containerd of the system's.
#
#   scripts/containerd.sh install          install containerd and runc when
#                                          missing (scripts/engines.sh)
#   scripts/containerd.sh start DIR [PATH] start containerd on DIR/containerd.sock
#                                          (config DIR/config.toml, state DIR/state,
#                                          root DIR/root, log DIR/containerd.log);
#                                          PATH: the PATH its shims, runc and
#                                          so CRIU see (the criu runc runs)
#   scripts/containerd.sh stop DIR         kill and delete its tasks and
#                                          containers, stop it
#
# runc runs `criu` from PATH; containerd passes its own environment to the
# shim, and the shim to runc, so PATH given here decides which CRIU checkpoints.
# XDG_RUNTIME_DIR is where containerd 1.6 unpacks a checkpoint to restore
# from (and leaves it there): DIR/tmp, so it goes with DIR.
set -euo pipefail

# Installed with the other engines (Podman, runc, the registry).
install() {
	"$(dirname "$0")/engines.sh"
}

write_config() {
	local dir=$1
	# Version 2 config: every path of ours; no CRI plugin (the tests use
	# ctr, and CRI wants CNI); snapshots with overlayfs.
	cat >"$dir/config.toml" <<EOF
version = 2
root = "$dir/root"
state = "$dir/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "$dir/containerd.sock"

[ttrpc]
  address = "$dir/containerd.sock.ttrpc"

[debug]
  address = "$dir/debug.sock"
  level = "info"

[metrics]
  address = ""

[plugins."io.containerd.runtime.v1.linux"]
  shim_debug = false
EOF
}

start() {
	local dir=$1 path=${2:-$PATH} i
	mkdir -p "$dir/root" "$dir/state" "$dir/tmp"
	write_config "$dir"
	# An earlier one of ours left behind (a test killed) is stopped first.
	stop "$dir"
	rm -f "$dir/containerd.sock" "$dir/containerd.sock.ttrpc" "$dir/debug.sock"
	PATH=$path XDG_RUNTIME_DIR=$dir/tmp setsid containerd --config "$dir/config.toml" \
		</dev/null >>"$dir/containerd.log" 2>&1 &
	echo $! >"$dir/containerd.pid"
	for i in $(seq 100); do
		if ctr --address "$dir/containerd.sock" version >/dev/null 2>&1; then
			return 0
		fi
		kill -0 "$(cat "$dir/containerd.pid")" 2>/dev/null || break
		sleep 0.1
	done
	echo "containerd.sh: containerd did not start; its log:" >&2
	tail -20 "$dir/containerd.log" >&2
	return 1
}

ours() {	# ours PID DIR: PID runs with DIR's socket or config on its command line
	tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qE -- "(--config|-address) $2/(config.toml|containerd.sock) "
}

stop() {
	local dir=$1 pid i c p
	[ -f "$dir/containerd.pid" ] || return 0
	pid=$(cat "$dir/containerd.pid")
	if ours "$pid" "$dir"; then
		# Its tasks first: a shim outlives containerd, and its container too.
		for c in $(ctr --address "$dir/containerd.sock" containers list -q 2>/dev/null); do
			ctr --address "$dir/containerd.sock" tasks kill -s KILL "$c" >/dev/null 2>&1 || true
			ctr --address "$dir/containerd.sock" tasks delete -f "$c" >/dev/null 2>&1 || true
			ctr --address "$dir/containerd.sock" containers delete "$c" >/dev/null 2>&1 || true
		done
		kill "$pid"
		for i in $(seq 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
	fi
	# Shims of ours still there (their task would not go): by their pids.
	for p in /proc/[0-9]*; do
		p=${p#/proc/}
		[ "$(cat "/proc/$p/comm" 2>/dev/null)" = containerd-shim ] && ours "$p" "$dir" && kill -9 "$p"
	done
	# And what was left mounted under DIR (overlay roots of those tasks).
	awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r | while read -r m; do
		umount -l "$m"
	done
	rm -f "$dir/containerd.pid"
}

case "${1:-}" in
install) install ;;
start) start "${2:?DIR}" "${3:-}" ;;
stop) stop "${2:?DIR}" ;;
*) echo "usage: $0 install | start DIR [PATH] | stop DIR" >&2; exit 2 ;;
esac

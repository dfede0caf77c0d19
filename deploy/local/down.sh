#!/usr/bin/env bash
# deploy/local/down.sh: stop what up.sh started and remove its namespaces
# and state directory. Safe to run twice, or after a failed up.sh.
#
# The state directory comes from FERRY_LOCAL_DIR, else from
# /tmp/ferry-local.env. Set FERRY_LOCAL_KEEP=1 to keep the directory (logs).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$HERE/lib.sh"

[[ $(id -u) -eq 0 ]] || die "run as root"

DIR="${FERRY_LOCAL_DIR:-}"
if [[ -z $DIR && -r $FERRY_LOCAL_ENV ]]; then
	# shellcheck disable=SC1090
	DIR="$(source "$FERRY_LOCAL_ENV" && echo "${FERRY_LOCAL_DIR:-}")"
fi

# 1. The client tunnel, if the demo's ferry client brought one up.
if [[ -n $DIR && -x $DIR/bin/ferry && -e $DIR/client/ferry0.conf ]] && ip link show ferry0 >/dev/null 2>&1; then
	log "bringing the demo client's tunnel down"
	"$DIR/bin/ferry" --config-dir "$DIR/client" down || log "ferry down failed; remove ferry0 by hand if it stays"
fi

# 2. The processes up.sh started, by their recorded PIDs, if they still run
# a command of this setup.
if [[ -n $DIR && -d $DIR/pids ]]; then
	for f in "$DIR"/pids/*.pid; do
		[[ -e $f ]] || continue
		pid="$(tr -dc 0-9 <"$f")"
		if [[ -n $pid ]] && proc_is_ours "$pid" "$DIR"; then
			log "stopping $(basename "$f" .pid) (pid $pid)"
			stop_pid "$pid"
		fi
		rm -f "$f"
	done
fi

# 3. Whatever still runs inside the setup's namespaces (a node restarted by
# hand, nginx workers): every process there belongs to this setup.
for ns in "${NAMESPACES[@]}"; do
	ns_exists "$ns" || continue
	for pid in $(ip netns pids "$ns" 2>/dev/null); do
		log "stopping pid $pid left in $ns"
		stop_pid "$pid"
	done
done

# 4. The namespaces; their veths (and the host's ferry-pub) go with them.
for ns in "${NAMESPACES[@]}"; do
	if ns_exists "$ns"; then
		log "deleting namespace $ns"
		ip netns del "$ns"
	fi
done
if ip link show "$PUBLIC_IF" >/dev/null 2>&1; then
	ip link del "$PUBLIC_IF"
fi

# 5. Userspace WireGuard control sockets left by a node that was killed.
for n in "${NODES[@]}"; do
	rm -f "/var/run/wireguard/ferry-$n.sock"
done

# 6. The state directory and the record of it.
if [[ -n $DIR && -d $DIR ]]; then
	if [[ ${FERRY_LOCAL_KEEP:-0} == 1 ]]; then
		log "kept $DIR"
	elif [[ ! -e $DIR/.ferry-local ]]; then
		log "not removing $DIR: it lacks the .ferry-local mark up.sh leaves"
	else
		log "removing $DIR"
		rm -rf -- "$DIR"
	fi
fi
rm -f "$FERRY_LOCAL_ENV"
log "down"

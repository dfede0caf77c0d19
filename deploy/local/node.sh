#!/usr/bin/env bash
# deploy/local/node.sh start|stop|kill|restart NODE: run the failure drills
# of deploy/local by hand (and from its tests) on one node of the setup
# up.sh started: stop is SIGTERM (a graceful stop), kill is SIGKILL (a
# crash), start runs ferryd again with the node's config and waits until
# its /readyz answers 200, restart is stop then start (one step of a
# rolling restart).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$HERE/lib.sh"

usage() { die "usage: node.sh start|stop|kill|restart n1|n2|n3"; }
[[ $# -eq 2 ]] || usage
verb=$1 n=$2
[[ " ${NODES[*]} " == *" $n "* ]] || usage
[[ $(id -u) -eq 0 ]] || die "run as root"

DIR="${FERRY_LOCAL_DIR:-}"
if [[ -z $DIR && -r $FERRY_LOCAL_ENV ]]; then
	# shellcheck disable=SC1090
	DIR="$(source "$FERRY_LOCAL_ENV" && echo "${FERRY_LOCAL_DIR:-}")"
fi
[[ -n $DIR && -e $DIR/.ferry-local ]] || die "no deploy/local setup found: run up.sh first"

pid_of() {
	local pid
	pid="$(tr -dc 0-9 <"$DIR/pids/$n.pid" 2>/dev/null || true)"
	if [[ -n $pid ]] && proc_is_ours "$pid" "$DIR"; then
		echo "$pid"
	fi
}

stop() {
	local sig=$1 pid
	pid="$(pid_of)"
	[[ -n $pid ]] || {
		log "$n is not running"
		return 0
	}
	if [[ $sig == KILL ]]; then
		kill -KILL "$pid"
		while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
	else
		stop_pid "$pid"
	fi
	log "$n stopped (SIG$sig)"
}

start() {
	[[ -z "$(pid_of)" ]] || die "$n is running already"
	# The userspace WireGuard socket of a killed node stays behind.
	rm -f "/var/run/wireguard/ferry-$n.sock"
	ip netns exec "ferry-$n" env SSL_CERT_FILE="$DIR/idp/trust.pem" \
		"$DIR/bin/ferryd" run --config "$DIR/$n/ferryd.yaml" >>"$DIR/$n/ferryd.log" 2>&1 </dev/null &
	echo $! >"$DIR/pids/$n.pid"
	wait_until 60 "$n to become ready (see $DIR/$n/ferryd.log)" \
		ip netns exec "ferry-$n" curl -sf --cacert "$DIR/n1/tls/ca.crt" "https://$(node_addr "$n"):$API_PORT/readyz"
	log "$n ready"
}

case $verb in
start) start ;;
stop) stop TERM ;;
kill) stop KILL ;;
restart)
	stop TERM
	start
	;;
*) usage ;;
esac

#!/usr/bin/env bash
# deploy/local/lbcheck.sh DIR NGINX: the load balancer's target health
# checks, as the AWS NLB does them. Runs in ferry-lb, started by up.sh.
#
# Every half second it sends HTTPS GET /readyz to each node (1 s timeout).
# Two failures in a row mark a node unhealthy, two successes healthy
# again; on every change it rewrites nginx.conf with the unhealthy nodes
# "down" and reloads nginx, so new TCP connections and new UDP flows go
# only to ready nodes; with none ready it sends to all, as the NLB does.
# (The NLB probes every 10 s or 30 s with a threshold of 2-10; these are
# shorter so that a drill takes seconds.) Each change is logged to
# DIR/lb/health.log and the current verdict kept in DIR/lb/down.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$HERE/lib.sh"

DIR=${1:?usage: lbcheck.sh DIR NGINX}
NGINX=${2:?usage: lbcheck.sh DIR NGINX}
CA="$DIR/n1/tls/ca.crt"

declare -A fails=() oks=() healthy=()
for n in "${NODES[@]}"; do
	fails[$n]=0 oks[$n]=0 healthy[$n]=1
done
: >"$DIR/lb/down"

trap 'exit 0' TERM INT
while true; do
	changed=()
	for n in "${NODES[@]}"; do
		if curl -sf -m 1 --cacert "$CA" -o /dev/null "https://$(node_addr "$n"):$API_PORT/readyz"; then
			fails[$n]=0 oks[$n]=$((oks[$n] + 1))
			if [[ ${healthy[$n]} == 0 && ${oks[$n]} -ge 2 ]]; then
				healthy[$n]=1
				changed+=("$n healthy")
			fi
		else
			oks[$n]=0 fails[$n]=$((fails[$n] + 1))
			if [[ ${healthy[$n]} == 1 && ${fails[$n]} -ge 2 ]]; then
				healthy[$n]=0
				changed+=("$n unhealthy")
			fi
		fi
	done
	if ((${#changed[@]} > 0)); then
		down=()
		for n in "${NODES[@]}"; do
			[[ ${healthy[$n]} == 1 ]] || down+=("$n")
		done
		# Like the NLB, fail open: with no healthy node, send to all of
		# them (during a leader election every node's /readyz says 503 for
		# a second or two; dropping them all would turn that into an
		# outage of the health checks' making).
		if ((${#down[@]} == ${#NODES[@]})); then
			changed+=("none healthy: failing open")
			down=()
		fi
		nginx_conf "$DIR" "${down[@]}" >"$DIR/lb/nginx.conf.new"
		mv "$DIR/lb/nginx.conf.new" "$DIR/lb/nginx.conf"
		"$NGINX" -q -p "$DIR/lb" -e "$DIR/lb/error.log" -c "$DIR/lb/nginx.conf" -s reload
		echo "${down[*]}" >"$DIR/lb/down"
		printf '%s %s; down: %s\n' "$(date -u +%H:%M:%S.%3N)" "${changed[*]}" "${down[*]:-none}" >>"$DIR/lb/health.log"
	fi
	sleep 0.5
done

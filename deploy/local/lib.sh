# shellcheck shell=bash disable=SC2034 # the variables are for the scripts that source this file
# Shared names and helpers of deploy/local/up.sh and down.sh. Sourced, not run.

# The environment file that tells down.sh where up.sh kept its state.
FERRY_LOCAL_ENV=/tmp/ferry-local.env

# Network namespaces, all prefixed "ferry-": the three nodes, the load
# balancer, the pretend VPC with its services (and the SIEM), the bridge
# joining them, and two client machines on the "internet" side.
NODES=(n1 n2 n3)
CLIENTS=(c1 c2)
NAMESPACES=(ferry-n1 ferry-n2 ferry-n3 ferry-lb ferry-vpc ferry-br ferry-c1 ferry-c2)

# Addresses. 10.200.0.0/25 is the "VPC" (nodes, the LB's inside leg, the
# services); 10.200.0.252/30 is the "internet" between this host (the
# client) and the LB's public address.
VPC_CIDR=10.200.0.0/25
LB_INSIDE=10.200.0.2
VPC_SERVICE=10.200.0.100
PUBLIC_HOST=10.200.0.253 # this host's end of the public link
PUBLIC_LB=10.200.0.254   # the "load balancer DNS name"
PUBLIC_IF=ferry-pub      # this host's end of the public link
IDP_PORT=5556
SIEM_PORT=6514 # rsyslog over TLS, in ferry-vpc at VPC_SERVICE

# Client namespaces have their own link to the LB: cN is 10.200.1.(4N-3)/30,
# the LB's end 10.200.1.(4N-2).
client_addr() { echo "10.200.1.$((4 * ${1#c} - 3))"; }
client_gw() { echo "10.200.1.$((4 * ${1#c} - 2))"; }

# node_addr n1 -> 10.200.0.11
node_addr() { echo "10.200.0.1${1#n}"; }

# Ports, the same on every node (each has its own namespace).
API_PORT=8443
CLUSTER_PORT=7946
METRICS_PORT=9090
WG_PORT=51820

log() { printf '==> %s\n' "$*" >&2; }
die() {
	printf 'error: %s\n' "$*" >&2
	exit 1
}

ns_exists() { ip netns list | awk '{print $1}' | grep -qx -- "$1"; }

# proc_is_ours PID DIR reports whether PID still runs a command that names
# DIR (its binary or its config lives there), so that a recycled PID is
# never signalled.
proc_is_ours() {
	local pid=$1 dir=$2
	[[ -r /proc/$pid/cmdline ]] || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$dir"
}

# stop_pid PID: SIGTERM, wait up to 15 s, then SIGKILL.
stop_pid() {
	local pid=$1 i
	kill -TERM "$pid" 2>/dev/null || return 0
	for ((i = 0; i < 150; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	log "pid $pid did not stop on SIGTERM; sending SIGKILL"
	kill -KILL "$pid" 2>/dev/null || true
}

# wait_until TIMEOUT_SECONDS WHAT CMD...: run CMD every half second until it
# succeeds; fail with WHAT after the timeout.
wait_until() {
	local timeout=$1 what=$2 i
	shift 2
	for ((i = 0; i < timeout * 2; i++)); do
		if "$@" >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.5
	done
	die "timed out after ${timeout}s waiting for $what"
}

# nginx_conf DIR DOWN_NODE...: the load balancer's nginx.conf, with the
# given nodes marked down (the health check's verdict).
nginx_conf() {
	local dir=$1 n mark
	shift
	cat <<EOF
# nginx stream load balancer of deploy/local, standing in for the AWS NLB.
# Written by up.sh and rewritten by lbcheck.sh, which probes HTTPS GET
# /readyz on every node like the NLB's target health checks and marks a
# node that is not ready "down", so that nothing new is sent to it.
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
worker_processes 1;
pid $dir/lb/nginx.pid;
error_log $dir/lb/error.log notice;
events { worker_connections 1024; }
stream {
    log_format lb '\$remote_addr:\$remote_port \$protocol \$status -> \$upstream_addr '
                  'sent=\$bytes_sent received=\$bytes_received time=\$session_time';
    access_log $dir/lb/access.log lb;

    # TCP 443 -> each node's HTTPS API, TLS passed through (the nodes hold
    # the certificate for $PUBLIC_LB).
    upstream ferry_api {
EOF
	for n in "${NODES[@]}"; do
		mark=""
		[[ " $* " == *" $n "* ]] && mark=" down"
		echo "        server $(node_addr "$n"):$API_PORT max_fails=1 fail_timeout=10s$mark;"
	done
	cat <<EOF
    }
    server {
        listen $PUBLIC_LB:443;
        proxy_pass ferry_api;
        proxy_connect_timeout 2s;
        proxy_next_upstream on;
    }

    # UDP 51820 -> each node's WireGuard. Every node holds the same
    # interface key and peers, so a client flow may land on any node; the
    # hash keeps one client flow on one node, as the NLB's flow hash does.
    upstream ferry_wg {
        hash \$remote_addr\$remote_port consistent;
EOF
	for n in "${NODES[@]}"; do
		mark=""
		[[ " $* " == *" $n "* ]] && mark=" down"
		echo "        server $(node_addr "$n"):$WG_PORT max_fails=1 fail_timeout=10s$mark;"
	done
	cat <<EOF
    }
    server {
        listen $PUBLIC_LB:$WG_PORT udp;
        proxy_pass ferry_wg;
        # Longer than PersistentKeepalive (25 s); the NLB's UDP idle timeout is 120 s.
        proxy_timeout 120s;
    }
}
EOF
}

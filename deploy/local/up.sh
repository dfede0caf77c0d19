#!/usr/bin/env bash
# deploy/local/up.sh: a production-shaped ferry cluster on this machine.
#
#   this host ("the internet", the client)
#      | ferry-pub 10.200.0.253/30
#      | 10.200.0.254  ferry-lb: nginx stream (TCP 443 -> API 8443, UDP 51820 -> WireGuard),
#      |                         and the demo OpenID Provider on https://10.200.0.254:5556
#      | 10.200.0.2
#      | 10.200.1.2, .6   ferry-c1 10.200.1.1, ferry-c2 10.200.1.5: client machines
#   ferry-br (bridge) --- ferry-n1 10.200.0.11   ferryd (init, bootstrap)
#                     --- ferry-n2 10.200.0.12   ferryd (join)
#                     --- ferry-n3 10.200.0.13   ferryd (join)
#                     --- ferry-vpc 10.200.0.100 http.server on :80 and :8080,
#                                                the SIEM: rsyslog over TLS on :6514
#
# Every node runs with wireguard.enabled: true (interface ferry-nN). All
# state lives in FERRY_LOCAL_DIR (default: a new mktemp directory), which is
# recorded in /tmp/ferry-local.env for down.sh. Needs root, Linux, Go,
# python3, curl and openssl; installs nginx-light and libnginx-mod-stream
# with apt-get when missing. Run down.sh to undo everything.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$HERE/lib.sh"

[[ $(id -u) -eq 0 ]] || die "run as root: network namespaces and the data plane need it"
[[ $(uname -s) == Linux ]] || die "Linux only (network namespaces)"
for cmd in ip go python3 curl openssl awk; do
	command -v "$cmd" >/dev/null || die "missing $cmd"
done
[[ -e /dev/net/tun ]] || die "no /dev/net/tun: the nodes' userspace WireGuard needs it"
for ns in "${NAMESPACES[@]}"; do
	! ns_exists "$ns" || die "namespace $ns exists: a setup is running; run $HERE/down.sh first"
done
if [[ -e $FERRY_LOCAL_ENV ]]; then
	die "$FERRY_LOCAL_ENV exists: run $HERE/down.sh first"
fi

# nginx with the stream module, from Debian.
if ! command -v nginx >/dev/null || [[ ! -e /usr/lib/nginx/modules/ngx_stream_module.so ]]; then
	log "installing nginx-light and libnginx-mod-stream"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nginx-light libnginx-mod-stream >/dev/null ||
		{ apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nginx-light libnginx-mod-stream >/dev/null; }
fi
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"

DIR="${FERRY_LOCAL_DIR:-$(mktemp -d /tmp/ferry-local.XXXXXX)}"
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
if [[ -n "$(ls -A "$DIR")" ]]; then
	die "FERRY_LOCAL_DIR $DIR is not empty; give a new or empty directory"
fi
# down.sh removes only a directory that carries this mark.
touch "$DIR/.ferry-local"
# Recorded first, so down.sh can clean up after a failure half-way.
printf 'FERRY_LOCAL_DIR=%q\n' "$DIR" >"$FERRY_LOCAL_ENV"
trap 'echo "up.sh failed; logs are in $DIR; clean up with $HERE/down.sh" >&2' ERR
mkdir -p "$DIR/bin" "$DIR/pids" "$DIR/lb" "$DIR/idp" "$DIR/vpc/www" "$DIR/siem" "$DIR/client" "$DIR/ctl"
log "state in $DIR"

# ---------------------------------------------------------------------------
log "building ferryd, ferryctl, ferry and the demo identity provider"
(
	cd "$REPO"
	go build -o "$DIR/bin/ferryd" ./cmd/ferryd
	go build -o "$DIR/bin/ferryctl" ./cmd/ferryctl
	go build -o "$DIR/bin/ferry" ./cmd/ferry
	go build -o "$DIR/bin/devidp" ./deploy/local/_devidp
)
FERRYD="$DIR/bin/ferryd"

# ---------------------------------------------------------------------------
log "creating namespaces and the bridge"
for ns in "${NAMESPACES[@]}"; do
	ip netns add "$ns"
	ip -n "$ns" link set lo up
done
ip -n ferry-br link add br0 type bridge
ip -n ferry-br link set br0 up

# attach NS ADDR/PREFIX: a veth from NS's eth0 to the bridge.
attach() {
	local ns=$1 addr=$2 short=${1#ferry-}
	ip link add "fl-$short" type veth peer name "fb-$short"
	ip link set "fl-$short" netns "$ns"
	ip link set "fb-$short" netns ferry-br
	ip -n "$ns" link set "fl-$short" name eth0
	ip -n "$ns" addr add "$addr" dev eth0
	ip -n "$ns" link set eth0 up
	ip -n ferry-br link set "fb-$short" master br0
	ip -n ferry-br link set "fb-$short" up
}
for n in "${NODES[@]}"; do
	attach "ferry-$n" "$(node_addr "$n")/25"
	# The nodes reach the identity provider at the LB's public address.
	ip -n "ferry-$n" route add default via "$LB_INSIDE"
done
attach ferry-lb "$LB_INSIDE/25"
attach ferry-vpc "$VPC_SERVICE/25"

# The public link: this host <-> the LB's public address.
ip link add "$PUBLIC_IF" type veth peer name fl-pub
ip link set fl-pub netns ferry-lb
ip -n ferry-lb link set fl-pub name pub0
ip -n ferry-lb addr add "$PUBLIC_LB/30" dev pub0
ip -n ferry-lb link set pub0 up
ip addr add "$PUBLIC_HOST/30" dev "$PUBLIC_IF"
ip link set "$PUBLIC_IF" up

# The client machines: each its own link to the LB, whose public address
# is all they know of ferry.
for c in "${CLIENTS[@]}"; do
	ip link add "fl-$c" type veth peer name "lb-$c"
	ip link set "fl-$c" netns "ferry-$c"
	ip link set "lb-$c" netns ferry-lb
	ip -n "ferry-$c" link set "fl-$c" name eth0
	ip -n "ferry-$c" addr add "$(client_addr "$c")/30" dev eth0
	ip -n "ferry-$c" link set eth0 up
	ip -n "ferry-$c" route add default via "$(client_gw "$c")"
	ip -n ferry-lb addr add "$(client_gw "$c")/30" dev "lb-$c"
	ip -n ferry-lb link set "lb-$c" up
done

# ---------------------------------------------------------------------------
log "starting the demo OpenID Provider at https://$PUBLIC_LB:$IDP_PORT"
# Its own CA: ferryd accepts a plain-http issuer on loopback only.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 7 \
	-subj "/CN=ferry local demo IdP CA" -keyout "$DIR/idp/ca.key" -out "$DIR/idp/ca.crt" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
	-subj "/CN=$PUBLIC_LB" -keyout "$DIR/idp/tls.key" -out "$DIR/idp/tls.csr" 2>/dev/null
printf 'subjectAltName=IP:%s\nextendedKeyUsage=serverAuth\n' "$PUBLIC_LB" >"$DIR/idp/ext.cnf"
openssl x509 -req -in "$DIR/idp/tls.csr" -CA "$DIR/idp/ca.crt" -CAkey "$DIR/idp/ca.key" -CAcreateserial \
	-days 7 -extfile "$DIR/idp/ext.cnf" -out "$DIR/idp/tls.crt" 2>/dev/null
# ferryd has no oidc CA setting (yet): the nodes trust the demo CA through
# Go's SSL_CERT_FILE, the system bundle plus the demo CA.
cat /etc/ssl/certs/ca-certificates.crt "$DIR/idp/ca.crt" >"$DIR/idp/trust.pem" 2>/dev/null ||
	cp "$DIR/idp/ca.crt" "$DIR/idp/trust.pem"
(umask 077 && openssl rand -hex 24 >"$DIR/idp/client-secret")
ISSUER="https://$PUBLIC_LB:$IDP_PORT"
ip netns exec ferry-lb "$DIR/bin/devidp" --addr "$PUBLIC_LB:$IDP_PORT" --issuer "$ISSUER" \
	--client-id ferry --client-secret-file "$DIR/idp/client-secret" \
	--redirect-uri "https://$PUBLIC_LB/callback" --user bob:bob:engineering --user carol:carol:engineering \
	--cert "$DIR/idp/tls.crt" --key "$DIR/idp/tls.key" >"$DIR/idp/devidp.log" 2>&1 </dev/null &
echo $! >"$DIR/pids/devidp.pid"
wait_until 20 "the identity provider" \
	curl -sf --cacert "$DIR/idp/ca.crt" "$ISSUER/.well-known/openid-configuration"

# ---------------------------------------------------------------------------
# The SIEM: a real rsyslog in the VPC receiving RFC 5425 syslog over TLS and
# writing each message body (ferry's native JSON line, verifiable offline
# with "ferryctl audit verify") to siem/audit.jsonl. Skipped, with the sink,
# when rsyslog or its TLS driver (rsyslog-gnutls) is missing.
SIEM=0
RSYSLOGD="$(command -v rsyslogd || echo /usr/sbin/rsyslogd)"
if [[ -x $RSYSLOGD ]] && compgen -G "/usr/lib/*/rsyslog/lmnsd_gtls.so" >/dev/null; then
	SIEM=1
	log "starting the SIEM (rsyslog over TLS) at $VPC_SERVICE:$SIEM_PORT"
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-subj "/CN=$VPC_SERVICE" -keyout "$DIR/siem/tls.key" -out "$DIR/siem/tls.csr" 2>/dev/null
	printf 'subjectAltName=IP:%s\nextendedKeyUsage=serverAuth\n' "$VPC_SERVICE" >"$DIR/siem/ext.cnf"
	openssl x509 -req -in "$DIR/siem/tls.csr" -CA "$DIR/idp/ca.crt" -CAkey "$DIR/idp/ca.key" -CAcreateserial \
		-days 7 -extfile "$DIR/siem/ext.cnf" -out "$DIR/siem/tls.crt" 2>/dev/null
	cat >"$DIR/siem/rsyslog.conf" <<EOF
global(
  workDirectory="$DIR/siem"
  maxMessageSize="256k"
  defaultNetstreamDriver="gtls"
  defaultNetstreamDriverCAFile="$DIR/idp/ca.crt"
  defaultNetstreamDriverCertFile="$DIR/siem/tls.crt"
  defaultNetstreamDriverKeyFile="$DIR/siem/tls.key"
)
main_queue(queue.type="Direct")
module(load="imtcp" streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
input(type="imtcp" address="$VPC_SERVICE" port="$SIEM_PORT" ruleset="ferry")
template(name="body" type="string" string="%msg%\n")
ruleset(name="ferry" queue.type="Direct") {
  action(type="omfile" file="$DIR/siem/audit.jsonl" template="body")
}
EOF
	"$RSYSLOGD" -N1 -f "$DIR/siem/rsyslog.conf" >"$DIR/siem/check.log" 2>&1 ||
		die "rsyslogd rejects $DIR/siem/rsyslog.conf (see $DIR/siem/check.log)"
	ip netns exec ferry-vpc "$RSYSLOGD" -n -f "$DIR/siem/rsyslog.conf" -i "$DIR/siem/rsyslogd.pid" \
		>"$DIR/siem/rsyslogd.log" 2>&1 </dev/null &
	echo $! >"$DIR/pids/siem.pid"
	wait_until 20 "the SIEM" ip netns exec ferry-vpc bash -c "exec 3<>/dev/tcp/$VPC_SERVICE/$SIEM_PORT"
else
	log "no rsyslogd with its TLS driver (apt-get install rsyslog rsyslog-gnutls): running without the SIEM"
fi

# ---------------------------------------------------------------------------
# node_config N [first]: the whole ferryd.yaml of node N, replacing the
# minimal one init or join wrote (same files, plus the service sections).
node_config() {
	local n=$1 first=${2:-} addr
	addr="$(node_addr "$n")"
	cat <<EOF
# ferryd configuration of node $n, written by deploy/local/up.sh
# (see deploy/ferryd.example.yaml for every field).
node_id: $n
data_dir: data
master_key_file: $DIR/master.key
cluster:
  bind_addr: $addr:$CLUSTER_PORT
  bootstrap: $([[ -n $first ]] && echo true || echo false)
tls:
  ca_file: tls/ca.crt
  cert_file: tls/node.crt
  key_file: tls/node.key
$([[ -n $first ]] && echo "  ca_key_file: tls/ca.key")
api:
  listen_addr: $addr:$API_PORT
  cert_file: tls/api.crt
  key_file: tls/api.key
  public_url: https://$PUBLIC_LB
  names: [$PUBLIC_LB, $(node_addr n1), $(node_addr n2), $(node_addr n3)]
metrics:
  listen_addr: $addr:$METRICS_PORT
log:
  level: info
  format: text
oidc:
  issuer: $ISSUER
  client_id: ferry
  client_secret_file: $DIR/idp/client-secret
sessions:
  admin_groups: [ferry-admins]
profiles:
  pool: 100.64.0.0/16
wireguard:
  enabled: true
  interface: ferry-$n
  listen_port: $WG_PORT
  endpoint: $PUBLIC_LB:$WG_PORT
audit:
  # Short, for a demo: a signed checkpoint at least every 20 s, so what the
  # SIEM received verifies with signatures minutes sooner than the default.
  checkpoint_interval: 20s
  sinks:
    - name: local-file
      type: file
      format: json
      path: $DIR/$n/audit.jsonl
$(siem_sink)
EOF
}

# siem_sink: the syslog sink toward the SIEM, when there is one.
siem_sink() {
	[[ $SIEM == 1 ]] || return 0
	cat <<EOF
    - name: siem
      type: syslog
      format: json
      addr: $VPC_SERVICE:$SIEM_PORT
      ca_file: $DIR/idp/ca.crt
EOF
}

# start_node N: ferryd run in N's namespace, in the background.
start_node() {
	local n=$1
	ip netns exec "ferry-$n" env SSL_CERT_FILE="$DIR/idp/trust.pem" \
		"$FERRYD" run --config "$DIR/$n/ferryd.yaml" >>"$DIR/$n/ferryd.log" 2>&1 </dev/null &
	echo $! >"$DIR/pids/$n.pid"
}

node_ready() {
	local n=$1
	ip netns exec "ferry-$n" curl -sf --cacert "$DIR/n1/tls/ca.crt" "https://$(node_addr "$n"):$API_PORT/readyz"
}

# ---------------------------------------------------------------------------
log "n1: ferryd init, then ferryd run"
"$FERRYD" init --dir "$DIR/n1" --data-dir data --node-id n1 \
	--cluster-addr "$(node_addr n1):$CLUSTER_PORT" --api-addr "$(node_addr n1):$API_PORT" \
	--api-name "$PUBLIC_LB" --api-name "$(node_addr n1)" \
	--metrics-addr "$(node_addr n1):$METRICS_PORT" --public-url "https://$PUBLIC_LB" >"$DIR/n1.init.out"
# The other nodes need a copy of the master key; join refuses a --dir that
# already holds a master.key, so the copy lives beside the node directories.
install -m 0600 "$DIR/n1/master.key" "$DIR/master.key"
node_config n1 first >"$DIR/n1/ferryd.yaml"
start_node n1
wait_until 60 "n1 to become ready (see $DIR/n1/ferryd.log)" node_ready n1

for n in n2 n3; do
	log "$n: ferryd join, then ferryd run"
	addr="$(node_addr "$n")"
	# A token admits one node, once: one per node, bound to it.
	(umask 077 && "$FERRYD" token --config "$DIR/n1/ferryd.yaml" --ttl 15m --node-id "$n" >"$DIR/$n.token" 2>/dev/null)
	# join keeps running the node once it has joined, with the config it
	# wrote; stop it there and restart with deploy/local's (data plane,
	# audit sinks), as an operator hands a joined node over to systemd.
	ip netns exec "ferry-$n" env SSL_CERT_FILE="$DIR/idp/trust.pem" \
		"$FERRYD" join --server "https://$(node_addr n1):$API_PORT" --token-file "$DIR/$n.token" \
		--dir "$DIR/$n" --data-dir data --node-id "$n" \
		--cluster-addr "$addr:$CLUSTER_PORT" --api-addr "$addr:$API_PORT" \
		--api-name "$PUBLIC_LB" --api-name "$addr" --metrics-addr "$addr:$METRICS_PORT" \
		--master-key-file "$DIR/master.key" --oidc-client-secret-file "$DIR/idp/client-secret" \
		--log-format text >"$DIR/$n.join.out" 2>"$DIR/$n.join.log" </dev/null &
	join_pid=$!
	echo "$join_pid" >"$DIR/pids/$n.pid"
	wait_until 120 "$n to join (see $DIR/$n.join.log)" grep -q "Joined the cluster" "$DIR/$n.join.out"
	stop_pid "$join_pid"
	wait "$join_pid" || true
	node_config "$n" >"$DIR/$n/ferryd.yaml"
	start_node "$n"
	wait_until 60 "$n to become ready (see $DIR/$n/ferryd.log)" node_ready "$n"
done

# ---------------------------------------------------------------------------
log "starting nginx (stream) in ferry-lb, and its health checks"
nginx_conf "$DIR" >"$DIR/lb/nginx.conf"
ip netns exec ferry-lb "$NGINX" -t -q -p "$DIR/lb" -e "$DIR/lb/error.log" -c "$DIR/lb/nginx.conf"
ip netns exec ferry-lb "$NGINX" -p "$DIR/lb" -e "$DIR/lb/error.log" -c "$DIR/lb/nginx.conf"
wait_until 10 "nginx" test -s "$DIR/lb/nginx.pid"
cp "$DIR/lb/nginx.pid" "$DIR/pids/nginx.pid"
ip netns exec ferry-lb "$HERE/lbcheck.sh" "$DIR" "$NGINX" >"$DIR/lb/lbcheck.log" 2>&1 </dev/null &
echo $! >"$DIR/pids/lbcheck.pid"
wait_until 20 "the API through the load balancer" \
	curl -sf --cacert "$DIR/n1/tls/ca.crt" "https://$PUBLIC_LB/readyz"

# ---------------------------------------------------------------------------
log "starting the VPC services on $VPC_SERVICE:80 and :8080"
echo "hello from the VPC (10.200.0.100), reached through ferry" >"$DIR/vpc/www/index.html"
for port in 80 8080; do
	ip netns exec ferry-vpc python3 -m http.server "$port" --bind "$VPC_SERVICE" \
		--directory "$DIR/vpc/www" >"$DIR/vpc/http-$port.log" 2>&1 </dev/null &
	echo $! >"$DIR/pids/vpc-$port.pid"
done
wait_until 20 "the VPC web service" ip netns exec ferry-vpc curl -sf "http://$VPC_SERVICE/"

# A profile file for the administrator to apply: group engineering may
# reach the web service on port 80 (and ping it), not 8080.
cat >"$DIR/profiles.yaml" <<EOF
profiles:
  - name: engineering
    description: Engineers reach the demo VPC web service
    rules:
      - {cidr: $VPC_SERVICE/32, protocol: tcp, ports: [80]}
      - {cidr: $VPC_SERVICE/32, protocol: icmp}
    max_session: 12h
    groups: [engineering]
EOF

trap - ERR
cat <<EOF

ferry local cluster is up. State and logs: $DIR

  load balancer   https://$PUBLIC_LB (TCP 443 -> :$API_PORT), udp $PUBLIC_LB:$WG_PORT (nginx in ferry-lb)
  nodes           n1 $(node_addr n1), n2 $(node_addr n2), n3 $(node_addr n3) (ferry-n1..3; logs $DIR/nN/ferryd.log)
  identity        $ISSUER  users demo/demo (admin), alice/alice, bob/bob, carol/carol
  VPC service     http://$VPC_SERVICE/ and :8080 (ferry-vpc, in $VPC_CIDR: not routed from this host)
  SIEM            $([[ $SIEM == 1 ]] && echo "rsyslog over TLS at $VPC_SERVICE:$SIEM_PORT, received records in $DIR/siem/audit.jsonl" || echo "none (rsyslog or rsyslog-gnutls missing)")
  clients         namespaces ferry-c1 $(client_addr c1), ferry-c2 $(client_addr c2) (ip netns exec ferry-c1 ...), and this host
  health checks   $DIR/lb/health.log (lbcheck.sh marks nodes whose /readyz fails down in nginx)
  CA of the API   $DIR/n1/tls/ca.crt

Try (as root; the browser must trust, or you accept, $DIR/idp/ca.crt and the ferry CA):

  export PATH=$DIR/bin:\$PATH XDG_CONFIG_HOME=$DIR/ctl
  curl --cacert $DIR/n1/tls/ca.crt https://$PUBLIC_LB/readyz
  ip netns exec ferry-n1 curl -s http://$(node_addr n1):$METRICS_PORT/metrics | grep -E '^ferry_cluster_(raft_state|voters)'

  # administrator (demo/demo): sign in, apply the demo profile
  ferryctl login https://$PUBLIC_LB --ca $DIR/n1/tls/ca.crt
  ferryctl profile apply -f $DIR/profiles.yaml
  ferryctl profile list

  # employee (alice/alice): sign in, connect, reach the VPC through the tunnel
  ferry --config-dir $DIR/client login https://$PUBLIC_LB --ca $DIR/n1/tls/ca.crt
  ferry --config-dir $DIR/client up --embedded
  curl http://$VPC_SERVICE/           # allowed by the profile
  curl -m 5 http://$VPC_SERVICE:8080/ # not allowed: times out, counted in ferry_tunnel_drops_total{reason="policy"}
  ferry --config-dir $DIR/client down

  No browser here? $HERE/signin.py signs in headlessly: pass it the address
  that login prints (add --no-browser), see $HERE/README.md.

  # failure drills (see $HERE/README.md)
  $HERE/node.sh kill n2       # then: $HERE/node.sh start n2
  $HERE/node.sh restart n3    # one step of a rolling restart
  ferryctl audit key > $DIR/audit-key.json
  ferryctl audit verify $DIR/siem/audit.jsonl --key $DIR/audit-key.json --no-trailer

Stop everything: $HERE/down.sh
EOF

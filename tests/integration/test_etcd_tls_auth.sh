#!/usr/bin/env bash
# etcd with TLS client certificates (--client-cert-auth) and auth on (users root, flannel with
# READWRITE on /coreos.com/network/, intruder with no role):
#  - h1: a client certificate without CN plus --etcd-username/--etcd-password flannel: twilld
#    gets its lease, twillctl leases lists it;
#  - h2: a client certificate whose CN is "flannel", no username or password (on gRPC the CN
#    names the etcd user, docs/etcd.md): twilld gets its lease, twillctl leases lists both;
#  - refused: the CN-less certificate without a password, and a certificate whose CN names a
#    user without permission (intruder) - so the CN really is the identity used;
#  - libcurl (loaded at run time for https://) is mapped in twilld; with libcurl.so.4 hidden,
#    twilld says what to install.
set -euo pipefail
# shellcheck source=tests/integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/lib_curl.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib_curl.sh"

TLS=$TW_DIR/tls
mkdir -p "$TLS"
TW_ETCD_URL=https://$TW_ETCD_IP:2379

# make_certs: a CA, the server certificate (SAN 192.0.2.100, 127.0.0.1) and client
# certificates nocn (O=twill-test), flannel (CN=flannel), intruder (CN=intruder).
make_certs() {
	local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes) c
	(
		cd "$TLS"
		printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=IP:%s,IP:127.0.0.1\n' \
			"$TW_ETCD_IP" >server.ext
		printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n' >client.ext
		openssl req -x509 "${ec[@]}" -keyout ca.key -out ca.crt -days 2 -subj /CN=twill-test-ca
		openssl req "${ec[@]}" -keyout server.key -out server.csr -subj /CN=etcd-server
		openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt \
			-days 2 -extfile server.ext
		for c in nocn:/O=twill-test flannel:/CN=flannel intruder:/CN=intruder; do
			openssl req "${ec[@]}" -keyout "${c%%:*}.key" -out "${c%%:*}.csr" -subj "${c#*:}"
			openssl x509 -req -in "${c%%:*}.csr" -CA ca.crt -CAkey ca.key -CAcreateserial \
				-out "${c%%:*}.crt" -days 2 -extfile client.ext
		done
	) >"$TW_DIR/logs/openssl.log" 2>&1 || { show_log "$TW_DIR/logs/openssl.log"; fail "openssl"; }
}

# etcdctl_run (lib.sh's readers use it): as root, with the CN-less certificate.
etcdctl_run() {
	ip netns exec "$(ns_etcd)" etcdctl --endpoints https://127.0.0.1:2379 --cacert "$TLS/ca.crt" \
		--cert "$TLS/nocn.crt" --key "$TLS/nocn.key" ${TW_ROOT:+--user "$TW_ROOT"} \
		--dial-timeout 2s --command-timeout 5s "$@"
}

_etcd_tls_healthy() {
	etcdctl_run endpoint health >/dev/null 2>&1
}

# tls_flags CERT: twilld/twillctl flags for client certificate CERT.
tls_flags() {
	echo "--etcd-cafile=$TLS/ca.crt --etcd-certfile=$TLS/$1.crt --etcd-keyfile=$TLS/$1.key"
}

# ctl I CERT [ARGS...]: twillctl in host I with client certificate CERT.
ctl() {
	local i=$1 c=$2
	shift 2
	# shellcheck disable=SC2046
	ip netns exec "$(ns_host "$i")" "$TWILLCTL" --etcd-endpoints "$TW_ETCD_URL" $(tls_flags "$c") "$@"
}

make_topology 2 etcd
make_certs
data=$(mktemp -d "$TW_DIR/etcd.XXXXXX")
bg_start "$(ns_etcd)" "$TW_DIR/logs/etcd.log" etcd \
	etcd --name "$TW_PREFIX" --data-dir "$data" \
	--listen-client-urls "$TW_ETCD_URL,https://127.0.0.1:2379" --advertise-client-urls "$TW_ETCD_URL" \
	--listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
	--initial-cluster "$TW_PREFIX=http://127.0.0.1:2380" --initial-cluster-token "$TW_PREFIX" \
	--cert-file "$TLS/server.crt" --key-file "$TLS/server.key" --client-cert-auth \
	--trusted-ca-file "$TLS/ca.crt" --logger zap --log-level warn
wait_for --timeout 15 _etcd_tls_healthy || fail "etcd (TLS) not healthy after 15 s"
log "etcd with TLS client certificates up at $TW_ETCD_URL (${TW_WAITED_MS} ms)"
put_net_config "$(net_config_json vxlan)"
{
	etcdctl_run user add root:rootpw
	etcdctl_run role add root
	etcdctl_run user grant-role root root
	etcdctl_run user add flannel:flpw
	etcdctl_run role add flannel
	etcdctl_run role grant-permission flannel --prefix=true readwrite "$TW_ETCD_PREFIX/"
	etcdctl_run user grant-role flannel flannel
	etcdctl_run user add intruder:intrpw
	etcdctl_run auth enable
} >"$TW_DIR/logs/auth-setup.log" 2>&1 || { show_log "$TW_DIR/logs/auth-setup.log"; fail "auth setup"; }
TW_ROOT=root:rootpw
log "auth on: root, flannel (readwrite $TW_ETCD_PREFIX/), intruder (no role)"

# h1: no CN, user and password
# shellcheck disable=SC2046
start_twilld 1 $(tls_flags nocn) --etcd-username=flannel --etcd-password=flpw
wait_twilld_ready 1 15
assert_lease 1 vxlan
assert_libcurl 1 yes
out=$(ctl 1 nocn --etcd-username=flannel --etcd-password=flpw leases 2>&1) || fail "twillctl leases (no CN, password): $out"
grep -qF "$(host_subnet 1)" <<<"$out" || fail "twillctl leases (no CN) does not list h1's $(host_subnet 1): $out"
log "no CN + password: twilld h1 holds $(host_subnet 1), twillctl leases lists it"

# h2: CN=flannel, no password
# shellcheck disable=SC2046
start_twilld 2 $(tls_flags flannel)
wait_twilld_ready 2 15
assert_lease 2 vxlan
assert_distinct_subnets 1 2
out=$(ctl 2 flannel leases 2>&1) || fail "twillctl leases (CN=flannel): $out"
for i in 1 2; do
	grep -qF "$(host_subnet "$i")" <<<"$out" || fail "twillctl leases (CN=flannel) does not list h$i's $(host_subnet "$i"): $out"
done
log "CN=flannel, no password: twilld h2 holds $(host_subnet 2), twillctl leases lists both"
wait_state 5 1 2

# refusals: the identity really comes from the password or the CN
if out=$(ctl 1 nocn leases 2>&1); then
	fail "twillctl leases with a CN-less certificate and no password succeeded: $out"
fi
log "no CN, no password: refused ($(head -n 1 <<<"$out" | cut -c1-120))"
if out=$(ctl 1 intruder leases 2>&1); then
	fail "twillctl leases with CN=intruder (a user without permission) succeeded: $out"
fi
grep -qi 'permission denied' <<<"$out" || fail "CN=intruder: expected 'permission denied', got: $out"
log "CN=intruder: refused ($(head -n 1 <<<"$out" | cut -c1-120))"
finish_twilld_all

# no libcurl: the https:// request fails with the reason and what to install
# shellcheck disable=SC2046
start_twilld_nocurl 1 $(tls_flags flannel)
_nocurl_logged() { grep -q 'need libcurl (libcurl.so.4, Debian package libcurl4)' "$(twilld_log 1)"; }
wait_for --timeout 15 _nocurl_logged || { show_log "$(twilld_log 1)" 20; fail "twilld without libcurl: no message naming libcurl4"; }
log "without libcurl: $(grep -m1 -o 'need libcurl.*' "$(twilld_log 1)" | cut -c1-160)"
stop_twilld 1
log "PASS"

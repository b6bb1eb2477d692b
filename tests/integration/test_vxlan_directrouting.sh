#!/usr/bin/env bash
# twilld, vxlan backend with DirectRouting: h1 and h2 share an underlay segment (192.0.2.0/24),
# h3 sits on another one (198.51.100.0/24) behind a router. Between h1 and h2 the remote subnet
# is routed "via <PublicIP> dev eth0" (no neighbour or fdb), to and from h3 through flannel.1
# (neighbour, fdb, onlink route). Every pair of containers on different hosts pings, the h1-h2
# traffic really bypasses flannel.1, and released leases disappear within 1 s.
set -euo pipefail
# shellcheck source=tests/integration/lib.sh disable=SC2034
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TW_MODE=vxlan-direct
TW_ROUTED_HOSTS=3
cluster_up 3 3 "$(net_config_json vxlan '"DirectRouting":true')"
for i in 1 2 3; do
	assert_subnet_file "$i" 1450
	assert_lease "$i" vxlan
	assert_vxlan_device "$i"
done
wait_state 3 1 2 3
ping_all_pairs 2 1 2 3

# h1 -> h2 goes direct (flannel.1 sends nothing), h1 -> h3 through flannel.1
vx_tx() {
	ip -n "$(ns_host 1)" -j -s link show "$TW_VXLAN_DEV" | jq '.[0].stats64.tx.packets'
}
before=$(vx_tx)
ip netns exec "$(ns_cont 1 1)" ping -n -q -c 5 -i 0.05 -w 3 "$(cont_ip 2 1)" >/dev/null || fail "ping h1c1 -> h2c1"
after=$(vx_tx)
[ $((after - before)) -lt 5 ] || fail "h1 -> h2 with DirectRouting: $((after - before)) packets went through $TW_VXLAN_DEV"
before=$(vx_tx)
ip netns exec "$(ns_cont 1 1)" ping -n -q -c 5 -i 0.05 -w 3 "$(cont_ip 3 1)" >/dev/null || fail "ping h1c1 -> h3c1"
after=$(vx_tx)
[ $((after - before)) -ge 5 ] || fail "h1 -> h3 (routed segment): only $((after - before)) packets through $TW_VXLAN_DEV"
log "h1->h2 bypasses $TW_VXLAN_DEV, h1->h3 goes through it"

# releases: a direct peer and an encapsulated one
for i in 2 3; do
	sub=$(host_subnet "$i")
	stop_twilld "$i"
	t0=$(now_ms)
	etcdctl_run del "$(lease_key "$sub")" >/dev/null
	wait_state 1 1
	log "lease $sub of h$i released: gone on h1 in $(($(now_ms) - t0)) ms"
done
finish_twilld_all
log "PASS"

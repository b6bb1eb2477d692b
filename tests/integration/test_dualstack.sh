#!/usr/bin/env bash
# Dual-stack (EnableIPv6), 3 hosts with an IPv6 underlay (2001:db8:0:1::/64) on one topology,
# real etcd, three configs in turn: vxlan, vxlan with DirectRouting, host-gw. For each: every
# container pair pings over IPv4 and IPv6, the kernel's IPv4 and IPv6 routes, neighbours and fdb
# entries equal the leases exactly, and an IPv6 ping as large as FLANNEL_MTU allows crosses with
# DF set. vxlan also: leases and flannel-v6.1 as flannel makes them, /metrics and /readyz,
# `ip -6 route flush dev flannel-v6.1` (h1 runs plain routes: flush cannot delete routes that
# use nexthop objects) and a deleted flannel-v6.1 repaired, a restart loses no IPv6 ping, a
# released lease's IPv6 state gone within 1 s, a lease without BackendV6Data keeps its IPv4 half,
# a host without an IPv6 address writes no lease until it has one.
set -euo pipefail
# shellcheck source=tests/integration/lib.sh disable=SC2034
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/lib_dualstack.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib_dualstack.sh"

PORT=9465
HZ=(--healthz-ip=127.0.0.1 --healthz-port=$PORT)

# start_all: twilld on h1..h3 (h1 with plain routes), ready, containers with both families.
start_all() {
	local i
	TWILL_NEXTHOPS=0 start_twilld 1 "${HZ[@]}"
	start_twilld 2 "${HZ[@]}"
	start_twilld 3 "${HZ[@]}"
	for i in 1 2 3; do
		wait_twilld_ready "$i" 15
	done
	assert_distinct_subnets 1 2 3
}

# big_pings MTU HOST...: from h<first>c1 to c1 of every other host, the largest ICMP echo that
# fits MTU, DF set, over IPv6 and IPv4.
big_pings() {
	local mtu=$1 a=$2 b
	shift 2
	for b in "$@"; do
		ip netns exec "$(ns_cont "$a" 1)" ping -6 -n -q -M do -s $((mtu - 48)) -c 1 -w 3 \
			"$(cont_ip6 "$b" 1)" >/dev/null ||
			fail "IPv6 ping -M do -s $((mtu - 48)) h${a}c1 -> h${b}c1 (FLANNEL_MTU $mtu) failed"
		ip netns exec "$(ns_cont "$a" 1)" ping -n -q -M do -s $((mtu - 28)) -c 1 -w 3 \
			"$(cont_ip "$b" 1)" >/dev/null ||
			fail "IPv4 ping -M do -s $((mtu - 28)) h${a}c1 -> h${b}c1 (FLANNEL_MTU $mtu) failed"
	done
	log "pings of FLANNEL_MTU $mtu bytes (IPv6 payload $((mtu - 48))) crossed with DF set"
}

# metric I NAME: the value of NAME on host I's /metrics.
metric() {
	ip netns exec "$(ns_host "$1")" curl -sf -m 3 "http://127.0.0.1:$PORT/metrics" |
		awk -v n="$2" '$1 == n { print $2 }'
}

# restart_world CONFIG: stop every twilld, drop the leases, new config, start again.
restart_world() {
	local i
	for i in 1 2 3; do stop_twilld "$i"; done
	etcdctl_run del --prefix "$TW_ETCD_PREFIX/subnets/" >/dev/null
	put_net_config "$1"
	start_all
}

# --- vxlan ----------------------------------------------------------------------------------------
TW_MODE=vxlan
make_topology 4 etcd
ds_underlay6 1 2 3
start_etcd
put_net_config "$(ds_config vxlan)"
start_all
for i in 1 2 3; do
	setup_containers "$i" 2
	ds_setup_containers6 "$i" 2
done
for i in 1 2 3; do
	f=$(subnet_file "$i")
	assert_eq "$(cat "$f")" "$(printf 'FLANNEL_NETWORK=%s\nFLANNEL_SUBNET=%s\nFLANNEL_IPV6_NETWORK=%s\nFLANNEL_IPV6_SUBNET=%s\nFLANNEL_MTU=1430\nFLANNEL_IPMASQ=false' \
		"$TW_OVERLAY" "$(subnet_var "$i" FLANNEL_SUBNET)" "$TW_OVERLAY6" "$(host_subnet6 "$i" | sed 's|::/|::1/|')")" "h$i subnet file"
	ds_assert_lease6 "$i" vxlan
	got=$(ip -n "$(ns_host "$i")" -j -d addr show "$TW_VXLAN6_DEV" | jq -r '.[0] | .linkinfo.info_data as $d
		| "id \($d.id) local6 \($d.local6) link \($d.link) port \($d.port) learning \($d.learning) mtu \(.mtu) addr \([.addr_info[] | select(.scope == "global") | "\(.local)/\(.prefixlen)"] | join(","))"')
	assert_eq "$got" "id 1 local6 $(host_ip6 "$i") link eth0 port 8472 learning false mtu 1430 addr $(host_subnet6 "$i" | sed 's|/64|/128|')" "h$i $TW_VXLAN6_DEV"
	assert_eq "$(ip -n "$(ns_host "$i")" -j link show "$TW_VXLAN_DEV" | jq '.[0].mtu')" 1430 "h$i $TW_VXLAN_DEV MTU"
done
log "subnet files, leases (PublicIPv6, BackendV6Data) and $TW_VXLAN6_DEV as flannel makes them, one MTU 1430"
wait_state 5 1 2 3
ds_wait_state6 5 1 2 3
ds_ping_all_pairs 1 2 3
big_pings 1430 1 2 3

for i in 1 2 3; do
	assert_eq "$(metric "$i" twill_ipv6_kernel_objects)" 6 "h$i twill_ipv6_kernel_objects"
	assert_eq "$(metric "$i" twill_ipv6_remote_leases)" 2 "h$i twill_ipv6_remote_leases"
	assert_eq "$(ip netns exec "$(ns_host "$i")" curl -s -m 3 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/readyz")" 200 "h$i /readyz"
done
log "/metrics counts the IPv6 objects, /readyz 200"

# --- a host without an IPv6 address (and no --public-ipv6): a clear error, no lease ------------
start_twilld 4
wait_for --timeout 5 grep -q 'EnableIPv6: interface eth0 has no global IPv6 address and --public-ipv6 is not set' "$(twilld_log 4)" ||
	{ show_log "$(twilld_log 4)" 20; fail "h4: no error naming eth0 and --public-ipv6"; }
assert_eq "$(lease_count)" 3 "leases while h4 has no IPv6 address"
ip -n "$(ns_host 4)" -6 addr add "$(host_ip6 4)/64" dev eth0 nodad
wait_twilld_ready 4 10 # retried every 5 s
ds_assert_lease6 4 vxlan
ds_wait_state6 2 1 2 3 4
stop_twilld 4
etcdctl_run del "$(lease_key "$(host_subnet 4)")&$(host_subnet6 4 | tr / -)" >/dev/null
ds_wait_state6 2 1 2 3
log "h4 without IPv6: error naming eth0 and --public-ipv6, no lease; with an address: leased and programmed"

# --- repairs ------------------------------------------------------------------------------------
ip -n "$(ns_host 1)" -6 route flush dev "$TW_VXLAN6_DEV" || fail "ip -6 route flush on h1"
ds_wait_state6 2 1
ip -n "$(ns_host 2)" link del "$TW_VXLAN6_DEV" || fail "ip link del $TW_VXLAN6_DEV on h2"
ds_wait_state6 2 2
ping6_ok "$(ns_cont 2 1)" "$(cont_ip6 1 1)" 3 || fail "h2c1 -> h1c1 over IPv6 after the repair"
log "IPv6 route flush (h1) and a deleted $TW_VXLAN6_DEV (h2) repaired"

# --- a lease without BackendV6Data: its IPv4 half is programmed, warned once ---------------------
etcdctl_run put "$(lease_key 198.18.250.0/24)&2001:db8:100:fa::-64" \
	'{"PublicIP":"192.0.2.50","PublicIPv6":"2001:db8:0:1::50","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"0a:00:00:00:fa:50"}}' >/dev/null
wait_state 2 1 2 3
ds_wait_state6 2 1 2 3
etcdctl_run del "$(lease_key 198.18.250.0/24)&2001:db8:100:fa::-64" >/dev/null
wait_state 2 1 2 3
n=$(grep -c 'lease 198.18.250.0-24&2001:db8:100:fa::-64: IPv6 half skipped' "$(twilld_log 1)" || true)
assert_eq "$n" 1 "h1 warnings for the lease without BackendV6Data"
assert_eq "$(metric 1 twill_ipv6_bad_leases_total)" 1 "h1 twill_ipv6_bad_leases_total"
log "a lease without BackendV6Data: IPv4 half programmed, IPv6 half skipped, warned once, counted"

# --- a restart loses no IPv6 ping ---------------------------------------------------------------
ping_start "$(ns_cont 1 1)" "$(cont_ip6 3 1)" v6restart
ping_wait_replies v6restart 5
restart_twilld 3 TERM "${HZ[@]}"
ping_wait_replies v6restart 10
ping_stop_lossless v6restart

# --- a released lease: its IPv6 state gone within 1 s -------------------------------------------
stop_twilld 3
t0=$(now_ms)
etcdctl_run del "$(lease_key "$(host_subnet 3)")&$(host_subnet6 3 | tr / -)" >/dev/null
ds_wait_state6 1 1 2
wait_state 1 1 2
log "released lease of h3: IPv4 and IPv6 state gone on h1, h2 in $(($(now_ms) - t0)) ms"

# --- vxlan with DirectRouting: all hosts on one segment, so direct routes for both families ------
TW_MODE=vxlan-direct
restart_world "$(ds_config vxlan '"DirectRouting":true')"
wait_state 5 1 2 3
ds_wait_state6 5 1 2 3
ds_ping_all_pairs 1 2 3
big_pings 1430 1 2 3

# --- host-gw ------------------------------------------------------------------------------------
TW_MODE=host-gw
for i in 1 2 3; do
	stop_twilld "$i"
	ip -n "$(ns_host "$i")" link del "$TW_VXLAN_DEV"
	ip -n "$(ns_host "$i")" link del "$TW_VXLAN6_DEV"
	# DirectRouting's nexthops on eth0 belong to vxlan: an operator switching backends drops them
	ip -n "$(ns_host "$i")" nexthop flush >/dev/null
done
restart_world "$(ds_config host-gw)"
for i in 1 2 3; do
	ds_assert_lease6 "$i" host-gw
	assert_eq "$(subnet_var "$i" FLANNEL_MTU)" 1500 "h$i FLANNEL_MTU with host-gw"
	h=$(ns_host "$i")
	ip -n "$h" link set "$TW_BRIDGE" mtu 1500 # as the container runtime would, from FLANNEL_MTU
	for j in 1 2; do
		ip -n "$h" link set "c$j" mtu 1500
		ip -n "$(ns_cont "$i" "$j")" link set eth0 mtu 1500
	done
done
wait_state 5 1 2 3
ds_wait_state6 5 1 2 3
ds_ping_all_pairs 1 2 3
big_pings 1500 1 2 3

finish_twilld_all
log PASS

#!/usr/bin/env bash
# udp backend with IPv6 (EnableIPv6), 3 hosts driven through the backend ops by
# bench_dataplane_node: flannel0 gets the own IPv6 subnet address (/128) and a route for the
# IPv6 Network; IPv4 and IPv6 pings cross every ordered pair of containers; an IPv6 TCP
# transfer arrives byte for byte; an IPv6 destination without a lease answers ICMPv6
# unreachable; hop limit 1 is dropped; a peer whose lease has no BackendV6Data (what
# flanneld writes) gets no IPv6: ICMPv6 unreachable to the sender, drops counted as
# peer_ipv4_only, one log line per peer, IPv4 to it unaffected, IPv6 back once it takes it; a
# restart removes a stale IPv6 address from flannel0.
set -euo pipefail
# shellcheck source=tests/integration/lib.sh disable=SC2034
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/lib_udp.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib_udp.sh"

UDP_IPV6=1
make_topology 3
for i in 1 2 3; do
	start_node "$i"
	setup_containers "$i" 1
	setup_cont6 "$i"
done
for i in 1 2 3; do
	h=$(ns_host "$i")
	got=$(ip -n "$h" -6 -j addr show dev flannel0 scope global |
		jq -c '[.[].addr_info[] | select(.family == "inet6") | "\(.local)/\(.prefixlen)"]')
	assert_eq "$got" "[\"2001:db8:100:$i::/128\"]" "h$i flannel0 IPv6 addresses"
	got=$(ip -n "$h" -6 -j route show 2001:db8:100::/48 | jq -r '.[0].dev // "none"')
	assert_eq "$got" flannel0 "h$i route to the IPv6 Network"
	assert_eq "$(stat "$i" twill_udp_table_routes6)" 2 "h$i IPv6 routes"
done

# Every ordered pair, both families.
bad=()
for a in 1 2 3; do
	for b in 1 2 3; do
		[ "$a" != "$b" ] || continue
		ping_ok "$(ns_cont "$a" 1)" "$(cont_ip "$b" 1)" 3 || bad+=("IPv4 h$a->h$b")
		ping_ok "$(ns_cont "$a" 1)" "$(cont_ip6 "$b")" 3 || bad+=("IPv6 h$a->h$b")
	done
done
[ ${#bad[@]} = 0 ] || fail "pings failed: ${bad[*]}"
log "IPv4 and IPv6 pings: 6 of 6 ordered pairs each"

tcp_transfer "$(ns_cont 1 1)" "$(ns_cont 2 1)" "$(cont_ip6 2)" $((16 * 1024 * 1024))
wait_stat 2 twill_udp_rx_packets_total 10000 # 16 MiB in packets of < 1500 bytes

# No lease for an IPv6 destination inside the Network: ICMPv6 unreachable (no route).
i0=$(stat 1 twill_udp_icmp_unreach_sent_total)
out=$(ip netns exec "$(ns_cont 1 1)" ping -n -c 1 -W 2 2001:db8:100:77::7 2>&1 || true)
[[ $out == *"Destination unreachable: No route"* ]] || fail "no ICMPv6 unreachable: $out"
wait_stat 1 twill_udp_icmp_unreach_sent_total $((i0 + 1))

# Hop limit 1 from h1 itself: dropped and counted.
t0=$(drops 1 tun ttl)
ip netns exec "$(ns_host 1)" ping -n -c 1 -t 1 -W 1 "$(cont_ip6 2)" >/dev/null 2>&1 &&
	fail "ping with hop limit 1 got an answer"
wait_stat 1 'twill_udp_drops_total{dir="tun",reason="ttl"}' $((t0 + 1))

# h3 as an IPv4-only peer (its lease without BackendV6Data, as flanneld writes it).
for _ in 1 2; do
	node_cmd 1 "add $(host_sub 3) $(host_ip 3) udp 2001:db8:100:3::/64/v4only"
done
wait_stat 1 twill_udp_peers_ipv4_only 1
out=$(ip netns exec "$(ns_cont 1 1)" ping -n -c 1 -W 2 "$(cont_ip6 3)" 2>&1 || true)
[[ $out == *"Destination unreachable"* ]] || fail "IPv6 to an IPv4-only peer: $out"
wait_stat 1 'twill_udp_drops_total{dir="tun",reason="peer_ipv4_only"}' 1
ping_ok "$(ns_cont 1 1)" "$(cont_ip 3 1)" 3 || fail "IPv4 to the IPv4-only peer broken"
# A changed lease of the same peer: still one log line for it.
u0=$(stat 1 twill_udp_table_updates_total)
node_cmd 1 "add $(host_sub 3) $(host_ip 3) udp 2001:db8:100:4::/64/v4only"
wait_stat 1 twill_udp_table_updates_total $((u0 + 1))
n=$(grep -c "peer $(host_ip 3) .* takes IPv4 only" "$TW_DIR/logs/node-h1.log" || true)
assert_eq "$n" 1 "log lines about the IPv4-only peer $(host_ip 3)"
node_cmd 1 "add $(host_sub 3) $(host_ip 3) udp 2001:db8:100:3::/64"
wait_for --timeout 5 eval "[ \$(stat 1 twill_udp_peers_ipv4_only) = 0 ]" || fail "h3 still IPv4-only"
ping_ok "$(ns_cont 1 1)" "$(cont_ip6 3)" 3 || fail "IPv6 to h3 not back once its lease takes IPv6"

# Restart with a stale IPv6 address on flannel0 (a former own subnet): it is removed, the own
# address stays, and IPv6 crosses again.
ip -n "$(ns_host 1)" addr add 2001:db8:100:99::/128 dev flannel0 nodad
stop_node 1
start_node 1
got=$(ip -n "$(ns_host 1)" -6 -j addr show dev flannel0 scope global |
	jq -c '[.[].addr_info[] | select(.family == "inet6") | .local]')
assert_eq "$got" '["2001:db8:100:1::"]' "h1 flannel0 IPv6 addresses after restart"
ping_ok "$(ns_cont 1 1)" "$(cont_ip6 2)" 3 || fail "IPv6 h1 -> h2 after restart"
log "PASS"

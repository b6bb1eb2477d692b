#!/usr/bin/env bash
# twilld, udp backend, EnableIPv6, 3 hosts (IPv6 also on the underlay, for PublicIPv6): each
# lease key has its IPv6 part and the value BackendV6Data {"Port":8285} (the mark of a node
# that carries IPv6 over udp; flanneld's udp ignores it); flannel0 holds the own IPv6 subnet
# address and the IPv6 Network route; IPv4 and IPv6 pings cross every pair of containers; a
# /metrics counts the IPv6 leases and /readyz is 200; a lease written as flanneld's udp writes
# it (IPv6 key part, no BackendV6Data) is counted (twill_ipv6_bad_leases_total), logged once
# as IPv4-only by every twilld, and IPv6 to it gets ICMPv6 unreachable while IPv4 routes.
set -euo pipefail
# shellcheck source=tests/integration/lib.sh disable=SC2034
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TW_MODE=udp
cfg='{"Network":"198.18.0.0/16","SubnetLen":24,"EnableIPv6":true,"IPv6Network":"2001:db8:100::/48","IPv6SubnetLen":64,"Backend":{"Type":"udp"}}'
make_topology 3 etcd
for i in 1 2 3; do
	ip -n "$(ns_host "$i")" addr add "2001:db8::$((10 + i))/64" dev eth0 nodad ||
		fail "IPv6 underlay on h$i"
done
start_etcd
put_net_config "$cfg"
# One after the other: concurrent dual-stack acquisitions can pick the same IPv4 subnet under
# two keys that differ in their IPv6 part (seen on main; the lease manager's business).
PORT=9466
for i in 1 2 3; do
	start_twilld "$i" --healthz-ip=127.0.0.1 --healthz-port=$PORT
	wait_twilld_ready "$i" 15
done
assert_distinct_subnets 1 2 3

declare -A SUB6=()
for i in 1 2 3; do
	s6=$(subnet_var "$i" FLANNEL_IPV6_SUBNET) || fail "h$i: no FLANNEL_IPV6_SUBNET"
	SUB6[$i]=${s6%::1/64}
	key=$(etcdctl_run get --prefix --keys-only "$TW_ETCD_PREFIX/subnets/" |
		grep -F "&${SUB6[$i]}::-64") || fail "h$i: no lease key with ${SUB6[$i]}::/64"
	v=$(etcdctl_run get --print-value-only "$key")
	assert_eq "$(jq -c '[.PublicIP, .BackendV6Data, has("BackendType"), has("BackendData")]' <<<"$v")" \
		"[\"$(host_ip "$i")\",{\"Port\":8285},false,false]" "h$i lease value ($v)"
	h=$(ns_host "$i")
	got=$(ip -n "$h" -6 -j addr show dev flannel0 scope global | jq -r '[.[].addr_info[] | select(.family == "inet6") | .local] | join(",")')
	assert_eq "$got" "${SUB6[$i]}::" "h$i flannel0 IPv6 address"
	got=$(ip -n "$h" -6 -j route show 2001:db8:100::/48 | jq -r '.[0].dev // "none"')
	assert_eq "$got" flannel0 "h$i route to the IPv6 Network"
	setup_containers "$i" 1
	c=$(ns_cont "$i" 1)
	ip netns exec "$h" sysctl -q -w net.ipv6.conf.all.forwarding=1
	ip -n "$h" addr add "${SUB6[$i]}::1/64" dev "$TW_BRIDGE" nodad || fail "bridge IPv6 on h$i"
	ip -n "$c" addr add "${SUB6[$i]}::2/64" dev eth0 nodad || fail "IPv6 in $c"
	ip -n "$c" -6 route add default via "${SUB6[$i]}::1" || fail "IPv6 route in $c"
done

# metric I NAME: the value of NAME on host I's /metrics.
metric() {
	ip netns exec "$(ns_host "$1")" curl -sf -m 3 "http://127.0.0.1:$PORT/metrics" |
		awk -v n="$2" '$1 == n { print $2 }'
}
for i in 1 2 3; do
	wait_for --timeout 5 eval "[ \"\$(metric $i twill_ipv6_remote_leases)\" = 2 ]" ||
		fail "h$i twill_ipv6_remote_leases = $(metric "$i" twill_ipv6_remote_leases), want 2"
	assert_eq "$(ip netns exec "$(ns_host "$i")" curl -s -m 3 -o /dev/null -w '%{http_code}' \
		"http://127.0.0.1:$PORT/readyz")" 200 "h$i /readyz"
done

bad=()
for a in 1 2 3; do
	for b in 1 2 3; do
		[ "$a" != "$b" ] || continue
		ping_ok "$(ns_cont "$a" 1)" "$(cont_ip "$b" 1)" 3 || bad+=("IPv4 h$a->h$b")
		ping_ok "$(ns_cont "$a" 1)" "${SUB6[$b]}::2" 3 || bad+=("IPv6 h$a->h$b")
	done
done
[ ${#bad[@]} = 0 ] || fail "pings failed: ${bad[*]}"
log "twilld: IPv4 and IPv6 pings, 6 of 6 ordered pairs each"

# A flanneld-style udp lease: IPv6 key part, no BackendV6Data. Its host is not there, so
# IPv4 to it leaves flannel0 (routed) and IPv6 to it is refused at once.
etcdctl_run put "$TW_ETCD_PREFIX/subnets/198.18.250.0-24&2001:db8:100:fa::-64" \
	'{"PublicIP":"192.0.2.99","PublicIPv6":null}' >/dev/null
for i in 1 2 3; do
	wait_for --timeout 5 grep -q "peer 192.0.2.99 (198.18.250.0/24) takes IPv4 only" "$(twilld_log "$i")" ||
		fail "h$i did not log the IPv4-only peer"
done
wait_for --timeout 5 eval "[ \"\$(metric 1 twill_ipv6_bad_leases_total)\" = 1 ]" ||
	fail "h1 twill_ipv6_bad_leases_total = $(metric 1 twill_ipv6_bad_leases_total), want 1"
out=$(ip netns exec "$(ns_cont 1 1)" ping -n -c 1 -W 2 2001:db8:100:fa::2 2>&1 || true)
[[ $out == *"Destination unreachable"* ]] || fail "IPv6 to the IPv4-only peer: $out"
got=$(ip -n "$(ns_host 1)" -j route get 198.18.250.2 | jq -r '.[0].dev')
assert_eq "$got" flannel0 "IPv4 route to the IPv4-only peer"
# A renewal of the same lease (new value, same peer) logs nothing new.
etcdctl_run put "$TW_ETCD_PREFIX/subnets/198.18.250.0-24&2001:db8:100:fa::-64" \
	'{"PublicIP":"192.0.2.99","PublicIPv6":null,"BackendType":"udp"}' >/dev/null
wait_for --timeout 5 eval "[ \$(grep -c 'lease 198.18.250.0/24' '$(twilld_log 1)') -ge 2 ]" ||
	fail "h1 did not see the changed lease"
assert_eq "$(grep -c 'peer 192.0.2.99 .* takes IPv4 only' "$(twilld_log 1)")" 1 "IPv4-only log lines on h1"
log "PASS"

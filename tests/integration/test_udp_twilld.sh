#!/usr/bin/env bash
# twilld, udp backend, 3 hosts: leases without BackendType or BackendData (as flannel's udp
# writes them), FLANNEL_MTU = underlay - 28, flannel0 (TUN, multi-queue) with the /32 address
# and one route for the Network; ping between every pair of containers; iperf3 across; twilld
# restarted under ping: flannel0 and its route survive (persistent TUN) and traffic resumes;
# a released lease makes its subnet unreachable (ICMP net unreachable to the sender);
# a datagram from an underlay address that is no lease's PublicIP (the etcd namespace) is
# listed under that address in /v1/status (udp.peer_drops) and in `twillctl status`.
set -euo pipefail
# shellcheck source=tests/integration/lib.sh disable=SC2034
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TW_MODE=udp
cluster_up 3 3 "$(net_config_json udp)" --healthz-ip=127.0.0.1 --healthz-port=8471
for i in 1 2 3; do
	assert_subnet_file "$i" 1472
	sub=$(host_subnet "$i")
	v=$(etcdctl_run get --print-value-only "$(lease_key "$sub")")
	assert_eq "$(jq -r '.PublicIP' <<<"$v")" "$(host_ip "$i")" "h$i lease PublicIP ($v)"
	assert_eq "$(jq -c '[has("BackendType"), has("BackendData")]' <<<"$v")" '[false,false]' \
		"h$i lease without BackendType/BackendData ($v)"
	h=$(ns_host "$i")
	link=$(ip -n "$h" -d -o link show flannel0)
	[[ $link == *"mtu 1472 "* && $link == *"qlen 5000"* && $link == *"tun type tun"* ]] ||
		fail "h$i flannel0: $link"
	addrs=$(ip -n "$h" -o addr show dev flannel0)
	[[ $addrs == *"inet ${sub%/*}/32 "* ]] || fail "h$i flannel0 address: $addrs"
	route=$(ip -n "$h" route show "$TW_OVERLAY")
	[[ $route == *"dev flannel0"* ]] || fail "h$i route to $TW_OVERLAY: $route"
done
ping_all_pairs 2 1 2 3

bg_start "$(ns_cont 2 1)" "$TW_DIR/logs/iperf3-server.log" "iperf3 server" iperf3 -s -p 5201
wait_for --timeout 5 eval "ip netns exec $(ns_cont 2 1) ss -ltn | grep ':5201 ' >/dev/null" ||
	fail "iperf3 server"
ip netns exec "$(ns_cont 1 1)" iperf3 -c "$(cont_ip 2 1)" -p 5201 -t 2 -J >"$TW_DIR/iperf.json" ||
	fail "iperf3 failed: $(tail -n 5 "$TW_DIR/iperf.json")"
log "iperf3 h1c1 -> h2c1: $(jq '.end.sum_received.bits_per_second / 1e9 * 100 | floor / 100' "$TW_DIR/iperf.json") Gbit/s"

# A stranger's datagram: dropped as unknown_src and listed under its address.
ip netns exec "$(ns_etcd)" python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.sendto(b"\x45" + bytes(39), (sys.argv[1], 8285))' "$(host_ip 1)" || fail "send from $TW_ETCD_IP"
_peer_drop_listed() {
	ip netns exec "$(ns_host 1)" curl -sf -m 2 http://127.0.0.1:8471/v1/status >"$TW_DIR/status1.json" &&
		jq -e --arg a "$TW_ETCD_IP" '[.udp.peer_drops[]
			| select(.address == $a and .reason == "unknown_src" and .packets == 1)] | length == 1' \
			"$TW_DIR/status1.json" >/dev/null
}
wait_for --timeout 5 --interval 0.1 _peer_drop_listed ||
	fail "h1 /v1/status does not list $TW_ETCD_IP under udp.peer_drops: $(jq -c .udp "$TW_DIR/status1.json")"
assert_eq "$(jq -r --arg a "$(host_ip 2)" --arg b "$(host_ip 3)" \
	'[.udp.peer_drops[] | select(.address == $a or .address == $b)] | length' "$TW_DIR/status1.json")" \
	0 "the peers' PublicIPs among h1's peer drops ($(jq -c .udp.peer_drops "$TW_DIR/status1.json"))"
out=$(ip netns exec "$(ns_host 1)" "$TWILLCTL" status --healthz http://127.0.0.1:8471/) ||
	fail "twillctl status on h1: $out"
grep -qE "^ +$TW_ETCD_IP +1 +unknown_src\$" <<<"$out" || fail "twillctl status: no peer drop row: $out"
log "h1 lists the stranger's datagram: $(jq -c .udp.peer_drops "$TW_DIR/status1.json")"

# Restart under ping: packets sent while no twilld runs are lost (the TUN has no reader),
# but flannel0, its address and route stay, and forwarding resumes.
ping_start "$(ns_cont 1 1)" "$(cont_ip 3 1)" restart
ping_wait_replies restart 10
restart_twilld 1 TERM
ping_wait_replies restart 20 10
stop_pid "${TW_PING_PID[restart]}" 5 INT
ip -n "$(ns_host 1)" -o link show flannel0 >/dev/null || fail "flannel0 gone after restart"

# Released lease: h1 loses the route to h3's subnet and answers net unreachable.
sub3=$(host_subnet 3)
stop_twilld 3
etcdctl_run del "$(lease_key "$sub3")" >/dev/null
_unreach() {
	local out
	out=$(ip netns exec "$(ns_cont 1 1)" ping -n -c 1 -W 1 "$(cont_ip 3 1)" 2>&1 || true)
	[[ $out == *"Destination Net Unreachable"* ]]
}
wait_for --timeout 5 _unreach || fail "h3's subnet still routed by h1 after its lease was deleted"
log "released lease $sub3: net unreachable from h1 within ${TW_WAITED_MS} ms"
ping_ok "$(ns_cont 1 1)" "$(cont_ip 2 1)" 2 || fail "h1c1 -> h2c1 broken after h3 left"
log "PASS"

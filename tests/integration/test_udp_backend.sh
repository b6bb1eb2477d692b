#!/usr/bin/env bash
# udp backend data path, 3 hosts on one underlay segment, driven through the backend ops by
# bench_dataplane_node (the backend alone: leases given to it directly, no etcd): ping across
# every pair of containers; iperf3 (TCP through TUN GSO -> UDP GSO -> UDP GRO -> TUN GSO)
# delivers the exact byte count; a datagram from an unknown source is dropped and counted and
# nothing is forwarded; malformed datagrams from a known peer (random bytes, truncated
# headers, lying lengths, bad checksum, outside the Network) are dropped by reason while
# ping goes on; leases churn while iperf3 runs; TTL 1 is dropped; a destination without a
# lease answers ICMP net unreachable; naive mode (restart into it) forwards too; 8 TCP streams
# from one peer reach both of its workers (reuseport BPF on the inner flow).
set -euo pipefail
# shellcheck source=tests/integration/lib.sh disable=SC2034
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# shellcheck source=tests/integration/lib_udp.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib_udp.sh"

# udp_send NS SRCPORT DST HEXPAYLOAD...: one datagram per payload from NS to DST:8285.
udp_send() {
	local ns=$1 sport=$2 dst=$3
	shift 3
	ip netns exec "$ns" python3 - "$sport" "$dst" "$@" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("", int(sys.argv[1])))
for h in sys.argv[3:]:
    s.sendto(bytes.fromhex(h), (sys.argv[2], 8285))
EOF
}

# inner_udp SRC DST [TTL] [LIE]: hex of an IPv4/UDP packet (valid checksum; LIE adds to the
# total length field, "csum" breaks the checksum).
inner_udp() {
	python3 - "$@" <<'EOF'
import socket, struct, sys
src, dst = sys.argv[1], sys.argv[2]
ttl = int(sys.argv[3]) if len(sys.argv) > 3 else 64
lie = sys.argv[4] if len(sys.argv) > 4 else "0"
payload = b"twill-udp-test"
udp = struct.pack("!HHHH", 4000, 4001, 8 + len(payload), 0) + payload
tot = 20 + len(udp) + (int(lie) if lie != "csum" else 0)
h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, tot, 1, 0, ttl, 17, 0,
                socket.inet_aton(src), socket.inet_aton(dst))
s = sum(struct.unpack("!10H", h))
while s >> 16:
    s = (s & 0xffff) + (s >> 16)
c = (~s) & 0xffff
if lie == "csum":
    c ^= 0x0101
h = h[:10] + struct.pack("!H", c) + h[12:]
print((h + udp).hex())
EOF
}

make_topology 3
for i in 1 2 3; do
	start_node "$i"
	setup_containers "$i" 1
done
assert_eq "$(subnet_var 1 FLANNEL_MTU)" 1472 "FLANNEL_MTU (underlay 1500 - 28)"
for i in 1 2 3; do
	h=$(ns_host "$i")
	link=$(ip -n "$h" -o link show flannel0)
	[[ $link == *"mtu 1472 "*"qlen 5000"* ]] || fail "h$i flannel0: $link"
	addrs=$(ip -n "$h" -o addr show dev flannel0)
	[[ $addrs == *"inet 198.18.$i.0/32 "* ]] || fail "h$i flannel0 address: $addrs"
	route=$(ip -n "$h" route show "$NET")
	[[ $route == *"dev flannel0"* ]] || fail "h$i route to $NET: $route"
done

ping_all_pairs 1 1 2 3

# ---- TCP: iperf3 completes; a checksummed transfer arrives byte for byte; offloads used.
# (iperf3's receiver total stops counting at the end of the test, with bytes still in
# flight, so the exact count and content are checked with a sha256 transfer.)
bytes=$((48 * 1024 * 1024))
bg_start "$(ns_cont 2 1)" "$TW_DIR/logs/iperf3-server.log" "iperf3 server" iperf3 -s -p 5201
srv=$TW_BG_PID
wait_for --timeout 5 eval "ip netns exec $(ns_cont 2 1) ss -ltn | grep ':5201 ' >/dev/null" || fail "iperf3 server"
ip netns exec "$(ns_cont 1 1)" iperf3 -c "$(cont_ip 2 1)" -p 5201 -n "$bytes" -J \
	>"$TW_DIR/iperf.json" || fail "iperf3 client failed: $(tail -n 5 "$TW_DIR/iperf.json")"
[ "$(jq '.end.sum_sent.bytes' "$TW_DIR/iperf.json")" -ge "$bytes" ] || fail "iperf3 sent too little"
log "iperf3: $(jq '.end.sum_sent.bytes' "$TW_DIR/iperf.json") bytes, $(jq '.end.sum_received.bits_per_second / 1e9 * 100 | floor / 100' "$TW_DIR/iperf.json") Gbit/s"

tcp_transfer "$(ns_cont 1 1)" "$(ns_cont 2 1)" "$(cont_ip 2 1)" $((64 * 1024 * 1024))
tcp_transfer "$(ns_cont 3 1)" "$(ns_cont 1 1)" "$(cont_ip 1 1)" $((16 * 1024 * 1024))
calls=$(stat 1 twill_udp_tx_syscalls_total)
pkts=$(stat 1 twill_udp_tx_packets_total)
log "h1 sent $pkts packets in $calls send calls; h2 wrote $(stat 2 twill_udp_rx_packets_total) packets in $(stat 2 twill_udp_rx_tun_writes_total) TUN writes"
[ "$calls" -lt $((pkts / 4)) ] || fail "h1: $calls send calls for $pkts packets: UDP GSO not used"

# ---- flows from one peer are spread over h2's two workers (reuseport BPF on the inner flow,
# not the single outer 4-tuple): 8 TCP streams from fixed client ports (deterministic).
w0=$(stat 2 'twill_udp_worker_rx_packets_total{worker="0"}')
w1=$(stat 2 'twill_udp_worker_rx_packets_total{worker="1"}')
ip netns exec "$(ns_cont 1 1)" iperf3 -c "$(cont_ip 2 1)" -p 5201 -P 8 --cport 41000 -n 16M -J \
	>"$TW_DIR/iperf-p8.json" || fail "iperf3 -P 8 failed: $(tail -n 5 "$TW_DIR/iperf-p8.json")"
# 16 MiB in all (iperf3 -n counts what was sent), packets of < 1472 bytes: > 5,000 arrived.
_wsum() {
	[ $(($(stat 2 'twill_udp_worker_rx_packets_total{worker="0"}') +
		$(stat 2 'twill_udp_worker_rx_packets_total{worker="1"}') - w0 - w1)) -ge 5000 ]
}
wait_for --timeout 5 _wsum || fail "h2 workers counted too few packets"
d0=$(($(stat 2 'twill_udp_worker_rx_packets_total{worker="0"}') - w0))
d1=$(($(stat 2 'twill_udp_worker_rx_packets_total{worker="1"}') - w1))
log "8 streams: h2 worker 0 received $d0 packets, worker 1 $d1"
if [ "$d0" -le $(((d0 + d1) / 10)) ] || [ "$d1" -le $(((d0 + d1) / 10)) ]; then
	fail "8 streams not spread over h2's workers: $d0 / $d1"
fi

# ---- unknown source: a stranger on the underlay sends a valid inner packet to h1.
netns_add "${TW_PREFIX}x"
_tw_attach "${TW_PREFIX}x" 192.0.2.99 x
bg_start "$(ns_cont 1 1)" "$TW_DIR/logs/sink4001.log" "udp sink" python3 -u -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("", 4001)); print("listening")
while True:
    d, a = s.recvfrom(2000); print(a[0], d.decode(errors="replace"))'
wait_for --timeout 5 grep -q listening "$TW_DIR/logs/sink4001.log" || fail "udp sink did not start"
udp_send "${TW_PREFIX}x" 8285 "$(host_ip 1)" "$(inner_udp 198.18.2.2 198.18.1.2)"
wait_stat 1 'twill_udp_drops_total{dir="wire",reason="unknown_src"}' 1
# The same datagram from h2 (a lease's PublicIP) is delivered: exactly one arrives.
udp_send "$(ns_host 2)" 40002 "$(host_ip 1)" "$(inner_udp 198.18.2.2 198.18.1.2)"
wait_for --timeout 5 eval "[ \$(grep -c twill-udp-test '$TW_DIR/logs/sink4001.log') -ge 1 ]" ||
	fail "the datagram from h2 was not delivered"
assert_eq "$(grep -c twill-udp-test "$TW_DIR/logs/sink4001.log")" 1 "datagrams delivered to h1c1"

# ---- malformed datagrams from a known peer (h2's address) while ping flows h2c1 -> h1c1.
ping_start "$(ns_cont 2 1)" "$(cont_ip 1 1)" malformed
ping_wait_replies malformed 5
good=$(inner_udp 198.18.2.2 198.18.1.2)
rnd=$(head -c 200 /dev/urandom | od -An -tx1 | tr -d ' \n')
udp_send "$(ns_host 2)" 40000 "$(host_ip 1)" \
	"$rnd" "45" "${good:0:30}" "$(inner_udp 198.18.2.2 198.18.1.2 64 40)" \
	"$(inner_udp 198.18.2.2 198.18.1.2 64 csum)" "$(inner_udp 198.18.2.2 10.9.9.9)" \
	"$(inner_udp 198.18.2.2 198.18.3.2)" "6${good:1}" "44${good:2}" \
	"$(inner_udp 198.18.2.2 198.18.1.2 1)"
wait_stat 1 'twill_udp_drops_total{dir="wire",reason="short"}' 2
wait_stat 1 'twill_udp_drops_total{dir="wire",reason="bad_totlen"}' 1
wait_stat 1 'twill_udp_drops_total{dir="wire",reason="bad_csum"}' 1
wait_stat 1 'twill_udp_drops_total{dir="wire",reason="dst_outside"}' 2
wait_stat 1 'twill_udp_drops_total{dir="wire",reason="not_ipv4"}' 1
wait_stat 1 'twill_udp_drops_total{dir="wire",reason="bad_hdrlen"}' 1
wait_stat 1 'twill_udp_drops_total{dir="wire",reason="ttl"}' 1
# A flood of random datagrams: the forwarder neither crashes nor stalls.
ip netns exec "$(ns_host 2)" python3 - "$(host_ip 1)" <<'EOF'
import os, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("", 40001))
for i in range(3000):
    n = int.from_bytes(os.urandom(2), "big") % 1600
    b = bytearray(os.urandom(n))
    if n >= 20 and i % 2:
        b[0] = 0x45  # plausible header, random rest
    s.sendto(bytes(b), (sys.argv[1], 8285))
EOF
ping_wait_replies malformed 10
ping_stop_lossless malformed
kill -0 "${NODE_PID[1]}" || fail "h1 node died"
log "malformed datagrams dropped: $(grep 'dir="wire"' "$TW_DIR/h1/stats" | grep -v ' 0$' | tr '\n' ' ')"

# ---- lease churn on h1 while iperf3 h1c1 -> h3c1 runs.
bg_start "$(ns_cont 3 1)" "$TW_DIR/logs/iperf3-server3.log" "iperf3 server 3" iperf3 -s -p 5202
wait_for --timeout 5 eval "ip netns exec $(ns_cont 3 1) ss -ltn | grep ':5202 ' >/dev/null" || fail "iperf3 server 3"
bg_start "$(ns_cont 1 1)" "$TW_DIR/logs/iperf3-churn.log" "iperf3 churn" \
	iperf3 -c "$(cont_ip 3 1)" -p 5202 -t 4 -J
churn=$TW_BG_PID
up0=$(stat 1 twill_udp_table_updates_total)
for k in $(seq 1 100); do
	node_cmd 1 "add 198.18.$((100 + k % 50)).0/24 192.0.2.$((100 + k % 20))"
	[ $((k % 10)) = 0 ] && node_cmd 1 "add $(host_sub 3) $(host_ip 3)"
	node_cmd 1 "del 198.18.$((100 + (k + 25) % 50)).0/24"
	sleep 0.02
done
wait_for --timeout 15 eval "! _tw_alive $churn" || fail "iperf3 during lease churn did not finish"
stop_pid "$churn" 1
assert_eq "$TW_LAST_RC" 0 "iperf3 during lease churn"
wait_stat 1 twill_udp_table_updates_total $((up0 + 150))
kill -0 "${NODE_PID[1]}" || fail "h1 node died during churn"
log "lease churn: $(($(stat 1 twill_udp_table_updates_total) - up0)) table swaps during iperf3 ($(jq '.end.sum_received.bytes' "$TW_DIR/logs/iperf3-churn.log") bytes)"
# Removing h3's lease stops traffic to it; adding it back restores it.
node_cmd 1 "del $(host_sub 3)"
wait_for --timeout 3 eval "! ping_ok $(ns_cont 1 1) $(cont_ip 3 1) 1" || fail "h3 still reachable without its lease"
node_cmd 1 "add $(host_sub 3) $(host_ip 3)"
ping_ok "$(ns_cont 1 1)" "$(cont_ip 3 1)" 3 || fail "h3 not reachable after re-adding its lease"

# ---- TTL 1 from h1 itself (the kernel does not decrement locally sent packets).
t0=$(drops 1 tun ttl)
ip netns exec "$(ns_host 1)" ping -n -c 1 -t 1 -W 1 "$(cont_ip 2 1)" >/dev/null 2>&1 &&
	fail "ping with TTL 1 got an answer"
wait_stat 1 'twill_udp_drops_total{dir="tun",reason="ttl"}' $((t0 + 1))

# ---- no lease for the destination: ICMP net unreachable to the sender.
out=$(ip netns exec "$(ns_cont 1 1)" ping -n -c 1 -W 2 198.18.77.7 2>&1 || true)
[[ $out == *"Destination Net Unreachable"* ]] || fail "no net unreachable: $out"
wait_stat 1 twill_udp_icmp_unreach_sent_total 1

# ---- naive mode: restart h1 into it (the device is recreated) and forward again.
stop_node 1
ip -n "$(ns_host 1)" -o link show flannel0 >/dev/null || fail "flannel0 gone after stop (not persistent)"
start_node 1 --naive
grep -q 'naive mode' "$TW_DIR/logs/node-h1.log" || fail "h1 not in naive mode"
ping_all_pairs 1 1 2 3
tcp_transfer "$(ns_cont 1 1)" "$(ns_cont 2 1)" "$(cont_ip 2 1)" $((8 * 1024 * 1024))
tcp_transfer "$(ns_cont 2 1)" "$(ns_cont 1 1)" "$(cont_ip 1 1)" $((8 * 1024 * 1024))
stop_pid "$srv" 5
log "PASS"

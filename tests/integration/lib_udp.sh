# shellcheck shell=bash disable=SC2034
# Helpers of the udp backend tests (sourced after lib.sh): the backend alone on each host
# (bench_dataplane_node), its counters, and an exact TCP transfer. UDP_IPV6=1 before
# start_node gives every node and lease an IPv6 half (2001:db8:100:I::/64 on host I).
NODE=${TWILL_UDP_NODE:-$TWILL_BUILD_DIR/bench/bench_dataplane_node}
[ -x "$NODE" ] || fail "no $NODE (build the bench_dataplane_node target)"
NET=198.18.0.0/16
declare -A NODE_PID=() NODE_FD=()

host_sub() { echo "198.18.$1.0/24"; }
# host_lease6 I J: the IPv6 part of host J's lease as host I's node gets it (",V6"; "" without IPv6).
host_lease6() { [ -z "${UDP_IPV6:-}" ] || echo ",2001:db8:100:$2::/64"; }
# node_args6 I: host I's node arguments for IPv6 into the array ARGS6 (empty without UDP_IPV6).
node_args6() {
	ARGS6=()
	[ -z "${UDP_IPV6:-}" ] || ARGS6=(--network6 2001:db8:100::/48 --subnet6 "2001:db8:100:$1::/64")
}

# start_node I [ARGS...]: the udp backend on host I with leases for the other hosts; commands
# go to it through a FIFO (node_cmd); counters in $TW_DIR/h$I/stats.
start_node() {
	local i=$1 j leases=() fifo logf fd ARGS6
	shift
	node_args6 "$i"
	for j in 1 2 3; do
		[ "$j" = "$i" ] || leases+=(--lease "$(host_sub "$j")=$(host_ip "$j")$(host_lease6 "$i" "$j")")
	done
	fifo=$TW_DIR/h$i/cmd
	logf=$TW_DIR/logs/node-h$i.log
	[ -p "$fifo" ] || mkfifo "$fifo"
	exec {fd}<>"$fifo"
	NODE_FD[$i]=$fd
	: >"$logf"
	ip netns exec "$(ns_host "$i")" env TWILL_UDP_STATS_FILE="$TW_DIR/h$i/stats" \
		TWILL_UDP_WORKERS=2 "$NODE" --iface eth0 --network "$NET" \
		--subnet "$(host_sub "$i")" "${ARGS6[@]}" "${leases[@]}" "$@" <"$fifo" >>"$logf" 2>&1 &
	NODE_PID[$i]=$!
	TW_PROCS[$!]="udp node h$i"
	TW_LOGS+=("$logf")
	wait_for --timeout 10 grep -q '^ready' "$logf" || fail "node h$i not ready"
	wait_for --timeout 5 test -s "$TW_DIR/h$i/stats" || fail "node h$i wrote no stats"
	printf 'FLANNEL_NETWORK=%s\nFLANNEL_SUBNET=198.18.%s.1/24\nFLANNEL_MTU=%s\nFLANNEL_IPMASQ=false\n' \
		"$NET" "$i" "$(sed -n 's/^ready mtu //p' "$logf" | tail -n 1)" >"$(subnet_file "$i")"
}

stop_node() {
	stop_pid "${NODE_PID[$1]}" 5
	unset "NODE_PID[$1]"
}

node_cmd() {
	echo "$2" >&"${NODE_FD[$1]}"
}

# stat I NAME: a counter of host I ("twill_udp_rx_packets_total" or a drops label set).
stat() {
	local f=$TW_DIR/h$1/stats
	awk -v k="$2" '$1 == k { print $2; found = 1 } END { if (!found) print 0 }' "$f"
}
drops() {
	stat "$1" "twill_udp_drops_total{dir=\"$2\",reason=\"$3\"}"
}
# wait_stat I NAME MIN: until the counter reaches MIN (stats are rewritten every 250 ms).
_ge() { [ "$(stat "$1" "$2")" -ge "$3" ]; }
wait_stat() {
	wait_for --timeout 5 _ge "$@" || fail "h$1 $2 = $(stat "$1" "$2"), want >= $3"
}

# tcp_transfer SRC_NS DST_NS DST_IP BYTES: send BYTES pseudo-random bytes over TCP; the
# receiver's byte count and sha256 must match the sender's.
tcp_transfer() {
	local src=$1 dst=$2 ip=$3 n=$4 out want got
	out=$TW_DIR/xfer-$RANDOM
	bg_start "$dst" "$out.srv" "tcp sink" python3 -c '
import hashlib, socket
s = socket.create_server(("", 5300), family=socket.AF_INET6, dualstack_ipv6=True)
print("listening", flush=True)
c, _ = s.accept(); h = hashlib.sha256(); n = 0
while True:
    b = c.recv(1 << 20)
    if not b: break
    h.update(b); n += len(b)
print(n, h.hexdigest(), flush=True)'
	wait_for --timeout 5 grep -q listening "$out.srv" || fail "tcp sink did not start"
	want=$(ip netns exec "$src" python3 -c '
import hashlib, random, socket, sys
n = int(sys.argv[2]); r = random.Random(7); h = hashlib.sha256()
s = socket.create_connection((sys.argv[1], 5300))
while n > 0:
    b = r.randbytes(min(n, 1 << 20)); s.sendall(b); h.update(b); n -= len(b)
s.shutdown(socket.SHUT_WR); s.recv(1); print(int(sys.argv[2]), h.hexdigest())' "$ip" "$n") ||
		fail "tcp transfer sender failed"
	wait_for --timeout 10 eval "[ \$(wc -l <'$out.srv') -ge 2 ]" || fail "tcp sink did not finish"
	got=$(tail -n 1 "$out.srv")
	assert_eq "$got" "$want" "TCP transfer (bytes sha256)"
	log "TCP transfer of $n bytes arrived intact"
}

# cont_ip6 I: IPv6 address of container 1 on host I.
cont_ip6() { echo "2001:db8:100:$1::2"; }
# setup_cont6 I: IPv6 for host I's containers (after setup_containers I 1): the bridge gets
# 2001:db8:100:I::1/64, container 1 gets ::2 with a default route via it.
setup_cont6() {
	local i=$1 h c
	h=$(ns_host "$i")
	c=$(ns_cont "$i" 1)
	ip netns exec "$h" sysctl -q -w net.ipv6.conf.all.forwarding=1 || fail "IPv6 forwarding in $h"
	ip -n "$h" addr add "2001:db8:100:$i::1/64" dev "$TW_BRIDGE" nodad || fail "bridge IPv6 in $h"
	ip -n "$c" addr add "$(cont_ip6 "$i")/64" dev eth0 nodad || fail "IPv6 address in $c"
	ip -n "$c" -6 route add default via "2001:db8:100:$i::1" || fail "IPv6 default route in $c"
}

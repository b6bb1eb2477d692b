#!/usr/bin/env bash
# Dataplane benchmark (not a test): container-to-container throughput, small-packet rate,
# latency and CPU across two host namespaces on a veth underlay, for
#   raw     plain routing over the underlay (no encapsulation)
#   vxlan   the kernel's VXLAN (ip link add type vxlan, flannel's layout: /32 address,
#           permanent neighbour, onlink route; MTU 1450)
#   udp     twill's udp backend (bench_dataplane_node: multi-queue TUN, GSO/GRO; MTU 1472)
#   naive   the same in naive mode (one thread, one packet per syscall, no offloads)
#   vxlan6  IPv6 inside: kernel VXLAN on the IPv6 underlay, flannel's dual-stack layout (MTU 1430)
#   udp6    IPv6 inside twill's udp backend (same IPv4 socket and wire format as udp)
#   udpbase udp with another build's node (NODE_BASE=path/bench_dataplane_node): before/after
#           figures in one run (not in the default MODES)
# IPv6 figures are ratios to vxlan6 (IPv4 ones to vxlan).
# Figures are medians of REPS runs; every one is also given as a ratio to kernel VXLAN
# measured in the same run. Results go to bench/RESULTS.md (section "## dataplane",
# replaced; other sections kept).
#
# Usage: sudo bench/dataplane.sh [BUILD_DIR]
#   env: DURATION=10 REPS=3 MODES="raw vxlan udp naive vxlan6 udp6" FIGURES="tcp1 tcp2 pps rtt"
#        RESULTS=file (default bench/RESULTS.md) PERF=dir (perf record -g of each 1-stream run)
# Everything happens in namespaces named tw<pid>b*; nothing touches the root namespace.
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${1:-${TWILL_BUILD_DIR:-$SRC/build-udp}}
NODE=$BUILD/bench/bench_dataplane_node
DURATION=${DURATION:-10}
REPS=${REPS:-3}
MODES=${MODES:-raw vxlan udp naive vxlan6 udp6}
FIGURES=${FIGURES:-tcp1 tcp2 pps rtt}
OUT=${RESULTS:-$SRC/bench/RESULTS.md}
[ -x "$NODE" ] || { echo "no $NODE: build the bench_dataplane_node target" >&2; exit 1; }
[[ " $MODES " != *" udpbase "* ]] || [ -x "${NODE_BASE:-}" ] || { echo "udpbase needs NODE_BASE" >&2; exit 1; }
for t in iperf3 jq ping ip python3; do
	command -v "$t" >/dev/null || { echo "missing $t" >&2; exit 1; }
done

export TW_PREFIX=tw$$b TW_QUIET=0
# shellcheck source=tests/integration/lib.sh disable=SC2034
. "$SRC/tests/integration/lib.sh"
trap - ERR

H1=${TW_PREFIX}h1 H2=${TW_PREFIX}h2 C1=${TW_PREFIX}c1 C2=${TW_PREFIX}c2
declare -A NODEPID=()

# ---- topology: h1 (192.0.2.1) <-veth-> h2 (192.0.2.2); c1 behind h1, c2 behind h2.
for ns in $H1 $H2 $C1 $C2; do netns_add "$ns"; done
ip -n "$H1" link add eth0 type veth peer name eth0 netns "$H2"
ip -n "$H1" addr add 192.0.2.1/24 dev eth0
ip -n "$H2" addr add 192.0.2.2/24 dev eth0
for i in 1 2; do
	h=${TW_PREFIX}h$i c=${TW_PREFIX}c$i
	ip -n "$h" link set eth0 up
	ip -n "$h" link add c0 type veth peer name eth0 netns "$c"
	ip -n "$h" addr add 198.18.$i.1/24 dev c0
	ip -n "$h" link set c0 up
	ip -n "$c" addr add 198.18.$i.2/24 dev eth0
	ip -n "$c" link set eth0 up
	ip -n "$c" route add default via 198.18.$i.1
	ip netns exec "$h" sysctl -q -w net.ipv4.ip_forward=1
	# IPv6 (the *6 modes): underlay 2001:db8::i, container subnet 2001:db8:100:i::/64.
	ip -n "$h" addr add "2001:db8::$i/64" dev eth0 nodad
	ip -n "$h" addr add "2001:db8:100:$i::1/64" dev c0 nodad
	ip -n "$c" addr add "2001:db8:100:$i::2/64" dev eth0 nodad
	ip -n "$c" -6 route add default via "2001:db8:100:$i::1"
	ip netns exec "$h" sysctl -q -w net.ipv6.conf.all.forwarding=1
done

set_mtu() { # container-side MTU on both hosts
	for i in 1 2; do
		ip -n "${TW_PREFIX}h$i" link set c0 mtu "$1"
		ip -n "${TW_PREFIX}c$i" link set eth0 mtu "$1"
	done
}

mode_up() {
	case $1 in
	raw)
		set_mtu 1500
		ip -n "$H1" route replace 198.18.2.0/24 via 192.0.2.2
		ip -n "$H2" route replace 198.18.1.0/24 via 192.0.2.1
		;;
	vxlan)
		set_mtu 1450
		for i in 1 2; do
			h=${TW_PREFIX}h$i o=$((3 - i))
			ip -n "$h" link add vx0 address 02:00:00:00:00:0$i type vxlan id 1 \
				local 192.0.2.$i dev eth0 dstport 8472 nolearning
			ip -n "$h" link set vx0 mtu 1450 up
			ip -n "$h" addr add 198.18.$i.0/32 dev vx0
			ip -n "$h" neigh replace 198.18.$o.0 lladdr 02:00:00:00:00:0$o dev vx0 nud permanent
			bridge -n "$h" fdb append 02:00:00:00:00:0$o dev vx0 dst 192.0.2.$o self permanent
			ip -n "$h" route replace 198.18.$o.0/24 via 198.18.$o.0 dev vx0 onlink
		done
		;;
	vxlan6) # flannel's dual-stack layout: a second VXLAN device on the IPv6 underlay
		set_mtu 1430
		for i in 1 2; do
			h=${TW_PREFIX}h$i o=$((3 - i))
			ip -n "$h" link add vx6 address 02:00:00:00:06:0$i type vxlan id 1 \
				local "2001:db8::$i" dev eth0 dstport 8472 nolearning
			ip -n "$h" link set vx6 mtu 1430 up
			ip -n "$h" addr add "2001:db8:100:$i::/128" dev vx6 nodad
			ip -n "$h" neigh replace "2001:db8:100:$o::" lladdr 02:00:00:00:06:0$o dev vx6 nud permanent
			bridge -n "$h" fdb append 02:00:00:00:06:0$o dev vx6 dst "2001:db8::$o" self permanent
			ip -n "$h" route replace "2001:db8:100:$o::/64" via "2001:db8:100:$o::" dev vx6 onlink
		done
		;;
	udp | naive | udp6 | udpbase)
		set_mtu 1472
		for i in 1 2; do
			h=${TW_PREFIX}h$i o=$((3 - i))
			local naive='' node=$NODE v6=(--network6 2001:db8:100::/48 --subnet6 "2001:db8:100:$i::/64") l6=",2001:db8:100:$o::/64"
			[ "$1" != naive ] || naive=1
			if [ "$1" = udpbase ]; then # another build, IPv4 only (for before/after in one run)
				node=$NODE_BASE v6=() l6=
			fi
			: >"$TW_DIR/node-$1-h$i.log"
			ip netns exec "$h" env TWILL_UDP_STATS_FILE="$TW_DIR/stats-$1-h$i" "$node" --iface eth0 \
				--network 198.18.0.0/16 --subnet 198.18.$i.0/24 "${v6[@]}" \
				--lease "198.18.$o.0/24=192.0.2.$o$l6" \
				${naive:+--naive} </dev/null >"$TW_DIR/node-$1-h$i.log" 2>&1 &
			NODEPID[$i]=$!
			TW_PROCS[$!]="node h$i"
			wait_for --timeout 10 grep -q '^ready' "$TW_DIR/node-$1-h$i.log" ||
				fail "node h$i: $(cat "$TW_DIR/node-$1-h$i.log")"
		done
		;;
	esac
	local dst=198.18.2.2
	[[ $1 != *6 ]] || dst=2001:db8:100:2::2
	ping_ok "$C1" "$dst" 3 || fail "$1: c1 cannot reach c2 ($dst)"
}

mode_down() {
	case $1 in
	raw)
		ip -n "$H1" route del 198.18.2.0/24
		ip -n "$H2" route del 198.18.1.0/24
		;;
	vxlan)
		for i in 1 2; do ip -n "${TW_PREFIX}h$i" link del vx0; done
		;;
	vxlan6)
		for i in 1 2; do ip -n "${TW_PREFIX}h$i" link del vx6; done
		;;
	udp | naive | udp6 | udpbase)
		for i in 1 2; do
			stop_pid "${NODEPID[$i]}" 5
			ip -n "${TW_PREFIX}h$i" link del flannel0 # persistent by design
		done
		;;
	esac
}

# cpu_busy: busy and total jiffies over all CPUs ("busy total").
cpu_busy() {
	awk '/^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t }' /proc/stat
}

median() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

declare -A R=() V=() # R[mode,metric] = median; V[mode,metric] = the runs' values
ncpu=$(nproc)

# stat_ratio FILE A B: counter A / counter B of a udp stats file.
stat_ratio() {
	awk -v a="$2" -v b="$3" '$1 == a { x = $2 } $1 == b { y = $2 } END { if (y > 0) printf "%.1f", x / y; else print "nan" }' "$1"
}

has_fig() { [[ " $FIGURES " == *" $1 "* ]]; }

measure() { # mode rep: one run of every figure, appended to V
	local m=$1 k=$2 b0 t0 b1 t1 json bps srv perfpid='' dst=198.18.2.2
	[[ $m != *6 ]] || dst=2001:db8:100:2::2
	ip netns exec "$C2" iperf3 -s -p 5201 </dev/null >"$TW_DIR/iperf-srv-$m.log" 2>&1 &
	srv=$!
	TW_PROCS[$srv]="iperf3 server"
	wait_for --timeout 5 eval "ip netns exec $C2 ss -ltn | grep ':5201 ' >/dev/null" || fail "iperf3 server"
	if has_fig tcp1; then
		if [ -n "${PERF:-}" ]; then # system-wide profile of the 1-stream run (kernel and user stacks)
			mkdir -p "$PERF"
			perf record -q -e cpu-clock -g -a -o "$PERF/$m-$k.data" -- sleep "$DURATION" \
				>/dev/null 2>&1 &
			perfpid=$!
		fi
		read -r b0 t0 < <(cpu_busy)
		json=$(ip netns exec "$C1" iperf3 -c "$dst" -p 5201 -t "$DURATION" -J) || fail "$m iperf3 tcp"
		read -r b1 t1 < <(cpu_busy)
		[ -z "$perfpid" ] || wait "$perfpid" || true
		bps=$(jq '.end.sum_received.bits_per_second' <<<"$json")
		V[$m,tcp1]+=" $(awk -v b="$bps" 'BEGIN { printf "%.3f", b / 1e9 }')"
		V[$m,cpu1]+=" $(awk -v b=$((b1 - b0)) -v t=$((t1 - t0)) -v n="$ncpu" 'BEGIN { printf "%.1f", 100 * n * b / t }')"
		# CPU seconds (all cores) per GB received.
		V[$m,cpg1]+=" $(awk -v b=$((b1 - b0)) -v hz="$(getconf CLK_TCK)" -v bytes="$(jq '.end.sum_received.bytes' <<<"$json")" 'BEGIN { printf "%.3f", (b / hz) / (bytes / 1e9) }')"
	fi
	if has_fig tcp2; then
		json=$(ip netns exec "$C1" iperf3 -c "$dst" -p 5201 -t "$DURATION" -P 2 -J) || fail "$m iperf3 tcp -P 2"
		V[$m,tcp2]+=" $(jq '.end.sum_received.bits_per_second / 1e9' <<<"$json")"
	fi
	if has_fig pps; then
		json=$(ip netns exec "$C1" iperf3 -c "$dst" -p 5201 -u -l 64 -b 0 -t "$DURATION" -J) || fail "$m iperf3 udp"
		V[$m,pps]+=" $(jq '(.end.sum.packets - .end.sum.lost_packets) / .end.sum.seconds | floor' <<<"$json")"
	fi
	if has_fig rtt; then # median of 200 echoes (an average would follow the outliers of a busy machine)
		V[$m,rtt]+=" $(ip netns exec "$C1" ping -n -c 200 -i 0.005 "$dst" |
			sed -n 's/.* time=\([0-9.]*\) ms/\1/p' | median)"
	fi
	stop_pid "$srv" 5
	if [ -r "$TW_DIR/stats-$m-h1" ]; then # batching of the udp data path over this rep
		sleep 0.3 # the stats files are rewritten every 250 ms
		V[$m,txb]+=" $(stat_ratio "$TW_DIR/stats-$m-h1" twill_udp_tx_packets_total twill_udp_tx_syscalls_total)"
		V[$m,rxb]+=" $(stat_ratio "$TW_DIR/stats-$m-h2" twill_udp_rx_packets_total twill_udp_rx_tun_writes_total)"
	fi
	local v=${V[$m,tcp1]:-} c=${V[$m,cpu1]:-} t2=${V[$m,tcp2]:-} p=${V[$m,pps]:-} r=${V[$m,rtt]:-}
	log "$m rep $k: tcp1 ${v##* } Gbit/s (cpu ${c##* }%), tcp2 ${t2##* }, udp64 ${p##* } pps, rtt ${r##* } ms"
}

load0=$(cut -d' ' -f1-3 /proc/loadavg)
# Modes interleaved per repetition, so that a change in the machine's load hits all alike.
for ((k = 1; k <= REPS; k++)); do
	for m in $MODES; do
		mode_up "$m"
		measure "$m" "$k"
		mode_down "$m"
	done
done
load1=$(cut -d' ' -f1-3 /proc/loadavg)
for m in $MODES; do
	for x in tcp1 tcp2 cpu1 cpg1 pps rtt txb rxb; do
		R[$m,$x]=$(tr ' ' '\n' <<<"${V[$m,$x]:-}" | { grep . || true; } | median)
	done
done

ratio() { # mode metric
	local ref_mode=vxlan
	[[ $1 != *6 ]] || ref_mode=vxlan6
	local v=${R[$1,$2]:-nan} ref=${R[$ref_mode,$2]:-nan}
	awk -v v="$v" -v r="$ref" 'BEGIN { if (r == "nan" || v == "nan" || r + 0 == 0) print "-"; else printf "%.2fx", v / r }'
}
fmt() { awk -v v="${1:-nan}" -v p="$2" 'BEGIN { if (v == "nan") print "-"; else printf "%." p "f", v }'; }

section=$(
	echo "## dataplane"
	echo
	echo "Command: \`sudo DURATION=$DURATION REPS=$REPS bench/dataplane.sh $BUILD\` ($(date -u '+%F %H:%M UTC'),"
	echo "kernel $(uname -r), $ncpu CPUs; medians of $REPS runs of ${DURATION}s; two host namespaces on a"
	echo "veth pair, one container namespace behind each; iperf3 client in c1, server in c2;"
	echo "modes interleaved per repetition; load average before/after: $load0 / $load1)."
	echo
	echo "| mode | TCP 1 stream Gbit/s | TCP 2 streams Gbit/s | UDP 64 B pps | ping RTT ms | CPU % (1 stream, of $ncpu cores) | CPU s per GB (1 stream) |"
	echo "|---|---|---|---|---|---|---|"
	for m in $MODES; do
		printf '| %s | %s (%s) | %s (%s) | %s (%s) | %s (%s) | %s (%s) | %s (%s) |\n' "$m" \
			"$(fmt "${R[$m,tcp1]}" 2)" "$(ratio "$m" tcp1)" "$(fmt "${R[$m,tcp2]}" 2)" "$(ratio "$m" tcp2)" \
			"$(fmt "${R[$m,pps]}" 0)" "$(ratio "$m" pps)" "$(fmt "${R[$m,rtt]}" 3)" "$(ratio "$m" rtt)" \
			"$(fmt "${R[$m,cpu1]}" 0)" "$(ratio "$m" cpu1)" "$(fmt "${R[$m,cpg1]}" 2)" "$(ratio "$m" cpg1)"
	done
	echo
	for m in $MODES; do
		[ -z "${R[$m,txb]:-}" ] || [ "${R[$m,txb]}" = nan ] ||
			echo "$m batching over the whole run: $(fmt "${R[$m,txb]}" 1) packets per send call (h1), $(fmt "${R[$m,rxb]}" 1) packets per TUN write (h2, GRO)."
	done
	echo
	echo "Ratios in parentheses are to kernel VXLAN in the same run (vxlan6 for the *6 rows, IPv6 inside;"
	echo "for RTT and CPU, lower is better). RTT is the median of 200 echoes, 5 ms apart."
	echo "CPU is system-wide busy time from /proc/stat during the 1-stream runs: on a shared machine it"
	echo "includes everything else running (see the load average), so compare it within one run only."
	echo "Goals (issue 13, quiet machine): one stream >= 0.8x: $(ratio udp tcp1); two streams >= 0.7x:"
	echo "$(ratio udp tcp2); RTT <= 1.5x: $(ratio udp rtt); CPU per GB <= 1.5x: $(ratio udp cpg1)."
)
echo
echo "$section"

python3 - "$OUT" "$section" <<'EOF'
import re, sys
path, section = sys.argv[1], sys.argv[2].rstrip() + "\n"
try:
    text = open(path).read()
except FileNotFoundError:
    text = "# twill benchmark results\n"
# Replace our own section (up to the next "## " heading), keep everything else.
m = re.search(r"^## dataplane\n.*?(?=^## |\Z)", text, flags=re.S | re.M)
if m:
    text = text[:m.start()] + section + ("\n" if text[m.end():] else "") + text[m.end():]
else:
    text = text.rstrip() + "\n\n" + section
open(path, "w").write(text)
EOF
log "results written to $OUT"

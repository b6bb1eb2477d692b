#!/usr/bin/env bash
# Daemon-level convergence of twilld with the vxlan backend (not a test).
#
# For each N (default 1000 10000), REPS times (default 3), each rep in a fresh network
# namespace tw<pid>b<rep>n<N>:
#   1. etcd on 127.0.0.1 inside the namespace (data on tmpfs); network config 198.18.0.0/15, SubnetLen 29,
#      vxlan; N remote vxlan leases preloaded (bench/preload_leases.py: txn batches).
#   2. reference: `ip -batch` + `bridge -batch` install the same 3N objects (N neighbours,
#      N fdb entries, N routes) into flannel.1 of another fresh namespace (unshare -n).
#   3. twilld started (exec timed by bench_convergence_daemon, which watches the kernel
#      through netlink events) with a veth underlay "ul" at 192.0.2.1/24; converge_ms = from
#      the exec until all N routes, neighbours and fdb entries are in the kernel (checked
#      with a dump); twilld's CPU (utime+stime) at that moment.
#   4. N = 1000 only: 100 more leases put one by one; latency from the put to the route in
#      the kernel (p50/p99/max).
#   5. twilld's peak RSS (VmHWM) just before it is stopped (SIGTERM, must exit 0).
# Figures are medians over the reps; ratio = twill converge / (ip -batch + bridge -batch).
# Results go to bench/RESULTS.md (section "## convergence", replaced; other sections kept).
#
# usage: sudo bench/convergence_daemon.sh [N...]
# env:   TWILL_BUILD_DIR (default build-perf, then build), REPS=3, LAT_N=1000 (the N with the
#        latency run), LAT_K=100, TWILL_NEXTHOPS (passed to twilld), RESULTS=path|none,
#        DUALSTACK=1: EnableIPv6 (IPv6Network 2001:db8:100::/48): dual-stack leases, so 6N
#        objects (IPv4 and IPv6 neighbour, fdb entry, route per lease) for twilld and for the
#        reference; no latency run; results in the section "## convergence, dual-stack".
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ -z "${TWILL_BUILD_DIR:-}" ]; then
	for d in "$SRC/build-perf" "$SRC/build"; do
		[ -x "$d/twilld" ] && { TWILL_BUILD_DIR=$d; break; }
	done
fi
BUILD=${TWILL_BUILD_DIR:?no build dir with twilld: set TWILL_BUILD_DIR}
HELPER=$BUILD/bench/bench_convergence_daemon
EMIT=$BUILD/bench/bench_convergence
TWILLD_BIN=${TWILLD_WRAPPER:-$BUILD/twilld} # TWILLD_WRAPPER: e.g. a perf record wrapper
REPS=${REPS:-3}
LAT_N=${LAT_N:-1000}
LAT_K=${LAT_K:-100}
OUT=${RESULTS:-$SRC/bench/RESULTS.md}
SIZES=${*:-1000 10000}
for f in "$HELPER" "$EMIT" "$TWILLD_BIN"; do
	[ -x "$f" ] || { echo "convergence_daemon: $f not built" >&2; exit 1; }
done
for t in etcd python3 jq ip bridge curl unshare; do
	command -v "$t" >/dev/null || { echo "convergence_daemon: missing $t" >&2; exit 1; }
done
[ "$(id -u)" -eq 0 ] || { echo "convergence_daemon: needs root (network namespaces)" >&2; exit 1; }

export TW_PREFIX=tw$$cvg TW_QUIET=0
# shellcheck source=tests/integration/lib.sh
. "$SRC/tests/integration/lib.sh"
set +o errtrace
trap - ERR
# etcd's data lives on tmpfs: removed at exit, also after a failure (then lib.sh's cleanup).
SHM=/dev/shm/twill-$TW_PREFIX
trap 'rc=$?; rm -rf "$SHM"; cleanup $rc' EXIT

PREFIX=/coreos.com/network
URL=http://127.0.0.1:2379
CONFIG='{"Network":"198.18.0.0/15","SubnetLen":29,"Backend":{"Type":"vxlan"}}'
NH=${TWILL_NEXTHOPS:-}
DS=${DUALSTACK:-0}
SECTION=convergence
if [ "$DS" = 1 ]; then
	CONFIG='{"Network":"198.18.0.0/15","SubnetLen":29,"EnableIPv6":true,"IPv6Network":"2001:db8:100::/48","Backend":{"Type":"vxlan"}}'
	SECTION="convergence, dual-stack"
	LAT_N=none
fi

# emit6 N DIR: the IPv6 half of the reference batches (lease i: 2001:db8:100:<i+1>::/64,
# VtepMAC 02:01:00:<i>, PublicIPv6 2001:db8:0:1::<2 + i % 200>), appended.
emit6() {
	awk -v n="$1" -v ip="$2/ip.batch" -v br="$2/bridge.batch" 'BEGIN {
		for (i = 0; i < n; i++) {
			net = sprintf("2001:db8:100:%x::", i + 1)
			mac = sprintf("02:01:00:%02x:%02x:%02x", int(i / 65536) % 256, int(i / 256) % 256, i % 256)
			printf "neigh replace %s lladdr %s dev flannel-v6.1 nud permanent\n", net, mac >>ip
			printf "route replace %s/64 via %s dev flannel-v6.1 onlink\n", net, net >>ip
			printf "fdb append %s dev flannel-v6.1 dst 2001:db8:0:1::%x self permanent\n", mac, 2 + i % 200 >>br
		}
	}'
}
# The reference's and the benchmark namespace's IPv6 underlay and flannel-v6.1 (reference only).
UL6='ip -6 addr add 2001:db8:0:1::1/64 dev ul nodad'
DEV6='ip link add flannel-v6.1 type vxlan id 1 local 2001:db8:0:1::1 dev ul dstport 8472 nolearning && ip -6 addr add 2001:db8:100::/128 dev flannel-v6.1 nodad && ip link set flannel-v6.1 up'

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
field() { sed -n "s/.*\b$1=\([0-9.-]*\).*/\1/p" <<<"$2"; }

# converged OUTFILE HELPER_PID: the helper printed its result, or exited.
converged() {
	grep -q '^converge_ms=' "$1" || ! _tw_alive "$2"
}

helper_gone() { ! _tw_alive "$1"; }

etcd_healthy() {
	ip netns exec "$1" curl -s -m 1 "$URL/health" 2>/dev/null | grep -q '"health":"true"'
}

# reference N DIR: ms for ip -batch + bridge -batch of the 3N objects in a fresh namespace.
reference() {
	local n=$1 dir=$2 us
	us=$(unshare -n bash -c "ip link set lo up && ip link add ul type veth peer name ulp &&
		ip addr add 192.0.2.1/24 dev ul && ip link set ul up && ip link set ulp up &&
		ip link add flannel.1 type vxlan id 1 local 192.0.2.1 dev ul dstport 8472 nolearning &&
		ip addr add 198.18.0.0/32 dev flannel.1 && ip link set flannel.1 up &&
		$([ "$DS" = 1 ] && echo "$UL6 && $DEV6 &&")
		s=\$(date +%s%N) && ip -batch $dir/ip.batch && bridge -batch $dir/bridge.batch &&
		e=\$(date +%s%N) && echo \$(( (e - s) / 1000 )) &&
		[ \$(ip -j route show dev flannel.1 | jq length) -eq $n ]") || fail "reference ip -batch run for N=$n failed"
	awk -v u="$us" 'BEGIN { printf "%.1f\n", u / 1000 }'
}

# one_rep N REP: one fresh namespace, etcd, preload, twilld; appends a line to $TW_DIR/res.
one_rep() {
	local n=$1 rep=$2 ns dir out pid lat="" hwm cpu etcd_pid helper_pid edata own mem anon
	ns=${TW_PREFIX}${rep}n$n
	dir=$TW_DIR/$ns
	mkdir -p "$dir"
	netns_add "$ns"
	ip -n "$ns" link add ul type veth peer name ulp
	ip -n "$ns" addr add 192.0.2.1/24 dev ul
	ip -n "$ns" link set ul up
	ip -n "$ns" link set ulp up
	[ "$DS" != 1 ] || ip -n "$ns" -6 addr add 2001:db8:0:1::1/64 dev ul nodad
	# etcd's data on tmpfs: the latency figures measure twilld, not the disk's fsync
	edata=$SHM/$ns.etcd
	rm -rf "$edata"
	mkdir -p "$SHM"
	bg_start "$ns" "$dir/etcd.log" "etcd $ns" etcd --name b --data-dir "$edata" \
		--listen-client-urls "$URL" --advertise-client-urls "$URL" \
		--listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
		--initial-cluster b=http://127.0.0.1:2380 --initial-cluster-state new \
		--logger zap --log-level warn
	etcd_pid=$TW_BG_PID
	wait_for --timeout 15 etcd_healthy "$ns" || fail "etcd in $ns not healthy after 15 s"
	ip netns exec "$ns" python3 "$SRC/bench/preload_leases.py" --endpoint "$URL" \
		--prefix "$PREFIX" --count "$n" --config "$CONFIG" $([ "$DS" = 1 ] && echo --dualstack) \
		>"$dir/preload.log" ||
		fail "preload of $n leases failed"
	bg_start "$ns" "$dir/converge.out" "converge $ns" env ${NH:+TWILL_NEXTHOPS=$NH} BENCH_DUALSTACK="$DS" "$HELPER" \
		converge "$n" 60000 "$dir/twilld.log" -- "$TWILLD_BIN" --etcd-endpoints="$URL" --iface=ul \
		--subnet-file="$dir/subnet.env" -v=0
	helper_pid=$TW_BG_PID
	wait_for --timeout 70 --interval 0.1 converged "$dir/converge.out" "$helper_pid" || {
		show_log "$dir/twilld.log" 30
		fail "twilld did not converge with N=$n: $(cat "$dir/converge.out")"
	}
	out=$(grep '^converge_ms=' "$dir/converge.out") || {
		show_log "$dir/twilld.log" 30
		fail "twilld did not converge with N=$n: $(cat "$dir/converge.out")"
	}
	pid=$(field pid "$out")
	if [ "$n" = "$LAT_N" ]; then
		own=$(sed -n 's/^FLANNEL_SUBNET=//p' "$dir/subnet.env")
		sleep 1 # steady state: etcd syncs a watch that starts behind every 100 ms
		lat=$(ip netns exec "$ns" "$HELPER" latency "$n" "$LAT_K" "$URL" "$PREFIX" "$own") ||
			fail "latency run failed"
	fi
	cpu=$(awk -v t="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); split($0, f, " "); printf "%.0f", (f[12] + f[13]) * 1000 / t }' "/proc/$pid/stat")
	hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status")
	mem=$(awk '/^(VmRSS|RssAnon|RssFile):/ { printf "%s%s=%s", sep, $1, $2; sep = " " }' "/proc/$pid/status")
	anon=$(awk '/^RssAnon:/ { print $2 }' "/proc/$pid/status")
	if [ -n "${KEEP_SMAPS:-}" ]; then cp "/proc/$pid/smaps" "$TW_DIR/smaps.$n.$rep"; fi
	kill -TERM "$pid"
	# The helper exits with twilld's status once twilld has exited.
	wait_for --timeout 15 --interval 0.05 helper_gone "$helper_pid" ||
		fail "twilld (pid $pid) still running 15 s after SIGTERM"
	TW_LAST_RC=0
	wait "$helper_pid" || TW_LAST_RC=$?
	unset "TW_PROCS[$helper_pid]" "TW_PROCS[$pid]"
	[ "$TW_LAST_RC" = 0 ] || fail "twilld exited $TW_LAST_RC on SIGTERM (log: $dir/twilld.log)"
	stop_pid "$etcd_pid" 10
	rm -rf "$edata"
	ip netns del "$ns"
	echo "n=$n rep=$rep $out end_cpu_ms=$cpu end_hwm_kb=$hwm end_anon_kb=$anon $lat" >>"$TW_DIR/res"
	log "N=$n rep $rep: $out end_cpu_ms=$cpu end_hwm_kb=$hwm ($mem)${lat:+ $lat}"
}

: >"$TW_DIR/res"
rows=()
for n in $SIZES; do
	"$EMIT" emit "$n" "$TW_DIR"
	[ "$DS" != 1 ] || emit6 "$n" "$TW_DIR"
	refs=()
	for ((rep = 1; rep <= REPS; rep++)); do
		refs+=("$(reference "$n" "$TW_DIR")")
		log "N=$n rep $rep: ip -batch + bridge -batch ${refs[-1]} ms"
		one_rep "$n" "$rep"
	done
	ref=$(printf '%s\n' "${refs[@]}" | median)
	res=$(grep "^n=$n " "$TW_DIR/res")
	conv=$(while read -r l; do field converge_ms "$l"; done <<<"$res" | median)
	ccpu=$(while read -r l; do field cpu_ms "$l"; done <<<"$res" | median)
	hwm=$(while read -r l; do field end_hwm_kb "$l"; done <<<"$res" | sort -n | tail -1)
	anon=$(while read -r l; do field end_anon_kb "$l"; done <<<"$res" | median)
	ratio=$(awk -v c="$conv" -v r="$ref" 'BEGIN { printf "%.3f", c / r }')
	p50=- p99=- pmax=-
	if [ "$n" = "$LAT_N" ]; then
		p50=$(while read -r l; do field p50_ms "$l"; done <<<"$res" | median)
		p99=$(while read -r l; do field p99_ms "$l"; done <<<"$res" | median)
		pmax=$(while read -r l; do field max_ms "$l"; done <<<"$res" | sort -n | tail -1)
	fi
	rows+=("$(printf '| %s | %s | %s | %s | %s | %.1f | %.1f | %s | %s | %s |' "$n" "$ref" "$conv" \
		"$ratio" "$ccpu" "$(awk -v k="$hwm" 'BEGIN { print k / 1024 }')" \
		"$(awk -v k="$anon" 'BEGIN { print k / 1024 }')" "$p50" "$p99" "$pmax")")
	log "N=$n: ref $ref ms, twilld $conv ms, ratio $ratio, cpu $ccpu ms, peak RSS $hwm kB"
done

kernel=$(uname -r)
cpus=$(nproc)
dsnote=
[ "$DS" != 1 ] || dsnote="
Dual-stack (DUALSTACK=1): EnableIPv6 with IPv6Network 2001:db8:100::/48, every lease with its IPv6
half (2001:db8:100:<i+1>::/64, PublicIPv6, BackendV6Data), so 6N kernel objects (N = 10,000: 60,000)
on flannel.1 and flannel-v6.1, for twilld and for the ip/bridge -batch reference alike. Where the
text below says 3N, read 6N."
section="## $SECTION
$dsnote

Daemon-level convergence of twilld (vxlan backend, nexthop objects${NH:+, TWILL_NEXTHOPS=$NH}): N remote
vxlan leases preloaded in etcd, twilld started in a fresh network namespace (veth underlay at
192.0.2.1/24, config 198.18.0.0/15 SubnetLen 29), time from its exec until all N routes,
neighbours and fdb entries are in the kernel (counted from netlink events by the helper, checked
by a dump), next to \`ip -batch\` + \`bridge -batch\` installing the same 3N objects into a ready
flannel.1 (another fresh namespace, no event listener) in the same run. ratio = twilld / ip-batch
(goal <= 0.5 at N = 10,000). Medians of $REPS runs; peak RSS = the largest VmHWM (goal <= 8 MiB),
read just before SIGTERM; anon RSS at end = RssAnon at that moment (after the initial sync's
malloc_trim); CPU = twilld's utime+stime from exec to convergence. Latency: with N = $LAT_N present,
$LAT_K more leases put one by one (HTTP keep-alive, 10 ms apart, starting 1 s after convergence),
from just before each put to its RTM_NEWROUTE (goal p99 <= 20 ms). etcd 3.4 on 127.0.0.1 in the
same namespace, data on tmpfs. For scale: flanneld, measured the same way, takes 8.4x the
ip -batch time and 56 MB.

Command: \`sudo $([ "$DS" = 1 ] && echo 'DUALSTACK=1 ')bench/convergence_daemon.sh $SIZES\` (REPS=$REPS, build $(basename "$BUILD"):
$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$BUILD/CMakeCache.txt" 2>/dev/null || echo unknown)), $(date -u '+%Y-%m-%d %H:%M') UTC, kernel $kernel, $cpus CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end.

| N | ip+bridge -batch ms | twilld converge ms | ratio | twilld CPU ms | peak RSS MiB | anon RSS at end MiB | latency p50 ms | p99 ms | max ms |
|---|---|---|---|---|---|---|---|---|---|
$(printf '%s\n' "${rows[@]}")
"
printf '%s\n' "$section"
if [ "$OUT" != none ]; then
	python3 - "$OUT" "$section" "$SECTION" <<'EOF'
import re, sys
path, section, name = sys.argv[1], sys.argv[2].rstrip() + "\n", sys.argv[3]
try:
    text = open(path).read()
except FileNotFoundError:
    text = "# twill benchmark results\n"
# Replace the generated part of our section; notes after the marker line (up to the next
# "## " heading) and every other section are kept.
marker = "<!-- %s: hand-written notes below are kept by bench/convergence_daemon.sh -->" % name
m = re.search(r"^## " + re.escape(name) + r"\n.*?(?=^## |\Z)", text, flags=re.S | re.M)
if m:
    old = text[m.start():m.end()]
    notes = old[old.index(marker):] if marker in old else marker + "\n"
    new = section + "\n" + notes.rstrip() + "\n"
    text = text[:m.start()] + new + ("\n" if text[m.end():] else "") + text[m.end():]
else:
    text = text.rstrip() + "\n\n" + section + "\n" + marker + "\n"
open(path, "w").write(text)
EOF
	log "results written to $OUT"
fi

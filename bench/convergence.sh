#!/usr/bin/env bash
# Convergence of the vxlan backend: N remote leases (route + neighbour + fdb entry each)
# into the kernel. twill's batched resync (bench_convergence, the real backend code) vs
# `ip -batch` + `bridge -batch` installing the same 3N objects, each in a fresh network
# namespace (unshare -n: nothing outlives the run), in the same run. Prints the ratio
# twill/reference (< 1: twill is faster; the same definition as bench/convergence_daemon.sh),
# twill's CPU time and peak RSS.
#
# usage: bench/convergence.sh [N...]        (default: 1000 10000; N <= 16383)
# env:   TWILL_BUILD_DIR (default: ./build)
#
# The daemon-level number (leases preloaded in etcd, twilld started, time until all N
# objects are in the kernel) needs twilld and etcd; this measures the backend directly.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=${TWILL_BUILD_DIR:-$here/../build}
helper=$build/bench/bench_convergence
[ -x "$helper" ] || { echo "convergence: $helper not built" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "convergence: needs root (network namespaces)" >&2; exit 1; }
sizes=${*:-1000 10000}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

underlay='ip link set lo up && ip link add ul type veth peer name ulp &&
	ip addr add 192.0.2.1/24 dev ul && ip link set ul up && ip link set ulp up'
device='ip link add flannel.1 type vxlan id 1 local 192.0.2.1 dev ul dstport 8472 nolearning &&
	ip addr add 198.18.0.0/32 dev flannel.1 && ip link set flannel.1 up'


printf '%-7s %-9s %12s %12s %8s %10s %12s %9s\n' N mode ref_ms twill_ms ratio cpu_ms maxrss_kb sendmsg
for n in $sizes; do
	"$helper" emit "$n" "$tmp"
	# Reference: iproute2 reading the same objects from batch files.
	ref_us=$(unshare -n bash -c "$underlay && $device &&
		s=\$(date +%s%N) && ip -batch $tmp/ip.batch && bridge -batch $tmp/bridge.batch &&
		e=\$(date +%s%N) && echo \$(( (e - s) / 1000 )) &&
		[ \$(ip -j route show dev flannel.1 | jq length) -eq $n ]")
	ref_ms=$(awk -v u="$ref_us" 'BEGIN { printf "%.1f", u / 1000 }')
	for mode in nexthops plain; do
		nh=1
		[ "$mode" = plain ] && nh=0
		out=$(unshare -n env TWILL_NEXTHOPS=$nh bash -c "$underlay && $helper run $n")
		twill_ms=$(sed -n 's/.*twill_ms=\([0-9.]*\).*/\1/p' <<<"$out")
		cpu=$(sed -n 's/.*cpu_ms=\([0-9.]*\).*/\1/p' <<<"$out")
		rss=$(sed -n 's/.*maxrss_kb=\([0-9]*\).*/\1/p' <<<"$out")
		calls=$(sed -n 's/.*sendmsg=\([0-9]*\).*/\1/p' <<<"$out")
		ratio=$(awk -v r="$ref_ms" -v t="$twill_ms" 'BEGIN { printf "%.2f", t / r }')
		printf '%-7s %-9s %12s %12s %8s %10s %12s %9s\n' "$n" "$mode" "$ref_ms" "$twill_ms" \
			"$ratio" "$cpu" "$rss" "$calls"
	done
done

#!/usr/bin/env bash
# etcd's CPU while twilld converges (a companion of bench/fanout.sh; not a test).
#
#   sudo bench/fanout_etcd_cpu.sh [N...]        (default 10000)
#
# Runs bench/convergence_daemon.sh N (RESULTS=none, REPS as set, default 3) with this script as
# TWILLD_WRAPPER: in the benchmark's namespace the wrapper finds that namespace's etcd, samples
# its utime+stime every 20 ms (to $FANOUT_CPU_DIR) from twilld's exec on, and execs twilld.
# Afterwards etcd's CPU from twilld's exec to its convergence (converge_ms of each rep) is
# printed per rep, and the median. For scale: flanneld costs etcd 5.9 s of CPU at N = 10,000.
# env: TWILL_BUILD_DIR, REPS (3).
set -euo pipefail

if [ -n "${FANOUT_CPU_DIR:-}" ]; then # as the TWILLD_WRAPPER of convergence_daemon.sh
	mine=$(readlink /proc/self/ns/net)
	epid=
	for p in /proc/[0-9]*; do
		[ "$(cat "$p/comm" 2>/dev/null)" = etcd ] || continue
		[ "$(readlink "$p/ns/net" 2>/dev/null)" = "$mine" ] || continue
		epid=${p#/proc/}
		break
	done
	if [ -n "$epid" ]; then
		me=$$
		(
			exec {fd}<> <(:)
			tck=$(getconf CLK_TCK)
			out=$FANOUT_CPU_DIR/sample.${EPOCHREALTIME/./}
			while [ -r "/proc/$me/stat" ]; do
				read -r f <"/proc/$epid/stat" || break
				f=${f##*) }
				# shellcheck disable=SC2086
				set -- $f
				echo "${EPOCHREALTIME/./} $(((${12} + ${13}) * 1000 / tck))"
				read -r -t 0.02 -u "$fd" _ || true
			done >"$out"
		) &
	fi
	exec "$TWILLD_REAL" "$@"
fi

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${TWILL_BUILD_DIR:-$SRC/build}
export TWILLD_REAL=$BUILD/twilld TWILL_BUILD_DIR=$BUILD
FANOUT_CPU_DIR=$(mktemp -d /tmp/twill-fanout-cpu.XXXXXX)
export FANOUT_CPU_DIR
trap 'rm -rf "$FANOUT_CPU_DIR"' EXIT
TWILLD_WRAPPER=$SRC/bench/fanout_etcd_cpu.sh RESULTS=none LAT_N=none \
	bash "$SRC/bench/convergence_daemon.sh" "${@:-10000}" | tee "$FANOUT_CPU_DIR/conv.out"
# The reps in order: converge_ms from the log, the samples from the files (named by start time).
mapfile -t conv < <(sed -n 's/.*N=\([0-9]*\) rep [0-9]*: converge_ms=\([0-9.]*\).*/\1 \2/p' "$FANOUT_CPU_DIR/conv.out")
mapfile -t files < <(ls "$FANOUT_CPU_DIR"/sample.* | sort)
[ ${#conv[@]} = ${#files[@]} ] || { echo "fanout_etcd_cpu: ${#conv[@]} reps but ${#files[@]} sample files" >&2; exit 1; }
echo "etcd CPU from twilld's exec to its convergence (ms), per rep (load $(cut -d' ' -f1-3 /proc/loadavg)):"
for ((r = 0; r < ${#conv[@]}; r++)); do
	read -r n ms <<<"${conv[r]}"
	awk -v ms="$ms" -v n="$n" 'NR == 1 { t0 = $1; c0 = $2 } $1 <= t0 + ms * 1000 { c = $2 }
		END { printf "N=%s converge_ms=%s etcd_cpu_ms=%d\n", n, ms, c - c0 }' "${files[r]}"
done | tee "$FANOUT_CPU_DIR/cpu.out"
sed 's/.*etcd_cpu_ms=//' "$FANOUT_CPU_DIR/cpu.out" | sort -n |
	awk '{ v[NR] = $1 } END { printf "median etcd_cpu_ms=%d\n", v[int((NR + 1) / 2)] }'

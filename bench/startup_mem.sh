#!/usr/bin/env bash
# Start-up time and memory of twilld with the vxlan backend (not a test).
#
# For each N (default 0 1000 10000), REPS times (default 3), in a fresh network namespace:
# etcd on 127.0.0.1 (data on tmpfs), config 198.18.0.0/15 SubnetLen 29 vxlan, N remote leases
# preloaded (bench/preload_leases.py); twilld started through `bash -c 'exec ...'` that records
# $EPOCHREALTIME just before the exec. Measured:
#   startup_ms  from that exec to the subnet file's arrival (written once the lease is held),
#               seen by bench/wait_file.py through inotify (not the file's mtime: a new file's
#               timestamps come from the coarse clock, up to a jiffy early)
#   then, once all N routes are in flannel.1 and 0.5 s later (steady state):
#   VmHWM (peak RSS), and from /proc/PID/smaps_rollup Rss, Pss, Anonymous; the largest
#   mappings by Rss (smaps, grouped by file) for the last rep go to the log.
# STRACE=1: one extra run per N under `strace -f -ttt` (log kept in the work dir) to see where
# start-up time goes, log copied to $STRACE_DIR (default /tmp) as twill-startup-strace.N.log
# (strace slows it; its times are not the figures above).
# WRAP='cmd args': one extra run per N with twilld run as `cmd args twilld ...` (e.g. heaptrack -o F).
# TLS=1: etcd also serves https on 127.0.0.1:2378 (a throw-away CA and server certificate made
# with openssl), and twilld uses that endpoint with --etcd-cafile (the leases are preloaded
# over http).
# usage: sudo bench/startup_mem.sh [N...]   env: TWILL_BUILD_DIR, REPS=3, TLS=1, STRACE=1, WRAP
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ -z "${TWILL_BUILD_DIR:-}" ]; then
	for d in "$SRC/build-perf" "$SRC/build"; do
		[ -x "$d/twilld" ] && { TWILL_BUILD_DIR=$d; break; }
	done
fi
BUILD=${TWILL_BUILD_DIR:?no build dir with twilld: set TWILL_BUILD_DIR}
REPS=${REPS:-3}
SIZES=${*:-0 1000 10000}
[ "$(id -u)" -eq 0 ] || { echo "startup_mem: needs root (network namespaces)" >&2; exit 1; }
for t in etcd python3 jq ip curl; do
	command -v "$t" >/dev/null || { echo "startup_mem: missing $t" >&2; exit 1; }
done

export TW_PREFIX=tw$$stm TW_QUIET=0
# shellcheck source=tests/integration/lib.sh
. "$SRC/tests/integration/lib.sh"
set +o errtrace
trap - ERR
SHM=/dev/shm/twill-$TW_PREFIX
trap 'rc=$?; rm -rf "$SHM"; cleanup $rc' EXIT

PREFIX=/coreos.com/network
URL=http://127.0.0.1:2379
CONFIG='{"Network":"198.18.0.0/15","SubnetLen":29,"Backend":{"Type":"vxlan"}}'
LISTEN=$URL TW_URL=$URL TW_TLS=()
if [ -n "${TLS:-}" ]; then
	PKI=$TW_DIR/pki
	mkdir -p "$PKI"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=twill-bench-ca \
		-keyout "$PKI/ca.key" -out "$PKI/ca.pem" 2>/dev/null
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
		-keyout "$PKI/server.key" -out "$PKI/server.csr" 2>/dev/null
	printf 'subjectAltName=IP:127.0.0.1\n' >"$PKI/ext"
	openssl x509 -req -in "$PKI/server.csr" -CA "$PKI/ca.pem" -CAkey "$PKI/ca.key" -CAcreateserial \
		-days 1 -extfile "$PKI/ext" -out "$PKI/server.pem" 2>/dev/null
	LISTEN=$URL,https://127.0.0.1:2378 TW_URL=https://127.0.0.1:2378
	TW_TLS=(--etcd-cafile="$PKI/ca.pem")
	ETCD_TLS=(--cert-file "$PKI/server.pem" --key-file "$PKI/server.key")
fi

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
field() { sed -n "s/.*\b$1=\([0-9.-]*\).*/\1/p" <<<"$2"; }
etcd_healthy() { ip netns exec "$1" curl -s -m 1 "$URL/health" 2>/dev/null | grep -q '"health":"true"'; }
routes_in() { [ "$(ip -n "$1" -j route show dev flannel.1 2>/dev/null | jq length)" -ge "$2" ]; }
have_file() { [ -s "$1" ]; }

# one_run N REP [strace]: appends "n= rep= startup_ms= hwm_kb= rss_kb= pss_kb= anon_kb=" to res.
one_run() {
	local n=$1 rep=$2 st=${3:-} ns dir edata pid t0 t1 ms roll
	ns=${TW_PREFIX}${rep}n$n
	dir=$TW_DIR/$ns
	mkdir -p "$dir" "$SHM"
	netns_add "$ns"
	ip -n "$ns" link add ul type veth peer name ulp
	ip -n "$ns" addr add 192.0.2.1/24 dev ul
	ip -n "$ns" link set ul up
	ip -n "$ns" link set ulp up
	edata=$SHM/$ns.etcd
	bg_start "$ns" "$dir/etcd.log" "etcd $ns" etcd --name b --data-dir "$edata" \
		--listen-client-urls "$LISTEN" --advertise-client-urls "$URL" ${TLS:+"${ETCD_TLS[@]}"} \
		--listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
		--initial-cluster b=http://127.0.0.1:2380 --initial-cluster-state new \
		--logger zap --log-level warn
	local etcd_pid=$TW_BG_PID
	wait_for --timeout 15 etcd_healthy "$ns" || fail "etcd in $ns not healthy"
	ip netns exec "$ns" python3 "$SRC/bench/preload_leases.py" --endpoint "$URL" \
		--prefix "$PREFIX" --count "$n" --config "$CONFIG" >"$dir/preload.log" ||
		fail "preload of $n leases failed"
	local wrap=()
	if [ "$st" = strace ]; then
		wrap=(strace -f -ttt -o "$dir/strace.log")
	elif [ -n "$st" ]; then
		read -r -a wrap <<<"$WRAP"
	fi
	# the subnet file's arrival, timed by an inotify waiter set up before the exec (wait_file.py)
	bg_start "$ns" "$dir/wait.log" "wait_file $ns" python3 "$SRC/bench/wait_file.py" "$dir" \
		subnet.env "$dir/wait.ready" "$dir/t1"
	local waiter=$TW_BG_PID
	wait_for --timeout 10 --interval 0.01 have_file "$dir/wait.ready" || fail "wait_file.py not ready"
	# shellcheck disable=SC2016
	bg_start "$ns" "$dir/twilld.log" "twilld $ns" bash -c 'echo "$EPOCHREALTIME" >"$1"; shift; exec "$@"' \
		_ "$dir/t0" "${wrap[@]}" "$BUILD/twilld" --etcd-endpoints="$TW_URL" ${TLS:+"${TW_TLS[@]}"} --iface=ul \
		--subnet-file="$dir/subnet.env" -v=0
	pid=$TW_BG_PID
	# the waiter exits once it has written t1, or fails after its own 30 s
	wait "$waiter" || fail "no subnet file (N=$n): $(cat "$dir/wait.log")"
	unset "TW_PROCS[$waiter]"
	t0=$(cat "$dir/t0")
	t1=$(cat "$dir/t1")
	ms=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) * 1000 }')
	if [ "$n" -gt 0 ]; then
		wait_for --timeout 120 --interval 0.2 routes_in "$ns" "$n" || fail "routes not in (N=$n)"
	fi
	sleep 0.5
	# under a wrapper, twilld is the wrapper's child (or the wrapper exec'd it)
	if [ -n "$st" ]; then
		local c
		c=$(pgrep -P "$pid" -x twilld || true)
		[ -n "$c" ] && pid=$c
	fi
	roll=$(awk '/^(Rss|Pss|Anonymous):/ { printf "%s%s=%s", sep, tolower($1), $2; sep = " " }' "/proc/$pid/smaps_rollup" | tr -d :)
	local hwm
	hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status")
	awk '/^[0-9a-f]+-[0-9a-f]+ / { f = ($6 == "" ? "[anon]" : $6) } /^Rss:/ { r[f] += $2 } /^Pss:/ { p[f] += $2 }
		/^Anonymous:/ { a[f] += $2 }
		END { for (f in r) if (r[f] >= 64) printf "%6d kB rss %6d kB pss %6d kB anon  %s\n", r[f], p[f], a[f], f }' \
		"/proc/$pid/smaps" | sort -rn >"$TW_DIR/smaps.$n${st:+.strace}"
	kill -TERM "$TW_BG_PID" 2>/dev/null || true
	[ -n "$st" ] && kill -TERM "$pid" 2>/dev/null
	wait_for --timeout 15 --interval 0.05 helper_gone "$TW_BG_PID" || fail "twilld did not stop"
	wait "$TW_BG_PID" || true
	unset "TW_PROCS[$TW_BG_PID]"
	stop_pid "$etcd_pid" 10
	rm -rf "$edata"
	ip netns del "$ns"
	if [ "$st" = wrap ]; then
		log "N=$n run under $WRAP: startup $ms ms"
		return
	fi
	if [ -n "$st" ]; then
		cp "$dir/strace.log" "${STRACE_DIR:-/tmp}/twill-startup-strace.$n.log"
		log "N=$n strace run: ${STRACE_DIR:-/tmp}/twill-startup-strace.$n.log (startup under strace $ms ms)"
		return
	fi
	echo "n=$n rep=$rep startup_ms=$ms hwm_kb=$hwm $roll" >>"$TW_DIR/res"
	log "N=$n rep $rep: startup_ms=$ms hwm_kb=$hwm $roll (load $(cut -d' ' -f1-3 /proc/loadavg))"
}
helper_gone() { ! _tw_alive "$1"; }

: >"$TW_DIR/res"
for n in $SIZES; do
	for ((rep = 1; rep <= REPS; rep++)); do one_run "$n" "$rep"; done
	[ -n "${STRACE:-}" ] && one_run "$n" s strace
	[ -n "${WRAP:-}" ] && one_run "$n" w wrap
	log "N=$n largest mappings (last rep):"
	cat "$TW_DIR/smaps.$n"
done
echo "| N | exec to subnet file ms | peak RSS (VmHWM) KiB | Rss KiB | Pss KiB | Anonymous KiB |"
echo "|---|---|---|---|---|---|"
for n in $SIZES; do
	res=$(grep "^n=$n " "$TW_DIR/res")
	printf '| %s | %s | %s | %s | %s | %s |\n' "$n" \
		"$(while read -r l; do field startup_ms "$l"; done <<<"$res" | median)" \
		"$(while read -r l; do field hwm_kb "$l"; done <<<"$res" | sort -n | tail -1)" \
		"$(while read -r l; do field rss "$l"; done <<<"$res" | median)" \
		"$(while read -r l; do field pss "$l"; done <<<"$res" | median)" \
		"$(while read -r l; do field anonymous "$l"; done <<<"$res" | median)"
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg); $(date -u '+%Y-%m-%d %H:%M') UTC"

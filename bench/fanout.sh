#!/usr/bin/env bash
# Fan-out benchmark (not a test): one etcd, W watching nodes, a burst of E lease changes.
#
# Two network namespaces joined by a veth: etcd (192.0.2.1, data on tmpfs) and the watchers
# (192.0.2.2). Each watcher is bench/fanout_watcher.c: twill's etcd store and lease manager
# (acquires its own lease, lists, watches: what twilld does, without a backend). Per mode, with
# a fresh etcd:
#   json   the JSON gateway client: the last commit before the gRPC switch (JSON_REV), built
#          from git in a temporary worktree (or JSON_BUILD_DIR);
#   grpc   this tree's client (gRPC over HTTP/2), every watcher connected to etcd directly;
#   proxy  the same, through one `etcd grpc-proxy` per PER_PROXY watchers (in the watchers'
#          namespace on 127.0.0.1:238xx), so only the proxies talk to etcd over the veth.
# Once every watcher has its lease and its watch, E new vxlan leases are written in txns of
# 128 (tests/faults/etcd_tool.py, inside etcd's namespace: the writes do not cross the veth).
# Measured: time from the first write until every watcher has applied all E (the last
# watcher's "done", and the median one); etcd's CPU (utime+stime from /proc/<pid>/stat) and
# the proxies' over that window; bytes on the veth (both directions, /proc/net/dev) per event
# and per event per watcher. Results are appended to bench/RESULTS.md (section "## fan-out",
# replaced on each run).
#
# usage: sudo bench/fanout.sh [WATCHERS [EVENTS]]      (default 100 1000)
# env:   TWILL_BUILD_DIR (gRPC build; default build), JSON_REV (default ca3300f),
#        JSON_BUILD_DIR (a build of JSON_REV with bench_fanout_watcher; default: built here),
#        MODES (default "json grpc proxy"), PER_PROXY (10), RESULTS (path or none)
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${TWILL_BUILD_DIR:-$SRC/build}
W=${1:-100}
E=${2:-1000}
JSON_REV=${JSON_REV:-ca3300f}
MODES=${MODES:-json grpc proxy}
PER_PROXY=${PER_PROXY:-10}
OUT=${RESULTS:-$SRC/bench/RESULTS.md}
ETCD_TOOL=$SRC/tests/faults/etcd_tool.py
[ "$(id -u)" -eq 0 ] || { echo "fanout: needs root (network namespaces)" >&2; exit 1; }
if [ "$W" -lt 1 ] || [ "$W" -gt 250 ]; then echo "fanout: 1..250 watchers (PublicIP 192.0.2.3..252)" >&2; exit 2; fi
for t in etcd etcdctl python3 git cmake; do
	command -v "$t" >/dev/null || { echo "fanout: missing $t" >&2; exit 1; }
done
[ -x "$BUILD/bench/bench_fanout_watcher" ] || { echo "fanout: $BUILD/bench/bench_fanout_watcher not built" >&2; exit 1; }

export TW_PREFIX=tw$$fo TW_QUIET=0
# shellcheck source=tests/integration/lib.sh
. "$SRC/tests/integration/lib.sh"
set +o errtrace
trap - ERR
SHM=/dev/shm/twill-$TW_PREFIX
JSON_TMP=
on_exit() {
	local rc=$?
	rm -rf "$SHM"
	cleanup $rc
	if [ -n "$JSON_TMP" ]; then
		git -C "$SRC" worktree remove --force "$JSON_TMP/src" 2>/dev/null || true
		rm -rf "$JSON_TMP"
	fi
}
trap on_exit EXIT

NE=${TW_PREFIX}e
NW=${TW_PREFIX}w
URL=http://192.0.2.1:2379
CONFIG='{"Network":"198.18.0.0/15","SubnetLen":29,"SubnetMin":"198.19.0.0","Backend":{"Type":"vxlan"}}'
TCK=$(getconf CLK_TCK)
# The burst writer: the ops of etcd_tool.py's format in txns of 128 on one keep-alive
# connection (JSON gateway, inside etcd's namespace); prints the realtime ns of the first write.
WRITER='
import base64, http.client, json, sys, time
b64 = lambda b: base64.b64encode(b).decode()
ops = []
for line in sys.stdin.buffer:
    _, k, v = line.rstrip(b"\n").split(b"\t", 2)
    ops.append({"request_put": {"key": b64(k), "value": b64(v)}})
c = http.client.HTTPConnection("127.0.0.1", 2379)
t0 = time.time_ns()
for i in range(0, len(ops), 128):
    c.request("POST", "/v3/kv/txn", json.dumps({"success": ops[i:i + 128]}))
    r = c.getresponse()
    body = r.read()
    if r.status != 200:
        sys.exit("txn: HTTP %d %s" % (r.status, body[:200]))
print(t0)
'

# cpu_ms PID...: utime+stime of the PIDs, in ms.
cpu_ms() {
	local p t=0 f
	for p in "$@"; do
		read -r f <"/proc/$p/stat" || continue
		f=${f##*) }
		# shellcheck disable=SC2086 # the fields of stat, split on purpose
		set -- $f
		t=$((t + ${12} + ${13}))
	done
	echo $((t * 1000 / TCK))
}

# veth_bytes: rx + tx bytes of the watchers' end of the veth.
veth_bytes() {
	ip netns exec "$NW" awk '/^ *vw:/ { sub(/^ *vw:/, ""); print $1 + $9 }' /proc/net/dev
}

# json_build: a build of JSON_REV with this tree's fanout_watcher.c in JSON_BUILD_DIR (a
# temporary worktree and build, removed at exit, unless JSON_BUILD_DIR was given).
json_build() {
	[ -z "${JSON_BUILD_DIR:-}" ] || return 0
	JSON_TMP=$(mktemp -d /tmp/twill-fanout-json.XXXXXX)
	git -C "$SRC" worktree add --detach "$JSON_TMP/src" "$JSON_REV" >"$JSON_TMP/build.log" 2>&1
	cp "$SRC/bench/fanout_watcher.c" "$JSON_TMP/src/bench/"
	cmake -S "$JSON_TMP/src" -B "$JSON_TMP/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
		-DCMAKE_C_COMPILER=gcc >>"$JSON_TMP/build.log" 2>&1 &&
		cmake --build "$JSON_TMP/build" -j2 --target bench_fanout_watcher >>"$JSON_TMP/build.log" 2>&1 ||
		{ tail -n 20 "$JSON_TMP/build.log" >&2; fail "build of $JSON_REV failed"; }
	JSON_BUILD_DIR=$JSON_TMP/build
	log "built bench_fanout_watcher of $JSON_REV (JSON gateway client) in $JSON_BUILD_DIR"
}

etcd_healthy() {
	ip netns exec "$NE" curl -s -m 1 http://127.0.0.1:2379/health 2>/dev/null | grep -q '"health":"true"'
}

count_lines() { # count_lines PATTERN FILES...: files with a line matching PATTERN
	local pat=$1
	shift
	grep -l -- "$pat" "$@" 2>/dev/null | wc -l
}
all_have() { [ "$(count_lines "$1" "$TW_DIR"/w*.out)" -ge "$W" ]; }

# one_mode MODE BIN: one run; appends a result line to $TW_DIR/res.
one_mode() {
	local mode=$1 bin=$2 k epid pids=() ppids=() ep port data
	data=$SHM/etcd-$mode
	mkdir -p "$SHM"
	rm -f "$TW_DIR"/w*.out
	bg_start "$NE" "$TW_DIR/etcd-$mode.log" "etcd $mode" etcd --name f --data-dir "$data" \
		--listen-client-urls "$URL,http://127.0.0.1:2379" --advertise-client-urls "$URL" \
		--listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
		--initial-cluster f=http://127.0.0.1:2380 --initial-cluster-state new \
		--logger zap --log-level warn
	epid=$TW_BG_PID
	wait_for --timeout 15 etcd_healthy || fail "$mode: etcd not healthy"
	ip netns exec "$NE" etcdctl --endpoints 127.0.0.1:2379 put /coreos.com/network/config "$CONFIG" >/dev/null
	if [ "$mode" = proxy ]; then
		for ((k = 0; k < (W + PER_PROXY - 1) / PER_PROXY; k++)); do
			bg_start "$NW" "$TW_DIR/proxy-$k.log" "proxy $k" etcd grpc-proxy start \
				--endpoints=192.0.2.1:2379 --listen-addr="127.0.0.1:$((23800 + k))" \
				--advertise-client-url="127.0.0.1:$((23800 + k))" --data-dir "$SHM/proxy-$k"
			ppids+=("$TW_BG_PID")
		done
		for ((k = 0; k < ${#ppids[@]}; k++)); do
			wait_for --timeout 15 ip netns exec "$NW" etcdctl --endpoints "127.0.0.1:$((23800 + k))" \
				--dial-timeout 1s get /probe >/dev/null 2>&1 || fail "proxy $k does not serve"
		done
	fi
	for ((k = 1; k <= W; k++)); do
		ep=$URL
		if [ "$mode" = proxy ]; then
			port=$((23800 + (k - 1) / PER_PROXY))
			ep=http://127.0.0.1:$port
		fi
		bg_start "$NW" "$TW_DIR/w$k.out" "watcher $k" "$bin" "$ep" "192.0.2.$((k + 2))" "$E"
		pids+=("$TW_BG_PID")
	done
	wait_for --timeout 180 --interval 0.2 all_have '^ready' ||
		fail "$mode: only $(count_lines '^ready' "$TW_DIR"/w*.out) of $W watchers ready after 180 s"
	log "$mode: $W watchers ready (leases acquired, watching)"
	sleep 1 # let the acquisitions' events drain before the counters are read
	local cpu0 pcpu0 wcpu0 b0 t0 cpu1 pcpu1 wcpu1 b1 last med
	cpu0=$(cpu_ms "$epid")
	pcpu0=$(cpu_ms "${ppids[@]}")
	wcpu0=$(cpu_ms "${pids[@]}")
	b0=$(veth_bytes)
	t0=$(ip netns exec "$NE" python3 -c "$WRITER" <"$TW_DIR/burst.ops") || fail "$mode: burst write failed"
	wait_for --timeout 600 --interval 0.05 all_have '^done' ||
		fail "$mode: only $(count_lines '^done' "$TW_DIR"/w*.out) of $W watchers applied the $E changes in 600 s"
	cpu1=$(cpu_ms "$epid")
	pcpu1=$(cpu_ms "${ppids[@]}")
	wcpu1=$(cpu_ms "${pids[@]}")
	b1=$(veth_bytes)
	read -r last med < <(cat "$TW_DIR"/w*.out | awk -v t0="$t0" '/^done / { print ($2 - t0) / 1e6 }' |
		sort -n | awk '{ v[NR] = $1 } END { printf "%.0f %.0f\n", v[NR], v[int((NR + 1) / 2)] }')
	echo "$mode $W $E $last $med $((cpu1 - cpu0)) $((pcpu1 - pcpu0)) $((wcpu1 - wcpu0)) $((b1 - b0)) $(cut -d' ' -f1-3 /proc/loadavg)" >>"$TW_DIR/res"
	log "$mode: all $W applied $E changes: last ${last} ms, median ${med} ms; etcd CPU $((cpu1 - cpu0)) ms, proxies $((pcpu1 - pcpu0)) ms, watchers $((wcpu1 - wcpu0)) ms; $((b1 - b0)) bytes on the veth"
	for k in "${pids[@]}" "${ppids[@]}"; do kill -TERM "$k" 2>/dev/null || true; done
	for k in "${pids[@]}" "${ppids[@]}"; do stop_pid "$k" 5; done
	stop_pid "$epid" 10
	rm -rf "$data" "$SHM"/proxy-*
}

netns_add "$NE"
netns_add "$NW"
ip -n "$NE" link add ve type veth peer name vw netns "$NW"
ip -n "$NE" addr add 192.0.2.1/24 dev ve
ip -n "$NW" addr add 192.0.2.2/24 dev vw
ip -n "$NE" link set ve up
ip -n "$NW" link set vw up
python3 "$ETCD_TOOL" vxlan-leases /coreos.com/network 198.18.0.0 29 "$E" 1 >"$TW_DIR/burst.ops"
: >"$TW_DIR/res"
load0=$(cut -d' ' -f1-3 /proc/loadavg)
for mode in $MODES; do
	case $mode in
	json)
		json_build
		bin=$JSON_BUILD_DIR/bench/bench_fanout_watcher
		;;
	grpc | proxy) bin=$BUILD/bench/bench_fanout_watcher ;;
	*) fail "unknown mode $mode" ;;
	esac
	[ -x "$bin" ] || fail "$mode: no $bin"
	one_mode "$mode" "$bin"
done

rows=$(awk -v E="$E" '{
	name = $1 == "json" ? "JSON gateway (" REV ")" : $1 == "grpc" ? "gRPC direct" : "gRPC via " PP " grpc-proxies"
	printf "| %s | %d | %d | %d | %d | %d | %d | %d | %.0f | %.1f | %s %s %s |\n", name, $2, $3, $4, $5, $6, $7, $8, $9 / E, $9 / E / $2, $10, $11, $12
}' REV="$JSON_REV" PP="$(((W + PER_PROXY - 1) / PER_PROXY))" "$TW_DIR/res")
section="## fan-out

One etcd 3.4 (own namespace, data on tmpfs), $W watching nodes in another namespace behind a
veth, each a bench/fanout_watcher (twill's etcd store + lease manager: acquires its lease, lists,
watches), then a burst of $E new vxlan leases (txns of 128, written inside etcd's namespace).
\"all applied\" = from the first write until the last watcher has applied all $E (median: the
middle watcher); CPU = utime+stime over that window; wire = bytes on the veth, both directions
(every watcher's connection, or only the proxies' in the proxy mode), per event and per event per
watcher. A fresh etcd per mode. Load average at the start: $load0.

Command: \`sudo bench/fanout.sh $W $E\` (MODES=\"$MODES\", PER_PROXY=$PER_PROXY, JSON_REV=$JSON_REV),
$(date -u '+%Y-%m-%d %H:%M') UTC, kernel $(uname -r), $(nproc) CPUs.

| client | watchers | events | all applied ms | median ms | etcd CPU ms | proxies CPU ms | watchers CPU ms | wire B/event | wire B/event/watcher | load avg at end |
|---|---|---|---|---|---|---|---|---|---|---|
$rows
"
printf '%s\n' "$section"
if [ "$OUT" != none ]; then
	python3 - "$OUT" "$section" <<'EOF'
import re, sys
path, section = sys.argv[1], sys.argv[2].rstrip() + "\n"
text = open(path).read()
marker = "<!-- fan-out: hand-written notes below are kept by bench/fanout.sh -->"
m = re.search(r"^## fan-out\n.*?(?=^## |\Z)", text, flags=re.S | re.M)
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

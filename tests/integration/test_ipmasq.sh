#!/usr/bin/env bash
# twilld --ip-masq end to end: host h1 (192.0.2.11) with a container behind its bridge
# (198.18.x.2), an "outside" namespace at 198.51.100.50 behind a router, with no route back
# to the overlay. Checks: flannel's exact FLANNEL-FWD / FLANNEL-POSTRTG rules in h1; the
# container reaches the outside only through the masquerade (ping, and a UDP listener outside
# that prints the peer address: h1's 192.0.2.11, never the container's); a rule deleted by
# hand is restored within --iptables-resync; the health server answers /healthz, /readyz and
# /metrics; SIGTERM leaves the rules in place; a restart without --ip-masq removes the nat
# chain twilld installed and keeps the forward rules.
set -euo pipefail
# shellcheck source=tests/integration/lib.sh disable=SC2034
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

HEALTH_PORT=9753
OUT_IP=198.51.100.50

cluster_up 1 1 "$(net_config_json host-gw)" --ip-masq --iptables-resync=1 \
	--healthz-ip=127.0.0.1 --healthz-port=$HEALTH_PORT
h=$(ns_host 1)
c=$(ns_cont 1 1)
sub=$(host_subnet 1)
cip=$(cont_ip 1 1)
[ "$(subnet_var 1 FLANNEL_IPMASQ)" = true ] || fail "FLANNEL_IPMASQ is not true"

# The outside world: a router (192.0.2.1 / 198.51.100.1) and OUT on its far segment, which
# knows the underlay but not the overlay.
add_routed_segment
out=${TW_PREFIX}o
netns_add "$out"
_tw_attach "$out" "$OUT_IP" out "${TW_PREFIX}sw2"
ip -n "$out" route add 192.0.2.0/24 via 198.51.100.1 || fail "route in $out"
ip -n "$(ns_host 1)" route show | grep -q '^198.51.100.0/24 via 192.0.2.1' || fail "h1 has no route to the outside"

# ---- the rules, exactly as flannel writes them ----
rules() {
	ip netns exec "$h" iptables-save -t "$1" | grep -E '^(:FLANNEL|-A FORWARD|-A POSTROUTING|-A FLANNEL)' || true
}
want_filter() {
	cat <<EOF
:FLANNEL-FWD - [0:0]
-A FORWARD -m comment --comment "flanneld forward" -j FLANNEL-FWD
-A FLANNEL-FWD -s $TW_OVERLAY -m comment --comment "flanneld forward" -j ACCEPT
-A FLANNEL-FWD -d $TW_OVERLAY -m comment --comment "flanneld forward" -j ACCEPT
EOF
}
want_nat() {
	local n=$TW_OVERLAY rf=" --random-fully"
	cat <<EOF
:FLANNEL-POSTRTG - [0:0]
-A POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG
-A FLANNEL-POSTRTG -m mark --mark 0x4000/0x4000 -m comment --comment "flanneld masq" -j RETURN
-A FLANNEL-POSTRTG -s $n -d $n -m comment --comment "flanneld masq" -j RETURN
-A FLANNEL-POSTRTG -s $n ! -d 224.0.0.0/4 -m comment --comment "flanneld masq" -j MASQUERADE$rf
-A FLANNEL-POSTRTG ! -s $n -d $sub -m comment --comment "flanneld masq" -j RETURN
-A FLANNEL-POSTRTG ! -s $n -d $n -m comment --comment "flanneld masq" -j MASQUERADE$rf
EOF
}
nat_ok() { [ "$(rules nat)" = "$(want_nat)" ]; }
filter_ok() { [ "$(rules filter)" = "$(want_filter)" ]; }
wait_for --timeout 5 nat_ok || fail "nat rules in h1:
$(rules nat)
want:
$(want_nat)"
wait_for --timeout 5 filter_ok || fail "filter rules in h1:
$(rules filter)
want:
$(want_filter)"
log "flannel's rules in place in h1 (lease $sub)"

# ---- masquerade: the outside sees h1's address ----
ping_ok "$c" "$OUT_IP" 3 || fail "container $cip cannot ping $OUT_IP through the masquerade"
listener_out=$TW_DIR/listener.out
bg_start "$out" "$listener_out" "udp listener" python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("'"$OUT_IP"'", 9999))
s.settimeout(10)
data, peer = s.recvfrom(100)
print("peer", peer[0], data.decode(), flush=True)
'
listener_pid=$TW_BG_PID
sent=0
got_peer() { grep -q '^peer ' "$listener_out"; }
for _ in $(seq 1 40); do
	ip netns exec "$c" python3 -c '
import socket
socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"hello", ("'"$OUT_IP"'", 9999))
' && sent=$((sent + 1))
	if wait_for --timeout 0.25 got_peer; then break; fi
done
got_peer || fail "the outside received nothing from the container ($sent datagrams sent)"
stop_pid "$listener_pid" 2
peer=$(awk '/^peer /{print $2; exit}' "$listener_out")
[ "$peer" = "$(host_ip 1)" ] || fail "the outside saw $peer, want h1's $(host_ip 1) (masquerade)"
log "masquerade: the outside saw $peer for container $cip"

# ---- repair: a deleted rule is back within --iptables-resync=1 ----
ip netns exec "$h" iptables -t nat -D FLANNEL-POSTRTG 3
ip netns exec "$h" iptables -D FORWARD 1
t0=$(now_ms)
wait_for --timeout 4 nat_ok || fail "nat rule not restored: $(rules nat)"
wait_for --timeout 4 filter_ok || fail "forward jump not restored: $(rules filter)"
log "deleted rules restored in $(($(now_ms) - t0)) ms"
grep -q 'restored' "$(twilld_log 1)" || fail "twilld did not log the repair"

# ---- health server ----
hget() { ip netns exec "$h" curl -s -o "$TW_DIR/body" -w '%{http_code}' -m 2 "http://127.0.0.1:$HEALTH_PORT$1"; }
[ "$(hget /healthz)" = 200 ] || fail "/healthz: $(cat "$TW_DIR/body")"
[ "$(hget /readyz)" = 200 ] || fail "/readyz: $(cat "$TW_DIR/body")"
[ "$(hget /metrics)" = 200 ] || fail "/metrics"
grep -q '^# TYPE twill_' "$TW_DIR/body" || fail "/metrics has no twill_ metrics: $(head -20 "$TW_DIR/body")"
[ "$(hget /nope)" = 404 ] || fail "/nope is not 404"
log "health server: /healthz /readyz /metrics answer"

# ---- SIGTERM keeps the rules; a restart without --ip-masq removes the nat chain ----
stop_twilld 1
[ "$TW_LAST_RC" = 0 ] || fail "twilld exited $TW_LAST_RC on SIGTERM"
nat_ok || fail "nat rules gone after SIGTERM: $(rules nat)"
start_twilld 1 --iptables-resync=1
wait_twilld_ready 1 15
no_nat() { [ -z "$(rules nat)" ]; }
wait_for --timeout 5 no_nat || fail "nat chain still there without --ip-masq: $(rules nat)"
wait_for --timeout 5 filter_ok || fail "forward rules changed: $(rules filter)"
[ "$(subnet_var 1 FLANNEL_IPMASQ)" = false ] || fail "FLANNEL_IPMASQ is not false"
# the control: without the masquerade the outside cannot answer the overlay address
! ping_ok "$c" "$OUT_IP" 1 || fail "container reaches $OUT_IP without the masquerade"
log "restart without --ip-masq: nat chain removed, forward rules kept"
finish_twilld_all
log "PASS"

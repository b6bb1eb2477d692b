#!/usr/bin/env bash
# twilld, vxlan backend, 3 hosts: restarts and damage.
# SIGTERM + start while a 50 ms ping runs through the host: no echo request lost; SIGKILL +
# start: same subnet, converges; flannel.1 deleted under a running twilld: restored, ping works;
# stale neighbour/fdb/route entries left on flannel.1 while twilld was down: removed
# (and a wrong one corrected) at start; a start the kernel refuses (MTU): its reason is logged
# once, by twilld, while it retries.
set -euo pipefail
# shellcheck source=tests/integration/lib.sh disable=SC2034
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TW_MODE=vxlan
cluster_up 3 3 "$(net_config_json vxlan)"
wait_state 3 1 2 3
ping_all_pairs 2 1 2 3

# --- SIGTERM and start while ping runs: zero loss ----------------------------------------------
# h1c1 -> h2c1 crosses h1 and h2: restart both, one after the other, under the same ping.
ping_start "$(ns_cont 1 1)" "$(cont_ip 2 1)" restart
ping_wait_replies restart 20
for i in 1 2; do
	sub=$(host_subnet "$i")
	restart_twilld "$i" TERM
	assert_eq "$(host_subnet "$i")" "$sub" "h$i subnet after SIGTERM restart"
	ping_wait_replies restart 20
done
wait_state 2 1 2 3
ping_wait_replies restart 20
ping_stop_lossless restart
assert_eq "$(lease_count)" 3 "leases after the restarts"

# --- SIGKILL and start: same subnet, converges ---------------------------------------------------
sub2=$(host_subnet 2)
mac2=$(vxlan_device 2)
mac2=${mac2##* mac }
restart_twilld 2 KILL
assert_eq "$(host_subnet 2)" "$sub2" "h2 subnet after SIGKILL restart"
assert_eq "$(lease_count)" 3 "leases after SIGKILL restart"
assert_lease 2 vxlan
assert_vxlan_device 2
wait_state 2 1 2 3
ping_all_pairs 2 1 2 3

# --- flannel.1 deleted under a running twilld: restored --------------------------------------------
ip -n "$(ns_host 1)" link del "$TW_VXLAN_DEV"
t0=$(now_ms)
wait_for --timeout 5 eval '[ -n "$(vxlan_device 1)" ]' || {
	show_log "$(twilld_log 1)" 30
	fail "h1: $TW_VXLAN_DEV not recreated within 5 s of its deletion"
}
# the MAC may change with the new device: wait_state re-reads the leases at every poll
wait_state 5 1 2 3
log "h1: $TW_VXLAN_DEV deleted, restored with all entries in $(($(now_ms) - t0)) ms"
assert_vxlan_device 1
ping_all_pairs 2 1 2 3

# --- stale entries from a previous run: removed at start ---------------------------------------
h1=$(ns_host 1)
stop_twilld 1
assert_eq "$TW_LAST_RC" 0 "twilld h1 exit status on SIGTERM"
[ -n "$(vxlan_device 1)" ] || fail "h1: SIGTERM removed $TW_VXLAN_DEV (it must stay)"
ip -n "$h1" neigh replace 198.18.250.0 lladdr 0a:00:00:00:fa:01 dev "$TW_VXLAN_DEV" nud permanent
bridge -n "$h1" fdb replace 0a:00:00:00:fa:01 dev "$TW_VXLAN_DEV" dst 192.0.2.250 self permanent
ip -n "$h1" route replace 198.18.250.0/24 via 198.18.250.0 dev "$TW_VXLAN_DEV" onlink
# and a real remote lease's neighbour with a wrong MAC
net2=${sub2%/*}
ip -n "$h1" neigh replace "$net2" lladdr 0a:00:00:00:fa:02 dev "$TW_VXLAN_DEV" nud permanent
if state_ok "$TW_DIR/leases.snap" 1; then fail "the stale entries did not register as a mismatch"; fi
start_twilld 1
wait_twilld_ready 1 15
wait_state 3 1 2 3
log "h1: stale neighbour, fdb and route removed and a wrong MAC corrected at start"
ping_all_pairs 2 1 2 3

# --- a start the kernel refuses: its reason logged once (warn), its repeats at debug only -------
# A network (own prefix) whose Backend.MTU 9000 exceeds what eth0 allows flannel.1: init adopts
# the compatible device, start's MTU change is refused (EINVAL), retried every second.
stop_twilld 1
etcdctl_run put /twill-mtu/network/config "$(net_config_json vxlan '"MTU":9000')" >/dev/null ||
	fail "etcdctl put /twill-mtu/network/config"
logf=$(twilld_log 1)
from=$(($(wc -l <"$logf") + 1))
reason='vxlan flannel.1: setting MTU 9000 and bringing the device up failed: Invalid argument'
# lines of this run with the reason: at LEVEL (W, D, ...)
reason_lines() { tail -n +"$from" "$logf" | grep -F "$reason" | grep -c " $1 twilld: " || true; }
start_twilld 1 --etcd-prefix=/twill-mtu/network
# two retries after the first attempt: two repeats at debug
wait_for --timeout 10 eval '[ "$(reason_lines D)" -ge 2 ]' || {
	show_log "$logf" 30
	fail "h1: no two repeated start failures (at debug) within 10 s"
}
assert_eq "$(reason_lines W)" 1 "warnings with the start failure's reason"
assert_eq "$(tail -n +"$from" "$logf" | grep -F "$reason" | grep -vc " [WD] twilld: ")" 0 \
	"other lines with the start failure's reason (a log by the backend itself)"
tail -n +"$from" "$logf" | grep -F "$reason" | grep " W twilld: " |
	grep -q "backend vxlan: start with lease .* failed: $reason, retrying in 1s" ||
	{ show_log "$logf" 30; fail "h1: the warning does not say what failed and when it retries"; }
log "h1: start refused by the kernel: reason warned once over $(reason_lines D) retries at debug"
finish_twilld_all
log "PASS"

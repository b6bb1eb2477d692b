#!/usr/bin/env bash
# Faults 5 and 7: load at start-up.
#  5. 50 twilld (vxlan, one small namespace each, all on one underlay switch) started at once
#     against one etcd: 50 distinct subnets, one lease per node, every node's kernel state
#     equals the 50 leases.
#  7. 10,000 remote vxlan leases preloaded (Network 198.18.0.0/15, SubnetLen 29); twilld
#     SIGKILLed in the middle of its initial sync; 2,000 of the leases deleted and 500 added
#     while it is down; started again: converges to exactly the lease set (no stale entries).
set -euo pipefail
# shellcheck source=tests/integration/lib.sh disable=SC2034
. "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh"
# shellcheck source=tests/faults/lib_faults.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib_faults.sh"

TW_MODE=vxlan
N=50

# --- 5. 50 nodes at once -------------------------------------------------------------------------
make_topology "$N" etcd
start_etcd
put_net_config "$(net_config_json vxlan)"
t0=$(now_ms)
for ((i = 1; i <= N; i++)); do start_twilld "$i"; done
for ((i = 1; i <= N; i++)); do
	wait_for --timeout 60 twilld_ready "$i" || {
		show_log "$(twilld_log "$i")" 30
		fail "twilld h$i not ready within 60 s of the simultaneous start"
	}
done
log "5: $N twilld started at once, all ready in $(($(now_ms) - t0)) ms"
assert_distinct_subnets $(seq 1 $N)
assert_eq "$(lease_count)" "$N" "leases in etcd"
assert_no_dup_leases
for ((i = 1; i <= N; i++)); do assert_own_lease "$i" "$(host_subnet "$i")"; done
log "5: $N distinct subnets, one lease per node, each matching its node's subnet file"
wait_state 60 $(seq 1 $N)
for i in 2 $N; do
	setup_containers "$i" 1
done
ping_all_pairs 1 2 $N
finish_twilld_all

# --- 7. SIGKILL in the middle of a 10,000-lease initial sync ---------------------------------------
etcdctl_run del --prefix "$TW_ETCD_PREFIX/subnets/" >/dev/null
TW_OVERLAY=198.18.0.0/15
put_net_config '{"Network":"198.18.0.0/15","SubnetLen":29,"Backend":{"Type":"vxlan"}}'
H=$((N + 1))
add_host "$H"
t0=$(now_ms)
n=$(ip netns exec "$(ns_etcd)" python3 "$ETCD_TOOL" vxlan-leases "$TW_ETCD_PREFIX" 198.18.0.0 29 10000 100 | etcd_apply)
assert_eq "$n" 10000 "leases preloaded"
assert_eq "$(lease_count)" 10000 "leases in etcd"
log "7: 10000 vxlan leases preloaded in $(($(now_ms) - t0)) ms"
t0=$(now_ms)
start_twilld "$H"
_some_routes() { [ "$(overlay_route_count "$H")" -ge 1000 ]; }
wait_for --timeout 60 --interval 0.02 _some_routes || {
	show_log "$(twilld_log "$H")" 30
	fail "h$H programmed fewer than 1000 routes within 60 s"
}
stop_twilld "$H" KILL
own7=$(host_subnet "$H") || fail "h$H wrote no subnet file before the SIGKILL"
killed_at=$(overlay_route_count "$H")
log "7: twilld h$H SIGKILLed $(($(now_ms) - t0)) ms after start with $killed_at of 10000 routes programmed"
[ "$killed_at" -lt 10000 ] || fail "the sync was already complete when SIGKILL arrived: the test did not hit the middle"
# While it is down: 2,000 leases go (the first ones, programmed first or not), 500 new ones come.
{
	ip netns exec "$(ns_etcd)" python3 "$ETCD_TOOL" vxlan-leases "$TW_ETCD_PREFIX" 198.18.0.0 29 2000 100 |
		awk -F'\t' '{print "del\t" $2}'
	ip netns exec "$(ns_etcd)" python3 "$ETCD_TOOL" vxlan-leases "$TW_ETCD_PREFIX" 198.18.0.0 29 500 10100
} | etcd_apply >/dev/null
# 8500 remote leases + h$H's own (taken before the SIGKILL; it has a 24 h TTL)
assert_eq "$(lease_count)" 8501 "leases after the change"
t0=$(now_ms)
start_twilld "$H"
wait_twilld_ready "$H" 60
wait_state 120 "$H"
assert_eq "$(host_subnet "$H")" "$own7" "h$H subnet after the SIGKILL restart"
log "7: restarted twilld converged to exactly the 8500 remote leases (no stale entries) in $(($(now_ms) - t0)) ms"
assert_eq "$(overlay_route_count "$H")" 8500 "routes on $TW_VXLAN_DEV"
finish_twilld_all
log "PASS"

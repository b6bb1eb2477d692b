#!/usr/bin/env bash
# twilld, host-gw backend, 3 hosts on one underlay segment: leases with BackendType host-gw,
# FLANNEL_MTU = underlay MTU, routes "<subnet> via <PublicIP> dev eth0" exactly for the remote
# leases, no flannel.1, ping between every pair of containers on different hosts; a released
# lease's route gone within 1 s (twillctl release); a new host programmed within 1 s; SIGTERM restart under ping
# loses nothing.
set -euo pipefail
# shellcheck source=tests/integration/lib.sh disable=SC2034
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TW_MODE=host-gw
cluster_up 3 4 "$(net_config_json host-gw)"
for i in 1 2 3; do
	assert_subnet_file "$i" 1500
	assert_lease "$i" host-gw
	[ -z "$(vxlan_device "$i")" ] || fail "h$i has a $TW_VXLAN_DEV with host-gw"
done
wait_state 3 1 2 3
ping_all_pairs 2 1 2 3

ping_start "$(ns_cont 1 1)" "$(cont_ip 2 1)" restart
ping_wait_replies restart 20
restart_twilld 1 TERM
ping_wait_replies restart 20
ping_stop_lossless restart

sub3=$(host_subnet 3)
stop_twilld 3
t0=$(now_ms)
out=$(ip netns exec "$(ns_host 1)" "$TWILLCTL" --etcd-endpoints "$TW_ETCD_URL" release "$sub3" 2>&1) ||
	fail "twillctl release $sub3: $out"
wait_state 1 1 2
log "lease $sub3 released with twillctl: routes gone in $(($(now_ms) - t0)) ms"

start_twilld 4
wait_for --timeout 15 eval '[ "$(lease_count)" = 3 ]' || fail "h4 took no lease within 15 s"
t0=$(now_ms)
wait_state 1 1 2 4
log "new host h4 programmed within $(($(now_ms) - t0)) ms of its lease appearing"
wait_twilld_ready 4 5
assert_distinct_subnets 1 2 4
assert_lease 4 host-gw
setup_containers 4 2
ping_all_pairs 2 1 2 4
finish_twilld_all
log "PASS"

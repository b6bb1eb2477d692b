#!/usr/bin/env bash
# twilld, vxlan backend, 3 hosts on one underlay segment, real etcd:
# leases, subnet files and flannel.1 as flannel makes them; ping between every pair of
# containers on different hosts; the kernel state equals the leases exactly; a released lease
# disappears everywhere within 1 s; a reservation is programmed like a lease and a lease of
# another backend type is ignored; a new host is programmed everywhere within 1 s; a stopped
# host comes back with the subnet from its subnet file.
set -euo pipefail
# shellcheck source=tests/integration/lib.sh disable=SC2034
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TW_MODE=vxlan
cluster_up 3 4 "$(net_config_json vxlan)"

# --- what each host published and built ---------------------------------------------------------
assert_eq "$(lease_count)" 3 "leases in etcd"
for i in 1 2 3; do
	assert_subnet_file "$i" 1450
	assert_lease "$i" vxlan
	assert_vxlan_device "$i"
done
log "leases, subnet files and $TW_VXLAN_DEV as flannel makes them"

wait_state 3 1 2 3
ping_all_pairs 2 1 2 3

# --- a reservation (a key with no etcd lease) is programmed like any lease, within 1 s; a lease
# of another backend type is ignored -------------------------------------------------------------
t0=$(now_ms)
etcdctl_run put "$(lease_key 198.18.250.0/24)" \
	'{"PublicIP":"192.0.2.50","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"0a:00:00:00:fa:50"}}' >/dev/null
etcdctl_run put "$(lease_key 198.18.251.0/24)" \
	'{"PublicIP":"192.0.2.51","PublicIPv6":null,"BackendType":"host-gw"}' >/dev/null
wait_state 1 1 2 3
log "reservation 198.18.250.0/24 programmed (and the host-gw lease ignored) in $(($(now_ms) - t0)) ms"
t0=$(now_ms)
etcdctl_run del "$(lease_key 198.18.250.0/24)" >/dev/null
etcdctl_run del "$(lease_key 198.18.251.0/24)" >/dev/null
wait_state 1 1 2 3
log "reservation removed everywhere in $(($(now_ms) - t0)) ms"

# --- a lease released: gone on the others within 1 s --------------------------------------------
# The owner is stopped first (SIGTERM leaves its lease in place), as when a node is retired:
# a running twill would re-acquire its own lease at once.
sub3=$(host_subnet 3)
stop_twilld 3
assert_eq "$TW_LAST_RC" 0 "twilld h3 exit status on SIGTERM"
assert_eq "$(lease_count)" 3 "leases after h3 stopped (SIGTERM keeps the lease)"
t0=$(now_ms)
etcdctl_run del "$(lease_key "$sub3")" >/dev/null || fail "etcdctl del $(lease_key "$sub3")"
wait_state 1 1 2
dt=$(($(now_ms) - t0))
assert_eq "$(lease_count)" 2 "leases after the release"
log "lease $sub3 released: routes, neighbours and fdb entries gone on h1, h2 in $dt ms"
if ping_ok "$(ns_cont 1 1)" "$(cont_ip 3 1)" 1; then fail "h1c1 still reaches h3c1 after its lease was released"; fi

# --- a new host joins: programmed everywhere within 1 s -------------------------------------------
start_twilld 4
wait_for --timeout 15 eval '[ "$(lease_count)" = 3 ]' || {
	show_log "$(twilld_log 4)" 30
	fail "h4 took no lease within 15 s"
}
t0=$(now_ms)
wait_state 1 1 2 4
log "new host h4 programmed on h1, h2 and h4 within $(($(now_ms) - t0)) ms of its lease appearing"
wait_twilld_ready 4 5
assert_distinct_subnets 1 2 4
assert_subnet_file 4 1450
assert_lease 4 vxlan
assert_vxlan_device 4
setup_containers 4 2
ping_all_pairs 2 1 2 4

# --- the stopped host comes back: its old subnet (from its subnet file) when still free ----------
start_twilld 3
wait_twilld_ready 3 15
if [ "$(host_subnet 4)" != "$sub3" ]; then
	assert_eq "$(host_subnet 3)" "$sub3" "h3's subnet after restart (subnet file reuse)"
else
	log "h4 happened to take h3's old subnet $sub3: h3 got $(host_subnet 3)"
fi
assert_distinct_subnets 1 2 3 4
assert_lease 3 vxlan
wait_state 2 1 2 3 4
ping_all_pairs 2 1 2 3 4
finish_twilld_all
log "PASS"

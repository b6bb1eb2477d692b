#!/usr/bin/env bash
# Faults 1 and 8a on a dual-stack cluster: 3 vxlan hosts with an IPv6 underlay
# (2001:db8:0:1::/64) and EnableIPv6 (2001:db8:100::/48), twilld --subnet-lease-ttl 5.
#  1d. etcd SIGKILLed for 12 s (> 2 TTLs) while IPv4 and IPv6 pings (every 10 ms) cross hosts:
#      every twilld alive and both families' kernel state unchanged during the outage; no echo
#      request of either family lost; no route (IPv4 or IPv6) to another node withdrawn
#      (`ip monitor`); afterwards every node holds its dual-stack key with a live etcd lease,
#      and a dual-stack lease added and then removed is applied on every host, both halves.
#  8d. bad IPv6 halves: a key whose IPv6 part does not parse, BackendV6Data missing,
#      BackendV6Data malformed (bad VtepMAC, an array), PublicIPv6 not an address (and a
#      number): each node programs the lease's IPv4 half, never the IPv6 one, logs a warning
#      naming the key, and keeps running; a good dual-stack lease written after them is
#      programmed in both families; the same after a restart with the bad leases in place.
set -euo pipefail
# shellcheck source=tests/integration/lib.sh disable=SC2034
. "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh"
# shellcheck source=tests/integration/lib_dualstack.sh
. "$(dirname "${BASH_SOURCE[0]}")/../integration/lib_dualstack.sh"
# shellcheck source=tests/faults/lib_faults.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib_faults.sh"

TTL=5
PING_I=0.01
TW_MODE=vxlan
P=$TW_ETCD_PREFIX/subnets

# ds_vx IP MAC IP6 MAC6: a dual-stack vxlan lease value as flanneld writes it.
ds_vx() {
	printf '{"PublicIP":"%s","PublicIPv6":"%s","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"%s"},"BackendV6Data":{"VNI":1,"VtepMAC":"%s"}}' \
		"$1" "$3" "$2" "$4"
}
# ds_key I: host I's dual-stack lease key.
ds_key() { echo "$(lease_key "$(host_subnet "$1")")&$(host_subnet6 "$1" | tr / -)"; }
# ds_own_live I: host I's dual-stack key names its public IPs and has a live etcd lease.
ds_own_live() {
	local v id t
	v=$(etcdctl_run get -w json "$(ds_key "$1")") || return 1
	[ "$(jq -r '.kvs[0].value // empty | @base64d | fromjson | "\(.PublicIP) \(.PublicIPv6)"' <<<"$v")" = \
		"$(host_ip "$1") $(host_ip6 "$1")" ] || return 1
	id=$(grep -o '"lease":[0-9]*' <<<"$v" | head -n 1 | cut -d: -f2)
	[ -n "$id" ] && [ "$id" != 0 ] || return 1
	t=$(etcdctl_run lease timetolive -w json "$(printf '%x' "$id")" | jq -r .ttl)
	[ "$t" -gt 0 ]
}
_all_live() {
	local i
	for i in 1 2 3; do ds_own_live "$i" || return 1; done
}
# _state6_file_ok FILE HOST...: each HOST's IPv6 kernel state = the leases in FILE (ds_leases6
# format), not re-read from etcd.
_state6_file_ok() {
	local lf=$1 i
	shift
	for i in "$@"; do
		ds_expected6 "$i" "$lf" >"$TW_DIR/h$i/state6.expected"
		ds_actual6 "$i" >"$TW_DIR/h$i/state6.actual"
		cmp -s "$TW_DIR/h$i/state6.expected" "$TW_DIR/h$i/state6.actual" || return 1
	done
}
_state6_diff() {
	local i
	for i in "$@"; do
		diff "$TW_DIR/h$i/state6.expected" "$TW_DIR/h$i/state6.actual" | grep '^[<>]' | sed "s/^/h$i /"
	done | tr '\n' ';'
}
# _no_withdrawal WHAT: no host withdrew the route (either family) to another host's subnets.
_no_withdrawal() {
	local i j subs w
	for i in 1 2 3; do
		subs=()
		for j in 1 2 3; do [ "$j" != "$i" ] && subs+=("${SUB[$j]}" "${SUB6[$j]}"); done
		w=$(route_withdrawals "$i" "${subs[@]}")
		[ -z "$w" ] || defer_fail "$1: h$i withdrew a route to another node's subnet: $(head -n 3 <<<"$w" | tr '\n' '|')"
		route_monitor_mark "$i"
	done
}

ds_cluster_up 3 3 "$(ds_config vxlan)" --subnet-lease-ttl "$TTL"
declare -A SUB=() SUB6=()
for i in 1 2 3; do
	SUB[$i]=$(host_subnet "$i")
	SUB6[$i]=$(host_subnet6 "$i")
	ds_assert_lease6 "$i" vxlan
done
wait_state 5 1 2 3
ds_wait_state6 5 1 2 3
ds_ping_all_pairs 1 2 3
for i in 1 2 3; do route_monitor_start "$i"; done

# --- 1d. etcd SIGKILLed for 12 s under IPv4 and IPv6 traffic --------------------------------------
ping_start_fast "$(ns_cont 1 1)" "$(cont_ip 2 1)" d4 "$PING_I"
ping_start_fast "$(ns_cont 1 1)" "$(cont_ip6 2 1)" d6a "$PING_I"
ping_start_fast "$(ns_cont 3 2)" "$(cont_ip6 1 2)" d6b "$PING_I"
for p in d4 d6a d6b; do ping_wait_replies "$p" 10; done
leases >"$TW_DIR/leases.before"
ds_leases6 >"$TW_DIR/leases6.before"
etcd_stop KILL
t0=$(now_ms)
while [ $(($(now_ms) - t0)) -lt $((TTL * 2000 + 2000)) ]; do
	twilld_all_alive 1 2 3
	state_ok "$TW_DIR/leases.before" 1 2 3 || wait_state_file 1 "$TW_DIR/leases.before" 1 2 3
	_state6_file_ok "$TW_DIR/leases6.before" 1 2 3 ||
		fail "1d: IPv6 kernel state changed while etcd was down: $(_state6_diff 1 2 3)"
	sleep 1
done
log "1d: $((TTL * 2 + 2)) s without etcd: twilld alive on h1-h3, IPv4 and IPv6 kernel state unchanged"
etcd_start_dir "$(etcd_data_dir)"
wait_for --timeout 15 _all_live ||
	defer_fail "1d: not every node holds its dual-stack key with a live etcd lease 15 s after etcd returned"
R="198.18.250.0-24&2001:db8:100:fa::-64"
t0=$(now_ms)
etcdctl_run put "$P/$R" "$(ds_vx 192.0.2.50 0a:00:00:00:fa:50 2001:db8:0:1::50 0a:00:00:06:fa:50)" >/dev/null
wait_state 10 1 2 3
ds_wait_state6 10 1 2 3
grep -q '^2001:db8:100:fa::/64' "$TW_DIR/leases6.snap" || fail "1d: the added dual-stack lease is not in the snapshot"
etcdctl_run del "$P/$R" >/dev/null
wait_state 10 1 2 3
ds_wait_state6 10 1 2 3
log "1d: after etcd returned, a dual-stack lease was added and removed on h1-h3, both halves, in $(($(now_ms) - t0)) ms"
for p in d4 d6a d6b; do ping_wait_replies "$p" 10; done
for p in d4 d6a d6b; do ping_stop_lossless_deferred "$p" "1d"; done
_no_withdrawal "1d"
twilld_all_alive 1 2 3

# --- 8d. bad IPv6 halves: the IPv4 half programmed, the IPv6 half not, a warning ------------------
badkeys=()
bad() { # KEY VALUE WHAT
	etcdctl_run put "$P/$1" "$2" >/dev/null || fail "put $1"
	badkeys+=("$1")
	log "8d: bad lease $1: $3"
}
bad "198.18.231.0-24&2001:db8:100:zz::-64" \
	"$(ds_vx 192.0.2.31 0a:00:00:00:e7:31 2001:db8:0:1::31 0a:00:00:06:e7:31)" "IPv6 part of the key does not parse"
bad "198.18.232.0-24&2001:db8:100:e8::-64" \
	'{"PublicIP":"192.0.2.32","PublicIPv6":"2001:db8:0:1::32","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"0a:00:00:00:e8:32"}}' \
	"BackendV6Data missing (flanneld drops the whole lease)"
bad "198.18.233.0-24&2001:db8:100:e9::-64" \
	"$(ds_vx 192.0.2.33 0a:00:00:00:e9:33 2001:db8:0:1::33 zz:zz)" "BackendV6Data.VtepMAC not a MAC"
bad "198.18.234.0-24&2001:db8:100:ea::-64" \
	'{"PublicIP":"192.0.2.34","PublicIPv6":"2001:db8:0:1::34","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"0a:00:00:00:ea:34"},"BackendV6Data":[1,2]}' \
	"BackendV6Data an array"
bad "198.18.235.0-24&2001:db8:100:eb::-64" \
	"$(ds_vx 192.0.2.35 0a:00:00:00:eb:35 not-an-address 0a:00:00:06:eb:35)" "PublicIPv6 not an address"
bad "198.18.236.0-24&2001:db8:100:ec::-64" \
	"$(ds_vx 192.0.2.36 0a:00:00:00:ec:36 192.0.2.136 0a:00:00:06:ec:36)" "PublicIPv6 an IPv4 address"
G="198.18.237.0-24&2001:db8:100:ed::-64"
etcdctl_run put "$P/$G" "$(ds_vx 192.0.2.37 0a:00:00:00:ed:37 2001:db8:0:1::37 0a:00:00:06:ed:37)" >/dev/null
# IPv4: every lease's IPv4 half (lib.sh's reader takes the part of the key before '&').
# IPv6: only the good ones (the cluster's and G), whatever the bad leases say.
# (ds_leases6 cannot read the bad values: the cluster's leases from before, plus G.)
{
	cat "$TW_DIR/leases6.before"
	printf '%s\t%s\t%s\t%s\t%s\n' 2001:db8:100:ed::/64 2001:db8:100:ed:: 2001:db8:0:1::37 vxlan 0a:00:00:06:ed:37
} | LC_ALL=C sort >"$TW_DIR/leases6.expected8"
_v4_ok() { _tw_state_ok_live "$TW_DIR/leases.snap" "$@"; }
check8() { # WHAT HOST...
	local what=$1
	shift
	wait_for --timeout 10 _v4_ok "$@" ||
		defer_fail "8d ($what): IPv4 halves of the leases not programmed exactly on h${*// /,h}"
	wait_for --timeout 10 _state6_file_ok "$TW_DIR/leases6.expected8" "$@" ||
		defer_fail "8d ($what): IPv6 kernel state is not the good leases': $(_state6_diff "$@")"
}
check8 "running" 1 2 3
for k in 231 232 233 234 235 236; do
	grep -q "^198.18.$k.0/24" "$TW_DIR/leases.snap" || defer_fail "8d: lease 198.18.$k.0/24 missing from the IPv4 expectation"
done
for i in 1 2 3; do
	for k in 231 232 233 234 235 236; do
		log_has "$i" " W .*198\.18\.$k\.0.*IPv6 half skipped" ||
			defer_fail "8d: h$i logged no warning about the IPv6 half of 198.18.$k.0/24"
	done
done
twilld_all_alive 1 2 3
log "8d: 6 bad IPv6 halves: IPv4 halves programmed, IPv6 halves not, warned; the good lease in both families"
restart_twilld 2 TERM --subnet-lease-ttl "$TTL"
check8 "h2 restarted with the bad leases in place" 2
twilld_all_alive 1 2 3
ds_ping_all_pairs 1 2 3
for k in "${badkeys[@]}" "$G"; do etcdctl_run del "$P/$k" >/dev/null; done
wait_state 5 1 2 3
ds_wait_state6 5 1 2 3
finish_twilld_all
finish_deferred
log "PASS"

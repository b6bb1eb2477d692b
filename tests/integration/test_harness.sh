#!/usr/bin/env bash
# Self-test of tests/integration/lib.sh: topology, etcd, underlay reachability, containers,
# the kernel state comparison, wait_for, and that cleanup leaves nothing behind (on SIGTERM
# and on a failed assertion). Needs no twill binary.
set -euo pipefail
# shellcheck source=tests/integration/lib.sh disable=SC2034
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# --- wait_for: deadlines, both argument forms -------------------------------------------------
t=$(now_ms)
if wait_for --timeout 0.3 false; then fail "wait_for false succeeded"; fi
dt=$(($(now_ms) - t))
[ $dt -ge 280 ] && [ $dt -lt 1500 ] || fail "wait_for --timeout 0.3 took $dt ms"
wait_for true --timeout 1 || fail "wait_for true (trailing --timeout) failed"
f=$TW_DIR/flag
(sleep 0.2 && touch "$f") &
wait_for --timeout 3 test -e "$f" || fail "wait_for did not see $f"
wait
log "wait_for ok"

# --- topology, etcd, underlay ------------------------------------------------------------------
make_topology 3 etcd
start_etcd
for i in 1 2 3; do
	out=$(ip netns exec "$(ns_host "$i")" curl -s -m 2 "$TW_ETCD_URL/health") ||
		fail "h$i cannot reach etcd"
	case "$out" in *'"health":"true"'*) ;; *) fail "h$i: etcd health says $out" ;; esac
	for j in 1 2 3; do
		[ "$i" = "$j" ] && continue
		ping_ok "$(ns_host "$i")" "$(host_ip "$j")" ||
			fail "underlay ping h$i -> h$j ($(host_ip "$j")) failed"
	done
	ping_ok "$(ns_host "$i")" "$TW_ETCD_IP" || fail "underlay ping h$i -> etcd failed"
	assert_eq "$(ip netns exec "$(ns_host "$i")" sysctl -n net.ipv4.ip_forward)" 1 "h$i ip_forward"
done
log "underlay: health and pings between all hosts and etcd ok"

# --- etcd helpers ------------------------------------------------------------------------------
put_net_config "$(net_config_json vxlan)"
assert_eq "$(etcdctl_run get --print-value-only "$TW_ETCD_PREFIX/config")" \
	'{"Network":"198.18.0.0/16","SubnetLen":24,"Backend":{"Type":"vxlan"}}' "config round trip"
assert_eq "$(lease_count)" 0 "leases in a fresh etcd"
mac2=0a:00:00:00:00:02
mac3=0a:00:00:00:00:03
etcdctl_run put "$(lease_key 198.18.2.0/24)" \
	'{"PublicIP":"192.0.2.12","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"'$mac2'"}}' >/dev/null
etcdctl_run put "$(lease_key 198.18.3.0/24)" \
	'{"PublicIP":"192.0.2.13","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"'$mac3'"}}' >/dev/null
etcdctl_run put "$(lease_key 198.18.1.0/24)" \
	'{"PublicIP":"192.0.2.11","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"0a:00:00:00:00:01"}}' >/dev/null
assert_eq "$(leases | head -n 1)" "$(printf '198.18.1.0/24\t198.18.1.0\t192.0.2.11\tvxlan\t0a:00:00:00:00:01')" "leases() first line"
assert_eq "$(lease_count)" 3 "lease count"

# --- kernel state comparison, programmed by hand as the vxlan backend would ------------------
h1=$(ns_host 1)
ip -n "$h1" link add "$TW_VXLAN_DEV" type vxlan id 1 local 192.0.2.11 dev eth0 dstport 8472 nolearning
ip -n "$h1" link set "$TW_VXLAN_DEV" up
ip -n "$h1" addr add 198.18.1.0/32 dev "$TW_VXLAN_DEV"
lf=$TW_DIR/leases.test
leases >"$lf"
if state_ok "$lf" 1; then fail "state_ok with nothing programmed"; fi
ip -n "$h1" neigh replace 198.18.2.0 lladdr $mac2 dev "$TW_VXLAN_DEV" nud permanent
bridge -n "$h1" fdb replace $mac2 dev "$TW_VXLAN_DEV" dst 192.0.2.12 self permanent
ip -n "$h1" route replace 198.18.2.0/24 via 198.18.2.0 dev "$TW_VXLAN_DEV" onlink
ip -n "$h1" neigh replace 198.18.3.0 lladdr $mac3 dev "$TW_VXLAN_DEV" nud permanent
bridge -n "$h1" fdb replace $mac3 dev "$TW_VXLAN_DEV" dst 192.0.2.13 self permanent
# the second route through a nexthop object: the reader resolves it
ip -n "$h1" nexthop add id 42 via 198.18.3.0 dev "$TW_VXLAN_DEV" onlink
ip -n "$h1" route replace 198.18.3.0/24 nhid 42
state_ok "$lf" 1 || { diff -u "$TW_DIR/h1/state.expected" "$TW_DIR/h1/state.actual"; fail "state_ok after programming h1"; }
# something extra is a mismatch
ip -n "$h1" route add 198.18.9.0/24 via 198.18.9.0 dev "$TW_VXLAN_DEV" onlink
if state_ok "$lf" 1; then fail "state_ok missed an extra route"; fi
ip -n "$h1" route del 198.18.9.0/24
ip -n "$h1" nexthop add id 43 via 198.18.9.0 dev "$TW_VXLAN_DEV" onlink
if state_ok "$lf" 1; then fail "state_ok missed an orphan nexthop"; fi
ip -n "$h1" nexthop del id 43
# something missing is a mismatch
bridge -n "$h1" fdb del $mac3 dev "$TW_VXLAN_DEV" dst 192.0.2.13 self
if state_ok "$lf" 1; then fail "state_ok missed a missing fdb entry"; fi
bridge -n "$h1" fdb replace $mac3 dev "$TW_VXLAN_DEV" dst 192.0.2.13 self permanent
wait_state 2 1
# a wrong MAC is a mismatch, and wait_state's failure path prints a diff (run in a subshell)
ip -n "$h1" neigh replace 198.18.2.0 lladdr 0a:00:00:00:00:99 dev "$TW_VXLAN_DEV" nud permanent
if out=$( (TW_QUIET=1 wait_state 0.2 1) 2>&1); then fail "wait_state accepted a wrong MAC"; fi
case "$out" in *"-198.18.2.0 lladdr $mac2 PERMANENT"*"+198.18.2.0 lladdr 0a:00:00:00:00:99 PERMANENT"*) ;;
*) fail "wait_state diff not as expected: $out" ;; esac
log "kernel state readers and exact comparison ok"
# the subshell's EXIT trap must not have torn down the parent's world
[ -e "/run/netns/$h1" ] || fail "a subshell's exit removed $h1"
ip -n "$h1" link del "$TW_VXLAN_DEV"

# --- containers on a bridge from a subnet file --------------------------------------------------
for i in 1 2; do
	printf 'FLANNEL_NETWORK=198.18.0.0/16\nFLANNEL_SUBNET=198.18.%d.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n' \
		$((i + 100)) >"$(subnet_file "$i")"
	setup_containers "$i" 2
done
assert_eq "$(host_subnet 1)" 198.18.101.0/24 "host_subnet"
assert_eq "$(cont_ip 2 2)" 198.18.102.3 "cont_ip"
assert_eq "$(ip -n "$(ns_cont 1 1)" -j addr show eth0 | jq -r '.[0].addr_info[] | select(.family=="inet") | .local')" 198.18.101.2 "container address"
assert_eq "$(ip -n "$(ns_cont 1 2)" -j link show eth0 | jq -r '.[0].mtu')" 1450 "container MTU"
ping_ok "$(ns_cont 1 1)" 198.18.101.1 || fail "container -> its bridge"
ping_ok "$(ns_cont 1 1)" 198.18.101.3 || fail "container -> container on the same host"
# no overlay routing yet: the other host's container is unreachable
if ping_ok "$(ns_cont 1 1)" "$(cont_ip 2 1)" 1; then fail "cross-host ping without an overlay"; fi
# with plain host routes (host-gw by hand) it works: ping_all_pairs and TW_MODE=host-gw agree
ip -n "$(ns_host 1)" route add 198.18.102.0/24 via 192.0.2.12
ip -n "$(ns_host 2)" route add 198.18.101.0/24 via 192.0.2.11
ping_all_pairs 2 1 2
# continuous ping: lossless when nothing happens, a gap is caught
ping_start "$(ns_cont 1 1)" "$(cont_ip 2 2)" steady
ping_wait_replies steady 5
ping_stop_lossless steady
ping_start "$(ns_cont 1 1)" "$(cont_ip 2 2)" gap
ping_wait_replies gap 3
ip -n "$(ns_host 1)" route del 198.18.102.0/24
wait_for --timeout 3 grep -q Unreachable "$TW_DIR/logs/ping-gap.log" || fail "no unreachable with the route gone"
ip -n "$(ns_host 1)" route add 198.18.102.0/24 via 192.0.2.12
ping_wait_replies gap 3
if out=$( (ping_stop_lossless gap) 2>&1); then fail "ping_stop_lossless missed a gap"; fi
case "$out" in *"echo requests lost"*) ;; *) fail "ping_stop_lossless said: $out" ;; esac
log "containers ok"

# --- cleanup leaves nothing: SIGTERM and a failed assertion -------------------------------------
child_run() { # MODE INFOFILE: a child test that builds a world, then is killed or fails
	TW_DIR='' TW_PREFIX='' TW_LIB_LOADED='' bash -c '
		set -euo pipefail
		. "$1/lib.sh"
		TW_QUIET=1
		make_topology 2 etcd
		start_etcd
		bg_start "$(ns_host 1)" "$TW_DIR/logs/sleep.log" sleeper sleep 300
		echo "$TW_PREFIX $TW_DIR $TW_ETCD_PID $TW_BG_PID" >"$3.tmp"
		mv "$3.tmp" "$3"
		if [ "$2" = fail ]; then fail "deliberate failure"; fi
		while :; do sleep 0.1; done
	' child "$(dirname "${BASH_SOURCE[0]}")" "$1" "$2" >"$2.out" 2>&1 &
	child=$!
}
for mode in term fail; do
	info=$TW_DIR/child-$mode
	child_run $mode "$info"
	if ! wait_for --timeout 20 test -s "$info"; then
		cat "$info.out"
		fail "child ($mode) did not build its world"
	fi
	read -r cprefix cdir cpids <"$info"
	[ $mode = term ] && kill -TERM $child
	crc=0
	wait $child || crc=$?
	case $mode in
	term) assert_eq $crc 143 "child exit status after SIGTERM" ;;
	fail) assert_eq $crc 1 "child exit status after fail" ;;
	esac
	left=$(ip netns list | awk '{print $1}' | grep "^$cprefix" || true)
	[ -z "$left" ] || fail "child ($mode) left namespaces: $left"
	for p in $cpids; do
		[ -e /proc/$p ] && fail "child ($mode) left pid $p running: $(cat /proc/$p/cmdline | tr '\0' ' ')"
	done
	if [ $mode = fail ]; then
		grep -q 'FAIL: deliberate failure' "$info.out" || { cat "$info.out"; fail "child did not report its failure"; }
		[ -d "$cdir" ] || fail "failed child did not keep its state dir"
		rm -rf "$cdir"
	else
		[ ! -e "$cdir" ] || fail "child ($mode) left $cdir"
	fi
	log "cleanup after $mode: no namespaces, no processes left ($cprefix)"
done

# --- teardown_prefix (demo --teardown) on a kept world -----------------------------------------
info=$TW_DIR/child-keep
TW_DIR='' TW_PREFIX='' TW_LIB_LOADED='' bash -c '
	set -euo pipefail
	. "$1/lib.sh"
	TW_QUIET=1
	TW_KEEP=1
	make_topology 1
	bg_start "$(ns_host 1)" "$TW_DIR/logs/sleep.log" sleeper sleep 300
	echo "$TW_PREFIX $TW_BG_PID" >"$2"
' child "$(dirname "${BASH_SOURCE[0]}")" "$info" >"$info.out" 2>&1 || { cat "$info.out"; fail "keep child failed"; }
read -r cprefix cpid <"$info"
[ -e "/run/netns/${cprefix}h1" ] || fail "TW_KEEP=1 did not keep ${cprefix}h1"
_tw_alive "$cpid" || fail "TW_KEEP=1 did not keep pid $cpid"
teardown_prefix "$cprefix" >/dev/null
left=$(ip netns list | awk '{print $1}' | grep "^$cprefix" || true)
[ -z "$left" ] || fail "teardown_prefix left namespaces: $left"
wait_for --timeout 3 eval '! _tw_alive '"$cpid" || fail "teardown_prefix left pid $cpid"
log "teardown_prefix ok"
log "PASS"

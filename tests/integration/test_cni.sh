#!/usr/bin/env bash
# twill-cni called as a runtime calls it (CNI_* environment, flannel's network config on
# stdin) on two hosts running twilld (vxlan): ADD puts a container namespace on each host on
# the bridge with an address of the host's lease and the host's MTU, the two containers ping
# each other, CHECK passes (and fails once the container's address is gone), DEL removes the
# interface, the saved delegate config and the host-local reservation, and DEL again, or with
# the subnet file gone, still succeeds. Also: VERSION, CNI 0.3.1, the error objects for a
# missing subnet file, a bad config, and CHECK of an unknown container.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"
# shellcheck source=lib_runtime.sh
. "$here/lib_runtime.sh"

[ -x "$TWILL_CNI" ] || fail "no $TWILL_CNI (build first)"
for p in bridge host-local; do
	[ -x "$TW_CNI_PLUGINS/$p" ] || fail "no $TW_CNI_PLUGINS/$p: install containernetworking-plugins"
done

make_topology 2 etcd
start_etcd
put_net_config "$(net_config_json vxlan)"
for i in 1 2; do start_twilld "$i"; done
for i in 1 2; do wait_twilld_ready "$i" 15; done

# VERSION
cni_call 1 VERSION "" "" '{"cniVersion":"0.4.0"}'
cni_expect_ok VERSION
assert_eq "$(jq -c . <<<"$CNI_OUT")" \
	'{"cniVersion":"0.4.0","supportedVersions":["0.3.0","0.3.1","0.4.0","1.0.0"]}' "VERSION output"

declare -A RESULT=()
for i in 1 2; do
	c=$(ns_cont "$i" 1)
	netns_add "$c"
	conf=$(cni_netconf "$i")
	cni_call "$i" ADD "${TW_PREFIX}c$i" "/run/netns/$c" "$conf"
	cni_expect_ok "h$i ADD"
	RESULT[$i]=$CNI_OUT
	sub=$(host_subnet "$i")
	mtu=$(subnet_var "$i" FLANNEL_MTU)
	addr=$(jq -r '.ips[0].address' <<<"$CNI_OUT")
	gw=$(jq -r '.ips[0].gateway' <<<"$CNI_OUT")
	[ "$(ip_net "${addr%/*}" 24)/24" = "$sub" ] || fail "h$i ADD address $addr outside $sub: $CNI_OUT"
	assert_eq "$gw" "$(int2ip $(($(ip2int "${sub%/*}") + 1)))" "h$i gateway (first address of $sub)"
	assert_eq "$(jq -r .cniVersion <<<"$CNI_OUT")" 1.0.0 "h$i result cniVersion"
	# kernel: the container's eth0 and routes, the host's bridge
	j=$(ip -n "$c" -j addr show dev eth0 | jq -c '.[0]')
	assert_eq "$(jq -r '[.addr_info[] | select(.family == "inet") | "\(.local)/\(.prefixlen)"] | join(",")' <<<"$j")" \
		"$addr" "h$i container eth0 address"
	assert_eq "$(jq -r .mtu <<<"$j")" "$mtu" "h$i container eth0 MTU (FLANNEL_MTU)"
	assert_eq "$(ip -n "$c" -j -4 route show "$TW_OVERLAY" | jq -r '.[0].gateway // "none"')" "$gw" \
		"h$i container route to $TW_OVERLAY"
	bj=$(ip -n "$(ns_host "$i")" -j addr show dev cni0 | jq -c '.[0]')
	assert_eq "$(jq -r '[.addr_info[] | select(.family == "inet") | "\(.local)/\(.prefixlen)"] | join(",")' <<<"$bj")" \
		"$gw/24" "h$i cni0 address"
	assert_eq "$(jq -r .mtu <<<"$bj")" "$mtu" "h$i cni0 MTU"
	[ -s "$TW_DIR/h$i/cni-flannel/${TW_PREFIX}c$i" ] || fail "h$i: no saved delegate config"
	assert_eq "$(jq -r '.type, .ipMasq, .isGateway, .ipam.type, .ipam.ranges[0][0].subnet, .ipam.routes[0].dst' \
		"$TW_DIR/h$i/cni-flannel/${TW_PREFIX}c$i" | tr '\n' ' ')" \
		"bridge true true host-local $sub $TW_OVERLAY " "h$i saved delegate config"
	log "h$i: ADD gave $addr (gateway $gw, mtu $mtu)"
done

a1=$(jq -r '.ips[0].address' <<<"${RESULT[1]}")
a2=$(jq -r '.ips[0].address' <<<"${RESULT[2]}")
wait_for --timeout 5 ping_ok "$(ns_cont 1 1)" "${a2%/*}" || { dump_state_all; fail "h1c1 cannot ping h2c1 (${a2%/*})"; }
ping_ok "$(ns_cont 2 1)" "${a1%/*}" || fail "h2c1 cannot ping h1c1 (${a1%/*})"
log "containers set up by twill-cni ping each other across hosts"

# CHECK with the ADD result as prevResult; then after breaking the container it must fail
for i in 1 2; do
	conf=$(jq -c --argjson r "${RESULT[$i]}" '. + {prevResult: $r}' <<<"$(cni_netconf "$i")")
	cni_call "$i" CHECK "${TW_PREFIX}c$i" "/run/netns/$(ns_cont "$i" 1)" "$conf"
	cni_expect_ok "h$i CHECK"
done
conf=$(jq -c --argjson r "${RESULT[1]}" '. + {prevResult: $r}' <<<"$(cni_netconf 1)")
ip -n "$(ns_cont 1 1)" addr flush dev eth0
cni_call 1 CHECK "${TW_PREFIX}c1" "/run/netns/$(ns_cont 1 1)" "$conf"
[ "$CNI_RC" != 0 ] || fail "CHECK passed for a container whose address was removed"
ip -n "$(ns_cont 1 1)" addr add "$a1" dev eth0
ip -n "$(ns_cont 1 1)" route add "$TW_OVERLAY" via "$(jq -r '.ips[0].gateway' <<<"${RESULT[1]}")"
cni_call 1 CHECK "${TW_PREFIX}c1" "/run/netns/$(ns_cont 1 1)" "$conf"
cni_expect_ok "h1 CHECK after the address was restored"
cni_call 1 CHECK "${TW_PREFIX}nosuch" "/run/netns/$(ns_cont 1 1)" "$conf"
cni_expect_error "CHECK of an unknown container" 3 'no network set up by ADD'
cni_call 1 CHECK "${TW_PREFIX}c1" "/run/netns/$(ns_cont 1 1)" "$(cni_netconf 1 0.3.1)"
cni_expect_error "CHECK with cniVersion 0.3.1" 1 'CHECK needs cniVersion 0.4.0'
log "CHECK: passes on a set-up container, fails on a broken or unknown one"

# Errors: missing subnet file, bad configs
cni_call 1 ADD "${TW_PREFIX}x" "/run/netns/$(ns_cont 1 1)" \
	"$(cni_netconf 1 | jq -c '.subnetFile = "/nonexistent/twill/subnet.env"')"
cni_expect_error "ADD without subnet file" 11 'subnet file /nonexistent/twill/subnet.env does not exist.*twilld'
cni_call 1 ADD "${TW_PREFIX}x" "/run/netns/$(ns_cont 1 1)" '{"cniVersion":"1.0.0","name":"n","type":"flannel",'
cni_expect_error "ADD with truncated JSON" 6 'not JSON'
cni_call 1 ADD "${TW_PREFIX}x" "/run/netns/$(ns_cont 1 1)" "$(cni_netconf 1 | jq -c '.delegate = {ipam: {}}')"
cni_expect_error "ADD with delegate.ipam" 7 'must not have an "ipam"'
cni_call 1 ADD "${TW_PREFIX}x" "/run/netns/$(ns_cont 1 1)" "$(cni_netconf 1 2.0.0)"
cni_expect_error "ADD with cniVersion 2.0.0" 1 'not supported'
log "errors: missing subnet file (11), bad JSON (6), bad delegate (7), bad version (1)"

# CNI 0.3.1: a second container on h2
c=$(ns_cont 2 2)
netns_add "$c"
cni_call 2 ADD "${TW_PREFIX}old" "/run/netns/$c" "$(cni_netconf 2 0.3.1)"
cni_expect_ok "h2 ADD with cniVersion 0.3.1"
assert_eq "$(jq -r .cniVersion <<<"$CNI_OUT")" 0.3.1 "0.3.1 result cniVersion"
a3=$(jq -r '.ips[0].address' <<<"$CNI_OUT")
ping_ok "$c" "${a1%/*}" || fail "h2c2 (0.3.1, $a3) cannot ping h1c1"

# IPv6: a subnet file with FLANNEL_IPV6_* (as twilld writes with EnableIPv6) gives the container
# an address from each range and routes to both networks; two such containers on h1 reach each
# other over IPv6 through the bridge. (Its own bridge and network name: cni0 is the IPv4 one.)
sf6=$TW_DIR/h1/subnet6.env
printf 'FLANNEL_NETWORK=%s\nFLANNEL_SUBNET=198.18.250.1/24\nFLANNEL_IPV6_NETWORK=2001:db8:100::/48\nFLANNEL_IPV6_SUBNET=2001:db8:100:7::1/64\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n' \
	"$TW_OVERLAY" >"$sf6"
conf6=$(cni_netconf 1 | jq -c --arg sf "$sf6" --arg n "${TW_PREFIX}v6" \
	'.subnetFile = $sf | .name = $n | .delegate = {bridge: "cni6"}')
declare -A A6=()
for j in 3 4; do
	c=$(ns_cont 1 "$j")
	netns_add "$c"
	cni_call 1 ADD "${TW_PREFIX}v6c$j" "/run/netns/$c" "$conf6"
	cni_expect_ok "h1 ADD dual-stack c$j"
	assert_eq "$(jq -r '[.ips[].address] | map(split("/")[1]) | join(",")' <<<"$CNI_OUT")" "24,64" \
		"dual-stack ADD gives an IPv4 and an IPv6 address ($CNI_OUT)"
	A6[$j]=$(jq -r '.ips[] | select(.address | contains(":")) | .address' <<<"$CNI_OUT")
	case "${A6[$j]}" in 2001:db8:100:7::*/64) ;; *) fail "IPv6 address ${A6[$j]} outside 2001:db8:100:7::/64" ;; esac
	assert_eq "$(ip -n "$c" -j -6 route show 2001:db8:100::/48 | jq -r '.[0].gateway // "none"')" \
		2001:db8:100:7::1 "c$j route to the IPv6 network"
done
_ping6() { ip netns exec "$(ns_cont 1 3)" ping -6 -n -c 1 -W 1 "${A6[4]%/*}" >/dev/null 2>&1; }
wait_for --timeout 5 _ping6 || fail "no IPv6 ping between dual-stack containers (${A6[3]} -> ${A6[4]})"
for j in 3 4; do
	cni_call 1 DEL "${TW_PREFIX}v6c$j" "/run/netns/$(ns_cont 1 "$j")" "$conf6"
	cni_expect_ok "h1 DEL dual-stack c$j"
done
log "IPv6: ranges and routes from FLANNEL_IPV6_*, containers reach each other over IPv6"

# DEL: interface, saved config and reservation gone; DEL again; DEL with no subnet file
for i in 1 2; do
	c=$(ns_cont "$i" 1)
	a=$(jq -r '.ips[0].address' <<<"${RESULT[$i]}")
	[ -e "$TW_DIR/h$i/cni-ipam/${TW_PREFIX}net/${a%/*}" ] || fail "h$i: no host-local reservation for $a"
	cni_call "$i" DEL "${TW_PREFIX}c$i" "/run/netns/$c" "$(cni_netconf "$i")"
	cni_expect_ok "h$i DEL"
	[ -z "$(ip -n "$c" -j link show dev eth0 2>/dev/null | jq -r '.[0].ifname // empty' 2>/dev/null)" ] ||
		fail "h$i: eth0 still in the container after DEL"
	[ ! -e "$TW_DIR/h$i/cni-flannel/${TW_PREFIX}c$i" ] || fail "h$i: saved delegate config left after DEL"
	[ ! -e "$TW_DIR/h$i/cni-ipam/${TW_PREFIX}net/${a%/*}" ] || fail "h$i: reservation of $a left after DEL"
	cni_call "$i" DEL "${TW_PREFIX}c$i" "/run/netns/$c" "$(cni_netconf "$i")"
	cni_expect_ok "h$i DEL again"
done
# the saved config gone but the subnet file there: DEL rebuilds it and host-local releases
rm -f "$TW_DIR/h2/cni-flannel/${TW_PREFIX}old"
cni_call 2 DEL "${TW_PREFIX}old" "/run/netns/$(ns_cont 2 2)" "$(cni_netconf 2 0.3.1)"
cni_expect_ok "DEL without the saved config"
[ ! -e "$TW_DIR/h2/cni-ipam/${TW_PREFIX}net/${a3%/*}" ] || fail "reservation of $a3 left after DEL without saved config"
cni_call 2 DEL "${TW_PREFIX}gone" "" "$(cni_netconf 2 | jq -c '.subnetFile = "/nonexistent/twill/subnet.env"')"
cni_expect_ok "DEL with neither the subnet file nor a saved config"
log "DEL: removes interface, saved config and reservation; idempotent; works without subnet file"

finish_twilld_all
log "PASS"

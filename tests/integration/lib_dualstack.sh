# shellcheck shell=bash
# Dual-stack helpers on top of lib.sh (source lib.sh first): an IPv6 underlay
# 2001:db8:0:1::/64 on eth0 of every host (2001:db8:0:1::<10+i>), the IPv6 overlay
# 2001:db8:100::/48 next to lib.sh's 198.18.0.0/16, IPv6 container addresses from
# FLANNEL_IPV6_SUBNET, and the IPv6 kernel state (routes, neighbours, fdb of flannel-v6.1)
# read and compared with the leases in etcd, as lib.sh does for IPv4.

TW_OVERLAY6=2001:db8:100::/48
TW_UNDERLAY6=2001:db8:0:1
TW_VXLAN6_DEV=flannel-v6.1

# host_ip6 I: IPv6 underlay address of host I.
host_ip6() { echo "$TW_UNDERLAY6::$((10 + $1))"; }

# ds_config BACKEND [EXTRA]: a dual-stack network config (EXTRA: more Backend members).
ds_config() {
	printf '{"Network":"%s","SubnetLen":24,"EnableIPv6":true,"IPv6Network":"%s","Backend":{"Type":"%s"%s}}' \
		"$TW_OVERLAY" "$TW_OVERLAY6" "$1" "${2:+,$2}"
}

# ds_underlay6 HOST...: the IPv6 underlay address on eth0 (no DAD: the namespaces are ours) and
# IPv6 forwarding in each host.
ds_underlay6() {
	local i ns
	for i in "$@"; do
		ns=$(ns_host "$i")
		ip -n "$ns" -6 addr add "$(host_ip6 "$i")/64" dev eth0 nodad || fail "IPv6 address in $ns"
		ip netns exec "$ns" sysctl -q -w net.ipv6.conf.all.forwarding=1 >/dev/null ||
			fail "IPv6 forwarding in $ns"
	done
}

# _ds_prefix6 I: the first 64 bits of host I's FLANNEL_IPV6_SUBNET as text before "::".
_ds_prefix6() {
	local s
	s=$(subnet_var "$1" FLANNEL_IPV6_SUBNET) || return 1
	echo "${s%::1/*}"
}

# cont_ip6 I J: IPv6 address of container J on host I.
cont_ip6() {
	echo "$(_ds_prefix6 "$1")::$((1 + $2))"
}

# host_subnet6 I: host I's IPv6 lease as network/len.
host_subnet6() {
	local s
	s=$(subnet_var "$1" FLANNEL_IPV6_SUBNET) || return 1
	echo "$(_ds_prefix6 "$1")::/${s#*/}"
}

# ds_setup_containers6 I [N]: the IPv6 half of lib.sh's setup_containers: FLANNEL_IPV6_SUBNET
# on the bridge, <prefix>::<1+j>/64 in container j, a default route via the bridge.
ds_setup_containers6() {
	local i=$1 n=${2:-2} h sub j c
	h=$(ns_host "$i")
	sub=$(subnet_var "$i" FLANNEL_IPV6_SUBNET) || fail "no FLANNEL_IPV6_SUBNET for h$i"
	ip -n "$h" -6 addr add "$sub" dev "$TW_BRIDGE" nodad || fail "bridge address $sub in $h"
	for ((j = 1; j <= n; j++)); do
		c=$(ns_cont "$i" "$j")
		ip -n "$c" -6 addr add "$(cont_ip6 "$i" "$j")/${sub#*/}" dev eth0 nodad ||
			fail "IPv6 address in $c"
		ip -n "$c" -6 route add default via "${sub%/*}" || fail "IPv6 default route in $c"
	done
}

# ds_cluster_up NRUN NHOSTS CONFIG_JSON [TWILLD_ARGS...]: lib.sh's cluster_up with the IPv6
# underlay on every host and IPv6 addresses in the containers.
ds_cluster_up() {
	local nrun=$1 nhosts=$2 cfg=$3 i
	shift 3
	make_topology "$nhosts" etcd
	ds_underlay6 $(seq 1 "$nhosts")
	start_etcd
	put_net_config "$cfg"
	for ((i = 1; i <= nrun; i++)); do
		start_twilld "$i" "$@"
	done
	for ((i = 1; i <= nrun; i++)); do
		wait_twilld_ready "$i" 15
	done
	for ((i = 1; i <= nrun; i++)); do
		setup_containers "$i" 2
		ds_setup_containers6 "$i" 2
	done
}

# ping6_ok SRC_NS DST [DEADLINE_S]: one IPv6 echo reply within the deadline (default 5 s: the
# first packet of a pair waits for neighbour discovery on the underlay and in both containers,
# which under the sanitizers on a busy machine took more than 2 s once).
ping6_ok() {
	ip netns exec "$1" ping -6 -n -q -c 1 -i 0.2 -w "${3:-5}" "$2" >/dev/null 2>&1
}

# ds_ping_all_pairs HOST...: IPv4 and IPv6 pings between every pair of containers (2 per host)
# on different hosts; fails naming every failed pair.
ds_ping_all_pairs() {
	local a b x y n=0 bad=() hosts=("$@") ha hb
	for ((a = 0; a < ${#hosts[@]}; a++)); do
		for ((b = a + 1; b < ${#hosts[@]}; b++)); do
			ha=${hosts[a]} hb=${hosts[b]}
			for x in 1 2; do
				for y in 1 2; do
					n=$((n + 2))
					ping_ok "$(ns_cont "$ha" "$x")" "$(cont_ip "$hb" "$y")" ||
						bad+=("v4 h${ha}c$x->h${hb}c$y")
					ping6_ok "$(ns_cont "$ha" "$x")" "$(cont_ip6 "$hb" "$y")" ||
						bad+=("v6 h${ha}c$x($(cont_ip6 "$ha" "$x"))->h${hb}c$y($(cont_ip6 "$hb" "$y"))")
				done
			done
		done
	done
	if [ ${#bad[@]} -gt 0 ]; then
		for ha in "${hosts[@]}"; do ds_actual6 "$ha" | sed "s/^/    h$ha /" >&2; done
		fail "ping failed for ${#bad[@]} of $n cross-host container pairs and families: ${bad[*]}"
	fi
	local hs="${hosts[*]}"
	log "IPv4 and IPv6 ping ok between all cross-host container pairs of h${hs// /,h} ($n pings)"
}

# ds_leases6: one line per dual-stack lease: V6SUBNET V6NETADDR PUBLICIPV6 TYPE V6MAC
# (PublicIPv6/BackendV6Data.VtepMAC "-" when absent; leases without an IPv6 key part left out).
ds_leases6() {
	etcdctl_run get --prefix "$TW_ETCD_PREFIX/subnets/" -w json |
		jq -r '(.kvs // [])[] | (.key | @base64d | split("/") | last) as $k
			| select($k | contains("&")) | ($k | split("&")[1]) as $k6
			| (.value | @base64d | fromjson) as $v
			| [($k6 | sub("-(?<l>[0-9]+)$"; "/\(.l)")), ($k6 | sub("-[0-9]+$"; "")),
			   ($v.PublicIPv6 // "-"), ($v.BackendType // "udp"),
			   ($v.BackendV6Data.VtepMAC // "-")] | @tsv' |
		LC_ALL=C sort
}

# ds_actual6 I: host I's IPv6 kernel state: overlay routes of the main table (not the
# kernel's own, not on the bridge; nexthop objects resolved), neighbours and fdb entries of
# flannel-v6.1, orphan IPv6 nexthop objects.
ds_actual6() {
	local ns
	ns=$(ns_host "$1")
	{
		_tw_json ip -n "$ns" -j -6 route show table main root "$TW_OVERLAY6"
		_tw_json ip -n "$ns" -j -6 route show table all
		_tw_json ip -n "$ns" -j -6 nexthop show
		_tw_json ip -n "$ns" -j -6 neigh show dev "$TW_VXLAN6_DEV"
		_tw_json bridge -n "$ns" -j fdb show dev "$TW_VXLAN6_DEV"
	} | jq -s -r --arg br "$TW_BRIDGE" '
		.[0] as $routes | .[1] as $all | .[2] as $nhs | .[3] as $neigh | .[4] as $fdb
		| ($nhs | map({key: (.id | tostring), value: .}) | from_entries) as $nh
		| ([$all[] | .nhid // empty]) as $used
		| "routes6:",
		  ([$routes[] | select(.dev != $br and .protocol != "kernel")
		    | (if .nhid != null and (.gateway == null or .dev == null)
		       then $nh[.nhid | tostring] // {} else . end) as $r
		    | "\(.dst) via \($r.gateway // "-") dev \($r.dev // "-")"] | sort[]),
		  "neigh6:",
		  ([$neigh[] | select(((.state // []) | index("INCOMPLETE") or index("FAILED")) | not)
		    | select(.dst | startswith("fe80") | not)
		    | "\(.dst) lladdr \(.lladdr // "-") \((.state // []) | join(","))"] | sort[]),
		  "fdb6:",
		  ([$fdb[] | select(.mac | startswith("33:33") | not)
		    | "\(.mac) dst \(.dst // "-") \(.state // "-")"] | sort[]),
		  "orphan nexthops6:",
		  ([$nhs[] | select(.id as $i | $used | index($i) | not)
		    | "nexthop id \(.id) via \(.gateway // "-") dev \(.dev // "-")"] | sort[])'
}

# ds_expected6 I LEASES6_FILE: what host I's IPv6 kernel state must be for the leases
# (TW_MODE as in lib.sh; with vxlan-direct every host is on the one IPv6 segment: direct).
ds_expected6() {
	local i=$1 lf=$2 me sub net pip type mac routes=() neigh=() fdb=()
	me=$(host_ip6 "$i")
	while IFS=$'\t' read -r sub net pip type mac; do
		[ -n "$sub" ] || continue
		[ "$pip" = "$me" ] && continue
		case "$TW_MODE" in
		vxlan)
			[ "$type" = vxlan ] && [ "$mac" != - ] && [ "$pip" != - ] || continue
			routes+=("$sub via $net dev $TW_VXLAN6_DEV")
			neigh+=("$net lladdr $mac PERMANENT")
			fdb+=("$mac dst $pip permanent")
			;;
		vxlan-direct)
			[ "$type" = vxlan ] && [ "$mac" != - ] && [ "$pip" != - ] || continue
			routes+=("$sub via $pip dev eth0")
			;;
		host-gw)
			[ "$type" = host-gw ] && [ "$pip" != - ] || continue
			routes+=("$sub via $pip dev eth0")
			;;
		esac
	done <"$lf"
	echo "routes6:"
	[ ${#routes[@]} -gt 0 ] && printf '%s\n' "${routes[@]}" | LC_ALL=C sort
	echo "neigh6:"
	[ ${#neigh[@]} -gt 0 ] && printf '%s\n' "${neigh[@]}" | LC_ALL=C sort
	echo "fdb6:"
	[ ${#fdb[@]} -gt 0 ] && printf '%s\n' "${fdb[@]}" | LC_ALL=C sort
	echo "orphan nexthops6:"
}

_ds_state6_ok() {
	local lf=$1 i
	shift
	ds_leases6 >"$lf" || return 1
	for i in "$@"; do
		ds_expected6 "$i" "$lf" >"$TW_DIR/h$i/state6.expected"
		ds_actual6 "$i" >"$TW_DIR/h$i/state6.actual"
		cmp -s "$TW_DIR/h$i/state6.expected" "$TW_DIR/h$i/state6.actual" || return 1
	done
}

# ds_wait_state6 TIMEOUT HOST...: wait until each HOST's IPv6 kernel state equals the leases in
# etcd (re-read at every poll); on timeout, fail with a diff per host.
ds_wait_state6() {
	local timeout=$1 i lf=$TW_DIR/leases6.snap
	shift
	if wait_for --timeout "$timeout" _ds_state6_ok "$lf" "$@"; then
		local hs="$*"
		log "IPv6 kernel state of h${hs// /,h} matches the $(wc -l <"$lf") leases (${TW_WAITED_MS} ms)"
		return 0
	fi
	echo "IPv6 leases in etcd (SUBNET NET PUBLICIPV6 TYPE MAC):" >&2
	sed 's/^/    /' "$lf" >&2
	for i in "$@"; do
		echo "h$i: IPv6 kernel state (- expected, + actual):" >&2
		diff -u "$TW_DIR/h$i/state6.expected" "$TW_DIR/h$i/state6.actual" | tail -n +3 >&2
	done
	fail "IPv6 kernel state does not match the leases after ${timeout}s (mode $TW_MODE)"
}

# ds_assert_lease6 I TYPE: host I's lease key has the IPv6 part of FLANNEL_IPV6_SUBNET, its
# PublicIPv6 is the host's IPv6 address and (vxlan) BackendV6Data.VtepMAC is flannel-v6.1's MAC.
ds_assert_lease6() {
	local i=$1 type=$2 key v mac
	key=$(lease_key "$(host_subnet "$i")")"&$(host_subnet6 "$i" | tr / -)"
	v=$(etcdctl_run get --print-value-only "$key")
	[ -n "$v" ] || fail "h$i: no lease $key in etcd"
	assert_eq "$(jq -r .PublicIPv6 <<<"$v")" "$(host_ip6 "$i")" "h$i lease PublicIPv6 ($v)"
	if [ "$type" = vxlan ]; then
		mac=$(ip -n "$(ns_host "$i")" -j link show "$TW_VXLAN6_DEV" | jq -r '.[0].address')
		assert_eq "$(jq -r .BackendV6Data.VtepMAC <<<"$v")" "$mac" "h$i BackendV6Data.VtepMAC vs $TW_VXLAN6_DEV"
		assert_eq "$(jq -r .BackendV6Data.VNI <<<"$v")" 1 "h$i BackendV6Data.VNI"
		[ "$mac" != "$(jq -r .BackendData.VtepMAC <<<"$v")" ] || fail "h$i: both VTEPs have one MAC"
	else
		assert_eq "$(jq -r '.BackendV6Data // "none"' <<<"$v")" none "h$i BackendV6Data ($v)"
	fi
}

#!/usr/bin/env bash
# Docker end to end: real dockerd (Debian's docker.io) in two host namespaces running twilld,
# h1 started with $DOCKER_OPTS from `twill-docker-opts` (flannel's mk-docker-opts.sh style), h2
# with the daemon.json that `twill-docker-opts --daemon-json` merged. For each case:
#   - docker0 holds FLANNEL_SUBNET and FLANNEL_MTU (read back with ip -j), and so does a
#     container's eth0 (MTU);
#   - busybox containers on the two hosts ping each other across the overlay;
#   - the address a receiving container sees as the source of a connection (busybox httpd's
#     REMOTE_ADDR) is, without `twilld --ip-masq`, the sending host's flannel device address
#     (Docker masquerades: FLANNEL_IPMASQ=false gives --ip-masq=true), and with it, the sending
#     container's own address (twilld masquerades only traffic leaving the overlay);
#   - no rule about Docker or the overlay appears in the root namespace's iptables.
# Cases: vxlan and udp, each with and without --ip-masq (each a fresh world). The vxlan case
# without --ip-masq is dual-stack (EnableIPv6, an IPv6 underlay, both dockerds given
# `twill-docker-opts --ipv6`): docker0 also holds FLANNEL_IPV6_SUBNET, the containers get IPv6
# addresses inside it, and they ping each other across hosts over IPv6 as well.
set -euo pipefail

if [ "${1:-}" != case ]; then
	here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
	t0=$SECONDS
	bash "${BASH_SOURCE[0]}" case vxlan nomasq ds
	bash "${BASH_SOURCE[0]}" case udp masq
	bash "${BASH_SOURCE[0]}" case vxlan masq
	bash "${BASH_SOURCE[0]}" case udp nomasq
	echo "PASS: test_docker ($((SECONDS - t0)) s)"
	exit 0
fi
backend=$2
masq=$3
ds=${4:-}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../integration/lib.sh
. "$here/../integration/lib.sh"
# shellcheck source=../integration/lib_runtime.sh
. "$here/../integration/lib_runtime.sh"
# shellcheck source=../integration/lib_dualstack.sh
[ -z "$ds" ] || . "$here/../integration/lib_dualstack.sh"

for b in dockerd docker containerd runc nsenter; do
	command -v "$b" >/dev/null || fail "$b not found: install docker.io (contrib/deps.sh)"
done
DOCKER_OPTS_BIN=$TWILL_BUILD_DIR/twill-docker-opts
[ -x "$DOCKER_OPTS_BIN" ] || fail "no $DOCKER_OPTS_BIN (build first)"

# docker_check_ipv6: docker0 holds FLANNEL_IPV6_SUBNET (ip -6 -j), each container's global IPv6
# address lies inside its node's IPv6 subnet, and the containers ping each other over IPv6.
docker_check_ipv6() {
	local i sub6 got6 cip6 ip6a ip6b
	for i in 1 2; do
		sub6=$(subnet_var "$i" FLANNEL_IPV6_SUBNET) || fail "h$i: no FLANNEL_IPV6_SUBNET"
		got6=$(ip -n "$(ns_host "$i")" -6 -j addr show dev docker0 scope global |
			jq -r '[.[0].addr_info[] | select(.family == "inet6") | "\(.local)/\(.prefixlen)"] | join(",")')
		assert_eq "$got6" "$sub6" "h$i docker0 IPv6 address (FLANNEL_IPV6_SUBNET)"
		cip6=$(docker_ip6 "$i" "c$i")
		python3 -c 'import ipaddress, sys; sys.exit(ipaddress.ip_address(sys.argv[1]) not in ipaddress.ip_interface(sys.argv[2]).network)' \
			"$cip6" "$sub6" 2>/dev/null || fail "h$i container IPv6 address '$cip6' outside $sub6"
		log "h$i: docker0 $got6, container c$i $cip6"
	done
	ip6a=$(docker_ip6 1 c1)
	ip6b=$(docker_ip6 2 c2)
	wait_for --timeout 10 --interval 0.2 _ping_from 1 c1 "$ip6b" ||
		{ ds_actual6 1 >&2; ds_actual6 2 >&2; fail "c1 ($ip6a, h1) cannot ping c2 ($ip6b, h2) over IPv6"; }
	wait_for --timeout 10 --interval 0.2 _ping_from 2 c2 "$ip6a" ||
		fail "c2 ($ip6b, h2) cannot ping c1 ($ip6a, h1) over IPv6"
	log "busybox containers ping each other across hosts over IPv6 ($backend, $TW_VXLAN6_DEV)"
}

log "case: backend $backend, twilld ${masq/nomasq/without} --ip-masq${ds:+, dual-stack}"
root_ipt_before=$(root_iptables_lines)
twargs=(--healthz-ip=127.0.0.1 --healthz-port=8471)
[ "$masq" = masq ] && twargs+=(--ip-masq)
make_topology 2 etcd
optv6=()
if [ -n "$ds" ]; then
	ds_underlay6 1 2
	optv6=(--ipv6)
fi
start_etcd
if [ -n "$ds" ]; then
	put_net_config "$(ds_config "$backend")"
else
	put_net_config "$(net_config_json "$backend")"
fi
for i in 1 2; do
	start_twilld "$i" "${twargs[@]}"
done
for i in 1 2; do
	wait_twilld_ready "$i" 15
done
assert_distinct_subnets 1 2
want_ipmasq=false
[ "$masq" = masq ] && want_ipmasq=true
assert_eq "$(subnet_var 1 FLANNEL_IPMASQ)" "$want_ipmasq" "h1 FLANNEL_IPMASQ"

# h1: DOCKER_OPTS style (the env file a systemd unit reads with EnvironmentFile=)
dd1=$(docker_dir 1)
mkdir -p "$dd1"
"$DOCKER_OPTS_BIN" -f "$(subnet_file 1)" ${optv6[@]+"${optv6[@]}"} -d "$dd1/docker_opts.env" ||
	fail "twill-docker-opts for h1"
DOCKER_OPTS=$(
	# shellcheck disable=SC1091
	. "$dd1/docker_opts.env"
	echo "$DOCKER_OPTS"
)
log "h1 DOCKER_OPTS=$DOCKER_OPTS"
# shellcheck disable=SC2086
start_dockerd 1 $DOCKER_OPTS

# h2: daemon.json style
dd2=$(docker_dir 2)
mkdir -p "$dd2"
echo '{"max-concurrent-downloads": 2}' >"$dd2/daemon.json"
"$DOCKER_OPTS_BIN" -f "$(subnet_file 2)" ${optv6[@]+"${optv6[@]}"} --daemon-json "$dd2/daemon.json" ||
	fail "twill-docker-opts --daemon-json for h2"
log "h2 daemon.json: $(jq -c . "$dd2/daemon.json")"
assert_eq "$(jq -r '."max-concurrent-downloads"' "$dd2/daemon.json")" 2 "daemon.json keeps other keys"
start_dockerd 2

for i in 1 2; do
	docker_import_busybox "$i"
	docker_run "$i" "c$i"
done

# docker0 and the containers' eth0 against the subnet file (ip -j)
for i in 1 2; do
	sub=$(subnet_var "$i" FLANNEL_SUBNET)
	mtu=$(subnet_var "$i" FLANNEL_MTU)
	j=$(link_json "$(ns_host "$i")" docker0)
	[ -n "$j" ] || fail "h$i: no docker0"
	got=$(jq -r '[.addr_info[] | select(.family == "inet") | "\(.local)/\(.prefixlen)"] | join(",")' <<<"$j")
	assert_eq "$got" "$sub" "h$i docker0 address (FLANNEL_SUBNET)"
	assert_eq "$(jq -r .mtu <<<"$j")" "$mtu" "h$i docker0 MTU (FLANNEL_MTU)"
	cpid=$(dockercli "$i" inspect -f '{{.State.Pid}}' "c$i")
	cj=$(nsenter --net="/proc/$cpid/ns/net" ip -j addr show dev eth0 | jq -c '.[0]')
	assert_eq "$(jq -r .mtu <<<"$cj")" "$mtu" "h$i container eth0 MTU"
	cip=$(docker_ip "$i" "c$i")
	[ "$(ip_net "$cip" "${sub#*/}")" = "$(ip_net "${sub%/*}" "${sub#*/}")" ] ||
		fail "h$i container address $cip outside $sub"
	log "h$i: docker0 $got mtu $mtu, container c$i $cip"
done

ip1=$(docker_ip 1 c1)
ip2=$(docker_ip 2 c2)
_ping_from() {
	dockercli "$1" exec "$2" ping -c 1 -W 1 "$3" >/dev/null 2>&1
}
wait_for --timeout 10 --interval 0.2 _ping_from 1 c1 "$ip2" ||
	{ dump_state_all; fail "c1 ($ip1, h1) cannot ping c2 ($ip2, h2) over $backend"; }
wait_for --timeout 10 --interval 0.2 _ping_from 2 c2 "$ip1" ||
	fail "c2 ($ip2, h2) cannot ping c1 ($ip1, h1) over $backend"
log "busybox containers ping each other across hosts over $backend"
[ -z "$ds" ] || docker_check_ipv6


# The source address the receiver sees
dev=$TW_VXLAN_DEV
[ "$backend" = udp ] && dev=flannel0
for pair in "1 c1 2 c2" "2 c2 1 c1"; do
	read -r si sc ri rc <<<"$pair"
	dst=$(docker_ip "$ri" "$rc")
	src_ip=$(docker_ip "$si" "$sc")
	flan=$(link_json "$(ns_host "$si")" "$dev" | jq -r '[.addr_info[] | select(.family == "inet") | .local][0]')
	seen=$(docker_seen_source "$si" "$sc" "$dst") || fail "$sc -> $rc:8080: no answer ($seen)"
	if [ "$masq" = masq ]; then
		want=$src_ip
		why="the sending container's own address (twilld --ip-masq; Docker does not masquerade)"
	else
		want=$flan
		why="h$si's $dev address (Docker masquerades without twilld --ip-masq)"
	fi
	assert_eq "$seen" "$want" "source of $sc ($src_ip) as seen by $rc: $why"
	log "$rc sees $sc as $seen: $why"
done

# twilld's view of it (/v1/status): one remote lease, its route, the udp data path's packets
doc=$(ip netns exec "$(ns_host 1)" curl -sf -m 5 http://127.0.0.1:8471/v1/status) || fail "h1 /v1/status"
assert_eq "$(jq -r '"\(.leases.remote) \(.leases.routes_programmed) \(.iptables.masquerade)"' <<<"$doc")" \
	"1 1 $want_ipmasq" "h1 status: remote leases, routes programmed, masquerade"
if [ "$backend" = udp ]; then
	jq -e '.udp.tx_packets > 0 and .udp.rx_packets > 0' <<<"$doc" >/dev/null ||
		fail "h1 status: the udp data path carried nothing: $(jq -c .udp <<<"$doc")"
	log "h1 status: udp $(jq -c .udp <<<"$doc")"
fi

# Docker's iptables stayed in the host namespaces
ipt=$(ip netns exec "$(ns_host 1)" iptables-save -t nat)
grep -q -- '-A POSTROUTING -s .* ! -o docker0 -j MASQUERADE' <<<"$ipt" ||
	[ "$masq" = masq ] || fail "h1: no Docker MASQUERADE rule in the host namespace: $ipt"
assert_eq "$(root_iptables_lines)" "$root_ipt_before" "root namespace iptables lines about Docker/overlay"

for i in 1 2; do
	stop_dockerd "$i"
done
finish_twilld_all
log "PASS: docker $backend $masq${ds:+ dual-stack}"

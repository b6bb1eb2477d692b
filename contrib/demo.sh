#!/usr/bin/env bash
# twill demo: a 3-host overlay network in network namespaces on this machine.
#
#   sudo bash contrib/demo.sh [--backend vxlan|udp|host-gw] [--ipv4-only] [--proxy] [--docker]
#                             [--keep] [--no-deps] [--no-build]
#   sudo bash contrib/demo.sh --teardown PREFIX
#
# Installs what is missing (contrib/deps.sh), builds twill into build-demo/, then builds a
# cluster entirely inside network namespaces (nothing touches this machine's own network):
# an underlay "switch" namespace with a bridge (192.0.2.0/24), etcd in its own namespace
# (192.0.2.100), 3 host namespaces running twilld, and 2 "container" namespaces per host on a
# bridge set up from the host's subnet file (overlay 198.18.0.0/16). The network is dual-stack
# unless --ipv4-only: an IPv6 underlay 2001:db8:0:1::/64 and the IPv6 overlay 2001:db8:100::/48
# (EnableIPv6), each container with an IPv6 address from FLANNEL_IPV6_SUBNET. It shows the
# leases, pings between containers on different hosts (all 12 pairs, IPv6 beside IPv4), runs a
# 3 s iperf3 across hosts, and tears everything down (or keeps it with --keep). Exits non-zero
# if any step fails.
# --proxy: the CoreOS layout: an `etcd grpc-proxy` on 127.0.0.1:23790 in every host namespace,
# and twilld and twillctl there talk only to it (--etcd-endpoints=http://127.0.0.1:23790).
# --docker: real Docker containers instead (dockerd per host with $DOCKER_OPTS, busybox).
set -euo pipefail

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
backend=vxlan
keep=0
deps=1
build=1
teardown=
proxy=0
docker=0
v6=1

usage() {
	sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

while [ $# -gt 0 ]; do
	case "$1" in
	--backend) backend=${2:-}; shift 2 ;;
	--backend=*) backend=${1#*=}; shift ;;
	--keep) keep=1; shift ;;
	--proxy) proxy=1; shift ;;
	--docker) docker=1; shift ;;
	--ipv4-only) v6=0; shift ;;
	--no-deps) deps=0; shift ;;
	--no-build) build=0; shift ;;
	--teardown) teardown=${2:-}; [ -n "$teardown" ] || { echo "demo: --teardown needs the PREFIX" >&2; exit 2; }; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) echo "demo: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
	esac
done

if [ "$(id -u)" -ne 0 ]; then
	echo "demo: run as root (it creates network namespaces): sudo bash contrib/demo.sh" >&2
	exit 1
fi

case "$backend" in
vxlan | host-gw | udp) ;;
*) echo "demo: unknown backend '$backend' (vxlan, udp or host-gw)" >&2; exit 2 ;;
esac

nsteps=10
[ $proxy = 0 ] || nsteps=11
stepno=0
step() {
	stepno=$((stepno + 1))
	printf '\n==> [%d/%d] %s\n' "$stepno" "$nsteps" "$*"
}

if [ -n "$teardown" ]; then
	TW_QUIET=1
	# shellcheck source=../tests/integration/lib.sh
	. "$src/tests/integration/lib.sh"
	. "$src/contrib/demo_docker.sh"
	demo_docker_teardown "$teardown"
	if teardown_prefix "$teardown"; then
		exit 0
	fi
	cleanup 0 # nothing of this run to keep
	exit 1
fi

step "Dependencies (contrib/deps.sh)"
if [ $deps = 1 ]; then
	bash "$src/contrib/deps.sh"
else
	echo "skipped (--no-deps)"
fi

step "Build (cmake into ${TWILL_BUILD_DIR:-build-demo})"
export TWILL_BUILD_DIR=${TWILL_BUILD_DIR:-$src/build-demo}
if [ $build = 1 ]; then
	mkdir -p "$TWILL_BUILD_DIR"
	blog=$TWILL_BUILD_DIR/demo-build.log
	cmake -S "$src" -B "$TWILL_BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$blog" 2>&1 ||
		{ tail -n 30 "$blog"; echo "demo: cmake configure failed (log: $blog)" >&2; exit 1; }
	cmake --build "$TWILL_BUILD_DIR" -j "$(nproc)" --target twilld twillctl twill-docker-opts >>"$blog" 2>&1 ||
		{ grep -E 'error|Error' "$blog" | head -n 20; echo "demo: build failed (log: $blog)" >&2; exit 1; }
else
	echo "skipped (--no-build)"
fi
for b in twilld twillctl; do
	[ -x "$TWILL_BUILD_DIR/$b" ] || { echo "demo: $TWILL_BUILD_DIR/$b missing" >&2; exit 1; }
done
echo "twilld: $("$TWILL_BUILD_DIR/twilld" --version 2>/dev/null || echo '?') in $TWILL_BUILD_DIR"
# shellcheck source=../tests/integration/lib.sh
. "$src/tests/integration/lib.sh"
TW_KEEP=$keep
TW_KEEP_HINT="kept (--keep): tear down with: sudo bash $src/contrib/demo.sh --teardown $TW_PREFIX"
# shellcheck source=../tests/integration/lib_dualstack.sh
[ $v6 = 0 ] || . "$src/tests/integration/lib_dualstack.sh"

step "Underlay: switch namespace, 3 host namespaces, etcd namespace"
make_topology 3 etcd
[ $v6 = 0 ] || ds_underlay6 1 2 3
for i in 1 2 3; do
	echo "  $(ns_host "$i"): eth0 $(host_ip "$i")/24${TW_OVERLAY6:+ $(host_ip6 "$i")/64}"
done
echo "  $(ns_etcd): eth0 $TW_ETCD_IP/24"

step "etcd in $(ns_etcd), listening on $TW_ETCD_URL"
start_etcd

# start_proxies: an etcd grpc-proxy in every host namespace on 127.0.0.1:23790, forwarding to
# etcd; from here on every twilld and twillctl of the demo uses its host's proxy.
start_proxies() {
	local i url=http://127.0.0.1:23790
	for i in 1 2 3; do
		bg_start "$(ns_host "$i")" "$TW_DIR/logs/proxy-h$i.log" "grpc-proxy h$i" \
			etcd grpc-proxy start --endpoints="$TW_ETCD_IP:2379" --listen-addr=127.0.0.1:23790 \
			--data-dir "$TW_DIR/h$i/proxy"
		wait_for --timeout 10 ip netns exec "$(ns_host "$i")" etcdctl --endpoints 127.0.0.1:23790 \
			--dial-timeout 1s get /demo-probe >/dev/null 2>&1 ||
			{ show_log "$TW_DIR/logs/proxy-h$i.log"; fail "grpc-proxy in $(ns_host "$i") does not serve"; }
		echo "  $(ns_host "$i"): etcd grpc-proxy on $url -> $TW_ETCD_IP:2379 (pid $TW_BG_PID)"
	done
	TW_ETCD_URL=$url
}
if [ $proxy = 1 ]; then
	step "etcd grpc-proxy in every host namespace (--proxy)"
	start_proxies
fi

step "Network config (backend $backend${TW_OVERLAY6:+, dual-stack}) written with twillctl"
cfg=$(net_config_json "$backend")
[ $v6 = 0 ] || cfg=$(ds_config "$backend")
echo "  $cfg"
if ! out=$(printf '%s\n' "$cfg" | ip netns exec "$(ns_host 1)" "$TWILLCTL" \
	--etcd-endpoints "$TW_ETCD_URL" config set - 2>&1); then
	echo "$out" >&2
	fail "twillctl config set failed"
fi
[ -z "$out" ] || echo "$out" | sed 's/^/  /'

step "twilld in every host namespace"
for i in 1 2 3; do
	start_twilld "$i"
done
for i in 1 2 3; do
	wait_twilld_ready "$i" 20
done
if [ "$docker" = 1 ]; then
	. "$src/contrib/demo_docker.sh"
	demo_docker
	exit 0
fi
for i in 1 2 3; do
	echo "  $(ns_host "$i"): $(subnet_file "$i"):"
	sed 's/^/      /' "$(subnet_file "$i")"
done

step "Containers: 2 per host on bridge $TW_BRIDGE (as Docker --bip/--mtu from the subnet file)"
for i in 1 2 3; do
	setup_containers "$i" 2
	[ $v6 = 0 ] || ds_setup_containers6 "$i" 2
	for j in 1 2; do
		echo "  $(ns_cont "$i" "$j"): $(cont_ip "$i" "$j")${TW_OVERLAY6:+ $(cont_ip6 "$i" "$j")}"
	done
done

step "Leases (twillctl leases) and the routes twilld programmed"
ip netns exec "$(ns_host 1)" "$TWILLCTL" --etcd-endpoints "$TW_ETCD_URL" leases ||
	fail "twillctl leases failed"
# routes appear asynchronously (the watch): wait until every host has one per remote lease
# (udp: one route for the whole network through flannel0)
want_routes=2
[ "$backend" != udp ] || want_routes=1
have_routes() {
	local i n
	for i in 1 2 3; do
		n=$(ip -n "$(ns_host "$i")" -4 route show root "$TW_OVERLAY" | grep -vc "dev $TW_BRIDGE" || true)
		[ "$n" -ge $want_routes ] || return 1
	done
}
wait_for --timeout 5 have_routes || echo "  (warning: not every host has its overlay routes yet)"
for i in 1 2 3; do
	echo "  $(ns_host "$i") ($(host_ip "$i")):"
	ip -n "$(ns_host "$i")" -4 route show root "$TW_OVERLAY" | sed 's/^/      /'
	[ $v6 = 0 ] || ip -n "$(ns_host "$i")" -6 route show root "$TW_OVERLAY6" |
		{ grep -v "dev $TW_BRIDGE" || true; } | sed 's/^/      /'
done

# udp carries IPv6 only between nodes that say so (BackendV6Data in their lease)
if [ $v6 = 1 ] && [ "$backend" = udp ] &&
	! etcdctl_run get --prefix "$TW_ETCD_PREFIX/subnets/" --print-value-only | grep -q BackendV6Data; then
	echo "  (this build's udp backend carries IPv4 only: no lease has BackendV6Data; IPv6 pings skipped)"
	v6=0
fi
step "Ping between containers on different hosts (12 pairs$([ $v6 = 0 ] || echo ", IPv4 and IPv6"))"
nbad=0
# ping1 FROM_NS TO: "ok  RTT" or "FAILED" (counted)
ping1() {
	local out
	if out=$(ip netns exec "$1" ping -n -c 1 -i 0.2 -w 3 "$2" 2>&1); then
		echo "ok  $(sed -n 's/.*time=\([0-9.]* ms\).*/\1/p' <<<"$out" | head -n 1)"
	else
		echo FAILED
		return 1
	fi
}
for a in 1 2 3; do
	for b in $(seq $((a + 1)) 3); do
		for x in 1 2; do
			for y in 1 2; do
				from=$(ns_cont "$a" "$x")
				to=$(cont_ip "$b" "$y")
				r=$(ping1 "$from" "$to") || nbad=$((nbad + 1))
				printf '  h%dc%d %-14s -> h%dc%d %-14s %s' "$a" "$x" "$(cont_ip "$a" "$x")" "$b" "$y" "$to" "$r"
				if [ $v6 = 1 ]; then
					r=$(ping1 "$from" "$(cont_ip6 "$b" "$y")") || nbad=$((nbad + 1))
					printf '   IPv6 %s -> %s %s' "$(cont_ip6 "$a" "$x")" "$(cont_ip6 "$b" "$y")" "$r"
				fi
				echo
			done
		done
	done
done
[ $nbad = 0 ] || fail "$nbad of $((12 * (1 + v6))) pings failed"

step "iperf3 for 3 s: $(ns_cont 1 1) -> $(ns_cont 3 1)"
server=$(ns_cont 3 1)
sip=$(cont_ip 3 1)
bg_start "$server" "$TW_DIR/logs/iperf3-server.log" "iperf3 server" iperf3 -s -1 -B "$sip"
spid=$TW_BG_PID
listening() {
	ip netns exec "$server" ss -H -4 -tln 2>/dev/null | grep -q ":5201 "
}
wait_for --timeout 5 listening || { show_log "$TW_DIR/logs/iperf3-server.log"; fail "iperf3 server not listening"; }
ip netns exec "$(ns_cont 1 1)" iperf3 -c "$sip" -t 3 -f m >"$TW_DIR/logs/iperf3-client.log" 2>&1 ||
	{ cat "$TW_DIR/logs/iperf3-client.log"; fail "iperf3 client failed"; }
grep -E 'sender|receiver' "$TW_DIR/logs/iperf3-client.log" | sed 's/^/  /'
stop_pid "$spid" 5

echo
echo "demo: all steps passed (backend $backend$([ $v6 = 0 ] || echo ", dual-stack"))"
if [ "$keep" = 1 ]; then
	cat <<EOF

The cluster is still running (--keep). Prefix: $TW_PREFIX
  namespaces:     $(ip netns list | awk '{print $1}' | grep "^$TW_PREFIX" | sort | tr '\n' ' ')
  enter a container:   ip netns exec $(ns_cont 1 1) bash
  enter a host:        ip netns exec $(ns_host 1) bash
  leases:         ip netns exec $(ns_host 1) $TWILLCTL --etcd-endpoints $TW_ETCD_URL leases
  twilld logs:    $TW_DIR/logs/
  tear it down:   sudo bash $src/contrib/demo.sh --teardown $TW_PREFIX
EOF
else
	echo "demo: tearing down (use --keep to leave the cluster running)"
fi

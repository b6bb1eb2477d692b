#!/usr/bin/env bash
# podman (CNI network backend) with twill-cni installed as "flannel": a conflist written for
# flannel's CNI plugin (type "flannel" chained with portmap) on two hosts running twilld
# (vxlan). podman calls the plugin (VERSION, ADD, DEL): each container gets an address of its
# host's lease on the bridge with FLANNEL_MTU, the containers ping each other across hosts,
# `podman rm` releases the address (host-local reservation and saved delegate config gone).
# podman runs only in the test's host namespaces (nsenter --net), with its own root, runroot
# and containers.conf; the /var/lib/cni/results entries of our containers are removed.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../integration/lib.sh
. "$here/../integration/lib.sh"
# shellcheck source=../integration/lib_runtime.sh
. "$here/../integration/lib_runtime.sh"

for b in podman runc conmon nsenter; do
	command -v "$b" >/dev/null || [ -x "/usr/libexec/podman/$b" ] ||
		fail "$b not found: install podman (contrib/deps.sh)"
done
[ -x "$TWILL_CNI" ] || fail "no $TWILL_CNI (build first)"
[ -x "$TW_CNI_PLUGINS/bridge" ] || fail "no $TW_CNI_PLUGINS/bridge: install containernetworking-plugins"

root_ipt_before=$(root_iptables_lines)
make_topology 2 etcd
start_etcd
put_net_config "$(net_config_json vxlan)"
for i in 1 2; do start_twilld "$i"; done
for i in 1 2; do wait_twilld_ready "$i" 15; done

declare -A IP=()
for i in 1 2; do
	podman_setup "$i"
	podman_import_busybox "$i"
	podman_run "$i" "p$i"
	id=${TW_PODMAN_CIDS["$i:p$i"]}
	IP[$i]=$(podmancli "$i" inspect -f "{{(index .NetworkSettings.Networks \"${TW_PREFIX}net\").IPAddress}}" "p$i")
	sub=$(host_subnet "$i")
	mtu=$(subnet_var "$i" FLANNEL_MTU)
	[ "$(ip_net "${IP[$i]}" 24)/24" = "$sub" ] || fail "h$i podman container address ${IP[$i]} outside $sub"
	pid=$(podmancli "$i" inspect -f '{{.State.Pid}}' "p$i")
	cj=$(nsenter --net="/proc/$pid/ns/net" ip -j addr show dev eth0 | jq -c '.[0]')
	assert_eq "$(jq -r '[.addr_info[] | select(.family == "inet") | .local] | join(",")' <<<"$cj")" \
		"${IP[$i]}" "h$i container eth0 address"
	assert_eq "$(jq -r .mtu <<<"$cj")" "$mtu" "h$i container eth0 MTU (FLANNEL_MTU)"
	[ -s "$TW_DIR/h$i/cni-flannel/$id" ] || fail "h$i: no saved delegate config for $id"
	[ -e "$TW_DIR/h$i/cni-ipam/${TW_PREFIX}net/${IP[$i]}" ] || fail "h$i: no host-local reservation for ${IP[$i]}"
	log "h$i: podman container p$i ${IP[$i]} (mtu $mtu) through twill-cni as \"flannel\""
done

_pping() {
	podmancli "$1" exec "$2" ping -c 1 -W 1 "$3" >/dev/null 2>&1
}
wait_for --timeout 10 --interval 0.2 _pping 1 p1 "${IP[2]}" ||
	{ dump_state_all; fail "p1 (${IP[1]}) cannot ping p2 (${IP[2]})"; }
wait_for --timeout 10 --interval 0.2 _pping 2 p2 "${IP[1]}" || fail "p2 (${IP[2]}) cannot ping p1 (${IP[1]})"
log "podman containers ping each other across hosts"

# podman rm: DEL through the plugin releases the address and the saved config
for i in 1 2; do
	id=${TW_PODMAN_CIDS["$i:p$i"]}
	podmancli "$i" rm -f -t 0 "p$i" >/dev/null 2>>"$TW_DIR/logs/podman-h$i.log" || fail "podman rm p$i"
	[ ! -e "$TW_DIR/h$i/cni-flannel/$id" ] || fail "h$i: saved delegate config left after podman rm"
	[ ! -e "$TW_DIR/h$i/cni-ipam/${TW_PREFIX}net/${IP[$i]}" ] || fail "h$i: reservation of ${IP[$i]} left after podman rm"
done
log "podman rm: address released, saved delegate config removed"
assert_eq "$(root_iptables_lines)" "$root_ipt_before" "root namespace iptables lines about CNI/overlay"

podman_cleanup
for f in /var/lib/cni/results/"${TW_PREFIX}"*; do
	[ ! -e "$f" ] || fail "left behind: $f"
done
[ "$TW_HAD_VAR_LIB_CONTAINERS" = 1 ] || [ ! -e /var/lib/containers ] ||
	fail "left behind: /var/lib/containers ($(find /var/lib/containers | head -5 | tr '\n' ' '))"
finish_twilld_all
log "PASS"

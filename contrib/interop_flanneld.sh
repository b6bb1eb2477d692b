#!/usr/bin/env bash
# Manual interoperability check, not a CI test: a dual-stack vxlan cluster of 3 hosts in network
# namespaces (the integration tests' world: underlay 192.0.2.0/24 + 2001:db8:0:1::/64, overlay
# 198.18.0.0/16 + 2001:db8:100::/48), twilld on h1 and h2, flanneld on h3; IPv4 and IPv6 pings
# between the containers of every ordered pair of hosts, and each host's IPv6 kernel state.
#
# usage: sudo FLANNELD=/path/to/flanneld contrib/interop_flanneld.sh
# (flanneld v0.20.2 built from its source tag; twilld from TWILL_BUILD_DIR, default build/)
set -euo pipefail
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FLANNELD=${FLANNELD:?set FLANNELD to a flanneld binary}
. "$SRC/tests/integration/lib.sh"
. "$SRC/tests/integration/lib_dualstack.sh"

TW_MODE=vxlan
make_topology 3 etcd
ds_underlay6 1 2 3
start_etcd
put_net_config "$(ds_config vxlan)"
start_twilld 1
start_twilld 2
flog=$TW_DIR/logs/flanneld-h3.log
bg_start "$(ns_host 3)" "$flog" "flanneld h3" "$FLANNELD" --etcd-endpoints="$TW_ETCD_URL" \
	--iface=eth0 --subnet-file="$(subnet_file 3)" --ip-masq=false -v=1
fpid=$TW_BG_PID
for i in 1 2; do wait_twilld_ready "$i" 30; done
wait_for --timeout 30 test -s "$(subnet_file 3)" || { show_log "$flog" 40; fail "flanneld wrote no subnet file"; }
etcdctl_run get --prefix "$TW_ETCD_PREFIX/subnets/"
for i in 1 2 3; do
	setup_containers "$i" 2
	ds_setup_containers6 "$i" 2
done
ok=0
for a in 1 2 3; do
	for b in 1 2 3; do
		[ "$a" = "$b" ] && continue
		r4=FAIL r6=FAIL
		ping_ok "$(ns_cont "$a" 1)" "$(cont_ip "$b" 1)" 3 && r4=ok
		ping6_ok "$(ns_cont "$a" 1)" "$(cont_ip6 "$b" 1)" 3 && r6=ok
		[ "$r4$r6" = okok ] && ok=$((ok + 1))
		log "h$a -> h$b: IPv4 $r4, IPv6 $r6"
	done
done
for i in 1 2 3; do
	echo "h$i IPv6 kernel state:"
	ds_actual6 "$i" | sed 's/^/    /'
done
grep -E '^E|error' "$flog" | head -20 || true
# flanneld v0.20.2 panics on SIGTERM (docs/compat.md): its exit status says nothing here
stop_pid "$fpid" 5 TERM || true
finish_twilld_all
log "$ok of 6 ordered host pairs ping in both families"
[ "$ok" = 6 ]

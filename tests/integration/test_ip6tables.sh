#!/usr/bin/env bash
# twilld's ip6tables rules for a dual-stack network (EnableIPv6): flannel's FLANNEL-FWD and
# FLANNEL-POSTRTG for the IPv6 network in ip6tables-save of the host namespace (multicast
# ff00::/8), beside the IPv4 rules; the masquerade works for IPv6 (a container reaches an
# outside IPv6 host that has no route back to the overlay, which sees the host's address);
# deleted by hand and restored within --iptables-resync;
# SIGTERM leaves them; a restart with EnableIPv6 turned off removes them (state file) and keeps
# the IPv4 ones; --ip-masq with EnableIPv6 on a host without ip6tables-save/-restore is a fatal
# start-up error with a clear message (forward rules alone are not).
set -euo pipefail
# shellcheck source=tests/integration/lib.sh disable=SC2034
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/lib_dualstack.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib_dualstack.sh"

NET6=$TW_OVERLAY6
IP6_H1=$(host_ip6 1)
OUT6=2001:db8:0:1::99
config6() {
	printf '{"Network":"%s","SubnetLen":24,"EnableIPv6":%s,"IPv6Network":"%s","Backend":{"Type":"host-gw"}}' \
		"$TW_OVERLAY" "$1" "$NET6"
}

make_topology 1 etcd
h=$(ns_host 1)
ds_underlay6 1
start_etcd
put_net_config "$(config6 true)"

start_twilld 1 --ip-masq --iptables-resync=1 --public-ipv6="$IP6_H1"
wait_twilld_ready 1 15
sub6=$(subnet_var 1 FLANNEL_IPV6_SUBNET) || fail "no FLANNEL_IPV6_SUBNET in $(subnet_file 1)"
net6sub=$(python3 -c 'import ipaddress,sys; print(ipaddress.ip_interface(sys.argv[1]).network)' "$sub6")

rules() { # TOOL TABLE
	ip netns exec "$h" "$1-save" -t "$2" | grep -E '^(:FLANNEL|-A FORWARD|-A POSTROUTING|-A FLANNEL)' || true
}
want_filter6() {
	cat <<EOF
:FLANNEL-FWD - [0:0]
-A FORWARD -m comment --comment "flanneld forward" -j FLANNEL-FWD
-A FLANNEL-FWD -s $NET6 -m comment --comment "flanneld forward" -j ACCEPT
-A FLANNEL-FWD -d $NET6 -m comment --comment "flanneld forward" -j ACCEPT
EOF
}
want_nat6() {
	local n=$NET6 rf=" --random-fully"
	cat <<EOF
:FLANNEL-POSTRTG - [0:0]
-A POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG
-A FLANNEL-POSTRTG -m mark --mark 0x4000/0x4000 -m comment --comment "flanneld masq" -j RETURN
-A FLANNEL-POSTRTG -s $n -d $n -m comment --comment "flanneld masq" -j RETURN
-A FLANNEL-POSTRTG -s $n ! -d ff00::/8 -m comment --comment "flanneld masq" -j MASQUERADE$rf
-A FLANNEL-POSTRTG ! -s $n -d $net6sub -m comment --comment "flanneld masq" -j RETURN
-A FLANNEL-POSTRTG ! -s $n -d $n -m comment --comment "flanneld masq" -j MASQUERADE$rf
EOF
}
nat6_ok() { [ "$(rules ip6tables nat)" = "$(want_nat6)" ]; }
filter6_ok() { [ "$(rules ip6tables filter)" = "$(want_filter6)" ]; }
v4_ok() {
	rules iptables nat | grep -qF -- "-A FLANNEL-POSTRTG -s $TW_OVERLAY ! -d 224.0.0.0/4" &&
		rules iptables filter | grep -qF -- "-A FLANNEL-FWD -s $TW_OVERLAY"
}

# ---- flannel's rules for the IPv6 network, beside the IPv4 ones ----
wait_for --timeout 5 nat6_ok || fail "ip6tables nat rules in h1:
$(rules ip6tables nat)
want:
$(want_nat6)"
wait_for --timeout 5 filter6_ok || fail "ip6tables filter rules in h1:
$(rules ip6tables filter)
want:
$(want_filter6)"
wait_for --timeout 5 v4_ok || fail "IPv4 rules missing beside the IPv6 ones: $(rules iptables nat)"
! rules ip6tables nat | grep -q 198.18 || fail "an IPv4 prefix in ip6tables"
! rules iptables nat | grep -q 2001:db8 || fail "an IPv6 prefix in iptables"
# the log line follows the restore's exit: poll for it too
logged() { grep -q -- "$1" "$(twilld_log 1)"; }
wait_for --timeout 5 logged 'ip6tables: rules in place for the IPv6 network' ||
	fail "twilld did not log the ip6tables rules"
log "ip6tables: flannel's rules for $NET6 in place in h1 (lease $net6sub)"

# ---- the IPv6 masquerade: an outside host on the IPv6 underlay without a route to the overlay
setup_containers 1 1
ds_setup_containers6 1 1
c=$(ns_cont 1 1)
out=${TW_PREFIX}o
netns_add "$out"
_tw_attach "$out" 192.0.2.99 out
ip -n "$out" -6 addr add "$OUT6/64" dev eth0 nodad || fail "IPv6 address in $out"
! ip -n "$out" -6 route get "$(cont_ip6 1 1)" >/dev/null 2>&1 || fail "the outside has a route to the overlay"
ping6_ok "$c" "$OUT6" 5 || fail "container $(cont_ip6 1 1) cannot ping $OUT6 through the IPv6 masquerade"
listener_out=$TW_DIR/listener6.out
bg_start "$out" "$listener_out" "udp6 listener" python3 -c '
import socket
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.bind(("'"$OUT6"'", 9999))
s.settimeout(10)
data, peer = s.recvfrom(100)
print("peer", peer[0], data.decode(), flush=True)
'
listener_pid=$TW_BG_PID
got_peer() { grep -q '^peer ' "$listener_out"; }
for _ in $(seq 1 40); do
	ip netns exec "$c" python3 -c '
import socket
socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).sendto(b"hello", ("'"$OUT6"'", 9999))
' || true
	if wait_for --timeout 0.25 got_peer; then break; fi
done
got_peer || fail "the outside received nothing from the container over IPv6"
stop_pid "$listener_pid" 2
peer=$(awk '/^peer /{print $2; exit}' "$listener_out")
[ "$peer" = "$IP6_H1" ] || fail "the outside saw $peer, want h1's $IP6_H1 (IPv6 masquerade)"
log "IPv6 masquerade: the outside saw $peer for container $(cont_ip6 1 1)"

# ---- repair: deleted by hand, back within --iptables-resync=1 ----
ip netns exec "$h" ip6tables -t nat -D FLANNEL-POSTRTG 4
ip netns exec "$h" ip6tables -D FORWARD 1
t0=$(now_ms)
wait_for --timeout 4 nat6_ok || fail "ip6tables nat rule not restored: $(rules ip6tables nat)"
wait_for --timeout 4 filter6_ok || fail "ip6tables forward jump not restored: $(rules ip6tables filter)"
log "deleted ip6tables rules restored in $(($(now_ms) - t0)) ms"
wait_for --timeout 5 logged 'ip6tables: .* missing or changed rules restored' ||
	fail "twilld did not log the ip6tables repair"

# ---- SIGTERM keeps them; EnableIPv6 off: the IPv6 chains go, the IPv4 ones stay ----
stop_twilld 1
[ "$TW_LAST_RC" = 0 ] || fail "twilld exited $TW_LAST_RC on SIGTERM"
nat6_ok || fail "ip6tables rules gone after SIGTERM: $(rules ip6tables nat)"
[ -e "$TW_DIR/h1/twill-ip6tables.state" ] || fail "no ip6tables state file next to the subnet file"
put_net_config "$(config6 false)"
start_twilld 1 --ip-masq --iptables-resync=1
wait_twilld_ready 1 15
no6() { [ -z "$(rules ip6tables nat)$(rules ip6tables filter)" ]; }
wait_for --timeout 5 no6 || fail "ip6tables chains still there with EnableIPv6 off:
$(rules ip6tables nat)$(rules ip6tables filter)"
v4_ok || fail "IPv4 rules gone with EnableIPv6 off: $(rules iptables nat)"
no_state6() { [ ! -e "$TW_DIR/h1/twill-ip6tables.state" ]; }
wait_for --timeout 5 no_state6 || fail "ip6tables state file left behind"
# the control: without the IPv6 masquerade the outside cannot answer the overlay address
! ping6_ok "$c" "$OUT6" 1 || fail "container reaches $OUT6 over IPv6 without the masquerade"
log "EnableIPv6 off: ip6tables chains removed, IPv4 rules kept"
stop_twilld 1

# ---- no ip6tables binaries: --ip-masq with EnableIPv6 is fatal ----
# twilld in a private mount namespace where /usr/sbin (= /sbin) holds everything but
# ip6tables*: links into a second mount of the real /usr/sbin ($orig), resolved there because
# the alternatives links point back into /usr/sbin.
put_net_config "$(config6 true)"
sbin=$TW_DIR/sbin-no-ip6tables
orig=$TW_DIR/sbin-orig
mkdir "$sbin" "$orig"
for f in /usr/sbin/*; do
	case ${f##*/} in ip6tables*) continue ;; esac
	t=$(readlink -f "$f")
	case $t in /usr/sbin/*) ln -s "$orig/${t##*/}" "$sbin/${f##*/}" ;; *) ln -s "$t" "$sbin/${f##*/}" ;; esac
done
REAL_TWILLD=$TWILLD
TWILLD=$TW_DIR/twilld-no-ip6tables
cat >"$TWILLD" <<EOF
#!/bin/sh
exec unshare -m --propagation private sh -c '
	mount --bind /usr/sbin "$orig" && mount --bind "$sbin" /usr/sbin || exit 97
	! command -v ip6tables-restore >/dev/null && command -v iptables-restore >/dev/null || exit 98
	exec "\$0" "\$@"' "$REAL_TWILLD" "\$@"
EOF
chmod +x "$TWILLD"
rm -f "$(subnet_file 1)"
start_twilld 1 --ip-masq --public-ipv6="$IP6_H1"
pid=${TW_TWILLD_PID[1]}
gone() { ! _tw_alive "$pid"; }
wait_for --timeout 10 gone || fail "twilld --ip-masq without ip6tables still runs after 10 s"
stop_twilld 1
assert_eq "$TW_LAST_RC" 1 "exit status of twilld --ip-masq with EnableIPv6 without ip6tables"
grep -q -- '--ip-masq with EnableIPv6 needs ip6tables-save and ip6tables-restore: install the iptables package' \
	"$(twilld_log 1)" || { show_log "$(twilld_log 1)" 20; fail "no clear message about the missing ip6tables"; }
[ ! -s "$(subnet_file 1)" ] || fail "a subnet file was written although twilld could not start"
log "--ip-masq + EnableIPv6 without ip6tables: exit 1: $(grep -o 'E twilld: --ip-masq.*' "$(twilld_log 1)")"

# forward rules only: logged, twilld runs (and the IPv4 rules are still made)
start_twilld 1 --public-ipv6="$IP6_H1"
wait_twilld_ready 1 15
wait_for --timeout 5 logged 'ip6tables: .*not found.*continuing without ip6tables rules' ||
	{ show_log "$(twilld_log 1)" 20; fail "the missing ip6tables is not logged"; }
finish_twilld_all
log "PASS"

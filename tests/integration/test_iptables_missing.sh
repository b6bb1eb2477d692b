#!/usr/bin/env bash
# twilld on a host without iptables-save/iptables-restore (hidden by empty tmpfs mounts over
# /usr/sbin and /usr/local/sbin in a private mount namespace of twilld alone):
# --ip-masq is a fatal start-up error (exit 1, a clear message); the forward rules alone are
# not: twilld logs it and runs (as flanneld does).
set -euo pipefail
# shellcheck source=tests/integration/lib.sh disable=SC2034
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

make_topology 1 etcd
start_etcd
put_net_config "$(net_config_json vxlan)"

REAL_TWILLD=$TWILLD
TWILLD=$TW_DIR/twilld-no-iptables
cat >"$TWILLD" <<EOF
#!/bin/sh
# twilld in its own mount namespace where no iptables binary can be found
exec unshare -m --propagation private sh -c '
	for d in /usr/sbin /usr/local/sbin; do
		[ -d "\$d" ] && mount -t tmpfs twill-empty "\$d" || exit 97
	done
	exec "\$0" "\$@"' "$REAL_TWILLD" "\$@"
EOF
chmod +x "$TWILLD"
hidden() {
	ip netns exec "$(ns_host 1)" unshare -m --propagation private sh -c \
		'mount -t tmpfs twill-empty /usr/sbin && mount -t tmpfs twill-empty /usr/local/sbin &&
		 ! command -v iptables-save && ! command -v iptables-restore && ! [ -e /sbin/iptables-restore ]' >/dev/null
}
hidden || fail "cannot hide the iptables binaries in a private mount namespace"

# ---- --ip-masq: fatal --------------------------------------------------------------------------
start_twilld 1 --ip-masq
pid=${TW_TWILLD_PID[1]}
gone() { ! _tw_alive "$pid"; }
wait_for --timeout 10 gone || fail "twilld --ip-masq without iptables still runs after 10 s"
stop_twilld 1
assert_eq "$TW_LAST_RC" 1 "exit status of twilld --ip-masq without iptables"
grep -q -- '--ip-masq needs iptables-save and iptables-restore: install the iptables package' \
	"$(twilld_log 1)" || { show_log "$(twilld_log 1)" 20; fail "no clear message about the missing iptables"; }
[ ! -s "$(subnet_file 1)" ] || fail "a subnet file was written although twilld could not start"
log "--ip-masq without iptables: exit 1, no subnet file: $(grep -o 'E twilld: --ip-masq.*' "$(twilld_log 1)")"

# ---- forward rules only: logged, twilld runs -----------------------------------------------------
start_twilld 1
wait_twilld_ready 1 15
grep -q 'iptables: .*not found.*continuing without iptables rules' "$(twilld_log 1)" ||
	{ show_log "$(twilld_log 1)" 20; fail "the missing iptables is not logged"; }
log "forward rules without iptables: twilld runs with lease $(host_subnet 1): $(grep -o 'E twilld: iptables: .*' "$(twilld_log 1)")"

finish_twilld_all
log "PASS"

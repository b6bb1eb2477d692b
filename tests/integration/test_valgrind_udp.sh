#!/usr/bin/env bash
# twilld with the udp backend under valgrind (memcheck) in a real 2-host cluster (real etcd):
# h1's twilld runs under valgrind, h2's natively. Exercised under valgrind: start, the TUN/UDP
# data path (ping both ways between containers on h1 and h2), a remote lease added and
# removed, the own lease key deleted (re-acquired, ping still works), SIGHUP, then SIGTERM:
# twilld must exit 0 (valgrind exits 99 on any memory error or definite/indirect leak) and
# its log must say "ERROR SUMMARY: 0 errors".
set -euo pipefail
# shellcheck source=tests/integration/lib.sh disable=SC2034
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v valgrind >/dev/null || fail "valgrind not installed (contrib/deps.sh)"
VG=(valgrind --leak-check=full "--show-leak-kinds=definite,indirect"
	"--errors-for-leak-kinds=definite,indirect" --error-exitcode=99 --track-fds=no
	--child-silent-after-fork=yes --num-callers=30)
# No suppressions: twilld and twillctl (libcurl, jansson, libmnl) run clean without any.

# vg_check LOG WHAT: the valgrind log reports no error.
vg_check() {
	local f=$1 what=$2 line
	line=$(grep -E '== ERROR SUMMARY: ' "$f" | tail -n 1) || true
	if [[ $line != *"ERROR SUMMARY: 0 errors"* ]]; then
		show_log "$f" 80
		fail "$what: valgrind: ${line:-no ERROR SUMMARY in $f}"
	fi
	log "$what: ${line#*== }"
}

VG_TWILLD_LOG=$TW_DIR/logs/valgrind-twilld-h1.log
wrapper=$TW_DIR/twilld-valgrind
{
	echo '#!/usr/bin/env bash'
	printf 'exec'
	printf ' %q' "${VG[@]}" "--log-file=$VG_TWILLD_LOG" "$TWILLD"
	echo ' "$@"'
} >"$wrapper"
chmod +x "$wrapper"
TW_LOGS+=("$VG_TWILLD_LOG")

make_topology 2 etcd
start_etcd
cfg=$(net_config_json udp)
put_net_config "$cfg"
TWILLD=$wrapper start_twilld 1
start_twilld 2
wait_twilld_ready 2 15
wait_twilld_ready 1 20 # valgrind: a slow start
pid1=${TW_TWILLD_PID[1]}
assert_distinct_subnets 1 2
# lease_udp_ok I: host I's lease is in etcd with its PublicIP, as a udp lease (flannel writes
# udp leases without BackendType).
lease_udp_ok() {
	leases | grep -q "^$(host_subnet "$1")	[0-9.]*	$(host_ip "$1")	udp	"
}
lease_udp_ok 1 || fail "h1: no udp lease with PublicIP $(host_ip 1) in etcd: $(leases)"
setup_containers 1 1
setup_containers 2 1

# ping_both: h1c1 <-> h2c1 through the udp backends (one answer each way within 20 s).
ping_both() {
	local a b
	a=$(cont_ip 1 1)
	b=$(cont_ip 2 1)
	wait_for --timeout 20 ping_ok "$(ns_cont 1 1)" "$b" 1 || { dump_state_all; fail "h1c1 -> h2c1 ($b): no reply"; }
	wait_for --timeout 20 ping_ok "$(ns_cont 2 1)" "$a" 1 || { dump_state_all; fail "h2c1 -> h1c1 ($a): no reply"; }
	log "ping h1c1 <-> h2c1 through udp ok ($1)"
}
ping_both start

# log_has N PATTERN: the twilld h1 log has more than N lines matching PATTERN.
log_has() {
	[ "$(grep -c -- "$2" "$(twilld_log 1)")" -gt "$1" ]
}
# expect_log WHAT PATTERN CMD...: run CMD, then wait up to 15 s for a new PATTERN line.
expect_log() {
	local what=$1 pat=$2 n
	shift 2
	n=$(grep -c -- "$pat" "$(twilld_log 1)" || true)
	"$@"
	wait_for --timeout 15 log_has "$n" "$pat" || {
		show_log "$(twilld_log 1)" 30
		fail "$what: no \"$pat\" in the h1 log within 15 s"
	}
	log "$what: \"$pat\" in ${TW_WAITED_MS} ms"
}

etcdctl_quiet() {
	etcdctl_run "$@" >/dev/null
}

# ---- a burst of large packets both ways (h1's data path under valgrind) ----------------------
burst() {
	local out rx
	out=$(ip netns exec "$(ns_cont "$1" 1)" ping -n -q -c 50 -i 0.02 -s 1400 -w 20 "$(cont_ip "$2" 1)" 2>&1) || true
	rx=$(sed -n 's/.* \([0-9]*\) received.*/\1/p' <<<"$out")
	[ "${rx:-0}" -ge 45 ] || fail "burst h${1}c1 -> h${2}c1: ${rx:-0} of 50 replies ($out)"
	log "burst h${1}c1 -> h${2}c1: $rx of 50 replies (1428-byte packets)"
}
burst 1 2
burst 2 1

# ---- a remote lease added and removed ----------------------------------------------------------
k=$(lease_key 198.18.250.0/24)
expect_log "remote lease added" "lease 198.18.250.0/24 .*: added" \
	etcdctl_quiet put "$k" '{"PublicIP":"192.0.2.50","PublicIPv6":null,"BackendType":"udp"}'
expect_log "remote lease removed" "lease 198.18.250.0/24 .*: removed" etcdctl_quiet del "$k"
ping_both "after a remote lease came and went"

# ---- the own lease key deleted: re-acquired ---------------------------------------------------
sub1=$(host_subnet 1)
key1=$(lease_key "$sub1")
expect_log "own lease deleted" "lease $sub1 .*: re-acquired" etcdctl_quiet del "$key1"
lease_udp_ok 1 || fail "h1: re-acquired lease not in etcd: $(leases)"
ping_both "after the own lease was re-acquired"

# ---- SIGHUP -------------------------------------------------------------------------------------
expect_log "SIGHUP" "SIGHUP: network config .*: unchanged" kill -HUP "$pid1"
_tw_alive "$pid1" || fail "twilld h1 died after SIGHUP"
ping_both "after SIGHUP"

# ---- SIGTERM: exit 0 under valgrind, no errors ------------------------------------------------
stop_pid "$pid1" 30 TERM
unset "TW_TWILLD_PID[1]"
rc=$TW_LAST_RC
[ "$rc" = 0 ] || { show_log "$VG_TWILLD_LOG" 120; show_log "$(twilld_log 1)" 30; fail "twilld h1 (udp) under valgrind exited $rc on SIGTERM (99: valgrind errors)"; }
vg_check "$VG_TWILLD_LOG" "twilld h1 udp (SIGTERM, exit 0)"
finish_twilld_all
log "PASS"

#!/usr/bin/env bash
# twilld and twillctl under valgrind (memcheck) in a real vxlan cluster (real etcd, 2 hosts):
# h1's twilld runs under valgrind, h2's natively; h1 names etcd by a host name. Exercised
# under valgrind: start and convergence, a remote lease added and removed, the own lease key
# deleted (re-acquired), SIGHUP with the config unchanged, changed, invalid and missing, then
# SIGTERM: twilld must exit 0 (valgrind exits 99 on any memory error or definite/indirect
# leak) and its log must say "ERROR SUMMARY: 0 errors". twillctl leases, leases --json, config
# get, reserve, release and watch --count 1 run under valgrind too, each with the same
# exit-code check.
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

# ---- h1: twilld under valgrind, through a wrapper that start_twilld runs as $TWILLD ----------
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

TW_MODE=vxlan
make_topology 2 etcd
start_etcd
cfg=$(net_config_json vxlan)
put_net_config "$cfg"
# h1 names etcd by a host name (from h1's own /etc/hosts: no DNS), so the lookup thread of
# lib/resolve.c runs under valgrind too
etcd_hp=${TW_ETCD_URL#http://}
etcd_hp=${etcd_hp%%,*}
netns_etc "$(ns_host 1)" hosts "127.0.0.1 localhost" "${etcd_hp%:*} etcd.twill.test"
NAME_URL=http://etcd.twill.test:${etcd_hp##*:}
TW_ETCD_URL=$NAME_URL TWILLD=$wrapper start_twilld 1
start_twilld 2
wait_twilld_ready 2 15
wait_twilld_ready 1 20 # valgrind: a slow start
grep -q "store: $NAME_URL" "$(twilld_log 1)" || fail "h1's twilld does not use $NAME_URL"
pid1=${TW_TWILLD_PID[1]}
assert_distinct_subnets 1 2
assert_lease 1 vxlan
assert_vxlan_device 1
wait_state 15 1 2

# ---- a remote lease added and removed ----------------------------------------------------------
etcdctl_run put "$(lease_key 198.18.250.0/24)" \
	'{"PublicIP":"192.0.2.50","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"0a:00:00:00:fa:50"}}' >/dev/null
wait_state 15 1 2
etcdctl_run del "$(lease_key 198.18.250.0/24)" >/dev/null
wait_state 15 1 2
log "remote lease 198.18.250.0/24 added and removed"

# ---- the own lease key deleted: re-acquired ---------------------------------------------------
sub1=$(host_subnet 1)
key1=$(lease_key "$sub1")
etcdctl_run del "$key1" >/dev/null
_own_back() {
	[ "$(etcdctl_run get --print-value-only "$key1" | jq -r '.PublicIP // empty' 2>/dev/null)" = "$(host_ip 1)" ]
}
wait_for --timeout 20 _own_back || {
	show_log "$(twilld_log 1)" 30
	fail "h1 did not re-acquire its deleted lease $key1 within 20 s"
}
log "h1 re-acquired its deleted lease $sub1 in ${TW_WAITED_MS} ms"
assert_lease 1 vxlan
wait_state 15 1 2

# ---- SIGHUP: config unchanged, changed, invalid ----------------------------------------------
# log_has N PATTERN: the twilld h1 log has more than N lines matching PATTERN.
log_has() {
	[ "$(grep -c -- "$2" "$(twilld_log 1)")" -gt "$1" ]
}
hup_expect() {
	local what=$1 pat=$2 n
	n=$(grep -c -- "$pat" "$(twilld_log 1)" || true)
	kill -HUP "$pid1"
	wait_for --timeout 15 log_has "$n" "$pat" || {
		show_log "$(twilld_log 1)" 30
		fail "SIGHUP ($what): no \"$pat\" in the h1 log within 15 s"
	}
	log "SIGHUP ($what): \"$pat\" in ${TW_WAITED_MS} ms"
}
hup_expect unchanged "SIGHUP: network config .*: unchanged"
put_net_config "$(net_config_json vxlan '"VNI":7')"
hup_expect changed "SIGHUP: network config .*: changed"
put_net_config '{"Network":"198.18.0.0/16","SubnetLen":99}'
hup_expect invalid "SIGHUP: network config .*: invalid"
etcdctl_run del "$TW_ETCD_PREFIX/config" >/dev/null
hup_expect missing "SIGHUP: network config .*: not found"
put_net_config "$cfg"
hup_expect restored "SIGHUP: network config .*: unchanged"
_tw_alive "$pid1" || fail "twilld h1 died after SIGHUP"
wait_state 15 1 2

# ---- twillctl under valgrind (from h1, against the test etcd) ---------------------------------
# ctl_vg NAME ARGS...: twillctl ARGS under valgrind in h1; fails on a non-zero exit (99 =
# valgrind errors) or a valgrind error; stdout in $TW_DIR/ctl-NAME.out.
ctl_vg() {
	local name=$1 rc=0
	shift
	local vlog=$TW_DIR/logs/valgrind-twillctl-$name.log
	ip netns exec "$(ns_host 1)" "${VG[@]}" --log-file="$vlog" "$TWILLCTL" \
		--etcd-endpoints="$NAME_URL" "$@" >"$TW_DIR/ctl-$name.out" 2>"$TW_DIR/ctl-$name.err" ||
		rc=$?
	if [ "$rc" != 0 ]; then
		show_log "$TW_DIR/ctl-$name.err" 20
		show_log "$vlog" 80
		fail "twillctl $* under valgrind exited $rc"
	fi
	vg_check "$vlog" "twillctl $*"
}
ctl_vg leases leases
grep -q "^$sub1 *$(host_ip 1) *vxlan" "$TW_DIR/ctl-leases.out" || fail "twillctl leases: $(cat "$TW_DIR/ctl-leases.out")"
ctl_vg leases-json leases --json
jq -e 'length == 2' "$TW_DIR/ctl-leases-json.out" >/dev/null || fail "twillctl leases --json: $(cat "$TW_DIR/ctl-leases-json.out")"
ctl_vg config-get config get
assert_eq "$(cat "$TW_DIR/ctl-config-get.out")" "$cfg" "twillctl config get"
ctl_vg reserve reserve 198.18.251.0/24 --public-ip 192.0.2.51
assert_eq "$(etcdctl_run get --print-value-only "$(lease_key 198.18.251.0/24)")" \
	'{"PublicIP":"192.0.2.51","PublicIPv6":null}' "reservation written by twillctl"
ctl_vg release release 198.18.251.0/24
assert_eq "$(etcdctl_run get --print-value-only "$(lease_key 198.18.251.0/24)")" "" "released key"

# watch --count 1: a key is rewritten every 0.5 s until the watch (slow to start under
# valgrind) sees a change and exits.
wlog=$TW_DIR/logs/valgrind-twillctl-watch.log
: >"$TW_DIR/ctl-watch.out"
bg_start "$(ns_host 1)" "$TW_DIR/ctl-watch.out" "twillctl watch" \
	"${VG[@]}" --log-file="$wlog" "$TWILLCTL" --etcd-endpoints="$TW_ETCD_URL" watch --count 1
wpid=$TW_BG_PID
deadline=$(($(now_ms) + 20000))
n=0
while _tw_alive "$wpid" && [ "$(now_ms)" -lt $deadline ]; do
	n=$((n + 1))
	etcdctl_run put "$(lease_key 198.18.252.0/24)" "{\"PublicIP\":\"192.0.2.52\",\"PublicIPv6\":null,\"n\":$n}" >/dev/null
	sleep 0.5
done
_tw_alive "$wpid" && fail "twillctl watch --count 1 still running after 20 s of changes"
stop_pid "$wpid" 1
[ "$TW_LAST_RC" = 0 ] || { show_log "$wlog" 80; fail "twillctl watch --count 1 under valgrind exited $TW_LAST_RC"; }
grep -q "198.18.252.0/24" "$TW_DIR/ctl-watch.out" || fail "twillctl watch printed: $(cat "$TW_DIR/ctl-watch.out")"
vg_check "$wlog" "twillctl watch --count 1"
etcdctl_run del "$(lease_key 198.18.252.0/24)" >/dev/null
wait_state 15 1 2

# ---- SIGTERM: exit 0 under valgrind, no errors ------------------------------------------------
stop_pid "$pid1" 30 TERM
unset "TW_TWILLD_PID[1]"
rc=$TW_LAST_RC
[ "$rc" = 0 ] || { show_log "$VG_TWILLD_LOG" 120; show_log "$(twilld_log 1)" 30; fail "twilld h1 under valgrind exited $rc on SIGTERM (99: valgrind errors)"; }
vg_check "$VG_TWILLD_LOG" "twilld h1 (SIGTERM, exit 0)"
grep -E '(definitely|indirectly) lost: ' "$VG_TWILLD_LOG" | sed 's/^==[0-9]*== */    /' || true
finish_twilld_all
log "PASS"

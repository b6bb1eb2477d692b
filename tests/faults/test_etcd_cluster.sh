#!/usr/bin/env bash
# Faults 4 and 10 against a 3-member etcd cluster (all in the etcd namespace; twilld on 2
# vxlan hosts is given the three client URLs).
#  4. The leader SIGKILLed during lease churn (random puts/deletes through all members, each
#     retried until it succeeds): no lease lost, no duplicate, both twilld keep running, no
#     echo request lost, final kernel state = lease set; the member comes back.
#  10. The member twilld talks to frozen with SIGSTOP (connections accepted, never answered):
#     a lease added and then removed through another member is applied within the request
#     timeout (5 s) + T10_MARGIN (5 s).
set -euo pipefail
# shellcheck source=tests/integration/lib.sh disable=SC2034
. "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh"
# shellcheck source=tests/faults/lib_faults.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib_faults.sh"

# etcdctl_run (used by lib.sh's readers) goes to the members in TW_CTL_EPS.
TW_CTL_EPS="1 2 3"
etcdctl_run() {
	local eps="" n
	for n in $TW_CTL_EPS; do eps+="${eps:+,}http://127.0.0.1:2381$n"; done
	ip netns exec "$(ns_etcd)" etcdctl --endpoints "$eps" --dial-timeout 2s --command-timeout 10s "$@"
}

T10_TIMEOUT=5 # twilld's request timeout (subnet/store_flags.c)
T10_MARGIN=${T10_MARGIN:-5}
TW_MODE=vxlan
make_topology 2 etcd
cluster_start
put_net_config "$(net_config_json vxlan)"
for i in 1 2; do start_twilld "$i"; done
for i in 1 2; do wait_twilld_ready "$i" 15; done
for i in 1 2; do setup_containers "$i" 1; done
declare -A SUB=([1]=$(host_subnet 1) [2]=$(host_subnet 2))
wait_state 5 1 2
ping_all_pairs 1 1 2

# --- 4. leader killed during churn ---------------------------------------------------------------
ping_start "$(ns_cont 1 1)" "$(cont_ip 2 1)" c4
ping_wait_replies c4 10
urls="http://127.0.0.1:23811,http://127.0.0.1:23812,http://127.0.0.1:23813"
bg_start "$(ns_etcd)" "$TW_DIR/logs/churn4.log" churn \
	python3 "$ETCD_TOOL" --url "$urls" churn "$TW_ETCD_PREFIX" 12 20 "$TW_DIR/churn4.model"
churn_pid=$TW_BG_PID
rev0=$(etcdctl_run get / -w json | jq -r .header.revision)
wait_for --timeout 5 eval '[ $(($(etcdctl_run get / -w json | jq -r .header.revision) - rev0)) -ge 100 ]' ||
	fail "churn does not advance the revision"
leader=$(cluster_leader 1 2 3) || fail "no leader"
t0=$(now_ms)
stop_pid "${TW_MEMBER_PID[$leader]}" 1 KILL
unset "TW_MEMBER_PID[$leader]"
TW_CTL_EPS=$(echo 1 2 3 | tr ' ' '\n' | grep -vx "$leader" | tr '\n' ' ')
log "4: leader m$leader SIGKILLed during churn"
newleader=
wait_for --timeout 15 eval 'newleader=$(cluster_leader $TW_CTL_EPS)' || fail "no new leader within 15 s"
log "4: new leader m$newleader after $(($(now_ms) - t0)) ms"
wait_for --timeout 60 eval '! _tw_alive $churn_pid' || fail "churn did not finish"
stop_pid "$churn_pid" 1
assert_eq "$TW_LAST_RC" 0 "churn exit status ($(tail -n 3 "$TW_DIR/logs/churn4.log"))"
nretry=$(grep -c 'retrying' "$TW_DIR/logs/churn4.log" || true)
log "4: churn: $(tail -n 1 "$TW_DIR/logs/churn4.log") operations, $nretry retried across the election"
# etcd holds exactly the churn's final set: nothing lost, nothing extra
etcdctl_run get --prefix "$TW_ETCD_PREFIX/subnets/" -w json |
	jq -r '(.kvs // [])[] | select(.key | @base64d | test("/198\\.18\\.2[01][0-9]\\.0-24$"))
		| "\(.key | @base64d)\t\(.value | @base64d)"' | LC_ALL=C sort >"$TW_DIR/churn4.etcd"
LC_ALL=C sort "$TW_DIR/churn4.model" >"$TW_DIR/churn4.model.sorted"
if ! cmp -s "$TW_DIR/churn4.model.sorted" "$TW_DIR/churn4.etcd"; then
	diff "$TW_DIR/churn4.model.sorted" "$TW_DIR/churn4.etcd" | head -20 >&2 || true
	fail "4: the churned leases in etcd differ from the churn's final set"
fi
for i in 1 2; do assert_own_lease "$i" "${SUB[$i]}"; done
assert_no_dup_leases
twilld_all_alive 1 2
wait_state 15 1 2
log "4: etcd holds the $(wc -l <"$TW_DIR/churn4.etcd") churned leases exactly; kernel state of h1,h2 = the $(lease_count) leases"
ping_wait_replies c4 10
ping_stop_lossless_deferred c4 "4"
for i in 1 2; do
	log "4: h$i log: $(grep -c ' W ' "$(twilld_log "$i")" || true) warnings, $(grep -c ' E ' "$(twilld_log "$i")" || true) errors"
done
member_start "$leader" existing
wait_for --timeout 15 _member_healthy "$leader" || fail "m$leader did not come back"
TW_CTL_EPS="1 2 3"
log "4: m$leader back in the cluster"

# --- 10. a frozen member ---------------------------------------------------------------------------
# Restart both daemons so that both use the first endpoint (m1), then freeze m1.
for i in 1 2; do restart_twilld "$i" TERM; done
wait_state 5 1 2
leader10=$(cluster_leader 1 2 3) || leader10='?'
kill -STOP "${TW_MEMBER_PID[1]}"
frozen_line=$(wc -l <"$(twilld_log 1)")
TW_CTL_EPS="2 3"
log "10: m1 frozen (SIGSTOP; the leader was m$leader10)"
X=198.18.240.0/24
# When m1 was the leader, puts time out until m2 and m3 elect a new one: retry.
wait_for --timeout 30 --interval 0.2 etcdctl_member 2 put "$(lease_key $X)" \
	"$(vxlan_lease_json 192.0.2.60 0a:00:00:00:f0:60)" >/dev/null 2>&1 ||
	fail "10: cannot put through m2 with m1 frozen"
t0=$(now_ms)
T10=$((T10_TIMEOUT + T10_MARGIN))
if wait_for --timeout $T10 _tw_state_ok_live "$TW_DIR/leases.snap" 1 2; then
	log "10: lease added through m2 programmed on h1,h2 in $(($(now_ms) - t0)) ms"
	t0=$(now_ms)
	wait_for --timeout 30 --interval 0.2 etcdctl_member 3 del "$(lease_key $X)" >/dev/null 2>&1 ||
		fail "10: cannot delete through m3 with m1 frozen"
	if wait_for --timeout $T10 _tw_state_ok_live "$TW_DIR/leases.snap" 1 2; then
		log "10: lease removed through m3 applied on h1,h2 in $(($(now_ms) - t0)) ms"
	else
		defer_fail "10: a lease removed through m3 was not applied within $T10 s with m1 frozen"
	fi
else
	defer_fail "10: with m1 frozen, a lease added through m2 was not programmed within $T10 s (request timeout $T10_TIMEOUT s + $T10_MARGIN s); h1 logged $(($(wc -l <"$(twilld_log 1)") - frozen_line)) lines since the freeze: $(tail -n +$((frozen_line + 1)) "$(twilld_log 1)" | head -n 3 | cut -c1-200 | tr '\n' '|')"
	# how long does it take at all?
	if wait_for --timeout 30 _tw_state_ok_live "$TW_DIR/leases.snap" 1 2; then
		log "10: ... programmed after $(($(now_ms) - t0)) ms"
	else
		log "10: ... still not programmed after $(($(now_ms) - t0)) ms"
	fi
	wait_for --timeout 30 --interval 0.2 etcdctl_member 3 del "$(lease_key $X)" >/dev/null 2>&1 ||
		fail "10: cannot delete through m3 with m1 frozen"
fi
twilld_all_alive 1 2
kill -CONT "${TW_MEMBER_PID[1]}"
TW_CTL_EPS="1 2 3"
wait_state 15 1 2
ping_all_pairs 1 1 2
finish_twilld_all
finish_deferred
log "PASS"

#!/usr/bin/env bash
# The CoreOS layout: a 3-member etcd cluster, and on every host an `etcd grpc-proxy` on
# 127.0.0.1:23790 with twilld talking only to it (--etcd-endpoints=http://127.0.0.1:23790).
#  1. Three hosts come up through their proxies; every container pair pings; each daemon has
#     made every one of its calls (probe, config, listing, lease, watch, keepalives) over one
#     TCP connection to its proxy (/v1/status etcd.connections, and ss sees one).
#  2. h3's proxy is stopped for 10 s. Meanwhile, against etcd directly: a vxlan lease is added
#     (etcdctl), a reservation is added and a lease removed (twillctl reserve / release), and a
#     fourth host joins through its own proxy. Within PROXY_BACK_S (5 s) of the proxy's return,
#     h3's kernel equals the leases (ip -j / bridge -j against etcd), h3 and h4 reach each other
#     both ways, and h3's twilld never exited.
#  3. The etcd leader is SIGKILLed during lease churn (random puts and deletes through the
#     members, each retried until it succeeds): etcd holds exactly the churn's final set, and
#     every host's kernel equals the leases; every twilld still runs.
# TW_DIRECT=1 points twilld at the members instead of the proxies (to debug the harness with a
# build that has no gRPC transport).
# shellcheck disable=SC2016,SC2034 # eval'd conditions of wait_for expand later, on purpose
set -euo pipefail
# shellcheck source=tests/integration/lib.sh disable=SC2034
. "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh"
# shellcheck source=tests/integration/lib_proxy.sh
. "$(dirname "${BASH_SOURCE[0]}")/../integration/lib_proxy.sh"

PROXY_DOWN_S=10
PROXY_BACK_S=${PROXY_BACK_S:-5}
TW_MODE=vxlan
# twilld's own subnets stay below 198.18.200.0: the churn uses 198.18.200-219, the fakes 250-252
CONFIG='{"Network":"198.18.0.0/16","SubnetLen":24,"SubnetMax":"198.18.199.0","Backend":{"Type":"vxlan"}}'

twilld_on() {
	if [ "${TW_DIRECT:-0}" = 1 ]; then
		TW_ETCD_URL=$(members_csv http) start_twilld "$@" "${HZ[@]}"
	else
		start_twilld_proxy "$@" "${HZ[@]}"
	fi
}

HZ=(--healthz-ip=127.0.0.1 --healthz-port=8471)
# etcd_status I: the etcd part of host I's /v1/status.
etcd_status() { ip netns exec "$(ns_host "$1")" curl -sf -m 5 http://127.0.0.1:8471/v1/status | jq -c .etcd; }

# one_connection I: twilld I opened one TCP connection to etcd in all (HTTP/2 carries every
# call), and ss sees exactly one of its sockets established to the proxy port.
one_connection() {
	local st n
	st=$(etcd_status "$1") || fail "h$1: GET /v1/status failed"
	[ "$(jq .connections <<<"$st")" = 1 ] || fail "h$1: etcd connections: $st (want 1 for $(jq .requests <<<"$st") requests)"
	n=$(ip netns exec "$(ns_host "$1")" ss -Htnp state established '( dport = :23790 )' | grep -c "pid=${TW_TWILLD_PID[$1]}," || true)
	[ "$n" = 1 ] || fail "h$1: $n established connections to the proxy (want 1)"
	log "h$1: $(jq .requests <<<"$st") etcd requests over $(jq .connections <<<"$st") connection"
}

# ping_both I J: container 1 of host I and container 1 of host J reach each other (3 s each).
ping_both() {
	ping_ok "$(ns_cont "$1" 1)" "$(cont_ip "$2" 1)" 1 && ping_ok "$(ns_cont "$2" 1)" "$(cont_ip "$1" 1)" 1
}

make_topology 4 etcd
start_etcd_cluster
put_net_config "$CONFIG"
for i in 1 2 3; do start_grpc_proxy "$i"; done
for i in 1 2 3; do twilld_on "$i"; done
for i in 1 2 3; do wait_twilld_ready "$i" 20; done
assert_distinct_subnets 1 2 3
for i in 1 2 3; do setup_containers "$i" 1; done
for i in 1 2 3; do assert_lease "$i" vxlan; done
wait_state 10 1 2 3
ping_all_pairs 1 1 2 3
[ "${TW_DIRECT:-0}" = 1 ] || for i in 1 2 3; do one_connection "$i"; done

# --- 2. h3's proxy down for 10 s -----------------------------------------------------------------
ADD=198.18.250.0/24 RSV=198.18.251.0/24 DEL=198.18.252.0/24
etcdctl_run put "$(lease_key $DEL)" "$(vxlan_lease_json 192.0.2.62 0a:00:00:00:fc:62)" >/dev/null
wait_state 10 1 2 3
log "2: lease $DEL (to be removed) programmed everywhere"
t_stop=$(now_ms)
stop_grpc_proxy 3 KILL
log "2: h3's proxy SIGKILLed"
etcdctl_run put "$(lease_key $ADD)" "$(vxlan_lease_json 192.0.2.60 0a:00:00:00:fa:60)" >/dev/null
twillctl_run 1 reserve "$RSV" --public-ip 192.0.2.61 >/dev/null || fail "twillctl reserve $RSV"
twillctl_run 1 release "$DEL" >/dev/null || fail "twillctl release $DEL"
[ -z "$(etcdctl_run get --print-value-only "$(lease_key $DEL)")" ] || fail "2: $DEL still in etcd after release"
rsv=$(etcdctl_run get -w json "$(lease_key $RSV)" | jq -c '.kvs[0] // empty')
[ -n "$rsv" ] || fail "2: no reservation $RSV in etcd"
assert_eq "$(jq -r '.value | @base64d | fromjson | .PublicIP' <<<"$rsv")" 192.0.2.61 "reservation PublicIP"
assert_eq "$(jq -r '.lease // 0' <<<"$rsv")" 0 "reservation has no etcd lease"
log "2: added $ADD (etcdctl), reserved $RSV and released $DEL (twillctl against the members)"
start_grpc_proxy 4
twilld_on 4
wait_twilld_ready 4 20
setup_containers 4 1
assert_distinct_subnets 1 2 3 4
wait_state 10 1 2 4
log "2: h4 joined through its proxy; h1,h2,h4 have every lease"
twilld_pid_alive 3 || { show_log "$(twilld_log 3)" 40; fail "2: twilld on h3 exited while its proxy was down"; }
# the proxy was really gone: h3 could not have learnt the changes
actual_state 3 >"$TW_DIR/h3/state.during"
if [ "${TW_DIRECT:-0}" != 1 ] && grep -q "^$ADD via" "$TW_DIR/h3/state.during"; then
	fail "2: h3 programmed $ADD while its proxy was down: the outage did not cut it off"
fi
left=$((PROXY_DOWN_S * 1000 - ($(now_ms) - t_stop)))
[ $left -gt 0 ] && sleep "$((left / 1000)).$(printf '%03d' $((left % 1000)))" # the outage lasts 10 s by design
start_grpc_proxy 3
t_back=$(now_ms)
log "2: h3's proxy back after $((t_back - t_stop)) ms"
if ! wait_for --timeout "$PROXY_BACK_S" _tw_state_ok_live "$TW_DIR/leases.snap" 3; then
	# say how long it does take, and what h3's twilld did meanwhile, then fail
	wait_for --timeout 60 _tw_state_ok_live "$TW_DIR/leases.snap" 3 && took="after $(($(now_ms) - t_back)) ms" ||
		took="not within 60 s"
	grep -E ' [IWE] twilld: ' "$(twilld_log 3)" | tail -n 8 | cut -c1-220 >&2
	fail "2: h3's kernel did not match the leases within ${PROXY_BACK_S}s of its proxy's return (it did $took)"
fi
ms_state=$(($(now_ms) - t_back))
wait_for --timeout "$PROXY_BACK_S" ping_both 3 4 || {
	dump_state_all
	fail "2: h3 and h4 do not reach each other within ${PROXY_BACK_S}s of the proxy's return"
}
ms_ping=$(($(now_ms) - t_back))
log "2: after the proxy's return: h3's kernel = the leases in $ms_state ms, h3<->h4 ping ok in $ms_ping ms"
twilld_pid_alive 3 || fail "2: twilld on h3 exited"
wait_state 5 1 2 3 4
ping_all_pairs 1 1 2 3 4

# --- 3. leader killed under churn, behind the proxies --------------------------------------------
urls="http://127.0.0.1:23811,http://127.0.0.1:23812,http://127.0.0.1:23813"
bg_start "$(ns_etcd)" "$TW_DIR/logs/churn.log" churn \
	python3 "$ETCD_TOOL" --url "$urls" churn "$TW_ETCD_PREFIX" 10 20 "$TW_DIR/churn.model"
churn_pid=$TW_BG_PID
rev0=$(etcd_revision)
wait_for --timeout 5 eval '[ $(($(etcd_revision) - rev0)) -ge 50 ]' || fail "3: churn does not advance the revision"
leader=$(cluster_leader 1 2 3) || fail "3: no leader"
t0=$(now_ms)
stop_pid "${TW_MEMBER_PID[$leader]}" 1 KILL
unset "TW_MEMBER_PID[$leader]"
TW_MEMBERS=$(echo 1 2 3 | tr ' ' '\n' | grep -vx "$leader" | tr '\n' ' ')
log "3: leader m$leader SIGKILLed during churn"
newleader=
wait_for --timeout 15 eval 'newleader=$(cluster_leader $TW_MEMBERS)' || fail "3: no new leader within 15 s"
log "3: new leader m$newleader after $(($(now_ms) - t0)) ms"
wait_for --timeout 60 eval '! _tw_alive $churn_pid' || fail "3: churn did not finish"
stop_pid "$churn_pid" 1
assert_eq "$TW_LAST_RC" 0 "churn exit status ($(tail -n 3 "$TW_DIR/logs/churn.log"))"
log "3: churn: $(tail -n 1 "$TW_DIR/logs/churn.log") operations, $(grep -c retrying "$TW_DIR/logs/churn.log" || true) retried"
etcdctl_run get --prefix "$TW_ETCD_PREFIX/subnets/" -w json |
	jq -r '(.kvs // [])[] | select(.key | @base64d | test("/198\\.18\\.2[01][0-9]\\.0-24$"))
		| "\(.key | @base64d)\t\(.value | @base64d)"' | LC_ALL=C sort >"$TW_DIR/churn.etcd"
LC_ALL=C sort "$TW_DIR/churn.model" >"$TW_DIR/churn.model.sorted"
if ! cmp -s "$TW_DIR/churn.model.sorted" "$TW_DIR/churn.etcd"; then
	diff "$TW_DIR/churn.model.sorted" "$TW_DIR/churn.etcd" | head -20 >&2 || true
	fail "3: the churned leases in etcd differ from the churn's final set"
fi
twilld_all_alive 1 2 3 4
assert_no_dup_leases
wait_state 20 1 2 3 4
log "3: the $(wc -l <"$TW_DIR/churn.etcd") churned leases are in etcd exactly and programmed on h1-h4"
ping_all_pairs 1 1 2 3 4
finish_twilld_all
log "PASS"

# shellcheck shell=bash
# Extra helpers for the fault-injection suite (tests/faults). Source AFTER
# tests/integration/lib.sh. Same rules: everything inside the run's namespaces or on
# 127.0.0.1 of the etcd namespace, every process by PID, cleanup from lib.sh's trap.

FAULTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ETCD_TOOL=$FAULTS_DIR/etcd_tool.py

# ---------------------------------------------------------------------------------------------
# Single etcd: stop and start again by PID, with the same or a new data directory.

# etcd_data_dir: the data directory of the running (or last) etcd.
etcd_data_dir() {
	if [ -z "${TW_ETCD_DATA:-}" ]; then
		TW_ETCD_DATA=$(tr '\0' '\n' <"/proc/$TW_ETCD_PID/cmdline" | sed -n '/^--data-dir$/{n;p}')
	fi
	echo "$TW_ETCD_DATA"
}

# etcd_stop [SIGNAL]: stop the single etcd by PID (default SIGTERM; KILL for a crash).
etcd_stop() {
	etcd_data_dir >/dev/null
	stop_pid "$TW_ETCD_PID" 5 "${1:-TERM}"
	log "etcd (pid $TW_ETCD_PID) stopped with SIG${1:-TERM}"
}

# etcd_start_dir DATA_DIR: start the single etcd again (same URLs as lib.sh's start_etcd) on
# DATA_DIR (existing: restart; new empty: a wiped store); waits for /health, up to 15 s.
etcd_start_dir() {
	local data=$1
	TW_ETCD_DATA=$data
	bg_start "$(ns_etcd)" "$TW_DIR/logs/etcd.log" etcd \
		etcd --name "$TW_PREFIX" --data-dir "$data" \
		--listen-client-urls "$TW_ETCD_URL,http://127.0.0.1:2379" \
		--advertise-client-urls "$TW_ETCD_URL" \
		--listen-peer-urls http://127.0.0.1:2380 \
		--initial-advertise-peer-urls http://127.0.0.1:2380 \
		--initial-cluster "$TW_PREFIX=http://127.0.0.1:2380" \
		--initial-cluster-token "$TW_PREFIX" --initial-cluster-state new \
		--logger zap --log-level warn
	TW_ETCD_PID=$TW_BG_PID
	wait_for --timeout 15 _tw_etcd_healthy || fail "etcd on $data not healthy after 15 s"
	log "etcd up again (pid $TW_ETCD_PID, data $(basename "$data"), ${TW_WAITED_MS} ms)"
}

# etcd_revision: the current store revision.
etcd_revision() {
	etcdctl_run get / -w json | jq -r '.header.revision'
}

# etcd_put_raw KEY: value = stdin bytes, through the JSON gateway (no argv size limit).
etcd_put_raw() {
	ip netns exec "$(ns_etcd)" python3 "$ETCD_TOOL" put "$1" || fail "etcd_tool put $1"
}

# etcd_apply: ops on stdin (see etcd_tool.py), in txns of 128; prints the count.
etcd_apply() {
	ip netns exec "$(ns_etcd)" python3 "$ETCD_TOOL" apply
}

# vxlan_lease_json IP MAC: a flannel vxlan lease value.
vxlan_lease_json() {
	printf '{"PublicIP":"%s","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"%s"}}' "$1" "$2"
}

# ---------------------------------------------------------------------------------------------
# Three-member cluster in the etcd namespace: member N (1..3) serves clients on
# http://192.0.2.100:2381N (and 127.0.0.1:2381N), peers on 127.0.0.1:2382N.

declare -A TW_MEMBER_PID=()
TW_CLUSTER_DIR=

member_url() { echo "http://$TW_ETCD_IP:2381$1"; }

# etcdctl_member N ARGS...: etcdctl against member N only.
etcdctl_member() {
	local n=$1
	shift
	ip netns exec "$(ns_etcd)" etcdctl --endpoints "http://127.0.0.1:2381$n" --dial-timeout 2s \
		--command-timeout 5s "$@"
}

# member_start N new|existing: start member N by PID.
member_start() {
	local n=$1 state=$2 ic=""
	local k
	for k in 1 2 3; do ic+="${ic:+,}m$k=http://127.0.0.1:2382$k"; done
	mkdir -p "$TW_CLUSTER_DIR/m$n"
	bg_start "$(ns_etcd)" "$TW_DIR/logs/etcd-m$n.log" "etcd m$n" \
		etcd --name "m$n" --data-dir "$TW_CLUSTER_DIR/m$n" \
		--listen-client-urls "$(member_url "$n"),http://127.0.0.1:2381$n" \
		--advertise-client-urls "$(member_url "$n")" \
		--listen-peer-urls "http://127.0.0.1:2382$n" \
		--initial-advertise-peer-urls "http://127.0.0.1:2382$n" \
		--initial-cluster "$ic" --initial-cluster-token "$TW_PREFIX" \
		--initial-cluster-state "$state" --logger zap --log-level warn
	TW_MEMBER_PID[$n]=$TW_BG_PID
}

_member_healthy() {
	local out
	out=$(ip netns exec "$(ns_etcd)" curl -s -m 1 "http://127.0.0.1:2381$1/health" 2>/dev/null) || return 1
	case "$out" in *'"health":"true"'*) return 0 ;; esac
	return 1
}

_cluster_healthy() {
	local n
	for n in "$@"; do _member_healthy "$n" || return 1; done
}

# cluster_start: the three members; sets TW_ETCD_URL to the list of the three client URLs
# (start_twilld passes it as --etcd-endpoints) and makes etcdctl_run use every member.
cluster_start() {
	TW_CLUSTER_DIR=$TW_DIR/cluster
	local n
	for n in 1 2 3; do member_start "$n" new; done
	wait_for --timeout 20 _cluster_healthy 1 2 3 || fail "3-member etcd cluster not healthy after 20 s"
	TW_ETCD_URL="$(member_url 1),$(member_url 2),$(member_url 3)"
	TW_HAVE_ETCD=1
	log "etcd cluster up: $TW_ETCD_URL (${TW_WAITED_MS} ms)"
}

# In cluster mode etcdctl_run talks to every member (etcdctl fails over between them).
etcdctl_all() {
	ip netns exec "$(ns_etcd)" etcdctl \
		--endpoints http://127.0.0.1:23811,http://127.0.0.1:23812,http://127.0.0.1:23813 \
		--dial-timeout 2s --command-timeout 10s "$@"
}

# cluster_leader MEMBER...: the member number of the current leader, asked of the live
# MEMBERs (the leader must be one of them).
cluster_leader() {
	local n st lid m
	declare -A ids=()
	for n in "$@"; do
		st=$(etcdctl_member "$n" endpoint status -w json 2>/dev/null) || continue
		ids[$n]=$(jq -r '.[0].Status.header.member_id' <<<"$st")
		lid=$(jq -r '.[0].Status.leader' <<<"$st")
	done
	[ -n "${lid:-}" ] && [ "$lid" != null ] && [ "$lid" != 0 ] || return 1
	for m in "${!ids[@]}"; do
		[ "${ids[$m]}" = "$lid" ] && { echo "$m"; return 0; }
	done
	return 1
}

# ---------------------------------------------------------------------------------------------
# Kernel state against a fixed set of leases

# wait_state_file TIMEOUT LEASES_FILE HOST...: wait until each HOST's kernel state equals the
# expectation for the leases in LEASES_FILE (format of lib.sh's `leases`); fail with a diff.
wait_state_file() {
	local timeout=$1 lf=$2 i
	shift 2
	if wait_for --timeout "$timeout" state_ok "$lf" "$@"; then
		log "kernel state of h${*// /,h} matches the $(wc -l <"$lf") expected leases (${TW_WAITED_MS} ms)"
		return 0
	fi
	for i in "$@"; do
		expected_state "$i" "$lf" >"$TW_DIR/h$i/state.expected"
		actual_state "$i" >"$TW_DIR/h$i/state.actual"
		if ! cmp -s "$TW_DIR/h$i/state.expected" "$TW_DIR/h$i/state.actual"; then
			echo "h$i: kernel state differs (- expected, + actual), first lines:" >&2
			diff -u "$TW_DIR/h$i/state.expected" "$TW_DIR/h$i/state.actual" | tail -n +3 | head -40 >&2
		fi
	done
	fail "kernel state of h${*// /,h} does not match $lf after ${timeout}s"
}

# overlay_route_count I: routes on flannel.1 in host I.
overlay_route_count() {
	ip -n "$(ns_host "$1")" -4 route show dev "$TW_VXLAN_DEV" 2>/dev/null | wc -l
}

# twilld_alive I: twilld I still runs (fails the test with its log if not).
twilld_alive() {
	local pid=${TW_TWILLD_PID[$1]:-}
	if [ -z "$pid" ] || ! _tw_alive "$pid"; then
		show_log "$(twilld_log "$1")" 40
		fail "twilld on h$1 is not running"
	fi
}

# twilld_all_alive HOST...: every listed twilld still runs.
twilld_all_alive() {
	local i
	for i in "$@"; do twilld_alive "$i"; done
}

# assert_own_lease I SUBNET: etcd holds SUBNET for host I (PublicIP = host I's address) and
# host I's subnet file says SUBNET.
assert_own_lease() {
	local i=$1 sub=$2 v
	assert_eq "$(host_subnet "$i")" "$sub" "h$i subnet file"
	v=$(etcdctl_run get --print-value-only "$(lease_key "$sub")") || fail "etcdctl get $sub"
	[ -n "$v" ] || fail "h$i: no lease $sub in etcd"
	assert_eq "$(jq -r .PublicIP <<<"$v")" "$(host_ip "$i")" "PublicIP of lease $sub"
}

# own_lease_ok I SUBNET: the predicate form of assert_own_lease.
own_lease_ok() {
	local v
	[ "$(host_subnet "$1")" = "$2" ] || return 1
	v=$(etcdctl_run get --print-value-only "$(lease_key "$2")" 2>/dev/null) || return 1
	[ "$(jq -r .PublicIP <<<"$v" 2>/dev/null)" = "$(host_ip "$1")" ]
}

# assert_no_dup_leases: no two leases in etcd for one PublicIP, no overlapping subnets.
assert_no_dup_leases() {
	local dup
	dup=$(leases | awk -F'\t' '$3 != "-" {print $3}' | sort | uniq -d)
	[ -z "$dup" ] || fail "several leases for PublicIP $dup: $(leases | tr '\n' ';')"
	dup=$(leases | cut -f1 | sort | uniq -d)
	[ -z "$dup" ] || fail "duplicate subnet $dup"
}

# log_has I REGEX: host I's twilld log matches REGEX (extended).
log_has() {
	grep -qE -- "$2" "$(twilld_log "$1")"
}

# ---------------------------------------------------------------------------------------------
# Failures that must not stop the later cases of a file: recorded, reported at the end.

FAULTS_DEFERRED=()

# defer_fail MSG...: print a failure now, fail the test at finish_deferred.
defer_fail() {
	printf '[%8s] FAIL (deferred): %s\n' "$(_tw_elapsed)" "$*" >&2
	FAULTS_DEFERRED+=("$*")
}

# finish_deferred: fail if any deferred failure was recorded.
finish_deferred() {
	[ ${#FAULTS_DEFERRED[@]} -eq 0 ] && return 0
	local m
	for m in "${FAULTS_DEFERRED[@]}"; do printf '    - %s\n' "$m" >&2; done
	fail "${#FAULTS_DEFERRED[@]} deferred failure(s), listed above"
}

# ping_stop_lossless_deferred NAME WHAT: like lib.sh's ping_stop_lossless, but a lost echo
# request is a deferred failure (naming WHAT and quoting ping's error lines).
ping_stop_lossless_deferred() {
	local name=$1 what=$2 logf=$TW_DIR/logs/ping-$1.log tx missing=()
	stop_pid "${TW_PING_PID[$name]}" 5 INT
	unset "TW_PING_PID[$name]"
	tx=$(sed -n 's/^\([0-9]*\) packets transmitted.*/\1/p' "$logf")
	[ -n "$tx" ] || { show_log "$logf" 20; fail "ping $name: no statistics"; }
	# every icmp_seq 1..tx-1 must have a reply (the one in flight at SIGINT does not count)
	mapfile -t missing < <(awk -v tx="$tx" '
		/bytes from .*icmp_seq=/ { if (match($0, /icmp_seq=[0-9]+/)) got[substr($0, RSTART + 9, RLENGTH - 9)] = 1 }
		END { for (i = 1; i < tx; i++) if (!(i in got)) print i }' "$logf")
	if [ ${#missing[@]} -gt 0 ]; then
		defer_fail "$what: ping $name lost ${#missing[@]} of $tx echo requests (icmp_seq ${missing[*]:0:20}): $(grep -v 'bytes from' "$logf" | grep -i 'icmp_seq' | head -n 3 | tr '\n' '|')"
	else
		log "ping $name: $tx sent, none lost"
	fi
}

# ping_start_fast SRC_NS DST NAME INTERVAL: lib.sh's ping_start with another interval (e.g.
# 0.01: a gap of 10 ms in forwarding loses a request); same log and PID bookkeeping.
ping_start_fast() {
	local logf=$TW_DIR/logs/ping-$3.log
	: >"$logf"
	bg_start "$1" "$logf" "ping $3" ping -n -i "$4" -W 1 "$2"
	TW_PING_PID[$3]=$TW_BG_PID
}

# ---------------------------------------------------------------------------------------------
# Route monitors: `ip monitor route` in a host, to prove a route was never withdrawn (a ping
# can miss a gap of a few milliseconds; the monitor cannot).

declare -A TW_RMON_MARK=()

# route_monitor_start I: start recording route and nexthop changes in host I.
route_monitor_start() {
	local logf=$TW_DIR/logs/routes-h$1.log
	: >"$logf"
	bg_start "$(ns_host "$1")" "$logf" "ip monitor h$1" ip -ts monitor route nexthop
	TW_RMON_MARK[$1]=0
}

# route_monitor_mark I: forget the changes recorded so far in host I.
route_monitor_mark() {
	TW_RMON_MARK[$1]=$(wc -l <"$TW_DIR/logs/routes-h$1.log")
}

# route_withdrawals I SUBNET...: the "Deleted" lines for any of SUBNET... in host I since
# the last mark (empty: none of them was withdrawn).
route_withdrawals() {
	local i=$1 s
	shift
	local pat=""
	for s in "$@"; do
		pat+="${pat:+|}Deleted ${s//./\\.} " # the route
		s=${s%/*}
		pat+="|Deleted id [0-9]+ via ${s//./\\.} " # its nexthop object (takes the route along)
	done
	tail -n +$((${TW_RMON_MARK[$i]:-0} + 1)) "$TW_DIR/logs/routes-h$i.log" | grep -E -- "$pat" || true
}

# check_no_withdrawal WHAT HOST...: defer a failure for every HOST that withdrew, since its
# mark, the route to another HOST's subnet (SUB[] holds the subnets); then mark again.
check_no_withdrawal() {
	local what=$1 i j subs w
	shift
	for i in "$@"; do
		subs=()
		for j in "$@"; do [ "$j" != "$i" ] && subs+=("${SUB[$j]}"); done
		w=$(route_withdrawals "$i" "${subs[@]}")
		[ -z "$w" ] || defer_fail "$what: h$i withdrew the route to another node's subnet: $(head -n 3 <<<"$w" | tr '\n' '|')"
		route_monitor_mark "$i"
	done
}

# lease_ttl SUBNET: remaining TTL (s) of the etcd lease attached to SUBNET's key; "none"
# when the key is absent or has no etcd lease, -1 when that lease no longer exists.
lease_ttl() {
	local id
	# not through jq: lease IDs exceed 2^53 and jq rounds them
	id=$(etcdctl_run get -w json "$(lease_key "$1")" | grep -o '"lease":[0-9]*' | head -n 1 | cut -d: -f2) ||
		return 1
	id=${id:-none}
	if [ "$id" = none ] || [ "$id" = 0 ]; then
		echo none
		return 0
	fi
	etcdctl_run lease timetolive -w json "$(printf '%x' "$id")" | jq -r '.ttl'
}

# own_lease_live I SUBNET: own_lease_ok, and the attached etcd lease is alive (TTL > 0).
own_lease_live() {
	local t
	own_lease_ok "$1" "$2" || return 1
	t=$(lease_ttl "$2") || return 1
	[ "$t" != none ] && [ "$t" -gt 0 ]
}

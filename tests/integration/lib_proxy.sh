# shellcheck shell=bash
# Helpers for tests with etcd proxies and etcd clusters (the CoreOS layout: a few etcd members,
# one `etcd grpc-proxy` per worker host, each twilld talking only to its host's proxy).
# Source AFTER tests/integration/lib.sh; same rules: every process by PID, every address on
# 127.0.0.1 of a test namespace or in 192.0.2.0/24, cleanup from lib.sh's trap.
#
#   start_etcd_cluster              3 members in the etcd namespace (192.0.2.100:2381N)
#   start_grpc_proxy I              a grpc-proxy in host I on 127.0.0.1:23790 (all members)
#   stop_grpc_proxy I [SIGNAL]      stop it (by PID)
#   start_twilld_proxy I [ARGS...]  twilld in host I with --etcd-endpoints = its proxy
#   twillctl_run I ARGS...          twillctl in host I against the members directly

if [ -n "${TW_LIB_PROXY_LOADED:-}" ]; then
	return 0
fi
TW_LIB_PROXY_LOADED=1

# The cluster helpers of the fault suite (member_start, cluster_leader, etcdctl_member, ...).
# shellcheck source=tests/faults/lib_faults.sh
. "$(dirname "${BASH_SOURCE[0]}")/../faults/lib_faults.sh"

TW_PROXY_PORT=23790
TW_PROXY_URL=http://127.0.0.1:$TW_PROXY_PORT
declare -gA TW_PROXY_PID=() # host index -> pid of its grpc-proxy
TW_MEMBERS="1 2 3"          # members etcdctl_run may use (the live ones)

# members_csv [SCHEME]: the client addresses of the three members as host:port (default) or
# SCHEME://host:port, comma-separated.
members_csv() {
	local n out=""
	for n in 1 2 3; do out+="${out:+,}${1:+$1://}$TW_ETCD_IP:2381$n"; done
	echo "$out"
}

# etcdctl_run (used by lib.sh's readers) goes to the live members (TW_MEMBERS) on loopback.
etcdctl_run() {
	local eps="" n
	for n in $TW_MEMBERS; do eps+="${eps:+,}http://127.0.0.1:2381$n"; done
	ip netns exec "$(ns_etcd)" etcdctl --endpoints "$eps" --dial-timeout 2s --command-timeout 10s "$@"
}

# start_etcd_cluster: three members (lib_faults.sh's cluster_start); TW_ETCD_URL becomes the
# list of the three client URLs.
start_etcd_cluster() {
	cluster_start
	TW_MEMBERS="1 2 3"
}

# proxy_log I: the log of host I's proxy.
proxy_log() { echo "$TW_DIR/logs/proxy-h$1.log"; }

# _proxy_ready I: a get through host I's proxy succeeds.
_proxy_ready() {
	ip netns exec "$(ns_host "$1")" etcdctl --endpoints "127.0.0.1:$TW_PROXY_PORT" \
		--dial-timeout 1s --command-timeout 2s get /twill-proxy-probe >/dev/null 2>&1
}

# start_grpc_proxy I [ENDPOINTS]: `etcd grpc-proxy start` in host I, listening on
# 127.0.0.1:23790, forwarding to ENDPOINTS (default: the three members); waits (15 s) until a
# get through it succeeds. PID in TW_PROXY_PID[I].
start_grpc_proxy() {
	local i=$1 eps=${2:-$(members_csv)}
	mkdir -p "$TW_DIR/h$i/proxy"
	echo "=== $(date '+%F %T.%3N') start: etcd grpc-proxy start --endpoints=$eps" >>"$(proxy_log "$i")"
	bg_start "$(ns_host "$i")" "$(proxy_log "$i")" "grpc-proxy h$i" \
		etcd grpc-proxy start --endpoints="$eps" --listen-addr="127.0.0.1:$TW_PROXY_PORT" \
		--advertise-client-url="127.0.0.1:$TW_PROXY_PORT" --data-dir "$TW_DIR/h$i/proxy"
	TW_PROXY_PID[$i]=$TW_BG_PID
	if ! wait_for --timeout 15 _proxy_ready "$i"; then
		show_log "$(proxy_log "$i")" 20
		fail "grpc-proxy on h$i does not serve after 15 s"
	fi
	log "h$i: grpc-proxy on 127.0.0.1:$TW_PROXY_PORT -> $eps (pid ${TW_PROXY_PID[$i]}, ${TW_WAITED_MS} ms)"
}

# stop_grpc_proxy I [SIGNAL]: stop host I's proxy (default SIGTERM).
stop_grpc_proxy() {
	local i=$1 pid=${TW_PROXY_PID[$1]:-}
	[ -n "$pid" ] || return 0
	stop_pid "$pid" 5 "${2:-TERM}"
	unset "TW_PROXY_PID[$i]"
	echo "=== $(date '+%F %T.%3N') stopped with SIG${2:-TERM}" >>"$(proxy_log "$i")"
}

# start_twilld_proxy I [ARGS...]: twilld in host I, talking only to its own proxy.
start_twilld_proxy() {
	local i=$1
	shift
	TW_ETCD_URL=$TW_PROXY_URL start_twilld "$i" "$@"
}

# twillctl_run I ARGS...: twillctl inside host I against the members directly.
twillctl_run() {
	local i=$1
	shift
	ip netns exec "$(ns_host "$i")" "$TWILLCTL" --etcd-endpoints "$(members_csv http)" "$@"
}

# twilld_pid_alive I: twilld I still runs (the predicate; lib_faults' twilld_alive fails).
twilld_pid_alive() {
	local pid=${TW_TWILLD_PID[$1]:-}
	[ -n "$pid" ] && _tw_alive "$pid"
}

# own_lease_programmed_on I J: host I's kernel has the route to host J's subnet.
route_to_host() {
	local sub
	sub=$(host_subnet "$2") || return 1
	ip -n "$(ns_host "$1")" -4 route show "$sub" | grep -q .
}

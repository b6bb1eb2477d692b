# shellcheck shell=bash
# Helpers for twill's integration tests and the demo. Source it; do not run it.
#
# Everything happens inside network namespaces created here, named with a per-run prefix
# ($TW_PREFIX, e.g. "tw4711kqz"): an underlay "switch" namespace with a bridge, N host
# namespaces (192.0.2.(10+i)/24 on eth0), an optional etcd namespace (192.0.2.100), and
# container namespaces per host on a bridge "twbr0" (overlay 198.18.0.0/16). Every process
# started here is recorded by PID; `cleanup` (trap on EXIT/INT/TERM) stops them (SIGTERM,
# deadline, SIGKILL) and deletes every namespace. Nothing touches the root namespace.
#
# Naming: switch "${TW_PREFIX}sw", etcd "${TW_PREFIX}e", host i "${TW_PREFIX}h<i>",
# container j of host i "${TW_PREFIX}h<i>c<j>". State (logs, subnet files, etcd data) lives in
# $TW_DIR (removed on success, kept and printed on failure).

if [ -n "${TW_LIB_LOADED:-}" ]; then
	return 0
fi
TW_LIB_LOADED=1

set -o pipefail

TWILL_SOURCE_DIR=${TWILL_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
if [ -z "${TWILL_BUILD_DIR:-}" ]; then
	for _d in "$TWILL_SOURCE_DIR/build-integ" "$TWILL_SOURCE_DIR/build"; do
		if [ -x "$_d/twilld" ]; then
			TWILL_BUILD_DIR=$_d
			break
		fi
	done
	TWILL_BUILD_DIR=${TWILL_BUILD_DIR:-$TWILL_SOURCE_DIR/build-integ}
	unset _d
fi
TWILLD=${TWILLD:-$TWILL_BUILD_DIR/twilld}
TWILLCTL=${TWILLCTL:-$TWILL_BUILD_DIR/twillctl}
export ETCDCTL_API=3

# Fixed addresses of the test world (NETWORK SAFETY: nothing outside these ranges).
TW_UNDERLAY_NET=192.0.2
TW_ETCD_IP=192.0.2.100
TW_ETCD_URL=http://$TW_ETCD_IP:2379
TW_ETCD_PREFIX=${TW_ETCD_PREFIX:-/coreos.com/network}
TW_OVERLAY=198.18.0.0/16
TW_VXLAN_DEV=flannel.1
TW_BRIDGE=twbr0

_tw_rand3() {
	local l=abcdefghijklmnopqrstuvwxyz
	printf '%s%s%s' "${l:RANDOM%26:1}" "${l:RANDOM%26:1}" "${l:RANDOM%26:1}"
}

TW_PREFIX=${TW_PREFIX:-tw$$$(_tw_rand3)}
TW_DIR=${TW_DIR:-${TMPDIR:-/tmp}/twill-$TW_PREFIX}
TW_KEEP=${TW_KEEP:-0}      # 1: cleanup leaves everything in place (demo --keep)
TW_QUIET=${TW_QUIET:-0}    # 1: log() prints nothing
TW_NHOSTS=0
TW_HAVE_ETCD=0
TW_CLEANED=0
TW_T0=$EPOCHREALTIME
declare -gA TW_PROCS=()     # pid -> description
declare -gA TW_TWILLD_PID=() # host index -> pid
declare -gA TW_SUBNET_FILE_ID=() # host index -> subnet file identity when twilld was started
TW_NETNS=()                # namespaces we created, in creation order
TW_LOGS=()                 # log files to show on failure

mkdir -p "$TW_DIR"
mkdir -p "$TW_DIR/logs"

# ---------------------------------------------------------------------------------------------
# Output and failure

_tw_elapsed() {
	local now=${EPOCHREALTIME/./} t0=${TW_T0/./}
	local ms=$(((now - t0) / 1000))
	printf '%d.%03d' $((ms / 1000)) $((ms % 1000))
}

# log MSG...: a timestamped progress line on stdout.
log() {
	[ "$TW_QUIET" = 1 ] && return 0
	printf '[%8s] %s\n' "$(_tw_elapsed)" "$*"
}

# fail MSG...: print a clear failure and exit 1 (cleanup runs from the EXIT trap).
fail() {
	printf '[%8s] FAIL: %s\n' "$(_tw_elapsed)" "$*" >&2
	exit 1
}

# now_ms: milliseconds since the epoch (no fork).
now_ms() {
	local t=${EPOCHREALTIME/./}
	echo $((t / 1000))
}

# show_log FILE [LINES]: print the tail of a log file, framed.
show_log() {
	local f=$1 n=${2:-40}
	[ -f "$f" ] || return 0
	echo "----- last $n lines of $f -----" >&2
	tail -n "$n" "$f" >&2
	echo "----- end of $f -----" >&2
}

# ---------------------------------------------------------------------------------------------
# Processes

# _tw_alive PID: true while PID exists and is not a zombie.
_tw_alive() {
	local line state
	[ -r "/proc/$1/stat" ] || return 1
	read -r line <"/proc/$1/stat" 2>/dev/null || return 1
	state=${line##*) }
	state=${state%% *}
	[ "$state" != Z ] && [ "$state" != X ]
}

# stop_pid PID [TIMEOUT_S] [SIGNAL]: send SIGNAL (default TERM), wait up to TIMEOUT_S
# (default 5) for exit, then SIGKILL. Reaps it when it is our child; forgets it.
stop_pid() {
	local pid=$1 timeout=${2:-5} sig=${3:-TERM}
	local deadline=$(($(now_ms) + timeout * 1000))
	if _tw_alive "$pid"; then
		kill -s "$sig" "$pid" 2>/dev/null || true
		while _tw_alive "$pid" && [ "$(now_ms)" -lt $deadline ]; do
			sleep 0.05
		done
		if _tw_alive "$pid"; then
			echo "lib.sh: pid $pid (${TW_PROCS[$pid]:-?}) ignored SIG$sig for ${timeout}s, sending SIGKILL" >&2
			kill -KILL "$pid" 2>/dev/null || true
		fi
	fi
	TW_LAST_RC=0
	wait "$pid" 2>/dev/null || TW_LAST_RC=$?
	unset "TW_PROCS[$pid]"
	return 0
}

# bg_start NS LOGFILE DESC CMD...: run CMD inside namespace NS in the background, stdout and
# stderr appended to LOGFILE; records the PID (in TW_BG_PID and for cleanup).
bg_start() {
	local ns=$1 logf=$2 desc=$3
	shift 3
	ip netns exec "$ns" "$@" </dev/null >>"$logf" 2>&1 &
	TW_BG_PID=$!
	TW_PROCS[$TW_BG_PID]=$desc
	TW_LOGS+=("$logf")
}

# ---------------------------------------------------------------------------------------------
# Cleanup

# _tw_kill_ns_pids NS: stop every process still inside NS (by PID, found with `ip netns pids`).
_tw_kill_ns_pids() {
	local ns=$1 pid pids
	pids=$(ip netns pids "$ns" 2>/dev/null) || return 0
	for pid in $pids; do
		[ "$pid" = "$$" ] && continue
		stop_pid "$pid" 2
	done
}

# cleanup [RC]: idempotent teardown (registered on EXIT/INT/TERM). With TW_KEEP=1 it only
# prints how to enter and tear down later.
cleanup() {
	local rc=${1:-0} pid ns f i
	[ "$TW_CLEANED" = 1 ] && return 0
	TW_CLEANED=1
	trap - ERR
	set +e
	if [ "$rc" != 0 ]; then
		local seen=" "
		for f in "${TW_LOGS[@]}"; do
			case "$seen" in *" $f "*) continue ;; esac
			seen="$seen$f "
			show_log "$f" 30
		done
	fi
	if [ "$TW_KEEP" = 1 ]; then
		[ "$rc" = 0 ] || echo "${TW_KEEP_HINT:-lib.sh: kept everything of $TW_PREFIX (TW_KEEP=1)}" >&2
		return 0
	fi
	for pid in "${!TW_PROCS[@]}"; do
		kill -TERM "$pid" 2>/dev/null
	done
	for pid in "${!TW_PROCS[@]}"; do
		stop_pid "$pid" 5
	done
	for ((i = ${#TW_NETNS[@]} - 1; i >= 0; i--)); do
		_tw_kill_ns_pids "${TW_NETNS[i]}"
	done
	for ((i = ${#TW_NETNS[@]} - 1; i >= 0; i--)); do
		ns=${TW_NETNS[i]}
		if [ -e "/run/netns/$ns" ]; then
			ip netns del "$ns" 2>/dev/null || echo "lib.sh: could not delete netns $ns" >&2
		fi
		[ -d "/etc/netns/$ns" ] && rm -rf "/etc/netns/${ns:?}"
	done
	TW_NETNS=()
	# Kept only after a failure; an interrupt (130/143) is not one.
	if [ "$rc" = 0 ] || [ "$rc" = 130 ] || [ "$rc" = 143 ]; then
		rm -rf "$TW_DIR"
	else
		echo "lib.sh: state kept in $TW_DIR" >&2
	fi
}

trap 'cleanup $?' EXIT
trap 'cleanup 130; exit 130' INT
trap 'cleanup 143; exit 143' TERM
# Under set -e, say where the script stopped.
trap '_tw_rc=$?; [[ $- == *e* ]] && printf "[%8s] FAIL: command failed (rc=%s) at %s:%s: %s\n" "$(_tw_elapsed)" "$_tw_rc" "${BASH_SOURCE[0]##*/}" "$LINENO" "$BASH_COMMAND" >&2' ERR

# teardown_prefix PREFIX: remove what an earlier run with --keep left behind: every process in
# a namespace named PREFIX* (by PID), the namespaces, and the state directory.
teardown_prefix() {
	local p=$1 ns n=0
	case "$p" in tw[0-9]*[a-z]) ;; *)
		echo "teardown: '$p' does not look like a twill prefix (tw<digits><letters>)" >&2
		return 1
		;;
	esac
	for ns in $(ip netns list | awk '{print $1}'); do
		case "$ns" in "$p"[a-z]*) ;; *) continue ;; esac
		_tw_kill_ns_pids "$ns"
	done
	for ns in $(ip netns list | awk '{print $1}'); do
		case "$ns" in "$p"[a-z]*) ;; *) continue ;; esac
		ip netns del "$ns" && n=$((n + 1))
	done
	rm -rf "${TMPDIR:-/tmp}/twill-$p"
	echo "teardown: removed $n namespaces of $p"
}

# ---------------------------------------------------------------------------------------------
# Waiting

# wait_for [--timeout SEC] [--interval SEC] CMD...: run CMD until it succeeds; false after the
# deadline (default 5 s). TW_WAITED_MS holds the time it took.
wait_for() {
	local timeout=5 interval=0.05
	while [ $# -gt 0 ]; do
		case "$1" in
		--timeout) timeout=$2; shift 2 ;;
		--interval) interval=$2; shift 2 ;;
		--) shift; break ;;
		*) break ;;
		esac
	done
	# The trailing "--timeout SEC" form of the brief is accepted too.
	if [ $# -ge 2 ] && [ "${*: -2:1}" = --timeout ]; then
		timeout=${*: -1}
		set -- "${@:1:$(($# - 2))}"
	fi
	local start deadline
	start=$(now_ms)
	deadline=$((start + ${timeout%.*} * 1000))
	case "$timeout" in *.*)
		local frac=${timeout#*.}000
		deadline=$((deadline + 10#${frac:0:3}))
		;;
	esac
	while :; do
		if "$@"; then
			TW_WAITED_MS=$(($(now_ms) - start))
			return 0
		fi
		if [ "$(now_ms)" -ge $deadline ]; then
			TW_WAITED_MS=$(($(now_ms) - start))
			return 1
		fi
		sleep "$interval"
	done
}

# ---------------------------------------------------------------------------------------------
# Topology

# ns_host I / ns_cont I J / ns_switch / ns_etcd: namespace names.
ns_host() { echo "${TW_PREFIX}h$1"; }
ns_cont() { echo "${TW_PREFIX}h$1c$2"; }
ns_switch() { echo "${TW_PREFIX}sw"; }
ns_etcd() { echo "${TW_PREFIX}e"; }
# host_ip I: underlay address of host I.
host_ip() { echo "${TW_HOST_IP[$1]:-$TW_UNDERLAY_NET.$((10 + $1))}"; }
declare -gA TW_HOST_IP=() # hosts on the routed segment (198.51.100.0/24)

# netns_etc NS FILE LINES...: the /etc/FILE (resolv.conf, hosts) that `ip netns exec NS` shows
# its processes (/etc/netns/NS/FILE, bind-mounted by ip over /etc/FILE; removed with NS).
netns_etc() {
	local ns=$1 f=$2
	shift 2
	mkdir -p "/etc/netns/$ns" || fail "cannot create /etc/netns/$ns"
	printf '%s\n' "$@" >"/etc/netns/$ns/$f" || fail "cannot write /etc/netns/$ns/$f"
}

# netns_add NAME: create a namespace (recorded for cleanup) with lo up.
netns_add() {
	TW_NETNS+=("$1")
	ip netns add "$1" || fail "ip netns add $1"
	ip -n "$1" link set lo up || fail "lo up in $1"
}

# _tw_attach NS IP PORT [SWITCH_NS]: a veth from the switch bridge to eth0 in NS, with IP/24.
_tw_attach() {
	local ns=$1 ip=$2 port=$3 sw=${4:-$(ns_switch)}
	ip -n "$sw" link add "$port" type veth peer name eth0 netns "$ns" || fail "veth $port -> $ns"
	ip -n "$sw" link set "$port" master br0 up || fail "attach $port"
	ip -n "$ns" addr add "$ip/24" dev eth0 || fail "address $ip in $ns"
	ip -n "$ns" link set eth0 up || fail "eth0 up in $ns"
}

# add_host I [routed]: one more host namespace on the switch (192.0.2.(10+I)/24 on eth0,
# forwarding on); with "routed", on the second segment behind the router instead
# (198.51.100.(10+I)/24, see add_routed_segment).
add_host() {
	local i=$1 ns
	ns=$(ns_host "$i")
	netns_add "$ns"
	if [ "${2:-}" = routed ]; then
		TW_HOST_IP[$i]=198.51.100.$((10 + i))
		_tw_attach "$ns" "$(host_ip "$i")" "h$i" "${TW_PREFIX}sw2"
		ip -n "$ns" route add 192.0.2.0/24 via 198.51.100.1 || fail "route to segment 1 in $ns"
	else
		_tw_attach "$ns" "$(host_ip "$i")" "h$i"
		if [ -e "/run/netns/${TW_PREFIX}r" ]; then
			ip -n "$ns" route add 198.51.100.0/24 via 192.0.2.1 || fail "route to segment 2 in $ns"
		fi
	fi
	ip netns exec "$ns" sysctl -q -w net.ipv4.ip_forward=1 >/dev/null || fail "ip_forward in $ns"
	mkdir -p "$TW_DIR/h$i"
	[ "$i" -gt "$TW_NHOSTS" ] && TW_NHOSTS=$i
	return 0
}

# make_topology N [etcd]: the switch, hosts 1..N and, with "etcd", the etcd namespace. Hosts
# listed in TW_ROUTED_HOSTS (e.g. "3") go on a second segment behind a router instead.
TW_ROUTED_HOSTS=${TW_ROUTED_HOSTS:-}
make_topology() {
	local n=$1 with_etcd=${2:-} i sw
	sw=$(ns_switch)
	netns_add "$sw"
	ip -n "$sw" link add br0 type bridge || fail "bridge in $sw"
	ip -n "$sw" link set br0 up || fail "br0 up"
	for ((i = 1; i <= n; i++)); do
		case " $TW_ROUTED_HOSTS " in *" $i "*) continue ;; esac
		add_host "$i"
	done
	if [ "$with_etcd" = etcd ]; then
		netns_add "$(ns_etcd)"
		_tw_attach "$(ns_etcd)" "$TW_ETCD_IP" etcd
		TW_HAVE_ETCD=1
	fi
	if [ -n "$TW_ROUTED_HOSTS" ]; then
		add_routed_segment
		for i in $TW_ROUTED_HOSTS; do
			add_host "$i" routed
		done
	fi
	log "topology $TW_PREFIX: switch, $n hosts${TW_ROUTED_HOSTS:+ (h${TW_ROUTED_HOSTS// /,h} routed)}${with_etcd:+, etcd} (state in $TW_DIR)"
}

# add_routed_segment: a second underlay segment 198.51.100.0/24 (switch "${TW_PREFIX}sw2")
# behind a router namespace "${TW_PREFIX}r" (192.0.2.1 / 198.51.100.1); every namespace on the
# first segment gets a route to it. Add hosts to it with `add_host I routed`.
add_routed_segment() {
	local r=${TW_PREFIX}r sw2=${TW_PREFIX}sw2 ns i
	netns_add "$sw2"
	ip -n "$sw2" link add br0 type bridge || fail "bridge in $sw2"
	ip -n "$sw2" link set br0 up || fail "br0 up in $sw2"
	netns_add "$r"
	_tw_attach "$r" 192.0.2.1 router
	ip -n "$sw2" link add router type veth peer name eth1 netns "$r" || fail "router eth1"
	ip -n "$sw2" link set router master br0 up || fail "router port on $sw2"
	ip -n "$r" addr add 198.51.100.1/24 dev eth1 || fail "router address"
	ip -n "$r" link set eth1 up || fail "router eth1 up"
	ip netns exec "$r" sysctl -q -w net.ipv4.ip_forward=1 >/dev/null || fail "ip_forward in $r"
	for ((i = 1; i <= TW_NHOSTS; i++)); do
		ns=$(ns_host "$i")
		[ -e "/run/netns/$ns" ] && [ -z "${TW_HOST_IP[$i]:-}" ] || continue
		ip -n "$ns" route add 198.51.100.0/24 via 192.0.2.1 || fail "route to segment 2 in $ns"
	done
	if [ "$TW_HAVE_ETCD" = 1 ]; then
		ip -n "$(ns_etcd)" route add 198.51.100.0/24 via 192.0.2.1 || fail "route to segment 2 in etcd"
	fi
	log "routed segment 198.51.100.0/24 behind $r"
}

# ---------------------------------------------------------------------------------------------
# etcd

# etcdctl_run ARGS...: etcdctl against the test etcd, run inside the etcd namespace.
etcdctl_run() {
	ip netns exec "$(ns_etcd)" etcdctl --endpoints http://127.0.0.1:2379 --dial-timeout 2s \
		--command-timeout 5s "$@"
}

_tw_etcd_healthy() {
	local ns out
	if [ "$TW_NHOSTS" -ge 1 ]; then ns=$(ns_host 1); else ns=$(ns_etcd); fi
	out=$(ip netns exec "$ns" curl -s -m 1 "$TW_ETCD_URL/health" 2>/dev/null) || return 1
	case "$out" in *'"health":"true"'*) return 0 ;; esac
	return 1
}

# start_etcd: etcd in the etcd namespace on $TW_ETCD_URL (and 127.0.0.1:2379 there); waits
# until /health answers true from host 1 (or the etcd namespace), up to 15 s.
start_etcd() {
	local ns data
	ns=$(ns_etcd)
	data=$(mktemp -d "$TW_DIR/etcd.XXXXXX")
	bg_start "$ns" "$TW_DIR/logs/etcd.log" etcd \
		etcd --name "$TW_PREFIX" --data-dir "$data" \
		--listen-client-urls "$TW_ETCD_URL,http://127.0.0.1:2379" \
		--advertise-client-urls "$TW_ETCD_URL" \
		--listen-peer-urls http://127.0.0.1:2380 \
		--initial-advertise-peer-urls http://127.0.0.1:2380 \
		--initial-cluster "$TW_PREFIX=http://127.0.0.1:2380" \
		--initial-cluster-token "$TW_PREFIX" --initial-cluster-state new \
		--logger zap --log-level warn
	TW_ETCD_PID=$TW_BG_PID
	if ! wait_for --timeout 15 _tw_etcd_healthy; then
		_tw_alive "$TW_ETCD_PID" || echo "etcd exited" >&2
		fail "etcd not healthy at $TW_ETCD_URL after 15 s"
	fi
	log "etcd up at $TW_ETCD_URL (pid $TW_ETCD_PID, ${TW_WAITED_MS} ms)"
}

# net_config_json BACKEND [EXTRA_BACKEND_JSON]: the test network config (198.18.0.0/16, /24).
net_config_json() {
	local backend=$1 extra=${2:-}
	printf '{"Network":"%s","SubnetLen":24,"Backend":{"Type":"%s"%s}}' \
		"$TW_OVERLAY" "$backend" "${extra:+,$extra}"
}

# put_net_config JSON: write the network config with etcdctl.
put_net_config() {
	etcdctl_run put "$TW_ETCD_PREFIX/config" "$1" >/dev/null || fail "etcdctl put config"
	log "network config: $1"
}

# leases: one line per lease in etcd: SUBNET NETADDR PUBLICIP BACKENDTYPE VTEPMAC
# (BackendType "udp" when absent, as flannel writes; VtepMAC "-" when absent).
leases() {
	etcdctl_run get --prefix "$TW_ETCD_PREFIX/subnets/" -w json |
		jq -r '(.kvs // [])[] | (.key | @base64d | split("/") | last | split("&")[0]) as $k
			| (.value | @base64d | fromjson) as $v
			| [($k | sub("-"; "/")), ($k | split("-")[0]), ($v.PublicIP // "-"),
			   ($v.BackendType // "udp"), ($v.BackendData.VtepMAC // "-")] | @tsv' |
		LC_ALL=C sort
}

# lease_count: number of leases in etcd.
lease_count() {
	leases | wc -l
}

# lease_key SUBNET: the etcd key of SUBNET (a.b.c.d/len).
lease_key() {
	echo "$TW_ETCD_PREFIX/subnets/${1/\//-}"
}

# ---------------------------------------------------------------------------------------------
# twilld

# subnet_file I / twilld_log I: paths for host I.
subnet_file() { echo "$TW_DIR/h$1/subnet.env"; }
twilld_log() { echo "$TW_DIR/logs/twilld-h$1.log"; }

# subnet_var I VAR: a variable from host I's subnet file (empty when absent).
subnet_var() {
	local f line
	f=$(subnet_file "$1")
	[ -r "$f" ] || return 1
	while IFS= read -r line; do
		case "$line" in "$2="*) echo "${line#*=}"; return 0 ;; esac
	done <"$f"
	return 1
}

# host_subnet I: host I's lease as network/len (from FLANNEL_SUBNET), e.g. 198.18.7.0/24.
host_subnet() {
	local s
	s=$(subnet_var "$1" FLANNEL_SUBNET) || return 1
	echo "$(ip_net "${s%/*}" "${s#*/}")/${s#*/}"
}

_tw_file_id() {
	stat -c '%i.%Y.%Z' "$1" 2>/dev/null || echo none
}

# start_twilld I [ARGS...]: twilld in host I (flannel-compatible flags plus ARGS), log to
# twilld_log I, PID in TW_TWILLD_PID[I]. Does not wait: see wait_twilld_ready.
start_twilld() {
	local i=$1 ns logf
	shift
	ns=$(ns_host "$i")
	logf=$(twilld_log "$i")
	[ -x "$TWILLD" ] || fail "no twilld at $TWILLD (build first, or set TWILL_BUILD_DIR)"
	TW_SUBNET_FILE_ID[$i]=$(_tw_file_id "$(subnet_file "$i")")
	echo "=== $(date '+%F %T.%3N') start: $TWILLD --etcd-endpoints=$TW_ETCD_URL --iface=eth0 --subnet-file=$(subnet_file "$i") -v=2 $*" >>"$logf"
	bg_start "$ns" "$logf" "twilld h$i" "$TWILLD" --etcd-endpoints="$TW_ETCD_URL" --iface=eth0 \
		--subnet-file="$(subnet_file "$i")" -v=2 "$@"
	TW_TWILLD_PID[$i]=$TW_BG_PID
}

# twilld_ready I: true once twilld I (re)wrote its subnet file since it was started; fails the
# test at once (log tail) if the process died.
twilld_ready() {
	local i=$1 pid=${TW_TWILLD_PID[$1]:-}
	if [ -z "$pid" ] || ! _tw_alive "$pid"; then
		stop_pid "${pid:-0}" 0
		show_log "$(twilld_log "$i")" 40
		fail "twilld on h$i exited (rc=${TW_LAST_RC:-?}) before it was ready"
	fi
	local f
	f=$(subnet_file "$i")
	[ -s "$f" ] && [ "$(_tw_file_id "$f")" != "${TW_SUBNET_FILE_ID[$i]:-none}" ]
}

# wait_twilld_ready I [TIMEOUT]: wait (default 10 s) until twilld I is ready.
wait_twilld_ready() {
	local i=$1 timeout=${2:-10}
	if ! wait_for --timeout "$timeout" twilld_ready "$i"; then
		show_log "$(twilld_log "$i")" 40
		fail "twilld on h$i did not write $(subnet_file "$i") within ${timeout}s"
	fi
	log "twilld h$i ready in ${TW_WAITED_MS} ms: $(subnet_var "$i" FLANNEL_SUBNET) mtu $(subnet_var "$i" FLANNEL_MTU)"
}

# stop_twilld I [SIGNAL]: stop twilld I (default SIGTERM, 5 s deadline); TW_LAST_RC = its status.
stop_twilld() {
	local i=$1 sig=${2:-TERM} pid=${TW_TWILLD_PID[$1]:-}
	[ -n "$pid" ] || return 0
	stop_pid "$pid" 5 "$sig"
	unset "TW_TWILLD_PID[$i]"
	echo "=== $(date '+%F %T.%3N') stopped with SIG$sig: rc=$TW_LAST_RC" >>"$(twilld_log "$i")"
}

# ---------------------------------------------------------------------------------------------
# Address arithmetic

ip2int() {
	local a b c d
	IFS=. read -r a b c d <<<"$1"
	echo $(((a << 24) | (b << 16) | (c << 8) | d))
}
int2ip() {
	local n=$1
	echo "$(((n >> 24) & 255)).$(((n >> 16) & 255)).$(((n >> 8) & 255)).$((n & 255))"
}
# ip_net IP LEN: the network address of IP/LEN.
ip_net() {
	local n mask
	n=$(ip2int "$1")
	mask=$(((0xffffffff << (32 - $2)) & 0xffffffff))
	int2ip $((n & mask))
}

# ---------------------------------------------------------------------------------------------
# Containers

# setup_containers I [N]: bridge twbr0 in host I with FLANNEL_SUBNET's address and FLANNEL_MTU
# (as Docker's --bip/--mtu would), and N (default 2) container namespaces on it with the next
# addresses of the subnet (.2, .3, ...) and a default route via the bridge.
setup_containers() {
	local i=$1 n=${2:-2} h sub mtu addr len base j c cip
	h=$(ns_host "$i")
	sub=$(subnet_var "$i" FLANNEL_SUBNET) || fail "no FLANNEL_SUBNET for h$i"
	mtu=$(subnet_var "$i" FLANNEL_MTU) || fail "no FLANNEL_MTU for h$i"
	addr=${sub%/*}
	len=${sub#*/}
	base=$(ip2int "$addr")
	ip -n "$h" link add "$TW_BRIDGE" type bridge || fail "bridge $TW_BRIDGE in $h"
	ip -n "$h" addr add "$sub" dev "$TW_BRIDGE" || fail "bridge address $sub in $h"
	ip -n "$h" link set "$TW_BRIDGE" mtu "$mtu" up || fail "bridge up in $h"
	for ((j = 1; j <= n; j++)); do
		c=$(ns_cont "$i" "$j")
		cip=$(int2ip $((base + j)))
		netns_add "$c"
		ip -n "$h" link add "c$j" type veth peer name eth0 netns "$c" || fail "veth c$j in $h"
		ip -n "$h" link set "c$j" master "$TW_BRIDGE" mtu "$mtu" up || fail "c$j up in $h"
		ip -n "$c" link set eth0 mtu "$mtu" up || fail "eth0 up in $c"
		ip -n "$c" addr add "$cip/$len" dev eth0 || fail "address $cip in $c"
		ip -n "$c" route add default via "$addr" || fail "default route in $c"
	done
	log "h$i: $TW_BRIDGE $sub mtu $mtu, $n containers"
}

# cont_ip I J: address of container J on host I (from host I's subnet file).
cont_ip() {
	local sub
	sub=$(subnet_var "$1" FLANNEL_SUBNET) || return 1
	int2ip $(($(ip2int "${sub%/*}") + $2))
}

# ping_ok SRC_NS DST [TRIES_S]: one echo reply from DST within TRIES_S (default 2) seconds.
ping_ok() {
	ip netns exec "$1" ping -n -q -c 1 -i 0.2 -w "${3:-2}" "$2" >/dev/null 2>&1
}

# ping_all_pairs NCONT HOST...: ping between every pair of containers (1..NCONT) on different
# hosts among HOST... (one direction per unordered pair). Fails naming every failed pair.
ping_all_pairs() {
	local nc=$1 a b x y n=0 bad=() hosts
	shift
	hosts=("$@")
	for ((a = 0; a < ${#hosts[@]}; a++)); do
		for ((b = a + 1; b < ${#hosts[@]}; b++)); do
			for ((x = 1; x <= nc; x++)); do
				for ((y = 1; y <= nc; y++)); do
					local ha=${hosts[a]} hb=${hosts[b]}
					n=$((n + 1))
					if ! ping_ok "$(ns_cont "$ha" "$x")" "$(cont_ip "$hb" "$y")"; then
						bad+=("h${ha}c$x($(cont_ip "$ha" "$x"))->h${hb}c$y($(cont_ip "$hb" "$y"))")
					fi
				done
			done
		done
	done
	if [ ${#bad[@]} -gt 0 ]; then
		dump_state_all
		fail "ping failed for ${#bad[@]} of $n cross-host container pairs: ${bad[*]}"
	fi
	local hs="${hosts[*]}"
	log "ping ok between all $n cross-host container pairs of h${hs// /,h}"
}

# ping_start SRC_NS DST NAME: a continuous ping (every 50 ms) in the background; its output in
# $TW_DIR/logs/ping-NAME.log, its PID in TW_PING_PID[NAME].
declare -gA TW_PING_PID=()
ping_start() {
	local logf=$TW_DIR/logs/ping-$3.log
	: >"$logf"
	bg_start "$1" "$logf" "ping $3" ping -n -i 0.05 -W 1 "$2"
	TW_PING_PID[$3]=$TW_BG_PID
}

# ping_replies NAME: echo replies received so far by ping NAME.
ping_replies() {
	grep -c 'bytes from .*icmp_seq=' "$TW_DIR/logs/ping-$1.log" || true
}

# _tw_ping_has N NAME: at least N replies.
_tw_ping_has() {
	[ "$(ping_replies "$2")" -ge "$1" ]
}

# ping_wait_replies NAME N [TIMEOUT]: wait until ping NAME got N more replies than now.
ping_wait_replies() {
	local want=$(($(ping_replies "$1") + $2))
	wait_for --timeout "${3:-5}" _tw_ping_has "$want" "$1" ||
		fail "ping $1: fewer than $want replies after ${3:-5}s"
}

# ping_stop_lossless NAME: stop ping NAME (SIGINT) and fail unless every echo request got its
# reply (the one in flight when SIGINT arrived does not count).
ping_stop_lossless() {
	local logf=$TW_DIR/logs/ping-$1.log tx rx missing seq
	stop_pid "${TW_PING_PID[$1]}" 5 INT
	unset "TW_PING_PID[$1]"
	tx=$(sed -n 's/^\([0-9]*\) packets transmitted.*/\1/p' "$logf")
	rx=$(sed -n 's/.* \([0-9]*\) received.*/\1/p' "$logf")
	[ -n "$tx" ] && [ -n "$rx" ] || { show_log "$logf" 20; fail "ping $1: no statistics"; }
	missing=()
	for ((seq = 1; seq < tx; seq++)); do
		grep -q "bytes from .*icmp_seq=$seq " "$logf" || missing+=("$seq")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		show_log "$logf" 10
		fail "ping $1: ${#missing[@]} of $tx echo requests lost (icmp_seq ${missing[*]:0:20})"
	fi
	log "ping $1: $tx sent, $rx received, none lost"
}

# ---------------------------------------------------------------------------------------------
# Kernel state: readers, expectations and exact comparison

# _tw_json CMD...: CMD's JSON output, or [] when it fails or prints nothing.
_tw_json() {
	local o
	o=$("$@" 2>/dev/null) || o=
	printf '%s\n' "${o:-[]}"
}

# actual_state I: host I's kernel state in the format of expected_state, from one jq run:
# routes: overlay routes of the main table, "DST via GW dev DEV" (routes on the container
#         bridge left out; a route with a nexthop object resolved to its gateway and device);
# neigh:  IPv4 neighbours on flannel.1, "DST lladdr MAC STATE" (kernel-made INCOMPLETE/FAILED
#         entries left out);
# fdb:    fdb entries of flannel.1, "MAC dst DST STATE";
# orphan nexthops: nexthop objects that no route uses.
actual_state() {
	local ns
	ns=$(ns_host "$1")
	{
		_tw_json ip -n "$ns" -j -4 route show table main root "$TW_OVERLAY"
		_tw_json ip -n "$ns" -j -4 route show table all
		_tw_json ip -n "$ns" -j -4 nexthop show # IPv4 ones: lib_dualstack.sh reads the IPv6 half
		_tw_json ip -n "$ns" -j -4 neigh show dev "$TW_VXLAN_DEV"
		_tw_json bridge -n "$ns" -j fdb show dev "$TW_VXLAN_DEV"
	} | jq -s -r --arg br "$TW_BRIDGE" '
		.[0] as $routes | .[1] as $all | .[2] as $nhs | .[3] as $neigh | .[4] as $fdb
		| ($nhs | map({key: (.id | tostring), value: .}) | from_entries) as $nh
		| ([$all[] | .nhid // empty]) as $used
		| "routes:",
		  ([$routes[] | select(.dev != $br)
		    | (if .nhid != null and (.gateway == null or .dev == null)
		       then $nh[.nhid | tostring] // {} else . end) as $r
		    | "\(.dst | if test("/") then . else . + "/32" end) via \($r.gateway // "-") dev \($r.dev // "-")"]
		   | sort[]),
		  "neigh:",
		  ([$neigh[] | select(((.state // []) | index("INCOMPLETE") or index("FAILED")) | not)
		    | "\(.dst) lladdr \(.lladdr // "-") \((.state // []) | join(","))"] | sort[]),
		  "fdb:",
		  ([$fdb[] | "\(.mac) dst \(.dst // "-") \(.state // "-")"] | sort[]),
		  "orphan nexthops:",
		  ([$nhs[] | select(.id as $i | $used | index($i) | not)
		    | "nexthop id \(.id) via \(.gateway // "-") dev \(.dev // "-")"] | sort[])'
}

# TW_MODE: vxlan (default), vxlan-direct (DirectRouting: direct routes to hosts on the same
# /24 underlay segment, vxlan to the others) or host-gw.
TW_MODE=vxlan

# expected_state I [LEASES_FILE]: what host I's kernel must hold for the leases, in the
# format of the readers, as sections "routes:", "neigh:", "fdb:", "orphan nexthops:".
expected_state() {
	local i=$1 lf=${2:-} me sub net pip type mac
	me=$(host_ip "$i")
	local routes=() neigh=() fdb=()
	if [ -z "$lf" ]; then
		lf=$TW_DIR/leases.now
		leases >"$lf" || fail "cannot read leases from etcd"
	fi
	while IFS=$'\t' read -r sub net pip type mac; do
		[ -n "$sub" ] || continue
		[ "$pip" = "$me" ] && continue
		case "$TW_MODE" in
		vxlan)
			[ "$type" = vxlan ] || continue
			routes+=("$sub via $net dev $TW_VXLAN_DEV")
			neigh+=("$net lladdr $mac PERMANENT")
			fdb+=("$mac dst $pip permanent")
			;;
		vxlan-direct)
			[ "$type" = vxlan ] || continue
			if [ "${pip%.*}" = "${me%.*}" ]; then # same /24 segment: direct
				routes+=("$sub via $pip dev eth0")
			else
				routes+=("$sub via $net dev $TW_VXLAN_DEV")
				neigh+=("$net lladdr $mac PERMANENT")
				fdb+=("$mac dst $pip permanent")
			fi
			;;
		host-gw)
			[ "$type" = host-gw ] || continue
			routes+=("$sub via $pip dev eth0")
			;;
		esac
	done <"$lf"
	echo "routes:"
	[ ${#routes[@]} -gt 0 ] && printf '%s\n' "${routes[@]}" | LC_ALL=C sort
	echo "neigh:"
	[ ${#neigh[@]} -gt 0 ] && printf '%s\n' "${neigh[@]}" | LC_ALL=C sort
	echo "fdb:"
	[ ${#fdb[@]} -gt 0 ] && printf '%s\n' "${fdb[@]}" | LC_ALL=C sort
	echo "orphan nexthops:"
}

# state_ok LEASES_FILE HOST...: true when every HOST's kernel state equals the expectation
# for the leases in LEASES_FILE.
state_ok() {
	local lf=$1 i
	shift
	for i in "$@"; do
		expected_state "$i" "$lf" >"$TW_DIR/h$i/state.expected"
		actual_state "$i" >"$TW_DIR/h$i/state.actual"
		cmp -s "$TW_DIR/h$i/state.expected" "$TW_DIR/h$i/state.actual" || return 1
	done
}

_tw_state_ok_live() {
	leases >"$1" || return 1
	state_ok "$@"
}

# wait_state TIMEOUT HOST...: wait until each HOST's kernel state equals the expectation from
# the leases in etcd (re-read at every poll); on timeout, fail with a diff per host.
wait_state() {
	local timeout=$1 i bad=()
	shift
	local lf=$TW_DIR/leases.snap
	if wait_for --timeout "$timeout" _tw_state_ok_live "$lf" "$@"; then
		local hs="$*"
		log "kernel state of h${hs// /,h} matches the $(wc -l <"$lf") leases (${TW_WAITED_MS} ms)"
		return 0
	fi
	echo "leases in etcd (SUBNET NET PUBLICIP TYPE MAC):" >&2
	sed 's/^/    /' "$lf" >&2
	for i in "$@"; do
		expected_state "$i" "$lf" >"$TW_DIR/h$i/state.expected"
		actual_state "$i" >"$TW_DIR/h$i/state.actual"
		if ! cmp -s "$TW_DIR/h$i/state.expected" "$TW_DIR/h$i/state.actual"; then
			bad+=("h$i")
			echo "h$i ($(host_ip "$i")): kernel state differs (- expected, + actual):" >&2
			diff -u "$TW_DIR/h$i/state.expected" "$TW_DIR/h$i/state.actual" | tail -n +3 >&2
		fi
	done
	fail "kernel state of ${bad[*]} does not match the leases after ${timeout}s (mode $TW_MODE)"
}

# dump_state_all: print every host's leases and kernel state (for failure messages).
dump_state_all() {
	local i
	{
		echo "leases:"
		leases | sed 's/^/    /'
		for ((i = 1; i <= TW_NHOSTS; i++)); do
			echo "h$i ($(host_ip "$i")):"
			actual_state "$i" | sed 's/^/    /'
		done
	} >&2 2>/dev/null
}

# vxlan_device I: host I's flannel.1 in one line: "vxlan id ID local IP link DEV port PORT
# learning BOOL group G mtu MTU up|down addr A/LEN mac MAC" (empty when there is none).
vxlan_device() {
	_tw_json ip -n "$(ns_host "$1")" -j -d addr show "$TW_VXLAN_DEV" | jq -r '.[] |
		.linkinfo.info_data as $d |
		"\(.linkinfo.info_kind) id \($d.id) local \($d.local) link \($d.link) port \($d.port) learning \($d.learning) group \($d.group // $d.remote // "none") mtu \(.mtu) \(if (.flags | index("UP")) then "up" else "down" end) addr \([.addr_info[] | select(.family == "inet") | "\(.local)/\(.prefixlen)"] | join(",")) mac \(.address)"'
}

# assert_vxlan_device I [MTU]: flannel.1 on host I is what docs/compat.md §4 says (VNI 1, local =
# host address, dev eth0, port 8472, nolearning, no group, MTU (default 1450), up, address
# <own subnet network>/32) and its MAC is locally administered unicast and equals the VtepMAC
# of the host's lease.
assert_vxlan_device() {
	local i=$1 mtu=${2:-1450} sub got mac want lmac first
	sub=$(host_subnet "$i") || fail "h$i has no subnet file"
	got=$(vxlan_device "$i")
	mac=${got##* mac }
	want="vxlan id 1 local $(host_ip "$i") link eth0 port 8472 learning false group none mtu $mtu up addr ${sub%/*}/32 mac $mac"
	assert_eq "$got" "$want" "h$i $TW_VXLAN_DEV"
	first=$((16#${mac%%:*}))
	[ $((first & 3)) = 2 ] || fail "h$i $TW_VXLAN_DEV MAC $mac is not locally administered unicast"
	lmac=$(etcdctl_run get --print-value-only "$(lease_key "$sub")" | jq -r '.BackendData.VtepMAC')
	assert_eq "$lmac" "$mac" "h$i lease VtepMAC vs $TW_VXLAN_DEV MAC"
}

# assert_lease I TYPE: host I's lease in etcd has PublicIP = host address, BackendType TYPE
# (vxlan: BackendData.VNI 1; host-gw: no BackendData) and an etcd lease (TTL) attached.
assert_lease() {
	local i=$1 type=$2 sub v
	sub=$(host_subnet "$i") || fail "h$i has no subnet file"
	v=$(etcdctl_run get -w json "$(lease_key "$sub")" | jq -c '.kvs[0] // empty')
	[ -n "$v" ] || fail "h$i: no lease $(lease_key "$sub") in etcd"
	[ "$(jq -r '.lease // 0' <<<"$v")" != 0 ] || fail "h$i: lease $sub has no etcd lease (TTL) attached"
	v=$(jq -r '.value | @base64d' <<<"$v")
	assert_eq "$(jq -r '.PublicIP' <<<"$v")" "$(host_ip "$i")" "h$i lease PublicIP ($v)"
	assert_eq "$(jq -r '.BackendType' <<<"$v")" "$type" "h$i lease BackendType ($v)"
	case $type in
	vxlan) assert_eq "$(jq -r '.BackendData.VNI' <<<"$v")" 1 "h$i lease VNI ($v)" ;;
	host-gw) assert_eq "$(jq -r '.BackendData // "none"' <<<"$v")" none "h$i lease BackendData ($v)" ;;
	esac
}

# assert_subnet_file I MTU: FLANNEL_NETWORK, FLANNEL_SUBNET (.1 of a /24 inside the overlay,
# not the first subnet), FLANNEL_MTU and FLANNEL_IPMASQ, in flannel's order.
assert_subnet_file() {
	local i=$1 mtu=$2 f sub
	f=$(subnet_file "$i")
	sub=$(subnet_var "$i" FLANNEL_SUBNET) || fail "h$i: no FLANNEL_SUBNET in $f"
	case "$sub" in 198.18.*.1/24) ;; *) fail "h$i: FLANNEL_SUBNET=$sub not a .1/24 in $TW_OVERLAY" ;; esac
	[ "$sub" != 198.18.0.1/24 ] || fail "h$i: got the first subnet 198.18.0.0/24 (SubnetMin skips it)"
	assert_eq "$(cat "$f")" "$(printf 'FLANNEL_NETWORK=%s\nFLANNEL_SUBNET=%s\nFLANNEL_MTU=%s\nFLANNEL_IPMASQ=false' \
		"$TW_OVERLAY" "$sub" "$mtu")" "h$i subnet file"
}

# cluster_up NRUN NHOSTS CONFIG_JSON [TWILLD_ARGS...]: topology with NHOSTS hosts and etcd,
# the config, twilld on hosts 1..NRUN (ready), and 2 containers on each of them.
cluster_up() {
	local nrun=$1 nhosts=$2 cfg=$3 i
	shift 3
	make_topology "$nhosts" etcd
	start_etcd
	put_net_config "$cfg"
	for ((i = 1; i <= nrun; i++)); do
		start_twilld "$i" "$@"
	done
	for ((i = 1; i <= nrun; i++)); do
		wait_twilld_ready "$i" 15
	done
	assert_distinct_subnets $(seq 1 "$nrun")
	for ((i = 1; i <= nrun; i++)); do
		setup_containers "$i" 2
	done
}

# assert_distinct_subnets HOST...: no two of the hosts hold the same subnet.
assert_distinct_subnets() {
	local i all=()
	for i in "$@"; do
		all+=("$(host_subnet "$i")") || fail "h$i has no subnet file"
	done
	local dup
	dup=$(printf '%s\n' "${all[@]}" | sort | uniq -d)
	[ -z "$dup" ] || fail "two hosts of h$* hold the same subnet $dup (${all[*]})"
}

# restart_twilld I SIGNAL [ARGS...]: stop twilld I with SIGNAL, start it again, wait until ready.
restart_twilld() {
	local i=$1 sig=$2
	shift 2
	log "h$i: restarting twilld (SIG$sig)"
	stop_twilld "$i" "$sig"
	if [ "$sig" = TERM ] && [ "$TW_LAST_RC" != 0 ]; then
		show_log "$(twilld_log "$i")" 30
		fail "twilld h$i exited with status $TW_LAST_RC on SIGTERM (want 0)"
	fi
	start_twilld "$i" "$@"
	wait_twilld_ready "$i" 15
}

# finish_twilld_all: stop every running twilld with SIGTERM and fail unless each exits 0 and no
# log shows a sanitizer report or a crash (run it at the end of a test, before PASS).
finish_twilld_all() {
	local i f bad=()
	for i in "${!TW_TWILLD_PID[@]}"; do
		stop_twilld "$i"
		[ "$TW_LAST_RC" = 0 ] || bad+=("h$i exited $TW_LAST_RC on SIGTERM")
	done
	for ((i = 1; i <= TW_NHOSTS; i++)); do
		f=$(twilld_log "$i")
		[ -f "$f" ] || continue
		if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|Segmentation fault|Aborted|core dumped' "$f"; then
			bad+=("h$i log shows a sanitizer report or crash")
		fi
	done
	if [ ${#bad[@]} -gt 0 ]; then
		for ((i = 1; i <= TW_NHOSTS; i++)); do show_log "$(twilld_log "$i")" 60; done
		fail "${bad[*]}"
	fi
	log "every twilld exited 0 on SIGTERM, no sanitizer reports"
}

# ---------------------------------------------------------------------------------------------
# Assertions

# assert_eq ACTUAL EXPECTED WHAT
assert_eq() {
	[ "$1" = "$2" ] || fail "$3: expected '$2', got '$1'"
}

# assert_le ACTUAL MAX WHAT (integers)
assert_le() {
	[ "$1" -le "$2" ] || fail "$3: $1 > $2"
}

# assert_cmd WHAT CMD...: CMD must succeed.
assert_cmd() {
	local what=$1
	shift
	"$@" || fail "$what (command: $*)"
}

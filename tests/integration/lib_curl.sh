# shellcheck shell=bash
# libcurl is loaded by twilld at run time, for https:// endpoints only (docs/dependencies.md).
# Sourced after lib.sh.

# twilld_maps_libcurl I: true when twilld I has libcurl mapped; fails the test when TW_TWILLD_PID
# is not twilld itself (the maps of a wrapper would prove nothing).
twilld_maps_libcurl() {
	local pid=${TW_TWILLD_PID[$1]:-} exe
	exe=$(readlink "/proc/${pid:-0}/exe" 2>/dev/null) || fail "twilld h$1: no process"
	[ "${exe##*/}" = twilld ] || fail "twilld h$1: pid $pid runs $exe, not twilld"
	grep -q '/libcurl\.so' "/proc/$pid/maps"
}

# assert_libcurl I yes|no: twilld I has (yes) or has not (no) loaded libcurl.
assert_libcurl() {
	if twilld_maps_libcurl "$1"; then
		[ "$2" = yes ] || fail "twilld h$1 has libcurl mapped although every endpoint is http://"
	else
		[ "$2" = no ] || fail "twilld h$1 talks https:// but has no libcurl mapped"
	fi
	log "twilld h$1: libcurl mapped: $2"
}

# libcurl_path: the file the dynamic loader opens for libcurl.so.4.
libcurl_path() {
	local p
	p=$(ldconfig -p | awk '$1 == "libcurl.so.4" && /x86-64/ { print $NF; exit }')
	[ -n "$p" ] || fail "libcurl.so.4 not in the loader's cache (ldconfig -p)"
	readlink -f "$p"
}

# start_twilld_nocurl I ARGS...: twilld I in a private mount namespace where libcurl.so.4 is
# /dev/null (as if libcurl4 were not installed); the bind mount never leaves that namespace.
start_twilld_nocurl() {
	local i=$1 logf lib
	shift
	logf=$(twilld_log "$i")
	lib=$(libcurl_path)
	echo "=== $(date '+%F %T.%3N') start without libcurl: $TWILLD $*" >>"$logf"
	# shellcheck disable=SC2016 # expanded by the inner sh
	bg_start "$(ns_host "$i")" "$logf" "twilld h$i (no libcurl)" \
		unshare -m --propagation private sh -c 'mount --bind /dev/null "$0" && exec "$@"' "$lib" \
		"$TWILLD" --etcd-endpoints="$TW_ETCD_URL" --iface=eth0 --subnet-file="$(subnet_file "$i")" \
		-v=2 "$@"
	TW_TWILLD_PID[$i]=$TW_BG_PID
}

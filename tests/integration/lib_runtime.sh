# shellcheck shell=bash
# Helpers for tests and the demo that run real container runtimes (Docker, podman) and the CNI
# plugin inside the host namespaces of lib.sh. Source lib.sh first, then this file.
#
# Docker: one dockerd per host namespace, entered with `nsenter --net=/run/netns/NS` (not
# `ip netns exec`: that remounts /sys and hides the cgroup mounts dockerd needs). Everything
# dockerd keeps lives under $TW_DIR/h<i>/docker (data root, exec root, pid file, API socket), so
# nothing of the machine's own Docker is touched; its iptables calls run in the host namespace.
# Facts: docs/docker.md. rt_cleanup (run before lib.sh's cleanup, from the EXIT trap set here)
# removes the containers, stops dockerd and the containerd it spawned by PID, and unmounts what
# they left mounted.

if [ -n "${TW_LIB_RUNTIME_LOADED:-}" ]; then
	return 0
fi
TW_LIB_RUNTIME_LOADED=1

TW_DOCKER_IMAGE=twill-busybox
# dockerd makes /run/docker/plugins whatever its --exec-root: removed after, when this run made it
[ -e /run/docker ] && TW_HAD_RUN_DOCKER=1 || TW_HAD_RUN_DOCKER=0
declare -gA TW_DOCKERD_PID=() # host index -> dockerd pid
TW_RT_CLEANED=0

# docker_dir I: host I's Docker state directory.
docker_dir() { echo "$TW_DIR/h$1/docker"; }

# dockercli I ARGS...: the docker client against host I's dockerd.
dockercli() {
	local i=$1
	shift
	docker -H "unix://$(docker_dir "$i")/docker.sock" "$@"
}

# _rt_docker_up I: true once host I's dockerd answers; fails the test when it died.
_rt_docker_up() {
	local pid=${TW_DOCKERD_PID[$1]}
	_tw_alive "$pid" || { show_log "$TW_DIR/logs/dockerd-h$1.log" 40; fail "dockerd h$1 exited"; }
	dockercli "$1" version --format '{{.Server.Version}}' >/dev/null 2>&1
}

# start_dockerd I ARGS...: dockerd in host I with its own data root, exec root, pid file and
# socket (vfs storage, no userland proxy), plus ARGS; waits until it answers (30 s).
start_dockerd() {
	local i=$1 dd logf
	shift
	dd=$(docker_dir "$i")
	logf=$TW_DIR/logs/dockerd-h$i.log
	mkdir -p "$dd/data" "$dd/exec"
	[ -e "$dd/daemon.json" ] || echo '{}' >"$dd/daemon.json"
	echo "=== start: dockerd $*" >>"$logf"
	nsenter --net="/run/netns/$(ns_host "$i")" dockerd --data-root "$dd/data" \
		--exec-root "$dd/exec" --pidfile "$dd/docker.pid" -H "unix://$dd/docker.sock" \
		--config-file "$dd/daemon.json" --storage-driver vfs --userland-proxy=false \
		--log-level warn "$@" </dev/null >>"$logf" 2>&1 &
	TW_DOCKERD_PID[$i]=$!
	TW_PROCS[$!]="dockerd h$i"
	TW_LOGS+=("$logf")
	wait_for --timeout 30 --interval 0.2 _rt_docker_up "$i" ||
		{ show_log "$logf" 40; fail "dockerd h$i did not answer within 30 s"; }
	log "dockerd h$i up in ${TW_WAITED_MS} ms (pid ${TW_DOCKERD_PID[$i]})"
}

# stop_dockerd I: remove host I's containers, stop its dockerd (SIGTERM, 20 s) and the
# containerd it spawned, by PID; unmount what is left mounted under its state directory.
stop_dockerd() {
	local i=$1 pid=${TW_DOCKERD_PID[$1]:-} dd cpid ids m
	dd=$(docker_dir "$i")
	[ -n "$pid" ] || return 0
	if _tw_alive "$pid"; then
		ids=$(dockercli "$i" ps -aq 2>/dev/null) || ids=
		# shellcheck disable=SC2086
		[ -z "$ids" ] || dockercli "$i" rm -f $ids >/dev/null 2>&1 || true
	fi
	cpid=$(cat "$dd/exec/containerd/containerd.pid" 2>/dev/null) || cpid=
	stop_pid "$pid" 20
	unset "TW_DOCKERD_PID[$i]"
	if [ -n "$cpid" ] && _tw_alive "$cpid"; then
		case "$(cat "/proc/$cpid/comm" 2>/dev/null)" in containerd*) stop_pid "$cpid" 10 ;; esac
	fi
	# mounts left by a killed dockerd (netns files, shm, vfs layers), deepest first
	while read -r m; do
		umount -l "$m" 2>/dev/null || true
	done < <(awk -v d="$dd/" 'index($2, d) == 1 {print $2}' /proc/self/mounts | sort -r)
}

# rt_cleanup: stop every dockerd of this run (idempotent).
rt_cleanup() {
	local i
	[ "$TW_RT_CLEANED" = 1 ] && return 0
	TW_RT_CLEANED=1
	[ "$TW_KEEP" = 1 ] && return 0 # demo --keep: left running for --teardown
	for i in "${!TW_DOCKERD_PID[@]}"; do
		stop_dockerd "$i"
	done
	if [ "$TW_HAD_RUN_DOCKER" = 0 ]; then
		rmdir /run/docker/plugins /run/docker 2>/dev/null || true
	fi
	[ ${#TW_PODMAN_HOSTS[@]} -eq 0 ] || podman_cleanup
	return 0
}

trap '_rt_rc=$?; rt_cleanup; cleanup $_rt_rc' EXIT
trap 'rt_cleanup; cleanup 130; exit 130' INT
trap 'rt_cleanup; cleanup 143; exit 143' TERM

# busybox_rootfs DIR: a root file system of busybox-static and its applets, with a CGI script
# /www/cgi-bin/ip that prints the client address as the server sees it ($REMOTE_ADDR).
busybox_rootfs() {
	local d=$1 a
	mkdir -p "$d/bin" "$d/www/cgi-bin" "$d/tmp" "$d/etc"
	cp /bin/busybox "$d/bin/busybox" || fail "no /bin/busybox (install busybox-static)"
	for a in $(/bin/busybox --list); do
		[ "$a" = busybox ] || ln -sf busybox "$d/bin/$a"
	done
	printf '#!/bin/sh\nprintf "Content-Type: text/plain\\r\\n\\r\\n%%s\\n" "$REMOTE_ADDR"\n' \
		>"$d/www/cgi-bin/ip"
	chmod 755 "$d/www/cgi-bin/ip"
}

# docker_import_busybox I: import the busybox root file system as $TW_DOCKER_IMAGE in host I
# (no registry is reachable from the test namespaces).
docker_import_busybox() {
	local i=$1 tarf=$TW_DIR/busybox.tar
	if [ ! -s "$tarf" ]; then
		busybox_rootfs "$TW_DIR/busybox-rootfs"
		tar -C "$TW_DIR/busybox-rootfs" -cf "$tarf" . || fail "tar of the busybox rootfs"
	fi
	dockercli "$i" import "$tarf" "$TW_DOCKER_IMAGE" >/dev/null || fail "docker import in h$i"
}

# docker_run I NAME ARGS...: a detached container NAME of $TW_DOCKER_IMAGE in host I serving
# /www on port 8080 (httpd), started with ARGS before the image.
docker_run() {
	local i=$1 name=$2
	shift 2
	dockercli "$i" run -d --name "$name" "$@" "$TW_DOCKER_IMAGE" \
		/bin/httpd -f -p 8080 -h /www >/dev/null || fail "docker run $name in h$i"
}

# docker_ip I NAME: the container's address on the default bridge.
docker_ip() {
	dockercli "$1" inspect -f '{{.NetworkSettings.IPAddress}}' "$2"
}

# docker_ip6 I NAME: the container's global IPv6 address on the default bridge (empty when
# dockerd runs without --ipv6).
docker_ip6() {
	dockercli "$1" inspect -f '{{.NetworkSettings.GlobalIPv6Address}}' "$2"
}

# docker_seen_source I NAME IP: from container NAME of host I, ask the httpd at IP:8080 which
# source address it saw (the CGI's REMOTE_ADDR, "::ffff:" prefix removed).
docker_seen_source() {
	local out
	out=$(dockercli "$1" exec "$2" sh -c \
		"printf 'GET /cgi-bin/ip HTTP/1.0\r\n\r\n' | nc -w 3 $3 8080" 2>&1) || return 1
	out=$(tail -n 1 <<<"$out" | tr -d '\r[]')
	echo "${out#::ffff:}"
}

# link_json NS DEV: `ip -j -d addr show DEV` in NS, the first object.
link_json() {
	ip -n "$1" -j -d addr show dev "$2" | jq -c '.[0] // empty'
}

# root_iptables_lines: rules of the root namespace's iptables that name Docker, a bridge of
# ours or the overlay (they must not change: the runtimes run in the host namespaces).
root_iptables_lines() {
	{ iptables-save 2>/dev/null || true; } | { grep -E 'DOCKER|docker0|cni0|198\.18\.' || true; } |
		LC_ALL=C sort
}

# ---------------------------------------------------------------------------------------------
# CNI: twill-cni called as a runtime calls it

TWILL_CNI=${TWILL_CNI:-$TWILL_BUILD_DIR/twill-cni}
TW_CNI_PLUGINS=${TW_CNI_PLUGINS:-/usr/lib/cni}

# cni_netconf I [CNIVERSION] [EXTRA_JSON]: flannel's network config for host I: its subnet
# file, a data dir and a host-local data dir of its own under $TW_DIR (EXTRA_JSON: more
# top-level members, e.g. '"delegate":{"hairpinMode":true}').
cni_netconf() {
	local i=$1 v=${2:-1.0.0} extra=${3:-}
	printf '{"cniVersion":"%s","name":"%snet","type":"flannel","subnetFile":"%s","dataDir":"%s","ipam":{"dataDir":"%s"}%s}\n' \
		"$v" "$TW_PREFIX" "$(subnet_file "$i")" "$TW_DIR/h$i/cni-flannel" "$TW_DIR/h$i/cni-ipam" \
		"${extra:+,$extra}"
}

# cni_call I COMMAND CONTAINERID NETNS CONF: run twill-cni in host I's namespace with the CNI
# environment and CONF on stdin; its stdout in CNI_OUT, exit status in CNI_RC.
cni_call() {
	local i=$1 cmd=$2 cid=$3 netns=$4 conf=$5
	CNI_RC=0
	CNI_OUT=$(printf '%s' "$conf" | ip netns exec "$(ns_host "$i")" env CNI_COMMAND="$cmd" \
		CNI_CONTAINERID="$cid" CNI_NETNS="$netns" CNI_IFNAME=eth0 CNI_PATH="$TW_CNI_PLUGINS" \
		"$TWILL_CNI" 2>>"$TW_DIR/logs/cni-h$i.log") || CNI_RC=$?
}

# cni_expect_ok WHAT: the last cni_call succeeded.
cni_expect_ok() {
	[ "$CNI_RC" = 0 ] || fail "$1: twill-cni exited $CNI_RC: $CNI_OUT"
}

# cni_expect_error WHAT CODE MSG_PATTERN: the last cni_call failed with a CNI error object of
# CODE whose msg+details match MSG_PATTERN (grep -E).
cni_expect_error() {
	local what=$1 code=$2 pat=$3
	[ "$CNI_RC" != 0 ] || fail "$what: twill-cni succeeded: $CNI_OUT"
	jq -e 'has("cniVersion") and has("code") and has("msg")' <<<"$CNI_OUT" >/dev/null 2>&1 ||
		fail "$what: not a CNI error object: $CNI_OUT"
	assert_eq "$(jq -r .code <<<"$CNI_OUT")" "$code" "$what: error code ($CNI_OUT)"
	jq -r '"\(.msg) \(.details // "")"' <<<"$CNI_OUT" | grep -qE "$pat" ||
		fail "$what: message does not match /$pat/: $CNI_OUT"
}

# ---------------------------------------------------------------------------------------------
# podman with twill-cni (installed as "flannel" in a plugin folder of the test)

declare -gA TW_PODMAN_CIDS=() # "host index:name" -> container ID (results to remove)
TW_PODMAN_HOSTS=()
# What existed before podman ran: only what this run created is removed afterwards.
[ -e /var/lib/cni ] && TW_HAD_VAR_LIB_CNI=1 || TW_HAD_VAR_LIB_CNI=0
[ -e /var/lib/containers ] && TW_HAD_VAR_LIB_CONTAINERS=1 || TW_HAD_VAR_LIB_CONTAINERS=0

# podman_dir I: host I's podman state (root, runroot, containers.conf, conflists, plugins).
podman_dir() { echo "$TW_DIR/h$1/podman"; }

# podman_setup I: containers.conf for host I (CNI backend with the test's conflist folder and
# plugin folders, cgroupfs, runc, file events) and a conflist "${TW_PREFIX}net" naming the
# plugin as "flannel" (chained with portmap), on host I's subnet file.
podman_setup() {
	local i=$1 d hard
	d=$(podman_dir "$i")
	mkdir -p "$d/root" "$d/runroot" "$d/net.d" "$d/plugins" "$d/tmp"
	ln -sf "$TWILL_CNI" "$d/plugins/flannel"
	hard=$(ulimit -Hn)
	cat >"$d/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=$hard:$hard", "nproc=32768:32768"]
[network]
network_backend = "cni"
cni_plugin_dirs = ["$d/plugins", "$TW_CNI_PLUGINS"]
network_config_dir = "$d/net.d"
[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
events_logger = "file"
events_logfile_path = "$d/events.log"
tmp_dir = "$d/tmp"
CONF
	jq -n --arg name "${TW_PREFIX}net" --arg sf "$(subnet_file "$i")" \
		--arg data "$TW_DIR/h$i/cni-flannel" --arg ipam "$TW_DIR/h$i/cni-ipam" '{
		cniVersion: "1.0.0", name: $name, plugins: [
			{type: "flannel", subnetFile: $sf, dataDir: $data, ipam: {dataDir: $ipam},
			 delegate: {hairpinMode: true}},
			{type: "portmap", capabilities: {portMappings: true}}]}' \
		>"$d/net.d/${TW_PREFIX}net.conflist"
	TW_PODMAN_HOSTS+=("$i")
}

# podmancli I ARGS...: podman of host I, run in host I's network namespace (nsenter --net).
podmancli() {
	local i=$1 d
	shift
	d=$(podman_dir "$i")
	CONTAINERS_CONF=$d/containers.conf nsenter --net="/run/netns/$(ns_host "$i")" \
		podman --root "$d/root" --runroot "$d/runroot" --storage-driver vfs "$@"
}

# podman_import_busybox I: the busybox root file system as $TW_DOCKER_IMAGE in host I.
podman_import_busybox() {
	local i=$1 tarf=$TW_DIR/busybox.tar
	if [ ! -s "$tarf" ]; then
		busybox_rootfs "$TW_DIR/busybox-rootfs"
		tar -C "$TW_DIR/busybox-rootfs" -cf "$tarf" . || fail "tar of the busybox rootfs"
	fi
	podmancli "$i" import -q "$tarf" "$TW_DOCKER_IMAGE" >/dev/null 2>>"$TW_DIR/logs/podman-h$i.log" ||
		fail "podman import in h$i"
}

# podman_run I NAME: a detached busybox container NAME on the network "${TW_PREFIX}net" of
# host I (httpd on 8080); its ID in TW_PODMAN_CIDS.
podman_run() {
	local i=$1 name=$2 id
	id=$(podmancli "$i" run -d --name "$name" --network "${TW_PREFIX}net" "$TW_DOCKER_IMAGE" \
		/bin/httpd -f -p 8080 -h /www 2>>"$TW_DIR/logs/podman-h$i.log") ||
		{ show_log "$TW_DIR/logs/podman-h$i.log"; fail "podman run $name in h$i"; }
	TW_PODMAN_CIDS["$i:$name"]=$id
}

# podman_cleanup: remove the containers of this run, then what podman and CNI leave outside
# $TW_DIR for them: /var/lib/cni/results entries of our network and container IDs, and, when
# this run created /var/lib/containers, the blob-info cache podman keeps there for root
# (`podman import` writes it; there is no option to put it elsewhere).
podman_cleanup() {
	local k i name id f
	for k in "${!TW_PODMAN_CIDS[@]}"; do
		i=${k%%:*}
		name=${k#*:}
		podmancli "$i" rm -f -t 0 "$name" >/dev/null 2>&1 || true
	done
	for k in "${!TW_PODMAN_CIDS[@]}"; do
		id=${TW_PODMAN_CIDS[$k]}
		for f in /var/lib/cni/results/"${TW_PREFIX}net-$id"-*; do
			[ -e "$f" ] && rm -f "$f"
		done
	done
	if [ "$TW_HAD_VAR_LIB_CNI" = 0 ]; then
		rmdir /var/lib/cni/results /var/lib/cni 2>/dev/null || true
	fi
	if [ "$TW_HAD_VAR_LIB_CONTAINERS" = 0 ]; then
		rm -f /var/lib/containers/cache/blob-info-cache-v1.boltdb
		rmdir /var/lib/containers/cache /var/lib/containers 2>/dev/null || true
	fi
	TW_PODMAN_CIDS=()
}

# shellcheck shell=bash
# `contrib/demo.sh --docker`: the demo's containers are real Docker containers. Sourced by
# demo.sh after the cluster (etcd, twilld in 3 host namespaces) is up; uses lib.sh and
# tests/integration/lib_runtime.sh (one dockerd per host namespace, entered with nsenter --net,
# with its own data root, exec root, socket and pid file under the demo's state directory).

# demo_docker: dockerd on each host with $DOCKER_OPTS from twill-docker-opts, two busybox
# containers per host, pings between containers on different hosts, and the source address a
# receiver sees. On a dual-stack network (the demo's default) dockerd also gets --ipv6 and
# --fixed-cidr-v6 (twill-docker-opts --ipv6) and the containers ping over IPv6 too.
demo_docker() {
	local i j a b x y from to out rtt nbad=0 opts srcip seen fam w ipf npairs=12 v6opt=()
	# shellcheck source=../tests/integration/lib_runtime.sh
	. "$src/tests/integration/lib_runtime.sh"
	if [ "$v6" = 1 ]; then
		v6opt=(--ipv6)
		npairs=24
	fi
	step "Docker: dockerd in every host namespace, started with \$DOCKER_OPTS from twill-docker-opts${v6opt[*]:+ --ipv6}"
	for i in 1 2 3; do
		mkdir -p "$(docker_dir "$i")"
		"$TWILL_BUILD_DIR/twill-docker-opts" -c ${v6opt[@]+"${v6opt[@]}"} -f "$(subnet_file "$i")" \
			-d "$(docker_dir "$i")/docker_opts.env" || fail "twill-docker-opts on h$i"
		opts=$(. "$(docker_dir "$i")/docker_opts.env" && echo "$DOCKER_OPTS")
		echo "  $(ns_host "$i"): DOCKER_OPTS=\"$opts\""
		# shellcheck disable=SC2086
		start_dockerd "$i" $opts
	done

	step "Containers: 2 busybox containers per host (image imported from busybox-static)"
	for i in 1 2 3; do
		docker_import_busybox "$i"
		for j in 1 2; do
			docker_run "$i" "h${i}c$j"
			echo "  $(ns_host "$i"): h${i}c$j $(docker_ip "$i" "h${i}c$j") $(docker_ip6 "$i" "h${i}c$j")"
		done
		# the bridge takes the containers' MTU (--mtu) once they are attached
		echo "  $(ns_host "$i"): docker0 $(ip -n "$(ns_host "$i")" -j addr show dev docker0 |
			jq -r '.[0] | "\([.addr_info[] | select(.family == "inet" or .scope == "global") | "\(.local)/\(.prefixlen)"] | join(" ")) mtu \(.mtu)"')"
	done

	step "Ping between Docker containers on different hosts ($npairs pairs${v6opt[*]:+, IPv4 and IPv6})"
	for fam in 4 6; do
		[ "$fam" = 4 ] || [ "$v6" = 1 ] || continue
		ipf=docker_ip w=14
		[ "$fam" = 4 ] || ipf=docker_ip6 w=32
		for a in 1 2 3; do
			for b in $(seq $((a + 1)) 3); do
				for x in 1 2; do
					for y in 1 2; do
						from=h${a}c$x
						to=$("$ipf" "$b" "h${b}c$y")
						srcip=$("$ipf" "$a" "$from")
						if out=$(dockercli "$a" exec "$from" ping -c 1 -W 3 "$to" 2>&1); then
							rtt=$(sed -n 's/.*time=\([0-9.]* ms\).*/\1/p' <<<"$out" | head -n 1)
							printf '  %s %-*s -> h%dc%d %-*s ok  %s\n' "$from" "$w" "$srcip" "$b" "$y" "$w" "$to" "$rtt"
						else
							printf '  %s %-*s -> h%dc%d %-*s FAILED\n' "$from" "$w" "$srcip" "$b" "$y" "$w" "$to"
							nbad=$((nbad + 1))
						fi
					done
				done
			done
		done
	done
	[ $nbad = 0 ] || fail "$nbad of $npairs pings failed"

	step "Source address: what h3c1 sees when h1c1 connects (Docker masquerades: no twilld --ip-masq)"
	srcip=$(docker_ip 1 h1c1)
	seen=$(docker_seen_source 1 h1c1 "$(docker_ip 3 h3c1)") || fail "h1c1 -> h3c1:8080 failed"
	echo "  h1c1 is $srcip; h3c1 sees $seen: h1's own address towards h3c1 ($(ip -n "$(ns_host 1)" -j route get "$(docker_ip 3 h3c1)" |
		jq -r '.[0] | "\(.prefsrc) on \(.dev)"'))"
	echo "  (with twilld --ip-masq, Docker gets --ip-masq=false and h3c1 would see $srcip)"

	echo
	echo "demo: all steps passed (backend $backend, Docker${v6opt[*]:+, dual-stack})"
	if [ "$keep" = 1 ]; then
		cat <<EOF

The cluster is still running (--keep). Prefix: $TW_PREFIX
  docker on a host:    docker -H unix://$(docker_dir 1)/docker.sock ps
  enter a container:   docker -H unix://$(docker_dir 1)/docker.sock exec -it h1c1 sh
  twilld logs:         $TW_DIR/logs/
  tear it down:        sudo bash $src/contrib/demo.sh --teardown $TW_PREFIX
EOF
	else
		echo "demo: tearing down (use --keep to leave the cluster running)"
	fi
}

# demo_docker_teardown PREFIX: before the namespaces go, remove the containers and stop every
# dockerd (and its containerd) that a kept `demo.sh --docker` run left under PREFIX, by PID.
demo_docker_teardown() {
	local p=$1 dd pid cpid ids
	for dd in "${TMPDIR:-/tmp}/twill-$p"/h*/docker; do
		[ -S "$dd/docker.sock" ] || continue
		ids=$(docker -H "unix://$dd/docker.sock" ps -aq 2>/dev/null) || ids=
		# shellcheck disable=SC2086
		[ -z "$ids" ] || docker -H "unix://$dd/docker.sock" rm -f $ids >/dev/null 2>&1 || true
		pid=$(cat "$dd/docker.pid" 2>/dev/null) || pid=
		cpid=$(cat "$dd/exec/containerd/containerd.pid" 2>/dev/null) || cpid=
		[ -z "$pid" ] || stop_pid "$pid" 20
		[ -z "$cpid" ] || ! _tw_alive "$cpid" || stop_pid "$cpid" 10
	done
	awk -v d="${TMPDIR:-/tmp}/twill-$p/" 'index($2, d) == 1 {print $2}' /proc/self/mounts |
		sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
}

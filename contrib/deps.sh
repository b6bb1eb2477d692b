#!/usr/bin/env bash
# Installs every Debian package that twill's build, tests, demo and benchmarks need.
# Idempotent: one apt-get update, and only when something is missing.
set -euo pipefail

PACKAGES=(
	# build
	build-essential cmake pkg-config clang llvm
	libmnl-dev libcurl4-openssl-dev libnghttp2-dev libjansson-dev libprotobuf-c-dev protobuf-c-compiler
	# unit tests
	libcriterion-dev
	# store, integration tests, demo, benchmarks
	etcd-server etcd-client iproute2 iptables iputils-ping iperf3 procps psmisc curl openssl
	valgrind python3 jq time
	# man page and systemd unit tests (groff, man -l, systemd-analyze verify)
	groff-base man-db systemd
	# container runtimes for the scenario tests and `demo.sh --docker` (CNI plugins for twill-cni)
	docker.io containernetworking-plugins podman busybox-static
)

if [ "$(id -u)" -ne 0 ]; then
	echo "deps.sh: run as root (apt-get needs it)" >&2
	exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
		missing+=("$p")
	fi
done

if [ ${#missing[@]} -eq 0 ]; then
	echo "deps.sh: all ${#PACKAGES[@]} packages present"
	exit 0
fi

echo "deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# policy-rc.d keeps the etcd package from starting a system-wide etcd on :2379.
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
	chmod +x /usr/sbin/policy-rc.d
	trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "deps.sh: done"

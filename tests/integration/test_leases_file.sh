#!/usr/bin/env bash
# The local file store shared by processes (--etcd-endpoints=file:///path): one twillctl
# watches while others write; the watcher sees every change, and the file survives.
set -uo pipefail

src=${TWILL_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${TWILL_BUILD_DIR:-$src/build}
T=$build/twillctl
[ -x "$T" ] || { echo "FAIL: no twillctl at $T" >&2; exit 1; }

tmp=$(mktemp -d /tmp/twill-file-it.XXXXXX)
watch_pid=
cleanup() {
	if [ -n "$watch_pid" ] && kill -0 "$watch_pid" 2>/dev/null; then
		kill "$watch_pid"
		wait "$watch_pid" 2>/dev/null
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
fail() { echo "FAIL: $*" >&2; exit 1; }

export FLANNELD_ETCD_ENDPOINTS=file://$tmp/store/leases.json
printf '%s' '{"Network":"198.18.0.0/16","SubnetLen":24,"Backend":{"Type":"host-gw"}}' >"$tmp/cfg.json"
"$T" config set "$tmp/cfg.json" >/dev/null || fail "config set"
[ -s "$tmp/store/leases.json" ] || fail "store file not created"

"$T" watch --count 3 >"$tmp/watch" 2>"$tmp/watch.err" &
watch_pid=$!
sleep 0.3
"$T" reserve 198.18.4.0/24 --public-ip 192.0.2.4 >/dev/null || fail "reserve"
"$T" reserve 198.18.5.0/24 --public-ip 192.0.2.5 >/dev/null || fail "reserve"
"$T" release 198.18.4.0/24 >/dev/null || fail "release"
for _ in $(seq 1 50); do kill -0 "$watch_pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$watch_pid" 2>/dev/null && fail "watcher missed changes: $(cat "$tmp/watch" "$tmp/watch.err")"
wait "$watch_pid" || fail "watch exit status"
watch_pid=
printf 'added 198.18.4.0/24 192.0.2.4 - -\nadded 198.18.5.0/24 192.0.2.5 - -\nremoved 198.18.4.0/24 192.0.2.4\n' >"$tmp/want"
diff -u "$tmp/want" "$tmp/watch" || fail "watch output"
"$T" leases --json | jq -e 'length == 1 and .[0].subnet == "198.18.5.0/24" and .[0].reserved' >/dev/null ||
	fail "leases after restart of the tool"
echo "PASS"

#!/usr/bin/env bash
# Node status: /v1/status on twilld's health port against the real state (subnet file, etcd
# lease, kernel devices and routes), `twillctl status` (table and --json, local and remote
# --healthz), a daemon without config (not ready, reason), and an unreachable one (exit 1);
# with http:// endpoints only, no twilld has libcurl loaded (lib/curl_dl.c).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"
# shellcheck source=lib_curl.sh
. "$here/lib_curl.sh"

make_topology 3 etcd
start_etcd
put_net_config "$(net_config_json vxlan)"
start_twilld 1 --healthz-ip=127.0.0.1 --healthz-port=8471
start_twilld 2 --healthz-port=8471
for i in 1 2; do wait_twilld_ready "$i" 15; done
h1=$(ns_host 1)

st() { ip netns exec "$h1" curl -sf -m 5 http://127.0.0.1:8471/v1/status; }
_routes_seen() { [ "$(st | jq -r '.leases.routes_programmed')" = 1 ]; }
wait_for --timeout 5 _routes_seen || fail "h1 status never showed 1 route programmed: $(st)"
doc=$(st) || fail "GET /v1/status failed"
sub=$(host_subnet 1)
assert_eq "$(jq -r .schema <<<"$doc")" twill.status/v1 "schema"
assert_eq "$(jq -r .ready <<<"$doc")" true "ready"
assert_eq "$(jq -r .lease.subnet <<<"$doc")" "$sub" "lease subnet (subnet file)"
assert_eq "$(jq -r .lease.public_ip <<<"$doc")" "$(host_ip 1)" "lease public IP"
# the lease's etcd TTL (the lease ID read as text: jq would round an int64)
lid=$(etcdctl_run get -w json "$(lease_key "$sub")" | grep -o '"lease":[0-9]*' | cut -d: -f2)
exp=$(etcdctl_run lease timetolive "$(printf '%x' "$lid")" | sed -n 's/.*remaining(\([0-9]*\)s).*/\1/p')
left=$(jq -r .lease.expires_in_s <<<"$doc")
[ -n "$exp" ] && [ $((left - exp)) -le 5 ] && [ $((exp - left)) -le 5 ] ||
	fail "lease expires_in_s $left, etcd says ${exp:-?} s remaining"
assert_eq "$(jq -r .network.network <<<"$doc")" "$TW_OVERLAY" "network"
assert_eq "$(jq -r '.backend | "\(.type) \(.started) \(.mtu) \(.interface)"' <<<"$doc")" \
	"vxlan true 1450 eth0" "backend"
kdev=$(ip -n "$h1" -j -d link show dev flannel.1 | jq -r '.[0] | "\(.linkinfo.info_kind) \(.mtu) \(.flags | index("UP") != null)"')
assert_eq "$(jq -r '.backend.devices[] | select(.name == "flannel.1") | "\(.kind) \(.mtu) \(.up)"' <<<"$doc")" \
	"$kdev" "flannel.1 in the status vs ip -j"
assert_eq "$(jq -r '.etcd | "\(.store) \(.endpoint)"' <<<"$doc")" "etcd $TW_ETCD_URL" "etcd"
assert_eq "$(jq -r .leases.remote <<<"$doc")" 1 "remote leases"
nroutes=$(ip -n "$h1" -j -4 route show root "$TW_OVERLAY" | jq "[.[] | select(.dev != \"$TW_BRIDGE\")] | length")
assert_eq "$(jq -r .leases.routes_programmed <<<"$doc")" "$nroutes" "routes programmed vs ip -j route"
assert_eq "$(jq -r '.iptables | "\(.active) \(.masquerade) \(.forward_rules)"' <<<"$doc")" \
	"true false true" "iptables"
assert_eq "$(jq -r .udp <<<"$doc")" null "udp section for vxlan"
log "/v1/status matches the subnet file, etcd and the kernel"

# twillctl status: table, --json, remote --healthz
out=$(ip netns exec "$h1" "$TWILLCTL" status) || fail "twillctl status failed: $out"
grep -qE "^lease +$sub, public IP $(host_ip 1), expires in (23h|1d00h)" <<<"$out" || fail "no lease row: $out"
grep -qE '^ready +yes$' <<<"$out" || fail "no ready row: $out"
grep -qE "^devices +flannel\.1: vxlan, up, MTU 1450$" <<<"$out" || fail "no device row: $out"
grep -qE "^store +$TW_ETCD_URL \(etcd\)$" <<<"$out" || fail "no store row: $out"
grep -qE '^remote leases +1 known; routes programmed: 1 \(kernel\)$' <<<"$out" || fail "no lease count row: $out"
log "twillctl status table:"
sed 's/^/    /' <<<"$out"
out=$(ip netns exec "$h1" "$TWILLCTL" status --json) || fail "twillctl status --json failed"
assert_eq "$(jq -r .lease.subnet <<<"$out")" "$sub" "twillctl status --json lease"
out=$(ip netns exec "$h1" "$TWILLCTL" status --healthz "http://$(host_ip 2):8471/") ||
	fail "twillctl status --healthz h2 failed: $out"
grep -qE "^lease +$(host_subnet 2)," <<<"$out" || fail "remote status shows another lease: $out"

# a daemon without network config: not ready, and why
start_twilld 3 --etcd-prefix=/twill-empty --healthz-port=8471
_h3_up() { ip netns exec "$(ns_host 3)" curl -sf -m 2 http://127.0.0.1:8471/v1/status >/dev/null; }
wait_for --timeout 10 _h3_up || fail "h3 status never answered"
doc=$(ip netns exec "$(ns_host 3)" curl -sf -m 5 http://127.0.0.1:8471/v1/status)
assert_eq "$(jq -r '"\(.ready) \(.ready_reason) \(.lease) \(.network)"' <<<"$doc")" \
	"false no valid network config yet null null" "status without config"
out=$(ip netns exec "$(ns_host 3)" "$TWILLCTL" status) || fail "twillctl status on h3: $out"
grep -qE '^ready +no: no valid network config yet$' <<<"$out" || fail "h3 ready row: $out"

# unreachable: a clear error and exit 1
rc=0
out=$(ip netns exec "$h1" "$TWILLCTL" status --healthz http://127.0.0.1:1 2>&1) || rc=$?
assert_eq "$rc" 1 "twillctl status exit status with no daemon"
grep -q 'cannot reach twilld at http://127.0.0.1:1/v1/status' <<<"$out" || fail "unclear error: $out"
log "unreachable daemon: exit 1: $(head -n 1 <<<"$out")"

for i in 1 2 3; do assert_libcurl "$i" no; done
finish_twilld_all
log "PASS"

#!/usr/bin/env bash
# twillctl against a real etcd on free loopback ports: config set/get/validate, leases,
# reserve/release/lease show, watch, flannel-format interop with etcdctl, and errors.
# Everything on 127.0.0.1; etcd runs from a temp data dir and is stopped by PID.
set -uo pipefail

src=${TWILL_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${TWILL_BUILD_DIR:-$src/build}
T=$build/twillctl
fix=$src/tests/fixtures/flannel-leases
[ -x "$T" ] || { echo "FAIL: no twillctl at $T" >&2; exit 1; }

tmp=$(mktemp -d /tmp/twill-ctl-it.XXXXXX)
etcd_pid=
watch_pid=
cleanup() {
	for p in $watch_pid $etcd_pid; do
		if kill -0 "$p" 2>/dev/null; then
			kill "$p" 2>/dev/null
			for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
			kill -9 "$p" 2>/dev/null
		fi
		wait "$p" 2>/dev/null
	done
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

fail() {
	echo "FAIL: $*" >&2
	[ -f "$tmp/etcd.log" ] && tail -n 20 "$tmp/etcd.log" >&2
	exit 1
}
ok() { echo "ok - $*"; }

port_free() { ! ss -Htln "sport = :$1" | grep -q .; }
free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 30000))
		port_free "$p" && port_free $((p + 1)) && { echo "$p"; return; }
	done
}

cport=$(free_port)
pport=$((cport + 1))
url=http://127.0.0.1:$cport
etcd --name twctl --data-dir "$tmp/etcd" \
	--listen-client-urls "$url" --advertise-client-urls "$url" \
	--listen-peer-urls "http://127.0.0.1:$pport" --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
	--initial-cluster "twctl=http://127.0.0.1:$pport" --initial-cluster-state new \
	--logger zap --log-level warn >"$tmp/etcd.log" 2>&1 &
etcd_pid=$!
for _ in $(seq 1 150); do
	curl -s -m 1 "$url/health" 2>/dev/null | grep -q '"health":"true"' && break
	kill -0 "$etcd_pid" 2>/dev/null || fail "etcd exited"
	sleep 0.1
done
curl -s -m 1 "$url/health" | grep -q '"health":"true"' || fail "etcd not healthy at $url"
ok "etcd up at $url (pid $etcd_pid)"

export ETCDCTL_API=3
E=(etcdctl --endpoints "$url" --dial-timeout 2s --command-timeout 5s)
tw() { "$T" --etcd-endpoints="$url" "$@"; }
PFX=/coreos.com/network

# ---- config ----------------------------------------------------------------------------------
out=$(tw config get 2>&1); rc=$?
[ $rc -eq 1 ] || fail "config get without config: rc $rc"
[[ $out == *"no network config at $PFX/config: write one with \`twillctl config set FILE\`"* ]] ||
	fail "config get without config: $out"
ok "missing config explained"

cfg='{"Network":"198.18.0.0/16","SubnetLen":24,"Backend":{"Type":"vxlan","VNI":1}}'
printf '%s' "$cfg" >"$tmp/cfg.json"
printf '%s' '{"Network":"198.18.0.0/16","SubnetLen":31}' >"$tmp/bad.json"
tw config validate "$tmp/cfg.json" >"$tmp/out" || fail "validate good config"
grep -q "198.18.1.0/24 .. 198.18.255.0/24" "$tmp/out" || fail "validate summary: $(cat "$tmp/out")"
out=$(tw config validate "$tmp/bad.json" 2>&1) && fail "bad config validated"
[[ $out == *"SubnetLen"* ]] || fail "bad config reason: $out"
out=$(tw config set "$tmp/bad.json" 2>&1) && fail "bad config written"
[[ $out == *"not written"* ]] || fail "bad config set message: $out"
[ -z "$("${E[@]}" get "$PFX/config" --print-value-only)" ] || fail "bad config reached etcd"
tw config set "$tmp/cfg.json" >/dev/null || fail "config set"
got=$("${E[@]}" get "$PFX/config" --print-value-only)
[ "$got" = "$cfg" ] || fail "etcdctl reads back '$got', want '$cfg'"
got=$(tw config get)
[ "$got" = "$cfg" ] || fail "config get: '$got'"
printf '%s' "$cfg" | tw config set - >/dev/null || fail "config set from stdin"
ok "config set/get/validate round trip (etcdctl reads the exact document)"

# ---- flannel-written leases read by twillctl -------------------------------------------------
lease_id=$("${E[@]}" lease grant 600 | awk '{print $2}')
[ -n "$lease_id" ] || fail "etcdctl lease grant"
"${E[@]}" put --lease="$lease_id" "$PFX/subnets/198.18.1.0-24" "$(cat "$fix/vxlan.json")" >/dev/null ||
	fail "put vxlan lease"
"${E[@]}" put --lease="$lease_id" "$PFX/subnets/198.18.2.0-24" "$(cat "$fix/udp.json")" >/dev/null ||
	fail "put udp lease"
"${E[@]}" put "$PFX/subnets/198.18.3.0-24" "$(cat "$fix/host-gw.json")" >/dev/null ||
	fail "put host-gw reservation"
tw leases --json >"$tmp/leases.json" || fail "leases --json"
jq -e 'length == 3' "$tmp/leases.json" >/dev/null || fail "want 3 leases: $(cat "$tmp/leases.json")"
jq -e '.[0] | .subnet == "198.18.1.0/24" and .public_ip == "192.0.2.1" and .backend == "vxlan"
	and .vtep_mac == "16:95:20:8d:5a:7b" and .reserved == false and .attrs.BackendData.VNI == 1' \
	"$tmp/leases.json" >/dev/null || fail "vxlan lease: $(jq -c '.[0]' "$tmp/leases.json")"
jq -e '.[1] | .subnet == "198.18.2.0/24" and .public_ip == "192.0.2.2" and .backend == null
	and .reserved == false and (.attrs | has("BackendType") | not)' \
	"$tmp/leases.json" >/dev/null || fail "udp lease: $(jq -c '.[1]' "$tmp/leases.json")"
jq -e '.[2] | .subnet == "198.18.3.0/24" and .backend == "host-gw" and .reserved == true
	and .expires_in_s == null' \
	"$tmp/leases.json" >/dev/null || fail "host-gw reservation: $(jq -c '.[2]' "$tmp/leases.json")"
for f in vxlan udp host-gw; do
	n=$(jq --slurpfile g "$fix/$f.json" '[.[] | select(.attrs == $g[0])] | length' "$tmp/leases.json")
	[ "$n" = 1 ] || fail "attrs of $f.json not reproduced"
done
tw leases >"$tmp/table" || fail "leases"
head -n1 "$tmp/table" | grep -q "^SUBNET *PUBLIC IP *BACKEND *VTEP MAC *EXPIRES IN" || fail "table header: $(cat "$tmp/table")"
grep -q "^198.18.1.0/24 *192.0.2.1 *vxlan *16:95:20:8d:5a:7b" "$tmp/table" || fail "table: $(cat "$tmp/table")"
grep -q "^198.18.3.0/24 *192.0.2.3 *host-gw .*reserved$" "$tmp/table" || fail "table: $(cat "$tmp/table")"
ok "flannel-format leases (with and without etcd lease) read by twillctl leases"

# expires-in from etcd's timetolive: both keys share one 600 s lease, the reservation has none
jq -e '[.[0], .[1]] | all(.expires_in_s >= 590 and .expires_in_s <= 600)' "$tmp/leases.json" >/dev/null ||
	fail "expires_in_s: $(jq -c '[.[] | .expires_in_s]' "$tmp/leases.json")"
grep -Eq "^198.18.1.0/24 .* (9m5[0-9]s|10m0s)$" "$tmp/table" || fail "expires-in column: $(cat "$tmp/table")"
grep -Eq "^198.18.2.0/24 .* (9m5[0-9]s|10m0s)$" "$tmp/table" || fail "expires-in column: $(cat "$tmp/table")"
day_id=$("${E[@]}" lease grant 86400 | awk '{print $2}')
"${E[@]}" put --lease="$day_id" "$PFX/subnets/198.18.4.0-24" "$(cat "$fix/vxlan.json")" >/dev/null ||
	fail "put day lease"
tw leases >"$tmp/table2" || fail "leases (day lease)"
grep -Eq "^198.18.4.0/24 .* 23h59m$" "$tmp/table2" || fail "23h59m: $(cat "$tmp/table2")"
tw lease show 198.18.4.0/24 >"$tmp/show4" || fail "lease show (day lease)"
grep -Eq "^Lease: *[0-9]+ \(expires in 23h59m\)$" "$tmp/show4" || fail "lease show expiry: $(cat "$tmp/show4")"
tw lease show 198.18.4.0/24 --json | jq -e '.expires_in_s > 86300 and .reserved == false' >/dev/null ||
	fail "lease show --json expires_in_s"
"${E[@]}" lease revoke "$day_id" >/dev/null || fail "revoke day lease"
ok "expires-in column and expires_in_s from etcd (one 600 s lease shared by two keys, a 24 h lease)"

tw lease show 198.18.1.0/24 >"$tmp/show" || fail "lease show"
grep -q "^VtepMAC: *16:95:20:8d:5a:7b" "$tmp/show" || fail "lease show: $(cat "$tmp/show")"
grep -q "^Value: *$(cat "$fix/vxlan.json")$" "$tmp/show" || fail "lease show raw value"
out=$(tw lease show 198.18.9.0/24 2>&1) && fail "lease show of a missing lease"
[[ $out == *"no lease for 198.18.9.0/24"* ]] || fail "missing lease message: $out"
ok "lease show"

# ---- reserve / release written by twill, read by etcdctl -------------------------------------
tw reserve 198.18.7.0/24 --public-ip 192.0.2.7 >/dev/null || fail "reserve"
got=$("${E[@]}" get "$PFX/subnets/198.18.7.0-24" --print-value-only)
[ "$got" = '{"PublicIP":"192.0.2.7","PublicIPv6":null}' ] || fail "reservation JSON: $got"
lease=$("${E[@]}" get "$PFX/subnets/198.18.7.0-24" -w json | jq -r '.kvs[0].lease // 0')
[ "$lease" = 0 ] || fail "reservation has an etcd lease ($lease)"
out=$(tw reserve 198.18.1.0/24 --public-ip 192.0.2.9 2>&1) && fail "reserved a held subnet"
[[ $out == *"held by 192.0.2.1"* ]] || fail "held message: $out"
out=$(tw reserve 198.18.7.128/25 --public-ip 192.0.2.9 2>&1) && fail "reserved a /25"
[[ $out == *"not a /24 subnet inside the network 198.18.0.0/16"* ]] || fail "boundary message: $out"
out=$(tw reserve 10.1.0.0/24 --public-ip 192.0.2.9 2>&1) && fail "reserved outside the network"
out=$(tw reserve 198.18.7.0/33 --public-ip 192.0.2.9 2>&1) && fail "bad syntax accepted"
[[ $out == *"bad subnet \"198.18.7.0/33\""* ]] || fail "syntax message: $out"
# The holder's own lease turns into a reservation, byte-exact value kept.
tw reserve 198.18.1.0/24 --public-ip 192.0.2.1 >/dev/null || fail "reserve own lease"
got=$("${E[@]}" get "$PFX/subnets/198.18.1.0-24" -w json | jq -r '.kvs[0].lease // 0')
[ "$got" = 0 ] || fail "still leased"
got=$("${E[@]}" get "$PFX/subnets/198.18.1.0-24" --print-value-only)
[ "$got" = "$(cat "$fix/vxlan.json")" ] || fail "value changed: $got"
tw release 198.18.7.0/24 >/dev/null || fail "release"
[ -z "$("${E[@]}" get "$PFX/subnets/198.18.7.0-24" --print-value-only)" ] || fail "released key still there"
out=$(tw release 198.18.7.0/24 2>&1) && fail "double release succeeded"
ok "reserve/release (etcdctl sees flannel's exact JSON and no etcd lease)"

# ---- watch -----------------------------------------------------------------------------------
tw watch --count 3 >"$tmp/watch" 2>"$tmp/watch.err" &
watch_pid=$!
sleep 0.5
"${E[@]}" put "$PFX/subnets/198.18.8.0-24" "$(cat "$fix/vxlan.json")" >/dev/null
"${E[@]}" put "$PFX/subnets/198.18.8.0-24" "$(cat "$fix/vxlan.json")" >/dev/null
"${E[@]}" del "$PFX/subnets/198.18.8.0-24" >/dev/null
for _ in $(seq 1 50); do kill -0 "$watch_pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$watch_pid" 2>/dev/null && fail "watch did not stop after 3 events: $(cat "$tmp/watch" "$tmp/watch.err")"
wait "$watch_pid" || fail "watch exit status"
watch_pid=
printf 'added 198.18.8.0/24 192.0.2.1 vxlan 16:95:20:8d:5a:7b\nchanged 198.18.8.0/24 192.0.2.1 vxlan 16:95:20:8d:5a:7b\nremoved 198.18.8.0/24 192.0.2.1\n' >"$tmp/watch.want"
diff -u "$tmp/watch.want" "$tmp/watch" || fail "watch output"
ok "watch"

# ---- dual-stack (EnableIPv6) under its own prefix --------------------------------------------
D=/dual/network
td() { "$T" --etcd-endpoints="$url" --etcd-prefix="$D" "$@"; }
dfix=$src/tests/fixtures/lease/written
printf '%s' '{"Network":"198.18.0.0/16","SubnetLen":24,"EnableIPv6":true,"IPv6Network":"2001:db8:100::/48","Backend":{"Type":"vxlan"}}' >"$tmp/cfg6.json"
td config set "$tmp/cfg6.json" >/dev/null || fail "config set (dual-stack)"
dlease=$("${E[@]}" lease grant 600 | awk '{print $2}')
"${E[@]}" put --lease="$dlease" "$D/subnets/198.18.3.0-24&2001:db8:100:3::-64" "$(cat "$dfix/vxlan-dualstack.json")" >/dev/null ||
	fail "put dual-stack lease"
td reserve 198.18.5.0/24 --public-ip 192.0.2.5 --ipv6-subnet 2001:db8:100:5::/64 \
	--public-ipv6 2001:db8:0:1::5 >"$tmp/out" 2>&1 || fail "dual-stack reserve: $(cat "$tmp/out")"
grep -qF "reserved 198.18.5.0/24,2001:db8:100:5::/64 for 192.0.2.5,2001:db8:0:1::5" "$tmp/out" ||
	fail "dual-stack reserve output: $(cat "$tmp/out")"
got=$("${E[@]}" get "$D/subnets/198.18.5.0-24&2001:db8:100:5::-64" -w json |
	jq -r '[(.kvs[0].lease // 0), (.kvs[0].value | @base64d)] | @tsv')
[ "$got" = "0	{\"PublicIP\":\"192.0.2.5\",\"PublicIPv6\":\"2001:db8:0:1::5\"}" ] ||
	fail "dual-stack reservation in etcd: $got"
td reserve '198.18.6.0-24&2001:db8:100:6::-64' --public-ip 192.0.2.6 >/dev/null ||
	fail "dual-stack reserve (key form)"
out=$(td reserve 198.18.7.0/24 --public-ip 192.0.2.7 2>&1) && fail "IPv4-only reservation in a dual-stack network accepted"
[[ $out == *"the network is dual-stack (EnableIPv6): give its IPv6 subnet too"* ]] || fail "dual-stack refusal: $out"
td leases >"$tmp/table6" || fail "leases (dual-stack)"
head -n1 "$tmp/table6" | grep -q "^SUBNET *IPV6 SUBNET *PUBLIC IP *PUBLIC IPV6 *BACKEND *VTEP MAC *EXPIRES IN" ||
	fail "dual-stack table header: $(cat "$tmp/table6")"
grep -Eq "^198.18.3.0/24 +2001:db8:100:3::/64 +192.0.2.3 +2001:db8:0:1::3 +vxlan +72:07:01:d5:03:de +[0-9]+m" "$tmp/table6" ||
	fail "dual-stack lease row: $(cat "$tmp/table6")"
grep -Eq "^198.18.6.0/24 +2001:db8:100:6::/64 +192.0.2.6 +- +- +- +reserved" "$tmp/table6" ||
	fail "dual-stack reservation row: $(cat "$tmp/table6")"
td leases --json | jq -e 'length == 3 and .[0].ipv6_subnet == "2001:db8:100:3::/64" and
	.[0].public_ipv6 == "2001:db8:0:1::3" and .[0].vtep_mac_v6 == "3a:c3:56:d6:78:82" and
	.[1].public_ipv6 == "2001:db8:0:1::5" and .[2].public_ipv6 == null' >/dev/null ||
	fail "leases --json (dual-stack): $(td leases --json)"
td lease show 198.18.3.0/24 >"$tmp/show6" || fail "lease show by the IPv4 subnet of a dual-stack lease"
grep -q "^IPv6Subnet: *2001:db8:100:3::/64$" "$tmp/show6" && grep -q "^PublicIPv6: *2001:db8:0:1::3$" "$tmp/show6" &&
	grep -q "^VtepMACv6: *3a:c3:56:d6:78:82$" "$tmp/show6" || fail "lease show (dual-stack): $(cat "$tmp/show6")"
td release '198.18.6.0-24&2001:db8:100:6::-64' >/dev/null || fail "release (dual key)"
ok "dual-stack: both subnets and public IPs listed, reservations with an IPv6 half (etcdctl sees flannel's key and JSON)"

# ---- errors ----------------------------------------------------------------------------------
dead=http://127.0.0.1:$(free_port)
out=$("$T" --etcd-endpoints="$dead" leases 2>&1); rc=$?
[ $rc -eq 1 ] || fail "unreachable endpoint: rc $rc"
[[ $out == *"$dead"* ]] || fail "unreachable endpoint not named: $out"
out=$(FLANNELD_ETCD_ENDPOINTS=$dead "$T" config get 2>&1); rc=$?
[ $rc -eq 1 ] && [[ $out == *"$dead"* ]] || fail "FLANNELD_ETCD_ENDPOINTS not used: $out"
out=$("$T" bogus 2>&1); rc=$?
[ $rc -eq 2 ] || fail "unknown command: rc $rc"
"$T" reserve --help | grep -q "usage: twillctl reserve SUBNET --public-ip IP" || fail "reserve --help"
ok "errors (unreachable endpoint named, exit 1; usage exit 2)"
echo "PASS"

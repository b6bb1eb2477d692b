#!/usr/bin/env bash
# twilld's /metrics and /readyz, 2 hosts, vxlan, a 6 s lease TTL. Checks: /metrics passes a
# strict Prometheus text-format checker (promcheck.py) and lists every twill_* family; counters
# move with what happens: a remote lease added, changed and removed in etcd (lease events,
# remote lease gauge), renewals and etcd requests by op, a route deleted under twilld and
# restored (kernel repairs, netlink operations); /readyz goes 503 with its reason while etcd is
# frozen (SIGSTOP) for longer than the confirmation window min(TTL, renew margin) = 6 s, with
# etcd errors counted, and back to 200 once etcd runs again; random bytes and broken requests on
# the health port leave the daemon serving.
set -euo pipefail
# shellcheck source=tests/integration/lib.sh disable=SC2034
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PORT=9761
TTL=6
CHECK="$(dirname "${BASH_SOURCE[0]}")/promcheck.py"

cluster_up 2 2 "$(net_config_json vxlan)" --subnet-lease-ttl=$TTL \
	--healthz-ip=127.0.0.1 --healthz-port=$PORT
h1=$(ns_host 1)

# scrape I [SERIES...]: fetch /metrics of host I into $TW_DIR/metrics.I, check its format (fails
# the test on a violation) and print the value of each SERIES ("absent" when not there).
scrape() {
	local i=$1 f=$TW_DIR/metrics.$1
	shift
	ip netns exec "$(ns_host "$i")" curl -sf -m 3 "http://127.0.0.1:$PORT/metrics" >"$f" ||
		fail "h$i: GET /metrics failed"
	python3 "$CHECK" "$f" "$@" || fail "h$i: /metrics is not valid Prometheus text:
$(cat "$f")"
}
# m I SERIES: the value of SERIES in a fresh scrape of host I.
m() { scrape "$1" "$2"; }
# m_ge I SERIES MIN / m_eq I SERIES WANT / m_gt I SERIES THAN: numeric comparisons.
m_ge() { local v; v=$(m "$1" "$2"); [ "$v" != absent ] && python3 -c "import sys; sys.exit(not float('$v') >= float('$3'))"; }
m_gt() { local v; v=$(m "$1" "$2"); [ "$v" != absent ] && python3 -c "import sys; sys.exit(not float('$v') > float('$3'))"; }
m_eq() { [ "$(m "$1" "$2")" = "$3" ]; }
# readyz I: "CODE BODY" of /readyz on host I.
readyz() {
	ip netns exec "$(ns_host "$1")" curl -s -m 3 -o "$TW_DIR/readyz.$1" -w '%{http_code}' \
		"http://127.0.0.1:$PORT/readyz" || true
	echo " $(tr -d '\n' <"$TW_DIR/readyz.$1" 2>/dev/null)"
}
ready_is() { case "$(readyz "$1")" in "$2"*) return 0 ;; esac; return 1; }

# ---- format and families ---------------------------------------------------------------------
wait_for --timeout 10 m_eq 1 twill_remote_leases 1 || fail "h1 does not count h2's lease: $(m 1 twill_remote_leases)"
scrape 1
for fam in twill_lease_held:gauge twill_lease_expiry_seconds:gauge twill_remote_leases:gauge \
	twill_lease_events_total:counter twill_lease_renewals_total:counter \
	twill_etcd_requests_total:counter twill_etcd_errors_total:counter \
	twill_etcd_endpoint_info:gauge twill_netlink_operations_total:counter \
	twill_netlink_errors_total:counter twill_kernel_repairs_total:counter \
	twill_udp_packets_total:counter twill_udp_bytes_total:counter \
	twill_udp_dropped_total:counter twill_ready:gauge; do
	grep -qx "# TYPE ${fam%%:*} ${fam#*:}" "$TW_DIR/metrics.1" || fail "h1 /metrics lacks '# TYPE ${fam%%:*} ${fam#*:}'"
	grep -q "^# HELP ${fam%%:*} ." "$TW_DIR/metrics.1" || fail "h1 /metrics lacks a HELP for ${fam%%:*}"
done
assert_eq "$(m 1 twill_lease_held)" 1 "twill_lease_held"
assert_eq "$(m 1 twill_ready)" 1 "twill_ready"
assert_eq "$(m 1 "twill_etcd_endpoint_info{endpoint=\"$TW_ETCD_URL\"}")" 1 "etcd endpoint info"
assert_eq "$(m 1 'twill_lease_events_total{kind="own_acquired"}')" 1 "own_acquired events"
m_ge 1 twill_lease_expiry_seconds 1 || fail "lease expiry $(m 1 twill_lease_expiry_seconds) s"
exp=$(m 1 twill_lease_expiry_seconds)
python3 -c "import sys; sys.exit(not 0 < float('$exp') <= $TTL)" || fail "lease expiry $exp s not in (0, $TTL]"
for op in list create watch; do
	m_ge 1 "twill_etcd_requests_total{op=\"$op\"}" 1 || fail "no etcd '$op' request counted: $(m 1 "twill_etcd_requests_total{op=\"$op\"}")"
done
m_gt 1 twill_netlink_operations_total 0 || fail "no netlink operations counted"
ready_is 1 "200 ok" || fail "h1 /readyz: $(readyz 1)"
log "h1 /metrics: valid, every family there; lease held, expiry ${exp}s, ready"

# ---- renewals (every TTL/2) --------------------------------------------------------------------
wait_for --timeout 10 m_ge 1 twill_lease_renewals_total 2 || fail "renewals: $(m 1 twill_lease_renewals_total)"
m_ge 1 'twill_etcd_requests_total{op="keepalive"}' 2 || fail "keepalive requests: $(m 1 'twill_etcd_requests_total{op="keepalive"}')"
log "renewals counted: $(m 1 twill_lease_renewals_total), keepalive requests $(m 1 'twill_etcd_requests_total{op="keepalive"}')"

# ---- remote lease added, changed, removed -------------------------------------------------------
FAKE=198.18.250.0/24
fake_value() {
	printf '{"PublicIP":"192.0.2.99","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"%s"}}' "$1"
}
added0=$(m 1 'twill_lease_events_total{kind="added"}')
changed0=$(m 1 'twill_lease_events_total{kind="changed"}')
removed0=$(m 1 'twill_lease_events_total{kind="removed"}')
etcdctl_run put "$(lease_key $FAKE)" "$(fake_value 0a:58:c6:12:fa:01)" >/dev/null
wait_for --timeout 5 m_eq 1 twill_remote_leases 2 || fail "remote leases after adding $FAKE: $(m 1 twill_remote_leases)"
assert_eq "$(m 1 'twill_lease_events_total{kind="added"}')" $((added0 + 1)) "added events"
etcdctl_run put "$(lease_key $FAKE)" "$(fake_value 0a:58:c6:12:fa:02)" >/dev/null
wait_for --timeout 5 m_eq 1 'twill_lease_events_total{kind="changed"}' $((changed0 + 1)) ||
	fail "changed events: $(m 1 'twill_lease_events_total{kind="changed"}') (want $((changed0 + 1)))"
assert_eq "$(m 1 'twill_lease_events_total{kind="added"}')" $((added0 + 1)) "added events after a change"
assert_eq "$(m 1 twill_remote_leases)" 2 "remote leases after a change"
etcdctl_run del "$(lease_key $FAKE)" >/dev/null
wait_for --timeout 5 m_eq 1 twill_remote_leases 1 || fail "remote leases after deleting $FAKE: $(m 1 twill_remote_leases)"
assert_eq "$(m 1 'twill_lease_events_total{kind="removed"}')" $((removed0 + 1)) "removed events"
log "lease events: added/changed/removed counted once each, remote leases 1 -> 2 -> 1"

# ---- kernel repair -----------------------------------------------------------------------------
sub2=$(host_subnet 2)
rep0=$(m 1 twill_kernel_repairs_total)
nl0=$(m 1 twill_netlink_operations_total)
ip -n "$h1" route show "$sub2" | grep -q . || fail "h1 has no route to $sub2"
ip -n "$h1" route del "$sub2"
route_back() { ip -n "$h1" route show "$sub2" | grep -q .; }
wait_for --timeout 5 route_back || fail "route to $sub2 not restored in h1"
wait_for --timeout 5 m_gt 1 twill_kernel_repairs_total "$rep0" || fail "kernel repairs: $(m 1 twill_kernel_repairs_total) (was $rep0)"
m_gt 1 twill_netlink_operations_total "$nl0" || fail "netlink operations did not grow"
log "route to $sub2 deleted in h1: restored in ${TW_WAITED_MS} ms, kernel repairs $rep0 -> $(m 1 twill_kernel_repairs_total)"

# ---- garbage on the health port ----------------------------------------------------------------
ip netns exec "$h1" python3 - "$PORT" <<'EOF' || fail "garbage client failed"
import os, random, socket, sys
port = int(sys.argv[1])
random.seed(4711)
payloads = [os.urandom(n) for n in (1, 7, 100, 4096, 20000)]
payloads += [b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
             b"GET /metrics HTTP/9.9\r\n\r\n", b"\x00\xff\r\n\r\n", b"GET " + b"/" * 9000,
             b"GET /readyz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", b"POST /healthz HTTP/1.0\r\n\r\n",
             b"GET /healthz HTTP/1.1\r\n" + b"X: y\r\n" * 3000]
for i in range(60):
    p = payloads[i % len(payloads)] if i < len(payloads) else os.urandom(random.randint(1, 3000))
    s = socket.create_connection(("127.0.0.1", port), timeout=3)
    try:
        s.sendall(p)
        if i % 3 == 0:
            s.shutdown(socket.SHUT_WR)
            s.settimeout(3)
            while s.recv(65536):
                pass
    except (ConnectionResetError, BrokenPipeError, socket.timeout):
        pass
    finally:
        s.close()
# half-open connections left idle, then closed
idle = [socket.create_connection(("127.0.0.1", port), timeout=3) for _ in range(10)]
for s in idle:
    s.sendall(b"GET /met")
for s in idle:
    s.close()
EOF
_tw_alive "${TW_TWILLD_PID[1]}" || fail "twilld h1 died from garbage requests"
[ "$(ip netns exec "$h1" curl -s -m 3 "http://127.0.0.1:$PORT/healthz")" = ok ] || fail "h1 /healthz after garbage"
scrape 1
ready_is 1 "200 ok" || fail "h1 /readyz after garbage: $(readyz 1)"
log "70 garbage and half-open connections: h1 still serves /healthz, /readyz, valid /metrics"

# ---- readiness while etcd is frozen --------------------------------------------------------------
ERR_KINDS="connect timeout tls auth unavailable rejected protocol stream"
etcd_errors() {
	# shellcheck disable=SC2046
	scrape 1 $(for k in $ERR_KINDS; do echo "twill_etcd_errors_total{kind=\"$k\"}"; done) |
		awk '$1 != "absent" {s += $1} END {print s + 0}'
}
etcd_errors_above() { [ "$(etcd_errors)" -gt "$1" ]; }
err0=$(etcd_errors)
thaw() { kill -CONT "$TW_ETCD_PID" 2>/dev/null || true; }
trap '_rc=$?; thaw; cleanup $_rc' EXIT
kill -STOP "$TW_ETCD_PID"
t0=$(now_ms)
if ! wait_for --timeout 20 ready_is 1 503; then
	thaw
	fail "h1 /readyz with etcd frozen: $(readyz 1)"
fi
notready_ms=$(($(now_ms) - t0))
body=$(readyz 1)
case "$body" in *"not ready: "*) ;; *) thaw; fail "503 without a reason: $body" ;; esac
# The lease was last confirmed at most TTL/2 (the renewal interval) before the freeze, and its
# expiry is kept in whole seconds: not ready after TTL/2 - 1 s at the earliest.
[ $notready_ms -ge $((TTL * 500 - 1000)) ] || { thaw; fail "503 after only $notready_ms ms (TTL ${TTL}s)"; }
assert_eq "$(m 1 twill_ready)" 0 "twill_ready with etcd frozen"
log "etcd frozen: h1 /readyz -> ${body} after $notready_ms ms"
if ! wait_for --timeout 20 etcd_errors_above "$err0"; then
	thaw
	fail "etcd errors did not grow while etcd was frozen ($err0 -> $(etcd_errors))"
fi
err1=$(etcd_errors)
ready_is 1 503 || { thaw; fail "h1 ready again while etcd is still frozen: $(readyz 1)"; }
log "etcd errors counted while frozen: $err0 -> $err1 (timeouts: $(m 1 'twill_etcd_errors_total{kind="timeout"}'))"
thaw
t0=$(now_ms)
wait_for --timeout 40 ready_is 1 "200 ok" || fail "h1 /readyz after etcd came back: $(readyz 1)"
log "etcd running again: h1 /readyz 200 after $(($(now_ms) - t0)) ms"
assert_eq "$(m 1 twill_lease_held)" 1 "twill_lease_held after etcd came back"
assert_eq "$(m 1 twill_ready)" 1 "twill_ready after etcd came back"
m_gt 1 twill_lease_expiry_seconds 0 || fail "lease expiry after etcd came back: $(m 1 twill_lease_expiry_seconds)"

finish_twilld_all
log "PASS"

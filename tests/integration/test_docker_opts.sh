#!/bin/bash
# twill-docker-opts end to end: the real binary against the golden env files
# (tests/fixtures/docker-opts/cases.txt), its exit codes and messages, and the
# daemon.json merge. No network, no root needed; everything in a temp dir.
set -u

BIN=${TWILL_BUILD_DIR:?}/twill-docker-opts
FIX=${TWILL_SOURCE_DIR:?}/tests/fixtures/docker-opts
TMP=$(mktemp -d /tmp/twill-docker-opts-test.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

fails=0
checks=0
fail() {
	echo "FAIL: $*" >&2
	fails=$((fails + 1))
}
ok() {
	checks=$((checks + 1))
}

# run EXPECTED_RC STDERR_SUBSTRING -- ARGS...: runs $BIN with a clean environment.
run() {
	local want_rc=$1 want_err=$2 rc
	shift 3
	env -i PATH=/usr/bin:/bin "$BIN" "$@" >"$TMP/stdout" 2>"$TMP/stderr"
	rc=$?
	if [ "$rc" != "$want_rc" ]; then
		fail "$BIN $*: exit $rc, want $want_rc; stderr: $(cat "$TMP/stderr")"
		return
	fi
	if [ -n "$want_err" ] && ! grep -qF -- "$want_err" "$TMP/stderr"; then
		fail "$BIN $*: stderr lacks '$want_err': $(cat "$TMP/stderr")"
		return
	fi
	ok
}

[ -x "$BIN" ] || { echo "FAIL: $BIN not built" >&2; exit 1; }

# 1. Every golden case, through the binary, byte for byte.
while IFS='|' read -r name sub args envs; do
	case $name in '#'* | '') continue ;; esac
	rm -f "$TMP/out.env"
	# shellcheck disable=SC2086 # word splitting of args and envs is intended
	env -i PATH=/usr/bin:/bin $envs "$BIN" -f "$FIX/$sub" -d "$TMP/out.env" $args 2>"$TMP/stderr"
	rc=$?
	if [ $rc != 0 ]; then
		fail "case $name: exit $rc: $(cat "$TMP/stderr")"
	elif ! cmp -s "$TMP/out.env" "$FIX/env-$name.out"; then
		fail "case $name: output differs:"
		diff -u "$FIX/env-$name.out" "$TMP/out.env" >&2
	else
		ok
	fi
done <"$FIX/cases.txt"
[ "$checks" -ge 20 ] || fail "only $checks golden cases ran"

# Clustered short options, as getopts allows.
run 0 "" -- -f "$FIX/subnet-full.env" -d "$TMP/c.env" -ic
cmp -s "$TMP/c.env" "$FIX/env-both.out" && ok || fail "-ic differs"
run 0 "" -- -f "$FIX/subnet-full.env" -mcd "$TMP/c.env"
cmp -s "$TMP/c.env" "$FIX/env-nomasq-combined.out" && ok || fail "-mcd differs"
# -d - prints to stdout.
run 0 "" -- -f "$FIX/subnet-full.env" -d -
cmp -s "$TMP/stdout" "$FIX/env-default.out" && ok || fail "-d - differs"
# A new env file is 0644; a replaced one keeps its mode.
rm -f "$TMP/m.env"
(umask 077 && env -i "$BIN" -f "$FIX/subnet-full.env" -d "$TMP/m.env") || fail "mode run"
[ "$(stat -c %a "$TMP/m.env")" = 644 ] && ok || fail "new env file mode $(stat -c %a "$TMP/m.env")"
chmod 600 "$TMP/m.env"
run 0 "" -- -f "$FIX/subnet-full.env" -d "$TMP/m.env"
[ "$(stat -c %a "$TMP/m.env")" = 600 ] && ok || fail "replaced env file mode changed"

# 2. Errors: exit 1, a clear message, nothing written.
rm -f "$TMP/none.env"
run 1 "subnet file $TMP/absent.env does not exist" -- -f "$TMP/absent.env" -d "$TMP/none.env"
run 1 '"maybe"' -- -f "$FIX/subnet-bad-ipmasq.env" -d "$TMP/none.env"
run 1 "FLANNEL_IPMASQ" -- -f "$FIX/subnet-bad-ipmasq.env" -d "$TMP/none.env"
run 1 "10.1.74.300/24" -- -f "$FIX/subnet-malformed.env" -d "$TMP/none.env"
run 1 "has no FLANNEL_SUBNET" -- -f "$FIX/subnet-no-subnet.env" -d "$TMP/none.env"
[ ! -e "$TMP/none.env" ] && ok || fail "an env file was written despite an error"
env -i DOCKER_OPTS='--label "a=b"' "$BIN" -f "$FIX/subnet-full.env" -d "$TMP/none.env" \
	2>"$TMP/stderr"
[ $? = 1 ] && grep -qF "DOCKER_OPTS" "$TMP/stderr" && ok || fail "quote in DOCKER_OPTS accepted"
[ ! -e "$TMP/none.env" ] && ok || fail "an env file was written despite an error"

# 3. Usage errors: exit 2.
run 2 "unknown option -x" -- -x
run 2 "unknown option --bogus" -- --bogus
run 2 "option -k needs a value" -- -k
run 2 "option --daemon-json needs a value" -- --daemon-json
run 2 "not a valid variable name" -- -k 1BAD
run 2 'unexpected argument "extra"' -- -f "$FIX/subnet-full.env" extra
run 2 "add -d FILE" -- -f "$FIX/subnet-full.env" --daemon-json "$TMP/d.json" -i
run 0 "" -- -h
grep -q '^Usage: twill-docker-opts' "$TMP/stdout" && ok || fail "-h prints no usage"
run 0 "" -- --help
grep -q -- '--daemon-json' "$TMP/stdout" && ok || fail "--help lacks --daemon-json"

# 4. daemon.json.
mkdir -p "$TMP/etc/docker"
cp "$FIX/daemon-existing.json" "$TMP/etc/docker/daemon.json"
chmod 600 "$TMP/etc/docker/daemon.json"
# Alone: daemon.json only; the default env path is not touched (-d not given).
run 0 "" -- -f "$FIX/subnet-full.env" --daemon-json "$TMP/etc/docker/daemon.json"
cmp -s "$TMP/etc/docker/daemon.json" "$FIX/daemon-existing.out" && ok ||
	fail "daemon.json merge differs: $(diff -u "$FIX/daemon-existing.out" "$TMP/etc/docker/daemon.json")"
[ "$(stat -c %a "$TMP/etc/docker/daemon.json")" = 600 ] && ok || fail "daemon.json mode changed"
[ "$(find "$TMP/etc/docker" -mindepth 1 | wc -l)" = 1 ] && ok || fail "temp files left behind"
# Idempotent.
run 0 "" -- -f "$FIX/subnet-full.env" --daemon-json "$TMP/etc/docker/daemon.json"
cmp -s "$TMP/etc/docker/daemon.json" "$FIX/daemon-existing.out" && ok || fail "second merge differs"
# Created when absent (with its directory), 0644; -d given too: both written.
rm -f "$TMP/both.env"
run 0 "" -- -f "$FIX/subnet-full.env" --daemon-json "$TMP/new/dir/daemon.json" -d "$TMP/both.env"
cmp -s "$TMP/new/dir/daemon.json" "$FIX/daemon-new.out" && ok || fail "new daemon.json differs"
[ "$(stat -c %a "$TMP/new/dir/daemon.json")" = 644 ] && ok || fail "new daemon.json not 0644"
cmp -s "$TMP/both.env" "$FIX/env-default.out" && ok || fail "env file with --daemon-json -d differs"
# -m leaves ip-masq out of daemon.json too.
rm -f "$TMP/nomasq.json"
run 0 "" -- -m -f "$FIX/subnet-ipmasq-true.env" --daemon-json "$TMP/nomasq.json"
cmp -s "$TMP/nomasq.json" "$FIX/daemon-new-nomasq.out" && ok || fail "-m daemon.json differs"
# Malformed: refused with the position, file untouched, and no env file either.
for bad in daemon-malformed.json daemon-array.json daemon-duplicate.json; do
	cp "$FIX/$bad" "$TMP/bad.json"
	rm -f "$TMP/bad.env"
	run 1 "left untouched" -- -f "$FIX/subnet-full.env" --daemon-json "$TMP/bad.json" \
		-d "$TMP/bad.env"
	cmp -s "$TMP/bad.json" "$FIX/$bad" && ok || fail "$bad was modified"
	[ ! -e "$TMP/bad.env" ] && ok || fail "env file written although $bad was refused"
done
cp "$FIX/daemon-malformed.json" "$TMP/bad.json"
run 1 "$TMP/bad.json: line 4 column 1" -- -f "$FIX/subnet-full.env" --daemon-json "$TMP/bad.json"

# 5. --ipv6: daemon.json gets "ipv6" and "fixed-cidr-v6" (network form); a subnet file
# without FLANNEL_IPV6_SUBNET is an error naming the file and EnableIPv6, nothing written.
cp "$FIX/daemon-v6-existing.json" "$TMP/v6.json"
rm -f "$TMP/v6.env"
run 0 "" -- --ipv6 -f "$FIX/subnet-dual.env" --daemon-json "$TMP/v6.json" -d "$TMP/v6.env"
cmp -s "$TMP/v6.json" "$FIX/daemon-v6-existing.out" && ok ||
	fail "--ipv6 daemon.json differs: $(diff -u "$FIX/daemon-v6-existing.out" "$TMP/v6.json")"
cmp -s "$TMP/v6.env" "$FIX/env-ipv6.out" && ok || fail "--ipv6 env file differs"
cp "$FIX/daemon-existing.json" "$TMP/v4.json"
rm -f "$TMP/none.env"
run 1 "subnet file $FIX/subnet-full.env has no FLANNEL_IPV6_SUBNET" -- --ipv6 \
	-f "$FIX/subnet-full.env" --daemon-json "$TMP/v4.json" -d "$TMP/none.env"
grep -qF 'EnableIPv6' "$TMP/stderr" && ok || fail "--ipv6 error does not name EnableIPv6"
[ ! -e "$TMP/none.env" ] && ok || fail "env file written without FLANNEL_IPV6_SUBNET"
cmp -s "$TMP/v4.json" "$FIX/daemon-existing.json" && ok || fail "daemon.json changed on --ipv6 error"
run 0 "" -- --help
grep -qF -- '--fixed-cidr-v6' "$TMP/stdout" && ok || fail "--help lacks --ipv6"

echo "docker-opts: $checks checks passed, $fails failed"
[ "$fails" = 0 ]

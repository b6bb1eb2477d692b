#!/usr/bin/env bash
# contrib/systemd: `systemd-analyze verify` accepts twilld.service and both Docker drop-ins
# (on a stand-in docker.service), with no warning. The units name /usr/local/bin/...; verify
# wants those binaries to exist, so a temporary copy points at the build directory, and the
# man pages of Documentation= are found through MANPATH (docs/man). Also: the environment
# file only sets FLANNELD_* and TWILLD_ARGS, and every FLANNELD_* it names is a twilld flag.
# Touches nothing outside its temporary directory (no systemd is running here).
set -euo pipefail

src=${TWILL_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
build=${TWILL_BUILD_DIR:-$src/build}
units=$src/contrib/systemd

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

command -v systemd-analyze >/dev/null ||
	fail "systemd-analyze not found: install the systemd package (contrib/deps.sh)"
for b in twilld twillctl twill-docker-opts; do
	[ -x "$build/$b" ] || fail "no $build/$b (build first, or set TWILL_BUILD_DIR)"
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/twill-units.XXXXXX")
trap '[ -n "${KEEP:-}" ] || rm -rf "$tmp"' EXIT

# Man pages for Documentation=man:...
mkdir -p "$tmp/man/man1" "$tmp/man/man8"
cp "$src"/docs/man/*.8 "$tmp/man/man8/"
cp "$src"/docs/man/*.1 "$tmp/man/man1/"
export MANPATH=$tmp/man

# The units, with binaries in the build directory; dockerd is a stand-in.
rewrite() {
	sed -e "s#/usr/local/bin/#$build/#g" -e "s#/usr/bin/dockerd#/bin/true#g" "$1" >"$2"
}
mkdir -p "$tmp/units/docker.service.d"
rewrite "$units/twilld.service" "$tmp/units/twilld.service"
printf '[Unit]\nDescription=stand-in for Docker\n\n[Service]\nExecStart=/bin/true\n' \
	>"$tmp/units/docker.service"

verify() {
	local what=$1 out
	shift
	# SYSTEMD_UNIT_PATH with a trailing ':' keeps the built-in paths (network-online.target...)
	if ! out=$(cd "$tmp/units" && SYSTEMD_UNIT_PATH="$tmp/units:" systemd-analyze verify "$@" 2>&1); then
		fail "$what: systemd-analyze verify failed:
$out"
	fi
	# Warnings do not change the exit status: any line about our units is a failure.
	if grep -E 'twilld\.service|docker\.service|twill\.conf|twill-daemon-json' <<<"$out"; then
		fail "$what: systemd-analyze verify warns (above)"
	fi
	echo "ok: $what"
}

verify twilld.service "$tmp/units/twilld.service"
for dropin in twill.conf twill-daemon-json.conf.example; do
	rm -f "$tmp/units/docker.service.d/"*
	rewrite "$units/docker.service.d/$dropin" "$tmp/units/docker.service.d/${dropin%.example}"
	verify "docker drop-in $dropin" "$tmp/units/docker.service" "$tmp/units/twilld.service"
done

# A drop-in that systemd did not read would verify trivially: check it was merged.
rm -f "$tmp/units/docker.service.d/"*
rewrite "$units/docker.service.d/twill.conf" "$tmp/units/docker.service.d/twill.conf"
printf '[Service]\nExecStartPost=/nonexistent/twill-check\n' >"$tmp/units/docker.service.d/zz.conf"
out=$(cd "$tmp/units" && SYSTEMD_UNIT_PATH="$tmp/units:" systemd-analyze verify \
	"$tmp/units/docker.service" 2>&1 || true)
grep -q nonexistent <<<"$out" || fail "drop-ins in docker.service.d are not read by verify: $out"
echo "ok: drop-ins are merged by verify"

# Debian's docker.io: its docker.service runs /usr/sbin/dockerd with $DOCKER_OPTS, so the
# drop-in must not replace ExecStart= (it named /usr/bin/dockerd once, which Debian lacks);
# verify the drop-in on the packaged unit itself.
grep -q '^ExecStart=' "$units/docker.service.d/twill.conf" &&
	fail "docker.service.d/twill.conf overrides ExecStart= (Debian's unit already passes \$DOCKER_OPTS)"
grep -q '^EnvironmentFile=-/run/docker_opts.env$' "$units/docker.service.d/twill.conf" ||
	fail "docker.service.d/twill.conf does not read /run/docker_opts.env"
pkg_unit=/lib/systemd/system/docker.service
[ -f "$pkg_unit" ] || fail "no $pkg_unit: install docker.io (contrib/deps.sh)"
exec_start=$(sed -n 's/^ExecStart=//p' "$pkg_unit")
case "$exec_start" in
*'$DOCKER_OPTS'*) ;;
*) fail "$pkg_unit: ExecStart does not pass \$DOCKER_OPTS: $exec_start" ;;
esac
[ -x "${exec_start%% *}" ] || fail "$pkg_unit: ${exec_start%% *} is not installed"
rm -f "$tmp/units/docker.service.d/"*
cp "$pkg_unit" "$tmp/units/docker.service"
rewrite "$units/docker.service.d/twill.conf" "$tmp/units/docker.service.d/twill.conf"
verify "docker drop-in twill.conf on $pkg_unit (ExecStart=$exec_start)" \
	"$tmp/units/docker.service" "$tmp/units/twilld.service"

# The environment file: comments, FLANNELD_* and TWILLD_ARGS only; every FLANNELD_* a flag.
help=$("$build/twilld" --help 2>&1)
n=0
while IFS= read -r line; do
	line=${line#\#}
	case "$line" in
	'' | ' '*) continue ;;
	FLANNELD_*=*)
		var=${line%%=*}
		flag=${var#FLANNELD_}
		flag=${flag,,}
		flag=${flag//_/-}
		grep -qE -- "^  --$flag( |\$)" <<<"$help" || fail "twilld.default names $var: twilld has no --$flag"
		grep -q "\[\$$var\]" <<<"$help" || fail "twilld --help does not list \$$var"
		n=$((n + 1))
		;;
	TWILLD_ARGS=*) ;;
	*) fail "twilld.default: unexpected line: $line" ;;
	esac
done <"$units/twilld.default"
[ "$n" -ge 5 ] || fail "twilld.default names only $n FLANNELD_* variables"
echo "ok: twilld.default names $n FLANNELD_* variables, all twilld flags"
echo PASS

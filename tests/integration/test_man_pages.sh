#!/usr/bin/env bash
# docs/man: each page renders with groff (-ww: every warning) without a single warning, man -l
# opens it, it has the sections every page needs, and it documents every flag that the
# binary's --help lists (so a new flag without documentation fails here).
set -euo pipefail

src=${TWILL_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
build=${TWILL_BUILD_DIR:-$src/build}

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

command -v groff >/dev/null || fail "groff not found: install groff-base (contrib/deps.sh)"
command -v man >/dev/null || fail "man not found: install man-db (contrib/deps.sh)"

# page binary [fewest flags expected] (twill-cni takes its input from CNI_* and stdin)
pages=("twilld.8 twilld" "twillctl.8 twillctl" "twill-docker-opts.1 twill-docker-opts"
	"twill-cni.8 twill-cni 2")
sections=(NAME SYNOPSIS DESCRIPTION OPTIONS ENVIRONMENT FILES "EXIT STATUS" EXAMPLES "SEE ALSO")

for entry in "${pages[@]}"; do
	read -r page bin min <<<"$entry"
	f=$src/docs/man/$page
	[ -f "$f" ] || fail "no $f"
	[ -x "$build/$bin" ] || fail "no $build/$bin (build first, or set TWILL_BUILD_DIR)"

	warn=$(groff -man -Tutf8 -ww -z "$f" 2>&1) || fail "$page: groff failed: $warn"
	[ -z "$warn" ] || fail "$page: groff warnings:
$warn"
	out=$(MANWIDTH=80 man -l "$f" 2>&1 >/dev/null) || fail "$page: man -l failed: $out"
	[ -z "$out" ] || fail "$page: man -l says: $out"

	# Plain text, no hyphenation, long lines: flags stay whole.
	text=$(groff -man -Tascii -rHY=0 -rLL=250n -P-cbou "$f" 2>/dev/null)
	for s in "${sections[@]}"; do
		grep -qx "$s" <<<"$text" || fail "$page: no $s section"
	done
	grep -q "^ *$bin - " <<<"$text" || fail "$page: NAME does not start with \"$bin - \""

	help=$("$build/$bin" --help 2>&1) || true
	n=0
	while read -r flag; do
		case "$flag" in
		--h) flag=-h ;; # Go-style alias of --help
		esac
		grep -qF -- "$flag" <<<"$text" || fail "$page: $bin --help lists $flag, the page does not"
		n=$((n + 1))
	done < <(grep -oE '^ {2,}-{1,2}[a-zA-Z][a-zA-Z0-9_-]*' <<<"$help" | sed 's/^ *//' | sort -u)
	[ "$n" -ge "${min:-5}" ] || fail "$page: found only $n flags in $bin --help"
	echo "ok: $page ($n flags of $bin --help documented)"
done
echo PASS

#!/usr/bin/env bash
# Installs what is missing, builds twill twice into fresh build directories and
# runs the suite in both:
#   release  (gcc, hardened, -O3 Release as packagers build it, -g for valgrind's reports):
#                                    unit, integration (valgrind runs included)
#   sanitize (clang, ASan+UBSan):    unit, integration, fault injection, fuzzing
# The fault-injection suite runs once, under the sanitizers, where a memory error
# under a fault is caught too; running it twice would double its ~5 minutes.
# Non-zero on any failure.
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
cd "$src"

if [ "${TWILL_SKIP_DEPS:-0}" != 1 ]; then
	bash contrib/deps.sh
fi

jobs=$(nproc)
out=${TWILL_TEST_OUT:-$src/build-test}
rm -rf "$out"
mkdir -p "$out"
status=0
summary=()

run_suite() { # name, build dir, cmake args...
	local name=$1 dir=$2
	shift 2
	echo "=== [$name] configure and build"
	cmake -S "$src" -B "$dir" "$@" >"$dir.cmake.log" 2>&1 ||
		{ cat "$dir.cmake.log"; return 1; }
	cmake --build "$dir" -j "$jobs" 2>&1 | tail -n 30
	[ "${PIPESTATUS[0]}" -eq 0 ] || return 1
	echo "=== [$name] ctest"
	local rc=0
	(cd "$dir" && ctest --output-on-failure --no-tests=error -j "$jobs" ${TWILL_CTEST_ARGS:-}) | tee "$dir.ctest.log" || rc=1
	[ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
	summary+=("[$name] $(grep -E 'tests passed|tests failed' "$dir.ctest.log" | tail -n 1)")
	return $rc
}

run_suite release "$out/release" -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_FLAGS=-g \
	-DCMAKE_C_COMPILER=gcc -DTWILL_FAULTS=OFF || status=1
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1} \
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
	run_suite sanitize "$out/sanitize" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
	-DTWILL_SANITIZE=ON -DTWILL_FUZZ=ON -DTWILL_FUZZ_SECONDS="${TWILL_FUZZ_SECONDS:-20}" || status=1

echo "=== summary"
for s in "${summary[@]}"; do echo "$s"; done
if [ $status -eq 0 ]; then
	echo "contrib/test.sh: all suites passed"
else
	echo "contrib/test.sh: FAILED"
fi
exit $status

#!/usr/bin/env bash
# The README's test command: installs what the tests need, builds, starts
# libvirt, and runs every suite against the real parts:
#   unit (cmocka), cli (hyperctl's manifests and refusals, no daemon),
#   fs (shell over a real mount and libvirtd), security (the attacks of
#   docs/security.md, as the actors that try them), web (the dashboard's API
#   and headless Chromium), unit and fs again under ASan+UBSan, fuzz
#   (short libFuzzer runs), k8s (a real API server), bench (ratios
#   against peers; they fail only when broken), fresh (both README
#   commands on a bare Debian 12 root, tests/fresh).
# Ends with the line "N passed, N failed".  Select suites with
# SUITES="unit cli fs security web asan fuzz k8s bench fresh" (default: all);
# SUITES=none does the set-up only (packages, libvirt, the build).
set -uo pipefail
cd "$(dirname "$0")/.."
TOP=$PWD
SUITES=${SUITES:-unit cli fs security web asan fuzz k8s bench fresh}
FUZZ_SECONDS=${FUZZ_SECONDS:-10}
# Per test script or program; the slowest take about 4 minutes.  The
# fresh-machine check gets longer: on a machine's first run it downloads
# every package into its cache.
TEST_TIMEOUT=${TEST_TIMEOUT:-900}
FRESH_TIMEOUT=${FRESH_TIMEOUT:-2700}
LOGS=${TEST_LOGS:-/tmp/hypersdk-test-logs}
rm -rf "$LOGS"
mkdir -p "$LOGS"

passed=0
failed=0
skipped=0
CURRENT=
# Ctrl-C or a TERM stops the test that runs and lets its cleanup run.
stop_current() {
	[ -n "$CURRENT" ] || return 0
	kill -TERM -- "-$CURRENT" 2>/dev/null || kill -TERM "$CURRENT" 2>/dev/null
	wait "$CURRENT" 2>/dev/null
}
trap 'stop_current; echo "interrupted"; exit 130' INT TERM
say() { printf '%s\n' "$*"; }
want() { [[ " $SUITES " == *" $1 "* ]]; }

# run_tap NAME CMD...: run a TAP producer, echo its lines, count results.
run_tap() {
	local name=$1 log="$LOGS/${1//\//_}.log" rc ok nok skip t0
	shift
	say "### $name"
	t0=$SECONDS
	# A hung test fails alone instead of stopping the whole run at CI's
	# limit; timeout signals the test's process group, whose EXIT traps
	# clean up.  That group is not ours, so our INT and TERM are passed
	# on (see the trap below).
	timeout -k 30 "${RUN_TIMEOUT:-$TEST_TIMEOUT}" "$@" </dev/null >"$log" 2>&1 &
	CURRENT=$!
	wait "$CURRENT"
	rc=$?
	CURRENT=
	# 124: stopped by TERM; 137: it ignored TERM and was killed.
	[ "$rc" -ne 124 ] && [ "$rc" -ne 137 ] ||
		echo "not ok - timed out after ${RUN_TIMEOUT:-$TEST_TIMEOUT}s" >>"$log"
	say "$name: # $((SECONDS - t0))s"
	grep -E '^(not )?ok |^#|^1\.\.' "$log" | sed "s|^|$name: |"
	ok=$(grep -E '^ok ' "$log" | grep -cvE '# SKIP')
	skip=$(grep -E '^ok ' "$log" | grep -cE '# SKIP')
	nok=$(grep -cE '^not ok ' "$log")
	passed=$((passed + ok))
	skipped=$((skipped + skip))
	failed=$((failed + nok))
	if [ "$rc" -ne 0 ] && [ "$nok" -eq 0 ]; then
		failed=$((failed + 1))
		say "$name: not ok - exited with status $rc (log: $log)"
		tail -n 20 "$log" | sed "s|^|$name: # |"
	fi
}

# step NAME CMD...: a set-up step that counts as one test.
step() {
	local name=$1 log="$LOGS/step-${1//[^A-Za-z0-9_.-]/_}.log"
	shift
	if "$@" >"$log" 2>&1; then
		passed=$((passed + 1)); say "ok - $name"
		return 0
	fi
	failed=$((failed + 1)); say "not ok - $name (log: $log)"
	tail -n 30 "$log" | sed 's/^/# /'
	return 1
}

# build DIR [meson options...]: with every test program (-Dtests=enabled:
# a missing test dependency is an error here, not a skip).  A build dir
# the run command configured gets the option changed in place.
build() {
	local dir=$1
	shift
	if [ -f "$dir/build.ninja" ]; then
		meson configure "$dir" -Dtests=enabled "$@" || return 1
	else
		meson setup "$dir" -Dtests=enabled "$@" || return 1
	fi
	ninja -C "$dir"
}

unit_suite() { # BUILD_DIR LABEL
	local t
	for t in "$1"/tests/unit/unit_* "$1"/tests/backend/be_*; do
		[ -f "$t" ] && [ -x "$t" ] || continue
		run_tap "$2/$(basename "$t")" env CMOCKA_MESSAGE_OUTPUT=TAP "$t"
	done
}

fs_suite() { # BUILD_DIR LABEL
	local t
	for t in tests/fs/*.sh; do
		case $t in */lib.sh) continue ;; esac
		run_tap "$2/$(basename "$t" .sh)" env BUILD="$TOP/$1" bash "$t"
	done
}

fuzz_suite() {
	local f corpus name dict
	for f in build-fuzz/tests/fuzz/fuzz_*; do
		[ -f "$f" ] && [ -x "$f" ] || continue
		name=$(basename "$f")
		corpus=$(mktemp -d)
		cp -r "tests/fuzz/corpus/${name#fuzz_}/." "$corpus/" 2>/dev/null
		dict=()
		[ -f "tests/fuzz/${name#fuzz_}.dict" ] && dict=(-dict="tests/fuzz/${name#fuzz_}.dict")
		step "fuzz/$name ${FUZZ_SECONDS}s" \
			"$f" -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=2048 \
			-print_final_stats=1 "${dict[@]}" "$corpus"
		rm -rf "$corpus"
	done
}

step deps scripts/deps.sh test || { say "$passed passed, $failed failed"; exit 1; }
step libvirt scripts/libvirt-up.sh
step build build build
step sweep tests/sweep.sh

if want unit; then
	unit_suite build unit
	# The daemon's unit tests need no root: pinned by running them as
	# nobody, from a copy nobody can reach wherever the clone is.
	NOBODY_DIR=$(mktemp -d /tmp/hsdk-nobody.XXXXXX)
	chmod 755 "$NOBODY_DIR"
	install -m 755 build/tests/unit/unit_mountd "$NOBODY_DIR/"
	run_tap unit/mountd-as-nobody runuser -u nobody -- \
		env CMOCKA_MESSAGE_OUTPUT=TAP TMPDIR=/tmp "$NOBODY_DIR/unit_mountd"
	rm -rf "$NOBODY_DIR"
fi
if want cli; then
	for t in tests/cli/*.sh; do
		run_tap "cli/$(basename "$t" .sh)" env BUILD="$TOP/build" bash "$t"
	done
fi
if want fs; then fs_suite build fs; fi
if want security; then
	for t in tests/security/*.sh; do
		[ -f "$t" ] || continue
		case $t in */lib.sh) continue ;; esac
		run_tap "security/$(basename "$t" .sh)" env BUILD="$TOP/build" bash "$t"
	done
fi
if want web; then
	for t in tests/web/*.sh; do
		run_tap "web/$(basename "$t" .sh)" env BUILD="$TOP/build" TEST_LOGS="$LOGS" bash "$t"
	done
fi
if want asan && step build-asan build build-asan -Db_sanitize=address,undefined \
	-Db_lundef=false -Dbuildtype=debug; then
	export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
	export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
	export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$TOP/tests/lsan.supp:print_suppressions=0}
	unit_suite build-asan asan-unit
	# fs/ha.sh pins the daemon's own 10 s restart spacing in the fs suite;
	# here it checks the doubling from 2 s, a minute shorter.  fs/carbon.sh
	# leaves out what unit_carbon runs under the sanitizers already.
	RESTART_BACKOFF=2 CARBON_QUICK=1 fs_suite build-asan asan-fs
	unset ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS
fi
if want fuzz && step build-fuzz env CC=clang-14 bash -c \
	'[ -f build-fuzz/build.ninja ] || meson setup build-fuzz -Dtests=enabled -Dfuzz=true -Db_lundef=false; ninja -C build-fuzz'; then
	fuzz_suite
fi
if want k8s && step k8s-build tests/k8s/cluster.sh build; then
	for t in tests/k8s/*.sh; do
		case $t in */cluster.sh | */helm.sh | */lib.sh | */node.sh) continue ;; esac
		run_tap "k8s/$(basename "$t" .sh)" bash "$t"
	done
fi
if want bench; then
	for t in tests/bench/*.sh; do
		[ -f "$t" ] || continue
		run_tap "bench/$(basename "$t" .sh)" env BUILD="$TOP/build" bash "$t"
	done
fi
if want fresh; then
	run_tap fresh/errors bash tests/fresh/errors.sh
	RUN_TIMEOUT=$FRESH_TIMEOUT run_tap fresh/fresh bash tests/fresh/fresh.sh
fi

say "logs: $LOGS"
say "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]

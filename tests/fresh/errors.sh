#!/usr/bin/env bash
# The set-up scripts never fail silently: each failing step of
# scripts/run.sh, deps.sh, libvirt-up.sh and test.sh prints the tail of
# the tool's output and a one-line reason, and exits non-zero.  The tools
# that fail are stand-ins early on PATH, in a copy of scripts/, so
# nothing is installed, built or started.  TAP output.
set -uo pipefail
export LC_ALL=C
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
T=$(mktemp -d /tmp/hsdk-errors.XXXXXX)
trap 'rm -rf "$T"' EXIT

. "$TOP/tests/tap.sh"

mkdir -p "$T/src/scripts" "$T/bin" "$T/npm/node_modules/playwright-core"
cp "$TOP"/scripts/* "$T/src/scripts/"
echo '{ "version": "1.65.1" }' >"$T/npm/node_modules/playwright-core/package.json"

# fake NAME SCRIPT: a stand-in for the tool NAME.
fake() { printf '#!/bin/sh\n%s\n' "$2" >"$T/bin/$1"; chmod +x "$T/bin/$1"; }
# Every package is installed, Node is 20: deps.sh has nothing to do.
fake dpkg-query 'echo "install ok installed"'
fake node 'echo 20'

# expect DESC RC_WANTED(nonzero) PATTERN... -- CMD...: CMD fails, and its
# output has every PATTERN (fixed strings).
expect() {
	local desc=$1 out rc=0 p missing=
	shift
	local pats=()
	while [ "$1" != -- ]; do pats+=("$1"); shift; done
	shift
	out=$(cd "$T/src" && env PATH="$T/bin:$PATH" HYPERSDK_NPM_CACHE="$T/npm" \
		TEST_LOGS="$T/logs" "$@" 2>&1) || rc=$?
	for p in "${pats[@]}"; do
		grep -qF -- "$p" <<<"$out" || missing+="'$p' "
	done
	if [ "$rc" -ne 0 ] && [ -z "$missing" ]; then
		ok "$desc"
	else
		not_ok "$desc" "exit $rc; missing: ${missing:-none}
$out"
	fi
}

fake meson 'echo "tests/unit/meson.build:1:13: ERROR: Dependency \"cmocka\" not found"; exit 1'
expect "run.sh: a failing configure shows meson's error and the reason" \
	'ERROR: Dependency "cmocka" not found' \
	'run: configure (meson setup build) failed (exit 1)' -- scripts/run.sh

fake meson 'mkdir -p build && touch build/build.ninja'
fake ninja 'echo "core/x.c:1:1: error: expected declaration"; echo "ninja: build stopped"; exit 1'
expect "run.sh: a failing build shows the compiler's error and the reason" \
	'core/x.c:1:1: error: expected declaration' 'run: build (ninja) failed (exit 1)' \
	-- scripts/run.sh

fake dpkg-query 'exit 1'
fake apt-get 'if [ "$1" = update ]; then echo "E: Failed to fetch http://deb.example/InRelease"; exit 100; fi; exit 0'
expect "deps.sh: a failing apt-get update shows apt's error, the reason and a hint" \
	'E: Failed to fetch http://deb.example/InRelease' 'deps: apt-get update failed (exit 100)' \
	"deps: Debian's archive must be reachable" -- scripts/deps.sh run

fake apt-get 'if [ "$1" = install ]; then echo "E: Unable to locate package libfuse3-dev"; exit 100; fi; exit 0'
expect "deps.sh: a failing apt-get install shows apt's error and the reason" \
	'E: Unable to locate package libfuse3-dev' 'deps: apt-get install failed (exit 100)' \
	-- scripts/deps.sh run

fake dpkg-query 'echo "install ok installed"'
rm -rf "$T/npm/node_modules"
fake npm 'echo "npm ERR! code E404"; exit 1'
expect "deps.sh: a failing npm install shows npm's error and the reason" \
	'npm ERR! code E404' 'deps: npm install failed (exit 1)' -- scripts/deps.sh test

# libvirt-up.sh with a libvirt that never answers (or will not start):
# the same reason either way, with virsh's own words.
fake virsh 'echo "error: failed to connect to the hypervisor"; exit 1'
fake libvirtd 'echo "libvirtd: cannot start"; exit 1'
fake virtlogd 'exit 0'
fake virtlockd 'exit 0'
if [ "$(id -u)" -eq 0 ]; then
	expect "libvirt-up.sh: a libvirtd that does not answer gives the reason" \
		'libvirt-up: libvirtd' -- env LIBVIRT_UP_WAIT=1 scripts/libvirt-up.sh
else
	ok "libvirt-up.sh # SKIP needs root"
fi

# test.sh: a failing set-up step is a counted failure with the tail of
# its log, and the run still ends with the summary line.
fake meson 'echo "meson: cannot configure here"; exit 1'
fake virsh 'exit 0'
fake npm 'exit 0'
mkdir -p "$T/npm/node_modules/playwright-core"
echo '{ "version": "1.65.1" }' >"$T/npm/node_modules/playwright-core/package.json"
expect "test.sh: a failing build step is shown and counted" \
	'not ok - build' '# meson: cannot configure here' ' failed' -- \
	env SUITES=none scripts/test.sh

done_testing

#!/usr/bin/env bash
# TAP test: the man pages render without warnings at 80 columns, and
# hyperctl(1) names every -op that hyperctl knows.
set -uo pipefail
export LC_ALL=C
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD:-$TOP/build}
n=0
failed=0
res() { n=$((n + 1)); if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else failed=$((failed + 1)); echo "not ok $n - $2"; fi; }
if ! command -v man >/dev/null; then echo "1..0 # SKIP no man"; exit 0; fi
for p in "$TOP"/docs/man/*.[0-9]; do
	w=$(MANWIDTH=80 man --warnings -l "$p" 2>&1 >/dev/null)
	[ -z "$w" ] || printf '%s\n' "$w" | sed 's/^/# /'
	res "$([ -z "$w" ]; echo $?)" "$(basename "$p") renders without warnings"
done
page=$(MANWIDTH=200 man -l "$TOP/docs/man/hyperctl.1" 2>/dev/null)
for op in $("$BUILD/cli/hyperctl" k8s -help | sed -n 's/^ops://p'); do
	grep -q -- "$op" <<<"$page"
	res $? "hyperctl(1) documents -op $op"
done
echo "1..$n"
[ "$failed" -eq 0 ]

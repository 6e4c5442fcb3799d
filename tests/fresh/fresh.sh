#!/usr/bin/env bash
# The fresh-machine check: both README commands on a bare Debian 12.
#   1. a minimal bookworm root (mmdebstrap, cached per host) holding a
#      clean clone of this checkout, in a mount namespace and a network
#      namespace of its own (tests/fresh/root.sh);
#   2. scripts/deps.sh run;
#   3. in the machine's network namespace, the README's run command with a
#      temporary --mount; the tour's first lines with their phases
#      checked; the README's whole 30-second tour, read out of README.md;
#      umount;
#   4. scripts/deps.sh test and the test command's set-up (configure and
#      build with tests enabled, libvirt, sweep: SUITES=none
#      scripts/test.sh), and Debian's Node.js with the playwright-core
#      deps.sh chose for it driving Chromium once;
#   5. every process of the machine stopped by pid, its namespaces
#      released, its folder removed (also when this script fails or is
#      stopped; tests/sweep.sh after a SIGKILL).
# TAP output.  Needs root, mmdebstrap, git and the network to Debian's
# archive and the npm registry (warm: only index checks).
set -uo pipefail
export LC_ALL=C
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
. "$TOP/tests/fresh/root.sh"

MNT=/tmp/fresh-mnt
UP=0
VM=fresh-web
LOG=$(mktemp /tmp/hsdk-fresh-log.XXXXXX)

. "$TOP/tests/tap.sh"
# step DESC CMD...: one test; on failure the tail of what CMD printed.
step() {
	local d=$1 t0=$SECONDS
	shift
	if "$@" >"$LOG" 2>&1; then
		ok "$d # $((SECONDS - t0))s"
		return 0
	fi
	not_ok "$d" "$(tail -n 40 "$LOG")"
	return 1
}
# What the root's logs say, for a failure's report.
diagnose() {
	local f
	[ "$UP" = 1 ] || return 0
	for f in "$MNT/vms/$VM/err" /var/log/hypersdk/mountd.log \
		/var/log/libvirt/libvirtd.log "/var/log/libvirt/qemu/$VM.log"; do
		echo "# --- $f"
		fresh_in "$W" "tail -n 15 $f" 2>&1 | sed 's/^/# /'
	done
}
# Later steps need earlier ones: stop at the first failure.
need() { step "$@" || { diagnose; done_testing; }; }

[ "$(id -u)" -eq 0 ] || { echo "1..0 # SKIP needs root"; exit 0; }
for tool in mmdebstrap git unshare nsenter pivot_root ip; do
	command -v "$tool" >/dev/null ||
		{ not_ok "$tool is installed (scripts/deps.sh test)"; done_testing; }
done

W=$(mktemp -d /var/tmp/hsdk-fresh.XXXXXX)
R=$W/root
chmod 755 "$W"
echo $$ >"$W/owner.new" && mv "$W/owner.new" "$W/owner" # for tests/sweep.sh
cleanup() {
	fresh_remove "$W"
	rm -f "$LOG"
}
# FRESH_KEEP=1 leaves a failed run's root for a look (tests/sweep.sh
# removes it later).
trap '[ "${FRESH_KEEP:-0}" = 1 ] && [ "$tap_failed" -gt 0 ] && echo "# kept $W" || cleanup' EXIT
trap 'exit 143' TERM INT
T0=$SECONDS

need "bookworm root (mmdebstrap, cached in $FRESH_CACHE)" fresh_tarball
need "root unpacked, namespaces up" fresh_make "$W"
UP=1

# The checkout as it is: committed files by clone, then the working
# tree's changes on top (none in CI, which runs on a clean clone).
clone() {
	local f
	git clone -q --no-hardlinks "$TOP" "$R/root/hypersdk" || return 1
	while IFS= read -r -d '' f; do
		if [ -e "$TOP/$f" ]; then
			(cd "$TOP" && cp --parents -t "$R/root/hypersdk" -- "$f") || return 1
		else
			rm -f -- "$R/root/hypersdk/$f"
		fi
	done < <(cd "$TOP" && git ls-files -z -m -o --exclude-standard)
	git -C "$R/root/hypersdk" status --short | sed 's/^/changed: /'
}
need "clean clone of the checkout" clone

need "scripts/deps.sh run (apt-get, bare root)" fresh_in "$W" scripts/deps.sh run
need "scripts/run.sh --mount $MNT (build, libvirtd, mount; own netns)" \
	fresh_in_netns "$W" scripts/run.sh --mount "$MNT"
# Without cmocka (a run machine) the configure said so, once.
said_cmocka() {
	fresh_in "$W" "grep -c 'cmocka not found: the unit tests are not built' \
		build/meson-logs/meson-log.txt" | grep -qx 1
}
step "configure without cmocka: unit tests skipped with one message" said_cmocka

# The tour, through the mount as the root's shell sees it.
tour() { fresh_in "$W" "cd $MNT/vms && $*"; }
phase() { fresh_in "$W" "head -1 $MNT/vms/$VM/status"; }
need "create $VM memory=64Mi disk=64Mi" tour "echo 'create $VM memory=64Mi disk=64Mi' > ctl"
# is_phase WANT: the first line of the VM's status is "phase WANT"; else
# the status and err are printed.
is_phase() {
	[ "$(phase)" = "phase $1" ] && return 0
	tour "cat $VM/status $VM/err"
	return 1
}
step "phase Stopped after create" is_phase Stopped
need "start" tour "echo start > $VM/ctl"
step "phase Running" is_phase Running
step "hyperctl wait $VM Running" fresh_in "$W" \
	"build/cli/hyperctl -m $MNT wait $VM Running -timeout 10"
need "stop force" tour "echo 'stop force' > $VM/ctl"
step "phase Stopped after stop force" is_phase Stopped
need "delete" tour "echo delete > $VM/ctl"
gone() { local l; l=$(fresh_in "$W" "ls $MNT/vms") || return 1; ! grep -qx "$VM" <<<"$l"; }
step "$VM gone from vms/" gone
# The README's 30-second tour itself, line by line, in one shell (so cd
# holds), on the same mount: the README is the test's input, so the two
# cannot drift apart.  Each line must succeed, but the one that shows a
# refused message; a few lines' output is checked too.
readme_tour() {
	awk '/^## A 30-second tour/ {f = 1; next} /^## / {f = 0} f && /^    /' \
		"$TOP/README.md" | sed -E 's/^    //; s/[[:space:]]{2,}#.*$//; /^[[:space:]]*$/d' |
		sed "s|/run/hypersdk|$MNT|g"
}
run_readme_tour() {
	local i=0 line out rc
	mkdir -p "$R/root/tour"
	{
		echo 'exec </dev/null'
		while IFS= read -r line; do
			i=$((i + 1))
			printf '{ %s\n} >/root/tour/%d.out 2>&1; echo $? >/root/tour/%d.rc\n' \
				"$line" "$i" "$i"
		done < <(readme_tour)
		echo 'sleep 0.5; kill $(jobs -p) 2>/dev/null; exit 0'
	} >"$R/root/tour.sh"
	if ! fresh_in "$W" "timeout 300 bash /root/tour.sh"; then
		not_ok "README tour ran to its end"
		return
	fi
	i=0
	while IFS= read -r line; do
		i=$((i + 1))
		rc=$(cat "$R/root/tour/$i.rc" 2>/dev/null || echo missing)
		out=$(cat "$R/root/tour/$i.out" 2>/dev/null)
		case $line in
		*frobnicate*) [ "$rc" != 0 ] && [ "$rc" != missing ] ;;
		*) [ "$rc" = 0 ] ;;
		esac || { not_ok "README tour: $line" "exit $rc: $out"; continue; }
		case $line in
		'cat web/err') like "README tour: $line" "$out" 'unknown control message "frobnicate"' ;;
		'cat web/wait &') ok "README tour: $line" ;;
		'grep cpus web/spec') like "README tour: $line" "$out" 'cpus: 2' ;;
		'cat web/status') like "README tour: $line" "$out" 'phase Running' ;;
		*) ok "README tour: $line" ;;
		esac
	done < <(readme_tour)
	like "README tour: the blocked wait printed the change" \
		"$(cat "$R"/root/tour/*.out | tr '\n' ' ')" 'operation pause|phase Paused'
	like "README tour: at least 20 lines found in README.md" "$i" '^[2-9][0-9]$'
}
run_readme_tour

mountd_runs() {
	local p
	for p in $(fresh_pids "$W"); do
		[ "$(cat "/proc/$p/comm" 2>/dev/null)" = hypersdk-mountd ] && return 0
	done
	return 1
}
unmounted() {
	fresh_in "$W" "umount $MNT" || return 1
	for _ in $(seq 100); do
		mountd_runs || return 0
		sleep 0.1
	done
	echo "hypersdk-mountd still runs after umount"
	return 1
}
step "umount $MNT stops the daemon" unmounted

need "scripts/deps.sh test (apt-get, npm)" fresh_in "$W" scripts/deps.sh test
need "the test command's set-up (SUITES=none scripts/test.sh)" fresh_in "$W" \
	'SUITES=none scripts/test.sh && test -x build/tests/unit/unit_ctl'
# Debian 12's Node.js 18 with the playwright-core chosen for it (1.49.1).
browser() {
	fresh_in_netns "$W" 'node --version; NODE_PATH=/var/cache/hypersdk/npm/node_modules node -e "
const pw = require(\"playwright-core\");
(async () => {
  const b = await pw.chromium.launch({executablePath: \"/usr/bin/chromium\",
    args: [\"--headless\", \"--no-sandbox\", \"--disable-gpu\", \"--no-first-run\",
      \"--disable-background-networking\", \"--disable-component-update\", \"--disable-sync\"]});
  const p = await b.newPage();
  await p.setContent(\"<title>fresh</title><button>ok</button>\");
  console.log(pw.chromium.name(), b.version(), await p.title());
  if (await p.title() !== \"fresh\") process.exit(1);
  await b.close();
})().catch(e => { console.error(e); process.exit(1); });"'
}
step "Debian's Node.js with playwright-core drives Chromium" browser
echo "# versions: $(grep -h . "$LOG" | head -2 | tr '\n' ' ')"

stopped() {
	fresh_remove "$W" || return 1
	[ ! -e "$W" ]
}
step "every process of the root stopped, unmounted, removed" stopped
echo "# fresh-machine check: $((SECONDS - T0))s"
done_testing

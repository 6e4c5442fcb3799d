#!/usr/bin/env bash
# hyperctl's local verbs over a real mount and libvirtd: each is one write
# to a ctl file or a read of status, spec, events or wait; failures print
# "hyperctl: NAME: <the VM's err line>" and exit 1.  Verbs the daemon does
# not implement yet (clone, migrate, ...) must fail the same way, with the
# daemon's own text, whatever it is.
STOP_TIMEOUT=2
. "$(dirname "$0")/lib.sh"

HYPERCTL=$BUILD/cli/hyperctl
[ -x "$HYPERCTL" ] || { not_ok "hyperctl is built ($HYPERCTL)"; done_testing; }
start_mountd || { not_ok "daemon starts"; done_testing; }
ok "daemon mounts $M"

a=${P}a
hc() { "$HYPERCTL" -m "$M" "$@"; }
# run CMD...: sets out, err, rc
run() { out=$("$@" 2>"$T/stderr"); rc=$?; err=$(cat "$T/stderr"); }
# fails_like DESC VM ARGS...: exit 1, stderr is "hyperctl: VM: <VM's err>"
fails_like() {
	local d=$1 vm=$2
	shift 2
	run hc "$@"
	local want="hyperctl: $vm: $(cat "$M/vms/$vm/err" 2>/dev/null)"
	if [ "$rc" -eq 1 ] && [ "$err" = "$want" ] && [ "$want" != "hyperctl: $vm: " ]; then
		ok "$d"
	else
		not_ok "$d" "exit $rc, stderr '$err', want '$want'"
	fi
}

run hc create "$a" cpus=1 memory=64Mi disk=64Mi
is "create: exit 0" "$rc $err" "0 "
is "   the VM is Stopped" "$(phase "$a")" Stopped
like "list shows it" "$(hc list)" "^NAME +PHASE
.*$a +Stopped"
run hc create "$a"
is "create of a taken name: exit 1 with vms/err's text" "$rc $err" \
	"1 hyperctl: $a: create: vm $a already exists"
run hc create "${P}Bad"
is "create of a bad name is refused before the daemon" "$rc" 2

run hc status "$a"
is "status prints the status file" "$out" "$(cat "$M/vms/$a/status")"
like "   whose first line is the phase" "$out" "^phase Stopped"
run env HYPERSDK_MOUNT="$M" "$HYPERCTL" status "$a"
is "\$HYPERSDK_MOUNT names the mount" "$rc ${out%%$'\n'*}" "0 phase Stopped"

run hc start "$a"
is "start: exit 0" "$rc $err" "0 "
is "   returns with the VM Running" "$(phase "$a")" Running
is "   libvirt agrees" "$(domstate "$a")" running
fails_like "start again: exit 1 with the err text" "$a" start "$a"
like "   which says why" "$err" "Running"
fails_like "a bad option: the parser's text" "$a" stop "$a" bogus
like "   names the option" "$err" 'bad argument "bogus"'

run hc wait "$a" Running
is "wait for the phase it has returns at once" "$rc ${out%%$'\n'*}" "0 phase Running"
run hc wait "$a" paused -timeout 0.5
is "wait with a timeout: exit 1" "$rc" 1
is "   and says so" "$err" "hyperctl: $a: timed out after 0.5s waiting for Paused"
( hc wait "$a" Paused -timeout 30 >"$T/wait.out" 2>&1; echo "rc=$?" >>"$T/wait.out" ) &
wpid=$!
sleep 0.3
run hc pause "$a"
is "pause: exit 0" "$rc $err" "0 "
wait "$wpid"
like "a blocked wait returns once the phase comes" "$(cat "$T/wait.out")" "^phase Paused
(.*
)*rc=0$"
run hc resume "$a"
is "resume: exit 0, Running" "$rc $(phase "$a")" "0 Running"
( hc wait "$a" -timeout 30 >"$T/wait2.out" 2>&1; echo "rc=$?" >>"$T/wait2.out" ) &
wpid=$!
sleep 0.3
hc stop "$a" force
wait "$wpid"
like "wait without a phase returns the next status" "$(cat "$T/wait2.out")" "^phase .*rc=0$"
is "stop force: Stopped" "$(phase "$a")" Stopped
run hc wait "$a" Sideways
is "wait for a phase that does not exist: exit 2" "$rc" 2

like "events shows the start" "$(hc events "$a")" "Started"
run hc spec "$a"
is "spec prints the spec file" "$out" "$(cat "$M/vms/$a/spec")"
printf '%s\n' "$out" | sed 's/^cpus: 1$/cpus: 2/' >"$T/spec.yaml"
run hc spec "$a" "$T/spec.yaml"
is "spec NAME FILE replaces it" "$rc $(grep '^cpus' "$M/vms/$a/spec")" "0 cpus: 2"
printf 'cpus: 0\n' | hc spec "$a" - 2>"$T/stderr"
rc=$?
is "a bad spec from stdin: exit 1" "$rc" 1
is "   with the err text" "$(cat "$T/stderr")" "hyperctl: $a: $(cat "$M/vms/$a/err")"

run hc start "${P}nosuch"
is "start of a VM that does not exist: exit 1" "$rc" 1
is "   with the reason" "$err" "hyperctl: ${P}nosuch: No such file or directory"

# Another engineer is building these in the daemon: whatever it answers,
# hyperctl passes the exit status and err text through.
run hc clone "$a" "${P}c"
if [ "$rc" -eq 0 ]; then
	is "clone, implemented: exit 0, silent" "$err" ""
	hc delete "${P}c" force
else
	is "clone passes the daemon's exit status and err text through" \
		"$rc $err" "1 hyperctl: $a: $(cat "$M/vms/$a/err")"
fi
fails_like "migrate to a node that does not exist" "$a" migrate "$a" nosuchnode
fails_like "resize with a bad value" "$a" resize "$a" cpus=0
fails_like "snapshot with a bad name" "$a" snapshot "$a" "bad_snap"
fails_like "revert to a snapshot that does not exist" "$a" revert "$a" nosuchsnap

run hc delete "$a"
is "delete: exit 0" "$rc $err" "0 "
check "   the VM is gone" test ! -e "$M/vms/$a"
done_testing

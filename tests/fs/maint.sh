#!/usr/bin/env bash
# nodes/NODE/ctl on a standalone node: cordon (no new VMs, kept over a
# restart), uncordon, root only, bad messages; drain with node 2 as the
# --peer: a VM whose evictionStrategy is LiveMigrate moves there, another
# is stopped, and status tells the drain's progress.
STOP_TIMEOUT=3
. "$(dirname "$0")/lib.sh"

node2_require
ACCEL=tcg start_mountd --peer "$NODE2=$URI2" || { not_ok "node 1's daemon starts"; done_testing; }
start_mountd2 --accel tcg --peer "$NODE=$BACK"
check "node 2's daemon mounts" test -e "$M2/vms/ctl"

w() { "$ONEWRITE" "$@"; }
nkey() { awk -v k="$1" '$1 == k { $1 = ""; sub(/^ /, ""); print }' "$M/nodes/$NODE/status"; }
NCTL=$M/nodes/$NODE/ctl

is "nodes/$NODE has ctl and status" "$(ls "$M/nodes/$NODE" | tr '\n' ' ')" "ctl status "
is "ctl is root's, write only" "$(stat -c %a "$NCTL")" 200
is "not cordoned at first" "$(nkey cordoned)" false
is "echo cordon > ctl" "$(w "$NCTL" cordon)" ok
is "cordoned true" "$(nkey cordoned)" true
is "by the tree" "$(nkey cordon.by)" tree
is "a cordoned node takes no new VM: EBUSY" "$(w "$M/vms/ctl" "create ${P}x memory=64Mi disk=64Mi")" EBUSY
like "vms/err says why" "$(cat "$M/vms/err")" "is cordoned"
is "a bad message: EINVAL" "$(w "$NCTL" "cordon now")" EINVAL
like "vms/err says why" "$(cat "$M/vms/err")" "wrong #args"
is "an unknown one: EINVAL" "$(w "$NCTL" start)" EINVAL
nobody_w() { setpriv --reuid nobody --regid nogroup --clear-groups "$ONEWRITE" "$@"; }
is "nobody may not cordon: EACCES" "$(nobody_w "$NCTL" uncordon)" EACCES
is "and nothing changed" "$(nkey cordoned)" true

stop_mountd
ACCEL=tcg start_mountd --peer "$NODE2=$URI2" || not_ok "restart"
is "the cordon is kept over a restart" "$(nkey cordoned)" true
is "echo uncordon > ctl" "$(w "$NCTL" uncordon)" ok
is "cordoned false" "$(nkey cordoned)" false

a=${P}a
b=${P}b
is "a VM that live-migrates on eviction" "$(w "$M/vms/ctl" "create $a memory=64Mi disk=64Mi")" ok
sed '/^running:/d' "$M/vms/$a/spec" >"$T/a.yaml"
printf 'running: true\nhighAvailability:\n  enabled: true\n  evictionStrategy: LiveMigrate\n' >>"$T/a.yaml"
is "(its spec)" "$(w "$M/vms/$a/spec" "$(cat "$T/a.yaml")")" ok
is "and one that is stopped" "$(w "$M/vms/ctl" "create $b memory=64Mi disk=64Mi running=true")" ok
check "both run" wait_for 30 phase_is "$a" Running
check "(b)" wait_for 30 phase_is "$b" Running

is "echo drain > ctl returns when it is done" "$(w "$NCTL" drain)" ok
is "the node is cordoned" "$(nkey cordoned)" true
is "drain Succeeded" "$(nkey drain)" Succeeded
is "drain.total 2" "$(nkey drain.total)" 2
is "drain.moved 1" "$(nkey drain.moved)" 1
is "drain.stopped 1" "$(nkey drain.stopped)" 1
is "the LiveMigrate VM runs on node 2" "$(virsh -q -c "$URI2" domstate "$a" 2>/dev/null | head -n 1)" running
is "and not here" "$(domstate "$a")" ""
is "the other is stopped here" "$(domstate "$b")" "shut off"
like "its events say why" "$(cat "$M/vms/$b/events")" "Drained stopped: node drained"
like "and its spec is off" "$(cat "$M/vms/$b/spec")" "running: false"
is "a second drain finds nothing to do" "$(w "$NCTL" drain)" ok
is "drain.total 0" "$(nkey drain.total)" 0

HC=$BUILD/cli/hyperctl
is "hyperctl uncordon $NODE" "$("$HC" -m "$M" uncordon "$NODE" 2>&1; echo "exit $?")" "exit 0"
is "cordoned false again" "$(nkey cordoned)" false
is "hyperctl cordon of a node that does not exist" "$("$HC" -m "$M" cordon no-such-node 2>&1; echo "exit $?")" "hyperctl: no-such-node: no such node (ls $M/nodes)
exit 1"

stop_mountd
done_testing

#!/usr/bin/env bash
# A full pool: the daemon's pool on a 24 MiB tmpfs.  A full clone of a VM
# whose disk holds 16 MiB does not fit: a clear error, and nothing of the
# clone left (tree, libvirt, pool).  A template import that does not fit
# fails the same way.
. "$(dirname "$0")/lib.sh"

SMALL=$T/small
mkdir -p "$SMALL"
trap 'umount -l "$SMALL" 2>/dev/null; cleanup' EXIT
mount -t tmpfs -o size=24m tmpfs "$SMALL" || { not_ok "a 24 MiB tmpfs"; done_testing; }
chmod 755 "$SMALL"
POOL=$SMALL
mkdir -p "$T/www"
start_mountd --pool-dir "$SMALL" --import-dir "$T/www" || { not_ok "daemon starts on a small pool"; done_testing; }
ok "daemon mounts $M with its pool on a 24 MiB tmpfs"

a=${P}a
c=${P}c
w() { "$ONEWRITE" "$@"; }
is "create" "$(w "$M/vms/ctl" "create $a cpus=1 memory=64Mi disk=64Mi")" ok
qemu-io -f qcow2 -c 'write -P 0x5a 0 16M' "$SMALL/${a}_root.qcow2" >/dev/null
check "its disk holds 16 MiB" test "$(du -m "$SMALL/${a}_root.qcow2" | cut -f1)" -ge 16
got=$(w "$M/vms/$a/ctl" "clone $c")
like "a full clone that does not fit fails" "$got" "^(ENOSPC|EIO)$"
like "err says the disk is full" "$(cat "$M/vms/$a/err")" "[Nn]o space|full"
check "no clone in the tree" test ! -e "$M/vms/$c"
check "none in libvirt" bash -c "! virsh -q -c qemu:///system dominfo '$c' >/dev/null 2>&1"
check "no volume of it in the pool" bash -c "! ls '$SMALL' | grep -q '^${c}_'"
op=$(ls "$M/operations" | grep -- "-clone-" | head -n 1)
is "the operation says Failed" "$(head -n 1 "$M/operations/$op/status")" "phase Failed"
is "the source is untouched" "$(phase "$a")" Stopped

mkdir -p "$T/www"
head -c 12M /dev/urandom >"$T/www/big.raw"
check "mkdir a template" mkdir "$M/templates/${P}big"
got=$(w "$M/templates/${P}big/spec" "$(printf 'image:\n  source: %s\n' "$T/www/big.raw")")
like "an image that does not fit fails" "$got" "^(ENOSPC|EIO)$"
like "the template says why" "$(cat "$M/templates/${P}big/status")" "[Nn]o space|full"
check "and leaves no image" bash -c "! ls '$SMALL' | grep -q 'tmpl.${P}big'"
is "delete" "$(w "$M/vms/$a/ctl" delete)" ok
done_testing

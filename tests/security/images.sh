#!/usr/bin/env bash
# Image sources and image content, tried as an attacker would through
# templates/NAME/spec on a real daemon and libvirtd, with an image server
# of our own (imgserver) on loopback: host files by path, file:// and
# symbolic links; a VMDK whose FLAT extent names a secret host file and a
# qcow2 whose data file or backing file is that file; other formats;
# redirects to private, link-local and other loopback addresses; an
# endless slow body and an oversized one; URL credentials; the
# concurrency limit, cancel, and the reconciler going on meanwhile.
# "Nothing leaked": the secret's random marker is nowhere in the pool,
# the state folder, any status or the daemon's log.
. "$(dirname "$0")/../fs/lib.sh"

SRV_PID=
BG_PID=
trap '[ -n "$BG_PID" ] && kill "$BG_PID" 2>/dev/null; [ -n "$SRV_PID" ] && kill "$SRV_PID" 2>/dev/null; cleanup' EXIT

w() { "$ONEWRITE" "$@"; }
tphase() { awk '$1 == "phase" { print $2 }' "$M/templates/$1/status" 2>/dev/null; }
tmsg() { awk '$1 == "message" { $1 = ""; sub(/^ /, ""); print }' "$M/templates/$1/status" 2>/dev/null; }
# imp NAME SOURCE [CHECKSUM]: a template importing SOURCE; the write's errno
imp() {
	[ -d "$M/templates/$1" ] || mkdir "$M/templates/$1"
	w "$M/templates/$1/spec" "$(printf 'image:\n  source: %s\n%s' "$2" \
		"${3:+  checksum: $3
}")"
}
MARK=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
PW=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
# no_leak TEXT PATH...: TEXT is in no file under PATH, no status, events
# or err of the tree
no_leak() {
	local text=$1; shift
	! grep -rqa "$text" "$@" 2>/dev/null &&
	! cat "$M"/templates/*/status "$M"/vms/*/status "$M"/vms/*/events \
		"$M"/vms/err 2>/dev/null | grep -qa "$text"
}
tphase_is() { [ "$(tphase "$1")" = "$2" ]; }
# refused NAME ERRNO REGEX SOURCE: the write fails with ERRNO, the
# template's message matches REGEX, no volume, nothing leaked
refused() {
	local name=${P}$1 want=$2 re=$3 src=$4 got
	got=$(imp "$name" "$src")
	is "$1: $src is $want" "$got" "$want"
	like "$1: the message names the rule" "$(tmsg "$name")" "$re"
	echo "#   $(tmsg "$name")"
	is "$1: phase Failed" "$(tphase "$name")" Failed
	check "$1: no volume, no partial file" bash -c \
		"! ls -a '$POOL' | grep -q 'tmpl.$name'"
	check "$1: nothing of the secret leaked" \
		no_leak "$MARK" "$POOL" "$STATE" "$T/mountd.log"
}

# ---- the files -------------------------------------------------------
SECRET=$T/secret
mkdir -p "$SECRET" "$T/www" "$T/imports"
for i in $(seq 2048); do echo "$MARK secret line $i"; done >"$SECRET/host.txt"
chmod 600 "$SECRET/host.txt"
W=$T/www
qemu-img create -q -f raw "$W/good.raw" 16M
qemu-io -f raw -c 'write -P 0x5a 0 1M' "$W/good.raw" >/dev/null
qemu-img create -q -f qcow2 "$W/good.qcow2" 32M
qemu-io -f qcow2 -c 'write -P 0x3c 0 1M' "$W/good.qcow2" >/dev/null
cp "$W/good.raw" "$T/imports/local.raw"
ln -s "$SECRET/host.txt" "$T/imports/link.raw"
SUM=$(sha256sum "$W/good.raw" | cut -d' ' -f1)
# A VMDK descriptor whose FLAT extent is the secret file, and one whose
# descriptor hides behind other comment lines.
cat >"$W/flat.vmdk" <<EOF
# Disk DescriptorFile
version=1
CID=fffffffe
parentCID=ffffffff
createType="monolithicFlat"
RW 64 FLAT "$SECRET/host.txt" 0
ddb.virtualHWVersion = "4"
EOF
{ echo "# just a comment"; sed 1d "$W/flat.vmdk"; } >"$W/flat2.vmdk"
# A qcow2 whose external data file holds the secret, and one backed by it.
qemu-img create -q -f qcow2 -o data_file="$SECRET/data.bin",data_file_raw=on \
	"$W/datafile.qcow2" 64K
cp "$SECRET/host.txt" "$SECRET/data.bin"
qemu-img create -q -f qcow2 -b "$SECRET/host.txt" -F raw "$W/backing.qcow2" 64K
for f in vmdk vdi vpc vhdx qed parallels; do
	qemu-img create -q -f "$f" "$W/other.$f" 1M
done
# 8 GiB of virtual size in a small file: over --import-max-size 64Mi.
qemu-img create -q -f qcow2 "$W/huge.qcow2" 8G

"$BUILD/tests/security/imgserver" "$W" "$T/port" >"$T/srv.log" 2>&1 &
SRV_PID=$!
wait_for 10 test -s "$T/port"
PORT=$(cat "$T/port")
U=http://127.0.0.1:$PORT
check "the image server answers on $U" curl -sf -o /dev/null "$U/f/good.raw"

out=$("$MOUNTD" --foreground --mount "$M" --import-allow "$U" 2>&1); rc=$?
is "an --import-allow prefix that ends at the host is a usage error" "$rc" 2
like "saying what a prefix must be" "$out" "want SCHEME://HOST\[:PORT\]/PATH"
out=$("$MOUNTD" --foreground --mount "$M" --state-dir "$STATE" --pool-dir "$POOL" \
	--node "$NODE" --import-dir "$T/nowhere" 2>&1); rc=$?
is "a missing --import-dir stops the start" "$rc" 1
like "naming it" "$out" "--import-dir $T/nowhere: No such file"

start_mountd --import-allow "$U/" --import-dir "$T/imports" \
	--import-max-size 64Mi --import-low-speed 1024 --import-stall 3 ||
	{ not_ok "daemon starts"; done_testing; }
ok "daemon mounts $M (--import-allow $U/, --import-dir, limits)"

# ---- what is allowed -------------------------------------------------
is "a raw image under an allowed prefix imports" "$(imp "${P}raw" "$U/f/good.raw" "sha256:$SUM")" ok
is "Ready" "$(tphase "${P}raw")" Ready
like "converted to qcow2" "$(qemu-img info -U "$POOL/tmpl.${P}raw.qcow2" 2>&1)" "file format: qcow2"
is "the image is 0600" "$(stat -c %a "$POOL/tmpl.${P}raw.qcow2")" 600
is "a qcow2 imports" "$(imp "${P}qc" "$U/f/good.qcow2")" ok
is "a file under --import-dir imports" "$(imp "${P}loc" "$T/imports/local.raw")" ok
is "so does its file:// URL" "$(imp "${P}locu" "file://$T/imports/local.raw")" ok
v=${P}v
is "a VM from the 0600 image is created" "$(w "$M/vms/ctl" "create $v template=${P}raw")" ok
is "and starts (libvirt gives QEMU the files)" "$(w "$M/vms/$v/ctl" start)" ok
is "it runs" "$(domstate "$v")" running

# ---- host files ------------------------------------------------------
refused shadow EACCES "not a file under --import-dir" /etc/shadow
refused shadowu EACCES "not a file under --import-dir" file:///etc/shadow
refused link EACCES "not a file under --import-dir" "$T/imports/link.raw"
refused dotdot EACCES "not a file under --import-dir" "$T/imports/../secret/host.txt"

# ---- image content ---------------------------------------------------
refused flat EINVAL "only raw and qcow2" "$U/f/flat.vmdk"
refused flat2 EINVAL "only raw and qcow2" "$U/f/flat2.vmdk"
refused datafile EINVAL "data file" "$U/f/datafile.qcow2"
refused backing EINVAL "backing file" "$U/f/backing.qcow2"
for f in vmdk vdi vpc vhdx qed parallels; do
	refused "fmt-$f" EINVAL "only raw and qcow2" "$U/f/other.$f"
done

# ---- addresses and redirects -----------------------------------------
refused r10 EACCES "only https:// or a URL under an --import-allow" \
	"$U/redirect?to=http://10.255.255.1/disk.img"
refused rmeta EACCES "only https:// or a URL under an --import-allow" \
	"$U/redirect?to=http://169.254.169.254/latest/meta-data/"
refused rlo2 EACCES "only https:// or a URL under an --import-allow" \
	"$U/redirect?to=http://127.0.0.2:$PORT/f/good.raw"
refused rsmeta EACCES "address 169.254.169.254 is link-local" \
	"$U/redirect?to=https://169.254.169.254/latest/meta-data/"
refused slo EACCES "address 127.0.0.1 is loopback" "https://127.0.0.1:$PORT/f/good.raw"
refused s10 EACCES "address 10.1.2.3 is private" "https://10.1.2.3/disk.img"
refused plain EACCES "only https://" "http://203.0.113.9/disk.img"
got=$(imp "${P}net" "https://images.hypersdk.invalid/disk.img")
like "https:// passes the policy: an unreachable host is a connect error, not EACCES" \
	"$got" "^(EHOSTUNREACH|ECONNREFUSED)$"
like "with a generic message" "$(tmsg "${P}net")" "cannot (resolve the host|connect)"

# ---- credentials -----------------------------------------------------
is "user:password@ in a source works" "$(imp "${P}cred" "http://hsdk:$PW@127.0.0.1:$PORT/f/good.raw")" ok
got=$(imp "${P}cred2" "http://hsdk:$PW@127.0.0.1:$PORT/f/nope.raw")
is "a failing one too fails plainly" "$got" ENOENT
like "naming the URL without them" "$(tmsg "${P}cred2")" "http://127.0.0.1:$PORT/f/nope.raw"
check "the password is in no status, event, err, log or pool file" \
	no_leak "$PW" "$POOL" "$T/mountd.log"

# ---- limits ----------------------------------------------------------
refused big EFBIG "larger than --import-max-size" "$U/big"
refused vbig EFBIG "virtual size .* larger than --import-max-size" "$U/f/huge.qcow2"
refused slow ETIMEDOUT "stalled: under 1024 bytes/s for 3 s" "$U/slow"

check "no leftovers in the pool" bash -c "! ls -a '$POOL' | grep -q '\\.download\$\\|\\.part\$'"
check "the secret's marker is nowhere" no_leak "$MARK" "$POOL" "$STATE" "$T/mountd.log"
is "delete the VM" "$(w "$M/vms/$v/ctl" "delete force")" ok
stop_mountd

# ---- a daemon without --import-dir, a short timeout, one import ------
start_mountd --import-allow "$U/" --import-timeout 8 --import-stall 0 \
	--import-max 1 || { not_ok "daemon restarts"; done_testing; }
ok "daemon restarts (no --import-dir, --import-timeout 8, --import-max 1)"
refused noshadow EACCES "local files need --import-dir" /etc/shadow
refused noshadowu EACCES "local files need --import-dir" file:///etc/shadow
refused nolocal EACCES "local files need --import-dir" "$T/imports/local.raw"

a=${P}a
is "a VM to watch" "$(w "$M/vms/ctl" "create $a cpus=1 memory=64Mi disk=64Mi")" ok
is "it starts" "$(w "$M/vms/$a/ctl" start)" ok
mkdir "$M/templates/${P}slow2"
( imp "${P}slow2" "$U/slow" >"$T/bg.out" ) &
BG_PID=$!
wait_for 5 tphase_is "${P}slow2" Importing
is "a slow import is running" "$(tphase "${P}slow2")" Importing
t0=$SECONDS
is "a second import meanwhile: EBUSY (--import-max 1)" "$(imp "${P}second" "$U/f/good.raw")" EBUSY
like "saying so" "$(tmsg "${P}second")" "imports already running"
is "other VMs' status reads at once" "$(phase "$a")" Running
"${VIRSH[@]}" destroy "$a" >/dev/null 2>&1
check "the reconciler goes on: a stop behind our back shows" wait_for 5 phase_is "$a" Stopped
is "ctl writes go on" "$(w "$M/vms/$a/ctl" start)" ok
check "all that while the import ran" test "$(tphase "${P}slow2")" = Importing
check "and it took seconds, not the import's time" test $((SECONDS - t0)) -lt 6
wait "$BG_PID"; BG_PID=
is "the slow import ends at --import-timeout" "$(cat "$T/bg.out")" ETIMEDOUT
like "saying so" "$(tmsg "${P}slow2")" "longer than --import-timeout \(8 s\)"

( imp "${P}slow2" "$U/slow" >"$T/bg.out" ) &
BG_PID=$!
wait_for 5 tphase_is "${P}slow2" Importing
is "cancel on the template's ctl" "$(w "$M/templates/${P}slow2/ctl" cancel)" ok
wait "$BG_PID"; BG_PID=
is "the import ends ECANCELED" "$(cat "$T/bg.out")" ECANCELED
is "cancel with nothing running: ENOENT" "$(w "$M/templates/${P}slow2/ctl" cancel)" ENOENT
check "no leftovers in the pool" bash -c "! ls -a '$POOL' | grep -q '\\.download\$\\|\\.part\$\\|tmpl.${P}slow2'"
is "delete the VM" "$(w "$M/vms/$a/ctl" "delete force")" ok
check "the secret's marker is nowhere" no_leak "$MARK" "$POOL" "$STATE" "$T/mountd.log"
done_testing

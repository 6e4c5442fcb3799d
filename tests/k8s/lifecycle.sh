#!/usr/bin/env bash
# The seed's lifecycle scenario (its deploy/test-vm-lifecycle.sh), with
# kubectl only, against a real kube-apiserver and one node: template, VM
# from the template, stop by patch, start by patch, snapshot, clone,
# delete.  Every step is checked in kubectl and in libvirt.  The
# manifests are the seed's, with this run's names; the template's image
# comes from a server on loopback instead of the internet.
. "$(dirname "$0")/lib.sh"

EX=$TOP/deploy/examples
jp() { k get "$1" "$2" -o jsonpath="$3" 2>/dev/null; }
jp_is() { [ "$(jp "$1" "$2" "$3")" = "$4" ]; }
HTTP_PID=
trap '[ -n "$HTTP_PID" ] && kill "$HTTP_PID" 2>/dev/null; cluster_down; cleanup' EXIT

# The template's image, served on loopback.
mkdir -p "$T/www"
qemu-img create -q -f qcow2 "$T/www/jammy.img" 2G
qemu-io -f qcow2 -c 'write -P 0x11 0 1M' "$T/www/jammy.img" >/dev/null
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 -m http.server --bind 127.0.0.1 --directory "$T/www" "$PORT" >"$T/http.log" 2>&1 &
HTTP_PID=$!
wait_for 10 curl -sf -o /dev/null "http://127.0.0.1:$PORT/jammy.img"
# In cluster mode a template needs a checksum, and plain http on loopback
# must be allowed by the operator.
SUM=$(sha256sum "$T/www/jammy.img" | cut -d' ' -f1)

cluster_up "CRDs installed as in the seed's Quick Start"
# The seed's VM names storage class fast-ssd, as the DaemonSet defines it.
start_mountd --kubeconfig "$KC/kubeconfig" --storage-class "fast-ssd=$T/fast-ssd" \
	--import-allow "http://127.0.0.1:$PORT/" || { not_ok "node starts"; done_testing; }
ok "one node serves the namespace"

# The examples as written, with names of this run (libvirt domains are
# named after VMs, and other runs may share this libvirtd).
vm=${P}my-vm
sub() { sed -e "s/name: my-vm\$/name: $vm/" -e "s/targetName: my-vm-clone\$/targetName: ${vm}-clone/" "$1"; }

sub "$EX/vmtemplate-ubuntu.yaml" |
	sed "s|^\( *\)source: https://cloud-images.ubuntu.com/.*|\1source: http://127.0.0.1:$PORT/jammy.img\n\1checksum: sha256:$SUM|" |
	k apply -f - >/dev/null
is "1. template created" "$(jp vmtpl ubuntu-22-04-template '{.spec.version}')" "22.04"
wait_for 30 jp_is vmtpl ubuntu-22-04-template '{.status.phase}' Ready
is "   its image is imported: Ready" "$(jp vmtpl ubuntu-22-04-template '{.status.phase}')" Ready

sub "$EX/vm-ubuntu.yaml" | k apply -f - >/dev/null
is "2. VM from the template created" "$(jp vm "$vm" '{.spec.image.templateRef.name}')" ubuntu-22-04-template
wait_for 30 jp_is vm "$vm" '{.status.phase}' Running
is "   it runs (kubectl)" "$(jp vm "$vm" '{.status.phase}')" Running
is "   it runs (libvirt)" "$(domstate "$vm")" running
like "   with the manifest's 4 vCPUs and 8Gi" "$("${VIRSH[@]}" dominfo "$vm" | tr -s ' ' | grep -E '^(CPU\(s\)|Max memory)' | tr '\n' ' ')" "CPU\(s\): 4 Max memory: 8388608 KiB"
check "   and its cloud-init seed" test -e "$POOL/${vm}_cidata.iso"
like "   its disk, in class fast-ssd's folder, is an overlay on the template's image" \
	"$(qemu-img info -U "$T/fast-ssd/${vm}_root.qcow2" 2>&1)" "backing file: .*tmpl.ubuntu-22-04-template.qcow2"
wait_for 10 jp_is vmtpl ubuntu-22-04-template '{.status.usageCount}' 1
is "   and the template counts it" "$(jp vmtpl ubuntu-22-04-template '{.status.usageCount}')" 1

k patch vm "$vm" --type merge -p '{"spec":{"running":false}}' >/dev/null
wait_for 60 jp_is vm "$vm" '{.status.phase}' Stopped
is "3. stopped by patch (kubectl)" "$(jp vm "$vm" '{.status.phase}')" Stopped
is "   (libvirt)" "$(domstate "$vm")" "shut off"

k patch vm "$vm" --type merge -p '{"spec":{"running":true}}' >/dev/null
wait_for 30 jp_is vm "$vm" '{.status.phase}' Running
is "4. started by patch (kubectl)" "$(jp vm "$vm" '{.status.phase}')" Running
is "   (libvirt)" "$(domstate "$vm")" running

sub "$EX/vmsnapshot.yaml" | sed "s/name: my-vm\$/name: $vm/" | k apply -f - >/dev/null
is "5. snapshot object accepted" "$(jp vmsnap my-vm-snapshot '{.spec.vmRef.name}')" "$vm"
wait_for 60 jp_is vmsnap my-vm-snapshot '{.status.phase}' Ready
is "   snapshot Ready" "$(jp vmsnap my-vm-snapshot '{.status.phase}')" Ready
like "   in virsh snapshot-list" "$("${VIRSH[@]}" snapshot-list --name "$vm" 2>/dev/null | tr '\n' ' ')" "my-vm-snapshot"
is "   with memory: taken while Running" "$(jp vmsnap my-vm-snapshot '{.status.vmState}')" Running
is "   quiesce without a guest agent says so" \
	"$(jp vmsnap my-vm-snapshot '{.status.conditions[?(@.type=="Quiesced")].reason}')" AgentNotResponding

sub "$EX/vmoperation-clone.yaml" | sed "s/name: my-vm\$/name: $vm/" | k apply -f - >/dev/null
is "6. clone operation accepted" "$(jp vmop clone-my-vm '{.spec.cloneSpec.targetName}')" "${vm}-clone"
wait_for 120 jp_is vmop clone-my-vm '{.status.phase}' Succeeded
is "   clone Succeeded" "$(jp vmop clone-my-vm '{.status.phase}')" Succeeded
wait_for 30 jp_is vm "${vm}-clone" '{.status.phase}' Running
is "   and the clone runs (startAfterClone)" "$(domstate "${vm}-clone")" running
is "   while the source runs on" "$(domstate "$vm")" running

k delete vm "${vm}-clone" >/dev/null
wait_for 30 bash -c "! ${VIRSH[*]} dominfo ${vm}-clone >/dev/null 2>&1"
k delete vm "$vm" >/dev/null
wait_for 30 bash -c "! ${VIRSH[*]} dominfo $vm >/dev/null 2>&1"
check "7. deleted: the domain is gone" bash -c "! ${VIRSH[*]} dominfo $vm >/dev/null 2>&1"
check "   its volumes too" test ! -e "$POOL/${vm}_root.qcow2"
wait_for 10 test ! -e "$M/vms/$vm"
check "   and the tree forgot it" test ! -e "$M/vms/$vm"
k delete vmsnap my-vm-snapshot >/dev/null 2>&1
k delete vmop clone-my-vm >/dev/null 2>&1
k delete vmtpl ubuntu-22-04-template >/dev/null 2>&1

# In a cluster every CRD author would choose the files QEMU reads: a node
# started without --kernel-dir refuses kernelBoot.
kb=${P}kb
k apply -f - >/dev/null <<YAML
apiVersion: hypersdk.io/v1alpha1
kind: VirtualMachine
metadata:
  name: $kb
spec:
  cpus: 1
  memory: 64Mi
  disks: [{name: root, size: 64Mi}]
  kernelBoot: {kernel: /etc/shadow}
YAML
said_off() { k get vm "$kb" -o json | grep -q "kernelBoot is off"; }
check "8. kernelBoot from a CRD: the node says it is off" wait_for 30 said_off
like "   in the tree's err too" "$(cat "$M/vms/$kb/err" 2>/dev/null)" "kernelBoot is off"
check "   no domain" bash -c "! ${VIRSH[*]} dominfo $kb >/dev/null 2>&1"
k delete vm "$kb" >/dev/null 2>&1

# Owners: a VM from the API is root's, unless hypersdk.io/owner names a
# user of the node; an unknown name leaves it root's with a Warning event.
own() { k apply -f - >/dev/null <<YAML
apiVersion: hypersdk.io/v1alpha1
kind: VirtualMachine
metadata:
  name: $1
  annotations: {hypersdk.io/owner: "$2"}
spec: {cpus: 1, memory: 64Mi, disks: [{name: root, size: 64Mi}]}
YAML
}
o1=${P}own1 o2=${P}own2
own "$o1" nobody
own "$o2" no-such-user-$$
wait_for 30 test -d "$M/vms/$o1"
is "9. hypersdk.io/owner: nobody gives the VM to nobody" "$(stat -c %U "$M/vms/$o1" 2>/dev/null)" nobody
wait_for 30 test -d "$M/vms/$o2"
is "   an unknown user leaves it root's" "$(stat -c %U "$M/vms/$o2" 2>/dev/null)" root
has_warning() { grep -q "no-such-user-$$" "$M/vms/$o2/events"; }
check "   and says so in its events" wait_for 10 has_warning
k delete vm "$o1" "$o2" >/dev/null 2>&1
done_testing

#!/usr/bin/env bash
# Cluster trust against a real kube-apiserver: the admission policies of
# deploy/operator/30-admission.yaml and the tenant role of
# deploy/rbac/hypersdk-tenant.yaml, tried with kubectl as a tenant (a client
# certificate for the user "tenant", made with the test cluster's CA, bound
# to hypersdk-tenant in "default") and as the admin (system:masters).
#
#   BUILD=... bash tests/k8s/admission.sh      (no daemon, no libvirt)
. "$(dirname "$0")/lib.sh"
trap 'cluster_down; cleanup' EXIT

cluster_up
k apply -f "$TOP/deploy/operator/00-namespace.yaml" \
	-f "$TOP/deploy/operator/30-admission.yaml" \
	-f "$TOP/deploy/rbac/hypersdk-tenant.yaml" >"$T/apply.out" 2>&1
check "kubectl apply: the namespace, the admission policies, the tenant roles" test $? -eq 0
k create rolebinding tenant-hypersdk -n default --clusterrole=hypersdk-tenant \
	--user=tenant >/dev/null
check "the tenant role bound to the user tenant in default" test $? -eq 0

# tenant_kubeconfig: a client certificate for CN=tenant from the cluster's CA
tenant_kubeconfig() {
	local pki=$KC/pki
	(
		set -e
		umask 077
		cd "$T"
		openssl ecparam -name prime256v1 -genkey -noout -out tenant.key 2>/dev/null
		openssl req -new -key tenant.key -subj /CN=tenant -out tenant.csr 2>/dev/null
		printf 'extendedKeyUsage=clientAuth\n' >tenant.ext
		openssl x509 -req -in tenant.csr -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
			-CAcreateserial -CAserial "$T/ca.srl" -days 1 -extfile tenant.ext \
			-out tenant.crt 2>/dev/null
		cp "$KC/kubeconfig" tenant.kubeconfig
		kubectl --kubeconfig=tenant.kubeconfig config set-credentials tenant \
			--client-certificate=tenant.crt --client-key=tenant.key --embed-certs >/dev/null
		kubectl --kubeconfig=tenant.kubeconfig config set-context hypersdk-test \
			--user=tenant >/dev/null
	)
}
kt() { kubectl --kubeconfig="$T/tenant.kubeconfig" --cache-dir="$T/tcache" "$@"; }
check "a kubeconfig for the user tenant (client certificate of the test CA)" tenant_kubeconfig
is "the API server sees the user tenant" \
	"$(kt auth whoami -o 'jsonpath={.status.userInfo.username}' 2>&1)" tenant

vm() { # NAME [SPEC-LINES]: a VirtualMachine in default
	printf 'apiVersion: hypersdk.io/v1alpha1\nkind: VirtualMachine\n'
	printf 'metadata: {name: %s, namespace: default}\nspec:\n  memory: 64Mi\n' "$1"
	[ -z "${2:-}" ] || printf '%s\n' "$2"
}
tmpl() { # NAME SPEC-LINES: a VMTemplate in default
	printf 'apiVersion: hypersdk.io/v1alpha1\nkind: VMTemplate\n'
	printf 'metadata: {name: %s, namespace: default}\nspec:\n%s\n' "$1" "$2"
}
KB='  kernelBoot: {kernel: /etc/shadow, initrd: /etc/gshadow}'

# A policy is enforced once its informers caught up: wait for a refusal
# (server-side dry run: admission runs, nothing is stored).
refused_dry() { ! vm probe "$KB" | k create --dry-run=server -f - >/dev/null 2>&1; }
check "the policies are enforced (a dry run with kernelBoot is refused)" \
	wait_for 30 refused_dry

# refused DESC WANT-REGEX KUBECTL-FN YAML: the create fails with WANT in stderr
refused() {
	local out
	out=$(printf '%s\n' "$4" | "$3" create -f - 2>&1 >/dev/null) &&
		{ not_ok "$1" "created: $out"; return; }
	like "$1" "$out" "$2"
}
# accepted DESC KUBECTL-FN YAML: the create succeeds
accepted() {
	local out
	if out=$(printf '%s\n' "$3" | "$2" create -f - 2>&1); then ok "$1"; else not_ok "$1" "$out"; fi
}
# passes DESC CMD...: CMD succeeds (its output shown when not)
passes() {
	local d=$1 out
	shift
	if out=$("$@" 2>&1); then ok "$d"; else not_ok "$d" "$out"; fi
}
NOT_ALLOWED="denied request: hypersdk: spec.image.source .* is refused: not under an allowed prefix of ConfigMap hypersdk-system/hypersdk-image-sources"

# ---- what the tenant may do, by RBAC
can() { kt auth can-i "$@" 2>/dev/null; }
for q in "create virtualmachines.hypersdk.io" "patch virtualmachines.hypersdk.io" \
	"delete virtualmachines.hypersdk.io" "create vmoperations.hypersdk.io" \
	"create vmsnapshots.hypersdk.io" "list vmtemplates.hypersdk.io"; do
	# shellcheck disable=SC2086
	is "tenant can-i $q: yes" "$(can $q -n default)" yes
done
for q in "create vmtemplates.hypersdk.io" "update vmtemplates.hypersdk.io" \
	"patch vmtemplates.hypersdk.io" "delete vmtemplates.hypersdk.io" \
	"patch virtualmachines.hypersdk.io --subresource=status" \
	"get configmaps"; do
	# shellcheck disable=SC2086
	is "tenant can-i $q: no" "$(can $q -n default)" no
done
is "tenant can-i create virtualmachines in kube-system: no" \
	"$(can create virtualmachines.hypersdk.io -n kube-system)" no
is "tenant cannot edit the allow list (ConfigMap in hypersdk-system)" \
	"$(kt auth can-i patch configmaps/hypersdk-image-sources -n hypersdk-system 2>/dev/null)" no

# ---- the tenant's attacks
t=${P}t
refused "tenant: VM with spec.kernelBoot refused by the policy" \
	"ValidatingAdmissionPolicy 'hypersdk-kernel-boot' .*denied request: hypersdk: spec.kernelBoot is refused" \
	kt "$(vm "${t}kb" "$KB")"
refused "tenant: VMTemplate forbidden by RBAC" \
	'User "tenant" cannot create resource "vmtemplates" in API group "hypersdk.io"' \
	kt "$(tmpl "${t}tm" '  image: {source: "https://cloud-images.ubuntu.com/x.img"}')"
refused "tenant: VM with image source file:///etc/shadow refused" "$NOT_ALLOWED" \
	kt "$(vm "${t}f" '  image: {source: "file:///etc/shadow"}')"
refused "tenant: VM with image source http://169.254.169.254/ refused" "$NOT_ALLOWED" \
	kt "$(vm "${t}m" '  image: {source: "http://169.254.169.254/latest/meta-data/"}')"
accepted "tenant: VM without kernelBoot accepted" kt "$(vm "${t}ok")"
accepted "tenant: VM with an allowed image source accepted" \
	kt "$(vm "${t}img" '  image: {source: "https://cloud-images.ubuntu.com/jammy/current/x.img"}')"
out=$(kt patch vm "${t}ok" --type merge -p '{"spec":{"kernelBoot":{"kernel":"/etc/shadow"}}}' 2>&1)
like "tenant: adding kernelBoot to an existing VM refused (patch)" "$out" \
	"AdmissionPolicy 'hypersdk-kernel-boot'"
out=$(kt patch vm "${t}ok" --type merge -p '{"spec":{"image":{"source":"/etc/shadow"}}}' 2>&1)
like "tenant: pointing an existing VM at /etc/shadow refused (patch)" "$out" "$NOT_ALLOWED"
passes "tenant: an ordinary spec patch passes" \
	kt patch vm "${t}ok" --type merge -p '{"spec":{"cpus":2}}'
is "... and the VM holds no kernelBoot, no image source" \
	"$(k get vm "${t}ok" -o 'jsonpath={.spec.kernelBoot}|{.spec.image}|{.spec.cpus}')" "||2"

# ---- the admin (system:masters) is under the same policies
a=${P}a
refused "admin: VM with spec.kernelBoot refused too" "AdmissionPolicy 'hypersdk-kernel-boot'" \
	k "$(vm "${a}kb" "$KB")"
refused "admin: VMTemplate with defaultSpec.kernelBoot refused" \
	"spec.defaultSpec.kernelBoot is refused" \
	k "$(tmpl "${a}dkb" '  defaultSpec: {kernelBoot: {kernel: /boot/vmlinuz}}')"
for src in /etc/shadow file:///etc/shadow http://127.0.0.1:8000/x.qcow2 \
	http://169.254.169.254/latest/ https://cloud-images.ubuntu.com.evil.example/x.img \
	https://cloud-images.ubuntu.com@evil.example/x.img \
	https://cloud-images.ubuntu.com/../../x.img https://cloud-images.ubuntu.com/%2E%2E/x.img \
	https://CLOUD-IMAGES.ubuntu.com/x.img; do
	refused "admin: VMTemplate source $src refused" "$NOT_ALLOWED" \
		k "$(tmpl "${a}s" "  image: {source: \"$src\"}")"
done
refused "admin: VMTemplate defaultSpec.image.source outside the list refused" \
	"spec.defaultSpec.image.source is refused" \
	k "$(tmpl "${a}ds" '  defaultSpec: {image: {source: "file:///etc/shadow"}}')"
accepted "admin: VMTemplate with a source inside the allow list accepted" k \
	"$(tmpl "${a}ok" '  image: {source: "https://cloud-images.ubuntu.com/jammy/current/jammy-server-cloudimg-amd64.img"}')"
passes "admin: deploy/examples/vmtemplate-ubuntu.yaml accepted as shipped" \
	k create -f "$TOP/deploy/examples/vmtemplate-ubuntu.yaml"

# ---- through a node's tree: the daemon's writes meet the same policies
# The node itself allows kernels from $T/kernels (--kernel-dir): what
# refuses one here is the cluster's policy.
mkdir -p "$T/kernels" && : >"$T/kernels/vmlinuz"
if [ -x "$MOUNTD" ] && [ -c /dev/fuse ] && start_mountd --kubeconfig "$KC/kubeconfig" --namespace default \
	--kernel-dir "$T/kernels"; then
	v=${P}tree
	TREE_VM=$v
	is "tree: create a VM through vms/ctl" "$("$ONEWRITE" "$M/vms/ctl" "create $v memory=64Mi disk=64Mi")" ok
	is "tree: a spec with kernelBoot is EACCES" "$("$ONEWRITE" "$M/vms/$v/spec" "$(printf 'cpus: 1\nmemory: 64Mi\nkernelBoot:\n  kernel: %s\n' "$T/kernels/vmlinuz")")" EACCES
	like "... err has the API server's refusal" "$(cat "$M/vms/$v/err")" \
		"AdmissionPolicy 'hypersdk-kernel-boot' .*spec.kernelBoot is refused"
	is "... the object has no kernelBoot" "$(k get vm "$v" -o 'jsonpath={.spec.kernelBoot}')" ""
	mkdir "$M/templates/${P}tt"
	is "tree: a template spec with source file:///etc/shadow is EACCES" \
		"$("$ONEWRITE" "$M/templates/${P}tt/spec" "$(printf 'image:\n  source: file:///etc/shadow\n')")" EACCES
	is "... the object has no source" "$(k get vmtemplate "${P}tt" -o 'jsonpath={.spec.image}')" ""
	stop_mountd
else
	ok "the daemon through its tree # SKIP needs build/mountd, /dev/fuse and root"
fi

# ---- the allow list is the ConfigMap: widen it, then narrow it
k -n hypersdk-system patch cm hypersdk-image-sources --type merge \
	-p '{"data":{"lab":"http://127.0.0.1:8000/","bad":"http://127.0.0.1"}}' >/dev/null
lab_ok() { tmpl probe '  image: {source: "http://127.0.0.1:8000/a.qcow2"}' | k create --dry-run=server -f - >/dev/null 2>&1; }
check "admin widens the allow list (ConfigMap patch): http://127.0.0.1:8000/ is accepted" \
	wait_for 30 lab_ok
refused "... a prefix without the host's / counts for nothing (http://127.0.0.1.evil/)" "$NOT_ALLOWED" \
	k "$(tmpl "${a}bad" '  image: {source: "http://127.0.0.1.evil.example/x"}')"
k -n hypersdk-system patch cm hypersdk-image-sources --type json \
	-p '[{"op":"remove","path":"/data/ubuntu"}]' >/dev/null
ubuntu_gone() { ! tmpl probe '  image: {source: "https://cloud-images.ubuntu.com/b.img"}' | k create --dry-run=server -f - >/dev/null 2>&1; }
check "admin narrows the allow list: cloud-images.ubuntu.com refused" wait_for 30 ubuntu_gone
passes "... an existing template whose source did not change stays editable" \
	k patch vmtemplate "${a}ok" --type merge -p '{"spec":{"displayName":"kept"}}'
out=$(k patch vmtemplate "${a}ok" --type merge -p '{"spec":{"image":{"source":"https://cloud-images.ubuntu.com/other.img"}}}' 2>&1)
like "... but a new source under the removed prefix is refused" "$out" "$NOT_ALLOWED"
k -n hypersdk-system delete cm hypersdk-image-sources >/dev/null
no_params() { ! vm probe | k create --dry-run=server -f - >/dev/null 2>&1; }
check "without the ConfigMap the policy fails closed (every VM refused)" wait_for 30 no_params

# ---- nothing changed by the refusals
names() { tr ' ' '\n' | grep . | sort | tr '\n' ' '; }
is "only the accepted VMs exist" "$(k get vm -o 'jsonpath={.items[*].metadata.name}' | names)" \
	"$(echo "${t}img ${t}ok ${TREE_VM:-}" | names)"
is "only the accepted templates exist" "$(k get vmtemplate -o 'jsonpath={.items[*].metadata.name}' | names)" \
	"$(echo "${a}ok ubuntu-22-04-template ${TREE_VM:+${P}tt}" | names)"
is "the accepted template's source is unchanged" \
	"$(k get vmtemplate "${a}ok" -o 'jsonpath={.spec.image.source}')" \
	https://cloud-images.ubuntu.com/jammy/current/jammy-server-cloudimg-amd64.img
done_testing

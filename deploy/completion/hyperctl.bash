# bash completion for hyperctl(1): verbs, k8s -op values and flags, VM
# names from the mount ($M/vms) or, after k8s -vm, from kubectl.
# Installed as share/bash-completion/completions/hyperctl.

_hyperctl_mount() { # the -m of the command line, else as hyperctl picks it
	local i
	for ((i = 1; i < ${#COMP_WORDS[@]} - 1; i++)); do
		case ${COMP_WORDS[i]} in
		-m | --m | -mount | --mount) echo "${COMP_WORDS[i + 1]}"; return ;;
		-m=* | --m=* | -mount=* | --mount=*) echo "${COMP_WORDS[i]#*=}"; return ;;
		esac
	done
	echo "${HYPERSDK_MOUNT:-/run/hypersdk}"
}

_hyperctl_vms() { # directories of $M/vms
	local m d
	m=$(_hyperctl_mount)
	for d in "$m"/vms/*/; do
		[ -d "$d" ] || continue
		d=${d%/}
		echo "${d##*/}"
	done
}

_hyperctl_kube() { # names of a kind, with the line's -namespace/-kubeconfig
	command -v kubectl >/dev/null 2>&1 || return 0
	local i w args=()
	for ((i = 2; i < ${#COMP_WORDS[@]} - 1; i++)); do
		w=${COMP_WORDS[i]}
		case $w in
		-namespace | --namespace) args+=(--namespace "${COMP_WORDS[i + 1]}") ;;
		-kubeconfig | --kubeconfig) args+=(--kubeconfig "${COMP_WORDS[i + 1]}") ;;
		esac
	done
	kubectl "${args[@]}" get "$1" -o name --request-timeout=2s 2>/dev/null | sed 's|.*/||'
}

_hyperctl_k8s() {
	local cur=$1 prev=$2
	local ops
	ops=$(hyperctl __complete ops 2>/dev/null)
	local flags="-op -vm -cpus -memory -disk -image -template -target
		-target-node -snapshot -include-memory -namespace -kubeconfig -name"
	case ${prev#-} in
	op | -op) mapfile -t COMPREPLY < <(compgen -W "$ops" -- "$cur"); return ;;
	vm | -vm) mapfile -t COMPREPLY < <(compgen -W "$(_hyperctl_kube virtualmachines.hypersdk.io)" -- "$cur"); return ;;
	snapshot | -snapshot) mapfile -t COMPREPLY < <(compgen -W "$(_hyperctl_kube vmsnapshots.hypersdk.io)" -- "$cur"); return ;;
	template | -template) mapfile -t COMPREPLY < <(compgen -W "$(_hyperctl_kube vmtemplates.hypersdk.io)" -- "$cur"); return ;;
	namespace | -namespace) mapfile -t COMPREPLY < <(compgen -W "$(_hyperctl_kube namespaces)" -- "$cur"); return ;;
	kubeconfig | -kubeconfig) mapfile -t COMPREPLY < <(compgen -f -- "$cur"); return ;;
	cpus | -cpus | memory | -memory | disk | -disk | image | -image | target | -target | \
		target-node | -target-node | name | -name) return ;;
	esac
	mapfile -t COMPREPLY < <(compgen -W "$flags" -- "$cur")
}

_hyperctl_args() { # the words after VERB NAME
	local verb=$1 cur=$2 prev=$3 w
	case $verb in
	stop | delete) w="force" ;;
	clone) w="linked start" ;;
	migrate) w="offline autoconverge postcopy bandwidth=" ;;
	resize) w="cpus= memory=" ;;
	snapshot) w="memory quiesce keep= count=" ;;
	create) w="cpus= memory= disk= template= running=true running=false" ;;
	wait)
		[ "$prev" = -timeout ] && return
		w="Pending Creating Running Stopped Paused Migrating Failed Unknown -timeout" ;;
	spec) mapfile -t COMPREPLY < <(compgen -f -- "$cur"); return ;;
	*) return ;;
	esac
	mapfile -t COMPREPLY < <(compgen -W "$w" -- "$cur")
	# key= options take a value: no space after them
	[[ ${COMPREPLY[0]-} == *= ]] && compopt -o nospace 2>/dev/null
}

_hyperctl() {
	local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
	local verbs
	verbs="$(hyperctl __complete verbs 2>/dev/null) k8s"
	local i=1 vi
	COMPREPLY=()
	if [ "${COMP_WORDS[1]-}" = k8s ] && [ "$COMP_CWORD" -ge 2 ]; then
		_hyperctl_k8s "$cur" "$prev"
		return
	fi
	case $prev in
	-m | --m | -mount | --mount) mapfile -t COMPREPLY < <(compgen -d -- "$cur"); return ;;
	esac
	# skip -m MOUNT to find the verb
	while [ "$i" -lt "$COMP_CWORD" ]; do
		case ${COMP_WORDS[i]} in
		-m | --m | -mount | --mount) i=$((i + 2)) ;;
		-*) i=$((i + 1)) ;;
		*) break ;;
		esac
	done
	vi=$i
	if [ "$COMP_CWORD" -le "$vi" ]; then
		mapfile -t COMPREPLY < <(compgen -W "$verbs -m" -- "$cur")
		return
	fi
	if [ "$COMP_CWORD" -eq $((vi + 1)) ]; then
		case ${COMP_WORDS[vi]} in
		list | create) return ;;
		esac
		mapfile -t COMPREPLY < <(compgen -W "$(_hyperctl_vms)" -- "$cur")
		return
	fi
	_hyperctl_args "${COMP_WORDS[vi]}" "$cur" "$prev"
}
complete -F _hyperctl hyperctl

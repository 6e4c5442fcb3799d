# Sourced by the set-up scripts.
#
# show_tail LABEL FILE N: FILE's last N lines between two rules, on stderr.
show_tail() {
	{
		echo "----- last lines of $1"
		tail -n "$3" "$2"
		echo "-----"
	} >&2
}

# quietly WHAT CMD...: run CMD with its
# output kept aside; on success print nothing, on failure print the tail of
# that output and one line "ME: WHAT failed (exit N)" on stderr, then exit
# with CMD's status.  Nothing a step prints is lost when the step fails.
# The caller sets ME (the script's name) and may set QUIET_HINT, one more
# line of advice printed after the reason.
quietly() {
	local what=$1 log rc=0
	shift
	log=$(mktemp "${TMPDIR:-/tmp}/hypersdk-step.XXXXXX")
	"$@" >"$log" 2>&1 </dev/null || rc=$?
	if [ "$rc" -ne 0 ]; then
		show_tail "$*" "$log" "${QUIET_TAIL:-25}"
		{
			echo "${ME:-hypersdk}: $what failed (exit $rc)"
			[ -z "${QUIET_HINT:-}" ] || echo "${ME:-hypersdk}: $QUIET_HINT"
		} >&2
		rm -f "$log"
		exit "$rc"
	fi
	rm -f "$log"
}

# TAP output for the shell tests (tests/fs, tests/fresh): source it.
#   ok DESC, not_ok DESC [DETAILS], check DESC CMD..., is DESC GOT WANT,
#   like DESC GOT REGEX, done_testing (prints the plan, exits 0 or 1).
tap_n=0
tap_failed=0
ok() { tap_n=$((tap_n + 1)); echo "ok $tap_n - $1"; }
not_ok() {
	tap_n=$((tap_n + 1)); tap_failed=$((tap_failed + 1))
	echo "not ok $tap_n - $1"
	[ -z "${2:-}" ] || printf '%s\n' "$2" | sed 's/^/# /'
}
# check DESC CMD...: ok when CMD succeeds
check() { local d=$1; shift; if "$@"; then ok "$d"; else not_ok "$d"; fi; }
# is DESC GOT WANT
is() {
	if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1" "got:  '$2'
want: '$3'"; fi
}
# like DESC GOT REGEX
like() {
	if [[ $2 =~ $3 ]]; then ok "$1"; else not_ok "$1" "got:  '$2'
want: /$3/"; fi
}
done_testing() {
	echo "1..$tap_n"
	[ "$tap_failed" -eq 0 ]
	exit $?
}

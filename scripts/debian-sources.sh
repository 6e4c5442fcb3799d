# Sourced by the scripts that make a Debian root with mmdebstrap
# (tests/fresh/root.sh, deploy/image/build.sh).
#
# debian_sources [OVERRIDE]: what to give mmdebstrap as its mirror, so the
# root reaches Debian's archive the way this machine does: OVERRIDE when
# set (a sources file or a mirror URL), else the host's sources file;
# nothing when there is none (mmdebstrap's default mirror).
debian_sources() {
	if [ -n "${1:-}" ]; then
		echo "$1"
	elif [ -f /etc/apt/sources.list.d/debian.sources ]; then
		echo /etc/apt/sources.list.d/debian.sources
	elif grep -qs '^deb ' /etc/apt/sources.list; then
		echo /etc/apt/sources.list
	fi
}

#!/usr/bin/env bash
# The node daemon's image without Docker or a registry: an OCI image
# archive (oci-layout, index.json, blobs/sha256/...) that a node imports
# with `ctr -n k8s.io images import FILE` (docs/deploy.md, "The image
# without a registry").  The same image as deploy/image/Dockerfile: the
# run packages of its second stage, hypersdk-mountd and hyperctl.
#
#   deploy/image/build.sh [--out FILE] [--ref NAME:TAG]
#     The image; ref ghcr.io/hypersdk/hypersdk-mountd:VERSION (VERSION:
#     meson.build's project version), out build-image/hypersdk-mountd-
#     VERSION.oci.tar.  Needs root and a Debian 12 host: the binaries are
#     built here (meson, in build-image/) and link the host's libraries.
#   deploy/image/build.sh pack ROOTFS_DIR REF OUT ENTRYPOINT...
#     Any folder as a one-layer image with that entrypoint (the test
#     harness packs its pause image so).
#
# The last line of stdout is the archive's path.  The archive is
# reproducible: every time in it is SOURCE_DATE_EPOCH (default: the commit
# time of HEAD), so two runs from one commit with the same cached root
# give the same bytes.
#
# The root file system is mmdebstrap's (Debian bookworm, minbase), cached
# per host under IMAGE_CACHE (default /var/cache/hypersdk/image):
#   rootfs-KEY.tar  the trimmed root (no apt lists or caches, logs, docs
#                   but copyright files, man pages, translations), KEY a
#                   hash of its recipe (packages, options, trimming);
#                   remade when older than 30 days or deleted;
#   apt-archives/   the .debs it was made of, so remaking it downloads
#                   only the package lists and what changed.
set -euo pipefail
shopt -s inherit_errexit
umask 022
ME=image
SELF=$(readlink -f "$0")
TOP=$(cd "$(dirname "$SELF")/../.." && pwd)
# shellcheck disable=SC1091 # scripts/quietly.sh: shellcheck -x follows it
. "$TOP/scripts/quietly.sh"
# shellcheck source=scripts/debian-sources.sh
. "$TOP/scripts/debian-sources.sh"

SUITE=bookworm
# deploy/image/Dockerfile's second stage installs the same list.
RUN_PKGS=(libfuse3-3 fuse3 libvirt0 libvirt-clients libjson-c5 libyaml-0-2
  libcurl4 libssl3 libmicrohttpd12 qemu-utils xorriso ca-certificates)
IMAGE_CACHE=${IMAGE_CACHE:-/var/cache/hypersdk/image}
MAX_AGE_DAYS=30
IMAGE_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# Temporary folders, removed on exit however it comes.
CLEAN=()
cleanup() {
  local d
  for d in "${CLEAN[@]}"; do rm -rf --one-file-system "$d"; done
}
trap cleanup EXIT

usage() {
  echo "usage: $0 [--out FILE] [--ref NAME:TAG]" >&2
  echo "       $0 pack ROOTFS_DIR REF OUT ENTRYPOINT..." >&2
  exit "${1:-2}"
}

die() {
  echo "$ME: $*" >&2
  exit 1
}

# SOURCE_DATE_EPOCH from the environment, else HEAD's commit time.
source_date_epoch() {
  if [ -n "${SOURCE_DATE_EPOCH:-}" ]; then
    echo "$SOURCE_DATE_EPOCH"
  else
    git -C "$TOP" log -1 --format=%ct HEAD 2>/dev/null ||
      die "not a git checkout: set SOURCE_DATE_EPOCH"
  fi
}

# The image's JSON documents, keys in a fixed order, no spaces.
# oci_json config CREATED ARCH DIFF_ID CREATED_BY N ENV... N ENTRYPOINT...
#   N CMD... N LABEL=VALUE...
# oci_json manifest CREATED CONFIG_DIGEST CONFIG_SIZE LAYER_DIGEST LAYER_SIZE
# oci_json index MANIFEST_DIGEST MANIFEST_SIZE ARCH REF TAG
OCI_PY='
import json, sys
a = sys.argv[1:]
def one():
    return a.pop(0)
def some():
    n = int(a.pop(0))
    r = a[:n]
    del a[:n]
    return r
kind = one()
if kind == "config":
    created, arch, diff_id, by = one(), one(), one(), one()
    env, entry, cmd, labels = some(), some(), some(), some()
    cfg = {"Env": env, "Entrypoint": entry}
    if cmd:
        cfg["Cmd"] = cmd
    if labels:
        cfg["Labels"] = dict(l.split("=", 1) for l in labels)
    doc = {"created": created, "architecture": arch, "os": "linux",
           "config": cfg,
           "rootfs": {"type": "layers", "diff_ids": [diff_id]},
           "history": [{"created": created, "created_by": by}]}
elif kind == "manifest":
    created, cdig, csize, ldig, lsize = a
    doc = {"schemaVersion": 2,
           "mediaType": "application/vnd.oci.image.manifest.v1+json",
           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                      "digest": cdig, "size": int(csize)},
           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                       "digest": ldig, "size": int(lsize)}],
           "annotations": {"org.opencontainers.image.created": created}}
elif kind == "index":
    mdig, msize, arch, ref, tag = a
    doc = {"schemaVersion": 2,
           "mediaType": "application/vnd.oci.image.index.v1+json",
           "manifests": [{
               "mediaType": "application/vnd.oci.image.manifest.v1+json",
               "digest": mdig, "size": int(msize),
               "platform": {"architecture": arch, "os": "linux"},
               "annotations": {"io.containerd.image.name": ref,
                               "org.opencontainers.image.ref.name": tag}}]}
else:
    sys.exit("oci_json: " + kind + "?")
sys.stdout.write(json.dumps(doc, separators=(",", ":")) + "\n")
'
oci_json() { python3 -c "$OCI_PY" "$@"; }

# blob DIR FILE: move FILE into DIR/blobs/sha256 under its digest; prints
# "sha256:HEX SIZE".
blob() {
  local hex size
  hex=$(sha256sum "$2" | cut -d' ' -f1)
  size=$(stat -c %s "$2")
  mv "$2" "$1/blobs/sha256/$hex"
  echo "sha256:$hex $size"
}

# The tar options that make an archive the same bytes every time.
repro_tar() {
  LC_ALL=C tar --sort=name --mtime="@$EPOCH" --clamp-mtime --numeric-owner \
    --format=posix \
    --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime "$@"
}

# oci_pack ROOTFS REF OUT ENTRYPOINT...: ROOTFS as a one-layer OCI image
# archive OUT named REF (NAME:TAG; NAME alone gets :latest).  The caller
# may set OCI_CMD and OCI_LABELS (KEY=VALUE), arrays, and OCI_BY (the
# history's created_by).  Files keep their numeric owners; EPOCH is the
# time of everything.
OCI_CMD=()
OCI_LABELS=()
OCI_BY="deploy/image/build.sh pack"
oci_pack() {
  local rootfs=$1 ref=$2 out=$3 tag arch created w layer config manifest l c m
  shift 3
  [ -d "$rootfs" ] || die "$rootfs: not a folder"
  [ "$#" -ge 1 ] || die "no entrypoint"
  case $ref in *@*) die "$ref: a digest reference cannot be a name" ;; esac
  tag=${ref##*/}
  case $tag in
    *:*) tag=${tag##*:} ;;
    *) tag=latest ref=$ref:latest ;;
  esac
  arch=$(dpkg --print-architecture)
  created=$(date -u -d "@$EPOCH" +%Y-%m-%dT%H:%M:%SZ)
  mkdir -p "$(dirname "$out")"
  w=$(mktemp -d "$(dirname "$out")/.oci-pack.XXXXXX")
  CLEAN+=("$w")
  mkdir -p "$w/oci/blobs/sha256"

  # The layer: the folder's entries, not "." itself, so no "./" prefix.
  (cd "$rootfs" && find . -mindepth 1 -maxdepth 1 -printf '%P\0' | LC_ALL=C sort -z) |
    repro_tar --xattrs --xattrs-include=security.capability \
      -C "$rootfs" --null -T - -cf "$w/layer.tar"
  l=$(sha256sum "$w/layer.tar" | cut -d' ' -f1)
  gzip -n -c "$w/layer.tar" >"$w/layer.tar.gz"
  rm "$w/layer.tar"
  layer=$(blob "$w/oci" "$w/layer.tar.gz")

  oci_json config "$created" "$arch" "sha256:$l" "$OCI_BY" \
    1 "PATH=$IMAGE_PATH" "$#" "$@" "${#OCI_CMD[@]}" "${OCI_CMD[@]}" \
    "${#OCI_LABELS[@]}" "${OCI_LABELS[@]}" >"$w/config"
  config=$(blob "$w/oci" "$w/config")
  # shellcheck disable=SC2086 # "DIGEST SIZE" pairs
  oci_json manifest "$created" $config $layer >"$w/manifest"
  manifest=$(blob "$w/oci" "$w/manifest")
  # shellcheck disable=SC2086
  oci_json index $manifest "$arch" "$ref" "$tag" >"$w/oci/index.json"
  echo '{"imageLayoutVersion":"1.0.0"}' >"$w/oci/oci-layout"

  repro_tar --owner=0 --group=0 -C "$w/oci" -cf "$w/out.tar" oci-layout index.json blobs
  mv "$w/out.tar" "$out"
  read -r c _ <<<"$config"
  read -r m _ <<<"$manifest"
  echo "$ME: $out: $ref, manifest $m, config $c, $(du -h "$out" | cut -f1)" >&2
}

# image_trim ROOT: what makes a root big or differ between two makings:
# apt's lists and caches, logs, the machine id, docs (not the copyright
# files), man and info pages, translations (not locale.alias).  Run by
# mmdebstrap as a customize hook (after the apt archives are saved).
image_trim() {
  local r=$1
  rm -rf "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/*.bin \
    "$r"/var/cache/apt/archives/*.deb "$r"/var/cache/ldconfig/aux-cache \
    "$r"/var/cache/debconf/*-old "$r"/var/lib/dpkg/*-old \
    "$r"/var/lib/dbus/machine-id
  if [ -f "$r/etc/machine-id" ]; then : >"$r/etc/machine-id"; fi
  trim_in "$r"/var/cache/apt/archives/partial "$r"/var/log ! -type d
  trim_in "$r"/usr/share/doc ! -type d ! -name copyright
  trim_in "$r"/usr/share/doc -type d -empty
  trim_in "$r"/usr/share/man "$r"/usr/share/info
  trim_in "$r"/usr/share/locale ! -name locale.alias
}

# trim_in DIR... [TEST...]: delete what is below the DIRs that exist and
# pass the find TESTs.
trim_in() {
  local dirs=()
  while [ "$#" -gt 0 ] && [ "${1:0:1}" = / ]; do
    [ ! -d "$1" ] || dirs+=("$1")
    shift
  done
  [ "${#dirs[@]}" -eq 0 ] || find "${dirs[@]}" -mindepth 1 "$@" -delete
}

# rootfs_tarball: the cached root's path (made, or remade when old, under
# a lock: two builds may want it at once).
rootfs_tarball() {
  local recipe key tar src
  # What the root is made of; the cache key.  /usr is merged by
  # mmdebstrap's hook (as debootstrap does), not by the usrmerge package,
  # which init-system-helpers would otherwise pull in with all of perl.
  # dpkg keeps the path filters for later installs too.
  recipe=(--variant=minbase "--include=$(IFS=,; echo "${RUN_PKGS[*]}")"
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
    --dpkgopt='path-exclude=/usr/share/doc/*'
    --dpkgopt='path-include=/usr/share/doc/*/copyright'
    --dpkgopt='path-exclude=/usr/share/man/*'
    --dpkgopt='path-exclude=/usr/share/info/*'
    --dpkgopt='path-exclude=/usr/share/locale/*'
    --dpkgopt='path-include=/usr/share/locale/locale.alias')
  key=$({ echo "$SUITE"; printf '%s\n' "${recipe[@]}"; declare -f image_trim trim_in; } |
    sha256sum | cut -c1-16)
  tar=$IMAGE_CACHE/rootfs-$key.tar
  mkdir -p "$IMAGE_CACHE/apt-archives/partial"
  (
    flock 8
    if [ -s "$tar" ] && [ -z "$(find "$tar" -mtime +"$MAX_AGE_DAYS")" ]; then
      exit 0
    fi
    find "$IMAGE_CACHE" -maxdepth 1 -name 'rootfs-*.tar' -mtime +"$MAX_AGE_DAYS" -delete
    echo "$ME: making the root file system (mmdebstrap; minutes on a cold cache)" >&2
    src=$(debian_sources "${IMAGE_SOURCES:-}")
    # The .debs come from and go back to the cache (download/empty and
    # essential/unlink skipped, so they are all still there for
    # sync-out); image_trim then removes them from the root.  /dev is
    # left out (its nodes are the runtime's).
    # shellcheck disable=SC2016 # $1 is mmdebstrap's, in its hooks
    SOURCE_DATE_EPOCH=$EPOCH QUIET_HINT="the Debian archive must be reachable" \
      quietly "mmdebstrap" mmdebstrap --format=tar "${recipe[@]}" \
      --skip=download/empty --skip=essential/unlink --skip=output/dev \
      --setup-hook='mkdir -p "$1/var/cache/apt/archives"' \
      --setup-hook="sync-in $IMAGE_CACHE/apt-archives /var/cache/apt/archives" \
      --customize-hook="sync-out /var/cache/apt/archives $IMAGE_CACHE/apt-archives" \
      --customize-hook="'$SELF' _trim \"\$1\"" \
      "$SUITE" "$tar.new" ${src:+"$src"}
    rm -f "$IMAGE_CACHE/apt-archives/lock"
    mv "$tar.new" "$tar"
  ) 8>"$IMAGE_CACHE/rootfs.lock"
  echo "$tar"
}

# The host's libraries are the image's: the binaries are built here.
host_check() {
  local os
  # shellcheck disable=SC1091
  os=$(. /etc/os-release && echo "${ID:-}-${VERSION_ID:-}")
  if [ "$os" != debian-12 ]; then
    die "this host is ${os:-unknown}, not Debian 12: the daemon built here would link other libraries than the image's Debian 12 has"
  fi
  [ "$(id -u)" -eq 0 ] || die "run as root (mmdebstrap, and the root's file owners)"
  local t
  for t in mmdebstrap meson ninja python3 flock; do
    command -v "$t" >/dev/null || die "$t is missing (scripts/deps.sh test installs it)"
  done
}

case ${1:-} in
  _trim)
    image_trim "$2"
    exit 0
    ;;
  pack)
    shift
    [ "$#" -ge 4 ] || usage
    EPOCH=$(source_date_epoch)
    oci_pack "$@"
    echo "$3"
    exit 0
    ;;
esac

out=
ref=
while [ "$#" -gt 0 ]; do
  case $1 in
    --out) [ "$#" -ge 2 ] || usage; out=$2; shift 2 ;;
    --out=*) out=${1#--out=}; shift ;;
    --ref) [ "$#" -ge 2 ] || usage; ref=$2; shift 2 ;;
    --ref=*) ref=${1#--ref=}; shift ;;
    -h | --help) usage 0 ;;
    *) usage ;;
  esac
done

host_check
version=$(meson introspect --projectinfo "$TOP/meson.build" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["version"])')
ref=${ref:-ghcr.io/hypersdk/hypersdk-mountd:$version}
out=${out:-$TOP/build-image/hypersdk-mountd-$version.oci.tar}
EPOCH=$(source_date_epoch)
BUILD=$TOP/build-image

tarball=$(rootfs_tarball)

if [ ! -f "$BUILD/build.ninja" ]; then
  quietly "configure (meson setup build-image)" meson setup "$BUILD" "$TOP" \
    --prefix=/usr --buildtype=release -Dtests=disabled
fi
echo "$ME: building hypersdk-mountd and hyperctl in build-image/" >&2
quietly "build (ninja)" ninja -C "$BUILD" mountd/hypersdk-mountd cli/hyperctl

w=$(mktemp -d "${TMPDIR:-/var/tmp}/hypersdk-image.XXXXXX")
CLEAN+=("$w")
root=$w/root
mkdir "$root"
tar -C "$root" --numeric-owner --xattrs --xattrs-include='*' -xpf "$tarball"
[ -d "$root/dev" ] || mkdir -m 0755 "$root/dev"
install -m 0755 "$BUILD/mountd/hypersdk-mountd" "$BUILD/cli/hyperctl" "$root/usr/bin/"
# Every library the daemon links is in the root, and it starts there.
missing=$(chroot "$root" /usr/bin/ldd /usr/bin/hypersdk-mountd /usr/bin/hyperctl |
  grep 'not found' || true)
[ -z "$missing" ] || die "libraries missing from the root (add their packages to RUN_PKGS):
$missing"
chroot "$root" /usr/bin/hypersdk-mountd --help >/dev/null ||
  die "hypersdk-mountd --help fails in the root"

OCI_CMD=(--foreground)
OCI_LABELS=(
  org.opencontainers.image.title=hypersdk-mountd
  "org.opencontainers.image.description=HyperSDK VM file system: the node daemon"
  org.opencontainers.image.licenses=LGPL-3.0-or-later
  "org.opencontainers.image.version=$version"
  "org.opencontainers.image.created=$(date -u -d "@$EPOCH" +%Y-%m-%dT%H:%M:%SZ)")
if rev=$(git -C "$TOP" rev-parse HEAD 2>/dev/null); then
  OCI_LABELS+=("org.opencontainers.image.revision=$rev")
fi
OCI_BY="deploy/image/build.sh (mmdebstrap $SUITE minbase: ${RUN_PKGS[*]}; hypersdk-mountd, hyperctl)"
oci_pack "$root" "$ref" "$out" /usr/bin/hypersdk-mountd
echo "$out"

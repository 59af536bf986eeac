#!/usr/bin/env bash
# `make image`: builds the container image localhost/kelpie:<version> (also tagged :latest)
# from deploy/container/Containerfile and target/debian/kelpie_<version>_<arch>.deb.
#
# No container registry is needed: the Debian 12 slim base is made here from Debian packages
# with mmdebstrap (minbase, with documentation, man pages and translations left out the way
# debian:bookworm-slim leaves them out), imported as localhost/kelpie-base:bookworm-slim, and
# the image is built on it with `podman build --isolation chroot` (RUN steps need no OCI
# runtime). The base is made once; KELPIE_REBUILD_BASE=1 makes it again.
#   KELPIE_DEBIAN_MIRROR   Debian mirror (default http://deb.debian.org/debian)
#   KELPIE_IMAGE_GPU=no    leave out gstreamer1.0-plugins-bad (the NVENC and VA-API encoders):
#                          tagged :<version>-cpu and :latest-cpu
set -euo pipefail
cd "$(dirname "$0")/../.."
for tool in podman mmdebstrap; do
  command -v "$tool" >/dev/null || { echo "image: $tool is missing: run 'scripts/install-deps.sh --package'" >&2; exit 1; }
done
version=$(target/release/kelpie --version | awk '{print $2}')
arch=$(dpkg --print-architecture)
deb=target/debian/kelpie_${version}_${arch}.deb
[ -f "$deb" ] || { echo "image: $deb is missing: run 'make deb'" >&2; exit 1; }
mirror=${KELPIE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
security=${mirror%/debian}/debian-security
base=localhost/kelpie-base:bookworm-slim
work=target/image
mkdir -p "$work"

if [ "${KELPIE_REBUILD_BASE:-}" = 1 ] || ! podman image exists "$base"; then
  echo "image: making the Debian 12 slim base with mmdebstrap"
  mmdebstrap --variant=minbase --mode=root --format=tar \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --dpkgopt='path-exclude=/usr/share/lintian/*' \
    --aptopt='APT::Install-Recommends "false"' \
    --customize-hook='printf "%s\n" "DPkg::Post-Invoke { \"rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true\"; };" "APT::Update::Post-Invoke { \"rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true\"; };" "Dir::Cache::pkgcache \"\";" "Dir::Cache::srcpkgcache \"\";" > "$1"/etc/apt/apt.conf.d/docker-clean' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin "$1"/var/log/*.log "$1"/var/log/apt/*' \
    bookworm "$work/base.tar" \
    "deb $mirror bookworm main" "deb $mirror bookworm-updates main" "deb $security bookworm-security main"
  podman import --change 'CMD ["bash"]' "$work/base.tar" "$base" >/dev/null
  rm -f "$work/base.tar"
fi

context=$work/context
rm -rf "$context"
mkdir -p "$context"
cp deploy/container/Containerfile "$context/Containerfile"
cp "$deb" "$context/kelpie.deb"
gpu=${KELPIE_IMAGE_GPU:-yes}
tag=$version latest=latest
if [ "$gpu" != yes ]; then
  tag=$version-cpu latest=latest-cpu
fi
podman build --isolation chroot --format docker --build-arg BASE="$base" --build-arg GPU="$gpu" \
  --tag "localhost/kelpie:$tag" --tag "localhost/kelpie:$latest" "$context"
rm -rf "$context"
size=$(podman image inspect --format '{{.Size}}' "localhost/kelpie:$tag")
echo "image: built localhost/kelpie:$tag ($((size / 1000000)) MB)"

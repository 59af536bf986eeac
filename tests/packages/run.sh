#!/usr/bin/env bash
# `make test-packages` (not part of `make test`: a few minutes, and it needs the Debian
# mirror): the packages as a new user gets them.
#   1. target/debian/kelpie_<version>_<arch>.deb is installed with apt into a fresh Debian 12
#      root file system made by mmdebstrap (variant apt: nothing but apt and the Essential
#      packages), and there `kelpie --app xterm` serves a picture that headless Chromium on
#      the host decodes; the packaged binary's cold start is measured.
#   2. the image localhost/kelpie:<version> runs under podman as its non-root user and streams
#      its XFCE desktop to Chromium; its HEALTHCHECK passes; `podman stop` ends it cleanly.
#      Where podman cannot run containers, the image's root file system runs with unshare +
#      chroot instead (as its user, with its environment and entry point).
#   3. deploy/apptainer/kelpie.def, built as `apptainer build` would (Debian 12 has no
#      Apptainer), passes its %test and streams XFCE from a read-only root with a private
#      /tmp and $HOME, as `apptainer run --containall` runs it.
# Kelpie and Chromium run inside a network namespace with only loopback up (as tests/e2e).
# When every test passes, the figures go into docs/benchmarks.md (section "Packages").
#   KELPIE_DEBIAN_MIRROR   Debian mirror (default http://deb.debian.org/debian)
set -euo pipefail
self=$(readlink -f "$0")
here=$(dirname "$self")
root=$(cd "$here/../.." && pwd)
if [ "${KELPIE_IN_NETNS:-}" != 1 ]; then
  version=$("$root/target/release/kelpie" --version | awk '{print $2}')
  arch=$(dpkg --print-architecture)
  deb=$root/target/debian/kelpie_${version}_${arch}.deb
  [ -f "$deb" ] || { echo "test-packages: $deb is missing: run 'make deb'" >&2; exit 1; }
  podman image exists "localhost/kelpie:$version" \
    || { echo "test-packages: the image localhost/kelpie:$version is missing: run 'make image'" >&2; exit 1; }
  [ -e "$root/tests/e2e/node_modules/playwright-core/package.json" ] \
    || { echo "test-packages: run 'make tests/e2e/node_modules/.package-lock.json' first (or 'make test-packages')" >&2; exit 1; }
  mirror=${KELPIE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
  work=$root/target/packages-test
  rm -rf "$work/rootfs"
  mkdir -p "$work"
  # mmdebstrap runs apt without Recommends; a Debian system's apt installs them (Xvfb,
  # PulseAudio, xterm, … are Recommends of kelpie), so the install asks for them.
  echo "test-packages: a fresh Debian 12 root file system, and the .deb installed into it with apt"
  mmdebstrap --variant=apt --mode=root --format=directory \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --customize-hook="copy-in $deb /tmp" \
    --customize-hook="chroot \"\$1\" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o APT::Install-Recommends=true /tmp/$(basename "$deb")" \
    --customize-hook="chroot \"\$1\" dpkg-query -W -f='\${Package} \${Version} \${Status}\n' kelpie" \
    --customize-hook='rm -f "$1"/tmp/*.deb' \
    bookworm "$work/rootfs" \
    "deb $mirror bookworm main" "deb $mirror bookworm-updates main" "deb ${mirror%/debian}/debian-security bookworm-security main"
  # Debian 12 has no Apptainer: deploy/apptainer/kelpie.def is built the way `apptainer build`
  # would build it (tests/packages/apptainer-emulate.sh) and run the way `apptainer run
  # --containall` runs it: read-only, a private /tmp and $HOME, a PID namespace.
  echo "test-packages: deploy/apptainer/kelpie.def, built as apptainer build would"
  rm -rf "$work/apptainer-build"
  mkdir -p "$work/apptainer-build"
  cp "$root/deploy/apptainer/kelpie.def" "$work/apptainer-build/"
  cp "$deb" "$work/apptainer-build/kelpie.deb"
  "$here/apptainer-emulate.sh" "$work/apptainer-build/kelpie.def" "$work/apptainer-rootfs"
  rm -f "$work/figures.json"
  unshare -n env KELPIE_IN_NETNS=1 KELPIE_TEST_ROOTFS="$work/rootfs" KELPIE_TEST_IMAGE="localhost/kelpie:$version" \
    KELPIE_TEST_APPTAINER="$work/apptainer-rootfs" KELPIE_TEST_OUT="$work" "$self" "$@"
  # The image's size and the start-up times into docs/benchmarks.md (section "Packages").
  node "$here/report.mjs" "$work/figures.json" "localhost/kelpie:$version" "$deb"
  exit 0
fi
ip link set lo up
exec node --test --test-concurrency=1 --test-timeout=600000 "${@:-$here/}"

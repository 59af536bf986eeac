#!/usr/bin/env bash
# Installs what Kelpie needs on Debian 12, skipping what is already there.
#   scripts/install-deps.sh            build + run (GStreamer, Xvfb, demo desktop, PulseAudio)
#   scripts/install-deps.sh --test     also what `make test` needs (Chromium, gst-launch-1.0, …)
#   scripts/install-deps.sh --bench    also what `make bench` needs (xwd, the VNC peer, Selkies' venv)
#   scripts/install-deps.sh --package  also what `make deb`, `make image`, `make test-packages` need
#   scripts/install-deps.sh --list [--test|--bench|--package]
#                                      prints those packages, one a line, and installs nothing
# The options add up (`--bench` and `--package` include `--test`). Every program the tests,
# `make run` and `make bench` start comes from a package here: tests/commands.txt names it,
# and tests/check-commands.sh checks it before the tests start.
set -euo pipefail

list=0 test=0 bench=0 package=0
for arg in "$@"; do
  case "$arg" in
    --list) list=1 ;;
    --test) test=1 ;;
    --bench) bench=1 test=1 ;;
    --package) package=1 test=1 ;;
    *) echo "install-deps.sh: unknown option '$arg' (use --list, --test, --bench, --package)" >&2; exit 2 ;;
  esac
done

packages=(
  # build
  build-essential pkg-config libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
  # libx264's header for Kelpie's own x264 driver (the library itself is loaded at start)
  libx264-dev
  # media: appsrc/videoconvert/opusenc (base), vp8enc (good), x264enc (ugly), openh264enc/nvh264enc/vah264enc (bad)
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly gstreamer1.0-plugins-bad
  # the embedded display and its demo desktop
  xvfb x11-xserver-utils openbox xterm
  # sound: the private PulseAudio server (pactl sets it up), pulsesrc/pulsesink
  pulseaudio pulseaudio-utils gstreamer1.0-pulseaudio
)
if [ "$test" = 1 ]; then
  # Chromium (headless, driven by playwright-core), network namespaces and their rules
  # (unshare, nsenter, ip, tc, ss, nft), an HTTP proxy (nginx), test certificates (openssl), a
  # TURN server (coturn: the tests start their own; the system service its package would start
  # is kept off, below), X tools (xdpyinfo, xclip), process tools (pgrep), a tone player
  # (gst-launch-1.0), a recording checker (gst-discoverer-1.0), a FIFO maker (mkfifo); for the deployment tests, Python's venv (Helm's SDK, kubernetes-validate,
  # Jupyter… from PyPI, deploy/tests/venv.sh) and Ruby (Open OnDemand's ERB templates)
  packages+=(chromium iproute2 util-linux x11-utils procps nginx-light openssl nftables coturn xclip gstreamer1.0-tools
    python3-venv ruby gstreamer1.0-plugins-base-apps coreutils)
fi
if [ "$bench" = 1 ]; then
  # xwd (screen dumps for the quality figures), the VNC peer (Selkies' virtual environment:
  # python3-venv, in --test)
  packages+=(x11-apps x11vnc websockify novnc)
fi
if [ "$package" = 1 ]; then
  # the .deb (dpkg-deb, dpkg-shlibdeps, the man page, lintian, gst-inspect-1.0 is in --test),
  # the fresh root file systems (mmdebstrap), the container image (buildah, podman, runc)
  packages+=(dpkg-dev fakeroot help2man lintian mmdebstrap buildah podman runc)
fi

if [ "$list" = 1 ]; then
  printf '%s\n' "${packages[@]}"
  exit 0
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "Installing Debian packages: ${missing[*]}"
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -q
  # Packages whose system-wide service the tests must not have running: installed with
  # service starts refused (policy-rc.d, which deb-systemd-invoke and invoke-rc.d obey),
  # then disabled for later boots.
  no_service=() others=()
  for p in "${missing[@]}"; do
    case "$p" in coturn) no_service+=("$p") ;; *) others+=("$p") ;; esac
  done
  if [ ${#others[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${others[@]}"
  fi
  if [ ${#no_service[@]} -gt 0 ]; then
    policy=/usr/sbin/policy-rc.d
    if [ -e "$policy" ]; then
      DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${no_service[@]}"
    else
      trap '$sudo rm -f "$policy"' EXIT
      printf '#!/bin/sh\n# scripts/install-deps.sh: no service starts while it installs\nexit 101\n' | $sudo tee "$policy" >/dev/null
      $sudo chmod 755 "$policy"
      DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${no_service[@]}"
      $sudo rm -f "$policy"
      trap - EXIT
    fi
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
      $sudo systemctl disable --now "${no_service[@]}" >/dev/null 2>&1 || true
    elif command -v update-rc.d >/dev/null 2>&1; then
      for p in "${no_service[@]}"; do $sudo update-rc.d "$p" disable >/dev/null 2>&1 || true; done
    fi
  fi
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "Rust is missing: install Rust 1.95 or newer from https://rustup.rs (then open a new shell)" >&2
  exit 1
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "Node.js is missing: install Node.js 20.19 or newer with npm (https://nodejs.org or NodeSource's Debian packages)" >&2
  exit 1
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  echo "Node.js $(node --version) is too old for the web client's build (Vite 8): install Node.js 20.19 or newer" >&2
  exit 1
fi

#!/usr/bin/env bash
# Installs what Kelpie needs on Debian 12, skipping what is already there.
#   scripts/install-deps.sh          build + run (GStreamer, Xvfb, demo desktop)
#   scripts/install-deps.sh --test   also what the tests need (Chromium, iproute2)
set -euo pipefail

packages=(
  # build
  build-essential pkg-config libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
  # libx264's header for Kelpie's own x264 driver (the library itself is loaded at start)
  libx264-dev
  # media: appsrc/videoconvert (base), vp8enc (good), x264enc (ugly), openh264enc/nvh264enc/vah264enc (bad)
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly gstreamer1.0-plugins-bad
  # the embedded display and its demo desktop
  xvfb x11-xserver-utils openbox xterm
  # sound: the private PulseAudio server (pactl sets it up), pulsesrc/pulsesink
  pulseaudio pulseaudio-utils gstreamer1.0-pulseaudio
)
if [ "${1:-}" = "--test" ]; then
  packages+=(chromium iproute2 util-linux x11-utils procps nginx-light nftables xclip)
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
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
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

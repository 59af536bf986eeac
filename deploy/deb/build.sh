#!/usr/bin/env bash
# `make deb`: builds target/debian/kelpie_<version>_<arch>.deb from the release binary with
# dpkg-deb, then checks it with lintian (errors fail the build).
#
# What goes in: the stripped binary (web client embedded), a man page made from --help by
# help2man, the docs, two systemd templates (kelpie@USER.service runs a user's own desktop;
# the user unit kelpie@N.service serves an existing display :N).
#
# Relations, derived from what Kelpie loads:
#   Depends     the shared libraries the binary links (dpkg-shlibdeps), the libx264 it loads
#               at start (its soname read from the binary), and the GStreamer elements of the
#               default path (sound, the microphone, the WebSocket video path);
#   Recommends  the programs Kelpie starts for its embedded display (tests/commands.txt, step
#               "run": Xvfb, PulseAudio, pactl, xsetroot, the demo desktop), pulsesrc/pulsesink
#               and vp8enc (for browsers without H.264);
#   Suggests    the other encoders (x264enc, openh264enc, vah264enc, nvh264enc).
# Each GStreamer element's package is the one that ships its plugin here (gst-inspect-1.0 +
# dpkg -S); the table's package is used only for elements not registered on this machine
# (nvh264enc needs an NVIDIA driver).
set -euo pipefail
cd "$(dirname "$0")/../.."

bin=target/release/kelpie
[ -x "$bin" ] || { echo "deb: $bin is missing: run 'make build' (or 'make deb')" >&2; exit 1; }
for tool in dpkg-deb dpkg-shlibdeps help2man lintian gst-inspect-1.0 fakeroot; do
  command -v "$tool" >/dev/null || { echo "deb: $tool is missing: run 'scripts/install-deps.sh --package'" >&2; exit 1; }
done

version=$("$bin" --version | awk '{print $2}')
arch=$(dpkg --print-architecture)
maintainer="Kelpie developers <kelpie-desktop@users.noreply.github.com>"
out=target/debian
stage=$out/kelpie_${version}_${arch}
deb=$out/kelpie_${version}_${arch}.deb
rm -rf "$stage" "$deb"
mkdir -p "$stage/DEBIAN" "$stage/usr/bin" "$stage/usr/share/man/man1" "$stage/usr/share/doc/kelpie" \
  "$stage/lib/systemd/system" "$stage/usr/lib/systemd/user"

# The binary, without its debug information (the release profile keeps line tables).
install -m 0755 "$bin" "$stage/usr/bin/kelpie"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$stage/usr/bin/kelpie"

# The man page, from --help.
help2man --no-info --section=1 --version-string="$version" --include=deploy/deb/kelpie.h2m \
  --name="low-latency remote desktop for X11 displays, in the browser" \
  --output="$stage/usr/share/man/man1/kelpie.1" "$bin"
gzip -9n "$stage/usr/share/man/man1/kelpie.1"

# Docs, copyright, changelog.
install -m 0644 README.md docs/*.md "$stage/usr/share/doc/kelpie/"
gzip -9n "$stage"/usr/share/doc/kelpie/*.md
date=$(date -R -u -d "@$(git log -1 --format=%ct 2>/dev/null || date +%s)")
{
  echo "kelpie ($version) unstable; urgency=medium"
  echo
  echo "  * Built from the Kelpie source tree ($(git describe --always --dirty 2>/dev/null || echo unknown)) by make deb."
  echo
  echo " -- $maintainer  $date"
} | gzip -9n > "$stage/usr/share/doc/kelpie/changelog.gz"
{
  cat <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: kelpie
Source: https://github.com/kelpie-desktop/kelpie

Files: *
Copyright: 2026 Kelpie developers
License: Apache-2.0
Comment: /usr/bin/kelpie also holds these Rust crates, each under its own licence:
EOF
  cargo tree -q -p kelpie-server -e normal,build --prefix none --format '{p}: {l}' 2>/dev/null \
    | sed -E 's/ \(.*\)//; s/ \[[a-z-]+\]$//' | grep -v '^kelpie' | sort -u | sed 's/^/ /'
  cat <<EOF

License: Apache-2.0
 Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 except in compliance with the License. You may obtain a copy of the License at
 .
     http://www.apache.org/licenses/LICENSE-2.0
 .
 Unless required by applicable law or agreed to in writing, software distributed under the
 License is distributed on an "AS IS" BASIS, WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND,
 either express or implied. See the License for the specific language governing permissions
 and limitations under the License.
 .
 On Debian systems, the complete text of the Apache License, Version 2.0 can be found in
 /usr/share/common-licenses/Apache-2.0.
EOF
} > "$stage/usr/share/doc/kelpie/copyright"

# systemd templates (/lib in Debian 12: its systemd still looks there first).
install -m 0644 deploy/systemd/kelpie@.service "$stage/lib/systemd/system/kelpie@.service"
install -m 0644 deploy/systemd/kelpie@.user.service "$stage/usr/lib/systemd/user/kelpie@.service"

# --- relations ---
join() { local IFS=,; echo "$*" | sed 's/,/, /g'; }
# dpkg-shlibdeps reads debian/control of a source tree: give it a minimal one.
shlib_dir=$(mktemp -d)
trap 'rm -rf "$shlib_dir"' EXIT
mkdir -p "$shlib_dir/debian"
printf 'Source: kelpie\n\nPackage: kelpie\nArchitecture: any\n' > "$shlib_dir/debian/control"
shlibs=$(cd "$shlib_dir" && dpkg-shlibdeps -O -e"$OLDPWD/$stage/usr/bin/kelpie" 2>/dev/null \
  | sed -n 's/^shlibs:Depends=//p')
[ -n "$shlibs" ] || { echo "deb: dpkg-shlibdeps found no libraries" >&2; exit 1; }
depends=("$shlibs")
recommends=()
suggests=()

# libx264, loaded with dlopen at start (not seen by dpkg-shlibdeps).
x264_so=$(grep -aoE "libx264\.so\.[0-9]+" "$bin" | sort -u | head -1 || true)
x264_pkg=$(dpkg -S "*/$x264_so" 2>/dev/null | head -1 | cut -d: -f1 || true)
[ -n "$x264_pkg" ] || { echo "deb: no package ships $x264_so: install libx264-dev's library" >&2; exit 1; }
depends+=("$x264_pkg")

add_unique() { # array-name package
  local -n list=$1
  local p
  for p in "${list[@]}"; do [ "$p" = "$2" ] && return; done
  list+=("$2")
}

# GStreamer elements Kelpie builds pipelines from (crates/kelpie-media), with the relation
# their package gets and the package to assume where the element is not registered here.
while read -r element relation fallback; do
  [ -n "$element" ] || continue
  file=$(gst-inspect-1.0 "$element" 2>/dev/null | awk '$1 == "Filename" {print $2}' || true)
  pkg=""
  [ -n "$file" ] && pkg=$(dpkg -S "$(readlink -f "$file")" 2>/dev/null | head -1 | cut -d: -f1 || true)
  pkg=${pkg:-$fallback}
  case "$relation" in
    depends) add_unique depends "$pkg" ;;
    recommends) add_unique recommends "$pkg" ;;
    suggests) add_unique suggests "$pkg" ;;
  esac
done <<'EOF'
appsrc        depends     gstreamer1.0-plugins-base
appsink       depends     gstreamer1.0-plugins-base
audioconvert  depends     gstreamer1.0-plugins-base
audioresample depends     gstreamer1.0-plugins-base
opusenc       depends     gstreamer1.0-plugins-base
opusdec       depends     gstreamer1.0-plugins-base
pulsesrc      recommends  gstreamer1.0-pulseaudio
pulsesink     recommends  gstreamer1.0-pulseaudio
vp8enc        recommends  gstreamer1.0-plugins-good
x264enc       suggests    gstreamer1.0-plugins-ugly
openh264enc   suggests    gstreamer1.0-plugins-bad
vah264enc     suggests    gstreamer1.0-plugins-bad
nvh264enc     suggests    gstreamer1.0-plugins-bad
EOF

# Programs Kelpie starts for the embedded display: their packages are recommended (Kelpie
# serves an existing display without them). Cross-checked against dpkg where installed.
while read -r program package step; do
  [ "$step" = run ] || continue
  if path=$(command -v "$program" 2>/dev/null); then
    owner=$(dpkg -S "$(readlink -f "$path")" 2>/dev/null | head -1 | cut -d: -f1 || true)
    if [ -n "$owner" ] && [ "$owner" != "$package" ]; then
      echo "deb: tests/commands.txt says $program comes from $package, dpkg says $owner: fix the table" >&2
      exit 1
    fi
  fi
  add_unique recommends "$package"
done < <(grep -v '^#' tests/commands.txt | awk 'NF == 3')

installed_size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
cat > "$stage/DEBIAN/control" <<EOF
Package: kelpie
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $installed_size
Depends: $(join "${depends[@]}")
Recommends: $(join "${recommends[@]}")
Suggests: $(join "${suggests[@]}")
Section: net
Priority: optional
Homepage: https://github.com/kelpie-desktop/kelpie
Description: low-latency remote desktop for X11 displays, in the browser
 Kelpie serves an X11 display (its own Xvfb, or Xorg with the dummy or NVIDIA
 driver) to any modern browser over WebRTC, or over a WebSocket where UDP is
 blocked. It captures only what changed on the screen, encodes it with x264,
 NVENC, VA-API, openh264 or VP8, and sends one stream to every viewer through a
 single UDP port, with sound, microphone, clipboard, resizing and shared
 control. One binary holds the server, the signalling, the access control and
 the web client.
EOF
(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) > "$stage/DEBIAN/md5sums"
find "$stage" -type d -exec chmod 0755 {} +
find "$stage" -type f ! -path '*/usr/bin/*' -exec chmod 0644 {} +

dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
rm -rf "$stage"
echo "deb: built $deb ($(du -h "$deb" | cut -f1))"
dpkg-deb --field "$deb" Depends Recommends Suggests
# Errors fail the build; warnings are printed.
lintian --fail-on error "$deb"
echo "deb: lintian found no errors"

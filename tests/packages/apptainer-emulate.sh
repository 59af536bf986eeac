#!/usr/bin/env bash
# Builds a root file system from an Apptainer definition the way `apptainer build` would, for
# machines without Apptainer (Debian 12 does not package it): only `Bootstrap: debootstrap`,
# with mmdebstrap (minbase, as Apptainer's debootstrap does), `%arguments` defaults
# substituted for {{ NAME }} (NAME=value in the environment overrides them), %files copied
# in, %post run in the root file system with the network, and %environment, %runscript and
# %test written where Apptainer keeps them (/.singularity.d/env/90-environment.sh,
# /.singularity.d/runscript, /.singularity.d/test).
#   tests/packages/apptainer-emulate.sh DEF OUTDIR
set -euo pipefail
def=$(readlink -f "$1")
out=$2
defdir=$(dirname "$def")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Header fields (Key: value before the first %section).
field() { awk -v k="$1" '/^%/{exit} $1 == k":" {sub(/^[^:]*:[ \t]*/, ""); print; exit}' "$def"; }
# A section's body (the lines after %name up to the next %section).
section() { awk -v s="%$1" '/^%/{on = ($1 == s); next} on' "$def"; }

[ "$(field Bootstrap)" = debootstrap ] || { echo "apptainer-emulate: only Bootstrap: debootstrap is emulated" >&2; exit 1; }
suite=$(field OSVersion)
mirror=$(field MirrorURL)

text=$(cat "$def")
while IFS='=' read -r name value; do
  name=$(echo "$name" | tr -d ' \t')
  [ -n "$name" ] && [[ "$name" != \#* ]] || continue
  value=${!name:-$value}
  text=$(printf '%s' "$text" | sed "s|{{ *$name *}}|$value|g")
done < <(section arguments)
printf '%s\n' "$text" > "$work/def"
def=$work/def

section post > "$work/post.sh"
{ echo '#!/bin/sh'; section environment; } > "$work/environment.sh"
{ echo '#!/bin/sh'; section runscript; } > "$work/runscript"
{ echo '#!/bin/sh'; section test; } > "$work/test"
hooks=()
while read -r src dst; do
  [ -n "$src" ] && [[ "$src" != \#* ]] || continue
  hooks+=(--customize-hook="copy-in $defdir/$src $(dirname "${dst:-$src}")")
  [ "$(basename "$src")" = "$(basename "${dst:-$src}")" ] \
    || hooks+=(--customize-hook="mv \"\$1/$(dirname "${dst:-$src}")/$(basename "$src")\" \"\$1/${dst:-$src}\"")
done < <(section files)

rm -rf "$out"
# Apptainer keeps the machine id that installing dbus makes; mmdebstrap would empty it.
mmdebstrap --variant=minbase --mode=root --format=directory \
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr --skip=cleanup/reproducible/machine-id \
  "${hooks[@]}" \
  --customize-hook="copy-in $work/post.sh /tmp" \
  --customize-hook='chroot "$1" /bin/sh -e /tmp/post.sh' \
  --customize-hook='rm -f "$1"/tmp/post.sh; mkdir -p "$1"/.singularity.d/env' \
  --customize-hook="copy-in $work/environment.sh $work/runscript $work/test /.singularity.d" \
  --customize-hook='cd "$1"/.singularity.d && mv environment.sh env/90-environment.sh && chmod 0755 runscript test env/90-environment.sh' \
  "$suite" "$out" "deb $mirror $suite main"

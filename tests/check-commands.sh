#!/usr/bin/env bash
# Runs before the tests: every program they start (tests/commands.txt) is on PATH and comes
# from a package that scripts/install-deps.sh installs; programs the sources start that
# tests/commands.txt does not list are reported too. Fails with what to install or add.
#   tests/check-commands.sh             build, run and test programs (make test)
#   tests/check-commands.sh --bench     also the benchmark's (make bench)
#   tests/check-commands.sh --package   also the packaging's (make deb, image, test-packages)
set -euo pipefail
cd "$(dirname "$0")/.."
steps="build run test"
deps_args=(--list --test)
case "${1:-}" in
  --bench) steps="$steps bench" deps_args=(--list --bench) ;;
  --package) steps="$steps package" deps_args=(--list --package) ;;
esac
declared=$(scripts/install-deps.sh "${deps_args[@]}")
table=$(grep -v '^#' tests/commands.txt | awk 'NF == 3')
errors=0
while read -r program package step; do
  [[ " $steps " == *" $step "* ]] || continue
  if ! grep -qx -- "$package" <<<"$declared"; then
    echo "check-commands: $program comes from the Debian package $package, which scripts/install-deps.sh does not install: add it there" >&2
    errors=$((errors + 1))
  elif ! command -v "$program" >/dev/null 2>&1; then
    echo "check-commands: $program is not on PATH: install the Debian package $package (scripts/install-deps.sh ${deps_args[1]} does)" >&2
    errors=$((errors + 1))
  fi
done <<<"$table"

# Programs named literally where the sources start them: Command::new("x") in Rust;
# spawn('x', execFileSync('x', run('x', startProc('x' and shell strings sh('x …'),
# x('x …'), '--app', 'x …' in the tests and the benchmark.
known=$(awk '{print $1}' <<<"$table")
essential="sh bash sleep kill true false env cat exit exec uname dpkg-query dpkg-deb chroot"
started=$(
  {
    grep -rhoE 'Command::new\("[^"/]+"\)' crates --include='*.rs' | sed -E 's/.*\("([^"]+)"\)/\1/'
    grep -rhoE "\b(spawn|spawnSync|execFileSync|execFile|run|start|startProc)\('[^'/ ]+'" tests bench --include='*.mjs' \
      --exclude-dir=node_modules | sed -E "s/.*\('([^']+)'/\1/"
    grep -rhoE "\b(sh|x)\(['\`\"][a-z][^ '\`\"]*" tests bench --include='*.mjs' --exclude-dir=node_modules \
      | sed -E "s/^(sh|x)\(.//"
    grep -rhoE "'--app', '[a-z][^ ']*" tests bench --include='*.mjs' --exclude-dir=node_modules | sed -E "s/.*, '//"
  } | sort -u
)
for program in $started; do
  [[ " $essential " == *" $program "* ]] && continue
  if ! grep -qx -- "$program" <<<"$known"; then
    where=$(grep -rlE "(\"|'|\`)$program( |\"|'|\`)" crates tests bench --include='*.rs' --include='*.mjs' \
      --exclude-dir=node_modules | head -3 | tr '\n' ' ')
    echo "check-commands: $program is started by ${where:-the sources} but is not in tests/commands.txt: add it with its Debian package (and the package to scripts/install-deps.sh)" >&2
    errors=$((errors + 1))
  fi
done
if [ "$errors" -gt 0 ]; then
  exit 1
fi
echo "check-commands: every program the tests start is on PATH, from a package scripts/install-deps.sh installs"

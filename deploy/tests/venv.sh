#!/usr/bin/env bash
# Makes target/deploy-venv, the Python virtual environment of the deployment tests
# (deploy/tests/requirements.txt, pinned, from PyPI), and installs deploy/jupyter into it.
# Again only when the requirements changed. Prints the environment's path.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=target/deploy-venv
stamp="$venv/.requirements"
if [ ! -x "$venv/bin/python" ] || ! cmp -s deploy/tests/requirements.txt "$stamp"; then
  rm -rf "$venv"
  python3 -m venv "$venv" >&2 || {
    echo "venv.sh: python3 -m venv failed: install the Debian package python3-venv (scripts/install-deps.sh --test does)" >&2
    exit 1
  }
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r deploy/tests/requirements.txt >&2 || {
    echo "venv.sh: pip could not install deploy/tests/requirements.txt from PyPI (is it reachable?)" >&2
    exit 1
  }
  cp deploy/tests/requirements.txt "$stamp"
fi
# The Jupyter proxy entry of this tree, always again (it is small), built with the
# environment's own setuptools: nothing is fetched.
"$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps --no-build-isolation --force-reinstall \
  ./deploy/jupyter >&2
echo "$venv"

#!/usr/bin/env bash
# Runs the end-to-end tests inside a fresh network namespace with only loopback up, so
# nothing the browser or the server does can leave the machine.
set -euo pipefail
self="$(readlink -f "$0")"
cd "$(dirname "$self")"
if [ "${KELPIE_IN_NETNS:-}" != 1 ]; then
  exec unshare -n env KELPIE_IN_NETNS=1 "$self" "$@"
fi
ip link set lo up
# The slowloris test holds a thousand sockets: allow as many open files as the hard limit.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
exec node --test --test-concurrency=1 --test-timeout=180000 "${@:-./}"

#!/usr/bin/env bash
# Entry point of `make bench`: installs the peers if missing, then runs bench/bench.mjs inside a
# fresh network namespace with only loopback up, writes docs/benchmarks.md and prints the table.
#   BENCH_SECTIONS=peers,input,viewers,network,audio  (peer comparison, input latency, viewer scaling,
#                  Kelpie and Selkies over emulated links (BENCH_PROFILES=lan,campus,home,wifi,mobile), sound)
#   BENCH_SECONDS=20  BENCH_SYSTEMS=kelpie,kelpie-ws,kelpie-https-ws,kelpie-turn,selkies,selkies-webrtc,vnc  BENCH_WORKLOADS=idle,static,bars,noise
#   BENCH_SMOKE=1     Kelpie alone (or BENCH_SYSTEMS), bars, 5 s, installs nothing; exit 1 if nothing was measured.
set -euo pipefail
cd "$(dirname "$0")"
here=$PWD

if [ "${KELPIE_IN_NETNS:-}" != 1 ]; then
  systems=${BENCH_SYSTEMS:-kelpie,selkies,selkies-webrtc,vnc}
  sections=${BENCH_SECTIONS:-peers}
  # Peers are installed only when the peer comparison or the network section runs.
  if [ "${BENCH_SMOKE:-}" != 1 ] && [[ ,${sections// /}, == *,peers,* || ,${sections// /}, == *,network,* ]]; then
    # xwd, x11vnc, websockify, noVNC, python3-venv (and, from the --test list it includes, coturn
    # for kelpie-turn): the project's list of what the benchmark needs.
    "$here/../scripts/install-deps.sh" --bench
    if [[ ,$systems, == *,selkies* ]] && [ ! -x "$here/.venv/bin/selkies" ]; then
      echo "bench: installing Selkies from PyPI into bench/.venv" >&2
      python3 -m venv "$here/.venv"
      "$here/.venv/bin/pip" install --quiet --upgrade pip
      "$here/.venv/bin/pip" install --quiet 'selkies>=2,<3'
    fi
  fi
  for f in ../target/release/kelpie ../target/release/kelpie-probe ../target/release/kelpie-netem ../tests/e2e/node_modules/playwright-core/package.json; do
    [ -e "$f" ] || { echo "bench: $f is missing: run 'make build' and 'make tests/e2e/node_modules/.package-lock.json' (or 'make bench')" >&2; exit 1; }
  done
  exec unshare -n env KELPIE_IN_NETNS=1 "$here/run.sh" "$@"
fi

ip link set lo up
# Selkies' own ICE agent leaves 127.0.0.1 out of its host candidates; a second loopback
# address gives its WebRTC mode a candidate (only used by the selkies-webrtc system).
ip addr add 127.0.0.2/8 dev lo 2>/dev/null || true
exec node "$here/bench.mjs" "$@"

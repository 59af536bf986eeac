#!/usr/bin/env bash
# What Open OnDemand's "basic" batch-connect job script does around the app's before.sh and
# script.sh, for the tests: its helpers (find_port, create_passwd), `host`, then before.sh,
# script.sh in the background, connection.yml (host, port, password and the app's
# conn_params) once the port answers, and waiting for script.sh.
#   ood_job.sh SESSION_DIR HOST   (the rendered before.sh and script.sh are in SESSION_DIR)
# No `set -e`/pipefail, as in OnDemand's own script (create_passwd's pipe ends in SIGPIPE).
cd "$1" || exit 1
host="$2"
export host

port_used() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
find_port() {
  local h="${1:-localhost}" p
  for _ in $(seq 1 100); do
    p=$((RANDOM % 40000 + 20000))
    port_used "$h" "$p" || { echo "$p"; return 0; }
  done
  echo "find_port: no free port on $h" >&2
  return 1
}
create_passwd() { tr -cd 'a-zA-Z0-9' </dev/urandom 2>/dev/null | head -c "${1:-8}"; }
wait_until_port_used() {
  for _ in $(seq 1 "${2:-300}"); do port_used "${1%:*}" "${1#*:}" && return 0; sleep 0.1; done
  return 1
}

source ./before.sh || { echo "ood_job.sh: before.sh failed" >&2; exit 1; }
[ -n "${port:-}" ] && [ -n "${password:-}" ] || { echo "ood_job.sh: before.sh set no port or password" >&2; exit 1; }
./script.sh &
script_pid=$!
trap 'kill -TERM "$script_pid" 2>/dev/null; wait "$script_pid"' TERM INT
if wait_until_port_used "${host}:${port}" 600; then
  umask 077
  printf 'host: "%s"\nport: %s\npassword: "%s"\nkelpie_path: "%s"\n' "$host" "$port" "$password" "$kelpie_path" > connection.yml.new
  mv connection.yml.new connection.yml
fi
wait "$script_pid"

#!/usr/bin/env bash
# Started by the coder_script of deploy/coder/main.tf (a Terraform template: $${…} is bash's,
# ${…} Terraform's). Kelpie listens on the workspace's loopback only; Coder's app proxy,
# which authenticates the user, is the way in, over HTTP(S) only: video over the WebSocket.
set -euo pipefail
dir="$${XDG_RUNTIME_DIR:-$HOME/.cache}/kelpie-coder"
mkdir -p "$dir"
chmod 0700 "$dir"
umask 077
printf '%s' '${TOKEN}' > "$dir/token"
log="$dir/kelpie.log"
args=(
  --listen "127.0.0.1:${PORT}"
  --token-file "$dir/token"
  --public-url '${PUBLIC_URL}'
  --transport websocket
  --size '${SIZE}'
)
app='${APP}'
if [ -n "$app" ]; then
  args+=(--app "$app")
fi
# In the background: Coder waits for start-up scripts, not for the desktop to end.
nohup kelpie "$${args[@]}" >"$log" 2>&1 &
echo "Kelpie started (pid $!), log in $log"

"""Kelpie's remote desktop as a jupyter-server-proxy entry: `/kelpie/` in Jupyter (and each
user's server in JupyterHub) starts Kelpie on a Unix socket and passes the page, the
signalling and the WebSocket video to it.

Who may reach it: Jupyter's own authentication guards `/kelpie/` (only the server's user,
through JupyterHub or with Jupyter's token). Behind that, Kelpie listens on a Unix socket in
a fresh 0700 directory (jupyter-server-proxy's `unix_socket`), which only this user can
connect to, and still asks for its own token, which the proxy adds to every request as
`Authorization: Bearer`. The token is made here, at start, and handed to Kelpie in a 0600
file (`--token-file`): it is on no command line, in no environment, and never reaches the
browser.
"""

import atexit
import os
import secrets
import shutil
import tempfile

__all__ = ["setup_kelpie"]

HERE = os.path.dirname(os.path.abspath(__file__))


def _kelpie_binary():
    """`KELPIE_BIN`, else `kelpie` on PATH."""
    explicit = os.environ.get("KELPIE_BIN")
    if explicit:
        return explicit
    found = shutil.which("kelpie")
    if found is None:
        raise FileNotFoundError(
            "jupyter-kelpie-proxy: the 'kelpie' program is not on PATH: install Kelpie's Debian "
            "package, or set KELPIE_BIN to its path"
        )
    return found


def _write_token(directory):
    """A fresh token in `directory`/token, created 0600 (never readable by others)."""
    token = secrets.token_hex(32)
    path = os.path.join(directory, "token")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token)
    return token, path


def setup_kelpie():
    """The jupyter-server-proxy server entry (entry point `jupyter_serverproxy_servers`)."""
    private = tempfile.mkdtemp(prefix="jupyter-kelpie-")  # mode 0700
    atexit.register(shutil.rmtree, private, True)
    token, token_file = _write_token(private)
    return {
        "command": [
            _kelpie_binary(),
            "--listen",
            "unix:{unix_socket}",
            "--token-file",
            token_file,
            # Only HTTP gets through Jupyter: video over the WebSocket, no UDP port opened.
            "--transport",
            "websocket",
        ],
        # A socket in a new 0700 directory (jupyter-server-proxy makes it; Tornado >= 6.3
        # carries WebSockets over it).
        "unix_socket": True,
        # Xvfb, PulseAudio and the desktop start before Kelpie answers.
        "timeout": 30,
        # Kelpie serves from / and reads its prefix from X-Forwarded-Prefix, which the proxy
        # sets: its cookie stays on this server's /kelpie path.
        "absolute_url": False,
        # Every request and WebSocket through the proxy carries Kelpie's token.
        "request_headers_override": {"Authorization": "Bearer " + token},
        "new_browser_tab": True,
        "launcher_entry": {
            "enabled": True,
            "title": "Kelpie Desktop",
            "icon_path": os.path.join(HERE, "icons", "kelpie.svg"),
        },
    }

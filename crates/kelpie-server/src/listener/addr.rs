//! `--listen`: a TCP address (`127.0.0.1:8080`, `[::]:8443`) or a Unix socket
//! (`unix:/run/kelpie/kelpie.sock`) for a reverse proxy on the same machine.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Where Kelpie listens for HTTP and WebSockets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    /// A TCP address and port.
    Tcp(SocketAddr),
    /// A Unix socket at this absolute path.
    Unix(PathBuf),
}

/// Longest path a Unix socket address holds (`sun_path` is 108 bytes with its NUL).
const MAX_SOCKET_PATH: usize = 107;

impl ListenAddr {
    /// Parses `ADDR:PORT` or `unix:/PATH` (the flag's value parser).
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let Some(path) = s.strip_prefix("unix:") else {
            return s.parse().map(Self::Tcp).map_err(|_| {
                format!("'{s}' is not ADDRESS:PORT (e.g. 127.0.0.1:8080, [::]:8080) or unix:/PATH (e.g. unix:/run/kelpie/kelpie.sock)")
            });
        };
        let bad = |why: &str| format!("--listen '{s}': {why}");
        if path.starts_with('@') {
            return Err(bad(
                "abstract Unix sockets have no file permissions, so anyone on the machine could connect: give a path, e.g. unix:/run/kelpie/kelpie.sock",
            ));
        }
        if !path.starts_with('/') {
            return Err(bad("give the socket's absolute path, e.g. unix:/run/kelpie/kelpie.sock"));
        }
        if path.ends_with('/') || path.contains('\0') {
            return Err(bad("give the path of the socket file itself, e.g. unix:/run/kelpie/kelpie.sock"));
        }
        if path.len() > MAX_SOCKET_PATH {
            return Err(bad(&format!(
                "the path is {} bytes long, and a Unix socket's path may have at most {MAX_SOCKET_PATH}: choose a shorter one",
                path.len()
            )));
        }
        Ok(Self::Unix(PathBuf::from(path)))
    }

    /// Whether this is a TCP address on the loopback interface (127.0.0.0/8, ::1).
    pub fn is_loopback(&self) -> bool {
        matches!(self, Self::Tcp(a) if a.ip().to_canonical().is_loopback())
    }

    /// The TCP address, if it is one.
    pub fn tcp(&self) -> Option<SocketAddr> {
        match self {
            Self::Tcp(a) => Some(*a),
            Self::Unix(_) => None,
        }
    }

    /// The socket's path, if it is a Unix socket.
    pub fn unix_path(&self) -> Option<&Path> {
        match self {
            Self::Tcp(_) => None,
            Self::Unix(p) => Some(p),
        }
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp(a) => write!(f, "{a}"),
            Self::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_addresses_and_unix_paths_parse() {
        assert_eq!(
            ListenAddr::parse("127.0.0.1:8080"),
            Ok(ListenAddr::Tcp("127.0.0.1:8080".parse().unwrap()))
        );
        assert_eq!(ListenAddr::parse(" [::]:1 ").unwrap().to_string(), "[::]:1");
        let unix = ListenAddr::parse("unix:/run/kelpie/kelpie.sock").unwrap();
        assert_eq!(unix.unix_path(), Some(Path::new("/run/kelpie/kelpie.sock")));
        assert_eq!(unix.to_string(), "unix:/run/kelpie/kelpie.sock");
        assert_eq!(unix.tcp(), None);
        assert!(ListenAddr::parse("127.0.0.1:80").unwrap().is_loopback());
        assert!(ListenAddr::parse("[::1]:80").unwrap().is_loopback());
        assert!(!ListenAddr::parse("0.0.0.0:80").unwrap().is_loopback());
        assert!(!unix.is_loopback(), "a Unix socket is not a loopback TCP listener");
        let longest = format!("unix:/{}", "a".repeat(MAX_SOCKET_PATH - 1));
        assert!(ListenAddr::parse(&longest).is_ok());
    }

    #[test]
    fn unusable_listen_addresses_say_what_to_give() {
        for (bad, says) in [
            ("nowhere", "ADDRESS:PORT"),
            ("8080", "ADDRESS:PORT"),
            ("localhost:8080", "ADDRESS:PORT"),
            ("unix:", "absolute path"),
            ("unix:kelpie.sock", "absolute path"),
            ("unix:@kelpie", "abstract"),
            ("unix:/run/kelpie/", "socket file itself"),
            ("unix:/a\0b", "socket file itself"),
        ] {
            let e = ListenAddr::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
        let too_long = format!("unix:/{}", "a".repeat(MAX_SOCKET_PATH));
        assert!(ListenAddr::parse(&too_long).unwrap_err().contains("at most 107"));
    }
}

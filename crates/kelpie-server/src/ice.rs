//! The STUN and TURN servers each viewer's browser is given (`--ice-server`), with their
//! credentials: static ones (`--turn-user`, `--turn-password`), or coturn's time-limited REST
//! credentials (`use-auth-secret`), derived per viewer from a secret shared with the TURN
//! server (`--turn-secret`, `--turn-ttl`); and whether the browser must relay
//! (`--ice-transport relay`). Pure: the time is passed in, nothing here does I/O.
//!
//! The REST scheme (draft-uberti-behave-turn-rest, as coturn implements it): the user name is
//! `EXPIRY:NAME` with EXPIRY the Unix time at which it stops working, the password is
//! `base64(HMAC-SHA1(secret, user name))`. The TURN server recomputes the password from the
//! user name, and refuses it after EXPIRY, so nothing is shared but the secret.

use std::fmt;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use kelpie_protocol::{IcePolicy, IceServer};
use sha1::Sha1;

/// The kind of an ICE server URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `stun:` (RFC 7064): finds the browser's public address; no credentials.
    Stun,
    /// `turn:` (RFC 7065): a relay over UDP or TCP.
    Turn,
    /// `turns:`: a relay reached over TLS.
    Turns,
}

impl Scheme {
    fn as_str(self) -> &'static str {
        match self {
            Self::Stun => "stun",
            Self::Turn => "turn",
            Self::Turns => "turns",
        }
    }
}

/// A checked `stun:`, `turn:` or `turns:` URL, as browsers take it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceUrl {
    scheme: Scheme,
    host: String,
    port: Option<u16>,
    /// `?transport=udp|tcp` (TURN only).
    transport: Option<&'static str>,
}

const URL_FORMS: &str =
    "write stun:HOST[:PORT], turn:HOST[:PORT][?transport=udp|tcp] or turns:HOST[:PORT][?transport=tcp]";

impl IceUrl {
    /// Parses and checks one URL (RFC 7064, RFC 7065); the error says what to write instead.
    pub fn parse(text: &str) -> Result<Self, String> {
        let s = text.trim();
        if s.is_empty() {
            return Err(format!("an ICE server URL is empty: {URL_FORMS}"));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("'{s}' has spaces or control characters in it: {URL_FORMS}"));
        }
        let (scheme, rest) =
            s.split_once(':').ok_or_else(|| format!("'{s}' is not a STUN or TURN URL: {URL_FORMS}"))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "stun" => Scheme::Stun,
            "turn" => Scheme::Turn,
            "turns" => Scheme::Turns,
            "stuns" => return Err(format!("'{s}': browsers do not support stuns: URLs; use stun: instead")),
            _ => {
                return Err(format!(
                    "'{s}' is not a STUN or TURN URL (it must start with stun:, turn: or turns:): {URL_FORMS}"
                ));
            }
        };
        let name = scheme.as_str();
        if let Some(after) = rest.strip_prefix("//") {
            return Err(format!(
                "'{s}' has // after {name}:, which STUN and TURN URLs do not have: write {name}:{after}"
            ));
        }
        let (authority, query) = match rest.split_once('?') {
            Some((a, q)) => (a, Some(q)),
            None => (rest, None),
        };
        if authority.contains('@') {
            return Err(format!(
                "'{s}' has a user name in it: leave it out of the URL and give it with --turn-user \
                 and --turn-password (or use --turn-secret)"
            ));
        }
        if authority.contains('/') {
            return Err(format!("'{s}' has a path; STUN and TURN URLs have none: {URL_FORMS}"));
        }
        let (host, port) = split_host_port(authority).map_err(|why| format!("'{s}': {why}"))?;
        let transport = match (scheme, query) {
            (_, None) => None,
            (Scheme::Stun, Some(_)) => {
                return Err(format!(
                    "'{s}': stun: URLs take no ?transport (STUN runs over UDP); leave it out"
                ));
            }
            (_, Some(q)) => match q.to_ascii_lowercase().as_str() {
                "transport=udp" if scheme == Scheme::Turns => {
                    return Err(format!(
                        "'{s}': turns: runs over TLS, which browsers only do over TCP: write ?transport=tcp or leave it out"
                    ));
                }
                "transport=udp" => Some("udp"),
                "transport=tcp" => Some("tcp"),
                _ => {
                    return Err(format!(
                        "'{s}': the only query a TURN URL takes is ?transport=udp or ?transport=tcp"
                    ));
                }
            },
        };
        Ok(Self { scheme, host, port, transport })
    }

    /// The URL's scheme.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// Whether this is a relay (`turn:` or `turns:`), which needs credentials.
    pub fn is_turn(&self) -> bool {
        self.scheme != Scheme::Stun
    }
}

impl fmt::Display for IceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.scheme.as_str(), self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        if let Some(t) = self.transport {
            write!(f, "?transport={t}")?;
        }
        Ok(())
    }
}

/// `HOST[:PORT]`, HOST a name, an IPv4 address or a bracketed IPv6 address.
fn split_host_port(authority: &str) -> Result<(String, Option<u16>), String> {
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (addr, after) = v6.split_once(']').ok_or("an IPv6 address lacks its closing ]")?;
        addr.parse::<std::net::Ipv6Addr>().map_err(|_| format!("[{addr}] is not an IPv6 address"))?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or("write [IPv6]:PORT")?),
        };
        (format!("[{addr}]"), port)
    } else {
        if authority.matches(':').count() > 1 {
            return Err("an IPv6 address must be in brackets, e.g. turn:[2001:db8::1]:3478".into());
        }
        let (host, port) = match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        let name_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.';
        if host.is_empty() || !host.chars().all(name_char) || host.starts_with(['.', '-']) {
            return Err(format!("'{host}' is not a host name or address"));
        }
        (host.to_ascii_lowercase(), port)
    };
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => return Err(format!("'{p}' is not a port (1..65535)")),
        },
    };
    Ok((host, port))
}

/// How viewers get TURN credentials.
#[derive(Clone, PartialEq, Eq)]
pub enum TurnAuth {
    /// None: only STUN servers (or none at all).
    None,
    /// The same user name and password for every viewer.
    Static {
        /// The user name.
        user: String,
        /// The password.
        password: String,
    },
    /// coturn's REST credentials: per viewer, valid for `ttl`, derived from `secret`.
    Secret {
        /// coturn's `static-auth-secret`.
        secret: String,
        /// How long a viewer's credentials work.
        ttl: Duration,
    },
}

impl fmt::Debug for TurnAuth {
    // Keeps the password and the secret out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::Static { user, .. } => write!(f, "Static {{ user: {user:?}, password: <hidden> }}"),
            Self::Secret { ttl, .. } => write!(f, "Secret {{ secret: <hidden>, ttl: {ttl:?} }}"),
        }
    }
}

/// The TURN REST user name and password (coturn's `use-auth-secret`) valid until
/// `expiry_unix` (seconds since the Unix epoch), for `name` (any text without a colon; it shows
/// in the TURN server's logs).
pub fn rest_credentials(secret: &str, expiry_unix: u64, name: &str) -> (String, String) {
    let user = format!("{expiry_unix}:{name}");
    let mut mac = Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(user.as_bytes());
    let password = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    (user, password)
}

/// Name in the REST user names Kelpie makes (`EXPIRY:kelpie`).
pub const REST_NAME: &str = "kelpie";

/// The ICE servers and policy handed to every viewer with access.
#[derive(Debug, Clone)]
pub struct IceServers {
    stun: Vec<IceUrl>,
    turn: Vec<IceUrl>,
    auth: TurnAuth,
    policy: IcePolicy,
}

impl IceServers {
    /// None at all: the browser uses its host candidates only.
    pub fn none() -> Self {
        Self { stun: Vec::new(), turn: Vec::new(), auth: TurnAuth::None, policy: IcePolicy::All }
    }

    /// Checks that the URLs, the credentials and the policy go together; the error says which
    /// flag to add or drop.
    pub fn new(urls: Vec<IceUrl>, auth: TurnAuth, policy: IcePolicy) -> Result<Self, String> {
        let (turn, stun): (Vec<_>, Vec<_>) = urls.into_iter().partition(IceUrl::is_turn);
        match (&auth, turn.first()) {
            (TurnAuth::None, Some(url)) => {
                return Err(format!(
                    "--ice-server {url} is a TURN server, which needs credentials: give --turn-secret \
                     (coturn's static-auth-secret, with use-auth-secret) or --turn-user and --turn-password"
                ));
            }
            (TurnAuth::Static { .. } | TurnAuth::Secret { .. }, None) => {
                return Err(
                    "TURN credentials were given (--turn-user or --turn-secret) but no TURN server: \
                            add --ice-server turn:HOST:PORT (or turns:)"
                        .into(),
                );
            }
            _ => {}
        }
        if let TurnAuth::Static { user, password } = &auth
            && (user.is_empty() || password.is_empty())
        {
            return Err("--turn-user and --turn-password must not be empty".into());
        }
        if let TurnAuth::Secret { secret, .. } = &auth
            && secret.is_empty()
        {
            return Err("--turn-secret must not be empty: give coturn's static-auth-secret".into());
        }
        if policy == IcePolicy::Relay && turn.is_empty() {
            return Err("--ice-transport relay sends all media through a TURN server, but none was given: \
                        add --ice-server turn:HOST:PORT (or turns:) with its credentials"
                .into());
        }
        Ok(Self { stun, turn, auth, policy })
    }

    /// Whether there is any server to hand out.
    pub fn is_empty(&self) -> bool {
        self.stun.is_empty() && self.turn.is_empty()
    }

    /// Which candidates the browser may use.
    pub fn policy(&self) -> IcePolicy {
        self.policy
    }

    /// The `iceServers` for one viewer at `now`: the STUN servers as they are, the TURN
    /// servers with the static credentials, or with REST credentials that expire `ttl` after
    /// `now`.
    pub fn for_viewer(&self, now: SystemTime) -> Vec<IceServer> {
        let urls = |list: &[IceUrl]| list.iter().map(ToString::to_string).collect::<Vec<_>>();
        let mut out = Vec::new();
        if !self.stun.is_empty() {
            out.push(IceServer { urls: urls(&self.stun), username: None, credential: None });
        }
        if !self.turn.is_empty() {
            let (user, password) = match &self.auth {
                TurnAuth::None => unreachable!("checked in IceServers::new: TURN servers have credentials"),
                TurnAuth::Static { user, password } => (user.clone(), password.clone()),
                TurnAuth::Secret { secret, ttl } => {
                    let since_epoch = now.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
                    rest_credentials(secret, (since_epoch + *ttl).as_secs(), REST_NAME)
                }
            };
            out.push(IceServer { urls: urls(&self.turn), username: Some(user), credential: Some(password) });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rest_credentials_match_an_independent_hmac_sha1() {
        // Computed once by hand with OpenSSL, not with this code:
        //   printf '%s' '1700000000:kelpie' | openssl dgst -sha1 -hmac 'north-sea-secret' -binary | base64
        let (user, password) = rest_credentials("north-sea-secret", 1_700_000_000, "kelpie");
        assert_eq!(user, "1700000000:kelpie");
        assert_eq!(password, "yvflF6Q/NZmKNIVGO7Xnkjywl0s=");
        // RFC 2202's test case 2 for HMAC-SHA1 (key "Jefe"; effcdf6a…259a7c79 in hex), as base64:
        //   printf '%s' 'what do ya want for nothing?' | openssl dgst -sha1 -hmac Jefe -binary | base64
        let mut mac = Hmac::<Sha1>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        let rfc = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        assert_eq!(rfc, "7/zfauXrL6LSdBbV8YTfnCWafHk=");
    }

    fn urls(list: &[&str]) -> Vec<IceUrl> {
        list.iter().map(|u| IceUrl::parse(u).unwrap()).collect()
    }

    #[test]
    fn each_viewer_gets_credentials_that_expire_ttl_after_it_asked() {
        let ice = IceServers::new(
            urls(&[
                "stun:stun.example.com",
                "turn:turn.example.com:3478?transport=udp",
                "turns:turn.example.com",
            ]),
            TurnAuth::Secret { secret: "north-sea-secret".into(), ttl: Duration::from_secs(3600) },
            IcePolicy::All,
        )
        .unwrap();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_699_996_400);
        let servers = ice.for_viewer(now);
        assert_eq!(servers.len(), 2);
        assert_eq!(
            servers[0],
            IceServer { urls: vec!["stun:stun.example.com".into()], username: None, credential: None }
        );
        assert_eq!(servers[1].urls, ["turn:turn.example.com:3478?transport=udp", "turns:turn.example.com"]);
        // 1_699_996_400 + 3600 = 1_700_000_000: the independent vector above.
        assert_eq!(servers[1].username.as_deref(), Some("1700000000:kelpie"));
        assert_eq!(servers[1].credential.as_deref(), Some("yvflF6Q/NZmKNIVGO7Xnkjywl0s="));
        // A viewer that comes a second later gets other credentials.
        let later = ice.for_viewer(now + Duration::from_secs(1));
        assert_eq!(later[1].username.as_deref(), Some("1700000001:kelpie"));
        assert_ne!(later[1].credential, servers[1].credential);
    }

    #[test]
    fn static_credentials_are_the_same_for_everyone_and_stun_gets_none() {
        let auth = TurnAuth::Static { user: "desk".into(), password: "pw".into() };
        let ice = IceServers::new(urls(&["turn:10.0.0.1"]), auth, IcePolicy::Relay).unwrap();
        let s = ice.for_viewer(SystemTime::UNIX_EPOCH);
        assert_eq!(s, ice.for_viewer(SystemTime::now()));
        assert_eq!(
            s,
            [IceServer {
                urls: vec!["turn:10.0.0.1".into()],
                username: Some("desk".into()),
                credential: Some("pw".into())
            }]
        );
        assert_eq!(ice.policy(), IcePolicy::Relay);
        assert!(IceServers::none().for_viewer(SystemTime::now()).is_empty());
        let stun =
            IceServers::new(urls(&["stun:a", "stun:b:19302"]), TurnAuth::None, IcePolicy::All).unwrap();
        assert_eq!(stun.for_viewer(SystemTime::now())[0].urls, ["stun:a", "stun:b:19302"]);
        // Secrets stay out of debug output (and so out of logs).
        let shown =
            format!("{ice:?} {:?}", TurnAuth::Secret { secret: "s3cret".into(), ttl: Duration::ZERO });
        assert!(!shown.contains("pw") && !shown.contains("s3cret"), "{shown}");
    }

    #[test]
    fn servers_credentials_and_policy_must_go_together() {
        let secret = || TurnAuth::Secret { secret: "s".into(), ttl: Duration::from_secs(60) };
        let err = IceServers::new(urls(&["stun:a", "turn:b"]), TurnAuth::None, IcePolicy::All).unwrap_err();
        assert!(
            err.contains("turn:b") && err.contains("--turn-secret") && err.contains("--turn-user"),
            "{err}"
        );
        let err = IceServers::new(urls(&["stun:a"]), secret(), IcePolicy::All).unwrap_err();
        assert!(err.contains("no TURN server") && err.contains("--ice-server turn:"), "{err}");
        let err = IceServers::new(urls(&["stun:a"]), TurnAuth::None, IcePolicy::Relay).unwrap_err();
        assert!(err.contains("--ice-transport relay") && err.contains("--ice-server turn:"), "{err}");
        let err = IceServers::new(Vec::new(), TurnAuth::None, IcePolicy::Relay).unwrap_err();
        assert!(err.contains("--ice-transport relay"), "{err}");
        let empty = TurnAuth::Secret { secret: String::new(), ttl: Duration::from_secs(1) };
        assert!(
            IceServers::new(urls(&["turn:b"]), empty, IcePolicy::All).unwrap_err().contains("--turn-secret")
        );
        let empty = TurnAuth::Static { user: "u".into(), password: String::new() };
        assert!(
            IceServers::new(urls(&["turn:b"]), empty, IcePolicy::All)
                .unwrap_err()
                .contains("--turn-password")
        );
        assert!(IceServers::new(urls(&["turn:b"]), secret(), IcePolicy::Relay).is_ok());
    }

    #[test]
    fn urls_are_checked_and_written_the_way_browsers_take_them() {
        for (given, canonical) in [
            ("stun:stun.l.google.com:19302", "stun:stun.l.google.com:19302"),
            ("STUN:Stun.Example.COM", "stun:stun.example.com"),
            ("turn:10.0.0.1", "turn:10.0.0.1"),
            ("turn:turn.example.com:3478?transport=udp", "turn:turn.example.com:3478?transport=udp"),
            ("turn:turn.example.com?transport=TCP", "turn:turn.example.com?transport=tcp"),
            ("turns:turn.example.com:443?transport=tcp", "turns:turn.example.com:443?transport=tcp"),
            ("turn:[2001:db8::1]:3478", "turn:[2001:db8::1]:3478"),
            ("  turns:relay.example.org  ", "turns:relay.example.org"),
        ] {
            let url = IceUrl::parse(given).unwrap_or_else(|e| panic!("{given}: {e}"));
            assert_eq!(url.to_string(), canonical);
        }
        assert!(IceUrl::parse("turn:a").unwrap().is_turn());
        assert!(IceUrl::parse("turns:a").unwrap().is_turn());
        assert!(!IceUrl::parse("stun:a").unwrap().is_turn());
        for (bad, says) in [
            ("", "empty"),
            ("turn.example.com:3478", "not a STUN or TURN URL"),
            ("http://turn.example.com", "must start with stun:, turn: or turns:"),
            ("turn://turn.example.com:3478", "write turn:turn.example.com:3478"),
            ("stuns:stun.example.com", "use stun:"),
            ("turn:user:pw@turn.example.com", "--turn-user"),
            ("turn:turn.example.com:0", "not a port"),
            ("turn:turn.example.com:70000", "not a port"),
            ("turn:turn.example.com:", "not a port"),
            ("turn:turn.example.com:34x", "not a port"),
            ("turn:", "not a host name"),
            ("turn:under_score.example", "not a host name"),
            ("turn:2001:db8::1", "in brackets"),
            ("turn:[2001:db8::zz]", "not an IPv6 address"),
            ("turn:[2001:db8::1", "closing ]"),
            ("turn:turn.example.com/path", "has a path"),
            ("stun:stun.example.com?transport=udp", "take no ?transport"),
            ("turns:turn.example.com?transport=udp", "?transport=tcp"),
            ("turn:turn.example.com?transport=sctp", "?transport=udp or ?transport=tcp"),
            ("turn:turn example.com", "spaces"),
        ] {
            let err = IceUrl::parse(bad).expect_err(bad);
            assert!(err.contains(says), "{bad:?} gave {err:?}, not {says:?}");
        }
    }
}

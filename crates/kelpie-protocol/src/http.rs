//! The HTTP request fields Kelpie reads from browsers and other clients, as pure parsers:
//! access tokens (the URL query, the `Cookie` header, `Authorization: Bearer`), origins
//! (`Origin`, `Host`, a reverse proxy's `X-Forwarded-Host`), and where a plain HTTP request to
//! an HTTPS port should be sent ([`https_location`]). They know nothing of HTTP
//! libraries; the server decides what a parsed field grants. Every token returned is a slice
//! of the input, found only where it literally occurs (the `auth_tokens` fuzz target checks
//! that), and empty values are never returned.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The first non-empty `token` parameter of a URL query, as written (not percent-decoded):
/// `a=1&token=abc` gives `abc`.
pub fn query_token(query: &str) -> Option<&str> {
    query.split('&').filter_map(|kv| kv.strip_prefix("token=")).find(|t| !t.is_empty())
}

/// The query without its `token` parameters, for the address a browser is sent on to once
/// the token has become a cookie.
pub fn query_without_token(query: &str) -> String {
    query.split('&').filter(|kv| !kv.is_empty() && !kv.starts_with("token=")).collect::<Vec<_>>().join("&")
}

/// The token of an `Authorization` header value of the `Bearer` scheme (the scheme name in
/// any case, RFC 9110 §11.1), without surrounding spaces.
pub fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = rest.trim_matches(' ');
    (!token.is_empty() && !token.contains(' ')).then_some(token)
}

/// The non-empty values of the cookies called `name` in a `Cookie` header value
/// (`a=1; name=value`), in order.
pub fn cookie_values<'a>(header: &'a str, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    header
        .split(';')
        .filter_map(|kv| kv.trim_matches(' ').split_once('='))
        .filter(move |(k, v)| *k == name && !v.is_empty())
        .map(|(_, v)| v)
}

/// Whether `token` may be used as a token: it must travel unchanged in a URL query, a cookie
/// and an `Authorization` header, so it is made of letters, digits and `-._~+/=` only.
pub fn is_token_text(token: &str) -> bool {
    !token.is_empty() && token.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b))
}

/// The scheme of an origin Kelpie can be reached at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// Plain HTTP (WebSocket: `ws`).
    Http,
    /// HTTP over TLS (WebSocket: `wss`).
    Https,
}

impl Scheme {
    /// `http` or `https`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
        }
    }

    /// The port a URL of this scheme means when it names none.
    pub fn default_port(self) -> u16 {
        match self {
            Self::Http => 80,
            Self::Https => 443,
        }
    }

    /// `http` or `https`, in any case; nothing else.
    pub fn parse(s: &str) -> Option<Self> {
        if s.eq_ignore_ascii_case("http") {
            Some(Self::Http)
        } else if s.eq_ignore_ascii_case("https") {
            Some(Self::Https)
        } else {
            None
        }
    }
}

/// Why a host, authority or origin was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OriginError {
    /// Empty, or a host name with characters no DNS name has.
    #[error("not a host name or IP address")]
    BadHost,
    /// A port that is not a number from 0 to 65535.
    #[error("not a port number")]
    BadPort,
    /// Not `http://` or `https://` (this includes the opaque origin `null`).
    #[error("not an http:// or https:// origin")]
    BadScheme,
    /// A path, query or fragment after the host and port.
    #[error("an origin is a scheme, host and port only, with no path")]
    HasPath,
}

/// A `Host` header value or the authority of a URL: a host and maybe a port. The host is
/// kept normalised (lower case; IP addresses in their canonical form, IPv6 in brackets), so
/// two authorities that mean the same server compare equal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Authority {
    host: String,
    port: Option<u16>,
}

impl Authority {
    /// Parses `host`, `host:port`, `1.2.3.4:port` or `[v6]:port`.
    pub fn parse(s: &str) -> Result<Self, OriginError> {
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (v6, after) = rest.split_once(']').ok_or(OriginError::BadHost)?;
            let ip: Ipv6Addr = v6.parse().map_err(|_| OriginError::BadHost)?;
            let port = match after {
                "" => None,
                p => Some(parse_port(p.strip_prefix(':').ok_or(OriginError::BadHost)?)?),
            };
            (format!("[{ip}]"), port)
        } else {
            let (host, port) = match s.rsplit_once(':') {
                Some((h, p)) => (h, Some(parse_port(p)?)),
                None => (s, None),
            };
            (normalise_name(host)?, port)
        };
        Ok(Self { host, port })
    }

    /// The host, normalised (`[::1]` for IPv6).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port, if one was written.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The origin a browser that reached this authority with `scheme` has.
    pub fn origin(&self, scheme: Scheme) -> Origin {
        Origin { scheme, host: self.host.clone(), port: self.port.unwrap_or(scheme.default_port()) }
    }

    /// Whether the host is a name or address that only ever means this machine: `localhost`
    /// and its subdomains (browsers resolve them to loopback themselves), 127.0.0.0/8, `::1`.
    pub fn is_loopback(&self) -> bool {
        let h = self.host.as_str();
        if h == "localhost" || h.ends_with(".localhost") {
            return true;
        }
        let ip = h.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(h);
        ip.parse::<IpAddr>().is_ok_and(|ip| ip.to_canonical().is_loopback())
    }
}

fn parse_port(p: &str) -> Result<u16, OriginError> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(OriginError::BadPort);
    }
    p.parse().map_err(|_| OriginError::BadPort)
}

/// A DNS name or IPv4 address, lower case; at most 253 characters of letters, digits and
/// `-._~` (underscores appear in container and service names).
fn normalise_name(host: &str) -> Result<String, OriginError> {
    let ok = |b: u8| b.is_ascii_alphanumeric() || b"-._~".contains(&b);
    if host.is_empty() || host.len() > 253 || !host.bytes().all(ok) {
        return Err(OriginError::BadHost);
    }
    Ok(match host.parse::<Ipv4Addr>() {
        Ok(ip) => ip.to_string(),
        Err(_) => host.to_ascii_lowercase(),
    })
}

/// A web origin: scheme, host and port (RFC 6454). Two origins are equal when all three are;
/// a missing port means the scheme's default.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    scheme: Scheme,
    host: String,
    port: u16,
}

impl Origin {
    /// Parses an `Origin` header value, `scheme://host[:port]`. The opaque origin `null`
    /// and schemes other than http and https are errors.
    pub fn parse(s: &str) -> Result<Self, OriginError> {
        let (scheme, rest) = s.split_once("://").ok_or(OriginError::BadScheme)?;
        let scheme = Scheme::parse(scheme).ok_or(OriginError::BadScheme)?;
        if rest.contains(['/', '?', '#']) {
            return Err(OriginError::HasPath);
        }
        if rest.contains('@') {
            return Err(OriginError::BadHost);
        }
        Ok(Authority::parse(rest)?.origin(scheme))
    }

    /// The scheme.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The host, normalised as in [`Authority`].
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port (the scheme's default when the origin names none).
    pub fn port(&self) -> u16 {
        self.port
    }
}

/// As a browser serialises it: `https://host` with the default port left out.
impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme.as_str(), self.host)?;
        if self.port != self.scheme.default_port() {
            write!(f, ":{}", self.port)?;
        }
        Ok(())
    }
}

/// The `https://` address a plain HTTP request meant, from its start (`head`: the request line
/// and as many header lines as came): its `Host` (normalised, as [`Authority`]) and its
/// request target when that is a plain path (`/desk/?token=…`), else `/`. `None` without an
/// HTTP request line or a usable `Host` among the complete header lines. The result has only
/// visible ASCII: it is fit for a `Location` header.
pub fn https_location(head: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    let mut request = lines.next()?.split(' ');
    let (_method, target, version) = (request.next()?, request.next()?, request.next()?);
    if !version.starts_with("HTTP/") || request.next().is_some() {
        return None;
    }
    // Complete lines only: the last piece has no line end yet, unless an empty line follows.
    let complete = text.matches("\r\n").count();
    let host = lines
        .take(complete.saturating_sub(1))
        .take_while(|l| !l.is_empty())
        .find_map(|l| {
            l.split_once(':').filter(|(n, _)| n.eq_ignore_ascii_case("host")).map(|(_, v)| v.trim())
        })
        .and_then(|h| Authority::parse(h).ok())?;
    let path =
        if target.starts_with('/') && target.bytes().all(|b| b.is_ascii_graphic()) { target } else { "/" };
    let port = host.port().map(|p| format!(":{p}")).unwrap_or_default();
    Some(format!("https://{}{port}{path}", host.host()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_tokens_are_found_only_as_the_token_parameter() {
        assert_eq!(query_token("a=1&token=abc"), Some("abc"));
        assert_eq!(query_token("token=abc&token=def"), Some("abc"));
        assert_eq!(query_token("token=&token=def"), Some("def"));
        assert_eq!(query_token("tokens=abc"), None);
        assert_eq!(query_token("xtoken=abc"), None);
        assert_eq!(query_token("token="), None);
        assert_eq!(query_token(""), None);
        assert_eq!(query_without_token("a=1&token=abc&b=2"), "a=1&b=2");
        assert_eq!(query_without_token("token=abc"), "");
    }

    #[test]
    fn bearer_tokens_need_the_bearer_scheme() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearer a b"), None);
        assert_eq!(bearer_token("Bearerabc"), None);
    }

    #[test]
    fn cookies_are_matched_by_their_exact_name() {
        let h = "x=1; kelpie_token_8080=abc;kelpie_token_9090=zzz; kelpie_token_8080=";
        assert_eq!(cookie_values(h, "kelpie_token_8080").collect::<Vec<_>>(), vec!["abc"]);
        assert_eq!(cookie_values(h, "kelpie_token").count(), 0);
        assert_eq!(cookie_values("kelpie_token_8080", "kelpie_token_8080").count(), 0);
        assert_eq!(cookie_values("a=b=c", "a").collect::<Vec<_>>(), vec!["b=c"]);
    }

    #[test]
    fn token_text_travels_in_urls_and_cookies() {
        assert!(is_token_text("0123abcdef"));
        assert!(is_token_text("a-b_c.d~e+f/g="));
        for bad in ["", "a b", "a;b", "a,b", "a&b", "a\"b", "a%b", "a#b", "é"] {
            assert!(!is_token_text(bad), "{bad:?}");
        }
    }

    #[test]
    fn authorities_are_normalised() {
        let a = Authority::parse("LocalHost:8080").unwrap();
        assert_eq!((a.host(), a.port()), ("localhost", Some(8080)));
        let a = Authority::parse("[0:0::1]:80").unwrap();
        assert_eq!((a.host(), a.port()), ("[::1]", Some(80)));
        assert_eq!(Authority::parse("[::1]").unwrap().port(), None);
        assert_eq!(Authority::parse("example.com").unwrap().port(), None);
        for bad in
            ["", ":80", "a b", "a:", "a:99999", "a:-1", "[::1", "[::1]x", "[zz]:1", "a/b", "a@b", "a:1:2"]
        {
            assert!(Authority::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn loopback_hosts() {
        for h in ["localhost", "LOCALHOST:1", "app.localhost", "127.0.0.1", "127.9.9.9:80", "[::1]:8080"] {
            assert!(Authority::parse(h).unwrap().is_loopback(), "{h}");
        }
        for h in ["attacker.example", "localhost.example", "10.0.0.1", "[::2]", "0.0.0.0", "127.1"] {
            assert!(!Authority::parse(h).unwrap().is_loopback(), "{h}");
        }
    }

    #[test]
    fn origins_compare_scheme_host_and_port() {
        let o = Origin::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(o, Authority::parse("127.0.0.1:8080").unwrap().origin(Scheme::Http));
        assert_ne!(o, Authority::parse("127.0.0.1:8081").unwrap().origin(Scheme::Http));
        assert_ne!(o, Authority::parse("127.0.0.1:8080").unwrap().origin(Scheme::Https));
        assert_eq!(
            Origin::parse("https://Example.COM").unwrap(),
            Origin::parse("https://example.com:443").unwrap()
        );
        assert_eq!(Origin::parse("https://example.com:443").unwrap().to_string(), "https://example.com");
        assert_eq!(Origin::parse("http://[::1]:9").unwrap().to_string(), "http://[::1]:9");
        assert_eq!(Origin::parse("null"), Err(OriginError::BadScheme));
        assert_eq!(Origin::parse("file:///x"), Err(OriginError::BadScheme));
        assert_eq!(Origin::parse("http://a/"), Err(OriginError::HasPath));
        assert_eq!(Origin::parse("http://user@a"), Err(OriginError::BadHost));
        assert_eq!(Origin::parse("http://"), Err(OriginError::BadHost));
    }

    #[test]
    fn plain_requests_say_where_they_meant_over_https() {
        let loc = |h: &str| https_location(h.as_bytes());
        assert_eq!(
            loc("GET /?token=abc HTTP/1.1\r\nHost: 127.0.0.1:8443\r\nAccept: */*\r\n\r\n").as_deref(),
            Some("https://127.0.0.1:8443/?token=abc")
        );
        assert_eq!(
            loc("POST /desk/api HTTP/1.1\r\nhOsT:  Desk.Example.COM:9443 \r\n\r\n").as_deref(),
            Some("https://desk.example.com:9443/desk/api")
        );
        assert_eq!(loc("GET /x HTTP/1.0\r\nHost: [::1]\r\n\r\n").as_deref(), Some("https://[::1]/x"));
        // Only a plain path is copied: an absolute-form target goes to the root.
        assert_eq!(
            loc("GET http://evil.example/x HTTP/1.1\r\nHost: localhost:8443\r\n\r\n").as_deref(),
            Some("https://localhost:8443/")
        );
        // Complete header lines that came in part of a request still name the host.
        assert_eq!(
            loc("GET / HTTP/1.1\r\nHost: localhost:1\r\nX-Rest: ").as_deref(),
            Some("https://localhost:1/")
        );
        for bad in [
            "GET / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: bad host\r\n\r\n",
            "GET / HTTP/1.1\r\nX: y\r\n\r\nHost: late.example\r\n",
            // A Host line still coming: 'localhost:8' may be the start of 'localhost:8443'.
            "GET / HTTP/1.1\r\nHost: localhost:8",
            "GET / HTTP/1.1 extra\r\nHost: a\r\n\r\n",
            "\u{1}\u{2}garbage",
            "",
            "SSH-2.0-OpenSSH_9.2\r\n",
        ] {
            assert_eq!(loc(bad), None, "{bad:?}");
        }
        assert_eq!(https_location(b"GET / HTTP/1.1\r\nHost: \xff\r\n\r\n"), None);
    }
}

//! Reverse proxies: which peers are believed (`--trusted-proxy`), and what their
//! `X-Forwarded-*` headers say about how the browser reached Kelpie. A peer that is not
//! trusted is taken at its word only for what it cannot fake: the connection itself.

use std::net::IpAddr;

use axum::http::HeaderMap;
use kelpie_protocol::http::Scheme;

/// An address or a CIDR block, e.g. `127.0.0.1`, `10.0.0.0/8`, `fd00::/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Parses `ADDR` or `ADDR/BITS` (the flag's value parser).
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || format!("'{s}' is not an IP address or CIDR block, e.g. 127.0.0.1 or 10.0.0.0/8");
        let (addr, bits) = match s.trim().split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let addr = addr.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match bits {
            None => max,
            Some(b) => b.parse::<u8>().ok().filter(|b| *b <= max).ok_or_else(bad)?,
        };
        Ok(Self { addr, prefix })
    }

    /// Whether `ip` lies in this block (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// What a trusted proxy said about the browser's side of the request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Forwarded {
    /// `X-Forwarded-Host`: the host (and port) the browser asked for.
    pub host: Option<String>,
    /// `X-Forwarded-Proto`: http or https.
    pub proto: Option<Scheme>,
    /// `X-Forwarded-Prefix`: the path Kelpie is served under, without a trailing slash
    /// (`/desk`), or `/`.
    pub prefix: Option<String>,
}

impl Forwarded {
    /// The forwarded headers of a request from `peer`, if `peer` is one of `trusted`; nothing
    /// otherwise. Of a header given several times (or as a comma-separated list) the last
    /// value counts: it is the one the proxy next to Kelpie set or appended.
    pub fn of(headers: &HeaderMap, peer: Option<IpAddr>, trusted: &[IpNet]) -> Self {
        if !peer.is_some_and(|p| trusted.iter().any(|n| n.contains(p))) {
            return Self::default();
        }
        Self::read(headers)
    }

    /// The forwarded headers of a request from a proxy known to be the one in front (on a
    /// Unix socket only it can connect to).
    pub fn read(headers: &HeaderMap) -> Self {
        Self {
            host: last_value(headers, "x-forwarded-host").map(str::to_string),
            proto: last_value(headers, "x-forwarded-proto").and_then(Scheme::parse),
            prefix: last_value(headers, "x-forwarded-prefix").and_then(normalise_prefix),
        }
    }
}

fn last_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let last = headers.get_all(name).iter().next_back()?.to_str().ok()?;
    Some(last.rsplit(',').next()?.trim()).filter(|v| !v.is_empty())
}

/// A path prefix fit for a cookie's `Path`: starts with `/`, made of letters, digits and
/// `-._~/%` only, no trailing slash (except `/` itself). Anything else is ignored.
pub fn normalise_prefix(p: &str) -> Option<String> {
    let ok = |b: u8| b.is_ascii_alphanumeric() || b"-._~/%".contains(&b);
    if !p.starts_with('/') || p.len() > 512 || !p.bytes().all(ok) {
        return None;
    }
    let trimmed = p.trim_end_matches('/');
    Some(if trimmed.is_empty() { "/".to_string() } else { trimmed.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_blocks_contain_their_addresses() {
        let net = IpNet::parse("10.1.0.0/16").unwrap();
        assert!(net.contains(ip("10.1.200.3")));
        assert!(!net.contains(ip("10.2.0.1")));
        assert!(net.contains(ip("::ffff:10.1.0.9")), "IPv4-mapped peers count as IPv4");
        let one = IpNet::parse("127.0.0.1").unwrap();
        assert!(one.contains(ip("127.0.0.1")) && !one.contains(ip("127.0.0.2")));
        assert!(IpNet::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        let v6 = IpNet::parse("fd00::/8").unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")) && !v6.contains(ip("10.0.0.1")));
        assert!(IpNet::parse("::/0").unwrap().contains(ip("::1")));
        for bad in ["", "10.0.0.0/33", "::/129", "localhost", "10.0.0.0/x", "10.0.0/8"] {
            assert!(IpNet::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn forwarded_headers_count_only_from_trusted_peers() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-host", HeaderValue::from_static("desk.example.com"));
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        h.insert("x-forwarded-prefix", HeaderValue::from_static("/desk/"));
        let trusted = [IpNet::parse("127.0.0.1").unwrap()];
        let f = Forwarded::of(&h, Some(ip("127.0.0.1")), &trusted);
        assert_eq!(f.host.as_deref(), Some("desk.example.com"));
        assert_eq!(f.proto, Some(Scheme::Https));
        assert_eq!(f.prefix.as_deref(), Some("/desk"));
        assert_eq!(Forwarded::of(&h, Some(ip("127.0.0.2")), &trusted), Forwarded::default());
        assert_eq!(Forwarded::of(&h, None, &trusted), Forwarded::default());
        assert_eq!(Forwarded::of(&h, Some(ip("127.0.0.1")), &[]), Forwarded::default());
    }

    #[test]
    fn the_last_forwarded_value_counts() {
        let mut h = HeaderMap::new();
        h.append("x-forwarded-host", HeaderValue::from_static("forged.example, proxy.example"));
        h.append("x-forwarded-proto", HeaderValue::from_static("https"));
        h.append("x-forwarded-proto", HeaderValue::from_static("http"));
        h.append("x-forwarded-prefix", HeaderValue::from_static("/a;b"));
        let f = Forwarded::of(&h, Some(ip("10.0.0.1")), &[IpNet::parse("10.0.0.0/8").unwrap()]);
        assert_eq!(f.host.as_deref(), Some("proxy.example"));
        assert_eq!(f.proto, Some(Scheme::Http));
        assert_eq!(f.prefix, None, "a prefix a cookie cannot carry is ignored");
    }

    #[test]
    fn prefixes_are_cookie_paths() {
        assert_eq!(normalise_prefix("/").as_deref(), Some("/"));
        assert_eq!(normalise_prefix("/desk/u1/").as_deref(), Some("/desk/u1"));
        assert_eq!(normalise_prefix("///").as_deref(), Some("/"));
        for bad in ["", "desk", "/a b", "/a;Secure", "/a,b", "/é"] {
            assert_eq!(normalise_prefix(bad), None, "{bad}");
        }
    }
}

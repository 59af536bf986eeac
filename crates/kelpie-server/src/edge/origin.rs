//! Whose requests Kelpie answers: the `Host` check against DNS rebinding (on a loopback
//! listener) and the `Origin` check of WebSocket upgrades and state-changing requests
//! against cross-site requests. Pure functions of the request's fields and the settings.

use axum::http::{HeaderMap, Method, header};
use kelpie_protocol::http::{Authority, Origin, Scheme};

use super::proxy::normalise_prefix;

/// `--public-url`: where browsers reach Kelpie, e.g. `https://desk.example.com/kelpie/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    /// Its origin: scheme, host, port.
    pub origin: Origin,
    /// Its path without a trailing slash (`/kelpie`), or `/`.
    pub path: String,
}

impl PublicUrl {
    /// Parses `scheme://host[:port][/path]` (the flag's value parser).
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad =
            |why: &str| format!("--public-url '{s}' {why}: give it like https://desk.example.com/kelpie/");
        let (scheme, rest) = s.trim().split_once("://").ok_or_else(|| bad("has no scheme"))?;
        let scheme = Scheme::parse(scheme).ok_or_else(|| bad("is not http:// or https://"))?;
        if rest.contains(['?', '#']) {
            return Err(bad("has a query or fragment"));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, "/"),
        };
        let authority = Authority::parse(authority).map_err(|e| bad(&format!("has a bad host ({e})")))?;
        let path =
            normalise_prefix(path).ok_or_else(|| bad("has a path with characters a cookie cannot carry"))?;
        Ok(Self { origin: authority.origin(scheme), path })
    }
}

/// Whether a request needs its `Origin` checked: a WebSocket (or other) upgrade, or a
/// method that may change state. Cross-site pages can make browsers send both with the
/// user's cookie; plain GETs they can send too, but cannot read the answer.
pub fn needs_origin_check(method: &Method, headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE) || !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Why a request was refused, in words for the response body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The `Host` is not a loopback name (nor the public URL's host) on a loopback listener.
    Host(String),
    /// The `Origin` is another site's.
    Origin(String),
}

/// The DNS-rebinding check of a loopback listener: a page on attacker.example whose name
/// the attacker points at 127.0.0.1 makes the browser send `Host: attacker.example`. Only
/// loopback names and the public URL's host are answered. The raw `Host` header is checked,
/// never a forwarded one: the rebound page could send that header itself.
pub fn check_host(host: Option<&str>, public: Option<&PublicUrl>) -> Result<(), Refusal> {
    let parsed = host.and_then(|h| Authority::parse(h).ok());
    let public_host = public.map(|p| p.origin.host());
    match parsed {
        Some(a) if a.is_loopback() || Some(a.host()) == public_host => Ok(()),
        _ => Err(Refusal::Host(format!(
            "Kelpie refused this request: it listens on a loopback address and answers only to \
             localhost, 127.0.0.1 and [::1], but the request was for the host '{}' (this protects \
             against DNS rebinding). Open Kelpie at http://localhost:PORT/ or http://127.0.0.1:PORT/; \
             behind a reverse proxy that passes on another Host, give Kelpie's address with \
             --public-url.\n",
            host.unwrap_or("(none)")
        ))),
    }
}

/// What the `Origin` check decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginCheck {
    /// A browser page of an allowed origin: cookies may authenticate it.
    Allowed,
    /// No `Origin` header: not a browser (they always send one on upgrades and
    /// state-changing requests), so only an `Authorization` header may authenticate it.
    Absent,
    /// Another site's page.
    Refused(Refusal),
}

/// Checks the `Origin` of a request that [needs it](needs_origin_check): it must be the origin
/// the browser reached Kelpie at (`reached`), the public URL's, or one of `--allow-origin`.
pub fn check_origin(
    origin: Option<&str>,
    reached: Option<&Origin>,
    public: Option<&PublicUrl>,
    allowed: &[Origin],
) -> OriginCheck {
    let Some(raw) = origin else { return OriginCheck::Absent };
    let parsed = Origin::parse(raw).ok();
    let ok = parsed
        .as_ref()
        .is_some_and(|o| Some(o) == reached || Some(o) == public.map(|p| &p.origin) || allowed.contains(o));
    if ok {
        return OriginCheck::Allowed;
    }
    let here =
        reached.map_or_else(|| "(unknown: the request has no valid Host)".to_string(), Origin::to_string);
    OriginCheck::Refused(Refusal::Origin(format!(
        "Kelpie refused this request: it comes from a page of {raw}, but this desktop is served \
         at {here}, and pages of other sites may not open it (cross-site WebSocket hijacking). \
         Open Kelpie's own address. If Kelpie sits behind a reverse proxy, give its address with \
         --public-url (or trust the proxy's X-Forwarded-Host with --trusted-proxy); to let a \
         portal embed it, add the portal with --allow-origin.\n"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn origin(s: &str) -> Origin {
        Origin::parse(s).unwrap()
    }

    #[test]
    fn public_urls_give_origin_and_cookie_path() {
        let p = PublicUrl::parse("https://Desk.Example.com/kelpie/").unwrap();
        assert_eq!(p.origin, origin("https://desk.example.com:443"));
        assert_eq!(p.path, "/kelpie");
        assert_eq!(PublicUrl::parse("http://127.0.0.1:8080").unwrap().path, "/");
        for bad in
            ["desk.example.com", "ftp://a/", "https://a/?x=1", "https://a b/", "https://a/;x", "https://:80/"]
        {
            assert!(PublicUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn upgrades_and_state_changes_need_an_origin_check() {
        let mut h = HeaderMap::new();
        assert!(!needs_origin_check(&Method::GET, &h));
        assert!(!needs_origin_check(&Method::HEAD, &h));
        assert!(needs_origin_check(&Method::POST, &h));
        assert!(needs_origin_check(&Method::DELETE, &h));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert!(needs_origin_check(&Method::GET, &h));
    }

    #[test]
    fn a_loopback_listener_answers_loopback_names_and_the_public_host() {
        assert_eq!(check_host(Some("127.0.0.1:8080"), None), Ok(()));
        assert_eq!(check_host(Some("localhost"), None), Ok(()));
        assert_eq!(check_host(Some("[::1]:1"), None), Ok(()));
        assert!(check_host(Some("attacker.example:8080"), None).is_err());
        assert!(check_host(Some("127.0.0.1.attacker.example"), None).is_err());
        assert!(check_host(Some("bad host"), None).is_err());
        assert!(check_host(None, None).is_err());
        let public = PublicUrl::parse("https://desk.example.com/k/").unwrap();
        assert_eq!(check_host(Some("desk.example.com"), Some(&public)), Ok(()));
        assert_eq!(check_host(Some("DESK.example.com:8443"), Some(&public)), Ok(()));
        assert!(check_host(Some("other.example.com"), Some(&public)).is_err());
    }

    #[test]
    fn only_our_own_public_and_allowed_origins_pass() {
        let here = origin("http://127.0.0.1:8080");
        let public = PublicUrl::parse("https://desk.example.com/").unwrap();
        let allowed = [origin("https://portal.example.com")];
        let check = |o: Option<&str>| check_origin(o, Some(&here), Some(&public), &allowed);
        assert_eq!(check(Some("http://127.0.0.1:8080")), OriginCheck::Allowed);
        assert_eq!(check(Some("https://desk.example.com")), OriginCheck::Allowed);
        assert_eq!(check(Some("https://portal.example.com:443")), OriginCheck::Allowed);
        assert_eq!(check(None), OriginCheck::Absent);
        for evil in [
            "http://evil.example",
            "http://127.0.0.1:8081",
            "https://127.0.0.1:8080",
            "http://localhost:8080",
            "null",
            "http://portal.example.com",
            "garbage",
        ] {
            let OriginCheck::Refused(Refusal::Origin(why)) = check(Some(evil)) else {
                panic!("{evil} passed")
            };
            assert!(why.contains(evil) && why.contains("http://127.0.0.1:8080"), "{why}");
        }
        assert!(matches!(check_origin(Some("http://a"), None, None, &[]), OriginCheck::Refused(_)));
    }
}

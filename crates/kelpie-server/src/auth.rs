//! Token access control: the first URL carries `?token=…`, which is swapped for a cookie;
//! API clients may send `Authorization: Bearer …` instead. Runs inside the edge
//! ([`crate::edge`]), which says whether a cookie may count for the request and what the
//! cookie's attributes are. Every request that passes carries its [`Access`]; handlers
//! refuse requests without one.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use kelpie_protocol::http::{bearer_token, cookie_values, query_token, query_without_token};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::AppState;
use crate::edge::{CookieAttrs, Reached, STATIC_PAGE_POLICY, SameSite, set_cookie};

/// Name of the cookie holding the token; the port keeps two servers on one host apart.
pub fn cookie_name(port: u16) -> String {
    format!("kelpie_token_{port}")
}

/// A fresh random token (128 bits, hex).
pub fn random_token() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the OS has a random source");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The tokens a request presents in its headers: `Authorization: Bearer` first, then the
/// cookie called `cookie` when cookies count for it.
fn presented_tokens<'a>(
    headers: &'a HeaderMap,
    cookie: &'a str,
    cookies_count: bool,
) -> impl Iterator<Item = &'a str> + 'a {
    let text = |name| headers.get_all(name).into_iter().filter_map(|v: &HeaderValue| v.to_str().ok());
    let bearer = text(header::AUTHORIZATION).filter_map(bearer_token);
    let cookies =
        text(header::COOKIE).filter(move |_| cookies_count).flat_map(move |v| cookie_values(v, cookie));
    bearer.chain(cookies)
}

/// What a request's token grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// See, type and click.
    Full,
    /// Only see (the `--view-token`).
    ViewOnly,
}

/// The server's tokens.
#[derive(Debug, Clone, Copy)]
struct Tokens<'a> {
    full: &'a str,
    view: Option<&'a str>,
}

impl Tokens<'_> {
    fn access_of(&self, presented: &str) -> Option<Access> {
        // Both compared every time, in constant time.
        let full = constant_time_eq(presented.as_bytes(), self.full.as_bytes());
        let view = self.view.is_some_and(|v| constant_time_eq(presented.as_bytes(), v.as_bytes()));
        if full {
            Some(Access::Full)
        } else if view {
            Some(Access::ViewOnly)
        } else {
            None
        }
    }
}

/// What the token check decided.
#[derive(Debug, PartialEq, Eq)]
enum Decision<'a> {
    /// In, with this access.
    Pass(Access),
    /// A good token in the URL: set it as a cookie and send the browser to `target`, the
    /// same address without the token.
    SetCookie { token: &'a str, target: String },
    /// No good token.
    Refuse,
}

fn decide<'a>(
    tokens: Tokens<'_>,
    headers: &'a HeaderMap,
    uri: &'a Uri,
    cookie: &'a str,
    cookies_count: bool,
) -> Decision<'a> {
    // The best access any presented token grants.
    let granted = presented_tokens(headers, cookie, cookies_count)
        .filter_map(|t| tokens.access_of(t))
        .min_by_key(|a| *a as u8);
    if let Some(access) = granted {
        return Decision::Pass(access);
    }
    let query = uri.query().unwrap_or("");
    match query_token(query).filter(|t| tokens.access_of(t).is_some()) {
        Some(token) => {
            // Swap the token in the URL for a cookie, so it does not linger in history or logs.
            let rest = query_without_token(query);
            let last = uri.path().rsplit('/').next().unwrap_or("");
            let target = if rest.is_empty() { format!("./{last}") } else { format!("./{last}?{rest}") };
            Decision::SetCookie { token, target }
        }
        None => Decision::Refuse,
    }
}

/// Lets a request through if it carries a token, noting what it grants; otherwise answers
/// 401 with a page that says how to get in.
pub async fn require_token(State(state): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    let Some(full) = state.token.as_deref() else {
        req.extensions_mut().insert(Access::Full);
        return next.run(req).await;
    };
    let tokens = Tokens { full, view: state.view_token.as_deref() };
    let reached = req.extensions().get::<Reached>().cloned();
    let cookies_count = reached.as_ref().is_some_and(|r| r.cookies_count);
    let name = state.cookie_name.clone();
    let decision = decide(tokens, req.headers(), req.uri(), &name, cookies_count);
    let (token, target) = match decision {
        Decision::Pass(access) => {
            req.extensions_mut().insert(access);
            return next.run(req).await;
        }
        Decision::SetCookie { token, target } => (token.to_string(), target),
        Decision::Refuse => {
            state.metrics.auth_rejected.fetch_add(1, Ordering::Relaxed);
            return (
                StatusCode::UNAUTHORIZED,
                [(header::CACHE_CONTROL, "no-store"), (header::CONTENT_SECURITY_POLICY, STATIC_PAGE_POLICY)],
                Html(UNAUTHORIZED_PAGE),
            )
                .into_response();
        }
    };
    let attrs = reached
        .map_or(CookieAttrs { path: "/".into(), secure: false, same_site: SameSite::Strict }, |r| r.cookie);
    let mut resp = Redirect::to(&target).into_response();
    // Tokens are checked for cookie-safe characters at start-up.
    match HeaderValue::from_str(&set_cookie(&name, &token, &attrs)) {
        Ok(v) => {
            resp.headers_mut().insert(header::SET_COOKIE, v);
        }
        Err(_) => tracing::warn!("the token has characters a cookie cannot carry; use letters and digits"),
    }
    resp
}

const UNAUTHORIZED_PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Kelpie: sign-in needed</title>
<style>body{font:16px system-ui,sans-serif;background:#10161d;color:#e6edf3;max-width:40em;margin:4em auto;padding:0 1em}code{background:#22303c;padding:.1em .3em;border-radius:3px}</style>
</head><body><h1>This desktop needs its access link</h1>
<p>Kelpie printed a link when it started, like
<code>http://host:8080/?token=…</code>. Open that link once; your browser then remembers
the token for this address.</p>
<p>If you run Kelpie yourself: look for the line <code>Kelpie is serving … at …</code> in its
output, set a known token with <code>--token</code> (or <code>KELPIE_TOKEN</code>), or turn access
control off with <code>--auth none</code> on a trusted network.</p>
</body></html>"#;

#[cfg(test)]
mod tests {
    use super::*;

    const TOKENS: Tokens<'static> = Tokens { full: "fulltoken", view: Some("viewtoken") };
    const COOKIE: &str = "kelpie_token_8080";

    fn headers(pairs: &[(header::HeaderName, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(k, HeaderValue::from_static(v));
        }
        h
    }

    fn decide_for(h: &HeaderMap, uri: &'static str, cookies_count: bool) -> String {
        let uri: Uri = uri.parse().unwrap();
        format!("{:?}", decide(TOKENS, h, &uri, COOKIE, cookies_count))
    }

    #[test]
    fn tokens_are_random_hex() {
        let a = random_token();
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, random_token());
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    #[test]
    fn bearer_and_cookie_grant_their_access() {
        let h = headers(&[(header::AUTHORIZATION, "Bearer fulltoken")]);
        assert_eq!(decide_for(&h, "/", true), "Pass(Full)");
        let h = headers(&[(header::COOKIE, "x=1; kelpie_token_8080=viewtoken")]);
        assert_eq!(decide_for(&h, "/", true), "Pass(ViewOnly)");
        // The best of several tokens counts.
        let h = headers(&[
            (header::COOKIE, "kelpie_token_8080=viewtoken"),
            (header::AUTHORIZATION, "Bearer fulltoken"),
        ]);
        assert_eq!(decide_for(&h, "/", true), "Pass(Full)");
        // Another server's cookie, a wrong token, no token: refused.
        let h = headers(&[(header::COOKIE, "kelpie_token_9090=fulltoken")]);
        assert_eq!(decide_for(&h, "/", true), "Refuse");
        let h = headers(&[(header::AUTHORIZATION, "Bearer fulltokenX")]);
        assert_eq!(decide_for(&h, "/", true), "Refuse");
        assert_eq!(decide_for(&HeaderMap::new(), "/", true), "Refuse");
    }

    #[test]
    fn cookies_do_not_count_where_the_edge_says_so() {
        let h = headers(&[(header::COOKIE, "kelpie_token_8080=fulltoken")]);
        assert_eq!(decide_for(&h, "/api/signal", false), "Refuse");
        let h = headers(&[
            (header::COOKIE, "kelpie_token_8080=fulltoken"),
            (header::AUTHORIZATION, "Bearer wrong"),
        ]);
        assert_eq!(
            decide_for(&h, "/api/signal", false),
            "Refuse",
            "a wrong bearer does not let the cookie in"
        );
        let h = headers(&[
            (header::COOKIE, "kelpie_token_8080=fulltoken"),
            (header::AUTHORIZATION, "Bearer viewtoken"),
        ]);
        assert_eq!(decide_for(&h, "/api/signal", false), "Pass(ViewOnly)");
    }

    #[test]
    fn a_token_in_the_url_becomes_a_cookie_and_leaves_the_url() {
        let h = HeaderMap::new();
        assert_eq!(
            decide_for(&h, "/desk/?token=fulltoken&transport=websocket", true),
            r#"SetCookie { token: "fulltoken", target: "./?transport=websocket" }"#
        );
        assert_eq!(
            decide_for(&h, "/x/index.html?token=viewtoken", true),
            r#"SetCookie { token: "viewtoken", target: "./index.html" }"#
        );
        assert_eq!(decide_for(&h, "/?token=nope", true), "Refuse");
    }
}

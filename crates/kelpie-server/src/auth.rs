//! Token access control: the first URL carries `?token=…`, which is swapped for a cookie;
//! API clients may send `Authorization: Bearer …` instead.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::AppState;

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

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn query_token(query: &str) -> Option<&str> {
    query.split('&').find_map(|kv| kv.strip_prefix("token="))
}

fn presented_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let cookies = headers
        .get_all(header::COOKIE)
        .into_iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .filter(|(k, _)| k.starts_with("kelpie_token"))
        .map(|(_, v)| v);
    bearer.into_iter().chain(cookies)
}

/// What a request's token grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// See, type and click.
    Full,
    /// Only see (the `--view-token`).
    ViewOnly,
}

fn access_of(state: &AppState, presented: &str) -> Option<Access> {
    let is = |t: Option<&str>| t.is_some_and(|t| constant_time_eq(presented.as_bytes(), t.as_bytes()));
    if is(state.token.as_deref()) {
        Some(Access::Full)
    } else if is(state.view_token.as_deref()) {
        Some(Access::ViewOnly)
    } else {
        None
    }
}

/// Lets a request through if it carries a token, noting what it grants; otherwise answers
/// 401 with a page that says how to get in.
pub async fn require_token(State(state): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    if state.token.is_none() {
        req.extensions_mut().insert(Access::Full);
        return next.run(req).await;
    }
    // The best access any presented token grants.
    let granted =
        presented_tokens(req.headers()).filter_map(|t| access_of(&state, t)).min_by_key(|a| *a as u8);
    if let Some(access) = granted {
        req.extensions_mut().insert(access);
        return next.run(req).await;
    }
    let query = req.uri().query().unwrap_or("");
    if let Some(token) = query_token(query).filter(|t| access_of(&state, t).is_some()) {
        // Swap the token in the URL for a cookie, so it does not linger in history or logs.
        let rest: Vec<&str> = query.split('&').filter(|kv| !kv.starts_with("token=")).collect();
        let path = req.uri().path();
        let last = path.rsplit('/').next().unwrap_or("");
        let target =
            if rest.is_empty() { format!("./{last}") } else { format!("./{last}?{}", rest.join("&")) };
        let cookie = format!("{}={token}; HttpOnly; SameSite=Lax", cookie_name(state.port));
        let mut resp = Redirect::to(&target).into_response();
        match HeaderValue::from_str(&cookie) {
            Ok(v) => {
                resp.headers_mut().insert(header::SET_COOKIE, v);
            }
            Err(_) => {
                tracing::warn!("the token has characters a cookie cannot carry; use letters and digits")
            }
        }
        return resp;
    }
    state.metrics.auth_rejected.fetch_add(1, Ordering::Relaxed);
    (StatusCode::UNAUTHORIZED, [(header::CACHE_CONTROL, "no-store")], Html(UNAUTHORIZED_PAGE)).into_response()
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

    #[test]
    fn tokens_are_random_hex() {
        let a = random_token();
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, random_token());
    }

    #[test]
    fn finds_tokens_in_query_cookie_and_header() {
        assert_eq!(query_token("a=1&token=abc"), Some("abc"));
        assert_eq!(query_token("tokens=abc"), None);
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("x=1; kelpie_token_8080=abc"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer def"));
        let found: Vec<&str> = presented_tokens(&h).collect();
        assert_eq!(found, vec!["def", "abc"]);
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}

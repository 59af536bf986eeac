//! Security headers on every response: the page's Content-Security-Policy (what it may load,
//! connect to and be framed by), `nosniff`, and no `Referer` (the first URL holds the token).

use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use kelpie_protocol::http::Authority;

/// The Content-Security-Policy of Kelpie's page. The built client (`web/dist`) has no inline
/// script or style, so `'self'` suffices; `data:` images are the remote cursor's shape
/// (`blob:` images and media are allowed for pictures and sound the page makes itself). `connect-src` names the WebSocket URLs of the host the
/// browser reached (`host`, validated) besides `'self'`, for browsers whose `'self'` does
/// not cover `ws:`/`wss:`. `frame_ancestors` is `--frame-ancestors`, checked at start-up.
pub fn content_security_policy(frame_ancestors: &str, host: Option<&Authority>) -> String {
    let ws = host
        .map(|a| {
            let at = match a.port() {
                Some(p) => format!("{}:{p}", a.host()),
                None => a.host().to_string(),
            };
            format!(" ws://{at} wss://{at}")
        })
        .unwrap_or_default();
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
         media-src 'self' blob:; connect-src 'self'{ws}; object-src 'none'; base-uri 'none'; \
         form-action 'none'; frame-ancestors {frame_ancestors}"
    )
}

/// The policy of pages Kelpie writes itself (the 401 and refusal pages): inline style only.
pub const STATIC_PAGE_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'";

/// Adds the security headers a response does not have already (the 401 page brings its own
/// policy).
pub fn add_security_headers(headers: &mut HeaderMap, csp: &str) {
    let fixed: [(HeaderName, &'static str); 3] = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (HeaderName::from_static("cross-origin-resource-policy"), "same-origin"),
    ];
    for (name, value) in fixed {
        headers.entry(name).or_insert(HeaderValue::from_static(value));
    }
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        match HeaderValue::from_str(csp) {
            Ok(v) => {
                headers.insert(header::CONTENT_SECURITY_POLICY, v);
            }
            // Unreachable with the checked flag and a validated host; refuse rather than serve
            // a page without its policy.
            Err(_) => {
                headers
                    .insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_allows_our_own_websockets_and_names_the_frame_ancestors() {
        let host = Authority::parse("127.0.0.1:8080").unwrap();
        let csp = content_security_policy("'self' https://portal.example.com", Some(&host));
        assert!(csp.contains("connect-src 'self' ws://127.0.0.1:8080 wss://127.0.0.1:8080;"), "{csp}");
        assert!(csp.ends_with("frame-ancestors 'self' https://portal.example.com"), "{csp}");
        assert!(csp.starts_with("default-src 'self'; script-src 'self'; style-src 'self';"), "{csp}");
        assert!(!csp.contains("unsafe"), "{csp}");
        let csp = content_security_policy("'none'", None);
        assert!(csp.contains("connect-src 'self';"), "{csp}");
    }

    #[test]
    fn headers_are_added_but_an_own_policy_is_kept() {
        let mut h = HeaderMap::new();
        add_security_headers(&mut h, "default-src 'self'");
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(h[header::REFERRER_POLICY], "no-referrer");
        assert_eq!(h[header::CONTENT_SECURITY_POLICY], "default-src 'self'");
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(STATIC_PAGE_POLICY));
        add_security_headers(&mut h, "default-src 'self'");
        assert_eq!(h[header::CONTENT_SECURITY_POLICY], STATIC_PAGE_POLICY);
        let mut h = HeaderMap::new();
        add_security_headers(&mut h, "bad\nvalue");
        assert_eq!(h[header::CONTENT_SECURITY_POLICY], "default-src 'none'");
    }
}

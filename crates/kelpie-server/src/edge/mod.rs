//! The HTTP edge: what every request passes before the token check and the handlers. It
//! answers only the hosts a loopback listener should (DNS rebinding), refuses WebSocket
//! upgrades and state-changing requests from other sites' pages (`Origin`), believes
//! `X-Forwarded-*` only from `--trusted-proxy` peers, works out the token cookie's
//! attributes, and puts the security headers on every response. It owns no token: the
//! `auth` middleware, inside it, decides who may come in.
//!
//! A request that came over TLS was reached with https:// (`Secure` cookies, https origins).
//! A request on a Unix socket comes from the reverse proxy in front, the only one able to
//! connect (the socket is 0600): its `X-Forwarded-*` headers are believed as a
//! `--trusted-proxy`'s are, and the DNS-rebinding check, which protects loopback TCP ports
//! that any local page can reach, does not apply (the proxy checks the names it serves).

pub mod cookie;
pub mod headers;
pub mod origin;
pub mod proxy;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use kelpie_protocol::http::{Authority, Origin, Scheme, cookie_values};

pub use cookie::{CookieAttrs, SameSite, set_cookie};
pub use headers::STATIC_PAGE_POLICY;
pub use origin::PublicUrl;
pub use proxy::IpNet;

use crate::config::Config;
use crate::listener::{ConnInfo, ListenAddr, Via};
use origin::{OriginCheck, Refusal};
use proxy::Forwarded;

/// Counters of refused requests.
#[derive(Debug, Default)]
pub struct EdgeCounters {
    /// Upgrades and state-changing requests refused for a foreign or missing `Origin`.
    pub origin_rejected: AtomicU64,
    /// Requests to a loopback listener refused for a `Host` that is not loopback.
    pub host_rejected: AtomicU64,
}

/// The edge's settings, from the flags, and its counters.
#[derive(Debug)]
pub struct Edge {
    loopback_listener: bool,
    public: Option<PublicUrl>,
    allowed: Vec<Origin>,
    proxies: Vec<IpNet>,
    same_site: SameSite,
    frame_ancestors: String,
    cookie_name: String,
    /// Refusals so far.
    pub counters: EdgeCounters,
}

/// What the edge learnt about a request, for the handlers inside it (an extension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reached {
    /// Attributes of a token cookie set in the answer.
    pub cookie: CookieAttrs,
    /// Whether a cookie may authenticate the request: not for an upgrade or state-changing
    /// request without `Origin`, which no browser sends, so it carries no ambient cookie
    /// authority. A request the edge did not see has no `Reached`, and no cookie counts.
    pub cookies_count: bool,
}

impl Edge {
    /// The edge of a listener bound to `listen`, whose token cookie is called `cookie_name`.
    pub fn new(config: &Config, listen: &ListenAddr, cookie_name: String) -> Self {
        Self {
            loopback_listener: listen.is_loopback(),
            public: config.public_url.clone(),
            allowed: config.allow_origin.clone(),
            proxies: config.trusted_proxy.clone(),
            same_site: config.cookie_samesite,
            frame_ancestors: config.frame_ancestors.clone(),
            cookie_name,
            counters: EdgeCounters::default(),
        }
    }

    /// Writes the counters in Prometheus' text format.
    pub fn write_metrics(&self, out: &mut String) {
        let r = Ordering::Relaxed;
        crate::prometheus::counters(
            out,
            [
                (
                    "kelpie_origin_rejected_total",
                    "WebSocket upgrades and state-changing requests refused for another site's Origin, or for none with only a cookie.",
                    self.counters.origin_rejected.load(r),
                ),
                (
                    "kelpie_host_rejected_total",
                    "Requests to a loopback listener refused for a Host that is not loopback (DNS rebinding).",
                    self.counters.host_rejected.load(r),
                ),
            ],
        );
    }
}

/// The middleware: refuses what the edge refuses (403 with the reason and what to do),
/// notes [`Reached`] for the rest, and adds the security headers to every answer.
pub async fn guard(State(edge): State<Arc<Edge>>, mut req: Request, next: Next) -> Response {
    let conn = req.extensions().get::<ConnectInfo<ConnInfo>>().map(|c| c.0).unwrap_or_default();
    let peer = conn.peer.map(|a| a.ip());
    let headers = req.headers();
    let forwarded = match conn.via {
        // Only the proxy in front can connect to the socket.
        Via::Unix => Forwarded::read(headers),
        Via::Tcp | Via::Tls => Forwarded::of(headers, peer, &edge.proxies),
    };
    // An absolute-form request line names the host itself (RFC 9112 §3.2.2).
    let uri_host = req.uri().authority().map(|a| a.as_str().to_string());
    let raw_host = uri_host.as_deref().or_else(|| headers.get(header::HOST).and_then(|v| v.to_str().ok()));
    let listener_scheme = if conn.via == Via::Tls { Scheme::Https } else { Scheme::Http };
    let scheme = forwarded.proto.unwrap_or(listener_scheme);
    let reached_host = forwarded.host.as_deref().or(raw_host).and_then(|h| Authority::parse(h).ok());
    let csp = headers::content_security_policy(&edge.frame_ancestors, reached_host.as_ref());

    let mut refusal = None;
    if edge.loopback_listener
        && req.uri().path() != "/healthz"
        && let Err(r) = origin::check_host(raw_host, edge.public.as_ref())
    {
        edge.counters.host_rejected.fetch_add(1, Ordering::Relaxed);
        refusal = Some(r);
    }
    let mut cookies_count = true;
    if refusal.is_none() && origin::needs_origin_check(req.method(), headers) {
        let origin = headers.get(header::ORIGIN).map(|v| v.to_str().unwrap_or("(not text)"));
        let reached = reached_host.as_ref().map(|a| a.origin(scheme));
        match origin::check_origin(origin, reached.as_ref(), edge.public.as_ref(), &edge.allowed) {
            OriginCheck::Allowed => {}
            OriginCheck::Absent => {
                cookies_count = false;
                let has_cookie = headers
                    .get_all(header::COOKIE)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .any(|v| cookie_values(v, &edge.cookie_name).next().is_some());
                if has_cookie && !headers.contains_key(header::AUTHORIZATION) {
                    edge.counters.origin_rejected.fetch_add(1, Ordering::Relaxed);
                    refusal = Some(Refusal::Origin(
                        "Kelpie refused this request: it has no Origin header, which every browser \
                         sends on WebSocket upgrades, and only a cookie to authenticate it. Clients \
                         that are not browsers authenticate with 'Authorization: Bearer TOKEN'.\n"
                            .into(),
                    ));
                }
            }
            OriginCheck::Refused(r) => {
                edge.counters.origin_rejected.fetch_add(1, Ordering::Relaxed);
                refusal = Some(r);
            }
        }
    }
    let mut response = match refusal {
        Some(Refusal::Host(why) | Refusal::Origin(why)) => {
            tracing::debug!("refused: {}", why.trim_end());
            (
                StatusCode::FORBIDDEN,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8"), (header::CACHE_CONTROL, "no-store")],
                why,
            )
                .into_response()
        }
        None => {
            let public_https = edge.public.as_ref().is_some_and(|p| p.origin.scheme() == Scheme::Https);
            let path = edge
                .public
                .as_ref()
                .map(|p| p.path.clone())
                .or(forwarded.prefix)
                .unwrap_or_else(|| "/".into());
            let cookie = CookieAttrs {
                path,
                secure: scheme == Scheme::Https || public_https,
                same_site: edge.same_site,
            };
            req.extensions_mut().insert(Reached { cookie, cookies_count });
            next.run(req).await
        }
    };
    headers::add_security_headers(response.headers_mut(), &csp);
    response
}

#[cfg(test)]
mod tests;

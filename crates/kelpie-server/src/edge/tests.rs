//! The edge middleware on requests as hyper hands them over (`tower::ServiceExt::oneshot`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::extract::connect_info::ConnectInfo;
use axum::http::{HeaderName, Method, Request, StatusCode, header};
use axum::routing::get;
use axum::{Extension, Router, middleware};
use clap::Parser as _;
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

use super::*;
use crate::listener::{ConnInfo, ListenAddr, Via};

const COOKIE: &str = "kelpie_token_8080=secret";

/// An application behind the edge of a listener on `listen` with `flags`; it answers with
/// what the edge noted.
fn app(listen: &str, flags: &[&str]) -> (Router, Arc<Edge>) {
    let config = Config::try_parse_from(["kelpie"].iter().chain(flags)).unwrap();
    let edge = Arc::new(Edge::new(&config, &ListenAddr::parse(listen).unwrap(), "kelpie_token_8080".into()));
    let noted = |reached: Option<Extension<Reached>>| async move { format!("{:?}", reached.map(|r| r.0)) };
    let router = Router::new()
        .route("/", get(noted).post(noted))
        .route("/api/signal", get(noted))
        .route("/healthz", get(|| async { "ok" }))
        .layer(middleware::from_fn_with_state(edge.clone(), guard));
    (router, edge)
}

struct Sent<'a> {
    method: Method,
    path: &'a str,
    headers: Vec<(header::HeaderName, &'a str)>,
    peer: &'a str,
    via: Via,
}

fn get_(path: &str) -> Sent<'_> {
    Sent { method: Method::GET, path, headers: vec![], peer: "127.0.0.1:50000", via: Via::Tcp }
}

impl<'a> Sent<'a> {
    fn h(mut self, name: header::HeaderName, value: &'a str) -> Self {
        self.headers.push((name, value));
        self
    }

    fn upgrade(self) -> Self {
        self.h(header::UPGRADE, "websocket").h(header::CONNECTION, "Upgrade")
    }

    fn via(mut self, via: Via) -> Self {
        self.via = via;
        self
    }

    fn by_peer(mut self, peer: &'a str) -> Self {
        self.peer = peer;
        self
    }

    async fn to(self, app: &Router) -> (StatusCode, axum::http::HeaderMap, String) {
        let mut req = Request::builder().method(self.method).uri(self.path);
        for (k, v) in self.headers {
            req = req.header(k, v);
        }
        let mut req = req.body(Body::empty()).unwrap();
        let peer: SocketAddr = self.peer.parse().unwrap();
        let peer = (self.via != Via::Unix).then_some(peer);
        req.extensions_mut().insert(ConnectInfo(ConnInfo { local: None, peer, via: self.via, tcp_fd: None }));
        let resp = app.clone().oneshot(req).await.unwrap();
        let (parts, body) = resp.into_parts();
        let body = String::from_utf8(body.collect().await.unwrap().to_bytes().to_vec()).unwrap();
        (parts.status, parts.headers, body)
    }
}

#[tokio::test]
async fn foreign_origins_cannot_upgrade() {
    let (app, edge) = app("127.0.0.1:8080", &[]);
    let ok = get_("/api/signal")
        .upgrade()
        .h(header::HOST, "127.0.0.1:8080")
        .h(header::ORIGIN, "http://127.0.0.1:8080");
    let (status, _, body) = ok.h(header::COOKIE, COOKIE).to(&app).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("cookies_count: true"), "{body}");
    for origin in ["http://evil.example", "http://127.0.0.1:9999", "https://127.0.0.1:8080", "null"] {
        let sent = get_("/api/signal").upgrade().h(header::HOST, "127.0.0.1:8080").h(header::ORIGIN, origin);
        let (status, headers, body) = sent.h(header::COOKIE, COOKIE).to(&app).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{origin}");
        assert!(body.contains(origin) && body.contains("--allow-origin"), "{body}");
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "refusals carry the headers too");
    }
    assert_eq!(edge.counters.origin_rejected.load(Ordering::Relaxed), 4);
    // A cross-origin POST is refused as well; a cross-origin GET is left to CORS.
    let post = Sent { method: Method::POST, ..get_("/") }.h(header::HOST, "127.0.0.1:8080");
    assert_eq!(post.h(header::ORIGIN, "http://evil.example").to(&app).await.0, StatusCode::FORBIDDEN);
    let plain = get_("/").h(header::HOST, "127.0.0.1:8080").h(header::ORIGIN, "http://evil.example");
    assert_eq!(plain.to(&app).await.0, StatusCode::OK);
}

#[tokio::test]
async fn without_an_origin_only_a_bearer_token_may_upgrade() {
    let (app, edge) = app("127.0.0.1:8080", &[]);
    let base = || get_("/api/signal").upgrade().h(header::HOST, "127.0.0.1:8080");
    let (status, _, body) = base().h(header::COOKIE, COOKIE).to(&app).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("Authorization: Bearer"), "{body}");
    assert_eq!(edge.counters.origin_rejected.load(Ordering::Relaxed), 1);
    // With a bearer token it goes on, and the cookie beside it will not count.
    let (status, _, body) =
        base().h(header::COOKIE, COOKIE).h(header::AUTHORIZATION, "Bearer x").to(&app).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("cookies_count: false"), "{body}");
    let (status, _, body) = base().h(header::AUTHORIZATION, "Bearer x").to(&app).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("cookies_count: false"), "{body}");
}

#[tokio::test]
async fn a_loopback_listener_answers_only_loopback_hosts() {
    let (app, edge) = app("127.0.0.1:8080", &[]);
    for host in ["attacker.example", "attacker.example:8080", "10.0.0.1:8080"] {
        let (status, _, body) = get_("/").h(header::HOST, host).to(&app).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{host}");
        assert!(body.contains("DNS rebinding") && body.contains(host), "{body}");
    }
    assert_eq!(edge.counters.host_rejected.load(Ordering::Relaxed), 3);
    assert_eq!(get_("/").h(header::HOST, "localhost:8080").to(&app).await.0, StatusCode::OK);
    assert_eq!(get_("/healthz").h(header::HOST, "attacker.example").to(&app).await.0, StatusCode::OK);
    // A forwarded host does not get round it, even from a trusted proxy.
    let (app, _) = app_with_proxy();
    let forged = get_("/")
        .h(header::HOST, "attacker.example")
        .h(HeaderName::from_static("x-forwarded-host"), "127.0.0.1");
    assert_eq!(forged.to(&app).await.0, StatusCode::FORBIDDEN);
    // Listening on all addresses, any host is answered (the origin check still applies).
    let (app, _) = self::app("0.0.0.0:8080", &[]);
    assert_eq!(get_("/").h(header::HOST, "desk.example.com:8080").to(&app).await.0, StatusCode::OK);
    // The public URL's host is answered on loopback.
    let (app, _) = self::app("127.0.0.1:8080", &["--public-url", "https://desk.example.com/k/"]);
    assert_eq!(get_("/").h(header::HOST, "desk.example.com").to(&app).await.0, StatusCode::OK);
}

fn app_with_proxy() -> (Router, Arc<Edge>) {
    app("127.0.0.1:8080", &["--trusted-proxy", "127.0.0.1", "--cookie-samesite", "lax"])
}

#[tokio::test]
async fn a_trusted_proxy_sets_the_origin_the_cookie_path_and_secure() {
    let (app, _) = app_with_proxy();
    let xfh = HeaderName::from_static("x-forwarded-host");
    let xfp = HeaderName::from_static("x-forwarded-proto");
    let xfx = HeaderName::from_static("x-forwarded-prefix");
    let behind = |peer| {
        get_("/api/signal")
            .upgrade()
            .by_peer(peer)
            .h(header::HOST, "127.0.0.1:8080")
            .h(xfh.clone(), "desk.example.com")
            .h(xfp.clone(), "https")
            .h(xfx.clone(), "/desk/")
            .h(header::ORIGIN, "https://desk.example.com")
    };
    let (status, _, body) = behind("127.0.0.1:40000").to(&app).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains(r#"path: "/desk", secure: true, same_site: Lax"#), "{body}");
    // The same headers from anyone else count for nothing: the origin is not ours.
    assert_eq!(behind("127.0.0.2:40000").to(&app).await.0, StatusCode::FORBIDDEN);
    // Without a proxy the cookie is for the whole host, and not Secure over plain HTTP.
    let (app, _) = self::app("127.0.0.1:8080", &[]);
    let (_, _, body) = get_("/").h(header::HOST, "127.0.0.1:8080").to(&app).await;
    assert!(body.contains(r#"path: "/", secure: false, same_site: Strict"#), "{body}");
    // The public URL names them itself.
    let (app, _) = self::app("127.0.0.1:8080", &["--public-url", "https://desk.example.com/k/"]);
    let (_, _, body) = get_("/").h(header::HOST, "127.0.0.1:8080").to(&app).await;
    assert!(body.contains(r#"path: "/k", secure: true"#), "{body}");
}

#[tokio::test]
async fn over_tls_the_page_is_https_its_cookie_secure_and_http_origins_foreign() {
    let (app, _) = app("127.0.0.1:8443", &[]);
    let tls = |origin| {
        get_("/api/signal")
            .via(Via::Tls)
            .upgrade()
            .h(header::HOST, "127.0.0.1:8443")
            .h(header::ORIGIN, origin)
    };
    let (status, _, body) = tls("https://127.0.0.1:8443").to(&app).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains(r#"path: "/", secure: true"#), "{body}");
    // The same page over plain HTTP is another origin (and another scheme of the same host).
    let (status, _, body) = tls("http://127.0.0.1:8443").to(&app).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("served at https://127.0.0.1:8443"), "{body}");
    // The DNS-rebinding check applies to a loopback HTTPS listener as to a plain one.
    let rebound = get_("/").via(Via::Tls).h(header::HOST, "attacker.example:8443");
    assert_eq!(rebound.to(&app).await.0, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn on_a_unix_socket_the_proxy_in_front_is_believed_and_names_the_host() {
    // No --trusted-proxy: on a 0600 socket only the proxy in front can connect.
    let (app, edge) = app("unix:/run/kelpie/kelpie.sock", &[]);
    let xfh = HeaderName::from_static("x-forwarded-host");
    let xfp = HeaderName::from_static("x-forwarded-proto");
    let xfx = HeaderName::from_static("x-forwarded-prefix");
    let behind = |origin| {
        get_("/api/signal")
            .via(Via::Unix)
            .upgrade()
            // nginx's default Host for a unix: upstream.
            .h(header::HOST, "localhost")
            .h(xfh.clone(), "desk.example.com")
            .h(xfp.clone(), "https")
            .h(xfx.clone(), "/desk/")
            .h(header::ORIGIN, origin)
    };
    let (status, _, body) = behind("https://desk.example.com").h(header::COOKIE, COOKIE).to(&app).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body.contains(r#"path: "/desk", secure: true"#) && body.contains("cookies_count: true"),
        "{body}"
    );
    let (status, _, body) = behind("https://evil.example").to(&app).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("served at https://desk.example.com"), "{body}");
    // Whatever Host the proxy passes is answered: there is no loopback port to rebind to.
    let (status, _, _) = get_("/").via(Via::Unix).h(header::HOST, "anything.example").to(&app).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(edge.counters.host_rejected.load(Ordering::Relaxed), 0);
    // The same headers on a TCP connection from a peer nobody trusts count for nothing.
    let (app, _) = self::app("127.0.0.1:8080", &[]);
    let forged = get_("/api/signal")
        .upgrade()
        .h(header::HOST, "127.0.0.1:8080")
        .h(xfh.clone(), "desk.example.com")
        .h(xfp.clone(), "https")
        .h(header::ORIGIN, "https://desk.example.com");
    assert_eq!(forged.to(&app).await.0, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn allowed_origins_and_the_public_url_may_upgrade() {
    let flags = ["--allow-origin", "https://portal.example.com", "--public-url", "https://desk.example.com/"];
    let (app, _) = app("0.0.0.0:8080", &flags);
    for origin in ["https://portal.example.com", "https://desk.example.com"] {
        let sent = get_("/api/signal").upgrade().h(header::HOST, "10.0.0.5:8080").h(header::ORIGIN, origin);
        assert_eq!(sent.h(header::COOKIE, COOKIE).to(&app).await.0, StatusCode::OK, "{origin}");
    }
    let sent = get_("/api/signal")
        .upgrade()
        .h(header::HOST, "10.0.0.5:8080")
        .h(header::ORIGIN, "https://other.example.com");
    assert_eq!(sent.to(&app).await.0, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let (app, _) = app("127.0.0.1:8080", &["--frame-ancestors", "'self' https://portal.example.com"]);
    let (_, headers, _) = get_("/").h(header::HOST, "localhost:8080").to(&app).await;
    let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(csp.contains("connect-src 'self' ws://localhost:8080 wss://localhost:8080;"), "{csp}");
    assert!(csp.ends_with("frame-ancestors 'self' https://portal.example.com"), "{csp}");
    assert_eq!(headers[header::REFERRER_POLICY], "no-referrer");
    assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
}

#[test]
fn refusals_are_counted_in_the_metrics() {
    let (_, edge) = app("127.0.0.1:8080", &[]);
    edge.counters.host_rejected.fetch_add(2, Ordering::Relaxed);
    let mut out = String::new();
    edge.write_metrics(&mut out);
    assert!(
        out.contains("# TYPE kelpie_origin_rejected_total counter\nkelpie_origin_rejected_total 0\n"),
        "{out}"
    );
    assert!(out.contains("kelpie_host_rejected_total 2\n"), "{out}");
}

//! The TLS listener on real loopback sockets: sniffing, the redirect of plain HTTP, handshakes
//! with a client that trusts the certificate and one that does not, and a certificate change
//! while a connection stays open.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::extract::connect_info::ConnectInfo;
use axum::routing::get;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio_rustls::TlsConnector;

use super::*;
use crate::listener::{Connections, Options, serve};
use crate::tls::{Identity, TlsSetup};

#[test]
fn the_first_byte_tells_tls_from_plain_text() {
    assert_eq!(sniff(0x16), Sniffed::Tls);
    for b in [b'G', b'P', b'\r', 0x80, 0x00] {
        assert_eq!(sniff(b), Sniffed::Plain, "{b:#x}");
    }
}

fn answer(head: &str) -> String {
    String::from_utf8(plain_http_answer(head.as_bytes(), 8443)).unwrap()
}

fn location(a: &str) -> Option<&str> {
    a.lines().find_map(|l| l.strip_prefix("Location: "))
}

#[test]
fn plain_http_is_sent_to_the_same_place_over_https() {
    let a = answer("GET /?token=abc HTTP/1.1\r\nHost: 127.0.0.1:8443\r\nAccept: */*\r\n\r\n");
    assert!(a.starts_with("HTTP/1.1 307 Temporary Redirect\r\n"), "{a}");
    assert_eq!(location(&a), Some("https://127.0.0.1:8443/?token=abc"));
    assert!(a.ends_with("Kelpie serves HTTPS on this port: open https://127.0.0.1:8443/?token=abc\n"), "{a}");
    let len: usize =
        a.split("Content-Length: ").nth(1).unwrap().split("\r\n").next().unwrap().parse().unwrap();
    assert_eq!(a.split("\r\n\r\n").nth(1).unwrap().len(), len);
}

#[test]
fn without_a_usable_host_plain_http_gets_a_message() {
    for head in ["GET / HTTP/1.1\r\n\r\n", "\u{1}\u{2}garbage", ""] {
        let a = answer(head);
        assert!(a.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{head:?}: {a}");
        assert!(location(&a).is_none(), "{a}");
        assert!(a.ends_with("open it with https://, e.g. https://localhost:8443/\n"), "{a}");
        let len: usize =
            a.split("Content-Length: ").nth(1).unwrap().split("\r\n").next().unwrap().parse().unwrap();
        assert_eq!(a.split("\r\n\r\n").nth(1).unwrap().len(), len);
    }
}

/// Serves a small application over TLS with a self-signed certificate for localhost.
async fn start() -> (SocketAddr, Arc<Tls>) {
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let tls = Tls::start(&TlsSetup::SelfSigned { dir: None, names }).unwrap();
    let app = Router::new().route(
        "/",
        get(|ConnectInfo(info): ConnectInfo<ConnInfo>| async move { format!("via {:?}", info.via) }),
    );
    let bound = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = bound.local_addr().unwrap();
    let listener = TlsListener::new(TcpListener(bound), tls.clone());
    let options = Options { header_timeout: Duration::from_secs(5) };
    tokio::spawn(serve(listener, app, Connections::new(16), options, std::future::pending()));
    (addr, tls)
}

/// A client that trusts exactly the certificates of `trusted`.
fn client(trusted: &[&Identity]) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for id in trusted {
        roots.add(id.certified.cert[0].clone()).unwrap();
    }
    let config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

async fn connect(
    addr: SocketAddr,
    connector: &TlsConnector,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await
}

fn served_fingerprint(s: &tokio_rustls::client::TlsStream<TcpStream>) -> [u8; 32] {
    crate::tls::identity::sha256(&s.get_ref().1.peer_certificates().unwrap()[0])
}

/// Sends a kept-alive GET and reads its (short) answer.
async fn get_on<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S) -> String {
    s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&out).contains("via ") {
        let n = tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&out));
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn https_is_served_and_the_request_knows_it_came_over_tls() {
    let (addr, tls) = start().await;
    let id = tls.identity();
    let mut s = connect(addr, &client(&[&id])).await.unwrap();
    assert_eq!(s.get_ref().1.alpn_protocol(), None, "no ALPN asked, none chosen");
    assert_eq!(served_fingerprint(&s), id.fingerprint);
    let answer = get_on(&mut s).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK") && answer.ends_with("via Tls"), "{answer}");
}

#[tokio::test]
async fn plain_http_on_the_https_port_is_redirected_and_counted() {
    let (addr, tls) = start().await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(format!("GET /?token=t HTTP/1.1\r\nHost: localhost:{}\r\n\r\n", addr.port()).as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(3), tcp.read_to_string(&mut out)).await.unwrap().unwrap();
    assert!(out.starts_with("HTTP/1.1 307"), "{out}");
    assert_eq!(location(&out), Some(format!("https://localhost:{}/?token=t", addr.port()).as_str()));
    assert_eq!(tls.counters.plain_http.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_certificate_fails_and_is_counted() {
    let (addr, tls) = start().await;
    let (other, _) = crate::tls::selfsigned::obtain(
        None,
        &["localhost".into()],
        std::time::SystemTime::now(),
        tls.provider(),
    )
    .unwrap();
    let e = connect(addr, &client(&[&other])).await.unwrap_err();
    assert!(e.to_string().contains("invalid peer certificate"), "{e}");
    for _ in 0..100 {
        if tls.counters.handshake_failures.load(Ordering::Relaxed) == 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the failed handshake was not counted");
}

#[tokio::test]
async fn a_new_certificate_is_served_to_new_connections_while_open_ones_go_on() {
    let (addr, tls) = start().await;
    let a = tls.identity();
    let (b, _) = crate::tls::selfsigned::obtain(
        None,
        &["localhost".into()],
        std::time::SystemTime::now(),
        tls.provider(),
    )
    .unwrap();
    let b_fingerprint = b.fingerprint;
    // One client, which remembers sessions to resume them, as browsers do.
    let connector = client(&[&a, &b]);
    let mut old = connect(addr, &connector).await.unwrap();
    assert!(get_on(&mut old).await.ends_with("via Tls"));
    let resumed = connect(addr, &connector).await.unwrap();
    assert_eq!(resumed.get_ref().1.handshake_kind(), Some(rustls::HandshakeKind::Resumed), "sessions resume");
    tls.replace(b);
    let mut new = connect(addr, &connector).await.unwrap();
    assert_eq!(
        new.get_ref().1.handshake_kind(),
        Some(rustls::HandshakeKind::Full),
        "no resumption across a change"
    );
    assert_eq!(served_fingerprint(&new), b_fingerprint, "a new connection gets the new certificate");
    assert!(get_on(&mut new).await.ends_with("via Tls"));
    assert_eq!(served_fingerprint(&old), a.fingerprint);
    assert!(get_on(&mut old).await.ends_with("via Tls"), "the open connection goes on");
    assert_eq!(tls.counters.reloads.load(Ordering::Relaxed), 1);
}

//! The listener on real loopback sockets, with a small application.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::*;

/// Serves a test application; `hold` answers only when `release` is notified.
async fn start(
    max: usize,
    header_timeout_ms: u64,
) -> (SocketAddr, Arc<Connections>, Arc<tokio::sync::Notify>) {
    let release = Arc::new(tokio::sync::Notify::new());
    let r = release.clone();
    let app = Router::new().route("/", get(|| async { "hello" })).route(
        "/hold",
        get(move || {
            let r = r.clone();
            async move {
                r.notified().await;
                "released"
            }
        }),
    );
    let bound = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = bound.local_addr().unwrap();
    let conns = Connections::new(max);
    let options = Options { header_timeout: Duration::from_millis(header_timeout_ms) };
    tokio::spawn(serve(TcpListener(bound), app, conns.clone(), options, std::future::pending()));
    (addr, conns, release)
}

/// Sends a request and reads until the server closes (or 3 s pass); returns what came.
async fn exchange(s: &mut TcpStream, request: &str) -> String {
    s.write_all(request.as_bytes()).await.unwrap();
    read_to_close(s).await
}

async fn read_to_close(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

const GET: &str = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

#[tokio::test]
async fn accepted_connections_do_not_wait_for_acks() {
    let bound = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = bound.local_addr().unwrap();
    let mut listener = TcpListener(bound);
    let client = TcpStream::connect(addr);
    let (accepted, client) = tokio::join!(listener.accept(), client);
    let client = client.unwrap();
    let (io, info) = accepted.unwrap();
    assert!(io.nodelay().unwrap(), "Nagle's algorithm is still on");
    assert_eq!(info.local, Some(addr));
    assert_eq!(info.peer, Some(client.local_addr().unwrap()));
}

#[tokio::test]
async fn headers_that_trickle_past_the_timeout_close_the_connection() {
    let (addr, conns, _) = start(16, 300).await;
    let mut slow = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    for b in b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " {
        if slow.write_all(&[*b]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rest = read_to_close(&mut slow).await;
    let took = started.elapsed();
    assert!(!rest.contains("hello"), "the slow request was answered: {rest}");
    assert!(took < Duration::from_secs(2), "closed after {took:?}");
    assert_eq!(conns.counters.header_timeouts.load(Ordering::Relaxed), 1);
    // An idle kept-alive connection is closed the same way.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    let answer = exchange(&mut idle, "GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(answer.contains("hello"), "{answer}");
    assert_eq!(conns.counters.header_timeouts.load(Ordering::Relaxed), 2);
    // A prompt client is served.
    let mut fast = TcpStream::connect(addr).await.unwrap();
    assert!(exchange(&mut fast, GET).await.starts_with("HTTP/1.1 200 OK"));
}

#[tokio::test]
async fn at_the_cap_the_longest_waiting_connection_makes_room() {
    let (addr, conns, _) = start(2, 10_000).await;
    let mut first = TcpStream::connect(addr).await.unwrap();
    first.write_all(b"GET / HT").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let _second = TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(conns.open(), 2);
    let mut third = TcpStream::connect(addr).await.unwrap();
    assert!(exchange(&mut third, GET).await.starts_with("HTTP/1.1 200 OK"), "the newcomer is served");
    assert_eq!(read_to_close(&mut first).await, "", "the longest waiting was closed without an answer");
    assert_eq!(conns.counters.evicted.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn at_the_cap_with_every_connection_busy_the_newcomer_is_refused() {
    let (addr, conns, release) = start(2, 10_000).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /hold HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
        held.push(s);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut third = TcpStream::connect(addr).await.unwrap();
    let refused = read_to_close(&mut third).await;
    assert!(refused.starts_with("HTTP/1.1 503") && refused.contains("--max-connections"), "{refused}");
    let len: usize =
        refused.split("Content-Length: ").nth(1).unwrap().split("\r\n").next().unwrap().parse().unwrap();
    assert_eq!(refused.split("\r\n\r\n").nth(1).unwrap().len(), len, "the 503 has its whole body");
    assert_eq!(conns.counters.refused.load(Ordering::Relaxed), 1);
    // The busy ones finish normally, and then there is room again.
    release.notify_waiters();
    for s in &mut held {
        assert!(read_to_close(s).await.contains("released"));
    }
    let mut fourth = TcpStream::connect(addr).await.unwrap();
    assert!(exchange(&mut fourth, GET).await.starts_with("HTTP/1.1 200 OK"));
}

#[tokio::test]
async fn serving_ends_after_shutdown_once_requests_finish() {
    let bound = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = bound.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let app = Router::new().route("/", get(|| async { "hello" }));
    let options = Options { header_timeout: Duration::from_secs(10) };
    let served = tokio::spawn(serve(TcpListener(bound), app, Connections::new(8), options, async {
        let _ = rx.await;
    }));
    // A kept-alive connection idles in the server when shutdown comes.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 256];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("hello"));
    tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(2), served).await.expect("serve returned").unwrap();
    assert!(TcpStream::connect(addr).await.is_err(), "the listening socket is closed");
}

#[test]
fn the_file_limit_is_raised_to_the_hard_limit() {
    let soft = raise_fd_limit().unwrap();
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one rlimit into the struct we own.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    assert_eq!((soft, lim.rlim_cur), (lim.rlim_max, lim.rlim_max));
}

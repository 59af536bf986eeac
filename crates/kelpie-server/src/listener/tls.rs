//! HTTPS on the listener's TCP port. [`Listener::open`] peeks at the first byte a client
//! sends: 0x16 (a TLS handshake record) starts the handshake, with the certificate
//! [`Tls`] serves at that moment; anything else is taken for plain HTTP and answered with a
//! redirect to the same address over https:// (or a plain-text message when the request
//! names no usable host), then closed. Either way within the header timeout.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use kelpie_protocol::http::https_location;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::{ConnInfo, Listener, TcpListener, Via};
use crate::tls::Tls;

/// The first byte of every TLS connection: a handshake record (RFC 8446 §5.1).
const TLS_HANDSHAKE: u8 = 0x16;
/// The most of a plain HTTP request read to answer it.
const MAX_PLAIN_HEAD: usize = 8 * 1024;

/// TCP connections that speak TLS.
pub struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    tls: Arc<Tls>,
}

impl std::fmt::Debug for TlsListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsListener").field("tcp", &self.tcp).field("tls", &self.tls).finish_non_exhaustive()
    }
}

impl TlsListener {
    /// Serves `tls`'s certificate on the connections of `tcp`.
    pub fn new(tcp: TcpListener, tls: Arc<Tls>) -> Self {
        Self { tcp, acceptor: TlsAcceptor::from(tls.server_config()), tls }
    }

    /// The TCP address.
    pub fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.tcp.0.local_addr()
    }
}

/// What a connection's first byte says it speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    /// A TLS handshake.
    Tls,
    /// Anything else: plain HTTP, most likely.
    Plain,
}

/// Tells TLS from plain text by the first byte.
pub fn sniff(first: u8) -> Sniffed {
    if first == TLS_HANDSHAKE { Sniffed::Tls } else { Sniffed::Plain }
}

impl Listener for TlsListener {
    type Conn = TcpStream;
    type Io = TlsStream<TcpStream>;

    async fn accept(&mut self) -> io::Result<(Self::Conn, ConnInfo)> {
        let (tcp, info) = self.tcp.accept().await?;
        Ok((tcp, ConnInfo { via: Via::Tls, ..info }))
    }

    fn open(&self, tcp: Self::Conn) -> impl Future<Output = io::Result<Self::Io>> + Send + 'static {
        let acceptor = self.acceptor.clone();
        let tls = self.tls.clone();
        async move {
            let mut first = [0u8; 1];
            if tcp.peek(&mut first).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            match sniff(first[0]) {
                Sniffed::Tls => acceptor.accept(tcp).await.inspect_err(|_| {
                    tls.counters.handshake_failures.fetch_add(1, Ordering::Relaxed);
                }),
                Sniffed::Plain => {
                    tls.counters.plain_http.fetch_add(1, Ordering::Relaxed);
                    answer_plain(tcp).await;
                    Err(io::Error::other(
                        "plain HTTP on the HTTPS port: answered with a redirect to https://",
                    ))
                }
            }
        }
    }

    fn refuse(&self, conn: Self::Conn) {
        // A TLS client could not read a plain answer: closing is all it can be told.
        drop(conn);
    }
}

/// Reads the plain request's head (as much as comes, up to [`MAX_PLAIN_HEAD`]) and answers.
async fn answer_plain(mut tcp: TcpStream) {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while head.len() < MAX_PLAIN_HEAD && !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match tcp.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let port = tcp.local_addr().map_or(0, |a| a.port());
    let _ = tcp.write_all(&plain_http_answer(&head, port)).await;
    let _ = tcp.shutdown().await;
}

/// The answer to a plain HTTP request (its `head`, as much as came) on the HTTPS port `port`:
/// a redirect to the same host and path over https://, or, without a usable `Host`, a
/// message that says to use https://.
pub fn plain_http_answer(head: &[u8], port: u16) -> Vec<u8> {
    let (status, extra, body) = match https_location(head) {
        Some(l) => (
            "307 Temporary Redirect",
            format!("Location: {l}\r\n"),
            format!("Kelpie serves HTTPS on this port: open {l}\n"),
        ),
        None => (
            "400 Bad Request",
            String::new(),
            format!(
                "Kelpie serves HTTPS on this port: open it with https://, e.g. https://localhost:{port}/\n"
            ),
        ),
    };
    format!(
        "HTTP/1.1 {status}\r\n{extra}Content-Type: text/plain; charset=utf-8\r\nCache-Control: no-store\r\n\
         Connection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests;

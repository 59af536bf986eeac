//! The HTTP listener: accepts connections, caps how many are open ([`connections`]), gives
//! each the time a request's headers may take (`--header-timeout`, against slowloris) and
//! serves the application on it with hyper, WebSocket upgrades included. It is generic over
//! the byte stream ([`Listener`]): TCP, TLS over TCP ([`tls`]) or a Unix socket ([`unix`]),
//! as `--listen` ([`addr`]) and `--tls` choose ([`Bound`]). It knows nothing of what the
//! application answers.

pub mod addr;
pub mod connections;
pub mod tls;
pub mod unix;

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::connect_info::ConnectInfo;
use axum::http::{Request, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{mpsc, watch};
use tower::ServiceExt as _;

pub use addr::ListenAddr;
pub use connections::{ConnCounters, Connections, Phase, Slot};
pub use tls::TlsListener;
pub use unix::UnixListener;

/// Both ends of an accepted connection, for handlers (as `ConnectInfo<ConnInfo>`).
#[derive(Debug, Clone, Copy, Default)]
pub struct ConnInfo {
    /// Our address on this connection: the address the browser reached us at (none on a Unix
    /// socket).
    pub local: Option<SocketAddr>,
    /// The peer's address (a reverse proxy's, behind one; none on a Unix socket).
    pub peer: Option<SocketAddr>,
    /// What the connection is.
    pub via: Via,
    /// The TCP socket's descriptor (none on a Unix socket), for what the kernel knows of the
    /// connection (`crate::tcpinfo`). Only read while the connection is open.
    pub tcp_fd: Option<std::os::fd::RawFd>,
}

/// What kind of connection a request came on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Via {
    /// Plain TCP: `http://`.
    #[default]
    Tcp,
    /// TLS over TCP: `https://`.
    Tls,
    /// A Unix socket: a reverse proxy on this machine, the only one able to connect.
    Unix,
}

/// A source of connections to serve HTTP on.
pub trait Listener: Send + 'static {
    /// A connection as accepted.
    type Conn: Send + 'static;
    /// The byte stream HTTP is spoken on.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// The next connection. Quick: it runs in the accept loop.
    fn accept(&mut self) -> impl Future<Output = io::Result<(Self::Conn, ConnInfo)>> + Send;

    /// Makes an accepted connection ready for HTTP (a TLS handshake, say), in the
    /// connection's own task and within the header timeout.
    fn open(&self, conn: Self::Conn) -> impl Future<Output = io::Result<Self::Io>> + Send + 'static;

    /// Closes a connection refused at the cap, telling the client if it can.
    fn refuse(&self, conn: Self::Conn);
}

/// TCP, with `TCP_NODELAY` on every accepted connection. Video over the WebSocket transport
/// goes out one frame per write: with Nagle's algorithm the last, partial segment of each
/// frame would wait for the ACK of the segments before it, a round trip (or a delayed ACK)
/// added to every frame on a real network.
#[derive(Debug)]
pub struct TcpListener(pub tokio::net::TcpListener);

impl Listener for TcpListener {
    type Conn = tokio::net::TcpStream;
    type Io = tokio::net::TcpStream;

    async fn accept(&mut self) -> io::Result<(Self::Conn, ConnInfo)> {
        let (tcp, peer) = self.0.accept().await?;
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY on a connection: {e}");
        }
        if let Err(e) = crate::limits::limit_unsent(&tcp) {
            tracing::debug!("cannot set TCP_NOTSENT_LOWAT on a connection: {e}");
        }
        let info = ConnInfo {
            local: tcp.local_addr().ok(),
            peer: Some(peer),
            via: Via::Tcp,
            tcp_fd: Some(std::os::fd::AsRawFd::as_raw_fd(&tcp)),
        };
        Ok((tcp, info))
    }

    fn open(&self, conn: Self::Conn) -> impl Future<Output = io::Result<Self::Io>> + Send + 'static {
        std::future::ready(Ok(conn))
    }

    fn refuse(&self, conn: Self::Conn) {
        // A fresh socket's send buffer is empty: this never blocks, and a short write only
        // loses the courtesy.
        let _ = conn.try_write(REFUSED);
    }
}

const REFUSED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 1\r\n\
Content-Type: text/plain\r\nContent-Length: 69\r\n\r\n\
Kelpie has too many connections open (--max-connections); try again.\n";

/// A bound listener of the kind `--listen` and `--tls` chose.
#[derive(Debug)]
pub enum Bound {
    /// Plain HTTP over TCP.
    Tcp(TcpListener),
    /// HTTPS.
    Tls(TlsListener),
    /// Plain HTTP on a Unix socket.
    Unix(UnixListener),
}

impl Bound {
    /// Where it listens.
    pub fn addr(&self) -> io::Result<ListenAddr> {
        Ok(match self {
            Self::Tcp(l) => ListenAddr::Tcp(l.0.local_addr()?),
            Self::Tls(l) => ListenAddr::Tcp(l.local_addr()?),
            Self::Unix(l) => ListenAddr::Unix(l.path().to_path_buf()),
        })
    }

    /// Whether browsers reach it with https://.
    pub fn is_tls(&self) -> bool {
        matches!(self, Self::Tls(_))
    }

    /// [`serve`]s on it.
    pub async fn serve(
        self,
        app: Router,
        conns: Arc<Connections>,
        options: Options,
        shutdown: impl Future<Output = ()> + Send,
    ) {
        match self {
            Self::Tcp(l) => serve(l, app, conns, options, shutdown).await,
            Self::Tls(l) => serve(l, app, conns, options, shutdown).await,
            Self::Unix(l) => serve(l, app, conns, options, shutdown).await,
        }
    }
}

/// How connections are served.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Time a client has to send a request's headers; also how long a kept-alive connection
    /// may wait for its next request.
    pub header_timeout: Duration,
}

/// Serves `app` on the connections of `listener` until `shutdown` resolves, then lets the
/// requests in progress finish. Upgraded connections (WebSockets) are the application's.
pub async fn serve<L: Listener>(
    mut listener: L,
    app: Router,
    conns: Arc<Connections>,
    options: Options,
    shutdown: impl Future<Output = ()> + Send,
) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(options.header_timeout);
    let (stop_tx, stop_rx) = watch::channel(false);
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            r = listener.accept() => r,
        };
        let (conn, info) = match accepted {
            Ok(c) => c,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // Out of file descriptors, say: wait for some to be given back.
                tracing::warn!("cannot accept a connection: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let Some(slot) = conns.admit(Instant::now()) else {
            tracing::debug!(peer = ?info.peer, "connection refused: --max-connections reached");
            listener.refuse(conn);
            continue;
        };
        let opening = listener.open(conn);
        let served = Served { app: app.clone(), http: http.clone(), info, slot, options };
        tokio::spawn(served.run(opening, stop_rx.clone(), alive_tx.clone()));
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(alive_tx);
    // Every connection task holds a sender: this ends when the last one has finished.
    let _ = alive_rx.recv().await;
}

/// Errors of one connection that `accept` reports; the listener itself is fine.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

/// One connection being served.
struct Served {
    app: Router,
    http: http1::Builder,
    info: ConnInfo,
    slot: Arc<Slot>,
    options: Options,
}

impl Served {
    async fn run<Io: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
        self,
        opening: impl Future<Output = io::Result<Io>>,
        mut stop: watch::Receiver<bool>,
        _alive: mpsc::Sender<()>,
    ) {
        let Self { app, http, info, slot, options } = self;
        let counters = slot.counters();
        let io = tokio::select! {
            r = tokio::time::timeout(options.header_timeout, opening) => match r {
                Ok(Ok(io)) => io,
                Ok(Err(e)) => return tracing::debug!(peer = ?info.peer, "connection not opened: {e}"),
                Err(_) => {
                    counters.header_timeouts.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            },
            () = slot.evicted() => return,
        };
        let io = TokioIo::new(Tracked { io, _slot: slot.clone() });
        let service_slot = slot.clone();
        let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(info));
            service_slot.set_phase(Phase::Busy, Instant::now());
            let slot = service_slot.clone();
            let answer = app.clone().oneshot(req);
            async move {
                let Ok(response) = answer.await;
                let upgraded = response.status() == StatusCode::SWITCHING_PROTOCOLS;
                slot.set_phase(if upgraded { Phase::Upgraded } else { Phase::Waiting }, Instant::now());
                Ok::<_, Infallible>(response)
            }
        });
        let conn = http.serve_connection(io, service).with_upgrades();
        tokio::pin!(conn);
        let result = tokio::select! {
            r = conn.as_mut() => r,
            // Dropping the connection closes it.
            () = slot.evicted() => return tracing::debug!(peer = ?info.peer, "connection closed to make room"),
            () = async { drop(stop.wait_for(|s| *s).await) } => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        };
        match result {
            Err(e) if e.is_timeout() => {
                counters.header_timeouts.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(peer = ?info.peer, "connection closed: no request headers in time");
            }
            Err(e) => tracing::debug!(peer = ?info.peer, "connection ended: {e}"),
            Ok(()) => {}
        }
    }
}

/// A connection's byte stream, holding its [`Slot`]: the slot is given back when the
/// stream closes, after an upgrade too.
struct Tracked<Io> {
    io: Io,
    _slot: Arc<Slot>,
}

impl<Io: AsyncRead + Unpin> AsyncRead for Tracked<Io> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<Io: AsyncWrite + Unpin> AsyncWrite for Tracked<Io> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Raises this process's soft limit of open files to its hard limit, as servers do: each
/// connection is a file descriptor. Returns the limit now in force.
pub fn raise_fd_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one rlimit into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
        // SAFETY: setrlimit reads one rlimit from the struct we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(io::Error::last_os_error());
        }
        lim = raised;
    }
    Ok(lim.rlim_cur)
}

#[cfg(test)]
mod tests;

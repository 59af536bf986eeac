//! The `kelpie` server: wires the display, the video source, the WebRTC transport and the
//! HTTP application together. Libraries below it return typed errors; this crate turns them
//! into one-line messages for the user.

pub mod auth;
pub mod clipboard;
pub mod config;
pub mod control;
pub mod edge;
pub mod files;
pub mod gamepad;
pub mod heartbeat;
pub mod http;
pub mod ice;
pub mod input;
pub mod limits;
pub mod listener;
pub mod monitor;
pub mod outbox;
pub mod pairing;
pub mod prometheus;
pub mod quality;
pub mod record;
pub mod session;
pub mod signal;
pub mod sound;
pub mod tcpinfo;
pub mod tls;
pub mod url_file;
pub mod viewers;
pub mod wsflow;
pub mod wsmedia;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use anyhow::Context as _;
use kelpie_desktop::runtime::RuntimeDir;
use kelpie_desktop::{DesktopEvent, EmbeddedDesktop, XWatch};
use kelpie_media::{EncoderSettings, MediaClock, VideoSource};
use kelpie_webrtc::WebRtc;

pub use config::{AuthMode, Config};

/// Counters of the HTTP side.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Each WebSocket video viewer's bandwidth estimate (bit/s), by its budget key.
    pub ws_estimates: std::sync::Mutex<std::collections::BTreeMap<u64, u64>>,
    /// Frames that waited for a WebSocket viewer's window (one round trip in flight) to open.
    pub ws_window_waits: AtomicU64,
    /// Requests refused for a bad or missing token.
    pub auth_rejected: AtomicU64,
    /// Signalling WebSockets opened.
    pub signal_connections: AtomicU64,
    /// Signalling messages dropped as malformed, oversized or unusable.
    pub signal_rejected: AtomicU64,
    /// Input messages from viewers without control.
    pub input_rejected: AtomicU64,
    /// Keyframe requests of view-only viewers without a peer connection (`keyframe`
    /// messages, and those of their video over the WebSocket on falling behind), sooner than
    /// they may ask (those with one are counted by the WebRTC transport).
    pub keyframes_refused: AtomicU64,
    /// Video bytes sent over WebSockets (the frames' changed regions included).
    pub ws_video_bytes: AtomicU64,
    /// Changed regions of video frames sent to viewers (binary messages on the signalling
    /// socket, before each frame over the WebSocket, beside the frames over WebRTC).
    pub regions_sent: AtomicU64,
    /// Frames skipped for WebSocket viewers that fell behind.
    pub ws_frames_dropped: AtomicU64,
    /// Sound bytes sent over WebSockets.
    pub ws_audio_bytes: AtomicU64,
    /// Audio frames not sent to WebSocket viewers because they were too old.
    pub ws_audio_dropped: AtomicU64,
    /// Pairing tickets issued (`pair_ticket`).
    pub pair_tickets: AtomicU64,
    /// Pairing tickets refused, by [`pairing::PairError::ALL`]'s order.
    pub pair_refused: [AtomicU64; pairing::PairError::ALL.len()],
}

impl Metrics {
    /// The counter of tickets refused for `why`.
    pub fn pair_refused(&self, why: pairing::PairError) -> &AtomicU64 {
        let i = pairing::PairError::ALL.iter().position(|e| *e == why).expect("every reason is listed");
        &self.pair_refused[i]
    }
}

/// What every request handler shares.
pub struct AppState {
    /// The access token, or `None` with `--auth none`.
    pub token: Option<String>,
    /// The view-only token, if any.
    pub view_token: Option<String>,
    /// Connected viewers and control.
    pub viewers: viewers::Viewers,
    /// The name of the token cookie (after the port or socket, so that two servers on one
    /// host keep theirs apart).
    pub cookie_name: String,
    /// The video source.
    pub source: Arc<VideoSource>,
    /// The WebRTC transport.
    pub webrtc: WebRtc,
    /// Counters.
    pub metrics: Metrics,
    /// What viewers report of their stream (`viewerstats`), by transport.
    pub quality: quality::Quality,
    /// Size of the served display.
    pub display_size: std::sync::Mutex<(u32, u32)>,
    /// Whether viewers may resize the display.
    pub resize: bool,
    /// Whether the pointer is drawn into the picture.
    pub cursor_in_video: bool,
    /// Keyboard and mouse injection.
    pub input: input::InputService,
    /// The session's sound, when it has any.
    pub audio: Option<Arc<kelpie_media::AudioSource>>,
    /// Clipboard and cursor shape.
    pub clipboard: clipboard::ClipboardHub,
    /// The HTTP edge: origin and host checks, cookie attributes, security headers.
    pub edge: Arc<edge::Edge>,
    /// The open HTTP connections and their cap.
    pub connections: Arc<listener::Connections>,
    /// The video transport every viewer is told to use (`--transport`).
    pub transport: config::Transport,
    /// The STUN and TURN servers handed to viewers with access (`--ice-server`).
    pub ice: ice::IceServers,
    /// The HTTPS certificate and counters, when Kelpie serves HTTPS itself.
    pub tls: Option<Arc<tls::Tls>>,
    /// The session's recordings.
    pub recorder: record::Recorder,
    /// The range bandwidth estimation keeps to.
    pub bitrates: kelpie_media::congestion::BitrateLimits,
    /// The session's gamepads (`--gamepads`), when on and the display is Kelpie's own.
    pub gamepads: Option<kelpie_gamepad::Gamepads>,
    /// File transfer.
    pub files: files::Files,
}

impl AppState {
    /// Whether the server can stream right now; if not, why.
    pub fn health(&self) -> Result<(), String> {
        if let Some(f) = self.source.streams().iter().find_map(|s| s.failure()) {
            return Err(f);
        }
        kelpie_desktop::check_display(self.source.display()).map_err(|e| kelpie_media::error_chain(&e))
    }
}

/// A started server, before it serves.
pub struct Server {
    /// Shared state.
    pub state: Arc<AppState>,
    /// The bound HTTP listener (TCP, TLS or a Unix socket).
    pub listener: listener::Bound,
    /// `--public-url`, for the URL printed for a Unix socket.
    pub public_url: Option<config::PublicUrl>,
    /// The embedded desktop, if Kelpie started one; dropped last.
    pub desktop: Option<EmbeddedDesktop>,
    /// The session's sound server and source; dropped after the desktop.
    pub sound: sound::Sound,
    /// Notices the X server going away.
    pub x_watch: Option<XWatch>,
    /// End the session when the app exits (`--exit-with-app`).
    pub exit_with_app: bool,
    /// The embedded display's private directory (X authority, PulseAudio); dropped last.
    pub runtime: Option<RuntimeDir>,
    /// SIGTERM and SIGINT.
    pub stop_signals: StopSignals,
    /// How HTTP connections are served.
    pub http_options: listener::Options,
}

/// How a session ended, when not by an error.
#[derive(Debug)]
pub enum Ended {
    /// SIGTERM or SIGINT.
    Stopped,
    /// The app exited and `--exit-with-app` was given; Kelpie exits with its code.
    AppExited(std::process::ExitStatus),
}

impl Server {
    /// Sets up the display, the encoders, the UDP and TCP ports. Without an existing display
    /// (`config.existing_display()`), `runtime` is the embedded display's private directory,
    /// whose X authority `XAUTHORITY` names (set before any thread started: see `main`).
    pub async fn start(config: &Config, runtime: Option<RuntimeDir>) -> anyhow::Result<Self> {
        let stop_signals = StopSignals::catch()?;
        match listener::raise_fd_limit() {
            Ok(n) if n < u64::from(config.max_connections) * 2 + 64 => tracing::warn!(
                "only {n} open files are allowed: fewer than --max-connections {} needs; raise \
                 `ulimit -n` (LimitNOFILE= under systemd) or lower --max-connections",
                config.max_connections
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!("cannot raise the open-file limit: {e}"),
        }
        limits::bound_allocator();
        config.check().map_err(anyhow::Error::msg)?;
        let tls_setup = config.tls_setup().map_err(anyhow::Error::msg)?;
        let tls = tls_setup.as_ref().map(tls::Tls::start).transpose()?;
        // Bind the ports first: a port in use is the most common mistake, and it is cheaper
        // to find out before starting an X server.
        let listener = match &config.listen {
            listener::ListenAddr::Tcp(addr) => {
                let tcp =
                    listener::TcpListener(tokio::net::TcpListener::bind(addr).await.with_context(|| {
                        format!("cannot listen on {addr}; choose another address or port with --listen")
                    })?);
                match &tls {
                    Some(tls) => listener::Bound::Tls(listener::TlsListener::new(tcp, tls.clone())),
                    None => listener::Bound::Tcp(tcp),
                }
            }
            listener::ListenAddr::Unix(path) => {
                let group = config.listen_group.as_deref().map(listener::unix::group_id).transpose()?;
                listener::Bound::Unix(listener::UnixListener::bind(path, group)?)
            }
        };
        // The token files are read once, now, before anything is started.
        let token = match config.auth {
            AuthMode::None => None,
            AuthMode::Token => Some(config.token()?.unwrap_or_else(auth::random_token)),
        };
        let view_token = config.view_token()?;
        config::check_tokens(config.auth, token.as_deref(), view_token.as_deref())
            .map_err(anyhow::Error::msg)?;
        let ice = config.ice()?;
        let recorder = record::Recorder::new(record::RecordConfig {
            always: config.record.clone(),
            on_demand: config.record_dir.clone(),
            limits: record::limits(config.record_max_size, config.record_max_time),
        })?;
        let files = files::Files::new(&config.files, std::env::var_os("HOME").map(std::path::PathBuf::from))?;
        let runtime = match (config.existing_display(), runtime) {
            (Some(_), _) => None,
            (None, Some(r)) => Some(r),
            (None, None) => anyhow::bail!(
                "the embedded display needs its private runtime directory, made before the async \
                 runtime starts (kelpie_desktop::runtime::RuntimeDir, as in the kelpie binary's main)"
            ),
        };
        if config.exit_with_app && config.existing_display().is_some() {
            anyhow::bail!(
                "--exit-with-app needs an app Kelpie starts: give --app and leave out --display \
                 (and unset DISPLAY)"
            );
        }
        // One timeline for the session's video and sound: their pts are directly comparable.
        let clock = MediaClock::new();
        let sound = sound::Sound::start(config, runtime.as_ref().map(RuntimeDir::path), clock);
        if config.monitors > 1 && config.resize == config::ResizeMode::On {
            anyhow::bail!(
                "--resize on needs one monitor: with --monitors 2 each browser window shows half \
                 of a screen of fixed size; leave out --resize or --monitors"
            );
        }
        // With several monitors the screen holds them side by side, each --size.
        let screen_width = config.size.width * config.monitors;
        let gamepads = gamepad::start(config, runtime.as_ref().map(RuntimeDir::path))?;
        let mut app_env = sound.env();
        app_env.extend(gamepads.as_ref().map(gamepad::app_env).unwrap_or_default());
        let desktop = match &runtime {
            None => None,
            Some(runtime) => Some(
                EmbeddedDesktop::start_with_env(
                    screen_width,
                    config.size.height,
                    match config.resize {
                        _ if config.monitors > 1 => (screen_width, config.size.height),
                        config::ResizeMode::Off => (config.size.width, config.size.height),
                        _ => (config.max_size.width, config.max_size.height),
                    },
                    config.app.as_deref(),
                    app_env,
                    runtime.x_authority(),
                )
                .context("cannot start the embedded display")?,
            ),
        };
        let display = match (&desktop, config.existing_display()) {
            (Some(d), _) => d.display().to_string(),
            (None, Some(d)) => {
                kelpie_desktop::check_display(&d)?;
                d
            }
            (None, None) => unreachable!("either a display was given or one was started"),
        };
        let settings = EncoderSettings {
            fps: config.fps,
            bitrate_kbps: config.bitrate,
            threads: match config.encoder_threads {
                0 => auto_encoder_threads(std::thread::available_parallelism().map_or(2, |n| n.get() as u32)),
                n => n,
            },
            cursor_in_video: config.cursor_in_video,
            delta_frames: config.delta_frames == config::Switch::On,
        };
        let source = Arc::new(
            VideoSource::new(&display, &config.encoder, settings, clock)?.with_monitors(config.monitors)?,
        );
        let display_size = {
            use x11rb::connection::Connection as _;
            let (conn, screen) = x11rb::connect(Some(&display)).context("cannot query the display size")?;
            let s = &conn.setup().roots[screen];
            (u32::from(s.width_in_pixels), u32::from(s.height_in_pixels))
        };
        let webrtc = if config.transport == config::Transport::Websocket {
            tracing::info!(
                "WebRTC is off (--transport websocket): no UDP port is open, video goes over the WebSocket"
            );
            if config.udp_port.is_some() || config.public_ip.is_some() {
                tracing::warn!("--udp-port and --public-ip are not used with --transport websocket");
            }
            WebRtc::off()
        } else {
            WebRtc::start(
                config.udp_addr().map_err(anyhow::Error::msg)?,
                config.public_ip,
                source.clone(),
                sound.source.clone(),
                config.av_sync == config::Switch::On,
                config.bitrate_limits(),
            )
            .await?
        };
        if config.auth == AuthMode::None {
            tracing::warn!(
                "access control is OFF (--auth none): anyone who can reach {} can see and use this desktop",
                config.listen
            );
        }
        let local = listener.addr()?;
        let cookie_name = match &local {
            listener::ListenAddr::Tcp(a) => auth::cookie_name(a.port()),
            listener::ListenAddr::Unix(path) => socket_cookie_name(path),
        };
        let edge = Arc::new(edge::Edge::new(config, &local, cookie_name.clone()));
        let state = Arc::new(AppState {
            token,
            view_token,
            viewers: viewers::Viewers::new(
                config.shared_control,
                std::time::Duration::from_secs(config.control_idle),
                config.max_viewers as usize,
                limits::queue_budget(config.clipboard_max),
            ),
            cookie_name,
            source,
            webrtc,
            metrics: Metrics::default(),
            quality: quality::Quality::default(),
            display_size: std::sync::Mutex::new(display_size),
            cursor_in_video: config.cursor_in_video,
            resize: match config.resize {
                _ if config.monitors > 1 => false,
                config::ResizeMode::On => true,
                config::ResizeMode::Off => false,
                config::ResizeMode::Auto => desktop.is_some(),
            },
            input: input::InputService::start(display.clone()),
            audio: sound.source.clone(),
            clipboard: clipboard::ClipboardHub::new(
                config.clipboard,
                config.clipboard_max,
                config.view_clipboard,
            ),
            edge,
            connections: listener::Connections::new(config.max_connections as usize),
            transport: config.transport,
            bitrates: config.bitrate_limits(),
            ice,
            tls,
            recorder,
            gamepads,
            files,
        });
        state.recorder.start(&state).await?;
        gamepad::wire(&state);
        clipboard::start(&state, &display);
        if desktop.is_some() {
            monitor::keep_randr(&state, &display, config.monitors);
        }
        let x_watch = XWatch::start(&display)
            .inspect_err(|e| tracing::warn!("cannot watch the X server: {}", kelpie_media::error_chain(e)))
            .ok();
        let http_options =
            listener::Options { header_timeout: std::time::Duration::from_secs(config.header_timeout) };
        Ok(Self {
            state,
            listener,
            public_url: config.public_url.clone(),
            desktop,
            sound,
            x_watch,
            exit_with_app: config.exit_with_app,
            runtime,
            stop_signals,
            http_options,
        })
    }

    /// The URL a user opens, with the token if there is one.
    pub fn url(&self) -> String {
        let addr = self.listener.addr().expect("a bound listener has an address");
        start_url(&addr, self.listener.is_tls(), self.public_url.as_ref(), self.state.token.as_deref())
    }

    /// The served certificate, when Kelpie serves HTTPS.
    pub fn certificate(&self) -> Option<Arc<tls::Identity>> {
        self.state.tls.as_ref().map(|t| t.identity())
    }

    /// Serves until SIGINT or SIGTERM, or until the session cannot go on: the X server or
    /// the private PulseAudio exited (an error), or, with `--exit-with-app`, the app exited.
    /// Viewers still connected get 3 s to be closed.
    pub async fn serve(self) -> anyhow::Result<Ended> {
        let Self {
            state,
            listener,
            public_url: _,
            mut desktop,
            mut sound,
            x_watch,
            exit_with_app,
            runtime,
            mut stop_signals,
            http_options,
        } = self;
        let app = http::app(state.clone());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let files_watch = tokio::spawn(files::watch(state.clone()));
        let mut http = tokio::spawn(listener.serve(app, state.connections.clone(), http_options, async {
            let _ = stop_rx.await;
        }));
        let ending = tokio::select! {
            () = stop_signals.recv() => Ok(Ended::Stopped),
            e = watch_session(&mut desktop, &mut sound, x_watch.as_ref(), exit_with_app) => e,
            r = &mut http => Err(match r {
                Ok(()) => anyhow::anyhow!("the HTTP server stopped"),
                Err(e) => anyhow::Error::new(e).context("the HTTP server failed"),
            }),
        };
        let _ = stop_tx.send(());
        files_watch.abort();
        // Recordings end first: their files are finished while the encoder still runs.
        state.recorder.stop_all().await;
        if !http.is_finished()
            && tokio::time::timeout(std::time::Duration::from_secs(3), &mut http).await.is_err()
        {
            http.abort();
        }
        drop(state);
        drop(desktop);
        drop(sound);
        drop(runtime);
        ending
    }
}

/// The URL a user opens on a server listening at `addr`: `http(s)://ADDRESS:PORT/`, or for a
/// Unix socket the `--public-url` the proxy serves it at (else `http+unix://` and the socket's
/// path, for programs), with `?token=` if there is a token.
fn start_url(
    addr: &listener::ListenAddr,
    https: bool,
    public: Option<&config::PublicUrl>,
    token: Option<&str>,
) -> String {
    let base = match (addr, public) {
        (listener::ListenAddr::Tcp(a), _) => {
            let host = match a.ip() {
                ip if ip.is_unspecified() => "127.0.0.1".to_string(),
                std::net::IpAddr::V6(ip) => format!("[{ip}]"),
                ip => ip.to_string(),
            };
            format!("{}://{host}:{}/", if https { "https" } else { "http" }, a.port())
        }
        (listener::ListenAddr::Unix(_), Some(p)) => {
            format!("{}{}", p.origin, if p.path == "/" { "/".to_string() } else { format!("{}/", p.path) })
        }
        (listener::ListenAddr::Unix(path), None) => {
            let encoded: String = path
                .to_string_lossy()
                .bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                        char::from(b).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect();
            format!("http+unix://{encoded}/")
        }
    };
    match token {
        Some(t) => format!("{base}?token={t}"),
        None => base,
    }
}

/// The token cookie's name for a server on the Unix socket `path`: after a hash of the path,
/// as a TCP server's is after its port.
fn socket_cookie_name(path: &std::path::Path) -> String {
    // FNV-1a: short, and the same for the same path on every run.
    let hash = path
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(*b)).wrapping_mul(0x0100_0193));
    format!("kelpie_token_u{hash:08x}")
}

/// Watches the processes the session depends on, ten times a second.
async fn watch_session(
    desktop: &mut Option<EmbeddedDesktop>,
    sound: &mut sound::Sound,
    x_watch: Option<&XWatch>,
    exit_with_app: bool,
) -> anyhow::Result<Ended> {
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(100));
    loop {
        tick.tick().await;
        match desktop.as_mut().and_then(EmbeddedDesktop::poll) {
            Some(DesktopEvent::XServerExited(how)) => {
                anyhow::bail!("{how}: the display is gone, so the session is over (start Kelpie again)")
            }
            Some(DesktopEvent::AppExited(status)) if exit_with_app => {
                tracing::info!(
                    "the app {}: ending the session (--exit-with-app)",
                    kelpie_desktop::describe(status)
                );
                return Ok(Ended::AppExited(status));
            }
            Some(DesktopEvent::AppExited(status)) => tracing::info!(
                "the app {}; the desktop stays up (--exit-with-app would end the session)",
                kelpie_desktop::describe(status)
            ),
            None => {}
        }
        if let Some(how) = sound.pulse.as_mut().and_then(kelpie_desktop::pulse::Pulse::poll_exit) {
            anyhow::bail!(
                "{how}: the session's sound server is gone, so Kelpie stops (start it again, or \
                 run without sound with --audio off)"
            );
        }
        if let Some(how) = x_watch.and_then(XWatch::lost) {
            anyhow::bail!("{how}: the display is gone, so the session is over");
        }
    }
}

/// SIGTERM and SIGINT, caught from the start of [`Server::start`]: one that comes before
/// Kelpie serves (it printed its URL, a script may stop it at once) still ends it cleanly.
pub struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn catch() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            term: signal(SignalKind::terminate()).context("cannot catch SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot catch SIGINT")?,
        })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {},
            _ = self.int.recv() => {},
        }
        tracing::info!("shutting down");
    }
}

/// Encoder threads for `--encoder-threads 0` on a machine with `cores`: all but one core, at
/// most 4. The remaining core is for the application being shown, the X server, capture and
/// the network; on 2 cores a single encoder thread measured cheaper, with more frames shown
/// and no worse latency, than two slices fighting the application for the cores
/// (docs/benchmarks.md).
fn auto_encoder_threads(cores: u32) -> u32 {
    cores.saturating_sub(1).clamp(1, 4)
}

#[cfg(test)]
mod tests {
    use super::{auto_encoder_threads, listener::ListenAddr, socket_cookie_name, start_url};

    #[test]
    fn start_urls_name_the_scheme_address_and_token() {
        let url = |listen: &str, https, public: Option<&str>, token| {
            let public = public.map(|p| crate::config::PublicUrl::parse(p).unwrap());
            start_url(&ListenAddr::parse(listen).unwrap(), https, public.as_ref(), token)
        };
        assert_eq!(url("127.0.0.1:8080", false, None, Some("t")), "http://127.0.0.1:8080/?token=t");
        assert_eq!(url("0.0.0.0:8443", true, None, Some("t")), "https://127.0.0.1:8443/?token=t");
        assert_eq!(url("[::1]:8443", true, None, None), "https://[::1]:8443/");
        assert_eq!(url("[::]:1", false, None, None), "http://127.0.0.1:1/");
        assert_eq!(
            url("unix:/run/kelpie/k.sock", false, Some("https://desk.example.com/k/"), Some("t")),
            "https://desk.example.com/k/?token=t"
        );
        assert_eq!(
            url("unix:/run/k.sock", false, Some("https://desk.example.com"), None),
            "https://desk.example.com/"
        );
        assert_eq!(
            url("unix:/run/kelpie/k.sock", false, None, Some("t")),
            "http+unix://%2Frun%2Fkelpie%2Fk.sock/?token=t"
        );
    }

    #[test]
    fn socket_cookies_are_named_after_the_path() {
        let a = socket_cookie_name(std::path::Path::new("/run/a.sock"));
        assert_eq!(a, socket_cookie_name(std::path::Path::new("/run/a.sock")));
        assert_ne!(a, socket_cookie_name(std::path::Path::new("/run/b.sock")));
        assert!(a.starts_with("kelpie_token_u") && a.len() == "kelpie_token_u".len() + 8, "{a}");
    }

    #[test]
    fn auto_encoder_threads_leave_a_core_for_the_desktop() {
        assert_eq!(auto_encoder_threads(1), 1);
        assert_eq!(auto_encoder_threads(2), 1);
        assert_eq!(auto_encoder_threads(4), 3);
        assert_eq!(auto_encoder_threads(64), 4);
    }
}

//! Command-line flags and their `KELPIE_*` environment variables.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use clap::{Parser, ValueEnum};
use kelpie_protocol::http::{Origin, is_token_text};

pub use crate::edge::{IpNet, PublicUrl, SameSite};
pub use crate::listener::ListenAddr;
use crate::tls::TlsSetup;

use crate::ice::{IceServers, IceUrl, TurnAuth};

/// Kelpie: a low-latency remote desktop for X11 displays, in the browser.
///
/// With no --display (and no $DISPLAY) Kelpie starts its own Xvfb with a demo desktop (or
/// --app) and stops it on exit. Every flag can also be set with the environment variable
/// shown beside it.
#[derive(Debug, Clone, Parser)]
#[command(name = "kelpie", version, about, long_about = None)]
pub struct Config {
    /// X display to serve, e.g. :0. Default: $DISPLAY, else an embedded Xvfb.
    #[arg(long, env = "KELPIE_DISPLAY")]
    pub display: Option<String>,

    /// Size of the embedded display, WIDTHxHEIGHT.
    #[arg(long, env = "KELPIE_SIZE", default_value = "1920x1080", value_parser = parse_size)]
    pub size: Size,

    /// Let the remote display follow the browser window's size (RandR): auto = on for the
    /// embedded display, off for an existing one.
    #[arg(long, env = "KELPIE_RESIZE", value_enum, default_value_t = ResizeMode::Auto)]
    pub resize: ResizeMode,

    /// Monitors side by side on the display, 1 or 2: with 2 the embedded display is twice
    /// --size wide, each half its own stream, and a second browser window (?monitor=2) shows
    /// the right half. Browser resizing is off with 2.
    #[arg(long, env = "KELPIE_MONITORS", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=2))]
    pub monitors: u32,

    /// Largest size the display may be resized to, WIDTHxHEIGHT.
    #[arg(long, env = "KELPIE_MAX_SIZE", default_value = "3840x2160", value_parser = parse_size)]
    pub max_size: Size,

    /// Draw the remote pointer into the video instead of showing it as the browser's cursor
    /// (for recordings and screenshots; the pointer then moves with network delay).
    #[arg(long, env = "KELPIE_CURSOR_IN_VIDEO")]
    pub cursor_in_video: bool,

    /// Program to run on the embedded display instead of the demo desktop (a shell command).
    #[arg(long, env = "KELPIE_APP")]
    pub app: Option<String>,

    /// End the session when the app exits (--app, or the demo desktop's terminal), with the
    /// app's exit code: for batch jobs. Needs the embedded display.
    #[arg(long, env = "KELPIE_EXIT_WITH_APP")]
    pub exit_with_app: bool,

    /// Address and port for HTTP and signalling, or unix:/PATH for a Unix socket (mode 0600)
    /// that a reverse proxy on this machine forwards to.
    #[arg(long, env = "KELPIE_LISTEN", default_value = "127.0.0.1:8080", value_parser = ListenAddr::parse)]
    pub listen: ListenAddr,

    /// With --listen unix:, give the socket to this group (a name or number) with mode 0660
    /// instead of 0600, for a reverse proxy that runs as another user in that group.
    #[arg(long, env = "KELPIE_LISTEN_GROUP")]
    pub listen_group: Option<String>,

    /// UDP port for WebRTC media of every viewer. Default: the --listen port number (with a
    /// Unix socket: any free port, on every interface).
    #[arg(long, env = "KELPIE_UDP_PORT")]
    pub udp_port: Option<u16>,

    /// Serve HTTPS with a certificate Kelpie makes for this machine's names (self-signed; its
    /// SHA-256 fingerprint is printed beside the URL), or not at all (off). --tls-cert serves
    /// HTTPS with your certificate instead.
    #[arg(long, env = "KELPIE_TLS", value_enum)]
    pub tls: Option<TlsMode>,

    /// Serve HTTPS with this PEM certificate chain (end-entity first), read again when it
    /// changes; needs --tls-key.
    #[arg(long, env = "KELPIE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The PEM private key of --tls-cert (PKCS#8, RSA or EC, unencrypted), read again when it
    /// changes.
    #[arg(long, env = "KELPIE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Keep the self-signed certificate and its key (0600) in this directory (0700, created if
    /// missing), so that its fingerprint stays the same across restarts.
    #[arg(long, env = "KELPIE_TLS_DIR")]
    pub tls_dir: Option<PathBuf>,

    /// Another DNS name or IP address for the self-signed certificate (besides localhost, the
    /// host name, the listen address, --public-url's host and --public-ip). Repeatable;
    /// comma-separated in the variable.
    #[arg(long, env = "KELPIE_TLS_NAME", value_delimiter = ',', value_parser = parse_tls_name)]
    pub tls_name: Vec<String>,

    /// Address put in ICE candidates, for servers behind 1:1 NAT (e.g. a Kubernetes node IP).
    #[arg(long, env = "KELPIE_PUBLIC_IP")]
    pub public_ip: Option<IpAddr>,

    /// How video reaches every viewer: auto (WebRTC, falling back to the WebSocket after 4 s),
    /// webrtc (no fallback), or websocket (no UDP port at all: for networks that carry only
    /// HTTP). The page's ?transport= overrides it, except that nothing brings WebRTC back
    /// when this is websocket.
    #[arg(long, env = "KELPIE_TRANSPORT", value_enum, default_value_t = Transport::Auto)]
    pub transport: Transport,

    /// A STUN or TURN server for the browsers' WebRTC: stun:HOST[:PORT],
    /// turn:HOST[:PORT][?transport=udp|tcp] or turns:HOST[:PORT]. Repeatable;
    /// comma-separated in the variable. TURN servers need --turn-secret or --turn-user.
    #[arg(long = "ice-server", env = "KELPIE_ICE_SERVER", value_name = "URL", value_delimiter = ',', value_parser = IceUrl::parse)]
    pub ice_servers: Vec<IceUrl>,

    /// User name for the TURN servers, the same for every viewer (with --turn-password).
    #[arg(long, env = "KELPIE_TURN_USER", requires = "turn_password", conflicts_with = "turn_secret")]
    pub turn_user: Option<String>,

    /// Password for the TURN servers (with --turn-user). Every viewer with access gets it.
    #[arg(long, env = "KELPIE_TURN_PASSWORD", hide_env_values = true, requires = "turn_user")]
    pub turn_password: Option<String>,

    /// The secret shared with the TURN servers (coturn: use-auth-secret, static-auth-secret):
    /// each viewer gets its own user name and password, valid for --turn-ttl. Prefer the
    /// variable: a flag shows in the process list.
    #[arg(long, env = "KELPIE_TURN_SECRET", hide_env_values = true)]
    pub turn_secret: Option<String>,

    /// Seconds a viewer's TURN credentials from --turn-secret work. A relayed connection
    /// that outlives them breaks when the browser next refreshes its allocation (within 10
    /// minutes) and reconnects with new ones.
    #[arg(long, env = "KELPIE_TURN_TTL", default_value_t = 86_400, value_parser = clap::value_parser!(u64).range(1..=30 * 86_400))]
    pub turn_ttl: u64,

    /// Which ICE candidates browsers may use: all, or relay (all media through the TURN
    /// server, for sites that allow nothing else).
    #[arg(long, env = "KELPIE_ICE_TRANSPORT", value_enum, default_value_t = IceTransport::All)]
    pub ice_transport: IceTransport,

    /// Access token. Default: a random one, printed in the URL at start.
    #[arg(long, env = "KELPIE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// A second token that lets viewers watch but not type or click.
    #[arg(long, env = "KELPIE_VIEW_TOKEN", hide_env_values = true)]
    pub view_token: Option<String>,

    /// Read the access token from this file (read once at start; a trailing newline is
    /// dropped): unlike --token, it shows in no process list or environment.
    #[arg(long, env = "KELPIE_TOKEN_FILE", conflicts_with = "token")]
    pub token_file: Option<PathBuf>,

    /// Read the view-only token from this file, as --token-file.
    #[arg(long, env = "KELPIE_VIEW_TOKEN_FILE", conflicts_with = "view_token")]
    pub view_token_file: Option<PathBuf>,

    /// Also write the start URL (with the token) into this file, created new with mode 0600
    /// (an existing file is refused), for a portal or script to read.
    #[arg(long, env = "KELPIE_URL_FILE")]
    pub url_file: Option<PathBuf>,

    /// Private directory of the embedded display (X authority, PulseAudio socket), created new
    /// with mode 0700 and removed on exit. Default: a new one with a random name in $TMPDIR.
    #[arg(long, env = "KELPIE_RUNTIME_DIR")]
    pub runtime_dir: Option<PathBuf>,

    /// Let view-only viewers (--view-token) see the remote clipboard too. By default they get
    /// none of it: a view-only link shows the screen, not what was copied.
    #[arg(long, env = "KELPIE_VIEW_CLIPBOARD")]
    pub view_clipboard: bool,

    /// Let every viewer with full access type at once, instead of one controller at a time.
    #[arg(long, env = "KELPIE_SHARED_CONTROL")]
    pub shared_control: bool,

    /// Most viewers (signalling connections, view-only ones included) at once; the next one
    /// is refused with a message saying so.
    #[arg(long, env = "KELPIE_MAX_VIEWERS", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub max_viewers: u32,

    /// Seconds a controller may be idle before another viewer's request takes control.
    #[arg(long, env = "KELPIE_CONTROL_IDLE", default_value_t = 30)]
    pub control_idle: u64,

    /// Access control: a token (default) or none (anyone who can reach the port gets in).
    #[arg(long, env = "KELPIE_AUTH", value_enum, default_value_t = AuthMode::Token)]
    pub auth: AuthMode,

    /// Video encoder: auto, x264 (libx264 driven by Kelpie, with its own rate control: the
    /// default without a GPU encoder), or a GStreamer element (nvh264enc, vah264enc, x264enc,
    /// openh264enc, vp8enc).
    #[arg(long, env = "KELPIE_ENCODER", default_value = "auto")]
    pub encoder: String,

    /// Frame rate cap: at most this many frames per second on average (2 % slack, so that an
    /// application drawing at exactly this rate is captured as it draws). A static screen
    /// sends nothing.
    #[arg(long, env = "KELPIE_FPS", default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=240))]
    pub fps: u32,

    /// Video bitrate in kbit/s: the most a stream is sent at; less when a viewer's path
    /// carries less (bandwidth estimation).
    #[arg(long, env = "KELPIE_BITRATE", default_value_t = 8000, value_parser = clap::value_parser!(u32).range(100..=400_000))]
    pub bitrate: u32,

    /// The least video bitrate in kbit/s bandwidth estimation goes down to: below it the
    /// frame rate falls instead.
    #[arg(long, env = "KELPIE_MIN_BITRATE", default_value_t = 300, value_parser = clap::value_parser!(u32).range(50..=400_000))]
    pub min_bitrate: u32,

    /// The video bitrate in kbit/s a new viewer's path is assumed to carry until its first
    /// feedback (held between --min-bitrate and --bitrate).
    #[arg(long, env = "KELPIE_START_BITRATE", default_value_t = 3000, value_parser = clap::value_parser!(u32).range(50..=400_000))]
    pub start_bitrate: u32,

    /// Encoder threads: 0 picks all cores but one, 1 to 4 (x264 cuts each frame into that many
    /// slices encoded in parallel: lower latency when cores are free, a little more CPU).
    #[arg(long, env = "KELPIE_ENCODER_THREADS", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=4))]
    pub encoder_threads: u32,

    /// Sound from the session's PulseAudio (the embedded display gets a private server).
    #[arg(long, env = "KELPIE_AUDIO", value_enum, default_value_t = Switch::On)]
    pub audio: Switch,

    /// Opus bitrate of the sound in kbit/s.
    #[arg(long, env = "KELPIE_AUDIO_BITRATE", default_value_t = 128, value_parser = clap::value_parser!(u32).range(6..=510))]
    pub audio_bitrate: u32,

    /// While sound plays, video waits as long as the sound takes to reach the browser, so
    /// they stay in sync (WebRTC); off: video is always shown as soon as it is decoded.
    #[arg(long, env = "KELPIE_AV_SYNC", value_enum, default_value_t = Switch::On)]
    pub av_sync: Switch,

    /// Viewers' microphones become the session's default PulseAudio source.
    #[arg(long, env = "KELPIE_MICROPHONE", value_enum, default_value_t = Switch::On)]
    pub microphone: Switch,

    /// The controller's gamepads (up to four) become joysticks /dev/input/js0..3 and event
    /// devices for the programs Kelpie starts (embedded display only), with rumble back.
    #[arg(long, env = "KELPIE_GAMEPADS", value_enum, default_value_t = Switch::On)]
    pub gamepads: Switch,

    /// How programs see the gamepads: uinput (real devices through /dev/uinput), interposer
    /// (LD_PRELOAD, no device needed), auto (uinput where /dev/uinput is writable).
    #[arg(long, env = "KELPIE_GAMEPAD_BACKEND", value_enum, default_value_t = GamepadBackend::Auto)]
    pub gamepad_backend: GamepadBackend,

    /// Clipboard sharing: both ways, only remote → browser, only browser → remote, or off.
    #[arg(long, env = "KELPIE_CLIPBOARD", value_enum, default_value_t = ClipboardMode::Both)]
    pub clipboard: ClipboardMode,

    /// Largest clipboard (text or PNG) passed either way, in bytes.
    #[arg(long, env = "KELPIE_CLIPBOARD_MAX", default_value_t = 16 << 20, value_parser = clap::value_parser!(u64).range(1..=(256 << 20)))]
    pub clipboard_max: u64,

    /// The address browsers use to reach Kelpie when it is not the one it listens on (behind a
    /// reverse proxy), e.g. https://desk.example.com/kelpie/: its origin is allowed, its host
    /// passes the DNS-rebinding check, its path is the cookie's Path, https makes the cookie
    /// Secure.
    #[arg(long, env = "KELPIE_PUBLIC_URL", value_parser = PublicUrl::parse)]
    pub public_url: Option<PublicUrl>,

    /// Another origin whose pages may open the signalling WebSocket (a portal embedding
    /// Kelpie), e.g. https://portal.example.com. Repeatable; comma-separated in the variable.
    #[arg(long, env = "KELPIE_ALLOW_ORIGIN", value_delimiter = ',', value_parser = parse_origin)]
    pub allow_origin: Vec<Origin>,

    /// A reverse proxy (address or CIDR) whose X-Forwarded-Host, X-Forwarded-Proto and
    /// X-Forwarded-Prefix headers are believed. Repeatable; comma-separated in the variable.
    #[arg(long, env = "KELPIE_TRUSTED_PROXY", value_delimiter = ',', value_parser = IpNet::parse)]
    pub trusted_proxy: Vec<IpNet>,

    /// SameSite attribute of the token cookie: strict, or lax for portals that link into
    /// Kelpie from another site.
    #[arg(long, env = "KELPIE_COOKIE_SAMESITE", value_enum, default_value_t = SameSite::Strict)]
    pub cookie_samesite: SameSite,

    /// Who may show Kelpie's page in a frame: the CSP frame-ancestors sources, e.g.
    /// "'self' https://portal.example.com", or 'none'.
    #[arg(long, env = "KELPIE_FRAME_ANCESTORS", default_value = "'self'", value_parser = parse_frame_ancestors)]
    pub frame_ancestors: String,

    /// Most TCP connections open at once (viewers' WebSockets included); past it the
    /// connection waiting longest for a request is closed, or the new one if none waits.
    #[arg(long, env = "KELPIE_MAX_CONNECTIONS", default_value_t = 512, value_parser = clap::value_parser!(u32).range(4..=1_000_000))]
    pub max_connections: u32,

    /// Seconds a client has to send a request's headers (and an idle connection to send its
    /// next request) before the connection is closed.
    #[arg(long, env = "KELPIE_HEADER_TIMEOUT", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub header_timeout: u64,

    /// Record the whole session from the start into MP4 files in this directory (made 0700 if
    /// missing): the live H.264 and sound, not encoded again.
    #[arg(long, env = "KELPIE_RECORD", value_name = "DIR")]
    pub record: Option<std::path::PathBuf>,

    /// Let the viewer with control start and stop recordings from the page, into this
    /// directory.
    #[arg(long, env = "KELPIE_RECORD_DIR", value_name = "DIR")]
    pub record_dir: Option<std::path::PathBuf>,

    /// Start a new recording file after this many MiB (0: no limit).
    #[arg(long, env = "KELPIE_RECORD_MAX_SIZE", default_value_t = 0, value_name = "MIB")]
    pub record_max_size: u64,

    /// Start a new recording file after this many seconds (0: no limit).
    #[arg(long, env = "KELPIE_RECORD_MAX_TIME", default_value_t = 3600, value_name = "SECONDS")]
    pub record_max_time: u64,

    /// File transfer (`--files`, `--upload-dir`, `--download-dir`, `--upload-max`, `--upload`).
    #[command(flatten)]
    pub files: crate::files::FilesArgs,

    /// Log filter (error, warn, info, debug, trace, or a tracing directive list).
    #[arg(long, env = "KELPIE_LOG", default_value = "info")]
    pub log: String,
}

/// `--tls`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TlsMode {
    /// Plain HTTP.
    Off,
    /// HTTPS with a certificate Kelpie makes.
    SelfSigned,
}

/// How video reaches the viewers (`--transport`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Transport {
    /// WebRTC, falling back to the WebSocket when it does not connect within 4 s.
    Auto,
    /// WebRTC only.
    Webrtc,
    /// The WebSocket only: no UDP port is opened.
    Websocket,
}

impl Transport {
    /// As the session info names it.
    pub fn wire(self) -> kelpie_protocol::Transport {
        match self {
            Self::Auto => kelpie_protocol::Transport::Auto,
            Self::Webrtc => kelpie_protocol::Transport::Webrtc,
            Self::Websocket => kelpie_protocol::Transport::Websocket,
        }
    }
}

/// Which ICE candidates browsers may use (`--ice-transport`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IceTransport {
    /// Direct, server-reflexive or relayed: whatever connects.
    All,
    /// Relayed through a TURN server only.
    Relay,
}

/// Whether the display follows the browser window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ResizeMode {
    /// On for the embedded display, off for an existing one.
    Auto,
    /// Always.
    On,
    /// Never: the browser scales the picture.
    Off,
}

/// A feature switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    /// Enabled.
    On,
    /// Disabled.
    Off,
}

/// How programs see the gamepads (`--gamepad-backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GamepadBackend {
    /// uinput where `/dev/uinput` is writable, else the interposer.
    Auto,
    /// The `LD_PRELOAD` interposer only.
    Interposer,
    /// Kernel devices through `/dev/uinput` (an error where it is not writable).
    Uinput,
}

/// Which way the clipboard is shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClipboardMode {
    /// Both ways.
    Both,
    /// Remote clipboard → browser only.
    ToBrowser,
    /// Browser → remote clipboard only.
    ToRemote,
    /// Not at all.
    Off,
}

impl ClipboardMode {
    /// Whether the remote clipboard is sent to viewers.
    pub fn to_browser(self) -> bool {
        matches!(self, Self::Both | Self::ToBrowser)
    }

    /// Whether viewers may set the remote clipboard.
    pub fn to_remote(self) -> bool {
        matches!(self, Self::Both | Self::ToRemote)
    }
}

/// How viewers are let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthMode {
    /// A secret token in the first URL, then a cookie.
    Token,
    /// No access control at all.
    None,
}

/// A display size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

fn parse_size(s: &str) -> Result<Size, String> {
    let (w, h) =
        s.split_once(['x', 'X']).ok_or_else(|| format!("'{s}' is not WIDTHxHEIGHT, e.g. 1920x1080"))?;
    let w: u32 = w.trim().parse().map_err(|_| format!("bad width in '{s}'"))?;
    let h: u32 = h.trim().parse().map_err(|_| format!("bad height in '{s}'"))?;
    if !(64..=8192).contains(&w) || !(64..=8192).contains(&h) {
        return Err(format!("'{s}' is outside 64x64..8192x8192"));
    }
    if !w.is_multiple_of(2) || !h.is_multiple_of(2) {
        return Err(format!("'{s}' must have an even width and height"));
    }
    Ok(Size { width: w, height: h })
}

fn parse_origin(s: &str) -> Result<Origin, String> {
    Origin::parse(s.trim().trim_end_matches('/')).map_err(|e| {
        format!("'{s}' is not an origin ({e}): write scheme://host[:port], e.g. https://portal.example.com")
    })
}

fn parse_tls_name(s: &str) -> Result<String, String> {
    let s = s.trim();
    if crate::tls::selfsigned::is_certificate_name(s) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "'{s}' is not a DNS name or IP address for the certificate, e.g. desk.example.com or 192.0.2.1"
        ))
    }
}

fn parse_frame_ancestors(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| (b' '..=b'~').contains(&b) && b != b';' && b != b',') {
        return Err(format!(
            "'{s}' is not a list of CSP sources: give them separated by spaces, e.g. \"'self' https://portal.example.com\", or 'none'"
        ));
    }
    Ok(s.to_string())
}

impl Config {
    /// Checks what flags cannot check one by one; the error says what to change.
    pub fn check(&self) -> Result<(), String> {
        check_tokens(self.auth, self.token.as_deref(), self.view_token.as_deref())?;
        self.tls_setup()?;
        // A WebSocket-only server binds no UDP port: it needs no address for one.
        if self.transport != Transport::Websocket {
            self.udp_addr()?;
        }
        if self.listen_group.is_some() && self.listen.unix_path().is_none() {
            return Err(
                "--listen-group is for a Unix socket: add --listen unix:/PATH, or leave it out".into()
            );
        }
        Ok(())
    }

    /// How HTTPS is served, if it is: `--tls self-signed` (with `--tls-dir`, `--tls-name`) or
    /// `--tls-cert` with `--tls-key`.
    pub fn tls_setup(&self) -> Result<Option<TlsSetup>, String> {
        let setup = match (self.tls, &self.tls_cert, &self.tls_key) {
            (Some(TlsMode::SelfSigned), Some(_), _) => {
                return Err(
                    "--tls self-signed and --tls-cert both choose the certificate: give one of them".into()
                );
            }
            (Some(TlsMode::Off), Some(_), _) => {
                return Err(
                    "--tls off turns HTTPS off, but --tls-cert asks for it: leave out one of them".into()
                );
            }
            (_, Some(cert), Some(key)) => Some(TlsSetup::Files { cert: cert.clone(), key: key.clone() }),
            (_, Some(_), None) | (_, None, Some(_)) => {
                return Err("--tls-cert and --tls-key go together: give both".into());
            }
            (Some(TlsMode::SelfSigned), None, None) => {
                Some(TlsSetup::SelfSigned { dir: self.tls_dir.clone(), names: self.certificate_names() })
            }
            (Some(TlsMode::Off) | None, None, None) => None,
        };
        let self_signed = matches!(setup, Some(TlsSetup::SelfSigned { .. }));
        if !self_signed && (self.tls_dir.is_some() || !self.tls_name.is_empty()) {
            return Err(
                "--tls-dir and --tls-name are for the certificate Kelpie makes: add --tls self-signed".into(),
            );
        }
        if setup.is_some() && matches!(self.listen, ListenAddr::Unix(_)) {
            return Err("HTTPS on a Unix socket: the reverse proxy in front serves HTTPS (and sends \
                        X-Forwarded-Proto: https); leave out --tls and --tls-cert, or listen on a TCP address"
                .into());
        }
        Ok(setup)
    }

    /// The names a self-signed certificate is made for.
    fn certificate_names(&self) -> Vec<String> {
        let mut extra = Vec::new();
        if let ListenAddr::Tcp(a) = &self.listen
            && !a.ip().is_unspecified()
        {
            extra.push(a.ip().to_string());
        }
        extra.extend(self.public_url.as_ref().map(|p| p.origin.host().to_string()));
        extra.extend(self.public_ip.map(|ip| ip.to_string()));
        extra.extend(self.tls_name.iter().cloned());
        crate::tls::selfsigned::names(crate::tls::selfsigned::hostname().as_deref(), &extra)
    }
}

/// Refuses contradictory or unsafe tokens, whether they came from flags or from files.
pub fn check_tokens(auth: AuthMode, token: Option<&str>, view_token: Option<&str>) -> Result<(), String> {
    if auth == AuthMode::None && view_token.is_some() {
        return Err("--view-token needs access control, but --auth none turns it off: anyone could \
                        type. Leave out --auth none (keep the tokens), or leave out --view-token"
            .into());
    }
    for (flag, token) in [("--token", token), ("--view-token", view_token)] {
        if let Some(t) = token.filter(|t| !is_token_text(t)) {
            let what = if t.is_empty() { "is empty" } else { "has characters a URL or cookie would change" };
            return Err(format!("{flag} {what}: use letters, digits and -._~+/= only"));
        }
    }
    if token.is_some() && token == view_token {
        return Err("--view-token is the same as --token, so it would give full control: choose \
                        another view-only token"
            .into());
    }
    Ok(())
}

impl Config {
    /// The display to serve: --display, else $DISPLAY, else none (start an embedded one).
    pub fn existing_display(&self) -> Option<String> {
        self.display.clone().or_else(|| std::env::var("DISPLAY").ok()).filter(|d| !d.trim().is_empty())
    }

    /// The range bandwidth estimation keeps to.
    pub fn bitrate_limits(&self) -> kelpie_media::congestion::BitrateLimits {
        kelpie_media::congestion::BitrateLimits::from_kbps(self.min_bitrate, self.start_bitrate, self.bitrate)
    }

    /// The UDP address WebRTC binds: the --listen address with --udp-port (default: the same
    /// port number). A Unix socket has no IP address: then every interface (0.0.0.0), with
    /// --udp-port or any free port, and --public-ip is what ICE candidates carry. A
    /// WebSocket-only server (`--transport websocket`) binds none and does not ask.
    pub fn udp_addr(&self) -> Result<SocketAddr, String> {
        match &self.listen {
            ListenAddr::Tcp(a) => Ok(SocketAddr::new(a.ip(), self.udp_port.unwrap_or(a.port()))),
            ListenAddr::Unix(_) if self.public_ip.is_none() => {
                Err("--listen unix: has no IP address for WebRTC's ICE candidates: give the address \
                 browsers reach this machine at with --public-ip (and open --udp-port to them)"
                    .into())
            }
            ListenAddr::Unix(_) => {
                Ok(SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), self.udp_port.unwrap_or(0)))
            }
        }
    }

    /// The STUN and TURN servers handed to viewers, checked against the credentials and the
    /// policy; the error says which flag to add or drop.
    pub fn ice(&self) -> anyhow::Result<IceServers> {
        let auth = match (&self.turn_secret, &self.turn_user, &self.turn_password) {
            (Some(secret), _, _) => TurnAuth::Secret {
                secret: secret.clone(),
                ttl: std::time::Duration::from_secs(self.turn_ttl),
            },
            (None, Some(user), Some(password)) => {
                TurnAuth::Static { user: user.clone(), password: password.clone() }
            }
            _ => TurnAuth::None,
        };
        let policy = match self.ice_transport {
            IceTransport::All => kelpie_protocol::IcePolicy::All,
            IceTransport::Relay => kelpie_protocol::IcePolicy::Relay,
        };
        let ice = IceServers::new(self.ice_servers.clone(), auth, policy).map_err(anyhow::Error::msg)?;
        if self.transport == Transport::Websocket && !ice.is_empty() {
            tracing::warn!("--ice-server is not used with --transport websocket (viewers get no WebRTC)");
        }
        Ok(ice)
    }

    /// The access token: --token, else the content of --token-file, else none.
    pub fn token(&self) -> anyhow::Result<Option<String>> {
        secret(self.token.as_deref(), self.token_file.as_deref(), "--token-file")
    }

    /// The view-only token: --view-token, else the content of --view-token-file, else none.
    pub fn view_token(&self) -> anyhow::Result<Option<String>> {
        secret(self.view_token.as_deref(), self.view_token_file.as_deref(), "--view-token-file")
    }
}

/// A secret given directly, or read from `file` (named by `flag` in errors).
fn secret(direct: Option<&str>, file: Option<&Path>, flag: &str) -> anyhow::Result<Option<String>> {
    use anyhow::Context as _;
    use std::os::unix::fs::MetadataExt as _;
    let Some(path) = file else { return Ok(direct.map(str::to_string)) };
    let shown = path.display();
    let text = std::fs::read_to_string(path).with_context(|| {
        format!("cannot read {shown} ({flag}): give the path of a file holding the token")
    })?;
    let token = text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text);
    if token.is_empty() {
        anyhow::bail!("{shown} ({flag}) is empty: put the token in it");
    }
    if token.contains(['\n', '\r']) {
        anyhow::bail!("{shown} ({flag}) holds more than one line: put only the token in it");
    }
    if let Ok(meta) = std::fs::metadata(path)
        && meta.mode() & 0o004 != 0
    {
        tracing::warn!("{shown} ({flag}) is readable by every user: make it private (chmod 600 {shown})");
    }
    Ok(Some(token.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_reject() {
        assert_eq!(parse_size("1280x720"), Ok(Size { width: 1280, height: 720 }));
        assert!(parse_size("1280").is_err());
        assert!(parse_size("12x720").is_err());
        assert!(parse_size("1281x720").is_err());
    }

    #[test]
    fn every_flag_has_an_environment_variable_and_a_line_in_the_docs() {
        let docs = include_str!("../../../docs/configuration.md");
        let cmd = <Config as clap::CommandFactory>::command();
        for arg in cmd.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if matches!(long, "help" | "version") {
                continue;
            }
            let env = arg.get_env().and_then(|e| e.to_str()).unwrap_or_else(|| panic!("--{long} has no env"));
            assert_eq!(env, format!("KELPIE_{}", long.to_uppercase().replace('-', "_")), "--{long}");
            let line = docs
                .lines()
                .find(|l| l.starts_with(&format!("| `--{long}")))
                .unwrap_or_else(|| panic!("--{long} has no line in docs/configuration.md"));
            assert!(line.contains(&format!("`{env}`")), "the docs line of --{long} lacks {env}");
        }
    }

    #[test]
    fn tokens_come_from_the_flag_or_from_a_file() {
        let dir = std::env::temp_dir().join(format!("kelpie-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = |name: &str, text: &str| {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            p.display().to_string()
        };
        let parse = |args: &[&str]| Config::try_parse_from([&["kelpie"], args].concat());
        let c = parse(&["--token-file", &file("t", "s3cret\n"), "--view-token-file", &file("v", "look\r\n")])
            .unwrap();
        assert_eq!(c.token().unwrap().as_deref(), Some("s3cret"));
        assert_eq!(c.view_token().unwrap().as_deref(), Some("look"));
        assert_eq!(parse(&["--token", "direct"]).unwrap().token().unwrap().as_deref(), Some("direct"));
        assert_eq!(parse(&[]).unwrap().token().unwrap(), None);
        // A file without a final newline is taken whole.
        let c = parse(&["--token-file", &file("n", "plain")]).unwrap();
        assert_eq!(c.token().unwrap().as_deref(), Some("plain"));
        for (text, says) in [("", "is empty"), ("\n", "is empty"), ("a\nb\n", "more than one line")] {
            let e = parse(&["--token-file", &file("bad", text)]).unwrap().token().unwrap_err().to_string();
            assert!(e.contains(says) && e.contains("--token-file"), "{e}");
        }
        let missing = dir.join("missing").display().to_string();
        let e = format!("{:#}", parse(&["--view-token-file", &missing]).unwrap().view_token().unwrap_err());
        assert!(e.contains("cannot read") && e.contains("--view-token-file") && e.contains(&missing), "{e}");
        // One way or the other, not both.
        assert!(parse(&["--token", "a", "--token-file", &file("t", "b")]).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn contradictory_or_unsafe_token_settings_do_not_start() {
        let check = |args: &[&str]| Config::try_parse_from(["kelpie"].iter().chain(args)).unwrap().check();
        assert_eq!(check(&[]), Ok(()));
        assert_eq!(check(&["--token", "abc", "--view-token", "def"]), Ok(()));
        let err = check(&["--auth", "none", "--view-token", "def"]).unwrap_err();
        assert!(err.contains("--auth none") && err.contains("--view-token"), "{err}");
        let err = check(&["--token", "same", "--view-token", "same"]).unwrap_err();
        assert!(err.contains("same as --token"), "{err}");
        let err = check(&["--token", "a;b"]).unwrap_err();
        assert!(err.contains("--token") && err.contains("letters, digits"), "{err}");
        assert!(check(&["--view-token", ""]).unwrap_err().contains("--view-token is empty"));
    }

    #[test]
    fn edge_flags_parse_and_reject() {
        let c = Config::try_parse_from([
            "kelpie",
            "--public-url",
            "https://desk.example.com/k/",
            "--allow-origin",
            "https://a.example,https://b.example:8443/",
            "--allow-origin",
            "http://c.example",
            "--trusted-proxy",
            "127.0.0.1,10.0.0.0/8",
        ])
        .unwrap();
        assert_eq!(c.public_url.unwrap().path, "/k");
        let origins: Vec<String> = c.allow_origin.iter().map(ToString::to_string).collect();
        assert_eq!(origins, ["https://a.example", "https://b.example:8443", "http://c.example"]);
        assert_eq!(c.trusted_proxy.len(), 2);
        assert_eq!((c.cookie_samesite, c.frame_ancestors.as_str()), (SameSite::Strict, "'self'"));
        assert_eq!((c.max_connections, c.header_timeout), (512, 10));
        for bad in [
            &["--allow-origin", "evil.example"][..],
            &["--allow-origin", "https://a.example/path"],
            &["--trusted-proxy", "nginx"],
            &["--public-url", "desk.example.com"],
            &["--frame-ancestors", "'self'; script-src *"],
            &["--cookie-samesite", "none"],
            &["--max-connections", "0"],
            &["--header-timeout", "0"],
        ] {
            assert!(Config::try_parse_from(["kelpie"].iter().chain(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn tls_flags_choose_one_certificate() {
        let parse = |args: &[&str]| Config::try_parse_from([&["kelpie"], args].concat());
        let setup = |args: &[&str]| parse(args).unwrap().tls_setup();
        assert_eq!(setup(&[]), Ok(None));
        assert_eq!(setup(&["--tls", "off"]), Ok(None));
        assert_eq!(
            setup(&["--tls-cert", "/c.pem", "--tls-key", "/k.pem"]),
            Ok(Some(TlsSetup::Files { cert: "/c.pem".into(), key: "/k.pem".into() }))
        );
        let Ok(Some(TlsSetup::SelfSigned { dir, names })) = setup(&[
            "--tls",
            "self-signed",
            "--tls-dir",
            "/var/lib/kelpie/tls",
            "--listen",
            "192.0.2.1:8443",
            "--public-url",
            "https://Desk.Example.com/k/",
            "--public-ip",
            "198.51.100.7",
            "--tls-name",
            "alias.example.com,10.1.2.3",
        ]) else {
            panic!("not self-signed")
        };
        assert_eq!(dir.as_deref(), Some(Path::new("/var/lib/kelpie/tls")));
        for n in [
            "localhost",
            "127.0.0.1",
            "::1",
            "192.0.2.1",
            "desk.example.com",
            "198.51.100.7",
            "alias.example.com",
            "10.1.2.3",
        ] {
            assert!(names.iter().any(|m| m == n), "{n} missing from {names:?}");
        }
        let Ok(Some(TlsSetup::SelfSigned { names, .. })) =
            setup(&["--tls", "self-signed", "--listen", "0.0.0.0:1"])
        else {
            panic!()
        };
        assert!(!names.iter().any(|n| n == "0.0.0.0"), "{names:?}");
        for (args, says) in [
            (&["--tls", "self-signed", "--tls-cert", "/c", "--tls-key", "/k"][..], "give one of them"),
            (&["--tls", "off", "--tls-cert", "/c", "--tls-key", "/k"], "leave out one of them"),
            (&["--tls-dir", "/d"], "add --tls self-signed"),
            (&["--tls-name", "a.example", "--tls-cert", "/c", "--tls-key", "/k"], "add --tls self-signed"),
            (
                &["--tls", "self-signed", "--listen", "unix:/run/k.sock", "--public-ip", "192.0.2.1"],
                "Unix socket",
            ),
        ] {
            let e = setup(args).unwrap_err();
            assert!(e.contains(says), "{args:?}: {e}");
        }
        // clap itself: one of the pair alone, or a name no certificate can hold.
        assert!(parse(&["--tls-cert", "/c"]).is_err());
        assert!(parse(&["--tls-key", "/k"]).is_err());
        assert!(parse(&["--tls", "on"]).is_err());
        assert!(parse(&["--tls", "self-signed", "--tls-name", "bad name"]).is_err());
    }

    #[test]
    fn a_unix_socket_listener_binds_webrtc_on_every_interface_and_needs_the_public_ip() {
        let parse = |args: &[&str]| Config::try_parse_from([&["kelpie"], args].concat()).unwrap();
        let c = parse(&["--listen", "unix:/run/kelpie/kelpie.sock"]);
        assert_eq!(c.listen.unix_path(), Some(Path::new("/run/kelpie/kelpie.sock")));
        let e = c.udp_addr().unwrap_err();
        assert!(e.contains("--public-ip"), "{e}");
        assert!(c.check().unwrap_err().contains("--public-ip"));
        let c = parse(&["--listen", "unix:/run/k.sock", "--public-ip", "192.0.2.1"]);
        assert_eq!(c.udp_addr().unwrap().to_string(), "0.0.0.0:0");
        assert_eq!(c.check(), Ok(()));
        let c = parse(&["--listen", "unix:/run/k.sock", "--public-ip", "192.0.2.1", "--udp-port", "9000"]);
        assert_eq!(c.udp_addr().unwrap().to_string(), "0.0.0.0:9000");
        // Without WebRTC there is no UDP port, and no need for --public-ip.
        assert_eq!(parse(&["--listen", "unix:/run/k.sock", "--transport", "websocket"]).check(), Ok(()));
        assert!(Config::try_parse_from(["kelpie", "--listen", "unix:relative.sock"]).is_err());
    }

    #[test]
    fn network_paths_parse_with_clear_errors() {
        let parse = |args: &[&str]| Config::try_parse_from([&["kelpie"], args].concat());
        let c = parse(&[]).unwrap();
        assert_eq!((c.transport, c.ice_transport, c.turn_ttl), (Transport::Auto, IceTransport::All, 86_400));
        assert!(c.ice().unwrap().is_empty());
        let c = parse(&[
            "--transport",
            "websocket",
            "--ice-server",
            "stun:stun.example.com",
            "--ice-server",
            "turn:turn.example.com:3478?transport=udp",
            "--turn-secret",
            "s",
            "--turn-ttl",
            "2",
            "--ice-transport",
            "relay",
        ])
        .unwrap();
        assert_eq!(c.transport.wire(), kelpie_protocol::Transport::Websocket);
        let ice = c.ice().unwrap();
        assert_eq!(ice.policy(), kelpie_protocol::IcePolicy::Relay);
        let servers = ice.for_viewer(std::time::UNIX_EPOCH + std::time::Duration::from_secs(10));
        assert_eq!(servers[1].username.as_deref(), Some("12:kelpie"));
        // A bad URL names itself and says what to write.
        let e = parse(&["--ice-server", "turn://relay.example.com"]).unwrap_err().to_string();
        assert!(e.contains("turn://relay.example.com") && e.contains("write turn:relay.example.com"), "{e}");
        // Static credentials come in pairs, and not with a secret.
        assert!(parse(&["--ice-server", "turn:a", "--turn-user", "u"]).is_err());
        assert!(parse(&["--ice-server", "turn:a", "--turn-password", "p"]).is_err());
        assert!(parse(&["--turn-user", "u", "--turn-password", "p", "--turn-secret", "s"]).is_err());
        let c = parse(&["--ice-server", "turn:a", "--turn-user", "u", "--turn-password", "p"]).unwrap();
        assert_eq!(
            c.ice().unwrap().for_viewer(std::time::SystemTime::now())[0].username.as_deref(),
            Some("u")
        );
        // A TURN server without credentials, or relay without a TURN server, do not start.
        let e = parse(&["--ice-server", "turn:a"]).unwrap().ice().unwrap_err().to_string();
        assert!(e.contains("needs credentials"), "{e}");
        let e = parse(&["--ice-transport", "relay"]).unwrap().ice().unwrap_err().to_string();
        assert!(e.contains("--ice-transport relay"), "{e}");
        assert!(parse(&["--turn-ttl", "0"]).is_err());
        assert!(parse(&["--transport", "udp"]).is_err());
    }

    #[test]
    fn flags_have_defaults_and_env_names() {
        let c = Config::try_parse_from(["kelpie"]).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.udp_addr().unwrap().to_string(), "127.0.0.1:8080");
        assert_eq!((c.fps, c.bitrate), (60, 8000));
        let c = Config::try_parse_from(["kelpie", "--udp-port", "9000", "--fps", "30"]).unwrap();
        assert_eq!(c.udp_addr().unwrap().port(), 9000);
        assert!(Config::try_parse_from(["kelpie", "--fps", "0"]).is_err());
        assert!(Config::try_parse_from(["kelpie", "--listen", "nowhere"]).is_err());
        // Every flag documents its environment variable.
        let help = <Config as clap::CommandFactory>::command().render_long_help().to_string();
        for flag in [
            "DISPLAY",
            "SIZE",
            "APP",
            "LISTEN",
            "UDP_PORT",
            "PUBLIC_IP",
            "TLS",
            "TLS_CERT",
            "TLS_KEY",
            "TLS_DIR",
            "TLS_NAME",
            "TRANSPORT",
            "ICE_SERVER",
            "TURN_SECRET",
            "TURN_TTL",
            "ICE_TRANSPORT",
            "TOKEN",
            "TOKEN_FILE",
            "VIEW_TOKEN_FILE",
            "URL_FILE",
            "RUNTIME_DIR",
            "AUTH",
            "ENCODER",
            "FPS",
            "BITRATE",
            "AUDIO",
            "AUDIO_BITRATE",
            "MICROPHONE",
            "CLIPBOARD",
            "CLIPBOARD_MAX",
            "LOG",
        ] {
            assert!(help.contains(&format!("KELPIE_{flag}")), "KELPIE_{flag} missing from --help");
        }
    }
}

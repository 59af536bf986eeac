//! Command-line flags and their `KELPIE_*` environment variables.

use std::net::{IpAddr, SocketAddr};

use clap::{Parser, ValueEnum};

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

    /// Address and port for HTTP and signalling.
    #[arg(long, env = "KELPIE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// UDP port for WebRTC media of every viewer. Default: the --listen port number.
    #[arg(long, env = "KELPIE_UDP_PORT")]
    pub udp_port: Option<u16>,

    /// Address put in ICE candidates, for servers behind 1:1 NAT (e.g. a Kubernetes node IP).
    #[arg(long, env = "KELPIE_PUBLIC_IP")]
    pub public_ip: Option<IpAddr>,

    /// Access token. Default: a random one, printed in the URL at start.
    #[arg(long, env = "KELPIE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// A second token that lets viewers watch but not type or click.
    #[arg(long, env = "KELPIE_VIEW_TOKEN", hide_env_values = true)]
    pub view_token: Option<String>,

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

    /// Video bitrate in kbit/s.
    #[arg(long, env = "KELPIE_BITRATE", default_value_t = 8000, value_parser = clap::value_parser!(u32).range(100..=400_000))]
    pub bitrate: u32,

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

    /// Clipboard sharing: both ways, only remote → browser, only browser → remote, or off.
    #[arg(long, env = "KELPIE_CLIPBOARD", value_enum, default_value_t = ClipboardMode::Both)]
    pub clipboard: ClipboardMode,

    /// Largest clipboard (text or PNG) passed either way, in bytes.
    #[arg(long, env = "KELPIE_CLIPBOARD_MAX", default_value_t = 16 << 20, value_parser = clap::value_parser!(u64).range(1..=(256 << 20)))]
    pub clipboard_max: u64,

    /// Log filter (error, warn, info, debug, trace, or a tracing directive list).
    #[arg(long, env = "KELPIE_LOG", default_value = "info")]
    pub log: String,
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

impl Config {
    /// The display to serve: --display, else $DISPLAY, else none (start an embedded one).
    pub fn existing_display(&self) -> Option<String> {
        self.display.clone().or_else(|| std::env::var("DISPLAY").ok()).filter(|d| !d.trim().is_empty())
    }

    /// The UDP address for WebRTC.
    pub fn udp_addr(&self) -> SocketAddr {
        SocketAddr::new(self.listen.ip(), self.udp_port.unwrap_or(self.listen.port()))
    }
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
    fn flags_have_defaults_and_env_names() {
        let c = Config::try_parse_from(["kelpie"]).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.udp_addr().to_string(), "127.0.0.1:8080");
        assert_eq!((c.fps, c.bitrate), (60, 8000));
        let c = Config::try_parse_from(["kelpie", "--udp-port", "9000", "--fps", "30"]).unwrap();
        assert_eq!(c.udp_addr().port(), 9000);
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
            "TOKEN",
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

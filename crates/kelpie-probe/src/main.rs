//! `kelpie-probe`: an X11 client that draws known content (see `--help`).

mod input_log;
mod light;

use std::os::fd::{AsRawFd, RawFd};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, bail};
use kelpie_probe::{CELL, CELLS, ImageView, PixelFormat, STAMP_HEIGHT, STAMP_WIDTH};
use x11rb::connection::{Connection, RequestConnection};
use x11rb::errors::{ConnectionError, ReplyError, ReplyOrIdError};
use x11rb::protocol::Event;
use x11rb::protocol::xproto::{
    AtomEnum, ChangeWindowAttributesAux, ConfigureWindowAux, ConnectionExt as _, CreateGCAux,
    CreateWindowAux, EventMask, Gcontext, ImageFormat, ImageOrder, Pixmap, PropMode, Rectangle, StackMode,
    VisualClass, Window, WindowClass,
};
use x11rb::rust_connection::RustConnection;
use x11rb::wrapper::ConnectionExt as _;

const USAGE: &str = "\
kelpie-probe: X11 client drawing known content for Kelpie tests and benchmarks

USAGE:
    kelpie-probe MODE [OPTIONS]
    kelpie-probe decode [--scale S] [--raw WxH[:FORMAT]] FILE|-
    kelpie-probe input-log [--display :N] [--out FILE] [--duration S] [-q]

MODES (one override-redirect window covering the whole screen):
    quadrants   four static quadrants: red, green / blue, yellow; redrawn only on Expose
    bars        8 vertical colour bars scrolling horizontally at --fps, plus the timestamp
    noise       shifting random-colour noise (hard to encode) at --fps, plus the timestamp
    clock       static mid-grey background; only the timestamp changes, every --interval-ms
    typing      white background, black glyph blocks appearing one at a time (default
                10 chars/s, or --fps), plus the timestamp on every change
    strip       static mid-grey screen; only a strip of --area % of the screen (the timestamp
                and striped boxes beside and below it) changes, at --fps (default 60)
    scroll      terminal: light glyph blocks on black, one new line a frame, the text above
                scrolled up (XCopyArea, as xterm does), --fps lines a second (default 30),
                plus the timestamp
    keys        static mid-grey screen with the keyboard focus; each key press redraws the
                stamp strip with (presses << 32) | keysym instead of a time, so a viewer sees
                which key arrived and when its picture did (key-to-photon latency)

OPTIONS:
    --display :N        X display (default: $DISPLAY)
    --fps N             frames per second for bars/noise (default 60), chars/s for typing (10)
    --interval-ms N     clock update period (default 1000)
    --beep              clock: with every new timestamp, play a 50 ms 1 kHz beep into the default
                        PulseAudio sink (through `pacat`, 10 ms latency), for audio/video sync
    --speed N           bars: pixels scrolled per frame (default 4)
    --area P            strip: percent of the screen that changes (default 1, at least the
                        timestamp's 928x16)
    --seed N            seed for noise/typing (default fixed)
    --duration S        exit after S seconds (default: run until SIGTERM/SIGINT)
    -q, --quiet         no summary line on exit
    -h, --help          this text

The timestamp is a 928x16 strip at the top-left corner: 58 cells of 16 px, white and black
references, 48 bits of Unix-epoch milliseconds (taken right before drawing the frame), and an
8-bit checksum. `decode` prints that value from an XWD file (`xwd -root`) or a raw dump
(--raw WxH, FORMAT bgrx (default), rgba, xrgb or rgb); `-` reads standard input. --scale is
image width / screen width (default 1). Exit status 1 if no valid stamp is found.

`input-log` maps a full-screen window, gives it the input focus (grabbing nothing) and writes
one JSON line per input event to standard output (or --out FILE), flushed per line:
    {\"t\":<epoch ms>,\"type\":\"key\",\"down\":true,\"keycode\":38,\"keysym\":97,\"char\":\"a\"}
    {\"t\":<epoch ms>,\"type\":\"button\",\"down\":true,\"button\":1,\"x\":<root x>,\"y\":<root y>}
    {\"t\":<epoch ms>,\"type\":\"motion\",\"x\":<root x>,\"y\":<root y>}
keysym and char are what the core-protocol rule gives for the event's state and the keymap at
that moment (re-read on every MappingNotify); char is null for keys that type nothing.

EXIT STATUS: 0 on SIGTERM/SIGINT, --duration or X connection closed; 1 on errors.
";

// ---------------------------------------------------------------------------------------------
// Command line

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ModeKind {
    Quadrants,
    Bars,
    Noise,
    Clock,
    Typing,
    Strip,
    Scroll,
    Keys,
}

#[derive(Debug)]
struct Options {
    mode: ModeKind,
    display: Option<String>,
    fps: Option<f64>,
    interval: Duration,
    speed: u32,
    seed: u64,
    duration: Option<Duration>,
    quiet: bool,
    beep: bool,
    area: f64,
}

#[derive(Debug)]
struct DecodeOptions {
    scale: f64,
    raw: Option<(usize, usize, PixelFormat)>,
    file: String,
}

#[derive(Debug)]
enum Command {
    Help,
    Draw(Options),
    Decode(DecodeOptions),
    InputLog(input_log::LogOptions),
}

fn parse_number<T: std::str::FromStr>(name: &str, value: Option<String>) -> Result<T> {
    let value = value.with_context(|| format!("{name} needs a value"))?;
    value.parse().ok().with_context(|| format!("invalid value for {name}: {value:?}"))
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Command> {
    let mut args = args.into_iter();
    let Some(first) = args.next() else {
        bail!("missing MODE (try --help)");
    };
    let mode = match first.as_str() {
        "-h" | "--help" | "help" => return Ok(Command::Help),
        "decode" => return parse_decode_args(args),
        "input-log" => return Ok(input_log::parse_args(args)?.map_or(Command::Help, Command::InputLog)),
        "quadrants" => ModeKind::Quadrants,
        "bars" => ModeKind::Bars,
        "noise" => ModeKind::Noise,
        "clock" => ModeKind::Clock,
        "typing" => ModeKind::Typing,
        "strip" => ModeKind::Strip,
        "scroll" => ModeKind::Scroll,
        "keys" => ModeKind::Keys,
        other => bail!("unknown mode {other:?} (try --help)"),
    };
    let mut o = Options {
        mode,
        display: None,
        fps: None,
        interval: Duration::from_millis(1000),
        speed: 4,
        seed: 0x4b65_6c70_6965,
        duration: None,
        quiet: false,
        beep: false,
        area: 1.0,
    };
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = || inline.clone().or_else(|| args.next());
        match name.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "-q" | "--quiet" => o.quiet = true,
            "--beep" => o.beep = true,
            "--display" => o.display = Some(value().context("--display needs a value")?),
            "--fps" => {
                let fps: f64 = parse_number(&name, value())?;
                if !(fps > 0.0 && fps <= 1000.0) {
                    bail!("--fps must be in (0, 1000]");
                }
                o.fps = Some(fps);
            }
            "--interval-ms" => {
                let ms: u64 = parse_number(&name, value())?;
                if ms == 0 {
                    bail!("--interval-ms must be positive");
                }
                o.interval = Duration::from_millis(ms);
            }
            "--speed" => o.speed = parse_number(&name, value())?,
            "--area" => {
                let area: f64 = parse_number(&name, value())?;
                if !(area > 0.0 && area <= 100.0) {
                    bail!("--area must be in (0, 100]");
                }
                o.area = area;
            }
            "--seed" => o.seed = parse_number(&name, value())?,
            "--duration" => {
                let s: f64 = parse_number(&name, value())?;
                o.duration = Some(Duration::try_from_secs_f64(s).ok().context("--duration must be >= 0")?);
            }
            _ => bail!("unknown argument {arg:?} (try --help)"),
        }
    }
    Ok(Command::Draw(o))
}

fn parse_decode_args(mut args: impl Iterator<Item = String>) -> Result<Command> {
    let mut scale = 1.0;
    let mut raw = None;
    let mut file = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--scale" => {
                scale = parse_number("--scale", args.next())?;
                if !(scale > 0.0 && f64::is_finite(scale)) {
                    bail!("--scale must be positive");
                }
            }
            "--raw" => {
                let spec = args.next().context("--raw needs WxH[:FORMAT]")?;
                raw = Some(parse_raw_spec(&spec)?);
            }
            _ if file.is_none() && (arg == "-" || !arg.starts_with('-')) => file = Some(arg),
            _ => bail!("unexpected argument {arg:?} (try --help)"),
        }
    }
    let file = file.context("decode needs a FILE (or - for standard input)")?;
    Ok(Command::Decode(DecodeOptions { scale, raw, file }))
}

fn parse_raw_spec(spec: &str) -> Result<(usize, usize, PixelFormat)> {
    let (size, format) = spec.split_once(':').unwrap_or((spec, "bgrx"));
    let (w, h) = size.split_once('x').with_context(|| format!("bad size {size:?}, expected WxH"))?;
    let format = match format.to_ascii_lowercase().as_str() {
        "bgrx" | "bgra" => PixelFormat::BGRX,
        "rgba" | "rgbx" => PixelFormat::RGBA,
        "xrgb" | "argb" => PixelFormat::XRGB,
        "rgb" => PixelFormat::RGB,
        other => bail!("unknown pixel format {other:?}"),
    };
    Ok((parse_number("width", Some(w.to_owned()))?, parse_number("height", Some(h.to_owned()))?, format))
}

fn run_decode(o: &DecodeOptions) -> Result<bool> {
    let bytes = if o.file == "-" {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut v).context("reading standard input")?;
        v
    } else {
        std::fs::read(&o.file).with_context(|| format!("reading {}", o.file))?
    };
    let image = match o.raw {
        Some((w, h, format)) => {
            let view = ImageView::packed(&bytes, w, h, format);
            if bytes.len() < w * h * format.bytes_per_pixel {
                bail!("raw dump too short: {} bytes for {w}x{h}", bytes.len());
            }
            view
        }
        None => kelpie_probe::parse_xwd(&bytes)?,
    };
    match kelpie_probe::decode_stamp(&image, o.scale) {
        Some(v) => {
            println!("{}", kelpie_probe::unwrap_ms(v, now_ms()));
            Ok(true)
        }
        None => {
            eprintln!("kelpie-probe: no valid stamp found");
            Ok(false)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Signals: the handler sets a flag and writes to a self-pipe that the main loop polls.

static STOP: AtomicBool = AtomicBool::new(false);
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(_sig: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
    let fd = WAKE_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: write(2) is async-signal-safe; the buffer is a valid 1-byte static.
        unsafe {
            libc::write(fd, b"x".as_ptr().cast(), 1);
        }
    }
}

/// Installs SIGTERM/SIGINT handlers; returns the read end of the wake-up pipe.
fn install_signal_handlers() -> Result<RawFd> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a valid array of two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
        return Err(std::io::Error::last_os_error()).context("pipe2");
    }
    WAKE_FD.store(fds[1], Ordering::SeqCst);
    for sig in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: a zeroed sigaction is valid; the handler only does async-signal-safe work.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as libc::sighandler_t;
            libc::sigemptyset(&mut sa.sa_mask);
            sa.sa_flags = libc::SA_RESTART;
            if libc::sigaction(sig, &sa, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error()).context("sigaction");
            }
        }
    }
    Ok(fds[0])
}

/// Waits until `fd_x` is readable, the wake pipe is written, or `timeout` passes
/// (`None` = forever). Returns true if the X connection has something to read (or hung up).
fn wait(fd_x: RawFd, fd_wake: RawFd, timeout: Option<Duration>) -> bool {
    let mut fds = [
        libc::pollfd { fd: fd_x, events: libc::POLLIN, revents: 0 },
        libc::pollfd { fd: fd_wake, events: libc::POLLIN, revents: 0 },
    ];
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs().min(i32::MAX as u64) as libc::time_t,
        tv_nsec: libc::c_long::from(t.subsec_nanos() as i32),
    });
    let ts_ptr = ts.as_ref().map_or(std::ptr::null(), std::ptr::from_ref::<libc::timespec>);
    // SAFETY: `fds` and `ts` outlive the call; a null sigmask leaves the mask unchanged.
    let n = unsafe { libc::ppoll(fds.as_mut_ptr(), 2, ts_ptr, std::ptr::null()) };
    n > 0 && fds[0].revents != 0
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

// ---------------------------------------------------------------------------------------------
// X helpers

/// Something went wrong talking to the X server.
#[derive(Debug)]
enum XFail {
    /// The connection closed or broke: exit quietly.
    Closed(ConnectionError),
    /// Anything else (protocol error, bad setup): exit 1.
    Other(anyhow::Error),
}

impl From<ConnectionError> for XFail {
    fn from(e: ConnectionError) -> Self {
        Self::Closed(e)
    }
}

impl From<ReplyError> for XFail {
    fn from(e: ReplyError) -> Self {
        match e {
            ReplyError::ConnectionError(c) => Self::Closed(c),
            ReplyError::X11Error(x) => Self::Other(anyhow::anyhow!("X error: {x:?}")),
        }
    }
}

impl From<ReplyOrIdError> for XFail {
    fn from(e: ReplyOrIdError) -> Self {
        match e {
            ReplyOrIdError::ConnectionError(c) => Self::Closed(c),
            other => Self::Other(anyhow::anyhow!("X error: {other:?}")),
        }
    }
}

impl From<anyhow::Error> for XFail {
    fn from(e: anyhow::Error) -> Self {
        Self::Other(e)
    }
}

type XResult<T> = std::result::Result<T, XFail>;

/// Converts 8-bit RGB to a TrueColor pixel value.
#[derive(Clone, Copy, Debug)]
struct Rgb2Pixel {
    masks: [u32; 3],
}

impl Rgb2Pixel {
    fn pixel(self, rgb: (u8, u8, u8)) -> u32 {
        let mut p = 0;
        for (mask, v) in self.masks.into_iter().zip([rgb.0, rgb.1, rgb.2]) {
            if mask == 0 {
                continue;
            }
            let shift = mask.trailing_zeros();
            let bits = (mask >> shift).count_ones();
            let scaled = if bits >= 8 { u32::from(v) << (bits - 8) } else { u32::from(v) >> (8 - bits) };
            p |= (scaled << shift) & mask;
        }
        p
    }
}

struct Ctx {
    conn: RustConnection,
    root: Window,
    win: Window,
    depth: u8,
    width: u16,
    height: u16,
    colors: Rgb2Pixel,
    /// Bytes per pixel (always 4 in practice) and byte order for PutImage.
    lsb_first: bool,
    /// A GC with graphics exposures off, for CopyArea.
    copy_gc: Gcontext,
    stamp: StampPainter,
}

impl Ctx {
    fn gc(&self, rgb: (u8, u8, u8)) -> XResult<Gcontext> {
        let gc = self.conn.generate_id()?;
        self.conn.create_gc(
            gc,
            self.win,
            &CreateGCAux::new().foreground(self.colors.pixel(rgb)).graphics_exposures(0),
        )?;
        Ok(gc)
    }

    fn pixmap(&self, w: u16, h: u16) -> XResult<Pixmap> {
        let p = self.conn.generate_id()?;
        self.conn.create_pixmap(self.depth, p, self.win, w, h)?;
        Ok(p)
    }

    fn fill(&self, gc: Gcontext, rects: &[Rectangle]) -> XResult<()> {
        if !rects.is_empty() {
            self.conn.poly_fill_rectangle(self.win, gc, rects)?;
        }
        Ok(())
    }

    fn full(&self) -> Rectangle {
        rect(0, 0, i32::from(self.width), i32::from(self.height))
    }
}

fn rect(x: i32, y: i32, w: i32, h: i32) -> Rectangle {
    Rectangle { x: x as i16, y: y as i16, width: w.max(0) as u16, height: h.max(0) as u16 }
}

/// Splits `r` into at most two rectangles that do not overlap the stamp strip, so that scene
/// drawing never paints over the stamp (a capture between the two requests then still shows a
/// valid stamp).
fn outside_stamp(r: Rectangle) -> impl Iterator<Item = Rectangle> {
    let (x0, y0) = (i32::from(r.x), i32::from(r.y));
    let (x1, y1) = (x0 + i32::from(r.width), y0 + i32::from(r.height));
    let (sw, sh) = (STAMP_WIDTH as i32, STAMP_HEIGHT as i32);
    // Part below the strip.
    let below = (y1 > sh).then(|| rect(x0, y0.max(sh), x1 - x0, y1 - y0.max(sh)));
    // Part beside the strip (to its right), within the strip's rows.
    let beside = (y0 < sh && x1 > sw).then(|| rect(x0.max(sw), y0, x1 - x0.max(sw), y1.min(sh) - y0));
    below.into_iter().chain(beside).filter(|r| r.width > 0 && r.height > 0)
}

/// Draws the stamp into a small pixmap, then copies it to the window in one request so that the
/// strip is updated atomically.
struct StampPainter {
    pixmap: Pixmap,
    white: Gcontext,
    black: Gcontext,
    last: u64,
}

impl StampPainter {
    fn draw(&mut self, conn: &RustConnection, win: Window, copy_gc: Gcontext, ms: u64) -> XResult<()> {
        let cells = kelpie_probe::stamp_cells(ms);
        let mut white = Vec::with_capacity(CELLS);
        let mut black = Vec::with_capacity(CELLS);
        for (i, &c) in cells.iter().enumerate() {
            let r = rect((i * CELL) as i32, 0, CELL as i32, CELL as i32);
            if c { white.push(r) } else { black.push(r) }
        }
        conn.poly_fill_rectangle(self.pixmap, self.white, &white)?;
        conn.poly_fill_rectangle(self.pixmap, self.black, &black)?;
        self.last = ms;
        self.copy(conn, win, copy_gc)
    }

    /// Re-copies the last stamp (after an Expose).
    fn copy(&self, conn: &RustConnection, win: Window, copy_gc: Gcontext) -> XResult<()> {
        conn.copy_area(self.pixmap, win, copy_gc, 0, 0, 0, 0, STAMP_WIDTH as u16, STAMP_HEIGHT as u16)?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Random numbers (xorshift64*, deterministic from --seed)

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed ^ 0x9e37_79b9_7f4a_7c15 | 1)
    }
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u32) -> u32 {
        (((self.next_u64() >> 32) * u64::from(n)) >> 32) as u32
    }
}

// ---------------------------------------------------------------------------------------------
// Scenes

const BAR_COLORS: [(u8, u8, u8); 8] = [
    (255, 0, 0),
    (255, 128, 0),
    (255, 255, 0),
    (0, 255, 0),
    (0, 255, 255),
    (0, 0, 255),
    (255, 0, 255),
    (255, 255, 255),
];

/// Extra pixels on each axis of the noise pixmap (the copy offset range).
const NOISE_PAD: u16 = 256;
const GLYPH_W: i32 = 10;
const GLYPH_H: i32 = 20;
const TEXT_TOP: i32 = 32;
const TEXT_LEFT: i32 = 16;

enum Scene {
    Quadrants {
        gcs: [Gcontext; 4],
    },
    Bars {
        gcs: [Gcontext; 8],
        bar_w: i32,
        speed: u32,
    },
    Noise {
        pixmap: Pixmap,
        rng: Rng,
    },
    Clock {
        grey: Gcontext,
    },
    Typing {
        white: Gcontext,
        black: Gcontext,
        rng: Rng,
        glyphs: Vec<Rectangle>,
        col: i32,
        row: i32,
        line_len: i32,
        word_left: i32,
    },
    Strip(light::Strip),
    Scroll(light::Scroll),
    Keys(light::Keys),
}

impl Scene {
    fn new(ctx: &Ctx, o: &Options) -> XResult<Self> {
        Ok(match o.mode {
            ModeKind::Quadrants => Self::Quadrants {
                gcs: [
                    ctx.gc((255, 0, 0))?,
                    ctx.gc((0, 255, 0))?,
                    ctx.gc((0, 0, 255))?,
                    ctx.gc((255, 255, 0))?,
                ],
            },
            ModeKind::Bars => {
                let mut gcs = [0; 8];
                for (gc, rgb) in gcs.iter_mut().zip(BAR_COLORS) {
                    *gc = ctx.gc(rgb)?;
                }
                Self::Bars { gcs, bar_w: (i32::from(ctx.width) / 8).max(1), speed: o.speed }
            }
            ModeKind::Noise => {
                let mut rng = Rng::new(o.seed);
                let pixmap = noise_pixmap(ctx, &mut rng)?;
                Self::Noise { pixmap, rng }
            }
            ModeKind::Clock => Self::Clock { grey: ctx.gc((128, 128, 128))? },
            ModeKind::Strip => Self::Strip(light::Strip::new(ctx, o.area)?),
            ModeKind::Scroll => Self::Scroll(light::Scroll::new(ctx, o.seed)?),
            ModeKind::Keys => Self::Keys(light::Keys::new(ctx)?),
            ModeKind::Typing => Self::Typing {
                white: ctx.gc((255, 255, 255))?,
                black: ctx.gc((0, 0, 0))?,
                rng: Rng::new(o.seed),
                glyphs: Vec::new(),
                col: 0,
                row: 0,
                line_len: 0,
                word_left: 0,
            },
        })
    }

    fn free(&self, ctx: &Ctx) -> XResult<()> {
        let c = &ctx.conn;
        match self {
            Self::Quadrants { gcs } => gcs.iter().try_for_each(|&g| c.free_gc(g).map(drop))?,
            Self::Bars { gcs, .. } => gcs.iter().try_for_each(|&g| c.free_gc(g).map(drop))?,
            Self::Noise { pixmap, .. } => drop(c.free_pixmap(*pixmap)?),
            Self::Clock { grey } => drop(c.free_gc(*grey)?),
            Self::Typing { white, black, .. } => {
                c.free_gc(*white)?;
                c.free_gc(*black)?;
            }
            Self::Strip(s) => s.free(ctx)?,
            Self::Scroll(s) => s.free(ctx)?,
            Self::Keys(k) => k.free(ctx)?,
        }
        Ok(())
    }

    /// Whether the scene carries the stamp.
    fn stamped(&self) -> bool {
        // Keys draw their own values into the strip.
        !matches!(self, Self::Quadrants { .. } | Self::Keys(_))
    }

    /// Draws everything (first frame, Expose, resize). Returns whether the stamp must be redrawn
    /// with a fresh time (otherwise the last one is re-copied).
    fn draw_all(&mut self, ctx: &mut Ctx, frame: u64) -> XResult<()> {
        match self {
            Self::Quadrants { gcs } => {
                let (w, h) = (i32::from(ctx.width), i32::from(ctx.height));
                let (hw, hh) = (w / 2, h / 2);
                ctx.fill(gcs[0], &[rect(0, 0, hw, hh)])?;
                ctx.fill(gcs[1], &[rect(hw, 0, w - hw, hh)])?;
                ctx.fill(gcs[2], &[rect(0, hh, hw, h - hh)])?;
                ctx.fill(gcs[3], &[rect(hw, hh, w - hw, h - hh)])?;
            }
            Self::Clock { grey } => {
                let r: Vec<_> = outside_stamp(ctx.full()).collect();
                ctx.fill(*grey, &r)?;
            }
            Self::Typing { white, black, glyphs, .. } => {
                let r: Vec<_> = outside_stamp(ctx.full()).collect();
                ctx.fill(*white, &r)?;
                for chunk in glyphs.chunks(1000) {
                    ctx.fill(*black, chunk)?;
                }
            }
            Self::Strip(s) => s.draw_all(ctx, frame)?,
            Self::Scroll(s) => s.draw_all(ctx)?,
            Self::Keys(k) => k.draw_all(ctx)?,
            Self::Bars { .. } | Self::Noise { .. } => self.frame(ctx, frame)?,
        }
        Ok(())
    }

    /// Draws animation step `frame` (not the stamp).
    fn frame(&mut self, ctx: &Ctx, frame: u64) -> XResult<()> {
        let (w, h) = (i32::from(ctx.width), i32::from(ctx.height));
        match self {
            Self::Quadrants { .. } | Self::Clock { .. } | Self::Keys(_) => {}
            Self::Strip(s) => s.frame(ctx, frame)?,
            Self::Scroll(s) => s.frame(ctx)?,
            Self::Bars { gcs, bar_w, speed } => {
                let period = *bar_w as u64 * 8;
                let offset = (frame * u64::from(*speed) % period) as i32;
                let mut per_gc: [Vec<Rectangle>; 8] = Default::default();
                // Bar k spans [k*bar_w - offset, (k+1)*bar_w - offset), colour k % 8, clipped.
                let mut k = 0;
                while k * *bar_w - offset < w {
                    let x0 = (k * *bar_w - offset).max(0);
                    let x1 = ((k + 1) * *bar_w - offset).min(w);
                    if x1 > x0 {
                        per_gc[(k % 8) as usize].extend(outside_stamp(rect(x0, 0, x1 - x0, h)));
                    }
                    k += 1;
                }
                for (gc, rects) in gcs.iter().zip(&per_gc) {
                    ctx.fill(*gc, rects)?;
                }
            }
            Self::Noise { pixmap, rng } => {
                let dx = rng.below(u32::from(NOISE_PAD)) as i16;
                let dy = rng.below(u32::from(NOISE_PAD)) as i16;
                for r in outside_stamp(ctx.full()) {
                    ctx.conn.copy_area(
                        *pixmap,
                        ctx.win,
                        ctx.copy_gc,
                        r.x + dx,
                        r.y + dy,
                        r.x,
                        r.y,
                        r.width,
                        r.height,
                    )?;
                }
            }
            Self::Typing { white, black, rng, glyphs, col, row, line_len, word_left } => {
                let cols = ((w - 2 * TEXT_LEFT) / GLYPH_W).max(1);
                let rows = ((h - TEXT_TOP) / GLYPH_H).max(1);
                if *line_len == 0 {
                    *line_len = (20 + rng.below(60) as i32).min(cols);
                }
                if *word_left == 0 {
                    // Start a new word (after a space, unless at the start of a line).
                    if *col > 0 {
                        *col += 1;
                    }
                    *word_left = 2 + rng.below(7) as i32;
                }
                if *col >= *line_len {
                    *col = 0;
                    *row += 1;
                    *line_len = (20 + rng.below(60) as i32).min(cols);
                }
                if *row >= rows {
                    // Screen full: clear and start over at the top.
                    *row = 0;
                    glyphs.clear();
                    let r: Vec<_> = outside_stamp(ctx.full()).collect();
                    ctx.fill(*white, &r)?;
                }
                // A glyph: a block of x-height, ascender or descender size.
                let x = TEXT_LEFT + *col * GLYPH_W + 1;
                let base = TEXT_TOP + *row * GLYPH_H;
                let g = match rng.below(4) {
                    0 => rect(x, base + 3, GLYPH_W - 2, 12),
                    1 => rect(x, base + 7, GLYPH_W - 2, 12),
                    _ => rect(x, base + 7, GLYPH_W - 2, 8),
                };
                ctx.fill(*black, &[g])?;
                glyphs.push(g);
                *col += 1;
                *word_left -= 1;
            }
        }
        Ok(())
    }
}

/// Creates a pixmap of (screen + NOISE_PAD) filled with random colours, uploaded with PutImage in
/// chunks of at most 256 KiB.
fn noise_pixmap(ctx: &Ctx, rng: &mut Rng) -> XResult<Pixmap> {
    let pw = ctx.width.saturating_add(NOISE_PAD);
    let ph = ctx.height.saturating_add(NOISE_PAD);
    let pixmap = ctx.pixmap(pw, ph)?;
    let row_bytes = usize::from(pw) * 4;
    let max_req = ctx.conn.maximum_request_bytes().min(256 * 1024) - 64;
    let rows_per_chunk = (max_req / row_bytes).max(1);
    let mut y = 0usize;
    let mut buf = Vec::with_capacity(rows_per_chunk * row_bytes);
    while y < usize::from(ph) {
        let n = rows_per_chunk.min(usize::from(ph) - y);
        buf.clear();
        for _ in 0..n * usize::from(pw) / 2 {
            let r = rng.next_u64();
            for half in [r, r >> 32] {
                let px = ctx.colors.pixel((half as u8, (half >> 8) as u8, (half >> 16) as u8));
                buf.extend_from_slice(&if ctx.lsb_first { px.to_le_bytes() } else { px.to_be_bytes() });
            }
        }
        buf.resize(n * row_bytes, 0);
        ctx.conn.put_image(
            ImageFormat::Z_PIXMAP,
            pixmap,
            ctx.copy_gc,
            pw,
            n as u16,
            0,
            y as i16,
            0,
            ctx.depth,
            &buf,
        )?;
        y += n;
    }
    Ok(pixmap)
}

// ---------------------------------------------------------------------------------------------
// Main loop

fn setup(o: &Options) -> Result<Ctx> {
    let display = o
        .display
        .clone()
        .or_else(|| std::env::var("DISPLAY").ok())
        .filter(|d| !d.is_empty())
        .context("cannot open display: DISPLAY is not set (use --display :N)")?;
    let shown = display.clone();
    let (conn, screen_num) =
        x11rb::connect(Some(&display)).map_err(|e| anyhow::anyhow!("cannot open display {shown:?}: {e}"))?;
    let screen = conn.setup().roots[screen_num].clone();
    let depth = screen.root_depth;
    let visual = screen
        .allowed_depths
        .iter()
        .flat_map(|d| &d.visuals)
        .find(|v| v.visual_id == screen.root_visual)
        .copied()
        .context("root visual not found")?;
    if visual.class != VisualClass::TRUE_COLOR && visual.class != VisualClass::DIRECT_COLOR {
        bail!("root visual is not TrueColor");
    }
    let bpp = conn.setup().pixmap_formats.iter().find(|f| f.depth == depth).map(|f| f.bits_per_pixel);
    if bpp != Some(32) {
        bail!("unsupported root depth {depth} ({bpp:?} bits per pixel); use a 24-bit screen");
    }
    let lsb_first = conn.setup().image_byte_order == ImageOrder::LSB_FIRST;
    let colors = Rgb2Pixel { masks: [visual.red_mask, visual.green_mask, visual.blue_mask] };
    let (width, height) = (screen.width_in_pixels, screen.height_in_pixels);
    let root = screen.root;

    let win = conn.generate_id()?;
    conn.create_window(
        depth,
        win,
        root,
        0,
        0,
        width,
        height,
        0,
        WindowClass::INPUT_OUTPUT,
        visual.visual_id,
        &CreateWindowAux::new()
            .override_redirect(1)
            .background_pixel(colors.pixel((0, 0, 0)))
            .event_mask(EventMask::EXPOSURE),
    )?;
    conn.change_property8(PropMode::REPLACE, win, AtomEnum::WM_NAME, AtomEnum::STRING, b"kelpie-probe")?;
    // Follow screen size changes (RandR): ConfigureNotify on the root window.
    conn.change_window_attributes(
        root,
        &ChangeWindowAttributesAux::new().event_mask(EventMask::STRUCTURE_NOTIFY),
    )?;
    let copy_gc = conn.generate_id()?;
    conn.create_gc(copy_gc, win, &CreateGCAux::new().graphics_exposures(0))?;
    let stamp_pixmap = conn.generate_id()?;
    conn.create_pixmap(depth, stamp_pixmap, win, STAMP_WIDTH as u16, STAMP_HEIGHT as u16)?;
    let stamp_gc = |rgb| -> Result<Gcontext> {
        let gc = conn.generate_id()?;
        conn.create_gc(gc, win, &CreateGCAux::new().foreground(colors.pixel(rgb)).graphics_exposures(0))?;
        Ok(gc)
    };
    let stamp = StampPainter {
        pixmap: stamp_pixmap,
        white: stamp_gc((255, 255, 255))?,
        black: stamp_gc((0, 0, 0))?,
        last: 0,
    };
    Ok(Ctx { conn, root, win, depth, width, height, colors, lsb_first, copy_gc, stamp })
}

/// Frame statistics printed on exit.
#[derive(Default)]
struct Stats {
    frames: u64,
    late: u64,
    skipped: u64,
    /// Full redraws the X server asked for (Expose, resize): each one briefly shows the
    /// window's background.
    redraws: u64,
    /// When the first frame was drawn (after setup).
    since: Option<Instant>,
}

fn run(o: &Options) -> Result<()> {
    let wake_fd = install_signal_handlers()?;
    let mut ctx = setup(o)?;
    let started = Instant::now();
    let mut stats = Stats::default();
    let outcome = main_loop(&mut ctx, o, wake_fd, &mut stats);
    if !o.quiet {
        let secs = stats.since.unwrap_or(started).elapsed().as_secs_f64();
        eprintln!(
            "kelpie-probe: {:?}: {} frames in {secs:.1} s ({:.1}/s), {} late, {} skipped, {} redrawn in full",
            o.mode,
            stats.frames,
            stats.frames as f64 / secs.max(1e-9),
            stats.late,
            stats.skipped,
            stats.redraws
        );
    }
    finish(outcome, o.quiet)
}

/// The end of a drawing or logging loop: the X server going away is a normal end.
fn finish(outcome: XResult<()>, quiet: bool) -> Result<()> {
    match outcome {
        Ok(()) => Ok(()),
        Err(XFail::Closed(e)) => {
            if !quiet {
                eprintln!("kelpie-probe: X connection closed ({e})");
            }
            Ok(())
        }
        Err(XFail::Other(e)) => Err(e),
    }
}

/// What the events received asked for.
#[derive(Default)]
struct Pending {
    expose: bool,
    resize: Option<(u16, u16)>,
    /// Key presses (keycode, modifier state) not drawn yet.
    keys: Vec<(u8, u16)>,
    /// The keymap changed.
    remap: bool,
}

/// Plays beeps into the default PulseAudio sink through `pacat` with a small buffer, so a
/// beep written now is heard about 10 ms later. Between beeps nothing is written: the stream
/// runs dry (PulseAudio plays silence) and restarts as soon as the next beep arrives.
struct Beeper {
    child: std::process::Child,
    beep: Vec<u8>,
}

impl Beeper {
    const RATE: u32 = 48_000;

    fn start() -> Result<Self> {
        let child = std::process::Command::new("pacat")
            .args([
                "--playback",
                "--raw",
                "--format=s16le",
                "--rate=48000",
                "--channels=1",
                "--latency-msec=10",
                "--process-time-msec=5",
                "--client-name=kelpie-probe",
                "--stream-name=beep",
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .context("cannot run pacat (Debian package pulseaudio-utils)")?;
        // 50 ms of a 1 kHz sine at half scale.
        let n = Self::RATE / 20;
        let beep = (0..n)
            .flat_map(|i| {
                let t = f64::from(i) / f64::from(Self::RATE);
                (((t * 1000.0 * std::f64::consts::TAU).sin() * 16000.0) as i16).to_le_bytes()
            })
            .collect();
        Ok(Self { child, beep })
    }

    fn beep(&mut self) -> Result<()> {
        use std::io::Write as _;
        let stdin = self.child.stdin.as_mut().context("pacat has no input")?;
        stdin.write_all(&self.beep).context("pacat stopped")?;
        stdin.flush().context("pacat stopped")
    }
}

impl Drop for Beeper {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn handle_events(ctx: &Ctx, pending: &mut Pending) -> XResult<()> {
    while let Some(ev) = ctx.conn.poll_for_event()? {
        match ev {
            Event::Expose(e) if e.window == ctx.win && e.count == 0 => pending.expose = true,
            Event::ConfigureNotify(e)
                if e.window == ctx.root && (e.width, e.height) != (ctx.width, ctx.height) =>
            {
                pending.resize = Some((e.width, e.height));
            }
            Event::KeyPress(e) if e.event == ctx.win => pending.keys.push((e.detail, e.state.into())),
            Event::MappingNotify(e) if e.request != x11rb::protocol::xproto::Mapping::POINTER => {
                pending.remap = true
            }
            Event::Error(e) => return Err(XFail::Other(anyhow::anyhow!("X error: {e:?}"))),
            _ => {}
        }
    }
    Ok(())
}

fn main_loop(ctx: &mut Ctx, o: &Options, wake_fd: RawFd, stats: &mut Stats) -> XResult<()> {
    let x_fd = ctx.conn.stream().as_raw_fd();
    let period = match o.mode {
        ModeKind::Quadrants | ModeKind::Keys => None,
        ModeKind::Bars | ModeKind::Noise | ModeKind::Strip => {
            Some(Duration::from_secs_f64(1.0 / o.fps.unwrap_or(60.0)))
        }
        ModeKind::Scroll => Some(Duration::from_secs_f64(1.0 / o.fps.unwrap_or(30.0))),
        ModeKind::Typing => Some(Duration::from_secs_f64(1.0 / o.fps.unwrap_or(10.0))),
        ModeKind::Clock => Some(o.interval),
    };
    let mut scene = Scene::new(ctx, o)?;
    let stamped = scene.stamped();
    let mut beeper = if o.beep { Some(Beeper::start().map_err(XFail::Other)?) } else { None };

    ctx.conn.map_window(ctx.win)?;
    ctx.conn.configure_window(ctx.win, &ConfigureWindowAux::new().stack_mode(StackMode::ABOVE))?;
    let start = Instant::now();
    stats.since = Some(start);
    let end = o.duration.map(|d| start + d);
    let mut frame: u64 = 0;
    let draw_stamp = |ctx: &mut Ctx, ms: u64| -> XResult<()> {
        let Ctx { conn, win, copy_gc, stamp, .. } = ctx;
        stamp.draw(conn, *win, *copy_gc, ms)
    };

    // First frame.
    let ms = now_ms();
    scene.draw_all(ctx, frame)?;
    if stamped {
        draw_stamp(ctx, ms)?;
    }
    ctx.conn.get_input_focus()?.reply()?;
    stats.frames += 1;

    let mut pending = Pending::default();
    loop {
        handle_events(ctx, &mut pending)?;
        if STOP.load(Ordering::SeqCst) {
            return Ok(());
        }
        if let Scene::Keys(k) = &mut scene {
            if std::mem::take(&mut pending.remap) {
                k.remap(ctx)?;
            }
            for (keycode, state) in pending.keys.drain(..) {
                k.press(ctx, keycode, state)?;
                stats.frames += 1;
            }
        }
        if let Some((w, h)) = pending.resize.take() {
            scene.free(ctx)?;
            ctx.width = w;
            ctx.height = h;
            ctx.conn.configure_window(
                ctx.win,
                &ConfigureWindowAux::new()
                    .width(u32::from(w))
                    .height(u32::from(h))
                    .stack_mode(StackMode::ABOVE),
            )?;
            scene = Scene::new(ctx, o)?;
            pending.expose = true;
        }
        if pending.expose {
            pending.expose = false;
            stats.redraws += 1;
            scene.draw_all(ctx, frame)?;
            if stamped {
                let Ctx { conn, win, copy_gc, stamp, .. } = &*ctx;
                stamp.copy(conn, *win, *copy_gc)?;
            }
            ctx.conn.get_input_focus()?.reply()?;
            continue;
        }

        let now = Instant::now();
        if end.is_some_and(|e| now >= e) {
            return Ok(());
        }
        let deadline = period.map(|p| start + p.mul_f64((frame + 1) as f64));
        if let Some(d) = deadline.filter(|&d| now >= d) {
            // Due: catch up to the latest due frame without drawing the missed ones.
            let p = period.unwrap_or(Duration::MAX);
            let behind = ((now - d).as_secs_f64() / p.as_secs_f64()) as u64;
            if behind > 0 {
                stats.skipped += behind;
            }
            if now - d > p / 2 {
                stats.late += 1;
            }
            frame += 1 + behind;
            let ms = now_ms();
            scene.frame(ctx, frame)?;
            if stamped {
                draw_stamp(ctx, ms)?;
            }
            ctx.conn.get_input_focus()?.reply()?;
            // The stamp is on the screen now: the beep starts at the same moment.
            if let Some(b) = beeper.as_mut() {
                b.beep().map_err(XFail::Other)?;
            }
            stats.frames += 1;
            continue;
        }
        let until = [deadline, end].into_iter().flatten().min();
        ctx.conn.flush()?;
        wait(x_fd, wake_fd, until.map(|u| u.saturating_duration_since(now)));
    }
}

fn main() -> ExitCode {
    let cmd = match parse_args(std::env::args().skip(1)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("kelpie-probe: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cmd {
        Command::Help => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Command::Decode(d) => run_decode(&d),
        Command::Draw(o) => run(&o).map(|()| true),
        Command::InputLog(o) => input_log::run(&o).map(|()| true),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("kelpie-probe: {e:#}");
            ExitCode::FAILURE
        }
    }
}

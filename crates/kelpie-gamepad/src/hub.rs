//! The session's four pads and the programs reading them. Each pad has two listening Unix
//! sockets in a private directory: `jsN.sock` (joystick records) and `evN.sock` (event-device
//! records), an accepting thread each, and the state that viewers' messages change. A program
//! that connects to `jsN.sock` gets the pad's whole state first (flagged `JS_EVENT_INIT`),
//! one on `evN.sock` a snapshot ([`evdev::snapshot`]); then every change. A program that stops
//! reading is dropped once its socket's buffer is full, so it never holds the server up.
//! What a program writes on `evN.sock` is rumble ([`crate::rumble`]): checked, rate-limited
//! per pad and handed to the sink ([`Gamepads::on_rumble`]) for the viewer driving the pad.
//! With the uinput backend each pad is also a kernel device, created when first driven.

use std::io::{self, Read as _, Write as _};
use std::os::fd::AsRawFd as _;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::evdev;
use crate::map::{JsState, MAX_PADS};
use crate::pad::{self, JsEvent};
use crate::rumble::{RECORD_SIZE, Rumble, RumbleLimiter};
use crate::uinput::UinputPad;

/// Identifies the viewer driving a pad.
pub type ViewerId = u64;

/// Where a pad's rumble goes: (the viewer driving it, the pad, the rumble).
pub type RumbleSink = Box<dyn Fn(ViewerId, usize, Rumble) + Send + Sync>;

/// How programs see the pads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// Only through the interposer (`LD_PRELOAD`): `/dev/input/js0..3` and
    /// `/dev/input/event1000..1003` of the programs Kelpie starts.
    Interposer,
    /// Also as kernel devices made through this uinput device (`/dev/uinput`), which every
    /// program sees.
    Uinput(PathBuf),
}

/// Counters of the gamepad path, for metrics.
#[derive(Debug, Default)]
pub struct GamepadCounters {
    /// Pad states applied (a viewer's message that changed something).
    pub updates: AtomicU64,
    /// Joystick and event-device records written to programs.
    pub events: AtomicU64,
    /// Programs that opened a pad (joystick or event device).
    pub readers: AtomicU64,
    /// Programs dropped because they stopped reading (not those that closed the device).
    pub dropped: AtomicU64,
    /// Pads put back at rest because their viewer left or lost control.
    pub released: AtomicU64,
    /// Rumble changes passed on to the viewer driving the pad.
    pub rumble: AtomicU64,
    /// Rumble records refused: malformed (the program is then cut off) or over the rate.
    pub rumble_refused: AtomicU64,
    /// uinput devices that could not be made (the pad is then the interposer's only).
    pub uinput_failed: AtomicU64,
}

struct Slot {
    state: JsState,
    owner: Option<ViewerId>,
    js: Vec<UnixStream>,
    ev: Vec<UnixStream>,
    uinput: Option<UinputPad>,
    /// Whether making the uinput device was tried (it is tried once per pad).
    uinput_tried: bool,
    limiter: RumbleLimiter,
}

struct Inner {
    slots: [Slot; MAX_PADS],
    sink: Option<RumbleSink>,
}

/// The session's pads; cheap to clone.
#[derive(Clone)]
pub struct Gamepads {
    inner: Arc<Mutex<Inner>>,
    counters: Arc<GamepadCounters>,
    epoch: Instant,
    dir: PathBuf,
    backend: Backend,
}

#[derive(Clone, Copy)]
enum Kind {
    Js,
    Ev,
}

impl Gamepads {
    /// Listens on `dir/js0.sock` .. `js3.sock` and `dir/ev0.sock` .. `ev3.sock` and writes the
    /// interposer to `dir/libkelpie_gamepad.so`. `dir` must be private to this user (the
    /// session's runtime directory): whoever can reach the sockets can read the pads.
    pub fn start(dir: &Path, backend: Backend) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        write_interposer(&dir.join(crate::INTERPOSER_FILE))?;
        let slots = std::array::from_fn(|_| Slot {
            state: JsState::neutral(),
            owner: None,
            js: Vec::new(),
            ev: Vec::new(),
            uinput: None,
            uinput_tried: false,
            limiter: RumbleLimiter::default(),
        });
        let g = Self {
            inner: Arc::new(Mutex::new(Inner { slots, sink: None })),
            counters: Arc::default(),
            epoch: Instant::now(),
            dir: dir.to_path_buf(),
            backend,
        };
        for index in 0..MAX_PADS {
            for (kind, name) in [(Kind::Js, "js"), (Kind::Ev, "ev")] {
                let path = dir.join(format!("{name}{index}.sock"));
                let _ = std::fs::remove_file(&path);
                let listener = UnixListener::bind(&path)?;
                let g2 = g.clone();
                std::thread::Builder::new()
                    .name(format!("kelpie-{name}{index}"))
                    .spawn(move || g2.accept(index, kind, &listener))?;
            }
        }
        Ok(g)
    }

    /// Where rumble goes from now on.
    pub fn on_rumble(&self, sink: RumbleSink) {
        self.inner.lock().unwrap().sink = Some(sink);
    }

    /// The environment that makes a program see the pads: `LD_PRELOAD` and the sockets'
    /// directory.
    pub fn env(&self) -> Vec<(String, String)> {
        let so = self.dir.join(crate::INTERPOSER_FILE);
        vec![
            ("LD_PRELOAD".into(), so.display().to_string()),
            (crate::SOCKET_DIR_VAR.into(), self.dir.display().to_string()),
        ]
    }

    /// The directory holding the sockets and the interposer.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How programs see the pads.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// Counters for metrics.
    pub fn counters(&self) -> &GamepadCounters {
        &self.counters
    }

    fn now_ms(&self) -> u32 {
        self.epoch.elapsed().as_millis() as u32
    }

    fn accept(&self, index: usize, kind: Kind, listener: &UnixListener) {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let mut inner = self.inner.lock().unwrap();
            let slot = &mut inner.slots[index];
            let first: Vec<u8> = match kind {
                Kind::Js => {
                    pad::init_events(&slot.state, self.now_ms()).iter().flat_map(|e| e.to_bytes()).collect()
                }
                Kind::Ev => evdev::snapshot(&slot.state).to_vec(),
            };
            if (&stream).write_all(&first).is_err() {
                continue;
            }
            match kind {
                Kind::Js => slot.js.push(stream),
                Kind::Ev => {
                    let Ok(reader) = stream.try_clone() else { continue };
                    slot.ev.push(stream);
                    let g = self.clone();
                    let spawned = std::thread::Builder::new()
                        .name(format!("kelpie-ev{index}-ff"))
                        .spawn(move || g.read_rumble(index, reader));
                    if spawned.is_err() {
                        tracing::warn!(
                            pad = index,
                            "cannot start a thread for a program's rumble; it plays nothing"
                        );
                    }
                }
            }
            self.counters.readers.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Reads what a program writes on an event device's socket until it closes it, or until
    /// it writes something that is not a rumble record (then it is cut off).
    fn read_rumble(&self, index: usize, mut stream: UnixStream) {
        let mut record = [0u8; RECORD_SIZE];
        while stream.read_exact(&mut record).is_ok() {
            let Some(rumble) = Rumble::parse(&record) else {
                self.counters.rumble_refused.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(pad = index, "a program wrote something else than a rumble record; cut off");
                let _ = stream.shutdown(std::net::Shutdown::Both);
                return;
            };
            self.rumble(index, rumble, Instant::now());
        }
    }

    /// A program on pad `index` asked for `rumble` at `now`: passed to the sink for the viewer
    /// driving the pad, unless over the pad's rate (counted). Without a viewer driving the
    /// pad it goes nowhere.
    pub fn rumble(&self, index: usize, rumble: Rumble, now: Instant) {
        let mut inner = self.inner.lock().unwrap();
        let Some(slot) = inner.slots.get_mut(index) else { return };
        if !slot.limiter.allow(now) {
            self.counters.rumble_refused.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let Some(owner) = slot.owner else { return };
        if let Some(sink) = &inner.sink {
            sink(owner, index, rumble);
            self.counters.rumble.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `viewer` (the one with control) set pad `index` to the browser's standard-mapping
    /// `buttons` and `axes`. Ignored for an index beyond the pads.
    pub fn set(&self, viewer: ViewerId, index: usize, buttons: &[i32], axes: &[i32]) {
        if index >= MAX_PADS {
            return;
        }
        let new = JsState::from_standard(buttons, axes);
        let mut inner = self.inner.lock().unwrap();
        let slot = &mut inner.slots[index];
        slot.owner = Some(viewer);
        if let Backend::Uinput(path) = &self.backend
            && !slot.uinput_tried
        {
            slot.uinput_tried = true;
            self.make_uinput(index, slot, path);
        }
        self.apply(slot, new);
    }

    /// Makes pad `index` a kernel device (once), with a thread answering its force feedback.
    fn make_uinput(&self, index: usize, slot: &mut Slot, path: &Path) {
        let made = UinputPad::create(path).and_then(|p| Ok((p.ff()?, p)));
        match made {
            Ok((ff, device)) => {
                // The device starts at rest; bring it to the pad's state.
                let _ = device.write(&evdev::changes(&JsState::default(), &slot.state, evdev::now()));
                slot.uinput = Some(device);
                let g = self.clone();
                let _ = std::thread::Builder::new()
                    .name(format!("kelpie-uinput{index}"))
                    .spawn(move || ff.serve(|r| g.rumble(index, r, Instant::now())));
            }
            Err(e) => {
                self.counters.uinput_failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(pad = index, "cannot make a uinput device through {}: {e}", path.display());
                // Not again for this pad: the interposer still serves it.
            }
        }
    }

    /// Puts every pad `viewer` drove back at rest (it left or lost control).
    pub fn release(&self, viewer: ViewerId) {
        let mut inner = self.inner.lock().unwrap();
        for slot in inner.slots.iter_mut().filter(|s| s.owner == Some(viewer)) {
            slot.owner = None;
            if slot.state != JsState::neutral() {
                self.counters.released.fetch_add(1, Ordering::Relaxed);
            }
            self.apply(slot, JsState::neutral());
        }
    }

    fn apply(&self, slot: &mut Slot, new: JsState) {
        let js = pad::changes(&slot.state, &new, self.now_ms());
        let ev = evdev::changes(&slot.state, &new, evdev::now());
        slot.state = new;
        if js.is_empty() && ev.is_empty() {
            return;
        }
        self.counters.updates.fetch_add(1, Ordering::Relaxed);
        let js_bytes: Vec<u8> = js.iter().flat_map(|e: &JsEvent| e.to_bytes()).collect();
        let ev_bytes: Vec<u8> = ev.iter().flat_map(|e| e.to_bytes()).collect();
        let stalled = feed(&mut slot.js, &js_bytes) + feed(&mut slot.ev, &ev_bytes);
        if let Some(device) = &slot.uinput
            && !ev.is_empty()
            && let Err(e) = device.write(&ev)
        {
            tracing::debug!("writing to a uinput device: {e}");
        }
        let written = js.len() * slot.js.len() + ev.len() * slot.ev.len();
        self.counters.events.fetch_add(written as u64, Ordering::Relaxed);
        self.counters.dropped.fetch_add(stalled, Ordering::Relaxed);
    }
}

/// Writes `bytes` to every reader without waiting. A program that closed the device is
/// forgotten; one whose buffer is full stopped reading: it is dropped (and counted, the
/// return value) rather than sent a split record or waited for.
fn feed(readers: &mut Vec<UnixStream>, bytes: &[u8]) -> u64 {
    if bytes.is_empty() {
        return 0;
    }
    let mut stalled = 0;
    readers.retain_mut(|r| match send_nowait(r, bytes) {
        Ok(n) if n == bytes.len() => true,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe || e.kind() == io::ErrorKind::ConnectionReset => {
            false
        }
        _ => {
            let _ = r.shutdown(std::net::Shutdown::Both);
            stalled += 1;
            false
        }
    });
    stalled
}

/// One non-blocking send (the socket stays blocking for the thread reading rumble from it).
fn send_nowait(s: &UnixStream, bytes: &[u8]) -> io::Result<usize> {
    // SAFETY: a send from a live buffer on a socket we own.
    let n = unsafe {
        libc::send(s.as_raw_fd(), bytes.as_ptr().cast(), bytes.len(), libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
    };
    if n < 0 { Err(io::Error::last_os_error()) } else { Ok(n as usize) }
}

/// Writes the interposer, readable and executable by this user only.
fn write_interposer(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o700).open(path)?;
    f.write_all(crate::INTERPOSER)
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;
    use std::time::Duration;

    use super::*;
    use crate::pad::{JS_EVENT_AXIS, JS_EVENT_BUTTON, JS_EVENT_INIT};

    fn read_events(s: &mut UnixStream, n: usize) -> Vec<(i16, u8, u8)> {
        let mut buf = vec![0; 8 * n];
        s.read_exact(&mut buf).unwrap();
        buf.chunks(8).map(|c| (i16::from_ne_bytes([c[4], c[5]]), c[6], c[7])).collect()
    }

    fn connect(dir: &Path, index: usize) -> UnixStream {
        let s = UnixStream::connect(dir.join(format!("js{index}.sock"))).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    }

    fn tempdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("kelpie-gamepad-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn a_reader_gets_the_state_then_the_changes_and_release_centres_the_pad() {
        let dir = tempdir("state");
        let g = Gamepads::start(&dir, Backend::Interposer).unwrap();
        assert!(dir.join(crate::INTERPOSER_FILE).metadata().unwrap().len() > 1000);
        g.set(7, 1, &[32767], &[]);
        let mut r = connect(&dir, 1);
        let init = read_events(&mut r, 19);
        assert!(init.iter().all(|e| e.1 & JS_EVENT_INIT != 0));
        assert_eq!(init[0], (1, JS_EVENT_BUTTON | JS_EVENT_INIT, 0), "A is held when the program opens");
        g.set(7, 1, &[32767], &[0, -32767]);
        assert_eq!(read_events(&mut r, 1), [(-32767, JS_EVENT_AXIS, 1)]);
        // Another viewer's release leaves the pad alone; its driver's release centres it.
        g.release(8);
        g.release(7);
        assert_eq!(read_events(&mut r, 2), [(0, JS_EVENT_BUTTON, 0), (0, JS_EVENT_AXIS, 1)]);
        assert_eq!(g.counters().released.load(Ordering::Relaxed), 1);
        // Pad 0 was never touched: its reader starts at rest and the others' changes skip it.
        let mut r0 = connect(&dir, 0);
        let init = read_events(&mut r0, 19);
        assert!(init[..11].iter().all(|e| e.0 == 0));
        g.set(1, 4, &[32767], &[]);
        r0.set_nonblocking(true).unwrap();
        assert!(r0.read(&mut [0; 8]).is_err(), "no event for an index beyond the pads");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_reader_that_never_reads_is_dropped_not_waited_for() {
        let dir = tempdir("stall");
        let g = Gamepads::start(&dir, Backend::Interposer).unwrap();
        let _stalled = connect(&dir, 0);
        let mut live = connect(&dir, 0);
        read_events(&mut live, 19);
        // Wait until both are accepted.
        for _ in 0..100 {
            if g.counters().readers.load(Ordering::Relaxed) == 2 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        for i in 0..100_000 {
            g.set(1, 0, &[], &[i % 1000, 0]);
            if g.counters().dropped.load(Ordering::Relaxed) > 0 {
                break;
            }
            if i % 100 == 0 {
                // Keep the live reader drained.
                live.set_nonblocking(true).unwrap();
                let mut buf = [0; 65536];
                while live.read(&mut buf).is_ok_and(|n| n > 0) {}
                live.set_nonblocking(false).unwrap();
            }
        }
        assert_eq!(g.counters().dropped.load(Ordering::Relaxed), 1, "the stalled reader is dropped");
        // One that closes is forgotten without being counted as stalled.
        drop(live);
        g.set(1, 0, &[32767], &[]);
        g.set(1, 0, &[], &[]);
        assert_eq!(g.counters().dropped.load(Ordering::Relaxed), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn rumble_goes_to_the_pads_driver_within_the_rate_and_garbage_cuts_the_program_off() {
        use crate::rumble::{BURST, Rumble};
        let dir = tempdir("rumble");
        let g = Gamepads::start(&dir, Backend::Interposer).unwrap();
        let got: Arc<Mutex<Vec<(ViewerId, usize)>>> = Arc::default();
        let sink = got.clone();
        g.on_rumble(Box::new(move |v, pad, _| sink.lock().unwrap().push((v, pad))));
        let r = Rumble { strong: 1, weak: 2, duration_ms: 3 };
        let t0 = Instant::now();
        // Nobody drives pad 2: the rumble goes nowhere (and is not an error).
        g.rumble(2, r, t0);
        assert!(got.lock().unwrap().is_empty());
        g.set(5, 2, &[], &[1]);
        for _ in 0..BURST + 10 {
            g.rumble(2, r, t0);
        }
        g.rumble(9, r, t0); // beyond the pads: ignored
        assert_eq!(got.lock().unwrap().len(), BURST as usize - 1, "the burst, less the one nobody drove");
        assert!(got.lock().unwrap().iter().all(|e| *e == (5, 2)));
        assert_eq!(g.counters().rumble_refused.load(Ordering::Relaxed), 11, "the rate counts every record");
        // A second later the pad may rumble again.
        g.rumble(2, r, t0 + Duration::from_secs(1));
        assert_eq!(got.lock().unwrap().len(), BURST as usize);

        // Through the socket: an event-device reader gets the snapshot, then the changes; a
        // record that is not a rumble is counted and the program cut off.
        let mut s = UnixStream::connect(dir.join("ev2.sock")).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut snap = [0; evdev::SNAPSHOT_SIZE];
        s.read_exact(&mut snap).unwrap();
        assert_eq!(snap, evdev::snapshot(&JsState::from_standard(&[], &[1])));
        s.write_all(&[b'X'; RECORD_SIZE]).unwrap();
        let mut rest = Vec::new();
        assert_eq!(s.read_to_end(&mut rest).unwrap(), 0, "cut off");
        assert_eq!(g.counters().rumble_refused.load(Ordering::Relaxed), 12);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_uinput_device_that_cannot_be_made_is_counted_once_and_the_sockets_still_serve() {
        let dir = tempdir("uinput");
        std::fs::create_dir_all(&dir).unwrap();
        // A regular file: it opens, but it is no uinput device (its ioctls fail).
        let fake = dir.join("not-uinput");
        std::fs::write(&fake, b"").unwrap();
        let g = Gamepads::start(&dir.join("pads"), Backend::Uinput(fake.clone())).unwrap();
        assert_eq!(g.backend(), &Backend::Uinput(fake));
        let mut r = connect(&dir.join("pads"), 0);
        read_events(&mut r, 19);
        g.set(1, 0, &[32767], &[]);
        g.set(1, 0, &[0], &[]);
        assert_eq!(g.counters().uinput_failed.load(Ordering::Relaxed), 1, "tried once per pad");
        assert_eq!(read_events(&mut r, 2), [(1, JS_EVENT_BUTTON, 0), (0, JS_EVENT_BUTTON, 0)]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

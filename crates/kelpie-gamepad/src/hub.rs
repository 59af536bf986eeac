//! The session's four pads and the programs reading them: one listening Unix socket per pad
//! (`jsN.sock` in a private directory), an accepting thread each, and the state that viewers'
//! messages change. A program that connects gets the pad's whole state first (flagged
//! `JS_EVENT_INIT`), then every change. A program that stops reading is dropped once its
//! socket's buffer is full, so it never holds the server up.

use std::io::{self, Write as _};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::map::{JsState, MAX_PADS};
use crate::pad::{self, JsEvent};

/// Identifies the viewer driving a pad.
pub type ViewerId = u64;

/// Counters of the gamepad path, for metrics.
#[derive(Debug, Default)]
pub struct GamepadCounters {
    /// Pad states applied (a viewer's message that changed something).
    pub updates: AtomicU64,
    /// Joystick records written to programs.
    pub events: AtomicU64,
    /// Programs that opened a pad.
    pub readers: AtomicU64,
    /// Programs dropped because they stopped reading (not those that closed the device).
    pub dropped: AtomicU64,
    /// Pads put back at rest because their viewer left or lost control.
    pub released: AtomicU64,
}

#[derive(Default)]
struct Slot {
    state: JsState,
    owner: Option<ViewerId>,
    readers: Vec<UnixStream>,
}

struct Inner {
    slots: [Slot; MAX_PADS],
}

/// The session's pads; cheap to clone.
#[derive(Clone)]
pub struct Gamepads {
    inner: Arc<Mutex<Inner>>,
    counters: Arc<GamepadCounters>,
    epoch: Instant,
    dir: PathBuf,
}

impl Gamepads {
    /// Listens on `dir/js0.sock` .. `js3.sock` and writes the interposer to
    /// `dir/libkelpie_gamepad.so`. `dir` must be private to this user (the session's runtime
    /// directory): whoever can reach the sockets can read the pads.
    pub fn start(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        write_interposer(&dir.join(crate::INTERPOSER_FILE))?;
        let slots = std::array::from_fn(|_| Slot { state: JsState::neutral(), ..Slot::default() });
        let g = Self {
            inner: Arc::new(Mutex::new(Inner { slots })),
            counters: Arc::default(),
            epoch: Instant::now(),
            dir: dir.to_path_buf(),
        };
        for index in 0..MAX_PADS {
            let path = dir.join(format!("js{index}.sock"));
            let _ = std::fs::remove_file(&path);
            let listener = UnixListener::bind(&path)?;
            let g2 = g.clone();
            std::thread::Builder::new()
                .name(format!("kelpie-js{index}"))
                .spawn(move || g2.accept(index, &listener))?;
        }
        Ok(g)
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

    /// Counters for metrics.
    pub fn counters(&self) -> &GamepadCounters {
        &self.counters
    }

    fn now_ms(&self) -> u32 {
        self.epoch.elapsed().as_millis() as u32
    }

    fn accept(&self, index: usize, listener: &UnixListener) {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut inner = self.inner.lock().unwrap();
            let init = pad::init_events(&inner.slots[index].state, self.now_ms());
            let bytes: Vec<u8> = init.iter().flat_map(|e| e.to_bytes()).collect();
            if stream.write_all(&bytes).is_err() || stream.set_nonblocking(true).is_err() {
                continue;
            }
            self.counters.readers.fetch_add(1, Ordering::Relaxed);
            inner.slots[index].readers.push(stream);
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
        self.apply(slot, new);
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
        let events = pad::changes(&slot.state, &new, self.now_ms());
        slot.state = new;
        if events.is_empty() {
            return;
        }
        self.counters.updates.fetch_add(1, Ordering::Relaxed);
        let bytes: Vec<u8> = events.iter().flat_map(|e: &JsEvent| e.to_bytes()).collect();
        // A program that closed the device is forgotten; one whose buffer is full stopped
        // reading: it is dropped (and counted) rather than sent a split record or waited for.
        let mut stalled = 0;
        slot.readers.retain_mut(|r| match r.write(&bytes) {
            Ok(n) if n == bytes.len() => true,
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe || e.kind() == io::ErrorKind::ConnectionReset => {
                false
            }
            _ => {
                stalled += 1;
                false
            }
        });
        self.counters.events.fetch_add((events.len() * slot.readers.len()) as u64, Ordering::Relaxed);
        self.counters.dropped.fetch_add(stalled, Ordering::Relaxed);
    }
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
        let g = Gamepads::start(&dir).unwrap();
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
        let g = Gamepads::start(&dir).unwrap();
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
}

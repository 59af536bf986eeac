//! Viewers' keyboard and mouse messages → the X display, on one thread that owns the
//! XTEST connection. Tracks what each viewer holds so that nothing stays pressed when a
//! viewer leaves, loses focus, or stops sending its held-keys heartbeat.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use kelpie_input::Injector;
use kelpie_protocol::InputEvent;

/// Keys a viewer holds are released when neither a key event nor a heartbeat came for this
/// long (the client sends a heartbeat every 500 ms while keys are down).
pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(2);

/// Identifies one viewer's connection.
pub type ViewerId = u64;

enum Job {
    Event(ViewerId, InputEvent),
    Gone(ViewerId),
}

/// Counters of the input path.
#[derive(Debug, Default)]
pub struct InputCounters {
    /// Input messages applied.
    pub events: AtomicU64,
    /// Input messages that failed to apply (X errors).
    pub failed: AtomicU64,
    /// Keys released because a viewer left, lost focus or went silent.
    pub released: AtomicU64,
}

/// Handle to the input thread; cheap to clone.
#[derive(Clone)]
pub struct InputService {
    tx: mpsc::Sender<Job>,
    counters: Arc<InputCounters>,
}

#[derive(Default)]
struct Viewer {
    keys: BTreeSet<u32>,
    buttons: BTreeSet<u8>,
    last_seen: Option<Instant>,
}

impl InputService {
    /// Starts the input thread for `display`. The XTEST connection is opened on first use
    /// and reopened after an X error, so a restarted X server is picked up.
    pub fn start(display: String) -> Self {
        let (tx, rx) = mpsc::channel::<Job>();
        let counters = Arc::new(InputCounters::default());
        let c = counters.clone();
        std::thread::Builder::new()
            .name("kelpie-input".into())
            .spawn(move || run(&display, &rx, &c))
            .expect("spawning the input thread");
        Self { tx, counters }
    }

    /// Queues one input message of `viewer`.
    pub fn send(&self, viewer: ViewerId, msg: InputEvent) {
        let _ = self.tx.send(Job::Event(viewer, msg));
    }

    /// Releases everything `viewer` holds; call when its connection closes.
    pub fn gone(&self, viewer: ViewerId) {
        let _ = self.tx.send(Job::Gone(viewer));
    }

    /// Counters for metrics.
    pub fn counters(&self) -> &InputCounters {
        &self.counters
    }
}

fn run(display: &str, rx: &mpsc::Receiver<Job>, counters: &InputCounters) {
    let mut injector: Option<Injector> = None;
    let mut viewers: HashMap<ViewerId, Viewer> = HashMap::new();
    loop {
        let job = match rx.recv_timeout(Duration::from_millis(250)) {
            Ok(j) => Some(j),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        };
        if injector.is_none() && (job.is_some() || viewers.values().any(|v| !v.keys.is_empty())) {
            match Injector::open(display) {
                Ok(i) => injector = Some(i),
                Err(e) => {
                    tracing::warn!("input: {}", kelpie_media::error_chain(&e));
                    counters.failed.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            }
        }
        let Some(inj) = injector.as_mut() else { continue };
        let now = Instant::now();
        let result = match job {
            Some(Job::Event(id, msg)) => {
                let v = viewers.entry(id).or_default();
                v.last_seen = Some(now);
                counters.events.fetch_add(1, Ordering::Relaxed);
                apply(inj, v, msg, counters)
            }
            Some(Job::Gone(id)) => match viewers.remove(&id) {
                Some(mut v) => release(inj, &mut v, counters),
                None => Ok(()),
            },
            None => Ok(()),
        };
        if let Err(e) = result {
            tracing::warn!("input: {}; reconnecting to the display", kelpie_media::error_chain(&e));
            counters.failed.fetch_add(1, Ordering::Relaxed);
            injector = None;
            continue;
        }
        // Stuck-key guard: a viewer that holds keys but has gone quiet gets them released.
        for v in viewers.values_mut() {
            if !v.keys.is_empty() && v.last_seen.is_some_and(|t| now.duration_since(t) > HEARTBEAT_TIMEOUT) {
                tracing::debug!("input: heartbeat lost; releasing {} keys", v.keys.len());
                if release(inj, v, counters).is_err() {
                    injector = None;
                    break;
                }
            }
        }
    }
}

fn apply(
    inj: &mut Injector,
    v: &mut Viewer,
    msg: InputEvent,
    c: &InputCounters,
) -> Result<(), kelpie_input::InputError> {
    match msg {
        InputEvent::Key { keysym, down } => {
            if down {
                v.keys.insert(keysym);
            } else if !v.keys.remove(&keysym) {
                // Releasing a key this viewer never pressed would release another's.
                return Ok(());
            }
            inj.key(keysym, down)
        }
        InputEvent::Text { text } => inj.text(&text),
        InputEvent::Mouse { x, y } => inj.pointer(x, y),
        InputEvent::MouseRel { dx, dy } => inj.pointer_rel(dx, dy),
        InputEvent::Button { button, down } => {
            if down {
                v.buttons.insert(button);
            } else if !v.buttons.remove(&button) {
                return Ok(());
            }
            inj.button(button, down)
        }
        InputEvent::Wheel { dx, dy } => inj.wheel(dx, dy),
        InputEvent::Keys { held } => {
            let stale: Vec<u32> = v.keys.iter().copied().filter(|k| !held.contains(k)).collect();
            for k in stale {
                v.keys.remove(&k);
                c.released.fetch_add(1, Ordering::Relaxed);
                inj.key(k, false)?;
            }
            Ok(())
        }
        InputEvent::Release => release(inj, v, c),
    }
}

fn release(inj: &mut Injector, v: &mut Viewer, c: &InputCounters) -> Result<(), kelpie_input::InputError> {
    for k in std::mem::take(&mut v.keys) {
        c.released.fetch_add(1, Ordering::Relaxed);
        inj.key(k, false)?;
    }
    for b in std::mem::take(&mut v.buttons) {
        inj.button(b, false)?;
    }
    Ok(())
}

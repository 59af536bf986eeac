//! Viewers' keyboard and mouse messages → the X display, on one thread that owns the
//! XTEST connection. Input waits in bounded per-viewer queues (`queue.rs`); what each viewer
//! holds is tracked (`held.rs`) so that nothing stays pressed when a viewer leaves, loses
//! control, loses focus, or goes silent (its heartbeat stops: a cut network).

mod held;
mod queue;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use kelpie_input::Injector;
use kelpie_protocol::InputEvent;

pub use held::{HEARTBEAT_TIMEOUT, Held, Released};
pub use queue::{Batch, MAX_QUEUED_PER_VIEWER, Queues};

/// Identifies one viewer's connection.
pub type ViewerId = u64;

/// Counters of the input path.
#[derive(Debug, Default)]
pub struct InputCounters {
    /// Input messages applied.
    pub events: AtomicU64,
    /// Input messages that failed to apply (X errors).
    pub failed: AtomicU64,
    /// Keys released because a viewer left, lost control or focus, or went silent.
    pub released: AtomicU64,
    /// Mouse buttons released for the same reasons.
    pub released_buttons: AtomicU64,
    /// Times a viewer holding keys or buttons went silent and had them released.
    pub silent: AtomicU64,
    /// Input messages dropped because the viewer's queue was full (a flood).
    pub dropped: AtomicU64,
    /// Input messages still queued when their viewer left or lost control, dropped.
    pub discarded: AtomicU64,
}

struct Shared {
    queues: Mutex<Queues>,
    wake: Condvar,
}

/// Handle to the input thread; cheap to clone. The thread stops once every handle is gone.
#[derive(Clone)]
pub struct InputService {
    shared: Arc<Shared>,
    counters: Arc<InputCounters>,
}

impl InputService {
    /// Starts the input thread for `display`. The XTEST connection is opened on first use
    /// and reopened after an X error, so a restarted X server is picked up.
    pub fn start(display: String) -> Self {
        let shared = Arc::new(Shared { queues: Mutex::new(Queues::default()), wake: Condvar::new() });
        let counters = Arc::new(InputCounters::default());
        let (s, c) = (shared.clone(), counters.clone());
        std::thread::Builder::new()
            .name("kelpie-input".into())
            .spawn(move || run(&display, &s, &c))
            .expect("spawning the input thread");
        Self { shared, counters }
    }

    /// Queues one input message of `viewer`; dropped (and counted) when its queue is full.
    pub fn send(&self, viewer: ViewerId, msg: InputEvent) {
        let queued = self.shared.queues.lock().unwrap().push(viewer, msg);
        if queued {
            self.shared.wake.notify_one();
        } else {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Drops `viewer`'s queued input and releases every key and button it holds; call when
    /// its connection closes or it loses control.
    pub fn release(&self, viewer: ViewerId) {
        let discarded = self.shared.queues.lock().unwrap().release(viewer);
        self.counters.discarded.fetch_add(discarded as u64, Ordering::Relaxed);
        self.shared.wake.notify_one();
    }

    /// Counters for metrics.
    pub fn counters(&self) -> &InputCounters {
        &self.counters
    }
}

/// The next batch, waiting until there is one or a held viewer's silence is due. `None` once
/// every [`InputService`] is gone.
fn next_batch(shared: &Arc<Shared>, deadline: Option<Instant>) -> Option<Batch> {
    let mut q = shared.queues.lock().unwrap();
    loop {
        if !q.is_empty() {
            return Some(q.take());
        }
        // Only the thread holds `shared` any more.
        if Arc::strong_count(shared) == 1 {
            return None;
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| d <= now) {
            return Some(Batch::default());
        }
        // Woken by input, a release or the deadline; every second to notice the end.
        let wait = deadline.map_or(Duration::from_secs(1), |d| (d - now).min(Duration::from_secs(1)));
        q = shared.wake.wait_timeout(q, wait).unwrap().0;
    }
}

fn run(display: &str, shared: &Arc<Shared>, counters: &InputCounters) {
    let mut injector: Option<Injector> = None;
    let mut held = Held::default();
    let mut out = Vec::new();
    while let Some(batch) = next_batch(shared, held.next_deadline()) {
        let now = Instant::now();
        let mut released = Released::default();
        for id in batch.releases {
            released += held.release(id, &mut out);
        }
        for (id, msg) in batch.events {
            counters.events.fetch_add(1, Ordering::Relaxed);
            released += held.event(now, id, msg, &mut out);
        }
        let (silent, r) = held.release_silent(now, &mut out);
        if silent > 0 {
            tracing::debug!("input: {silent} viewers went silent holding keys or buttons; released");
        }
        released += r;
        counters.silent.fetch_add(silent, Ordering::Relaxed);
        counters.released.fetch_add(released.keys, Ordering::Relaxed);
        counters.released_buttons.fetch_add(released.buttons, Ordering::Relaxed);
        if out.is_empty() {
            continue;
        }
        if injector.is_none() {
            match Injector::open(display) {
                Ok(i) => injector = Some(i),
                Err(e) => {
                    tracing::warn!("input: {}", kelpie_media::error_chain(&e));
                    counters.failed.fetch_add(out.len() as u64, Ordering::Relaxed);
                    out.clear();
                    continue;
                }
            }
        }
        let inj = injector.as_mut().expect("opened above");
        for msg in std::mem::take(&mut out) {
            let injected = inject(inj, msg);
            kelpie_media::latency_mark!("injected", 0u64);
            if let Err(e) = injected {
                tracing::warn!("input: {}; reconnecting to the display", kelpie_media::error_chain(&e));
                counters.failed.fetch_add(1, Ordering::Relaxed);
                injector = None;
                break;
            }
        }
    }
}

/// Injects one event the tracking let through (only the ones that act on the display).
fn inject(inj: &mut Injector, msg: InputEvent) -> Result<(), kelpie_input::InputError> {
    match msg {
        InputEvent::Key { keysym, down } => inj.key(keysym, down),
        InputEvent::Text { text } => inj.text(&text),
        InputEvent::Mouse { x, y } => inj.pointer(x, y),
        InputEvent::MouseRel { dx, dy } => inj.pointer_rel(dx, dy),
        InputEvent::Button { button, down } => inj.button(button, down),
        InputEvent::Wheel { dx, dy } => inj.wheel(dx, dy),
        InputEvent::Keys { .. } | InputEvent::Release => Ok(()),
    }
}

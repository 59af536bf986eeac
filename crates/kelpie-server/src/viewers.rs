//! Everyone connected to this server: each viewer's outbox (the queue its socket writer
//! drains) and the session-wide [`Control`]. Delivers messages to one viewer, to all, or to
//! all but one; decides nothing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use kelpie_clipboard::cursor::CursorImage;
use kelpie_protocol::{ClipboardChunk, ServerMessage};

use crate::control::Control;
use crate::input::ViewerId;
use crate::wsmedia::{Outbound, Outbox};

/// Everyone connected to this server, and who has control.
pub struct Viewers {
    next_id: AtomicU64,
    control: Mutex<Control>,
    outboxes: Mutex<HashMap<ViewerId, Outbox>>,
}

impl Viewers {
    /// See [`Control::new`].
    pub fn new(shared_control: bool, control_idle: Duration) -> Self {
        Self {
            next_id: AtomicU64::new(1),
            control: Mutex::new(Control::new(shared_control, control_idle)),
            outboxes: Mutex::new(HashMap::new()),
        }
    }

    /// Registers a new viewer's outbox; returns its id.
    pub(crate) fn add(&self, outbox: Outbox) -> ViewerId {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.outboxes.lock().unwrap().insert(id, outbox);
        id
    }

    /// Forgets a viewer's outbox.
    pub(crate) fn remove(&self, id: ViewerId) {
        self.outboxes.lock().unwrap().remove(&id);
    }

    /// The session-wide control state, locked.
    pub(crate) fn control(&self) -> MutexGuard<'_, Control> {
        self.control.lock().unwrap()
    }

    /// Tells every viewer who is connected and who has control.
    pub(crate) fn broadcast_roster(&self) {
        let control = self.control();
        for (id, tx) in self.outboxes.lock().unwrap().iter() {
            let _ = tx.send(Outbound::Json(ServerMessage::Viewers(control.snapshot(*id))));
        }
    }

    /// Sends `msg` to viewer `id`, if it is still connected.
    pub(crate) fn tell(&self, id: ViewerId, msg: ServerMessage) {
        if let Some(tx) = self.outboxes.lock().unwrap().get(&id) {
            let _ = tx.send(Outbound::Json(msg));
        }
    }

    /// Sends clipboard chunks to viewer `to`, or to everyone but `except`.
    pub(crate) fn send_clipboard(
        &self,
        to: Option<ViewerId>,
        except: Option<ViewerId>,
        chunks: &[ClipboardChunk],
    ) {
        for (id, tx) in self.outboxes.lock().unwrap().iter() {
            if to.is_none_or(|t| t == *id) && except != Some(*id) {
                for c in chunks {
                    let _ = tx.send(Outbound::Json(ServerMessage::Clipboard(c.clone())));
                }
            }
        }
    }

    /// Sends the cursor shape to viewer `to`, or to everyone.
    pub(crate) fn send_cursor(&self, to: Option<ViewerId>, c: Arc<CursorImage>) {
        for (id, tx) in self.outboxes.lock().unwrap().iter() {
            if to.is_none_or(|t| t == *id) {
                let _ = tx.send(Outbound::Cursor(c.clone()));
            }
        }
    }

    /// Number of connected viewers.
    pub fn count(&self) -> usize {
        self.outboxes.lock().unwrap().len()
    }
}

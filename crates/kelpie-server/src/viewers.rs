//! Everyone connected to this server: each viewer's outbox (the queue its socket writer
//! drains, [`crate::outbox`]) and the session-wide [`Control`]. Lets a viewer in while fewer
//! than `--max-viewers` are connected; delivers messages to one viewer, to all, or to all but
//! one, serialising each message once for all of them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use kelpie_clipboard::cursor::CursorImage;
use kelpie_protocol::{ClipboardChunk, ServerMessage};

use crate::control::Control;
use crate::input::ViewerId;
use crate::limits::LimitCounters;
use crate::outbox::{Outbound, Outbox, Supersede};

/// A viewer was refused: this many were connected, the most allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full(pub usize);

/// Everyone connected to this server, and who has control.
pub struct Viewers {
    next_id: AtomicU64,
    control: Mutex<Control>,
    outboxes: Mutex<HashMap<ViewerId, Outbox>>,
    max: usize,
    queue_budget: usize,
    /// The last clipboard transfer sent, serialised: viewers who join later get the same
    /// bytes, not a copy each.
    last_clipboard: Mutex<Option<(u32, Arc<[Utf8Bytes]>)>>,
    /// Counters of the limits.
    pub limits: LimitCounters,
}

impl Viewers {
    /// At most `max` viewers, each with a queue of `queue_budget` bytes; see [`Control::new`]
    /// for the rest.
    pub fn new(shared_control: bool, control_idle: Duration, max: usize, queue_budget: usize) -> Self {
        Self {
            next_id: AtomicU64::new(1),
            control: Mutex::new(Control::new(shared_control, control_idle)),
            outboxes: Mutex::new(HashMap::new()),
            max,
            queue_budget,
            last_clipboard: Mutex::new(None),
            limits: LimitCounters::default(),
        }
    }

    /// Registers a new viewer's outbox and returns its id, unless `max` viewers are
    /// connected (counted in [`LimitCounters::refused`]).
    pub(crate) fn add(&self, outbox: Outbox) -> Result<ViewerId, Full> {
        let mut outboxes = self.outboxes.lock().unwrap();
        if outboxes.len() >= self.max {
            self.limits.refused.fetch_add(1, Ordering::Relaxed);
            return Err(Full(self.max));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        outboxes.insert(id, outbox);
        Ok(id)
    }

    /// Forgets a viewer's outbox.
    pub(crate) fn remove(&self, id: ViewerId) {
        self.outboxes.lock().unwrap().remove(&id);
    }

    /// A new, empty outbox of this server's budget, and its writer's end.
    pub(crate) fn new_outbox(&self) -> (Outbox, crate::outbox::OutboxReader) {
        Outbox::new(self.queue_budget)
    }

    /// The most viewers allowed at once.
    pub fn max(&self) -> usize {
        self.max
    }

    /// The session-wide control state, locked.
    pub(crate) fn control(&self) -> MutexGuard<'_, Control> {
        self.control.lock().unwrap()
    }

    /// Tells every viewer who is connected and who has control.
    pub(crate) fn broadcast_roster(&self) {
        let control = self.control();
        for (id, tx) in self.outboxes.lock().unwrap().iter() {
            let msg = ServerMessage::Viewers(control.snapshot(*id)).to_json();
            tx.send(Outbound::Text(msg.into(), Supersede::Roster));
        }
    }

    /// Sends `msg` to every viewer.
    pub(crate) fn broadcast(&self, msg: &ServerMessage) {
        for tx in self.outboxes.lock().unwrap().values() {
            tx.send_json(msg);
        }
    }

    /// Sends `msg` to viewer `id`, if it is still connected.
    pub(crate) fn tell(&self, id: ViewerId, msg: ServerMessage) {
        if let Some(tx) = self.outboxes.lock().unwrap().get(&id) {
            tx.send_json(&msg);
        }
    }

    /// Sends clipboard chunks (one transfer) to viewer `to`, or to everyone but `except`.
    pub(crate) fn send_clipboard(
        &self,
        to: Option<ViewerId>,
        except: Option<ViewerId>,
        chunks: &[ClipboardChunk],
    ) {
        let Some(seq) = chunks.first().map(|c| c.seq) else { return };
        let texts = self.serialised(seq, chunks);
        for (id, tx) in self.outboxes.lock().unwrap().iter() {
            if to.is_none_or(|t| t == *id) && except != Some(*id) {
                for t in texts.iter() {
                    tx.send(Outbound::Text(t.clone(), Supersede::Clipboard(seq)));
                }
            }
        }
    }

    /// Transfer `seq` serialised, once: the last one is kept for viewers who join later.
    fn serialised(&self, seq: u32, chunks: &[ClipboardChunk]) -> Arc<[Utf8Bytes]> {
        let mut last = self.last_clipboard.lock().unwrap();
        if let Some((s, texts)) = last.as_ref()
            && *s == seq
            && texts.len() == chunks.len()
        {
            return texts.clone();
        }
        let texts = serialise(chunks);
        *last = Some((seq, texts.clone()));
        texts
    }

    /// Sends the cursor shape to viewer `to`, or to everyone.
    pub(crate) fn send_cursor(&self, to: Option<ViewerId>, c: Arc<CursorImage>) {
        for (id, tx) in self.outboxes.lock().unwrap().iter() {
            if to.is_none_or(|t| t == *id) {
                tx.send(Outbound::Cursor(c.clone()));
            }
        }
    }

    /// Number of connected viewers.
    pub fn count(&self) -> usize {
        self.outboxes.lock().unwrap().len()
    }

    /// Bytes waiting in all viewers' queues.
    pub fn queued_bytes(&self) -> usize {
        self.outboxes.lock().unwrap().values().map(Outbox::bytes).sum()
    }
}

/// The `clipboard` messages of one transfer, in one buffer: a single allocation the size of
/// the transfer, given back whole when the last viewer is done with it, where hundreds of
/// 48 KiB strings per clipboard would leave the allocator's heap fragmented (measured: RSS
/// grew by 120 MiB over five 16 MiB clipboards, against 45 MiB this way).
fn serialise(chunks: &[ClipboardChunk]) -> Arc<[Utf8Bytes]> {
    let size: usize = chunks.iter().map(|c| c.data.len() + c.mime.len() + 80).sum();
    let mut buf = Vec::with_capacity(size);
    let mut ends = Vec::with_capacity(chunks.len());
    for c in chunks {
        serde_json::to_writer(&mut buf, &ServerMessage::Clipboard(c.clone())).expect("serialises to memory");
        ends.push(buf.len());
    }
    let all = axum::body::Bytes::from(buf);
    let mut start = 0;
    ends.into_iter()
        .map(|end| {
            let text = Utf8Bytes::try_from(all.slice(start..end)).expect("JSON is UTF-8");
            start = end;
            text
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::Next;

    fn viewers(max: usize) -> Viewers {
        Viewers::new(false, Duration::from_secs(30), max, 1 << 30)
    }

    #[test]
    fn one_over_the_limit_is_refused_and_a_leaver_frees_a_place() {
        let v = viewers(2);
        let a = v.add(v.new_outbox().0).unwrap();
        let _b = v.add(v.new_outbox().0).unwrap();
        assert_eq!(v.add(v.new_outbox().0), Err(Full(2)));
        assert_eq!(v.add(v.new_outbox().0), Err(Full(2)));
        assert_eq!(v.limits.refused.load(Ordering::Relaxed), 2);
        v.remove(a);
        assert!(v.add(v.new_outbox().0).is_ok());
        assert_eq!(v.count(), 2);
    }

    #[test]
    fn a_transfer_serialises_to_the_messages_of_its_chunks() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7) as u8).collect();
        let chunks = crate::clipboard::chunks(3, kelpie_clipboard::Mime::Png, &data);
        let texts = serialise(&chunks);
        assert_eq!(texts.len(), 6);
        for (t, c) in texts.iter().zip(&chunks) {
            assert_eq!(t.as_str(), ServerMessage::Clipboard(c.clone()).to_json());
        }
    }

    #[tokio::test]
    async fn a_clipboard_is_serialised_once_shared_and_replaced_by_the_next() {
        let v = viewers(10);
        let (oa, ra) = v.new_outbox();
        let (ob, rb) = v.new_outbox();
        v.add(oa).unwrap();
        let b = v.add(ob).unwrap();
        let seven = crate::clipboard::chunks(7, kelpie_clipboard::Mime::Text, &vec![b'x'; 100_000]);
        assert_eq!(seven.len(), 3);
        v.send_clipboard(None, None, &seven);
        let chunk = |n: Next<Outbound>| match n {
            Next::Item(Outbound::Text(t, Supersede::Clipboard(seq))) => (seq, t),
            _ => panic!("not a clipboard chunk"),
        };
        let (_, first_a) = chunk(ra.next().await);
        let (_, first_b) = chunk(rb.next().await);
        assert_eq!(first_a.as_str().as_ptr(), first_b.as_str().as_ptr(), "one copy for both");
        assert_eq!(first_a.as_str(), ServerMessage::Clipboard(seven[0].clone()).to_json());
        // Viewer b sets a new clipboard while both have read one chunk of the old one: a
        // gets the new one instead of the rest of the old; b, asked again later (as when it
        // joins), gets the same serialised copy, and the rest of the old one is dropped too.
        let eight = crate::clipboard::chunks(8, kelpie_clipboard::Mime::Text, b"new");
        let queued = v.queued_bytes();
        v.send_clipboard(None, Some(b), &eight);
        assert!(v.queued_bytes() < queued);
        let (seq, new_a) = chunk(ra.next().await);
        assert_eq!(seq, 8);
        v.send_clipboard(Some(b), None, &eight);
        let (seq, new_b) = chunk(rb.next().await);
        assert_eq!(seq, 8);
        assert_eq!(new_a.as_str().as_ptr(), new_b.as_str().as_ptr());
        assert_eq!(v.queued_bytes(), 0);
    }
}

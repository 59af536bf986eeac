//! A viewer's outgoing queue: what its socket writer ([`crate::wsmedia`]) sends next, bounded
//! in bytes. Video and sound do not queue here (the writer takes them from their broadcasts,
//! dropping what is late); everything else does, counted by its size on the wire.
//!
//! The queue ([`Queue`], without I/O) keeps only what a viewer still needs: a roster or a
//! cursor shape replaces the one still queued, and a new clipboard transfer replaces the queued
//! chunks of an older one (the page abandons an unfinished transfer when a new one starts). A
//! viewer that reads keeps its queue near empty; one that stops reading keeps at most the
//! latest of each plus the answers to its own messages. When that passes the budget
//! ([`crate::limits::queue_budget`]) the queue is emptied, takes nothing more, and the writer
//! closes the connection ([`Dropped::QueueFull`]).
//!
//! [`Outbox`] is the handle every task sends through; [`OutboxReader`] is the writer's end.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::ws::Utf8Bytes;
use kelpie_clipboard::cursor::CursorImage;
use kelpie_media::{AudioSubscription, VideoSubscription};
use kelpie_protocol::ServerMessage;
use tokio::sync::Notify;

use crate::limits::Dropped;

/// Which queued items a new one makes useless.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Supersede {
    /// None: every one is sent.
    Never,
    /// The roster (`viewers`): only the newest matters.
    Roster,
    /// The cursor shape: only the newest matters.
    Cursor,
    /// A chunk of clipboard transfer `seq`: queued chunks of other transfers are dropped.
    Clipboard(u32),
}

impl Supersede {
    /// Whether a queued item marked `self` is useless once `new` is queued.
    fn replaced_by(self, new: Self) -> bool {
        match (self, new) {
            (Self::Roster, Self::Roster) | (Self::Cursor, Self::Cursor) => true,
            (Self::Clipboard(old), Self::Clipboard(new)) => old != new,
            _ => false,
        }
    }
}

/// What a queue holds: its size on the wire and what it replaces.
pub(crate) trait Item {
    /// Bytes it will take on the socket (an estimate where the writer builds it).
    fn cost(&self) -> usize;
    /// Which queued items it replaces.
    fn supersedes(&self) -> Supersede;
}

/// What the writer does next.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next<T> {
    /// Send this.
    Item(T),
    /// Send a WebSocket ping.
    Ping,
    /// Close the connection, telling the viewer why where it still can.
    Close(Dropped),
}

/// The outcome of [`Queue::push`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// Queued.
    Queued,
    /// The budget was passed: the queue is now empty and closing.
    Overflow,
    /// The queue is closing: nothing more is taken.
    Closed,
}

/// A viewer's queue, bounded in bytes. No I/O: see [`Outbox`] for the shared handle.
#[derive(Debug)]
pub(crate) struct Queue<T> {
    items: VecDeque<T>,
    bytes: usize,
    budget: usize,
    ping: bool,
    closing: Option<Dropped>,
    /// The supersedable items queued: the newest of each kind (all chunks of one clipboard
    /// transfer). A push looks through the queue only when it replaces one of them.
    replaceable: Vec<Supersede>,
}

impl<T: Item> Queue<T> {
    /// An empty queue that holds at most `budget` bytes.
    pub(crate) fn new(budget: usize) -> Self {
        Self { items: VecDeque::new(), bytes: 0, budget, ping: false, closing: None, replaceable: Vec::new() }
    }

    /// Queues `item` after dropping what it supersedes. Past the budget the queue empties
    /// and closes ([`Dropped::QueueFull`]).
    pub(crate) fn push(&mut self, item: T) -> Pushed {
        if self.closing.is_some() {
            return Pushed::Closed;
        }
        let new = item.supersedes();
        if self.replaceable.iter().any(|old| old.replaced_by(new)) {
            let mut freed = 0;
            self.items.retain(|old| {
                let keep = !old.supersedes().replaced_by(new);
                if !keep {
                    freed += old.cost();
                }
                keep
            });
            self.bytes -= freed;
            self.replaceable.retain(|old| !old.replaced_by(new));
        }
        let bytes = self.bytes + item.cost();
        if bytes > self.budget {
            self.close(Dropped::QueueFull { budget: self.budget });
            return Pushed::Overflow;
        }
        self.bytes = bytes;
        self.items.push_back(item);
        if new != Supersede::Never && !self.replaceable.contains(&new) {
            self.replaceable.push(new);
        }
        Pushed::Queued
    }

    /// Asks for a ping ahead of the queued items (one at most is pending).
    pub(crate) fn ping(&mut self) {
        if self.closing.is_none() {
            self.ping = true;
        }
    }

    /// Empties the queue and asks the writer to close the connection for `why` (the first
    /// reason given stands).
    pub(crate) fn close(&mut self, why: Dropped) {
        self.items.clear();
        self.replaceable.clear();
        self.bytes = 0;
        self.ping = false;
        self.closing.get_or_insert(why);
    }

    /// Why the queue is closing, if it is.
    pub(crate) fn closing(&self) -> Option<Dropped> {
        self.closing
    }

    /// What the writer does next: close, ping, or send the oldest item; `None` when idle.
    pub(crate) fn pop(&mut self) -> Option<Next<T>> {
        if let Some(why) = self.closing {
            return Some(Next::Close(why));
        }
        if std::mem::take(&mut self.ping) {
            return Some(Next::Ping);
        }
        let item = self.items.pop_front()?;
        self.bytes -= item.cost();
        let kind = item.supersedes();
        if matches!(kind, Supersede::Roster | Supersede::Cursor) {
            // There was only the one. (A clipboard transfer's entry stays until a newer
            // transfer replaces it: at worst one look through the queue.)
            self.replaceable.retain(|k| *k != kind);
        }
        Some(Next::Item(item))
    }

    /// Bytes queued.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether nothing is queued (items, a ping or a close).
    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty() && !self.ping && self.closing.is_none()
    }
}

/// What a viewer's writer is asked to send, in order.
pub(crate) enum Outbound {
    /// A JSON message, already serialised (one serialisation shared by every viewer that
    /// gets the same message), and what it replaces.
    Text(Utf8Bytes, Supersede),
    /// Start sending this video (and sound), replacing any before.
    Media(VideoSubscription, Option<AudioSubscription>),
    /// Send these changed regions of the frames of the viewer's WebRTC stream, replacing any
    /// before.
    Regions(kelpie_media::RegionReceiver),
    /// Stop the video, the sound and the changed regions (the viewer moves to WebRTC, or
    /// from it).
    StopMedia,
    /// The cursor's shape (its image only the first time this viewer sees it).
    Cursor(Arc<CursorImage>),
}

impl Outbound {
    /// A JSON message that replaces nothing.
    pub(crate) fn json(msg: &ServerMessage) -> Self {
        Self::Text(msg.to_json().into(), Supersede::Never)
    }
}

impl Item for Outbound {
    fn cost(&self) -> usize {
        match self {
            Self::Text(t, _) => t.len(),
            // The PNG in base64 and the fields around it; only the first time it is sent,
            // but counted every time (the writer decides).
            Self::Cursor(c) => c.png.len().div_ceil(3) * 4 + 128,
            Self::Media(..) | Self::Regions(_) | Self::StopMedia => 0,
        }
    }

    fn supersedes(&self) -> Supersede {
        match self {
            Self::Text(_, s) => *s,
            Self::Cursor(_) => Supersede::Cursor,
            Self::Media(..) | Self::Regions(_) | Self::StopMedia => Supersede::Never,
        }
    }
}

struct Shared {
    queue: Mutex<Queue<Outbound>>,
    /// Wakes the writer (its only waiter) after a push, a ping or a close.
    wake: Notify,
}

/// The sending side of a viewer's queue. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Outbox(Arc<Shared>);

/// The writer's side of a viewer's queue.
pub(crate) struct OutboxReader(Arc<Shared>);

impl Outbox {
    /// A queue of at most `budget` bytes, and its writer's end.
    pub(crate) fn new(budget: usize) -> (Self, OutboxReader) {
        let shared = Arc::new(Shared { queue: Mutex::new(Queue::new(budget)), wake: Notify::new() });
        (Self(shared.clone()), OutboxReader(shared))
    }

    fn queue(&self) -> MutexGuard<'_, Queue<Outbound>> {
        self.0.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `item` (see [`Queue::push`]) and wakes the writer, if it may be waiting: the
    /// writer empties the queue before it waits, so only the first item after that needs a
    /// wake-up (a clipboard is hundreds of items, and a stalled writer would be woken for each).
    pub(crate) fn send(&self, item: Outbound) -> Pushed {
        let (pushed, was_empty) = {
            let mut q = self.queue();
            let was_empty = q.is_empty();
            (q.push(item), was_empty)
        };
        if pushed == Pushed::Overflow || (pushed == Pushed::Queued && was_empty) {
            self.0.wake.notify_one();
        }
        pushed
    }

    /// Queues a JSON message that replaces nothing.
    pub(crate) fn send_json(&self, msg: &ServerMessage) -> Pushed {
        self.send(Outbound::json(msg))
    }

    /// Asks the writer for a ping ahead of what is queued.
    pub(crate) fn ping(&self) {
        self.queue().ping();
        self.0.wake.notify_one();
    }

    /// Asks the writer to close the connection for `why`, dropping what is queued.
    pub(crate) fn close(&self, why: Dropped) {
        self.queue().close(why);
        self.0.wake.notify_one();
    }

    /// Bytes queued.
    pub(crate) fn bytes(&self) -> usize {
        self.queue().bytes()
    }
}

impl OutboxReader {
    fn queue(&self) -> MutexGuard<'_, Queue<Outbound>> {
        self.0.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What to do next, once there is something. Cancel-safe.
    pub(crate) async fn next(&self) -> Next<Outbound> {
        loop {
            if let Some(next) = self.queue().pop() {
                return next;
            }
            self.0.wake.notified().await;
        }
    }

    /// Resolves once the queue is closing, with why (to abandon a write that waits).
    pub(crate) async fn closing(&self) -> Dropped {
        loop {
            if let Some(why) = self.queue().closing() {
                return why;
            }
            self.0.wake.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A test item: a name, a size and what it replaces.
    #[derive(Debug, Clone, PartialEq, Eq)]
    struct It(&'static str, usize, Supersede);

    impl Item for It {
        fn cost(&self) -> usize {
            self.1
        }
        fn supersedes(&self) -> Supersede {
            self.2
        }
    }

    fn drain(q: &mut Queue<It>) -> Vec<&'static str> {
        let mut out = Vec::new();
        while let Some(n) = q.pop() {
            match n {
                Next::Item(It(name, ..)) => out.push(name),
                Next::Ping => out.push("ping"),
                Next::Close(_) => {
                    out.push("close");
                    break;
                }
            }
        }
        out
    }

    const MIB: usize = 1 << 20;

    #[test]
    fn a_reader_gets_everything_in_order_and_the_bytes_are_counted() {
        let mut q = Queue::new(10 * MIB);
        assert_eq!(q.push(It("hello", 300, Supersede::Never)), Pushed::Queued);
        assert_eq!(q.push(It("roster", 100, Supersede::Roster)), Pushed::Queued);
        assert_eq!(q.push(It("answer", 4000, Supersede::Never)), Pushed::Queued);
        assert_eq!(q.bytes(), 4400);
        assert_eq!(q.pop(), Some(Next::Item(It("hello", 300, Supersede::Never))));
        assert_eq!(q.bytes(), 4100);
        assert_eq!(drain(&mut q), ["roster", "answer"]);
        assert_eq!((q.bytes(), q.pop()), (0, None));
    }

    #[test]
    fn the_newest_roster_cursor_and_clipboard_replace_queued_ones() {
        let mut q = Queue::new(100 * MIB);
        q.push(It("roster 1", 100, Supersede::Roster));
        q.push(It("cursor 1", 2000, Supersede::Cursor));
        for chunk in ["clip 1a", "clip 1b", "clip 1c"] {
            q.push(It(chunk, 48 * 1024, Supersede::Clipboard(1)));
        }
        q.push(It("error", 80, Supersede::Never));
        // The writer has sent the first chunk of transfer 1 when the clipboard changes.
        assert_eq!(drain_one(&mut q), "roster 1");
        assert_eq!(drain_one(&mut q), "cursor 1");
        assert_eq!(drain_one(&mut q), "clip 1a");
        q.push(It("roster 2", 110, Supersede::Roster));
        q.push(It("roster 3", 120, Supersede::Roster));
        q.push(It("cursor 2", 1000, Supersede::Cursor));
        q.push(It("clip 2a", 48 * 1024, Supersede::Clipboard(2)));
        q.push(It("clip 2b", 10, Supersede::Clipboard(2)));
        assert_eq!(q.bytes(), 80 + 120 + 1000 + 48 * 1024 + 10);
        assert_eq!(drain(&mut q), ["error", "roster 3", "cursor 2", "clip 2a", "clip 2b"]);
        assert_eq!(q.bytes(), 0);
    }

    fn drain_one(q: &mut Queue<It>) -> &'static str {
        match q.pop() {
            Some(Next::Item(It(name, ..))) => name,
            other => panic!("expected an item, got {other:?}"),
        }
    }

    #[test]
    fn a_viewer_that_never_reads_holds_one_of_each_however_many_are_sent() {
        let budget = crate::limits::queue_budget(16 << 20);
        let mut q = Queue::new(budget);
        // Five 16 MiB clipboards (21.4 MiB each as sent), a thousand rosters and cursors.
        for seq in 0..5 {
            for _ in 0..456 {
                assert_eq!(q.push(It("clip", 49_152 + 96, Supersede::Clipboard(seq))), Pushed::Queued);
            }
            for _ in 0..200 {
                q.push(It("roster", 6000, Supersede::Roster));
                q.push(It("cursor", 3000, Supersede::Cursor));
            }
        }
        assert_eq!(q.bytes(), 456 * (49_152 + 96) + 6000 + 3000);
        assert!(q.bytes() < budget);
    }

    #[test]
    fn past_the_budget_the_queue_empties_closes_and_takes_nothing_more() {
        let mut q = Queue::new(MIB);
        q.ping();
        for _ in 0..10 {
            assert_eq!(q.push(It("error", 100_000, Supersede::Never)), Pushed::Queued);
        }
        assert_eq!(q.push(It("one too many", 48_577, Supersede::Never)), Pushed::Overflow);
        assert_eq!(q.bytes(), 0);
        assert_eq!(q.closing(), Some(Dropped::QueueFull { budget: MIB }));
        assert_eq!(q.push(It("late", 1, Supersede::Never)), Pushed::Closed);
        q.ping();
        // A later reason does not replace the first.
        q.close(Dropped::Silent);
        assert_eq!(q.pop(), Some(Next::Close(Dropped::QueueFull { budget: MIB })));
        assert_eq!(q.pop(), Some(Next::Close(Dropped::QueueFull { budget: MIB })));
        assert_eq!(q.bytes(), 0);
        // Exactly the budget fits.
        let mut q = Queue::new(MIB);
        assert_eq!(q.push(It("all", MIB, Supersede::Never)), Pushed::Queued);
    }

    #[test]
    fn a_ping_goes_ahead_of_the_queue_once() {
        let mut q = Queue::new(MIB);
        q.push(It("a", 1, Supersede::Never));
        q.push(It("b", 1, Supersede::Never));
        assert_eq!(drain_one(&mut q), "a");
        q.ping();
        q.ping();
        assert_eq!(drain(&mut q), ["ping", "b"]);
        q.close(Dropped::Silent);
        assert_eq!(drain(&mut q), ["close"]);
    }

    #[tokio::test]
    async fn the_writer_wakes_for_each_push_and_for_a_close() {
        let (outbox, reader) = Outbox::new(MIB);
        let msg = ServerMessage::Error { message: "x".into(), fatal: false };
        let expected = msg.to_json();
        let waiter = tokio::spawn(async move {
            let first = match reader.next().await {
                Next::Item(Outbound::Text(t, Supersede::Never)) => t.to_string(),
                _ => panic!("not the text"),
            };
            let why = reader.closing().await;
            (first, why, matches!(reader.next().await, Next::Close(Dropped::Silent)))
        });
        tokio::task::yield_now().await;
        assert_eq!(outbox.send_json(&msg), Pushed::Queued);
        tokio::task::yield_now().await;
        outbox.close(Dropped::Silent);
        assert_eq!(outbox.send_json(&msg), Pushed::Closed);
        let (first, why, closed) = waiter.await.unwrap();
        assert_eq!((first, why, closed), (expected, Dropped::Silent, true));
        assert_eq!(outbox.bytes(), 0);
    }
}

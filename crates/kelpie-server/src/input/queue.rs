//! The input waiting for the input thread, one bounded queue per viewer: a viewer flooding
//! input loses what does not fit (counted), never grows memory, and never delays the others'
//! past its own queue. A viewer that leaves or loses control has its queued input dropped and
//! a release of what it holds put first.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use kelpie_protocol::InputEvent;

use crate::input::ViewerId;

/// Input messages one viewer may have waiting. The thread applies thousands a second; a
/// person's typing and a 120 Hz mouse stay far below.
pub const MAX_QUEUED_PER_VIEWER: usize = 256;

/// What the input thread takes in one go.
#[derive(Debug, Default, PartialEq)]
pub struct Batch {
    /// Viewers whose held keys and buttons to release first.
    pub releases: Vec<ViewerId>,
    /// Then the input, in order per viewer.
    pub events: Vec<(ViewerId, InputEvent)>,
}

/// Every viewer's waiting input.
#[derive(Debug, Default)]
pub struct Queues {
    viewers: BTreeMap<ViewerId, VecDeque<InputEvent>>,
    releases: BTreeSet<ViewerId>,
}

impl Queues {
    /// Queues `msg` of `id`; false when its queue is full (the message is dropped).
    pub fn push(&mut self, id: ViewerId, msg: InputEvent) -> bool {
        let q = self.viewers.entry(id).or_default();
        if q.len() >= MAX_QUEUED_PER_VIEWER {
            return false;
        }
        q.push_back(msg);
        true
    }

    /// `id` left or lost control: its waiting input is dropped (returns how much) and a
    /// release of what it holds is due.
    pub fn release(&mut self, id: ViewerId) -> usize {
        self.releases.insert(id);
        self.viewers.remove(&id).map_or(0, |q| q.len())
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.releases.is_empty() && self.viewers.is_empty()
    }

    /// Takes everything waiting. Input queued for a viewer after its release was asked for
    /// comes after that release.
    pub fn take(&mut self) -> Batch {
        let releases = std::mem::take(&mut self.releases).into_iter().collect();
        let events = std::mem::take(&mut self.viewers)
            .into_iter()
            .flat_map(|(id, q)| q.into_iter().map(move |m| (id, m)))
            .collect();
        Batch { releases, events }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(keysym: u32) -> InputEvent {
        InputEvent::Key { keysym, down: true }
    }

    #[test]
    fn a_flood_is_cut_at_the_queue_bound_and_others_still_get_in() {
        let mut q = Queues::default();
        let accepted = (0..10_000u32).filter(|i| q.push(1, key(*i + 1))).count();
        assert_eq!(accepted, MAX_QUEUED_PER_VIEWER);
        assert!(q.push(2, key(7)), "another viewer's queue is its own");
        let b = q.take();
        assert_eq!(b.events.len(), MAX_QUEUED_PER_VIEWER + 1);
        assert_eq!(b.events[0], (1, key(1)), "the oldest are kept");
        assert!(q.is_empty());
        assert!(q.push(1, key(1)), "room again once taken");
    }

    #[test]
    fn a_departing_viewers_waiting_input_is_dropped_and_its_release_comes_first() {
        let mut q = Queues::default();
        for k in 1..=5 {
            q.push(1, key(k));
        }
        q.push(2, key(9));
        assert_eq!(q.release(1), 5);
        // Input after the release (e.g. control given back at once) follows it.
        q.push(1, key(6));
        let b = q.take();
        assert_eq!(b.releases, [1]);
        assert_eq!(b.events, [(1, key(6)), (2, key(9))]);
        assert_eq!(q.release(3), 0);
        assert_eq!(q.take(), Batch { releases: vec![3], events: vec![] });
    }
}

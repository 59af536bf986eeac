//! Each stream's changed regions ([`crate::ChangedRegion`]) for viewers whose pictures come
//! out of a decoder that does not pass them on: over WebRTC the browser decodes the stream
//! itself, so the region of each frame travels beside it (on the signalling socket), keyed by
//! its pts. One channel per stream (codec and monitor), made with the source, so a viewer can
//! listen before its stream starts and across its restarts; nothing is sent while nobody
//! listens.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;

use crate::encoder::{ChangedRegion, EncodedFrame};

/// Notes a listener may fall behind by before it misses some (it then redraws whole pictures
/// until it has the regions of consecutive frames again). About a second at 60 fps.
const DEPTH: usize = 64;

/// The changed region of the frame with presentation time `pts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionNote {
    /// The frame's presentation time.
    pub pts: Duration,
    /// Where its picture differs from the frame before it.
    pub region: ChangedRegion,
}

/// What a listener reads.
pub type RegionReceiver = broadcast::Receiver<Arc<RegionNote>>;

/// The sending end of one stream's channel; cheap to clone.
#[derive(Debug, Clone)]
pub struct RegionSender(broadcast::Sender<Arc<RegionNote>>);

impl Default for RegionSender {
    fn default() -> Self {
        Self(broadcast::channel(DEPTH).0)
    }
}

impl RegionSender {
    /// Passes on `frame`'s changed region, if it has one and someone listens.
    pub fn note(&self, frame: &EncodedFrame) {
        if let Some(region) = &frame.changed
            && self.0.receiver_count() > 0
        {
            let _ = self.0.send(Arc::new(RegionNote { pts: frame.pts, region: region.clone() }));
        }
    }

    /// A new listener: it gets the regions of the frames encoded from now on.
    pub fn subscribe(&self) -> RegionReceiver {
        self.0.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::Rect;
    use std::time::Instant;

    fn frame(ms: u64, changed: Option<ChangedRegion>) -> EncodedFrame {
        EncodedFrame {
            data: Arc::from(&[0u8][..]),
            pts: Duration::from_millis(ms),
            captured: Instant::now(),
            keyframe: changed.is_none(),
            delta: false,
            width: 64,
            height: 64,
            changed,
        }
    }

    #[test]
    fn listeners_get_the_regions_of_frames_that_have_one() {
        let tx = RegionSender::default();
        let region = ChangedRegion {
            after: Duration::from_millis(16),
            rects: vec![Rect { x: 0, y: 0, w: 16, h: 16 }],
        };
        // Nobody listens: nothing is kept for a listener that comes later.
        tx.note(&frame(16, Some(region.clone())));
        let mut rx = tx.subscribe();
        tx.note(&frame(32, None));
        tx.note(&frame(48, Some(region.clone())));
        let got = rx.try_recv().unwrap();
        assert_eq!(*got, RegionNote { pts: Duration::from_millis(48), region });
        assert!(rx.try_recv().is_err(), "a keyframe has no region");
    }
}

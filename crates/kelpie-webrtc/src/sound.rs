//! The driver's sound plumbing: one forwarding task for the session's Opus stream while
//! some viewer has an audio m-line, and one microphone player per viewer that sends one.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use kelpie_media::{AudioFrame, AudioSource, MicPlayer};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::WebRtcCounters;
use crate::hub::{Hub, PeerId};

/// Sound captured longer ago than this is not sent. Sound normally reaches the hub 10-20 ms
/// after capture (a 10 ms packet, then a fragment's wait); frames held up by a stall of the
/// capture come out in a burst. Sent, they keep the sound whole and the browser's jitter
/// buffer plays them late, draining the delay over a few seconds; dropped, they are a gap.
/// At 60 ms a loaded machine dropped 2-9 % of the frames of a tone (`soundloss.test.mjs`:
/// 1-6.5 % of the samples concealed); beyond this much the delay would outweigh the gap.
pub(crate) const MAX_AUDIO_LAG: Duration = Duration::from_millis(200);

/// Starts the audio forwarding task when a viewer wants sound, stops it when none does.
pub(crate) fn sync_feed(
    hub: &Hub,
    source: &Option<Arc<AudioSource>>,
    feed: &mut Option<JoinHandle<()>>,
    tx: &mpsc::Sender<Arc<AudioFrame>>,
    counters: &Arc<WebRtcCounters>,
) {
    let Some(source) = source else { return };
    let wanted = hub.audio_in_use();
    if feed.as_ref().is_some_and(|f| f.is_finished()) {
        *feed = None;
    }
    match (wanted, feed.is_some()) {
        (true, false) => {
            let mut sub = match source.subscribe() {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!("cannot start the audio stream: {}", kelpie_media::error_chain(&e));
                    // Do not try again on every loop turn.
                    *feed = Some(tokio::spawn(std::future::pending()));
                    return;
                }
            };
            let (tx, counters) = (tx.clone(), counters.clone());
            *feed = Some(tokio::spawn(async move {
                let mut dropped = 0;
                while let Some(f) = sub.next_decodable(MAX_AUDIO_LAG).await {
                    counters.audio_frames_dropped.fetch_add(sub.dropped() - dropped, Ordering::Relaxed);
                    dropped = sub.dropped();
                    if tx.send(f).await.is_err() {
                        return;
                    }
                }
            }));
        }
        (false, true) => {
            if let Some(f) = feed.take() {
                f.abort();
            }
        }
        _ => {}
    }
}

/// Plays a viewer's microphone packet into the session, starting its player on the first.
pub(crate) fn microphone(
    source: &Option<Arc<AudioSource>>,
    mics: &mut HashMap<PeerId, MicPlayer>,
    id: PeerId,
    opus: &[u8],
) {
    let Some(source) = source else { return };
    if let std::collections::hash_map::Entry::Vacant(slot) = mics.entry(id) {
        match source.microphone() {
            None => return,
            Some(Ok(m)) => {
                tracing::info!(%id, "microphone of the viewer is on");
                slot.insert(m);
            }
            Some(Err(e)) => {
                tracing::warn!(%id, "cannot play the microphone: {}", kelpie_media::error_chain(&e));
                return;
            }
        }
    }
    if let Some(m) = mics.get(&id)
        && let Err(e) = m.push(opus)
    {
        tracing::debug!(%id, "microphone: {}", kelpie_media::error_chain(&e));
        mics.remove(&id);
    }
}

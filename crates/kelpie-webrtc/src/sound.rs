//! The driver's sound plumbing: one forwarding task for the session's Opus stream while
//! some viewer has an audio m-line, and one microphone player per viewer that sends one.

use std::collections::HashMap;
use std::sync::Arc;

use kelpie_media::{AudioFrame, AudioSource, MicPlayer};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::hub::{Hub, PeerId};

/// Starts the audio forwarding task when a viewer wants sound, stops it when none does.
pub(crate) fn sync_feed(
    hub: &Hub,
    source: &Option<Arc<AudioSource>>,
    feed: &mut Option<JoinHandle<()>>,
    tx: &mpsc::Sender<Arc<AudioFrame>>,
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
                    tracing::error!("cannot start the audio stream: {e}");
                    // Do not try again on every loop turn.
                    *feed = Some(tokio::spawn(std::future::pending()));
                    return;
                }
            };
            let tx = tx.clone();
            *feed = Some(tokio::spawn(async move {
                use tokio::sync::broadcast::error::RecvError;
                loop {
                    match sub.recv().await {
                        Ok(f) => {
                            if tx.send(f).await.is_err() {
                                return;
                            }
                        }
                        Err(RecvError::Lagged(n)) => tracing::debug!("audio feed lagged by {n} packets"),
                        Err(RecvError::Closed) => return,
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
                tracing::warn!(%id, "cannot play the microphone: {e}");
                return;
            }
        }
    }
    if let Some(m) = mics.get(&id)
        && let Err(e) = m.push(opus)
    {
        tracing::debug!(%id, "microphone: {e}");
        mics.remove(&id);
    }
}

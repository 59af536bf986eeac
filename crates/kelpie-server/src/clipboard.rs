//! Clipboard and cursor shape between the X display (`kelpie-clipboard`) and the viewers:
//! chunking and reassembly of `clipboard` messages, who may set the remote clipboard, who
//! sees it (not view-only viewers, unless `--view-clipboard`), and the current cursor for
//! viewers who join.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use kelpie_clipboard::cursor::CursorImage;
use kelpie_clipboard::transfer::Reassembly;
use kelpie_clipboard::{Clip, Clipboard, Mime};
use kelpie_protocol::{CLIPBOARD_CHUNK_BYTES, ClipboardChunk, CursorInfo, ServerMessage};

use crate::AppState;
use crate::config::ClipboardMode;
use crate::input::ViewerId;

/// Counters of the clipboard path.
#[derive(Debug, Default)]
pub struct ClipboardCounters {
    /// Complete clipboards from viewers applied to the display.
    pub to_remote: AtomicU64,
    /// Remote clipboards sent to viewers.
    pub to_browser: AtomicU64,
    /// Chunks or transfers refused: malformed, oversized, out of order, or not allowed.
    pub rejected: AtomicU64,
    /// Remote clipboards not sent to a view-only viewer (on a change, or when it joined).
    pub withheld: AtomicU64,
}

/// The clipboard and cursor state the server shares between viewers.
pub struct ClipboardHub {
    mode: ClipboardMode,
    max: usize,
    /// Whether view-only viewers see the remote clipboard.
    view_clipboard: bool,
    clipboard: OnceLock<Clipboard>,
    /// The latest remote clipboard, for viewers who join later.
    latest: Mutex<Option<Arc<Vec<ClipboardChunk>>>>,
    next_seq: AtomicU64,
    /// The current cursor shape.
    cursor: Mutex<Option<Arc<CursorImage>>>,
    /// Counters.
    pub counters: ClipboardCounters,
}

impl ClipboardHub {
    /// A hub for `mode`, passing clipboards of at most `max` bytes; with `view_clipboard`,
    /// view-only viewers see the remote clipboard too.
    pub fn new(mode: ClipboardMode, max: u64, view_clipboard: bool) -> Self {
        Self {
            mode,
            max: usize::try_from(max).unwrap_or(usize::MAX),
            view_clipboard,
            clipboard: OnceLock::new(),
            latest: Mutex::new(None),
            next_seq: AtomicU64::new(1),
            cursor: Mutex::new(None),
            counters: ClipboardCounters::default(),
        }
    }

    /// Largest clipboard passed either way, in bytes.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Whether view-only viewers see the remote clipboard (`--view-clipboard`).
    pub fn view_clipboard(&self) -> bool {
        self.view_clipboard
    }

    /// What a viewer who just joined needs: the current cursor, and the latest clipboard if
    /// it may see it (the session decides).
    pub(crate) fn greet(&self, state: &AppState, id: ViewerId, clipboard: bool) {
        if let Some(c) = self.cursor.lock().unwrap().clone() {
            state.viewers.send_cursor(Some(id), c);
        }
        if let Some(chunks) = self.latest.lock().unwrap().clone() {
            if clipboard {
                state.viewers.send_clipboard(Some(id), None, &chunks);
            } else {
                self.counters.withheld.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn remote_changed(&self, state: &AppState, clip: &Clip, except: Option<ViewerId>) {
        if !self.mode.to_browser() {
            return;
        }
        let seq = (self.next_seq.fetch_add(1, Ordering::Relaxed) & 0xffff_ffff) as u32;
        let chunks = Arc::new(chunks(seq, clip.mime, &clip.data));
        *self.latest.lock().unwrap() = Some(chunks.clone());
        self.counters.to_browser.fetch_add(1, Ordering::Relaxed);
        // Who may see it is decided before the outboxes are locked (the control lock is
        // never taken inside theirs).
        let (mut readers, mut withheld) = (Vec::new(), 0u64);
        {
            let control = state.viewers.control();
            for id in control.ids().into_iter().filter(|id| except != Some(*id)) {
                if crate::session::sees_clipboard(control.is_view_only(id), self.view_clipboard) {
                    readers.push(id);
                } else {
                    withheld += 1;
                }
            }
        }
        self.counters.withheld.fetch_add(withheld, Ordering::Relaxed);
        for id in readers {
            state.viewers.send_clipboard(Some(id), None, &chunks);
        }
    }
}

/// Starts the clipboard (as `--clipboard` allows) and cursor threads on `display`. They hold
/// the state weakly and stop reporting once it is gone.
pub fn start(state: &Arc<AppState>, display: &str) {
    let hub = &state.clipboard;
    if hub.mode != ClipboardMode::Off {
        let weak: Weak<AppState> = Arc::downgrade(state);
        match Clipboard::start(display, hub.max, move |clip| {
            if let Some(state) = weak.upgrade() {
                state.clipboard.remote_changed(&state, &clip, None);
            }
        }) {
            Ok(c) => {
                let _ = hub.clipboard.set(c);
            }
            Err(e) => tracing::warn!("clipboard sharing is off: {}", kelpie_media::error_chain(&e)),
        }
    }
    if state.cursor_in_video {
        // The pointer is drawn into the picture: the browser's own cursor is hidden.
        let hidden = Arc::new(CursorImage {
            serial: 0,
            width: 1,
            height: 1,
            hot_x: 0,
            hot_y: 0,
            argb: vec![0],
            png: Vec::new(),
            hidden: true,
        });
        *state.clipboard.cursor.lock().unwrap() = Some(hidden);
        return;
    }
    let weak: Weak<AppState> = Arc::downgrade(state);
    let watched = kelpie_clipboard::cursor::watch(display, move |c| {
        if let Some(state) = weak.upgrade() {
            *state.clipboard.cursor.lock().unwrap() = Some(c.clone());
            state.viewers.send_cursor(None, c);
        }
    });
    if let Err(e) = watched {
        tracing::warn!("the remote cursor's shape will not be shown: {}", kelpie_media::error_chain(&e));
    }
}

/// Splits `data` into `clipboard` messages of at most [`CLIPBOARD_CHUNK_BYTES`] each (at
/// least one, so an empty clipboard is a transfer too).
pub fn chunks(seq: u32, mime: Mime, data: &[u8]) -> Vec<ClipboardChunk> {
    let n = data.len().div_ceil(CLIPBOARD_CHUNK_BYTES).max(1);
    (0..n)
        .map(|i| {
            let part = &data[(i * CLIPBOARD_CHUNK_BYTES).min(data.len())
                ..((i + 1) * CLIPBOARD_CHUNK_BYTES).min(data.len())];
            ClipboardChunk { seq, mime: mime.as_str().into(), data: B64.encode(part), last: i + 1 == n }
        })
        .collect()
}

/// The `cursor` message for one viewer: the image the first time it sees `serial`.
pub(crate) fn cursor_message(sent: &mut HashSet<u32>, c: &CursorImage) -> ServerMessage {
    if !sent.insert(c.serial) {
        return ServerMessage::Cursor(CursorInfo::cached(c.serial));
    }
    if sent.len() > 1024 {
        // A long session with ever-new cursors: start the viewer's cache over.
        sent.clear();
        sent.insert(c.serial);
    }
    ServerMessage::Cursor(CursorInfo {
        serial: c.serial,
        png: Some(B64.encode(&c.png)),
        hot_x: Some(c.hot_x),
        hot_y: Some(c.hot_y),
        width: Some(c.width),
        height: Some(c.height),
        hidden: c.hidden,
    })
}

/// Reassembles one viewer's `clipboard` chunks (made on its first chunk).
pub type Inbox = Option<Reassembly>;

/// One `clipboard` message of viewer `id`; `allowed` says whether it may drive the display
/// now. Returns the error to tell the viewer, if any.
pub(crate) fn from_viewer(
    state: &AppState,
    inbox: &mut Inbox,
    id: ViewerId,
    allowed: bool,
    chunk: &ClipboardChunk,
) -> Option<String> {
    let hub = &state.clipboard;
    let refuse = |why: &str| {
        hub.counters.rejected.fetch_add(1, Ordering::Relaxed);
        Some(why.to_string())
    };
    let inbox = inbox.get_or_insert_with(|| Reassembly::new(hub.max, CLIPBOARD_CHUNK_BYTES));
    if !hub.mode.to_remote() {
        // Only the first chunk of a transfer is answered.
        return if inbox.refuse(chunk.seq) {
            refuse("the server does not accept clipboards from the browser (--clipboard)")
        } else {
            None
        };
    }
    if !allowed {
        hub.counters.rejected.fetch_add(1, Ordering::Relaxed);
        return None;
    }
    match inbox.push(chunk.seq, &chunk.mime, &chunk.data, chunk.last) {
        Ok(None) => None,
        Ok(Some(clip)) => {
            let Some(c) = hub.clipboard.get() else {
                return refuse("the remote clipboard is unavailable");
            };
            tracing::debug!(
                viewer = id,
                bytes = clip.data.len(),
                mime = clip.mime.as_str(),
                "clipboard from viewer"
            );
            hub.counters.to_remote.fetch_add(1, Ordering::Relaxed);
            // The other viewers see the new clipboard too; the sender already has it.
            hub.remote_changed(state, &clip, Some(id));
            c.set(clip);
            None
        }
        Err(why) => refuse(&why.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_reassemble_and_are_bounded() {
        let data: Vec<u8> = (0..100_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let parts = chunks(5, Mime::Text, &data);
        assert_eq!(parts.len(), 3);
        assert!(parts.iter().all(|c| c.is_valid()));
        assert!(parts[2].last && !parts[0].last);
        let mut r = Reassembly::new(1 << 20, CLIPBOARD_CHUNK_BYTES);
        let mut out = None;
        for c in &parts {
            out = r.push(c.seq, &c.mime, &c.data, c.last).unwrap();
        }
        assert_eq!(out, Some(Clip { mime: Mime::Text, data }));
        // An empty clipboard is one chunk.
        let empty = chunks(6, Mime::Text, b"");
        assert_eq!(empty.len(), 1);
        assert!(empty[0].last && empty[0].data.is_empty());
    }

    #[test]
    fn cursor_image_is_sent_once_per_serial() {
        let c = CursorImage::new(9, 1, 1, 0, 0, vec![0xff00_0000]);
        let mut sent = HashSet::new();
        let first = cursor_message(&mut sent, &c).to_json();
        assert!(first.contains(r#""png":"#) && first.contains(r#""hot_x":0"#));
        assert_eq!(cursor_message(&mut sent, &c).to_json(), r#"{"type":"cursor","serial":9}"#);
    }
}

//! Clipboard and cursor shape between the X display (`kelpie-clipboard`) and the viewers:
//! chunking and reassembly of `clipboard` messages, who may set the remote clipboard, and
//! the current cursor for viewers who join.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use kelpie_clipboard::cursor::CursorImage;
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
}

/// The clipboard and cursor state the server shares between viewers.
pub struct ClipboardHub {
    mode: ClipboardMode,
    max: usize,
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
    /// A hub for `mode`, passing clipboards of at most `max` bytes.
    pub fn new(mode: ClipboardMode, max: u64) -> Self {
        Self {
            mode,
            max: usize::try_from(max).unwrap_or(usize::MAX),
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

    /// What a viewer who just joined needs: the current cursor, the latest clipboard.
    pub(crate) fn greet(&self, state: &AppState, id: ViewerId) {
        if let Some(c) = self.cursor.lock().unwrap().clone() {
            state.viewers.send_cursor(Some(id), c);
        }
        if let Some(chunks) = self.latest.lock().unwrap().clone() {
            state.viewers.send_clipboard(Some(id), None, &chunks);
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
        state.viewers.send_clipboard(None, except, &chunks);
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

/// Reassembles one viewer's `clipboard` chunks.
#[derive(Default)]
pub struct Inbox {
    current: Option<(u32, Mime, Vec<u8>)>,
    /// A transfer that went wrong: its later chunks are dropped silently.
    broken: Option<u32>,
}

impl Inbox {
    /// Adds one chunk; returns the clipboard when `chunk` completes it, `Err` when the
    /// transfer is refused (the rest of it is then ignored).
    pub fn push(&mut self, chunk: &ClipboardChunk, max: usize) -> Result<Option<Clip>, String> {
        if self.broken == Some(chunk.seq) {
            return Ok(None);
        }
        let Some(mime) = Mime::parse(&chunk.mime) else {
            return self.fail(chunk.seq, "unknown clipboard type".into());
        };
        let data = match B64.decode(&chunk.data) {
            Ok(d) if d.len() <= CLIPBOARD_CHUNK_BYTES => d,
            _ => return self.fail(chunk.seq, "malformed clipboard chunk".into()),
        };
        match &mut self.current {
            Some((seq, m, buf)) if *seq == chunk.seq => {
                if *m != mime {
                    return self.fail(chunk.seq, "clipboard type changed within a transfer".into());
                }
                buf.extend_from_slice(&data);
            }
            _ => self.current = Some((chunk.seq, mime, data)),
        }
        let len = self.current.as_ref().map_or(0, |c| c.2.len());
        if len > max {
            return self.fail(chunk.seq, format!("clipboard larger than the server's limit of {max} bytes"));
        }
        if !chunk.last {
            return Ok(None);
        }
        let (_, mime, data) = self.current.take().expect("set above");
        if mime == Mime::Text && std::str::from_utf8(&data).is_err() {
            return self.fail(chunk.seq, "clipboard text is not UTF-8".into());
        }
        Ok(Some(Clip { mime, data }))
    }

    fn fail(&mut self, seq: u32, why: String) -> Result<Option<Clip>, String> {
        self.current = None;
        self.broken = Some(seq);
        Err(why)
    }
}

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
    if !hub.mode.to_remote() {
        // Only the first chunk of a transfer is answered.
        return if inbox.broken.replace(chunk.seq) == Some(chunk.seq) {
            None
        } else {
            refuse("the server does not accept clipboards from the browser (--clipboard)")
        };
    }
    if !allowed {
        hub.counters.rejected.fetch_add(1, Ordering::Relaxed);
        return None;
    }
    match inbox.push(chunk, hub.max) {
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
        Err(why) => refuse(&why),
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
        let mut inbox = Inbox::default();
        assert_eq!(inbox.push(&parts[0], 1 << 20), Ok(None));
        assert_eq!(inbox.push(&parts[1], 1 << 20), Ok(None));
        assert_eq!(inbox.push(&parts[2], 1 << 20), Ok(Some(Clip { mime: Mime::Text, data: data.clone() })));
        // Too large: refused once, the rest of the transfer ignored.
        let mut inbox = Inbox::default();
        assert_eq!(inbox.push(&parts[0], 40_000), Ok(None));
        assert!(inbox.push(&parts[1], 40_000).is_err());
        assert_eq!(inbox.push(&parts[2], 40_000), Ok(None));
        // A new transfer abandons an unfinished one.
        let mut inbox = Inbox::default();
        inbox.push(&parts[0], 1 << 20).unwrap();
        let empty = chunks(6, Mime::Text, b"");
        assert_eq!(empty.len(), 1);
        assert_eq!(inbox.push(&empty[0], 1 << 20), Ok(Some(Clip { mime: Mime::Text, data: vec![] })));
        // Not UTF-8.
        let bad = chunks(7, Mime::Text, &[0xff, 0xfe]);
        assert!(Inbox::default().push(&bad[0], 1 << 20).is_err());
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

//! The X `CLIPBOARD` selection, both ways, and the shape of the X cursor.
//!
//! [`Clipboard`] runs one thread with its own X connection and a small unmapped window:
//!
//! * XFixes `SelectionNotify` says when another client takes `CLIPBOARD`; the thread then
//!   asks for `TARGETS`, picks `image/png` or `UTF8_STRING` (else `STRING`) and reads the
//!   property, following the INCR protocol for large transfers, up to a size limit.
//! * [`Clipboard::set`] makes the window the owner and answers `SelectionRequest`s for
//!   `TARGETS`, `UTF8_STRING`, `STRING`, `TEXT`, `text/plain` and `image/png`, in INCR
//!   chunks when the data is large. A change the thread made itself is not reported back.
//!
//! [`cursor::watch`] reports the cursor image (XFixes `GetCursorImage`) each time it changes.
//! [`transfer::Reassembly`] puts a clipboard sent in chunks back together, within a size limit.
#![deny(missing_docs)]

pub mod cursor;
pub mod transfer;

use std::collections::HashMap;
use std::os::fd::AsRawFd as _;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use x11rb::connection::{Connection as _, RequestConnection as _};
use x11rb::protocol::Event;
use x11rb::protocol::xfixes::{ConnectionExt as _, SelectionEventMask};
use x11rb::protocol::xproto::{
    AtomEnum, ChangeWindowAttributesAux, ConnectionExt as _, CreateWindowAux, EventMask, PropMode, Property,
    SELECTION_NOTIFY_EVENT, SelectionNotifyEvent, SelectionRequestEvent, Window, WindowClass,
};
use x11rb::rust_connection::RustConnection;
use x11rb::wrapper::ConnectionExt as _;
use x11rb::{COPY_DEPTH_FROM_PARENT, CURRENT_TIME, NONE};

/// What a clipboard holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mime {
    /// UTF-8 text.
    Text,
    /// A PNG image.
    Png,
}

impl Mime {
    /// The MIME type's name (`text/plain`, `image/png`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text/plain",
            Self::Png => "image/png",
        }
    }

    /// Parses a MIME type's name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "text/plain" => Some(Self::Text),
            "image/png" => Some(Self::Png),
            _ => None,
        }
    }
}

/// Clipboard content: text is valid UTF-8.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clip {
    /// Its type.
    pub mime: Mime,
    /// Its bytes.
    pub data: Vec<u8>,
}

/// Why the clipboard could not start. Each variant keeps its cause as its `source`.
#[derive(Debug, thiserror::Error)]
pub enum ClipboardError {
    /// No connection to the display.
    #[error("cannot connect to X display {display}")]
    Connect {
        /// The display.
        display: String,
        /// Why.
        #[source]
        source: x11rb::errors::ConnectError,
    },
    /// An X request failed.
    #[error("X request failed")]
    X(#[source] Box<dyn std::error::Error + Send + Sync>),
}

fn x(e: impl std::error::Error + Send + Sync + 'static) -> ClipboardError {
    ClipboardError::X(Box::new(e))
}

/// Handle to the clipboard thread; the thread stops when the handle is dropped.
pub struct Clipboard {
    tx: mpsc::Sender<Clip>,
    /// Written after every command so the thread, asleep in `poll`, wakes at once; closed
    /// when the handle is dropped, which wakes it to stop.
    wake: std::os::unix::net::UnixStream,
}

impl Clipboard {
    /// Connects to `display` and starts the thread. `on_change` is called on that thread with
    /// every new remote clipboard of at most `max` bytes made by another X client.
    pub fn start(
        display: &str,
        max: usize,
        on_change: impl FnMut(Clip) + Send + 'static,
    ) -> Result<Self, ClipboardError> {
        let worker = Worker::new(display, max)?;
        let (tx, rx) = mpsc::channel();
        let (wake, woken) = std::os::unix::net::UnixStream::pair().map_err(x)?;
        wake.set_nonblocking(true).map_err(x)?;
        woken.set_nonblocking(true).map_err(x)?;
        std::thread::Builder::new()
            .name("kelpie-clipboard".into())
            .spawn(move || worker.run(&rx, &woken, on_change))
            .map_err(x)?;
        Ok(Self { tx, wake })
    }

    /// Makes `clip` the remote `CLIPBOARD` (text must be UTF-8).
    pub fn set(&self, clip: Clip) {
        let _ = self.tx.send(clip);
        // A full pipe already holds a wake-up.
        let _ = std::io::Write::write(&mut &self.wake, &[1]);
    }
}

struct Atoms {
    clipboard: u32,
    targets: u32,
    utf8: u32,
    text: u32,
    text_plain: u32,
    text_plain_utf8: u32,
    png: u32,
    incr: u32,
    prop: u32,
    timestamp: u32,
}

enum Fetch {
    Idle,
    Targets,
    Data { mime: Mime, target: u32 },
    Incr { mime: Mime, target: u32, buf: Vec<u8> },
}

struct Outgoing {
    data: Arc<Vec<u8>>,
    type_: u32,
    offset: usize,
    last_activity: Instant,
}

struct Worker {
    conn: RustConnection,
    win: Window,
    atoms: Atoms,
    max: usize,
    /// Data above this size goes in INCR chunks of this size.
    incr_chunk: usize,
    fetch: Fetch,
    fetch_started: Instant,
    owned: Option<(Clip, u32)>,
    outgoing: HashMap<(Window, u32), Outgoing>,
}

/// A transfer that makes no progress for this long is abandoned.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(10);

impl Worker {
    fn new(display: &str, max: usize) -> Result<Self, ClipboardError> {
        let (conn, screen) = x11rb::connect(Some(display))
            .map_err(|source| ClipboardError::Connect { display: display.into(), source })?;
        let root = conn.setup().roots[screen].root;
        conn.xfixes_query_version(5, 0).map_err(x)?.reply().map_err(x)?;
        let atom = |name: &[u8]| -> Result<u32, ClipboardError> {
            Ok(conn.intern_atom(false, name).map_err(x)?.reply().map_err(x)?.atom)
        };
        let atoms = Atoms {
            clipboard: atom(b"CLIPBOARD")?,
            targets: atom(b"TARGETS")?,
            utf8: atom(b"UTF8_STRING")?,
            text: atom(b"TEXT")?,
            text_plain: atom(b"text/plain")?,
            text_plain_utf8: atom(b"text/plain;charset=utf-8")?,
            png: atom(b"image/png")?,
            incr: atom(b"INCR")?,
            prop: atom(b"KELPIE_CLIPBOARD")?,
            timestamp: atom(b"TIMESTAMP")?,
        };
        let win = conn.generate_id().map_err(x)?;
        conn.create_window(
            COPY_DEPTH_FROM_PARENT,
            win,
            root,
            -10,
            -10,
            1,
            1,
            0,
            WindowClass::INPUT_ONLY,
            0,
            &CreateWindowAux::new().event_mask(EventMask::PROPERTY_CHANGE),
        )
        .map_err(x)?;
        conn.xfixes_select_selection_input(
            win,
            atoms.clipboard,
            SelectionEventMask::SET_SELECTION_OWNER
                | SelectionEventMask::SELECTION_WINDOW_DESTROY
                | SelectionEventMask::SELECTION_CLIENT_CLOSE,
        )
        .map_err(x)?;
        conn.flush().map_err(x)?;
        let incr_chunk = (conn.maximum_request_bytes().saturating_sub(1024)).clamp(4096, 256 * 1024);
        Ok(Self {
            conn,
            win,
            atoms,
            max,
            incr_chunk,
            fetch: Fetch::Idle,
            fetch_started: Instant::now(),
            owned: None,
            outgoing: HashMap::new(),
        })
    }

    fn run(
        mut self,
        rx: &mpsc::Receiver<Clip>,
        woken: &std::os::unix::net::UnixStream,
        mut on_change: impl FnMut(Clip),
    ) {
        loop {
            match self.step(rx, woken, &mut on_change) {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => {
                    tracing::warn!("clipboard: {e}; clipboard sharing stops");
                    return;
                }
            }
        }
    }

    /// Waits for X events or commands and handles them: without end while idle, at most
    /// 20 ms while a transfer runs (its timeout is checked). False when the handle was
    /// dropped.
    fn step(
        &mut self,
        rx: &mpsc::Receiver<Clip>,
        woken: &std::os::unix::net::UnixStream,
        on_change: &mut impl FnMut(Clip),
    ) -> Result<bool, ClipboardError> {
        // Events x11rb already read (while waiting for a reply) are not on the socket any
        // more: handle them before sleeping on it.
        match self.conn.poll_for_event().map_err(x)? {
            Some(ev) => self.event(ev, on_change)?,
            None => {
                let busy = !matches!(self.fetch, Fetch::Idle) || !self.outgoing.is_empty();
                let mut pfd = [
                    libc::pollfd { fd: self.conn.stream().as_raw_fd(), events: libc::POLLIN, revents: 0 },
                    libc::pollfd { fd: woken.as_raw_fd(), events: libc::POLLIN, revents: 0 },
                ];
                // SAFETY: two valid pollfds for the duration of the call.
                unsafe { libc::poll(pfd.as_mut_ptr(), 2, if busy { 20 } else { -1 }) };
            }
        }
        let mut sink = [0u8; 64];
        while matches!(std::io::Read::read(&mut &*woken, &mut sink), Ok(n) if n > 0) {}
        while let Some(ev) = self.conn.poll_for_event().map_err(x)? {
            self.event(ev, on_change)?;
        }
        loop {
            match rx.try_recv() {
                Ok(clip) => self.own(clip)?,
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => return Ok(false),
            }
        }
        if !matches!(self.fetch, Fetch::Idle) && self.fetch_started.elapsed() > TRANSFER_TIMEOUT {
            tracing::debug!("clipboard: the owner stopped answering; transfer abandoned");
            self.fetch = Fetch::Idle;
        }
        self.outgoing.retain(|_, o| o.last_activity.elapsed() < TRANSFER_TIMEOUT);
        self.conn.flush().map_err(x)?;
        Ok(true)
    }

    fn own(&mut self, clip: Clip) -> Result<(), ClipboardError> {
        let time = self.server_time()?;
        self.conn.set_selection_owner(self.win, self.atoms.clipboard, time).map_err(x)?;
        let owner = self.conn.get_selection_owner(self.atoms.clipboard).map_err(x)?.reply().map_err(x)?.owner;
        if owner == self.win {
            tracing::debug!(bytes = clip.data.len(), mime = clip.mime.as_str(), "clipboard: now the owner");
            self.owned = Some((clip, time));
        } else {
            tracing::warn!("clipboard: could not take the CLIPBOARD selection");
        }
        Ok(())
    }

    /// The X server's time, from a property change on our own window (ICCCM advises
    /// against `CurrentTime` for selection ownership).
    fn server_time(&mut self) -> Result<u32, ClipboardError> {
        self.conn
            .change_property8(PropMode::APPEND, self.win, self.atoms.timestamp, AtomEnum::STRING, &[])
            .map_err(x)?;
        self.conn.flush().map_err(x)?;
        let deadline = Instant::now() + Duration::from_millis(500);
        let mut pending = Vec::new();
        let mut time = CURRENT_TIME;
        while Instant::now() < deadline {
            match self.conn.wait_for_event().map_err(x)? {
                Event::PropertyNotify(p) if p.window == self.win && p.atom == self.atoms.timestamp => {
                    time = p.time;
                    break;
                }
                other => pending.push(other),
            }
        }
        let mut ignore = |_: Clip| {};
        for ev in pending {
            self.event(ev, &mut ignore)?;
        }
        Ok(time)
    }

    fn event(&mut self, ev: Event, on_change: &mut impl FnMut(Clip)) -> Result<(), ClipboardError> {
        match ev {
            Event::XfixesSelectionNotify(e) if e.selection == self.atoms.clipboard => {
                if e.owner == self.win || e.owner == NONE {
                    return Ok(());
                }
                self.fetch = Fetch::Targets;
                self.fetch_started = Instant::now();
                // Drop whatever an abandoned transfer left.
                self.conn.delete_property(self.win, self.atoms.prop).map_err(x)?;
                self.conn
                    .convert_selection(
                        self.win,
                        self.atoms.clipboard,
                        self.atoms.targets,
                        self.atoms.prop,
                        e.timestamp,
                    )
                    .map_err(x)?;
            }
            Event::SelectionNotify(e) if e.requestor == self.win && e.selection == self.atoms.clipboard => {
                self.selection_notify(e.target, e.property, e.time, on_change)?;
            }
            Event::PropertyNotify(p)
                if p.window == self.win && p.atom == self.atoms.prop && p.state == Property::NEW_VALUE =>
            {
                self.incr_chunk_in(on_change)?;
            }
            Event::PropertyNotify(p) if p.window == self.win => {}
            Event::PropertyNotify(p) if p.state == Property::DELETE => {
                self.incr_chunk_out(p.window, p.atom)?;
            }
            Event::SelectionRequest(r) => self.request(&r)?,
            Event::SelectionClear(c) if c.selection == self.atoms.clipboard => {
                self.owned = None;
            }
            _ => {}
        }
        Ok(())
    }

    fn selection_notify(
        &mut self,
        target: u32,
        property: u32,
        time: u32,
        on_change: &mut impl FnMut(Clip),
    ) -> Result<(), ClipboardError> {
        let a = &self.atoms;
        let expected = match &self.fetch {
            Fetch::Targets => a.targets,
            Fetch::Data { target, .. } => *target,
            _ => return Ok(()),
        };
        if target != expected {
            return Ok(());
        }
        if property == NONE {
            // Refused: without TARGETS, try UTF8_STRING, then STRING.
            let next = match self.fetch {
                Fetch::Targets => Some(a.utf8),
                Fetch::Data { target, .. } if target == a.utf8 => Some(AtomEnum::STRING.into()),
                _ => None,
            };
            self.fetch = Fetch::Idle;
            if let Some(t) = next {
                self.convert(Mime::Text, t, time)?;
            }
            return Ok(());
        }
        let words = (self.max / 4 + 2).min(u32::MAX as usize) as u32;
        let reply = self
            .conn
            .get_property(true, self.win, self.atoms.prop, AtomEnum::ANY, 0, words)
            .map_err(x)?
            .reply()
            .map_err(x)?;
        if reply.type_ == self.atoms.incr {
            if let Fetch::Data { mime, target } = self.fetch {
                self.fetch = Fetch::Incr { mime, target, buf: Vec::new() };
                self.fetch_started = Instant::now();
            }
            return Ok(());
        }
        match std::mem::replace(&mut self.fetch, Fetch::Idle) {
            Fetch::Targets => {
                let targets: Vec<u32> = reply.value32().map(|v| v.collect()).unwrap_or_default();
                let a = &self.atoms;
                let (mime, t) = if targets.contains(&a.png) {
                    (Mime::Png, a.png)
                } else if targets.contains(&a.utf8) || targets.is_empty() {
                    (Mime::Text, a.utf8)
                } else if targets.contains(&a.text_plain_utf8) {
                    (Mime::Text, a.text_plain_utf8)
                } else if targets.contains(&AtomEnum::STRING.into()) {
                    (Mime::Text, AtomEnum::STRING.into())
                } else {
                    tracing::debug!("clipboard: no text or PNG among the owner's targets");
                    return Ok(());
                };
                self.convert(mime, t, time)?;
            }
            Fetch::Data { mime, target } => {
                if reply.bytes_after > 0 {
                    tracing::info!(
                        "clipboard: remote clipboard larger than the limit of {} bytes ignored",
                        self.max
                    );
                    return Ok(());
                }
                self.deliver(mime, target, reply.value, on_change);
            }
            _ => {}
        }
        Ok(())
    }

    fn convert(&mut self, mime: Mime, target: u32, time: u32) -> Result<(), ClipboardError> {
        self.fetch = Fetch::Data { mime, target };
        self.fetch_started = Instant::now();
        self.conn
            .convert_selection(self.win, self.atoms.clipboard, target, self.atoms.prop, time)
            .map_err(x)?;
        Ok(())
    }

    fn incr_chunk_in(&mut self, on_change: &mut impl FnMut(Clip)) -> Result<(), ClipboardError> {
        if !matches!(self.fetch, Fetch::Incr { .. }) {
            return Ok(());
        }
        let reply = self
            .conn
            .get_property(true, self.win, self.atoms.prop, AtomEnum::ANY, 0, u32::MAX / 4)
            .map_err(x)?
            .reply()
            .map_err(x)?;
        self.fetch_started = Instant::now();
        let Fetch::Incr { mime, target, buf } = &mut self.fetch else { unreachable!() };
        if reply.value.is_empty() {
            let (mime, target, data) = (*mime, *target, std::mem::take(buf));
            self.fetch = Fetch::Idle;
            self.deliver(mime, target, data, on_change);
        } else if buf.len() + reply.value.len() > self.max {
            tracing::info!("clipboard: remote clipboard larger than the limit of {} bytes ignored", self.max);
            self.fetch = Fetch::Idle;
        } else {
            buf.extend_from_slice(&reply.value);
        }
        Ok(())
    }

    fn deliver(&self, mime: Mime, target: u32, data: Vec<u8>, on_change: &mut impl FnMut(Clip)) {
        let data = match mime {
            Mime::Png => data,
            Mime::Text if target == u32::from(AtomEnum::STRING) => {
                data.iter().map(|&b| char::from(b)).collect::<String>().into_bytes()
            }
            Mime::Text => match String::from_utf8(data) {
                Ok(s) => s.into_bytes(),
                Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned().into_bytes(),
            },
        };
        tracing::debug!(bytes = data.len(), mime = mime.as_str(), "clipboard: remote clipboard changed");
        on_change(Clip { mime, data });
    }

    /// Answers another client's request for our selection.
    fn request(&mut self, r: &SelectionRequestEvent) -> Result<(), ClipboardError> {
        let property = if r.property == NONE { r.target } else { r.property };
        let a = &self.atoms;
        let answer: Option<(u32, Arc<Vec<u8>>)> = match &self.owned {
            Some((clip, time)) if r.selection == a.clipboard => {
                let text_targets = [a.utf8, a.text, a.text_plain, a.text_plain_utf8];
                if r.target == a.targets {
                    let mut list = vec![a.targets, a.timestamp];
                    match clip.mime {
                        Mime::Text => list.extend(text_targets.iter().chain(&[AtomEnum::STRING.into()])),
                        Mime::Png => list.push(a.png),
                    }
                    self.conn
                        .change_property32(PropMode::REPLACE, r.requestor, property, AtomEnum::ATOM, &list)
                        .map_err(x)?;
                    return self.notify(r, property);
                } else if r.target == a.timestamp {
                    self.conn
                        .change_property32(
                            PropMode::REPLACE,
                            r.requestor,
                            property,
                            AtomEnum::INTEGER,
                            &[*time],
                        )
                        .map_err(x)?;
                    return self.notify(r, property);
                } else if clip.mime == Mime::Text && text_targets.contains(&r.target) {
                    Some((a.utf8, Arc::new(clip.data.clone())))
                } else if clip.mime == Mime::Text && r.target == u32::from(AtomEnum::STRING) {
                    let latin1 = String::from_utf8_lossy(&clip.data)
                        .chars()
                        .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
                        .collect();
                    Some((AtomEnum::STRING.into(), Arc::new(latin1)))
                } else if clip.mime == Mime::Png && r.target == a.png {
                    Some((a.png, Arc::new(clip.data.clone())))
                } else {
                    None
                }
            }
            _ => None,
        };
        let Some((type_, data)) = answer else {
            return self.notify(r, NONE);
        };
        if data.len() > self.incr_chunk {
            self.conn
                .change_window_attributes(
                    r.requestor,
                    &ChangeWindowAttributesAux::new().event_mask(EventMask::PROPERTY_CHANGE),
                )
                .map_err(x)?;
            let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
            self.conn
                .change_property32(PropMode::REPLACE, r.requestor, property, self.atoms.incr, &[len])
                .map_err(x)?;
            self.outgoing.insert(
                (r.requestor, property),
                Outgoing { data, type_, offset: 0, last_activity: Instant::now() },
            );
        } else {
            self.conn.change_property8(PropMode::REPLACE, r.requestor, property, type_, &data).map_err(x)?;
        }
        self.notify(r, property)
    }

    fn notify(&self, r: &SelectionRequestEvent, property: u32) -> Result<(), ClipboardError> {
        let ev = SelectionNotifyEvent {
            response_type: SELECTION_NOTIFY_EVENT,
            sequence: 0,
            time: r.time,
            requestor: r.requestor,
            selection: r.selection,
            target: r.target,
            property,
        };
        self.conn.send_event(false, r.requestor, EventMask::NO_EVENT, ev).map_err(x)?;
        Ok(())
    }

    /// The requestor deleted the property: the next INCR chunk, or the empty one that ends it.
    fn incr_chunk_out(&mut self, window: Window, property: u32) -> Result<(), ClipboardError> {
        let Some(o) = self.outgoing.get_mut(&(window, property)) else { return Ok(()) };
        let end = (o.offset + self.incr_chunk).min(o.data.len());
        let chunk = &o.data[o.offset..end];
        self.conn.change_property8(PropMode::REPLACE, window, property, o.type_, chunk).map_err(x)?;
        o.last_activity = Instant::now();
        if chunk.is_empty() {
            self.outgoing.remove(&(window, property));
            if !self.outgoing.keys().any(|(w, _)| *w == window) {
                let _ = self.conn.change_window_attributes(
                    window,
                    &ChangeWindowAttributesAux::new().event_mask(EventMask::NO_EVENT),
                );
            }
        } else {
            o.offset = end;
        }
        Ok(())
    }
}

//! Damage-aware X11 screen capture through MIT-SHM.
//!
//! Owns one X connection, one shared-memory segment the size of the root window (or of the
//! one monitor it captures, see [`Capturer::open_monitor`]) and one DAMAGE object on the
//! root. It reports which rectangles changed since the last call and copies exactly those
//! into shared memory; it never encodes and never spawns threads.

use std::os::fd::{AsFd as _, BorrowedFd};
use std::time::Duration;

use x11rb::connection::Connection;
use x11rb::errors::ReplyOrIdError;
use x11rb::protocol::Event;
use x11rb::protocol::damage::{self, ConnectionExt as _};
use x11rb::protocol::shm::ConnectionExt as _;
use x11rb::protocol::xfixes::ConnectionExt as _;
use x11rb::protocol::xproto::{ChangeWindowAttributesAux, ConnectionExt as _, EventMask, ImageFormat};
use x11rb::rust_connection::RustConnection;

use crate::MediaError;
use crate::monitor::Monitor;

/// A rectangle of the screen, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width.
    pub w: u32,
    /// Height.
    pub h: u32,
}

impl Rect {
    /// Grows the rectangle to even coordinates and sizes (chroma is subsampled 2x2) and
    /// clips it to a `width` x `height` screen. Returns `None` when nothing is left.
    pub fn aligned_within(self, width: u32, height: u32) -> Option<Self> {
        let x0 = (self.x & !1).min(width);
        let y0 = (self.y & !1).min(height);
        let x1 = (self.x.saturating_add(self.w).saturating_add(1) & !1).min(width);
        let y1 = (self.y.saturating_add(self.h).saturating_add(1) & !1).min(height);
        (x1 > x0 && y1 > y0).then_some(Self { x: x0, y: y0, w: x1 - x0, h: y1 - y0 })
    }

    fn union(self, o: Self) -> Self {
        let x0 = self.x.min(o.x);
        let y0 = self.y.min(o.y);
        let x1 = (self.x + self.w).max(o.x + o.w);
        let y1 = (self.y + self.h).max(o.y + o.h);
        Self { x: x0, y: y0, w: x1 - x0, h: y1 - y0 }
    }

    fn area(self) -> u64 {
        u64::from(self.w) * u64::from(self.h)
    }
}

/// Merges damage rectangles into a few capture rectangles: each XShm read is a round trip, so
/// many small rectangles are cheaper read as their bounding box.
pub fn coalesce(rects: &[Rect], width: u32, height: u32, max_rects: usize) -> Vec<Rect> {
    let mut out: Vec<Rect> = rects.iter().filter_map(|r| r.aligned_within(width, height)).collect();
    // Merge overlapping or touching rectangles first, then the pair whose union wastes least
    // until at most `max_rects` remain.
    loop {
        let mut merged = false;
        'outer: for i in 0..out.len() {
            for j in i + 1..out.len() {
                let u = out[i].union(out[j]);
                if u.area() <= out[i].area() + out[j].area() {
                    out[i] = u;
                    out.swap_remove(j);
                    merged = true;
                    break 'outer;
                }
            }
        }
        if merged {
            continue;
        }
        if out.len() <= max_rects.max(1) {
            return out;
        }
        let mut best = (0, 1, u64::MAX);
        for i in 0..out.len() {
            for j in i + 1..out.len() {
                let waste = out[i].union(out[j]).area() - out[i].area() - out[j].area();
                if waste < best.2 {
                    best = (i, j, waste);
                }
            }
        }
        out[best.0] = out[best.0].union(out[best.1]);
        out.swap_remove(best.1);
    }
}

/// A System V shared-memory segment attached in this process and on the X server.
struct ShmSegment {
    id: i32,
    addr: *mut u8,
    len: usize,
}

// SAFETY: the segment is owned by one `Capturer`, which is used from one thread at a time.
unsafe impl Send for ShmSegment {}

impl ShmSegment {
    fn new(len: usize) -> Result<Self, MediaError> {
        // SAFETY: plain FFI calls; every result is checked before use.
        unsafe {
            let id = libc::shmget(libc::IPC_PRIVATE, len, libc::IPC_CREAT | 0o600);
            if id < 0 {
                return Err(MediaError::io(
                    "shmget (shared memory for the screen)",
                    std::io::Error::last_os_error(),
                ));
            }
            let addr = libc::shmat(id, std::ptr::null(), 0);
            if addr as isize == -1 {
                let e = std::io::Error::last_os_error();
                libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut());
                return Err(MediaError::io("shmat (shared memory for the screen)", e));
            }
            Ok(Self { id, addr: addr.cast(), len })
        }
    }

    fn bytes_at(&self, offset: usize, len: usize) -> &[u8] {
        assert!(offset + len <= self.len);
        // SAFETY: the mapping is `self.len` bytes long and lives as long as `self`.
        unsafe { std::slice::from_raw_parts(self.addr.add(offset), len) }
    }
}

impl Drop for ShmSegment {
    fn drop(&mut self) {
        // SAFETY: detaching and removing our own segment.
        unsafe {
            libc::shmdt(self.addr.cast());
            libc::shmctl(self.id, libc::IPC_RMID, std::ptr::null_mut());
        }
    }
}

/// The pointer's image and where it is drawn (XFixes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorShot {
    /// Screen rectangle the image covers (may reach past the screen's edges).
    pub x: i32,
    /// Top edge.
    pub y: i32,
    /// Image width.
    pub w: u32,
    /// Image height.
    pub h: u32,
    /// Changes whenever the image does.
    pub serial: u32,
    /// Premultiplied ARGB pixels, row by row.
    pub argb: Vec<u32>,
}

impl CursorShot {
    /// The screen rectangle under the image, clipped to a `width` x `height` screen.
    pub fn rect(&self, width: u32, height: u32) -> Option<Rect> {
        let x0 = self.x.max(0) as u32;
        let y0 = self.y.max(0) as u32;
        let x1 = (self.x + self.w as i32).clamp(0, width as i32) as u32;
        let y1 = (self.y + self.h as i32).clamp(0, height as i32) as u32;
        (x1 > x0 && y1 > y0).then_some(Rect { x: x0, y: y0, w: x1 - x0, h: y1 - y0 })
    }

    /// Blends the image over `bgrx` (rows of `rect.w * 4` bytes covering `rect`).
    pub fn blend_into(&self, rect: Rect, bgrx: &mut [u8]) {
        for row in 0..self.h as i32 {
            let sy = self.y + row;
            if sy < rect.y as i32 || sy >= (rect.y + rect.h) as i32 {
                continue;
            }
            for col in 0..self.w as i32 {
                let sx = self.x + col;
                if sx < rect.x as i32 || sx >= (rect.x + rect.w) as i32 {
                    continue;
                }
                let p = self.argb[(row as u32 * self.w + col as u32) as usize];
                let a = p >> 24;
                if a == 0 {
                    continue;
                }
                let i = (((sy as u32 - rect.y) * rect.w + (sx as u32 - rect.x)) * 4) as usize;
                let inv = 255 - a;
                for (c, shift) in [(0usize, 0u32), (1, 8), (2, 16)] {
                    let src = (p >> shift) & 0xff;
                    let dst = u32::from(bgrx[i + c]);
                    bgrx[i + c] = (src + (dst * inv + 127) / 255).min(255) as u8;
                }
            }
        }
    }
}

/// Captures the root window of an X display, or the part of it one monitor shows.
pub struct Capturer {
    conn: RustConnection,
    root: u32,
    /// Size of what is captured (the monitor's).
    width: u32,
    height: u32,
    /// Where the captured part lies on the screen.
    origin: (u32, u32),
    /// Size of the whole screen, to notice a resize.
    screen: (u32, u32),
    /// Capturing part of the screen: damage outside it is read and dropped as it comes, so
    /// that it never wakes the capture loop.
    partial: bool,
    /// Damage inside the captured part read while waiting, in its coordinates.
    pending: Vec<Rect>,
    shm: ShmSegment,
    shmseg: u32,
    damage: u32,
    region: u32,
    damaged: bool,
    resized: bool,
}

impl Capturer {
    /// Connects to `display` and sets up shared memory and damage tracking.
    pub fn open(display: &str) -> Result<Self, MediaError> {
        Self::open_monitor(display, Monitor::WHOLE)
    }

    /// [`Capturer::open`], capturing only what `monitor` shows: sizes, damage, grabs and the
    /// pointer are all in the monitor's coordinates (0,0 its top left corner).
    pub fn open_monitor(display: &str, monitor: Monitor) -> Result<Self, MediaError> {
        let (conn, screen_num) = x11rb::connect(Some(display))
            .map_err(|source| MediaError::Connect { display: display.to_string(), source })?;
        let screen = &conn.setup().roots[screen_num];
        let root = screen.root;
        let whole = (u32::from(screen.width_in_pixels), u32::from(screen.height_in_pixels));
        let part = monitor.rect(whole.0, whole.1);
        let (width, height) = (part.w, part.h);
        if screen.root_depth != 24 && screen.root_depth != 32 {
            return Err(MediaError::Depth { display: display.to_string(), depth: screen.root_depth });
        }
        let missing = |extension: &'static str| {
            move |e: ReplyOrIdError| MediaError::MissingExtension {
                display: display.to_string(),
                extension,
                source: e,
            }
        };
        let ext = |name: &'static str, r: Result<(), ReplyOrIdError>| r.map_err(missing(name));
        ext("MIT-SHM", conn.shm_query_version().map_err(Into::into).and_then(|c| Ok(c.reply().map(drop)?)))?;
        ext(
            "DAMAGE",
            conn.damage_query_version(1, 1).map_err(Into::into).and_then(|c| Ok(c.reply().map(drop)?)),
        )?;
        ext(
            "XFIXES",
            conn.xfixes_query_version(5, 0).map_err(Into::into).and_then(|c| Ok(c.reply().map(drop)?)),
        )?;

        let shm = ShmSegment::new(width as usize * height as usize * 4)?;
        let shmseg = conn.generate_id().map_err(lost)?;
        conn.shm_attach(shmseg, shm.id as u32, false)
            .map_err(lost)?
            .check()
            .map_err(|e| MediaError::SharedMemory { display: display.to_string(), source: e.into() })?;
        let damage = conn.generate_id().map_err(lost)?;
        conn.damage_create(damage, root, damage::ReportLevel::NON_EMPTY).map_err(lost)?;
        let region = conn.generate_id().map_err(lost)?;
        conn.xfixes_create_region(region, &[]).map_err(lost)?;
        // ConfigureNotify on the root tells of a RandR resize.
        conn.change_window_attributes(
            root,
            &ChangeWindowAttributesAux::new().event_mask(EventMask::STRUCTURE_NOTIFY),
        )
        .map_err(lost)?;
        conn.flush().map_err(lost)?;
        Ok(Self {
            conn,
            root,
            width,
            height,
            origin: (part.x, part.y),
            screen: whole,
            partial: !monitor.is_whole(),
            pending: Vec::new(),
            shm,
            shmseg,
            damage,
            region,
            damaged: true,
            resized: false,
        })
    }

    /// Whether the screen changed size since this capturer was opened: it must be
    /// reopened (its shared memory and the encoder are sized for the old screen).
    pub fn resized(&self) -> bool {
        self.resized
    }

    /// The pointer's current image and position.
    pub fn cursor(&mut self) -> Result<CursorShot, MediaError> {
        let r = self.conn.xfixes_get_cursor_image().map_err(lost)?.reply().map_err(lost)?;
        Ok(CursorShot {
            x: i32::from(r.x) - i32::from(r.xhot) - self.origin.0 as i32,
            y: i32::from(r.y) - i32::from(r.yhot) - self.origin.1 as i32,
            w: u32::from(r.width),
            h: u32::from(r.height),
            serial: r.cursor_serial,
            argb: r.cursor_image,
        })
    }

    /// Size of the captured screen.
    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// Waits up to `timeout` for the screen to change. Returns whether damage is pending.
    pub fn wait_for_damage(&mut self, timeout: Duration) -> Result<bool, MediaError> {
        self.wait(Some(timeout), None)
    }

    /// Waits until the screen changes or `wake` becomes readable, for at most `timeout`
    /// (`None`: as long as it takes). Returns whether damage is pending. No time is spent
    /// awake while nothing happens: the X connection and `wake` are polled together.
    pub fn wait_for_damage_or(
        &mut self,
        timeout: Option<Duration>,
        wake: BorrowedFd<'_>,
    ) -> Result<bool, MediaError> {
        self.wait(timeout, Some(wake))
    }

    fn wait(&mut self, timeout: Option<Duration>, wake: Option<BorrowedFd<'_>>) -> Result<bool, MediaError> {
        self.drain_events()?;
        if self.damaged || timeout.is_some_and(|t| t.is_zero()) {
            return Ok(self.damaged);
        }
        let mut fds = vec![self.conn.stream().as_fd()];
        fds.extend(wake);
        crate::mailbox::wait_readable(&fds, timeout)?;
        self.drain_events()?;
        Ok(self.damaged)
    }

    fn drain_events(&mut self) -> Result<(), MediaError> {
        let mut notified = false;
        while let Some(ev) = self.conn.poll_for_event().map_err(lost)? {
            match ev {
                Event::DamageNotify(_) => notified = true,
                Event::ConfigureNotify(c)
                    if c.window == self.root && (u32::from(c.width), u32::from(c.height)) != self.screen =>
                {
                    self.resized = true;
                }
                _ => {}
            }
        }
        if notified && self.partial {
            // Only damage on this monitor counts: the rest is dropped now (the next change
            // anywhere notifies again once the damage is emptied).
            let rects = self.fetch_damage()?;
            self.damaged |= !rects.is_empty();
            self.pending.extend(rects);
        } else if notified {
            self.damaged = true;
        }
        Ok(())
    }

    /// Empties the damage object; returns what it held, in captured coordinates, clipped to
    /// the captured part.
    fn fetch_damage(&mut self) -> Result<Vec<Rect>, MediaError> {
        self.conn.damage_subtract(self.damage, x11rb::NONE, self.region).map_err(lost)?;
        let reply = self.conn.xfixes_fetch_region(self.region).map_err(lost)?.reply().map_err(lost)?;
        let (ox, oy) = (i64::from(self.origin.0), i64::from(self.origin.1));
        let (w, h) = (i64::from(self.width), i64::from(self.height));
        Ok(reply
            .rectangles
            .iter()
            .filter_map(|r| {
                let x0 = (i64::from(r.x) - ox).clamp(0, w);
                let y0 = (i64::from(r.y) - oy).clamp(0, h);
                let x1 = (i64::from(r.x) + i64::from(r.width) - ox).clamp(0, w);
                let y1 = (i64::from(r.y) + i64::from(r.height) - oy).clamp(0, h);
                (x1 > x0 && y1 > y0).then(|| Rect {
                    x: x0 as u32,
                    y: y0 as u32,
                    w: (x1 - x0) as u32,
                    h: (y1 - y0) as u32,
                })
            })
            .collect())
    }

    /// Takes the damaged rectangles accumulated so far (all of the screen if `full`) and
    /// clears the damage.
    pub fn take_damage(&mut self, full: bool) -> Result<Vec<Rect>, MediaError> {
        self.damaged = false;
        let mut rects = std::mem::take(&mut self.pending);
        rects.extend(self.fetch_damage()?);
        if full {
            return Ok(vec![Rect { x: 0, y: 0, w: self.width, h: self.height }]);
        }
        Ok(rects)
    }

    /// Copies `rects` of the screen into shared memory and hands each part's pixels (32-bit
    /// BGRx rows of `rect.w * 4` bytes) to `each`, in order. Large rectangles are cut into bands of [`BAND_ROWS`] rows and all
    /// requests are sent at once, so the X server copies the next band while `each` converts
    /// the previous one. Rectangles must be even-aligned (see [`coalesce`]); bands are too.
    pub fn grab_all(&mut self, rects: &[Rect], mut each: impl FnMut(Rect, &[u8])) -> Result<(), MediaError> {
        let bands = rects.iter().flat_map(|r| bands(*r, BAND_ROWS));
        let mut batch: Vec<(Rect, usize)> = Vec::new();
        let mut pending = bands.peekable();
        while pending.peek().is_some() {
            batch.clear();
            let mut used = 0usize;
            // As many bands as fit in the segment side by side.
            while let Some(&band) = pending.peek() {
                let len = band.w as usize * band.h as usize * 4;
                if used + len > self.shm.len && !batch.is_empty() {
                    break;
                }
                batch.push((band, used));
                used += len;
                pending.next();
            }
            let mut cookies = Vec::with_capacity(batch.len());
            for &(band, offset) in &batch {
                cookies.push(
                    self.conn
                        .shm_get_image(
                            self.root,
                            (band.x + self.origin.0) as i16,
                            (band.y + self.origin.1) as i16,
                            band.w as u16,
                            band.h as u16,
                            !0,
                            ImageFormat::Z_PIXMAP.into(),
                            self.shmseg,
                            offset as u32,
                        )
                        .map_err(lost)?,
                );
            }
            for (cookie, &(band, offset)) in cookies.into_iter().zip(&batch) {
                let reply = cookie.reply().map_err(lost)?;
                let len = band.w as usize * band.h as usize * 4;
                if (reply.size as usize) < len {
                    return Err(MediaError::Capture(format!(
                        "X server returned {} bytes for a {}x{} image",
                        reply.size, band.w, band.h
                    )));
                }
                each(band, self.shm.bytes_at(offset, len));
            }
        }
        Ok(())
    }
}

/// Rows per band of a grab: small enough that converting one band overlaps the X server
/// copying the next, large enough that requests stay few (17 for 1080p).
pub const BAND_ROWS: u32 = 64;

/// Cuts `r` into bands of at most `rows` rows (`rows` even), top to bottom.
pub fn bands(r: Rect, rows: u32) -> impl Iterator<Item = Rect> {
    (0..r.h.div_ceil(rows)).map(move |i| {
        let y = r.y + i * rows;
        Rect { x: r.x, y, w: r.w, h: rows.min(r.y + r.h - y) }
    })
}

impl Drop for Capturer {
    fn drop(&mut self) {
        let _ = self.conn.shm_detach(self.shmseg);
        let _ = self.conn.damage_destroy(self.damage);
        let _ = self.conn.xfixes_destroy_region(self.region);
        let _ = self.conn.flush();
    }
}

fn lost(e: impl Into<ReplyOrIdError>) -> MediaError {
    MediaError::Lost(e.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(x: u32, y: u32, w: u32, h: u32) -> Rect {
        Rect { x, y, w, h }
    }

    #[test]
    fn cursor_blends_over_the_picture_and_clips() {
        // A 2x1 cursor: opaque white, then half-transparent black (premultiplied).
        let c = CursorShot { x: 1, y: 0, w: 2, h: 1, serial: 1, argb: vec![0xffff_ffff, 0x8000_0000] };
        let rect = Rect { x: 0, y: 0, w: 2, h: 2 };
        let mut px = vec![100u8; 2 * 2 * 4];
        c.blend_into(rect, &mut px);
        assert_eq!(&px[0..3], &[100, 100, 100], "left of the cursor untouched");
        assert_eq!(&px[4..7], &[255, 255, 255], "opaque white");
        assert_eq!(&px[8..11], &[100, 100, 100], "next row untouched");
        assert_eq!(c.rect(2, 2), Some(Rect { x: 1, y: 0, w: 1, h: 1 }), "clipped to the screen");
        let mut px = vec![200u8; 4 * 4];
        let c2 = CursorShot { x: 0, y: 0, w: 1, h: 1, serial: 2, argb: vec![0x8000_0000] };
        c2.blend_into(Rect { x: 0, y: 0, w: 4, h: 1 }, &mut px);
        assert_eq!(px[0], 100, "half-transparent black halves the value");
    }

    #[test]
    fn alignment_grows_to_even_and_clips() {
        assert_eq!(r(3, 5, 2, 2).aligned_within(100, 100), Some(r(2, 4, 4, 4)));
        assert_eq!(r(98, 98, 10, 10).aligned_within(100, 100), Some(r(98, 98, 2, 2)));
        assert_eq!(r(200, 0, 10, 10).aligned_within(100, 100), None);
    }

    #[test]
    fn coalesce_merges_overlaps_and_caps_count() {
        let rects = [r(0, 0, 10, 10), r(4, 4, 10, 10), r(100, 100, 2, 2)];
        let out = coalesce(&rects, 1000, 1000, 8);
        assert_eq!(out.len(), 2);
        assert!(out.contains(&r(100, 100, 2, 2)));
        let many: Vec<Rect> = (0..20).map(|i| r(i * 40, i * 40, 2, 2)).collect();
        let out = coalesce(&many, 1000, 1000, 4);
        assert!(out.len() <= 4);
        // Every damaged pixel is still covered.
        for m in &many {
            assert!(
                out.iter()
                    .any(|o| o.x <= m.x && o.y <= m.y && o.x + o.w >= m.x + m.w && o.y + o.h >= m.y + m.h)
            );
        }
    }
}

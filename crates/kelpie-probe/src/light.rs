//! The desktop's common, light workloads: a small region changing (`strip`), a terminal
//! scrolling text (`scroll`), and keys drawn as they arrive (`keys`, for key-to-photon
//! latency).

use kelpie_input::Keymap;
use kelpie_probe::{STAMP_HEIGHT, STAMP_WIDTH};
use x11rb::connection::Connection as _;
use x11rb::protocol::xproto::{
    ChangeWindowAttributesAux, ConnectionExt as _, EventMask, Gcontext, InputFocus, Rectangle,
};

use super::{Ctx, GLYPH_H, GLYPH_W, Rng, TEXT_LEFT, TEXT_TOP, XFail, XResult, outside_stamp, rect};

const GREY: (u8, u8, u8) = (128, 128, 128);

/// Where the boxes of a strip of `area` % of a `w` x `h` screen go, besides the timestamp:
/// first right of it in its rows, then full-width rows below it.
pub(crate) fn strip_boxes(w: i32, h: i32, area: f64) -> Vec<Rectangle> {
    let (sw, sh) = (STAMP_WIDTH as i32, STAMP_HEIGHT as i32);
    let wanted = (f64::from(w) * f64::from(h) * area / 100.0).round() as i64 - i64::from(sw * sh);
    let mut boxes = Vec::new();
    if wanted <= 0 || w <= 0 {
        return boxes;
    }
    let beside = i64::from((w - sw).max(0)) * i64::from(sh);
    let first = wanted.min(beside);
    if first > 0 {
        boxes.push(rect(sw, 0, (first / i64::from(sh)) as i32, sh));
    }
    let rest = wanted - first;
    if rest > 0 {
        let rows = ((rest + i64::from(w) - 1) / i64::from(w)) as i32;
        let rows = rows.min(h - sh);
        boxes.push(rect(0, sh, w, rows));
    }
    boxes.retain(|r| r.width > 0 && r.height > 0);
    boxes
}

/// A still grey screen in which only a strip changes: the timestamp and striped boxes that
/// shift by a stripe every frame.
pub(crate) struct Strip {
    grey: Gcontext,
    dark: Gcontext,
    light: Gcontext,
    boxes: Vec<Rectangle>,
    area: f64,
}

impl Strip {
    pub(crate) fn new(ctx: &Ctx, area: f64) -> XResult<Self> {
        Ok(Self {
            grey: ctx.gc(GREY)?,
            dark: ctx.gc((20, 20, 60))?,
            light: ctx.gc((230, 230, 200))?,
            boxes: strip_boxes(i32::from(ctx.width), i32::from(ctx.height), area),
            area,
        })
    }

    pub(crate) fn free(&self, ctx: &Ctx) -> XResult<()> {
        for gc in [self.grey, self.dark, self.light] {
            ctx.conn.free_gc(gc)?;
        }
        Ok(())
    }

    pub(crate) fn draw_all(&mut self, ctx: &Ctx, frame: u64) -> XResult<()> {
        self.boxes = strip_boxes(i32::from(ctx.width), i32::from(ctx.height), self.area);
        let r: Vec<_> = outside_stamp(ctx.full()).collect();
        ctx.fill(self.grey, &r)?;
        self.frame(ctx, frame)
    }

    /// 6-pixel stripes, light and dark, moved by 2 pixels a frame: every pixel of the boxes
    /// changes within three frames, most of them every frame.
    pub(crate) fn frame(&mut self, ctx: &Ctx, frame: u64) -> XResult<()> {
        let phase = (frame % 3) as i32 * 2;
        let (mut light, mut dark) = (Vec::new(), Vec::new());
        for b in &self.boxes {
            let (x0, x1) = (i32::from(b.x), i32::from(b.x) + i32::from(b.width));
            let mut x = x0 - phase;
            let mut k = 0;
            while x < x1 {
                let (a, e) = (x.max(x0), (x + 6).min(x1));
                if e > a {
                    let r = rect(a, i32::from(b.y), e - a, i32::from(b.height));
                    if k % 2 == 0 { light.push(r) } else { dark.push(r) }
                }
                x += 6;
                k += 1;
            }
        }
        ctx.fill(self.light, &light)?;
        ctx.fill(self.dark, &dark)
    }
}

/// A terminal: light glyph blocks on black in lines of `GLYPH_H`; every frame the text
/// scrolls up one line (one CopyArea, as xterm scrolls) and a new line is written at the
/// bottom.
pub(crate) struct Scroll {
    black: Gcontext,
    ink: Gcontext,
    rng: Rng,
}

impl Scroll {
    pub(crate) fn new(ctx: &Ctx, seed: u64) -> XResult<Self> {
        Ok(Self { black: ctx.gc((0, 0, 0))?, ink: ctx.gc((200, 200, 200))?, rng: Rng::new(seed) })
    }

    pub(crate) fn free(&self, ctx: &Ctx) -> XResult<()> {
        ctx.conn.free_gc(self.black)?;
        ctx.conn.free_gc(self.ink)?;
        Ok(())
    }

    fn rows(ctx: &Ctx) -> i32 {
        ((i32::from(ctx.height) - TEXT_TOP) / GLYPH_H).max(1)
    }

    pub(crate) fn draw_all(&mut self, ctx: &Ctx) -> XResult<()> {
        let r: Vec<_> = outside_stamp(ctx.full()).collect();
        ctx.fill(self.black, &r)?;
        for row in 0..Self::rows(ctx) {
            self.line(ctx, row)?;
        }
        Ok(())
    }

    pub(crate) fn frame(&mut self, ctx: &Ctx) -> XResult<()> {
        let rows = Self::rows(ctx);
        let w = i32::from(ctx.width);
        if rows > 1 {
            let h = (rows - 1) * GLYPH_H;
            ctx.conn.copy_area(
                ctx.win,
                ctx.win,
                ctx.copy_gc,
                0,
                (TEXT_TOP + GLYPH_H) as i16,
                0,
                TEXT_TOP as i16,
                w as u16,
                h as u16,
            )?;
        }
        let last = TEXT_TOP + (rows - 1) * GLYPH_H;
        ctx.fill(self.black, &[rect(0, last, w, GLYPH_H)])?;
        self.line(ctx, rows - 1)
    }

    /// Writes a line of words (2 to 8 glyphs each) of 10 to 100 glyphs at `row`.
    fn line(&mut self, ctx: &Ctx, row: i32) -> XResult<()> {
        let cols = ((i32::from(ctx.width) - 2 * TEXT_LEFT) / GLYPH_W).max(1);
        let len = (10 + self.rng.below(90) as i32).min(cols);
        let base = TEXT_TOP + row * GLYPH_H;
        let mut glyphs = Vec::new();
        let mut col = 0;
        while col < len {
            let word = 2 + self.rng.below(7) as i32;
            for c in col..(col + word).min(len) {
                let x = TEXT_LEFT + c * GLYPH_W + 1;
                glyphs.push(match self.rng.below(4) {
                    0 => rect(x, base + 3, GLYPH_W - 2, 12),
                    1 => rect(x, base + 7, GLYPH_W - 2, 12),
                    _ => rect(x, base + 7, GLYPH_W - 2, 8),
                });
            }
            col += word + 1;
        }
        ctx.fill(self.ink, &glyphs)
    }
}

/// The value the stamp strip shows after `presses` key presses, the last of `keysym`.
pub(crate) fn key_value(presses: u64, keysym: u32) -> u64 {
    (presses << 32) | u64::from(keysym)
}

/// A grey screen with the keyboard focus; each key press redraws the stamp strip with
/// [`key_value`].
pub(crate) struct Keys {
    grey: Gcontext,
    keymap: Keymap,
    presses: u64,
    value: u64,
}

impl Keys {
    pub(crate) fn new(ctx: &Ctx) -> XResult<Self> {
        ctx.conn.change_window_attributes(
            ctx.win,
            &ChangeWindowAttributesAux::new().event_mask(EventMask::EXPOSURE | EventMask::KEY_PRESS),
        )?;
        let keymap =
            Keymap::fetch(&ctx.conn).map_err(|e| XFail::Other(anyhow::anyhow!("reading the keymap: {e}")))?;
        Ok(Self { grey: ctx.gc(GREY)?, keymap, presses: 0, value: 0 })
    }

    pub(crate) fn free(&self, ctx: &Ctx) -> XResult<()> {
        ctx.conn.free_gc(self.grey)?;
        Ok(())
    }

    pub(crate) fn remap(&mut self, ctx: &Ctx) -> XResult<()> {
        self.keymap =
            Keymap::fetch(&ctx.conn).map_err(|e| XFail::Other(anyhow::anyhow!("reading the keymap: {e}")))?;
        Ok(())
    }

    /// Draws the background and the last key's stamp, and takes the keyboard focus (the
    /// window is mapped by now).
    pub(crate) fn draw_all(&mut self, ctx: &mut Ctx) -> XResult<()> {
        let r: Vec<_> = outside_stamp(ctx.full()).collect();
        ctx.fill(self.grey, &r)?;
        ctx.conn.set_input_focus(InputFocus::POINTER_ROOT, ctx.win, x11rb::CURRENT_TIME)?;
        self.stamp(ctx)
    }

    pub(crate) fn press(&mut self, ctx: &mut Ctx, keycode: u8, state: u16) -> XResult<()> {
        self.presses += 1;
        self.value = key_value(self.presses, self.keymap.lookup(keycode, state & 0xff));
        self.stamp(ctx)?;
        ctx.conn.flush()?;
        Ok(())
    }

    fn stamp(&self, ctx: &mut Ctx) -> XResult<()> {
        let Ctx { conn, win, copy_gc, stamp, .. } = ctx;
        stamp.draw(conn, *win, *copy_gc, self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn area(rs: &[Rectangle]) -> i64 {
        rs.iter().map(|r| i64::from(r.width) * i64::from(r.height)).sum()
    }

    #[test]
    fn a_strip_covers_the_asked_share_of_the_screen_with_the_timestamp() {
        let stamp = (STAMP_WIDTH * STAMP_HEIGHT) as i64;
        for (w, h, pct) in [(1920, 1080, 1.0), (3840, 2160, 1.0), (1920, 1080, 10.0), (1280, 720, 2.0)] {
            let boxes = strip_boxes(w, h, pct);
            let want = (f64::from(w) * f64::from(h) * pct / 100.0) as i64;
            let got = area(&boxes) + stamp;
            assert!((got - want).abs() <= i64::from(w) + 16, "{w}x{h} {pct} %: {got} px for {want}");
            for b in &boxes {
                assert!(
                    i32::from(b.x) + i32::from(b.width) <= w && i32::from(b.y) + i32::from(b.height) <= h
                );
                // Never over the stamp.
                assert!(i32::from(b.x) >= STAMP_WIDTH as i32 || i32::from(b.y) >= STAMP_HEIGHT as i32);
            }
        }
        // Less than the stamp itself: the stamp alone.
        assert!(strip_boxes(1920, 1080, 0.5).is_empty());
    }

    #[test]
    fn a_key_value_carries_the_press_count_and_the_keysym() {
        let v = key_value(3, 0x61);
        assert_eq!((v >> 32, v & 0xffff_ffff), (3, 0x61));
        assert!(key_value(0xffff, 0x1000_20ac) < 1 << 48, "fits the stamp's 48 bits");
    }
}

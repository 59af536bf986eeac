//! The X cursor's shape: XFixes `CursorNotify` events and `GetCursorImage`, as PNG.

use std::sync::Arc;

use x11rb::connection::Connection as _;
use x11rb::protocol::Event;
use x11rb::protocol::xfixes::{ConnectionExt as _, CursorNotifyMask};

use crate::{ClipboardError, x};

/// One cursor shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorImage {
    /// The X server's serial of this cursor (a new shape gets a new serial).
    pub serial: u32,
    /// Width in pixels.
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
    /// Hotspot column.
    pub hot_x: u16,
    /// Hotspot row.
    pub hot_y: u16,
    /// Premultiplied ARGB pixels, row by row (as XFixes gives them).
    pub argb: Vec<u32>,
    /// The image as a PNG (straight RGBA).
    pub png: Vec<u8>,
    /// Every pixel is transparent: the cursor is hidden.
    pub hidden: bool,
}

impl CursorImage {
    /// Builds a cursor from XFixes' premultiplied ARGB pixels, encoding the PNG.
    pub fn new(serial: u32, width: u16, height: u16, hot_x: u16, hot_y: u16, argb: Vec<u32>) -> Self {
        let hidden = argb.iter().all(|p| p >> 24 == 0);
        let png = encode_png(u32::from(width), u32::from(height), &argb);
        Self { serial, width, height, hot_x, hot_y, argb, png, hidden }
    }
}

/// PNG of premultiplied ARGB pixels (un-premultiplied to straight RGBA).
pub fn encode_png(width: u32, height: u32, argb: &[u32]) -> Vec<u8> {
    let mut rgba = Vec::with_capacity(argb.len() * 4);
    for &p in argb {
        let a = p >> 24;
        let un = |c: u32| (c * 255 + a / 2).checked_div(a).map_or(0, |v| v.min(255) as u8);
        rgba.extend_from_slice(&[un((p >> 16) & 0xff), un((p >> 8) & 0xff), un(p & 0xff), a as u8]);
    }
    let mut out = Vec::new();
    if width == 0 || height == 0 || rgba.len() != (width * height * 4) as usize {
        return out;
    }
    let mut enc = png::Encoder::new(&mut out, width, height);
    enc.set_color(png::ColorType::Rgba);
    enc.set_depth(png::BitDepth::Eight);
    let ok = enc.write_header().and_then(|mut w| w.write_image_data(&rgba)).is_ok();
    if !ok {
        out.clear();
    }
    out
}

/// Connects to `display`, reports the current cursor, then every change, on a thread of
/// its own that ends when the display goes away.
pub fn watch(
    display: &str,
    mut on_change: impl FnMut(Arc<CursorImage>) + Send + 'static,
) -> Result<(), ClipboardError> {
    let (conn, screen) = x11rb::connect(Some(display))
        .map_err(|source| ClipboardError::Connect { display: display.into(), source })?;
    let root = conn.setup().roots[screen].root;
    conn.xfixes_query_version(4, 0).map_err(x)?.reply().map_err(x)?;
    conn.xfixes_select_cursor_input(root, CursorNotifyMask::DISPLAY_CURSOR).map_err(x)?;
    conn.flush().map_err(x)?;
    std::thread::Builder::new()
        .name("kelpie-cursor".into())
        .spawn(move || {
            let mut last = None;
            let mut fetch = || -> Result<(), ClipboardError> {
                let mut tries = 0;
                let r = loop {
                    match conn.xfixes_get_cursor_image().map_err(x)?.reply() {
                        Ok(r) => break r,
                        // The cursor changed under the request: ask again.
                        Err(x11rb::errors::ReplyError::X11Error(e)) if tries < 5 => {
                            tracing::debug!("cursor: {e:?}");
                            tries += 1;
                            std::thread::sleep(std::time::Duration::from_millis(20));
                        }
                        Err(x11rb::errors::ReplyError::X11Error(e)) => {
                            tracing::debug!("cursor: {e:?}; waiting for the next change");
                            return Ok(());
                        }
                        Err(e) => return Err(x(e)),
                    }
                };
                if last != Some(r.cursor_serial) {
                    last = Some(r.cursor_serial);
                    on_change(Arc::new(CursorImage::new(
                        r.cursor_serial,
                        r.width,
                        r.height,
                        r.xhot,
                        r.yhot,
                        r.cursor_image,
                    )));
                }
                Ok(())
            };
            let result = (|| -> Result<(), ClipboardError> {
                fetch()?;
                loop {
                    let ev = conn.wait_for_event().map_err(x)?;
                    if let Event::XfixesCursorNotify(_) = ev {
                        fetch()?;
                    }
                }
            })();
            if let Err(e) = result {
                tracing::warn!("cursor: {e}; cursor shapes stop");
            }
        })
        .map_err(x)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_of_premultiplied_pixels() {
        let c = CursorImage::new(1, 2, 1, 0, 0, vec![0x8040_2010, 0]);
        assert!(!c.hidden);
        assert_eq!(&c.png[1..4], b"PNG");
        let dec = png::Decoder::new(&c.png[..]);
        let mut r = dec.read_info().unwrap();
        let mut buf = vec![0; r.output_buffer_size()];
        r.next_frame(&mut buf).unwrap();
        assert_eq!(&buf[..8], &[0x80, 0x40, 0x20, 0x80, 0, 0, 0, 0]);
        assert!(CursorImage::new(2, 1, 1, 0, 0, vec![0]).hidden);
    }
}

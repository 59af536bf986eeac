//! Resizing a display with RandR 1.2: a mode of the wanted size is created if the output
//! lacks one, added to the output and set on its CRTC, and the screen follows. Works on Xvfb
//! and on Xorg with the dummy driver; the screen cannot outgrow the server's maximum.

use x11rb::connection::Connection as _;
use x11rb::protocol::randr::{self, ConnectionExt as _};
use x11rb::protocol::xproto::ConnectionExt as _;

use crate::DesktopError;

fn err(
    display: &str,
    what: &'static str,
    e: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> DesktopError {
    DesktopError::Resize { display: display.to_string(), what, source: e.into() }
}

/// The largest size the display's screen may take.
pub fn max_size(display: &str) -> Result<(u32, u32), DesktopError> {
    let (conn, screen) = x11rb::connect(Some(display)).map_err(|e| err(display, "connect", e))?;
    let root = conn.setup().roots[screen].root;
    let r = conn
        .randr_get_screen_size_range(root)
        .map_err(|e| err(display, "RandR", e))?
        .reply()
        .map_err(|e| err(display, "RandR is not available", e))?;
    Ok((u32::from(r.max_width), u32::from(r.max_height)))
}

/// Resizes `display` to `width` x `height` (clamped to the screen's maximum and rounded to
/// even numbers), reporting 96 dpi. Returns the size it now has.
pub fn resize(display: &str, width: u32, height: u32) -> Result<(u32, u32), DesktopError> {
    resize_dpi(display, width, height, 96)
}

/// [`resize`], with the screen's physical size set so that it reports `dpi`.
pub fn resize_dpi(display: &str, width: u32, height: u32, dpi: u32) -> Result<(u32, u32), DesktopError> {
    let mm_per_px = 25.4 / f64::from(dpi.clamp(24, 960));
    let (conn, screen) = x11rb::connect(Some(display)).map_err(|e| err(display, "connect", e))?;
    let root = conn.setup().roots[screen].root;
    conn.randr_query_version(1, 2)
        .map_err(|e| err(display, "RandR request failed", e))?
        .reply()
        .map_err(|e| err(display, "RandR request failed", e))?;
    let range = conn
        .randr_get_screen_size_range(root)
        .map_err(|e| err(display, "RandR request failed", e))?
        .reply()
        .map_err(|e| err(display, "RandR request failed", e))?;
    let w = (width.clamp(u32::from(range.min_width).max(64), u32::from(range.max_width)) & !1) as u16;
    let h = (height.clamp(u32::from(range.min_height).max(64), u32::from(range.max_height)) & !1) as u16;
    let geo = conn
        .get_geometry(root)
        .map_err(|e| err(display, "RandR request failed", e))?
        .reply()
        .map_err(|e| err(display, "RandR request failed", e))?;
    if (geo.width, geo.height) == (w, h) {
        // Same size; the dpi may still change.
        set_screen(&conn, root, w, h, mm_per_px).map_err(|e| err(display, "RandR request failed", e))?;
        return Ok((u32::from(w), u32::from(h)));
    }
    let res = conn
        .randr_get_screen_resources(root)
        .map_err(|e| err(display, "RandR request failed", e))?
        .reply()
        .map_err(|e| err(display, "RandR request failed", e))?;
    // The first output with a CRTC carries the picture.
    let mut target = None;
    for &output in &res.outputs {
        let info = conn
            .randr_get_output_info(output, res.config_timestamp)
            .map_err(|e| err(display, "RandR request failed", e))?
            .reply()
            .map_err(|e| err(display, "RandR request failed", e))?;
        let crtc = if info.crtc != 0 { Some(info.crtc) } else { info.crtcs.first().copied() };
        if let Some(crtc) = crtc {
            target = Some((output, crtc, info.modes));
            break;
        }
    }
    let Some((output, crtc, output_modes)) = target else {
        // No CRTC (very old servers): only the screen size can change.
        set_screen(&conn, root, w, h, mm_per_px).map_err(|e| err(display, "RandR request failed", e))?;
        return Ok((u32::from(w), u32::from(h)));
    };
    let existing = res.modes.iter().find(|m| m.width == w && m.height == h).map(|m| m.id);
    let mode = match existing {
        Some(id) => id,
        None => {
            let name = format!("{w}x{h}_kelpie");
            let info = randr::ModeInfo {
                id: 0,
                width: w,
                height: h,
                dot_clock: u32::from(w) * u32::from(h) * 60,
                hsync_start: w,
                hsync_end: w,
                htotal: w,
                hskew: 0,
                vsync_start: h,
                vsync_end: h,
                vtotal: h,
                name_len: name.len() as u16,
                mode_flags: randr::ModeFlag::from(0u32),
            };
            conn.randr_create_mode(root, info, name.as_bytes())
                .map_err(|e| err(display, "RandR request failed", e))?
                .reply()
                .map_err(|e| err(display, "RandR request failed", e))?
                .mode
        }
    };
    if !output_modes.contains(&mode) {
        conn.randr_add_output_mode(output, mode)
            .map_err(|e| err(display, "RandR request failed", e))?
            .check()
            .map_err(|e| err(display, "RandR request failed", e))?;
    }
    let growing = w > geo.width || h > geo.height;
    if growing {
        set_screen(&conn, root, w.max(geo.width), h.max(geo.height), mm_per_px)
            .map_err(|e| err(display, "RandR request failed", e))?;
    }
    let status = conn
        .randr_set_crtc_config(
            crtc,
            x11rb::CURRENT_TIME,
            res.config_timestamp,
            0,
            0,
            mode,
            randr::Rotation::ROTATE0,
            &[output],
        )
        .map_err(|e| err(display, "RandR request failed", e))?
        .reply()
        .map_err(|e| err(display, "RandR request failed", e))?
        .status;
    if status != randr::SetConfig::SUCCESS {
        return Err(err(display, "the CRTC refused the mode", format!("{status:?}")));
    }
    set_screen(&conn, root, w, h, mm_per_px).map_err(|e| err(display, "RandR request failed", e))?;
    let name = display;
    tracing::info!("resized {name} to {w}x{h}");
    Ok((u32::from(w), u32::from(h)))
}

fn set_screen(
    conn: &x11rb::rust_connection::RustConnection,
    root: u32,
    w: u16,
    h: u16,
    mm_per_px: f64,
) -> Result<(), x11rb::errors::ReplyError> {
    let mm = |px: u16| (f64::from(px) * mm_per_px).round() as u32;
    conn.randr_set_screen_size(root, w, h, mm(w), mm(h))?.check()?;
    Ok(())
}

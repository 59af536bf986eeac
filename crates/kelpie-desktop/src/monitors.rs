//! RandR 1.5 monitors that match how Kelpie splits its screen (`--monitors 2`), so that
//! programs on the display (window managers, browsers, toolkits placing dialogs) see two
//! monitors side by side instead of one wide screen.
//!
//! The monitors are set with `RRSetMonitor` from a connection Kelpie keeps open for the
//! session, on a thread that watches the screen's size (`RRScreenChangeNotify`) and sets them
//! again after every resize. The first monitor takes the screen's output (so that the
//! server's own monitor for its CRTC is covered and not listed beside them); the others have
//! none. The split itself comes from the caller (Kelpie's media crate decides it).

use x11rb::connection::Connection as _;
use x11rb::protocol::Event;
use x11rb::protocol::randr::{self, ConnectionExt as _};
use x11rb::protocol::xproto::{self, ConnectionExt as _};
use x11rb::rust_connection::RustConnection;

use crate::DesktopError;

/// One monitor's place on the screen, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width.
    pub w: u32,
    /// Height.
    pub h: u32,
}

/// How a `width` x `height` screen is split into monitors, left to right.
pub type Split = Box<dyn Fn(u32, u32) -> Vec<Place> + Send>;

/// Called with the screen's new size after it changed (and the monitors followed).
pub type OnResize = Box<dyn Fn(u32, u32) + Send>;

fn err(
    display: &str,
    what: &'static str,
    e: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> DesktopError {
    DesktopError::Resize { display: display.to_string(), what, source: e.into() }
}

/// The monitors' names: `KELPIE-1`, `KELPIE-2`, ...
pub fn name(index: usize) -> String {
    format!("KELPIE-{}", index + 1)
}

/// Sets the monitors of `display` as `split` places them and keeps them so for the life of
/// the process: a thread holds the connection and sets them again whenever the screen's
/// size changes, then calls `on_resize`. Fails (and sets nothing) when the server lacks
/// RandR 1.5.
pub fn keep(display: &str, split: Split, on_resize: OnResize) -> Result<(), DesktopError> {
    let (conn, screen) = x11rb::connect(Some(display)).map_err(|e| err(display, "connect", e))?;
    let root = conn.setup().roots[screen].root;
    let v = conn
        .randr_query_version(1, 5)
        .map_err(|e| err(display, "RandR request failed", e))?
        .reply()
        .map_err(|e| err(display, "RandR is not available", e))?;
    if (v.major_version, v.minor_version) < (1, 5) {
        return Err(err(
            display,
            "RandR 1.5 (monitors) is not available",
            format!("the X server has RandR {}.{}", v.major_version, v.minor_version),
        ));
    }
    conn.randr_select_input(root, randr::NotifyMask::SCREEN_CHANGE)
        .map_err(|e| err(display, "RandR request failed", e))?;
    let mut names = Vec::new();
    let geo = conn
        .get_geometry(root)
        .map_err(|e| err(display, "X request failed", e))?
        .reply()
        .map_err(|e| err(display, "X request failed", e))?;
    let s = &conn.setup().roots[screen];
    let mut size = (u32::from(geo.width), u32::from(geo.height));
    let mm = (u32::from(s.width_in_millimeters), u32::from(s.height_in_millimeters));
    set(&conn, root, &split, size, mm, &mut names).map_err(|e| err(display, "RRSetMonitor failed", e))?;
    let dpy = display.to_string();
    tracing::info!("RandR monitors of {dpy}: {}, as Kelpie splits the screen", names.len());
    std::thread::Builder::new()
        .name("kelpie-monitors".into())
        .spawn(move || {
            loop {
                let event = match conn.wait_for_event() {
                    Ok(e) => e,
                    Err(e) => {
                        tracing::warn!("RandR monitors of {dpy} no longer kept: {e}");
                        return;
                    }
                };
                let Event::RandrScreenChangeNotify(e) = event else { continue };
                let new = (u32::from(e.width), u32::from(e.height));
                if new == size {
                    continue;
                }
                size = new;
                let mm = (u32::from(e.mwidth), u32::from(e.mheight));
                match set(&conn, root, &split, size, mm, &mut names) {
                    Ok(()) => {
                        tracing::info!("RandR monitors of {dpy} follow the screen: {}x{}", size.0, size.1)
                    }
                    Err(e) => tracing::warn!("cannot set the RandR monitors of {dpy} again: {e}"),
                }
                on_resize(size.0, size.1);
            }
        })
        .map_err(|e| err(display, "start a thread", e))?;
    Ok(())
}

/// Sets one monitor per place of `split(size)`; `mm` is the screen's physical size.
fn set(
    conn: &RustConnection,
    root: xproto::Window,
    split: &Split,
    (width, height): (u32, u32),
    (mm_w, mm_h): (u32, u32),
    names: &mut Vec<xproto::Atom>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let places = split(width, height);
    while names.len() < places.len() {
        let atom = conn.intern_atom(false, name(names.len()).as_bytes())?.reply()?.atom;
        names.push(atom);
    }
    let output = active_output(conn, root)?;
    // Physical size in proportion to the screen's (96 dpi when the server gives none).
    let mm = |px: u32, screen_px: u32, screen_mm: u32| match screen_mm {
        0 => px * 254 / 960,
        _ => (u64::from(px) * u64::from(screen_mm) / u64::from(screen_px.max(1))) as u32,
    };
    let clamp16 = |v: u32| v.min(u32::from(u16::MAX)) as u16;
    // The server refuses a monitor whose name it lists already: the old ones go first.
    let listed = conn.randr_get_monitors(root, false)?.reply()?;
    for m in listed.monitors.iter().filter(|m| names.contains(&m.name)) {
        conn.randr_delete_monitor(root, m.name)?.check()?;
    }
    for (i, p) in places.iter().enumerate() {
        let info = randr::MonitorInfo {
            name: names[i],
            primary: i == 0,
            automatic: false,
            x: p.x.min(i16::MAX as u32) as i16,
            y: p.y.min(i16::MAX as u32) as i16,
            width: clamp16(p.w),
            height: clamp16(p.h),
            width_in_millimeters: mm(p.w, width, mm_w),
            height_in_millimeters: mm(p.h, height, mm_h),
            outputs: if i == 0 { output.into_iter().collect() } else { Vec::new() },
        };
        conn.randr_set_monitor(root, info)?.check()?;
    }
    Ok(())
}

/// The output of the screen's first active CRTC, if any.
fn active_output(
    conn: &RustConnection,
    root: xproto::Window,
) -> Result<Option<randr::Output>, Box<dyn std::error::Error + Send + Sync>> {
    let res = conn.randr_get_screen_resources_current(root)?.reply()?;
    for crtc in res.crtcs {
        let info = conn.randr_get_crtc_info(crtc, res.config_timestamp)?.reply()?;
        if info.mode != 0
            && let Some(o) = info.outputs.first()
        {
            return Ok(Some(*o));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monitors_are_named_from_one() {
        assert_eq!(name(0), "KELPIE-1");
        assert_eq!(name(1), "KELPIE-2");
    }

    /// The monitors the server lists now: name, x, width, and whether it has an output.
    fn listed(display: &str) -> Vec<(String, i16, u16, bool)> {
        let (conn, screen) = x11rb::connect(Some(display)).unwrap();
        let root = conn.setup().roots[screen].root;
        let r = conn.randr_get_monitors(root, true).unwrap().reply().unwrap();
        r.monitors
            .iter()
            .map(|m| {
                let name = conn.get_atom_name(m.name).unwrap().reply().unwrap().name;
                (String::from_utf8(name).unwrap(), m.x, m.width, !m.outputs.is_empty())
            })
            .collect()
    }

    #[test]
    fn two_monitors_are_listed_kept_and_follow_a_resize() {
        // SAFETY: first thing in the test (see process_wide).
        let runtime = unsafe { crate::runtime::RuntimeDir::process_wide() };
        let desktop =
            crate::EmbeddedDesktop::start(1280, 360, (1280, 360), Some("sleep 30"), runtime.x_authority())
                .unwrap();
        let display = desktop.display().to_string();
        assert_eq!(listed(&display).len(), 1, "Xvfb starts with one monitor");
        let halves: Split = Box::new(|w, h| {
            let half = (w / 2) & !1;
            vec![Place { x: 0, y: 0, w: half, h }, Place { x: half, y: 0, w: half, h }]
        });
        let (tx, rx) = std::sync::mpsc::channel();
        keep(&display, halves, Box::new(move |w, h| tx.send((w, h)).unwrap())).unwrap();
        // Listed from another client, while the keeping connection stays open.
        let want = |half: u16| {
            vec![("KELPIE-1".to_string(), 0, half, true), ("KELPIE-2".to_string(), half as i16, half, false)]
        };
        assert_eq!(listed(&display), want(640));
        assert_eq!(crate::resize::resize(&display, 1000, 360).unwrap(), (1000, 360));
        let resized = rx.recv_timeout(std::time::Duration::from_secs(5)).expect("told of the resize");
        assert_eq!(resized, (1000, 360));
        assert_eq!(listed(&display), want(500));
    }
}

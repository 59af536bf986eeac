//! Which monitor a viewer's window shows (`?monitor=N` on the signalling URL, 1 by default)
//! and how its pointer positions land on the screen: offset by the monitor's origin; and the
//! display's RandR monitors, set to match.

use std::sync::{Arc, Weak};

use kelpie_media::monitor::Monitor;
use kelpie_protocol::InputEvent;

use crate::AppState;

/// Gives the embedded display RandR monitors where Kelpie splits it (`--monitors 2`), kept
/// for the session and after every resize ([`kelpie_desktop::monitors`]); a resize by anyone
/// also updates the size pointer positions are mapped on. Failing is not fatal: programs
/// then see one wide screen, as before.
pub fn keep_randr(state: &Arc<AppState>, display: &str, count: u32) {
    if count <= 1 {
        return;
    }
    let split = Box::new(move |w, h| {
        (0..count)
            .filter_map(|i| Monitor::new(i, count))
            .map(|m| {
                let r = m.rect(w, h);
                kelpie_desktop::monitors::Place { x: r.x, y: r.y, w: r.w, h: r.h }
            })
            .collect()
    });
    let weak: Weak<AppState> = Arc::downgrade(state);
    let on_resize = Box::new(move |w, h| {
        if let Some(state) = weak.upgrade() {
            *state.display_size.lock().unwrap() = (w, h);
        }
    });
    if let Err(e) = kelpie_desktop::monitors::keep(display, split, on_resize) {
        tracing::warn!(
            "programs on the display see one wide screen, not {count} monitors: {}",
            kelpie_media::error_chain(&e)
        );
    }
}

/// The monitor a signalling request asks for in its query (`monitor=N`, N from 1), on a
/// display of `count` monitors. Absent: the first. Anything else is refused with a message
/// that says what to ask for.
pub fn from_query(query: Option<&str>, count: u32) -> Result<Monitor, String> {
    let value = query
        .unwrap_or("")
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find(|(k, _)| *k == "monitor")
        .map(|(_, v)| v);
    let Some(value) = value else {
        return Ok(Monitor::new(0, count).unwrap_or(Monitor::WHOLE));
    };
    let n: Option<u32> = (value.len() <= 3).then(|| value.parse().ok()).flatten();
    match n.and_then(|n| n.checked_sub(1)).and_then(|i| Monitor::new(i, count)) {
        Some(m) => Ok(m),
        None => Err(format!(
            "no monitor {:?}: this display has {count} (--monitors); ask for monitor=1{}",
            value.chars().take(16).collect::<String>(),
            if count > 1 { format!(" to {count}") } else { String::new() }
        )),
    }
}

/// `event` from a window showing `monitor` of a `width` x `height` screen, in screen
/// coordinates: an absolute pointer position is moved by the monitor's origin and kept on
/// the monitor; everything else is unchanged.
pub fn to_screen(event: InputEvent, monitor: Monitor, (width, height): (u32, u32)) -> InputEvent {
    if monitor.is_whole() {
        return event;
    }
    match event {
        InputEvent::Mouse { x, y } => {
            let (x, y) = monitor.to_screen(x, y, width, height);
            InputEvent::Mouse { x, y }
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_picks_the_monitor_counting_from_one() {
        let right = Monitor::new(1, 2).unwrap();
        assert_eq!(from_query(None, 2), Ok(Monitor::new(0, 2).unwrap()));
        assert_eq!(from_query(Some("token=abc"), 2), Ok(Monitor::new(0, 2).unwrap()));
        assert_eq!(from_query(Some("token=abc&monitor=2"), 2), Ok(right));
        assert_eq!(from_query(Some("monitor=1"), 1), Ok(Monitor::WHOLE));
        assert_eq!(from_query(None, 1), Ok(Monitor::WHOLE));
        for bad in ["monitor=3", "monitor=0", "monitor=", "monitor", "monitor=-1", "monitor=99999999999"] {
            let e = from_query(Some(bad), 2).unwrap_err();
            assert!(e.contains("--monitors") && e.contains("monitor=1 to 2"), "{bad}: {e}");
        }
        assert!(from_query(Some("monitor=2"), 1).unwrap_err().ends_with("ask for monitor=1"));
    }

    #[test]
    fn pointer_positions_from_the_second_window_land_on_the_right_half() {
        let right = Monitor::new(1, 2).unwrap();
        let screen = (2560, 720);
        assert_eq!(
            to_screen(InputEvent::Mouse { x: 10, y: 20 }, right, screen),
            InputEvent::Mouse { x: 1290, y: 20 }
        );
        // A position past the window's edge stays on its monitor.
        assert_eq!(
            to_screen(InputEvent::Mouse { x: -40, y: 20 }, right, screen),
            InputEvent::Mouse { x: 1280, y: 20 }
        );
        let left = Monitor::new(0, 2).unwrap();
        assert_eq!(
            to_screen(InputEvent::Mouse { x: 2000, y: 5 }, left, screen),
            InputEvent::Mouse { x: 1279, y: 5 }
        );
        // Relative moves, buttons and keys are the same wherever they come from.
        let rel = InputEvent::MouseRel { dx: 5, dy: -3 };
        assert_eq!(to_screen(rel.clone(), right, screen), rel);
        // One monitor: positions pass through.
        assert_eq!(
            to_screen(InputEvent::Mouse { x: 3000, y: 5 }, Monitor::WHOLE, screen),
            InputEvent::Mouse { x: 3000, y: 5 }
        );
    }
}

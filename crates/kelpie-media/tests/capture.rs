//! Capture against a real Xvfb: a picture drawn on the root window comes back exactly from
//! the pipelined, banded grab, every row once and in order.

use kelpie_desktop::EmbeddedDesktop;
use kelpie_desktop::runtime::RuntimeDir;
use kelpie_media::capture::{BAND_ROWS, Capturer, Rect};
use x11rb::connection::Connection as _;
use x11rb::protocol::xproto::{ConnectionExt as _, CreateGCAux, Rectangle};

/// The colour drawn at row `y`: a different one for every row.
fn row_colour(y: u32) -> (u8, u8, u8) {
    ((y * 7 % 256) as u8, (y * 13 % 256) as u8, (y / 3 % 256) as u8)
}

#[test]
fn banded_grab_returns_the_drawn_rows_in_order() {
    let (w, h) = (320, 300);
    // A bare display: a program that draws nothing instead of the demo desktop.
    // SAFETY: the only test of this program, first thing in it: no other thread touches the
    // environment.
    let runtime = unsafe { RuntimeDir::process_wide() };
    let x = EmbeddedDesktop::start(w, h, (w, h), Some("sleep 600"), runtime.x_authority())
        .expect("Xvfb (Debian package xvfb)");
    let (conn, screen) = x11rb::connect(Some(x.display())).unwrap();
    let root = conn.setup().roots[screen].root;
    for y in 0..h {
        let (r, g, b) = row_colour(y);
        let gc = conn.generate_id().unwrap();
        let pixel = u32::from(r) << 16 | u32::from(g) << 8 | u32::from(b);
        conn.create_gc(gc, root, &CreateGCAux::new().foreground(pixel)).unwrap();
        conn.poly_fill_rectangle(root, gc, &[Rectangle { x: 0, y: y as i16, width: w as u16, height: 1 }])
            .unwrap();
        conn.free_gc(gc).unwrap();
    }
    conn.get_input_focus().unwrap().reply().unwrap();

    let mut cap = Capturer::open(x.display()).unwrap();
    // The whole screen (several bands), plus a small rectangle after it.
    let rects = [Rect { x: 0, y: 0, w, h }, Rect { x: 10, y: 20, w: 4, h: 2 }];
    let mut seen: Vec<Rect> = Vec::new();
    cap.grab_all(&rects, |r, bgrx| {
        assert_eq!(bgrx.len(), (r.w * r.h * 4) as usize);
        for row in 0..r.h {
            let (red, green, blue) = row_colour(r.y + row);
            let px = &bgrx[(row * r.w * 4) as usize..][..4];
            assert_eq!((px[2], px[1], px[0]), (red, green, blue), "row {} of {r:?}", r.y + row);
        }
        seen.push(r);
    })
    .unwrap();
    let bands = h.div_ceil(BAND_ROWS) as usize;
    assert_eq!(seen.len(), bands + 1, "{seen:?}");
    let mut y = 0;
    for band in &seen[..bands] {
        assert_eq!((band.x, band.y, band.w), (0, y, w));
        y += band.h;
    }
    assert_eq!(y, h, "bands cover every row once");
    assert_eq!(seen[bands], rects[1]);
}

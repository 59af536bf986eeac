//! Times BGRx → I420 conversion of a full 1080p frame: `cargo run --release --example convert_speed`.
use kelpie_media::capture::Rect;
use kelpie_media::convert::I420Frame;
use std::time::Instant;

fn main() {
    let (w, h) = (1920u32, 1080u32);
    let px: Vec<u8> = (0..w * h * 4).map(|i| (i * 7 % 251) as u8).collect();
    let mut f = I420Frame::new(w, h);
    let n = 200;
    let t = Instant::now();
    for _ in 0..n {
        f.write_bgrx(Rect { x: 0, y: 0, w, h }, &px);
    }
    let per = t.elapsed() / n;
    println!(
        "convert 1920x1080: {per:?} per frame ({:.1} Mpixel/s)",
        (w * h) as f64 / per.as_secs_f64() / 1e6
    );
}

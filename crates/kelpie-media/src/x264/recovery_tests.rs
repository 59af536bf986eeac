//! After a loss, which shows a whole picture sooner at less cost: an IDR frame or an intra
//! refresh (a column of intra macroblocks sweeping the picture over some frames)? Measured
//! with the real libx264 for docs/benchmarks.md: `cargo test --release -p kelpie-media
//! keyframe_or_intra_refresh -- --ignored --nocapture`.

use super::skip_tests::{desktop, with_region};
use super::*;

const W: usize = 1920;
const H: usize = 1080;
const FPS: f64 = 60.0;
const QP: u8 = 26;

/// 1080p pictures of a workload, frame by frame.
fn workload(name: &str, frames: usize) -> Vec<Vec<u8>> {
    match name {
        // A desktop where a little changes each frame (typing, a clock).
        "desktop" => {
            let (base, other) = (desktop(0), desktop(5));
            (0..frames)
                .map(|i| {
                    let r = Rect {
                        x: (100 + (i as u32 * 24) % 1600) & !1,
                        y: 400 + (i as u32 / 64) * 32,
                        w: 24,
                        h: 32,
                    };
                    with_region(&base, &other, r)
                })
                .collect()
        }
        // A page of text: dark glyph-like marks in lines on white, a word appearing each frame.
        "document" => {
            let page = |words: usize| {
                let mut f = vec![128u8; W * H * 3 / 2];
                f[..W * H].fill(235);
                for line in 0..H / 20 {
                    for col in 0..W / 9 {
                        let (word, cell) = (line * (W / 9) + col, (line * 131 + col * 71) % 17);
                        if (col / 6) % 7 == 6 || (word > words && line > 30) {
                            continue; // spaces, and the words not typed yet
                        }
                        for y in line * 20 + 4..line * 20 + 16 {
                            for x in col * 9 + 1..col * 9 + 8 {
                                if (x * 3 + y * 5 + cell) % 7 < 3 {
                                    f[y * W + x] = 20;
                                }
                            }
                        }
                    }
                }
                f
            };
            (0..frames).map(|i| page(31 * (W / 9) + i * 3)).collect()
        }
        // Full-screen motion: eight vertical bars moving 4 pixels a frame.
        _ => (0..frames)
            .map(|i| {
                let mut f = vec![128u8; W * H * 3 / 2];
                for y in 0..H {
                    for x in 0..W {
                        f[y * W + x] = (((x + i * 4) / 240 % 8) * 30) as u8;
                    }
                }
                f
            })
            .collect(),
    }
}

/// Sizes in bytes of each frame of `pictures` through `enc`, IDR frames where `idr(i)`.
fn sizes(enc: &mut X264, pictures: &[Vec<u8>], idr: impl Fn(usize) -> bool) -> Vec<usize> {
    enc.set_deltas(false);
    pictures.iter().enumerate().map(|(i, p)| enc.encode(p, QP, idr(i), None).unwrap().data.len()).collect()
}

#[test]
#[ignore = "a measurement printed for the documentation, not a check"]
fn keyframe_or_intra_refresh() {
    let rates = [1.0f64, 5.0, 20.0];
    println!(
        "| workload | recovery | bytes it adds | whole picture after, at {} Mbit/s | meanwhile |",
        rates.map(|r| r.to_string()).join(" / ")
    );
    println!("|---|---|--:|--:|---|");
    for name in ["document", "desktop", "bars"] {
        let pictures = workload(name, 200);
        // An IDR frame at 0 and, as the recovery, at 120.
        let mut enc = X264::open(W as u32, H as u32, 60, 1, QP_LOW_RANGE).unwrap();
        let plain = sizes(&mut enc, &pictures, |i| i == 0 || i == 120);
        let mut p = plain[60..120].to_vec();
        p.sort();
        let p_bytes = p[p.len() / 2];
        let key = plain[120];
        let whole = rates.map(|r| (key as f64 * 8.0 / (r * 1e6) + 1.0 / FPS) * 1e3);
        println!(
            "| {name} | IDR frame | {} | {} ms | frozen until it arrives (P frames {} bytes) |",
            key - p_bytes,
            whole.map(|t| format!("{t:.0}")).join(" / "),
            p_bytes
        );
        for refresh in [30u32, 60] {
            let mut enc = X264::open_refresh(W as u32, H as u32, 60, QP_LOW_RANGE, refresh).unwrap();
            // x264 sweeps a refresh every `refresh` frames; one whole sweep, after the first.
            let s = sizes(&mut enc, &pictures, |i| i == 0);
            let start = 120usize;
            let sweep: usize = s[start..start + refresh as usize].iter().sum();
            let added = sweep.saturating_sub(p_bytes * refresh as usize);
            let whole = rates.map(|r| {
                let frames = f64::from(refresh) / FPS;
                frames.max(sweep as f64 * 8.0 / (r * 1e6)) * 1e3
            });
            println!(
                "| {name} | intra refresh over {refresh} frames | {added} | {} ms | moving; each part of the picture whole once the sweep passed it |",
                whole.map(|t| format!("{t:.0}")).join(" / ")
            );
        }
    }
}

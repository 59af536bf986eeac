//! libx264 with the map of unchanged macroblocks: what a frame costs as a function of what
//! changed, and that the unchanged macroblocks are decoded exactly as before.

use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use super::*;

const W: usize = 1920;
const H: usize = 1080;

/// A desktop-like 1080p picture: small glyph-like blocks on a light background, chroma too,
/// with `phase` moving every edge (so two phases differ in every macroblock).
pub(super) fn desktop(phase: usize) -> Vec<u8> {
    let mut f = vec![128u8; W * H * 3 / 2];
    for y in 0..H {
        for x in 0..W {
            let glyph = ((x + phase) / 3 * 7 + y / 2 * 13 + (x + phase) * y / 97) % 11 < 4;
            f[y * W + x] = if glyph { 30 + ((x + y + phase) % 40) as u8 } else { 235 };
        }
    }
    let (u, v) = f[W * H..].split_at_mut(W * H / 4);
    for y in 0..H / 2 {
        for x in 0..W / 2 {
            u[y * W / 2 + x] = (100 + (x * 3 + phase * 5 + y) % 56) as u8;
            v[y * W / 2 + x] = (110 + (y * 5 + phase * 3) % 40) as u8;
        }
    }
    f
}

/// `base` with the rectangle `r` taken from `from`.
pub(super) fn with_region(base: &[u8], from: &[u8], r: Rect) -> Vec<u8> {
    let mut f = base.to_vec();
    let (x0, y0, w, h) = (r.x as usize, r.y as usize, r.w as usize, r.h as usize);
    for y in y0..y0 + h {
        f[y * W + x0..y * W + x0 + w].copy_from_slice(&from[y * W + x0..y * W + x0 + w]);
    }
    for plane in [W * H, W * H + W * H / 4] {
        for y in y0 / 2..(y0 + h) / 2 {
            let o = plane + y * W / 2;
            f[o + x0 / 2..o + (x0 + w) / 2].copy_from_slice(&from[o + x0 / 2..o + (x0 + w) / 2]);
        }
    }
    f
}

/// A rectangle of about `percent` % of the 1080p screen, even-aligned, off the macroblock
/// grid (as damage usually is), in the middle of the screen.
fn region(percent: u32) -> Rect {
    if percent == 0 {
        return Rect { x: 0, y: 0, w: 0, h: 0 };
    }
    if percent >= 100 {
        return Rect { x: 0, y: 0, w: W as u32, h: H as u32 };
    }
    let side = |full: u32| ((f64::from(full) * (f64::from(percent) / 100.0).sqrt()) as u32 & !1).max(2);
    let (w, h) = (side(W as u32), side(H as u32));
    Rect { x: ((W as u32 - w) / 2 + 6) & !1, y: ((H as u32 - h) / 2 + 6) & !1, w, h }
}

/// The pictures of a run in which only `r` changes: frame `i` is picture `i % 4`, and
/// picture 0 differs from the others in `r` only.
fn frames_changing(r: Rect) -> Vec<Vec<u8>> {
    let phases: Vec<Vec<u8>> = (0..4).map(|p| desktop(p * 2)).collect();
    (0..4).map(|i| with_region(&phases[0], &phases[i], r)).collect()
}

/// CPU time the calling thread has used: unlike wall time, it does not count the time other
/// processes on a busy machine take the processor away (x264 with one thread encodes in the
/// calling thread).
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid clock id and a pointer to a timespec we own.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0);
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// One encoder fed frames in which only `changed` changes, at a constant QP, the first an
/// IDR frame; the encoder is told what changed when `map`, and may code small changes as
/// delta frames when `deltas`.
struct Run {
    enc: X264,
    frames: Vec<Vec<u8>>,
    count: usize,
    changed: Rect,
    map: bool,
    next: usize,
    aus: Vec<Vec<u8>>,
    /// CPU time of each call after the first.
    times: Vec<Duration>,
    /// How many frames were delta frames.
    deltas: usize,
}

impl Run {
    fn new(percent: u32, map: bool, deltas: bool, count: usize) -> Self {
        let changed = region(percent);
        let mut enc = X264::open(W as u32, H as u32, 60, 1, QP_LOW_RANGE).unwrap();
        enc.set_deltas(deltas);
        let frames = frames_changing(changed);
        Self { enc, frames, count, changed, map, next: 0, aus: Vec::new(), times: Vec::new(), deltas: 0 }
    }

    /// Encodes the next frame; false when all are done.
    fn step(&mut self) -> bool {
        if self.next == self.count {
            return false;
        }
        let frame = &self.frames[self.next % 4];
        let key = self.next == 0;
        let changed = [self.changed];
        let changed = if self.changed.w == 0 { &[][..] } else { &changed[..] };
        let t = thread_cpu_time();
        let out = self.enc.encode(frame, 26, key, self.map.then_some(changed)).unwrap();
        let took = thread_cpu_time() - t;
        assert_eq!(out.keyframe, key);
        self.deltas += usize::from(out.delta);
        self.aus.push(out.data.to_vec());
        if !key {
            self.times.push(took);
        }
        self.next += 1;
        true
    }

    fn median(&self) -> Duration {
        let mut t = self.times.clone();
        t.sort();
        t[t.len() / 2]
    }
}

/// Runs the encoders a few frames each in turn, so that whatever else loads the machine
/// weighs on all of them alike (a few in a row: one encoder's memory is warm in the caches
/// from one frame to the next, as when it is the only one).
fn interleaved(runs: &mut [Run]) {
    while runs.iter_mut().map(|r| (0..5).fold(false, |more, _| r.step() | more)).fold(false, |a, b| a | b) {}
}

/// Decodes an H.264 stream (one access unit per element) with openh264 into I420 frames.
fn decode(aus: &[Vec<u8>]) -> Vec<Vec<u8>> {
    gst::init().unwrap();
    let pipeline = gst::parse::launch(
        "appsrc name=src format=time caps=video/x-h264,stream-format=byte-stream,alignment=au \
         ! h264parse ! openh264dec ! video/x-raw,format=I420 ! appsink name=sink sync=false",
    )
    .expect("openh264dec (gstreamer1.0-plugins-bad) must be installed for this test")
    .downcast::<gst::Pipeline>()
    .unwrap();
    let src: gst_app::AppSrc = pipeline.by_name("src").unwrap().downcast().unwrap();
    let sink: gst_app::AppSink = pipeline.by_name("sink").unwrap().downcast().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    for (i, au) in aus.iter().enumerate() {
        let mut b = gst::Buffer::from_slice(au.clone());
        b.get_mut().unwrap().set_pts(gst::ClockTime::from_mseconds(16 * i as u64));
        src.push_buffer(b).unwrap();
    }
    src.end_of_stream().unwrap();
    let mut out = Vec::new();
    while let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_seconds(10)) {
        let map = sample.buffer().unwrap().map_readable().unwrap();
        // Tightly packed I420 (strides 1920 and 960).
        assert_eq!(map.len(), W * H * 3 / 2);
        out.push(map.to_vec());
    }
    pipeline.set_state(gst::State::Null).unwrap();
    out
}

/// Macroblocks (column, row) whose decoded pixels differ between two I420 frames.
fn differing_macroblocks(a: &[u8], b: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for row in 0..H.div_ceil(16) {
        for col in 0..W / 16 {
            let luma = (row * 16..((row + 1) * 16).min(H)).any(|y| {
                let o = y * W + col * 16;
                a[o..o + 16] != b[o..o + 16]
            });
            let chroma = [W * H, W * H + W * H / 4].iter().any(|&p| {
                (row * 8..((row + 1) * 8).min(H / 2)).any(|y| {
                    let o = p + y * W / 2 + col * 8;
                    a[o..o + 8] != b[o..o + 8]
                })
            });
            if luma || chroma {
                out.push((col, row));
            }
        }
    }
    out
}

/// PSNR (dB) of the luma of `r` between two I420 frames.
fn psnr(a: &[u8], b: &[u8], r: Rect) -> f64 {
    let mut sum = 0f64;
    for y in r.y as usize..(r.y + r.h) as usize {
        for x in r.x as usize..(r.x + r.w) as usize {
            let d = f64::from(a[y * W + x]) - f64::from(b[y * W + x]);
            sum += d * d;
        }
    }
    let mse = sum / f64::from(r.w * r.h);
    if mse == 0.0 { 99.0 } else { 10.0 * (255.0 * 255.0 / mse).log10() }
}

#[test]
fn a_small_change_costs_a_small_part_of_a_full_frame_and_leaves_the_rest_exact() {
    assert!(available(), "libx264 ({}) must be installed for this test", library_name());
    // 1 % of the screen changing (as delta frames), against the whole screen changing, and
    // against the same 1 % coded by x264 with and without the map; a few frames of each in
    // turn, medians of 40 frames each.
    let mut runs = [
        Run::new(1, true, true, 41),
        Run::new(100, true, true, 41),
        Run::new(1, true, false, 41),
        Run::new(1, false, false, 41),
    ];
    interleaved(&mut runs);
    let [small, full, x264_only, unmapped] = &runs;
    let (s, f, x, u) = (small.median(), full.median(), x264_only.median(), unmapped.median());
    eprintln!(
        "1080p median encode: 1 % changed {s:?} (x264 with the map {x:?}, without {u:?}), all changed {f:?}; {} delta frames",
        small.deltas
    );
    // Most frames after the keyframe (x264 codes one after 30 delta frames in a row, or when
    // delta frames grow).
    assert!(small.deltas >= 25, "{} delta frames of 40", small.deltas);
    assert_eq!(full.deltas + x264_only.deltas + unmapped.deltas, 0, "only small changes are delta frames");
    // The measure: 1 % of the screen costs at most a quarter of the whole screen.
    assert!(s * 4 <= f, "1 % of the screen took {s:?} a frame, the whole screen {f:?}: more than 25 %");
    assert!(
        s < x && x < u,
        "delta frames {s:?}, x264 with the map {x:?}, without {u:?}: each should be cheaper"
    );

    // Decoded, every macroblock the change does not touch is what it was in the frame before,
    // and the changed region shows the picture about as well as x264 at the same QP does.
    let decoded = decode(&small.aus);
    let by_x264 = decode(&x264_only.aus);
    let (mut worst, mut worst_x264) = (f64::MAX, f64::MAX);
    assert_eq!(decoded.len(), small.aus.len());
    let mut map = SkipMap::new(W as u32, H as u32);
    map.mark(&[small.changed]);
    for (i, pair) in decoded.windows(2).enumerate() {
        let differ = differing_macroblocks(&pair[0], &pair[1]);
        let outside: Vec<_> = differ.iter().filter(|&&(c, r)| map.is_constant(c, r)).collect();
        assert!(
            outside.is_empty(),
            "frame {}: unchanged macroblocks decoded differently: {outside:?}",
            i + 1
        );
        assert!(!differ.is_empty(), "frame {}: the changed region was not coded", i + 1);
        let source = &small.frames[(i + 1) % 4];
        let (q, qx) = (psnr(&pair[1], source, small.changed), psnr(&by_x264[i + 1], source, small.changed));
        (worst, worst_x264) = (worst.min(q), worst_x264.min(qx));
        assert!(
            q > 30.0 && q > qx - 1.5,
            "frame {}: the changed region decoded at {q:.1} dB (x264: {qx:.1} dB)",
            i + 1
        );
    }
    eprintln!("changed region, worst frame: {worst:.1} dB as delta frames, {worst_x264:.1} dB by x264");
}

/// A region that keeps changing a little (a counter: one cell of eight redrawn each frame) in
/// delta frames costs at most about twice the bits x264 spends on it (x264 finds this synthetic
/// content's shifted glyphs by motion search; delta frames code them as residual), and still
/// far less CPU.
#[test]
fn a_region_changing_a_little_each_frame_costs_about_twice_the_bits_of_x264_and_far_less_cpu() {
    assert!(available(), "libx264 ({}) must be installed for this test", library_name());
    let r = region(1);
    let phases: Vec<Vec<u8>> = (0..3).map(|p| desktop(p * 2 + 1)).collect();
    let cell = |i: usize| {
        let w = (r.w / 8) & !1;
        Rect { x: r.x + (i % 8) as u32 * w, y: r.y, w, h: r.h }
    };
    let mut frames = vec![desktop(0)];
    for i in 1..121 {
        let prev = frames[i - 1].clone();
        frames.push(with_region(&prev, &phases[(i / 8) % 3], cell(i)));
    }
    let run = |deltas: bool| {
        let mut enc = X264::open(W as u32, H as u32, 60, 1, QP_LOW_RANGE).unwrap();
        enc.set_deltas(deltas);
        let (mut bytes, mut cpu, mut count) = (0, Duration::ZERO, 0);
        for (i, f) in frames.iter().enumerate() {
            let t = thread_cpu_time();
            let out = enc.encode(f, 26, i == 0, Some(&[cell(i)])).unwrap();
            if i > 0 {
                cpu += thread_cpu_time() - t;
                bytes += out.data.len();
                count += usize::from(out.delta);
            }
        }
        (bytes, cpu, count)
    };
    let (with, without) = (run(true), run(false));
    eprintln!(
        "120 frames of a changing counter: delta frames {} bytes, {:?} CPU ({} delta frames); x264 {} bytes, {:?}",
        with.0, with.1, with.2, without.0, without.1
    );
    assert!(with.0 <= without.0 * 9 / 4, "delta frames {} bytes, x264 {} bytes", with.0, without.0);
    assert!(with.1 * 2 < without.1, "delta frames {:?}, x264 {:?}", with.1, without.1);
}

/// Delta frames follow x264's frames in one stream: x264 codes a large change (and every
/// thirtieth frame), delta frames the small ones in between, and the decoder shows each
/// picture with the right content wherever it is.
#[test]
fn delta_frames_and_x264_frames_interleave_in_one_stream() {
    assert!(available(), "libx264 ({}) must be installed for this test", library_name());
    // From the finest QP (the largest levels, CAVLC's escape codes) to the coarsest.
    for qp in [11, 24, 51] {
        interleave_at(qp);
    }
}

fn interleave_at(qp: u8) {
    let pictures: Vec<Vec<u8>> = (0..3).map(|p| desktop(p * 3)).collect();
    let mut current = pictures[0].clone();
    let mut shown = Vec::new();
    let mut changes = Vec::new();
    for i in 0..80usize {
        // Mostly a small box moving along (so the union of changes grows), now and then
        // half the screen.
        let r = if i % 25 == 24 {
            Rect { x: 0, y: 0, w: W as u32, h: H as u32 / 2 }
        } else {
            Rect { x: (32 + i as u32 * 20) % 1800, y: 200 + (i as u32 % 7) * 100, w: 64, h: 48 }
        };
        if i > 0 {
            current = with_region(&current, &pictures[i % 3], r);
        }
        shown.push(current.clone());
        changes.push(r);
    }
    // The same frames with delta frames and with x264 alone.
    let run = |deltas: bool| {
        let mut enc = X264::open(W as u32, H as u32, 60, 1, QP_LOW_RANGE).unwrap();
        enc.set_deltas(deltas);
        let (mut aus, mut kinds) = (Vec::new(), String::new());
        for (i, (f, r)) in shown.iter().zip(&changes).enumerate() {
            let out = enc.encode(f, qp, i == 0, Some(&[*r])).unwrap();
            kinds.push(if out.keyframe {
                'K'
            } else if out.delta {
                'd'
            } else {
                'x'
            });
            aus.push(out.data.to_vec());
        }
        (aus, kinds)
    };
    let ((aus, kinds), (plain, _)) = (run(true), run(false));
    assert!(kinds.matches('d').count() > 40, "{kinds}");
    assert!(kinds.matches('x').count() >= 3, "{kinds}");
    let (decoded, by_x264) = (decode(&aus), decode(&plain));
    assert_eq!(decoded.len(), aus.len(), "every frame decodes ({kinds})");
    let whole = Rect { x: 0, y: 0, w: W as u32, h: H as u32 };
    for (i, want) in shown.iter().enumerate() {
        let (q, qx) = (psnr(&decoded[i], want, whole), psnr(&by_x264[i], want, whole));
        assert!(
            q > qx - 3.0,
            "QP {qp}, frame {i} ({}): {q:.1} dB against what the screen showed, x264 alone {qx:.1} dB ({kinds})",
            &kinds[i..=i]
        );
    }
}

/// The cost of a 1080p frame by the share of the screen that changed, with the map and
/// without it, for docs/benchmarks.md: `cargo test --release -p kelpie-media
/// cost_by_changed_area -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement printed for the documentation, not a check"]
fn cost_by_changed_area() {
    let percents = [0, 1, 10, 50, 100];
    let mut runs: Vec<Run> = percents
        .iter()
        .flat_map(|&p| {
            [Run::new(p, true, true, 121), Run::new(p, true, false, 121), Run::new(p, false, false, 121)]
        })
        .collect();
    interleaved(&mut runs);
    println!(
        "| changed | Kelpie (delta frames where small) | bytes per frame | x264 with the map | bytes per frame | x264 without |"
    );
    let bytes = |r: &Run| r.aus[1..].iter().map(Vec::len).sum::<usize>() / (r.aus.len() - 1);
    let ms = |r: &Run| r.median().as_secs_f64() * 1e3;
    for (p, trio) in percents.iter().zip(runs.chunks(3)) {
        println!(
            "| {p} % | {:.2} ms | {} | {:.2} ms | {} | {:.2} ms |",
            ms(&trio[0]),
            bytes(&trio[0]),
            ms(&trio[1]),
            bytes(&trio[1]),
            ms(&trio[2])
        );
    }
}

/// Where the time of a 3840x2160 frame of full-screen motion goes in Kelpie's capture thread
/// (conversion and encoding, each on 1 and 2 threads), for docs/benchmarks.md: `cargo test
/// --release -p kelpie-media where_a_4k_frame_goes -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement printed for the documentation, not a check"]
fn where_a_4k_frame_goes() {
    use crate::convert::I420Frame;
    use std::time::Instant;
    let (w, h) = (3840u32, 2160u32);
    let full = Rect { x: 0, y: 0, w, h };
    // Vertical colour bars moving 4 pixels a frame, as `kelpie-probe bars`.
    let bars = |shift: u32| -> Vec<u8> {
        (0..h)
            .flat_map(|_| {
                (0..w).flat_map(move |x| {
                    let k = ((x + shift) / 480) as u8;
                    [k.wrapping_mul(97), k.wrapping_mul(53), k.wrapping_mul(29), 0]
                })
            })
            .collect()
    };
    let pictures: Vec<Vec<u8>> = (0..4).map(|i| bars(i * 4)).collect();
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    for threads in [1usize, 2] {
        let mut frame = I420Frame::new(w, h);
        let mut enc = X264::open(w, h, 60, threads as u32, QP_LOW_RANGE).unwrap();
        let (mut conv, mut code, mut conv_cpu, mut code_cpu) = (vec![], vec![], vec![], vec![]);
        for i in 0..24 {
            let (t, c) = (Instant::now(), thread_cpu_time());
            frame.write_bgrx_on(full, &pictures[i % 4], threads);
            conv.push(t.elapsed().as_secs_f64() * 1e3);
            conv_cpu.push((thread_cpu_time() - c).as_secs_f64() * 1e3);
            let (t, c) = (Instant::now(), thread_cpu_time());
            enc.encode(frame.as_bytes(), 30, i == 0, Some(&[full])).unwrap();
            code.push(t.elapsed().as_secs_f64() * 1e3);
            code_cpu.push((thread_cpu_time() - c).as_secs_f64() * 1e3);
        }
        println!(
            "4K, {threads} thread(s): convert {:.1} ms wall ({:.1} ms CPU in the capture thread), encode {:.1} ms wall ({:.1} ms CPU in the capture thread)",
            median(conv),
            median(conv_cpu),
            median(code),
            median(code_cpu)
        );
    }
}

#[test]
fn the_changed_region_x264_reports_holds_every_macroblock_whose_decoded_pixels_changed() {
    assert!(available(), "libx264 ({}) must be installed for this test", library_name());
    // With delta frames too: a delta frame reports what changed since x264's last frame, and
    // the x264 frame after a run re-codes that (the "still" frames then report it).
    for deltas in [false, true] {
        changed_regions_hold_every_change(deltas);
    }
}

fn changed_regions_hold_every_change(deltas: bool) {
    let base = desktop(0);
    let other = desktop(6);
    let a = Rect { x: 300, y: 200, w: 250, h: 90 };
    let b = Rect { x: 1500, y: 900, w: 120, h: 40 };
    // (picture, QP, damage): changes coded at one QP, refinement frames at a lower QP with no
    // damage at all (x264 re-codes what was coded worse), and still frames.
    let with_a = with_region(&base, &other, a);
    let with_ab = with_region(&with_a, &desktop(3), b);
    let steps: Vec<(&[u8], u8, Vec<Rect>)> = vec![
        (&base, 34, vec![]),
        (&with_a, 34, vec![a]),
        (&with_a, 34, vec![]),
        (&with_a, 22, vec![]),
        (&with_a, 22, vec![]),
        (&with_ab, 30, vec![b]),
        (&with_ab, 26, vec![]),
        (&with_ab, 26, vec![]),
        (&base, 28, vec![a, b]),
        (&base, 20, vec![]),
    ];
    let mut enc = X264::open(W as u32, H as u32, 60, 1, QP_LOW_RANGE).unwrap();
    enc.set_deltas(deltas);
    let mut aus = Vec::new();
    let mut reported = Vec::new();
    for (i, (picture, qp, damage)) in steps.iter().enumerate() {
        let out = enc.encode(picture, *qp, i == 0, Some(damage)).unwrap();
        if i == 0 {
            assert_eq!(out.changed, None, "a keyframe has no changed region");
        }
        reported.push(out.changed.clone());
        aus.push(out.data.to_vec());
    }
    let decoded = decode(&aus);
    assert_eq!(decoded.len(), aus.len());
    // `None`: the whole picture.
    let inside = |rects: &Option<Vec<Rect>>, col: usize, row: usize| {
        let (x, y) = (col as u32 * 16, row as u32 * 16);
        rects
            .as_ref()
            .is_none_or(|rs| rs.iter().any(|r| x >= r.x && x < r.x + r.w && y >= r.y && y < r.y + r.h))
    };
    for i in 1..steps.len() {
        let differ = differing_macroblocks(&decoded[i - 1], &decoded[i]);
        let missed: Vec<_> = differ.iter().filter(|&&(c, r)| !inside(&reported[i], c, r)).collect();
        assert!(
            missed.is_empty(),
            "delta frames {deltas}, frame {i}: macroblocks changed outside the reported region: {missed:?}"
        );
        eprintln!("frame {i}: {} macroblocks changed, reported {:?}", differ.len(), reported[i]);
    }
    if deltas {
        return;
    }
    // The region stays close to what changed: still frames report nothing, and a change
    // reports about its own macroblocks. (A frame at a lower QP than the one before has
    // x264 analyse every macroblock again, since it takes the QP a skipped macroblock was
    // last coded at to be that frame's: frames 3, 6 and 9 report most of the screen.)
    for still in [2, 4, 7] {
        assert_eq!(reported[still], Some(vec![]), "frame {still} is still");
    }
    let area = |i: usize| {
        reported[i].as_ref().expect("a region").iter().map(|r| u64::from(r.w) * u64::from(r.h)).sum::<u64>()
    };
    let near = |r: Rect| 2 * u64::from(r.w + 32) * u64::from(r.h + 32);
    assert!(area(1) < near(a), "frame 1 reported {:?}", reported[1]);
    assert!(area(5) < near(b), "frame 5 reported {:?}", reported[5]);
    assert!(area(8) < near(a) + near(b), "frame 8 reported {:?}", reported[8]);
}

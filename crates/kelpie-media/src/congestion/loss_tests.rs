//! [`LossGuard`] against feedback recorded from str0m over the link emulator, and against
//! loss that is not congestion.

use super::*;

/// One stats report: ms from the start, str0m's estimate (kbit/s), the share of packets
/// lost over the last second (TWCC), bytes sent to the peer so far, the round trip (ms).
type Report = (u64, u64, f32, u64, u64);

/// `network.wan.mjs`, WebRTC, 1080p noise at 8 Mbit/s: the link goes from 20 to 4 Mbit/s
/// (100 ms of queue) at about 1.8 s. str0m's estimate falls to 4 Mbit/s, then climbs to
/// 5 Mbit/s while a quarter of the packets are lost and the round trip stands 100 ms above
/// its least, and falls to 0.7 Mbit/s only at 4.3 s.
const DROP_TO_4_MBIT: &[Report] = &[
    (0, 10812, 0.000, 5906861, 45),
    (101, 10815, 0.000, 5976037, 59),
    (202, 10815, 0.000, 6051382, 44),
    (303, 10815, 0.000, 6134701, 42),
    (404, 10815, 0.000, 6223836, 44),
    (505, 10815, 0.000, 6296252, 43),
    (619, 10815, 0.000, 6373187, 61),
    (734, 10815, 0.000, 6456156, 57),
    (834, 10815, 0.000, 6540934, 42),
    (936, 10815, 0.000, 6625197, 55),
    (1036, 10815, 0.000, 6706868, 42),
    (1153, 10815, 0.000, 6786354, 59),
    (1258, 10815, 0.000, 6874827, 42),
    (1358, 10815, 0.000, 6942558, 44),
    (1459, 10815, 0.000, 7021982, 45),
    (1560, 10815, 0.000, 7096872, 42),
    (1661, 10815, 0.000, 7185832, 42),
    (1761, 10815, 0.000, 7282969, 64),
    (1862, 10815, 0.000, 7395691, 123),
    (1963, 4789, 0.069, 7506288, 144),
    (2064, 4041, 0.129, 7567206, 144),
    (2164, 4041, 0.203, 7622168, 145),
    (2264, 3486, 0.222, 7684145, 144),
    (2366, 3556, 0.243, 7741377, 138),
    (2467, 3626, 0.263, 7807026, 136),
    (2567, 3712, 0.289, 7872617, 141),
    (2667, 3765, 0.321, 7924009, 131),
    (2768, 3856, 0.321, 7994680, 138),
    (2868, 3929, 0.264, 8053546, 145),
    (2969, 4007, 0.194, 8113350, 136),
    (3070, 4076, 0.198, 8175446, 144),
    (3170, 4162, 0.196, 8246816, 136),
    (3271, 4231, 0.197, 8314423, 145),
    (3372, 4303, 0.213, 8379964, 143),
    (3474, 4394, 0.217, 8444204, 141),
    (3575, 4464, 0.227, 8510980, 141),
    (3678, 4553, 0.235, 8573099, 134),
    (3778, 4636, 0.232, 8642070, 143),
    (3878, 4728, 0.262, 8709814, 138),
    (3980, 4821, 0.271, 8778496, 143),
    (4081, 4913, 0.279, 8848299, 144),
    (4181, 5009, 0.277, 8922405, 141),
    (4282, 661, 0.279, 8984369, 143),
    (4382, 661, 0.291, 9035854, 142),
    (4482, 661, 0.297, 9088570, 140),
    (4584, 601, 0.285, 9151642, 142),
    (4685, 601, 0.262, 9198814, 144),
    (4787, 601, 0.239, 9245727, 150),
    (4887, 629, 0.220, 9294783, 141),
    (4988, 629, 0.183, 9334802, 138),
    (5088, 682, 0.140, 9385026, 130),
    (5188, 682, 0.098, 9424091, 124),
    (5290, 682, 0.058, 9461602, 106),
    (5391, 734, 0.032, 9518888, 83),
    (5492, 734, 0.014, 9562104, 76),
    (5594, 807, 0.003, 9598857, 72),
    (5695, 807, 0.000, 9632729, 63),
    (5797, 807, 0.000, 9663277, 51),
    (5897, 847, 0.000, 9690241, 47),
    (5998, 847, 0.000, 9707905, 44),
    (6098, 847, 0.000, 9726593, 49),
    (6199, 999, 0.000, 9738273, 44),
];

/// The same test another time: after the drop (at about 0.8 s) str0m's estimate settles at
/// 3.5 Mbit/s, 10 % over what the path carries beside the headers and resent packets: the
/// queue stands 90 ms above the least round trip with 2 to 8 % of the packets lost, and
/// 4.0 to 4.5 Mbit/s go out.
const SETTLES_OVER_4_MBIT: &[Report] = &[
    (0, 10715, 0.000, 5436443, 42),
    (101, 10715, 0.000, 5548426, 43),
    (201, 10748, 0.000, 5638218, 49),
    (302, 10832, 0.000, 5722394, 42),
    (402, 10832, 0.000, 5821255, 43),
    (502, 10856, 0.000, 5922758, 44),
    (602, 10951, 0.000, 6023571, 41),
    (703, 11044, 0.000, 6090336, 56),
    (803, 4143, 0.000, 6187448, 42),
    (904, 4201, 0.000, 6240407, 50),
    (1005, 4265, 0.000, 6315297, 43),
    (1107, 4306, 0.000, 6362017, 48),
    (1208, 4388, 0.000, 6438007, 42),
    (1310, 4454, 0.000, 6502533, 43),
    (1411, 4510, 0.000, 6555093, 46),
    (1512, 4576, 0.000, 6630735, 62),
    (1612, 4589, 0.000, 6698531, 66),
    (1713, 3679, 0.000, 6747168, 108),
    (1813, 3272, 0.002, 6805570, 139),
    (1914, 3199, 0.014, 6846346, 139),
    (2016, 3199, 0.020, 6898501, 128),
    (2117, 3228, 0.020, 6948263, 120),
    (2218, 3279, 0.022, 6987975, 118),
    (2319, 3287, 0.022, 7047718, 120),
    (2420, 3510, 0.023, 7100220, 125),
    (2521, 3584, 0.024, 7148108, 123),
    (2622, 3510, 0.022, 7203865, 119),
    (2722, 3510, 0.009, 7249417, 121),
    (2823, 3510, 0.000, 7296454, 137),
    (2924, 3510, 0.003, 7349304, 139),
    (3025, 3510, 0.006, 7405374, 130),
    (3126, 3510, 0.011, 7453651, 139),
    (3226, 3510, 0.014, 7496875, 124),
    (3327, 3510, 0.019, 7550988, 125),
    (3428, 3510, 0.020, 7600048, 132),
    (3528, 3510, 0.025, 7654825, 126),
    (3629, 3510, 0.059, 7707411, 129),
    (3730, 3510, 0.066, 7752327, 140),
    (3831, 3510, 0.077, 7809575, 135),
    (3932, 3510, 0.074, 7861766, 136),
    (4033, 3510, 0.082, 7913168, 125),
    (4134, 3510, 0.083, 7961187, 130),
    (4235, 3510, 0.083, 8012585, 147),
    (4336, 3510, 0.081, 8057411, 123),
    (4437, 3510, 0.054, 8115505, 140),
    (4537, 3510, 0.051, 8156391, 140),
    (4639, 3510, 0.044, 8210285, 130),
    (4739, 3510, 0.043, 8260511, 131),
    (4839, 3510, 0.036, 8312588, 123),
    (4940, 3510, 0.033, 8365154, 133),
    (5040, 3510, 0.034, 8411469, 140),
    (5141, 3510, 0.033, 8460629, 128),
    (5241, 3510, 0.035, 8516055, 134),
];

const FLOOR: u64 = 300_000;

/// Runs `reports` through a new guard: (seconds, str0m's estimate, the guarded one), bit/s.
fn replay(reports: &[Report]) -> Vec<(f64, u64, u64)> {
    let t0 = Instant::now();
    let mut g = LossGuard::default();
    reports
        .iter()
        .map(|&(ms, kbps, loss, sent, rtt)| {
            let now = t0 + Duration::from_millis(ms);
            let rtt = Some(Duration::from_millis(rtt));
            let out = g.update(now, kbps * 1000, sent, Some(loss), rtt, FLOOR);
            (ms as f64 / 1000.0, kbps * 1000, out)
        })
        .collect()
}

#[test]
fn a_full_queue_losing_packets_caps_the_estimate_under_what_arrives() {
    let out = replay(DROP_TO_4_MBIT);
    for &(t, str0m, guarded) in &out {
        assert!(guarded <= str0m, "{t} s: {guarded} over str0m's {str0m}");
        // Before the loss, and once it has stopped and the queue drained: str0m's own.
        if !(1.9..5.55).contains(&t) {
            assert_eq!(guarded, str0m, "{t} s");
        }
        // Within 0.8 s of the loss (the first second's rate sent still counts the 20 Mbit/s
        // link), under what the 4 Mbit/s link carries, with room for the queue to drain,
        // while str0m climbs back to 5 Mbit/s.
        if (2.6..4.2).contains(&t) {
            assert!(guarded <= 3_500_000, "{t} s: {guarded} bit/s, str0m {str0m}");
        }
    }
}

#[test]
fn a_standing_queue_losing_a_few_percent_caps_the_estimate_too() {
    let out = replay(SETTLES_OVER_4_MBIT);
    for &(t, str0m, guarded) in &out {
        assert!(guarded <= str0m, "{t} s");
        if t < 0.8 {
            assert_eq!(guarded, str0m, "{t} s");
        }
    }
    // Once the loss passes 3 % behind the standing queue (3.6 s), capped under what arrives,
    // with room for the queue to drain.
    let capped: Vec<_> = out.iter().filter(|o| o.0 >= 4.0).collect();
    assert!(capped.iter().all(|&&(_, _, g)| g <= 3_400_000), "{capped:?}");
}

#[test]
fn loss_without_a_standing_queue_is_not_congestion() {
    // A lossy radio link: 15 % of the packets lost, the round trip flat, 5 Mbit/s sent.
    let reports: Vec<Report> = (0..100).map(|i| (i * 100, 6000, 0.15, i * 62_500, 40 + i % 3)).collect();
    assert!(replay(&reports).iter().all(|&(_, str0m, guarded)| guarded == str0m));
}

#[test]
fn the_cap_goes_once_the_loss_and_the_queue_are_gone_and_never_goes_under_the_floor() {
    let t0 = Instant::now();
    let mut g = LossGuard::default();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let (clean, full) = (Some(Duration::from_millis(40)), Some(Duration::from_millis(140)));
    // A second of a clean 2 Mbit/s path, then half the packets lost behind a full queue.
    let mut sent = 0;
    for i in 0..10 {
        sent += 25_000;
        assert_eq!(g.update(at(i * 100), 4_000_000, sent, Some(0.0), clean, FLOOR), 4_000_000);
    }
    for i in 10..20 {
        sent += 25_000;
        g.update(at(i * 100), 4_000_000, sent, Some(0.5), full, FLOOR);
    }
    // 2 Mbit/s sent, half of it arrived: capped at 0.85 Mbit/s.
    assert!(g.capped());
    let capped = g.update(at(2000), 4_000_000, sent, Some(0.5), full, FLOOR);
    assert!((800_000..=900_000).contains(&capped), "{capped}");
    // Loss persists and nothing is sent: the floor holds.
    for i in 21..40 {
        let c = g.update(at(i * 100), 4_000_000, sent, Some(0.5), full, FLOOR);
        assert!(c >= FLOOR, "{c}");
    }
    // The loss stops, but the queue still stands: still capped.
    assert!(g.update(at(4000), 4_000_000, sent, Some(0.0), full, FLOOR) < 4_000_000);
    // The queue drains: str0m's own again.
    for i in 41..44 {
        g.update(at(i * 100), 4_000_000, sent, Some(0.0), clean, FLOOR);
    }
    assert!(!g.capped());
    assert_eq!(g.update(at(4400), 4_000_000, sent, Some(0.0), clean, FLOOR), 4_000_000);
    // Capped again, then str0m falls under the cap by itself: its own, uncapped.
    for i in 45..60 {
        sent += 25_000;
        g.update(at(i * 100), 4_000_000, sent, Some(0.5), full, FLOOR);
    }
    assert!(g.capped());
    assert_eq!(g.update(at(6000), 500_000, sent, Some(0.5), full, FLOOR), 500_000);
    assert!(!g.capped());
}

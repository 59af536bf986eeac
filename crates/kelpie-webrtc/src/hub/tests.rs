//! A hub and a str0m client peer wired together in memory, on simulated time.

use super::*;
use kelpie_media::congestion::BitrateLimits;
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::media::MediaData;

const SERVER: &str = "10.9.0.1:8080";
const CLIENT: &str = "10.9.0.2:40000";

struct Pair {
    now: Instant,
    hub: Hub,
    client: Rtc,
    received: Vec<MediaData>,
    events: Vec<HubEvent>,
    /// Whether datagrams between the two are delivered.
    link_up: bool,
}

fn client_offer(now: Instant, h264: bool) -> (Rtc, SdpPendingOffer, String) {
    let mut client = Rtc::builder().clear_codecs().enable_h264(h264).enable_vp8(true).build(now);
    client.add_local_candidate(Candidate::host(CLIENT.parse().unwrap(), "udp").unwrap());
    let mut api = client.sdp_api();
    api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    let (offer, pending) = api.apply().unwrap();
    (client, pending, offer.to_sdp_string())
}

impl Pair {
    fn new(h264: bool) -> (Self, Answer) {
        Self::with_hub(Hub::new(vec![VideoCodec::H264, VideoCodec::Vp8]), h264)
    }

    fn with_hub(hub: Hub, h264: bool) -> (Self, Answer) {
        Self::on_monitor(hub, h264, 0)
    }

    /// A client whose window shows `monitor` (from 0).
    fn on_monitor(mut hub: Hub, h264: bool, monitor: u32) -> (Self, Answer) {
        let now = Instant::now();
        let (mut client, pending, offer) = client_offer(now, h264);
        let answer =
            hub.accept_offer_on(now, &offer, SERVER.parse().unwrap(), PeerPolicy::FULL, monitor).unwrap();
        let sdp = SdpAnswer::from_sdp_string(&answer.sdp).unwrap();
        client.sdp_api().accept_answer(pending, sdp).unwrap();
        (Self { now, hub, client, received: vec![], events: vec![], link_up: true }, answer)
    }

    /// Runs both ends for `dur` of simulated time, stepping to each next deadline.
    fn run(&mut self, dur: Duration) {
        let end = self.now + dur;
        while self.now < end {
            let mut out = Vec::new();
            let hub_next = self.hub.poll(self.now, &mut out, &mut self.events);
            for t in out {
                if self.link_up {
                    let input = Input::Receive(
                        self.now,
                        Receive {
                            proto: Protocol::Udp,
                            source: SERVER.parse().unwrap(),
                            destination: CLIENT.parse().unwrap(),
                            contents: t.contents.as_slice().try_into().unwrap(),
                        },
                    );
                    self.client.handle_input(input).unwrap();
                }
            }
            self.client.handle_input(Input::Timeout(self.now)).unwrap();
            let client_next;
            loop {
                match self.client.poll_output().unwrap() {
                    Output::Timeout(t) => {
                        client_next = t;
                        break;
                    }
                    Output::Transmit(t) => {
                        if self.link_up {
                            self.hub.receive(self.now, CLIENT.parse().unwrap(), &t.contents);
                        }
                    }
                    Output::Event(Event::MediaData(d)) => self.received.push(d),
                    Output::Event(_) => {}
                }
            }
            let next = hub_next.min(client_next).min(end);
            // Always move forward a little so the loop makes progress.
            self.now = next.max(self.now + Duration::from_millis(1));
        }
    }

    /// The H.264 estimates the hub gave for `peer`, in the events collected so far.
    fn estimates(&self, peer: PeerId) -> Vec<u64> {
        self.events
            .iter()
            .filter_map(|e| match e {
                HubEvent::Estimate(id, feed, bps) if feed.codec == VideoCodec::H264 && *id == peer => {
                    Some(*bps)
                }
                _ => None,
            })
            .collect()
    }

    fn frame(&self, keyframe: bool, tag: u8) -> EncodedFrame {
        // SPS, PPS and a slice: the packetizer only cares about NAL boundaries.
        let mut data = vec![0, 0, 0, 1, 0x67, 0x42, 0xe0, 0x1f, 0xaa, 0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80];
        data.extend_from_slice(&[0, 0, 0, 1, if keyframe { 0x65 } else { 0x41 }]);
        data.extend(std::iter::repeat_n(tag, 3000));
        EncodedFrame {
            data: data.into(),
            pts: Duration::from_millis(tag as u64 * 16),
            captured: self.now,
            keyframe,
            delta: false,
            width: 64,
            height: 64,
            changed: None,
        }
    }
}

#[test]
fn offer_answer_connects_and_delivers_frames_after_a_keyframe() {
    let (mut p, answer) = Pair::new(true);
    assert_eq!(answer.codec, VideoCodec::H264);
    p.run(Duration::from_secs(2));
    assert!(p.events.contains(&HubEvent::Connected(answer.peer)), "{:?}", p.events);
    assert!(p.events.contains(&HubEvent::KeyframeWanted(VideoCodec::H264.into())));

    // A delta frame before any keyframe is held back: the decoder could not use it.
    let delta = p.frame(false, 1);
    assert!(p.hub.send_frame(p.now, VideoCodec::H264, &delta), "viewer still waits for a keyframe");
    p.run(Duration::from_millis(200));
    assert!(p.received.is_empty());

    let key = p.frame(true, 2);
    assert!(!p.hub.send_frame(p.now, VideoCodec::H264, &key));
    p.run(Duration::from_millis(200));
    let delta = p.frame(false, 3);
    p.hub.send_frame(p.now, VideoCodec::H264, &delta);
    p.run(Duration::from_millis(200));
    assert_eq!(p.received.len(), 2, "keyframe and the delta after it arrive");
    assert!(p.received[0].data.ends_with(&[2; 3000]));
    assert!(p.received[1].data.ends_with(&[3; 3000]));
}

#[test]
fn a_peer_of_the_second_monitor_gets_that_monitors_stream_only() {
    let hub = Hub::new(vec![VideoCodec::H264, VideoCodec::Vp8]);
    let (mut p, answer) = Pair::on_monitor(hub, true, 1);
    let second = FeedKey { codec: VideoCodec::H264, monitor: 1 };
    assert_eq!(p.hub.feeds_in_use(), vec![second], "only monitor 2's stream is wanted");
    p.run(Duration::from_secs(2));
    assert!(p.events.contains(&HubEvent::Connected(answer.peer)));
    assert!(p.events.contains(&HubEvent::KeyframeWanted(second)), "{:?}", p.events);
    assert!(!p.events.contains(&HubEvent::KeyframeWanted(VideoCodec::H264.into())));
    // The first monitor's frames are not this peer's, keyframe or not.
    let first = p.frame(true, 4);
    assert!(!p.hub.send_frame(p.now, VideoCodec::H264, &first));
    p.run(Duration::from_millis(200));
    assert!(p.received.is_empty());
    let key = p.frame(true, 5);
    p.hub.send_frame(p.now, second, &key);
    p.run(Duration::from_millis(200));
    assert_eq!(p.received.len(), 1);
    assert!(p.received[0].data.ends_with(&[5; 3000]));
    assert_eq!(p.hub.keyframe_for(p.now, answer.peer), Some(second));
}

#[test]
fn twcc_feedback_gives_estimates_within_the_limits() {
    let limits = BitrateLimits::from_kbps(300, 2000, 8000);
    let hub = Hub::new(vec![VideoCodec::H264]).with_bandwidth_estimation(limits);
    let (mut p, answer) = Pair::with_hub(hub, true);
    p.run(Duration::from_secs(1));
    for i in 0..120u8 {
        let f = p.frame(i == 0, i);
        p.hub.send_frame(p.now, VideoCodec::H264, &f);
        p.run(Duration::from_millis(16));
    }
    let estimates = p.estimates(answer.peer);
    assert!(!estimates.is_empty(), "no estimate in {:?}", p.events);
    assert!(estimates.iter().all(|&b| (300_000..=8_000_000).contains(&b)), "{estimates:?}");
    assert_eq!(p.hub.paths().next().unwrap().2.estimate_bps, estimates.last().copied());
}

#[test]
fn a_peer_served_keyframes_only_gets_no_deltas_and_a_keyframe_now_and_then() {
    let (mut p, answer) = Pair::new(true);
    p.run(Duration::from_secs(1));
    let key = p.frame(true, 1);
    p.hub.send_frame(p.now, VideoCodec::H264, &key);
    p.run(Duration::from_millis(100));
    p.hub.set_keyframes_only(answer.peer, true);
    p.events.clear();
    // Deltas for a little less than the interval: none goes out, no keyframe is asked for.
    for i in 2..40u8 {
        let f = p.frame(false, i);
        p.hub.send_frame(p.now, VideoCodec::H264, &f);
        p.run(Duration::from_millis(70));
    }
    assert_eq!(p.received.len(), 1, "only the keyframe arrived");
    assert!(!p.events.contains(&HubEvent::KeyframeWanted(VideoCodec::H264.into())), "{:?}", p.events);
    // Past the interval, one keyframe is asked for.
    p.run(KEYFRAMES_ONLY_INTERVAL);
    let f = p.frame(false, 50);
    p.hub.send_frame(p.now, VideoCodec::H264, &f);
    p.run(Duration::from_millis(10));
    let asked = p.events.iter().filter(|e| **e == HubEvent::KeyframeWanted(VideoCodec::H264.into())).count();
    assert_eq!(asked, 1, "{:?}", p.events);
    let key = p.frame(true, 51);
    p.hub.send_frame(p.now, VideoCodec::H264, &key);
    p.run(Duration::from_millis(100));
    assert_eq!(p.received.len(), 2);
}

#[test]
fn browser_without_h264_gets_vp8() {
    let (mut p, answer) = Pair::new(false);
    assert_eq!(answer.codec, VideoCodec::Vp8);
    p.run(Duration::from_secs(2));
    assert!(p.events.contains(&HubEvent::Connected(answer.peer)));
    assert_eq!(p.hub.feeds_in_use(), vec![VideoCodec::Vp8.into()]);
}

#[test]
fn garbage_datagrams_are_counted_and_harmless() {
    let (mut p, answer) = Pair::new(true);
    p.run(Duration::from_secs(1));
    let stranger: SocketAddr = "10.9.0.3:1234".parse().unwrap();
    for n in 0..200u32 {
        let junk: Vec<u8> = (0..(n % 1500)).map(|i| (i * 31 + n) as u8).collect();
        p.hub.receive(p.now, stranger, &junk);
    }
    assert!(p.hub.unmatched_datagrams >= 150);
    let key = p.frame(true, 7);
    p.hub.send_frame(p.now, VideoCodec::H264, &key);
    p.run(Duration::from_millis(300));
    assert_eq!(p.received.len(), 1);
    assert_eq!(p.hub.peer_count(), 1, "peer {} survives", answer.peer);
}

#[test]
fn vanished_viewer_is_removed_after_ice_timeout() {
    let (mut p, answer) = Pair::new(true);
    p.run(Duration::from_secs(1));
    assert_eq!(p.hub.peer_count(), 1);
    p.link_up = false;
    p.run(Duration::from_secs(60));
    assert_eq!(p.hub.peer_count(), 0);
    assert!(p.events.iter().any(|e| matches!(e, HubEvent::Disconnected(id, _) if *id == answer.peer)));
}

#[test]
fn bad_offers_are_errors() {
    let mut hub = Hub::new(vec![VideoCodec::H264]);
    let now = Instant::now();
    assert!(matches!(hub.accept_offer(now, "hello", SERVER.parse().unwrap()), Err(WebRtcError::BadOffer(_))));
    let (_c, _p, vp8_only) = client_offer(now, false);
    assert!(matches!(
        hub.accept_offer(now, &vp8_only, SERVER.parse().unwrap()),
        Err(WebRtcError::NoCommonCodec)
    ));
    assert!(hub.add_remote_candidate(PeerId(99), "candidate:1 1 udp 1 1.2.3.4 5 typ host").is_err());
}

#[test]
fn codec_choice_follows_preference() {
    let sdp = "v=0\r\nm=audio 9 UDP 111\r\na=rtpmap:111 opus/48000/2\r\nm=video 9 UDP 96 98\r\na=rtpmap:96 VP8/90000\r\na=rtpmap:98 H264/90000\r\n";
    assert_eq!(choose_codec(sdp, &[VideoCodec::H264, VideoCodec::Vp8]), Some(VideoCodec::H264));
    assert_eq!(choose_codec(sdp, &[VideoCodec::Vp8, VideoCodec::H264]), Some(VideoCodec::Vp8));
    let audio_only = "v=0\r\nm=audio 9 UDP 111\r\na=rtpmap:111 H264/48000/2\r\n";
    assert_eq!(choose_codec(audio_only, &[VideoCodec::H264]), None);
}

#[test]
fn keyframe_requests_are_answered_unless_the_stream_is_merely_idle() {
    let (mut p, _answer) = Pair::new(true);
    p.run(Duration::from_secs(1));
    let key = p.frame(true, 1);
    p.hub.send_frame(p.now, VideoCodec::H264, &key);
    p.run(Duration::from_millis(100));
    let mid = p.received[0].mid;
    p.events.clear();

    // Right after a frame: a PLI means loss and is answered.
    p.client.writer(mid).unwrap().request_keyframe(None, KeyframeRequestKind::Pli).unwrap();
    // Feedback goes out with the next RTCP report.
    p.run(Duration::from_millis(1200));
    assert!(p.events.contains(&HubEvent::KeyframeWanted(VideoCodec::H264.into())), "{:?}", p.events);
    p.events.clear();

    // Three seconds of a static screen later, Chromium's frame timeout PLI is not.
    p.run(Duration::from_secs(3));
    p.client.writer(mid).unwrap().request_keyframe(None, KeyframeRequestKind::Pli).unwrap();
    p.run(Duration::from_millis(1200));
    assert!(!p.events.contains(&HubEvent::KeyframeWanted(VideoCodec::H264.into())));
    assert_eq!(p.hub.idle_plis_ignored, 1);

    // A FIR is always answered.
    p.client.writer(mid).unwrap().request_keyframe(None, KeyframeRequestKind::Fir).unwrap();
    p.run(Duration::from_millis(1200));
    assert!(p.events.contains(&HubEvent::KeyframeWanted(VideoCodec::H264.into())));
}

/// A browser-like client with a recv-only video and a send-receive (microphone) audio m-line.
fn audio_pair(microphone: bool) -> (Pair, Answer, Mid) {
    audio_pair_with(microphone, PeerPolicy::FULL, false)
}

/// As [`audio_pair`], for a peer with `policy`; with `hostile`, the client ignores the
/// answer's audio direction and sends its microphone anyway.
fn audio_pair_with(microphone: bool, policy: PeerPolicy, hostile: bool) -> (Pair, Answer, Mid) {
    let now = Instant::now();
    let mut hub = Hub::new(vec![VideoCodec::H264]).with_sound(true, microphone);
    let mut client = Rtc::builder()
        .clear_codecs()
        .enable_h264(true)
        .enable_opus(true, false)
        .set_extension(12, str0m::rtp::Extension::PlayoutDelay)
        .build(now);
    client.add_local_candidate(Candidate::host(CLIENT.parse().unwrap(), "udp").unwrap());
    let mut api = client.sdp_api();
    api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    let audio_mid = api.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
    let (offer, pending) = api.apply().unwrap();
    let answer = hub.accept_offer_with(now, &offer.to_sdp_string(), SERVER.parse().unwrap(), policy).unwrap();
    let text = if hostile { answer.sdp.replace("a=sendonly", "a=sendrecv") } else { answer.sdp.clone() };
    let sdp = SdpAnswer::from_sdp_string(&text).unwrap();
    client.sdp_api().accept_answer(pending, sdp).unwrap();
    (Pair { now, hub, client, received: vec![], events: vec![], link_up: true }, answer, audio_mid)
}

#[test]
fn opus_goes_out_and_the_microphone_comes_in_on_the_same_peer() {
    let (mut p, answer, audio_mid) = audio_pair(true);
    // Opus is negotiated with DTX asked of the browser, in a media stream of its own (so
    // that Chromium's lip sync does not delay it to the video the hub holds back).
    let opus_fmtp = answer.sdp.lines().find(|l| l.starts_with("a=fmtp:") && l.contains("useinbandfec"));
    assert!(opus_fmtp.is_some_and(|l| l.contains("usedtx=1")), "{}", answer.sdp);
    let stream_ids: Vec<&str> = answer
        .sdp
        .lines()
        .filter_map(|l| l.strip_prefix("a=msid:"))
        .map(|v| v.split(' ').next().unwrap())
        .collect();
    assert_eq!(stream_ids.len(), 2, "{}", answer.sdp);
    assert_ne!(stream_ids[0], stream_ids[1], "audio and video in streams of their own");
    p.run(Duration::from_secs(2));
    assert!(p.events.contains(&HubEvent::Connected(answer.peer)));
    assert!(p.hub.audio_in_use());

    // Nothing goes out before the browser says it plays sound: its jitter buffer would keep
    // it until its audio device starts.
    let early = AudioFrame { data: vec![0x78, 9, 9].into(), pts: Duration::ZERO, captured: p.now };
    p.hub.send_audio(p.now, &early);
    p.run(Duration::from_millis(50));
    assert!(!p.received.iter().any(|d| d.params.spec().codec == Codec::Opus));
    p.hub.set_audio_delay(p.now, answer.peer, 40, None);

    // Out: ten 10 ms packets arrive as Opus, alongside video.
    for i in 0..10u8 {
        let f = AudioFrame {
            data: vec![0x78, i, 1, 2, 3].into(),
            pts: Duration::from_millis(i as u64 * 10),
            captured: p.now,
        };
        p.hub.send_audio(p.now, &f);
        p.run(Duration::from_millis(10));
    }
    let key = p.frame(true, 1);
    p.hub.send_frame(p.now, VideoCodec::H264, &key);
    p.run(Duration::from_millis(200));
    let audio: Vec<_> = p.received.iter().filter(|d| d.params.spec().codec == Codec::Opus).collect();
    assert_eq!(audio.len(), 10);
    assert_eq!(&audio[3].data[..], &[0x78, 3, 1, 2, 3]);
    assert_eq!(
        audio[3].time.rebase(str0m::media::Frequency::FORTY_EIGHT_KHZ).numer() - audio[2].time.numer(),
        480
    );
    assert!(p.received.iter().any(|d| d.params.spec().codec == Codec::H264));

    // In: the browser's microphone packets come out as events of its peer.
    let pt = p.client.writer(audio_mid).unwrap().payload_params().next().unwrap().pt();
    for i in 0..5u8 {
        let t = MediaTime::new(i as u64 * 480, str0m::media::Frequency::FORTY_EIGHT_KHZ);
        p.client.writer(audio_mid).unwrap().write(pt, p.now, t, vec![0x08, i]).unwrap();
        p.run(Duration::from_millis(10));
    }
    p.run(Duration::from_millis(100));
    let mic: Vec<_> =
        p.events.iter().filter(|e| matches!(e, HubEvent::Microphone(id, _) if *id == answer.peer)).collect();
    assert_eq!(mic.len(), 5, "{:?}", p.events);
    assert_eq!(mic[4], &HubEvent::Microphone(answer.peer, vec![0x08, 4]));
}

#[test]
fn without_the_microphone_the_audio_line_is_send_only() {
    let (mut p, answer, _) = audio_pair(false);
    let audio = answer.sdp.split("m=audio").nth(1).unwrap();
    assert!(audio.contains("a=sendonly") && !audio.contains("a=sendrecv"), "{audio}");
    p.run(Duration::from_secs(1));
    assert!(p.hub.audio_in_use());
}

#[test]
fn video_waits_for_the_sound_only_while_sound_plays() {
    let (mut p, answer, _) = audio_pair(false);
    p.run(Duration::from_secs(2));
    assert!(p.events.contains(&HubEvent::Connected(answer.peer)));
    let delays = |p: &Pair| -> Vec<Option<u64>> {
        p.received
            .iter()
            .filter(|d| d.params.spec().codec == Codec::H264)
            .map(|d| {
                d.ext_vals.play_delay_max.map(|t| t.rebase(str0m::media::Frequency::HUNDREDTHS).numer() * 10)
            })
            .collect()
    };
    // No sound: video is shown at once.
    let key = p.frame(true, 1);
    p.hub.send_frame(p.now, VideoCodec::H264, &key);
    p.run(Duration::from_millis(50));
    assert_eq!(delays(&p), vec![Some(0)]);

    // Sound plays and the browser says it holds sound 60 ms: video waits as long (plus the
    // sound's 20 ms in the server, minus the video's 0 ms).
    p.hub.set_audio_delay(p.now, answer.peer, 60, None);
    for i in 0..20u8 {
        let f = AudioFrame {
            data: vec![0x78, i, 1, 2, 3].into(),
            pts: Duration::from_millis(i as u64 * 10),
            captured: p.now - Duration::from_millis(20),
        };
        p.hub.send_audio(p.now, &f);
        p.run(Duration::from_millis(10));
    }
    let f = p.frame(false, 2);
    p.hub.send_frame(p.now, VideoCodec::H264, &f);
    p.run(Duration::from_millis(50));
    assert_eq!(delays(&p).last(), Some(&Some(80)));

    // A second after the last sound, video is immediate again.
    p.run(Duration::from_millis(1100));
    let f = p.frame(false, 3);
    p.hub.send_frame(p.now, VideoCodec::H264, &f);
    p.run(Duration::from_millis(50));
    assert_eq!(delays(&p).last(), Some(&Some(0)));
}

#[test]
fn a_viewer_in_a_gap_asks_for_one_keyframe_however_many_frames_it_skips() {
    let (mut p, _answer) = Pair::new(true);
    p.run(Duration::from_secs(1));
    let key = p.frame(true, 1);
    p.hub.send_frame(p.now, VideoCodec::H264, &key);
    p.run(Duration::from_millis(100));
    assert_eq!(p.received.len(), 1);
    p.events.clear();

    // The feed lost frames: the viewer waits for a keyframe, asked for once.
    p.hub.lagged(VideoCodec::H264, 5);
    for tag in 2..12 {
        let delta = p.frame(false, tag);
        assert!(p.hub.send_frame(p.now, VideoCodec::H264, &delta), "still waits for a keyframe");
        p.run(Duration::from_millis(16));
    }
    let asked = p.events.iter().filter(|e| **e == HubEvent::KeyframeWanted(VideoCodec::H264.into())).count();
    assert_eq!(asked, 1, "{:?}", p.events);
    assert_eq!(p.received.len(), 1, "no delta after the gap went out");

    // The keyframe ends the gap; the deltas after it go out again.
    let key = p.frame(true, 12);
    assert!(!p.hub.send_frame(p.now, VideoCodec::H264, &key));
    let delta = p.frame(false, 13);
    assert!(!p.hub.send_frame(p.now, VideoCodec::H264, &delta));
    p.run(Duration::from_millis(100));
    assert_eq!(p.received.len(), 3);
    assert!(p.received[2].data.ends_with(&[13; 3000]));
}

#[test]
fn rtp_time_follows_pts_across_a_resize() {
    // After a resize the stream's encoder is new but its pts run on (one media clock per
    // session): the RTP timestamps of the frames before and after keep rising at 90 kHz.
    let (mut p, _answer) = Pair::new(true);
    p.run(Duration::from_secs(1));
    let mut before = p.frame(true, 1);
    before.pts = Duration::from_millis(5000);
    p.hub.send_frame(p.now, VideoCodec::H264, &before);
    p.run(Duration::from_millis(50));
    let mut after = p.frame(true, 2);
    (after.width, after.height, after.pts) = (128, 96, Duration::from_millis(5050));
    p.hub.send_frame(p.now, VideoCodec::H264, &after);
    p.run(Duration::from_millis(100));
    assert_eq!(p.received.len(), 2);
    let (t0, t1) = (p.received[0].time, p.received[1].time);
    assert_eq!(t1.rebase(t0.frequency()).numer() - t0.numer(), 50 * 90, "50 ms apart at 90 kHz");
}

/// Writes `n` microphone packets from the client, 10 ms apart; returns the microphone events
/// of `peer` the hub gave.
fn send_microphone(p: &mut Pair, audio_mid: Mid, peer: PeerId, n: u8) -> usize {
    let pt = p.client.writer(audio_mid).unwrap().payload_params().next().unwrap().pt();
    for i in 0..n {
        let t = MediaTime::new(i as u64 * 480, str0m::media::Frequency::FORTY_EIGHT_KHZ);
        p.client.writer(audio_mid).unwrap().write(pt, p.now, t, vec![0x08, i]).unwrap();
        p.run(Duration::from_millis(10));
    }
    p.run(Duration::from_millis(100));
    p.events.iter().filter(|e| matches!(e, HubEvent::Microphone(id, _) if *id == peer)).count()
}

#[test]
fn a_view_only_peer_gets_sound_but_its_microphone_never_comes_in() {
    // Even from a client that ignores the send-only answer and sends its microphone.
    let (mut p, answer, audio_mid) = audio_pair_with(true, PeerPolicy::VIEW_ONLY, true);
    let audio = answer.sdp.split("m=audio").nth(1).unwrap();
    assert!(audio.contains("a=sendonly") && !audio.contains("a=sendrecv"), "{audio}");
    assert_eq!(p.hub.microphones_refused, 1);
    p.run(Duration::from_secs(2));
    assert!(p.events.contains(&HubEvent::Connected(answer.peer)));
    assert!(p.hub.audio_in_use(), "it still hears the session");
    assert_eq!(send_microphone(&mut p, audio_mid, answer.peer, 20), 0, "{:?}", p.events);
    assert_eq!(p.hub.peer_count(), 1, "what it sent did not break its peer");

    // The same hostile client with full access is heard: the test can tell the difference.
    let (mut p, answer, audio_mid) = audio_pair_with(true, PeerPolicy::FULL, true);
    assert_eq!(p.hub.microphones_refused, 0);
    p.run(Duration::from_secs(2));
    assert_eq!(send_microphone(&mut p, audio_mid, answer.peer, 20), 20);
}

/// Keyframes a view-only peer's requests cause: immediate answers plus held ones that fall
/// due, over 2 s of requests every 40 ms.
#[test]
fn a_view_only_peer_causes_at_most_one_keyframe_a_second() {
    for (policy, most) in [(PeerPolicy::VIEW_ONLY, 3), (PeerPolicy::FULL, 50)] {
        let now = Instant::now();
        let mut hub = Hub::new(vec![VideoCodec::H264]);
        let (mut client, pending, offer) = client_offer(now, true);
        let answer = hub.accept_offer_with(now, &offer, SERVER.parse().unwrap(), policy).unwrap();
        client.sdp_api().accept_answer(pending, SdpAnswer::from_sdp_string(&answer.sdp).unwrap()).unwrap();
        let mut p = Pair { now, hub, client, received: vec![], events: vec![], link_up: true };
        p.run(Duration::from_secs(1));
        assert!(p.events.contains(&HubEvent::Connected(answer.peer)));
        p.events.clear();
        let mut asked = 0;
        for _ in 0..50 {
            asked += usize::from(p.hub.keyframe_for(p.now, answer.peer).is_some());
            p.run(Duration::from_millis(40));
        }
        p.run(Duration::from_secs(1));
        asked += p.events.iter().filter(|e| **e == HubEvent::KeyframeWanted(VideoCodec::H264.into())).count();
        // View-only: at 0 s, and the requests held at 1 s and at 2 s.
        assert_eq!(asked, most, "{policy:?}: {asked} keyframes for 50 requests");
        if policy == PeerPolicy::VIEW_ONLY {
            assert!(p.hub.keyframes_refused >= 47, "{}", p.hub.keyframes_refused);
        } else {
            assert_eq!(p.hub.keyframes_refused, 0);
        }
    }
}

#[test]
fn a_view_only_peers_pli_waits_for_the_interval() {
    let now = Instant::now();
    let mut hub = Hub::new(vec![VideoCodec::H264]);
    let (mut client, pending, offer) = client_offer(now, true);
    let answer = hub.accept_offer_with(now, &offer, SERVER.parse().unwrap(), PeerPolicy::VIEW_ONLY).unwrap();
    client.sdp_api().accept_answer(pending, SdpAnswer::from_sdp_string(&answer.sdp).unwrap()).unwrap();
    let mut p = Pair { now, hub, client, received: vec![], events: vec![], link_up: true };
    p.run(Duration::from_secs(1));
    let key = p.frame(true, 1);
    p.hub.send_frame(p.now, VideoCodec::H264, &key);
    p.run(Duration::from_millis(100));
    let mid = p.received[0].mid;
    // A request through signalling is answered; a PLI right after it is held, not dropped.
    let asked_at = p.now;
    assert_eq!(p.hub.keyframe_for(p.now, answer.peer), Some(VideoCodec::H264.into()));
    p.events.clear();
    p.client.writer(mid).unwrap().request_keyframe(None, KeyframeRequestKind::Pli).unwrap();
    let mut wanted_at = None;
    while p.now < asked_at + Duration::from_millis(2500) && wanted_at.is_none() {
        p.run(Duration::from_millis(10));
        if p.events.contains(&HubEvent::KeyframeWanted(VideoCodec::H264.into())) {
            wanted_at = Some(p.now);
        }
    }
    let waited = wanted_at.expect("the held PLI is answered").duration_since(asked_at);
    assert!(waited >= VIEW_ONLY_KEYFRAME_INTERVAL, "answered after {waited:?}");
    assert!(waited < VIEW_ONLY_KEYFRAME_INTERVAL + Duration::from_millis(100), "answered after {waited:?}");
    assert_eq!(p.hub.keyframes_refused, 1);
}

#[test]
fn datagrams_from_strangers_reach_no_peer_and_teach_the_hub_nothing() {
    let (mut p, answer) = Pair::new(true);
    p.run(Duration::from_secs(1));
    assert!(p.events.contains(&HubEvent::Connected(answer.peer)));
    let learnt = p.hub.routes.addr_count();
    assert!(learnt >= 1, "the client's address was learnt from its checks");
    let before = p.hub.unmatched_datagrams;
    // STUN binding requests with made-up ufrags from many addresses, DTLS and RTP-looking
    // datagrams: each is one lookup and a count.
    for i in 0..5000u32 {
        let source = SocketAddr::from(([10, 9, (i >> 8) as u8, i as u8], 1000 + (i % 7) as u16));
        let user = format!("u{i}:x");
        let mut stun = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
        stun.extend([1u8; 12]);
        stun.extend([0x00, 0x06, 0x00, user.len() as u8]);
        stun.extend(user.as_bytes());
        while stun.len() % 4 != 0 {
            stun.push(0);
        }
        let len = (stun.len() - 20) as u16;
        stun[2..4].copy_from_slice(&len.to_be_bytes());
        assert!(!p.hub.receive(p.now, source, &stun));
        assert!(!p.hub.receive(p.now, source, &[0x16, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 1]));
        assert!(!p.hub.receive(p.now, source, &[0x80, 0x60, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2]));
    }
    assert_eq!(p.hub.unmatched_datagrams - before, 15_000);
    assert_eq!(p.hub.routes.addr_count(), learnt, "strangers learnt no route");
    // The viewer is undisturbed.
    let key = p.frame(true, 7);
    p.hub.send_frame(p.now, VideoCodec::H264, &key);
    p.run(Duration::from_millis(300));
    assert_eq!(p.received.len(), 1);
    // Once it is gone, its addresses are forgotten too.
    p.hub.remove(answer.peer);
    assert_eq!(p.hub.routes.addr_count(), 0);
}

#[test]
fn a_peer_takes_a_bounded_number_of_trickled_candidates() {
    let (mut p, answer) = Pair::new(true);
    // The offer's own candidate counts too.
    let mut taken = 1;
    for i in 0..200u32 {
        let c = format!("candidate:{i} 1 udp 2122260223 10.8.{}.{} {} typ host", i >> 8, i & 255, 5000 + i);
        match p.hub.add_remote_candidate(answer.peer, &c) {
            Ok(()) => taken += 1,
            Err(e) => assert!(matches!(e, WebRtcError::TooManyCandidates(MAX_REMOTE_CANDIDATES)), "{e}"),
        }
    }
    assert_eq!(taken, MAX_REMOTE_CANDIDATES);
    assert_eq!(p.hub.candidates_refused, 200 - (MAX_REMOTE_CANDIDATES as u64 - 1));
    // The peer still connects.
    p.run(Duration::from_secs(2));
    assert!(p.events.contains(&HubEvent::Connected(answer.peer)));
}

#[test]
fn feedback_again_after_an_outage_asks_for_a_keyframe_and_holds_the_deltas_back() {
    let limits = BitrateLimits::from_kbps(300, 2000, 8000);
    let hub = Hub::new(vec![VideoCodec::H264]).with_bandwidth_estimation(limits);
    let (mut p, answer) = Pair::with_hub(hub, true);
    p.run(Duration::from_secs(1));
    let h264 = HubEvent::KeyframeWanted(VideoCodec::H264.into());
    let send = |p: &mut Pair, tag: u8, keyframe: bool| {
        let f = p.frame(keyframe, tag);
        p.hub.send_frame(p.now, VideoCodec::H264, &f);
        p.run(Duration::from_millis(16));
    };
    // A second of frames with feedback, then two seconds of nothing through.
    for tag in 0..60 {
        send(&mut p, tag, tag == 0);
    }
    let before = *p.estimates(answer.peer).last().expect("an estimate before the outage");
    p.events.clear();
    p.link_up = false;
    for tag in 60..180 {
        send(&mut p, tag, false);
    }
    assert!(!p.events.contains(&h264), "no keyframe asked for while nothing comes back");
    // The link is back: the first stats with feedback ask for a keyframe ...
    p.link_up = true;
    p.events.clear();
    let mut asked = None;
    for tag in 180..210 {
        send(&mut p, tag, false);
        if asked.is_none() && p.events.contains(&h264) {
            asked = Some(tag);
        }
    }
    let asked = asked.expect("a keyframe asked for once feedback came back");
    // ... and the estimate does not fall with the packets lost in the outage (the keyframe
    // would wait for it): it starts again from where it was.
    let after = p.estimates(answer.peer);
    assert!(
        after.iter().all(|&b| b as f64 >= before as f64 * 0.8),
        "estimate {before} before the outage, then {after:?}"
    );
    // ... and the deltas after the request wait for it rather than pile up behind the lost
    // frames: none of them reaches the viewer.
    send(&mut p, 210, true);
    for tag in 211..220 {
        send(&mut p, tag, false);
    }
    p.run(Duration::from_secs(1));
    let tags: Vec<u8> = p.received.iter().filter_map(|d| d.data.last().copied()).collect();
    assert!(!tags.iter().any(|&t| t > asked && t < 210), "deltas after the request: {tags:?}");
    assert!(tags.contains(&210) && tags.contains(&219), "the keyframe and the frames after it: {tags:?}");
}

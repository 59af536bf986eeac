//! The audio m-line of a viewer's peer connection: Opus out (the session's sound) and, when
//! the browser sends its microphone, Opus in.
//!
//! Audio shares the video's `Rtc` (one more m-line in the BUNDLE): str0m keeps one queue
//! per m-line and sends each as soon as it is written, so a 100-packet keyframe does not
//! hold back the audio packet written after it, nor the other way round.
//!
//! A viewer gets sound once its browser plays it ([`Gate`]).

use std::time::{Duration, Instant};

use kelpie_media::AudioFrame;
use str0m::Rtc;
use str0m::format::{Codec, PayloadParams};
use str0m::media::{Direction, MediaAdded, MediaTime, Mid};

use super::Peer;

pub(super) fn media_added(p: &mut Peer, m: &MediaAdded) {
    if matches!(m.direction, Direction::SendOnly | Direction::SendRecv)
        && let Some(writer) = p.rtc.writer(m.mid)
        && let Some(params) = writer.payload_params().find(|x| x.spec().codec == Codec::Opus)
    {
        p.audio = Some((m.mid, *params));
    }
    // str0m receives on this m-line only when the offer let it (see `receive_only`); the
    // peer's own permission is checked again here.
    if p.microphone && matches!(m.direction, Direction::RecvOnly | Direction::SendRecv) {
        p.mic_mid = Some(m.mid);
    }
    tracing::debug!(id = %p.id, direction = ?m.direction, "audio m-line added");
}

/// How long after connecting a viewer whose browser never says that it plays sound gets it
/// anyway (a browser without the `media-playout` statistics, or an older page).
pub(super) const GATE_TIMEOUT: Duration = Duration::from_secs(3);

/// Whether a viewer gets sound yet: once its browser reports that its audio device plays
/// (the first `audiodelay` report), or [`GATE_TIMEOUT`] after connecting. A browser's jitter
/// buffer keeps every packet that arrives before its audio device starts taking sound, and
/// starting the device takes a second or more on a busy machine: that second of sound then
/// stayed in the buffer, draining over several seconds, and the picture waited as long.
#[derive(Debug, Default)]
pub(super) struct Gate {
    connected_at: Option<Instant>,
    open: bool,
}

impl Gate {
    /// The peer connected at `now`.
    pub(super) fn connected(&mut self, now: Instant) {
        self.connected_at.get_or_insert(now);
    }

    /// The browser plays sound.
    pub(super) fn open(&mut self) {
        self.open = true;
    }

    /// Whether sound goes to the peer at `now`.
    pub(super) fn admits(&self, now: Instant) -> bool {
        self.open || self.connected_at.is_some_and(|t| now.saturating_duration_since(t) >= GATE_TIMEOUT)
    }
}

/// Writes one Opus packet. RTP time counts 48 kHz samples from the stream's start; the
/// wall clock (for the sender reports) is the capture time, on the same clock as video
/// frames'.
pub(super) fn send(rtc: &mut Rtc, track: Option<&(Mid, PayloadParams)>, now: Instant, frame: &AudioFrame) {
    let Some((mid, params)) = track else { return };
    let Some(writer) = rtc.writer(*mid) else { return };
    let rtp_time =
        MediaTime::new((frame.pts.as_micros() * 48 / 1000) as u64, str0m::media::Frequency::FORTY_EIGHT_KHZ);
    if let Err(e) = writer.write(params.pt(), frame.captured.min(now), rtp_time, frame.data.to_vec()) {
        tracing::debug!("audio write failed: {e}");
    }
}

/// The offer with every audio m-line made receive-only for the browser (`sendrecv` →
/// `recvonly`, `sendonly` → `inactive`; no direction means `sendrecv`), so that str0m answers
/// `sendonly` and never takes what the browser sends there: for a viewer whose microphone is
/// not taken. Also returns whether some audio m-line wanted to send.
pub(super) fn receive_only(offer: &str) -> (String, bool) {
    let mut out = String::with_capacity(offer.len() + 16);
    let mut refused = false;
    // Per m-section: whether it is audio, and its direction seen so far.
    let mut audio = false;
    let mut direction: Option<&str> = None;
    let mut end_section = |out: &mut String, audio: bool, direction: Option<&str>, eol: &str| {
        if audio {
            let sends = matches!(direction, None | Some("sendrecv" | "sendonly"));
            refused |= sends;
            let new = match direction {
                Some("sendonly" | "inactive") => "inactive",
                _ => "recvonly",
            };
            out.push_str("a=");
            out.push_str(new);
            out.push_str(eol);
        }
    };
    let mut eol = "\r\n";
    for line in offer.split_inclusive('\n') {
        let body = line.trim_end_matches(['\r', '\n']);
        if body.len() < line.len() {
            eol = &line[body.len()..];
        }
        if body.starts_with("m=") {
            end_section(&mut out, audio, direction, eol);
            audio = body.starts_with("m=audio");
            direction = None;
        } else if audio
            && let Some(d) = body.strip_prefix("a=")
            && matches!(d, "sendrecv" | "sendonly" | "recvonly" | "inactive")
        {
            direction = Some(d);
            continue;
        }
        out.push_str(line);
    }
    if !out.is_empty() && !out.ends_with('\n') {
        out.push_str(eol);
    }
    end_section(&mut out, audio, direction, eol);
    (out, refused)
}

/// Adjusts str0m's SDP answer for the browser: `usedtx=1` on Opus asks the browser's
/// microphone encoder for DTX, so a silent microphone costs almost nothing.
///
/// Audio and video stay in media streams of their own (str0m gives every m-line its own
/// `a=msid`): in one stream Chromium's lip sync would delay the sound to line it up with the
/// video, which the hub itself holds back to line it up with the sound (`sync.rs`): each
/// raised the other up to the hub's 300 ms limit.
pub(super) fn adjust_answer(sdp: &str) -> String {
    let mut opus_pt = None;
    let mut out = String::with_capacity(sdp.len() + 32);
    let mut in_audio = false;
    for line in sdp.split_inclusive('\n') {
        let body = line.trim_end_matches(['\r', '\n']);
        let end = &line[body.len()..];
        let mut body = body.to_string();
        if body.starts_with("m=") {
            in_audio = body.starts_with("m=audio");
        }
        if in_audio {
            if let Some(r) = body.strip_prefix("a=rtpmap:")
                && r.to_ascii_lowercase().contains(" opus/")
            {
                opus_pt = r.split_whitespace().next().map(str::to_string);
            }
            if let Some(pt) = &opus_pt
                && let Some(rest) = body.strip_prefix(&format!("a=fmtp:{pt} "))
                && !rest.contains("usedtx")
            {
                body.push_str(";usedtx=1");
            }
        }
        out.push_str(&body);
        out.push_str(end);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sound_goes_out_once_the_browser_plays_it_or_after_the_timeout() {
        let t0 = Instant::now();
        let mut g = Gate::default();
        assert!(!g.admits(t0 + GATE_TIMEOUT * 2), "not before connecting");
        g.connected(t0);
        assert!(!g.admits(t0 + Duration::from_millis(500)));
        g.open();
        assert!(g.admits(t0 + Duration::from_millis(500)));
        let mut silent = Gate::default();
        silent.connected(t0);
        silent.connected(t0 + Duration::from_secs(1));
        assert!(!silent.admits(t0 + GATE_TIMEOUT - Duration::from_millis(1)));
        assert!(
            silent.admits(t0 + GATE_TIMEOUT),
            "a browser that never reports gets sound after the timeout"
        );
    }

    #[test]
    fn answer_keeps_audio_in_its_own_stream_and_asks_for_dtx() {
        let sdp = "v=0\r\na=msid-semantic: WMS vs as\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n\
                   a=msid:vs vt\r\na=ssrc:1 msid:vs vt\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
                   a=sendrecv\r\na=msid:as at\r\na=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n";
        let out = adjust_answer(sdp);
        assert!(out.contains("a=sendrecv"), "{out}");
        assert!(out.contains("a=msid-semantic: WMS vs as\r\n"), "{out}");
        assert!(out.contains("a=msid:vs vt\r\n") && out.contains("a=msid:as at\r\n"), "{out}");
        assert!(out.contains("a=fmtp:111 minptime=10;useinbandfec=1;usedtx=1\r\n"), "{out}");
        // Idempotent.
        assert_eq!(adjust_answer(&out), out);
    }

    #[test]
    fn receive_only_offers_take_nothing_from_the_browser() {
        let offer = "v=0\r\nm=video 9 UDP 96\r\na=mid:0\r\na=recvonly\r\nm=audio 9 UDP 111\r\na=mid:1\r\n\
                     a=sendrecv\r\na=rtpmap:111 opus/48000/2\r\n";
        let (out, refused) = receive_only(offer);
        assert!(refused);
        assert_eq!(
            out,
            "v=0\r\nm=video 9 UDP 96\r\na=mid:0\r\na=recvonly\r\nm=audio 9 UDP 111\r\na=mid:1\r\n\
             a=rtpmap:111 opus/48000/2\r\na=recvonly\r\n"
        );
        // No direction (sendrecv by default), sendonly, and audio before video.
        let (out, refused) = receive_only("v=0\nm=audio 9 UDP 111\na=mid:0\nm=video 9 UDP 96\na=sendrecv\n");
        assert!(refused);
        assert_eq!(out, "v=0\nm=audio 9 UDP 111\na=mid:0\na=recvonly\nm=video 9 UDP 96\na=sendrecv\n");
        let (out, _) = receive_only("m=audio 9 UDP 111\r\na=sendonly");
        assert_eq!(out, "m=audio 9 UDP 111\r\na=inactive\r\n");
        // A browser that only listens wanted nothing refused.
        let (out, refused) = receive_only("m=audio 9 UDP 111\r\na=recvonly\r\n");
        assert!(!refused);
        assert_eq!(out, "m=audio 9 UDP 111\r\na=recvonly\r\n");
    }
}

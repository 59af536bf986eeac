//! Binary messages of the signalling WebSocket: a 16-byte header, then an encoded video frame
//! or an Opus packet (the WebSocket transport), and the changed region of a video frame (either
//! transport).

use crate::VideoCodec;

/// First byte of every binary message on the WebSocket transport: what follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum BinaryKind {
    /// A video frame ([`VideoFrameHeader`]).
    Video = 1,
    /// An audio frame ([`AudioFrameHeader`]).
    Audio = 2,
    /// Where a video frame's picture differs from the frame before it ([`FrameRegion`]).
    Region = 3,
}

impl BinaryKind {
    /// The kind of a binary message, from its first byte; `None` for an unknown kind.
    pub fn of(message: &[u8]) -> Option<Self> {
        match message.first() {
            Some(1) => Some(Self::Video),
            Some(2) => Some(Self::Audio),
            Some(3) => Some(Self::Region),
            _ => None,
        }
    }
}

/// Header of a binary video frame on the WebSocket transport (16 bytes, big-endian),
/// followed by the encoded frame (H.264 Annex-B access unit or VP8 frame).
///
/// | bytes | field |
/// |---|---|
/// | 0 | kind: 1 = video |
/// | 1 | flags: bit 0 = keyframe |
/// | 2 | codec: 0 = H.264, 1 = VP8 |
/// | 3 | reserved, 0 |
/// | 4..12 | presentation time, microseconds |
/// | 12..14 | width |
/// | 14..16 | height |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoFrameHeader {
    /// Whether the frame decodes on its own.
    pub keyframe: bool,
    /// Its codec.
    pub codec: VideoCodec,
    /// Presentation time in microseconds: when the session has sound, the capture time on
    /// the sound's clock (as [`AudioFrameHeader::pts_us`]), so the two can be lined up.
    pub pts_us: u64,
    /// Picture width.
    pub width: u16,
    /// Picture height.
    pub height: u16,
}

impl VideoFrameHeader {
    /// Size of the header in bytes.
    pub const LEN: usize = 16;

    /// The header's bytes.
    pub fn to_bytes(self) -> [u8; Self::LEN] {
        let mut b = [0u8; Self::LEN];
        b[0] = BinaryKind::Video as u8;
        b[1] = u8::from(self.keyframe);
        b[2] = match self.codec {
            VideoCodec::H264 => 0,
            VideoCodec::Vp8 => 1,
        };
        b[4..12].copy_from_slice(&self.pts_us.to_be_bytes());
        b[12..14].copy_from_slice(&self.width.to_be_bytes());
        b[14..16].copy_from_slice(&self.height.to_be_bytes());
        b
    }

    /// Parses a header (for tests and tools; browsers parse it in TypeScript).
    pub fn parse(b: &[u8]) -> Option<Self> {
        if b.len() < Self::LEN || BinaryKind::of(b) != Some(BinaryKind::Video) {
            return None;
        }
        let codec = match b[2] {
            0 => VideoCodec::H264,
            1 => VideoCodec::Vp8,
            _ => return None,
        };
        Some(Self {
            keyframe: b[1] & 1 == 1,
            codec,
            pts_us: u64::from_be_bytes(b[4..12].try_into().ok()?),
            width: u16::from_be_bytes([b[12], b[13]]),
            height: u16::from_be_bytes([b[14], b[15]]),
        })
    }
}

/// Header of a binary audio frame on the WebSocket transport (16 bytes, big-endian),
/// followed by one Opus packet (48 kHz, stereo; 10 ms as Kelpie encodes it, but the packet's
/// own TOC byte is what says how long it is).
///
/// | bytes | field |
/// |---|---|
/// | 0 | kind: 2 = audio |
/// | 1 | flags: reserved, 0 |
/// | 2 | codec: 0 = Opus, 48 kHz, 2 channels |
/// | 3 | reserved, 0 |
/// | 4..12 | presentation time of the first sample, microseconds, on the audio stream's clock |
/// | 12..16 | age: microseconds from capture to sending, as the server measured it |
///
/// Silence is not sent (Opus DTX), so times jump over quiet stretches; they may also start
/// again lower when the server's audio stream is recreated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioFrameHeader {
    /// Presentation time (capture time of the first sample) in microseconds.
    pub pts_us: u64,
    /// How long the frame waited on the server, in microseconds (saturates at `u32::MAX`).
    pub age_us: u32,
}

impl AudioFrameHeader {
    /// Size of the header in bytes.
    pub const LEN: usize = 16;

    /// The header's bytes.
    pub fn to_bytes(self) -> [u8; Self::LEN] {
        let mut b = [0u8; Self::LEN];
        b[0] = BinaryKind::Audio as u8;
        b[4..12].copy_from_slice(&self.pts_us.to_be_bytes());
        b[12..16].copy_from_slice(&self.age_us.to_be_bytes());
        b
    }

    /// Parses a header (for tests and tools; browsers parse it in TypeScript).
    pub fn parse(b: &[u8]) -> Option<Self> {
        if b.len() < Self::LEN || BinaryKind::of(b) != Some(BinaryKind::Audio) || b[2] != 0 {
            return None;
        }
        Some(Self {
            pts_us: u64::from_be_bytes(b[4..12].try_into().ok()?),
            age_us: u32::from_be_bytes(b[12..16].try_into().ok()?),
        })
    }
}

/// A rectangle of a picture, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegionRect {
    /// Left edge.
    pub x: u16,
    /// Top edge.
    pub y: u16,
    /// Width.
    pub width: u16,
    /// Height.
    pub height: u16,
}

/// Where the decoded picture of a video frame differs from the frame before it in the stream
/// (big-endian): outside the rectangles it is that frame's picture, bit for bit, so a viewer
/// that shows it redraws only them. Sent before the frame on the WebSocket transport, and
/// beside the video on the signalling socket with WebRTC (the frame's RTP timestamp is
/// `pts_us` × 0.09, rounded down, modulo 2^32).
///
/// | bytes | field |
/// |---|---|
/// | 0 | kind: 3 = changed region |
/// | 1 | flags: reserved, 0 |
/// | 2 | number of rectangles, N (0: nothing changed) |
/// | 3 | reserved, 0 |
/// | 4..12 | the frame's presentation time, microseconds |
/// | 12..20 | the presentation time of the frame before it |
/// | 20.. | N rectangles: x, y, width, height (u16 each) |
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameRegion {
    /// The frame's presentation time, microseconds.
    pub pts_us: u64,
    /// The presentation time of the frame whose picture it differs from only in `rects`.
    pub after_us: u64,
    /// Where it differs (at most [`FrameRegion::MAX_RECTS`]).
    pub rects: Vec<RegionRect>,
}

impl FrameRegion {
    /// Size of the fixed part in bytes.
    pub const LEN: usize = 20;
    /// Most rectangles one message carries.
    pub const MAX_RECTS: usize = 255;

    /// The message's bytes; rectangles past [`FrameRegion::MAX_RECTS`] are not sent, so a
    /// caller with more sends none of this (the viewer then redraws the whole picture).
    pub fn to_bytes(&self) -> Vec<u8> {
        let n = self.rects.len().min(Self::MAX_RECTS);
        let mut b = Vec::with_capacity(Self::LEN + 8 * n);
        b.extend_from_slice(&[BinaryKind::Region as u8, 0, n as u8, 0]);
        b.extend_from_slice(&self.pts_us.to_be_bytes());
        b.extend_from_slice(&self.after_us.to_be_bytes());
        for r in &self.rects[..n] {
            for v in [r.x, r.y, r.width, r.height] {
                b.extend_from_slice(&v.to_be_bytes());
            }
        }
        b
    }

    /// Parses a message (for tests and tools; browsers parse it in TypeScript).
    pub fn parse(b: &[u8]) -> Option<Self> {
        if b.len() < Self::LEN || BinaryKind::of(b) != Some(BinaryKind::Region) {
            return None;
        }
        let n = usize::from(b[2]);
        let body = b.get(Self::LEN..Self::LEN + 8 * n)?;
        let u16_at = |c: &[u8], i: usize| u16::from_be_bytes([c[i], c[i + 1]]);
        Some(Self {
            pts_us: u64::from_be_bytes(b[4..12].try_into().ok()?),
            after_us: u64::from_be_bytes(b[12..20].try_into().ok()?),
            rects: body
                .chunks_exact(8)
                .map(|c| RegionRect {
                    x: u16_at(c, 0),
                    y: u16_at(c, 2),
                    width: u16_at(c, 4),
                    height: u16_at(c, 6),
                })
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn video_frame_header_round_trips() {
        let h = VideoFrameHeader {
            keyframe: true,
            codec: VideoCodec::Vp8,
            pts_us: 1_234_567,
            width: 1920,
            height: 1080,
        };
        let b = h.to_bytes();
        assert_eq!(b[..4], [1, 1, 1, 0]);
        assert_eq!(VideoFrameHeader::parse(&b), Some(h));
        assert_eq!(VideoFrameHeader::parse(&b[..15]), None);
        let mut bad = b;
        bad[2] = 9;
        assert_eq!(VideoFrameHeader::parse(&bad), None);
        assert_eq!(BinaryKind::of(&b), Some(BinaryKind::Video));
        assert_eq!(AudioFrameHeader::parse(&b), None, "a video header is not an audio one");
    }

    #[test]
    fn audio_frame_header_round_trips() {
        let h = AudioFrameHeader { pts_us: (1 << 40) + 10_000, age_us: 12_345 };
        let b = h.to_bytes();
        assert_eq!(b[..4], [2, 0, 0, 0]);
        assert_eq!(b[4..12], ((1u64 << 40) + 10_000).to_be_bytes());
        assert_eq!(b[12..16], 12_345u32.to_be_bytes());
        assert_eq!(BinaryKind::of(&b), Some(BinaryKind::Audio));
        assert_eq!(AudioFrameHeader::parse(&b), Some(h));
        // With a payload after it.
        let mut msg = b.to_vec();
        msg.extend_from_slice(&[0xfc, 1, 2, 3]);
        assert_eq!(AudioFrameHeader::parse(&msg), Some(h));
        // Short, other kind, unknown codec.
        for n in 0..AudioFrameHeader::LEN {
            assert_eq!(AudioFrameHeader::parse(&b[..n]), None, "{n} bytes");
        }
        assert_eq!(VideoFrameHeader::parse(&b), None, "an audio header is not a video one");
        let mut bad = b;
        bad[2] = 1;
        assert_eq!(AudioFrameHeader::parse(&bad), None);
        assert_eq!(BinaryKind::of(&[]), None);
        assert_eq!(BinaryKind::of(&[0]), None);
        assert_eq!(BinaryKind::of(&[4]), None);
    }

    #[test]
    fn frame_region_round_trips() {
        let r = FrameRegion {
            pts_us: 5_889_067,
            after_us: 5_855_600,
            rects: vec![
                RegionRect { x: 0, y: 0, width: 928, height: 16 },
                RegionRect { x: 1904, y: 1072, width: 16, height: 8 },
            ],
        };
        let b = r.to_bytes();
        assert_eq!(b.len(), FrameRegion::LEN + 16);
        assert_eq!(b[..4], [3, 0, 2, 0]);
        assert_eq!(b[4..12], 5_889_067u64.to_be_bytes());
        assert_eq!(b[20..28], [0, 0, 0, 0, 0x03, 0xa0, 0, 16]);
        assert_eq!(BinaryKind::of(&b), Some(BinaryKind::Region));
        assert_eq!(FrameRegion::parse(&b), Some(r.clone()));
        // Nothing changed: no rectangles.
        let still = FrameRegion { rects: vec![], ..r.clone() };
        assert_eq!(FrameRegion::parse(&still.to_bytes()), Some(still));
        // Short, or fewer rectangles than it says, or another kind.
        assert_eq!(FrameRegion::parse(&b[..b.len() - 1]), None);
        assert_eq!(FrameRegion::parse(&b[..19]), None);
        assert_eq!(VideoFrameHeader::parse(&b), None);
        assert_eq!(AudioFrameHeader::parse(&b), None);
        let video =
            VideoFrameHeader { keyframe: false, codec: VideoCodec::H264, pts_us: 1, width: 2, height: 2 };
        assert_eq!(FrameRegion::parse(&video.to_bytes()), None);
    }
}

//! Bit-level reading and writing of H.264 syntax (fixed-length fields and Exp-Golomb codes),
//! and the NAL unit's emulation prevention.

/// Writes bits most significant first.
#[derive(Debug, Default)]
pub(super) struct BitWriter {
    bytes: Vec<u8>,
    /// Bits not yet flushed, right-aligned.
    acc: u64,
    /// How many bits `acc` holds (below 8 after each write).
    held: u32,
}

impl BitWriter {
    pub(super) fn new() -> Self {
        Self::default()
    }

    /// Writes the low `n` bits of `value` (n ≤ 32).
    #[inline]
    pub(super) fn put(&mut self, n: u32, value: u32) {
        debug_assert!(n <= 32);
        if n == 0 {
            return;
        }
        self.acc = (self.acc << n) | u64::from(value & (u32::MAX >> (32 - n)));
        self.held += n;
        while self.held >= 8 {
            self.held -= 8;
            self.bytes.push((self.acc >> self.held) as u8);
        }
        self.acc &= (1 << self.held) - 1;
    }

    /// One bit.
    #[inline]
    pub(super) fn flag(&mut self, on: bool) {
        self.put(1, u32::from(on));
    }

    /// ue(v): unsigned Exp-Golomb.
    #[inline]
    pub(super) fn ue(&mut self, value: u32) {
        let v = u64::from(value) + 1;
        let len = 64 - v.leading_zeros();
        // len − 1 zeros, then v in len bits.
        if len <= 16 {
            self.put(2 * len - 1, v as u32);
        } else {
            self.put(len - 1, 0);
            self.put(len, v as u32);
        }
    }

    /// se(v): signed Exp-Golomb.
    #[inline]
    pub(super) fn se(&mut self, value: i32) {
        let code = if value > 0 { 2 * value.unsigned_abs() - 1 } else { 2 * value.unsigned_abs() };
        self.ue(code);
    }

    /// rbsp_trailing_bits: a one, then zeros to the byte boundary.
    pub(super) fn trailing(&mut self) {
        self.put(1, 1);
        if self.held > 0 {
            self.put(8 - self.held, 0);
        }
    }

    /// The bytes written (after [`BitWriter::trailing`], all of them).
    pub(super) fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// Reads bits most significant first; reading past the end yields an error.
#[derive(Debug)]
pub(super) struct BitReader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

/// The syntax ended before a field it must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Truncated;

impl<'a> BitReader<'a> {
    /// A reader of an RBSP (emulation prevention already removed).
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    pub(super) fn bit(&mut self) -> Result<bool, Truncated> {
        let byte = self.bytes.get(self.pos / 8).ok_or(Truncated)?;
        let bit = byte >> (7 - self.pos % 8) & 1;
        self.pos += 1;
        Ok(bit == 1)
    }

    /// `n` bits (n ≤ 32) as an unsigned number.
    pub(super) fn get(&mut self, n: u32) -> Result<u32, Truncated> {
        let mut v = 0u32;
        for _ in 0..n {
            v = (v << 1) | u32::from(self.bit()?);
        }
        Ok(v)
    }

    pub(super) fn ue(&mut self) -> Result<u32, Truncated> {
        let mut zeros = 0;
        while !self.bit()? {
            zeros += 1;
            if zeros > 31 {
                return Err(Truncated);
            }
        }
        Ok(((1u64 << zeros) - 1 + u64::from(self.get(zeros)?)) as u32)
    }

    pub(super) fn se(&mut self) -> Result<i32, Truncated> {
        let k = self.ue()?;
        let magnitude = k.div_ceil(2) as i32;
        Ok(if k % 2 == 1 { magnitude } else { -magnitude })
    }
}

/// The RBSP inside a NAL unit's payload (after its header byte): emulation prevention bytes
/// (the 3 in `00 00 03`) removed.
pub(super) fn unescape(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len());
    let mut zeros = 0;
    for &b in payload {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// Appends an Annex-B NAL unit: start code, header byte, the RBSP with emulation prevention.
pub(super) fn push_nal(out: &mut Vec<u8>, header: u8, rbsp: &[u8]) {
    out.extend_from_slice(&[0, 0, 0, 1, header]);
    let mut zeros = 0;
    for &b in rbsp {
        if zeros >= 2 && b <= 3 {
            out.push(3);
            zeros = 0;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
}

/// The NAL units of an Annex-B access unit: (nal_unit_type, header byte, payload after it).
pub(super) fn nal_units(au: &[u8]) -> Vec<(u8, u8, &[u8])> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= au.len() {
        if au[i] == 0 && au[i + 1] == 0 && au[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut units = Vec::new();
    for (k, &s) in starts.iter().enumerate() {
        let mut end = starts.get(k + 1).map_or(au.len(), |&n| n - 3);
        // A four-byte start code's leading zero belongs to no unit.
        while end > s && k + 1 < starts.len() && au[end - 1] == 0 {
            end -= 1;
        }
        if s < end {
            units.push((au[s] & 0x1f, au[s], &au[s + 1..end]));
        }
    }
    units
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_golomb_round_trips() {
        let mut w = BitWriter::new();
        let values = [0u32, 1, 2, 3, 7, 8, 254, 255, 65_534, 65_535, 1 << 20, 4_000_000];
        let signed = [0i32, 1, -1, 2, -2, 26, -26, 1000, -1000];
        for &v in &values {
            w.ue(v);
        }
        for &v in &signed {
            w.se(v);
        }
        w.put(5, 0b10110);
        w.trailing();
        let mut r = BitReader::new(w.bytes());
        for &v in &values {
            assert_eq!(r.ue().unwrap(), v);
        }
        for &v in &signed {
            assert_eq!(r.se().unwrap(), v);
        }
        assert_eq!(r.get(5).unwrap(), 0b10110);
        assert!(r.bit().unwrap(), "the stop bit");
    }

    #[test]
    fn known_codes() {
        // ue: 0 → 1, 1 → 010, 2 → 011, 3 → 00100; then the stop bit and padding.
        let mut w = BitWriter::new();
        for v in [0, 1, 2, 3] {
            w.ue(v);
        }
        w.trailing();
        assert_eq!(w.bytes(), &[0b1010_0110, 0b0100_1000]);
    }

    #[test]
    fn emulation_prevention_round_trips() {
        let rbsp = [0u8, 0, 0, 0, 0, 1, 0, 0, 2, 0, 0, 3, 0, 0, 4, 7, 0, 0, 9];
        let mut au = Vec::new();
        push_nal(&mut au, 0x01, &rbsp);
        push_nal(&mut au, 0x67, &[5, 6]);
        let units = nal_units(&au);
        assert_eq!(units.len(), 2);
        assert_eq!(units[0].0, 1);
        assert!(!units[0].2.windows(3).any(|w| w[0] == 0 && w[1] == 0 && w[2] <= 2), "{:?}", units[0].2);
        assert_eq!(unescape(units[0].2), rbsp);
        assert_eq!((units[1].0, units[1].2), (7, &[5u8, 6][..]));
    }

    #[test]
    fn reading_past_the_end_is_an_error() {
        let mut r = BitReader::new(&[0]);
        assert_eq!(r.ue(), Err(Truncated));
    }
}

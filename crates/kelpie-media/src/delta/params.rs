//! What a delta frame must agree on with the encoder's stream: the fields of its sequence and
//! picture parameter sets that a P slice header depends on, and the frame number of the
//! encoder's latest slice.

use super::bits::{BitReader, Truncated, nal_units, unescape};

/// The parameter-set fields a delta frame's slice header needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    pub pps_id: u32,
    pub log2_max_frame_num: u32,
    pub width_mbs: u32,
    pub height_mbs: u32,
    /// PPS `num_ref_idx_l0_default_active_minus1` + 1.
    pub ref_idx_active: u32,
    /// 26 + PPS `pic_init_qp_minus26`.
    pub pic_init_qp: i32,
    pub chroma_qp_offset: i32,
    pub deblocking_control: bool,
}

/// Why a stream cannot take delta frames (the encoder then codes every frame itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unsupported {
    Truncated,
    Missing(&'static str),
    Feature(&'static str),
}

impl From<Truncated> for Unsupported {
    fn from(_: Truncated) -> Self {
        Self::Truncated
    }
}

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Truncated => write!(f, "a parameter set ended early"),
            Self::Missing(what) => write!(f, "the keyframe has no {what}"),
            Self::Feature(what) => write!(f, "the stream uses {what}"),
        }
    }
}

/// Reads the parameters from a keyframe's access unit (with its SPS and PPS). Only streams
/// delta frames can join are accepted: 4:2:0, 8 bits, frames only, CAVLC, one slice group,
/// picture order count type 2 (output order is decoding order), no weighted prediction.
pub fn from_keyframe(au: &[u8]) -> Result<Params, Unsupported> {
    let units = nal_units(au);
    let sps = units.iter().find(|u| u.0 == 7).ok_or(Unsupported::Missing("SPS"))?;
    let pps = units.iter().find(|u| u.0 == 8).ok_or(Unsupported::Missing("PPS"))?;

    let sps = unescape(sps.2);
    let mut r = BitReader::new(&sps);
    let profile = r.get(8)?;
    r.get(16)?; // constraint flags, level
    r.ue()?; // seq_parameter_set_id
    if [100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135].contains(&profile) {
        if r.ue()? != 1 {
            return Err(Unsupported::Feature("a chroma format other than 4:2:0"));
        }
        if r.ue()? != 0 || r.ue()? != 0 {
            return Err(Unsupported::Feature("more than 8 bits"));
        }
        r.bit()?; // qpprime_y_zero_transform_bypass_flag
        if r.bit()? {
            return Err(Unsupported::Feature("scaling matrices"));
        }
    }
    let log2_max_frame_num = r.ue()? + 4;
    if r.ue()? != 2 {
        return Err(Unsupported::Feature("a picture order count type other than 2"));
    }
    r.ue()?; // max_num_ref_frames
    r.bit()?; // gaps_in_frame_num_value_allowed_flag
    let width_mbs = r.ue()? + 1;
    let height_mbs = r.ue()? + 1;
    if !r.bit()? {
        return Err(Unsupported::Feature("fields"));
    }

    let pps = unescape(pps.2);
    let mut r = BitReader::new(&pps);
    let pps_id = r.ue()?;
    r.ue()?; // seq_parameter_set_id
    if r.bit()? {
        return Err(Unsupported::Feature("CABAC"));
    }
    r.bit()?; // bottom_field_pic_order_in_frame_present_flag
    if r.ue()? != 0 {
        return Err(Unsupported::Feature("slice groups"));
    }
    let ref_idx_active = r.ue()? + 1;
    r.ue()?; // l1
    if r.bit()? || r.get(2)? != 0 {
        return Err(Unsupported::Feature("weighted prediction"));
    }
    let pic_init_qp = 26 + r.se()?;
    r.se()?; // pic_init_qs_minus26
    let chroma_qp_offset = r.se()?;
    let deblocking_control = r.bit()?;
    r.bit()?; // constrained_intra_pred_flag
    if r.bit()? {
        return Err(Unsupported::Feature("redundant pictures"));
    }
    Ok(Params {
        pps_id,
        log2_max_frame_num,
        width_mbs,
        height_mbs,
        ref_idx_active,
        pic_init_qp,
        chroma_qp_offset,
        deblocking_control,
    })
}

/// The `frame_num` of the first slice in an access unit coded by the encoder (0 for an IDR
/// picture), or `None` when it holds no slice.
pub fn frame_num(au: &[u8], params: &Params) -> Option<u32> {
    let (kind, _, payload) = nal_units(au).into_iter().find(|u| u.0 == 1 || u.0 == 5)?;
    if kind == 5 {
        return Some(0);
    }
    // The fields before frame_num are short: the first bytes are enough.
    let head = unescape(&payload[..payload.len().min(16)]);
    let mut r = BitReader::new(&head);
    r.ue().ok()?; // first_mb_in_slice
    r.ue().ok()?; // slice_type
    r.ue().ok()?; // pic_parameter_set_id
    r.get(params.log2_max_frame_num).ok()
}

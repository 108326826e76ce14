//! H.264 encoding with temporal layers, through OpenH264 (built from source by
//! `openh264-sys2`). Owns the encoder's FFI: every `unsafe` block of encoding is here,
//! each with the reason it is sound.
//!
//! The stream: `layers` temporal layers (layer 1 = temporal_id 0, layer 2 = 1, …;
//! OpenH264's dyadic hierarchical-P, GOP of `2^(layers-1)` frames), a fixed QP (rate
//! control off, so quality is the same in every layer and PSNR differences come from
//! losses only), prefix NAL units carrying each slice's temporal_id, and slices cut so
//! that every prefix + slice pair fits one LC. An IDR with SPS/PPS starts every intra
//! period, so a viewer can join at any period boundary.

use super::CodecError;
use super::annexb::{AccessUnit, AnnexBReader};
use super::picture::{FrameRate, Picture, Resolution};
use crate::chunk::MAX_LC_PAYLOAD;
use openh264_sys2 as ffi;
use std::os::raw::{c_int, c_void};

/// Most temporal layers OpenH264 encodes.
pub const MAX_TEMPORAL_LAYERS: usize = 4;
/// Slice size limit: an LC holds a prefix NAL unit (4 bytes + start code), the slice's
/// start code and the slice, and OpenH264 may overshoot its limit slightly.
pub const SLICE_LIMIT: usize = MAX_LC_PAYLOAD - 100;

#[derive(Clone, Debug, PartialEq)]
pub struct EncoderConfig {
    pub resolution: Resolution,
    pub rate: FrameRate,
    /// Quantiser, 0 (best) to 51.
    pub qp: u8,
    /// Temporal layers, 1 to `MAX_TEMPORAL_LAYERS`.
    pub layers: usize,
    /// Frames between IDRs; a multiple of the temporal GOP `2^(layers-1)`.
    pub intra_period: u32,
}

impl EncoderConfig {
    /// 3 layers, QP 30, an IDR every 64 frames (the paper's GOP).
    pub fn new(resolution: Resolution, rate: FrameRate) -> EncoderConfig {
        EncoderConfig { resolution, rate, qp: 30, layers: 3, intra_period: 64 }
    }

    fn validate(&self) -> Result<(), CodecError> {
        if self.qp > 51 {
            return Err(CodecError::Config(format!("QP {} is above 51", self.qp)));
        }
        if !(1..=MAX_TEMPORAL_LAYERS).contains(&self.layers) {
            return Err(CodecError::Config(format!(
                "{} temporal layers: OpenH264 encodes 1 to {MAX_TEMPORAL_LAYERS}",
                self.layers
            )));
        }
        let gop = 1u32 << (self.layers - 1);
        if self.intra_period == 0 || !self.intra_period.is_multiple_of(gop) {
            return Err(CodecError::Config(format!(
                "intra period {} is not a positive multiple of the {gop}-frame temporal GOP",
                self.intra_period
            )));
        }
        Ok(())
    }
}

/// An OpenH264 encoder. Frames go in display order and come out one access unit each
/// (hierarchical P has no reordering, so decode order = display order).
#[derive(Debug)]
pub struct Encoder {
    raw: *mut *const ffi::ISVCEncoderVtbl,
    cfg: EncoderConfig,
    frames: u64,
}

// SAFETY: the encoder is a plain heap object with no thread affinity; `Encoder` owns
// it exclusively (no aliases escape) and `&mut self` serialises every call.
unsafe impl Send for Encoder {}

impl Encoder {
    pub fn new(cfg: EncoderConfig) -> Result<Encoder, CodecError> {
        cfg.validate()?;
        let mut raw: *mut ffi::ISVCEncoder = std::ptr::null_mut();
        // SAFETY: WelsCreateSVCEncoder writes a new encoder pointer into `raw`.
        let rv = unsafe { ffi::source::APILoader::WelsCreateSVCEncoder(&mut raw) };
        if rv != 0 || raw.is_null() {
            return Err(CodecError::Backend("cannot create the OpenH264 encoder".into()));
        }
        // From here `Drop` destroys it.
        let enc = Encoder { raw, cfg, frames: 0 };
        enc.initialize()?;
        Ok(enc)
    }

    fn vtable(&self) -> &ffi::ISVCEncoderVtbl {
        // SAFETY: `raw` is a live encoder (created in `new`, destroyed only in `drop`)
        // whose first field points at its static vtable.
        unsafe { &**self.raw }
    }

    fn initialize(&self) -> Result<(), CodecError> {
        let vt = *self.vtable();
        let missing = || CodecError::Backend("OpenH264 encoder vtable is incomplete".into());
        let (get_defaults, init, set_option) = (
            vt.GetDefaultParams.ok_or_else(missing)?,
            vt.InitializeExt.ok_or_else(missing)?,
            vt.SetOption.ok_or_else(missing)?,
        );
        let c = &self.cfg;
        let mut p = ffi::SEncParamExt::default();
        // SAFETY: `p` is a valid, writable SEncParamExt; the encoder is live.
        unsafe { get_defaults(self.raw, &mut p) };
        let (w, h) = (c.resolution.width() as c_int, c.resolution.height() as c_int);
        p.iUsageType = ffi::CAMERA_VIDEO_REAL_TIME;
        p.iPicWidth = w;
        p.iPicHeight = h;
        p.iTargetBitrate = 10_000_000;
        p.iMaxBitrate = 0;
        p.iRCMode = ffi::RC_OFF_MODE;
        p.fMaxFrameRate = c.rate.as_f64() as f32;
        p.iTemporalLayerNum = c.layers as c_int;
        p.iSpatialLayerNum = 1;
        p.uiIntraPeriod = c.intra_period;
        p.eSpsPpsIdStrategy = ffi::CONSTANT_ID;
        p.bPrefixNalAddingCtrl = true;
        p.iEntropyCodingModeFlag = 0;
        p.bEnableFrameSkip = false;
        p.iMultipleThreadIdc = 1;
        p.iMinQp = c.qp as c_int;
        p.iMaxQp = c.qp as c_int;
        p.uiMaxNalSize = SLICE_LIMIT as u32;
        p.bEnableDenoise = false;
        p.bEnableBackgroundDetection = false;
        p.bEnableAdaptiveQuant = false;
        p.bEnableSceneChangeDetect = false;
        p.bEnableLongTermReference = false;
        let layer = &mut p.sSpatialLayers[0];
        layer.iVideoWidth = w;
        layer.iVideoHeight = h;
        layer.fFrameRate = c.rate.as_f64() as f32;
        layer.iSpatialBitrate = 10_000_000;
        layer.iMaxSpatialBitrate = 0;
        layer.iDLayerQp = c.qp as c_int;
        layer.sSliceArgument.uiSliceMode = ffi::SM_SIZELIMITED_SLICE;
        layer.sSliceArgument.uiSliceSizeConstraint = SLICE_LIMIT as u32;
        let mut quiet: c_int = ffi::WELS_LOG_QUIET;
        // SAFETY: the option id takes a pointer to an int that outlives the call.
        unsafe { set_option(self.raw, ffi::ENCODER_OPTION_TRACE_LEVEL, &mut quiet as *mut c_int as *mut c_void) };
        // SAFETY: `p` is a fully initialised parameter block read during the call.
        let rv = unsafe { init(self.raw, &p) };
        if rv != 0 {
            return Err(CodecError::Backend(format!("OpenH264 refused the encoder parameters (code {rv})")));
        }
        Ok(())
    }

    pub fn config(&self) -> &EncoderConfig {
        &self.cfg
    }

    /// Pictures encoded so far.
    pub fn frames_encoded(&self) -> u64 {
        self.frames
    }

    /// Encodes the next picture into one access unit (layer from its temporal_id).
    pub fn encode(&mut self, picture: &Picture) -> Result<AccessUnit, CodecError> {
        if picture.resolution() != self.cfg.resolution {
            return Err(CodecError::Config(format!(
                "picture is {}, encoder is {}",
                picture.resolution(),
                self.cfg.resolution
            )));
        }
        let encode = self.vtable().EncodeFrame.ok_or_else(|| CodecError::Backend("no EncodeFrame".into()))?;
        let res = self.cfg.resolution;
        let (w, cw) = (res.width() as c_int, res.width() as c_int / 2);
        let mut src = ffi::SSourcePicture {
            iColorFormat: ffi::videoFormatI420 as c_int,
            iStride: [w, cw, cw, 0],
            iPicWidth: w,
            iPicHeight: res.height() as c_int,
            uiTimeStamp: (self.cfg.rate.frame_start_us(self.frames) / 1000) as i64,
            ..Default::default()
        };
        // OpenH264 takes `*mut` plane pointers but only reads the source picture.
        let base = picture.as_bytes().as_ptr() as *mut u8;
        let (l, c) = (res.luma_len(), res.chroma_len());
        // SAFETY: offsets stay within the picture's I420 buffer (Y, then U, then V).
        src.pData = unsafe { [base, base.add(l), base.add(l + c), std::ptr::null_mut()] };
        let mut info: Box<ffi::SFrameBSInfo> = Box::default();
        // SAFETY: `src` points at a live picture of the configured size and strides;
        // `info` is writable. The encoder fills `info` with pointers into its own
        // buffers, valid until the next call on this encoder (we copy out below).
        let rv = unsafe { encode(self.raw, &src, &mut *info) };
        if rv != 0 {
            return Err(CodecError::Backend(format!("OpenH264 failed to encode frame {} (code {rv})", self.frames)));
        }
        if info.eFrameType == ffi::videoFrameTypeSkip || info.eFrameType == ffi::videoFrameTypeInvalid {
            return Err(CodecError::Backend(format!("OpenH264 skipped frame {}", self.frames)));
        }
        let mut bytes = Vec::with_capacity(info.iFrameSizeInBytes.max(0) as usize);
        let layers = usize::try_from(info.iLayerNum).unwrap_or(0).min(info.sLayerInfo.len());
        for li in &info.sLayerInfo[..layers] {
            let nals = usize::try_from(li.iNalCount).unwrap_or(0);
            if nals == 0 || li.pNalLengthInByte.is_null() || li.pBsBuf.is_null() {
                continue;
            }
            // SAFETY: OpenH264 sets `pNalLengthInByte` to `iNalCount` lengths and
            // `pBsBuf` to their concatenation; both live until the next encode call.
            let lengths = unsafe { std::slice::from_raw_parts(li.pNalLengthInByte, nals) };
            let total: usize = lengths.iter().map(|&n| n.max(0) as usize).sum();
            // SAFETY: as above; `total` is the sum of the NAL lengths in `pBsBuf`.
            bytes.extend_from_slice(unsafe { std::slice::from_raw_parts(li.pBsBuf, total) });
        }
        self.frames += 1;
        // Our own Annex B reader splits and classifies the output, so encoded and
        // ingested streams go through the same code.
        let mut reader = AnnexBReader::new(&bytes[..], self.cfg.layers);
        let unit = reader.next_unit()?.ok_or_else(|| CodecError::Backend("OpenH264 produced no slice".into()))?;
        if reader.next_unit()?.is_some() {
            return Err(CodecError::Backend("OpenH264 produced two pictures for one frame".into()));
        }
        Ok(unit)
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        if let Some(uninit) = self.vtable().Uninitialize {
            // SAFETY: the encoder is live; Uninitialize is valid after InitializeExt
            // and harmless if initialisation failed.
            unsafe { uninit(self.raw) };
        }
        // SAFETY: created by WelsCreateSVCEncoder, destroyed exactly once, never used after.
        unsafe { ffi::source::APILoader::WelsDestroySVCEncoder(self.raw) };
    }
}

/// Encodes `pictures` into access units.
pub fn encode_all(
    cfg: EncoderConfig,
    pictures: impl IntoIterator<Item = Picture>,
) -> Result<Vec<AccessUnit>, CodecError> {
    let mut enc = Encoder::new(cfg)?;
    pictures.into_iter().map(|p| enc.encode(&p)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::video::annexb::{NalType, nal_header};
    use crate::video::clip;

    fn cfg() -> EncoderConfig {
        EncoderConfig {
            intra_period: 16,
            ..EncoderConfig::new(Resolution::QCIF, FrameRate::per_second(30).expect("fps"))
        }
    }

    #[test]
    fn three_temporal_layers_in_dyadic_pattern() {
        let aus = encode_all(cfg(), clip::frames(Resolution::QCIF, 17)).expect("encodes");
        let layers: Vec<u8> = aus.iter().map(|a| a.layer.get()).collect();
        assert_eq!(&layers[..9], &[1, 3, 2, 3, 1, 3, 2, 3, 1]);
        assert!(aus[0].idr && aus[16].idr && !aus[4].idr);
        // Every unit (prefix + slice, or a parameter set) fits one LC.
        for au in &aus {
            for u in &au.units {
                assert!(u.len() <= MAX_LC_PAYLOAD, "unit of {} bytes", u.len());
            }
        }
        // The IDR carries SPS and PPS.
        let types: Vec<u8> = aus[0].units.iter().map(|u| nal_header(&u[4..], 0).expect("nal").nal_type.0).collect();
        assert!(types.contains(&NalType::SPS.0) && types.contains(&NalType::PPS.0));
    }

    #[test]
    fn bad_config_is_refused() {
        assert!(matches!(Encoder::new(EncoderConfig { qp: 60, ..cfg() }), Err(CodecError::Config(_))));
        assert!(matches!(Encoder::new(EncoderConfig { layers: 5, ..cfg() }), Err(CodecError::Config(_))));
        assert!(matches!(Encoder::new(EncoderConfig { intra_period: 6, ..cfg() }), Err(CodecError::Config(_))));
        let mut e = Encoder::new(cfg()).expect("encoder");
        assert!(e.encode(&Picture::filled(Resolution::CIF, 0)).is_err());
    }
}

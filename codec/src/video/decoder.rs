//! H.264 decoding through OpenH264, with concealment. Owns the decoder's FFI (every
//! `unsafe` block of decoding is here, each with the reason it is sound) and
//! `Playout`, which turns "frame n arrived (or not)" into the picture a viewer sees.
//!
//! Concealment: a frame that is missing, or yields no picture, shows the last picture
//! again (DESIGN.md §10). OpenH264 (`ERROR_CON_SLICE_COPY`) yields no picture for a frame
//! with missing slices — it conceals the lost slices from the previous picture only
//! in the copy it keeps as a reference — so a partial frame is shown as a repeat too,
//! and frames predicted from it carry its concealment errors, as in any decoder.

use super::CodecError;
use super::picture::{Picture, Resolution};
use openh264_sys2 as ffi;
use std::os::raw::{c_int, c_void};

/// An OpenH264 decoder fed one access unit at a time.
#[derive(Debug)]
pub struct Decoder {
    raw: *mut *const ffi::ISVCDecoderVtbl,
}

// SAFETY: the decoder is a plain heap object with no thread affinity; `Decoder` owns
// it exclusively and `&mut self` serialises every call.
unsafe impl Send for Decoder {}

impl Decoder {
    pub fn new() -> Result<Decoder, CodecError> {
        let mut raw: *mut ffi::ISVCDecoder = std::ptr::null_mut();
        // SAFETY: WelsCreateDecoder writes a new decoder pointer into `raw`.
        let rv = unsafe { ffi::source::APILoader::WelsCreateDecoder(&mut raw) };
        if rv != 0 || raw.is_null() {
            return Err(CodecError::Backend("cannot create the OpenH264 decoder".into()));
        }
        let dec = Decoder { raw };
        let vt = *dec.vtable();
        let missing = || CodecError::Backend("OpenH264 decoder vtable is incomplete".into());
        let (init, set_option) = (vt.Initialize.ok_or_else(missing)?, vt.SetOption.ok_or_else(missing)?);
        let mut quiet: c_int = ffi::WELS_LOG_QUIET;
        // SAFETY: the option takes a pointer to an int that outlives the call.
        unsafe { set_option(dec.raw, ffi::DECODER_OPTION_TRACE_LEVEL, &mut quiet as *mut c_int as *mut c_void) };
        let mut p = ffi::SDecodingParam::default();
        p.sVideoProperty.eVideoBsType = ffi::VIDEO_BITSTREAM_AVC;
        p.eEcActiveIdc = ffi::ERROR_CON_SLICE_COPY;
        // SAFETY: `p` is a fully initialised parameter block read during the call.
        let rv = unsafe { init(dec.raw, &p) };
        if rv != 0 {
            return Err(CodecError::Backend(format!("OpenH264 refused the decoder parameters (code {rv})")));
        }
        Ok(dec)
    }

    fn vtable(&self) -> &ffi::ISVCDecoderVtbl {
        // SAFETY: `raw` is a live decoder (created in `new`, destroyed only in `drop`)
        // whose first field points at its static vtable.
        unsafe { &**self.raw }
    }

    /// Decodes one access unit (Annex B bytes); the picture it completes, if any.
    /// Corrupt input is not an error: the decoder conceals or yields nothing.
    pub fn decode(&mut self, access_unit: &[u8]) -> Result<Option<Picture>, CodecError> {
        let decode =
            self.vtable().DecodeFrameNoDelay.ok_or_else(|| CodecError::Backend("no DecodeFrameNoDelay".into()))?;
        let len = c_int::try_from(access_unit.len())
            .map_err(|_| CodecError::Config("access unit larger than 2 GiB".into()))?;
        if len == 0 {
            return Ok(None);
        }
        let mut planes: [*mut u8; 3] = [std::ptr::null_mut(); 3];
        let mut info = ffi::SBufferInfo::default();
        // SAFETY: `access_unit` is readable for `len` bytes during the call; `planes`
        // and `info` are writable. Output pointers refer to the decoder's own picture
        // buffers, valid until the next call on this decoder (we copy out below).
        unsafe { decode(self.raw, access_unit.as_ptr(), len, planes.as_mut_ptr(), &mut info) };
        if info.iBufferStatus != 1 || planes.iter().any(|p| p.is_null()) {
            return Ok(None);
        }
        // SAFETY: iBufferStatus == 1 means the sSystemBuffer variant is the one set.
        let sys = unsafe { info.UsrData.sSystemBuffer };
        let Ok(res) = Resolution::new(sys.iWidth.max(0) as u32, sys.iHeight.max(0) as u32) else {
            return Ok(None);
        };
        let (ys, cs) = (sys.iStride[0].max(0) as usize, sys.iStride[1].max(0) as usize);
        let (w, h) = (res.width() as usize, res.height() as usize);
        if ys < w || cs < w / 2 {
            return Ok(None);
        }
        let mut data = Vec::with_capacity(res.frame_len());
        let mut copy = |plane: *mut u8, stride: usize, pw: usize, ph: usize| {
            for row in 0..ph {
                // SAFETY: the decoder's plane holds `ph` rows of `stride >= pw` bytes.
                data.extend_from_slice(unsafe { std::slice::from_raw_parts(plane.add(row * stride), pw) });
            }
        };
        copy(planes[0], ys, w, h);
        copy(planes[1], cs, w / 2, h / 2);
        copy(planes[2], cs, w / 2, h / 2);
        Ok(Picture::from_i420(res, data))
    }
}

impl Drop for Decoder {
    fn drop(&mut self) {
        if let Some(uninit) = self.vtable().Uninitialize {
            // SAFETY: the decoder is live; Uninitialize is valid after Initialize.
            unsafe { uninit(self.raw) };
        }
        // SAFETY: created by WelsCreateDecoder, destroyed exactly once, never used after.
        unsafe { ffi::source::APILoader::WelsDestroyDecoder(self.raw) };
    }
}

/// What a viewer sees, frame by frame, with concealment.
#[derive(Debug)]
pub struct Playout {
    decoder: Decoder,
    resolution: Resolution,
    last: Option<Picture>,
    pub decoded: u64,
    pub concealed: u64,
}

impl Playout {
    /// Before the first decoded picture, concealment shows mid-grey at `resolution`.
    pub fn new(resolution: Resolution) -> Result<Playout, CodecError> {
        Ok(Playout { decoder: Decoder::new()?, resolution, last: None, decoded: 0, concealed: 0 })
    }

    /// The picture shown for the next frame: `Some(bytes)` if the frame (or part of
    /// it) arrived, `None` if it was lost. Also says whether it was concealed.
    pub fn show(&mut self, frame: Option<&[u8]>) -> Result<(&Picture, bool), CodecError> {
        let decoded = match frame {
            Some(bytes) => self.decoder.decode(bytes)?.filter(|p| p.resolution() == self.resolution),
            None => None,
        };
        let concealed = decoded.is_none();
        if let Some(p) = decoded {
            self.last = Some(p);
            self.decoded += 1;
        } else {
            self.concealed += 1;
        }
        let resolution = self.resolution;
        Ok((self.last.get_or_insert_with(|| Picture::filled(resolution, 128)), concealed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::video::clip;
    use crate::video::encoder::{EncoderConfig, encode_all};
    use crate::video::picture::FrameRate;
    use crate::video::quality::psnr;
    use proptest::prelude::*;

    #[test]
    fn decodes_what_the_encoder_made_at_good_quality() {
        let res = Resolution::QCIF;
        let cfg =
            EncoderConfig { intra_period: 16, ..EncoderConfig::new(res, FrameRate::per_second(30).expect("fps")) };
        let aus = encode_all(cfg, clip::frames(res, 8)).expect("encodes");
        let mut dec = Decoder::new().expect("decoder");
        for (n, au) in aus.iter().enumerate() {
            let pic = dec.decode(&au.to_annexb()).expect("decode").expect("a picture per frame");
            let db = psnr(&clip::frame(res, n as u32), &pic).expect("size");
            assert!(db > 30.0, "frame {n}: {db:.1} dB");
        }
    }

    #[test]
    fn playout_repeats_the_last_picture_for_lost_frames() {
        let res = Resolution::QCIF;
        let cfg =
            EncoderConfig { intra_period: 16, ..EncoderConfig::new(res, FrameRate::per_second(30).expect("fps")) };
        let aus = encode_all(cfg, clip::frames(res, 2)).expect("encodes");
        let mut play = Playout::new(res).expect("decoder");
        let (grey, concealed) = play.show(None).expect("show");
        assert!(concealed && grey.y().iter().all(|&v| v == 128));
        let first = play.show(Some(&aus[0].to_annexb())).expect("show").0.clone();
        let (again, concealed) = play.show(None).expect("show");
        assert!(concealed);
        assert_eq!(again, &first);
        assert_eq!((play.decoded, play.concealed), (1, 2));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn random_bytes_never_crash_the_decoder(data in prop::collection::vec(any::<u8>(), 0..600)) {
            let mut dec = Decoder::new().expect("decoder");
            let _ = dec.decode(&data);
            let mut framed = vec![0, 0, 0, 1];
            framed.extend_from_slice(&data);
            let _ = dec.decode(&framed);
        }
    }
}

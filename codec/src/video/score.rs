//! Scoring what a viewer played: released frames are decoded with concealment
//! (`decoder::Playout`) and each shown picture is compared with the original, giving
//! Q1 … QL and Q (DESIGN.md §10). Shared by the drop test, the loopback test and the CLI.

use super::CodecError;
use super::decoder::Playout;
use super::picture::{Picture, Resolution};
use super::quality::Quality;
use crate::layer::LayerId;

#[derive(Debug)]
pub struct Scorer {
    playout: Playout,
    quality: Quality,
}

impl Scorer {
    pub fn new(resolution: Resolution, layers: usize) -> Result<Scorer, CodecError> {
        Ok(Scorer { playout: Playout::new(resolution)?, quality: Quality::new(layers) })
    }

    /// Shows the next frame in decode order — `data` is what arrived of it (`None` or
    /// empty when lost) — and scores it against `reference`, the original picture of
    /// that frame, as a frame of `layer`. Returns its PSNR.
    pub fn frame(&mut self, data: Option<&[u8]>, layer: LayerId, reference: &Picture) -> Result<f64, CodecError> {
        let (shown, concealed) = self.playout.show(data.filter(|d| !d.is_empty()))?;
        self.quality.add(layer, reference, shown, concealed).map_err(|e| CodecError::Config(e.to_string()))
    }

    pub fn quality(&self) -> &Quality {
        &self.quality
    }

    pub fn into_quality(self) -> Quality {
        self.quality
    }
}

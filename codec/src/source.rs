//! `LcSource`: anything that produces a live layered stream as LCs — the built-in
//! synthetic source, an encoder fed by a camera or a file, an Annex B ingest. A seed
//! pulls from one without knowing which.

use crate::{LayerPlan, Lc, MediaTime};

pub trait LcSource: Send + std::fmt::Debug {
    /// The layers this source produces and their nominal rates.
    fn plan(&self) -> &LayerPlan;
    /// Appends, in decode order, the LCs of every frame whose decode timestamp is
    /// before `until`. A finite source that has run out appends nothing.
    fn lcs_until(&mut self, until: MediaTime, out: &mut Vec<Lc>);
}

impl LcSource for crate::synthetic::SyntheticSource {
    fn plan(&self) -> &LayerPlan {
        crate::synthetic::SyntheticSource::plan(self)
    }

    fn lcs_until(&mut self, until: MediaTime, out: &mut Vec<Lc>) {
        crate::synthetic::SyntheticSource::lcs_until(self, until, out)
    }
}

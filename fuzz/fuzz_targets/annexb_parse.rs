//! Any bytes as an H.264 Annex B input (what `seed --input` reads from a file or a
//! pipe): the NAL splitter and the layered access-unit reader never panic, every unit
//! they yield is in a valid layer and carries whole NAL units, and the reader stops
//! (end or typed error) without consuming more units than the input can hold.
#![no_main]

use layerp2p_codec::video::annexb::{AnnexBReader, split_nals};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, stream)) = data.split_first() else { return };
    // The first byte picks the layer count the reader classifies into (1..=4).
    let layers = usize::from(first % 4) + 1;
    let _ = split_nals(stream);
    let mut reader = AnnexBReader::new(stream, layers);
    let mut units = 0usize;
    while let Ok(Some(unit)) = reader.next_unit() {
        units += 1;
        // Each unit holds at least one NAL unit of at least a header byte plus its
        // 4-byte start code; the input cannot hold more units than that allows.
        assert!(units <= stream.len() / 4 + 1, "more units than the input can hold");
        assert!(unit.layer.index() < layers, "layer {} of {layers}", unit.layer.index());
        assert!(!unit.is_empty() && unit.units.iter().all(|u| u.len() > 4 && u.starts_with(&[0, 0, 0, 1])));
    }
});

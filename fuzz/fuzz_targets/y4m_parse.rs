//! Any bytes as a Y4M input (what `seed --input` reads from a file or a pipe): the
//! reader never panics; every picture it yields has the header's size; and the
//! pictures written back with `Y4mWriter` read again to the same pictures.
#![no_main]

use layerp2p_codec::video::y4m::{Y4mReader, Y4mWriter};
use libfuzzer_sys::fuzz_target;

/// Pictures read per input at most (a big header makes each one large).
const MAX_PICTURES: usize = 16;

fuzz_target!(|data: &[u8]| {
    let Ok(mut reader) = Y4mReader::new(data) else { return };
    let (resolution, rate) = (reader.resolution(), reader.frame_rate());
    let mut pictures = Vec::new();
    while let Ok(Some(p)) = reader.next_picture() {
        assert_eq!(p.resolution(), resolution);
        assert_eq!(p.as_bytes().len(), resolution.frame_len());
        pictures.push(p);
        if pictures.len() >= MAX_PICTURES {
            break;
        }
    }
    let mut writer = Y4mWriter::new(Vec::new(), resolution, rate).expect("in memory");
    for p in &pictures {
        writer.write(p).expect("in memory");
    }
    let bytes = writer.into_inner();
    let mut again = Y4mReader::new(&bytes[..]).expect("our own header reads");
    assert_eq!((again.resolution(), again.frame_rate()), (resolution, rate));
    for p in &pictures {
        let q = again.next_picture().expect("our own frame reads").expect("as many pictures");
        assert_eq!(q.as_bytes(), p.as_bytes());
    }
    assert!(again.next_picture().expect("clean end").is_none());
});

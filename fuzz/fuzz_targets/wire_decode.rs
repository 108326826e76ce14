//! Any datagram: decode never panics, and whatever decodes re-encodes to the same bytes.
#![no_main]

use bytes::{Bytes, BytesMut};
use layerp2p_engine::wire::{decode, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let datagram = Bytes::copy_from_slice(data);
    if let Ok(packet) = decode(datagram.clone()) {
        let mut out = BytesMut::new();
        encode(&packet, &mut out).expect("a decoded packet re-encodes");
        assert_eq!(&out[..], &datagram[..], "decode then encode is the identity");
    }
});

//! Any datagram: decode never panics, and whatever decodes re-encodes to bytes that
//! decode to the same packet (buffer maps may arrive with padding or trailing zero
//! bits, which re-encode in canonical form, so byte identity is not required).
#![no_main]

use bytes::{Bytes, BytesMut};
use layerp2p_proto::wire::{decode, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(packet) = decode(Bytes::copy_from_slice(data)) {
        let mut out = BytesMut::new();
        encode(&packet, &mut out).expect("a decoded packet re-encodes");
        let canonical = out.freeze();
        let again = decode(canonical.clone()).expect("our own encoding decodes");
        assert_eq!(again, packet, "decode(encode(p)) == p");
        let mut twice = BytesMut::new();
        encode(&again, &mut twice).expect("re-encodes");
        assert_eq!(&twice[..], &canonical[..], "the canonical form is a fixed point");
    }
});

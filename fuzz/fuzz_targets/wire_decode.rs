//! Any datagram: decode never panics, and whatever decodes re-encodes to bytes that
//! decode to the same packet (buffer maps may arrive with padding or trailing zero
//! bits, which re-encode in canonical form, so byte identity is not required). The
//! borrowed path (`frames` + `data_header`, the lean load generator's) never panics
//! either, and on a datagram `decode` accepts it sees the same messages and LC headers.
#![no_main]

use bytes::{Bytes, BytesMut};
use layerp2p_proto::wire::codec::code;
use layerp2p_proto::wire::{Message, data_header, decode, encode, frames};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let borrowed: Option<Vec<_>> = frames(data).ok().map(|f| f.collect());
    if let Ok(packet) = decode(Bytes::copy_from_slice(data)) {
        let mut out = BytesMut::new();
        encode(&packet, &mut out).expect("a decoded packet re-encodes");
        let canonical = out.freeze();
        let again = decode(canonical.clone()).expect("our own encoding decodes");
        assert_eq!(again, packet, "decode(encode(p)) == p");
        let mut twice = BytesMut::new();
        encode(&again, &mut twice).expect("re-encodes");
        assert_eq!(&twice[..], &canonical[..], "the canonical form is a fixed point");

        let borrowed = borrowed.expect("frames accepts the header decode accepts");
        assert_eq!(borrowed.len(), packet.messages.len(), "one frame per message");
        for (frame, message) in borrowed.iter().zip(&packet.messages) {
            let frame = frame.as_ref().expect("frames accepts every message decode accepts");
            if let Message::Data(lc) = message {
                assert_eq!(frame.code, code::DATA);
                let (header, payload_len) = data_header(frame.body).expect("data_header accepts decode's LC");
                assert_eq!((header, payload_len), (lc.header, lc.payload.len()), "same LC header both ways");
            }
        }
    }
});

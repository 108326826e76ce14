//! Datagrams from many senders into a Tracker: no panic, tables bounded.
//! Input: repeated [sender u16 LE][len u16 LE][datagram].
#![no_main]

use bytes::Bytes;
use layerp2p_proto::wire::decode;
use layerp2p_proto::{Node, Time, Tracker, TrackerConfig};
use libfuzzer_sys::fuzz_target;
use std::net::SocketAddr;

fuzz_target!(|data: &[u8]| {
    let mut tracker = Tracker::new(TrackerConfig { max_peers: 64, ..TrackerConfig::default() }, 1);
    let mut rest = data;
    let mut now = Time::ZERO;
    while rest.len() >= 4 {
        let from = SocketAddr::from(([10, 0, rest[0], rest[1]], 4000));
        let len = usize::from(u16::from_le_bytes([rest[2], rest[3]])).min(rest.len() - 4);
        let datagram = Bytes::copy_from_slice(&rest[4..4 + len]);
        rest = &rest[4 + len..];
        now = Time(now.0 + 1_000_000);
        if let Ok(packet) = decode(datagram) {
            tracker.handle_input(now, from, packet);
        }
        tracker.handle_timeout(now);
        while tracker.poll_transmit(now).is_some() {}
    }
});

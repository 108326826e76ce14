//! A stream of datagrams from a few senders into a Peer, with time passing: no panic,
//! bounds hold. Input: repeated [sender u8][delay u8][len u16 LE][datagram].
#![no_main]

use bytes::Bytes;
use layerp2p_codec::{Kbps, LayerPlan};
use layerp2p_proto::integrity::{ContentAuth, MAX_MANIFESTS_PER_LAYER};
use layerp2p_proto::wire::decode;
use layerp2p_proto::{Node, Peer, PeerConfig, Policy, Time};
use libfuzzer_sys::fuzz_target;
use std::net::SocketAddr;
use std::time::Duration;

fuzz_target!(|data: &[u8]| {
    let mut cfg = PeerConfig::peer(Policy::LayerP2P, LayerPlan::prototype(), Kbps(700));
    cfg.tracker = Some(SocketAddr::from(([127, 0, 0, 1], 9)));
    // Content checking on, so Manifest and unverifiable Data take their real paths.
    cfg.content_auth = ContentAuth::Verify(ContentAuth::signing_key([1; 32]).verifying_key());
    let Ok(mut peer) = Peer::new(cfg, 1, Time::ZERO) else { return };
    let mut now = Time::ZERO;
    let mut rest = data;
    while rest.len() >= 4 {
        let from = SocketAddr::from(([127, 0, 0, 1], 1000 + u16::from(rest[0] % 8)));
        now = now + Duration::from_millis(u64::from(rest[1]) * 20);
        let len = usize::from(u16::from_le_bytes([rest[2], rest[3]])).min(rest.len() - 4);
        let datagram = Bytes::copy_from_slice(&rest[4..4 + len]);
        rest = &rest[4 + len..];
        if let Ok(packet) = decode(datagram) {
            peer.handle_input(now, from, packet);
        }
        peer.handle_timeout(now);
        while peer.poll_transmit(now).is_some() {}
        assert!(peer.neighbour_count() <= peer.config().n_max);
        assert!(peer.manifest_count() <= 8 * MAX_MANIFESTS_PER_LAYER);
    }
});

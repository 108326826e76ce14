//! Nothing from the network may crash a node or grow its memory without bound:
//! random and adversarial input into Peer and Tracker.

use bytes::Bytes;
use layerp2p_codec::{
    BufferMap, Kbps, LayerId, LayerPlan, LayerWindow, Lc, LcHeader, LcId, MediaTime, Seq, phantom_payload,
};
use layerp2p_engine::integrity::{ContentAuth, LcHash, MAX_MANIFESTS_PER_LAYER};
use layerp2p_engine::wire::{self, BufferMapMsg, ChannelId, ManifestMsg, Message, Packet, PeerId, Reason, Role};
use layerp2p_engine::{Node, Peer, PeerConfig, Policy, Time, Tracker, TrackerConfig};
use proptest::prelude::*;
use std::net::SocketAddr;
use std::time::Duration;

mod common;

fn addr(i: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 30_000u16.wrapping_add(i)))
}

fn arb_role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::Peer), Just(Role::Seed), Just(Role::Relay)]
}

fn arb_id() -> impl Strategy<Value = LcId> {
    (1u8..=8, any::<u32>()).prop_map(|(l, s)| LcId { layer: LayerId::new(l).expect("1..=8"), seq: Seq(s) })
}

/// Any message a hostile sender could get through the decoder.
fn arb_message() -> impl Strategy<Value = Message> {
    let window = (any::<u32>(), prop::collection::vec(0u32..5000, 0..40)).prop_map(|(start, offs)| {
        let start = start.min(layerp2p_codec::MAX_SEQ - 5000);
        let mut w = LayerWindow::new(Seq(start));
        for o in offs {
            let _ = w.insert(Seq(start + o));
        }
        w
    });
    prop_oneof![
        (0u32..3, any::<u64>(), arb_role()).prop_map(|(c, p, role)| Message::Connect {
            channel: ChannelId(c),
            peer: PeerId(p),
            role
        }),
        (any::<u64>(), arb_role()).prop_map(|(p, role)| Message::Accept { peer: PeerId(p), role }),
        Just(Message::Decline { reason: Reason::Full }),
        Just(Message::Disconnect { reason: Reason::Leaving }),
        prop::collection::vec(any::<u16>(), 0..64)
            .prop_map(|ports| Message::PeerList { peers: ports.into_iter().map(addr).collect() }),
        (any::<u64>(), any::<u64>(), any::<u64>(), any::<u32>(), prop::collection::vec(window, 1..=8)).prop_map(
            |(h, s, e, d, layers)| Message::BufferMap(BufferMapMsg {
                head_time: MediaTime(h),
                sent_at: s,
                echo: e,
                echo_delay: d,
                map: BufferMap::from_layers(layers),
            })
        ),
        (any::<u16>(), prop::collection::vec(arb_id(), 0..500))
            .prop_map(|(ttl_ms, ids)| Message::Request { ttl_ms, ids }),
        (arb_id(), any::<u32>(), 1u16..10, any::<u64>(), 1usize..=1250).prop_map(|(id, frame, parts, t, len)| {
            Message::Data(Lc {
                header: LcHeader { id, frame, part: parts - 1, parts, time: MediaTime(t) },
                payload: phantom_payload(len),
            })
        }),
        (0u32..3, any::<u64>(), arb_role()).prop_map(|(c, p, role)| Message::Join {
            channel: ChannelId(c),
            peer: PeerId(p),
            role
        }),
        (0u32..3, any::<u64>(), any::<bool>()).prop_map(|(c, p, w)| Message::Refresh {
            channel: ChannelId(c),
            peer: PeerId(p),
            want_peers: w
        }),
        (0u32..3, any::<u64>()).prop_map(|(c, p)| Message::Leave { channel: ChannelId(c), peer: PeerId(p) }),
        (arb_id(), prop::collection::vec(any::<[u8; 16]>(), 1..=64), any::<u8>()).prop_map(|(id, hashes, sig)| {
            let hashes = hashes.into_iter().map(LcHash).collect();
            Message::Manifest(ManifestMsg { layer: id.layer, start: id.seq, hashes, signature: [sig; 64] })
        }),
    ]
}

fn peer(upload: u32, seed: u64) -> Peer {
    peer_with(upload, seed, ContentAuth::Off)
}

fn peer_with(upload: u32, seed: u64, content_auth: ContentAuth) -> Peer {
    let mut cfg = PeerConfig::peer(Policy::LayerP2P, LayerPlan::prototype(), Kbps(upload));
    cfg.tracker = Some(addr(999));
    cfg.content_auth = content_auth;
    Peer::new(cfg, seed, Time::ZERO).expect("valid config")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    /// Hostile message streams from a handful of senders, with time passing.
    #[test]
    fn peer_survives_any_message_sequence(
        steps in prop::collection::vec((0u16..6, arb_message(), 0u64..400_000), 1..150),
        upload in prop_oneof![Just(0u32), Just(700)],
        checks in any::<bool>(),
    ) {
        let auth = if checks { ContentAuth::Sign(ContentAuth::signing_key([9; 32])) } else { ContentAuth::Off };
        let mut p = peer_with(upload, 1, auth.for_viewer());
        let mut now = Time::ZERO;
        for (from, msg, dt) in steps {
            now = now + Duration::from_micros(dt);
            p.handle_input(now, addr(from), Packet { messages: vec![msg] });
            p.handle_timeout(now);
            while p.poll_transmit(now).is_some() {}
            prop_assert!(p.neighbour_count() <= p.config().n_max);
            prop_assert!(p.queued_requests() <= p.config().n_max * p.config().max_queue);
            prop_assert!(p.manifest_count() <= 8 * MAX_MANIFESTS_PER_LAYER);
        }
    }

    #[test]
    fn tracker_survives_any_message_sequence(steps in prop::collection::vec((any::<u16>(), arb_message()), 1..200)) {
        let mut t = Tracker::new(TrackerConfig { max_peers: 100, ..TrackerConfig::default() }, 1);
        for (i, (from, msg)) in steps.into_iter().enumerate() {
            let now = Time::from_millis(i as u64 * 10);
            t.handle_input(now, addr(from), Packet { messages: vec![msg] });
            t.handle_timeout(now);
            while t.poll_transmit(now).is_some() {}
        }
    }

    /// Bytes off the wire all the way into a node: decode errors are dropped.
    #[test]
    fn decoded_garbage_never_reaches_a_panic(bytes in prop::collection::vec(any::<u8>(), 0..1500)) {
        let mut p = peer(300, 2);
        let mut datagram = vec![0x4C, 0x50, 1];
        datagram.extend_from_slice(&bytes);
        if let Ok(packet) = wire::decode(Bytes::from(datagram)) {
            p.handle_input(Time::ZERO, addr(1), packet);
        }
    }
}

#[test]
fn request_flood_stays_bounded_and_honest_neighbour_is_served() {
    let mut cfg = PeerConfig::seed(Policy::LayerP2P, LayerPlan::prototype(), Kbps(2000));
    cfg.max_queue = 500;
    let mut seed = Peer::new(cfg, 3, Time::ZERO).expect("valid");
    for s in 0..600 {
        let id = LcId { layer: LayerId::BASE, seq: Seq(s) };
        let header = LcHeader { id, frame: s, part: 0, parts: 1, time: MediaTime(s as u64 * 10_000) };
        seed.push_lc(Time::ZERO, Lc { header, payload: phantom_payload(1000) }).expect("fits");
    }
    let (flooder, honest) = (addr(1), addr(2));
    for a in [flooder, honest] {
        common::connect(&mut seed, Time::ZERO, a);
    }
    // 200 requests of 2048 ids each: 409,600 queued LCs asked for.
    let ids: Vec<LcId> = (0..2048).map(|s| LcId { layer: LayerId::BASE, seq: Seq(s % 600) }).collect();
    for _ in 0..200 {
        seed.handle_input(
            Time::ZERO,
            flooder,
            Packet { messages: vec![Message::Request { ttl_ms: 1000, ids: ids.clone() }] },
        );
    }
    let honest_ids: Vec<LcId> = (0..50).map(|s| LcId { layer: LayerId::BASE, seq: Seq(s) }).collect();
    seed.handle_input(
        Time::ZERO,
        honest,
        Packet { messages: vec![Message::Request { ttl_ms: 1000, ids: honest_ids }] },
    );
    assert!(seed.queued_requests() <= 2 * 500, "queued {}", seed.queued_requests());
    let mut served_honest = 0;
    let mut now = Time::ZERO;
    while now < Time::from_secs(1) {
        while let Some(t) = seed.poll_transmit(now) {
            if t.dst == honest {
                served_honest += t.packet.messages.iter().filter(|m| matches!(m, Message::Data(_))).count();
            }
        }
        now = seed.poll_timeout().expect("busy").max(now + Duration::from_micros(1));
    }
    assert_eq!(served_honest, 50, "the honest neighbour must get its LCs despite the flood");
}

/// 20,000 Connects from addresses that never prove themselves take no neighbour slot:
/// they wait in the bounded handshake table, the oldest giving way.
#[test]
fn connect_flood_takes_no_slot_and_outbox_stays_bounded() {
    let mut p = peer(700, 4);
    for i in 0..20_000u16 {
        let msg = Message::Connect { channel: ChannelId(1), peer: PeerId(i as u64), role: Role::Peer };
        p.handle_input(Time::ZERO, addr(i), Packet { messages: vec![msg] });
    }
    assert_eq!(p.neighbour_count(), 0);
    assert_eq!(p.handshake_count(), layerp2p_engine::peer::MAX_HANDSHAKES);
    // An honest contact still gets in during the flood.
    common::connect(&mut p, Time::ZERO, addr(40_000));
    assert_eq!(p.neighbour_count(), 1);
    let replies = std::iter::from_fn(|| p.poll_transmit(Time::ZERO)).count();
    assert!(replies <= 1024 + 64, "{replies} replies queued");
}

/// 50,000 joins that echo their tokens (real addresses): registrations stop at
/// `max_peers`; joins that never echo register nobody.
#[test]
fn tracker_join_flood_is_capped() {
    let mut t = Tracker::new(TrackerConfig { max_peers: 1000, ..TrackerConfig::default() }, 5);
    let join = |i: u32| Message::Join { channel: ChannelId(1), peer: PeerId(i as u64), role: Role::Peer };
    for i in 0..50_000u32 {
        let a = SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 4000));
        t.handle_input(Time::ZERO, a, Packet { messages: vec![join(i)] });
        let token = std::iter::from_fn(|| t.poll_transmit(Time::ZERO))
            .flat_map(|tx| tx.packet.messages)
            .find_map(|m| if let Message::Token { nonce, .. } = m { Some(nonce) } else { None });
        let echo = Message::Token { nonce: 0, echo: token.expect("a token") };
        t.handle_input(Time::ZERO, a, Packet { messages: vec![join(i), echo] });
        while t.poll_transmit(Time::ZERO).is_some() {}
    }
    assert_eq!(t.peer_count(ChannelId(1)), 1000);
    assert_eq!(t.stats().refused, 49_000);
    for i in 0..1000u32 {
        let a = SocketAddr::from(([11, 0, (i >> 8) as u8, i as u8], 4000));
        t.handle_input(Time::ZERO, a, Packet { messages: vec![join(i)] });
    }
    assert_eq!(t.stats().unvalidated, 51_000);
}

/// An attacker spoofs a victim's address: a padded Connect, then requests and buffer
/// maps "from" the victim. The victim must receive at most 3x what was sent in its
/// name, and no LC data at all.
#[test]
fn spoofed_source_gets_no_amplification() {
    let mut cfg = PeerConfig::seed(Policy::LayerP2P, LayerPlan::prototype(), Kbps(10_000));
    cfg.n_max = 50;
    let mut seed = Peer::new(cfg, 6, Time::ZERO).expect("valid");
    for s in 0..2000 {
        let id = LcId { layer: LayerId::BASE, seq: Seq(s) };
        let header = LcHeader { id, frame: s, part: 0, parts: 1, time: MediaTime(s as u64 * 10_000) };
        seed.push_lc(Time::ZERO, Lc { header, payload: phantom_payload(1250) }).expect("fits");
    }
    let victim = addr(77);
    let mut sent_in_victims_name = 0usize;
    let mut to_victim = 0usize;
    let mut data_to_victim = 0usize;
    let mut now = Time::ZERO;
    let mut send = |seed: &mut Peer, now: Time, messages: Vec<Message>| {
        let p = Packet { messages };
        sent_in_victims_name += p.wire_len();
        seed.handle_input(now, victim, p);
    };
    let connect = Message::Connect { channel: ChannelId(1), peer: PeerId(1), role: Role::Peer };
    send(&mut seed, now, vec![connect, Message::Token { nonce: 5, echo: 0 }, Message::Padding { len: 1150 }]);
    let ids: Vec<LcId> = (0..2000).map(|s| LcId { layer: LayerId::BASE, seq: Seq(s) }).collect();
    for round in 0..20u64 {
        // The attacker cannot see the seed's token, so it guesses.
        let guess = Message::Token { nonce: 5, echo: round.wrapping_mul(0x9E37_79B9_7F4A_7C15) };
        send(&mut seed, now, vec![guess, Message::Request { ttl_ms: 1000, ids: ids.clone() }]);
        let end = now + Duration::from_secs(1);
        while now < end {
            seed.handle_timeout(now);
            while let Some(t) = seed.poll_transmit(now) {
                if t.dst == victim {
                    to_victim += t.packet.wire_len();
                    data_to_victim += t.packet.messages.iter().filter(|m| matches!(m, Message::Data(_))).count();
                }
            }
            now = seed.poll_timeout().expect("active").min(end).max(now + Duration::from_millis(1));
        }
    }
    assert_eq!(data_to_victim, 0, "no LC may go to an unvalidated address");
    assert!(to_victim <= 3 * sent_in_victims_name, "{to_victim} bytes to the victim for {sent_in_victims_name} sent");
    assert!(seed.stats().unvalidated_requests >= 1);
    // A "neighbour" that never proves its address is dropped once it falls silent.
    assert_eq!(seed.neighbour_count(), 0);
}

/// One neighbour whose window starts near the sequence limit (so the median of one is
/// there) while ours starts at 0: playback must give up the LCs in between in bounded
/// work per tick, not spin through four billion sequences.
#[test]
fn a_far_ahead_neighbour_window_cannot_make_playback_spin() {
    let mut p = peer(700, 3);
    let nb = addr(1);
    common::connect(&mut p, Time::ZERO, nb);
    let lc = |seq| Lc {
        header: LcHeader {
            id: LcId { layer: LayerId::BASE, seq: Seq(seq) },
            frame: 0,
            part: 0,
            parts: 1,
            time: MediaTime(0),
        },
        payload: phantom_payload(100),
    };
    common::input(&mut p, Time::ZERO, nb, vec![Message::Data(lc(0))]);
    let far = layerp2p_codec::MAX_SEQ - 100;
    let mut w = LayerWindow::new(Seq(far));
    w.insert(Seq(far + 1)).expect("in window");
    let map = BufferMap::from_layers(vec![w, LayerWindow::new(Seq(far)), LayerWindow::new(Seq(far))]);
    let msg = BufferMapMsg { head_time: MediaTime(1 << 40), sent_at: 1, echo: 0, echo_delay: 0, map };
    let started = std::time::Instant::now();
    let mut now = Time::ZERO;
    for _ in 0..50 {
        now = now + Duration::from_millis(100);
        common::input(&mut p, now, nb, vec![Message::BufferMap(msg.clone())]);
        p.handle_timeout(now);
        common::drain(&mut p, now);
    }
    assert!(started.elapsed() < Duration::from_secs(5), "50 ticks took {:?}", started.elapsed());
}

//! One `Peer` driven by hand: neighbour management, schedulers and playback rules
//! of DESIGN.md §4-§6, observed through the messages it sends.

use layerp2p_codec::{BufferMap, Kbps, LayerId, LayerPlan, Lc, LcHeader, LcId, MediaTime, Seq, phantom_payload};
use layerp2p_engine::peer::REPLACEMENT_TRIES;
use layerp2p_engine::peer::playback::LayerStats;
use layerp2p_engine::wire::{BufferMapMsg, Message, PeerId, Reason, Role};
use layerp2p_engine::{Node, Peer, PeerConfig, PeerStats, Policy, Time, Transmit};
use std::net::SocketAddr;
use std::time::Duration;

mod common;
use common::{connect, drain, input};

fn addr(i: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 20_000 + i))
}

fn layer(n: u8) -> LayerId {
    LayerId::new(n).expect("valid layer")
}

fn lc(l: u8, seq: u32, time: MediaTime) -> Lc {
    let id = LcId { layer: layer(l), seq: Seq(seq) };
    Lc { header: LcHeader { id, frame: seq, part: 0, parts: 1, time }, payload: phantom_payload(1000) }
}

/// A buffer map holding `0..n` of every layer, newest LC at `head`.
fn full_map(layers: usize, n: u32, head: MediaTime) -> Message {
    let mut map = BufferMap::new(layers, Seq(0));
    for l in 0..layers {
        let w = map.layer_mut(LayerId::from_index(l)).expect("layer");
        for s in 0..n {
            w.insert(Seq(s)).expect("in window");
        }
    }
    Message::BufferMap(BufferMapMsg { head_time: head, sent_at: 1, echo: 0, echo_delay: 0, map })
}

fn config(policy: Policy, upload: u32) -> PeerConfig {
    PeerConfig::peer(policy, LayerPlan::prototype(), Kbps(upload))
}

fn run_timers(p: &mut Peer, from: Time, to: Time) -> Vec<Transmit> {
    let mut out = vec![];
    let mut now = from;
    while now <= to {
        p.handle_timeout(now);
        out.extend(drain(p, now));
        now = p.poll_timeout().expect("active peer").max(now + Duration::from_micros(1));
    }
    out
}

/// The ids of the first round's requests to `to`.
fn requests(out: &[Transmit], to: SocketAddr) -> Vec<LcId> {
    out.iter()
        .filter(|t| t.dst == to)
        .find(|t| t.packet.messages.iter().any(|m| matches!(m, Message::Request { .. })))
        .map(|t| {
            t.packet
                .messages
                .iter()
                .filter_map(|m| if let Message::Request { ids, .. } = m { Some(ids.clone()) } else { None })
                .flatten()
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn receptor_declines_at_n_max() {
    let mut cfg = config(Policy::LayerP2P, 500);
    cfg.n_min = 1;
    cfg.n_max = 2;
    let mut p = Peer::new(cfg, 1, Time::ZERO).expect("valid");
    let out: Vec<Transmit> = (0..3).flat_map(|i| connect(&mut p, Time::ZERO, addr(i))).collect();
    let replies: Vec<(SocketAddr, &Message)> = out.iter().map(|t| (t.dst, &t.packet.messages[0])).collect();
    assert!(matches!(replies.iter().find(|(a, _)| *a == addr(0)), Some((_, Message::Accept { .. }))));
    assert!(matches!(replies.iter().find(|(a, _)| *a == addr(1)), Some((_, Message::Accept { .. }))));
    assert!(matches!(replies.iter().find(|(a, _)| *a == addr(2)), Some((_, Message::Decline { .. }))));
    assert_eq!(p.neighbour_count(), 2);
}

#[test]
fn initiator_assumes_large_rate_receptor_small() {
    let tracker = addr(99);
    let mut cfg = config(Policy::LayerP2P, 500);
    cfg.tracker = Some(tracker);
    let mut initiator = Peer::new(cfg.clone(), 1, Time::ZERO).expect("valid");
    drain(&mut initiator, Time::ZERO);
    input(&mut initiator, Time::ZERO, tracker, vec![Message::PeerList { peers: vec![addr(5)] }]);
    let out = drain(&mut initiator, Time::ZERO);
    let request = out.iter().find(|t| t.dst == addr(5) && matches!(t.packet.messages[0], Message::Connect { .. }));
    let request = request.expect("a connect to the candidate");
    assert!(request.packet.wire_len() >= layerp2p_engine::peer::HANDSHAKE_SIZE, "handshakes are padded");
    let nonce = request
        .packet
        .messages
        .iter()
        .find_map(|m| if let Message::Token { nonce, .. } = m { Some(*nonce) } else { None });
    let nonce = nonce.expect("connect carries a token");
    // An Accept that does not echo the token is not from the candidate.
    let accept = Message::Accept { peer: PeerId(5), role: Role::Peer };
    input(&mut initiator, Time::ZERO, addr(5), vec![accept.clone(), Message::Token { nonce: 9, echo: nonce ^ 1 }]);
    assert_eq!(initiator.neighbour_count(), 0);
    input(&mut initiator, Time::ZERO, addr(5), vec![accept, Message::Token { nonce: 9, echo: nonce }]);
    assert_eq!(initiator.download_rate_from(&addr(5)), Some(cfg.incentive.d_large));

    let mut receptor = Peer::new(config(Policy::LayerP2P, 500), 2, Time::ZERO).expect("valid");
    connect(&mut receptor, Time::ZERO, addr(7));
    assert_eq!(receptor.download_rate_from(&addr(7)), Some(cfg.incentive.d_small));
}

#[test]
fn first_lc_credit_is_earned_once_and_only_by_serving() {
    let mut cfg = config(Policy::LayerP2P, 500);
    cfg.incentive.first_lc_credit = Kbps(50);
    let mut p = Peer::new(cfg, 2, Time::ZERO).expect("valid");
    let (uploader, freerider) = (addr(7), addr(8));
    connect(&mut p, Time::ZERO, uploader);
    connect(&mut p, Time::ZERO, freerider);
    assert_eq!(p.download_rate_from(&uploader), Some(Kbps(0)), "nothing before the first LC");
    input(&mut p, Time::ZERO, uploader, vec![Message::Data(lc(1, 0, MediaTime(0)))]);
    assert_eq!(p.download_rate_from(&uploader), Some(Kbps(50)));
    input(&mut p, Time::ZERO, uploader, vec![Message::Data(lc(1, 1, MediaTime(0)))]);
    assert_eq!(p.download_rate_from(&uploader), Some(Kbps(50)), "credited once");
    // A neighbour that only sends buffer maps earns nothing.
    input(&mut p, Time::ZERO, freerider, vec![full_map(3, 10, MediaTime::from_secs_f64(1.0))]);
    assert_eq!(p.download_rate_from(&freerider), Some(Kbps(0)));
}

#[test]
fn layerp2p_requests_regular_layers_then_probing_layers_in_order() {
    // 300 kbps upload: l_n = 1 (R(1) = 290 <= 300 < R(2) = 520).
    let mut p = Peer::new(config(Policy::LayerP2P, 300), 3, Time::ZERO).expect("valid");
    assert_eq!(p.threshold_layer(), 1);
    let nb = addr(1);
    connect(&mut p, Time::ZERO, nb);
    input(&mut p, Time::ZERO, nb, vec![full_map(3, 50, MediaTime::from_secs_f64(60.0))]);
    let out = run_timers(&mut p, Time::ZERO, Time::from_millis(1100));
    let ids = requests(&out, nb);
    assert_eq!(ids.len(), 150, "every missing LC is requested once");
    let layers: Vec<u8> = ids.iter().map(|id| id.layer.get()).collect();
    assert!(layers.windows(2).all(|w| w[0] <= w[1]), "layers out of priority order: {layers:?}");
    let l3: Vec<u32> = ids.iter().filter(|id| id.layer == layer(3)).map(|id| id.seq.0).collect();
    assert!(l3.windows(2).any(|w| w[0] > w[1]), "LCs within a probing layer are shuffled");
}

#[test]
fn regular_layers_are_not_prioritized_among_themselves() {
    // 700 kbps: l_n = 3, every layer regular and shuffled together.
    let mut p = Peer::new(config(Policy::LayerP2P, 700), 4, Time::ZERO).expect("valid");
    let nb = addr(1);
    connect(&mut p, Time::ZERO, nb);
    input(&mut p, Time::ZERO, nb, vec![full_map(3, 50, MediaTime::from_secs_f64(60.0))]);
    let ids = requests(&run_timers(&mut p, Time::ZERO, Time::from_millis(1100)), nb);
    let first_half: Vec<u8> = ids[..75].iter().map(|id| id.layer.get()).collect();
    assert!(first_half.contains(&3), "layer 3 should be mixed in among regular requests");
}

#[test]
fn baselines_mix_all_layers() {
    let mut p = Peer::new(config(Policy::SingleIncent, 0), 5, Time::ZERO).expect("valid");
    let nb = addr(1);
    connect(&mut p, Time::ZERO, nb);
    input(&mut p, Time::ZERO, nb, vec![full_map(3, 50, MediaTime::from_secs_f64(60.0))]);
    let ids = requests(&run_timers(&mut p, Time::ZERO, Time::from_millis(1100)), nb);
    let first: Vec<u8> = ids[..50].iter().map(|id| id.layer.get()).collect();
    assert!(first.contains(&3) && first.contains(&1));
}

/// A seed with LCs of all layers, and receivers connected to it. These tests are about
/// the supplier scheduler, so the seed's audit (tested on its own below: it adds
/// requests of its own and credits newcomers) is off.
fn seed_with(upload: u32, receivers: &[SocketAddr]) -> Peer {
    let mut cfg = PeerConfig::seed(Policy::LayerP2P, LayerPlan::prototype(), Kbps(upload));
    cfg.n_max = 50;
    cfg.incentive.seed_audit = false;
    let mut seed = Peer::new(cfg, 9, Time::ZERO).expect("valid");
    for s in 0..400 {
        for l in 1..=3 {
            seed.push_lc(Time::ZERO, lc(l, s, MediaTime(s as u64 * 1000))).expect("fits");
        }
    }
    for &r in receivers {
        connect(&mut seed, Time::ZERO, r);
    }
    drain(&mut seed, Time::ZERO);
    seed
}

fn request(ids: impl Iterator<Item = u32>, ttl_ms: u16) -> Message {
    Message::Request { ttl_ms, ids: ids.map(|s| LcId { layer: layer(1), seq: Seq(s) }).collect() }
}

#[test]
fn supplier_respects_upload_capacity() {
    let r = addr(1);
    let mut seed = seed_with(800, &[r]);
    let mut sent = 0usize;
    let mut now = Time::ZERO;
    for _ in 0..5 {
        // More than 800 kbps can carry in a round: capacity is the limit.
        input(&mut seed, now, r, vec![request(0..150, 1000)]);
        let end = now + Duration::from_secs(1);
        while now < end {
            sent += drain(&mut seed, now).iter().filter(|t| matches!(t.packet.messages[0], Message::Data(_))).count();
            now = seed.poll_timeout().expect("busy").min(end).max(now + Duration::from_micros(1));
        }
    }
    // 800 kbps over 5 s = 500 kB: about 485 LCs of 1000 bytes + header.
    let kbps = sent as f64 * layerp2p_engine::peer::data_cost(1000) as f64 * 8.0 / 5.0 / 1000.0;
    assert!((kbps - 800.0).abs() < 60.0, "sent at {kbps} kbps");
}

#[test]
fn free_rider_never_uploads_and_requests_expire() {
    let mut p = Peer::new(config(Policy::LayerP2P, 0), 6, Time::ZERO).expect("valid");
    let nb = addr(1);
    connect(&mut p, Time::ZERO, nb);
    drain(&mut p, Time::ZERO);
    p.push_lc(Time::ZERO, lc(1, 0, MediaTime(0))).expect("fits");
    input(&mut p, Time::ZERO, nb, vec![request(0..1, 500)]);
    let out = run_timers(&mut p, Time::ZERO, Time::from_secs(3));
    assert!(out.iter().all(|t| !matches!(t.packet.messages[0], Message::Data(_))));

    let r = addr(2);
    let mut seed = seed_with(100, &[r]);
    input(&mut seed, Time::ZERO, r, vec![request(0..100, 300)]);
    let out = run_timers(&mut seed, Time::ZERO, Time::from_secs(2));
    let data = out.iter().filter(|t| matches!(t.packet.messages[0], Message::Data(_))).count();
    // 100 kbps for 300 ms is about 4 LCs, plus the initial burst.
    assert!((1..=8).contains(&data), "served {data} LCs within a 300 ms ttl");
    assert!(seed.stats().requests_expired > 80);
}

#[test]
fn tit_for_tat_serves_contributors_first() {
    let (good, bad) = (addr(1), addr(2));
    let mut seed = seed_with(500, &[good, bad]);
    // `good` uploads to the seed, `bad` does not.
    for s in 0..60 {
        input(&mut seed, Time::ZERO, good, vec![Message::Data(lc(1, 1000 + s, MediaTime(1_000_000)))]);
    }
    for r in [good, bad] {
        input(&mut seed, Time::ZERO, r, vec![full_map(3, 0, MediaTime(0))]);
    }
    let _ = run_timers(&mut seed, Time::ZERO, Time::from_millis(1000));
    let now = Time::from_millis(1001);
    input(&mut seed, now, good, vec![request(0..300, 900)]);
    input(&mut seed, now, bad, vec![request(0..300, 900)]);
    let out = run_timers(&mut seed, now, now + Duration::from_millis(800));
    let to = |a| out.iter().filter(|t| t.dst == a && matches!(t.packet.messages[0], Message::Data(_))).count();
    assert!(to(good) > 5 * to(bad).max(1), "good {} vs bad {}", to(good), to(bad));
}

/// A viewer playing 5 s behind the source from the start, with one neighbour.
fn playing_with_one_neighbour() -> (Peer, SocketAddr) {
    let mut cfg = config(Policy::LayerP2P, 500);
    cfg.startup = Duration::ZERO;
    cfg.lag = Duration::from_secs(5);
    let mut p = Peer::new(cfg, 7, Time::ZERO).expect("valid");
    let nb = addr(1);
    connect(&mut p, Time::ZERO, nb);
    (p, nb)
}

#[test]
fn playback_counts_in_time_and_missed_lcs() {
    let (mut p, nb) = playing_with_one_neighbour();
    // The neighbour holds 0..10 of each layer; the source is at media time 1 s.
    input(&mut p, Time::ZERO, nb, vec![full_map(3, 10, MediaTime::from_secs_f64(1.0))]);
    // We receive layer-1 LCs 0..5 and 7; 5 and 6 are missing. LC i has media time i*0.1 s.
    for s in (0..5).chain([7]) {
        input(&mut p, Time::ZERO, nb, vec![Message::Data(lc(1, s, MediaTime(s as u64 * 100_000)))]);
    }
    run_timers(&mut p, Time::ZERO, Time::from_secs(5));
    let st = p.stats();
    // By local 5 s the source is at 6 s: media time <= 1 s is due, so 0..5 and 7 are
    // played and 5 and 6 missed (7 is held and due). 8 and 9 stay open: nothing says
    // yet when they were due.
    assert_eq!(st.layers[0].played, 6);
    assert_eq!(st.layers[0].missed, 2);
    assert!(st.layers[0].ratio().is_some_and(|a| a < 1.0));
    assert_eq!(st.overall_ratio(), Some(6.0 / 8.0));
    // The neighbour has played past them (its window now starts at 10): given up.
    let mut moved = full_map(3, 12, MediaTime::from_secs_f64(1.2));
    if let Message::BufferMap(b) = &mut moved {
        b.map.layer_mut(layer(1)).expect("layer").advance(Seq(10));
    }
    input(&mut p, Time::from_secs(5), nb, vec![moved]);
    run_timers(&mut p, Time::from_secs(5), Time::from_secs(7));
    assert_eq!(p.stats().layers[0].missed, 4);
}

/// A stall: 40 LCs arrive (at 10 per media second), then nothing at all. The LCs
/// after them are counted missed as their deadlines pass, not only once something
/// arrives again (before, a stalled viewer showed `missed [0,0,0]`).
#[test]
fn missed_lcs_are_counted_when_their_deadline_passes_while_nothing_arrives() {
    let (mut p, nb) = playing_with_one_neighbour();
    input(&mut p, Time::ZERO, nb, vec![full_map(3, 40, MediaTime::from_secs_f64(4.0))]);
    for s in 0..40 {
        input(&mut p, Time::ZERO, nb, vec![Message::Data(lc(1, s, MediaTime(s as u64 * 100_000)))]);
    }
    // Source at 4 s + now; lag 5 s: LC 39 (3.9 s) is due at local 4.9 s.
    run_timers(&mut p, Time::ZERO, Time::from_secs(5));
    assert_eq!(p.stats().layers[0].played, 40);
    assert_eq!(p.stats().layers[0].missed, 0);
    // Ten more seconds of silence: about 100 LCs' deadlines pass (less the grace).
    run_timers(&mut p, Time::from_secs(5), Time::from_secs(15));
    let missed = p.stats().layers[0].missed;
    assert!((80..=100).contains(&missed), "{missed} LCs counted missed after 10 s of silence");
}

#[test]
fn stats_merge_adds_every_counter() {
    let one = PeerStats {
        layers: vec![LayerStats { played: 1, played_bytes: 2, missed: 3, late: 4 }],
        bytes_up: 1,
        bytes_down: 1,
        lcs_up: 1,
        lcs_pushed: 1,
        lcs_down: 1,
        duplicates: 1,
        rejected: 1,
        requests_received: 1,
        requests_expired: 1,
        requests_overflowed: 1,
        neighbours_added: 1,
        neighbours_removed: 1,
        control_dropped: 1,
        unvalidated_requests: 1,
        requests_withheld: 1,
        amplification_limited: 1,
        forged: 1,
        unverified: 1,
        bad_manifests: 1,
        neighbours_banned: 1,
        unauthenticated_control: 1,
        latency: Default::default(),
    };
    let mut sum = one.clone();
    sum.merge(&one);
    assert_eq!(sum.layers[0], LayerStats { played: 2, played_bytes: 4, missed: 6, late: 8 });
    let counters = serde_json::to_value(&sum).expect("serialises");
    for (name, value) in counters.as_object().expect("an object") {
        if let Some(n) = value.as_u64() {
            assert_eq!(n, 2, "{name} is not added by merge");
        }
    }
    assert_eq!((sum.forged, sum.unverified, sum.bad_manifests, sum.neighbours_banned), (2, 2, 2, 2));
}

#[test]
fn one_lying_neighbour_cannot_move_the_playback_clock() {
    let mut cfg = config(Policy::LayerP2P, 500);
    cfg.startup = Duration::ZERO;
    cfg.lag = Duration::from_secs(5);
    let mut p = Peer::new(cfg, 8, Time::ZERO).expect("valid");
    let (a, b, liar) = (addr(1), addr(2), addr(3));
    for n in [a, b, liar] {
        connect(&mut p, Time::ZERO, n);
    }
    for n in [a, b] {
        input(&mut p, Time::ZERO, n, vec![full_map(3, 10, MediaTime::from_secs_f64(1.0))]);
    }
    // The liar claims the source is a day ahead, which would make everything due.
    input(&mut p, Time::ZERO, liar, vec![full_map(3, 10, MediaTime::from_secs_f64(86_400.0))]);
    input(&mut p, Time::ZERO, a, vec![Message::Data(lc(1, 0, MediaTime(0)))]);
    run_timers(&mut p, Time::ZERO, Time::from_secs(3));
    // Source at about 4 s, lag 5 s: media time 0 is not due yet, so nothing is played
    // or missed.
    assert_eq!(p.stats().layers[0].played + p.stats().layers[0].missed, 0);
}

#[test]
fn late_lcs_are_not_counted_as_played() {
    let mut cfg = config(Policy::LayerP2P, 500);
    cfg.startup = Duration::ZERO;
    cfg.lag = Duration::from_secs(5);
    let mut p = Peer::new(cfg, 8, Time::ZERO).expect("valid");
    let nb = addr(1);
    connect(&mut p, Time::ZERO, nb);
    input(&mut p, Time::ZERO, nb, vec![full_map(3, 10, MediaTime::from_secs_f64(10.0))]);
    // Media time 1 s with the source at 10 s and a 5 s lag: already past its deadline.
    input(&mut p, Time::ZERO, nb, vec![Message::Data(lc(1, 0, MediaTime::from_secs_f64(1.0)))]);
    assert_eq!(p.stats().layers[0].late, 1);
    assert_eq!(p.stats().layers[0].played, 0);
}

#[test]
fn data_from_strangers_is_rejected() {
    let mut p = Peer::new(config(Policy::LayerP2P, 500), 9, Time::ZERO).expect("valid");
    input(&mut p, Time::ZERO, addr(3), vec![Message::Data(lc(1, 0, MediaTime(0)))]);
    assert_eq!(p.stats().rejected, 1);
    assert_eq!(p.stats().lcs_down, 0);
}

/// Half a second of three neighbours: all send a buffer map, `giver` and `other`
/// also one LC each (numbered from `seq`), and `taker` nothing. Runs `p`'s timers
/// and returns what it sent.
fn half_second(p: &mut Peer, now: Time, [giver, other, taker]: [SocketAddr; 3], seq: &mut u32) -> Vec<Transmit> {
    for a in [giver, other, taker] {
        input(p, now, a, vec![full_map(3, 0, MediaTime(0))]);
    }
    for a in [giver, other] {
        *seq += 1;
        input(p, now, a, vec![Message::Data(lc(1, *seq, MediaTime::from_secs_f64(1000.0)))]);
    }
    p.handle_timeout(now);
    drain(p, now)
}

#[test]
fn neighbour_dropped_by_adaptation_cannot_reconnect_at_once() {
    let mut cfg = config(Policy::LayerP2P, 500);
    cfg.n_min = 2;
    cfg.n_max = 4;
    let adaptation = cfg.adaptation;
    let mut p = Peer::new(cfg, 9, Time::ZERO).expect("valid");
    let (giver, other, taker) = (addr(1), addr(2), addr(3));
    for a in [giver, other, taker] {
        connect(&mut p, Time::ZERO, a);
    }
    // Every 500 ms all three keep the relationship alive; two of them also send LCs.
    let mut now = Time::ZERO;
    let mut dropped_at = None;
    let mut seq = 0;
    while now < Time::from_secs(2 * adaptation.as_secs() + 5) && dropped_at.is_none() {
        now = now + Duration::from_millis(500);
        let out = half_second(&mut p, now, [giver, other, taker], &mut seq);
        if out.iter().any(|t| t.dst == taker && matches!(t.packet.messages[0], Message::Disconnect { .. })) {
            dropped_at = Some(now);
        }
    }
    let dropped_at = dropped_at.expect("adaptation dropped the neighbour that gave nothing");
    assert_eq!(p.neighbour_count(), 2);
    // It asks straight back in: declined for one adaptation period, accepted after.
    let replies = connect(&mut p, dropped_at, taker);
    assert!(matches!(replies[0].packet.messages[0], Message::Decline { .. }), "{:?}", replies[0].packet.messages[0]);
    let replies = connect(&mut p, dropped_at + adaptation, taker);
    assert!(matches!(replies[0].packet.messages[0], Message::Accept { .. }), "{:?}", replies[0].packet.messages[0]);
}

#[test]
fn adaptation_keeps_the_only_measured_neighbour() {
    // A relay's case: its seed is the one neighbour old enough to be measured when
    // the first adaptation comes; its viewers, who give nothing, joined later.
    let mut cfg = config(Policy::LayerP2P, 500);
    cfg.n_min = 2;
    cfg.n_max = 4;
    let adaptation = cfg.adaptation;
    let mut p = Peer::new(cfg, 9, Time::ZERO).expect("valid");
    let (giver, other, taker) = (addr(1), addr(2), addr(3));
    connect(&mut p, Time::ZERO, giver);
    let joined = Time::ZERO + adaptation - Duration::from_secs(1);
    let mut now = Time::ZERO;
    let mut seq = 0;
    let mut dropped = Vec::new();
    while now < Time::from_secs(3 * adaptation.as_secs() + 5) {
        now = now + Duration::from_millis(500);
        if now == joined {
            connect(&mut p, now, other);
            connect(&mut p, now, taker);
        }
        let out = if now < joined {
            input(&mut p, now, giver, vec![full_map(3, 0, MediaTime(0))]);
            seq += 1;
            input(&mut p, now, giver, vec![Message::Data(lc(1, seq, MediaTime::from_secs_f64(1000.0)))]);
            p.handle_timeout(now);
            drain(&mut p, now)
        } else {
            half_second(&mut p, now, [giver, other, taker], &mut seq)
        };
        dropped.extend(
            out.iter().filter(|t| matches!(t.packet.messages[0], Message::Disconnect { .. })).map(|t| (now, t.dst)),
        );
    }
    let supplier_dropped = dropped.iter().find(|&&(_, a)| a == giver);
    assert!(supplier_dropped.is_none(), "the supplier was dropped at {supplier_dropped:?}");
    assert!(dropped.iter().any(|&(_, a)| a == taker), "once measured, the taker goes: {dropped:?}");
}

/// A peer with tracker `addr(99)`, N_min / N_max = 2 / 4 (then `tweak`ed) and three
/// neighbours, `addr(1..=3)`: its tracker, the peer and its adaptation period.
fn peer_with_three_neighbours(tweak: impl FnOnce(&mut PeerConfig)) -> (SocketAddr, Peer, Duration) {
    let tracker = addr(99);
    let mut cfg = config(Policy::LayerP2P, 500);
    cfg.tracker = Some(tracker);
    cfg.n_min = 2;
    cfg.n_max = 4;
    tweak(&mut cfg);
    let adaptation = cfg.adaptation;
    let mut p = Peer::new(cfg, 9, Time::ZERO).expect("valid");
    for a in [addr(1), addr(2), addr(3)] {
        connect(&mut p, Time::ZERO, a);
    }
    (tracker, p, adaptation)
}

#[test]
fn adaptation_replaces_a_neighbour_from_the_latest_tracker_list() {
    // A refresh, answered, before the first adaptation.
    let (tracker, mut p, adaptation) = peer_with_three_neighbours(|cfg| cfg.tracker_refresh = Duration::from_secs(10));
    let (giver, other, taker, stale, fresh) = (addr(1), addr(2), addr(3), addr(8), addr(9));
    // The join-time list; the peer has N_min neighbours already, so it only keeps it.
    input(&mut p, Time::ZERO, tracker, vec![Message::PeerList { peers: vec![stale] }]);
    let mut now = Time::ZERO;
    let (mut asked, mut replacement) = (false, None);
    let mut seq = 0;
    while now < Time::from_secs(2 * adaptation.as_secs() + 5) && replacement.is_none() {
        now = now + Duration::from_millis(500);
        for t in half_second(&mut p, now, [giver, other, taker], &mut seq) {
            for m in &t.packet.messages {
                match m {
                    Message::Refresh { want_peers: true, .. } if t.dst == tracker && !asked => {
                        asked = true;
                        input(&mut p, now, tracker, vec![Message::PeerList { peers: vec![fresh] }]);
                    }
                    Message::Connect { .. } => replacement = Some(t.dst),
                    _ => {}
                }
            }
        }
    }
    assert!(asked, "a peer with N_min neighbours still asks for a fresh list at its refresh");
    assert_eq!(replacement, Some(fresh), "the replacement comes from the latest list");
}

#[test]
fn adaptation_tries_further_candidates_while_they_decline() {
    let (tracker, mut p, adaptation) = peer_with_three_neighbours(|_| {});
    let (giver, other, taker) = (addr(1), addr(2), addr(3));
    let candidates: Vec<SocketAddr> = (10..20).map(addr).collect();
    input(&mut p, Time::ZERO, tracker, vec![Message::PeerList { peers: candidates.clone() }]);
    // (candidate, the token of our Connect, which its Decline echoes)
    let connects = |out: Vec<Transmit>| -> Vec<(SocketAddr, u64)> {
        out.into_iter()
            .filter(|t| t.packet.messages.iter().any(|m| matches!(m, Message::Connect { .. })))
            .map(|t| {
                let nonce = t.packet.messages.iter().find_map(|m| match m {
                    Message::Token { nonce, .. } => Some(*nonce),
                    _ => None,
                });
                (t.dst, nonce.expect("a Connect carries a token"))
            })
            .collect()
    };
    let (mut now, mut seq, mut asked) = (Time::ZERO, 0, Vec::new());
    while now < Time::from_secs(2 * adaptation.as_secs() + 5) && asked.is_empty() {
        now = now + Duration::from_millis(500);
        asked = connects(half_second(&mut p, now, [giver, other, taker], &mut seq));
    }
    assert_eq!(asked.len(), 1, "the adaptation's drop asks one candidate first: {asked:?}");
    // Every candidate is full and declines; the peer asks the next until its tries
    // run out.
    loop {
        let (last, nonce) = *asked.last().expect("asked");
        input(
            &mut p,
            now,
            last,
            vec![Message::Decline { reason: Reason::Full }, Message::Token { nonce: 0, echo: nonce }],
        );
        let next = connects(drain(&mut p, now));
        if next.is_empty() {
            break;
        }
        asked.extend(next);
    }
    assert_eq!(asked.len(), 1 + usize::from(REPLACEMENT_TRIES), "asked {asked:?}");
    let asked: Vec<SocketAddr> = asked.into_iter().map(|(a, _)| a).collect();
    let mut distinct = asked.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), asked.len(), "a candidate that declined is not asked again: {asked:?}");
    assert!(asked.iter().all(|a| candidates.contains(a)));
    assert_eq!(p.neighbour_count(), 2, "the slot stays free for the next that asks");
}

/// Before the fix, a Decline or Disconnect in a neighbour's or candidate's name
/// (source address forged) ended the relationship or refused the candidate for 60 s.
#[test]
fn teardowns_that_do_not_echo_our_token_are_ignored() {
    // One short of N_min, so a list makes it ask a candidate.
    let (tracker, mut p, _) = peer_with_three_neighbours(|cfg| cfg.n_min = 4);
    let giver = addr(1);
    let wrong = |echo| Message::Token { nonce: 1, echo };
    input(&mut p, Time::ZERO, giver, vec![Message::Disconnect { reason: Reason::Leaving }]);
    input(&mut p, Time::ZERO, giver, vec![Message::Disconnect { reason: Reason::Leaving }, wrong(12345)]);
    assert_eq!(p.neighbour_count(), 3, "a forged Disconnect ends nothing");
    input(&mut p, Time::ZERO, tracker, vec![Message::PeerList { peers: vec![addr(30)] }]);
    assert!(drain(&mut p, Time::ZERO).iter().any(|t| t.dst == addr(30)), "the candidate is asked");
    input(&mut p, Time::ZERO, addr(30), vec![Message::Decline { reason: Reason::Full }, wrong(999)]);
    assert_eq!(p.stats().unauthenticated_control, 3);
}

/// A full seed (configured, then `tweak`ed) with a contributor and a free-rider as
/// neighbours, both claiming LCs 0..400 of every layer; `good` answers the seed's
/// requests, `bad` never does. Runs for `secs`, and returns the seed, the ids it asked of each, and when it dropped
/// `bad` (if it did).
fn audited_seed(
    policy: Policy,
    secs: u64,
    tweak: impl FnOnce(&mut PeerConfig),
) -> (Peer, Vec<LcId>, Vec<LcId>, Option<Time>) {
    let (good, bad) = (addr(1), addr(2));
    let mut cfg = PeerConfig::seed(policy, LayerPlan::prototype(), Kbps(2000));
    cfg.n_max = 2;
    tweak(&mut cfg);
    let mut seed = Peer::new(cfg, 9, Time::ZERO).expect("valid");
    for a in [good, bad] {
        connect(&mut seed, Time::ZERO, a);
    }
    drain(&mut seed, Time::ZERO);
    let (mut asked_good, mut asked_bad, mut dropped) = (vec![], vec![], None);
    let mut now = Time::ZERO;
    while now < Time::from_secs(secs) {
        now = now + Duration::from_millis(500);
        for a in [good, bad] {
            input(&mut seed, now, a, vec![full_map(3, 400, MediaTime::from_secs_f64(0.4))]);
        }
        seed.handle_timeout(now);
        for t in drain(&mut seed, now) {
            let ids: Vec<LcId> = t
                .packet
                .messages
                .iter()
                .filter_map(|m| if let Message::Request { ids, .. } = m { Some(ids.clone()) } else { None })
                .flatten()
                .collect();
            if t.dst == good {
                for id in &ids {
                    input(
                        &mut seed,
                        now,
                        good,
                        vec![Message::Data(lc(id.layer.get(), id.seq.0, MediaTime(id.seq.0 as u64 * 1000)))],
                    );
                }
                asked_good.extend(ids);
            } else if t.dst == bad {
                asked_bad.extend(ids);
                if t.packet.messages.iter().any(|m| matches!(m, Message::Disconnect { .. })) {
                    dropped.get_or_insert(now);
                }
            }
        }
    }
    (seed, asked_good, asked_bad, dropped)
}

#[test]
fn seed_audit_learns_who_uploads_and_drops_a_free_rider_when_full() {
    let (seed, asked_good, asked_bad, dropped) = audited_seed(Policy::LayerP2P, 20, |_| {});
    // One LC a round of each neighbour, something it claims to hold (the newest).
    assert!((18..=21).contains(&asked_good.len()), "asked {} of good in 20 rounds", asked_good.len());
    assert!((18..=21).contains(&asked_bad.len()), "asked {} of bad in 20 rounds", asked_bad.len());
    assert!(asked_good.iter().chain(&asked_bad).all(|id| id.seq == Seq(399)), "{asked_good:?}");
    // d(seed, k): what each gave back.
    assert!(seed.download_rate_from(&addr(1)).expect("neighbour") > Kbps(5), "{:?}", seed.download_rate_from(&addr(1)));
    // `bad` started with the newcomer's credit (one LC a round) and it has decayed.
    assert!(seed.download_rate_from(&addr(2)).expect("neighbour") < Kbps(2), "{:?}", seed.download_rate_from(&addr(2)));
    assert!(dropped.is_none(), "nobody is dropped within the first adaptation period");

    // Full, the seed adapts like a peer: the free-rider goes, the contributor stays.
    let (seed, _, _, dropped) = audited_seed(Policy::LayerP2P, 70, |_| {});
    assert!(dropped.is_some_and(|t| t <= Time::from_secs(61)), "bad dropped at {dropped:?}");
    assert_eq!(seed.neighbour_addrs().collect::<Vec<_>>(), vec![addr(1)]);
}

/// What `seed` sends within a second of ingesting 50 new LCs at `at` (a round falls
/// in that second).
fn after_ingest(seed: &mut Peer, at: u64) -> Vec<Transmit> {
    let now = Time::from_secs(at);
    for s in 0..50 {
        seed.push_lc(now, lc(1, 1000 + s, MediaTime::from_secs_f64(20.0))).expect("fits");
    }
    run_timers(seed, now, now + Duration::from_secs(1))
}

/// Destinations of the LC data in `out`, in order.
fn data_to(out: &[Transmit]) -> Vec<SocketAddr> {
    out.iter().filter(|t| matches!(t.packet.messages[0], Message::Data(_))).map(|t| t.dst).collect()
}

#[test]
fn auditing_seed_pushes_each_new_lc_once_to_a_contributor() {
    // At 28 s, before the first adaptation can drop `bad`: its newcomer's credit has
    // decayed to about a twentieth of what `good` returns.
    let (mut seed, _, _, _) = audited_seed(Policy::LayerP2P, 28, |_| {});
    let to = data_to(&after_ingest(&mut seed, 28));
    assert_eq!(to.len(), 50, "every new LC once, unrequested");
    let to_good = to.iter().filter(|&&a| a == addr(1)).count();
    assert!(to_good >= 40, "pushes go with weight d(seed,k): {to_good} of 50 to the neighbour that gave back");
    assert_eq!(seed.stats().lcs_pushed, 50);

    let (mut seed, _, _, _) = audited_seed(Policy::LayerP2P, 28, |c| c.incentive.seed_push = false);
    assert!(data_to(&after_ingest(&mut seed, 28)).is_empty(), "seed_push off: nothing unrequested");
}

#[test]
fn signing_seed_pushes_an_lc_only_after_its_manifest() {
    let key = layerp2p_engine::integrity::ContentAuth::signing_key([5; 32]);
    let (mut seed, _, _, _) =
        audited_seed(Policy::LayerP2P, 20, |c| c.content_auth = layerp2p_engine::integrity::ContentAuth::Sign(key));
    let out = after_ingest(&mut seed, 20);
    assert_eq!(data_to(&out).len(), 50, "every new LC pushed once it was signed");
    // An LC sent ahead of its manifest would be dropped unverified: the manifest goes first.
    let first_manifest = out.iter().position(|t| matches!(t.packet.messages[0], Message::Manifest(_)));
    let first_data = out.iter().position(|t| matches!(t.packet.messages[0], Message::Data(_)));
    assert!(first_manifest.expect("a manifest") < first_data.expect("data"), "{out:?}");
}

#[test]
fn seed_without_tit_for_tat_or_audit_asks_nothing_and_keeps_everyone() {
    for (policy, audit) in [(Policy::SingleLayer, true), (Policy::LayerP2P, false)] {
        let (seed, asked_good, asked_bad, dropped) = audited_seed(policy, 70, |c| c.incentive.seed_audit = audit);
        assert!(
            asked_good.is_empty() && asked_bad.is_empty(),
            "{policy:?} audit {audit}: asked {asked_good:?} {asked_bad:?}"
        );
        assert_eq!((seed.neighbour_count(), dropped), (2, None), "{policy:?} audit {audit}");
    }
}

/// The Pongs in `out`: to whom, with what one-way delay.
fn pongs(out: &[Transmit]) -> Vec<(SocketAddr, u64)> {
    let pong = |m: &Message| if let Message::Pong { one_way } = m { Some(*one_way) } else { None };
    out.iter().flat_map(|t| t.packet.messages.iter().filter_map(pong).map(|e| (t.dst, e))).collect()
}

#[test]
fn only_a_measuring_peer_pings_and_only_neighbours_get_a_pong() {
    let (mut p, nb) = playing_with_one_neighbour();
    let out = run_timers(&mut p, Time::ZERO, Time::from_secs(3));
    let pings = out.iter().flat_map(|t| &t.packet.messages).filter(|m| matches!(m, Message::Ping { .. }));
    assert_eq!(pings.count(), 0, "a declared upload needs no pings");
    input(&mut p, Time::from_secs(3), nb, vec![Message::Ping { sent_at: 77 }]);
    input(&mut p, Time::from_secs(3), addr(40), vec![Message::Ping { sent_at: 78 }]);
    // At once, with our clock at arrival less the sender's at sending.
    let answered = pongs(&drain(&mut p, Time::from_secs(3)));
    assert_eq!(answered, vec![(nb, 3_000_000 - 77)], "a stranger's Ping is not answered");

    let mut cfg = config(Policy::LayerP2P, 500);
    cfg.upload_auto = true;
    let mut measuring = Peer::new(cfg, 7, Time::ZERO).expect("valid");
    connect(&mut measuring, Time::ZERO, nb);
    let out = run_timers(&mut measuring, Time::ZERO, Time::from_secs(3));
    let has = |t: &Transmit, what: fn(&Message) -> bool| t.packet.messages.iter().any(what);
    let pinged: Vec<&Transmit> = out.iter().filter(|t| has(t, |m| matches!(m, Message::Ping { .. }))).collect();
    assert!(pinged.len() >= 2 && pinged.iter().all(|t| t.dst == nb), "a Ping to the neighbour each round");
    // Alone, ahead of the round's map: it measures the queue before the round's burst.
    assert!(pinged.iter().all(|t| t.packet.messages.len() == 1), "a Ping in its own datagram");
    let to_nb: Vec<&Transmit> = out.iter().filter(|t| t.dst == nb).collect();
    for (i, _) in to_nb.iter().enumerate().filter(|(_, t)| has(t, |m| matches!(m, Message::Ping { .. }))) {
        let next = to_nb.get(i + 1).expect("the round's map follows its Ping");
        assert!(has(next, |m| matches!(m, Message::BufferMap(_))), "the Ping goes just before the map");
    }
}

/// d(seed,k) of neighbours `addr(1..=3)` after 20 s in which the seed ingests 20 LCs
/// a second and every neighbour answers its audit; LCs pushed to `addr(1)` then show
/// up in every neighbour's map (it forwards them), those pushed to the others only in
/// their own.
fn rates_after_pushes(spread_credit: bool) -> [u32; 3] {
    let addrs = [addr(1), addr(2), addr(3)];
    let mut cfg = PeerConfig::seed(Policy::LayerP2P, LayerPlan::prototype(), Kbps(2000));
    cfg.incentive.seed_spread_credit = spread_credit;
    let mut seed = Peer::new(cfg, 9, Time::ZERO).expect("valid");
    for a in addrs {
        connect(&mut seed, Time::ZERO, a);
    }
    drain(&mut seed, Time::ZERO);
    // Each neighbour's map: all of 0..400 of every layer, plus base LCs pushed since.
    let mut maps: Vec<BufferMap> = (0..3)
        .map(|_| match full_map(3, 400, MediaTime(0)) {
            Message::BufferMap(m) => m.map,
            _ => unreachable!("a buffer map"),
        })
        .collect();
    let (mut next, mut now) = (400u32, Time::ZERO);
    while now < Time::from_secs(20) {
        now = now + Duration::from_millis(500);
        for _ in 0..10 {
            seed.push_lc(now, lc(1, next, MediaTime(u64::from(next) * 1000))).expect("fits");
            next += 1;
        }
        for (a, map) in addrs.iter().zip(&maps) {
            let head = MediaTime(u64::from(next) * 1000);
            let m = BufferMapMsg { head_time: head, sent_at: 1, echo: 0, echo_delay: 0, map: map.clone() };
            input(&mut seed, now, *a, vec![Message::BufferMap(m)]);
        }
        seed.handle_timeout(now);
        for t in drain(&mut seed, now) {
            let Some(k) = addrs.iter().position(|&a| a == t.dst) else { continue };
            for m in &t.packet.messages {
                match m {
                    Message::Request { ids, .. } => {
                        let answers = ids.iter().map(|id| Message::Data(lc(id.layer.get(), id.seq.0, MediaTime(0))));
                        input(&mut seed, now, t.dst, answers.collect());
                    }
                    Message::Data(pushed) => {
                        let to = if k == 0 { 0..3 } else { k..k + 1 };
                        for map in &mut maps[to] {
                            let w = map.layer_mut(pushed.header.id.layer).expect("layer");
                            w.insert(pushed.header.id.seq).expect("in window");
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    addrs.map(|a| seed.download_rate_from(&a).expect("neighbour").0)
}

#[test]
fn seed_credits_the_neighbour_whose_pushed_lcs_spread() {
    // Each answers one audit LC a round (~10 kbps); what `addr(1)` forwards counts too.
    let [forwarder, b, c] = rates_after_pushes(true);
    assert!(forwarder > 3 * b.max(c), "forwarder {forwarder} kbps, others {b} and {c}");
    // Without the credit the audit alone rates them alike.
    let [forwarder, b, c] = rates_after_pushes(false);
    assert!(forwarder < 2 * b.min(c), "forwarder {forwarder} kbps, others {b} and {c}");
}

/// What a LayerP2P peer with spare upload sends, per layer, to a neighbour that
/// served what it asked and to one that served nothing, when both then ask for all
/// three layers of the 40 LCs it holds of each.
fn served_by_layer(window: Option<Duration>) -> [[usize; 3]; 2] {
    let mut cfg = config(Policy::LayerP2P, 5000);
    cfg.startup = Duration::ZERO;
    cfg.incentive.upper_layers_window = window;
    let mut p = Peer::new(cfg, 4, Time::ZERO).expect("valid");
    for s in 0..40 {
        for l in 1..=3 {
            p.push_lc(Time::ZERO, lc(l, s, MediaTime(s as u64 * 1000))).expect("fits");
        }
    }
    let (server, taker) = (addr(1), addr(2));
    for n in [server, taker] {
        connect(&mut p, Time::ZERO, n);
    }
    drain(&mut p, Time::ZERO);
    // Five rounds in which both hold LCs we lack: we ask each for some;
    // `server` sends what it is asked, `taker` nothing.
    let mut now = Time::ZERO;
    for round in 0..5u32 {
        for n in [server, taker] {
            input(&mut p, now, n, vec![full_map(3, 40 + 20 * (round + 1), MediaTime(0))]);
        }
        let out = run_timers(&mut p, now, now + Duration::from_millis(1000));
        now = now + Duration::from_millis(1001);
        for id in requests(&out, server) {
            input(
                &mut p,
                now,
                server,
                vec![Message::Data(lc(id.layer.get(), id.seq.0, MediaTime(id.seq.0 as u64 * 1000)))],
            );
        }
    }
    let all = || (1..=3).flat_map(|l| (0..40).map(move |s| LcId { layer: layer(l), seq: Seq(s) })).collect();
    for n in [server, taker] {
        input(&mut p, now, n, vec![Message::Request { ttl_ms: 900, ids: all() }]);
    }
    let out = run_timers(&mut p, now, now + Duration::from_millis(900));
    [server, taker].map(|to| {
        let mut by_layer = [0; 3];
        for t in out.iter().filter(|t| t.dst == to) {
            for m in &t.packet.messages {
                if let Message::Data(lc) = m {
                    by_layer[lc.header.id.layer.index()] += 1;
                }
            }
        }
        by_layer
    })
}

#[test]
fn only_a_neighbour_that_serves_us_gets_layers_above_the_base() {
    let [server, taker] = served_by_layer(Some(Duration::from_secs(10)));
    assert_eq!(server, [40, 40, 40], "the server asked for everything and upload was spare");
    assert_eq!(taker, [40, 0, 0], "a neighbour that served none of our requests gets the base layer only");
    // Without the rule the spare upload goes to whoever asks.
    let [_, taker] = served_by_layer(None);
    assert_eq!(taker, [40, 40, 40]);
}

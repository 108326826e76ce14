//! The latency histograms the core records, checked on a small in-memory swarm:
//! they fill, respect the protocol's bounds, and are as deterministic as the core.

use layerp2p_engine::Policy;
use layerp2p_engine::metrics::Latencies;
use layerp2p_engine::sim::Swarm;
use layerp2p_engine::sim::scenario::prototype;
use layerp2p_engine::swarm::Mix;
use std::time::Duration;

fn run(seed: u64) -> (Latencies, u64) {
    let cfg =
        prototype(Policy::LayerP2P, &Mix::overloaded(), 20, Duration::from_secs(10), Duration::from_secs(60), seed);
    let report = Swarm::new(cfg).expect("valid scenario").run();
    let mut all = Latencies::default();
    let mut lcs_up = 0;
    for p in &report.peers {
        all.merge(&p.stats.latency);
        lcs_up += p.stats.lcs_up;
    }
    (all, lcs_up)
}

#[test]
fn latencies_are_recorded_within_protocol_bounds_and_deterministic() {
    let (l, lcs_up) = run(4);
    let (send, delivery) = (l.request_to_send.summary(), l.delivery.summary());
    eprintln!("request->send {send}\ndelivery {delivery}");
    // Every LC a viewer sent was a served request, so each has a sample.
    assert_eq!(send.count, lcs_up);
    assert!(delivery.count > 0);
    // A request is served within its ttl (at most one round, 1 s) or dropped.
    assert!(send.max_ms <= 1_000.0 * 1.01, "{send}");
    // An LC cannot arrive before it was requested, and most arrive within a round.
    assert!(delivery.p50_ms > 0.0 && delivery.p50_ms < 1_000.0, "{delivery}");
    let (again, _) = run(4);
    assert_eq!(again.request_to_send.summary(), send);
    assert_eq!(again.delivery.summary(), delivery);
}

#[test]
fn a_viewer_configured_not_to_record_latency_records_none() {
    let mut cfg =
        prototype(Policy::LayerP2P, &Mix::overloaded(), 20, Duration::from_secs(10), Duration::from_secs(30), 4);
    cfg.peer.record_latency = false;
    let report = Swarm::new(cfg).expect("valid scenario").run();
    let viewers: Vec<_> = report.peers.iter().collect();
    assert!(viewers.iter().map(|p| p.stats.lcs_down).sum::<u64>() > 0, "the viewers exchanged LCs");
    for p in viewers {
        let l = &p.stats.latency;
        assert_eq!((l.request_to_send.count(), l.delivery.count()), (0, 0));
        assert_eq!(l.request_to_send.heap_bytes() + l.delivery.heap_bytes(), 0);
    }
}

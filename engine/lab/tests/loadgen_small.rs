//! The load generator at small scale against its built-in target: 200 synthetic
//! peers for 16 s over loopback UDP. Proves that the target delivers to the peers and
//! that every peer plays the stream (all 200 counted, none silent, each at least half
//! of the base layer and 98 % of them at least 90 %), so the figures `layerp2p
//! loadgen` prints mean something. The same for 300 lean viewers.

use layerp2p_lab::loadgen::{Setup, Viewer, run};
use std::time::Duration;

#[test]
fn two_hundred_peers_play_the_base_layer_from_a_local_seed() {
    // Long enough for 10 s of counted playback after the 2 s ramp and 3 s startup.
    let setup = Setup::small(200, Duration::from_secs(16));
    let cfg = setup.config().expect("valid setup");
    let mut lines = 0;
    let report = run(cfg, &mut |s| {
        lines += 1;
        eprintln!("{}", s.line());
    })
    .expect("load test runs");
    eprintln!("{}", report.table());
    assert!(lines >= 15, "a live line each second, got {lines}");
    assert_eq!(report.peers_up, 200);
    assert!(report.target.lcs_received > 0, "the target delivered nothing");
    assert!(report.target.lcs_sent.is_some_and(|n| n >= report.target.lcs_received));
    // Every peer joined by 2 s and is counted from 3 s after: 11 s or more each.
    let counted: usize = report.swarm.classes.iter().map(|c| c.peers).sum();
    assert_eq!(counted, 200, "only {counted} peers were counted");
    assert_eq!(report.silent_peers, 0, "peers that played nothing");
    // Every single peer played, and played most of the base layer.
    let worst = report.swarm.peers.iter().map(|p| p.stats.layers[0].ratio().unwrap_or(0.0)).fold(1.0, f64::min);
    assert!(worst >= 0.5, "a peer played only {:.0}% of the base layer", worst * 100.0);
    let share = report.share_with_base_layer(0.9);
    assert!(share >= 0.98, "only {:.1}% of peers played >= 90% of the base layer", share * 100.0);
    assert!(report.target.cpu_percent.is_some_and(|c| c.mean > 0.0), "target CPU not measured");
    assert!(report.latency.count > 1000, "request->LC latency histogram nearly empty: {}", report.latency);
    assert!(report.latency.p50_ms > 0.0 && report.latency.p50_ms <= report.latency.max_ms);
    assert_eq!(report.loss.malformed, 0);
    assert!(report.loss.socket_drops.is_some(), "socket drops not read");
    assert!(report.loss.loss_ratio < 0.2, "loss {:.1}%", report.loss.loss_ratio * 100.0);
}

#[test]
fn three_hundred_lean_viewers_play_every_layer_from_a_local_seed() {
    // 10 s of counted playback after the ramp and startup, as above, plus the round
    // by which a lean viewer's playback trails.
    let mut setup = Setup::small(300, Duration::from_secs(17));
    setup.viewer = Viewer::Lean;
    setup.n_min = 1;
    setup.n_max = 1;
    setup.adaptation = Duration::from_secs(3600);
    let cfg = setup.config().expect("valid setup");
    let report = run(cfg, &mut |s| eprintln!("{}", s.line())).expect("load test runs");
    eprintln!("{}", report.table());
    assert_eq!(report.peers_up, 300);
    // Every viewer joined through the tracker and holds the seed as its neighbour.
    assert_eq!(report.peers_on_target, 300, "viewers the seed does not serve");
    assert_eq!(report.peers_total.neighbours_added, 300);
    let sent = report.target.lcs_sent.expect("built-in seed counters");
    assert!(report.target.lcs_received > 100_000 && sent >= report.target.lcs_received, "{sent} sent");
    assert!(report.target.requests_received.is_some_and(|r| r > 0), "no request reached the seed");
    // Joined by 2 s, counted from 5 s at the latest: every one counted and playing.
    let counted: usize = report.swarm.classes.iter().map(|c| c.peers).sum();
    assert_eq!(counted, 300, "only {counted} viewers were counted");
    assert_eq!(report.silent_peers, 0, "viewers that played nothing");
    let base = &report.peers_total.layers[0];
    assert!(base.played > 100_000 && base.played_bytes > 0, "base layer: {base:?}");
    let share = report.share_with_base_layer(0.9);
    assert!(share >= 0.98, "only {:.1}% of viewers played >= 90% of the base layer", share * 100.0);
    // A full-rate load test: the built-in seed serves every layer to viewers that
    // upload nothing (without that, decision 0018 held them to about a tenth).
    for (l, layer) in report.peers_total.layers.iter().enumerate() {
        let ratio = layer.played as f64 / (layer.played + layer.missed).max(1) as f64;
        assert!(ratio >= 0.9, "layer {} played {:.1}%", l + 1, ratio * 100.0);
    }
    assert!(report.latency.count > 10_000, "request->LC latency: {}", report.latency);
    assert_eq!(report.loss.malformed, 0);
    assert!(report.loadgen_cpu_us_per_lc.is_some_and(|us| us > 0.0), "CPU per LC not reported");
}

//! The load generator at small scale against its built-in target: 200 synthetic
//! peers for 16 s over loopback UDP. Proves that the target delivers to the peers and
//! that the peers play the stream, so the figures `layerp2p loadgen` prints mean
//! something.

use layerp2p_bench::loadgen::{run, Setup};
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
    let counted: usize = report.swarm.classes.iter().map(|c| c.peers).sum();
    assert!(counted >= 180, "only {counted} peers counted playback");
    let share = report.share_with_base_layer(0.9);
    assert!(share >= 0.9, "only {:.0}% of peers played >= 90% of the base layer", share * 100.0);
    assert!(report.target.cpu_percent.is_some_and(|c| c.mean > 0.0), "target CPU not measured");
    assert!(report.latency.count > 1000, "request->LC latency histogram nearly empty: {}", report.latency);
    assert!(report.latency.p50_ms > 0.0 && report.latency.p50_ms <= report.latency.max_ms);
    assert_eq!(report.loss.malformed, 0);
    assert!(report.loss.socket_drops.is_some(), "socket drops not read");
    assert!(report.loss.loss_ratio < 0.2, "loss {:.1}%", report.loss.loss_ratio * 100.0);
}

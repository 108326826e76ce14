//! Capped downlinks in the simulator (`SwarmConfig::download`, `sim --download-kbps`):
//! no viewer receives more than its downlink carries, what overflows the link's
//! buffer is lost (and asked for again), and when the downlink rather than upload is
//! short, every viewer asks for its base layer first and keeps it.

use layerp2p_codec::Kbps;
use layerp2p_engine::sim::Swarm;
use layerp2p_engine::sim::scenario::prototype;
use layerp2p_engine::swarm::Mix;
use layerp2p_engine::swarm::report::SwarmReport;
use layerp2p_engine::{Policy, Time};
use std::time::Duration;

const PEERS: usize = 30;
const SECONDS: u64 = 150;

/// The underloaded prototype swarm (620 kbps video, uploads 400 and 1000 kbps), every
/// viewer's downlink capped at `download`; the report, the LCs lost at downlinks, and
/// the viewers' summed seconds in the swarm.
fn run(download: Option<Kbps>) -> (SwarmReport, u64, f64) {
    let mut cfg = prototype(
        Policy::LayerP2P,
        &Mix::underloaded(),
        PEERS,
        Duration::from_secs(10),
        Duration::from_secs(SECONDS),
        4,
    );
    cfg.download = download;
    let end = Time::from_secs(SECONDS);
    let stay: f64 = cfg.peers.iter().map(|p| end.since(p.join).as_secs_f64()).sum();
    let mut swarm = Swarm::new(cfg).expect("valid scenario");
    swarm.run_until(end);
    let drops = swarm.downlink_drops;
    let report = swarm.finish();
    eprintln!("download {download:?}: {drops} LCs dropped at downlinks\n{}", report.table());
    (report, drops, stay)
}

fn bits_received(r: &SwarmReport) -> f64 {
    r.peers.iter().map(|p| p.stats.bytes_down as f64 * 8.0).sum()
}

#[test]
fn a_capped_downlink_bounds_what_a_viewer_receives_and_the_base_layer_goes_first() {
    let cap = Kbps(400);
    let (free, free_drops, _) = run(None);
    let (capped, drops, stay) = run(Some(cap));

    // No viewer gets more over its downlink than the link carries while it is there,
    // and demand (620 kbps each, supply to spare) keeps the links busy.
    let capacity = f64::from(cap.0) * 1000.0 * stay;
    let received = bits_received(&capped);
    assert!(received <= capacity, "viewers received {received:.0} bits through {capacity:.0} bits of downlink");
    assert!(received >= 0.75 * capacity, "downlinks mostly idle: {received:.0} of {capacity:.0} bits");
    assert!(drops > 0, "asking for 620 kbps through 400 kbps must overflow the buffers");
    assert_eq!(free_drops, 0, "unconstrained downlinks drop nothing");

    for name in ["residential", "institutional"] {
        let (f, c) = (free.class(name).expect("class"), capped.class(name).expect("class"));
        assert!(c.rate_mean < f.rate_mean - 100.0, "{name}: {} kbps capped against {} free", c.rate_mean, f.rate_mean);
        assert!(c.rate_mean <= f64::from(cap.0), "{name} plays {} kbps through a {} kbps downlink", c.rate_mean, cap.0);
    }
    // Every viewer's threshold layer counts its downlink: 400 kbps carries the base
    // layer (290) but not two layers (520), so l_n = 1 for institutional peers too,
    // whose upload alone (1000 kbps) would make every layer a regular request. Both
    // classes ask for the base layer first: it survives the short downlink; layer 3,
    // asked last, takes the loss.
    for name in ["residential", "institutional"] {
        let c = capped.class(name).expect("class");
        assert!(c.alpha[0] > 0.8, "{name}: base layer {:.3} through the capped downlink", c.alpha[0]);
        assert!(c.alpha[0] > c.alpha[2] + 0.3, "{name}: base {:.3} vs layer 3 {:.3}", c.alpha[0], c.alpha[2]);
    }
}

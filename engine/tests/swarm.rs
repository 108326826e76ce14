//! The protocol core proven in an in-memory swarm (virtual time, seeded): the
//! outcomes DESIGN.md §11 promises, at a scale that runs in seconds.

use layerp2p_engine::Policy;
use layerp2p_engine::sim::Swarm;
use layerp2p_engine::sim::scenario::prototype;
use layerp2p_engine::swarm::Mix;
use layerp2p_engine::swarm::report::SwarmReport;
use std::time::Duration;

const PEERS: usize = 50;

fn run(policy: Policy, mix: &Mix, seed: u64) -> SwarmReport {
    let cfg = prototype(policy, mix, PEERS, Duration::from_secs(30), Duration::from_secs(240), seed);
    let report = Swarm::new(cfg).expect("valid scenario").run();
    eprintln!("{policy} seed {seed}\n{}", report.table());
    report
}

fn class<'a>(r: &'a SwarmReport, name: &str) -> &'a layerp2p_engine::swarm::report::ClassReport {
    r.class(name).unwrap_or_else(|| panic!("class {name} missing"))
}

#[test]
fn underloaded_every_class_gets_every_layer() {
    let r = run(Policy::LayerP2P, &Mix::underloaded(), 1);
    for c in &r.classes {
        assert!(c.peers > 0);
        for (l, a) in c.alpha.iter().enumerate() {
            assert!(*a >= 0.95, "{} layer {} ratio {a:.3}", c.name, l + 1);
        }
    }
}

#[test]
fn overloaded_layerp2p_rewards_upload_and_protects_base_layer() {
    let r = run(Policy::LayerP2P, &Mix::overloaded(), 2);
    let inst = class(&r, "institutional");
    let res = class(&r, "residential");
    let free = class(&r, "free-rider");
    assert!(inst.rate_mean > res.rate_mean, "700 kbps class {} <= 300 kbps class {}", inst.rate_mean, res.rate_mean);
    assert!(res.rate_mean > free.rate_mean, "300 kbps class {} <= free-riders {}", res.rate_mean, free.rate_mean);
    assert!(free.rate_mean < 290.0, "free-riders play {} kbps, not below the base layer", free.rate_mean);
    assert!(res.alpha[0] > res.alpha[2], "residential base layer {:.3} <= layer 3 {:.3}", res.alpha[0], res.alpha[2]);
}

#[test]
fn overloaded_single_layer_treats_everyone_alike() {
    let r = run(Policy::SingleLayer, &Mix::overloaded(), 2);
    let means: Vec<f64> = r.classes.iter().map(|c| c.rate_mean).collect();
    let (lo, hi) = means.iter().fold((f64::MAX, 0.0f64), |(lo, hi), &m| (lo.min(m), hi.max(m)));
    assert!(lo > 0.0);
    assert!(hi / lo < 1.2, "class rates differ too much under single-layer: {means:?}");
}

#[test]
fn same_seed_same_result() {
    let a = run(Policy::LayerP2P, &Mix::overloaded(), 7);
    let b = run(Policy::LayerP2P, &Mix::overloaded(), 7);
    let rates = |r: &SwarmReport| {
        r.peers.iter().map(|p| (p.stats.bytes_up, p.stats.bytes_down, p.stats.layers.clone())).collect::<Vec<_>>()
    };
    assert_eq!(rates(&a), rates(&b));
    assert_eq!(a.lc_deliveries, b.lc_deliveries);
}

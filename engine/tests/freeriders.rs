//! Free-rider strategies in an overloaded swarm (resource index below 1): a viewer
//! that uploads nothing must play less than the base-layer rate whatever it tries —
//! rejoining under a new identity (whitewashing), opening many neighbour links,
//! advertising LCs it does not hold, or uploading to the seed alone (to pass the
//! seed's audit). Contributors must not pay for it.

use layerp2p_codec::{Kbps, LayerPlan};
use layerp2p_engine::sim::SwarmConfig;
use layerp2p_engine::sim::faults::{FaultConfig, Strategy};
use layerp2p_engine::sim::scenario::prototype;
use layerp2p_engine::swarm::Mix;
use layerp2p_engine::swarm::PeerSpec;
use layerp2p_engine::swarm::report::SwarmReport;
use layerp2p_engine::{Policy, Time};
use std::time::Duration;

mod common;
use common::swarms::{class, members, own_class, run};

const PEERS: usize = 40;
const SECONDS: u64 = 180;
/// Scenario entries that play the strategy under test (all upload nothing).
const CHEATS: [usize; 4] = [5, 15, 25, 35];

fn overloaded(seed: u64) -> SwarmConfig {
    prototype(Policy::LayerP2P, &Mix::overloaded(), PEERS, Duration::from_secs(20), Duration::from_secs(SECONDS), seed)
}

/// Base-layer rate R(1) of the prototype video.
fn base_rate() -> f64 {
    LayerPlan::prototype().rates()[0].0 as f64
}

/// Playback rate of a class over all its members' counted time (incarnations of a
/// whitewasher add up).
fn class_rate(r: &SwarmReport, name: &str) -> f64 {
    let m = members(r, name);
    let bytes: u64 = m.iter().flat_map(|p| p.stats.layers.iter().map(|l| l.played_bytes)).sum();
    let seconds: f64 = m.iter().map(|p| p.seconds).sum();
    bytes as f64 * 8.0 / 1000.0 / seconds.max(1.0)
}

fn assert_cheats_lose(r: &SwarmReport, name: &str) {
    let cheat = class_rate(r, name);
    let honest_free = class_rate(r, "free-rider");
    eprintln!("{name}: {cheat:.0} kbps; plain free-riders {honest_free:.0} kbps; base layer {:.0} kbps", base_rate());
    assert!(cheat < base_rate(), "{name} plays {cheat:.0} kbps, not below the base layer {:.0}", base_rate());
    let res = class(r, "residential");
    assert!(cheat < res.rate_mean, "{name} ({cheat:.0}) beats the 300 kbps contributors ({:.0})", res.rate_mean);
    assert!(res.alpha[0] >= 0.9, "contributors' base layer fell to {:.3}", res.alpha[0]);
}

#[test]
fn whitewashing_free_rider_plays_less_than_the_base_layer() {
    let mut cfg = overloaded(21);
    own_class(&mut cfg, &CHEATS, "whitewasher", Kbps(0));
    // Each whitewasher leaves every 30 s and comes straight back with a new identity
    // and address (a new scenario entry of the same class).
    let lifetime = 30;
    let class = cfg.classes.len() - 1;
    for &c in &CHEATS {
        let first = cfg.peers[c].join;
        cfg.peers[c].leave = Some(first + Duration::from_secs(lifetime));
        let mut t = first + Duration::from_secs(lifetime);
        while t < Time::from_secs(SECONDS) {
            let leave = Some(t + Duration::from_secs(lifetime));
            cfg.peers.push(PeerSpec { class, upload: Kbps(0), join: t, leave });
            t = t + Duration::from_secs(lifetime);
        }
    }
    let (r, _) = run(cfg, FaultConfig::default());
    assert!(members(&r, "whitewasher").len() >= CHEATS.len() * 5, "whitewashers did not rejoin");
    assert_cheats_lose(&r, "whitewasher");
}

/// The overloaded swarm of `seed` with the `CHEATS` as class `name` (uploading
/// `upload`) playing `strategy`; asserts they lose.
fn assert_strategy_loses(seed: u64, name: &str, upload: Kbps, strategy: Strategy) {
    let mut cfg = overloaded(seed);
    own_class(&mut cfg, &CHEATS, name, upload);
    let hostile = CHEATS.iter().map(|&c| (c, strategy.clone())).collect();
    let (r, _) = run(cfg, FaultConfig { hostile, ..FaultConfig::default() });
    assert_cheats_lose(&r, name);
}

#[test]
fn free_rider_with_many_links_plays_less_than_the_base_layer() {
    assert_strategy_loses(22, "many-links", Kbps(0), Strategy::ManyLinks { links: PEERS });
}

#[test]
fn free_rider_lying_in_buffer_maps_plays_less_than_the_base_layer() {
    assert_strategy_loses(23, "liar", Kbps(0), Strategy::LyingMaps);
}

#[test]
fn free_rider_serving_only_the_seed_plays_less_than_the_base_layer() {
    // It answers the seed's audit (one LC a round; 100 kbps is plenty) so the seed
    // counts it as a contributor, and uploads nothing to anyone else.
    assert_strategy_loses(24, "seed-only", Kbps(100), Strategy::SeedOnly);
}

//! Content pollution: hostile viewers forge the LCs they send. With signed manifests
//! no honest viewer plays or forwards a forged LC, and every forger is dropped; without
//! them the same attack reaches the screen (so the test can fail).

use layerp2p_codec::Kbps;
use layerp2p_engine::Policy;
use layerp2p_engine::integrity::ContentAuth;
use layerp2p_engine::sim::faults::{FaultConfig, FaultStats, Strategy};
use layerp2p_engine::sim::scenario::prototype;
use layerp2p_engine::swarm::Mix;
use layerp2p_engine::swarm::report::SwarmReport;
use std::time::Duration;

mod common;
use common::swarms::{class, members, own_class, run};

const PEERS: usize = 24;
const FORGERS: [usize; 3] = [3, 11, 19];

fn attacked(auth: ContentAuth) -> (SwarmReport, FaultStats) {
    let mut cfg =
        prototype(Policy::LayerP2P, &Mix::underloaded(), PEERS, Duration::from_secs(20), Duration::from_secs(120), 5);
    cfg.peer.content_auth = auth;
    cfg.peer.emit_playback = true;
    // Generous uploaders, so honest peers want to fetch from them.
    own_class(&mut cfg, &FORGERS, "forger", Kbps(1500));
    let hostile = FORGERS.iter().map(|&s| (s, Strategy::Forge)).collect();
    run(cfg, FaultConfig { hostile, ..FaultConfig::default() })
}

#[test]
fn forged_lcs_are_never_played_or_forwarded_and_forgers_are_dropped() {
    let (r, f) = attacked(ContentAuth::Sign(ContentAuth::signing_key([42; 32])));
    eprintln!("{f:?}");
    assert!(f.forged_sent > 0, "the forgers sent nothing: no attack took place");
    assert_eq!(f.forged_played, 0, "an honest viewer played a forged LC");
    assert_eq!(f.forged_forwarded, 0, "an honest node forwarded a forged LC");
    let honest: Vec<_> = ["residential", "institutional"].iter().flat_map(|c| members(&r, c)).collect();
    let caught: u64 = honest.iter().map(|p| p.stats.forged).sum();
    let bans: u64 = honest.iter().map(|p| p.stats.neighbours_banned).sum();
    assert!(caught > 0 && bans > 0, "forgeries caught {caught}, bans {bans}");
    // Each honest viewer takes at most a burst from a forger before banning it, so
    // the forgers' upload stays a small fraction of an honest uploader's.
    let forged_up: u64 = members(&r, "forger").iter().map(|p| p.stats.lcs_up).sum::<u64>() / FORGERS.len() as u64;
    let honest_up = honest.iter().map(|p| p.stats.lcs_up).sum::<u64>() / honest.len() as u64;
    assert!(forged_up * 10 < honest_up, "a forger sent {forged_up} LCs, an honest viewer {honest_up}");
    // Manifests cost little next to the data they vouch for.
    let overhead = f.manifest_bytes as f64 / f.data_bytes as f64;
    let unverified: u64 = honest.iter().map(|p| p.stats.unverified).sum();
    let received: u64 = honest.iter().map(|p| p.stats.lcs_down).sum();
    eprintln!("manifest overhead {:.2} %, LCs dropped unverified {unverified} of {received}", overhead * 100.0);
    assert!(overhead < 0.05, "manifests cost {:.1} % of the data bytes", overhead * 100.0);
    // And the honest swarm is still served.
    for name in ["residential", "institutional"] {
        let c = class(&r, name);
        assert!(c.alpha[0] >= 0.95, "{name} base layer {:.3} under attack", c.alpha[0]);
    }
}

#[test]
fn manifests_cost_no_playback_under_two_percent_loss() {
    let mut cfg =
        prototype(Policy::LayerP2P, &Mix::underloaded(), PEERS, Duration::from_secs(20), Duration::from_secs(120), 6);
    cfg.peer.content_auth = ContentAuth::Sign(ContentAuth::signing_key([43; 32]));
    let (r, f) = run(cfg, FaultConfig { loss: 0.02, ..FaultConfig::default() });
    assert!(f.lost > 0 && f.manifest_bytes > 0);
    let unverified: u64 = r.peers.iter().map(|p| p.stats.unverified).sum();
    let received: u64 = r.peers.iter().map(|p| p.stats.lcs_down).sum();
    eprintln!("LCs dropped unverified under loss: {unverified} of {received}");
    assert!(unverified * 100 < received, "lost manifests left {unverified} of {received} LCs unverifiable");
    for c in &r.classes {
        assert!(c.alpha[0] >= 0.95, "{}: base layer {:.3} with manifests under loss", c.name, c.alpha[0]);
    }
}

#[test]
fn without_manifests_the_same_attack_reaches_playback() {
    let (_, f) = attacked(ContentAuth::Off);
    assert!(f.forged_played > 0, "forgeries played without content checks: {f:?}");
}

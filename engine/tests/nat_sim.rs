//! NATs in the simulator at a size CI runs in seconds: Table II's overloaded mix over
//! a few minutes of the generated trace's evening, 60 % of the viewers behind home
//! NATs (cone, port-restricted, symmetric), the same run with NAT traversal on and
//! off. The NATs are a property of the simulated network; the peers run the same core.

use layerp2p_engine::sim::Swarm;
use layerp2p_engine::sim::nat::{NatConfig, NatShares, nat_groups};
use layerp2p_engine::sim::scenario::{ClassDraw, trace_driven};
use layerp2p_engine::sim::trace::{DayTraceConfig, generate_day};
use layerp2p_engine::swarm::mix::Load;
use layerp2p_engine::swarm::{ClassReport, Mix};
use layerp2p_engine::{Policy, Time};
use std::time::Duration;

const FROM_HOUR: u64 = 15;
const SECONDS: u64 = 150;
const SCALE: f64 = 0.03;

/// The groups of one run: free-riders, low and high contributors, each open then NAT'd.
fn run(traversal: bool) -> Vec<ClassReport> {
    let day = generate_day(&DayTraceConfig { seed: 5, hours: FROM_HOUR as f64 + 1.0, ..DayTraceConfig::default() });
    let from = Time::from_secs(FROM_HOUR * 3600);
    let trace = day.window(from, from + Duration::from_secs(SECONDS), Duration::from_secs(20)).thin(SCALE, 5);
    let mix = Mix::table_two(Load::Overloaded);
    let mut cfg = trace_driven(
        Policy::LayerP2P,
        &mix,
        &trace,
        ClassDraw::Sessions,
        Duration::from_secs(SECONDS),
        Duration::ZERO,
        5,
    );
    cfg.peer.nat_traversal = traversal;
    let shares: NatShares = "cone=0.25,port=0.25,symmetric=0.1".parse().expect("shares");
    let swarm = Swarm::new(cfg).expect("valid scenario").with_nats(NatConfig { shares, ..NatConfig::default() });
    let report = swarm.run();
    let groups = nat_groups(&report, mix.classes.len(), 0.0);
    eprintln!("traversal {traversal}:\n{}", report.table_with_groups(&groups));
    groups
}

#[test]
fn with_traversal_natted_contributors_keep_their_layers() {
    let (on, off) = std::thread::scope(|s| {
        let on = s.spawn(|| run(true));
        let off = run(false);
        (on.join().expect("run with traversal"), off)
    });
    let natted_high = |g: &[ClassReport]| g[5].clone();
    let (high_on, high_off) = (natted_high(&on), natted_high(&off));
    assert!(high_on.peers >= 5, "{} NAT'd high contributors", high_on.peers);
    assert!(
        high_on.rate_mean > high_off.rate_mean + 40.0,
        "NAT'd high contributors: {:.0} kbps with traversal, {:.0} without",
        high_on.rate_mean,
        high_off.rate_mean
    );
    // With traversal they come close to the open high contributors (the symmetric
    // ones among them can reach only open peers).
    let open_high = &on[4];
    assert!(
        high_on.rate_mean > 0.85 * open_high.rate_mean,
        "NAT'd high contributors {:.0} kbps, open ones {:.0}",
        high_on.rate_mean,
        open_high.rate_mean
    );
}

//! Helpers for the simulator-driven tests with faults and hostile viewers.

use layerp2p_codec::Kbps;
use layerp2p_engine::Time;
use layerp2p_engine::sim::faults::{FaultConfig, FaultStats};
use layerp2p_engine::sim::{Swarm, SwarmConfig};
use layerp2p_engine::swarm::report::{ClassReport, SwarmReport};

/// Puts scenario entries `specs` in a class of their own, `name`, uploading `upload`.
pub fn own_class(cfg: &mut SwarmConfig, specs: &[usize], name: &str, upload: Kbps) {
    cfg.classes.push(name.to_string());
    let class = cfg.classes.len() - 1;
    for &s in specs {
        cfg.peers[s].class = class;
        cfg.peers[s].upload = upload;
    }
}

/// Runs `cfg` with `faults` to its end; the report and what the fault model saw.
pub fn run(cfg: SwarmConfig, faults: FaultConfig) -> (SwarmReport, FaultStats) {
    let end = Time(cfg.duration.as_micros() as u64);
    let mut swarm = Swarm::new(cfg).expect("valid scenario").with_faults(faults);
    swarm.run_until(end);
    let stats = swarm.fault_stats().cloned().unwrap_or_default();
    let report = swarm.finish();
    eprintln!("{}", report.table());
    (report, stats)
}

pub fn class<'a>(r: &'a SwarmReport, name: &str) -> &'a ClassReport {
    r.class(name).unwrap_or_else(|| panic!("class {name} missing"))
}

/// Peers of class `name` in the report, with their outcomes.
pub fn members<'a>(r: &'a SwarmReport, name: &str) -> Vec<&'a layerp2p_engine::swarm::report::PeerOutcome> {
    let c = r.classes.iter().position(|c| c.name == name).unwrap_or_else(|| panic!("class {name} missing"));
    r.peers.iter().filter(|p| p.class == c).collect()
}

/// Share of the base layer a viewer played in time.
pub fn base_ratio(p: &layerp2p_engine::swarm::report::PeerOutcome) -> f64 {
    let base = &p.stats.layers[0];
    base.played as f64 / (base.played + base.missed).max(1) as f64
}

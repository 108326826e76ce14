//! Faults and churn in the simulator, driving the real core: datagram loss,
//! duplication and reordering, 30 % of the viewers crashing at once, the tracker
//! restarting with no state, and the source pausing. Each test states the outcome it
//! promises (docs/SECURITY.md lists them).

use layerp2p_engine::sim::faults::{FaultConfig, FaultEvent, FaultStats};
use layerp2p_engine::sim::scenario::prototype;
use layerp2p_engine::sim::{Swarm, SwarmConfig};
use layerp2p_engine::swarm::Mix;
use layerp2p_engine::swarm::PeerSpec;
use layerp2p_engine::swarm::report::SwarmReport;
use layerp2p_engine::{Policy, Time};
use std::time::Duration;

mod common;
use common::swarms::{base_ratio, class, run};

const PEERS: usize = 30;
/// Most seconds the swarm may take, after a fault's effect reaches playback, to play
/// at least 95 % of the base layer again every second.
const RECOVERY_S: usize = 20;

fn scenario(mix: &Mix, seconds: u64, seed: u64) -> SwarmConfig {
    let mut cfg = prototype(Policy::LayerP2P, mix, PEERS, Duration::from_secs(20), Duration::from_secs(seconds), seed);
    cfg.peer.emit_playback = true;
    cfg
}

fn contributors_base(r: &SwarmReport) -> Vec<(String, f64)> {
    r.classes.iter().filter(|c| c.upload_kbps > 0.0).map(|c| (c.name.clone(), c.alpha[0])).collect()
}

/// The per-second base-layer ratio from `from` to `to`, for failure messages.
fn series(f: &FaultStats, from: usize, to: usize) -> String {
    (from..to).map(|s| f.base_ratio(s).map_or("-".into(), |r| format!("{s}:{:.2}", r))).collect::<Vec<_>>().join(" ")
}

/// Every datagram (signalling and data) is lost with probability 2 %; the protocol
/// has no retransmission, only the next round's rescheduling.
#[test]
fn contributors_keep_the_base_layer_under_two_percent_loss() {
    let (r, f) = run(scenario(&Mix::underloaded(), 150, 11), FaultConfig { loss: 0.02, ..FaultConfig::default() });
    assert!(f.lost as f64 > 0.015 * f.datagrams as f64, "loss was not injected: {} of {}", f.lost, f.datagrams);
    for (name, base) in contributors_base(&r) {
        assert!(base >= 0.95, "{name}: base layer {base:.3} under 2 % loss");
    }
}

#[test]
fn duplicated_and_reordered_datagrams_are_never_counted_twice() {
    let faults = FaultConfig { duplicate: 0.05, jitter: Duration::from_millis(40), ..FaultConfig::default() };
    let (r, f) = run(scenario(&Mix::underloaded(), 120, 12), faults);
    assert!(f.duplicated > 0);
    let dups: u64 = r.peers.iter().map(|p| p.stats.duplicates).sum();
    assert!(dups > 0, "duplicated LCs reached peers but none was recognised");
    assert_eq!(f.played_twice, 0, "an LC was played (or counted missed) twice");
    // Playback counts each LC of the stream at most once: played + missed never
    // exceeds the LCs the source produced during the peer's counted time.
    let lcs_per_s = 620.0 * 1000.0 / 8.0 / 1000.0; // the prototype video, >= 1 LC per 1000 bytes
    for p in &r.peers {
        let counted: u64 = p.stats.layers.iter().map(|l| l.played + l.missed).sum();
        assert!((counted as f64) <= lcs_per_s * (p.seconds + 1.0) * 1.5, "{counted} LCs counted in {:.0} s", p.seconds);
    }
    for (name, base) in contributors_base(&r) {
        assert!(base >= 0.95, "{name}: base layer {base:.3} with duplication and reordering");
    }
}

#[test]
fn swarm_recovers_after_thirty_percent_of_viewers_crash_at_once() {
    let leave_at = 80;
    let events = vec![(Time::from_secs(leave_at), FaultEvent::MassDeparture { fraction: 0.3 })];
    let mut swarm = Swarm::new(scenario(&Mix::underloaded(), 180, 13))
        .expect("valid")
        .with_faults(FaultConfig { events, ..FaultConfig::default() });
    swarm.run_until(Time::from_secs(leave_at) - Duration::from_millis(1));
    let lost_before = swarm.fault_stats().map_or(0, |f| f.neighbours_lost);
    swarm.run_until(Time::from_secs(leave_at + 10));
    let lost_after = swarm.fault_stats().map_or(0, |f| f.neighbours_lost);
    swarm.run_until(Time::from_secs(180));
    let f = swarm.fault_stats().cloned().unwrap_or_default();
    let r = swarm.finish();
    assert_eq!(f.departed, 9);
    // The crash cut real relationships: within 10 s the survivors noticed (by the 5 s
    // neighbour timeout) far more ends than adaptation alone makes (about 7 in 10 s).
    let cut = lost_after - lost_before;
    eprintln!("{cut} relationships ended in the 10 s after the crash");
    assert!(cut >= 60, "only {cut} relationships ended after the crash");
    let before = f.recovered_at(45, leave_at as usize, 0.95);
    assert_eq!(before, Some(45), "not steady before the departure: {}", series(&f, 45, 80));
    // LCs fetched before the crash play for another lag (30 s); holes, if any, show
    // from then on. The survivors must be back at >= 95 % within RECOVERY_S of the crash.
    let end = 180;
    let recovered = f.recovered_at(leave_at as usize, end, 0.95);
    eprintln!("recovered at {recovered:?}: {}", series(&f, 75, end));
    assert!(
        recovered.is_some_and(|s| s <= leave_at as usize + RECOVERY_S),
        "no recovery within {RECOVERY_S} s: {}",
        series(&f, 75, end)
    );
    assert!(class(&r, "institutional").alpha[0] >= 0.95);
}

/// Newcomers in the 30 s after a restart get lists of only the peers that refreshed
/// since (refresh period 30 s), so some start among other newcomers: they play less of
/// the base layer than they would otherwise, but no less than this.
const NEWCOMER_BASE: f64 = 0.85;

#[test]
fn tracker_restart_loses_no_one_and_newcomers_still_find_the_swarm() {
    let mut cfg = scenario(&Mix::underloaded(), 180, 14);
    // Ten newcomers arrive just after the tracker has forgotten everyone.
    for k in 0..10u64 {
        let upload = cfg.peers[k as usize].upload;
        cfg.peers.push(PeerSpec { class: 1, upload, join: Time::from_secs(62 + k), leave: None });
    }
    let events = vec![(Time::from_secs(60), FaultEvent::TrackerRestart)];
    let (r, f) = run(cfg, FaultConfig { events, ..FaultConfig::default() });
    assert_eq!(f.tracker_restarts, 1);
    let newcomers: Vec<_> = r.peers.iter().filter(|p| p.seconds < 110.0).collect();
    assert_eq!(newcomers.len(), 10, "the late joiners are the ones with the short counted time");
    for p in &newcomers {
        let ratio = base_ratio(p);
        assert!(ratio >= NEWCOMER_BASE, "a newcomer after the restart played {ratio:.3} of the base layer");
    }
    let before: Vec<_> = r.peers.iter().filter(|p| p.seconds >= 110.0).collect();
    for p in before {
        let ratio = base_ratio(p);
        assert!(ratio >= 0.95, "a viewer present before the restart played {ratio:.3} of the base layer");
    }
}

#[test]
fn a_paused_source_costs_only_the_paused_span() {
    let pause_at = 60;
    let pause = 5;
    let events = vec![(Time::from_secs(pause_at), FaultEvent::SourcePause(Duration::from_secs(pause)))];
    let (_, f) = run(scenario(&Mix::underloaded(), 160, 15), FaultConfig { events, ..FaultConfig::default() });
    // The paused span's LCs never existed: they are missed one lag (30 s) later.
    let hole = (pause_at + 30) as usize;
    let dipped = (hole..hole + pause as usize + 2).any(|s| f.base_ratio(s).is_some_and(|r| r < 0.5));
    assert!(dipped, "the pause left no hole: {}", series(&f, hole - 5, hole + 15));
    let recovered = f.recovered_at(hole, 160, 0.95);
    eprintln!("recovered at {recovered:?}: {}", series(&f, hole - 5, 160));
    assert!(
        recovered.is_some_and(|s| s <= hole + pause as usize + RECOVERY_S),
        "no recovery after the pause: {}",
        series(&f, hole - 5, 160)
    );
}

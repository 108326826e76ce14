//! Trace-driven simulation runs (DESIGN.md §9): several systems on one trace window and
//! upload mix, each in its own swarm (so each is exactly as deterministic as on its own),
//! spread over a pool of threads. Gives every system's report, speed and protocol
//! parameters; printing and plotting are the caller's.

use crate::LabError;
use layerp2p_codec::Kbps;
use layerp2p_proto::swarm::mix::table_two_groups;
use layerp2p_proto::swarm::{ClassReport, Mix, SwarmReport};
use layerp2p_proto::{PeerConfig, Policy, Time};
use layerp2p_sim::Swarm;
use layerp2p_sim::parallel::ParallelSwarm;
use layerp2p_sim::scenario::{ClassDraw, trace_driven};
use layerp2p_sim::trace::Trace;
use serde::Serialize;
use std::time::{Duration, Instant};

/// What every system of a comparison shares.
pub struct TraceRun<'a> {
    pub mix: &'a Mix,
    /// The sessions of the simulated window (already windowed and thinned).
    pub trace: &'a Trace,
    pub draw: ClassDraw,
    pub duration: Duration,
    /// One-way latency of every message.
    pub latency: Duration,
    /// Every viewer's downlink cap; `None`: unconstrained.
    pub download: Option<Kbps>,
    /// Viewers behind home NATs (`Swarm::with_nats`); `None`: every viewer is open.
    pub nat: Option<layerp2p_sim::nat::NatConfig>,
    /// Viewers measure their uploads behind uplinks of their class's rate
    /// (`Swarm::with_measured_uploads`).
    pub measured_uploads: bool,
    pub seed: u64,
    /// Applied to the viewers' configuration template (incentive and neighbour overrides).
    pub configure: &'a (dyn Fn(&mut PeerConfig) -> Result<(), String> + Sync),
    /// `Some(n)`: each system runs split over `n` threads (`layerp2p_sim::parallel`;
    /// the same run at any `n`, not the sequential driver's); `None`: sequentially.
    pub threads: Option<usize>,
}

/// The sequential driver or the parallel one, behind one interface for `run_one`.
enum Driver {
    Sequential(Box<Swarm>),
    Parallel(ParallelSwarm),
}

impl Driver {
    fn run_until(&mut self, t: Time) {
        match self {
            Driver::Sequential(s) => s.run_until(t),
            Driver::Parallel(p) => p.run_until(t),
        }
    }
    fn alive(&self) -> usize {
        match self {
            Driver::Sequential(s) => s.alive(),
            Driver::Parallel(p) => p.alive(),
        }
    }
    fn lc_deliveries(&self) -> u64 {
        match self {
            Driver::Sequential(s) => s.lc_deliveries,
            Driver::Parallel(p) => p.lc_deliveries(),
        }
    }
    fn downlink_drops(&self) -> u64 {
        match self {
            Driver::Sequential(s) => s.downlink_drops,
            Driver::Parallel(p) => p.downlink_drops(),
        }
    }
    fn nat_drops(&self) -> u64 {
        match self {
            Driver::Sequential(s) => s.nat_drops,
            Driver::Parallel(_) => 0,
        }
    }
    fn finish(self) -> SwarmReport {
        match self {
            Driver::Sequential(s) => s.finish(),
            Driver::Parallel(p) => p.finish(),
        }
    }
}

impl std::fmt::Debug for TraceRun<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TraceRun").field("sessions", &self.trace.sessions.len()).field("seed", &self.seed).finish()
    }
}

/// How fast a run went.
#[derive(Clone, Debug, Serialize)]
pub struct Speed {
    pub wall_secs: f64,
    pub simulated_secs: f64,
    pub lc_deliveries: u64,
    pub lc_deliveries_per_wall_sec: f64,
    pub wall_secs_per_simulated_hour: f64,
    pub peak_concurrent: usize,
    pub mean_concurrent: f64,
    /// LCs lost at full capped downlinks (0 when downlinks are unconstrained).
    pub downlink_drops: u64,
    /// Datagrams the viewers' home NATs did not let in (0 without NATs).
    pub nat_drops: u64,
    /// The process's peak resident memory when the run ended, in KiB (`VmHWM`; systems
    /// run side by side share one process, so then it covers all of them).
    pub peak_rss_kb: Option<u64>,
    /// CPU seconds (user + system) the process spent during the run (all threads;
    /// systems run side by side are all counted).
    pub cpu_secs: Option<f64>,
    /// Threads the system was split over (`TraceRun::threads`; 1 when sequential).
    pub threads: usize,
    /// The machine's one-minute load average when the run ended (other work on a
    /// shared machine slows wall time, not CPU time).
    pub load_average: Option<f64>,
}

/// Where one system's run is, for a progress line.
#[derive(Clone, Debug)]
pub struct RunProgress {
    /// Share of the simulated time done, 0..=1.
    pub done: f64,
    pub simulated_h: f64,
    pub total_h: f64,
    pub viewers: usize,
    pub lcs: u64,
    pub wall_secs: f64,
}

impl RunProgress {
    /// Seconds of wall time still to go, at the pace so far.
    pub fn eta_secs(&self) -> f64 {
        if self.done > 0.0 { self.wall_secs / self.done - self.wall_secs } else { 0.0 }
    }
}

/// One system's outcome.
#[derive(Debug)]
pub struct SystemRun {
    pub policy: Policy,
    pub report: SwarmReport,
    pub speed: Speed,
    /// The viewers' protocol parameters, as recorded in run JSON.
    pub parameters: serde_json::Value,
}

/// Runs `policies` on up to `jobs` threads; `progress(i, status, last)` is called from
/// the worker running `policies[i]`. Results come in the order of `policies`.
pub fn run_systems(
    run: &TraceRun,
    policies: &[Policy],
    jobs: usize,
    progress: &(dyn Fn(usize, RunProgress, bool) + Sync),
) -> Result<Vec<SystemRun>, LabError> {
    crate::parallel::map(policies, jobs, |i, &policy| run_one(run, policy, &mut |s, last| progress(i, s, last)))
}

/// Runs one system, reporting progress every 10 simulated seconds.
pub fn run_one(
    run: &TraceRun,
    policy: Policy,
    progress: &mut dyn FnMut(RunProgress, bool),
) -> Result<SystemRun, LabError> {
    let mut cfg = trace_driven(policy, run.mix, run.trace, run.draw, run.duration, run.latency, run.seed);
    cfg.download = run.download;
    (run.configure)(&mut cfg.peer).map_err(LabError::Config)?;
    let parameters = cfg.peer.parameters();
    let mut swarm = match run.threads {
        // A partition sends to routers it does not hold: NATs need the whole swarm.
        Some(_) if run.nat.is_some() || run.measured_uploads => {
            return Err(LabError::Config("NATs and measured uploads are simulated on one thread only".into()));
        }
        Some(n) => Driver::Parallel(ParallelSwarm::new(cfg, n)?),
        None => {
            let mut swarm = Swarm::new(cfg)?;
            if let Some(nat) = &run.nat {
                swarm = swarm.with_nats(nat.clone());
            }
            if run.measured_uploads {
                swarm = swarm.with_measured_uploads();
            }
            Driver::Sequential(Box::new(swarm))
        }
    };
    let started = Instant::now();
    let cpu = crate::loadgen::procfs::CpuSource::process("sim", std::process::id());
    let cpu_before = cpu.cpu_seconds();
    let total = run.duration.as_secs().max(1);
    let (mut peak, mut sum, mut samples) = (0usize, 0usize, 0usize);
    let step = 10;
    let mut t = 0;
    while t < total {
        t = (t + step).min(total);
        swarm.run_until(Time::from_secs(t));
        // Tracker and seed are not viewers.
        let viewers = swarm.alive().saturating_sub(2);
        if t % 60 == 0 || t == total {
            peak = peak.max(viewers);
            sum += viewers;
            samples += 1;
        }
        let status = RunProgress {
            done: t as f64 / total as f64,
            simulated_h: t as f64 / 3600.0,
            total_h: total as f64 / 3600.0,
            viewers,
            lcs: swarm.lc_deliveries(),
            wall_secs: started.elapsed().as_secs_f64(),
        };
        progress(status, t == total);
    }
    let lc_deliveries = swarm.lc_deliveries();
    let downlink_drops = swarm.downlink_drops();
    let nat_drops = swarm.nat_drops();
    let report = swarm.finish();
    let wall = started.elapsed().as_secs_f64();
    let simulated = run.duration.as_secs_f64();
    let speed = Speed {
        wall_secs: wall,
        simulated_secs: simulated,
        lc_deliveries,
        lc_deliveries_per_wall_sec: lc_deliveries as f64 / wall.max(1e-9),
        wall_secs_per_simulated_hour: wall / (simulated / 3600.0),
        peak_concurrent: peak,
        mean_concurrent: sum as f64 / samples.max(1) as f64,
        downlink_drops,
        nat_drops,
        peak_rss_kb: peak_rss_kb(),
        cpu_secs: cpu.cpu_seconds().zip(cpu_before).map(|(after, before)| after - before),
        threads: run.threads.unwrap_or(1),
        load_average: load_average(),
    };
    Ok(SystemRun { policy, report, speed, parameters })
}

/// The process's peak resident set (`VmHWM` of /proc/self/status), in KiB; `None`
/// where there is no procfs.
pub fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The one-minute load average (/proc/loadavg); `None` where there is no procfs.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
}

/// DESIGN.md §11's Table II groups over every counted peer, then (when `settled_secs`
/// is above 0) over the peers that played at least that long.
pub fn groups_with_settled(report: &SwarmReport, settled_secs: u64) -> Vec<ClassReport> {
    let mut groups = table_two_groups(report, 0.0);
    if settled_secs > 0 {
        groups.extend(table_two_groups(report, settled_secs as f64));
    }
    groups
}

/// A `layerp2p sim` run file: the provenance, the trace window and every system's run.
#[derive(Debug, Serialize)]
pub struct TraceRunFile<'a> {
    #[serde(flatten)]
    pub provenance: crate::record::Provenance,
    /// `generate` or the trace file's path.
    pub trace: &'a str,
    pub trace_stats: &'a layerp2p_sim::trace::TraceStats,
    pub from_hour: f64,
    pub hours: f64,
    pub scale: f64,
    pub class_draw: &'a str,
    pub latency_ms: u64,
    pub download_kbps: Option<u32>,
    pub seed: u64,
    pub runs: Vec<SystemRecord<'a>>,
}

/// One system in a `TraceRunFile`.
#[derive(Debug, Serialize)]
pub struct SystemRecord<'a> {
    pub policy: &'static str,
    pub parameters: &'a serde_json::Value,
    pub report: &'a SwarmReport,
    /// Table II groups (empty for other mixes).
    pub groups: Vec<ClassReport>,
    pub speed: &'a Speed,
}

#[cfg(test)]
mod tests {
    use super::*;
    use layerp2p_proto::swarm::Load;
    use layerp2p_sim::trace::{DayTraceConfig, generate_day};

    #[test]
    fn systems_run_in_parallel_give_what_they_give_one_after_another() {
        let mix = Mix::table_two(Load::Overloaded);
        let full = generate_day(&DayTraceConfig { seed: 3, ..DayTraceConfig::default() });
        let duration = Duration::from_secs_f64(0.01 * 3600.0);
        let from = Time::from_secs(15 * 3600);
        let trace = full.window(from, from + duration, Duration::from_secs(5)).thin(0.01, 3);
        let configure = |_: &mut PeerConfig| Ok(());
        let run = TraceRun {
            mix: &mix,
            trace: &trace,
            draw: ClassDraw::Sessions,
            duration,
            latency: Duration::ZERO,
            download: None,
            nat: None,
            measured_uploads: false,
            seed: 3,
            configure: &configure,
            threads: None,
        };
        let quiet = |_, _, _| {};
        let one_by_one = run_systems(&run, &Policy::ALL, 1, &quiet).expect("runs");
        let at_once = run_systems(&run, &Policy::ALL, 3, &quiet).expect("runs");
        assert_eq!(one_by_one.len(), 3);
        for (a, b) in one_by_one.iter().zip(&at_once) {
            assert_eq!(a.policy, b.policy, "results keep the order of the systems");
            assert!(a.report.lc_deliveries > 1000, "{}: {} LCs delivered", a.policy, a.report.lc_deliveries);
            let json = |r: &SwarmReport| serde_json::to_string(r).expect("serialises");
            assert_eq!(json(&a.report), json(&b.report), "{}: same report on one thread or three", a.policy);
            assert_eq!(a.parameters, b.parameters);
        }
        // The systems differ, so the comparison above is not of three copies of one run.
        assert_ne!(one_by_one[0].report.lc_deliveries, one_by_one[2].report.lc_deliveries);
    }

    #[test]
    fn a_run_split_over_two_threads_is_the_run_on_one() {
        let mix = Mix::table_two(Load::Overloaded);
        let full = generate_day(&DayTraceConfig { seed: 5, ..DayTraceConfig::default() });
        let duration = Duration::from_secs(40);
        let from = Time::from_secs(16 * 3600);
        let trace = full.window(from, from + duration, Duration::from_secs(10)).thin(0.01, 5);
        let configure = |_: &mut PeerConfig| Ok(());
        let on = |threads| TraceRun {
            mix: &mix,
            trace: &trace,
            draw: ClassDraw::Sessions,
            duration,
            latency: Duration::from_millis(20),
            download: None,
            nat: None,
            measured_uploads: false,
            seed: 5,
            configure: &configure,
            threads: Some(threads),
        };
        let run = |threads| run_one(&on(threads), Policy::LayerP2P, &mut |_, _| {}).expect("runs");
        let (one, two) = (run(1), run(2));
        assert!(one.report.lc_deliveries > 10_000, "{} LCs delivered", one.report.lc_deliveries);
        let json = |r: &SwarmReport| serde_json::to_string(r).expect("serialises");
        assert_eq!(json(&one.report), json(&two.report), "same report on one thread or two");
        assert_eq!(one.speed.peak_concurrent, two.speed.peak_concurrent);
        assert_eq!((one.speed.threads, two.speed.threads), (1, 2));
        // Without a lookahead the windows cannot be formed: refused, not run.
        let zero = TraceRun { latency: Duration::ZERO, ..on(2) };
        let refused = run_one(&zero, Policy::LayerP2P, &mut |_, _| {}).expect_err("no lookahead");
        assert!(refused.to_string().contains("latency of at least 1 ms"), "{refused}");
    }
}

//! The load generator's figures: one `Second` per second of the run (the live line),
//! and the final `LoadReport` (table and JSON). Only arithmetic over counters
//! collected elsewhere; no I/O but formatting.

use super::live::Snapshot;
use super::procfs::{CpuUse, UdpCounters};
use super::{LoadConfig, Target, Viewer};
use layerp2p_proto::PeerStats;
use layerp2p_proto::metrics::LatencySummary;
use layerp2p_proto::swarm::report::SwarmReport;
use layerp2p_runtime::driver::IoStats;
use layerp2p_runtime::status::NodeSummary;
use serde::Serialize;
use std::fmt::Write;
use std::net::SocketAddr;
use std::time::Duration;

/// Bits per gigabit.
const GIGA: f64 = 1e9;

/// One second of a run.
#[derive(Clone, Debug, Serialize)]
pub struct Second {
    pub elapsed_s: f64,
    pub peers_up: u64,
    /// Peers with the target as a neighbour (a star: the peers the target serves).
    pub on_target: u64,
    /// Mean neighbours per synthetic peer.
    pub neighbours_avg: f64,
    /// LCs (and Gbit/s of their datagrams) the peers received from the target.
    pub target_lc_per_s: f64,
    pub target_gbit_per_s: f64,
    /// LCs the peers received from anyone (the target and each other).
    pub all_lc_per_s: f64,
    /// Percent of one core, when the target can be observed.
    pub target_cpu: Option<f64>,
    /// Percent of one core per load-generator shard.
    pub loadgen_cpu: Vec<f64>,
    /// Percent of the second each shard was runnable but waiting for a core: how much
    /// other work on the machine held the load generator back.
    pub loadgen_waiting: Vec<f64>,
    /// Worst lateness of a peer timer in this second: the shards' saturation gauge.
    pub timer_lag_ms: f64,
}

impl Second {
    pub fn between(
        elapsed: Duration,
        a: &Snapshot,
        b: &Snapshot,
        wall: f64,
        target_cpu: Option<f64>,
        loadgen: &[CpuUse],
    ) -> Second {
        let rate = |x: u64, y: u64| y.saturating_sub(x) as f64 / wall;
        Second {
            elapsed_s: elapsed.as_secs_f64(),
            peers_up: b.peers_up,
            on_target: b.on_target,
            neighbours_avg: if b.peers_up == 0 { 0.0 } else { b.neighbours as f64 / b.peers_up as f64 },
            target_lc_per_s: rate(a.target_lcs, b.target_lcs),
            target_gbit_per_s: rate(a.target_bytes, b.target_bytes) * 8.0 / GIGA,
            all_lc_per_s: rate(a.lcs_in, b.lcs_in),
            target_cpu,
            loadgen_cpu: loadgen.iter().map(|c| c.percent).collect(),
            loadgen_waiting: loadgen.iter().map(|c| c.waiting).collect(),
            timer_lag_ms: b.timer_lag_us as f64 / 1e3,
        }
    }

    /// The live line.
    pub fn line(&self) -> String {
        let cpu = self.target_cpu.map_or_else(|| "n/a".to_string(), |c| format!("{c:.0}%"));
        let shards: Vec<String> =
            self.loadgen_cpu.iter().zip(&self.loadgen_waiting).map(|(c, w)| format!("{c:.0}%(wait {w:.0}%)")).collect();
        format!(
            "{:>5.0} s  peers {:>5} ({:>5} on target)  nbrs {:>4.1}  target {:>8.0} LC/s {:>6.3} Gbit/s  all {:>8.0} LC/s  target cpu {:>4}  loadgen cpu {}  lag {:.0} ms",
            self.elapsed_s,
            self.peers_up,
            self.on_target,
            self.neighbours_avg,
            self.target_lc_per_s,
            self.target_gbit_per_s,
            self.all_lc_per_s,
            cpu,
            shards.join("/"),
            self.timer_lag_ms
        )
    }
}

/// Mean and largest of some per-second values.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct MeanMax {
    pub mean: f64,
    pub max: f64,
}

impl MeanMax {
    fn of(values: impl Iterator<Item = f64>) -> MeanMax {
        let (mut n, mut sum, mut max) = (0usize, 0.0, 0.0f64);
        for v in values {
            n += 1;
            sum += v;
            max = max.max(v);
        }
        MeanMax { mean: if n == 0 { 0.0 } else { sum / n as f64 }, max }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct TargetFigures {
    pub addr: SocketAddr,
    pub builtin: bool,
    /// LCs the peers received from the target over the whole run.
    pub lcs_received: u64,
    /// Over the steady part of the run (after the last peer joined).
    pub lc_per_s: MeanMax,
    pub gbit_per_s: MeanMax,
    /// Percent of one core; `None` when the target cannot be observed.
    pub cpu_percent: Option<MeanMax>,
    /// The built-in seed's own counters.
    pub lcs_sent: Option<u64>,
    pub requests_received: Option<u64>,
    pub requests_expired: Option<u64>,
    pub datagrams_out: Option<u64>,
    pub send_dropped: Option<u64>,
    /// The built-in seed's request arrival -> LC handed to its socket.
    pub request_to_send: Option<LatencySummary>,
    /// Every counter of the built-in seed (all shards).
    pub stats: Option<PeerStats>,
}

#[derive(Clone, Debug, Serialize)]
pub struct LossFigures {
    /// Datagrams the synthetic peers and (built-in) target sent.
    pub datagrams_sent: u64,
    /// Sends refused by a full socket buffer (counted by the senders).
    pub send_dropped: u64,
    /// Datagrams the kernel dropped on this process's sockets (receive buffer full).
    pub socket_drops: Option<u64>,
    /// Datagrams the peers could not decode.
    pub malformed: u64,
    /// The kernel's UDP counters over the run (whole machine, so other traffic too).
    pub kernel: Option<UdpCounters>,
    /// (send drops + our sockets' receive drops) / datagrams sent.
    pub loss_ratio: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct LoadReport {
    /// What the synthetic viewers were (full peers or lean viewers).
    pub viewer: Viewer,
    pub peers: usize,
    pub peers_up: u64,
    /// Peers with the target as a neighbour at the end.
    pub peers_on_target: u64,
    /// Peers counted long enough that counted no playback at all (R 0, alpha 0).
    pub silent_peers: usize,
    pub shards: usize,
    pub duration_s: f64,
    /// When the last peer joined.
    pub ramp_s: f64,
    pub target: TargetFigures,
    /// LCs the peers received from anyone, per second, steady part.
    pub all_lc_per_s: MeanMax,
    pub neighbours_avg: f64,
    /// Per class playback rate and alpha per layer.
    pub swarm: SwarmReport,
    /// Request sent -> LC arrived, at the synthetic peers (from any supplier).
    pub latency: LatencySummary,
    /// Every counter of the synthetic peers, summed.
    pub peers_total: PeerStats,
    pub loss: LossFigures,
    pub loadgen_io: IoStats,
    /// Mean CPU percent per load-generator shard.
    pub loadgen_cpu: Vec<f64>,
    /// Mean percent of time each shard waited for a core while runnable.
    pub loadgen_waiting: Vec<f64>,
    /// The load generator's own CPU (all shards, whole run) per LC its peers
    /// received, in microseconds: what one synthetic viewer costs the machine.
    pub loadgen_cpu_us_per_lc: Option<f64>,
    /// LCs one core of the load generator sinks per second at that cost
    /// (1e6 / `loadgen_cpu_us_per_lc`).
    pub loadgen_lc_per_core_s: Option<f64>,
    pub timer_lag_ms: MeanMax,
    pub seconds: Vec<Second>,
}

/// CPU microseconds per LC received: the shards' CPU summed over `seconds` (each
/// second's percent of a core times its length) over `lcs` LCs.
pub fn cpu_us_per_lc(seconds: &[Second], lcs: u64) -> Option<f64> {
    let mut cpu_s = 0.0;
    let mut last = 0.0;
    for s in seconds {
        cpu_s += s.loadgen_cpu.iter().sum::<f64>() / 100.0 * (s.elapsed_s - last).max(0.0);
        last = s.elapsed_s;
    }
    (lcs > 0 && cpu_s > 0.0).then(|| cpu_s * 1e6 / lcs as f64)
}

impl LoadReport {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cfg: &LoadConfig,
        target: SocketAddr,
        swarm: SwarmReport,
        seconds: Vec<Second>,
        io: IoStats,
        end: Snapshot,
        outcome: Option<NodeSummary>,
        kernel: Option<UdpCounters>,
        socket_drops: Option<u64>,
    ) -> LoadReport {
        let mut peers_total = PeerStats::default();
        for p in &swarm.peers {
            peers_total.merge(&p.stats);
        }
        let latency = peers_total.latency.delivery.clone();
        let loadgen_cpu_us_per_lc = cpu_us_per_lc(&seconds, peers_total.lcs_down);
        let ramp = cfg.peers.iter().map(|p| p.join).max().unwrap_or_default().as_secs_f64();
        // Steady: from a second after the last join; the whole run if that is empty.
        let steady: Vec<&Second> = {
            let s: Vec<&Second> = seconds.iter().filter(|s| s.elapsed_s > ramp + 1.5).collect();
            if s.is_empty() { seconds.iter().collect() } else { s }
        };
        let target_cpu = steady.iter().map(|s| s.target_cpu).collect::<Option<Vec<f64>>>().filter(|v| !v.is_empty());
        let shards = cfg.shards.max(1);
        let per_shard = |f: fn(&Second) -> &Vec<f64>| -> Vec<f64> {
            (0..shards).map(|i| MeanMax::of(steady.iter().filter_map(|s| f(s).get(i).copied())).mean).collect()
        };
        let loadgen_cpu = per_shard(|s| &s.loadgen_cpu);
        let loadgen_waiting = per_shard(|s| &s.loadgen_waiting);
        let seed_io = outcome.as_ref().map(|o| o.io);
        let datagrams_sent = io.datagrams_out + seed_io.map_or(0, |s| s.datagrams_out);
        let send_dropped = io.send_dropped + seed_io.map_or(0, |s| s.send_dropped);
        let lost = send_dropped + socket_drops.unwrap_or(0);
        LoadReport {
            viewer: cfg.viewer,
            peers: cfg.peers.len(),
            peers_up: end.peers_up,
            peers_on_target: end.on_target,
            silent_peers: swarm.silent(),
            shards,
            duration_s: cfg.duration.as_secs_f64(),
            ramp_s: ramp,
            target: TargetFigures {
                addr: target,
                builtin: matches!(cfg.target, Target::Builtin(_)),
                lcs_received: end.target_lcs,
                lc_per_s: MeanMax::of(steady.iter().map(|s| s.target_lc_per_s)),
                gbit_per_s: MeanMax::of(steady.iter().map(|s| s.target_gbit_per_s)),
                cpu_percent: target_cpu.map(|v| MeanMax::of(v.into_iter())),
                lcs_sent: outcome.as_ref().map(|o| o.stats.lcs_up),
                requests_received: outcome.as_ref().map(|o| o.stats.requests_received),
                requests_expired: outcome.as_ref().map(|o| o.stats.requests_expired),
                datagrams_out: seed_io.map(|s| s.datagrams_out),
                send_dropped: seed_io.map(|s| s.send_dropped),
                request_to_send: outcome.as_ref().map(|o| o.stats.latency.request_to_send.summary()),
                stats: outcome.as_ref().map(|o| o.stats.clone()),
            },
            all_lc_per_s: MeanMax::of(steady.iter().map(|s| s.all_lc_per_s)),
            neighbours_avg: if end.peers_up == 0 { 0.0 } else { end.neighbours as f64 / end.peers_up as f64 },
            swarm,
            latency: latency.summary(),
            peers_total,
            loss: LossFigures {
                datagrams_sent,
                send_dropped,
                socket_drops,
                malformed: io.malformed,
                kernel,
                loss_ratio: if datagrams_sent == 0 { 0.0 } else { lost as f64 / datagrams_sent as f64 },
            },
            loadgen_io: io,
            loadgen_cpu,
            loadgen_waiting,
            loadgen_cpu_us_per_lc,
            loadgen_lc_per_core_s: loadgen_cpu_us_per_lc.map(|us| 1e6 / us),
            timer_lag_ms: MeanMax::of(steady.iter().map(|s| s.timer_lag_ms)),
            seconds,
        }
    }

    /// Share of counted peers whose base-layer ratio is at least `alpha` (a peer that
    /// counted nothing has none).
    pub fn share_with_base_layer(&self, alpha: f64) -> f64 {
        let counted: Vec<_> = self
            .swarm
            .peers
            .iter()
            .filter(|p| p.seconds >= layerp2p_proto::swarm::report::MIN_COUNTED_SECONDS)
            .collect();
        if counted.is_empty() {
            return 0.0;
        }
        counted.iter().filter(|p| p.stats.layers.first().and_then(|l| l.ratio()).is_some_and(|r| r >= alpha)).count()
            as f64
            / counted.len() as f64
    }

    /// The final human-readable report.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let t = &self.target;
        let _ = writeln!(
            s,
            "load: {} synthetic {} ({} up, {} with the target as a neighbour at the end) on {} shards, {:.0} s, last join at {:.1} s",
            self.peers,
            match self.viewer {
                Viewer::Full => "peers",
                Viewer::Lean => "lean viewers",
            },
            self.peers_up,
            self.peers_on_target,
            self.shards,
            self.duration_s,
            self.ramp_s
        );
        let _ = writeln!(
            s,
            "target {} ({}): {:.0} LC/s mean, {:.0} peak; {:.3} Gbit/s mean, {:.3} peak; {} LCs received by peers",
            t.addr,
            if t.builtin { "built-in seed" } else { "external" },
            t.lc_per_s.mean,
            t.lc_per_s.max,
            t.gbit_per_s.mean,
            t.gbit_per_s.max,
            t.lcs_received
        );
        match t.cpu_percent {
            Some(c) => {
                let _ = writeln!(s, "target CPU: {:.0}% of a core mean, {:.0}% peak", c.mean, c.max);
            }
            None => {
                let _ = writeln!(s, "target CPU: not observed (pass --target-pid)");
            }
        }
        if let (Some(sent), Some(req), Some(exp)) = (t.lcs_sent, t.requests_received, t.requests_expired) {
            let _ = writeln!(s, "target sent {sent} LCs for {req} requests; {exp} requests expired unserved");
        }
        let _ = writeln!(
            s,
            "all peers: {:.0} LC/s received mean (target and each other), {:.1} neighbours each",
            self.all_lc_per_s.mean, self.neighbours_avg
        );
        let _ = writeln!(s, "\n{}", self.swarm.table());
        let _ = writeln!(s, "request->LC latency at the peers: {}", self.latency);
        if let Some(l) = t.request_to_send {
            let _ = writeln!(s, "request->send latency at the target: {l}");
        }
        let l = &self.loss;
        let drops = l.socket_drops.map_or_else(|| "?".to_string(), |d| d.to_string());
        let _ = write!(
            s,
            "loss: {:.3}% ({} send drops, {} receive-buffer drops, {} malformed, of {} datagrams sent",
            l.loss_ratio * 100.0,
            l.send_dropped,
            drops,
            l.malformed,
            l.datagrams_sent
        );
        match l.kernel {
            Some(k) => {
                let _ = writeln!(s, "; whole machine: {} receive-buffer drops)", k.rcvbuf_errors);
            }
            None => {
                let _ = writeln!(s, ")");
            }
        }
        let cpu: Vec<String> = self
            .loadgen_cpu
            .iter()
            .zip(&self.loadgen_waiting)
            .map(|(c, w)| format!("{c:.0}% (waiting for a core {w:.0}%)"))
            .collect();
        let per_lc = match (self.loadgen_cpu_us_per_lc, self.loadgen_lc_per_core_s) {
            (Some(us), Some(rate)) => format!("{us:.2} µs per LC received ({rate:.0} LC/s per core)"),
            _ => "? µs per LC received".to_string(),
        };
        let _ = writeln!(
            s,
            "load generator: CPU {} per shard, {per_lc}; timer lag {:.1} ms mean, {:.1} ms worst",
            cpu.join(" / "),
            self.timer_lag_ms.mean,
            self.timer_lag_ms.max
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn second(elapsed_s: f64, loadgen_cpu: Vec<f64>) -> Second {
        Second {
            elapsed_s,
            peers_up: 0,
            on_target: 0,
            neighbours_avg: 0.0,
            target_lc_per_s: 0.0,
            target_gbit_per_s: 0.0,
            all_lc_per_s: 0.0,
            target_cpu: None,
            loadgen_cpu,
            loadgen_waiting: vec![],
            timer_lag_ms: 0.0,
        }
    }

    #[test]
    fn cpu_per_lc_sums_every_shard_over_each_seconds_length() {
        // 1 s at 50 % + 30 %, then 2 s at 100 % + 0 %: 0.8 + 2.0 = 2.8 CPU seconds.
        let seconds = [second(1.0, vec![50.0, 30.0]), second(3.0, vec![100.0, 0.0])];
        let us = cpu_us_per_lc(&seconds, 1_400_000).expect("CPU and LCs");
        assert!((us - 2.0).abs() < 1e-9, "{us}");
        assert_eq!(cpu_us_per_lc(&seconds, 0), None);
        assert_eq!(cpu_us_per_lc(&[second(1.0, vec![0.0])], 10), None);
    }
}

//! What a running node reports: the per-second snapshot each shard publishes, the
//! live `Status` computed from two successive snapshots (rates over the interval),
//! and the exit `NodeSummary`. Formatting for humans lives here too; nothing here
//! touches a socket or the protocol state.

use super::driver::IoStats;
use layerp2p_proto::peer::PeerStats;
use layerp2p_proto::peer::nat::NatStatus;
use layerp2p_proto::time::Time;
use layerp2p_proto::tracker::TrackerStats;
use serde::Serialize;
use std::fmt::{self, Write};

/// One shard's counters at one instant (sent to the main thread about once a second).
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub shard: usize,
    pub at: Time,
    pub neighbours: usize,
    pub queued: usize,
    pub stats: PeerStats,
    /// Peers registered at a tracker this shard runs (embedded or standalone).
    pub tracker_peers: Option<usize>,
    /// That tracker's counters.
    pub tracker: Option<TrackerStats>,
    /// The shard's socket counters so far (every socket it drives).
    pub io: IoStats,
    /// What the node measured of its NAT (viewers and relays).
    pub nat: Option<NatStatus>,
    /// The measured upload (`--upload-kbps auto`).
    pub upload_estimate: Option<UploadEstimate>,
}

/// The measured upload and the queueing delay it keeps on the uplink.
#[derive(Clone, Debug, Serialize)]
pub struct UploadEstimate {
    pub kbps: f64,
    pub queueing_delay_ms: Option<f64>,
}

/// The live one-line status of a node.
#[derive(Clone, Debug, Serialize)]
pub struct Status {
    pub role: &'static str,
    pub elapsed_s: f64,
    pub neighbours: usize,
    /// LC data uploaded and downloaded over the last interval.
    pub upload_kbps: f64,
    pub download_kbps: f64,
    /// Played rate per layer over the last interval (index 0 = layer 1).
    pub layer_kbps: Vec<f64>,
    /// alpha(l) so far; `None` for a layer nothing was counted of yet.
    pub alpha: Vec<Option<f64>>,
    pub queued_requests: usize,
    pub tracker_peers: Option<usize>,
    /// LCs and LC bytes sent since the start, all shards.
    pub lcs_up: u64,
    pub bytes_up: u64,
    /// LCs played in time and missed since the start, per layer (index 0 = layer 1).
    pub played_lcs: Vec<u64>,
    pub missed_lcs: Vec<u64>,
    pub nat: Option<NatStatus>,
    pub upload_estimate: Option<UploadEstimate>,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<7} {:>6.0}s  nbrs {:>3}  up {:>6.0} kbps  down {:>6.0} kbps",
            self.role, self.elapsed_s, self.neighbours, self.upload_kbps, self.download_kbps
        )?;
        if self.layer_kbps.iter().any(|&k| k > 0.0) || self.alpha.iter().any(Option::is_some) {
            let play: Vec<String> = self.layer_kbps.iter().map(|k| format!("{k:.0}")).collect();
            let alpha: Vec<String> = self.alpha.iter().map(|a| alpha_text(*a, 2)).collect();
            write!(f, "  play {} kbps  α {}", play.join("/"), alpha.join("/"))?;
        }
        if self.queued_requests > 0 {
            write!(f, "  queued {}", self.queued_requests)?;
        }
        if let Some(p) = self.tracker_peers {
            write!(f, "  tracker peers {p}")?;
        }
        if let Some(n) = self.nat.as_ref().filter(|n| n.reflexive.is_some()) {
            write!(f, "  {}", nat_text(n))?;
        }
        if let Some(u) = &self.upload_estimate {
            write!(f, "  uplink {:.0} kbps", u.kbps)?;
            if let Some(d) = u.queueing_delay_ms {
                write!(f, " (+{d:.0} ms)")?;
            }
        }
        Ok(())
    }
}

/// Rates of one shard over the interval between its last two snapshots.
#[derive(Clone, Debug, Default)]
struct Rates {
    upload_kbps: f64,
    download_kbps: f64,
    layer_kbps: Vec<f64>,
}

impl Rates {
    fn between(a: &Snapshot, b: &Snapshot) -> Rates {
        let secs = b.at.0.saturating_sub(a.at.0) as f64 / 1e6;
        let kbps = |x: u64, y: u64| if secs > 0.0 { y.saturating_sub(x) as f64 * 8.0 / secs / 1000.0 } else { 0.0 };
        Rates {
            upload_kbps: kbps(a.stats.bytes_up, b.stats.bytes_up),
            download_kbps: kbps(a.stats.bytes_down, b.stats.bytes_down),
            layer_kbps: b
                .stats
                .layers
                .iter()
                .enumerate()
                .map(|(i, l)| kbps(a.stats.layers.get(i).map_or(0, |x| x.played_bytes), l.played_bytes))
                .collect(),
        }
    }
}

/// Turns the snapshots of every shard into a `Status`: each shard's rates come from
/// its own two latest snapshots (shards report at slightly different instants), and
/// the node's rates are their sum.
#[derive(Debug)]
pub struct StatusMeter {
    role: &'static str,
    shards: Vec<Option<(Snapshot, Rates)>>,
}

impl StatusMeter {
    pub fn new(role: &'static str, shards: usize) -> StatusMeter {
        StatusMeter { role, shards: vec![None; shards.max(1)] }
    }

    pub fn update(&mut self, s: Snapshot) {
        let Some(slot) = self.shards.get_mut(s.shard) else { return };
        let rates = match slot.take() {
            Some((prev, _)) => Rates::between(&prev, &s),
            None => Rates::between(&Snapshot { at: Time::ZERO, stats: PeerStats::default(), ..s.clone() }, &s),
        };
        *slot = Some((s, rates));
    }

    /// The node's status now (shards merged); `None` before every shard reported.
    pub fn status(&self) -> Option<Status> {
        let shards: Vec<&(Snapshot, Rates)> = self.shards.iter().flatten().collect();
        if shards.len() < self.shards.len() {
            return None;
        }
        let mut total = PeerStats::default();
        let mut rates = Rates::default();
        for (snap, r) in &shards {
            total.merge(&snap.stats);
            rates.upload_kbps += r.upload_kbps;
            rates.download_kbps += r.download_kbps;
            rates.layer_kbps.resize(rates.layer_kbps.len().max(r.layer_kbps.len()), 0.0);
            rates.layer_kbps.iter_mut().zip(&r.layer_kbps).for_each(|(a, b)| *a += b);
        }
        Some(Status {
            role: self.role,
            elapsed_s: shards.iter().map(|(s, _)| s.at).max().unwrap_or_default().as_secs_f64(),
            neighbours: shards.iter().map(|(s, _)| s.neighbours).sum(),
            upload_kbps: rates.upload_kbps,
            download_kbps: rates.download_kbps,
            layer_kbps: rates.layer_kbps,
            alpha: total.layers.iter().map(|l| l.ratio()).collect(),
            queued_requests: shards.iter().map(|(s, _)| s.queued).sum(),
            tracker_peers: shards.iter().find_map(|(s, _)| s.tracker_peers),
            lcs_up: total.lcs_up,
            bytes_up: total.bytes_up,
            played_lcs: total.layers.iter().map(|l| l.played).collect(),
            missed_lcs: total.layers.iter().map(|l| l.missed).collect(),
            nat: shards.iter().find_map(|(s, _)| s.nat.clone()),
            upload_estimate: shards.iter().find_map(|(s, _)| s.upload_estimate.clone()),
        })
    }
}

/// "nat cone, seen at 203.0.113.9:4000".
fn nat_text(n: &NatStatus) -> String {
    let kind = serde_json::to_value(n.nat).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
    match n.reflexive {
        Some(at) => format!("nat {kind}, seen at {at}"),
        None => format!("nat {kind}"),
    }
}

/// One neighbour at exit: LC data bytes each way.
#[derive(Clone, Debug, Serialize)]
pub struct NeighbourSummary {
    pub addr: String,
    pub bytes_up: u64,
    pub bytes_down: u64,
}

/// alpha with `digits` decimals, or "-" when nothing was counted.
fn alpha_text(alpha: Option<f64>, digits: usize) -> String {
    alpha.map_or_else(|| "-".to_string(), |a| format!("{a:.digits$}"))
}

/// What a node did, printed (or written as JSON) when it stops.
#[derive(Clone, Debug, Serialize)]
pub struct NodeSummary {
    pub role: &'static str,
    pub listen: String,
    pub shards: usize,
    pub seconds: f64,
    /// Seconds of counted playback (viewers only).
    pub counted_seconds: f64,
    pub playback_kbps: f64,
    /// alpha(l); `None` for a layer nothing was counted of.
    pub alpha: Vec<Option<f64>>,
    pub upload_kbps: f64,
    pub download_kbps: f64,
    pub stats: PeerStats,
    pub io: IoStats,
    pub tracker: Option<TrackerStats>,
    pub nat: Option<NatStatus>,
    /// Neighbours at exit (one-shard nodes).
    pub neighbours: Vec<NeighbourSummary>,
}

impl NodeSummary {
    pub fn text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{} on {} ({} shard{}), {:.0} s",
            self.role,
            self.listen,
            self.shards,
            if self.shards == 1 { "" } else { "s" },
            self.seconds
        );
        if self.role == "tracker" {
            let io = &self.io;
            let _ = writeln!(
                s,
                "  socket: {} datagrams out, {} in ({} malformed)",
                io.datagrams_out, io.datagrams_in, io.malformed
            );
            if let Some(t) = &self.tracker {
                let _ = writeln!(
                    s,
                    "  tracker: {} joins, {} leaves, {} expired, {} lists sent",
                    t.joins, t.leaves, t.expired, t.lists_sent
                );
            }
            return s;
        }
        let _ = writeln!(
            s,
            "  LC data: up {:.0} kbps ({} LCs, {} of them pushed), down {:.0} kbps ({} LCs), {} duplicates",
            self.upload_kbps,
            self.stats.lcs_up,
            self.stats.lcs_pushed,
            self.download_kbps,
            self.stats.lcs_down,
            self.stats.duplicates
        );
        if self.counted_seconds >= layerp2p_proto::peer::MIN_RATE_SECONDS {
            let alpha: Vec<String> = self.alpha.iter().map(|a| alpha_text(*a, 3)).collect();
            let _ = writeln!(
                s,
                "  playback: {:.0} kbps over {:.1} s, α per layer {}",
                self.playback_kbps,
                self.counted_seconds,
                alpha.join(" / ")
            );
        } else if self.role != "seed" {
            let _ = writeln!(s, "  playback: under 1 s counted (start-up not over), no rate");
        }
        let _ = writeln!(s, "  request→send latency: {}", self.stats.latency.request_to_send.summary());
        let _ = writeln!(s, "  LC delivery latency:  {}", self.stats.latency.delivery.summary());
        let io = &self.io;
        let _ = writeln!(
            s,
            "  socket: {} datagrams out in {} send calls ({} dropped), {} in ({} malformed)",
            io.datagrams_out, io.send_syscalls, io.send_dropped, io.datagrams_in, io.malformed
        );
        if let Some(t) = &self.tracker {
            let _ = writeln!(
                s,
                "  tracker: {} joins, {} leaves, {} expired, {} lists sent",
                t.joins, t.leaves, t.expired, t.lists_sent
            );
        }
        if let Some(n) = self.nat.as_ref().filter(|n| n.reflexive.is_some()) {
            let _ = writeln!(s, "  {}", nat_text(n));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use layerp2p_proto::peer::playback::LayerStats;

    fn snap(shard: usize, secs: u64, up: u64, played: u64) -> Snapshot {
        let layers = vec![LayerStats { played: 1, played_bytes: played, missed: 1, late: 0 }];
        Snapshot {
            shard,
            at: Time::from_secs(secs),
            neighbours: 2,
            queued: 0,
            stats: PeerStats { layers, bytes_up: up, ..Default::default() },
            tracker_peers: None,
            tracker: None,
            io: IoStats::default(),
            nat: None,
            upload_estimate: None,
        }
    }

    #[test]
    fn rates_are_per_shard_intervals_summed() {
        let mut m = StatusMeter::new("seed", 2);
        m.update(snap(0, 1, 125_000, 0));
        assert!(m.status().is_none(), "one shard has not reported");
        m.update(snap(1, 1, 125_000, 0));
        let s = m.status().expect("both reported");
        assert_eq!(s.neighbours, 4);
        assert!((s.upload_kbps - 2000.0).abs() < 1e-6, "{s}");
        // Shard 1 reports later than shard 0: each shard's rate uses its own interval.
        m.update(snap(0, 3, 375_000, 50_000));
        m.update(snap(1, 5, 625_000, 0));
        let s = m.status().expect("both reported");
        // Shard 0: 250 kB over 2 s = 1000 kbps; shard 1: 500 kB over 4 s = 1000 kbps.
        // 50 kB played over 2 s = 200 kbps.
        assert!((s.upload_kbps - 2000.0).abs() < 1e-6, "{s}");
        assert!((s.layer_kbps[0] - 200.0).abs() < 1e-6, "{s}");
        assert!(s.alpha[0].is_some_and(|a| (a - 0.5).abs() < 1e-9));
    }

    #[test]
    fn alpha_is_unknown_not_perfect_before_anything_is_counted() {
        let mut m = StatusMeter::new("peer", 1);
        let mut s = snap(0, 1, 0, 0);
        s.stats.layers = vec![LayerStats::default(); 2];
        m.update(s);
        let st = m.status().expect("reported");
        assert_eq!(st.alpha, vec![None, None]);
        assert!(!st.to_string().contains("α 1.00"), "{st}");
        assert_eq!(alpha_text(None, 2), "-");
    }
}

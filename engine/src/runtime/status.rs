//! What a running node reports: the per-second snapshot each shard publishes, the
//! live `Status` computed from two successive snapshots (rates over the interval),
//! and the exit `NodeSummary`. Formatting for humans lives here too; nothing here
//! touches a socket or the protocol state.

use super::driver::IoStats;
use crate::peer::PeerStats;
use crate::time::Time;
use crate::tracker::TrackerStats;
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
    /// alpha(l) so far.
    pub alpha: Vec<f64>,
    pub queued_requests: usize,
    pub tracker_peers: Option<usize>,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:<7} {:>6.0}s  nbrs {:>3}  up {:>6.0} kbps  down {:>6.0} kbps", self.role, self.elapsed_s, self.neighbours, self.upload_kbps, self.download_kbps)?;
        if self.layer_kbps.iter().any(|&k| k > 0.0) || self.alpha.iter().any(|&a| a < 1.0) {
            let play: Vec<String> = self.layer_kbps.iter().map(|k| format!("{k:.0}")).collect();
            let alpha: Vec<String> = self.alpha.iter().map(|a| format!("{a:.2}")).collect();
            write!(f, "  play {} kbps  α {}", play.join("/"), alpha.join("/"))?;
        }
        if self.queued_requests > 0 {
            write!(f, "  queued {}", self.queued_requests)?;
        }
        if let Some(p) = self.tracker_peers {
            write!(f, "  tracker peers {p}")?;
        }
        Ok(())
    }
}

/// Turns the latest snapshot of every shard into a `Status`, remembering the previous
/// totals so rates cover exactly the last interval.
#[derive(Debug)]
pub struct StatusMeter {
    role: &'static str,
    latest: Vec<Option<Snapshot>>,
    prev: Option<(Time, PeerStats)>,
}

impl StatusMeter {
    pub fn new(role: &'static str, shards: usize) -> StatusMeter {
        StatusMeter { role, latest: vec![None; shards.max(1)], prev: None }
    }

    pub fn update(&mut self, s: Snapshot) {
        if let Some(slot) = self.latest.get_mut(s.shard) {
            *slot = Some(s);
        }
    }

    /// The node's status now (shards merged); `None` before every shard reported.
    pub fn status(&mut self) -> Option<Status> {
        let snaps: Vec<&Snapshot> = self.latest.iter().flatten().collect();
        if snaps.len() < self.latest.len() {
            return None;
        }
        let at = snaps.iter().map(|s| s.at).max().unwrap_or_default();
        let mut total = PeerStats::default();
        snaps.iter().for_each(|s| total.merge(&s.stats));
        let (t0, before) = self.prev.take().unwrap_or((Time::ZERO, PeerStats::default()));
        let secs = at.0.saturating_sub(t0.0) as f64 / 1e6;
        let kbps = |bytes: u64| if secs > 0.0 { bytes as f64 * 8.0 / secs / 1000.0 } else { 0.0 };
        let layer_kbps = total
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| kbps(l.played_bytes.saturating_sub(before.layers.get(i).map_or(0, |b| b.played_bytes))))
            .collect();
        let status = Status {
            role: self.role,
            elapsed_s: at.as_secs_f64(),
            neighbours: snaps.iter().map(|s| s.neighbours).sum(),
            upload_kbps: kbps(total.bytes_up.saturating_sub(before.bytes_up)),
            download_kbps: kbps(total.bytes_down.saturating_sub(before.bytes_down)),
            layer_kbps,
            alpha: total.layers.iter().map(|l| l.ratio()).collect(),
            queued_requests: snaps.iter().map(|s| s.queued).sum(),
            tracker_peers: snaps.iter().find_map(|s| s.tracker_peers),
        };
        self.prev = Some((at, total));
        Some(status)
    }
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
    pub alpha: Vec<f64>,
    pub upload_kbps: f64,
    pub download_kbps: f64,
    pub stats: PeerStats,
    pub io: IoStats,
    pub tracker: Option<TrackerStats>,
}

impl NodeSummary {
    pub fn text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "{} on {} ({} shard{}), {:.0} s", self.role, self.listen, self.shards, if self.shards == 1 { "" } else { "s" }, self.seconds);
        if self.role == "tracker" {
            let io = &self.io;
            let _ = writeln!(s, "  socket: {} datagrams out, {} in ({} malformed)", io.datagrams_out, io.datagrams_in, io.malformed);
            if let Some(t) = &self.tracker {
                let _ = writeln!(s, "  tracker: {} joins, {} leaves, {} expired, {} lists sent", t.joins, t.leaves, t.expired, t.lists_sent);
            }
            return s;
        }
        let _ = writeln!(
            s,
            "  LC data: up {:.0} kbps ({} LCs), down {:.0} kbps ({} LCs), {} duplicates",
            self.upload_kbps, self.stats.lcs_up, self.download_kbps, self.stats.lcs_down, self.stats.duplicates
        );
        if self.counted_seconds > 0.0 {
            let alpha: Vec<String> = self.alpha.iter().map(|a| format!("{a:.3}")).collect();
            let _ = writeln!(s, "  playback: {:.0} kbps over {:.0} s, α per layer {}", self.playback_kbps, self.counted_seconds, alpha.join(" / "));
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
            let _ = writeln!(s, "  tracker: {} joins, {} leaves, {} expired, {} lists sent", t.joins, t.leaves, t.expired, t.lists_sent);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::playback::LayerStats;

    fn snap(shard: usize, secs: u64, up: u64, played: u64) -> Snapshot {
        let layers = vec![LayerStats { played: 1, played_bytes: played, missed: 1, late: 0 }];
        Snapshot { shard, at: Time::from_secs(secs), neighbours: 2, queued: 0, stats: PeerStats { layers, bytes_up: up, ..Default::default() }, tracker_peers: None }
    }

    #[test]
    fn rates_cover_the_last_interval_of_all_shards() {
        let mut m = StatusMeter::new("seed", 2);
        m.update(snap(0, 1, 125_000, 0));
        assert!(m.status().is_none(), "one shard has not reported");
        m.update(snap(1, 1, 125_000, 0));
        let s = m.status().expect("both reported");
        assert_eq!(s.neighbours, 4);
        assert!((s.upload_kbps - 2000.0).abs() < 1e-6, "{s}");
        m.update(snap(0, 3, 375_000, 50_000));
        m.update(snap(1, 3, 125_000, 0));
        let s = m.status().expect("both reported");
        // 250 kB more over 2 s = 1000 kbps; 50 kB played over 2 s = 200 kbps.
        assert!((s.upload_kbps - 1000.0).abs() < 1e-6, "{s}");
        assert!((s.layer_kbps[0] - 200.0).abs() < 1e-6, "{s}");
        assert!((s.alpha[0] - 0.5).abs() < 1e-9);
    }
}

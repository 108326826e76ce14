//! A running node's Prometheus metrics and health (`--metrics-listen`).
//!
//! Owns the latest per-second `Snapshot` of every shard: the supervisor's thread
//! records them, the HTTP thread renders them on a scrape and judges health from how
//! fresh they are. Never touches a socket or the protocol state. Every series is
//! labelled by role, channel and shard (plus layer where it is per layer), never by
//! peer: a relay with 6,000 viewers exposes the same few hundred series as one with 6.
//!
//! The text is written by `prometheus-client` (the Prometheus project's own Rust
//! client) through a custom `Collector`: the node's counters already live in the
//! core's `PeerStats` and the driver's `IoStats`, so the collector encodes those
//! values at scrape time instead of mirroring every increment into a second set of
//! atomics on the hot path.

use super::status::Snapshot;
use layerp2p_proto::metrics::Latency;
use layerp2p_proto::wire::ChannelId;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A shard whose snapshot is older than this is stalled: its executor has not run
/// the publisher (which shares it with the round loop) for three status intervals.
pub const STALL_AFTER: Duration = Duration::from_secs(3);

/// Upper bounds of the latency histograms' buckets, in milliseconds.
pub const LATENCY_BUCKETS_MS: [u64; 14] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 30_000];

/// Content type of the Prometheus text format the scrape returns.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// What `/healthz` answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// Every shard published within `STALL_AFTER`.
    Ok,
    /// This shard has not published for this long.
    Stalled { shard: usize, since: Duration },
    /// The node is leaving (SIGTERM): not ready for new traffic.
    Draining,
}

impl Health {
    pub fn is_ok(self) -> bool {
        self == Health::Ok
    }
}

#[derive(Debug)]
struct ShardView {
    latest: Option<Snapshot>,
    seen: Instant,
}

/// The live metrics of one node (one role, one channel, its shards).
#[derive(Debug)]
pub struct NodeMetrics {
    role: &'static str,
    channel: String,
    draining: AtomicBool,
    shards: Mutex<Vec<ShardView>>,
}

impl NodeMetrics {
    /// A node with `shards` shards that starts now; `channel` is `None` for a tracker.
    pub fn new(role: &'static str, channel: Option<ChannelId>, shards: usize) -> Arc<NodeMetrics> {
        NodeMetrics::starting_at(role, channel, shards, Instant::now())
    }

    pub fn starting_at(
        role: &'static str,
        channel: Option<ChannelId>,
        shards: usize,
        now: Instant,
    ) -> Arc<NodeMetrics> {
        let label = channel.map_or_else(String::new, |c| format!("{:08x}", c.0));
        NodeMetrics::labelled(role, label, shards, now)
    }

    /// A node whose `channel` label is `label` (an operator's channel name in a
    /// multi-channel process) instead of the channel id in hex.
    pub fn labelled(role: &'static str, label: String, shards: usize, now: Instant) -> Arc<NodeMetrics> {
        Arc::new(NodeMetrics {
            role,
            channel: label,
            draining: AtomicBool::new(false),
            shards: Mutex::new((0..shards.max(1)).map(|_| ShardView { latest: None, seen: now }).collect()),
        })
    }

    fn views(&self) -> std::sync::MutexGuard<'_, Vec<ShardView>> {
        // A panic elsewhere while holding the lock leaves plain data behind: keep serving.
        self.shards.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a shard's snapshot, received at `now`.
    pub fn record(&self, snapshot: Snapshot, now: Instant) {
        if let Some(v) = self.views().get_mut(snapshot.shard) {
            v.latest = Some(snapshot);
            v.seen = now;
        }
    }

    /// From now on the node is leaving: `/healthz` fails, `layerp2p_draining` is 1.
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Health at `now`: draining, else the stalest shard if it is stalled.
    pub fn health(&self, now: Instant) -> Health {
        if self.draining() {
            return Health::Draining;
        }
        let views = self.views();
        let stalest =
            views.iter().enumerate().map(|(k, v)| (k, now.saturating_duration_since(v.seen))).max_by_key(|x| x.1);
        match stalest {
            Some((shard, since)) if since > STALL_AFTER => Health::Stalled { shard, since },
            _ => Health::Ok,
        }
    }

    /// The Prometheus text exposition of the latest snapshots.
    pub fn encode(&self) -> String {
        encode_nodes(&[self])
    }

    /// This node's part of a scrape: its snapshots, copied out of the lock.
    fn scrape(&self) -> NodeScrape {
        NodeScrape {
            role: self.role,
            channel: self.channel.clone(),
            shards: self.views().iter().filter_map(|v| v.latest.clone()).collect(),
            draining: self.draining(),
        }
    }
}

/// The text exposition of several nodes: each family once (HELP and TYPE), with a
/// series per node told apart by its role and channel labels.
fn encode_nodes(nodes: &[&NodeMetrics]) -> String {
    let mut registry = Registry::with_prefix("layerp2p");
    registry.register_collector(Box::new(Scrape { nodes: nodes.iter().map(|n| n.scrape()).collect() }));
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
    out
}

/// What `/metrics` and `/healthz` serve: one node, or every channel of a process.
pub trait Exposition: Send + Sync + 'static {
    /// The Prometheus text exposition.
    fn encode(&self) -> String;
    /// Health at `now`.
    fn health(&self, now: Instant) -> Health;
}

impl Exposition for NodeMetrics {
    fn encode(&self) -> String {
        NodeMetrics::encode(self)
    }

    fn health(&self, now: Instant) -> Health {
        NodeMetrics::health(self, now)
    }
}

/// The metrics of every node a process runs (a relay or seed serving several
/// channels, a seed's tracker): nodes come and go as channels are added and removed.
#[derive(Debug, Default)]
pub struct MetricsSet {
    nodes: Mutex<Vec<Arc<NodeMetrics>>>,
    draining: AtomicBool,
}

impl MetricsSet {
    pub fn new() -> Arc<MetricsSet> {
        Arc::default()
    }

    fn nodes(&self) -> std::sync::MutexGuard<'_, Vec<Arc<NodeMetrics>>> {
        self.nodes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a node's metrics to every scrape from now on.
    pub fn add(&self, node: Arc<NodeMetrics>) {
        self.nodes().push(node);
    }

    /// Takes `node` out of the scrapes (its channel was removed).
    pub fn remove(&self, node: &Arc<NodeMetrics>) {
        self.nodes().retain(|n| !Arc::ptr_eq(n, node));
    }

    /// The whole process is leaving: `/healthz` fails.
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }
}

impl Exposition for MetricsSet {
    fn encode(&self) -> String {
        let nodes = self.nodes().clone();
        encode_nodes(&nodes.iter().map(Arc::as_ref).collect::<Vec<_>>())
    }

    /// Draining once the process drains; else stalled if any node that is not
    /// leaving stalls (a channel being removed drains alone, the process stays healthy).
    fn health(&self, now: Instant) -> Health {
        if self.draining.load(Ordering::Relaxed) {
            return Health::Draining;
        }
        let nodes = self.nodes().clone();
        nodes.iter().map(|n| n.health(now)).find(|h| matches!(h, Health::Stalled { .. })).unwrap_or(Health::Ok)
    }
}

/// One scrape's view of a node: its snapshots, copied out of the lock.
#[derive(Debug)]
struct NodeScrape {
    role: &'static str,
    channel: String,
    shards: Vec<Snapshot>,
    draining: bool,
}

impl NodeScrape {
    /// A standalone tracker: no protocol counters.
    fn tracker_only(&self) -> bool {
        self.role == "tracker"
    }

    /// The node's labels (role, channel if any) followed by `more`.
    fn labels<'a>(&'a self, more: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut labels = vec![("role", self.role)];
        if !self.channel.is_empty() {
            labels.push(("channel", self.channel.as_str()));
        }
        labels.extend_from_slice(more);
        labels
    }
}

/// One scrape: every node's view.
#[derive(Debug)]
struct Scrape {
    nodes: Vec<NodeScrape>,
}

type Fmt = Result<(), std::fmt::Error>;

/// A metric family read from `T`: name (prefix and `_total` are added), help, value.
type Family<T> = (&'static str, &'static str, fn(&T) -> u64);
/// A latency histogram family: name, help, the histogram in a snapshot.
type LatencyFamily = (&'static str, &'static str, fn(&Snapshot) -> &Latency);

/// Per-shard counters of the protocol.
const COUNTERS: &[Family<Snapshot>] = &[
    ("lcs_sent", "LCs sent to neighbours.", |s| s.stats.lcs_up),
    ("lcs_pushed", "Of the LCs sent, those a seed pushed unrequested.", |s| s.stats.lcs_pushed),
    ("lcs_received", "LCs received from neighbours.", |s| s.stats.lcs_down),
    ("lc_bytes_sent", "LC bytes sent (payload and LC header).", |s| s.stats.bytes_up),
    ("lc_bytes_received", "LC bytes received (payload and LC header).", |s| s.stats.bytes_down),
    ("duplicate_lcs", "LCs received that were already held.", |s| s.stats.duplicates),
    ("rejected_lcs", "LCs dropped: from non-neighbours, unknown layers or beyond the window.", |s| s.stats.rejected),
    ("requests_received", "LC requests received from neighbours.", |s| s.stats.requests_received),
    ("requests_expired", "Received requests dropped unserved past their deadline.", |s| s.stats.requests_expired),
    ("requests_overflowed", "Received requests dropped because a request queue was full.", |s| {
        s.stats.requests_overflowed
    }),
    ("unvalidated_requests", "Requests ignored: their sender had not proven its address.", |s| {
        s.stats.unvalidated_requests
    }),
    (
        "requests_withheld",
        "Requests above the base layer not queued: their sender had not uploaded to us lately.",
        |s| s.stats.requests_withheld,
    ),
    ("amplification_limited", "Packets withheld from an unvalidated address (3x limit).", |s| {
        s.stats.amplification_limited
    }),
    ("control_dropped", "Control packets dropped because the outbox was full.", |s| s.stats.control_dropped),
    ("neighbour_joins", "Neighbours added.", |s| s.stats.neighbours_added),
    ("neighbour_drops", "Neighbours removed (left, timed out, replaced or banned).", |s| s.stats.neighbours_removed),
    ("neighbour_bans", "Neighbours dropped and refused for forging content.", |s| s.stats.neighbours_banned),
    ("forged_lcs", "LCs whose hash contradicts a verified manifest.", |s| s.stats.forged),
    ("unverified_lcs", "LCs dropped because no verified manifest covered them yet.", |s| s.stats.unverified),
    ("bad_manifests", "Manifests with a bad signature.", |s| s.stats.bad_manifests),
    ("unauthenticated_control", "Disconnects and Declines ignored: they did not echo our token.", |s| {
        s.stats.unauthenticated_control
    }),
];

/// Socket counters, every role (a tracker has no others).
const SOCKET_COUNTERS: &[Family<Snapshot>] = &[
    ("datagrams_received", "UDP datagrams received.", |s| s.io.datagrams_in),
    ("datagrams_sent", "UDP datagrams sent.", |s| s.io.datagrams_out),
    ("udp_bytes_received", "UDP payload bytes received.", |s| s.io.bytes_in),
    ("udp_bytes_sent", "UDP payload bytes sent.", |s| s.io.bytes_out),
    ("malformed_datagrams", "Datagrams that failed to decode (dropped).", |s| s.io.malformed),
    ("send_dropped_datagrams", "Datagrams the kernel refused (socket buffer full).", |s| s.io.send_dropped),
    ("send_syscalls", "sendmmsg calls.", |s| s.io.send_syscalls),
    ("timers_late", "Timer wake-ups that ran more than 20 ms after they were due.", |s| s.io.timers_late),
];

const GAUGES: &[Family<Snapshot>] = &[
    ("neighbours", "Current neighbours.", |s| s.neighbours as u64),
    ("queued_requests", "Requests waiting in the supplier's queues.", |s| s.queued as u64),
];

const TRACKER_COUNTERS: &[Family<layerp2p_proto::tracker::TrackerStats>] = &[
    ("tracker_joins", "Joins the tracker accepted.", |t| t.joins),
    ("tracker_leaves", "Leaves the tracker received.", |t| t.leaves),
    ("tracker_expired", "Registrations the tracker expired.", |t| t.expired),
    ("tracker_lists_sent", "Peer lists the tracker sent.", |t| t.lists_sent),
    ("tracker_refused", "Joins the tracker refused.", |t| t.refused),
    ("tracker_unvalidated", "Joins and refreshes without a valid token: answered, not registered.", |t| t.unvalidated),
    ("tracker_unvalidated_nat", "NAT reports and introduction requests without a valid token: ignored.", |t| {
        t.unvalidated_nat
    }),
    ("tracker_prefix_limited", "Registrations refused: the source prefix used up its join budget.", |t| {
        t.prefix_limited
    }),
    ("tracker_introductions", "Peers told to punch towards another (Introduce).", |t| t.introductions),
];

/// Per-layer counters of what a viewer played: name, help, value.
const LAYER_COUNTERS: &[Family<layerp2p_proto::peer::playback::LayerStats>] = &[
    ("played_lcs", "LCs played in time, per layer.", |l| l.played),
    ("missed_lcs", "LCs missing at their playback deadline, per layer.", |l| l.missed),
    ("late_lcs", "LCs that arrived after their deadline, per layer.", |l| l.late),
    ("played_bytes", "Bytes played, per layer.", |l| l.played_bytes),
];

const LATENCIES: &[LatencyFamily] = &[
    ("request_to_send_seconds", "Supplier: a request's arrival to its LC being sent.", |s| {
        &s.stats.latency.request_to_send
    }),
    ("delivery_seconds", "Receiver: a request being sent to its LC arriving.", |s| &s.stats.latency.delivery),
];

impl Scrape {
    /// The nodes that run the protocol (not a standalone tracker).
    fn protocol_nodes(&self) -> impl Iterator<Item = &NodeScrape> + Clone {
        self.nodes.iter().filter(|n| !n.tracker_only())
    }

    fn encode_values<'a>(
        &'a self,
        encoder: &mut DescriptorEncoder,
        nodes: impl Iterator<Item = &'a NodeScrape> + Clone,
        table: &[Family<Snapshot>],
        kind: MetricType,
    ) -> Fmt {
        for (name, help, value) in table {
            let mut family = encoder.encode_descriptor(name, help, None, kind)?;
            for n in nodes.clone() {
                for s in &n.shards {
                    let shard = s.shard.to_string();
                    let labels = n.labels(&[("shard", shard.as_str())]);
                    let mut m = family.encode_family(&labels)?;
                    match kind {
                        MetricType::Counter => m.encode_counter::<NoLabelSet, _, u64>(&value(s), None)?,
                        _ => m.encode_gauge(&(value(s) as i64))?,
                    }
                }
            }
        }
        Ok(())
    }
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Fmt {
        let mut family =
            encoder.encode_descriptor("draining", "1 while the node is leaving.", None, MetricType::Gauge)?;
        for n in &self.nodes {
            family.encode_family(&n.labels(&[]))?.encode_gauge(&i64::from(n.draining))?;
        }
        let trackers: Vec<(&NodeScrape, &Snapshot, &layerp2p_proto::tracker::TrackerStats)> = self
            .nodes
            .iter()
            .flat_map(|n| n.shards.iter().filter_map(move |s| s.tracker.as_ref().map(|t| (n, s, t))))
            .collect();
        if !trackers.is_empty() {
            let mut family = encoder.encode_descriptor(
                "tracker_peers",
                "Peers registered at the tracker this node runs.",
                None,
                MetricType::Gauge,
            )?;
            for (n, s, _) in &trackers {
                let shard = s.shard.to_string();
                let peers = s.tracker_peers.unwrap_or(0) as i64;
                family.encode_family(&n.labels(&[("shard", shard.as_str())]))?.encode_gauge(&peers)?;
            }
            for (name, help, value) in TRACKER_COUNTERS {
                let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
                for (n, s, t) in &trackers {
                    let shard = s.shard.to_string();
                    family
                        .encode_family(&n.labels(&[("shard", shard.as_str())]))?
                        .encode_counter::<NoLabelSet, _, u64>(&value(t), None)?;
                }
            }
        }
        self.encode_values(&mut encoder, self.nodes.iter(), SOCKET_COUNTERS, MetricType::Counter)?;
        if self.protocol_nodes().next().is_none() {
            return Ok(());
        }
        self.encode_values(&mut encoder, self.protocol_nodes(), COUNTERS, MetricType::Counter)?;
        self.encode_values(&mut encoder, self.protocol_nodes(), GAUGES, MetricType::Gauge)?;
        for (name, help, value) in LAYER_COUNTERS {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for n in self.protocol_nodes() {
                for s in &n.shards {
                    let shard = s.shard.to_string();
                    for (i, l) in s.stats.layers.iter().enumerate() {
                        let layer = (i + 1).to_string();
                        let labels = n.labels(&[("shard", shard.as_str()), ("layer", layer.as_str())]);
                        family.encode_family(&labels)?.encode_counter::<NoLabelSet, _, u64>(&value(l), None)?;
                    }
                }
            }
        }
        let bounds = LATENCY_BUCKETS_MS.map(Duration::from_millis);
        for (name, help, latency) in LATENCIES {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
            for n in self.protocol_nodes() {
                for s in &n.shards {
                    let l = latency(s);
                    let cumulative = l.cumulative_counts(&bounds);
                    let mut previous = 0;
                    let buckets: Vec<(f64, u64)> = bounds
                        .iter()
                        .zip(&cumulative)
                        .map(|(b, &c)| {
                            let in_bucket = c - previous;
                            previous = c;
                            (b.as_secs_f64(), in_bucket)
                        })
                        .collect();
                    let shard = s.shard.to_string();
                    family.encode_family(&n.labels(&[("shard", shard.as_str())]))?.encode_histogram::<NoLabelSet>(
                        l.sum().as_secs_f64(),
                        l.count(),
                        &buckets,
                        None,
                    )?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use layerp2p_proto::peer::PeerStats;
    use layerp2p_proto::peer::playback::LayerStats;
    use layerp2p_proto::time::Time;
    use layerp2p_proto::tracker::TrackerStats;
    use std::time::Duration;

    fn snapshot(shard: usize, lcs_up: u64) -> Snapshot {
        let mut stats =
            PeerStats { lcs_up, layers: vec![LayerStats { played: 7, ..Default::default() }], ..Default::default() };
        stats.latency.delivery.record(Duration::from_millis(30));
        Snapshot {
            shard,
            at: Time::from_secs(1),
            neighbours: 3,
            queued: 0,
            stats,
            tracker_peers: Some(4),
            tracker: Some(TrackerStats { joins: 5, ..Default::default() }),
            io: Default::default(),
            nat: None,
            upload_estimate: None,
        }
    }

    #[test]
    fn exposition_labels_by_role_channel_shard_and_layer_only() {
        let t0 = Instant::now();
        let m = NodeMetrics::starting_at("relay", Some(ChannelId(0xab)), 2, t0);
        m.record(snapshot(0, 10), t0);
        m.record(snapshot(1, 20), t0);
        let text = m.encode();
        for line in [
            "layerp2p_lcs_sent_total{role=\"relay\",channel=\"000000ab\",shard=\"1\"} 20",
            "layerp2p_played_lcs_total{role=\"relay\",channel=\"000000ab\",shard=\"0\",layer=\"1\"} 7",
            "layerp2p_neighbours{role=\"relay\",channel=\"000000ab\",shard=\"0\"} 3",
            "layerp2p_tracker_joins_total{role=\"relay\",channel=\"000000ab\",shard=\"0\"} 5",
            "layerp2p_delivery_seconds_bucket{role=\"relay\",channel=\"000000ab\",shard=\"0\",le=\"0.02\"} 0",
            "layerp2p_delivery_seconds_bucket{role=\"relay\",channel=\"000000ab\",shard=\"0\",le=\"0.05\"} 1",
            "layerp2p_delivery_seconds_count{role=\"relay\",channel=\"000000ab\",shard=\"0\"} 1",
            "# TYPE layerp2p_request_to_send_seconds histogram",
            "layerp2p_draining{role=\"relay\",channel=\"000000ab\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
        let tracker = NodeMetrics::starting_at("tracker", None, 1, t0);
        tracker.record(snapshot(0, 0), t0);
        let text = tracker.encode();
        assert!(text.contains("layerp2p_tracker_peers{role=\"tracker\",shard=\"0\"} 4"), "{text}");
        assert!(!text.contains("lcs_sent"), "a tracker has no protocol counters:\n{text}");
    }

    #[test]
    fn health_fails_when_a_shard_stalls_or_the_node_drains() {
        let t0 = Instant::now();
        let m = NodeMetrics::starting_at("seed", None, 2, t0);
        assert_eq!(m.health(t0 + Duration::from_secs(2)), Health::Ok, "starting up");
        m.record(snapshot(0, 1), t0 + Duration::from_secs(3));
        let late = t0 + Duration::from_secs(4);
        assert_eq!(m.health(late), Health::Stalled { shard: 1, since: Duration::from_secs(4) });
        m.record(snapshot(1, 1), late);
        assert_eq!(m.health(late), Health::Ok);
        m.set_draining();
        assert_eq!(m.health(late), Health::Draining);
        assert!(m.encode().contains("layerp2p_draining{role=\"seed\"} 1"));
    }

    #[test]
    fn a_set_of_channels_writes_each_family_once_with_a_series_per_channel() {
        let t0 = Instant::now();
        let set = MetricsSet::new();
        let news = NodeMetrics::labelled("relay", "news".into(), 1, t0);
        let sport = NodeMetrics::labelled("relay", "sport".into(), 1, t0);
        let tracker = NodeMetrics::starting_at("tracker", None, 1, t0);
        for (m, up) in [(&news, 11), (&sport, 22), (&tracker, 0)] {
            m.record(snapshot(0, up), t0);
            set.add(m.clone());
        }
        let text = set.encode();
        assert_eq!(text.matches("# TYPE layerp2p_lcs_sent_total counter").count(), 1, "{text}");
        for line in [
            "layerp2p_lcs_sent_total{role=\"relay\",channel=\"news\",shard=\"0\"} 11",
            "layerp2p_lcs_sent_total{role=\"relay\",channel=\"sport\",shard=\"0\"} 22",
            "layerp2p_tracker_peers{role=\"tracker\",shard=\"0\"} 4",
            "layerp2p_draining{role=\"relay\",channel=\"sport\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
        assert!(!text.contains("lcs_sent_total{role=\"tracker\""), "{text}");
        // A channel being removed drains alone; a stalled one fails the process.
        let late = t0 + Duration::from_secs(5);
        news.set_draining();
        sport.record(snapshot(0, 23), late);
        tracker.record(snapshot(0, 0), late);
        assert_eq!(set.health(late), Health::Ok);
        set.remove(&news);
        assert!(!set.encode().contains("channel=\"news\""));
        assert!(matches!(set.health(late + Duration::from_secs(4)), Health::Stalled { .. }));
        set.set_draining();
        assert_eq!(set.health(late), Health::Draining);
    }
}

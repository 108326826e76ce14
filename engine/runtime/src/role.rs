//! The deployable roles on real UDP — tracker, seed, relay, peer — each on pinned
//! glommio executors (one per shard) until a stop flag is set. Owns the shard layout
//! of a node: sockets, how the node's upload cap and neighbour budget are split, the
//! ingest fan-out, status publishing and the exit summary. Protocol logic stays in
//! the core; socket work stays in `driver` and `udp`.
//!
//! Sharding (a seed with `shards > 1`): every shard binds the node's one port with
//! SO_REUSEPORT, so the kernel hashes each remote's address to one shard and that
//! remote's neighbour state lives there only. Shards are accept-only on the shared
//! port: a seed never initiates neighbour relationships (N_min = 0), so no reply can
//! land on a shard that did not ask. Only shard 0 talks to the tracker; the tracker's
//! answers may land on any shard and are ignored there (a seed needs no peer lists).
//! The upload cap U is split equally (shard k gets U/S): no shared counter on the hot
//! path, and with the kernel's hash spreading receivers evenly each shard sees about
//! 1/S of the demand; a skewed spread can leave part of the cap unused.
//!
//! A relay with `shards > 1` must also fetch the stream, which means initiating
//! neighbour relationships. It does that from a private upstream socket (its own
//! ephemeral port, on shard 0's executor), where every reply comes back to the peer
//! that asked; that upstream peer fans each new LC out to the S serving shards, which
//! are accept-only on the shared port like a seed's (N_min = 0). The cap is split over
//! S + 1 parts (the upstream peer serves its own neighbours too). The neighbour budget
//! N_max is not: the upstream peer keeps a viewer's worth (`UPSTREAM_N_MAX`, enough
//! suppliers to fetch the stream) and the serving shards split the rest, so a relay
//! started with `--n-max 6000` serves ~6,000 viewers on its port (a third of the budget
//! on the private port left a fifth of 5,000 load-test peers declined).

use super::driver::{Clock, IoStats, drive_observed};
use super::exposition::NodeMetrics;
use super::ingest::{fan_out, fanout_channel, ingest, receive};
use super::link::LinkModel;
use super::playout::PlayoutSink;
use super::status::{NeighbourSummary, NodeSummary, Snapshot, Status, StatusMeter, UploadEstimate};
use glommio::{LocalExecutorBuilder, Placement};
use layerp2p_codec::{Kbps, LcSource};
use layerp2p_proto::config::PeerConfig;
use layerp2p_proto::peer::nat::NatStatus;
use layerp2p_proto::peer::{Peer, PeerStats};
use layerp2p_proto::tracker::{Tracker, TrackerConfig, TrackerStats};
use layerp2p_proto::wire::Role;
use layerp2p_udp as udp;
use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

/// How often each shard publishes a snapshot (and the status line refreshes).
pub const STATUS_INTERVAL: Duration = Duration::from_secs(1);
/// Most shards a node may run.
pub const MAX_SHARDS: usize = 64;
/// Most neighbours of a sharded relay's upstream peer (a viewer's N_max): it fetches
/// the stream for the serving shards, which hold the relay's viewers.
pub const UPSTREAM_N_MAX: usize = 20;

/// A node (seed, relay or peer) to run.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    /// The whole node's configuration; `upload` and `n_max` are split over shards.
    pub peer: PeerConfig,
    pub listen: SocketAddr,
    pub shards: usize,
    /// Also run a tracker at this address, on shard 0 (a seed without `--tracker`).
    pub embedded_tracker: Option<SocketAddr>,
    /// Shard k is pinned to core `(first_core + k) % cores`.
    pub first_core: usize,
    pub rng_seed: u64,
}

/// A `NodeSpec` that cannot run.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("shards must be 1..={MAX_SHARDS}, got {0}")]
    Shards(usize),
    #[error("only a seed or relay runs several shards")]
    ShardedViewer,
    #[error("n_max {n_max} is smaller than {what}, {parts}")]
    FewerNeighboursThanParts { n_max: usize, what: &'static str, parts: usize },
    #[error(transparent)]
    Peer(#[from] layerp2p_proto::config::ConfigError),
}

impl NodeSpec {
    /// A relay whose serving shards are fed by an upstream peer.
    pub fn sharded_relay(&self) -> bool {
        self.peer.role == Role::Relay && self.shards > 1
    }

    /// How many parts the upload cap is split into.
    fn parts(&self) -> usize {
        self.shards + usize::from(self.sharded_relay())
    }

    /// Neighbours the sharded relay's upstream peer may keep (0 for other nodes); the
    /// serving shards split the rest of N_max.
    fn upstream_n_max(&self) -> usize {
        if !self.sharded_relay() {
            return 0;
        }
        UPSTREAM_N_MAX.min(self.peer.n_max / self.parts()).max(1)
    }

    /// The sharded relay's upstream peer: the last part of the cap, a viewer's
    /// neighbour budget, seeks neighbours.
    pub fn upstream_config(&self) -> PeerConfig {
        let mut pc = self.shard_config(self.shards);
        pc.n_max = self.upstream_n_max();
        pc.tracker = self.peer.tracker;
        pc.n_min = self.peer.n_min.min(pc.n_max);
        pc.emit_received = true;
        pc
    }

    pub fn role_name(&self) -> &'static str {
        role_name(self.peer.role)
    }

    /// The metrics this node publishes to (`run_node_observed`).
    pub fn metrics(&self) -> Arc<NodeMetrics> {
        NodeMetrics::new(self.role_name(), Some(self.peer.channel), self.shards)
    }

    /// Checks what a user can get wrong before anything is bound.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.shards == 0 || self.shards > MAX_SHARDS {
            return Err(SpecError::Shards(self.shards));
        }
        if self.shards > 1 && self.peer.role == Role::Peer {
            return Err(SpecError::ShardedViewer);
        }
        if self.shards > 1 && self.peer.n_max < self.parts() {
            let what = if self.sharded_relay() {
                "the shard count + 1 (the relay's upstream peer)"
            } else {
                "the shard count"
            };
            return Err(SpecError::FewerNeighboursThanParts { n_max: self.peer.n_max, what, parts: self.parts() });
        }
        Ok(self.peer.validate()?)
    }

    /// Shard `k`'s configuration: its share of the upload cap and neighbour budget;
    /// every shard talks to the tracker (see the body).
    pub fn shard_config(&self, k: usize) -> PeerConfig {
        let mut pc = self.peer.clone();
        let s = self.parts() as u32;
        let k32 = k as u32;
        let up = self.peer.upload.0;
        pc.upload = Kbps(up / s + u32::from(k32 < up % s));
        let n = self.peer.n_max - self.upstream_n_max();
        let parts = self.shards;
        pc.n_max = (n / parts + usize::from(k < n % parts)).max(1);
        pc.n_min = if self.sharded_relay() { 0 } else { pc.n_min.min(pc.n_max) };
        // Every shard talks to the tracker: its replies reach whichever shard
        // SO_REUSEPORT hashes the tracker's address to, and only a shard that holds
        // the tracker's token can register the node's address (a token is per address,
        // so one registration covers every shard).
        pc
    }
}

pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Peer => "peer",
        Role::Seed => "seed",
        Role::Relay => "relay",
    }
}

/// What one shard hands back when it stops.
#[derive(Debug, Default)]
struct ShardResult {
    stats: PeerStats,
    io: IoStats,
    counted_seconds: f64,
    tracker: Option<TrackerStats>,
    nat: Option<NatStatus>,
    neighbours: Vec<NeighbourSummary>,
}

/// Binds one socket per shard on `addr`, sharing its port (`udp::bind_shared`).
fn bind_shared(addr: SocketAddr, shards: usize) -> io::Result<Vec<std::net::UdpSocket>> {
    udp::bind_shared(addr, shards).map_err(|e| io::Error::new(e.kind(), format!("cannot bind {addr}: {e}")))
}

/// Sends a snapshot every `STATUS_INTERVAL` until `stop`.
async fn publish(tx: mpsc::Sender<Snapshot>, stop: Arc<AtomicBool>, snapshot: impl Fn() -> Snapshot) {
    while !stop.load(Ordering::Relaxed) {
        glommio::timer::sleep(STATUS_INTERVAL).await;
        if tx.send(snapshot()).is_err() {
            return;
        }
    }
}

/// Starts one pinned executor running `f`; if `f` fails, `stop` is set so the other
/// shards and the supervisor end too.
fn spawn_shard<F, Fut>(
    shard: usize,
    core: usize,
    stop: Arc<AtomicBool>,
    f: F,
) -> io::Result<glommio::ExecutorJoinHandle<io::Result<ShardResult>>>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = io::Result<ShardResult>> + 'static,
{
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    LocalExecutorBuilder::new(Placement::Fixed(core % cores))
        .name(&format!("layerp2p-shard-{shard}"))
        .spawn(move || async move {
            let result = f().await;
            if result.is_err() {
                stop.store(true, Ordering::Relaxed);
            }
            result
        })
        .map_err(|e| io::Error::other(format!("cannot start executor: {e}")))
}

/// Relays snapshots to `on_status` until `stop`, then collects every shard's result.
fn supervise(
    handles: Vec<glommio::ExecutorJoinHandle<io::Result<ShardResult>>>,
    rx: mpsc::Receiver<Snapshot>,
    mut meter: StatusMeter,
    metrics: &NodeMetrics,
    stop: &AtomicBool,
    on_status: &mut dyn FnMut(&Status),
) -> io::Result<Vec<ShardResult>> {
    let mut next_line = Instant::now() + STATUS_INTERVAL;
    while !stop.load(Ordering::Relaxed) {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(s) => {
                metrics.record(s.clone(), Instant::now());
                meter.update(s);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        // One status per interval, whatever order the shards report in.
        if Instant::now() >= next_line {
            next_line += STATUS_INTERVAL;
            if let Some(status) = meter.status() {
                on_status(&status);
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    metrics.set_draining();
    let mut results = Vec::new();
    for h in handles {
        results.push(h.join().map_err(|e| io::Error::other(format!("executor failed: {e}")))??);
    }
    Ok(results)
}

fn summarize(
    role: &'static str,
    listen: SocketAddr,
    shards: usize,
    seconds: f64,
    results: Vec<ShardResult>,
) -> NodeSummary {
    let mut stats = PeerStats::default();
    let mut io = IoStats::default();
    let mut tracker = None;
    let mut counted_seconds: f64 = 0.0;
    let nat = results.iter().find_map(|r| r.nat.clone());
    let neighbours = results.iter().flat_map(|r| r.neighbours.iter().cloned()).collect();
    for r in &results {
        stats.merge(&r.stats);
        io.add(&r.io);
        counted_seconds = counted_seconds.max(r.counted_seconds);
        tracker = tracker.or_else(|| r.tracker.clone());
    }
    let kbps = |bytes: u64| if seconds > 0.0 { bytes as f64 * 8.0 / seconds / 1000.0 } else { 0.0 };
    NodeSummary {
        role,
        listen: listen.to_string(),
        shards,
        seconds,
        counted_seconds,
        playback_kbps: stats.playback_rate(counted_seconds).0 as f64,
        alpha: stats.layers.iter().map(|l| l.ratio()).collect(),
        upload_kbps: kbps(stats.bytes_up),
        download_kbps: kbps(stats.bytes_down),
        tracker,
        stats,
        io,
        nat,
        neighbours,
    }
}

/// Runs a standalone tracker at `listen` until `stop`.
pub fn run_tracker(
    listen: SocketAddr,
    cfg: TrackerConfig,
    rng_seed: u64,
    core: usize,
    stop: Arc<AtomicBool>,
    on_status: &mut dyn FnMut(&Status),
) -> io::Result<NodeSummary> {
    let metrics = NodeMetrics::new("tracker", None, 1);
    run_tracker_observed(listen, cfg, rng_seed, core, stop, &metrics, on_status)
}

/// `run_tracker`, publishing its snapshots to `metrics` (role "tracker", one shard).
pub fn run_tracker_observed(
    listen: SocketAddr,
    cfg: TrackerConfig,
    rng_seed: u64,
    core: usize,
    stop: Arc<AtomicBool>,
    metrics: &NodeMetrics,
    on_status: &mut dyn FnMut(&Status),
) -> io::Result<NodeSummary> {
    let socket = udp::bind(listen).map_err(|e| io::Error::new(e.kind(), format!("cannot bind {listen}: {e}")))?;
    let bound = socket.local_addr()?;
    let start = Instant::now();
    let (tx, rx) = mpsc::channel();
    let shard_stop = stop.clone();
    let handle = spawn_shard(0, core, stop.clone(), move || async move {
        let clock = Clock::starting_at(start);
        let tracker = Rc::new(RefCell::new(Tracker::new(cfg, rng_seed)));
        let t = tracker.clone();
        let live = Rc::new(RefCell::new(IoStats::default()));
        let l = live.clone();
        glommio::spawn_local(publish(tx, shard_stop.clone(), move || {
            tracker_snapshot(0, clock, &t.borrow(), *l.borrow())
        }))
        .detach();
        let io = drive_observed(tracker.clone(), socket, clock, shard_stop, LinkModel::NONE, 0, live).await;
        let stats = tracker.borrow().stats().clone();
        Ok(ShardResult { io, tracker: Some(stats), ..Default::default() })
    })?;
    let results = supervise(vec![handle], rx, StatusMeter::new("tracker", 1), metrics, &stop, on_status)?;
    Ok(summarize("tracker", bound, 1, start.elapsed().as_secs_f64(), results))
}

/// Drives `node` on `socket` (no link model), counting into `live`.
fn observed<N: layerp2p_proto::node::Node + 'static>(
    node: Rc<RefCell<N>>,
    socket: std::net::UdpSocket,
    clock: Clock,
    stop: &Arc<AtomicBool>,
    live: &Rc<RefCell<IoStats>>,
) -> impl std::future::Future<Output = IoStats> + use<N> {
    drive_observed(node, socket, clock, stop.clone(), LinkModel::NONE, 0, live.clone())
}

/// Hands every LC `peer` plays to `sink`, until `stop` (other events are dropped).
async fn play_out(peer: Rc<RefCell<Peer>>, sink: PlayoutSink, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        while let Some(e) = peer.borrow_mut().poll_event() {
            if let layerp2p_proto::peer::Event::Played(lc) = e {
                sink.played(lc);
            }
        }
        glommio::timer::sleep(PLAYOUT_TICK).await;
    }
}

fn tracker_snapshot(shard: usize, clock: Clock, t: &Tracker, io: IoStats) -> Snapshot {
    let peers = t.peers();
    Snapshot {
        shard,
        at: clock.now(),
        neighbours: 0,
        queued: 0,
        stats: PeerStats::default(),
        tracker_peers: Some(peers),
        tracker: Some(t.stats().clone()),
        io,
        nat: None,
        upload_estimate: None,
    }
}

/// Runs a seed, relay or peer until `stop`. A seed ingests from `source`.
pub fn run_node(
    spec: NodeSpec,
    source: Option<Box<dyn LcSource>>,
    stop: Arc<AtomicBool>,
    on_status: &mut dyn FnMut(&Status),
) -> io::Result<NodeSummary> {
    run_node_playing(spec, source, None, stop, on_status)
}

/// How often a viewer's played LCs are handed to its output.
pub const PLAYOUT_TICK: Duration = Duration::from_millis(20);

/// `run_node`, and every LC the node plays goes to `output` (a viewer's `--output`;
/// one-shard nodes only).
pub fn run_node_playing(
    spec: NodeSpec,
    source: Option<Box<dyn LcSource>>,
    output: Option<PlayoutSink>,
    stop: Arc<AtomicBool>,
    on_status: &mut dyn FnMut(&Status),
) -> io::Result<NodeSummary> {
    let metrics = spec.metrics();
    run_node_observed(spec, source, output, stop, &metrics, on_status)
}

/// `run_node_playing`, publishing every shard's snapshots to `metrics` (made by
/// `NodeSpec::metrics`).
pub fn run_node_observed(
    mut spec: NodeSpec,
    source: Option<Box<dyn LcSource>>,
    output: Option<PlayoutSink>,
    stop: Arc<AtomicBool>,
    metrics: &NodeMetrics,
    on_status: &mut dyn FnMut(&Status),
) -> io::Result<NodeSummary> {
    spec.validate().map_err(io::Error::other)?;
    if output.is_some() && spec.shards > 1 {
        return Err(io::Error::other("only a one-shard node writes what it plays"));
    }
    spec.peer.emit_playback |= output.is_some();
    let mut output = output;
    if spec.peer.role == Role::Seed && source.is_none() {
        return Err(io::Error::other("a seed needs a source to ingest"));
    }
    let mut sockets = bind_shared(spec.listen, spec.shards)?;
    let bound = sockets[0].local_addr()?;
    let mut tracker_socket = match spec.embedded_tracker {
        Some(addr) => {
            Some(udp::bind(addr).map_err(|e| io::Error::new(e.kind(), format!("cannot bind tracker {addr}: {e}")))?)
        }
        None => None,
    };
    let mut upstream_socket = match spec.sharded_relay() {
        true => Some(udp::bind(SocketAddr::new(spec.listen.ip(), 0))?),
        false => None,
    };
    let upstream_cfg = spec.upstream_config();
    let start = Instant::now();
    let (tx, rx) = mpsc::channel();
    // Ingest runs on shard 0 and feeds every other shard through its own SPSC channel.
    let mut fan_tx = Vec::new();
    let mut fan_rx: Vec<Option<_>> = vec![None];
    for _ in 1..spec.shards {
        let (s, r) = fanout_channel();
        fan_tx.push(s);
        fan_rx.push(Some(r));
    }
    let mut source = source;
    let mut fan_tx = Some(fan_tx);
    let mut handles = Vec::new();
    for (k, socket) in sockets.drain(..).enumerate() {
        let cfg = spec.shard_config(k);
        let rng_seed = spec.rng_seed.wrapping_add(k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let (tracker_socket, source, fan_tx, fan_rx, upstream, output) = if k == 0 {
            (
                tracker_socket.take(),
                source.take(),
                fan_tx.take().unwrap_or_default(),
                None,
                upstream_socket.take(),
                output.take(),
            )
        } else {
            (None, None, Vec::new(), fan_rx[k].take(), None, None)
        };
        let upstream_cfg = upstream_cfg.clone();
        let sharded_relay = spec.sharded_relay();
        let (tx, stop) = (tx.clone(), stop.clone());
        let handle = spawn_shard(k, spec.first_core + k, stop.clone(), move || async move {
            let clock = Clock::starting_at(start);
            // Every socket this shard drives counts into its own live stats; the
            // snapshot adds them up.
            let live: [Rc<RefCell<IoStats>>; 3] = Default::default();
            let tracker = tracker_socket.map(|socket| {
                let tracker = Rc::new(RefCell::new(Tracker::new(TrackerConfig::default(), rng_seed ^ 0x7AC4)));
                (tracker.clone(), glommio::spawn_local(observed(tracker, socket, clock, &stop, &live[1])))
            });
            let local = socket.local_addr()?;
            let mut peer = Peer::new(cfg, rng_seed, clock.now()).map_err(|e| io::Error::other(e.to_string()))?;
            peer.set_local_addrs(udp::local_addrs(local));
            let peer = Rc::new(RefCell::new(peer));
            let mut upstream_task = None;
            if let Some(source) = source {
                glommio::spawn_local(ingest(source, peer.clone(), fan_tx, clock, stop.clone())).detach();
            } else if let Some(socket) = upstream {
                let up = Peer::new(upstream_cfg, rng_seed ^ 0x0F57, clock.now())
                    .map_err(|e| io::Error::other(e.to_string()))?;
                let up = Rc::new(RefCell::new(up));
                let events = up.clone();
                let pull = move |_now, out: &mut Vec<layerp2p_codec::Lc>| {
                    while let Some(e) = events.borrow_mut().poll_event() {
                        if let layerp2p_proto::peer::Event::Received(lc) = e {
                            out.push(lc);
                        }
                    }
                };
                glommio::spawn_local(fan_out(pull, peer.clone(), fan_tx, clock, stop.clone())).detach();
                upstream_task = Some((up.clone(), glommio::spawn_local(observed(up, socket, clock, &stop, &live[2]))));
            }
            if let Some(rx) = fan_rx {
                glommio::spawn_local(receive(rx, peer.clone(), clock)).detach();
            }
            // Awaited, not detached: the writer ends only once this sink is dropped.
            let playout_task = output.map(|sink| glommio::spawn_local(play_out(peer.clone(), sink, stop.clone())));
            let (p, t, l) = (peer.clone(), tracker.as_ref().map(|(t, _)| t.clone()), live.clone());
            glommio::spawn_local(publish(tx, stop.clone(), move || {
                let p = p.borrow();
                let mut io = IoStats::default();
                l.iter().for_each(|l| io.add(&l.borrow()));
                Snapshot {
                    shard: k,
                    at: clock.now(),
                    neighbours: p.neighbour_count(),
                    queued: p.queued_requests(),
                    stats: p.stats(),
                    tracker_peers: t.as_ref().map(|t| t.borrow().peer_count(p.config().channel)),
                    tracker: t.as_ref().map(|t| t.borrow().stats().clone()),
                    io,
                    nat: Some(p.nat_status()),
                    upload_estimate: p.upload_estimate().map(|(rate, delay)| UploadEstimate {
                        kbps: f64::from(rate.0),
                        queueing_delay_ms: delay.map(|d| d.as_secs_f64() * 1000.0),
                    }),
                }
            }))
            .detach();
            let mut io = observed(peer.clone(), socket, clock, &stop, &live[0]).await;
            if let Some(task) = playout_task {
                task.await;
            }
            let mut tracker_stats = None;
            let mut upstream_stats = None;
            if let Some((up, task)) = upstream_task {
                io.add(&task.await);
                upstream_stats = Some(up.borrow().stats());
            }
            if let Some((t, task)) = tracker {
                io.add(&task.await);
                tracker_stats = Some(t.borrow().stats().clone());
            }
            let p = peer.borrow();
            let counted_seconds = if p.config().role == Role::Seed {
                0.0
            } else {
                clock.now().0.saturating_sub(p.counted_since().0) as f64 / 1e6
            };
            let mut stats = p.stats();
            if sharded_relay {
                // Serving shards only relay; what the relay plays is its upstream's.
                stats.layers.iter_mut().for_each(|l| *l = Default::default());
            }
            if let Some(up) = upstream_stats {
                stats.merge(&up);
            }
            let neighbours = p
                .neighbour_traffic()
                .map(|(addr, bytes_up, bytes_down)| NeighbourSummary { addr: addr.to_string(), bytes_up, bytes_down })
                .collect();
            let nat = Some(p.nat_status());
            Ok(ShardResult { stats, io, counted_seconds, tracker: tracker_stats, nat, neighbours })
        })?;
        handles.push(handle);
    }
    drop(tx);
    let results = supervise(handles, rx, StatusMeter::new(spec.role_name(), spec.shards), metrics, &stop, on_status)?;
    Ok(summarize(spec.role_name(), bound, spec.shards, start.elapsed().as_secs_f64(), results))
}

#[cfg(test)]
mod tests {
    use super::*;
    use layerp2p_codec::LayerPlan;

    #[test]
    fn shards_split_upload_and_neighbours_and_every_shard_talks_to_the_tracker() {
        let mut peer = PeerConfig::seed(layerp2p_proto::Policy::LayerP2P, LayerPlan::prototype(), Kbps(2001));
        peer.n_max = 21;
        peer.tracker = Some(SocketAddr::from(([127, 0, 0, 1], 9)));
        let spec = NodeSpec {
            peer,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            shards: 2,
            embedded_tracker: None,
            first_core: 0,
            rng_seed: 1,
        };
        assert!(spec.validate().is_ok());
        let (a, b) = (spec.shard_config(0), spec.shard_config(1));
        assert_eq!(a.upload.0 + b.upload.0, 2001);
        assert_eq!(a.n_max + b.n_max, 21);
        assert!(a.tracker.is_some() && b.tracker == a.tracker, "every shard can take the tracker's token");
        let peer = NodeSpec {
            peer: PeerConfig::peer(layerp2p_proto::Policy::LayerP2P, LayerPlan::prototype(), Kbps(1)),
            ..spec.clone()
        };
        assert!(peer.validate().is_err(), "a viewer runs one shard");
        let mut rc = PeerConfig::relay(layerp2p_proto::Policy::LayerP2P, LayerPlan::prototype(), Kbps(3000));
        rc.tracker = Some(SocketAddr::from(([127, 0, 0, 1], 9)));
        let relay = NodeSpec { peer: rc, ..spec };
        assert!(relay.validate().is_ok());
        // Two serving shards, accept-only, and an upstream peer that seeks: 3 parts.
        let (a, b, up) = (relay.shard_config(0), relay.shard_config(1), relay.upstream_config());
        assert_eq!(a.upload.0 + b.upload.0 + up.upload.0, 3000);
        assert_eq!((a.n_min, b.n_min), (0, 0));
        assert!(up.n_min > 0 && up.tracker.is_some() && up.emit_received && !a.emit_received);
        // The viewers' budget goes to the serving shards; the upstream keeps a viewer's.
        assert_eq!((a.n_max, b.n_max, up.n_max), (90, 90, UPSTREAM_N_MAX), "{} {} {}", a.n_max, b.n_max, up.n_max);
        let big = NodeSpec { peer: PeerConfig { n_max: 6000, ..relay.peer.clone() }, ..relay.clone() };
        let (a, b, up) = (big.shard_config(0), big.shard_config(1), big.upstream_config());
        assert_eq!(a.n_max + b.n_max + up.n_max, 6000);
        assert!(a.n_max >= 2990 && b.n_max >= 2990, "serving shards get {} and {}", a.n_max, b.n_max);
        let tiny = NodeSpec { peer: PeerConfig { n_max: 3, ..relay.peer.clone() }, ..relay };
        assert_eq!((tiny.shard_config(0).n_max, tiny.shard_config(1).n_max, tiny.upstream_config().n_max), (1, 1, 1));
    }
}

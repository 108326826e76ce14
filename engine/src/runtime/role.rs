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

use super::driver::{drive, Clock, IoStats};
use super::ingest::{fanout_channel, ingest, receive};
use super::status::{NodeSummary, Snapshot, Status, StatusMeter};
use super::udp;
use crate::config::PeerConfig;
use crate::peer::{Peer, PeerStats};
use crate::tracker::{Tracker, TrackerConfig, TrackerStats};
use crate::wire::Role;
use glommio::{LocalExecutorBuilder, Placement};
use layerp2p_codec::{Kbps, LcSource};
use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// How often each shard publishes a snapshot (and the status line refreshes).
pub const STATUS_INTERVAL: Duration = Duration::from_secs(1);
/// Most shards a node may run.
pub const MAX_SHARDS: usize = 64;

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

impl NodeSpec {
    pub fn role_name(&self) -> &'static str {
        role_name(self.peer.role)
    }

    /// Checks what a user can get wrong before anything is bound.
    pub fn validate(&self) -> Result<(), String> {
        if self.shards == 0 || self.shards > MAX_SHARDS {
            return Err(format!("shards must be 1..={MAX_SHARDS}, got {}", self.shards));
        }
        if self.shards > 1 && self.peer.role != Role::Seed {
            return Err("only a seed runs several shards: a relay or peer initiates neighbour relationships, \
                        whose replies SO_REUSEPORT could deliver to another shard"
                .into());
        }
        if self.shards > 1 && self.peer.n_max < self.shards {
            return Err(format!("n_max {} is smaller than the shard count {}", self.peer.n_max, self.shards));
        }
        self.peer.validate()
    }

    /// Shard `k`'s configuration: its share of the upload cap and neighbour budget;
    /// only shard 0 registers with the tracker.
    pub fn shard_config(&self, k: usize) -> PeerConfig {
        let mut pc = self.peer.clone();
        let s = self.shards as u32;
        let k32 = k as u32;
        let up = self.peer.upload.0;
        pc.upload = Kbps(up / s + u32::from(k32 < up % s));
        let n = self.peer.n_max;
        pc.n_max = (n / self.shards + usize::from(k < n % self.shards)).max(1);
        pc.n_min = pc.n_min.min(pc.n_max);
        if k > 0 {
            pc.tracker = None;
        }
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
}

/// Binds `shards` sockets on one address with SO_REUSEPORT (port 0: the kernel's
/// choice for the first, shared by the rest).
fn bind_shared(addr: SocketAddr, shards: usize) -> io::Result<Vec<std::net::UdpSocket>> {
    let first = udp::bind(addr).map_err(|e| io::Error::new(e.kind(), format!("cannot bind {addr}: {e}")))?;
    let actual = first.local_addr()?;
    let mut sockets = vec![first];
    for _ in 1..shards {
        sockets.push(udp::bind(actual)?);
    }
    Ok(sockets)
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
    stop: &AtomicBool,
    on_status: &mut dyn FnMut(&Status),
) -> io::Result<Vec<ShardResult>> {
    let mut next_line = Instant::now() + STATUS_INTERVAL;
    while !stop.load(Ordering::Relaxed) {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(s) => meter.update(s),
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
    let mut results = Vec::new();
    for h in handles {
        results.push(h.join().map_err(|e| io::Error::other(format!("executor failed: {e}")))??);
    }
    Ok(results)
}

fn summarize(role: &'static str, listen: SocketAddr, shards: usize, seconds: f64, results: Vec<ShardResult>) -> NodeSummary {
    let mut stats = PeerStats::default();
    let mut io = IoStats::default();
    let mut tracker = None;
    let mut counted_seconds: f64 = 0.0;
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
    let socket = udp::bind(listen).map_err(|e| io::Error::new(e.kind(), format!("cannot bind {listen}: {e}")))?;
    let bound = socket.local_addr()?;
    let start = Instant::now();
    let (tx, rx) = mpsc::channel();
    let shard_stop = stop.clone();
    let handle = spawn_shard(0, core, stop.clone(), move || async move {
        let clock = Clock::starting_at(start);
        let tracker = Rc::new(RefCell::new(Tracker::new(cfg, rng_seed)));
        let t = tracker.clone();
        glommio::spawn_local(publish(tx, shard_stop.clone(), move || tracker_snapshot(0, clock, &t.borrow()))).detach();
        let io = drive(tracker.clone(), socket, clock, shard_stop).await;
        let stats = tracker.borrow().stats().clone();
        Ok(ShardResult { io, tracker: Some(stats), ..Default::default() })
    })?;
    let results = supervise(vec![handle], rx, StatusMeter::new("tracker", 1), &stop, on_status)?;
    Ok(summarize("tracker", bound, 1, start.elapsed().as_secs_f64(), results))
}

fn tracker_snapshot(shard: usize, clock: Clock, t: &Tracker) -> Snapshot {
    let peers = t.peer_count(crate::wire::ChannelId(1));
    Snapshot { shard, at: clock.now(), neighbours: 0, queued: 0, stats: PeerStats::default(), tracker_peers: Some(peers) }
}

/// Runs a seed, relay or peer until `stop`. A seed ingests from `source`.
pub fn run_node(
    spec: NodeSpec,
    source: Option<Box<dyn LcSource>>,
    stop: Arc<AtomicBool>,
    on_status: &mut dyn FnMut(&Status),
) -> io::Result<NodeSummary> {
    spec.validate().map_err(io::Error::other)?;
    if spec.peer.role == Role::Seed && source.is_none() {
        return Err(io::Error::other("a seed needs a source to ingest"));
    }
    let mut sockets = bind_shared(spec.listen, spec.shards)?;
    let bound = sockets[0].local_addr()?;
    let mut tracker_socket = match spec.embedded_tracker {
        Some(addr) => Some(udp::bind(addr).map_err(|e| io::Error::new(e.kind(), format!("cannot bind tracker {addr}: {e}")))?),
        None => None,
    };
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
        let (tracker_socket, source, fan_tx, fan_rx) =
            if k == 0 { (tracker_socket.take(), source.take(), fan_tx.take().unwrap_or_default(), None) } else { (None, None, Vec::new(), fan_rx[k].take()) };
        let (tx, stop) = (tx.clone(), stop.clone());
        let handle = spawn_shard(k, spec.first_core + k, stop.clone(), move || async move {
            let clock = Clock::starting_at(start);
            let tracker = tracker_socket.map(|socket| {
                let tracker = Rc::new(RefCell::new(Tracker::new(TrackerConfig::default(), rng_seed ^ 0x7AC4)));
                (tracker.clone(), glommio::spawn_local(drive(tracker, socket, clock, stop.clone())))
            });
            let peer = Peer::new(cfg, rng_seed, clock.now()).map_err(|e| io::Error::other(e.to_string()))?;
            let peer = Rc::new(RefCell::new(peer));
            if let Some(source) = source {
                glommio::spawn_local(ingest(source, peer.clone(), fan_tx, clock, stop.clone())).detach();
            }
            if let Some(rx) = fan_rx {
                glommio::spawn_local(receive(rx, peer.clone(), clock)).detach();
            }
            let (p, t) = (peer.clone(), tracker.as_ref().map(|(t, _)| t.clone()));
            glommio::spawn_local(publish(tx, stop.clone(), move || {
                let p = p.borrow();
                Snapshot {
                    shard: k,
                    at: clock.now(),
                    neighbours: p.neighbour_count(),
                    queued: p.queued_requests(),
                    stats: p.stats(),
                    tracker_peers: t.as_ref().map(|t| t.borrow().peer_count(p.config().channel)),
                }
            }))
            .detach();
            let mut io = drive(peer.clone(), socket, clock, stop).await;
            let mut tracker_stats = None;
            if let Some((t, task)) = tracker {
                io.add(&task.await);
                tracker_stats = Some(t.borrow().stats().clone());
            }
            let p = peer.borrow();
            let counted_seconds =
                if p.config().role == Role::Seed { 0.0 } else { clock.now().0.saturating_sub(p.counted_since().0) as f64 / 1e6 };
            Ok(ShardResult { stats: p.stats(), io, counted_seconds, tracker: tracker_stats })
        })?;
        handles.push(handle);
    }
    drop(tx);
    let results = supervise(handles, rx, StatusMeter::new(spec.role_name(), spec.shards), &stop, on_status)?;
    Ok(summarize(spec.role_name(), bound, spec.shards, start.elapsed().as_secs_f64(), results))
}

#[cfg(test)]
mod tests {
    use super::*;
    use layerp2p_codec::LayerPlan;

    #[test]
    fn shards_split_upload_and_neighbours_and_only_shard_zero_registers() {
        let mut peer = PeerConfig::seed(crate::Policy::LayerP2P, LayerPlan::prototype(), Kbps(2001));
        peer.n_max = 21;
        peer.tracker = Some(SocketAddr::from(([127, 0, 0, 1], 9)));
        let spec = NodeSpec { peer, listen: SocketAddr::from(([127, 0, 0, 1], 0)), shards: 2, embedded_tracker: None, first_core: 0, rng_seed: 1 };
        assert!(spec.validate().is_ok());
        let (a, b) = (spec.shard_config(0), spec.shard_config(1));
        assert_eq!(a.upload.0 + b.upload.0, 2001);
        assert_eq!(a.n_max + b.n_max, 21);
        assert!(a.tracker.is_some() && b.tracker.is_none());
        let relay = NodeSpec { peer: PeerConfig::relay(crate::Policy::LayerP2P, LayerPlan::prototype(), Kbps(1)), ..spec };
        assert!(relay.validate().is_err(), "a multi-shard relay would initiate on the shared port");
    }
}

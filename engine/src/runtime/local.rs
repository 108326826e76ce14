//! A whole swarm in one process over real loopback UDP: a tracker, a seed fed by any
//! `LcSource` (the synthetic one by default), and viewers joining on a schedule, spread over one pinned glommio
//! executor per shard. Used by `layerp2p demo` and the runtime tests.

use super::driver::{drive, Clock, IoStats};
use super::ingest::ingest;
use super::udp;
use crate::config::PeerConfig;
use crate::peer::Peer;
use crate::sim::report::{PeerOutcome, SwarmReport};
use crate::sim::PeerSpec;
use crate::tracker::{Tracker, TrackerConfig};
use glommio::{LocalExecutorBuilder, Placement};
use layerp2p_codec::{Kbps, LcSource};
use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct LocalSwarmConfig {
    /// Template for every viewer; `upload` and `tracker` are set per peer.
    pub peer: PeerConfig,
    pub seed_upload: Kbps,
    pub seed_n_max: usize,
    pub classes: Vec<String>,
    /// Join times are offsets from the start; `leave` is ignored.
    pub peers: Vec<PeerSpec>,
    pub duration: Duration,
    /// Executors (pinned to cores round-robin).
    pub shards: usize,
    pub seed: u64,
}

#[derive(Debug)]
pub struct LocalReport {
    pub swarm: SwarmReport,
    pub io: IoStats,
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Runs the swarm for `cfg.duration` with the seed ingesting `source`, calling
/// `progress(elapsed)` about once a second. The layer plan is the source's.
pub fn run_local_swarm(
    cfg: LocalSwarmConfig,
    source: Box<dyn LcSource>,
    progress: &mut dyn FnMut(Duration),
) -> io::Result<LocalReport> {
    let plan = source.plan().clone();
    if plan != cfg.peer.plan {
        return Err(io::Error::other("the peers' layer plan differs from the source's"));
    }
    let tracker_socket = udp::bind(loopback())?;
    let tracker_addr = tracker_socket.local_addr()?;
    let seed_socket = udp::bind(loopback())?;
    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let shards = cfg.shards.max(1);
    let mut infra = Some((tracker_socket, seed_socket, source));
    let mut handles = Vec::new();
    for shard in 0..shards {
        let mine: Vec<(usize, PeerSpec)> =
            cfg.peers.iter().cloned().enumerate().filter(|(i, _)| i % shards == shard).collect();
        let infra = if shard == 0 { infra.take() } else { None };
        let cfg = cfg.clone();
        let stop = stop.clone();
        let handle = LocalExecutorBuilder::new(Placement::Fixed(shard % cores))
            .name(&format!("layerp2p-shard-{shard}"))
            .spawn(move || async move { run_shard(cfg, mine, infra, tracker_addr, start, stop).await })
            .map_err(|e| io::Error::other(format!("cannot start executor: {e}")))?;
        handles.push(handle);
    }
    while start.elapsed() < cfg.duration {
        std::thread::sleep(Duration::from_secs(1).min(cfg.duration.saturating_sub(start.elapsed())));
        progress(start.elapsed());
    }
    stop.store(true, Ordering::Relaxed);
    let mut outcomes = Vec::new();
    let mut io_total = IoStats::default();
    for h in handles {
        let (o, io) = h.join().map_err(|e| io::Error::other(format!("executor failed: {e}")))??;
        outcomes.extend(o);
        io_total.add(&io);
    }
    let lc_deliveries = outcomes.iter().map(|o: &PeerOutcome| o.stats.lcs_down).sum();
    Ok(LocalReport { swarm: SwarmReport::new(cfg.classes, plan, outcomes, lc_deliveries), io: io_total })
}

async fn run_shard(
    cfg: LocalSwarmConfig,
    peers: Vec<(usize, PeerSpec)>,
    infra: Option<(std::net::UdpSocket, std::net::UdpSocket, Box<dyn LcSource>)>,
    tracker_addr: SocketAddr,
    start: Instant,
    stop: Arc<AtomicBool>,
) -> io::Result<(Vec<PeerOutcome>, IoStats)> {
    let clock = Clock::starting_at(start);
    let mut io = IoStats::default();
    let mut infra_tasks = Vec::new();
    if let Some((tracker_socket, seed_socket, source)) = infra {
        let tracker = Rc::new(RefCell::new(Tracker::new(TrackerConfig::default(), cfg.seed)));
        infra_tasks.push(glommio::spawn_local(drive(tracker, tracker_socket, clock, stop.clone())));
        let mut seed_cfg = PeerConfig::seed(cfg.peer.policy, cfg.peer.plan.clone(), cfg.seed_upload);
        seed_cfg.tracker = Some(tracker_addr);
        seed_cfg.n_max = cfg.seed_n_max;
        seed_cfg.lag = cfg.peer.lag;
        seed_cfg.round = cfg.peer.round;
        let seed = Peer::new(seed_cfg, cfg.seed ^ 0x5EED, clock.now()).map_err(|e| io::Error::other(e.to_string()))?;
        let seed = Rc::new(RefCell::new(seed));
        glommio::spawn_local(ingest(source, seed.clone(), Vec::new(), clock, stop.clone())).detach();
        infra_tasks.push(glommio::spawn_local(drive(seed, seed_socket, clock, stop.clone())));
    }
    let mut viewers = Vec::new();
    for (index, spec) in peers {
        let mut pc = cfg.peer.clone();
        pc.upload = spec.upload;
        pc.tracker = Some(tracker_addr);
        let stop = stop.clone();
        let rng_seed = cfg.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ index as u64;
        viewers.push(glommio::spawn_local(async move {
            glommio::timer::sleep(Duration::from_micros(spec.join.0).saturating_sub(start.elapsed())).await;
            let socket = udp::bind(loopback())?;
            let peer = Peer::new(pc, rng_seed, clock.now()).map_err(|e| io::Error::other(e.to_string()))?;
            let peer = Rc::new(RefCell::new(peer));
            let io = drive(peer.clone(), socket, clock, stop).await;
            let p = peer.borrow();
            let seconds = clock.now().0.saturating_sub(p.counted_since().0) as f64 / 1e6;
            Ok::<_, io::Error>((PeerOutcome { class: spec.class, upload: spec.upload, seconds, stats: p.stats() }, io))
        }));
    }
    let mut outcomes = Vec::new();
    for v in viewers {
        let (outcome, peer_io) = v.await?;
        outcomes.push(outcome);
        io.add(&peer_io);
    }
    for t in infra_tasks {
        io.add(&t.await);
    }
    Ok((outcomes, io))
}

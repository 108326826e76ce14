//! A whole swarm in one process over real loopback UDP: a tracker, a seed fed by any
//! `LcSource` (the synthetic one by default), and viewers joining on a schedule, spread over one pinned glommio
//! executor per shard. Used by `layerp2p demo`, `layerp2p experiment` and the runtime
//! tests. Viewers picked in a `Watch` are also observed while they run: a per-second
//! sample of their counters (the time series of a typical peer) and, with playback
//! logging, the `(frame, part)` of every LC they played (for decoding and PSNR).

use super::driver::{Clock, IoStats, drive, drive_linked};
use super::ingest::ingest;
use super::link::Links;
use glommio::{LocalExecutorBuilder, Placement};
use layerp2p_codec::{Kbps, LcSource};
use layerp2p_proto::config::PeerConfig;
use layerp2p_proto::integrity::ContentAuth;
use layerp2p_proto::peer::Peer;
use layerp2p_proto::swarm::PeerSpec;
use layerp2p_proto::swarm::report::{PeerOutcome, SwarmReport};
use layerp2p_proto::tracker::{Tracker, TrackerConfig};
use layerp2p_udp as udp;
use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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
    /// The viewers' simulated access links (delay, loss) on what each viewer
    /// receives; the tracker and the seed have none of their own (what they send
    /// still crosses the receiving viewer's link). `Links::default()` is plain loopback.
    pub links: Links,
    pub seed: u64,
}

#[derive(Debug)]
pub struct LocalReport {
    pub swarm: SwarmReport,
    pub io: IoStats,
    /// The watched viewers, in viewer-index order.
    pub watched: Vec<WatchedPeer>,
    /// CPU seconds (user + system) each shard's executor thread used, in shard order:
    /// near the run's wall time means the shard was saturated and timers ran late.
    pub shard_cpu_s: Vec<f64>,
}

/// Which viewers to observe while the swarm runs.
#[derive(Clone, Debug, Default)]
pub struct Watch {
    /// Indices into `LocalSwarmConfig::peers`.
    pub peers: Vec<usize>,
    /// Also log the LCs they play (turns on `emit_playback` for them only).
    pub playback: bool,
}

/// Most LCs one watched viewer's playback log holds (about 5 h of 620 kbps video);
/// later ones are not logged.
pub const MAX_PLAYED_LOG: usize = 1 << 22;
/// How often a watched viewer is sampled (and its playback events drained).
pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// One per-second observation of a watched viewer: counters since it joined.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Sample {
    /// Seconds since the swarm started.
    pub at_s: f64,
    /// Played LC bytes per layer so far (index 0 = layer 1).
    pub played_bytes: Vec<u64>,
    /// LC bytes uploaded and downloaded so far.
    pub bytes_up: u64,
    pub bytes_down: u64,
}

/// What was observed of one watched viewer.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct WatchedPeer {
    pub index: usize,
    pub class: usize,
    pub upload: Kbps,
    pub samples: Vec<Sample>,
    /// `(frame, part)` of each LC played, in playback order (empty unless logged).
    #[serde(skip)]
    pub played: Vec<(u32, u16)>,
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
    run_local_swarm_watched(cfg, source, Watch::default(), progress)
}

/// `run_local_swarm`, also observing the viewers in `watch`.
pub fn run_local_swarm_watched(
    cfg: LocalSwarmConfig,
    source: Box<dyn LcSource>,
    watch: Watch,
    progress: &mut dyn FnMut(Duration),
) -> io::Result<LocalReport> {
    if let Some(&bad) = watch.peers.iter().find(|&&i| i >= cfg.peers.len()) {
        return Err(io::Error::other(format!("watched viewer {bad} does not exist ({} viewers)", cfg.peers.len())));
    }
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
        let watch = watch.clone();
        let handle = LocalExecutorBuilder::new(Placement::Fixed(shard % cores))
            .name(&format!("layerp2p-shard-{shard}"))
            .spawn(move || async move { run_shard(cfg, mine, infra, tracker_addr, watch, start, stop).await })
            .map_err(|e| io::Error::other(format!("cannot start executor: {e}")))?;
        handles.push(handle);
    }
    while start.elapsed() < cfg.duration {
        std::thread::sleep(Duration::from_secs(1).min(cfg.duration.saturating_sub(start.elapsed())));
        progress(start.elapsed());
    }
    stop.store(true, Ordering::Relaxed);
    let mut outcomes = Vec::new();
    let mut watched = Vec::new();
    let mut io_total = IoStats::default();
    let mut shard_cpu_s = Vec::new();
    for h in handles {
        let (o, w, io, cpu) = h.join().map_err(|e| io::Error::other(format!("executor failed: {e}")))??;
        outcomes.extend(o);
        watched.extend(w);
        io_total.add(&io);
        shard_cpu_s.push(cpu);
    }
    watched.sort_by_key(|w: &WatchedPeer| w.index);
    let lc_deliveries = outcomes.iter().map(|o: &PeerOutcome| o.stats.lcs_down).sum();
    Ok(LocalReport {
        swarm: SwarmReport::new(cfg.classes, plan, outcomes, lc_deliveries),
        io: io_total,
        watched,
        shard_cpu_s,
    })
}

/// Samples a watched viewer every `SAMPLE_EVERY` until `stop`, draining its playback
/// events into `log` (bounded by `MAX_PLAYED_LOG`).
async fn observe(peer: Rc<RefCell<Peer>>, clock: Clock, stop: Arc<AtomicBool>, log: Rc<RefCell<WatchedPeer>>) {
    loop {
        {
            let mut p = peer.borrow_mut();
            let mut w = log.borrow_mut();
            while let Some(ev) = p.poll_event() {
                if let layerp2p_proto::peer::Event::Played(lc) = ev
                    && w.played.len() < MAX_PLAYED_LOG
                {
                    w.played.push((lc.header.frame, lc.header.part));
                }
            }
            let stats = p.stats();
            w.samples.push(Sample {
                at_s: clock.now().0 as f64 / 1e6,
                played_bytes: stats.layers.iter().map(|l| l.played_bytes).collect(),
                bytes_up: stats.bytes_up,
                bytes_down: stats.bytes_down,
            });
        }
        if stop.load(Ordering::Relaxed) {
            return;
        }
        glommio::timer::sleep(SAMPLE_EVERY).await;
    }
}

async fn run_shard(
    cfg: LocalSwarmConfig,
    peers: Vec<(usize, PeerSpec)>,
    infra: Option<(std::net::UdpSocket, std::net::UdpSocket, Box<dyn LcSource>)>,
    tracker_addr: SocketAddr,
    watch: Watch,
    start: Instant,
    stop: Arc<AtomicBool>,
) -> io::Result<(Vec<PeerOutcome>, Vec<WatchedPeer>, IoStats, f64)> {
    let clock = Clock::starting_at(start);
    let mut io = IoStats::default();
    let mut infra_tasks = Vec::new();
    if let Some((tracker_socket, seed_socket, source)) = infra {
        let tracker = Rc::new(RefCell::new(Tracker::new(TrackerConfig::one_prefix(), cfg.seed)));
        infra_tasks.push(glommio::spawn_local(drive(tracker, tracker_socket, clock, stop.clone())));
        let mut seed_cfg = PeerConfig::seed(cfg.peer.policy, cfg.peer.plan.clone(), cfg.seed_upload);
        seed_cfg.tracker = Some(tracker_addr);
        seed_cfg.n_max = cfg.seed_n_max;
        seed_cfg.lag = cfg.peer.lag;
        seed_cfg.round = cfg.peer.round;
        seed_cfg.incentive = cfg.peer.incentive;
        seed_cfg.content_auth = channel_auth(&cfg);
        let seed = Peer::new(seed_cfg, cfg.seed ^ 0x5EED, clock.now()).map_err(|e| io::Error::other(e.to_string()))?;
        let seed = Rc::new(RefCell::new(seed));
        glommio::spawn_local(ingest(source, seed.clone(), Vec::new(), clock, stop.clone())).detach();
        infra_tasks.push(glommio::spawn_local(drive(seed, seed_socket, clock, stop.clone())));
    }
    let mut viewers = Vec::new();
    for (index, spec) in peers {
        let mut pc = cfg.peer.clone();
        pc.content_auth = channel_auth(&cfg).for_viewer();
        pc.upload = spec.upload;
        pc.tracker = Some(tracker_addr);
        // The local tracker's lists have no head of longest-present peers to try first
        // (`TrackerConfig::one_prefix`, as in the simulator): its first entries are only
        // its veterans, and trying them in order sends every newcomer to full peers.
        pc.list_head_tries = 0;
        let watched = watch.peers.contains(&index);
        pc.emit_playback = watched && watch.playback;
        let stop = stop.clone();
        let rng_seed = cfg.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ index as u64;
        let (cfg_links, link_seed) = (cfg.links, cfg.seed);
        viewers.push(glommio::spawn_local(async move {
            glommio::timer::sleep(Duration::from_micros(spec.join.0).saturating_sub(start.elapsed())).await;
            let socket = udp::bind(loopback())?;
            let peer = Peer::new(pc, rng_seed, clock.now()).map_err(|e| io::Error::other(e.to_string()))?;
            let peer = Rc::new(RefCell::new(peer));
            let log = watched.then(|| {
                let log = WatchedPeer {
                    index,
                    class: spec.class,
                    upload: spec.upload,
                    samples: Vec::new(),
                    played: Vec::new(),
                };
                let log = Rc::new(RefCell::new(log));
                (glommio::spawn_local(observe(peer.clone(), clock, stop.clone(), log.clone())), log)
            });
            let link = cfg_links.viewer(link_seed, index);
            let io = drive_linked(peer.clone(), socket, clock, stop, link, rng_seed ^ 0x1055).await;
            let watched = match log {
                Some((task, log)) => {
                    task.await;
                    Some(log.take())
                }
                None => None,
            };
            let p = peer.borrow();
            let seconds = clock.now().0.saturating_sub(p.counted_since().0) as f64 / 1e6;
            Ok::<_, io::Error>((
                PeerOutcome { class: spec.class, upload: spec.upload, seconds, stats: p.stats() },
                watched,
                io,
            ))
        }));
    }
    let mut outcomes = Vec::new();
    let mut watched = Vec::new();
    for v in viewers {
        let (outcome, w, peer_io) = v.await?;
        outcomes.push(outcome);
        watched.extend(w);
        io.add(&peer_io);
    }
    for t in infra_tasks {
        io.add(&t.await);
    }
    Ok((outcomes, watched, io, thread_cpu_seconds()))
}

/// CPU time (user + system) the calling thread has used, in seconds.
fn thread_cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut u) } != 0 {
        return 0.0;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(u.ru_utime) + secs(u.ru_stime)
}

/// The channel key: the template's, or (content checking is always on over real
/// sockets) one derived from the run seed. A deployed seed loads its key from its
/// configuration and publishes the public half with the channel id.
fn channel_auth(cfg: &LocalSwarmConfig) -> ContentAuth {
    match &cfg.peer.content_auth {
        ContentAuth::Off => {
            let mut secret = [0u8; 32];
            secret[..8].copy_from_slice(&cfg.seed.to_le_bytes());
            secret[8..16].copy_from_slice(b"channel!");
            ContentAuth::Sign(ContentAuth::signing_key(secret))
        }
        auth => auth.clone(),
    }
}

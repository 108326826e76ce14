//! The built-in node under test: the runtime's own seed (`runtime::role::run_node`,
//! the code `layerp2p seed` runs, with its embedded tracker and `shards` pinned
//! executors) fed by the synthetic source, started in the load generator's process
//! when no `--target` is given. Its CPU use is read from its executor threads.

use super::procfs::CpuSource;
use layerp2p_codec::Kbps;
use layerp2p_codec::synthetic::{SyntheticConfig, SyntheticSource};
use layerp2p_proto::{PeerConfig, Policy};
use layerp2p_runtime::role::{NodeSpec, run_node};
use layerp2p_runtime::status::NodeSummary;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

/// The runtime names its executor threads `layerp2p-shard-N`; the kernel keeps the
/// first 15 bytes of a thread name.
const SHARD_THREAD_PREFIX: &str = "layerp2p-shard";
/// How long to wait for the target's threads to appear.
const THREAD_WAIT: Duration = Duration::from_secs(3);

#[derive(Clone, Debug)]
pub struct BuiltinTarget {
    pub source: SyntheticConfig,
    pub policy: Policy,
    pub upload: Kbps,
    pub n_max: usize,
    pub lag: Duration,
    /// Executors of the seed (SO_REUSEPORT shards), pinned from core 0.
    pub shards: usize,
    pub seed: u64,
}

#[derive(Debug)]
pub struct RunningTarget {
    pub target: SocketAddr,
    pub tracker: SocketAddr,
    /// The target's executor threads, for its CPU use.
    pub threads: Vec<CpuSource>,
    handle: std::thread::JoinHandle<io::Result<NodeSummary>>,
}

impl RunningTarget {
    pub fn join(self) -> io::Result<NodeSummary> {
        self.handle.join().map_err(|_| io::Error::other("the target's supervisor panicked"))?
    }
}

/// A loopback address with a port free right now (the node binds it a moment later).
fn free_port() -> io::Result<SocketAddr> {
    UdpSocket::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?.local_addr()
}

/// Thread ids of this process whose name starts with `prefix`.
fn threads_named(prefix: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else { return Vec::new() };
    dir.filter_map(|e| {
        let e = e.ok()?;
        let tid: u32 = e.file_name().to_str()?.parse().ok()?;
        let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
        comm.starts_with(prefix).then_some(tid)
    })
    .collect()
}

/// Starts the seed and its tracker; they run until `stop`.
pub fn start(cfg: BuiltinTarget, stop: Arc<AtomicBool>) -> io::Result<RunningTarget> {
    let target = free_port()?;
    let tracker = free_port()?;
    let source = SyntheticSource::new(cfg.source.clone()).map_err(|e| io::Error::other(e.to_string()))?;
    let mut peer = PeerConfig::seed(cfg.policy, cfg.source.plan.clone(), cfg.upload);
    peer.channel = layerp2p_proto::channel::channel_id(&peer.plan, None);
    peer.tracker = Some(tracker);
    peer.n_max = cfg.n_max;
    peer.lag = cfg.lag;
    // A load test measures serving, not the incentive: lean viewers upload nothing
    // and answer no audit, so the rule of decision 0018 would give them the base
    // layer alone (`bench-node`'s seed does the same).
    peer.incentive.upper_layers_window = None;
    let spec = NodeSpec {
        peer,
        listen: target,
        shards: cfg.shards,
        embedded_tracker: Some(tracker),
        first_core: 0,
        rng_seed: cfg.seed,
    };
    spec.validate().map_err(io::Error::other)?;
    let before = threads_named(SHARD_THREAD_PREFIX).len();
    let handle = std::thread::Builder::new()
        .name("loadgen-target".into())
        .spawn(move || run_node(spec, Some(Box::new(source)), stop, &mut |_| {}))?;
    let waited = Instant::now();
    let mut tids = threads_named(SHARD_THREAD_PREFIX);
    while tids.len() < before + cfg.shards && waited.elapsed() < THREAD_WAIT && !handle.is_finished() {
        std::thread::sleep(Duration::from_millis(5));
        tids = threads_named(SHARD_THREAD_PREFIX);
    }
    if handle.is_finished() {
        // It failed to start (e.g. a port taken in between): report why.
        let err = handle.join().map_err(|_| io::Error::other("the target's supervisor panicked"))?;
        return Err(err.err().unwrap_or_else(|| io::Error::other("the target stopped at once")));
    }
    let threads = tids.iter().enumerate().map(|(k, &tid)| CpuSource::thread(&format!("target-{k}"), tid)).collect();
    Ok(RunningTarget { target, tracker, threads, handle })
}

//! The built-in node under test: a tracker and a seed fed by the synthetic source, on
//! an executor of their own (so the target's CPU use is its thread's), started in
//! the load generator's process when no `--target` is given.

use super::procfs::current_tid;
use layerp2p_codec::synthetic::{SyntheticConfig, SyntheticSource};
use layerp2p_codec::{Kbps, MediaTime};
use layerp2p_engine::peer::{Peer, PeerStats};
use layerp2p_engine::runtime::driver::{drive, Clock, IoStats};
use layerp2p_engine::runtime::udp;
use layerp2p_engine::tracker::TrackerStats;
use layerp2p_engine::{PeerConfig, Policy, Tracker, TrackerConfig};
use glommio::{LocalExecutorBuilder, Placement};
use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How often the seed pulls freshly "encoded" LCs from the source.
const INGEST_TICK: Duration = Duration::from_millis(20);

#[derive(Clone, Debug)]
pub struct BuiltinTarget {
    pub source: SyntheticConfig,
    pub policy: Policy,
    pub upload: Kbps,
    pub n_max: usize,
    pub lag: Duration,
    /// Core the target's executor is pinned to.
    pub core: usize,
    pub seed: u64,
}

/// What the target did, collected when it stops.
#[derive(Debug, Default)]
pub struct TargetOutcome {
    pub seed: PeerStats,
    pub seed_io: IoStats,
    pub tracker: TrackerStats,
}

#[derive(Debug)]
pub struct RunningTarget {
    pub target: SocketAddr,
    pub tracker: SocketAddr,
    /// Kernel id of the target's thread, once it runs (0 before).
    pub tid: Arc<AtomicU32>,
    handle: glommio::ExecutorJoinHandle<io::Result<TargetOutcome>>,
}

impl RunningTarget {
    pub fn join(self) -> io::Result<TargetOutcome> {
        self.handle.join().map_err(|e| io::Error::other(format!("target executor failed: {e}")))?
    }
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Starts the tracker and the seed; they run until `stop`.
pub fn start(cfg: BuiltinTarget, clock: Clock, stop: Arc<AtomicBool>) -> io::Result<RunningTarget> {
    let tracker_socket = udp::bind(loopback())?;
    let seed_socket = udp::bind(loopback())?;
    let tracker = tracker_socket.local_addr()?;
    let target = seed_socket.local_addr()?;
    let source = SyntheticSource::new(cfg.source.clone()).map_err(|e| io::Error::other(e.to_string()))?;
    let mut seed_cfg = PeerConfig::seed(cfg.policy, cfg.source.plan.clone(), cfg.upload);
    seed_cfg.tracker = Some(tracker);
    seed_cfg.n_max = cfg.n_max;
    seed_cfg.lag = cfg.lag;
    let seed = Peer::new(seed_cfg, cfg.seed ^ 0x5EED, clock.now()).map_err(|e| io::Error::other(e.to_string()))?;
    let tid = Arc::new(AtomicU32::new(0));
    let tid_inner = tid.clone();
    let tracker_seed = cfg.seed;
    let handle = LocalExecutorBuilder::new(Placement::Fixed(cfg.core))
        .name("loadgen-target")
        .spawn(move || async move {
            tid_inner.store(current_tid(), Ordering::Relaxed);
            let tracker = Rc::new(RefCell::new(Tracker::new(TrackerConfig::default(), tracker_seed)));
            let tracker_task = glommio::spawn_local(drive(tracker.clone(), tracker_socket, clock, stop.clone()));
            let seed = Rc::new(RefCell::new(seed));
            let ingest_task = glommio::spawn_local(ingest(seed.clone(), source, clock, stop.clone()));
            let seed_io = drive(seed.clone(), seed_socket, clock, stop).await;
            tracker_task.await;
            ingest_task.await;
            let stats = seed.borrow().stats();
            let tracker_stats = tracker.borrow().stats().clone();
            Ok(TargetOutcome { seed: stats, seed_io, tracker: tracker_stats })
        })
        .map_err(|e| io::Error::other(format!("cannot start the target's executor: {e}")))?;
    Ok(RunningTarget { target, tracker, tid, handle })
}

/// Feeds the seed the LCs the source has produced by now, like a live encoder.
async fn ingest(seed: Rc<RefCell<Peer>>, mut source: SyntheticSource, clock: Clock, stop: Arc<AtomicBool>) {
    let mut buf = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let now = clock.now();
        source.lcs_until(MediaTime(now.0), &mut buf);
        {
            let mut s = seed.borrow_mut();
            for lc in buf.drain(..) {
                // The window holds the whole lag; an error would mean a broken source.
                if s.push_lc(now, lc).is_err() {
                    break;
                }
            }
        }
        glommio::timer::sleep(INGEST_TICK).await;
    }
}

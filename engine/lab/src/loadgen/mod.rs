//! The load generator: thousands of synthetic peers — real `Peer` state machines
//! (`swarm`) or lean star viewers (`lean`), each on its own UDP socket, sharded over
//! threads pinned to cores — joined on a ramp against one node under test (an external seed/relay, or a built-in tracker +
//! seed in this process). It measures what the target delivers (LC/s, Gbit/s), what
//! the peers play (per class rate and alpha per layer), request->LC latency, loss,
//! and the target's CPU use; `report` turns that into a table and JSON.
//!
//! `layerp2p loadgen` is the command; this library is what it and the tests call.

pub mod lean;
pub mod live;
pub mod procfs;
pub mod report;
pub mod swarm;
pub mod target;

use layerp2p_codec::synthetic::{PayloadKind, SyntheticConfig, SyntheticSource};
use layerp2p_codec::{Kbps, LayerPlan};
use layerp2p_proto::channel::{PublicKey, channel_id};
use layerp2p_proto::integrity::ContentAuth;
use layerp2p_proto::swarm::Mix;
use layerp2p_proto::swarm::PeerSpec;
use layerp2p_proto::swarm::report::{PeerOutcome, SwarmReport};
use layerp2p_proto::{PeerConfig, Policy};
use layerp2p_runtime::driver::{Clock, IoStats};
use live::{Live, Snapshot};
use procfs::{CpuMeter, CpuSource, UdpCounters};
use report::{LoadReport, Second};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use target::BuiltinTarget;

/// File descriptors each synthetic peer needs (its socket), plus headroom for the
/// executors' rings, the target and stdio.
const FD_HEADROOM: u64 = 256;
/// How long to wait for the built-in target's thread to report its id.
const TID_WAIT: Duration = Duration::from_secs(2);

/// What each synthetic viewer is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Viewer {
    /// A full `Peer` state machine (`swarm`): neighbours, both schedulers, playback.
    #[default]
    Full,
    /// A lean star viewer (`lean`): the protocol towards the target alone, at a
    /// fraction of the CPU per LC; uploads nothing and checks no content.
    Lean,
}

/// The node under test.
#[derive(Clone, Debug)]
pub enum Target {
    /// Started in this process: a tracker and a seed on an executor of their own.
    Builtin(BuiltinTarget),
    /// Already running elsewhere; `pid` (if given) is sampled for CPU use.
    External { target: SocketAddr, tracker: SocketAddr, pid: Option<u32> },
}

#[derive(Clone, Debug)]
pub struct LoadConfig {
    /// Template of every synthetic peer (policy, video plan, lag, neighbour limits);
    /// `upload` comes from each peer's spec and `tracker` from the target.
    pub peer: PeerConfig,
    pub classes: Vec<String>,
    /// One entry per synthetic peer: class, upload and join time (the ramp).
    pub peers: Vec<PeerSpec>,
    pub target: Target,
    pub duration: Duration,
    /// Threads the synthetic peers are spread over, pinned to cores round-robin.
    pub shards: usize,
    pub seed: u64,
    pub viewer: Viewer,
}

/// A load test described the way a user describes it; `config` turns it into a
/// `LoadConfig`. The video is the prototype's (290/230/100 kbps) scaled to
/// `video_kbps`, and every class's upload is scaled by the same factor, so the
/// resource index of the mix is kept whatever the video rate.
#[derive(Clone, Debug)]
pub struct Setup {
    pub peers: usize,
    pub mix: Mix,
    pub video_kbps: u32,
    pub fps: u32,
    pub policy: Policy,
    /// Peers join uniformly at random within this.
    pub ramp: Duration,
    pub duration: Duration,
    pub lag: Duration,
    pub startup: Duration,
    pub n_min: usize,
    pub n_max: usize,
    /// Period after which a peer drops its least-contributing neighbour (DESIGN.md §4).
    /// In a star (`n_max` 1) that neighbour is the target, so a pure load test of
    /// the target sets this beyond the run.
    pub adaptation: Duration,
    pub shards: usize,
    pub seed: u64,
    /// `None`: the built-in tracker + seed uploading `target_upload`.
    pub external: Option<(SocketAddr, SocketAddr, Option<u32>)>,
    /// The channel's public key, for a signed external seed: the peers join the
    /// channel it derives and check every LC against the seed's manifests.
    pub channel_key: Option<PublicKey>,
    pub target_upload: Kbps,
    /// Executors of the built-in seed.
    pub target_shards: usize,
    pub viewer: Viewer,
}

impl Setup {
    /// A small, quick run against the built-in target (the CI test's scale).
    pub fn small(peers: usize, duration: Duration) -> Setup {
        Setup {
            peers,
            mix: Mix::underloaded(),
            video_kbps: LayerPlan::prototype().full_rate().0,
            fps: 30,
            policy: Policy::LayerP2P,
            ramp: Duration::from_secs(2),
            duration,
            lag: Duration::from_secs(4),
            startup: Duration::from_secs(3),
            n_min: 10,
            n_max: 20,
            adaptation: Duration::from_secs(30),
            shards: std::thread::available_parallelism().map_or(1, |n| n.get()),
            seed: 1,
            external: None,
            channel_key: None,
            target_upload: Kbps(10_000_000),
            target_shards: 1,
            viewer: Viewer::Full,
        }
    }

    pub fn config(&self) -> Result<LoadConfig, String> {
        let proto = LayerPlan::prototype();
        let factor = self.video_kbps as f64 / proto.full_rate().0 as f64;
        let scale = |k: Kbps| Kbps(((k.0 as f64 * factor).round() as u32).max(1));
        let plan = LayerPlan::new(proto.rates().iter().map(|&r| scale(r)).collect()).map_err(|e| e.to_string())?;
        let mut mix = self.mix.clone();
        for c in &mut mix.classes {
            c.upload = if c.upload.0 == 0 { Kbps(0) } else { scale(c.upload) };
        }
        let source = SyntheticConfig {
            plan: plan.clone(),
            fps: self.fps,
            payload: PayloadKind::Phantom,
            seed: self.seed,
            ..SyntheticConfig::prototype()
        };
        SyntheticSource::new(source.clone()).map_err(|e| e.to_string())?;
        let mut peer = PeerConfig::peer(self.policy, plan, Kbps(0));
        // The channel of a seed of this plan (signed with the key, if given), as
        // `layerp2p seed` derives it, so external targets and the built-in one take
        // our peers.
        if self.channel_key.is_some() && self.external.is_none() {
            return Err("a channel key needs an external target: the built-in seed does not sign".into());
        }
        if self.channel_key.is_some() && self.viewer == Viewer::Lean {
            return Err("lean viewers check no content: use the full viewer with a channel key".into());
        }
        peer.channel = channel_id(&peer.plan, self.channel_key.as_ref());
        peer.content_auth = self.channel_key.map_or(ContentAuth::Off, ContentAuth::Verify);
        peer.lag = self.lag;
        peer.startup = self.startup;
        peer.n_min = self.n_min;
        peer.n_max = self.n_max;
        peer.adaptation = self.adaptation;
        peer.validate().map_err(|e| e.to_string())?;
        let target = match self.external {
            Some((target, tracker, pid)) => Target::External { target, tracker, pid },
            None => Target::Builtin(BuiltinTarget {
                source,
                policy: self.policy,
                upload: self.target_upload,
                // Headroom: the kernel's SO_REUSEPORT hash spreads peers over the
                // seed's shards unevenly, and each shard gets n_max / shards.
                n_max: 2 * self.peers + 64,
                lag: self.lag,
                shards: self.target_shards,
                seed: self.seed,
            }),
        };
        Ok(LoadConfig {
            peer,
            classes: mix.names(),
            peers: mix.flash_crowd(self.peers, self.ramp, self.seed),
            target,
            duration: self.duration,
            shards: self.shards.max(1),
            seed: self.seed,
            viewer: self.viewer,
        })
    }
}

/// Raises the soft limit of open files to what `peers` sockets need (up to the hard
/// limit); an error says how many are needed and what the limit is.
pub fn raise_fd_limit(peers: usize) -> io::Result<u64> {
    let need = peers as u64 + FD_HEADROOM;
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if lim.rlim_cur >= need {
        return Ok(lim.rlim_cur);
    }
    if lim.rlim_max < need {
        return Err(io::Error::other(format!(
            "{peers} peers need {need} open files but the hard limit is {} (raise it with ulimit -Hn as root)",
            lim.rlim_max
        )));
    }
    lim.rlim_cur = need;
    // SAFETY: setrlimit reads the struct we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(need)
}

/// Runs the load test, calling `progress` with each second's figures.
pub fn run(cfg: LoadConfig, progress: &mut dyn FnMut(&Second)) -> io::Result<LoadReport> {
    raise_fd_limit(cfg.peers.len())?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let shards = cfg.shards.max(1);
    let start = Instant::now();
    let clock = Clock::starting_at(start);
    let stop = Arc::new(AtomicBool::new(false));
    let live = Arc::new(Live::new(shards));
    let udp_before = UdpCounters::read();

    let (running, target_addr, tracker_addr, target_threads) = match &cfg.target {
        Target::Builtin(b) => {
            let r = target::start(b.clone(), stop.clone())?;
            let (t, k, threads) = (r.target, r.tracker, r.threads.clone());
            (Some(r), t, k, threads)
        }
        Target::External { target, tracker, pid } => {
            (None, *target, *tracker, pid.map(|p| CpuSource::process("target", p)).into_iter().collect())
        }
    };
    let target_cpus = target_threads.len();
    let mut cpu_sources = target_threads;

    let mut peer = cfg.peer.clone();
    peer.tracker = Some(tracker_addr);
    let mut handles = Vec::new();
    let tids: Vec<Arc<std::sync::atomic::AtomicU32>> = (0..shards).map(|_| Default::default()).collect();
    for (index, tid) in tids.iter().enumerate() {
        // The built-in target starts on core 0; the first shard on the next core.
        let plan = swarm::ShardPlan {
            index,
            core: Some((index + 1) % cores),
            peer: peer.clone(),
            peers: cfg.peers.iter().cloned().enumerate().filter(|(i, _)| i % shards == index).collect(),
            target: target_addr,
            star: peer.n_max == 1,
            seed: cfg.seed,
        };
        let (live, stop, tid, viewer) = (live.clone(), stop.clone(), tid.clone(), cfg.viewer);
        let handle = std::thread::Builder::new().name(format!("loadgen-{index}")).spawn(move || {
            tid.store(procfs::current_tid(), Ordering::Relaxed);
            let result = match viewer {
                Viewer::Full => swarm::run_shard(plan, clock, live, stop.clone()),
                Viewer::Lean => lean::run_shard(plan, clock, live, stop.clone()),
            };
            if result.is_err() {
                // End the run now rather than at its full duration.
                stop.store(true, Ordering::Relaxed);
            }
            result
        })?;
        handles.push(handle);
    }
    let waited = Instant::now();
    while tids.iter().any(|t| t.load(Ordering::Relaxed) == 0) && waited.elapsed() < TID_WAIT {
        std::thread::sleep(Duration::from_millis(5));
    }
    cpu_sources.extend(
        tids.iter().enumerate().map(|(i, t)| CpuSource::thread(&format!("loadgen-{i}"), t.load(Ordering::Relaxed))),
    );
    let mut meter = CpuMeter::new(cpu_sources);

    let mut seconds = Vec::new();
    let mut last = Snapshot::default();
    let mut last_at = Instant::now();
    while start.elapsed() < cfg.duration && !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_secs(1).min(cfg.duration.saturating_sub(start.elapsed())));
        let now = live.snapshot();
        let cpu = meter.sample();
        let wall = last_at.elapsed().as_secs_f64().max(1e-3);
        last_at = Instant::now();
        let target_cpu = (target_cpus > 0).then(|| cpu[..target_cpus].iter().map(|c| c.percent).sum());
        let sec = Second::between(start.elapsed(), &last, &now, wall, target_cpu, &cpu[target_cpus..]);
        progress(&sec);
        seconds.push(sec);
        last = now;
    }
    // Read while every socket is still open.
    let socket_drops = procfs::own_udp_drops();
    stop.store(true, Ordering::Relaxed);

    let mut outcomes: Vec<PeerOutcome> = Vec::with_capacity(cfg.peers.len());
    let mut io_total = IoStats::default();
    for h in handles {
        let (o, io) = h.join().map_err(|_| io::Error::other("a load generator shard panicked"))??;
        outcomes.extend(o);
        io_total.add(&io);
    }
    let target_outcome = running.map(|r| r.join()).transpose()?;
    let udp = match (udp_before, UdpCounters::read()) {
        (Some(b), Some(a)) => Some(a.since(&b)),
        _ => None,
    };
    let lc_deliveries = outcomes.iter().map(|o| o.stats.lcs_down).sum();
    let plan = cfg.peer.plan.clone();
    let swarm = SwarmReport::new(cfg.classes.clone(), plan, outcomes, lc_deliveries);
    Ok(LoadReport::new(&cfg, target_addr, swarm, seconds, io_total, live.snapshot(), target_outcome, udp, socket_drops))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaling_the_video_keeps_the_resource_index_and_free_riders() {
        let mut setup = Setup::small(100, Duration::from_secs(20));
        setup.mix = Mix::overloaded();
        setup.video_kbps = 62;
        let cfg = setup.config().expect("valid");
        let plan = &cfg.peer.plan;
        assert_eq!(plan.rates(), &[Kbps(29), Kbps(23), Kbps(10)]);
        let avg = cfg.peers.iter().map(|p| p.upload.0 as f64).sum::<f64>() / cfg.peers.len() as f64;
        let index = avg / plan.full_rate().0 as f64;
        assert!((index - 0.82).abs() < 0.03, "resource index {index:.2}");
        assert!(cfg.peers.iter().any(|p| p.upload == Kbps(0)), "free-riders stay free-riders");
        assert!(cfg.peers.iter().all(|p| p.join.as_secs_f64() < 2.0), "joins within the ramp");
        let Target::Builtin(b) = &cfg.target else { panic!("built-in target expected") };
        assert!(b.n_max > 100);
    }

    #[test]
    fn impossible_setups_are_refused_with_a_reason() {
        let mut setup = Setup::small(10, Duration::from_secs(20));
        setup.fps = 0;
        assert!(setup.config().expect_err("refused").contains("frame rate"));
        let mut setup = Setup::small(10, Duration::from_secs(20));
        setup.n_min = 30;
        assert!(setup.config().expect_err("refused").contains("n_min"));
        let mut setup = Setup::small(10, Duration::from_secs(20));
        setup.lag = Duration::from_millis(500);
        assert!(setup.config().expect_err("refused").contains("lag"));
        let mut setup = Setup::small(10, Duration::from_secs(20));
        setup.channel_key = Some(ContentAuth::signing_key([7; 32]).verifying_key());
        assert!(setup.config().expect_err("refused").contains("external target"));
        let addr = SocketAddr::from(([127, 0, 0, 1], 9));
        setup.external = Some((addr, addr, None));
        setup.viewer = Viewer::Lean;
        assert!(setup.config().expect_err("refused").contains("lean viewers check no content"));
    }

    #[test]
    fn a_channel_key_puts_the_peers_in_the_signed_channel_checking_content() {
        let key = ContentAuth::signing_key([7; 32]).verifying_key();
        let addr = SocketAddr::from(([127, 0, 0, 1], 9));
        let mut setup = Setup::small(10, Duration::from_secs(20));
        setup.external = Some((addr, addr, None));
        let unsigned = setup.config().expect("valid").peer;
        setup.channel_key = Some(key);
        let signed = setup.config().expect("valid").peer;
        assert_eq!(signed.channel, channel_id(&signed.plan, Some(&key)));
        assert_ne!(signed.channel, unsigned.channel);
        assert_eq!(signed.content_auth.verifying_key(), Some(key));
        assert_eq!(unsigned.content_auth.verifying_key(), None);
    }

    #[test]
    fn the_file_limit_is_raised_for_the_sockets() {
        let limit = raise_fd_limit(1000).expect("within the hard limit here");
        assert!(limit >= 1000 + FD_HEADROOM);
        assert!(raise_fd_limit(usize::MAX / 2).expect_err("refused").to_string().contains("hard limit"));
    }
}

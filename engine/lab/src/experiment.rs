//! The prototype experiment (DESIGN.md §9) on a real UDP swarm, and the observed run it is
//! made of (shared with `layerp2p demo`): a `run_local_swarm` whose sampled viewers
//! per class are watched, giving the time series of a typical peer per class and,
//! when the seed streams the built-in H.264 clip, PSNR Q1..Q3/Q per class from
//! decoding what they played. Also the aggregation of several runs into one report.
//! No CLI, no plotting, no printing here.

use crate::LabError;
use layerp2p_codec::synthetic::{PayloadKind, SyntheticConfig, SyntheticSource};
use layerp2p_codec::video::droptest::{self, TestClip};
use layerp2p_codec::video::encoder::EncoderConfig;
use layerp2p_codec::video::quality::Quality;
use layerp2p_codec::video::source::{ReplayFeed, VideoSource};
use layerp2p_codec::video::{FrameRate, Resolution};
use layerp2p_codec::{Kbps, LayerPlan, LcSource};
use layerp2p_proto::metrics::LatencySummary;
use layerp2p_proto::swarm::Mix;
use layerp2p_proto::swarm::PeerSpec;
use layerp2p_proto::swarm::report::{MIN_COUNTED_SECONDS, PeerOutcome, SwarmReport};
use layerp2p_proto::{Incentive, NeighbourOverrides, PeerConfig, Policy};
use layerp2p_runtime::link::Links;
use layerp2p_runtime::local::{LocalReport, LocalSwarmConfig, Watch, WatchedPeer, run_local_swarm_watched};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Frames of the looped clip: 5 GOPs of 64, so every loop starts with an IDR.
pub const CLIP_FRAMES: u32 = 320;

/// Encodes the built-in clip once, for a seed to loop (`Stream::Clip`).
pub fn encode_clip(resolution: Resolution, qp: u8) -> Result<TestClip, LabError> {
    let cfg = EncoderConfig { qp, ..EncoderConfig::new(resolution, FrameRate::FPS_30) };
    Ok(TestClip::encode(cfg, CLIP_FRAMES)?)
}

/// What the seed streams.
#[derive(Debug)]
pub enum Stream<'a> {
    /// The built-in synthetic layered source (no PSNR).
    Synthetic(SyntheticConfig),
    /// The built-in clip as real H.264, looped; watched viewers are decoded and scored.
    Clip(&'a TestClip),
}

impl Stream<'_> {
    pub fn source(&self) -> Result<Box<dyn LcSource>, LabError> {
        match self {
            Stream::Synthetic(cfg) => Ok(Box::new(SyntheticSource::new(cfg.clone())?)),
            Stream::Clip(c) => {
                let feed = Box::new(ReplayFeed::new(c.units.clone(), true));
                Ok(Box::new(VideoSource::new(feed, c.cfg.rate, c.cfg.layers, c.units.len())?))
            }
        }
    }
}

/// PSNR of the scored viewers of one class.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ClassQuality {
    pub scored: usize,
    pub quality: Quality,
}

/// PSNR per class as a table for humans: scored viewers, Q1..QL, Q, concealed share.
pub fn psnr_table(names: &[String], psnr: &[ClassQuality]) -> String {
    use std::fmt::Write;
    let layers = psnr.iter().map(|q| q.quality.layers.len()).max().unwrap_or(0);
    let mut t = format!("{:<16} {:>6}", "class", "scored");
    for l in 1..=layers {
        let _ = write!(t, " {:>7}", format!("Q{l}"));
    }
    let _ = writeln!(t, " {:>7} {:>10}", "Q", "concealed");
    let show = |m: Option<f64>| m.map_or("-".to_string(), |v| format!("{v:.2}"));
    for (name, q) in names.iter().zip(psnr) {
        let _ = write!(t, "{name:<16} {:>6}", q.scored);
        for l in 0..layers {
            let _ = write!(t, " {:>7}", show(q.quality.layers.get(l).and_then(|m| m.mean())));
        }
        let all = &q.quality.all;
        let pct = if all.frames > 0 { 100.0 * q.quality.concealed as f64 / all.frames as f64 } else { 0.0 };
        let _ = writeln!(t, " {:>7} {:>9.1}%", show(q.quality.overall()), pct);
    }
    t
}

/// Per-second rates of one watched viewer, from its successive samples.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RateSeries {
    pub index: usize,
    pub class: usize,
    pub upload: Kbps,
    /// Seconds since the swarm started, at the end of each interval.
    pub at_s: Vec<f64>,
    /// Played rate per interval, per layer (outer index = layer - 1).
    pub layer_kbps: Vec<Vec<f64>>,
    pub upload_kbps: Vec<f64>,
    pub download_kbps: Vec<f64>,
}

impl RateSeries {
    pub fn of(w: &WatchedPeer) -> RateSeries {
        let layers = w.samples.first().map_or(0, |s| s.played_bytes.len());
        let mut r = RateSeries {
            index: w.index,
            class: w.class,
            upload: w.upload,
            at_s: Vec::new(),
            layer_kbps: vec![Vec::new(); layers],
            upload_kbps: Vec::new(),
            download_kbps: Vec::new(),
        };
        let kbps = |bytes: u64, secs: f64| bytes as f64 * 8.0 / 1000.0 / secs;
        for pair in w.samples.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            let secs = b.at_s - a.at_s;
            if secs <= 0.0 {
                continue;
            }
            r.at_s.push(b.at_s);
            for (l, series) in r.layer_kbps.iter_mut().enumerate() {
                let delta = b.played_bytes.get(l).zip(a.played_bytes.get(l)).map_or(0, |(x, y)| x.saturating_sub(*y));
                series.push(kbps(delta, secs));
            }
            r.upload_kbps.push(kbps(b.bytes_up.saturating_sub(a.bytes_up), secs));
            r.download_kbps.push(kbps(b.bytes_down.saturating_sub(a.bytes_down), secs));
        }
        r
    }

    /// Total played rate per interval, all layers.
    pub fn played_kbps(&self) -> Vec<f64> {
        (0..self.at_s.len()).map(|i| self.layer_kbps.iter().map(|l| l[i]).sum()).collect()
    }
}

/// One observed run: the swarm's report, the typical watched peer of each class and,
/// with the clip, PSNR per class.
#[derive(Debug)]
pub struct Observed {
    pub local: LocalReport,
    /// Per class: the watched viewer whose playback rate is the class median of the
    /// watched ones (None if none of that class was watched or counted).
    pub typical: Vec<Option<RateSeries>>,
    pub psnr: Option<Vec<ClassQuality>>,
}

/// Up to `per_class` viewers of each class, spread evenly over the class in join order
/// (early joiners fare differently from late ones).
pub fn watch_sample(peers: &[PeerSpec], classes: usize, per_class: usize) -> Vec<usize> {
    let mut out = Vec::new();
    for class in 0..classes {
        let mut members: Vec<usize> = (0..peers.len()).filter(|&i| peers[i].class == class).collect();
        members.sort_by_key(|&i| peers[i].join);
        let picks = per_class.min(members.len());
        out.extend((0..picks).map(|k| members[k * members.len() / picks]));
    }
    out.sort_unstable();
    out
}

/// PSNR per class from the watched viewers' playback logs.
pub fn score_classes(clip: &TestClip, classes: usize, watched: &[WatchedPeer]) -> Result<Vec<ClassQuality>, LabError> {
    let by_frame = clip.lcs_by_frame();
    let mut out = vec![ClassQuality { scored: 0, quality: Quality::new(clip.cfg.layers) }; classes];
    for w in watched {
        let Some(slot) = out.get_mut(w.class) else { continue };
        if let Some(q) = droptest::score_played(clip, &by_frame, &w.played)? {
            slot.quality.merge(&q);
        }
        slot.scored += 1;
    }
    Ok(out)
}

/// Runs the swarm `cfg` streaming `stream`, watching `per_class` viewers of each class;
/// `cfg.peer.plan` is replaced by the stream's. The one run function of `demo` and
/// `experiment`.
pub fn run_observed(
    mut cfg: LocalSwarmConfig,
    stream: Stream,
    per_class: usize,
    progress: &mut dyn FnMut(Duration),
) -> Result<Observed, LabError> {
    let source = stream.source()?;
    cfg.peer.plan = source.plan().clone();
    let classes = cfg.classes.len();
    let watch =
        Watch { peers: watch_sample(&cfg.peers, classes, per_class), playback: matches!(stream, Stream::Clip(_)) };
    let local = run_local_swarm_watched(cfg, source, watch, progress)?;
    let psnr = match stream {
        Stream::Clip(c) => Some(score_classes(c, classes, &local.watched)?),
        Stream::Synthetic(_) => None,
    };
    let typical = (0..classes).map(|c| typical_peer(&local, c)).collect();
    Ok(Observed { local, typical, psnr })
}

/// The watched viewer of `class` with the median playback rate among the watched ones.
fn typical_peer(local: &LocalReport, class: usize) -> Option<RateSeries> {
    let rate = |index: usize| local.swarm.peers.get(index).map(|p| p.rate_kbps());
    let mut members: Vec<(f64, &WatchedPeer)> =
        local.watched.iter().filter(|w| w.class == class).filter_map(|w| Some((rate(w.index)?, w))).collect();
    members.sort_by(|a, b| a.0.total_cmp(&b.0));
    members.get(members.len() / 2).map(|(_, w)| RateSeries::of(w))
}

/// DESIGN.md §9's prototype experiment: the swarm, its timing and what the seed streams.
#[derive(Clone, Debug)]
pub struct Prototype {
    pub mix: Mix,
    pub peers: usize,
    /// Peers join uniformly over this (the paper: 120 s), then all stay `stay`.
    pub join_over: Duration,
    pub stay: Duration,
    pub lag: Duration,
    pub startup: Duration,
    pub seed_upload: Kbps,
    /// Neighbours the seed accepts (the paper does not say; `experiment prototype`
    /// defaults to 100, every viewer).
    pub seed_n_max: usize,
    pub shards: usize,
    /// The viewers' simulated access links (`Links::default()`: plain loopback).
    pub links: Links,
    /// Viewers per class watched (time series, and PSNR with the clip).
    pub watch_per_class: usize,
    /// eps, d_l, d_s and the receiver's choice among holders (all systems alike).
    pub incentive: Incentive,
    /// The viewers' N_min, N_max, adaptation period and rate window, where changed.
    pub neighbours: NeighbourOverrides,
    pub seed: u64,
}

impl Prototype {
    /// The seed of run `run` (numbered from 0): seed + k.
    pub fn run_seed(&self, run: u32) -> u64 {
        self.seed.wrapping_add(u64::from(run))
    }

    /// The swarm of run `run` (numbered from 0) under `policy`, seeded `run_seed(run)`.
    pub fn swarm(&self, policy: Policy, run: u32, plan: LayerPlan) -> LocalSwarmConfig {
        let seed = self.run_seed(run);
        let mut peer = PeerConfig::peer(policy, plan, Kbps(0));
        peer.lag = self.lag;
        peer.startup = self.startup;
        peer.incentive = self.incentive;
        self.neighbours.apply(&mut peer);
        LocalSwarmConfig {
            peer,
            seed_upload: self.seed_upload,
            seed_n_max: self.seed_n_max,
            classes: self.mix.names(),
            peers: self.mix.flash_crowd(self.peers, self.join_over, seed),
            duration: self.join_over + self.stay,
            shards: self.shards,
            links: self.links,
            seed,
        }
    }

    /// The synthetic prototype video (290/230/100 kbps VBR) for run `run`.
    pub fn synthetic(&self, run: u32) -> SyntheticConfig {
        SyntheticConfig { payload: PayloadKind::Pattern, seed: self.run_seed(run), ..SyntheticConfig::prototype() }
    }

    /// Runs one run of `policy`, streaming the clip if given, else the synthetic video.
    pub fn run(
        &self,
        policy: Policy,
        run: u32,
        clip: Option<&TestClip>,
        progress: &mut dyn FnMut(Duration),
    ) -> Result<RunResult, LabError> {
        let stream = match clip {
            Some(c) => Stream::Clip(c),
            None => Stream::Synthetic(self.synthetic(run)),
        };
        let plan = match &stream {
            Stream::Synthetic(s) => s.plan.clone(),
            Stream::Clip(_) => stream.source()?.plan().clone(),
        };
        let cfg = self.swarm(policy, run, plan.clone());
        let (seed, parameters) = (cfg.seed, cfg.peer.parameters());
        let observed = run_observed(cfg, stream, self.watch_per_class, progress)?;
        Ok(RunResult {
            policy: policy.name().to_string(),
            startup: self.startup,
            run,
            seed,
            plan,
            parameters,
            observed,
        })
    }
}

impl Prototype {
    /// Run `run` of `policy` in the chunk-level simulator instead of on sockets: the
    /// same peers, join times, seed, lag, start-up and video (the synthetic one, or
    /// the clip's LCs), every message delayed by `latency` one way. What the runtime
    /// gives should match this if it is faithful to the core.
    /// With the clip, the same viewers as on sockets (`watch_per_class` per class) are
    /// scored for PSNR from what they played.
    pub fn simulate(
        &self,
        policy: Policy,
        run: u32,
        clip: Option<&TestClip>,
        latency: Duration,
    ) -> Result<Simulated, LabError> {
        let synthetic = SyntheticConfig { payload: PayloadKind::Phantom, ..self.synthetic(run) };
        let source = match clip {
            Some(c) => Stream::Clip(c).source()?,
            None => Stream::Synthetic(synthetic.clone()).source()?,
        };
        let mut cfg = self.swarm(policy, run, source.plan().clone());
        let parameters = cfg.peer.parameters();
        let Some(clip) = clip else {
            return Ok(Simulated { report: simulate(cfg, source, latency)?, psnr: None, parameters });
        };
        let classes = cfg.classes.len();
        let watch = watch_sample(&cfg.peers, classes, self.watch_per_class);
        let uploads: Vec<Kbps> = cfg.peers.iter().map(|p| p.upload).collect();
        cfg.peer.emit_playback = true;
        let end = layerp2p_proto::Time(cfg.duration.as_micros() as u64);
        let mut swarm = swarm_of(cfg, source, latency)?;
        swarm.run_until(end);
        let watched: Vec<WatchedPeer> = swarm
            .take_playback()
            .into_iter()
            .filter(|(spec, _, _)| watch.binary_search(spec).is_ok())
            .map(|(index, class, played)| WatchedPeer {
                index,
                class,
                upload: uploads[index],
                samples: Vec::new(),
                played,
            })
            .collect();
        let psnr = score_classes(clip, classes, &watched)?;
        Ok(Simulated { report: swarm.finish(), psnr: Some(psnr), parameters })
    }
}

/// One simulated run: the report and, with the clip, PSNR per class.
#[derive(Debug)]
pub struct Simulated {
    pub report: SwarmReport,
    pub psnr: Option<Vec<ClassQuality>>,
    /// The viewers' protocol parameters (`PeerConfig::parameters`).
    pub parameters: serde_json::Value,
}

/// The real-swarm configuration `cfg` run in the chunk-level simulator with `source`
/// (whose plan must be the peers'), every message delayed by `latency` one way.
pub fn simulate(cfg: LocalSwarmConfig, source: Box<dyn LcSource>, latency: Duration) -> Result<SwarmReport, LabError> {
    Ok(swarm_of(cfg, source, latency)?.run())
}

/// The simulated swarm of the real-swarm configuration `cfg`.
fn swarm_of(
    cfg: LocalSwarmConfig,
    source: Box<dyn LcSource>,
    latency: Duration,
) -> Result<layerp2p_sim::Swarm, LabError> {
    let cfg = layerp2p_sim::SwarmConfig {
        // Unused: the swarm ingests `source`.
        source: SyntheticConfig::prototype(),
        peer: cfg.peer,
        seed_upload: cfg.seed_upload,
        seed_n_max: cfg.seed_n_max,
        latency,
        download: None,
        classes: cfg.classes,
        peers: cfg.peers,
        duration: cfg.duration,
        seed: cfg.seed,
    };
    Ok(layerp2p_sim::Swarm::with_source(cfg, source)?)
}

/// One run of one policy.
#[derive(Debug)]
pub struct RunResult {
    pub policy: String,
    /// The peers' start-up (playback counted from this long after joining).
    pub startup: Duration,
    pub run: u32,
    pub seed: u64,
    pub plan: LayerPlan,
    /// The viewers' protocol parameters (`PeerConfig::parameters`).
    pub parameters: serde_json::Value,
    pub observed: Observed,
}

impl RunResult {
    /// The per-run record of a run of `scenario`: report, typical time series, PSNR,
    /// socket counters.
    pub fn record<'a>(&'a self, scenario: &'a str) -> crate::pool::RunRecord<'a> {
        let o = &self.observed;
        crate::pool::RunRecord {
            provenance: crate::record::Provenance::current(),
            scenario,
            policy: &self.policy,
            run: self.run,
            seed: self.seed,
            simulated: false,
            latency_ms: None,
            parameters: &self.parameters,
            report: &o.local.swarm,
            diagnostics: diagnostics(&o.local.swarm, self.startup),
            psnr: o.psnr.as_ref(),
            typical: Some(&o.typical),
            io: Some(&o.local.io),
            shard_cpu_s: Some(&o.local.shard_cpu_s),
        }
    }

    /// What `experiment report` reads back of `record(scenario)`.
    pub fn file(&self, scenario: &str) -> Result<RunFile, LabError> {
        serde_json::to_value(self.record(scenario)).and_then(serde_json::from_value).map_err(LabError::Json)
    }
}

/// Several runs of one policy pooled: every counted peer of every run in one report
/// (so CDFs are over peers × runs), PSNR merged per class.
#[derive(Debug)]
pub struct Aggregate {
    pub report: SwarmReport,
    pub psnr: Option<Vec<ClassQuality>>,
    /// Every alpha is from LC counts (false if some run's JSON predates them: see
    /// `ClassReport::pool`).
    pub exact: bool,
}

/// Pools runs given as (report, PSNR per class): `experiment prototype`'s runs as
/// they end, or `experiment report`'s from their JSON. An error if there are none or
/// they are not of one setup.
pub fn aggregate<'a>(
    runs: impl IntoIterator<Item = (&'a SwarmReport, Option<&'a Vec<ClassQuality>>)>,
) -> Result<Aggregate, LabError> {
    let (reports, scores): (Vec<&SwarmReport>, Vec<Option<&Vec<ClassQuality>>>) = runs.into_iter().unzip();
    let (report, exact) = SwarmReport::pool(&reports)?;
    let mut psnr: Option<Vec<ClassQuality>> = None;
    for q in scores.into_iter().flatten() {
        let acc = psnr.get_or_insert_with(|| vec![ClassQuality::default(); q.len()]);
        for (a, b) in acc.iter_mut().zip(q) {
            a.scored += b.scored;
            a.quality.merge(&b.quality);
        }
    }
    Ok(Aggregate { report, psnr, exact })
}

/// What `experiment report` reads back of a per-run JSON (`RunResult::json`, or the
/// `--simulate` one).
#[derive(Clone, Debug, Deserialize)]
pub struct RunFile {
    pub policy: String,
    pub run: u32,
    /// Absent in older `--simulate` run files.
    pub seed: Option<u64>,
    pub scenario: Option<String>,
    pub report: SwarmReport,
    pub psnr: Option<Vec<ClassQuality>>,
    pub typical: Option<Vec<Option<RateSeries>>>,
}

/// One line per run: per class, R mean, alpha per layer and (with video) Q.
pub fn per_run_table(files: &[&RunFile]) -> String {
    use std::fmt::Write;
    let mut t = String::new();
    for f in files {
        let seed = f.seed.map_or("-".to_string(), |s| s.to_string());
        let _ = write!(t, "{:<14} run {:<3} seed {seed:<5}", f.policy, f.run);
        for (c, class) in f.report.classes.iter().enumerate() {
            let alpha: Vec<String> = class.alpha.iter().map(|a| format!("{:.1}", a * 100.0)).collect();
            let q = f.psnr.as_ref().and_then(|p| p.get(c)).and_then(|q| q.quality.overall());
            let q = q.map_or(String::new(), |q| format!(" Q {q:.2}"));
            let _ = write!(t, " | {} {:.0} kbps {} %{q}", class.name, class.rate_mean, alpha.join("/"));
        }
        t.push('\n');
    }
    t
}

/// Pooled Q of `base` minus Q of each other system, per class, then the same per seed
/// that both ran (a paired comparison: same join times and class draws). Empty
/// without PSNR.
pub fn psnr_gap_table(base: (&str, &Aggregate, &[&RunFile]), others: &[(&str, &Aggregate, &[&RunFile])]) -> String {
    use std::fmt::Write;
    let overall = |p: Option<&Vec<ClassQuality>>, c: usize| p.and_then(|p| p.get(c)).and_then(|q| q.quality.overall());
    let gap =
        |a: Option<f64>, b: Option<f64>| a.zip(b).map_or(format!("{:>14}", "-"), |(a, b)| format!("{:>+14.2}", a - b));
    let names: Vec<&str> = base.1.report.classes.iter().map(|c| c.name.as_str()).collect();
    if base.1.psnr.is_none() {
        return String::new();
    }
    let mut t = format!("PSNR Q of {} minus that of each other system, dB:\n{:<24}", base.0, "");
    for n in &names {
        let _ = write!(t, " {n:>14}");
    }
    t.push('\n');
    for (name, agg, runs) in others {
        if agg.psnr.is_none() {
            continue;
        }
        let _ = write!(t, "{:<24}", format!("{name} (pooled)"));
        for c in 0..names.len() {
            t.push_str(&format!(" {}", gap(overall(base.1.psnr.as_ref(), c), overall(agg.psnr.as_ref(), c))));
        }
        t.push('\n');
        // Per class, the gap at every seed both systems ran.
        let mut paired: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
        for b in base.2 {
            let Some(o) = runs.iter().find(|o| o.seed.is_some() && o.seed == b.seed) else { continue };
            let _ = write!(t, "{:<24}", format!("  seed {}", b.seed.unwrap_or(0)));
            for (c, gaps) in paired.iter_mut().enumerate() {
                let (a, b) = (overall(b.psnr.as_ref(), c), overall(o.psnr.as_ref(), c));
                gaps.extend(a.zip(b).map(|(a, b)| a - b));
                t.push_str(&format!(" {}", gap(a, b)));
            }
            t.push('\n');
        }
        if paired.iter().any(|g| g.len() >= 2) {
            let _ = write!(t, "{:<24}", "  paired mean, 95 % CI");
            for gaps in &paired {
                let cell = mean_with_ci95(gaps).map_or("-".to_string(), |(m, h)| format!("{m:+.2} ± {h:.2}"));
                let _ = write!(t, " {cell:>14}");
            }
            t.push('\n');
        }
    }
    t
}

/// Mean of `x` and the half-width of its 95 % confidence interval (Student's t with
/// `n - 1` degrees of freedom): how far the per-seed spread lets a mean gap be
/// trusted. `None` below two values.
pub fn mean_with_ci95(x: &[f64]) -> Option<(f64, f64)> {
    let n = x.len();
    if n < 2 {
        return None;
    }
    let mean = x.iter().sum::<f64>() / n as f64;
    let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    Some((mean, t_975(n - 1) * (var / n as f64).sqrt()))
}

/// The 97.5th percentile of Student's t with `df` degrees of freedom (two-sided 95 %).
fn t_975(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::INFINITY,
        1..=30 => TABLE[df - 1],
        31..=60 => 2.000,
        61..=120 => 1.980,
        _ => 1.960,
    }
}

/// Why a class got what it got, from its counted peers' counters: how much of its
/// upload cap it used, what it downloaded, how many requests its suppliers dropped,
/// how long requests waited and LCs took, and neighbour churn.
#[derive(Clone, Debug, Serialize)]
pub struct ClassDiagnostics {
    pub name: String,
    pub peers: usize,
    /// LC bytes sent over the cap, over each peer's whole stay (None for free-riders).
    pub upload_used: Option<f64>,
    /// LC bytes received per second of stay, kbps (duplicates included).
    pub download_kbps: f64,
    /// Requests the class's peers received as suppliers that expired unserved (T - tau).
    pub requests_expired: f64,
    /// Duplicate LCs per second of stay.
    pub duplicates_per_s: f64,
    /// Supplier side: request arrival to send.
    pub request_to_send: LatencySummary,
    /// Receiver side: request sent to LC arrival.
    pub delivery: LatencySummary,
    /// Neighbours dropped (by either side) per peer-minute.
    pub neighbours_removed_per_min: f64,
}

/// Per-class diagnostics of `report`; a peer's stay is its counted seconds plus
/// `startup` (playback is counted from `startup` after it joins).
pub fn diagnostics(report: &SwarmReport, startup: Duration) -> Vec<ClassDiagnostics> {
    let counted: Vec<&PeerOutcome> = report.peers.iter().filter(|p| p.seconds >= MIN_COUNTED_SECONDS).collect();
    report
        .classes
        .iter()
        .enumerate()
        .map(|(c, class)| {
            let members: Vec<&PeerOutcome> = counted.iter().copied().filter(|p| p.class == c).collect();
            let stay: f64 = members.iter().map(|p| p.seconds + startup.as_secs_f64()).sum::<f64>().max(1e-9);
            let sum = |f: &dyn Fn(&PeerOutcome) -> u64| members.iter().map(|p| f(p)).sum::<u64>() as f64;
            let cap: f64 = members.iter().map(|p| f64::from(p.upload.0) * (p.seconds + startup.as_secs_f64())).sum();
            let mut latency = layerp2p_proto::metrics::Latencies::default();
            for p in &members {
                latency.merge(&p.stats.latency);
            }
            ClassDiagnostics {
                name: class.name.clone(),
                peers: members.len(),
                upload_used: (cap > 0.0).then(|| sum(&|p| p.stats.bytes_up) * 8.0 / 1000.0 / cap),
                download_kbps: sum(&|p| p.stats.bytes_down) * 8.0 / 1000.0 / stay,
                requests_expired: sum(&|p| p.stats.requests_expired) / sum(&|p| p.stats.requests_received).max(1.0),
                duplicates_per_s: sum(&|p| p.stats.duplicates) / stay,
                request_to_send: latency.request_to_send.summary(),
                delivery: latency.delivery.summary(),
                neighbours_removed_per_min: sum(&|p| p.stats.neighbours_removed) / (stay / 60.0),
            }
        })
        .collect()
}

/// The diagnostics as a table for humans.
pub fn diagnostics_table(d: &[ClassDiagnostics]) -> String {
    use std::fmt::Write;
    let mut t = format!(
        "{:<16} {:>8} {:>8} {:>8} {:>7} {:>17} {:>17} {:>8}\n",
        "class", "up used", "down", "expired", "dup/s", "req->send p50/99", "delivery p50/99", "drops/m"
    );
    for c in d {
        let used = c.upload_used.map_or("-".to_string(), |u| format!("{:.0}%", u * 100.0));
        let _ = writeln!(
            t,
            "{:<16} {:>8} {:>8.0} {:>7.1}% {:>7.1} {:>17} {:>17} {:>8.2}",
            c.name,
            used,
            c.download_kbps,
            c.requests_expired * 100.0,
            c.duplicates_per_s,
            format!("{:.0}/{:.0} ms", c.request_to_send.p50_ms, c.request_to_send.p99_ms),
            format!("{:.0}/{:.0} ms", c.delivery.p50_ms, c.delivery.p99_ms),
            c.neighbours_removed_per_min
        );
    }
    t
}

/// One figure DESIGN.md §11 publishes for the overloaded prototype, beside ours.
#[derive(Clone, Debug, Serialize)]
pub struct Published {
    pub figure: String,
    pub published: &'static str,
    /// Ours (a share or ratio in 0..1); None when the class is absent.
    pub measured: Option<f64>,
}

/// Full rate of the paper's prototype video, kbps: DESIGN.md §11's rate thresholds are
/// for it.
const PAPER_FULL_RATE_KBPS: f64 = 620.0;

/// DESIGN.md §11's overloaded-prototype figures for LayerP2P, measured on `report` (classes
/// named as in `Mix::overloaded`). The rate thresholds (550, 400, 200 kbps of a
/// 620 kbps video) are scaled to the report's full rate, so a video of another rate
/// is held to the same fractions (the clip's 587 kbps: 521, 379, 189 kbps).
pub fn published_overloaded(report: &SwarmReport) -> Vec<Published> {
    let class = |name: &str| report.class(name).filter(|c| c.peers > 0);
    let scale = f64::from(report.full_rate_kbps) / PAPER_FULL_RATE_KBPS;
    let at = |kbps: f64| (kbps * scale).round();
    vec![
        Published {
            figure: format!("institutional above {} kbps", at(550.0)),
            published: "> 70 %",
            measured: class("institutional").map(|c| c.share_above(at(550.0))),
        },
        Published {
            figure: format!("residential above {} kbps", at(400.0)),
            published: "> 70 %",
            measured: class("residential").map(|c| c.share_above(at(400.0))),
        },
        Published {
            figure: format!("free-riders below {} kbps", at(200.0)),
            published: "> 90 %",
            measured: class("free-rider").map(|c| 1.0 - c.share_above(at(200.0))),
        },
        Published {
            figure: "residential base-layer ratio".to_string(),
            published: "> 95 %",
            measured: class("residential").and_then(|c| c.alpha.first().copied()),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use layerp2p_runtime::local::Sample;

    #[test]
    fn rate_series_differences_successive_samples() {
        let s = |at_s: f64, l1: u64, l2: u64, up: u64| Sample {
            at_s,
            played_bytes: vec![l1, l2],
            bytes_up: up,
            bytes_down: 0,
        };
        let w = WatchedPeer {
            samples: vec![s(1.0, 0, 0, 0), s(2.0, 1000, 500, 250), s(4.0, 3000, 500, 250)],
            ..WatchedPeer::default()
        };
        let r = RateSeries::of(&w);
        assert_eq!(r.at_s, vec![2.0, 4.0]);
        assert_eq!(r.layer_kbps, vec![vec![8.0, 8.0], vec![4.0, 0.0]]);
        assert_eq!(r.upload_kbps, vec![2.0, 0.0]);
        assert_eq!(r.played_kbps(), vec![12.0, 8.0]);
    }

    #[test]
    fn watch_sample_spreads_over_each_class_in_join_order() {
        let spec = |class, join| PeerSpec { class, upload: Kbps(0), join: layerp2p_proto::Time(join), leave: None };
        let peers = vec![spec(0, 50), spec(1, 10), spec(0, 10), spec(0, 30), spec(0, 40), spec(1, 5)];
        // Class 0 in join order: 2, 3, 4, 0 -> picks 2 and 4; class 1: 5, 1 -> both.
        assert_eq!(watch_sample(&peers, 2, 2), vec![1, 2, 4, 5]);
    }

    fn run_file(policy: &str, seed: u64, played: u64, q_db: f64) -> RunFile {
        use layerp2p_proto::peer::{PeerStats, playback::LayerStats};
        let plan = LayerPlan::new(vec![Kbps(100)]).expect("plan");
        let layer = LayerStats { played, played_bytes: played * 100, missed: 100 - played, late: 0 };
        let peer = PeerOutcome {
            class: 0,
            upload: Kbps(300),
            seconds: 20.0,
            stats: PeerStats { layers: vec![layer], ..Default::default() },
        };
        let report = SwarmReport::new(vec!["residential".into()], plan, vec![peer], 100);
        let mean = layerp2p_codec::video::quality::MeanPsnr { frames: 10, sum_db: 10.0 * q_db };
        let psnr = vec![ClassQuality { scored: 1, quality: Quality { layers: vec![mean], all: mean, concealed: 0 } }];
        let json = serde_json::json!({ "scenario": "overloaded", "policy": policy, "run": 0, "seed": seed, "report": report, "psnr": psnr });
        serde_json::from_value(json).expect("a per-run JSON reads back")
    }

    #[test]
    fn run_files_pool_and_pair_by_seed() {
        let lp = [run_file("layerp2p", 1, 90, 40.0), run_file("layerp2p", 2, 70, 30.0)];
        let si = [run_file("single-incent", 2, 50, 28.0), run_file("single-incent", 3, 50, 20.0)];
        let (lp_runs, si_runs): (Vec<&RunFile>, Vec<&RunFile>) = (lp.iter().collect(), si.iter().collect());
        let pool = |runs: &[&RunFile]| aggregate(runs.iter().map(|r| (&r.report, r.psnr.as_ref()))).expect("pools");
        let (a, b) = (pool(&lp_runs), pool(&si_runs));
        assert!(a.exact);
        assert!((a.report.classes[0].alpha[0] - 0.8).abs() < 1e-9, "160 of 200 LCs");
        assert_eq!(a.psnr.as_ref().map(|p| p[0].quality.overall()), Some(Some(35.0)));
        let t = psnr_gap_table(("layerp2p", &a, &lp_runs), &[("single-incent", &b, &si_runs)]);
        // Pooled 35 - 24; paired only where both ran the seed: seed 2, 30 - 28.
        assert!(t.contains("single-incent (pooled)") && t.contains("+11.00"), "{t}");
        assert!(t.contains("seed 2") && t.contains("+2.00") && !t.contains("seed 1") && !t.contains("seed 3"), "{t}");
        assert!(!t.contains("95 % CI"), "one paired seed gives no interval: {t}");
        assert!(per_run_table(&lp_runs).contains("residential 3 kbps 90.0 % Q 40.00"), "{}", per_run_table(&lp_runs));

        // JSON from before the LC counts were kept still reads, and pools by peers.
        let mut old = serde_json::to_value(&lp[1].report).expect("serializes");
        old["classes"][0].as_object_mut().expect("class").retain(|k, _| k != "played" && k != "missed");
        let old: SwarmReport = serde_json::from_value(old).expect("old report reads");
        let mixed = aggregate([(&lp[0].report, None), (&old, None)]).expect("pools");
        assert!(!mixed.exact && mixed.psnr.is_none());
        assert!((mixed.report.classes[0].alpha[0] - 0.8).abs() < 1e-9, "same peers: weighting by peers is exact here");
        assert!(aggregate(std::iter::empty()).is_err());
    }

    #[test]
    fn paired_gaps_get_a_t_interval() {
        // Gaps 1, 2, 3 dB: mean 2, sd 1, t(2) = 4.303, half-width 4.303 / sqrt(3).
        let (m, h) = mean_with_ci95(&[1.0, 2.0, 3.0]).expect("three values");
        assert!((m - 2.0).abs() < 1e-12 && (h - 4.303 / 3f64.sqrt()).abs() < 1e-9, "{m} {h}");
        assert_eq!(mean_with_ci95(&[5.0]), None);
        // More seeds of the same spread narrow the interval.
        let (_, wide) = mean_with_ci95(&[1.0, 3.0]).expect("two");
        let (_, narrow) = mean_with_ci95(&[1.0, 3.0, 1.0, 3.0, 1.0, 3.0]).expect("six");
        assert!(narrow < wide / 5.0, "{narrow} vs {wide}");

        // In the report: three paired seeds with gaps +1, +2, +3 dB.
        let lp: Vec<RunFile> = (1..=3).map(|s| run_file("layerp2p", s, 90, 30.0 + s as f64)).collect();
        let si: Vec<RunFile> = (1..=3).map(|s| run_file("single-incent", s, 90, 30.0)).collect();
        let (lp_runs, si_runs): (Vec<&RunFile>, Vec<&RunFile>) = (lp.iter().collect(), si.iter().collect());
        let pool = |runs: &[&RunFile]| aggregate(runs.iter().map(|r| (&r.report, r.psnr.as_ref()))).expect("pools");
        let t =
            psnr_gap_table(("layerp2p", &pool(&lp_runs), &lp_runs), &[("single-incent", &pool(&si_runs), &si_runs)]);
        assert!(t.contains("paired mean, 95 % CI") && t.contains("+2.00 ± 2.48"), "{t}");
    }
}

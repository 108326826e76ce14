//! `layerp2p tracker | seed | relay | peer | keygen`: the deployable roles on real UDP.
//! Wiring only: flags become a `NodeSpec` (the channel's plan and key through
//! `engine::channel`, the seed's video through `codec::video::source`), the engine's
//! `runtime::role` runs it; this file prints the live status line and the exit
//! summary (on stderr when stdout carries the video) and turns Ctrl-C into a stop.

use super::args::{IncentiveArgs, NeighbourArgs, PolicyArg, Video, parse_contact_addr};
use super::ops::{Ops, drain_on_signals};
use clap::Args as ClapArgs;
use layerp2p_codec::synthetic::SyntheticSource;
use layerp2p_codec::video::encoder::EncoderConfig;
use layerp2p_codec::video::source::{Input, InputOptions, ThreadedSource, VideoSource, clip_source, input_source};
use layerp2p_codec::video::{FrameRate, Resolution};
use layerp2p_codec::{Kbps, LayerPlan, LcSource};
use layerp2p_engine::channel::{self, channel_id, plan_text};
use layerp2p_engine::integrity::ContentAuth;
use layerp2p_engine::runtime::exposition::NodeMetrics;
use layerp2p_engine::runtime::http::HttpServer;
use layerp2p_engine::runtime::player::{Players, StatusBoard, player_routes};
use layerp2p_engine::runtime::playout::Playout;
use layerp2p_engine::runtime::role::{NodeSpec, run_node_observed, run_tracker_observed};
use layerp2p_engine::runtime::status::{NodeSummary, Status};
use layerp2p_engine::wire::Role;
use layerp2p_engine::{PeerConfig, TrackerConfig};
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

mod channels;

/// Flags every role shares.
#[derive(ClapArgs, Debug)]
pub struct Common {
    /// Run for this many seconds, then stop as on Ctrl-C (0: until Ctrl-C).
    #[arg(long, default_value_t = 0)]
    duration: u64,
    /// Machine-readable output: one JSON status object per second and the summary
    /// as JSON, on stdout.
    #[arg(long)]
    json: bool,
    /// Pin the (first) executor to this core; further shards take the next cores.
    #[arg(long, default_value_t = 0)]
    core: usize,
    /// Seed of every random choice the node makes.
    #[arg(long, default_value_t = 1)]
    rng_seed: u64,
    #[command(flatten)]
    ops: Ops,
}

/// Flags of the roles that run the protocol (seed, relay, peer).
#[derive(ClapArgs, Debug)]
pub struct Protocol {
    /// Scheduling policy; every node of a swarm should use the same.
    #[arg(long, value_enum, default_value_t = PolicyArg::Layerp2p)]
    policy: PolicyArg,
    #[command(flatten)]
    incentive: IncentiveArgs,
    /// The stream: a synthetic preset (prototype, simulation) or the built-in clip
    /// H.264-encoded live (clip). Sets the layer plan, which every node of a swarm must
    /// share; a seed with --input ignores it.
    #[arg(long, value_enum, default_value_t = NodeVideo::Prototype)]
    video: NodeVideo,
    /// The layer plan as kbps per layer, base first (e.g. 290,230,100), overriding
    /// --video's (a seed's synthetic video is generated at this plan). A seed prints its plan at start; give relays and peers that value.
    /// A node whose plan differs from the seed's is in another channel: it finds no peers.
    #[arg(long, value_parser = parse_plan_arg)]
    plan: Option<LayerPlan>,
    /// Playback lag behind the source, seconds (at least 2).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(2..=600))]
    lag: u64,
}

/// What a seed streams (and so every node's default layer plan).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeVideo {
    /// Synthetic: the paper's prototype video, 290/230/100 kbps VBR.
    Prototype,
    /// Synthetic: the paper's simulated video, 3 x 200 kbps CBR.
    Simulation,
    /// The built-in procedural clip, CIF 30 fps, H.264 with 3 temporal layers.
    Clip,
}

/// The built-in clip as seeds stream it: an IDR every 32 frames (about 1 s), so a
/// viewer starts soon after it joins.
fn clip_config() -> EncoderConfig {
    EncoderConfig { intra_period: 32, ..EncoderConfig::new(Resolution::CIF, FrameRate::FPS_30) }
}

impl NodeVideo {
    fn synthetic(self) -> Option<Video> {
        match self {
            NodeVideo::Prototype => Some(Video::Prototype),
            NodeVideo::Simulation => Some(Video::Simulation),
            NodeVideo::Clip => None,
        }
    }

    /// The layer plan a node derives from this video. The clip's is measured from
    /// its first GOP, encoded here exactly as the seed encodes it.
    fn plan(self) -> Result<LayerPlan, String> {
        match self.synthetic() {
            Some(v) => Ok(v.synthetic(1).plan),
            None => Ok(clip_source(clip_config(), Some(clip_config().intra_period))
                .map_err(|e| format!("built-in clip: {e}"))?
                .plan()
                .clone()),
        }
    }
}

fn parse_plan_arg(s: &str) -> Result<LayerPlan, String> {
    channel::parse_plan(s).map_err(|e| e.to_string())
}

/// HOST:PORT resolved once at start (the first address a name resolves to).
fn parse_host_port(s: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    let addr = match s.parse::<SocketAddr>() {
        Ok(addr) => addr,
        Err(_) => s
            .to_socket_addrs()
            .map_err(|e| format!("{s:?} is not HOST:PORT: {e}"))?
            .next()
            .ok_or_else(|| format!("{s:?} resolves to no address"))?,
    };
    // A contact address must be one a datagram can reach (no port 0, no multicast).
    parse_contact_addr(&addr.to_string())
}

pub(super) fn parse_key_arg(s: &str) -> Result<channel::PublicKey, String> {
    channel::parse_public_key(s).map_err(|e| e.to_string())
}

#[derive(ClapArgs, Debug)]
pub struct TrackerArgs {
    /// Address to listen on (`[::]:PORT`: IPv4 and IPv6 at once).
    #[arg(long, default_value = "0.0.0.0:7700")]
    listen: SocketAddr,
    #[command(flatten)]
    common: Common,
}

#[derive(ClapArgs, Debug)]
pub struct SeedArgs {
    /// Address to listen on, shared by all shards (`[::]:PORT`: IPv4 and IPv6 at once).
    #[arg(long, default_value = "0.0.0.0:7701")]
    listen: SocketAddr,
    /// Register with this tracker (HOST:PORT, a name or an IPv4/IPv6 address); without
    /// it the seed runs its own at --tracker-listen.
    #[arg(long, value_parser = parse_host_port)]
    tracker: Option<SocketAddr>,
    /// Where the embedded tracker listens (when --tracker is not given).
    #[arg(long, default_value = "0.0.0.0:7700")]
    tracker_listen: SocketAddr,
    /// Upload cap of the whole seed in kbps, split equally over the shards (a seed
    /// that uploads nothing streams nothing).
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..))]
    upload_kbps: u32,
    /// Executors (one pinned core each) sharing the port through SO_REUSEPORT.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    shards: u64,
    /// Most neighbours of the whole seed, split over the shards.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    n_max: u64,
    /// Stream this video instead of --video: a Y4M file (encoded here with OpenH264)
    /// or an H.264 Annex B file (layered by frame type, not re-encoded); `-` reads
    /// stdin. The format is recognised from the first bytes. The layer plan is
    /// measured from the first --intra-period frames.
    #[arg(long)]
    input: Option<PathBuf>,
    /// Layers to make of --input (temporal layers when encoding Y4M).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=4))]
    layers: u64,
    /// Encoder quantiser for Y4M --input, 0 (best) to 51.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u8).range(0..=51))]
    qp: u8,
    /// Frames between IDRs for Y4M --input (a multiple of 2^(layers-1)); also how many
    /// frames the layer plan is measured over.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=1024))]
    intra_period: u32,
    /// Frame rate of Annex B --input, which carries no timing (Y4M has its own), and of
    /// the synthetic video.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=240))]
    fps: u32,
    /// The channel's 32-byte secret key (`layerp2p keygen`): the seed signs what it
    /// streams, and relays and peers given its public key (--channel-key) check every
    /// LC. Without it content is not signed.
    #[arg(long)]
    key: Option<PathBuf>,
    /// Serve several channels from this process, one per --channel (repeatable):
    /// `id=NAME,KEY=VALUE,...` whose keys are this command's flags (`listen`, `plan`,
    /// `n-max`, `upload-kbps`, ...), overriding the flags given outside for that
    /// channel only. A config file lists them as `[[channel]]` tables; SIGHUP re-reads
    /// it (new channels start, removed ones drain, changed ones restart, the others go
    /// on untouched). See docs/OPERATIONS.md.
    #[arg(long, value_name = "SPEC")]
    channel: Vec<String>,
    #[command(flatten)]
    protocol: Protocol,
    #[command(flatten)]
    common: Common,
}

#[derive(ClapArgs, Debug)]
pub struct KeygenArgs {
    /// Where to write the new 32-byte secret key (never overwritten; mode 0600).
    #[arg(long)]
    out: PathBuf,
}

/// Where a relay or peer listens, which swarm it joins and the key it checks with.
#[derive(ClapArgs, Debug)]
pub struct Member {
    /// Address to listen on (`[::]:PORT`: IPv4 and IPv6 at once).
    #[arg(long, default_value = "0.0.0.0:0")]
    listen: SocketAddr,
    /// The swarm's tracker: HOST:PORT, a name or an address (`[2001:db8::1]:7700`).
    /// Behind a NAT nothing else is needed: the peer learns its public address and
    /// NAT type and punches holes through the tracker's introductions.
    /// Required (a relay's `--channel` may give it per channel instead).
    #[arg(long, value_parser = parse_host_port)]
    tracker: Option<SocketAddr>,
    /// The channel's public key, 64 hex digits (what the seed and `layerp2p keygen`
    /// print): every LC is checked against manifests it signed. Without it nothing is
    /// checked (a warning says so) and only a seed without --key is found.
    #[arg(long, value_parser = parse_key_arg)]
    channel_key: Option<channel::PublicKey>,
}

#[derive(ClapArgs, Debug)]
pub struct RelayArgs {
    #[command(flatten)]
    member: Member,
    /// Upload cap in kbps (a super-peer's is high; a relay that uploads nothing
    /// relays nothing).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    upload_kbps: u32,
    /// Most neighbours of the whole relay. With --shards above 1 the upstream peer
    /// keeps up to 20 and the serving shards split the rest (leave headroom: the
    /// kernel spreads viewers over the shards only roughly evenly).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    n_max: u64,
    /// Serving executors sharing the port (SO_REUSEPORT); with more than one, an extra
    /// upstream peer on a private port fetches the stream and feeds them.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    shards: u64,
    /// Serve several channels from this process, one per --channel (repeatable):
    /// `id=NAME,KEY=VALUE,...` whose keys are this command's flags (`listen`, `plan`,
    /// `n-max`, `upload-kbps`, ...), overriding the flags given outside for that
    /// channel only. A config file lists them as `[[channel]]` tables; SIGHUP re-reads
    /// it (new channels start, removed ones drain, changed ones restart, the others go
    /// on untouched). See docs/OPERATIONS.md.
    #[arg(long, value_name = "SPEC")]
    channel: Vec<String>,
    #[command(flatten)]
    protocol: Protocol,
    #[command(flatten)]
    common: Common,
}

#[derive(ClapArgs, Debug)]
pub struct PeerArgs {
    #[command(flatten)]
    member: Member,
    /// Upload cap in kbps; 0 makes a free-rider. `auto` (the default) measures it: a
    /// delay-based controller (LEDBAT, RFC 6817) finds the rate at which the uplink
    /// starts to queue and keeps the added delay near 25 ms (more on a slow uplink:
    /// two full datagrams' time); l_n follows it. See docs/PROTOCOL.md.
    #[arg(long, default_value = "auto", value_parser = parse_upload)]
    upload_kbps: Upload,
    /// Download capacity of this peer's access link in kbps, if below its upload:
    /// the peer then asks first only for the layers its link carries (threshold
    /// layer l_n from the smaller of the two). Nothing is throttled. Unset: only
    /// the upload counts, as in DESIGN.md §6.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    download_kbps: Option<u32>,
    /// Write what this peer plays, as it plays it, as H.264 Annex B (`-`: stdout,
    /// e.g. `| ffplay -f h264 -`); starts at the first IDR played. Needs a video
    /// stream (a seed with --input or --video clip).
    #[arg(long)]
    output: Option<PathBuf>,
    /// Serve what this peer plays to local players over HTTP on this address (e.g.
    /// 127.0.0.1:8090): MPEG-TS at /stream.ts (`vlc http://ADDR/stream.ts`), a status
    /// page at / and its numbers at /status.json. The stream needs H.264 video, as
    /// --output does.
    #[arg(long, value_name = "ADDR")]
    http: Option<SocketAddr>,
    #[command(flatten)]
    neighbours: NeighbourArgs,
    #[command(flatten)]
    protocol: Protocol,
    #[command(flatten)]
    common: Common,
}

/// Prints each status (a live line on a terminal, JSON lines with --json, a line
/// every 10 s otherwise) and sets `stop` once --duration has passed.
fn status_printer(common: &Common, stop: Arc<AtomicBool>) -> impl FnMut(&Status) + use<> {
    let (json, duration) = (common.json, common.duration);
    let live = std::io::stderr().is_terminal();
    let start = Instant::now();
    let mut last_plain = 0u64;
    move |s: &Status| {
        if json {
            if let Ok(line) = serde_json::to_string(s) {
                println!("{line}");
            }
        } else if live {
            eprint!("\r\x1b[2K{s}");
            let _ = std::io::stderr().flush();
        } else if s.elapsed_s as u64 >= last_plain + 10 {
            last_plain = s.elapsed_s as u64;
            tracing::info!("{s}");
        }
        if duration > 0 && start.elapsed() >= Duration::from_secs(duration) {
            stop.store(true, Ordering::Relaxed);
        }
    }
}

/// Prints the summary: on stdout, or on stderr when stdout carries the video.
fn finish(common: &Common, summary: NodeSummary, stdout_busy: bool) -> Result<(), String> {
    if std::io::stderr().is_terminal() && !common.json {
        eprintln!();
    }
    let text = if common.json {
        serde_json::to_string(&serde_json::json!({ "summary": summary })).map_err(|e| e.to_string())? + "\n"
    } else {
        summary.text()
    };
    if stdout_busy {
        eprint!("{text}");
    } else {
        print!("{text}");
    }
    Ok(())
}

pub fn tracker(args: TrackerArgs) -> Result<(), String> {
    args.common.ops.init_logs();
    let metrics = NodeMetrics::new("tracker", None, 1);
    let _server = args.common.ops.serve_metrics(&metrics)?;
    let stop = drain_on_signals()?;
    tracing::info!("tracker listening on {} (Ctrl-C to stop)", args.listen);
    let mut print = status_printer(&args.common, stop.clone());
    let (listen, seed, core) = (args.listen, args.common.rng_seed, args.common.core);
    let summary = run_tracker_observed(listen, TrackerConfig::default(), seed, core, stop, &metrics, &mut print)
        .map_err(|e| e.to_string())?;
    finish(&args.common, summary, false)
}

/// A node's configuration in the channel of `plan` and `auth`'s key.
fn config(
    role: Role,
    p: &Protocol,
    plan: LayerPlan,
    auth: ContentAuth,
    upload: u32,
    tracker: Option<SocketAddr>,
) -> PeerConfig {
    let mut pc = match role {
        Role::Seed => PeerConfig::seed(p.policy.policy(), plan, Kbps(upload)),
        Role::Relay => PeerConfig::relay(p.policy.policy(), plan, Kbps(upload)),
        Role::Peer => PeerConfig::peer(p.policy.policy(), plan, Kbps(upload)),
    };
    pc.channel = channel_id(&pc.plan, auth.verifying_key().as_ref());
    pc.content_auth = auth;
    pc.lag = Duration::from_secs(p.lag);
    pc.tracker = tracker;
    p.incentive.apply(&mut pc.incentive);
    pc
}

/// Where a viewer hands what it plays: `--output` (Annex B) and `--http` (players).
#[derive(Debug, Default)]
struct Playback {
    file: Option<PathBuf>,
    http: Option<SocketAddr>,
}

/// Runs `spec`; what the node plays goes where `playback` says.
fn node(spec: NodeSpec, source: Option<Box<dyn LcSource>>, playback: Playback, common: &Common) -> Result<(), String> {
    let stdout_busy = playback.file.as_deref().is_some_and(is_std);
    if stdout_busy && common.json {
        return Err("--json and --output - both want stdout: write the video to a file, or drop --json".into());
    }
    let board = StatusBoard::new();
    let players = playback.http.map(|_| Players::new());
    let _players_server = match (playback.http, &players) {
        (Some(addr), Some(p)) => Some(serve_players(addr, p, &board)?),
        _ => None,
    };
    let file = playback.file.as_deref().map(open_output).transpose()?;
    let playout = match (file, players) {
        (None, None) => None,
        (file, players) => {
            Some(Playout::spawn_to(file, players).map_err(|e| format!("cannot start the output writer: {e}"))?)
        }
    };
    let (playout, sink) = playout.unzip();
    let metrics = spec.metrics();
    let _server = common.ops.serve_metrics(&metrics)?;
    let stop = drain_on_signals()?;
    let mut print = status_printer(common, stop.clone());
    let mut observe = |s: &Status| {
        board.update(s);
        print(s)
    };
    let summary = run_node_observed(spec, source, sink, stop, &metrics, &mut observe).map_err(|e| e.to_string())?;
    if let Some(p) = playout {
        let report = p.finish().map_err(|e| format!("writing the output: {e}"))?;
        tracing::info!(
            "output: {} frames written, {} skipped as undecodable (a frame they are predicted from was lost), \
             {} before the first IDR, {} played LCs dropped (writer behind)",
            report.frames_written,
            report.frames_skipped.reference_lost,
            report.frames_skipped.before_start,
            report.lcs_dropped
        );
    }
    finish(common, summary, stdout_busy)
}

/// `--http`: the stream and status page of a viewer.
fn serve_players(addr: SocketAddr, players: &Arc<Players>, board: &Arc<StatusBoard>) -> Result<HttpServer, String> {
    let server =
        HttpServer::bind(addr, player_routes(players.clone(), board.clone())).map_err(|e| format!("--http: {e}"))?;
    let at = server.local_addr();
    tracing::info!(addr = %at, "players: vlc http://{at}/stream.ts; status page at http://{at}/");
    Ok(server)
}

/// `-` means stdin or stdout.
fn is_std(path: &std::path::Path) -> bool {
    path.as_os_str() == "-"
}

fn open_output(path: &std::path::Path) -> Result<Box<dyn Write + Send>, String> {
    if is_std(path) {
        return Ok(Box::new(std::io::stdout()));
    }
    let file = std::fs::File::create(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    Ok(Box::new(std::io::BufWriter::new(file)))
}

/// The seed's stream: --input, else --video (the clip encoded live, or synthetic).
fn seed_source(args: &SeedArgs) -> Result<Box<dyn LcSource>, String> {
    let video = |s: VideoSource| -> Result<Box<dyn LcSource>, String> {
        Ok(Box::new(ThreadedSource::spawn(s).map_err(|e| format!("cannot start the video reader: {e}"))?))
    };
    if let Some(path) = &args.input {
        let reader: Box<dyn std::io::BufRead + Send> = if is_std(path) {
            Box::new(std::io::BufReader::new(std::io::stdin()))
        } else {
            let f = std::fs::File::open(path).map_err(|e| format!("cannot open --input {}: {e}", path.display()))?;
            Box::new(std::io::BufReader::new(f))
        };
        let rate = FrameRate::per_second(args.fps).map_err(|e| e.to_string())?;
        let opts = InputOptions {
            layers: args.layers as usize,
            qp: args.qp,
            intra_period: args.intra_period,
            annexb_rate: rate,
        };
        let source = input_source(Input(reader), &opts).map_err(|e| format!("--input {}: {e}", path.display()))?;
        for warning in source.warnings() {
            eprintln!("warning: --input {}: {warning}", path.display());
        }
        return video(source);
    }
    match args.protocol.video.synthetic() {
        Some(v) => {
            // A synthetic stream takes any plan and frame rate: load tests scale it down.
            let mut cfg = v.synthetic(args.common.rng_seed);
            cfg.plan = args.protocol.plan.clone().unwrap_or(cfg.plan);
            cfg.fps = args.fps;
            Ok(Box::new(SyntheticSource::new(cfg).map_err(|e| e.to_string())?))
        }
        None => video(clip_source(clip_config(), None).map_err(|e| format!("built-in clip: {e}"))?),
    }
}

/// Where the embedded tracker is reached from this host.
fn reachable(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() { SocketAddr::from(([127, 0, 0, 1], addr.port())) } else { addr }
}

pub fn seed(args: SeedArgs) -> Result<(), String> {
    args.common.ops.init_logs();
    if !args.channel.is_empty() {
        return channels::serve(&args);
    }
    let (spec, source) = seed_node(&args)?;
    node(spec, Some(source), Playback::default(), &args.common)
}

/// The seed `args` describe and the stream it ingests.
fn seed_node(args: &SeedArgs) -> Result<(NodeSpec, Box<dyn LcSource>), String> {
    if args.tracker.is_none() && args.tracker_listen.port() == 0 {
        return Err(format!(
            "--tracker-listen {} has port 0: peers could not find the embedded tracker; give a port",
            args.tracker_listen
        ));
    }
    let tracker = args.tracker.unwrap_or(reachable(args.tracker_listen));
    let auth = match &args.key {
        Some(path) => ContentAuth::Sign(channel::read_secret_key(path).map_err(|e| e.to_string())?),
        None => ContentAuth::Off,
    };
    let source = seed_source(args)?;
    let plan = source.plan().clone();
    if let Some(given) = args.protocol.plan.as_ref().filter(|&p| *p != plan) {
        return Err(format!(
            "--plan {} differs from the plan of the seed's video, {}: drop --plan or give that one",
            plan_text(given),
            plan_text(&plan)
        ));
    }
    let mut peer = config(Role::Seed, &args.protocol, plan.clone(), auth.clone(), args.upload_kbps, Some(tracker));
    peer.n_max = args.n_max as usize;
    let spec = NodeSpec {
        peer,
        listen: args.listen,
        shards: args.shards as usize,
        embedded_tracker: args.tracker.is_none().then_some(args.tracker_listen),
        first_core: args.common.core,
        rng_seed: args.common.rng_seed,
    };
    match args.tracker {
        Some(t) => {
            tracing::info!("seed on {} with tracker {t}, {} shard(s) (Ctrl-C to stop)", args.listen, args.shards)
        }
        None => tracing::info!(
            "seed on {} with its own tracker on {}, {} shard(s) (Ctrl-C to stop)",
            args.listen,
            args.tracker_listen,
            args.shards
        ),
    }
    match auth.verifying_key() {
        Some(k) => tracing::info!(
            "channel: --plan {} --channel-key {} (give both to every relay and peer)",
            plan_text(&plan),
            channel::to_hex(k.as_bytes())
        ),
        None => tracing::warn!(
            "channel: --plan {} (give it to every relay and peer); content is NOT signed: no --key",
            plan_text(&plan)
        ),
    }
    Ok((spec, source))
}

/// `layerp2p keygen`: a new channel secret in a file, its public key on stdout.
pub fn keygen(args: KeygenArgs) -> Result<(), String> {
    let secret = channel::new_secret(&mut rand::rng());
    channel::write_secret_key(&args.out, &secret).map_err(|e| e.to_string())?;
    let public = ContentAuth::signing_key(secret).verifying_key();
    eprintln!("secret key written to {}; the channel's public key (--channel-key):", args.out.display());
    println!("{}", channel::to_hex(public.as_bytes()));
    Ok(())
}

/// How a relay or peer takes part in the channel: the plan (--plan, else --video's)
/// and the key to check content with.
fn membership(protocol: &Protocol, m: &Member) -> Result<(LayerPlan, ContentAuth), String> {
    let plan = match &protocol.plan {
        Some(p) => p.clone(),
        None => protocol.video.plan()?,
    };
    let auth = match m.channel_key {
        Some(k) => ContentAuth::Verify(k),
        None => {
            tracing::warn!("no --channel-key: content is not checked, and only a seed without --key is found");
            ContentAuth::Off
        }
    };
    tracing::info!("joining channel --plan {}", plan_text(&plan));
    Ok((plan, auth))
}

/// The relay or peer that joins `m.tracker`'s swarm; `tune` changes its
/// configuration (neighbour limits) before it starts.
fn member_spec(
    role: Role,
    m: &Member,
    upload: u32,
    tune: impl FnOnce(&mut PeerConfig) -> Result<(), String>,
    shards: u64,
    protocol: &Protocol,
    common: &Common,
) -> Result<NodeSpec, String> {
    let tracker = m.tracker.ok_or("--tracker HOST:PORT is required: the tracker of the swarm to join")?;
    let (plan, auth) = membership(protocol, m)?;
    let mut peer = config(role, protocol, plan, auth, upload, Some(tracker));
    tune(&mut peer)?;
    if role == Role::Peer {
        let (l_n, layers) = (peer.threshold_layer(), peer.plan.layers());
        match l_n {
            0 => tracing::info!("threshold layer l_n = 0 of {layers}: every layer is a probing request"),
            _ => tracing::info!(
                "threshold layer l_n = {l_n} of {layers}: layers 1..={l_n} are regular requests, asked for first"
            ),
        }
    }
    let spec = NodeSpec {
        peer,
        listen: m.listen,
        shards: shards as usize,
        embedded_tracker: None,
        first_core: common.core,
        rng_seed: common.rng_seed,
    };
    Ok(spec)
}

pub fn relay(args: RelayArgs) -> Result<(), String> {
    args.common.ops.init_logs();
    if !args.channel.is_empty() {
        return channels::serve(&args);
    }
    let spec = relay_spec(&args)?;
    node(spec, None, Playback::default(), &args.common)
}

/// The relay `args` describe.
fn relay_spec(args: &RelayArgs) -> Result<NodeSpec, String> {
    let n_max = args.n_max as usize;
    let tune = |pc: &mut PeerConfig| {
        pc.n_max = n_max;
        Ok(())
    };
    member_spec(Role::Relay, &args.member, args.upload_kbps, tune, args.shards, &args.protocol, &args.common)
}

/// `--upload-kbps`: a cap, or measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upload {
    Kbps(u32),
    Auto,
}

/// The ceiling of a measured upload (far above any access link).
const AUTO_UPLOAD_CEILING_KBPS: u32 = 1_000_000;

fn parse_upload(s: &str) -> Result<Upload, String> {
    match s {
        "auto" => Ok(Upload::Auto),
        n => n.parse().map(Upload::Kbps).map_err(|_| format!("{n:?} is neither `auto` nor a number of kbps")),
    }
}

pub fn peer(args: PeerArgs) -> Result<(), String> {
    args.common.ops.init_logs();
    let download = args.download_kbps.map(Kbps);
    let auto = args.upload_kbps == Upload::Auto;
    let tune = |pc: &mut PeerConfig| {
        pc.download = download;
        pc.upload_auto = auto;
        args.neighbours.apply(pc)
    };
    let upload = match args.upload_kbps {
        Upload::Kbps(k) => k,
        Upload::Auto => AUTO_UPLOAD_CEILING_KBPS,
    };
    let spec = member_spec(Role::Peer, &args.member, upload, tune, 1, &args.protocol, &args.common)?;
    node(spec, None, Playback { file: args.output, http: args.http }, &args.common)
}

//! Several channels in one seed or relay process (`--channel`, `[[channel]]` in a
//! config file), and SIGHUP to add, remove or change channels while the others run.
//!
//! Each channel is a whole node of its own (its socket, shards, neighbour budget and
//! upload cap, see docs/decisions/0011-several-channels.md) on its own thread; this
//! module only works out which channels the configuration asks for, starts and stops
//! them, and gathers their metrics under one `--metrics-listen`. A channel is the
//! role's flags as given outside any channel, overridden by the channel's own keys.

use super::{Common, RelayArgs, SeedArgs, reachable, relay_spec, seed_node};
use clap::{ArgMatches, Command, CommandFactory, FromArgMatches};
use layerp2p_codec::LcSource;
use layerp2p_engine::TrackerConfig;
use layerp2p_engine::runtime::exposition::{MetricsSet, NodeMetrics};
use layerp2p_engine::runtime::role::{NodeSpec, run_node_observed, run_tracker_observed};
use layerp2p_engine::runtime::status::{NodeSummary, Status};
use layerp2p_engine::wire::ChannelId;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::super::config_file;
use super::super::ops::drain_on_signals;

/// Most channels one process serves.
pub const MAX_CHANNELS: usize = 64;
/// Longest channel id (it is a metrics label and a log field).
const MAX_ID_LEN: usize = 64;
/// How often the supervisor looks at its signals and its channels.
const TICK: Duration = Duration::from_millis(100);

/// Keys that belong to the whole process, not to one channel.
const PROCESS_KEYS: [&str; 10] = [
    "channel",
    "config",
    "print-config",
    "metrics-listen",
    "log-format",
    "json",
    "duration",
    "tracker-listen",
    "help",
    "version",
];

/// A channel list the process cannot serve; nothing was started or stopped.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChannelError {
    #[error("--channel {spec:?}: no `id=NAME`: every channel needs an id")]
    MissingId { spec: String },
    #[error("--channel {spec:?}: `{part}` is not KEY=VALUE")]
    NotKeyValue { spec: String, part: String },
    #[error("channel id {id:?}: use 1 to {MAX_ID_LEN} letters, digits, `-`, `_` or `.`")]
    BadId { id: String },
    #[error("channel `{id}` is given twice: channel ids must differ")]
    DuplicateId { id: String },
    #[error("channel `{id}`: unknown key `{key}`: `layerp2p {role}` has no flag --{key}")]
    UnknownKey { id: String, key: String, role: String },
    #[error("channel `{id}`: key `{key}` is for the whole process: set it outside the channels")]
    ProcessKey { id: String, key: String },
    #[error("channel `{id}`: {what}")]
    BadValue { id: String, what: String },
    #[error("channels `{a}` and `{b}` both listen on port {port}: give each channel its own `listen`")]
    SameListen { a: String, b: String, port: u16 },
    #[error("channels `{a}` and `{b}` are the same channel (same plan and key): serve it once")]
    SameChannel { a: String, b: String },
    #[error("{0} channels: at most {MAX_CHANNELS} in one process")]
    TooMany(usize),
}

/// `id=news,plan=290,230,100,n-max=50` as the channel id and its flags
/// (`--plan=290,230,100`, `--n-max=50`): a part without `=` continues the value
/// before it, so lists need no quoting. Keys are `role`'s long flags.
pub fn parse_spec(spec: &str, role: &Command) -> Result<(String, Vec<String>), ChannelError> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for part in spec.split(',') {
        match part.split_once('=') {
            Some((k, v)) => pairs.push((k.trim().replace('_', "-"), v.trim().to_string())),
            None => match pairs.last_mut() {
                Some((_, v)) => {
                    v.push(',');
                    v.push_str(part.trim());
                }
                None => return Err(ChannelError::NotKeyValue { spec: spec.into(), part: part.into() }),
            },
        }
    }
    let Some(at) = pairs.iter().position(|(k, _)| k == "id") else {
        return Err(ChannelError::MissingId { spec: spec.into() });
    };
    let (_, id) = pairs.remove(at);
    let id_ok = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !id_ok {
        return Err(ChannelError::BadId { id });
    }
    let mut flags = Vec::new();
    for (key, value) in pairs {
        if PROCESS_KEYS.contains(&key.as_str()) || key == "id" {
            return Err(ChannelError::ProcessKey { id, key });
        }
        if !role.get_arguments().any(|a| a.get_long() == Some(key.as_str())) {
            return Err(ChannelError::UnknownKey { id, key, role: role.get_name().into() });
        }
        flags.push(format!("--{key}={value}"));
    }
    Ok((id, flags))
}

/// One channel the configuration asks for.
#[derive(Debug)]
pub struct Planned<A> {
    pub id: String,
    pub args: A,
    /// The channel gives its own `core`; else channels are spread over the cores.
    pub pinned: bool,
    /// Its effective configuration: a channel whose key is unchanged by a reload runs on.
    pub key: toml::Table,
}

/// The channels of `argv` (a role's arguments after its name, config file expanded).
pub fn plan_channels<A: FromArgMatches>(role: &Command, argv: &[OsString]) -> Result<Vec<Planned<A>>, String> {
    let name = role.get_name().to_string();
    let parse = |extra: &[String]| -> Result<ArgMatches, String> {
        let args =
            std::iter::once(OsString::from(&name)).chain(argv.iter().cloned()).chain(extra.iter().map(OsString::from));
        role.clone().try_get_matches_from(args).map_err(|e| e.to_string())
    };
    let outside = parse(&[])?;
    let specs: Vec<String> = outside.get_many::<String>("channel").map(|v| v.cloned().collect()).unwrap_or_default();
    if specs.len() > MAX_CHANNELS {
        return Err(ChannelError::TooMany(specs.len()).to_string());
    }
    let mut planned: Vec<Planned<A>> = Vec::new();
    for spec in &specs {
        let (id, flags) = parse_spec(spec, role).map_err(|e| e.to_string())?;
        if planned.iter().any(|p| p.id == id) {
            return Err(ChannelError::DuplicateId { id }.to_string());
        }
        let bad = |what: String| ChannelError::BadValue { id: id.clone(), what }.to_string();
        let m = parse(&flags).map_err(|e| bad(e.trim_end().replace('\n', " ")))?;
        let args = A::from_arg_matches(&m).map_err(|e| bad(e.to_string()))?;
        let mut key = config_file::effective_table(role, &m);
        key.remove("channel");
        let pinned = flags.iter().any(|f| f.starts_with("--core="));
        planned.push(Planned { id, args, key, pinned });
    }
    Ok(planned)
}

/// The channels the command line and the config file ask for now (the file is read
/// again: this is what SIGHUP runs).
fn load<A: FromArgMatches>(role: &str) -> Result<Vec<Planned<A>>, String> {
    let cli = config_file::overridable(crate::Cli::command());
    let argv = config_file::expand(std::env::args_os().collect(), &cli).map_err(|e| e.to_string())?;
    // The role is the first word, as `config_file::expand` finds it.
    let at = argv
        .iter()
        .skip(1)
        .position(|a| !a.to_string_lossy().starts_with('-'))
        .map(|i| i + 1)
        .filter(|&i| argv[i] == role)
        .ok_or_else(|| format!("no `{role}` in the command line"))?;
    let sub = cli.find_subcommand(role).ok_or_else(|| format!("no command `{role}`"))?;
    plan_channels(sub, &argv[at + 1..])
}

/// A role that serves channels: seed or relay.
pub trait ChannelRole: FromArgMatches {
    const ROLE: &'static str;
    fn common(&self) -> &Common;
    /// The node of this channel and, for a seed, the stream it ingests.
    fn node(&self) -> Result<(NodeSpec, Option<Box<dyn LcSource>>), String>;
    /// A tracker the process runs for all its channels (a seed without --tracker).
    fn shared_tracker(&self) -> Option<SocketAddr> {
        None
    }
}

impl ChannelRole for RelayArgs {
    const ROLE: &'static str = "relay";
    fn common(&self) -> &Common {
        &self.common
    }
    fn node(&self) -> Result<(NodeSpec, Option<Box<dyn LcSource>>), String> {
        Ok((relay_spec(self)?, None))
    }
}

impl ChannelRole for SeedArgs {
    const ROLE: &'static str = "seed";
    fn common(&self) -> &Common {
        &self.common
    }
    fn node(&self) -> Result<(NodeSpec, Option<Box<dyn LcSource>>), String> {
        let (mut spec, source) = seed_node(self)?;
        // The process runs one tracker for every channel (`shared_tracker`).
        spec.embedded_tracker = None;
        Ok((spec, Some(source)))
    }
    fn shared_tracker(&self) -> Option<SocketAddr> {
        self.tracker.is_none().then_some(self.tracker_listen)
    }
}

/// A channel that runs.
struct Running {
    key: toml::Table,
    listen: SocketAddr,
    channel: ChannelId,
    stop: Arc<AtomicBool>,
    metrics: Arc<NodeMetrics>,
    handle: JoinHandle<Result<NodeSummary, String>>,
}

/// A channel ready to start: its node built, nothing bound yet.
struct Ready {
    key: toml::Table,
    spec: NodeSpec,
    source: Option<Box<dyn LcSource>>,
}

/// The process's channels by id.
struct Channels {
    running: BTreeMap<String, Running>,
    set: Arc<MetricsSet>,
    json: bool,
}

/// Whether two listen addresses would share a port (SO_REUSEPORT would let them).
fn same_port(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0 && a.port() == b.port() && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

impl Channels {
    /// Makes the running channels those of `planned`: checks the whole list first
    /// (so a bad one changes nothing), then stops removed and changed channels and
    /// starts new and changed ones; unchanged channels are not touched.
    fn apply<A: ChannelRole>(&mut self, planned: Vec<Planned<A>>) -> Result<(), String> {
        let mut ready: BTreeMap<String, Ready> = BTreeMap::new();
        let mut kept: Vec<(String, SocketAddr, ChannelId)> = Vec::new();
        for (index, p) in planned.iter().enumerate() {
            match self.running.get(&p.id) {
                Some(r) if r.key == p.key => kept.push((p.id.clone(), r.listen, r.channel)),
                _ => {
                    let _span = tracing::info_span!("channel", id = %p.id).entered();
                    let (mut spec, source) = p.args.node().map_err(|e| format!("channel `{}`: {e}", p.id))?;
                    if !p.pinned {
                        // Channel k starts k channels' worth of shards further on (modulo
                        // the cores), so channels do not all crowd the first core.
                        spec.first_core += index * spec.shards;
                    }
                    spec.validate().map_err(|e| format!("channel `{}`: {e}", p.id))?;
                    kept.push((p.id.clone(), spec.listen, spec.peer.channel));
                    ready.insert(p.id.clone(), Ready { key: p.key.clone(), spec, source });
                }
            }
        }
        for (i, (a, listen_a, channel_a)) in kept.iter().enumerate() {
            for (b, listen_b, channel_b) in &kept[i + 1..] {
                if same_port(*listen_a, *listen_b) {
                    let port = listen_a.port();
                    return Err(ChannelError::SameListen { a: a.clone(), b: b.clone(), port }.to_string());
                }
                if channel_a == channel_b {
                    return Err(ChannelError::SameChannel { a: a.clone(), b: b.clone() }.to_string());
                }
            }
        }
        let leaving: Vec<String> = self
            .running
            .keys()
            .filter(|id| !planned.iter().any(|p| &&p.id == id) || ready.contains_key(*id))
            .cloned()
            .collect();
        self.stop(&leaving);
        for (id, r) in ready {
            let changed = leaving.contains(&id);
            tracing::info!(channel = %id, "{} channel on {}", if changed { "restarting" } else { "starting" }, r.spec.listen);
            self.start(id, r)?;
        }
        Ok(())
    }

    fn start(&mut self, id: String, r: Ready) -> Result<(), String> {
        let stop = Arc::new(AtomicBool::new(false));
        let metrics = NodeMetrics::labelled(r.spec.role_name(), id.clone(), r.spec.shards, Instant::now());
        self.set.add(metrics.clone());
        let (listen, channel) = (r.spec.listen, r.spec.peer.channel);
        let (flag, m, name, json) = (stop.clone(), metrics.clone(), id.clone(), self.json);
        let handle = std::thread::Builder::new()
            .name(format!("channel-{id}"))
            .spawn(move || {
                let _span = tracing::info_span!("channel", id = %name).entered();
                let mut print = channel_printer(name, json);
                run_node_observed(r.spec, r.source, None, flag, &m, &mut print).map_err(|e| e.to_string())
            })
            .map_err(|e| format!("channel `{id}`: cannot start its thread: {e}"))?;
        self.running.insert(id, Running { key: r.key, listen, channel, stop, metrics, handle });
        Ok(())
    }

    /// Drains `ids` together (each tells its neighbours and the tracker it leaves).
    fn stop(&mut self, ids: &[String]) -> Vec<(String, Result<NodeSummary, String>)> {
        let leaving: Vec<(String, Running)> =
            ids.iter().filter_map(|id| self.running.remove(id).map(|r| (id.clone(), r))).collect();
        for (_, r) in &leaving {
            r.metrics.set_draining();
            r.stop.store(true, Ordering::Relaxed);
        }
        leaving
            .into_iter()
            .map(|(id, r)| {
                let result = r.handle.join().unwrap_or_else(|_| Err("its thread panicked".into()));
                self.set.remove(&r.metrics);
                match &result {
                    Ok(_) => tracing::info!(channel = %id, "channel stopped"),
                    Err(e) => tracing::error!(channel = %id, "channel failed: {e}"),
                }
                (id, result)
            })
            .collect()
    }

    /// Takes channels that ended on their own (a failure) out of the process.
    fn reap(&mut self) -> Vec<String> {
        let ended: Vec<String> =
            self.running.iter().filter(|(_, r)| r.handle.is_finished()).map(|(id, _)| id.clone()).collect();
        self.stop(&ended).into_iter().filter_map(|(id, r)| r.err().map(|e| format!("channel `{id}`: {e}"))).collect()
    }
}

/// A channel's status: JSON lines carrying its id with --json, else a log line every 10 s.
fn channel_printer(id: String, json: bool) -> impl FnMut(&Status) {
    let mut last_plain = 0u64;
    move |s: &Status| {
        if json {
            if let Ok(serde_json::Value::Object(mut line)) = serde_json::to_value(s) {
                line.insert("channel".into(), id.clone().into());
                println!("{}", serde_json::Value::Object(line));
            }
        } else if s.elapsed_s as u64 >= last_plain + 10 {
            last_plain = s.elapsed_s as u64;
            tracing::info!(channel = %id, "{s}");
        }
    }
}

/// Runs every channel `top`'s command line and config file give, until Ctrl-C/SIGTERM
/// or --duration; SIGHUP reloads the channel list.
pub fn serve<A: ChannelRole>(top: &A) -> Result<(), String> {
    let common = top.common();
    let set = MetricsSet::new();
    let _server = common.ops.serve_metrics(&set)?;
    let stop = drain_on_signals()?;
    let reload = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, reload.clone())
        .map_err(|e| format!("cannot handle SIGHUP: {e}"))?;
    let tracker = match top.shared_tracker() {
        Some(listen) => Some(shared_tracker(listen, common, &set, stop.clone())?),
        None => None,
    };
    let mut channels = Channels { running: BTreeMap::new(), set: set.clone(), json: common.json };
    let first = load::<A>(A::ROLE).and_then(|p| channels.apply(p));
    if let Err(e) = first {
        stop.store(true, Ordering::Relaxed);
        channels.stop(&channels.running.keys().cloned().collect::<Vec<_>>());
        return Err(e);
    }
    tracing::info!("{} serving {} channel(s); SIGHUP reloads the channel list", A::ROLE, channels.running.len());
    let start = Instant::now();
    let mut failed = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        if common.duration > 0 && start.elapsed() >= Duration::from_secs(common.duration) {
            break;
        }
        if reload.swap(false, Ordering::Relaxed) {
            match load::<A>(A::ROLE).and_then(|p| channels.apply(p)) {
                Ok(()) => tracing::info!("reloaded: {} channel(s)", channels.running.len()),
                Err(e) => tracing::error!("reload refused, the running channels go on unchanged: {e}"),
            }
        }
        failed.extend(channels.reap());
        if channels.running.is_empty() && !failed.is_empty() {
            break;
        }
        std::thread::sleep(TICK);
    }
    stop.store(true, Ordering::Relaxed);
    set.set_draining();
    let ids: Vec<String> = channels.running.keys().cloned().collect();
    for (id, result) in channels.stop(&ids) {
        match result {
            Ok(summary) => print_summary(&id, &summary, common.json)?,
            Err(e) => failed.push(format!("channel `{id}`: {e}")),
        }
    }
    if let Some(t) = tracker {
        let summary = t.join().unwrap_or_else(|_| Err("its thread panicked".into()))?;
        print_summary("tracker", &summary, common.json)?;
    }
    if failed.is_empty() { Ok(()) } else { Err(failed.join("; ")) }
}

/// The one tracker of a seed's channels, at `listen`, until `stop`.
fn shared_tracker(
    listen: SocketAddr,
    common: &Common,
    set: &Arc<MetricsSet>,
    stop: Arc<AtomicBool>,
) -> Result<JoinHandle<Result<NodeSummary, String>>, String> {
    if listen.port() == 0 {
        return Err(format!("--tracker-listen {listen} has port 0: peers could not find the tracker; give a port"));
    }
    tracing::info!("tracker for every channel on {listen} (give relays and peers --tracker {})", reachable(listen));
    let metrics = NodeMetrics::new("tracker", None, 1);
    set.add(metrics.clone());
    let (seed, core) = (common.rng_seed, common.core);
    std::thread::Builder::new()
        .name("tracker".into())
        .spawn(move || {
            run_tracker_observed(listen, TrackerConfig::default(), seed, core, stop, &metrics, &mut |_| {})
                .map_err(|e| e.to_string())
        })
        .map_err(|e| format!("cannot start the tracker thread: {e}"))
}

fn print_summary(id: &str, summary: &NodeSummary, json: bool) -> Result<(), String> {
    if json {
        let line = serde_json::json!({ "channel": id, "summary": summary });
        println!("{}", serde_json::to_string(&line).map_err(|e| e.to_string())?);
    } else {
        print!("channel {id}:\n{}", summary.text());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relay() -> Command {
        config_file::overridable(crate::Cli::command()).find_subcommand("relay").expect("relay").clone()
    }

    fn argv(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn a_spec_is_an_id_and_flags_and_lists_need_no_quoting() {
        let (id, flags) = parse_spec("id=news,plan=290,230,100,n_max=50", &relay()).expect("valid");
        assert_eq!(id, "news");
        assert_eq!(flags, ["--plan=290,230,100", "--n-max=50"]);
        let err = |spec| parse_spec(spec, &relay()).expect_err(spec);
        assert!(matches!(err("plan=1,2"), ChannelError::MissingId { .. }));
        assert!(matches!(err("id=a b"), ChannelError::BadId { .. }));
        assert!(matches!(err("oops,id=a"), ChannelError::NotKeyValue { .. }));
        assert_eq!(
            err("id=news,uplaod-kbps=3").to_string(),
            "channel `news`: unknown key `uplaod-kbps`: `layerp2p relay` has no flag --uplaod-kbps"
        );
        assert!(matches!(err("id=news,metrics-listen=127.0.0.1:9"), ChannelError::ProcessKey { .. }));
    }

    #[test]
    fn channels_override_the_flags_outside_them_and_ids_must_differ() {
        let planned: Vec<Planned<RelayArgs>> = plan_channels(
            &relay(),
            &argv(&[
                "--tracker=127.0.0.1:7700",
                "--n-max=40",
                "--channel=id=a,n-max=10,listen=127.0.0.1:7801",
                "--channel",
                "id=b,listen=127.0.0.1:7802",
            ]),
        )
        .expect("valid");
        let n_max: Vec<u64> = planned.iter().map(|p| p.args.n_max).collect();
        assert_eq!(n_max, [10, 40]);
        assert_ne!(planned[0].key, planned[1].key);
        assert!(!planned[0].key.contains_key("channel"), "a channel's key leaves the channel list out");
        let err = plan_channels::<RelayArgs>(
            &relay(),
            &argv(&["--tracker=127.0.0.1:7700", "--channel=id=a", "--channel=id=a,n-max=3"]),
        )
        .expect_err("duplicate");
        assert_eq!(err, "channel `a` is given twice: channel ids must differ");
        let err =
            plan_channels::<RelayArgs>(&relay(), &argv(&["--tracker=127.0.0.1:7700", "--channel=id=a,n-max=zero"]))
                .expect_err("bad value");
        assert!(err.starts_with("channel `a`: ") && err.contains("zero"), "{err}");
    }

    #[test]
    fn each_channel_may_name_its_own_tracker_and_one_without_any_is_refused() {
        let planned: Vec<Planned<RelayArgs>> = plan_channels(
            &relay(),
            &argv(&["--channel=id=a,tracker=127.0.0.1:7700", "--channel=id=b,tracker=127.0.0.1:7710"]),
        )
        .expect("no tracker outside the channels is needed");
        let trackers: Vec<Option<SocketAddr>> =
            planned.iter().map(|p| super::super::relay_spec(&p.args).expect("spec").peer.tracker).collect();
        assert_eq!(
            trackers,
            [Some("127.0.0.1:7700".parse().expect("addr")), Some("127.0.0.1:7710".parse().expect("addr"))]
        );
        let planned: Vec<Planned<RelayArgs>> = plan_channels(&relay(), &argv(&["--channel=id=a"])).expect("planned");
        let err = super::super::relay_spec(&planned[0].args).expect_err("no tracker");
        assert!(err.contains("--tracker HOST:PORT is required"), "{err}");
    }

    #[test]
    fn ports_shared_by_two_channels_are_refused() {
        let at = |s: &str| s.parse::<SocketAddr>().expect("addr");
        assert!(same_port(at("0.0.0.0:7801"), at("127.0.0.1:7801")));
        assert!(!same_port(at("127.0.0.1:7801"), at("127.0.0.1:7802")));
        assert!(!same_port(at("127.0.0.1:0"), at("127.0.0.1:0")), "port 0: each gets its own");
    }
}

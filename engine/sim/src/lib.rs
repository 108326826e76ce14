//! Discrete-event driver: runs the real `Peer` and `Tracker` state machines in
//! virtual time over a model of access links. Messages pass as typed values; LC
//! payloads are never materialised (the synthetic source's phantom payloads), unless
//! a real-video `LcSource` is given (`Swarm::with_source`): then payloads are the
//! source's reference-counted bytes, and viewers with `emit_playback` have the
//! `(frame, part)` of every LC they played logged for scoring.
//!
//! Link model: a node's upload is paced by its own token bucket (the core's), and an
//! LC then takes `size / upload` to cross the sender's access link plus a fixed
//! latency; signalling takes the latency alone. Download links are unconstrained
//! (the paper's model) unless `SwarmConfig::download` caps them: then a viewer's
//! downlink serialises the LCs reaching it, first come first served, `size /
//! download` each, behind a drop-tail buffer of `DOWNLINK_BUFFER` of backlog (an LC
//! arriving at a fuller buffer is lost, as at a real access link; the receiver asks
//! for it again next round). Without the bound a receiver that asks for more than
//! its downlink carries (DESIGN.md §6 asks every missing LC every round) builds a backlog
//! of seconds, everything arrives late, and the late LCs are asked for again.
//!
//! With `Swarm::with_measured_uploads`, viewers are not told their upload: each that
//! has one runs `--upload-kbps auto`, and its scenario upload is the rate of its uplink, a
//! first-come first-served queue every datagram it sends crosses (`UPLINK_BUFFER`
//! deep, drop-tail, like a home router's), so sending above it queues.

pub mod faults;
pub mod nat;
pub mod parallel;
pub mod queue;
pub mod scenario;
pub mod trace;

use layerp2p_codec::source::LcSource;
use layerp2p_codec::synthetic::{SyntheticConfig, SyntheticSource};
use layerp2p_codec::{Kbps, LayerPlan, Lc, MediaTime};
use layerp2p_proto::config::PeerConfig;
use layerp2p_proto::node::Node;
use layerp2p_proto::peer::Peer;
use layerp2p_proto::swarm::{PeerOutcome, PeerSpec, SwarmReport};
use layerp2p_proto::time::Time;
use layerp2p_proto::tracker::{Tracker, TrackerConfig};
use layerp2p_proto::wire::{Message, Packet};
use queue::EventQueue;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

/// Everything a simulated run needs; the same seed gives the same run.
#[derive(Clone, Debug)]
pub struct SwarmConfig {
    pub source: SyntheticConfig,
    /// Template for every viewer; `upload` and `tracker` are set per peer.
    pub peer: PeerConfig,
    pub seed_upload: Kbps,
    /// Seed's neighbour limit (a deployed seed takes more than a viewer).
    pub seed_n_max: usize,
    /// One-way latency of every message.
    pub latency: Duration,
    /// Download capacity of every viewer's access link; `None` leaves downlinks
    /// unconstrained. The seed and the tracker are never capped. Each viewer knows
    /// its cap (`PeerConfig::download`), which can lower its threshold layer.
    pub download: Option<Kbps>,
    pub classes: Vec<String>,
    pub peers: Vec<PeerSpec>,
    pub duration: Duration,
    pub seed: u64,
}

enum SimEvent {
    Wake {
        node: usize,
        generation: u64,
    },
    /// `nat_port`: the public port it was sent to, when `to` is behind a NAT that
    /// decides on arrival whether it gets in.
    Deliver {
        to: usize,
        from: SocketAddr,
        nat_port: Option<u16>,
        packet: Packet,
    },
    /// An LC has crossed the sender's uplink and the network: it queues for the
    /// receiver's capped downlink (only with `SwarmConfig::download`).
    Downlink {
        to: usize,
        from: SocketAddr,
        nat_port: Option<u16>,
        packet: Packet,
    },
    Join {
        spec: usize,
    },
    Leave {
        node: usize,
    },
    SourceTick,
    /// Scheduled fault `k` of `faults::FaultConfig::events`.
    Fault(usize),
}

enum Role {
    Tracker(Box<Tracker>),
    Peer(Box<Peer>),
    /// Not joined yet, gone, or run by another partition (`parallel`).
    Absent,
}

struct SimNode {
    role: Role,
    addr: SocketAddr,
    upload: Kbps,
    /// Downlink capacity, if capped, and when the downlink is next free.
    download: Option<Kbps>,
    downlink_free: Time,
    /// The home router in front of it (`Swarm::with_nats`), if any.
    nat: Option<nat::NatBox>,
    /// With a measured upload (`Swarm::with_measured_uploads`): the uplink's rate, and
    /// when it is next free.
    uplink: Option<Kbps>,
    uplink_free: Time,
    /// The scenario entry this viewer came from, if any.
    spec: Option<usize>,
    wake_at: Option<Time>,
    generation: u64,
    alive: bool,
    /// Events this node has scheduled: with `Swarm::parts`, an event's order among
    /// those of the same instant is (scheduling node, this count).
    scheduled: u64,
}

impl SimNode {
    fn absent(i: usize) -> SimNode {
        SimNode {
            role: Role::Absent,
            addr: sim_addr(i),
            upload: Kbps(0),
            download: None,
            downlink_free: Time::ZERO,
            spec: None,
            wake_at: None,
            generation: 0,
            alive: false,
            scheduled: 0,
            nat: None,
            uplink: None,
            uplink_free: Time::ZERO,
        }
    }
}

/// An event for a node of another partition: (time, order, event).
type Routed = (Time, u64, SimEvent);

/// Orders of events scheduled by the run itself (joins, faults) sort below those
/// scheduled by node `i`, which start at `(i + 1) << NODE_ORDER_SHIFT`.
const NODE_ORDER_SHIFT: u32 = 40;
/// Order of scheduled fault `k`: after every join of the same instant.
const FAULT_ORDER: u64 = 1 << (NODE_ORDER_SHIFT - 1);

/// Most backlog a capped downlink holds (drop-tail): a quarter second at its rate.
pub const DOWNLINK_BUFFER: Duration = Duration::from_millis(250);
/// Most backlog a measured viewer's uplink holds (drop-tail): a home router's deep
/// buffer, which the upload controller must keep short.
pub const UPLINK_BUFFER: Duration = Duration::from_millis(400);
/// Highest upload a measured viewer may estimate (its controller's ceiling).
const MEASURED_CEILING: Kbps = Kbps(100_000);

const TRACKER: usize = 0;
const SEED: usize = 1;
const SOURCE_TICK: Duration = Duration::from_millis(20);
/// Mixed into the run seed for the viewers' NAT draws.
const NAT_DRAW: u64 = 0x4E41_5444_5241_5721;

/// Simulated address of node `i` (never sent anywhere).
pub fn sim_addr(i: usize) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(0x0A00_0000u32 + i as u32), SIM_PORT))
}

const SIM_PORT: u16 = 7000;
/// Node addresses count up from here; the WAN addresses of home routers from `NAT_BASE`.
const ADDR_BASE: u32 = 0x0A00_0000;
const NAT_BASE: u32 = 0x0B00_0000;

/// The WAN address of node `i`'s home router.
fn nat_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(NAT_BASE + i as u32)
}

/// The node an address leads to, and whether it is its router's WAN address.
fn node_of(addr: &SocketAddr) -> Option<(usize, bool)> {
    let SocketAddr::V4(a) = addr else { return None };
    let ip = u32::from(*a.ip());
    match ip.checked_sub(NAT_BASE) {
        Some(i) if i < NAT_BASE - ADDR_BASE => Some((i as usize, true)),
        _ => ip.checked_sub(ADDR_BASE).map(|i| (i as usize, false)),
    }
}

/// Time an LC takes to cross an access link of `rate` (its datagram's bits over it).
fn transfer_time(lc: &Lc, rate: Kbps) -> Duration {
    let bits = layerp2p_proto::peer::data_cost(lc.payload.len()) as u64 * 8;
    Duration::from_micros(bits * 1000 / u64::from(rate.0).max(1))
}

/// Mixes the run seed with a node index into that node's own seed.
fn node_seed(seed: u64, i: usize) -> u64 {
    let mut z = seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One logging viewer's playback: `(spec, class, (frame, part) of every LC played)`.
pub type PlaybackLog = (usize, usize, Vec<(u32, u16)>);

pub struct Swarm {
    cfg: SwarmConfig,
    now: Time,
    queue: EventQueue<SimEvent>,
    nodes: Vec<SimNode>,
    source: Box<dyn LcSource>,
    plan: LayerPlan,
    source_buf: Vec<Lc>,
    /// Each recorded viewer's outcome, with when and which node it was recorded.
    outcomes: Vec<(Time, usize, PeerOutcome)>,
    /// Node index of each `SwarmConfig::peers` entry: the order of joins (by time,
    /// then entry), after the tracker and the seed.
    join_index: Vec<usize>,
    /// This swarm runs the nodes `i` with `i % parts == part` (`parallel`); other
    /// nodes' events go to `outbox`. `parts == 0`: the sequential driver, where
    /// events at one instant run in the order they were scheduled.
    part: usize,
    parts: usize,
    /// Per partition, events for its nodes scheduled here since the last exchange.
    outbox: Vec<Vec<Routed>>,
    /// Per node, the LCs it played as `(frame, part)`, for viewers with `emit_playback`.
    played: std::collections::HashMap<usize, Vec<(u32, u16)>>,
    /// LCs delivered so far (for speed reports).
    pub lc_deliveries: u64,
    pub messages_delivered: u64,
    /// LCs lost at a full capped downlink (`SwarmConfig::download`).
    pub downlink_drops: u64,
    /// Injected faults and adversaries (`with_faults`), if any.
    faults: Option<Box<faults::Faults>>,
    /// The viewers' NATs (`with_nats`), if any.
    nats: Option<nat::NatConfig>,
    /// Datagrams a home router did not let in.
    pub nat_drops: u64,
    /// Whether viewers measure their upload (`with_measured_uploads`).
    measured_uploads: bool,
    /// Datagrams lost at a full uplink (`with_measured_uploads`).
    pub uplink_drops: u64,
}

impl std::fmt::Debug for Swarm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Swarm").field("now", &self.now).field("nodes", &self.nodes.len()).finish()
    }
}

/// Why a swarm cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("the synthetic source: {0}")]
    Source(#[from] layerp2p_codec::synthetic::SyntheticError),
    #[error("the seed's configuration: {0}")]
    Seed(#[from] layerp2p_proto::config::ConfigError),
}

impl Swarm {
    pub fn new(cfg: SwarmConfig) -> Result<Swarm, SimError> {
        let source = SyntheticSource::new(cfg.source.clone())?;
        Swarm::with_source(cfg, Box::new(source))
    }

    /// A swarm whose seed ingests `source` instead of `cfg.source`; its plan is the
    /// source's (viewers should be configured with it too).
    pub fn with_source(cfg: SwarmConfig, source: Box<dyn LcSource>) -> Result<Swarm, SimError> {
        Swarm::partition(cfg, source, 0, 0)
    }

    /// Partition `part` of `parts` (`parallel`), or with `parts == 0` the whole run
    /// in scheduling order.
    fn partition(cfg: SwarmConfig, source: Box<dyn LcSource>, part: usize, parts: usize) -> Result<Swarm, SimError> {
        let plan = source.plan().clone();
        let mut seed_cfg = PeerConfig::seed(cfg.peer.policy, plan.clone(), cfg.seed_upload);
        seed_cfg.tracker = Some(sim_addr(TRACKER));
        seed_cfg.n_max = cfg.seed_n_max;
        seed_cfg.lag = cfg.peer.lag;
        seed_cfg.round = cfg.peer.round;
        seed_cfg.incentive = cfg.peer.incentive;
        // The channel key from the template: the seed signs with it.
        seed_cfg.content_auth = cfg.peer.content_auth.clone();
        let seed = Peer::new(seed_cfg, node_seed(cfg.seed, SEED), Time::ZERO)?;
        let tracker = Tracker::new(TrackerConfig::one_prefix(), node_seed(cfg.seed, TRACKER));
        let mut joins: Vec<usize> = (0..cfg.peers.len()).collect();
        joins.sort_by_key(|&s| (cfg.peers[s].join, s));
        let mut join_index = vec![0; cfg.peers.len()];
        for (rank, &s) in joins.iter().enumerate() {
            join_index[s] = SEED + 1 + rank;
        }
        let mut swarm = Swarm {
            now: Time::ZERO,
            queue: EventQueue::default(),
            nodes: (0..cfg.peers.len() + 2).map(SimNode::absent).collect(),
            source,
            plan,
            source_buf: Vec::new(),
            outcomes: Vec::new(),
            join_index,
            part,
            parts,
            outbox: (0..parts).map(|_| Vec::new()).collect(),
            played: Default::default(),
            lc_deliveries: 0,
            messages_delivered: 0,
            downlink_drops: 0,
            faults: None,
            nats: None,
            nat_drops: 0,
            measured_uploads: false,
            uplink_drops: 0,
            cfg,
        };
        if swarm.owns(TRACKER) {
            swarm.place_node(TRACKER, Role::Tracker(Box::new(tracker)), Kbps(1_000_000), None, None);
        }
        if swarm.owns(SEED) {
            swarm.place_node(SEED, Role::Peer(Box::new(seed)), swarm.cfg.seed_upload, None, None);
            let order = swarm.order_of(SEED);
            swarm.route(SEED, Time::ZERO, order, SimEvent::SourceTick);
        }
        for spec in 0..swarm.cfg.peers.len() {
            let i = swarm.join_index[spec];
            if swarm.owns(i) {
                swarm.route(i, swarm.cfg.peers[spec].join, spec as u64, SimEvent::Join { spec });
            }
        }
        Ok(swarm)
    }

    /// Whether this swarm runs node `i`.
    fn owns(&self, i: usize) -> bool {
        self.parts == 0 || i % self.parts == self.part
    }

    /// The order of the next event node `i` schedules.
    fn order_of(&mut self, i: usize) -> u64 {
        let n = &mut self.nodes[i];
        n.scheduled += 1;
        ((i as u64 + 1) << NODE_ORDER_SHIFT) | n.scheduled
    }

    /// Queues `event` for node `to` at `at`: here, or in the outbox of its partition.
    fn route(&mut self, to: usize, at: Time, order: u64, event: SimEvent) {
        if self.parts == 0 {
            self.queue.push(at, event);
        } else if self.owns(to) {
            self.queue.push_ordered(at, order, event);
        } else {
            self.outbox[to % self.parts].push((at, order, event));
        }
    }

    /// Puts viewers that join from now on behind home routers as `nats` says.
    pub fn with_nats(mut self, nats: nat::NatConfig) -> Swarm {
        self.nats = Some(nats);
        self
    }

    /// Viewers that join from now on measure their upload (`--upload-kbps auto`)
    /// instead of being told it; their scenario upload becomes their uplink's rate.
    pub fn with_measured_uploads(mut self) -> Swarm {
        self.measured_uploads = true;
        self
    }

    /// Each live measured viewer's uplink rate, its estimate of it and the queueing
    /// delay it last measured: `(spec, uplink, estimate, delay)`.
    pub fn upload_estimates(&self) -> Vec<(usize, Kbps, Kbps, Option<Duration>)> {
        let estimate = |n: &SimNode| match (&n.role, n.spec, n.uplink) {
            (Role::Peer(p), Some(spec), Some(uplink)) => {
                p.upload_estimate().map(|(kbps, delay)| (spec, uplink, kbps, delay))
            }
            _ => None,
        };
        self.nodes.iter().filter(|n| n.alive).filter_map(estimate).collect()
    }

    /// How many viewers that joined are behind each kind of NAT (open ones included).
    pub fn nat_census(&self) -> std::collections::BTreeMap<&'static str, usize> {
        let mut census = std::collections::BTreeMap::new();
        for n in self.nodes.iter().filter(|n| n.spec.is_some()) {
            *census.entry(n.nat.as_ref().map_or(nat::NatKind::Open, |b| b.kind()).name()).or_default() += 1;
        }
        census
    }

    pub fn now(&self) -> Time {
        self.now
    }

    /// Nodes alive now (tracker and seed included).
    pub fn alive(&self) -> usize {
        self.nodes.iter().filter(|n| n.alive).count()
    }

    fn place_node(&mut self, i: usize, role: Role, upload: Kbps, download: Option<Kbps>, spec: Option<usize>) {
        let n = &mut self.nodes[i];
        n.role = role;
        n.upload = upload;
        n.download = download;
        n.spec = spec;
        n.alive = true;
        self.after_activity(i);
    }

    fn node(&mut self, i: usize) -> Option<&mut dyn Node> {
        match &mut self.nodes[i].role {
            Role::Tracker(t) => Some(t.as_mut()),
            Role::Peer(p) => Some(p.as_mut()),
            Role::Absent => None,
        }
    }

    /// Sends what node `i` has to send and re-arms its timer.
    fn after_activity(&mut self, i: usize) {
        let now = self.now;
        let upload = self.nodes[i].upload;
        // Every viewer's downlink has the same cap; the tracker's and seed's none.
        let capped_downlinks = self.cfg.download.is_some();
        let timeout = self.nats.as_ref().map_or(Duration::ZERO, |n| n.mapping_timeout);
        while let Some(mut tx) = self.node(i).and_then(|n| n.poll_transmit(now)) {
            let Some((to, wan)) = node_of(&tx.dst) else { continue };
            // A NAT'd node is reached at its router's WAN address only.
            let nat_port = match self.nodes.get(to).map(|n| n.nat.is_some()) {
                Some(true) if wan => Some(tx.dst.port()),
                Some(true) => continue,
                _ if wan => continue,
                _ => None,
            };
            let from = match &mut self.nodes[i].nat {
                Some(nat) => nat.outbound(now, tx.dst, timeout, SIM_PORT),
                None => self.nodes[i].addr,
            };
            let mut delay = self.cfg.latency;
            let lc = match tx.packet.messages.as_slice() {
                [Message::Data(lc)] => Some(lc),
                _ => None,
            };
            if let Some(rate) = self.nodes[i].uplink {
                // Every datagram queues for the measured viewer's uplink.
                let n = &mut self.nodes[i];
                let start = n.uplink_free.max(now);
                if start.since(now) > UPLINK_BUFFER {
                    self.uplink_drops += 1;
                    continue;
                }
                let bits = (tx.packet.wire_len() + layerp2p_proto::wire::IPV4_UDP_HEADER_LEN) as u64 * 8;
                n.uplink_free = start + Duration::from_micros(bits * 1000 / u64::from(rate.0).max(1));
                delay += n.uplink_free.since(now);
            } else if let Some(lc) = lc
                && upload.0 > 0
            {
                delay += transfer_time(lc, upload);
            }
            // An LC to a capped downlink queues there first; everything else arrives.
            let capped = lc.is_some() && capped_downlinks && to > SEED;
            let arrive = |packet| {
                if capped {
                    SimEvent::Downlink { to, from, nat_port, packet }
                } else {
                    SimEvent::Deliver { to, from, nat_port, packet }
                }
            };
            match self.faults.as_mut() {
                None => {
                    let order = self.order_of(i);
                    self.route(to, now + delay, order, arrive(tx.packet));
                }
                Some(f) => {
                    for d in f.transmit(self.nodes[i].spec, to == SEED, &mut tx.packet, delay) {
                        let order = self.order_of(i);
                        self.route(to, now + d, order, arrive(tx.packet.clone()));
                    }
                }
            }
        }
        let spec = self.nodes[i].spec;
        if let (Some(f), Role::Peer(p)) = (self.faults.as_mut(), &mut self.nodes[i].role) {
            while let Some(e) = p.poll_event() {
                f.observe(now, i, spec, &e);
            }
        }
        if let Role::Peer(p) = &mut self.nodes[i].role
            && p.config().emit_playback
        {
            let log = self.played.entry(i).or_default();
            while let Some(ev) = p.poll_event() {
                if let layerp2p_proto::peer::Event::Played(lc) = ev {
                    log.push((lc.header.frame, lc.header.part));
                }
            }
        }
        // Events nobody read (no faults, no playback log): left queued, each viewer's
        // neighbour changes piled up towards the core's bound for a driver that never
        // polls (65,536 events), the one per-viewer table that grew with simulated time.
        if let Role::Peer(p) = &mut self.nodes[i].role {
            while p.poll_event().is_some() {}
        }
        let wake = self.node(i).and_then(|n| n.poll_timeout());
        let n = &mut self.nodes[i];
        if wake != n.wake_at {
            n.generation += 1;
            n.wake_at = wake;
            if let Some(t) = wake {
                let generation = n.generation;
                let order = self.order_of(i);
                self.route(i, t.max(now), order, SimEvent::Wake { node: i, generation });
            }
        }
    }

    fn join(&mut self, spec: usize) {
        let p = &self.cfg.peers[spec];
        let mut cfg = self.cfg.peer.clone();
        cfg.upload = p.upload;
        // A free-rider (upload 0) uploads nothing whatever its uplink: it measures nothing.
        let measured = self.measured_uploads && p.upload.0 > 0;
        if measured {
            cfg.upload = MEASURED_CEILING;
            cfg.upload_auto = true;
        }
        // A viewer knows its own downlink, so its threshold layer accounts for it.
        cfg.download = self.cfg.download;
        cfg.tracker = Some(sim_addr(TRACKER));
        // This tracker's lists have no head of longest-present peers to try first
        // (`TrackerConfig::one_prefix`): its first entries are only its veterans.
        cfg.list_head_tries = 0;
        // Viewers hold only the public half of the channel key.
        cfg.content_auth = cfg.content_auth.for_viewer();
        if let Some(f) = &self.faults {
            f.configure(spec, &mut cfg);
        }
        let upload = p.upload;
        let leave = p.leave;
        let i = self.join_index[spec];
        match Peer::new(cfg, node_seed(self.cfg.seed, i), self.now) {
            Ok(mut peer) => {
                let nat = self.nats.as_ref().map(|n| {
                    // Its own draw, so the same viewer is behind the same NAT in every run.
                    let u = (node_seed(self.cfg.seed ^ NAT_DRAW, spec) >> 11) as f64 / (1u64 << 53) as f64;
                    n.shares.kind(u)
                });
                if nat.is_some() {
                    // As a real socket does, the peer knows the address it is bound to.
                    peer.set_local_addrs(vec![sim_addr(i)]);
                }
                // Behind its router before it sends anything.
                self.nodes[i].nat =
                    nat.filter(|k| *k != nat::NatKind::Open).map(|kind| nat::NatBox::new(kind, nat_ip(i)));
                self.place_node(i, Role::Peer(Box::new(peer)), upload, self.cfg.download, Some(spec));
                self.nodes[i].uplink = measured.then_some(upload);
                if let Some(t) = leave {
                    let order = self.order_of(i);
                    self.route(i, t, order, SimEvent::Leave { node: i });
                }
            }
            Err(e) => panic!("scenario peer config is invalid: {e}"),
        }
    }

    fn leave(&mut self, i: usize) {
        if !self.nodes[i].alive {
            return;
        }
        if let Role::Peer(p) = &mut self.nodes[i].role {
            p.leave(self.now);
        }
        self.after_activity(i);
        self.remove(i);
    }

    /// Takes node `i` out of the run at once (recording its outcome), as a crash does.
    fn remove(&mut self, i: usize) {
        if !self.nodes[i].alive {
            return;
        }
        self.record(i);
        self.nodes[i].alive = false;
        // Free the state machine's memory; the outcome is recorded.
        self.nodes[i].role = Role::Absent;
        self.nodes[i].wake_at = None;
    }

    fn record(&mut self, i: usize) {
        let n = &self.nodes[i];
        let (Role::Peer(p), Some(spec)) = (&n.role, n.spec) else { return };
        let seconds = self.now.0.saturating_sub(p.counted_since().0) as f64 / 1e6;
        let mut class = self.cfg.peers[spec].class;
        if n.nat.is_some() && self.nats.as_ref().is_some_and(|c| c.split_classes) {
            class += self.cfg.classes.len();
        }
        let outcome = PeerOutcome { class, upload: n.upload, seconds, stats: p.stats() };
        self.outcomes.push((self.now, i, outcome));
    }

    fn source_tick(&mut self) {
        let media = MediaTime(self.now.0);
        self.source.lcs_until(media, &mut self.source_buf);
        let now = self.now;
        if self.faults.as_ref().is_some_and(|f| f.source_paused(now)) {
            self.source_buf.clear();
        }
        if let Role::Peer(seed) = &mut self.nodes[SEED].role {
            for lc in self.source_buf.drain(..) {
                // The seed's window is sized for the lag; an error here is a bug.
                seed.push_lc(now, lc).expect("seed window holds the playback lag");
            }
        }
        self.after_activity(SEED);
        let order = self.order_of(SEED);
        self.route(SEED, now + SOURCE_TICK, order, SimEvent::SourceTick);
    }

    /// An LC reached node `to`'s capped downlink: it crosses it after the LCs ahead
    /// of it, then arrives; lost if the backlog ahead is beyond `DOWNLINK_BUFFER`.
    fn downlink(&mut self, to: usize, from: SocketAddr, nat_port: Option<u16>, packet: Packet) {
        let now = self.now;
        if !self.admitted(to, from, nat_port) {
            return;
        }
        let Some(n) = self.nodes.get_mut(to).filter(|n| n.alive) else { return };
        if n.downlink_free.since(now) > DOWNLINK_BUFFER {
            self.downlink_drops += 1;
            return;
        }
        let crossing = match (packet.messages.as_slice(), n.download) {
            ([Message::Data(lc)], Some(down)) => transfer_time(lc, down),
            _ => Duration::ZERO,
        };
        let done = now.max(n.downlink_free) + crossing;
        n.downlink_free = done;
        let order = self.order_of(to);
        self.route(to, done, order, SimEvent::Deliver { to, from, nat_port: None, packet });
    }

    /// Whether a datagram from `from` to node `to`'s public `nat_port` passes its
    /// home router now (always, for a node without one).
    fn admitted(&mut self, to: usize, from: SocketAddr, nat_port: Option<u16>) -> bool {
        let (Some(port), Some(cfg)) = (nat_port, &self.nats) else { return true };
        let timeout = cfg.mapping_timeout;
        let now = self.now;
        let ok =
            self.nodes.get_mut(to).and_then(|n| n.nat.as_mut()).is_some_and(|b| b.inbound(now, from, port, timeout));
        if !ok {
            self.nat_drops += 1;
        }
        ok
    }

    /// Runs events up to and including `until`.
    pub fn run_until(&mut self, until: Time) {
        while let Some((at, ev)) = self.queue.pop_until(until) {
            self.now = at;
            match ev {
                SimEvent::Wake { node, generation } => {
                    let n = &mut self.nodes[node];
                    if !n.alive || n.generation != generation {
                        continue;
                    }
                    n.wake_at = None;
                    if let Some(n) = self.node(node) {
                        n.handle_timeout(at);
                    }
                    self.after_activity(node);
                }
                SimEvent::Deliver { to, from, nat_port, packet } => {
                    if to >= self.nodes.len() || !self.nodes[to].alive || !self.admitted(to, from, nat_port) {
                        continue;
                    }
                    self.messages_delivered += 1;
                    if matches!(packet.messages.as_slice(), [Message::Data(_)]) {
                        self.lc_deliveries += 1;
                    }
                    if let Some(n) = self.node(to) {
                        n.handle_input(at, from, packet);
                    }
                    self.after_activity(to);
                }
                SimEvent::Downlink { to, from, nat_port, packet } => self.downlink(to, from, nat_port, packet),
                SimEvent::Join { spec } => self.join(spec),
                SimEvent::Leave { node } => self.leave(node),
                SimEvent::SourceTick => self.source_tick(),
                SimEvent::Fault(k) => self.apply_fault(k),
            }
        }
        self.now = self.now.max(until);
    }

    /// Runs the whole scenario and reports every viewer's outcome.
    pub fn run(mut self) -> SwarmReport {
        let end = Time(self.cfg.duration.as_micros() as u64);
        self.run_until(end);
        self.finish()
    }

    /// The `(frame, part)` of every LC each logging viewer played, as `(spec, class,
    /// log)` in spec order (`spec` indexes `SwarmConfig::peers`); empties the logs.
    pub fn take_playback(&mut self) -> Vec<PlaybackLog> {
        let mut logs: Vec<PlaybackLog> = std::mem::take(&mut self.played)
            .into_iter()
            .filter_map(|(i, log)| self.nodes[i].spec.map(|s| (s, self.cfg.peers[s].class, log)))
            .collect();
        logs.sort_unstable_by_key(|(s, _, _)| *s);
        logs
    }

    /// Records every viewer still present and builds the report.
    pub fn finish(mut self) -> SwarmReport {
        let outcomes = self.finish_outcomes().into_iter().map(|(_, _, o)| o).collect();
        let mut classes = self.cfg.classes.clone();
        if self.nats.as_ref().is_some_and(|c| c.split_classes) {
            classes.extend(self.cfg.classes.iter().map(|c| format!("{c}/NAT")));
        }
        SwarmReport::new(classes, self.plan.clone(), outcomes, self.lc_deliveries)
    }

    /// Records every viewer still present; every outcome, in the order recorded.
    fn finish_outcomes(&mut self) -> Vec<(Time, usize, PeerOutcome)> {
        // Each node is freed as soon as its outcome is recorded, so the end of a big
        // run does not hold every viewer's state and its outcome at once.
        for i in 0..self.nodes.len() {
            self.remove(i);
        }
        std::mem::take(&mut self.outcomes)
    }
}

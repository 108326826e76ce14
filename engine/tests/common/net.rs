//! A small in-memory network for attack tests: a tracker, a seed fed by the
//! synthetic source, viewers, and datagrams injected under any source address
//! (forged ones included). Every datagram's bytes are counted per (from, to) path;
//! a node can be frozen (a stalled process: it neither runs nor receives).

use layerp2p_codec::synthetic::{SyntheticConfig, SyntheticSource};
use layerp2p_codec::{BufferMap, LayerWindow, Seq};
use layerp2p_codec::{Kbps, MediaTime};
use layerp2p_engine::wire::{BufferMapMsg, ChannelId, Message, Packet, PeerId, Role};
use layerp2p_engine::{Node, Peer, PeerConfig, Policy, Time, Tracker, TrackerConfig};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

/// Step of the driver loop.
const TICK: Duration = Duration::from_millis(5);

pub enum Kind {
    Tracker(Box<Tracker>),
    Peer(Box<Peer>),
    Sybil(Box<Sybil>),
}

/// Most neighbours a Sybil keeps alive.
const SYBIL_NEIGHBOURS: usize = 64;

/// A validated Sybil: it owns its address (echoes the tracker's token), joins and
/// refreshes like a peer, accepts every Connect and keeps each neighbour alive with
/// an empty buffer map every second, but never uploads.
pub struct Sybil {
    tracker_token: u64,
    next_join: Time,
    next_map: Time,
    /// (neighbour, the token it gave us, ours).
    neighbours: Vec<(SocketAddr, u64, u64)>,
    outbox: Vec<(SocketAddr, Packet)>,
    id: u64,
}

impl Sybil {
    fn new(id: u64, first_join: Time) -> Sybil {
        Sybil {
            tracker_token: 0,
            next_join: first_join,
            next_map: first_join,
            neighbours: Vec::new(),
            outbox: Vec::new(),
            id,
        }
    }

    fn handle_input(&mut self, from: SocketAddr, packet: Packet) {
        let token = packet.messages.iter().find_map(|m| match m {
            Message::Token { nonce, .. } => Some(*nonce),
            _ => None,
        });
        if from == tracker_addr() {
            if let Some(t) = token.filter(|&t| t != 0) {
                self.tracker_token = t;
            }
            return;
        }
        let connect = packet.messages.iter().any(|m| matches!(m, Message::Connect { .. }));
        if let (true, Some(theirs)) = (connect, token) {
            let ours = self.id.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            if !self.neighbours.iter().any(|n| n.0 == from) && self.neighbours.len() < SYBIL_NEIGHBOURS {
                self.neighbours.push((from, theirs, ours));
            }
            let accept = Message::Accept { peer: PeerId(self.id), role: Role::Peer };
            self.outbox.push((from, Packet { messages: vec![accept, Message::Token { nonce: ours, echo: theirs }] }));
        }
        if packet.messages.iter().any(|m| matches!(m, Message::Disconnect { .. })) {
            self.neighbours.retain(|n| n.0 != from);
        }
    }

    fn handle_timeout(&mut self, now: Time, layers: usize) {
        if now >= self.next_join {
            self.next_join = now + Duration::from_secs(20);
            let join = Message::Join { channel: ChannelId(1), peer: PeerId(self.id), role: Role::Peer };
            let mut messages = vec![join, Message::Padding { len: 1000 }];
            if self.tracker_token != 0 {
                messages.push(Message::Token { nonce: 0, echo: self.tracker_token });
            }
            self.outbox.push((tracker_addr(), Packet { messages }));
        }
        if now >= self.next_map && !self.neighbours.is_empty() {
            self.next_map = now + Duration::from_secs(1);
            let map = BufferMap::from_layers(vec![LayerWindow::new(Seq(0)); layers]);
            for &(addr, theirs, ours) in &self.neighbours {
                let map = Message::BufferMap(BufferMapMsg {
                    head_time: MediaTime(0),
                    sent_at: now.0,
                    echo: 0,
                    echo_delay: 0,
                    map: map.clone(),
                });
                self.outbox.push((addr, Packet { messages: vec![map, Message::Token { nonce: ours, echo: theirs }] }));
            }
        }
    }
}

struct NetNode {
    addr: SocketAddr,
    kind: Kind,
    frozen: bool,
}

pub struct Net {
    pub now: Time,
    latency: Duration,
    nodes: Vec<NetNode>,
    by_addr: HashMap<SocketAddr, usize>,
    inflight: VecDeque<(Time, SocketAddr, SocketAddr, Packet)>,
    /// Bytes sent per (from, to): by nodes, and injected in anyone's name.
    pub bytes: HashMap<(SocketAddr, SocketAddr), u64>,
    /// Punches sent by nodes, per destination.
    pub punches: HashMap<SocketAddr, u64>,
    source: SyntheticSource,
    lcs: Vec<layerp2p_codec::Lc>,
    seed: Option<usize>,
}

pub const TRACKER: usize = 0;

pub fn tracker_addr() -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 1], 7000))
}

/// Viewer `i`'s address, each in a /24 of its own.
pub fn viewer_addr(i: u8) -> SocketAddr {
    SocketAddr::from(([198, 18, i, 1], 7000))
}

pub fn seed_addr() -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 2], 7000))
}

impl Net {
    pub fn new(tracker: TrackerConfig) -> Net {
        let source = SyntheticSource::new(SyntheticConfig::prototype()).expect("valid source");
        let mut net = Net {
            now: Time::ZERO,
            latency: Duration::from_millis(10),
            nodes: Vec::new(),
            by_addr: HashMap::new(),
            inflight: VecDeque::new(),
            bytes: HashMap::new(),
            punches: HashMap::new(),
            source,
            lcs: Vec::new(),
            seed: None,
        };
        net.add(tracker_addr(), Kind::Tracker(Box::new(Tracker::new(tracker, 1))));
        net
    }

    fn add(&mut self, addr: SocketAddr, kind: Kind) -> usize {
        self.by_addr.insert(addr, self.nodes.len());
        self.nodes.push(NetNode { addr, kind, frozen: false });
        self.nodes.len() - 1
    }

    /// A seed (2 Mbps, 20 neighbours) registered at the tracker.
    pub fn add_seed(&mut self) -> usize {
        let mut cfg = PeerConfig::seed(Policy::LayerP2P, self.source.plan().clone(), Kbps(2000));
        cfg.tracker = Some(tracker_addr());
        let peer = Peer::new(cfg, 11, self.now).expect("valid seed");
        let i = self.add(seed_addr(), Kind::Peer(Box::new(peer)));
        self.seed = Some(i);
        i
    }

    /// A viewer uploading 700 kbps, joining now.
    pub fn add_viewer(&mut self, i: u8) -> usize {
        let mut cfg = PeerConfig::peer(Policy::LayerP2P, self.source.plan().clone(), Kbps(700));
        cfg.tracker = Some(tracker_addr());
        let peer = Peer::new(cfg, 100 + u64::from(i), self.now).expect("valid viewer");
        self.add(viewer_addr(i), Kind::Peer(Box::new(peer)))
    }

    /// A validated Sybil at `addr` (see `Sybil`), first joining at `first_join`.
    pub fn add_sybil(&mut self, addr: SocketAddr, first_join: Time) -> usize {
        let id = 1_000_000 + self.nodes.len() as u64;
        self.add(addr, Kind::Sybil(Box::new(Sybil::new(id, first_join))))
    }

    pub fn peer(&self, i: usize) -> &Peer {
        match &self.nodes[i].kind {
            Kind::Peer(p) => p,
            _ => panic!("node {i} is not a peer"),
        }
    }

    pub fn tracker(&self) -> &Tracker {
        match &self.nodes[TRACKER].kind {
            Kind::Tracker(t) => t,
            _ => panic!("node 0 is not the tracker"),
        }
    }

    pub fn freeze(&mut self, i: usize, frozen: bool) {
        self.nodes[i].frozen = frozen;
    }

    /// Sends `messages` to `to` as if from `from` (which may be forged).
    pub fn inject(&mut self, from: SocketAddr, to: SocketAddr, messages: Vec<Message>) {
        let packet = Packet { messages };
        *self.bytes.entry((from, to)).or_default() += packet.wire_len() as u64;
        self.inflight.push_back((self.now + self.latency, from, to, packet));
    }

    /// Bytes sent from `from` to `to`.
    pub fn sent(&self, from: SocketAddr, to: SocketAddr) -> u64 {
        self.bytes.get(&(from, to)).copied().unwrap_or(0)
    }

    /// Every path into `addr` from a node, with what went out in `addr`'s name on the
    /// reverse path: (node, bytes to `addr`, bytes from `addr`).
    pub fn paths_to(&self, addr: SocketAddr) -> Vec<(SocketAddr, u64, u64)> {
        self.nodes
            .iter()
            .map(|n| (n.addr, self.sent(n.addr, addr), self.sent(addr, n.addr)))
            .filter(|&(_, to, _)| to > 0)
            .collect()
    }

    /// Runs until `until`, calling `each_tick` after every step (attackers act there).
    pub fn run_until(&mut self, until: Time, each_tick: &mut dyn FnMut(&mut Net)) {
        while self.now < until {
            self.now = self.now + TICK;
            let now = self.now;
            while self.inflight.front().is_some_and(|(at, ..)| *at <= now) {
                let Some((_, from, to, packet)) = self.inflight.pop_front() else { break };
                let Some(&i) = self.by_addr.get(&to) else { continue };
                let node = &mut self.nodes[i];
                if node.frozen {
                    continue;
                }
                match &mut node.kind {
                    Kind::Tracker(t) => t.handle_input(now, from, packet),
                    Kind::Peer(p) => p.handle_input(now, from, packet),
                    Kind::Sybil(s) => s.handle_input(from, packet),
                }
            }
            if let Some(s) = self.seed.filter(|&s| !self.nodes[s].frozen) {
                // A live source: what the stall held back arrives at once on resume.
                self.source.lcs_until(MediaTime(now.0), &mut self.lcs);
                if let Kind::Peer(p) = &mut self.nodes[s].kind {
                    for lc in self.lcs.drain(..) {
                        let _ = p.push_lc(now, lc);
                    }
                }
            }
            let layers = self.source.plan().layers();
            for i in 0..self.nodes.len() {
                let node = &mut self.nodes[i];
                if node.frozen {
                    continue;
                }
                if let Kind::Sybil(s) = &mut node.kind {
                    s.handle_timeout(now, layers);
                    for (dst, packet) in s.outbox.drain(..) {
                        *self.bytes.entry((node.addr, dst)).or_default() += packet.wire_len() as u64;
                        self.inflight.push_back((now + self.latency, node.addr, dst, packet));
                    }
                    continue;
                }
                let node_ref: &mut dyn Node = match &mut node.kind {
                    Kind::Tracker(t) => t.as_mut(),
                    Kind::Peer(p) => p.as_mut(),
                    Kind::Sybil(_) => continue,
                };
                if node_ref.poll_timeout().is_some_and(|t| t <= now) {
                    node_ref.handle_timeout(now);
                }
                while let Some(t) = node_ref.poll_transmit(now) {
                    *self.bytes.entry((node.addr, t.dst)).or_default() += t.packet.wire_len() as u64;
                    if t.packet.messages.iter().any(|m| matches!(m, Message::Punch)) {
                        *self.punches.entry(t.dst).or_default() += 1;
                    }
                    self.inflight.push_back((now + self.latency, node.addr, t.dst, t.packet));
                }
                if let Kind::Peer(p) = &mut node.kind {
                    while p.poll_event().is_some() {}
                }
            }
            each_tick(self);
        }
    }

    /// Base-layer (played, missed) of viewer `i` so far.
    pub fn base(&self, i: usize) -> (u64, u64) {
        let l = &self.peer(i).stats().layers[0];
        (l.played, l.missed)
    }
}

/// Base-layer ratio between two `Net::base` snapshots (None if nothing was due).
pub fn ratio(before: (u64, u64), after: (u64, u64)) -> Option<f64> {
    let played = after.0 - before.0;
    let missed = after.1 - before.1;
    (played + missed > 0).then(|| played as f64 / (played + missed) as f64)
}

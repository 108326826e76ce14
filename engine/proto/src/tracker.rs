//! The tracker: keeps the peers of each channel and hands a joining peer a subset.
//! Peers refresh periodically; silent ones expire. Every table is bounded.
//!
//! It lists only addresses that proved they receive there: every reply carries a
//! return-routability token (a keyed hash of the sender's address and the current
//! epoch, so an unvalidated Join costs the tracker no state), and only a Join,
//! Refresh or Leave that echoes it registers or removes anything. Replies stay
//! within 3x the request's bytes. New registrations are rate-limited per source
//! prefix (/24 for IPv4, /48 for IPv6), and half of every list comes from veterans,
//! peers present and refreshing for `veteran_age`: a flood of fresh identities can
//! neither fill the channel nor crowd long-lived peers out of a newcomer's list.

use crate::node::{Node, Transmit};
use crate::peer::AMPLIFICATION_LIMIT;
use crate::time::Time;
use crate::wire::{ChannelId, MAX_PEER_LIST, Message, NatType, Packet, Role};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// How long one token epoch lasts; a token of the current or the previous epoch is
/// accepted, so a token is good for at least one epoch and at most two.
pub const TOKEN_EPOCH: Duration = Duration::from_secs(600);

/// New registrations allowed from one source prefix: a burst, then a steady rate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PrefixLimit {
    /// Registrations allowed at once from a prefix not seen for a while.
    pub burst: u32,
    /// Registrations per second once the burst is spent.
    pub per_s: f64,
}

/// Limits and timing of a tracker; every table it keeps is bounded by these.
#[derive(Clone, Debug)]
pub struct TrackerConfig {
    /// Peers in one list (at most `MAX_PEER_LIST`).
    pub list_size: usize,
    /// A peer not heard from within this is forgotten.
    pub peer_ttl: Duration,
    /// Most peers over all channels; joins beyond are ignored.
    pub max_peers: usize,
    /// Most channels.
    pub max_channels: usize,
    /// Most replies queued for sending; beyond, requests are dropped.
    pub max_outbox: usize,
    /// New registrations per source prefix (`None`: unlimited, for the simulator,
    /// whose every address shares one prefix; loopback sources are never limited).
    pub prefix_limit: Option<PrefixLimit>,
    /// Most prefixes whose join budget is tracked; beyond, a new prefix is refused
    /// until the sweep forgets prefixes whose budget has refilled.
    pub max_prefixes: usize,
    /// A peer registered and refreshing this long is a veteran: half of every list
    /// is drawn from veterans.
    pub veteran_age: Duration,
    /// The channel's longest-present peers put at the head of every list (at most
    /// half of it): Sybils that join after a channel formed cannot crowd them out.
    pub oldest_in_list: usize,
}

impl Default for TrackerConfig {
    fn default() -> TrackerConfig {
        TrackerConfig {
            list_size: 40,
            peer_ttl: Duration::from_secs(90),
            max_peers: 1_000_000,
            max_channels: 1024,
            max_outbox: 65_536,
            prefix_limit: Some(PrefixLimit { burst: 32, per_s: 1.0 }),
            max_prefixes: 1_000_000,
            veteran_age: Duration::from_secs(60),
            oldest_in_list: 5,
        }
    }
}

impl TrackerConfig {
    /// For swarms whose peers all share one prefix (the simulator, loopback), and
    /// face no Sybils: lists are drawn at random as DESIGN.md §4 has it.
    pub fn one_prefix() -> TrackerConfig {
        TrackerConfig { prefix_limit: None, oldest_in_list: 0, ..TrackerConfig::default() }
    }
}

#[derive(Clone, Debug)]
struct Entry {
    last_seen: Time,
    since: Time,
    veteran: bool,
    /// What it joined as (seeds and relays are public meeting points).
    role: Role,
    /// What it reported of its NAT.
    nat: NatType,
}

/// A set of addresses that can be sampled uniformly.
#[derive(Debug, Default)]
struct AddrSet {
    items: Vec<SocketAddr>,
    index: HashMap<SocketAddr, usize>,
}

impl AddrSet {
    fn insert(&mut self, addr: SocketAddr) {
        if !self.index.contains_key(&addr) {
            self.index.insert(addr, self.items.len());
            self.items.push(addr);
        }
    }

    fn remove(&mut self, addr: SocketAddr) {
        let Some(i) = self.index.remove(&addr) else { return };
        self.items.swap_remove(i);
        if let Some(moved) = self.items.get(i) {
            self.index.insert(*moved, i);
        }
    }

    fn len(&self) -> usize {
        self.items.len()
    }
}

#[derive(Debug, Default)]
struct Channel {
    entries: HashMap<SocketAddr, Entry>,
    all: AddrSet,
    veterans: AddrSet,
    /// Every entry by registration time: the longest present lead every list.
    by_age: BTreeSet<(Time, SocketAddr)>,
}

impl Channel {
    fn remove(&mut self, addr: SocketAddr) -> bool {
        let Some(e) = self.entries.remove(&addr) else {
            return false;
        };
        self.by_age.remove(&(e.since, addr));
        self.all.remove(addr);
        self.veterans.remove(addr);
        true
    }
}

/// The prefix a source address is limited by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Prefix {
    V4([u8; 3]),
    V6([u8; 6]),
}

fn prefix_of(addr: &SocketAddr) -> Prefix {
    match addr.ip() {
        IpAddr::V4(ip) => {
            let o = ip.octets();
            Prefix::V4([o[0], o[1], o[2]])
        }
        IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
            Some(v4) => {
                let o = v4.octets();
                Prefix::V4([o[0], o[1], o[2]])
            }
            None => {
                let o = ip.octets();
                Prefix::V6([o[0], o[1], o[2], o[3], o[4], o[5]])
            }
        },
    }
}

/// A prefix's join budget: tokens left and when they were last topped up.
#[derive(Clone, Copy, Debug)]
struct Budget {
    tokens: f64,
    at: Time,
}

/// Counters a tracker operator watches.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct TrackerStats {
    /// Registrations: validated Joins or Refreshes from addresses not listed yet.
    pub joins: u64,
    /// Leaves that removed a registered peer.
    pub leaves: u64,
    /// Peers forgotten because they were silent for `peer_ttl`.
    pub expired: u64,
    /// Peer lists queued for sending.
    pub lists_sent: u64,
    /// Joins and refreshes turned away because `max_peers` or `max_channels` was reached.
    pub refused: u64,
    /// Joins and refreshes that did not echo a valid token: answered with one, not
    /// registered.
    pub unvalidated: u64,
    /// NAT reports and introduction requests that did not echo a valid token:
    /// ignored (anyone can forge them in a registered peer's name).
    pub unvalidated_nat: u64,
    /// Registrations refused because the source prefix used up its join budget.
    pub prefix_limited: u64,
    /// Peers told to punch towards another (`Introduce`).
    pub introductions: u64,
}

/// The tracker state machine: the peers of each channel, handed out as random peer lists.
#[derive(Debug)]
pub struct Tracker {
    cfg: TrackerConfig,
    rng: ChaCha8Rng,
    /// Key of the return-routability tokens (never leaves the tracker).
    secret: [u8; 32],
    channels: HashMap<ChannelId, Channel>,
    peers: usize,
    prefixes: HashMap<Prefix, Budget>,
    outbox: VecDeque<Transmit>,
    next_expiry: Time,
    stats: TrackerStats,
}

/// What a request's token proved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Proof {
    /// It echoed the current epoch's token.
    Current,
    /// It echoed the previous epoch's token: valid, and the reply carries the new one.
    Previous,
    None,
}

impl Tracker {
    /// An empty tracker; `seed` drives the random choice of peer lists.
    pub fn new(cfg: TrackerConfig, seed: u64) -> Tracker {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let secret = rng.random();
        Tracker {
            cfg,
            rng,
            secret,
            channels: HashMap::new(),
            peers: 0,
            prefixes: HashMap::new(),
            outbox: VecDeque::new(),
            next_expiry: Time::ZERO,
            stats: TrackerStats::default(),
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> &TrackerStats {
        &self.stats
    }

    /// Peers registered over all channels.
    pub fn peers(&self) -> usize {
        self.peers
    }

    /// Peers registered in `channel`.
    pub fn peer_count(&self, channel: ChannelId) -> usize {
        self.channels.get(&channel).map_or(0, |c| c.entries.len())
    }

    /// Whether `addr` is registered (listed) in `channel`.
    pub fn is_listed(&self, channel: ChannelId, addr: &SocketAddr) -> bool {
        self.channels.get(&channel).is_some_and(|c| c.entries.contains_key(addr))
    }

    /// The token `addr` must echo during `epoch`: a keyed hash, never 0.
    fn token(&self, addr: &SocketAddr, epoch: u64) -> u64 {
        let mut h = blake3::Hasher::new_keyed(&self.secret);
        match addr.ip() {
            IpAddr::V4(ip) => h.update(&ip.octets()),
            IpAddr::V6(ip) => h.update(&ip.octets()),
        };
        h.update(&addr.port().to_le_bytes());
        h.update(&epoch.to_le_bytes());
        let mut out = [0u8; 8];
        out.copy_from_slice(&h.finalize().as_bytes()[..8]);
        u64::from_le_bytes(out) | 1
    }

    fn epoch(now: Time) -> u64 {
        now.0 / TOKEN_EPOCH.as_micros() as u64
    }

    fn proof(&self, now: Time, from: &SocketAddr, echo: Option<u64>) -> Proof {
        let Some(echo) = echo.filter(|&e| e != 0) else { return Proof::None };
        let epoch = Self::epoch(now);
        if echo == self.token(from, epoch) {
            Proof::Current
        } else if epoch > 0 && echo == self.token(from, epoch - 1) {
            Proof::Previous
        } else {
            Proof::None
        }
    }

    /// Takes one new registration from `addr`'s prefix budget.
    fn prefix_allows(&mut self, now: Time, addr: &SocketAddr) -> bool {
        let Some(limit) = self.cfg.prefix_limit else { return true };
        // Loopback is this host: a lab or a test, not a remote Sybil source.
        if addr.ip().is_loopback() {
            return true;
        }
        let prefix = prefix_of(addr);
        if !self.prefixes.contains_key(&prefix) && self.prefixes.len() >= self.cfg.max_prefixes {
            return false;
        }
        let b = self.prefixes.entry(prefix).or_insert(Budget { tokens: f64::from(limit.burst), at: now });
        b.tokens = (b.tokens + now.since(b.at).as_secs_f64() * limit.per_s).min(f64::from(limit.burst));
        b.at = now;
        if b.tokens < 1.0 {
            return false;
        }
        b.tokens -= 1.0;
        true
    }

    fn register(&mut self, now: Time, channel: ChannelId, addr: SocketAddr) -> bool {
        if let Some(e) = self.channels.get_mut(&channel).and_then(|ch| ch.entries.get_mut(&addr)) {
            e.last_seen = now;
            return true;
        }
        if !self.channels.contains_key(&channel) && self.channels.len() >= self.cfg.max_channels {
            return false;
        }
        if self.peers >= self.cfg.max_peers {
            return false;
        }
        if !self.prefix_allows(now, &addr) {
            self.stats.prefix_limited += 1;
            return false;
        }
        let ch = self.channels.entry(channel).or_default();
        ch.entries.insert(
            addr,
            Entry { last_seen: now, since: now, veteran: false, role: Role::Peer, nat: NatType::Unknown },
        );
        ch.all.insert(addr);
        ch.by_age.insert((now, addr));
        self.peers += 1;
        self.stats.joins += 1;
        true
    }

    /// Replies with a list, no larger than `budget` bytes (the tracker never sends an
    /// address more than 3x what it received from it; peers pad their requests so a
    /// full list fits), led by `token` when given. Half the list is drawn from
    /// veterans when there are any, the rest from everyone.
    fn send_list(&mut self, channel: ChannelId, to: SocketAddr, budget: usize, token: Option<Message>) {
        if self.outbox.len() >= self.cfg.max_outbox {
            return;
        }
        let observed = Message::Observed { addr: to };
        let mut messages: Vec<Message> = token.into_iter().collect();
        let mut size = Packet { messages: messages.clone() }.wire_len()
            + Message::PeerList { peers: vec![] }.wire_len()
            + observed.wire_len();
        let want = self.cfg.list_size.min(MAX_PEER_LIST);
        let mut peers: Vec<SocketAddr> = Vec::with_capacity(want);
        if let Some(ch) = self.channels.get(&channel) {
            let asker = ch.entries.get(&to).map_or(NatType::Unknown, |e| e.nat);
            let veterans = want.div_ceil(2).min(ch.veterans.len());
            // More than needed from each set, so the requester itself and peers it
            // cannot reach can be skipped.
            let over = |n: usize, len: usize| (REACHABLE_OVERSAMPLE * (n + 1)).min(len);
            let from_veterans =
                rand::seq::index::sample(&mut self.rng, ch.veterans.len(), over(veterans, ch.veterans.len()));
            let from_all = rand::seq::index::sample(&mut self.rng, ch.all.len(), over(want, ch.all.len()));
            let ok = |a: &SocketAddr| *a != to && ch.entries.get(a).is_some_and(|e| reachable(asker, to, *a, e));
            // The longest-present peers first: identities made after a channel
            // formed, however many and however well-behaved, cannot crowd them out.
            let oldest = ch.by_age.iter().map(|&(_, a)| a).filter(ok).take(self.cfg.oldest_in_list.min(want / 2));
            let picks = oldest
                .chain(from_veterans.iter().map(|i| ch.veterans.items[i]).filter(ok).take(veterans))
                .chain(from_all.iter().map(|i| ch.all.items[i]).filter(ok));
            for a in picks {
                if peers.len() >= want {
                    break;
                }
                if peers.contains(&a) {
                    continue;
                }
                size += if a.is_ipv4() { 7 } else { 19 };
                if size > budget {
                    break;
                }
                peers.push(a);
            }
        }
        self.stats.lists_sent += 1;
        messages.push(Message::PeerList { peers });
        messages.push(observed);
        self.outbox.push_back(Transmit { dst: to, packet: Packet { messages } });
    }

    /// Sends `to` its token alone (a refresh that did not ask for a list).
    fn send_token(&mut self, to: SocketAddr, token: Message, budget: usize) {
        let packet = Packet { messages: vec![token] };
        if self.outbox.len() < self.cfg.max_outbox && packet.wire_len() <= budget {
            self.outbox.push_back(Transmit { dst: to, packet });
        }
    }

    fn expire(&mut self, now: Time) {
        let ttl = self.cfg.peer_ttl;
        let veteran_age = self.cfg.veteran_age;
        let mut expired = 0;
        for ch in self.channels.values_mut() {
            let mut stale = Vec::new();
            let mut promoted = Vec::new();
            for (addr, e) in ch.entries.iter_mut() {
                if now.since(e.last_seen) > ttl {
                    stale.push(*addr);
                } else if !e.veteran && now.since(e.since) >= veteran_age {
                    e.veteran = true;
                    promoted.push(*addr);
                }
            }
            // In address order, not the map's: the sets' order drives sampling, and a
            // seeded run must repeat exactly.
            promoted.sort_unstable();
            stale.sort_unstable();
            for addr in promoted {
                ch.veterans.insert(addr);
            }
            for addr in stale {
                ch.remove(addr);
                expired += 1;
            }
        }
        self.channels.retain(|_, c| !c.entries.is_empty());
        self.peers -= expired;
        self.stats.expired += expired as u64;
        // A prefix whose budget has refilled is as good as unknown.
        if let Some(limit) = self.cfg.prefix_limit {
            let full = f64::from(limit.burst);
            self.prefixes.retain(|_, b| b.tokens + now.since(b.at).as_secs_f64() * limit.per_s < full);
        }
    }

    fn handle_message(&mut self, now: Time, from: SocketAddr, msg: Message, budget: usize, proof: Proof) {
        // A sender that has not proven its address gets a token to echo; one whose
        // token is about to lapse gets the next.
        let token =
            (proof != Proof::Current).then(|| Message::Token { nonce: self.token(&from, Self::epoch(now)), echo: 0 });
        match msg {
            Message::Join { channel, peer: _, role } => {
                if proof == Proof::None {
                    self.stats.unvalidated += 1;
                    self.send_list(channel, from, budget, token);
                } else if self.register(now, channel, from) {
                    self.set_role(channel, from, role);
                    self.send_list(channel, from, budget, token);
                } else {
                    self.stats.refused += 1;
                    // Over its prefix's budget, not over capacity: it still gets a
                    // list, and is listed once a later refresh finds budget.
                    if self.peers < self.cfg.max_peers {
                        self.send_list(channel, from, budget, token);
                    }
                }
            }
            Message::Refresh { channel, peer: _, want_peers } => {
                let registered = proof != Proof::None && self.register(now, channel, from);
                if proof == Proof::None {
                    self.stats.unvalidated += 1;
                } else if !registered {
                    self.stats.refused += 1;
                }
                if want_peers {
                    self.send_list(channel, from, budget, token);
                } else if let Some(token) = token {
                    self.send_token(from, token, budget);
                }
            }
            Message::Leave { channel, peer: _ } => {
                // Only the address itself may take itself off the list.
                if proof != Proof::None
                    && let Some(ch) = self.channels.get_mut(&channel)
                    && ch.remove(from)
                {
                    self.peers -= 1;
                    self.stats.leaves += 1;
                }
            }
            // Both act in `from`'s name (a punch towards it, its place in lists): only
            // `from` itself may ask. Unvalidated, they get nothing back.
            Message::Introduce { .. } | Message::NatReport { .. } if proof == Proof::None => {
                self.stats.unvalidated_nat += 1;
            }
            Message::Introduce { channel, addr } => self.introduce(channel, from, addr),
            Message::NatReport { nat } => self.set_nat(from, nat),
            // Everything else is for peers; a tracker ignores it.
            _ => {}
        }
    }
}

/// How many more peers than a list holds are sampled, so that peers the asker
/// cannot reach can be left out.
const REACHABLE_OVERSAMPLE: usize = 4;

/// Whether a peer at `to` with NAT type `asker` can reach `e`: same address family;
/// never a peer behind a symmetric NAT (nobody can reach it, it reaches others);
/// from behind a symmetric NAT, only seeds, relays and peers without NAT (a hole
/// punched for its tracker mapping is not one its Connect uses).
fn reachable(asker: NatType, to: SocketAddr, addr: SocketAddr, e: &Entry) -> bool {
    addr.is_ipv4() == to.is_ipv4()
        && e.nat != NatType::Symmetric
        && (asker != NatType::Symmetric || e.role != Role::Peer || e.nat == NatType::Open)
}

// ---- NAT traversal (docs/PROTOCOL.md, "NAT traversal") ----
impl Tracker {
    fn set_role(&mut self, channel: ChannelId, addr: SocketAddr, role: Role) {
        if let Some(e) = self.channels.get_mut(&channel).and_then(|ch| ch.entries.get_mut(&addr)) {
            e.role = role;
        }
    }

    /// A peer's NAT type, for every channel it is in (a NAT report names none).
    fn set_nat(&mut self, addr: SocketAddr, nat: NatType) {
        for ch in self.channels.values_mut() {
            if let Some(e) = ch.entries.get_mut(&addr) {
                e.nat = nat;
            }
        }
    }

    /// `asker` wants to reach `target`: tells `target` where the asker is, so it
    /// punches a hole towards it. Both must be registered in the channel (an unknown
    /// asker could be a spoofed victim); the introduction is no larger than the
    /// request; a target behind a symmetric NAT is not asked (its punch would come
    /// from a port the asker never sent to).
    fn introduce(&mut self, channel: ChannelId, asker: SocketAddr, target: SocketAddr) {
        if self.outbox.len() >= self.cfg.max_outbox || asker == target || asker.is_ipv4() != target.is_ipv4() {
            return;
        }
        let Some(ch) = self.channels.get(&channel) else { return };
        // Registered means validated: only addresses that proved they receive are
        // introduced, or told to punch.
        let (Some(_), Some(t)) = (ch.entries.get(&asker), ch.entries.get(&target)) else { return };
        if t.nat == NatType::Symmetric {
            return;
        }
        // The target's own token (of the epoch it last heard from us in, so the one it
        // holds) proves the introduction is ours: a forged one would make it punch
        // anyone.
        let echo = self.token(&target, Self::epoch(t.last_seen));
        self.stats.introductions += 1;
        let messages = vec![Message::Introduce { channel, addr: asker }, Message::Token { nonce: 0, echo }];
        let packet = Packet { messages };
        self.outbox.push_back(Transmit { dst: target, packet });
    }
}

impl Node for Tracker {
    fn handle_input(&mut self, now: Time, from: SocketAddr, packet: Packet) {
        let budget = AMPLIFICATION_LIMIT as usize * packet.wire_len();
        let echo = packet.messages.iter().find_map(|m| match m {
            Message::Token { echo, .. } => Some(*echo),
            _ => None,
        });
        let proof = self.proof(now, &from, echo);
        // One reply per datagram at most: every message shares the 3x budget.
        let mut replied = false;
        for msg in packet.messages {
            let asks = matches!(msg, Message::Join { .. } | Message::Refresh { .. });
            if asks && replied {
                continue;
            }
            replied |= asks;
            self.handle_message(now, from, msg, budget, proof);
        }
    }

    fn handle_timeout(&mut self, now: Time) {
        if now >= self.next_expiry {
            self.expire(now);
            self.next_expiry = now + Duration::from_secs(1);
        }
    }

    fn poll_transmit(&mut self, _now: Time) -> Option<Transmit> {
        self.outbox.pop_front()
    }

    fn poll_timeout(&self) -> Option<Time> {
        if self.peers > 0 || !self.prefixes.is_empty() { Some(self.next_expiry) } else { None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{PeerId, Role};

    fn addr(i: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 10_000 + i))
    }

    fn join_msg(i: u16) -> Message {
        Message::Join { channel: ChannelId(1), peer: PeerId(i as u64), role: Role::Peer }
    }

    /// The list and the token of the reply to `from`.
    fn reply(t: &mut Tracker, now: Time, from: SocketAddr) -> (Vec<SocketAddr>, Option<u64>) {
        let tx = t.poll_transmit(now).expect("a reply");
        assert_eq!(tx.dst, from);
        let mut list = Vec::new();
        let mut token = None;
        for m in tx.packet.messages {
            match m {
                Message::PeerList { peers } => list = peers,
                Message::Token { nonce, .. } => token = Some(nonce),
                Message::Observed { addr } => assert_eq!(addr, from),
                other => panic!("unexpected {other:?}"),
            }
        }
        (list, token)
    }

    /// A padded Join from `from`, then the same echoing the token: registered.
    fn join_at(t: &mut Tracker, now: Time, from: SocketAddr) -> Vec<SocketAddr> {
        let i = from.port();
        t.handle_input(now, from, Packet { messages: vec![join_msg(i), Message::Padding { len: 1000 }] });
        let (_, token) = reply(t, now, from);
        let echo = token.expect("an unvalidated join gets a token");
        let messages = vec![join_msg(i), Message::Token { nonce: 0, echo }, Message::Padding { len: 1000 }];
        t.handle_input(now, from, Packet { messages });
        let (list, token) = reply(t, now, from);
        assert_eq!(token, None, "a validated join needs no new token");
        list
    }

    fn join(t: &mut Tracker, now: Time, i: u16) -> Vec<SocketAddr> {
        join_at(t, now, addr(i))
    }

    #[test]
    fn lists_are_random_bounded_and_exclude_the_requester() {
        let mut t = Tracker::new(TrackerConfig { list_size: 10, ..TrackerConfig::one_prefix() }, 1);
        for i in 0..100 {
            let list = join(&mut t, Time::ZERO, i);
            assert!(list.len() <= 10);
            assert_eq!(list.len(), (i as usize).min(10));
            assert!(!list.contains(&addr(i)));
        }
        assert_eq!(t.peer_count(ChannelId(1)), 100);
        let a = join(&mut t, Time::ZERO, 5);
        let b = join(&mut t, Time::ZERO, 5);
        assert_ne!(a, b, "lists should be random subsets");
        assert_eq!(t.peer_count(ChannelId(1)), 100, "rejoin does not duplicate");
    }

    #[test]
    fn replies_never_exceed_three_times_the_request() {
        let mut t = Tracker::new(TrackerConfig::one_prefix(), 4);
        for i in 0..100 {
            join(&mut t, Time::ZERO, i);
        }
        // An unpadded (possibly spoofed) join gets a list cut to 3x its size.
        let small = Packet { messages: vec![join_msg(7)] };
        let sent = small.wire_len();
        t.handle_input(Time::ZERO, addr(500), small);
        let tx = t.poll_transmit(Time::ZERO).expect("a list");
        assert!(tx.packet.wire_len() <= 3 * sent, "{} > 3 x {sent}", tx.packet.wire_len());
        // A padded join gets the full list.
        assert_eq!(join(&mut t, Time::ZERO, 501).len(), 40);
    }

    /// A Join from an address that never echoes the token (a spoofed source) is
    /// answered within 3x but never listed, and cannot take anyone off the list.
    #[test]
    fn unvalidated_joins_are_never_listed() {
        let mut t = Tracker::new(TrackerConfig::one_prefix(), 6);
        join(&mut t, Time::ZERO, 1);
        let victim = addr(2);
        let mut sent = 0;
        let mut received = 0;
        for k in 0..10u64 {
            let now = Time::from_secs(k);
            let guess = Message::Token { nonce: 0, echo: k.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1 };
            for messages in [vec![join_msg(2)], vec![join_msg(2), guess.clone()], vec![join_msg(2), guess]] {
                let p = Packet { messages };
                sent += p.wire_len();
                t.handle_input(now, victim, p);
                received += std::iter::from_fn(|| t.poll_transmit(now)).map(|tx| tx.packet.wire_len()).sum::<usize>();
            }
        }
        assert!(received <= 3 * sent, "{received} > 3 x {sent}");
        assert!(!t.is_listed(ChannelId(1), &victim));
        assert_eq!(join(&mut t, Time::from_secs(20), 3), vec![addr(1)], "the victim is never handed out");
        let leave = Message::Leave { channel: ChannelId(1), peer: PeerId(1) };
        t.handle_input(Time::from_secs(20), addr(1), Packet { messages: vec![leave] });
        assert!(t.is_listed(ChannelId(1), &addr(1)), "a Leave without the token removes nobody");
    }

    #[test]
    fn tokens_roll_over_epochs() {
        let mut t = Tracker::new(TrackerConfig::one_prefix(), 8);
        let a = addr(1);
        t.handle_input(Time::ZERO, a, Packet { messages: vec![join_msg(1)] });
        let (_, token) = reply(&mut t, Time::ZERO, a);
        let echo = token.expect("token");
        // Next epoch: still accepted, and the reply brings the new token.
        let later = Time::ZERO + TOKEN_EPOCH + Duration::from_secs(1);
        let refresh = Message::Refresh { channel: ChannelId(1), peer: PeerId(1), want_peers: false };
        let msgs = vec![refresh.clone(), Message::Token { nonce: 0, echo }];
        t.handle_input(later, a, Packet { messages: msgs.clone() });
        assert!(t.is_listed(ChannelId(1), &a));
        let (_, next) = reply(&mut t, later, a);
        assert!(next.is_some_and(|n| n != echo));
        // Two epochs on, the old token is refused.
        let much_later = later + TOKEN_EPOCH * 2;
        t.handle_input(much_later, a, Packet { messages: msgs });
        assert_eq!(t.stats().unvalidated, 2, "the first join and the stale refresh");
    }

    #[test]
    fn joins_are_limited_per_prefix() {
        let limit = PrefixLimit { burst: 4, per_s: 1.0 };
        let mut t = Tracker::new(TrackerConfig { prefix_limit: Some(limit), ..TrackerConfig::default() }, 9);
        let in_prefix = |i: u8| SocketAddr::from(([198, 51, 100, i], 4000));
        for i in 0..20 {
            join_at(&mut t, Time::ZERO, in_prefix(i));
        }
        assert_eq!(t.peer_count(ChannelId(1)), 4, "a /24 registers its burst at once");
        join_at(&mut t, Time::ZERO, SocketAddr::from(([198, 51, 101, 1], 4000)));
        assert_eq!(t.peer_count(ChannelId(1)), 5, "another /24 has its own budget");
        join_at(&mut t, Time::from_secs(2), in_prefix(30));
        join_at(&mut t, Time::from_secs(2), in_prefix(31));
        assert_eq!(t.peer_count(ChannelId(1)), 7, "the budget refills at its rate");
        let v6 = |i: u16| SocketAddr::from(([0x2001, 0xdb8, 7, i, 0, 0, 0, 1], 4000));
        for i in 0..10 {
            join_at(&mut t, Time::from_secs(2), v6(i));
        }
        assert_eq!(t.peer_count(ChannelId(1)), 11, "IPv6 sources share a /48");
        assert!(t.stats().prefix_limited > 0);
    }

    /// Thousands of validated identities from thousands of prefixes join at once: a
    /// newcomer's list still holds long-present peers.
    #[test]
    fn veterans_stay_in_lists_through_a_join_flood() {
        let mut t = Tracker::new(TrackerConfig::default(), 10);
        let honest: Vec<SocketAddr> = (0..5u8).map(|i| SocketAddr::from(([203, 0, i, 1], 5000))).collect();
        for &a in &honest {
            join_at(&mut t, Time::ZERO, a);
        }
        let refresh = |t: &mut Tracker, now: Time, a: SocketAddr| {
            t.handle_input(now, a, Packet { messages: vec![join_msg(a.port())] });
            let (_, tok) = reply(t, now, a);
            let msgs = vec![
                Message::Refresh { channel: ChannelId(1), peer: PeerId(1), want_peers: false },
                Message::Token { nonce: 0, echo: tok.expect("token") },
            ];
            t.handle_input(now, a, Packet { messages: msgs });
            let _ = t.poll_transmit(now);
        };
        for s in 1..=61 {
            t.handle_timeout(Time::from_secs(s));
        }
        for &a in &honest {
            refresh(&mut t, Time::from_secs(61), a);
        }
        for i in 0..2000u32 {
            let a = SocketAddr::from(([100, (i >> 8) as u8, i as u8, 1], 6000));
            join_at(&mut t, Time::from_secs(62), a);
        }
        assert_eq!(t.peer_count(ChannelId(1)), 2005);
        let list = join_at(&mut t, Time::from_secs(63), SocketAddr::from(([203, 0, 99, 1], 5000)));
        let veterans = list.iter().filter(|a| honest.contains(a)).count();
        assert_eq!(veterans, 5, "every veteran is in a newcomer's list: {list:?}");
    }

    /// Sybils that validate and become veterans too (each from a /24 of its own):
    /// the longest-present peers still lead every list. Before, a newcomer's list held
    /// each honest veteran with a chance of about 2 %.
    #[test]
    fn the_longest_present_lead_lists_through_a_validated_sybil_flood() {
        let cfg = TrackerConfig { veteran_age: Duration::from_secs(2), ..TrackerConfig::default() };
        let mut t = Tracker::new(cfg, 11);
        let honest: Vec<SocketAddr> = (0..5u8).map(|i| SocketAddr::from(([203, 0, i, 1], 5000))).collect();
        for &a in &honest {
            join_at(&mut t, Time::ZERO, a);
        }
        for i in 0..2000u32 {
            let a = SocketAddr::from(([100, (i >> 8) as u8, i as u8, 1], 6000));
            join_at(&mut t, Time::from_secs(1), a);
        }
        t.handle_timeout(Time::from_secs(5));
        for k in 0..20u8 {
            let list = join_at(&mut t, Time::from_secs(5), SocketAddr::from(([203, 1, k, 1], 5000)));
            let found = list.iter().filter(|a| honest.contains(a)).count();
            assert_eq!(found, 5, "newcomer {k} got {found} of the 5 longest-present peers");
        }
    }

    #[test]
    fn silent_peers_expire_and_refreshing_ones_stay() {
        let mut t = Tracker::new(TrackerConfig::one_prefix(), 2);
        join(&mut t, Time::ZERO, 1);
        join(&mut t, Time::ZERO, 2);
        // Peers echo their token in every refresh.
        t.handle_input(Time::ZERO, addr(1), Packet { messages: vec![join_msg(1)] });
        let (_, token) = reply(&mut t, Time::ZERO, addr(1));
        let refresh = Message::Refresh { channel: ChannelId(1), peer: PeerId(1), want_peers: false };
        let echo = Message::Token { nonce: 0, echo: token.expect("token") };
        t.handle_input(Time::from_secs(60), addr(1), Packet { messages: vec![refresh, echo] });
        assert!(t.poll_transmit(Time::from_secs(60)).is_none(), "no list unless asked");
        t.handle_timeout(Time::from_secs(100));
        assert_eq!(t.peer_count(ChannelId(1)), 1);
        assert_eq!(t.stats().expired, 1);
        t.handle_timeout(Time::from_secs(200));
        assert_eq!(t.peer_count(ChannelId(1)), 0);
        assert_eq!(t.poll_timeout(), None);
    }

    /// The token `addr(i)` echoes (what a registered peer holds).
    fn echo(t: &Tracker, i: u16) -> Message {
        Message::Token { nonce: 0, echo: t.token(&addr(i), 0) }
    }

    fn report(t: &mut Tracker, i: u16, nat: NatType) {
        let messages = vec![Message::NatReport { nat }, echo(t, i)];
        t.handle_input(Time::ZERO, addr(i), Packet { messages });
    }

    #[test]
    fn lists_hold_only_peers_the_asker_can_reach() {
        let mut t = Tracker::new(TrackerConfig::default(), 5);
        // 0: a seed; 1-3 open; 4-9 cone; 10-12 symmetric; 13 the asker; two IPv6 peers.
        let seed = Message::Join { channel: ChannelId(1), peer: PeerId(0), role: Role::Seed };
        t.handle_input(Time::ZERO, addr(0), Packet { messages: vec![seed.clone(), Message::Padding { len: 1000 }] });
        let (_, token) = reply(&mut t, Time::ZERO, addr(0));
        let echo = Message::Token { nonce: 0, echo: token.expect("a token") };
        t.handle_input(Time::ZERO, addr(0), Packet { messages: vec![seed, echo, Message::Padding { len: 1000 }] });
        t.poll_transmit(Time::ZERO);
        for i in 1..=13 {
            join(&mut t, Time::ZERO, i);
        }
        for (range, nat) in [(1..=3, NatType::Open), (4..=9, NatType::Cone), (10..=13, NatType::Symmetric)] {
            range.for_each(|i| report(&mut t, i, nat));
        }
        for i in 0..2u16 {
            let v6 = SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], 20_000 + i));
            let peers = join_at(&mut t, Time::ZERO, v6);
            assert!(peers.iter().all(SocketAddr::is_ipv6), "an IPv6 asker gets IPv6 peers: {peers:?}");
            assert_eq!(peers.len(), usize::from(i));
        }
        let symmetric = join(&mut t, Time::ZERO, 13);
        let mut got: Vec<u16> = symmetric.iter().map(|a| a.port() - 10_000).collect();
        got.sort();
        assert_eq!(got, vec![0, 1, 2, 3], "behind a symmetric NAT: the seed and open peers");
        let cone = join(&mut t, Time::ZERO, 4);
        assert_eq!(cone.len(), 9, "a cone peer gets every IPv4 peer but the symmetric ones: {cone:?}");
        assert!(cone.iter().all(|a| a.port() - 10_000 < 10));
    }

    #[test]
    fn introductions_go_only_between_registered_peers_and_are_small() {
        let mut t = Tracker::new(TrackerConfig::default(), 6);
        for i in 1..=3 {
            join(&mut t, Time::ZERO, i);
        }
        report(&mut t, 3, NatType::Symmetric);
        let ask = |t: &mut Tracker, from: u16, to: u16| {
            let introduce = Message::Introduce { channel: ChannelId(1), addr: addr(to) };
            let p = Packet { messages: vec![introduce, echo(t, from)] };
            let sent = p.wire_len();
            t.handle_input(Time::ZERO, addr(from), p);
            let tx = t.poll_transmit(Time::ZERO);
            if let Some(tx) = &tx {
                assert!(tx.packet.wire_len() <= sent, "an introduction is no larger than its request");
            }
            tx
        };
        let tx = ask(&mut t, 1, 2).expect("introduced");
        assert_eq!(tx.dst, addr(2));
        let echo = Message::Token { nonce: 0, echo: t.token(&addr(2), 0) };
        assert_eq!(tx.packet.messages, vec![Message::Introduce { channel: ChannelId(1), addr: addr(1) }, echo]);
        assert!(ask(&mut t, 9, 2).is_none(), "an unregistered (maybe spoofed) asker");
        assert!(ask(&mut t, 1, 9).is_none(), "an unregistered target");
        assert!(ask(&mut t, 1, 3).is_none(), "a symmetric target cannot punch");
        assert_eq!(t.stats().introductions, 1);
    }

    /// Before the fix, a NatReport or Introduce in a registered peer's name (source
    /// forged) was acted on: a forged "symmetric" report took the peer out of every
    /// list, and forged introductions made every peer punch towards it.
    #[test]
    fn forged_nat_reports_and_introductions_are_ignored() {
        let mut t = Tracker::new(TrackerConfig::default(), 7);
        for i in 1..=3 {
            join(&mut t, Time::ZERO, i);
        }
        let forged = [
            Message::NatReport { nat: NatType::Symmetric },
            Message::Introduce { channel: ChannelId(1), addr: addr(2) },
            Message::Introduce { channel: ChannelId(1), addr: addr(3) },
        ];
        for m in forged {
            let wrong = Message::Token { nonce: 0, echo: t.token(&addr(2), 0) };
            t.handle_input(Time::ZERO, addr(1), Packet { messages: vec![m.clone()] });
            t.handle_input(Time::ZERO, addr(1), Packet { messages: vec![m, wrong] });
        }
        assert!(t.poll_transmit(Time::ZERO).is_none(), "nothing sent for forged requests");
        assert_eq!(t.stats().unvalidated_nat, 6);
        assert_eq!(t.stats().introductions, 0);
        assert!(join(&mut t, Time::ZERO, 4).contains(&addr(1)), "peer 1 is still listed");
    }

    #[test]
    fn leave_removes_and_limits_hold() {
        let mut t = Tracker::new(TrackerConfig { max_peers: 3, ..TrackerConfig::one_prefix() }, 3);
        for i in 0..3 {
            join(&mut t, Time::ZERO, i);
        }
        t.handle_input(Time::ZERO, addr(9), Packet { messages: vec![join_msg(9)] });
        let (_, token) = reply(&mut t, Time::ZERO, addr(9));
        let echo = Message::Token { nonce: 0, echo: token.expect("token") };
        t.handle_input(Time::ZERO, addr(9), Packet { messages: vec![join_msg(9), echo] });
        assert!(t.poll_transmit(Time::ZERO).is_none(), "full tracker refuses");
        assert_eq!(t.stats().refused, 1);
        t.handle_input(Time::ZERO, addr(0), Packet { messages: vec![join_msg(0)] });
        let (_, token) = reply(&mut t, Time::ZERO, addr(0));
        let leave = Message::Leave { channel: ChannelId(1), peer: PeerId(0) };
        let echo = Message::Token { nonce: 0, echo: token.expect("token") };
        t.handle_input(Time::ZERO, addr(0), Packet { messages: vec![leave, echo] });
        assert_eq!(t.peer_count(ChannelId(1)), 2);
        join(&mut t, Time::ZERO, 9);
        assert_eq!(t.peer_count(ChannelId(1)), 3);
    }
}

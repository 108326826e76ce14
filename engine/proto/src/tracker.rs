//! The tracker: keeps the peers of each channel and hands a joining peer a random
//! subset. Peers refresh periodically; silent ones expire. Every table is bounded.

use crate::node::{Node, Transmit};
use crate::peer::AMPLIFICATION_LIMIT;
use crate::time::Time;
use crate::wire::{ChannelId, MAX_PEER_LIST, Message, NatType, Packet, Role};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

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
}

impl Default for TrackerConfig {
    fn default() -> TrackerConfig {
        TrackerConfig {
            list_size: 40,
            peer_ttl: Duration::from_secs(90),
            max_peers: 1_000_000,
            max_channels: 1024,
            max_outbox: 65_536,
        }
    }
}

#[derive(Clone, Debug)]
struct Entry {
    addr: SocketAddr,
    last_seen: Time,
    /// What it joined as (seeds and relays are public meeting points).
    role: Role,
    /// What it reported of its NAT.
    nat: NatType,
}

#[derive(Debug, Default)]
struct Channel {
    entries: Vec<Entry>,
    index: HashMap<SocketAddr, usize>,
}

impl Channel {
    fn remove(&mut self, addr: SocketAddr) -> bool {
        let Some(i) = self.index.remove(&addr) else { return false };
        self.entries.swap_remove(i);
        if let Some(moved) = self.entries.get(i) {
            self.index.insert(moved.addr, i);
        }
        true
    }
}

/// Counters a tracker operator watches.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct TrackerStats {
    /// Joins accepted, first registrations and re-joins alike.
    pub joins: u64,
    /// Leaves that removed a registered peer.
    pub leaves: u64,
    /// Peers forgotten because they were silent for `peer_ttl`.
    pub expired: u64,
    /// Peer lists queued for sending.
    pub lists_sent: u64,
    /// Joins and refreshes turned away because `max_peers` or `max_channels` was reached.
    pub refused: u64,
    /// Peers told to punch towards another (`Introduce`).
    pub introductions: u64,
}

/// The tracker state machine: the peers of each channel, handed out as random peer lists.
#[derive(Debug)]
pub struct Tracker {
    cfg: TrackerConfig,
    rng: ChaCha8Rng,
    channels: HashMap<ChannelId, Channel>,
    peers: usize,
    outbox: VecDeque<Transmit>,
    next_expiry: Time,
    stats: TrackerStats,
}

impl Tracker {
    /// An empty tracker; `seed` drives the random choice of peer lists.
    pub fn new(cfg: TrackerConfig, seed: u64) -> Tracker {
        Tracker {
            cfg,
            rng: ChaCha8Rng::seed_from_u64(seed),
            channels: HashMap::new(),
            peers: 0,
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

    fn register(&mut self, now: Time, channel: ChannelId, addr: SocketAddr) -> bool {
        if !self.channels.contains_key(&channel) && self.channels.len() >= self.cfg.max_channels {
            return false;
        }
        let full = self.peers >= self.cfg.max_peers;
        let ch = self.channels.entry(channel).or_default();
        if let Some(&i) = ch.index.get(&addr) {
            ch.entries[i].last_seen = now;
            return true;
        }
        if full {
            return false;
        }
        ch.index.insert(addr, ch.entries.len());
        ch.entries.push(Entry { addr, last_seen: now, role: Role::Peer, nat: NatType::Unknown });
        self.peers += 1;
        true
    }

    /// Replies with a random list of peers `to` can reach, no larger than `budget`
    /// bytes: the tracker never sends an unvalidated address more than 3x what it
    /// received (peers pad their requests so a full list fits). The reply also says
    /// where the tracker sees `to` (its reflexive address).
    fn send_list(&mut self, channel: ChannelId, to: SocketAddr, budget: usize) {
        if self.outbox.len() >= self.cfg.max_outbox {
            return;
        }
        let Some(ch) = self.channels.get(&channel) else { return };
        let want = self.cfg.list_size.min(MAX_PEER_LIST);
        let asker = ch.index.get(&to).map_or(NatType::Unknown, |&i| ch.entries[i].nat);
        // Sample more than needed so the requester itself and peers it cannot reach
        // can be skipped.
        let n = ch.entries.len();
        let picks = rand::seq::index::sample(&mut self.rng, n, (REACHABLE_OVERSAMPLE * (want + 1)).min(n));
        let observed = Message::Observed { addr: to };
        let mut size = Packet { messages: vec![Message::PeerList { peers: vec![] }, observed.clone()] }.wire_len();
        let peers: Vec<SocketAddr> = picks
            .iter()
            .map(|i| &ch.entries[i])
            .filter(|e| e.addr != to && reachable(asker, to, e))
            .map(|e| e.addr)
            .take(want)
            .take_while(|a| {
                size += if a.is_ipv4() { 7 } else { 19 };
                size <= budget
            })
            .collect();
        self.stats.lists_sent += 1;
        let messages = vec![Message::PeerList { peers }, observed];
        self.outbox.push_back(Transmit { dst: to, packet: Packet { messages } });
    }

    fn expire(&mut self, now: Time) {
        let ttl = self.cfg.peer_ttl;
        let mut expired = 0;
        for ch in self.channels.values_mut() {
            let stale: Vec<SocketAddr> =
                ch.entries.iter().filter(|e| now.since(e.last_seen) > ttl).map(|e| e.addr).collect();
            for addr in stale {
                ch.remove(addr);
                expired += 1;
            }
        }
        self.channels.retain(|_, c| !c.entries.is_empty());
        self.peers -= expired;
        self.stats.expired += expired as u64;
    }

    fn handle_message(&mut self, now: Time, from: SocketAddr, msg: Message, budget: usize) {
        match msg {
            Message::Join { channel, peer: _, role } => {
                if self.register(now, channel, from) {
                    self.set_role(channel, from, role);
                    self.stats.joins += 1;
                    self.send_list(channel, from, budget);
                } else {
                    self.stats.refused += 1;
                }
            }
            Message::Refresh { channel, peer: _, want_peers } => {
                if self.register(now, channel, from) {
                    if want_peers {
                        self.send_list(channel, from, budget);
                    }
                } else {
                    self.stats.refused += 1;
                }
            }
            Message::Leave { channel, peer: _ } => {
                if let Some(ch) = self.channels.get_mut(&channel)
                    && ch.remove(from)
                {
                    self.peers -= 1;
                    self.stats.leaves += 1;
                }
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
fn reachable(asker: NatType, to: SocketAddr, e: &Entry) -> bool {
    e.addr.is_ipv4() == to.is_ipv4()
        && e.nat != NatType::Symmetric
        && (asker != NatType::Symmetric || e.role != Role::Peer || e.nat == NatType::Open)
}

// ---- NAT traversal (docs/PROTOCOL.md, "NAT traversal") ----
impl Tracker {
    fn set_role(&mut self, channel: ChannelId, addr: SocketAddr, role: Role) {
        if let Some(ch) = self.channels.get_mut(&channel)
            && let Some(&i) = ch.index.get(&addr)
        {
            ch.entries[i].role = role;
        }
    }

    /// A peer's NAT type, for every channel it is in (a NAT report names none).
    fn set_nat(&mut self, addr: SocketAddr, nat: NatType) {
        for ch in self.channels.values_mut() {
            if let Some(&i) = ch.index.get(&addr) {
                ch.entries[i].nat = nat;
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
        let (Some(_), Some(&t)) = (ch.index.get(&asker), ch.index.get(&target)) else { return };
        if ch.entries[t].nat == NatType::Symmetric {
            return;
        }
        self.stats.introductions += 1;
        let packet = Packet { messages: vec![Message::Introduce { channel, addr: asker }] };
        self.outbox.push_back(Transmit { dst: target, packet });
    }
}

impl Node for Tracker {
    fn handle_input(&mut self, now: Time, from: SocketAddr, packet: Packet) {
        let budget = AMPLIFICATION_LIMIT as usize * packet.wire_len();
        for msg in packet.messages {
            self.handle_message(now, from, msg, budget);
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
        if self.peers > 0 { Some(self.next_expiry) } else { None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{PeerId, Role};

    fn addr(i: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 10_000 + i))
    }

    fn join(t: &mut Tracker, now: Time, i: u16) -> Vec<SocketAddr> {
        let msg = Message::Join { channel: ChannelId(1), peer: PeerId(i as u64), role: Role::Peer };
        t.handle_input(now, addr(i), Packet { messages: vec![msg, Message::Padding { len: 1000 }] });
        let tx = t.poll_transmit(now).expect("a peer list");
        assert_eq!(tx.dst, addr(i));
        match tx.packet.messages.as_slice() {
            [Message::PeerList { peers }, Message::Observed { addr }] if *addr == super::tests::addr(i) => {
                peers.clone()
            }
            other => panic!("expected a peer list, got {other:?}"),
        }
    }

    #[test]
    fn lists_are_random_bounded_and_exclude_the_requester() {
        let mut t = Tracker::new(TrackerConfig { list_size: 10, ..Default::default() }, 1);
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
        let mut t = Tracker::new(TrackerConfig::default(), 4);
        for i in 0..100 {
            join(&mut t, Time::ZERO, i);
        }
        // An unpadded (possibly spoofed) join gets a list cut to 3x its size.
        let small =
            Packet { messages: vec![Message::Join { channel: ChannelId(1), peer: PeerId(7), role: Role::Peer }] };
        let sent = small.wire_len();
        t.handle_input(Time::ZERO, addr(500), small);
        let reply = t.poll_transmit(Time::ZERO).expect("a list");
        assert!(reply.packet.wire_len() <= 3 * sent, "{} > 3 x {sent}", reply.packet.wire_len());
        // A padded join gets the full list.
        assert_eq!(join(&mut t, Time::ZERO, 501).len(), 40);
    }

    #[test]
    fn silent_peers_expire_and_refreshing_ones_stay() {
        let mut t = Tracker::new(TrackerConfig::default(), 2);
        join(&mut t, Time::ZERO, 1);
        join(&mut t, Time::ZERO, 2);
        let refresh = Message::Refresh { channel: ChannelId(1), peer: PeerId(1), want_peers: false };
        t.handle_input(Time::from_secs(60), addr(1), Packet { messages: vec![refresh] });
        assert!(t.poll_transmit(Time::from_secs(60)).is_none(), "no list unless asked");
        t.handle_timeout(Time::from_secs(100));
        assert_eq!(t.peer_count(ChannelId(1)), 1);
        assert_eq!(t.stats().expired, 1);
        t.handle_timeout(Time::from_secs(200));
        assert_eq!(t.peer_count(ChannelId(1)), 0);
        assert_eq!(t.poll_timeout(), None);
    }

    fn report(t: &mut Tracker, i: u16, nat: NatType) {
        t.handle_input(Time::ZERO, addr(i), Packet { messages: vec![Message::NatReport { nat }] });
    }

    #[test]
    fn lists_hold_only_peers_the_asker_can_reach() {
        let mut t = Tracker::new(TrackerConfig::default(), 5);
        // 0: a seed; 1-3 open; 4-9 cone; 10-12 symmetric; 13 the asker; two IPv6 peers.
        let seed = Message::Join { channel: ChannelId(1), peer: PeerId(0), role: Role::Seed };
        t.handle_input(Time::ZERO, addr(0), Packet { messages: vec![seed, Message::Padding { len: 1000 }] });
        t.poll_transmit(Time::ZERO);
        for i in 1..=13 {
            join(&mut t, Time::ZERO, i);
        }
        for (range, nat) in [(1..=3, NatType::Open), (4..=9, NatType::Cone), (10..=13, NatType::Symmetric)] {
            range.for_each(|i| report(&mut t, i, nat));
        }
        for i in 0..2u16 {
            let v6 = SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], 20_000 + i));
            let msg = Message::Join { channel: ChannelId(1), peer: PeerId(100 + u64::from(i)), role: Role::Peer };
            t.handle_input(Time::ZERO, v6, Packet { messages: vec![msg, Message::Padding { len: 1000 }] });
            let tx = t.poll_transmit(Time::ZERO).expect("a list");
            let Message::PeerList { peers } = &tx.packet.messages[0] else { panic!("a list") };
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
            let p = Packet { messages: vec![Message::Introduce { channel: ChannelId(1), addr: addr(to) }] };
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
        assert_eq!(tx.packet.messages, vec![Message::Introduce { channel: ChannelId(1), addr: addr(1) }]);
        assert!(ask(&mut t, 9, 2).is_none(), "an unregistered (maybe spoofed) asker");
        assert!(ask(&mut t, 1, 9).is_none(), "an unregistered target");
        assert!(ask(&mut t, 1, 3).is_none(), "a symmetric target cannot punch");
        assert_eq!(t.stats().introductions, 1);
    }

    #[test]
    fn leave_removes_and_limits_hold() {
        let mut t = Tracker::new(TrackerConfig { max_peers: 3, ..Default::default() }, 3);
        for i in 0..3 {
            join(&mut t, Time::ZERO, i);
        }
        let msg = Message::Join { channel: ChannelId(1), peer: PeerId(9), role: Role::Peer };
        t.handle_input(Time::ZERO, addr(9), Packet { messages: vec![msg] });
        assert!(t.poll_transmit(Time::ZERO).is_none(), "full tracker refuses");
        assert_eq!(t.stats().refused, 1);
        let leave = Message::Leave { channel: ChannelId(1), peer: PeerId(0) };
        t.handle_input(Time::ZERO, addr(0), Packet { messages: vec![leave] });
        assert_eq!(t.peer_count(ChannelId(1)), 2);
        join(&mut t, Time::ZERO, 9);
        assert_eq!(t.peer_count(ChannelId(1)), 3);
    }
}

//! Synthetic peers on one thread (a shard): many real `Peer` state machines, each on
//! its own UDP socket, driven by one event loop — epoll for the sockets, a heap for
//! the peers' timers — on a thread pinned to one core.
//!
//! Why not glommio, like the runtime: there every socket keeps a receive in flight in
//! io_uring and every node has its own timer task that wakes at least every 2 ms. At a
//! few hundred sockets per executor the executor slept through its own timers for
//! seconds while its core sat mostly idle, and per-node timer tasks
//! would cost thousands of wakeups per second per core. One readiness loop per shard
//! handles any number of sockets with one `epoll_wait` per tick and nothing in flight.
//! This module never decides anything a peer decides: it delivers, times and counts.

use super::live::Live;
use bytes::Bytes;
use layerp2p_proto::node::Node;
use layerp2p_proto::peer::Peer;
use layerp2p_proto::swarm::PeerSpec;
use layerp2p_proto::swarm::report::PeerOutcome;
use layerp2p_proto::wire::{self, MAX_DATAGRAM, Message, Packet};
use layerp2p_proto::{PeerConfig, Time};
use layerp2p_runtime::driver::{self, Clock, IoStats};
use layerp2p_udp as udp;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Longest the loop waits for a socket: the resolution of every peer's timers.
const TICK_MS: i32 = 1;
/// Readiness events taken per `epoll_wait`.
const MAX_EVENTS: usize = 1024;
/// Datagrams read from one socket per wakeup, so one busy peer cannot starve the rest
/// (level-triggered epoll reports the socket again).
const READS_PER_WAKE: usize = 64;
/// How often the shard publishes its neighbour count.
const GAUGE_EVERY: Duration = Duration::from_secs(1);

/// What one shard needs to know.
#[derive(Clone, Debug)]
pub struct ShardPlan {
    pub index: usize,
    /// Core the shard's thread is pinned to (`None`: not pinned).
    pub core: Option<usize>,
    /// Template of every peer; `upload` is set per peer.
    pub peer: PeerConfig,
    /// (global index, spec) of this shard's peers, by join time.
    pub peers: Vec<(usize, PeerSpec)>,
    /// The node under test: every peer connects to it first.
    pub target: SocketAddr,
    /// A star (peers keep one neighbour): the peers learn no address but the target's.
    pub star: bool,
    pub seed: u64,
}

struct Synth {
    peer: Peer,
    socket: UdpSocket,
    gso: bool,
    /// The deadline this peer has in the heap, if any.
    wake: Option<Time>,
    spec: PeerSpec,
}

struct Shard {
    plan: ShardPlan,
    clock: Clock,
    live: Arc<Live>,
    synths: Vec<Synth>,
    heap: BinaryHeap<Reverse<(Time, usize)>>,
    io: IoStats,
    batch: Vec<(SocketAddr, Bytes)>,
    epoll: OwnedFd,
}

/// A new epoll instance (a shard's readiness loop).
pub fn epoll_create() -> io::Result<OwnedFd> {
    // SAFETY: epoll_create1 has no preconditions; a non-negative result is a new fd.
    let epfd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if epfd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `epfd` is a fresh fd nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(epfd) })
}

/// Registers `socket` with `epoll` for reading, reported with `index`.
pub fn epoll_add(epoll: &OwnedFd, socket: &UdpSocket, index: usize) -> io::Result<()> {
    let mut ev = libc::epoll_event { events: libc::EPOLLIN as u32, u64: index as u64 };
    // SAFETY: both fds are open; `ev` is a valid event.
    if unsafe { libc::epoll_ctl(epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, socket.as_raw_fd(), &mut ev) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Pins the calling thread to `core`.
pub fn pin_to_core(core: usize) -> io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET writes within it and
    // sched_setaffinity reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

impl Shard {
    /// Sends everything peer `i` has queued, in one batch (the runtime's flush).
    fn flush(&mut self, i: usize, now: Time) {
        let s = &mut self.synths[i];
        driver::flush(&mut s.peer, now, s.socket.as_raw_fd(), &mut s.gso, &mut self.batch, &mut self.io);
    }

    /// Puts peer `i`'s next deadline in the heap if it is earlier than the one there.
    fn schedule(&mut self, i: usize) {
        let s = &mut self.synths[i];
        let Some(t) = s.peer.poll_timeout() else { return };
        if s.wake.is_none_or(|w| t < w) {
            s.wake = Some(t);
            self.heap.push(Reverse((t, i)));
        }
    }

    /// Handles one received datagram for peer `i`.
    fn deliver(&mut self, i: usize, from: SocketAddr, data: &[u8]) {
        let now = self.clock.now();
        self.io.datagrams_in += 1;
        self.io.bytes_in += data.len() as u64;
        let Ok(mut packet) = wire::decode(Bytes::copy_from_slice(data)) else {
            self.io.malformed += 1;
            return;
        };
        self.star_list(i, from, &mut packet);
        self.count_data(from, &packet, data.len() as u64);
        if let Some(first) = self.target_first(i, from, &packet) {
            self.synths[i].peer.handle_input(now, from, first);
        }
        self.synths[i].peer.handle_input(now, from, packet);
        self.flush(i, now);
        self.schedule(i);
    }

    fn count_data(&self, from: SocketAddr, packet: &Packet, bytes: u64) {
        let lcs = packet.messages.iter().filter(|m| matches!(m, Message::Data(_))).count() as u64;
        if lcs == 0 {
            return;
        }
        Live::add(&self.live.lcs_in, lcs);
        Live::add(&self.live.bytes_in, bytes);
        if from == self.plan.target {
            Live::add(&self.live.target_lcs, lcs);
            Live::add(&self.live.target_bytes, bytes);
        }
    }

    /// In a star every list from the tracker becomes the target alone: a peer the
    /// target declines or times out asks the target again, instead of pairing with
    /// another synthetic peer that has nothing to give it (which hides the target's
    /// limit behind peers that play nothing).
    fn star_list(&self, i: usize, from: SocketAddr, packet: &mut Packet) {
        if !self.plan.star || self.synths[i].peer.config().tracker != Some(from) {
            return;
        }
        for m in &mut packet.messages {
            if let Message::PeerList { peers } = m {
                *peers = vec![self.plan.target];
            }
        }
    }

    /// A peer list from the tracker may not name the target (the tracker hands out a
    /// random subset). Before it, the peer gets a list of the target alone, so it
    /// connects to the target first and then fills up from the real list.
    fn target_first(&self, i: usize, from: SocketAddr, packet: &Packet) -> Option<Packet> {
        let target = self.plan.target;
        let peer = &self.synths[i].peer;
        let is_list = packet.messages.iter().any(|m| matches!(m, Message::PeerList { .. }));
        if !is_list || peer.config().tracker != Some(from) || peer.neighbour_addrs().any(|a| a == target) {
            return None;
        }
        Some(Packet { messages: vec![Message::PeerList { peers: vec![target] }] })
    }

    /// Starts the next peer: binds its socket, registers it with epoll, sends its Join.
    fn join(&mut self, global: usize, spec: PeerSpec) -> io::Result<()> {
        let socket = udp::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let mut cfg = self.plan.peer.clone();
        cfg.upload = spec.upload;
        let rng_seed = self.plan.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ global as u64;
        let now = self.clock.now();
        let peer = Peer::new(cfg, rng_seed, now).map_err(|e| io::Error::other(e.to_string()))?;
        let i = self.synths.len();
        epoll_add(&self.epoll, &socket, i)?;
        self.synths.push(Synth { peer, socket, gso: true, wake: None, spec });
        // The Join to the tracker is already queued.
        self.flush(i, now);
        self.schedule(i);
        Live::add(&self.live.peers_up, 1);
        Ok(())
    }

    /// Runs every timer that is due.
    fn run_timers(&mut self, now: Time) -> Duration {
        let mut worst = Duration::ZERO;
        while let Some(&Reverse((t, i))) = self.heap.peek() {
            if t > now {
                break;
            }
            self.heap.pop();
            if self.synths[i].wake != Some(t) {
                continue; // superseded by an earlier deadline
            }
            self.synths[i].wake = None;
            worst = worst.max(now.since(t));
            self.synths[i].peer.handle_timeout(now);
            self.flush(i, now);
            self.schedule(i);
        }
        worst
    }

    /// Reads what peer `i`'s socket holds (up to `READS_PER_WAKE` datagrams).
    fn drain(&mut self, i: usize, buf: &mut [u8]) {
        for _ in 0..READS_PER_WAKE {
            match self.synths[i].socket.recv_from(buf) {
                Ok((n, from)) if n < buf.len() => self.deliver(i, from, &buf[..n]),
                Ok(_) => self.io.malformed += 1,
                Err(_) => return,
            }
        }
    }

    fn publish_neighbours(&self) {
        let total: usize = self.synths.iter().map(|s| s.peer.neighbour_count()).sum();
        self.live.neighbours[self.plan.index].store(total as u64, Ordering::Relaxed);
        let target = self.plan.target;
        let on_target = self.synths.iter().filter(|s| s.peer.neighbour_addrs().any(|a| a == target)).count();
        self.live.on_target[self.plan.index].store(on_target as u64, Ordering::Relaxed);
    }
}

/// Runs one shard on the calling thread until `stop`; returns every peer's outcome
/// and the socket counters.
pub fn run_shard(
    plan: ShardPlan,
    clock: Clock,
    live: Arc<Live>,
    stop: Arc<AtomicBool>,
) -> io::Result<(Vec<PeerOutcome>, IoStats)> {
    if let Some(core) = plan.core {
        pin_to_core(core)?;
    }
    let epoll = epoll_create()?;
    let mut pending = plan.peers.clone().into_iter().peekable();
    let mut shard = Shard {
        clock,
        live,
        synths: Vec::with_capacity(plan.peers.len()),
        heap: BinaryHeap::with_capacity(plan.peers.len() * 2),
        io: IoStats::default(),
        batch: Vec::new(),
        epoll,
        plan,
    };
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; MAX_EVENTS];
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    let mut last_gauge = clock.now();
    let mut worst = Duration::ZERO;
    while !stop.load(Ordering::Relaxed) {
        let now = clock.now();
        while pending.peek().is_some_and(|(_, spec)| spec.join <= now) {
            if let Some((global, spec)) = pending.next() {
                shard.join(global, spec)?;
            }
        }
        worst = worst.max(shard.run_timers(now));
        if now.since(last_gauge) >= GAUGE_EVERY {
            shard.publish_neighbours();
            shard.live.timer_lag_us.fetch_max(worst.as_micros() as u64, Ordering::Relaxed);
            worst = Duration::ZERO;
            last_gauge = now;
        }
        let due = shard.heap.peek().is_some_and(|Reverse((t, _))| *t <= clock.now());
        // SAFETY: `events` has room for MAX_EVENTS entries.
        let n = unsafe {
            libc::epoll_wait(
                shard.epoll.as_raw_fd(),
                events.as_mut_ptr(),
                MAX_EVENTS as i32,
                if due { 0 } else { TICK_MS },
            )
        };
        for ev in events.iter().take(n.max(0) as usize) {
            let i = ev.u64 as usize;
            if i < shard.synths.len() {
                shard.drain(i, &mut buf);
            }
        }
    }
    shard.publish_neighbours();
    let now = clock.now();
    let outcomes = shard
        .synths
        .iter()
        .map(|s| {
            let seconds = now.since(s.peer.counted_since()).as_secs_f64();
            PeerOutcome { class: s.spec.class, upload: s.spec.upload, seconds, stats: s.peer.stats() }
        })
        .collect();
    Ok((outcomes, shard.io))
}

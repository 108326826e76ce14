//! Runs one node over one UDP socket on the current glommio executor: a receive task
//! (io_uring `recv_from`) feeds `handle_input`; a timer loop calls `handle_timeout`
//! when the node asks; after either, everything `poll_transmit` yields goes out in one
//! batch (`udp::send_batch`). Malformed datagrams are counted and dropped.

use super::link::{Inbound, LinkModel};
use bytes::{Bytes, BytesMut};
use layerp2p_proto::node::Node;
use layerp2p_proto::time::Time;
use layerp2p_proto::wire;
use layerp2p_udp as udp;
use std::cell::{Cell, RefCell};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, RawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The driver's clock: `Time` is microseconds since `start`.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start: Instant,
}

impl Clock {
    pub fn starting_at(start: Instant) -> Clock {
        Clock { start }
    }

    pub fn now(&self) -> Time {
        Time(self.start.elapsed().as_micros() as u64)
    }
}

/// What crossed the socket.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct IoStats {
    pub datagrams_in: u64,
    pub bytes_in: u64,
    pub malformed: u64,
    pub datagrams_out: u64,
    pub bytes_out: u64,
    pub send_syscalls: u64,
    pub send_dropped: u64,
    /// Timer wake-ups that ran a node's due work (`handle_timeout`), how many of them
    /// ran more than `LATE_TIMER` after it was due, and the latest one: a starved
    /// executor shows here first (rounds, playback and token-bucket sends run late).
    pub timers_run: u64,
    pub timers_late: u64,
    pub timer_late_max_us: u64,
    /// Datagrams the simulated access link (`link::LinkModel`) lost.
    pub link_lost: u64,
}

impl IoStats {
    pub fn add(&mut self, o: &IoStats) {
        self.datagrams_in += o.datagrams_in;
        self.bytes_in += o.bytes_in;
        self.malformed += o.malformed;
        self.datagrams_out += o.datagrams_out;
        self.bytes_out += o.bytes_out;
        self.send_syscalls += o.send_syscalls;
        self.send_dropped += o.send_dropped;
        self.timers_run += o.timers_run;
        self.timers_late += o.timers_late;
        self.timer_late_max_us = self.timer_late_max_us.max(o.timer_late_max_us);
        self.link_lost += o.link_lost;
    }
}

/// Longest the timer loop sleeps: bounds how late a token-bucket send can start.
const MAX_TICK: Duration = Duration::from_millis(2);
const MIN_TICK: Duration = Duration::from_micros(200);
/// A node's due work that runs later than this counts as late (`IoStats::timers_late`):
/// one playback tick (100 ms) is the deadline resolution, so 20 ms late is already
/// a fifth of it.
const LATE_TIMER: Duration = Duration::from_millis(20);
/// Size of the send buffers a flush encodes into (a new one when one is full);
/// below malloc's mmap threshold, so buffers are reused rather than faulted in.
const FLUSH_BUFFER: usize = 64 * 1024;

struct Shared<N> {
    node: Rc<RefCell<N>>,
    fd: RawFd,
    clock: Clock,
    gso: Cell<bool>,
    /// Shared with whoever watches the node live (the metrics snapshot).
    stats: Rc<RefCell<IoStats>>,
}

impl<N: Node> Shared<N> {
    /// Sends everything the node has queued, in one batch: all packets are encoded
    /// into one buffer (each datagram a refcounted slice of it, no allocation per
    /// packet), ordered by destination, and handed to `udp::send_batch`.
    fn flush(&self, now: Time) {
        let mut gso = self.gso.get();
        let mut batch = Vec::new();
        flush(&mut *self.node.borrow_mut(), now, self.fd, &mut gso, &mut batch, &mut self.stats.borrow_mut());
        self.gso.set(gso);
    }
}

/// Sends everything `node` has queued at `now` on `fd`, in one batch: encoded into one
/// buffer (each datagram a refcounted slice of it, no allocation per packet), ordered
/// by destination so GSO gets long runs. `batch` is scratch space; `gso` is cleared if
/// the kernel refuses segmentation offload. Every driver of a node sends through this.
pub fn flush<N: Node + ?Sized>(
    node: &mut N,
    now: Time,
    fd: RawFd,
    gso: &mut bool,
    batch: &mut Vec<(std::net::SocketAddr, Bytes)>,
    stats: &mut IoStats,
) {
    batch.clear();
    let mut buf = BytesMut::new();
    while let Some(t) = node.poll_transmit(now) {
        if buf.capacity() - buf.len() < t.packet.wire_len() {
            buf.reserve(FLUSH_BUFFER.max(t.packet.wire_len()));
        }
        // The core never builds a packet its own decoder would refuse; if it ever
        // did, dropping it is the safe choice.
        if wire::encode(&t.packet, &mut buf).is_ok() {
            batch.push((t.dst, buf.split().freeze()));
        } else {
            buf.clear();
        }
    }
    if batch.is_empty() {
        return;
    }
    udp::by_destination(batch);
    let sent = udp::send_batch(fd, batch, gso);
    stats.datagrams_out += sent.datagrams as u64;
    stats.bytes_out += batch.iter().map(|(_, b)| b.len() as u64).sum::<u64>();
    stats.send_syscalls += sent.syscalls as u64;
    stats.send_dropped += sent.dropped as u64;
}

/// Drives `node` on `socket` until `stop` is set; returns the socket counters.
pub async fn drive<N: Node + 'static>(
    node: Rc<RefCell<N>>,
    socket: std::net::UdpSocket,
    clock: Clock,
    stop: Arc<AtomicBool>,
) -> IoStats {
    drive_linked(node, socket, clock, stop, LinkModel::NONE, 0).await
}

/// `drive`, with what the node receives passed through the access link `link`
/// (delay and loss; `seed` seeds its losses).
pub async fn drive_linked<N: Node + 'static>(
    node: Rc<RefCell<N>>,
    socket: std::net::UdpSocket,
    clock: Clock,
    stop: Arc<AtomicBool>,
    link: LinkModel,
    seed: u64,
) -> IoStats {
    drive_observed(node, socket, clock, stop, link, seed, Rc::default()).await
}

/// `drive_linked`, counting into `stats`, which the caller may read while the node
/// runs (a shard's per-second snapshot reads it for the metrics).
pub async fn drive_observed<N: Node + 'static>(
    node: Rc<RefCell<N>>,
    socket: std::net::UdpSocket,
    clock: Clock,
    stop: Arc<AtomicBool>,
    link: LinkModel,
    seed: u64,
    stats: Rc<RefCell<IoStats>>,
) -> IoStats {
    let inbound = Rc::new(RefCell::new(Inbound::new(link, seed)));
    let fd = socket.as_raw_fd();
    // SAFETY: the fd comes from a live std socket whose ownership moves here.
    let socket = Rc::new(unsafe { glommio::net::UdpSocket::from_raw_fd(socket.into_raw_fd()) });
    let shared = Rc::new(Shared { node, fd, clock, gso: Cell::new(true), stats });

    let rx_shared = shared.clone();
    let rx_socket = socket.clone();
    let rx_inbound = inbound.clone();
    let receiver = glommio::spawn_local(async move {
        let mut buf = vec![0u8; wire::MAX_DATAGRAM + 1];
        loop {
            let Ok((n, from)) = rx_socket.recv_from(&mut buf).await else {
                glommio::timer::sleep(Duration::from_millis(1)).await;
                continue;
            };
            let from = udp::canonical(from);
            let now = rx_shared.clock.now();
            {
                let mut s = rx_shared.stats.borrow_mut();
                s.datagrams_in += 1;
                s.bytes_in += n as u64;
            }
            match wire::decode(Bytes::copy_from_slice(&buf[..n])) {
                Ok(packet) => {
                    let admitted = rx_inbound.borrow_mut().admit(now, from, packet);
                    if let Some((from, packet)) = admitted {
                        rx_shared.node.borrow_mut().handle_input(now, from, packet);
                    }
                }
                Err(_) => rx_shared.stats.borrow_mut().malformed += 1,
            }
            rx_shared.flush(now);
            // Under load a read completes without waiting, so this loop would never
            // give the timer loop, ingest or status tasks a turn: yield once the
            // task queue's time slice is used up.
            glommio::yield_if_needed().await;
        }
    });

    while !stop.load(Ordering::Relaxed) {
        let now = shared.clock.now();
        loop {
            let held = inbound.borrow_mut().due(now);
            let Some((from, packet)) = held else { break };
            shared.node.borrow_mut().handle_input(now, from, packet);
        }
        let due = shared.node.borrow().poll_timeout();
        if let Some(t) = due.filter(|t| *t <= now) {
            let late = now.0 - t.0;
            {
                let mut s = shared.stats.borrow_mut();
                s.timers_run += 1;
                s.timers_late += u64::from(late > LATE_TIMER.as_micros() as u64);
                s.timer_late_max_us = s.timer_late_max_us.max(late);
            }
            shared.node.borrow_mut().handle_timeout(now);
        }
        shared.flush(now);
        let node_next = shared.node.borrow().poll_timeout();
        let next = node_next.into_iter().chain(inbound.borrow().next_due()).min();
        let wait = next.map_or(MAX_TICK, |t| Duration::from_micros(t.0.saturating_sub(now.0)));
        glommio::timer::sleep(wait.clamp(MIN_TICK, MAX_TICK)).await;
    }
    // Goodbyes (a peer's Disconnects and Leave) go out before the socket closes.
    let now = shared.clock.now();
    shared.node.borrow_mut().close(now);
    shared.flush(now);
    // Cancels the pending receive; the socket closes when the last Rc goes.
    drop(receiver);
    let mut stats = *shared.stats.borrow();
    stats.link_lost = inbound.borrow().lost;
    stats
}

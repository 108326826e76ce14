//! The sans-IO interface every protocol state machine offers its drivers (the
//! glommio runtime, the simulator, the in-memory test network).
//!
//! A node never reads a clock, owns a socket or draws from a global RNG: the driver
//! passes time in, delivers packets, and carries out what `poll_transmit` returns.

use crate::time::Time;
use crate::wire::Packet;
use std::net::SocketAddr;

/// A packet to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Where to send it.
    pub dst: SocketAddr,
    /// The packet to encode and send as one datagram.
    pub packet: Packet,
}

/// The calling contract between a protocol state machine (`Peer`, `Tracker`) and the
/// driver that owns its socket and clock.
///
/// The methods fall into three groups:
/// - **inputs**, which change state: [`handle_input`](Node::handle_input) for a packet
///   that arrived, [`handle_timeout`](Node::handle_timeout) for time passing, and
///   [`close`](Node::close) once, at shutdown;
/// - **outputs**, which only drain what the inputs produced:
///   [`poll_transmit`](Node::poll_transmit) and, on `Peer`, `poll_event`;
/// - **the wake-up**, [`poll_timeout`](Node::poll_timeout), which reads state and changes
///   nothing.
///
/// The run loop, identical in the UDP runtime, the simulator and the in-memory tests:
///
/// 1. Deliver every packet that arrived with `handle_input(now, from, packet)`. `now`
///    never goes backwards across calls.
/// 2. Call `poll_transmit(now)` until it returns `None`, sending each `Transmit` (a
///    driver may batch them, e.g. by destination). `None` means "nothing more *now*":
///    the node may still hold queued work that its upload budget does not allow yet;
///    it will say when through `poll_timeout`.
/// 3. Drain `poll_event` (on `Peer`) if the driver wants playback and neighbour events.
/// 4. Ask `poll_timeout()` and sleep until that instant or until the next packet,
///    whichever is first. `None`: no timer is needed (a node that has left).
/// 5. When the instant is reached, call `handle_timeout(now)` with the current time
///    (late is fine: the node catches up on every round, playback deadline and refresh
///    it missed), then go back to step 2.
/// 6. To stop, call `close(now)` once and do step 2 one last time so the goodbyes
///    leave; after `close` the node ignores input and asks for no timer.
///
/// Invalid input never panics and never returns an error: a malformed or unwelcome
/// packet is counted in the node's stats and dropped. Everything a node keeps per
/// remote address is bounded.
pub trait Node {
    /// A packet arrived from `from`.
    fn handle_input(&mut self, now: Time, from: SocketAddr, packet: Packet);
    /// Time has reached (at least) the instant `poll_timeout` asked for.
    fn handle_timeout(&mut self, now: Time);
    /// The next packet to send, if any is ready at `now`.
    fn poll_transmit(&mut self, now: Time) -> Option<Transmit>;
    /// When the node next wants `handle_timeout`.
    fn poll_timeout(&self) -> Option<Time>;
    /// The driver is shutting down: queue any goodbyes (they are flushed once more).
    fn close(&mut self, _now: Time) {}
}

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
    pub dst: SocketAddr,
    pub packet: Packet,
}

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

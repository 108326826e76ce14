//! An in-process model of a wide-area access link, for swarms whose nodes all sit on
//! loopback: every datagram a node receives is lost with probability `loss`, else
//! handed to the node `delay` after it arrived. One delay per node (its access link),
//! so the round-trip time between two such nodes is the sum of their delays; the
//! held datagrams are a FIFO, bounded by `MAX_HELD` (beyond it they are dropped, as a
//! full router queue would). Owns no clock: the driver passes `now`.

use layerp2p_proto::time::Time;
use layerp2p_proto::wire::Packet;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

/// Most datagrams one node's link holds at once.
pub const MAX_HELD: usize = 1 << 16;

/// One node's access link.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LinkModel {
    /// One-way delay added to every datagram the node receives.
    pub delay: Duration,
    /// Probability (0..=1) that a received datagram is lost.
    pub loss: f64,
}

impl LinkModel {
    /// Loopback as it is: no delay, no loss.
    pub const NONE: LinkModel = LinkModel { delay: Duration::ZERO, loss: 0.0 };
}

/// Access links over a swarm's viewers: each viewer's one-way delay drawn uniformly
/// from `delay_min..=delay_max` (seeded per viewer), the same loss for all.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Links {
    pub delay_min: Duration,
    pub delay_max: Duration,
    pub loss: f64,
}

impl Links {
    /// Viewer `index`'s link in the swarm seeded `seed`.
    pub fn viewer(&self, seed: u64, index: usize) -> LinkModel {
        let mut rng =
            ChaCha8Rng::seed_from_u64(seed ^ 0x6C69_6E6B ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let (lo, hi) = (self.delay_min.as_micros() as u64, self.delay_max.as_micros() as u64);
        let delay = if hi > lo { rng.random_range(lo..=hi) } else { lo };
        LinkModel { delay: Duration::from_micros(delay), loss: self.loss }
    }
}

/// The datagrams on their way into one node.
#[derive(Debug)]
pub struct Inbound {
    model: LinkModel,
    rng: ChaCha8Rng,
    held: VecDeque<(Time, SocketAddr, Packet)>,
    /// Datagrams lost to `loss` or to a full queue.
    pub lost: u64,
}

impl Inbound {
    pub fn new(model: LinkModel, seed: u64) -> Inbound {
        Inbound { model, rng: ChaCha8Rng::seed_from_u64(seed), held: VecDeque::new(), lost: 0 }
    }

    /// A datagram that arrived at `now`: returned if it is to be handled at once,
    /// else held until `now + delay` or lost.
    pub fn admit(&mut self, now: Time, from: SocketAddr, packet: Packet) -> Option<(SocketAddr, Packet)> {
        if self.model.loss > 0.0 && self.rng.random::<f64>() < self.model.loss {
            self.lost += 1;
            return None;
        }
        if self.model.delay.is_zero() {
            return Some((from, packet));
        }
        if self.held.len() >= MAX_HELD {
            self.lost += 1;
            return None;
        }
        self.held.push_back((now + self.model.delay, from, packet));
        None
    }

    /// The next held datagram due by `now`, if any.
    pub fn due(&mut self, now: Time) -> Option<(SocketAddr, Packet)> {
        if self.held.front().is_some_and(|(at, _, _)| *at <= now) {
            return self.held.pop_front().map(|(_, from, p)| (from, p));
        }
        None
    }

    /// When the next held datagram is due.
    pub fn next_due(&self) -> Option<Time> {
        self.held.front().map(|(at, _, _)| *at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use layerp2p_proto::wire::Message;

    fn addr() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 9))
    }

    fn packet() -> Packet {
        Packet { messages: vec![Message::Padding { len: 0 }] }
    }

    #[test]
    fn delayed_datagrams_come_out_in_order_when_due() {
        let mut link = Inbound::new(LinkModel { delay: Duration::from_millis(40), loss: 0.0 }, 1);
        assert!(link.admit(Time(0), addr(), packet()).is_none());
        assert!(link.admit(Time(10_000), addr(), packet()).is_none());
        assert_eq!(link.next_due(), Some(Time(40_000)));
        assert!(link.due(Time(39_999)).is_none());
        assert!(link.due(Time(45_000)).is_some());
        assert!(link.due(Time(45_000)).is_none());
        assert!(link.due(Time(50_000)).is_some());
        assert_eq!(link.next_due(), None);
    }

    #[test]
    fn viewer_delays_stay_in_range_and_repeat_with_the_seed() {
        let links = Links { delay_min: Duration::from_millis(10), delay_max: Duration::from_millis(100), loss: 0.01 };
        let delays: Vec<Duration> = (0..50).map(|i| links.viewer(3, i).delay).collect();
        assert!(delays.iter().all(|d| (Duration::from_millis(10)..=Duration::from_millis(100)).contains(d)));
        assert!(delays.iter().any(|d| *d != delays[0]), "delays vary over viewers");
        assert_eq!(links.viewer(3, 7), links.viewer(3, 7));
    }

    #[test]
    fn loss_drops_about_its_share_and_none_passes_through() {
        let mut link = Inbound::new(LinkModel { delay: Duration::ZERO, loss: 0.1 }, 7);
        let passed = (0..10_000).filter(|_| link.admit(Time(0), addr(), packet()).is_some()).count();
        assert_eq!(passed as u64 + link.lost, 10_000);
        assert!((8_800..9_200).contains(&passed), "{passed} of 10000 passed at 10 % loss");
        let mut clear = Inbound::new(LinkModel::NONE, 7);
        assert!(clear.admit(Time(0), addr(), packet()).is_some());
    }
}

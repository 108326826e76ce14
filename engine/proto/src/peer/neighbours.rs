//! The neighbour table: who we exchange with, what they hold, and d(n,k), the rate
//! at which we currently receive from each of them.
//!
//! Neighbours live in stable slots so the supplier's per-receiver queues and
//! sampler weights can be indexed by slot.

use crate::peer::fasthash::FastMap;
use crate::time::Time;
use crate::wire::{PeerId, Role};
use layerp2p_codec::{BufferMap, Kbps, LayerId, Seq};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

/// d(n,k): an exponentially weighted moving average of the download rate from one
/// neighbour, updated once per round.
#[derive(Clone, Debug)]
pub struct RateEstimator {
    bits_per_sec: f64,
    bytes_this_round: u64,
}

impl RateEstimator {
    /// An estimator starting at `initial` (d_l or d_s, the credit a new neighbour gets).
    pub fn new(initial: Kbps) -> RateEstimator {
        RateEstimator { bits_per_sec: initial.bits_per_sec() as f64, bytes_this_round: 0 }
    }

    /// Counts LC bytes received from this neighbour in the current round.
    pub fn add_bytes(&mut self, bytes: usize) {
        self.bytes_this_round += bytes as u64;
    }

    /// Closes a round of length `round`, weighting it by `round / window`.
    pub fn end_round(&mut self, round: Duration, window: Duration) {
        let sample = self.bytes_this_round as f64 * 8.0 / round.as_secs_f64();
        let w = (round.as_secs_f64() / window.as_secs_f64()).min(1.0);
        self.bits_per_sec += w * (sample - self.bits_per_sec);
        self.bytes_this_round = 0;
    }

    /// The current estimate of d(n,k), in bits per second.
    pub fn bits_per_sec(&self) -> u64 {
        self.bits_per_sec as u64
    }

    /// Adds a one-off credit to the estimate; it decays like any earlier rate.
    pub fn credit(&mut self, credit: Kbps) {
        self.bits_per_sec += credit.bits_per_sec() as f64;
    }
}

/// One neighbour: identity, its latest buffer map, d(n,k), timing and address-validation state.
#[derive(Debug)]
pub struct Neighbour {
    /// The neighbour's UDP address; the key of the table.
    pub addr: SocketAddr,
    /// The identity it announced in Connect or Accept.
    pub id: PeerId,
    /// What it announced itself as: peer, seed or relay.
    pub role: Role,
    /// We sent the establishment request.
    pub initiator: bool,
    /// When the relationship was established.
    pub since: Time,
    /// When we last received a packet from it; silence past `neighbour_timeout` drops it.
    pub last_heard: Time,
    /// Their latest buffer map.
    pub map: Option<BufferMap>,
    /// d(n,k).
    pub rate: RateEstimator,
    /// Requests we sent it in the latest round.
    pub asked: u32,
    /// LCs it sent us since then.
    pub answered: u32,
    /// Share of our requests it served, per mille, smoothed over rounds
    /// (`Neighbour::end_request_round`); it starts at all of them.
    pub served_permille: u32,
    /// Smoothed round-trip time from buffer-map echoes; `None` until one is measured.
    pub rtt: Option<Duration>,
    /// The least round trip measured (the path without queues), for `uplink`.
    pub base_rtt: Option<Duration>,
    /// Their last `sent_at` and when we received it, echoed back for RTT.
    pub echo: Option<(u64, Time)>,
    /// LC data bytes received from it (payload + LC header).
    pub bytes_down: u64,
    /// When it last sent us an LC (`Incentive::upper_layers_window`).
    pub last_lc: Option<Time>,
    /// LC data bytes sent to it (payload + LC header).
    pub bytes_up: u64,
    /// Our token for them; they prove their address by echoing it.
    pub token_out: u64,
    /// Their token for us, echoed in every packet we send them.
    pub token_in: u64,
    /// They have echoed `token_out`: they receive at `addr`.
    pub validated: bool,
    /// Until validated: bytes received from `addr` (the 3x budget).
    pub unvalidated_in: u64,
    /// Bytes sent to it before it was validated; at most 3x `unvalidated_in`.
    pub unvalidated_out: u64,
    /// Until validated: size of the latest datagram from it (no reply may be larger).
    pub last_in: u64,
    /// Their latest `head_time - now` (µs): one vote for where the source is.
    pub head_offset: Option<i64>,
    /// Manifests (layer, start) we sent them lately and when, newest last, at most
    /// `MANIFESTS_SENT_MEMORY`: each goes to a receiver once ahead of its LCs (again
    /// only if it was lost: see `Peer::manifest_for`).
    pub manifests_sent: VecDeque<((LayerId, Seq), Time)>,
}

/// How many sent manifests a neighbour entry remembers (a few rounds of all layers).
pub const MANIFESTS_SENT_MEMORY: usize = 64;

impl Neighbour {
    /// It sent us an LC within `window` before `now`.
    pub fn uploaded_within(&self, now: Time, window: Duration) -> bool {
        self.last_lc.is_some_and(|at| now.since(at) <= window)
    }

    /// Folds the round's answered share of what we asked into `served_permille` (half
    /// old, half new) and starts counting the next round's `asked` requests.
    pub fn end_request_round(&mut self, asked: u32) {
        if self.asked > 0 {
            let share = (u64::from(self.answered) * 1000 / u64::from(self.asked)).min(1000) as u32;
            self.served_permille = (self.served_permille + share) / 2;
        }
        self.asked = asked;
        self.answered = 0;
    }

    /// A fresh, unvalidated relationship credited with `initial` as d(n,k).
    pub fn new(addr: SocketAddr, id: PeerId, role: Role, initiator: bool, now: Time, initial: Kbps) -> Neighbour {
        Neighbour {
            addr,
            id,
            role,
            initiator,
            since: now,
            last_heard: now,
            map: None,
            rate: RateEstimator::new(initial),
            asked: 0,
            answered: 0,
            served_permille: 1000,
            rtt: None,
            base_rtt: None,
            echo: None,
            bytes_down: 0,
            last_lc: None,
            bytes_up: 0,
            token_out: 0,
            token_in: 0,
            validated: false,
            unvalidated_in: 0,
            unvalidated_out: 0,
            last_in: 0,
            head_offset: None,
            manifests_sent: VecDeque::new(),
        }
    }
}

/// Slot-indexed neighbour set.
#[derive(Debug, Default)]
pub struct Neighbours {
    slots: Vec<Option<Neighbour>>,
    by_addr: FastMap<SocketAddr, usize>,
    free: Vec<usize>,
}

impl Neighbours {
    /// Number of neighbours.
    pub fn len(&self) -> usize {
        self.by_addr.len()
    }

    /// True if there are no neighbours.
    pub fn is_empty(&self) -> bool {
        self.by_addr.is_empty()
    }

    /// Number of slots ever allocated (upper bound of slot indices).
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// The slot of the neighbour at `addr`, if it is one.
    pub fn slot_of(&self, addr: &SocketAddr) -> Option<usize> {
        self.by_addr.get(addr).copied()
    }

    /// The neighbour in `slot`, if the slot is occupied.
    pub fn get(&self, slot: usize) -> Option<&Neighbour> {
        self.slots.get(slot)?.as_ref()
    }

    /// The neighbour in `slot`, mutably, if the slot is occupied.
    pub fn get_mut(&mut self, slot: usize) -> Option<&mut Neighbour> {
        self.slots.get_mut(slot)?.as_mut()
    }

    /// The slot and neighbour at `addr`, mutably.
    pub fn by_addr_mut(&mut self, addr: &SocketAddr) -> Option<(usize, &mut Neighbour)> {
        let slot = *self.by_addr.get(addr)?;
        Some((slot, self.slots[slot].as_mut()?))
    }

    /// Adds a neighbour and returns its slot. The caller checks it is not present.
    pub fn insert(&mut self, n: Neighbour) -> usize {
        let addr = n.addr;
        let slot = match self.free.pop() {
            Some(s) => {
                self.slots[s] = Some(n);
                s
            }
            None => {
                // Grow by a quarter, not double: a slot is a few hundred bytes and a
                // viewer's table stays near its peak (N_max plus handshakes).
                if self.slots.len() == self.slots.capacity() {
                    self.slots.reserve_exact((self.slots.len() / 4).max(4));
                }
                self.slots.push(Some(n));
                self.slots.len() - 1
            }
        };
        self.by_addr.insert(addr, slot);
        slot
    }

    /// Removes the neighbour at `addr` and frees its slot for reuse; returns both.
    pub fn remove(&mut self, addr: &SocketAddr) -> Option<(usize, Neighbour)> {
        let slot = self.by_addr.remove(addr)?;
        let n = self.slots[slot].take()?;
        self.free.push(slot);
        Some((slot, n))
    }

    /// Every neighbour with its slot, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &Neighbour)> {
        self.slots.iter().enumerate().filter_map(|(i, n)| Some((i, n.as_ref()?)))
    }

    /// Every neighbour with its slot, mutably, in slot order.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (usize, &mut Neighbour)> {
        self.slots.iter_mut().enumerate().filter_map(|(i, n)| Some((i, n.as_mut()?)))
    }

    /// True if `addr` is a neighbour.
    pub fn contains(&self, addr: &SocketAddr) -> bool {
        self.by_addr.contains_key(addr)
    }

    /// Neighbours that proved their address: only these count towards N_min/N_max.
    pub fn validated_len(&self) -> usize {
        self.iter().filter(|(_, n)| n.validated).count()
    }

    /// Handshakes still waiting for their token echo.
    pub fn unvalidated_len(&self) -> usize {
        self.len() - self.validated_len()
    }

    /// The unvalidated neighbour that has waited longest.
    pub fn oldest_unvalidated(&self) -> Option<SocketAddr> {
        self.iter().filter(|(_, n)| !n.validated).min_by_key(|(_, n)| n.since).map(|(_, n)| n.addr)
    }
}

/// A validated neighbour that fell silent: remembered for a while so that, if it
/// comes back (its datagrams still echo our token), it is re-admitted at once
/// instead of being refused as a stranger.
#[derive(Clone, Debug)]
pub struct Silent {
    /// Its identity, as in `Neighbour::id`.
    pub id: PeerId,
    /// Its role, as in `Neighbour::role`.
    pub role: Role,
    /// We sent the establishment request.
    pub initiator: bool,
    /// When the relationship began (kept on re-admission: adaptation age).
    pub since: Time,
    /// Our token for it: a datagram echoing this is from it.
    pub token_out: u64,
    /// Its token for us.
    pub token_in: u64,
    /// Forgotten after this.
    pub until: Time,
}

impl Silent {
    /// What to remember of `n`, until `until`.
    pub fn of(n: &Neighbour, until: Time) -> Silent {
        Silent {
            id: n.id,
            role: n.role,
            initiator: n.initiator,
            since: n.since,
            token_out: n.token_out,
            token_in: n.token_in,
            until,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_estimate_converges_and_initial_value_decays() {
        let mut r = RateEstimator::new(Kbps(300));
        let round = Duration::from_secs(1);
        let window = Duration::from_secs(10);
        for _ in 0..60 {
            r.add_bytes(12_500); // 100 kbps
            r.end_round(round, window);
        }
        let kbps = r.bits_per_sec() as f64 / 1000.0;
        assert!((kbps - 100.0).abs() < 1.0, "{kbps}");
        for _ in 0..60 {
            r.end_round(round, window);
        }
        assert!(r.bits_per_sec() < 1000);
    }

    #[test]
    fn slots_are_reused() {
        let mk = |port| {
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            Neighbour::new(addr, PeerId(port as u64), Role::Peer, true, Time::ZERO, Kbps(0))
        };
        let mut t = Neighbours::default();
        let a = t.insert(mk(1));
        let b = t.insert(mk(2));
        assert_ne!(a, b);
        let (slot, _) = t.remove(&mk(1).addr).expect("present");
        assert_eq!(slot, a);
        assert_eq!(t.insert(mk(3)), a);
        assert_eq!(t.len(), 2);
        assert_eq!(t.capacity(), 2);
        assert!(t.remove(&mk(9).addr).is_none());
    }
}

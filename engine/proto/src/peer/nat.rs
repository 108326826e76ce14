//! What a peer knows of the NAT in front of it, and the bookkeeping of hole punching
//! (docs/PROTOCOL.md, "NAT traversal"). Owns the reflexive addresses public nodes
//! report, the NAT type they imply (RFC 4787 / 5780: does the mapping depend on the
//! destination?) and the bounded memories of introductions asked for and answered.
//! It sends nothing itself and never reads a clock: `Peer` calls it and acts.

use crate::time::Time;
use crate::wire::NatType;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

/// A Connect still unanswered after this is helped by an introduction: the tracker
/// tells the other side to punch towards us. Longer than a round trip on any
/// reasonable path, so reachable peers never need one.
pub const PUNCH_AFTER: Duration = Duration::from_millis(250);
/// A peer that an introduction did not make reachable is not tried again for this
/// long (a symmetric NAT on one side, or a NAT that filters by port on both).
pub const PUNCH_FAILED_FOR: Duration = Duration::from_secs(300);
/// Behind a NAT, the tracker hears from the peer at least this often, so that the
/// NAT binding an introduction travels over stays open (many NATs drop idle UDP
/// bindings after 30 s).
pub const KEEPALIVE: Duration = Duration::from_secs(20);
/// Most addresses remembered as punched towards; beyond, introductions are ignored.
pub const MAX_PUNCHED: usize = 256;
/// An introduction to the same asker is answered at most once in this period.
pub const PUNCH_MEMORY: Duration = Duration::from_secs(10);

/// What a peer measured of its NAT, for status lines and JSON.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct NatStatus {
    /// The NAT type measured.
    pub nat: NatType,
    /// The address the tracker sees this peer at.
    pub reflexive: Option<SocketAddr>,
}

/// The NAT knowledge and punching state of one peer.
#[derive(Debug, Default)]
pub struct Nat {
    /// The node's own addresses (the socket's bound address with every local IP);
    /// empty when the driver does not know them (the simulator).
    local: Vec<SocketAddr>,
    /// What the tracker sees.
    by_tracker: Option<SocketAddr>,
    /// What a second public node (a seed or relay) sees, and who that was.
    by_other: Option<(SocketAddr, SocketAddr)>,
    nat: NatType,
    /// The type last told to the tracker.
    reported: NatType,
    /// Pending Connects we asked the tracker to introduce: whether a punch from the
    /// other side already made us send the Connect again.
    introduced: HashMap<SocketAddr, bool>,
    /// Askers we punched towards, and when.
    punched: HashMap<SocketAddr, Time>,
}

impl Nat {
    /// The node's own addresses, so it can tell "no NAT" from "behind a NAT".
    pub fn set_local(&mut self, local: Vec<SocketAddr>) {
        self.local = local;
        self.classify();
    }

    /// What was measured, for status lines.
    pub fn status(&self) -> NatStatus {
        NatStatus { nat: self.nat, reflexive: self.by_tracker }
    }

    /// The NAT type measured so far.
    pub fn nat_type(&self) -> NatType {
        self.nat
    }

    /// Behind some NAT (its bindings need keep-alives).
    pub fn behind_nat(&self) -> bool {
        matches!(self.nat, NatType::Cone | NatType::Symmetric)
    }

    /// A public node (the tracker when `by_tracker`) reports seeing us at `seen`.
    pub fn observed(&mut self, observer: SocketAddr, by_tracker: bool, seen: SocketAddr) {
        if by_tracker {
            self.by_tracker = Some(seen);
        } else if self.by_other.is_none_or(|(_, s)| Some(s) == self.by_tracker) {
            // A second opinion that disagrees is kept over any that agrees: one
            // destination that got a mapping of its own proves the mapping depends on it.
            self.by_other = Some((observer, seen));
        }
        self.classify();
    }

    fn classify(&mut self) {
        let Some(seen) = self.by_tracker else { return };
        self.nat = if self.local.contains(&seen) {
            NatType::Open
        } else {
            match self.by_other {
                Some((_, other)) if other != seen => NatType::Symmetric,
                Some(_) if !self.local.is_empty() => NatType::Cone,
                // Without our own addresses two agreeing observers cannot tell a cone
                // NAT from none.
                _ => self.nat,
            }
        };
    }

    /// The NAT type to tell the tracker, once per change.
    pub fn report(&mut self) -> Option<NatType> {
        (self.nat != self.reported).then(|| {
            self.reported = self.nat;
            self.nat
        })
    }

    /// Whether to ask the tracker to introduce us to `addr`, which has not answered
    /// our Connect: once per attempt, and never from behind a symmetric NAT (the
    /// other side would punch towards a mapping that is not ours for it).
    pub fn should_introduce(&mut self, addr: SocketAddr) -> bool {
        if self.nat == NatType::Symmetric || self.introduced.contains_key(&addr) {
            return false;
        }
        self.introduced.insert(addr, false);
        true
    }

    /// A punch arrived from `from`: true if it answers an introduction we asked for
    /// and our Connect should go again (once), now that their NAT lets it through.
    pub fn punched_by(&mut self, from: SocketAddr) -> bool {
        match self.introduced.get_mut(&from) {
            Some(resent) if !*resent => {
                *resent = true;
                true
            }
            _ => false,
        }
    }

    /// The attempt at `addr` ended (answered or timed out); how long to leave it alone
    /// if it failed.
    pub fn attempt_over(&mut self, addr: &SocketAddr, default: Duration) -> Duration {
        match self.introduced.remove(addr) {
            Some(_) => PUNCH_FAILED_FOR,
            None if self.nat == NatType::Symmetric => PUNCH_FAILED_FOR,
            None => default,
        }
    }

    /// Forgets the attempt at `addr` (it succeeded).
    pub fn attempt_done(&mut self, addr: &SocketAddr) {
        self.introduced.remove(addr);
    }

    /// Whether to answer the tracker's introduction of `asker` with a punch: at most
    /// once per `PUNCH_MEMORY` per asker, and for at most `MAX_PUNCHED` askers.
    pub fn may_punch(&mut self, now: Time, asker: SocketAddr) -> bool {
        self.punched.retain(|_, at| now.since(*at) < PUNCH_MEMORY);
        if self.punched.contains_key(&asker) || self.punched.len() >= MAX_PUNCHED {
            return false;
        }
        self.punched.insert(asker, now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().expect("addr")
    }

    #[test]
    fn nat_type_from_two_observers_and_own_addresses() {
        let (tracker, seed) = (a("198.51.100.1:7700"), a("198.51.100.2:7701"));
        let mut open = Nat::default();
        open.set_local(vec![a("203.0.113.5:4000")]);
        open.observed(tracker, true, a("203.0.113.5:4000"));
        assert_eq!(open.nat_type(), NatType::Open);
        assert!(!open.behind_nat());

        let mut cone = Nat::default();
        cone.set_local(vec![a("10.0.0.2:4000")]);
        cone.observed(tracker, true, a("203.0.113.9:4000"));
        assert_eq!(cone.nat_type(), NatType::Unknown, "one observer cannot tell the mapping");
        cone.observed(seed, false, a("203.0.113.9:4000"));
        assert_eq!(cone.nat_type(), NatType::Cone);
        assert_eq!(cone.report(), Some(NatType::Cone));
        assert_eq!(cone.report(), None, "reported once");

        let mut symmetric = Nat::default();
        symmetric.set_local(vec![a("10.0.0.3:4000")]);
        symmetric.observed(tracker, true, a("203.0.113.9:31000"));
        symmetric.observed(seed, false, a("203.0.113.9:52000"));
        assert_eq!(symmetric.nat_type(), NatType::Symmetric);
        // A later agreeing observer does not hide the disagreement.
        symmetric.observed(a("198.51.100.3:1"), false, a("203.0.113.9:31000"));
        assert_eq!(symmetric.nat_type(), NatType::Symmetric);
        assert!(!symmetric.should_introduce(a("192.0.2.1:1")), "punching cannot help a symmetric NAT");
        assert_eq!(symmetric.attempt_over(&a("192.0.2.1:1"), Duration::from_secs(60)), PUNCH_FAILED_FOR);
    }

    #[test]
    fn introductions_resend_once_and_punches_are_bounded() {
        let mut nat = Nat::default();
        let b = a("192.0.2.7:5000");
        assert!(!nat.punched_by(b), "an unasked punch changes nothing");
        assert!(nat.should_introduce(b));
        assert!(!nat.should_introduce(b), "once per attempt");
        assert!(nat.punched_by(b));
        assert!(!nat.punched_by(b), "the Connect goes again once");
        assert_eq!(nat.attempt_over(&b, Duration::from_secs(60)), PUNCH_FAILED_FOR);
        assert_eq!(nat.attempt_over(&b, Duration::from_secs(60)), Duration::from_secs(60));

        let now = Time::from_secs(1);
        assert!(nat.may_punch(now, b));
        assert!(!nat.may_punch(now, b), "one punch per asker per period");
        assert!(nat.may_punch(now + PUNCH_MEMORY, b));
        for i in 0..MAX_PUNCHED as u16 * 2 {
            nat.may_punch(now + PUNCH_MEMORY, SocketAddr::from(([192, 0, 2, 1], i)));
        }
        assert!(nat.punched.len() <= MAX_PUNCHED);
    }
}

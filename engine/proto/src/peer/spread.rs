//! A seed's forwarding credit (`Incentive::seed_spread_credit`, docs/decisions/0015).
//!
//! The audit tells a seed who uploads at all (one LC a round each), not how much:
//! a 300 kbps and a 1000 kbps contributor answer it alike, so the seed split its
//! upload evenly among contributors. But every LC the seed pushes goes to one
//! neighbour only; a few rounds later, each other neighbour that holds it and was
//! not served it by the seed got it, directly or not, from the one it was pushed to.
//! Those copies measure what that neighbour forwards, and only uploading earns them
//! (a free-rider's pushed LCs go nowhere; a neighbour lying in its map credits the
//! one the LC was pushed to, not itself).

use crate::time::Time;
use layerp2p_codec::LcId;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

/// Most pushed LCs followed at once (a few seconds of video); beyond that the
/// oldest is forgotten uncredited.
const MAX_FOLLOWED: usize = 2048;

/// A pushed LC being followed.
#[derive(Debug, Clone, Copy)]
struct Followed {
    to: SocketAddr,
    /// Times the seed itself sent it since (requested), to someone else.
    served: u32,
}

/// A pushed LC whose spread is due to be counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    /// The LC.
    pub id: LcId,
    /// The neighbour it was pushed to.
    pub to: SocketAddr,
    /// Copies the seed sent others itself: not the pushed-to neighbour's doing.
    pub served: u32,
}

/// The seed's pushed LCs, followed until their spread is counted.
#[derive(Debug, Default)]
pub struct Spread {
    order: VecDeque<(LcId, Time)>,
    followed: HashMap<LcId, Followed>,
}

impl Spread {
    /// LC `id` was pushed to `to` at `now`.
    pub fn pushed(&mut self, id: LcId, to: SocketAddr, now: Time) {
        if self.order.len() >= MAX_FOLLOWED
            && let Some((old, _)) = self.order.pop_front()
        {
            self.followed.remove(&old);
        }
        if self.followed.insert(id, Followed { to, served: 0 }).is_none() {
            self.order.push_back((id, now));
        }
    }

    /// The seed sent LC `id` on request.
    pub fn served(&mut self, id: LcId) {
        if let Some(f) = self.followed.get_mut(&id) {
            f.served += 1;
        }
    }

    /// Removes and returns the LCs pushed at or before `until`, oldest first.
    pub fn take_due(&mut self, until: Time, due: &mut Vec<Due>) {
        due.clear();
        while let Some(&(id, _)) = self.order.front().filter(|(_, at)| *at <= until) {
            self.order.pop_front();
            if let Some(f) = self.followed.remove(&id) {
                due.push(Due { id, to: f.to, served: f.served });
            }
        }
    }

    /// Pushed LCs followed.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether nothing is followed.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use layerp2p_codec::{LayerId, Seq};

    fn lc(seq: u32) -> LcId {
        LcId { layer: LayerId::BASE, seq: Seq(seq) }
    }

    #[test]
    fn due_in_push_order_with_what_the_seed_served_and_bounded() {
        let a = SocketAddr::from(([127, 0, 0, 1], 1));
        let mut s = Spread::default();
        s.pushed(lc(0), a, Time(10));
        s.pushed(lc(1), a, Time(20));
        s.served(lc(1));
        s.served(lc(1));
        s.served(lc(7));
        let mut due = Vec::new();
        s.take_due(Time(15), &mut due);
        assert_eq!(due, vec![Due { id: lc(0), to: a, served: 0 }]);
        s.take_due(Time(20), &mut due);
        assert_eq!(due, vec![Due { id: lc(1), to: a, served: 2 }]);
        assert!(s.is_empty());
        for seq in 0..(MAX_FOLLOWED as u32 + 10) {
            s.pushed(lc(seq), a, Time(30));
        }
        assert_eq!((s.len(), s.followed.len()), (MAX_FOLLOWED, MAX_FOLLOWED));
        s.take_due(Time(30), &mut due);
        assert_eq!(due.first().map(|d| d.id), Some(lc(10)), "the oldest were forgotten");
    }
}

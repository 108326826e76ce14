//! The receiver-side scheduler (DESIGN.md §6), run once per round.
//!
//! Every LC the peer lacks that some neighbour holds is requested from one holder
//! chosen uniformly at random. LayerP2P orders them: layers 1..=l_n shuffled
//! together (regular requests), then each higher layer shuffled on its own, lowest
//! first (probing requests). The baselines shuffle everything together. Requests
//! keep that order per supplier, because each supplier serves its queue FIFO.

use crate::config::HolderChoice;
use crate::peer::neighbours::Neighbours;
use crate::peer::store::Store;
use crate::policy::ReceiverPolicy;
use layerp2p_codec::{LayerId, LcId, MAX_WINDOW_LCS};
use rand::Rng;
use rand::seq::SliceRandom;

/// Working buffers of one round, reused so a round allocates nothing in steady state.
/// They hold nothing between rounds (`weights` is all zero again after each use), so
/// one set per thread serves every peer the thread drives: a simulator thread or a
/// runtime shard with thousands of peers keeps one, not one per peer (~25 KB each).
#[derive(Debug, Default)]
struct Scratch {
    /// Per window offset: total weight of the holders seen so far this layer.
    weights: Vec<u64>,
    chosen: Vec<u32>,
    found: Vec<u32>,
    layer: Vec<(LcId, u32)>,
    ordered: Vec<(LcId, u32)>,
    /// Requests per neighbour slot this round.
    counts: Vec<u32>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// Fills `per_slot` (one list per neighbour slot) with this round's requests, in
/// serving order.
pub fn schedule(
    policy: ReceiverPolicy,
    threshold: usize,
    choice: HolderChoice,
    store: &Store,
    neighbours: &Neighbours,
    rng: &mut impl Rng,
    per_slot: &mut Vec<Vec<LcId>>,
) {
    per_slot.iter_mut().for_each(Vec::clear);
    per_slot.resize_with(neighbours.capacity(), Vec::new);
    SCRATCH.with_borrow_mut(|scratch| {
        scratch.ordered.clear();
        let mut regular_end = 0;
        for li in 0..store.layers() {
            let layer = LayerId::from_index(li);
            if !store.is_placed(layer) {
                continue;
            }
            collect_layer(layer, choice, store, neighbours, rng, scratch);
            scratch.layer.shuffle(rng);
            scratch.ordered.extend_from_slice(&scratch.layer);
            if li < threshold {
                regular_end = scratch.ordered.len();
            }
        }
        match policy {
            ReceiverPolicy::PlainRandom => scratch.ordered.shuffle(rng),
            // Probing layers are already in layer order, each shuffled; the regular
            // layers are shuffled together so no layer among them is preferred.
            ReceiverPolicy::Prioritized => scratch.ordered[..regular_end].shuffle(rng),
        }
        // Each list is allocated once at its final size: it is handed over as a
        // request message, so growing it push by push would reallocate every round.
        scratch.counts.clear();
        scratch.counts.resize(per_slot.len(), 0);
        for &(_, slot) in &scratch.ordered {
            scratch.counts[slot as usize] += 1;
        }
        for (list, &count) in per_slot.iter_mut().zip(&scratch.counts) {
            list.reserve_exact(count as usize);
        }
        for &(id, slot) in &scratch.ordered {
            per_slot[slot as usize].push(id);
        }
    });
}

/// Candidates of one layer with a holder chosen for each, into `scratch.layer`.
fn collect_layer(
    layer: LayerId,
    choice: HolderChoice,
    store: &Store,
    neighbours: &Neighbours,
    rng: &mut impl Rng,
    s: &mut Scratch,
) {
    let own = store.window(layer);
    let start = own.start().0;
    s.layer.clear();
    s.found.clear();
    for (slot, n) in neighbours.iter() {
        let Some(theirs) = n.map.as_ref().and_then(|m| m.layer(layer)) else { continue };
        let weight = match choice {
            HolderChoice::Uniform => 1,
            HolderChoice::ByRate { floor } => (n.rate.bits_per_sec() / 1000).saturating_add(floor.0.max(1) as u64),
        };
        for seq in own.wanted_from(theirs) {
            let i = (seq.0 - start) as usize;
            if i >= MAX_WINDOW_LCS as usize {
                break;
            }
            // Grown to the farthest offset seen (the window's span, ~lag x LC rate),
            // not to the limit; entries are zeroed after use below, not per round.
            if i >= s.weights.len() {
                s.weights.resize(i + 1, 0);
                s.chosen.resize(i + 1, 0);
            }
            // Weighted reservoir sampling: a holder of weight w replaces the choice
            // with probability w / (total weight so far), so each holder ends up
            // chosen in proportion to its weight (uniformly when all weigh 1).
            let first = s.weights[i] == 0;
            s.weights[i] += weight;
            if first {
                s.found.push(i as u32);
                s.chosen[i] = slot as u32;
            } else if rng.random_range(0..s.weights[i]) < weight {
                s.chosen[i] = slot as u32;
            }
        }
    }
    for &i in &s.found {
        let id = LcId { layer, seq: layerp2p_codec::Seq(start + i) };
        s.layer.push((id, s.chosen[i as usize]));
        s.weights[i as usize] = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::neighbours::Neighbour;
    use crate::time::Time;
    use crate::wire::{PeerId, Role};
    use layerp2p_codec::{BufferMap, Kbps, LayerWindow, Seq};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// Share of 2,000 wanted LCs requested from the first of two neighbours that both
    /// hold all of them, the first credited with `rate_a`, the second with nothing.
    fn share_of_first(choice: HolderChoice, rate_a: Kbps) -> f64 {
        let lcs = 2_000;
        let mut store = Store::new(1);
        store.place(LayerId::from_index(0), Seq(0));
        let mut neighbours = Neighbours::default();
        for (k, rate) in [rate_a, Kbps(0)].into_iter().enumerate() {
            let mut w = LayerWindow::new(Seq(0));
            for s in 0..lcs {
                w.insert(Seq(s)).expect("within the window");
            }
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 9000 + k as u16));
            let mut n = Neighbour::new(addr, PeerId(k as u64), Role::Peer, true, Time::ZERO, rate);
            n.map = Some(BufferMap::from_layers(vec![w]));
            neighbours.insert(n);
        }
        let mut per_slot = Vec::new();
        schedule(
            ReceiverPolicy::Prioritized,
            1,
            choice,
            &store,
            &neighbours,
            &mut ChaCha8Rng::seed_from_u64(5),
            &mut per_slot,
        );
        let total: usize = per_slot.iter().map(Vec::len).sum();
        assert_eq!(total, lcs as usize, "every wanted LC is requested exactly once");
        per_slot[0].len() as f64 / total as f64
    }

    /// Requests per slot of one round over two neighbours holding different parts of
    /// a three-layer window, for a peer with threshold layer `threshold`.
    fn round_of(policy: ReceiverPolicy, threshold: usize) -> Vec<Vec<LcId>> {
        let layers = 3;
        let mut store = Store::new(layers);
        let mut maps = [Vec::new(), Vec::new()];
        for l in 0..layers {
            store.place(LayerId::from_index(l), Seq(0));
            for (k, map) in maps.iter_mut().enumerate() {
                let mut w = LayerWindow::new(Seq(0));
                for s in (0..300u32).filter(|s| !(s + k as u32).is_multiple_of(3)) {
                    w.insert(Seq(s)).expect("within the window");
                }
                map.push(w);
            }
        }
        let mut neighbours = Neighbours::default();
        for (k, map) in maps.into_iter().enumerate() {
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 9000 + k as u16));
            let mut n = Neighbour::new(addr, PeerId(k as u64), Role::Peer, true, Time::ZERO, Kbps(0));
            n.map = Some(BufferMap::from_layers(map));
            neighbours.insert(n);
        }
        let mut per_slot = Vec::new();
        schedule(
            policy,
            threshold,
            HolderChoice::Uniform,
            &store,
            &neighbours,
            &mut ChaCha8Rng::seed_from_u64(8),
            &mut per_slot,
        );
        per_slot
    }

    #[test]
    fn a_peer_whose_upload_covers_every_layer_schedules_as_plain_random() {
        // l_n = L (an institutional peer of the prototype: 700 kbps >= the full rate):
        // every layer is a regular request, so LayerP2P's receiver is Single-Incent's,
        // draw for draw. What differs between the two systems for such a peer is only
        // what its neighbours hold and ask.
        let full = round_of(ReceiverPolicy::Prioritized, 3);
        assert_eq!(full, round_of(ReceiverPolicy::PlainRandom, 3));
        assert_eq!(full.iter().map(Vec::len).sum::<usize>(), 3 * 300, "every LC asked once");
        // Below the full rate the order differs: probing layers come after the regular ones.
        let low = round_of(ReceiverPolicy::Prioritized, 1);
        assert_ne!(low, round_of(ReceiverPolicy::PlainRandom, 1));
        for slot in &low {
            let first_probe = slot.iter().position(|id| id.layer.index() > 0).unwrap_or(slot.len());
            assert!(slot[first_probe..].iter().all(|id| id.layer.index() > 0), "base layer first at every supplier");
        }
    }

    #[test]
    fn uniform_choice_splits_evenly() {
        let share = share_of_first(HolderChoice::Uniform, Kbps(300));
        assert!((share - 0.5).abs() < 0.04, "{share}");
    }

    #[test]
    fn by_rate_choice_asks_in_proportion_to_rate_plus_floor() {
        // 300 + 25 against 0 + 25: the first holder should get 325 / 350 = 92.9 %.
        let share = share_of_first(HolderChoice::ByRate { floor: Kbps(25) }, Kbps(300));
        assert!((share - 325.0 / 350.0).abs() < 0.03, "{share}");
        // With nothing measured from either, the floor alone splits evenly.
        let share = share_of_first(HolderChoice::ByRate { floor: Kbps(25) }, Kbps(0));
        assert!((share - 0.5).abs() < 0.04, "{share}");
    }
}

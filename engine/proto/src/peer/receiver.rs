//! The receiver-side scheduler (DESIGN.md §6), run once per round.
//!
//! Every LC the peer lacks that some neighbour holds is requested from one holder
//! chosen uniformly at random. LayerP2P orders them: layers 1..=l_n shuffled
//! together (regular requests), then each higher layer shuffled on its own, lowest
//! first (probing requests). The baselines shuffle everything together. Requests
//! keep that order per supplier, because each supplier serves its queue FIFO.
//!
//! `HolderChoice::ByServed` draws the holder with weight the share of our requests
//! it served lately instead (docs/decisions/0007).

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
            let by_served = choice == HolderChoice::ByServed;
            let drawn = (choice == HolderChoice::Uniform || by_served)
                && collect_layer_uniform(layer, by_served, store, neighbours, rng, scratch);
            if !drawn {
                collect_layer(layer, choice, store, neighbours, rng, scratch);
            }
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

/// Most holders [`collect_layer_uniform`] tells apart: one bit each in a word.
const MAX_MASKED_HOLDERS: usize = 64;

/// Candidates of one layer, each with one holder drawn uniformly (DESIGN.md §6), into
/// `s.layer`; false, with nothing collected, when more than [`MAX_MASKED_HOLDERS`]
/// neighbours hold the layer (a relay's table): the caller then uses [`collect_layer`].
///
/// Works a window word (64 LCs) at a time: each holder's word of what it has and we
/// lack sets its bit in a per-LC holder mask, then each wanted LC takes one draw
/// among its mask's bits. That is one draw per LC, not one per further holder as
/// reservoir sampling takes, and a few instructions per (holder, LC) pair.
fn collect_layer_uniform(
    layer: LayerId,
    by_served: bool,
    store: &Store,
    neighbours: &Neighbours,
    rng: &mut impl Rng,
    s: &mut Scratch,
) -> bool {
    let own = store.window(layer);
    let mut windows = [own; MAX_MASKED_HOLDERS];
    let mut slots = [0u32; MAX_MASKED_HOLDERS];
    let mut weights = [0u64; MAX_MASKED_HOLDERS];
    let mut holders = 0;
    let mut end = 0;
    for (slot, n) in neighbours.iter() {
        let Some(theirs) = n.map.as_ref().and_then(|m| m.layer(layer)) else { continue };
        if holders == MAX_MASKED_HOLDERS {
            return false;
        }
        windows[holders] = theirs;
        slots[holders] = slot as u32;
        weights[holders] = served_weight(n);
        holders += 1;
        end = end.max(theirs.word_range().end);
    }
    s.layer.clear();
    let start = own.start().0;
    // Requests reach no further than the window limit past our start.
    let limit = start + MAX_WINDOW_LCS;
    let first = start / 64;
    let end = end.min(limit.div_ceil(64));
    let mut masks = [0u64; 64];
    let mut wanted = [0u64; MAX_MASKED_HOLDERS];
    for abs in first..end {
        let mut lacking = !own.word_at(abs);
        if abs == first {
            lacking &= !0u64 << (start % 64);
        }
        let past_limit = (abs + 1) * 64;
        if past_limit > limit {
            lacking &= !0u64 >> (past_limit - limit);
        }
        let mut any = 0;
        for (w, theirs) in wanted.iter_mut().zip(&windows[..holders]) {
            *w = theirs.word_at(abs) & lacking;
            any |= *w;
        }
        if any == 0 {
            continue;
        }
        for (k, &w) in wanted[..holders].iter().enumerate() {
            let mut bits = w;
            while bits != 0 {
                masks[bits.trailing_zeros() as usize] |= 1 << k;
                bits &= bits - 1;
            }
        }
        let mut bits = any;
        while bits != 0 {
            let b = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let mask = std::mem::take(&mut masks[b]);
            let count = mask.count_ones();
            let holder = if count == 1 {
                mask.trailing_zeros() as usize
            } else if by_served {
                weighted_set_bit(mask, &weights, rng)
            } else {
                nth_set_bit(mask, rng.random_range(0..count))
            };
            let id = LcId { layer, seq: layerp2p_codec::Seq(abs * 64 + b as u32) };
            s.layer.push((id, slots[holder]));
        }
    }
    true
}

/// Weight of a holder under `HolderChoice::ByServed`: the share of our requests it served, per
/// mille, plus a floor so that one that served nothing lately is still tried now
/// and then (it may have been busy).
fn served_weight(n: &crate::peer::neighbours::Neighbour) -> u64 {
    u64::from(n.served_permille) + SERVED_FLOOR_PERMILLE
}

/// Floor of [`served_weight`], per mille.
const SERVED_FLOOR_PERMILLE: u64 = 50;

/// Index of a set bit of `mask` drawn with probability proportional to `weights[bit]`.
fn weighted_set_bit(mask: u64, weights: &[u64; MAX_MASKED_HOLDERS], rng: &mut impl Rng) -> usize {
    let mut bits = mask;
    let mut total = 0u64;
    while bits != 0 {
        total += weights[bits.trailing_zeros() as usize];
        bits &= bits - 1;
    }
    let mut at = rng.random_range(0..total.max(1));
    let mut bits = mask;
    while bits != 0 {
        let k = bits.trailing_zeros() as usize;
        if at < weights[k] {
            return k;
        }
        at -= weights[k];
        bits &= bits - 1;
    }
    mask.trailing_zeros() as usize
}

/// Index of the `n`-th (from 0) set bit of `mask`, which has more than `n` set bits.
fn nth_set_bit(mut mask: u64, n: u32) -> usize {
    for _ in 0..n {
        mask &= mask - 1;
    }
    mask.trailing_zeros() as usize
}

/// Candidates of one layer with a holder chosen for each by weighted reservoir
/// sampling (one draw per further holder), into `scratch.layer`.
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
            HolderChoice::ByServed => served_weight(n),
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

    /// Neighbour `k`, holding LCs `0..lcs` of the base layer.
    fn holder_of(k: usize, lcs: u32) -> Neighbour {
        let mut w = LayerWindow::new(Seq(0));
        for s in 0..lcs {
            w.insert(Seq(s)).expect("within the window");
        }
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 9000 + k as u16));
        let mut n = Neighbour::new(addr, PeerId(k as u64), Role::Peer, true, Time::ZERO, Kbps(0));
        n.map = Some(BufferMap::from_layers(vec![w]));
        n
    }

    /// Per slot, requests of one round over `holders` neighbours that all hold LCs
    /// `0..lcs` of one layer, with the uniform holder choice.
    fn uniform_round_over(holders: usize, lcs: u32) -> Vec<Vec<LcId>> {
        let mut store = Store::new(1);
        store.place(LayerId::BASE, Seq(0));
        let mut neighbours = Neighbours::default();
        for k in 0..holders {
            neighbours.insert(holder_of(k, lcs));
        }
        let mut per_slot = Vec::new();
        schedule(
            ReceiverPolicy::Prioritized,
            1,
            HolderChoice::Uniform,
            &store,
            &neighbours,
            &mut ChaCha8Rng::seed_from_u64(11),
            &mut per_slot,
        );
        per_slot
    }

    #[test]
    fn uniform_choice_asks_each_lc_once_from_any_of_many_holders() {
        // 9 holders (masked) and 70 (beyond one mask word: the reservoir path).
        for holders in [9, 70] {
            let per_slot = uniform_round_over(holders, 9_000);
            let mut asked: Vec<u32> = per_slot.iter().flatten().map(|id| id.seq.0).collect();
            asked.sort_unstable();
            assert_eq!(asked, (0..9_000).collect::<Vec<_>>(), "{holders} holders: each LC once");
            let expect = 9_000.0 / holders as f64;
            for (slot, list) in per_slot.iter().enumerate() {
                let dev = (list.len() as f64 - expect).abs() / expect;
                assert!(dev < 0.35, "{holders} holders: slot {slot} got {} of ~{expect}", list.len());
            }
        }
    }

    #[test]
    fn uniform_choice_asks_only_a_holder_and_only_what_we_lack() {
        // Neighbour k holds the LCs whose sequence is k mod 3 (plus all of 0..10);
        // we hold 0..5 and 130.
        let mut store = Store::new(1);
        store.place(LayerId::BASE, Seq(0));
        for s in (0..5).chain([130]) {
            let lc = layerp2p_codec::Lc {
                header: layerp2p_codec::LcHeader {
                    id: LcId { layer: LayerId::BASE, seq: Seq(s) },
                    frame: s,
                    part: 0,
                    parts: 1,
                    time: layerp2p_codec::MediaTime(u64::from(s) * 1000),
                },
                payload: layerp2p_codec::phantom_payload(100),
            };
            store.insert(lc).expect("in window");
        }
        let mut neighbours = Neighbours::default();
        for k in 0..3u32 {
            let mut w = LayerWindow::new(Seq(0));
            for s in (0..200).filter(|s| s % 3 == k || *s < 10) {
                w.insert(Seq(s)).expect("within the window");
            }
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 9000 + k as u16));
            let mut n = Neighbour::new(addr, PeerId(u64::from(k)), Role::Peer, true, Time::ZERO, Kbps(0));
            n.map = Some(BufferMap::from_layers(vec![w]));
            neighbours.insert(n);
        }
        let mut per_slot = Vec::new();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        schedule(ReceiverPolicy::Prioritized, 1, HolderChoice::Uniform, &store, &neighbours, &mut rng, &mut per_slot);
        let mut asked = Vec::new();
        for (slot, list) in per_slot.iter().enumerate() {
            for id in list {
                assert!(id.seq.0 < 10 || id.seq.0 % 3 == slot as u32, "{id:?} asked from {slot}, not a holder");
                asked.push(id.seq.0);
            }
        }
        asked.sort_unstable();
        assert_eq!(asked, (5..200).filter(|&s| s != 130).collect::<Vec<_>>());
    }

    #[test]
    fn a_holder_that_served_little_is_asked_little() {
        // Two holders of 2,000 LCs: the first served all we asked, the second
        // (a free-rider advertising what it holds) nothing, over a few rounds.
        let lcs = 2_000;
        let mut store = Store::new(1);
        store.place(LayerId::BASE, Seq(0));
        let mut neighbours = Neighbours::default();
        for (k, answered) in [100, 0].into_iter().enumerate() {
            let mut n = holder_of(k, lcs);
            for _ in 0..4 {
                n.end_request_round(100);
                n.answered = answered;
            }
            n.end_request_round(100);
            neighbours.insert(n);
        }
        let mut per_slot = Vec::new();
        let mut rng = ChaCha8Rng::seed_from_u64(17);
        let policy = ReceiverPolicy::Prioritized;
        let choice = HolderChoice::ByServed;
        schedule(policy, 1, choice, &store, &neighbours, &mut rng, &mut per_slot);
        let share = per_slot[1].len() as f64 / lcs as f64;
        // 1000 + 50 against 62 + 50 per mille: about a tenth.
        assert!(share < 0.15, "the holder that served nothing got {share}");
        // The default draws uniformly (DESIGN.md §6).
        schedule(policy, 1, HolderChoice::Uniform, &store, &neighbours, &mut rng, &mut per_slot);
        let share = per_slot[1].len() as f64 / lcs as f64;
        assert!((share - 0.5).abs() < 0.05, "{share}");
    }

    #[test]
    fn nth_set_bit_counts_from_the_lowest() {
        assert_eq!(nth_set_bit(0b1011_0100, 0), 2);
        assert_eq!(nth_set_bit(0b1011_0100, 1), 4);
        assert_eq!(nth_set_bit(0b1011_0100, 3), 7);
        assert_eq!(nth_set_bit(1 << 63, 0), 63);
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

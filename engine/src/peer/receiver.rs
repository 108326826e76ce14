//! The receiver-side scheduler (SPEC §6), run once per round.
//!
//! Every LC the peer lacks that some neighbour holds is requested from one holder
//! chosen uniformly at random. LayerP2P orders them: layers 1..=l_n shuffled
//! together (regular requests), then each higher layer shuffled on its own, lowest
//! first (probing requests). The baselines shuffle everything together. Requests
//! keep that order per supplier, because each supplier serves its queue FIFO.

use crate::peer::neighbours::Neighbours;
use crate::peer::store::Store;
use crate::policy::ReceiverPolicy;
use layerp2p_codec::{LayerId, LcId, MAX_WINDOW_LCS};
use rand::Rng;
use rand::seq::SliceRandom;

/// Buffers reused across rounds so a round allocates nothing in steady state.
#[derive(Debug, Default)]
pub struct Scratch {
    holders: Vec<u32>,
    chosen: Vec<u32>,
    found: Vec<u32>,
    layer: Vec<(LcId, u32)>,
    ordered: Vec<(LcId, u32)>,
    /// Output: requests per neighbour slot, in serving order.
    pub per_slot: Vec<Vec<LcId>>,
}

/// Fills `scratch.per_slot` with this round's requests.
pub fn schedule(
    policy: ReceiverPolicy,
    threshold: usize,
    store: &Store,
    neighbours: &Neighbours,
    rng: &mut impl Rng,
    scratch: &mut Scratch,
) {
    scratch.per_slot.iter_mut().for_each(Vec::clear);
    scratch.per_slot.resize_with(neighbours.capacity(), Vec::new);
    scratch.ordered.clear();
    let mut regular_end = 0;
    for li in 0..store.layers() {
        let layer = LayerId::from_index(li);
        if !store.is_placed(layer) {
            continue;
        }
        collect_layer(layer, store, neighbours, rng, scratch);
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
    for &(id, slot) in &scratch.ordered {
        scratch.per_slot[slot as usize].push(id);
    }
}

/// Candidates of one layer with a uniformly chosen holder each, into `scratch.layer`.
fn collect_layer(layer: LayerId, store: &Store, neighbours: &Neighbours, rng: &mut impl Rng, s: &mut Scratch) {
    let own = store.window(layer);
    let start = own.start().0;
    s.layer.clear();
    s.found.clear();
    for (slot, n) in neighbours.iter() {
        let Some(theirs) = n.map.as_ref().and_then(|m| m.layer(layer)) else { continue };
        for seq in own.wanted_from(theirs) {
            let i = (seq.0 - start) as usize;
            if i >= MAX_WINDOW_LCS as usize {
                break;
            }
            // Grown to the farthest offset seen (the window's span, ~lag x LC rate),
            // not to the limit; entries are zeroed after use below, not per round.
            if i >= s.holders.len() {
                s.holders.resize(i + 1, 0);
                s.chosen.resize(i + 1, 0);
            }
            s.holders[i] += 1;
            // Reservoir sampling: the k-th holder replaces the choice with
            // probability 1/k, so each holder ends up chosen with equal chance.
            if s.holders[i] == 1 {
                s.found.push(i as u32);
                s.chosen[i] = slot as u32;
            } else if rng.random_range(0..s.holders[i]) == 0 {
                s.chosen[i] = slot as u32;
            }
        }
    }
    for &i in &s.found {
        let id = LcId { layer, seq: layerp2p_codec::Seq(start + i) };
        s.layer.push((id, s.chosen[i as usize]));
        s.holders[i as usize] = 0;
    }
}

//! Dynamic weighted sampler: the supplier's hot loop.
//!
//! A sum tree with fan-out 8: level 0 holds the weights, each entry of level k+1 the
//! sum of 8 entries of level k. A pick descends from the top scanning at most 8
//! contiguous sums per level (one cache line); an update adds the change to one entry
//! per level. Both are O(log8 n) — 5 levels at 10,000 receivers — so the supplier
//! never rebuilds a distribution per pick. Integer weights keep sums exact (no float
//! drift after millions of updates).

const FANOUT: usize = 8;
const SHIFT: u32 = 3;

/// Weighted sampler over slots `0..len`.
#[derive(Clone, Debug, Default)]
pub struct Sampler {
    /// `levels[0]` are the weights; `levels[k + 1][i]` sums `levels[k][8i..8i + 8]`.
    /// Every level is padded with zeros to a multiple of 8.
    levels: Vec<Vec<u64>>,
    len: usize,
}

fn padded(n: usize) -> usize {
    n.div_ceil(FANOUT).max(1) * FANOUT
}

impl Sampler {
    /// A sampler of `len` slots, all of weight 0.
    pub fn new(len: usize) -> Sampler {
        let mut levels = vec![vec![0; padded(len)]];
        while levels.last().map_or(0, Vec::len) > FANOUT {
            let below = levels.last().map_or(0, Vec::len);
            levels.push(vec![0; padded(below / FANOUT)]);
        }
        Sampler { levels, len }
    }

    /// Number of slots.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if there are no slots.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Sum of all weights.
    pub fn total(&self) -> u64 {
        self.levels.last().map_or(0, |top| top.iter().sum())
    }

    /// The current weight of `slot` (0 for an empty queue).
    pub fn weight(&self, slot: usize) -> u64 {
        self.levels[0][slot]
    }

    /// Grows to at least `len` slots (new slots weigh 0).
    pub fn grow(&mut self, len: usize) {
        if len <= self.len {
            return;
        }
        let old = std::mem::take(&mut self.levels[0]);
        *self = Sampler::new(len);
        for (i, w) in old.into_iter().enumerate().filter(|(_, w)| *w != 0) {
            self.set(i, w);
        }
    }

    /// Sets the weight of `slot` (< len).
    pub fn set(&mut self, slot: usize, weight: u64) {
        assert!(slot < self.len, "slot {slot} out of range {}", self.len);
        let old = self.levels[0][slot];
        if old == weight {
            return;
        }
        // Sums stay exact: the wrapping add of (new - old) undoes itself at every level.
        let delta = weight.wrapping_sub(old);
        for (k, level) in self.levels.iter_mut().enumerate() {
            let e = &mut level[slot >> (SHIFT * k as u32)];
            *e = e.wrapping_add(delta);
        }
    }

    /// The slot whose cumulative weight range holds `point`: with `point` uniform in
    /// `0..total()`, slot `i` comes out with probability `weight(i) / total()`.
    /// `None` when `point >= total()`.
    pub fn find(&self, mut point: u64) -> Option<usize> {
        let mut base = 0;
        for level in self.levels.iter().rev() {
            let group = &level[base..base + FANOUT.min(level.len() - base)];
            // Branch-free scan: count the entries whose running sum stays <= point
            // and subtract them; the next entry holds the point.
            let (mut acc, mut below, mut j) = (0u64, 0u64, 0usize);
            for &w in group {
                acc = acc.wrapping_add(w);
                let skip = (acc <= point) as u64;
                below += w * skip;
                j += skip as usize;
            }
            if j == group.len() {
                return None;
            }
            point -= below;
            base = (base + j) * FANOUT;
        }
        Some(base / FANOUT)
    }

    /// Draws a slot with probability proportional to its weight.
    pub fn pick<R: rand::Rng + ?Sized>(&self, rng: &mut R) -> Option<usize> {
        let total = self.total();
        if total == 0 {
            return None;
        }
        self.find(rng.random_range(0..total))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn find_maps_points_to_weight_ranges() {
        let mut s = Sampler::new(5);
        s.set(0, 2);
        s.set(2, 3);
        s.set(4, 1);
        let got: Vec<_> = (0..6).map(|p| s.find(p).expect("in range")).collect();
        assert_eq!(got, vec![0, 0, 2, 2, 2, 4]);
        assert_eq!(s.find(6), None);
        s.set(2, 0);
        assert_eq!(s.total(), 3);
        assert_eq!(s.find(2), Some(4));
    }

    #[test]
    fn empty_sampler_picks_nothing() {
        let s = Sampler::new(3);
        assert_eq!(s.pick(&mut ChaCha8Rng::seed_from_u64(1)), None);
        assert_eq!(Sampler::new(0).total(), 0);
    }

    #[test]
    fn grow_keeps_weights() {
        let mut s = Sampler::new(2);
        s.set(1, 7);
        s.grow(100);
        s.set(99, 3);
        assert_eq!(s.total(), 10);
        assert_eq!(s.find(6), Some(1));
        assert_eq!(s.find(7), Some(99));
    }

    #[test]
    fn pick_frequencies_follow_weights() {
        let mut s = Sampler::new(4);
        for (i, w) in [1u64, 2, 0, 7].into_iter().enumerate() {
            s.set(i, w);
        }
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut counts = [0u32; 4];
        for _ in 0..100_000 {
            counts[s.pick(&mut rng).expect("non-empty")] += 1;
        }
        assert_eq!(counts[2], 0);
        for (i, w) in [(0, 0.1), (1, 0.2), (3, 0.7)] {
            let f = counts[i] as f64 / 100_000.0;
            assert!((f - w).abs() < 0.01, "slot {i}: {f} vs {w}");
        }
    }

    #[test]
    fn matches_linear_scan_after_random_updates() {
        use rand::Rng;
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for n in [1usize, 7, 8, 9, 64, 65, 600, 10_000] {
            let mut s = Sampler::new(n);
            let mut w = vec![0u64; n];
            for _ in 0..2000 {
                let i = rng.random_range(0..n);
                w[i] = rng.random_range(0..1000);
                s.set(i, w[i]);
                let total: u64 = w.iter().sum();
                assert_eq!(s.total(), total);
                if total > 0 {
                    let p = rng.random_range(0..total);
                    let mut acc = 0;
                    let expect = w.iter().position(|&x| {
                        acc += x;
                        p < acc
                    });
                    assert_eq!(s.find(p), expect, "n = {n}");
                }
            }
        }
    }
}

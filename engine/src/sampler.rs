//! Dynamic weighted sampler: the supplier's hot loop.
//!
//! A Fenwick (binary indexed) tree over integer weights gives O(log n) pick and
//! O(log n) update, so the supplier never rebuilds a distribution per pick. Integer
//! weights keep sums exact (no float drift after millions of updates).

/// Weighted sampler over slots `0..len`.
#[derive(Clone, Debug, Default)]
pub struct Sampler {
    /// 1-based Fenwick tree of partial sums.
    tree: Vec<u64>,
    weights: Vec<u64>,
    total: u64,
}

impl Sampler {
    pub fn new(len: usize) -> Sampler {
        Sampler { tree: vec![0; len + 1], weights: vec![0; len], total: 0 }
    }

    pub fn len(&self) -> usize {
        self.weights.len()
    }

    pub fn is_empty(&self) -> bool {
        self.weights.is_empty()
    }

    /// Sum of all weights.
    pub fn total(&self) -> u64 {
        self.total
    }

    pub fn weight(&self, slot: usize) -> u64 {
        self.weights[slot]
    }

    /// Grows to at least `len` slots (new slots weigh 0).
    pub fn grow(&mut self, len: usize) {
        if len <= self.weights.len() {
            return;
        }
        let old = std::mem::take(&mut self.weights);
        *self = Sampler::new(len);
        for (i, w) in old.into_iter().enumerate() {
            self.set(i, w);
        }
    }

    /// Sets the weight of `slot`.
    pub fn set(&mut self, slot: usize, weight: u64) {
        let old = self.weights[slot];
        if old == weight {
            return;
        }
        self.weights[slot] = weight;
        self.total = self.total - old + weight;
        let mut i = slot + 1;
        while i < self.tree.len() {
            self.tree[i] = self.tree[i].wrapping_add(weight.wrapping_sub(old));
            i += i & i.wrapping_neg();
        }
    }

    /// The slot whose cumulative weight range holds `point` (`point < total()`):
    /// with `point` uniform in `0..total()`, slot `i` comes out with probability
    /// `weight(i) / total()`. Returns `None` when the total is 0.
    pub fn find(&self, mut point: u64) -> Option<usize> {
        if point >= self.total {
            return None;
        }
        let mut pos = 0;
        let mut step = (self.tree.len() - 1).checked_ilog2().map_or(0, |b| 1usize << b);
        while step > 0 {
            let next = pos + step;
            if next < self.tree.len() && self.tree[next] <= point {
                pos = next;
                point -= self.tree[next];
            }
            step >>= 1;
        }
        Some(pos)
    }

    /// Draws a slot with probability proportional to its weight.
    pub fn pick<R: rand::Rng + ?Sized>(&self, rng: &mut R) -> Option<usize> {
        if self.total == 0 {
            return None;
        }
        self.find(rng.random_range(0..self.total))
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
        let mut s = Sampler::new(37);
        let mut w = vec![0u64; 37];
        for _ in 0..2000 {
            let i = rng.random_range(0..37);
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
                assert_eq!(s.find(p), expect);
            }
        }
    }
}

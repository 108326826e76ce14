//! Hot paths of the schedulers, each beside its baseline in the same run:
//! - the supplier's weighted receiver pick + weight update (8-ary sum-tree sampler) versus
//!   `rand`'s `WeightedIndex` rebuilt per pick and a linear scan;
//! - the receiver scheduler's round at 20 neighbours x 30 s window x 3 layers;
//! - buffer-map diff (what a neighbour has that we lack).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use layerp2p_codec::{LayerWindow, Seq};
use layerp2p_engine::sampler::Sampler;
use rand::distr::weighted::WeightedIndex;
use rand::distr::Distribution;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::hint::black_box;

fn weights(n: usize, rng: &mut ChaCha8Rng) -> Vec<u64> {
    (0..n).map(|_| rng.random_range(1_000..1_000_000)).collect()
}

fn pick_and_update(c: &mut Criterion) {
    let mut g = c.benchmark_group("supplier_pick_update");
    for n in [20usize, 1_000, 10_000] {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let w = weights(n, &mut rng);
        g.throughput(Throughput::Elements(1));

        let mut s = Sampler::new(n);
        for (i, &x) in w.iter().enumerate() {
            s.set(i, x);
        }
        g.bench_with_input(BenchmarkId::new("sum_tree", n), &n, |b, _| {
            b.iter(|| {
                let k = s.pick(&mut rng).expect("non-empty");
                // The served receiver's weight changes (its rate estimate moved).
                s.set(k, black_box(s.weight(k) ^ 1));
                k
            })
        });

        let mut wv = w.clone();
        g.bench_with_input(BenchmarkId::new("weighted_index_rebuilt", n), &n, |b, _| {
            b.iter(|| {
                let dist = WeightedIndex::new(&wv).expect("positive weights");
                let k = dist.sample(&mut rng);
                wv[k] ^= 1;
                k
            })
        });

        let mut wl = w.clone();
        g.bench_with_input(BenchmarkId::new("linear_scan", n), &n, |b, _| {
            b.iter(|| {
                let total: u64 = wl.iter().sum();
                let mut point = rng.random_range(0..total);
                let k = wl
                    .iter()
                    .position(|&x| {
                        if point < x {
                            return true;
                        }
                        point -= x;
                        false
                    })
                    .expect("point below total");
                wl[k] ^= 1;
                k
            })
        });
    }
    g.finish();
}

/// A window of `len` LCs starting at `start` holding each with probability `p`.
fn window(start: u32, len: u32, p: f64, rng: &mut ChaCha8Rng) -> LayerWindow {
    let mut w = LayerWindow::new(Seq(start));
    for s in start..start + len {
        if rng.random_bool(p) {
            w.insert(Seq(s)).expect("within limit");
        }
    }
    w
}

fn buffer_map_diff(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    // 30 s of a 290 kbps layer: about 900 LCs.
    let own = window(1000, 900, 0.9, &mut rng);
    let theirs = window(990, 920, 0.95, &mut rng);
    c.bench_function("buffer_map_wanted_from_900", |b| b.iter(|| black_box(&own).wanted_from(black_box(&theirs)).count()));
    c.bench_function("buffer_map_wanted_from_900_bitwise_baseline", |b| {
        b.iter(|| (1000..1920).filter(|&s| theirs.contains(Seq(s)) && !own.contains(Seq(s))).count())
    });
}

criterion_group!(benches, pick_and_update, buffer_map_diff);
criterion_main!(benches);

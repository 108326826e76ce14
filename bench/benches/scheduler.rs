//! Hot paths of the schedulers, each beside its baseline in the same run:
//! - the supplier's weighted receiver pick + weight update (8-ary sum-tree sampler) versus
//!   `rand`'s `WeightedIndex` rebuilt per pick and a linear scan;
//! - the receiver scheduler's round at 20 neighbours x 30 s window x 3 layers;
//! - buffer-map diff (what a neighbour has that we lack) and merge (taking a
//!   neighbour's holdings into our map), each beside a bit-by-bit baseline;
//! - wire encode/decode of an LC and of a round's request message.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use layerp2p_codec::{LayerWindow, Seq};
use layerp2p_proto::sampler::Sampler;
use rand::distr::Distribution;
use rand::distr::weighted::WeightedIndex;
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
    c.bench_function("buffer_map_wanted_from_900", |b| {
        b.iter(|| black_box(&own).wanted_from(black_box(&theirs)).count())
    });
    c.bench_function("buffer_map_wanted_from_900_bitwise_baseline", |b| {
        b.iter(|| (1000..1920).filter(|&s| theirs.contains(Seq(s)) && !own.contains(Seq(s))).count())
    });
}

/// Merge: our map becomes the union with a neighbour's (what we hold after it sent
/// us everything it has). Word-level diff then insert of only the new LCs, against
/// inserting every LC the neighbour holds one by one.
fn buffer_map_merge(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let own = window(1000, 900, 0.9, &mut rng);
    let theirs = window(1000, 900, 0.95, &mut rng);
    let expected = {
        let mut m = own.clone();
        for s in theirs.iter() {
            m.insert(s).expect("within limit");
        }
        m.count()
    };
    c.bench_function("buffer_map_merge_900", |b| {
        b.iter(|| {
            let mut m = black_box(&own).clone();
            let new: Vec<Seq> = m.wanted_from(black_box(&theirs)).collect();
            for s in new {
                m.insert(s).expect("within limit");
            }
            debug_assert_eq!(m.count(), expected);
            m.count()
        })
    });
    c.bench_function("buffer_map_merge_900_bitwise_baseline", |b| {
        b.iter(|| {
            let mut m = black_box(&own).clone();
            for s in black_box(&theirs).iter() {
                m.insert(s).expect("within limit");
            }
            m.count()
        })
    });
}

/// One receiver round: 20 neighbours, a 30 s window of the prototype video (about
/// 900 / 700 / 900 LCs per layer), each neighbour holding 95 % and us 90 %.
fn receiver_round(c: &mut Criterion) {
    use layerp2p_codec::{BufferMap, Kbps, LayerId, Lc, LcHeader, LcId, MediaTime, phantom_payload};
    use layerp2p_proto::Time;
    use layerp2p_proto::peer::neighbours::{Neighbour, Neighbours};
    use layerp2p_proto::peer::receiver::schedule;
    use layerp2p_proto::peer::store::Store;
    use layerp2p_proto::policy::ReceiverPolicy;
    use layerp2p_proto::wire::{PeerId, Role};

    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let per_layer = [900u32, 700, 900];
    let mut store = Store::new(3);
    for (l, &n) in per_layer.iter().enumerate() {
        let layer = LayerId::from_index(l);
        store.place(layer, Seq(0));
        for s in 0..n {
            if rng.random_bool(0.9) {
                let header =
                    LcHeader { id: LcId { layer, seq: Seq(s) }, frame: s, part: 0, parts: 1, time: MediaTime(0) };
                store.insert(Lc { header, payload: phantom_payload(1000) }).expect("fits");
            }
        }
    }
    let mut neighbours = Neighbours::default();
    for k in 0..20u16 {
        let map = BufferMap::from_layers(per_layer.iter().map(|&n| window(0, n, 0.95, &mut rng)).collect());
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 9000 + k));
        let mut n = Neighbour::new(addr, PeerId(k as u64), Role::Peer, true, Time::ZERO, Kbps(100));
        n.map = Some(map);
        neighbours.insert(n);
    }
    let mut per_slot = Vec::new();
    c.bench_function("receiver_round_20x30s_3_layers", |b| {
        b.iter(|| {
            schedule(
                ReceiverPolicy::Prioritized,
                1,
                layerp2p_proto::Incentive::default().holder_choice,
                &store,
                &neighbours,
                &mut rng,
                &mut per_slot,
            );
            per_slot.iter().map(Vec::len).sum::<usize>()
        })
    });
}

/// Encode and decode of the two hot messages: an LC and a round's request batch.
fn wire_codec(c: &mut Criterion) {
    use bytes::{Bytes, BytesMut};
    use layerp2p_codec::{LayerId, Lc, LcHeader, LcId, MediaTime};
    use layerp2p_proto::wire::{Message, Packet, decode, encode};

    let id = LcId { layer: LayerId::BASE, seq: Seq(12345) };
    let lc = Lc {
        header: LcHeader { id, frame: 99, part: 0, parts: 1, time: MediaTime(1_000_000) },
        payload: Bytes::from(vec![7u8; 1250]),
    };
    let data = Packet { messages: vec![Message::Data(lc)] };
    let ids: Vec<LcId> = (0..300).map(|s| LcId { layer: LayerId::from_index(s % 3), seq: Seq(s as u32) }).collect();
    let request = Packet { messages: vec![Message::Request { ttl_ms: 900, ids }] };
    let mut g = c.benchmark_group("wire");
    for (name, packet) in [("lc_1250", &data), ("request_300", &request)] {
        let mut out = BytesMut::with_capacity(4096);
        g.bench_function(format!("encode_{name}"), |b| {
            b.iter(|| {
                out.clear();
                encode(black_box(packet), &mut out).expect("encodable");
                out.len()
            })
        });
        out.clear();
        encode(packet, &mut out).expect("encodable");
        let bytes: Bytes = out.clone().freeze();
        g.bench_function(format!("decode_{name}"), |b| b.iter(|| decode(black_box(bytes.clone())).expect("valid")));
    }
    g.finish();
}

criterion_group!(benches, pick_and_update, buffer_map_diff, buffer_map_merge, receiver_round, wire_codec);
criterion_main!(benches);

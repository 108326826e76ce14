//! Cost of content integrity (engine/proto/src/integrity.rs), to decide whether it can be on
//! by default: hashing one LC (every LC received and every LC the seed ingests),
//! verifying one manifest (once per manifest per node), signing one (the seed, once per
//! layer per round).

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use layerp2p_codec::{LayerId, Lc, LcHeader, LcId, MAX_LC_PAYLOAD, MediaTime, Seq};
use layerp2p_proto::integrity::{ContentAuth, MAX_MANIFEST_LCS, lc_hash, sign, verify};
use layerp2p_proto::wire::ChannelId;
use std::hint::black_box;

fn lc(seq: u32) -> Lc {
    let id = LcId { layer: LayerId::BASE, seq: Seq(seq) };
    let header = LcHeader { id, frame: seq, part: 0, parts: 1, time: MediaTime(u64::from(seq) * 33_000) };
    Lc { header, payload: Bytes::from(vec![seq as u8; MAX_LC_PAYLOAD]) }
}

fn integrity(c: &mut Criterion) {
    let mut g = c.benchmark_group("integrity");
    let one = lc(7);
    g.throughput(Throughput::Bytes(MAX_LC_PAYLOAD as u64));
    g.bench_function("hash_lc_1250", |b| b.iter(|| lc_hash(black_box(&one))));
    g.throughput(Throughput::Elements(1));
    let key = ContentAuth::signing_key([3; 32]);
    let vk = key.verifying_key();
    let hashes: Vec<_> = (0..MAX_MANIFEST_LCS as u32).map(|s| lc_hash(&lc(s))).collect();
    g.bench_function("sign_manifest_64", |b| {
        b.iter(|| sign(&key, ChannelId(1), LayerId::BASE, Seq(0), black_box(hashes.clone())))
    });
    let m = sign(&key, ChannelId(1), LayerId::BASE, Seq(0), hashes);
    g.bench_function("verify_manifest_64", |b| b.iter(|| verify(&vk, ChannelId(1), black_box(&m))));
    g.finish();
}

criterion_group!(benches, integrity);
criterion_main!(benches);

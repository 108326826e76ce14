//! `layerp2p bench-node`: a seed's LC throughput on loopback per shard count, beside a
//! raw GSO blast of 1250-byte datagrams measured in the same run. Wiring only: the
//! measurement is `runtime::throughput`.

use clap::Args as ClapArgs;
use layerp2p_codec::synthetic::{PayloadKind, SyntheticConfig, SyntheticSource};
use layerp2p_codec::{Kbps, LayerPlan};
use layerp2p_engine::lab::record::Recorded;
use layerp2p_engine::runtime::throughput::{BLAST_DATAGRAM, Rate, raw_blast, seed_throughput};
use std::time::Duration;

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// Shard counts to measure, e.g. 1,2.
    #[arg(long, value_delimiter = ',', default_value = "1,2", value_parser = clap::value_parser!(u64).range(1..=64))]
    shards: Vec<u64>,
    /// greedy receivers loading the seed (they request every LC it holds, 20x a second).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=4096))]
    receivers: u64,
    /// Seconds measured per run (after warm-up).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    secs: u64,
    /// Seconds of warm-up per seed run (the seed's store fills, receivers connect).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=600))]
    warmup: u64,
    /// Rate of the 3-layer CBR stream the seed ingests, kbps (more LCs to request).
    #[arg(long, default_value_t = 12_000, value_parser = clap::value_parser!(u32).range(300..=100_000))]
    stream_kbps: u32,
    /// Print the results as JSON on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<(), String> {
    let secs = Duration::from_secs(args.secs);
    // The raw blast runs before and after every seed run: on a shared machine the
    // rate moves, so each seed run is compared with the mean of its neighbours.
    let blast = || {
        eprintln!("raw GSO blast of {BLAST_DATAGRAM}-byte datagrams for {} s ...", args.secs);
        raw_blast(secs).map_err(|e| e.to_string())
    };
    let mut raws = vec![blast()?];
    let mut runs = Vec::new();
    for &s in &args.shards {
        eprintln!(
            "seed with {s} shard(s), {} greedy receivers, {} s warm-up + {} s ...",
            args.receivers, args.warmup, args.secs
        );
        let layer = Kbps(args.stream_kbps / 3);
        let mut cfg = SyntheticConfig::simulation();
        cfg.plan = LayerPlan::new(vec![layer; 3]).map_err(|e| e.to_string())?;
        cfg.payload = PayloadKind::Pattern;
        let source = SyntheticSource::new(cfg).map_err(|e| e.to_string())?;
        let run = seed_throughput(
            s as usize,
            args.receivers as usize,
            Box::new(source),
            Duration::from_secs(args.warmup),
            secs,
        )
        .map_err(|e| e.to_string())?;
        runs.push(run);
        raws.push(blast()?);
    }
    let n = raws.len() as f64;
    let raw_sent = Rate {
        datagrams_per_sec: raws.iter().map(|r| r.0.datagrams_per_sec).sum::<f64>() / n,
        gbit_per_sec: raws.iter().map(|r| r.0.gbit_per_sec).sum::<f64>() / n,
    };
    let raw_got = raws.iter().map(|r| r.1.datagrams_per_sec).sum::<f64>() / n;
    if args.json {
        let raws: Vec<_> =
            raws.iter().map(|(sent, got)| serde_json::json!({ "sent": sent, "received": got })).collect();
        let json = serde_json::json!({ "raw": raws, "seed": runs });
        println!("{}", serde_json::to_string_pretty(&Recorded::new(&json)).map_err(|e| e.to_string())?);
        return Ok(());
    }
    println!(
        "{:<26} {:>12} {:>9} {:>8} {:>14} {:>12} {:>10}",
        "sender", "LC/s sent", "Gbit/s", "of raw", "LC/s received", "calls/LC", "p99 req→send"
    );
    for (i, (sent, got)) in raws.iter().enumerate() {
        let name = format!("raw GSO blast #{}", i + 1);
        println!(
            "{name:<26} {:>12.0} {:>9.2} {:>8} {:>14.0} {:>12.4} {:>10}",
            sent.datagrams_per_sec,
            sent.gbit_per_sec,
            "",
            got.datagrams_per_sec,
            1.0 / 256.0,
            "-"
        );
    }
    println!(
        "{:<26} {:>12.0} {:>9.2} {:>7.0}% {:>14.0} {:>12} {:>10}",
        "raw GSO blast, mean", raw_sent.datagrams_per_sec, raw_sent.gbit_per_sec, 100.0, raw_got, "", "-"
    );
    for (i, r) in runs.iter().enumerate() {
        // Compared with the blasts just before and after it.
        let around = (raws[i].0.datagrams_per_sec + raws[i + 1].0.datagrams_per_sec) / 2.0;
        println!(
            "{:<26} {:>12.0} {:>9.2} {:>7.0}% {:>14.0} {:>12.4} {:>9.0} ms",
            format!("seed, {} shard(s)", r.shards),
            r.sent.datagrams_per_sec,
            r.sent.gbit_per_sec,
            100.0 * r.sent.datagrams_per_sec / around.max(1.0),
            r.received.datagrams_per_sec,
            r.send_syscalls_per_datagram,
            r.request_to_send_p99_ms
        );
    }
    Ok(())
}

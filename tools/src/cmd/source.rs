//! `layerp2p source`: runs the synthetic layered source for a while and reports, per
//! layer, the frames, LCs and rate it produced against the layer plan.

use super::args::Video;
use clap::Args as ClapArgs;
use layerp2p_codec::synthetic::{PayloadKind, RateMode, SyntheticSource};
use layerp2p_codec::{Kbps, LayerPlan, MediaTime};

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// Which built-in video to generate.
    #[arg(long, value_enum, default_value_t = Video::Prototype)]
    video: Video,
    /// Seconds of media to generate.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    seconds: u64,
    /// Per-layer rates in kbps, overriding the video's plan (e.g. 300,200,100).
    #[arg(long, value_delimiter = ',')]
    rates: Option<Vec<u32>>,
    /// Seed of the VBR frame-size jitter.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print the first N LC headers as well.
    #[arg(long, default_value_t = 0)]
    show: usize,
}

pub fn run(args: Args) -> Result<(), String> {
    let mut cfg = args.video.synthetic(args.seed);
    cfg.payload = PayloadKind::Phantom;
    if let Some(rates) = args.rates {
        cfg.plan = LayerPlan::new(rates.into_iter().map(Kbps).collect()).map_err(|e| e.to_string())?;
    }
    let plan = cfg.plan.clone();
    let mode = cfg.mode;
    let mut source = SyntheticSource::new(cfg).map_err(|e| e.to_string())?;
    let mut lcs = Vec::new();
    source.lcs_until(MediaTime(args.seconds * 1_000_000), &mut lcs);

    for lc in lcs.iter().take(args.show) {
        let h = &lc.header;
        println!(
            "{:>8}  frame {:>6}  part {}/{}  t={:>9.3}s  {:>4} bytes",
            h.id.to_string(),
            h.frame,
            h.part + 1,
            h.parts,
            h.time.as_secs_f64(),
            lc.payload.len()
        );
    }
    let mode = match mode {
        RateMode::Vbr => "VBR",
        RateMode::Cbr => "CBR",
    };
    println!("{} s of synthetic {mode} video, {} layers, full rate {}", args.seconds, plan.layers(), plan.full_rate());
    println!("{:<6} {:>8} {:>8} {:>10} {:>10} {:>8}", "layer", "frames", "LCs", "plan", "measured", "max LC");
    for l in plan.layer_ids() {
        let of_layer: Vec<_> = lcs.iter().filter(|lc| lc.header.id.layer == l).collect();
        let frames = of_layer.iter().filter(|lc| lc.header.part == 0).count();
        let bytes: usize = of_layer.iter().map(|lc| lc.payload.len()).sum();
        let max = of_layer.iter().map(|lc| lc.payload.len()).max().unwrap_or(0);
        let kbps = bytes as f64 * 8.0 / args.seconds as f64 / 1000.0;
        println!(
            "{:<6} {:>8} {:>8} {:>10} {:>7.1} kbps {:>6}",
            l.to_string(),
            frames,
            of_layer.len(),
            plan.rate(l).to_string(),
            kbps,
            max
        );
    }
    Ok(())
}

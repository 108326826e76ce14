//! `layerp2p video`: real layered H.264 for researchers and users — write the built-in
//! clip, encode Y4M into 3 temporal layers, inspect an Annex B stream's layers, decode,
//! score PSNR, and the layer-drop experiment. Wiring only: the work is in
//! `layerp2p_codec::video`.

use clap::{Args as ClapArgs, Subcommand};
use layerp2p_codec::video::annexb::AnnexBReader;
use layerp2p_codec::video::decoder::Decoder;
use layerp2p_codec::video::droptest::{self, TestClip};
use layerp2p_codec::video::encoder::{Encoder, EncoderConfig};
use layerp2p_codec::video::quality::{Quality, psnr};
use layerp2p_codec::video::y4m::{Y4mReader, Y4mWriter};
use layerp2p_codec::video::{FrameRate, Resolution, clip};
use layerp2p_codec::{Kbps, LayerId};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(ClapArgs, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: VideoCommand,
}

#[derive(Subcommand, Debug)]
enum VideoCommand {
    /// Write the built-in procedural test clip as Y4M (play it: `ffplay x.y4m`).
    Clip(ClipArgs),
    /// Encode Y4M (or the built-in clip) into H.264 Annex B with temporal layers.
    Encode(EncodeArgs),
    /// Read an H.264 Annex B stream and report each layer's frames and rate.
    Inspect(InspectArgs),
    /// Decode an H.264 Annex B stream to Y4M.
    Decode(DecodeArgs),
    /// PSNR of a decoded Y4M against its reference, per layer if the stream is given.
    Psnr(PsnrArgs),
    /// Encode the built-in clip, lose layers or random LCs, decode with concealment
    /// and report Q1/Q2/Q3/Q for each case.
    DropTest(DropTestArgs),
}

/// Parses `WIDTHxHEIGHT`.
pub fn parse_resolution(s: &str) -> Result<Resolution, String> {
    let (w, h) = s.split_once(['x', 'X']).ok_or_else(|| format!("{s:?} is not WIDTHxHEIGHT (e.g. 352x288)"))?;
    let w = w.parse().map_err(|_| format!("bad width in {s:?}"))?;
    let h = h.parse().map_err(|_| format!("bad height in {s:?}"))?;
    Resolution::new(w, h).map_err(|e| e.to_string())
}

fn parse_fps(s: &str) -> Result<FrameRate, String> {
    let r = match s.split_once(['/', ':']) {
        Some((n, d)) => FrameRate::new(
            n.parse().map_err(|_| format!("bad frame rate {s:?}"))?,
            d.parse().map_err(|_| format!("bad frame rate {s:?}"))?,
        ),
        None => FrameRate::per_second(s.parse().map_err(|_| format!("bad frame rate {s:?}"))?),
    };
    r.map_err(|e| e.to_string())
}

/// Options of the H.264 encoder.
#[derive(ClapArgs, Debug, Clone)]
struct CodecOpts {
    /// Quantiser, 0 (best) to 51; fixed for every frame so PSNR reflects losses only.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u8).range(0..=51))]
    qp: u8,
    /// Temporal layers (layer 1 = temporal_id 0, …), 1 to 4.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=4))]
    layers: u8,
    /// Frames between IDR frames (where a viewer can start); a multiple of 2^(layers-1).
    #[arg(long, default_value_t = 64)]
    intra_period: u32,
}

impl CodecOpts {
    fn config(&self, resolution: Resolution, rate: FrameRate) -> EncoderConfig {
        EncoderConfig { resolution, rate, qp: self.qp, layers: self.layers as usize, intra_period: self.intra_period }
    }
}

/// Which part of the built-in clip.
#[derive(ClapArgs, Debug, Clone)]
struct ClipOpts {
    /// Frames of the built-in clip.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    frames: u32,
    /// Picture size of the built-in clip, WIDTHxHEIGHT (even numbers).
    #[arg(long, default_value = "352x288", value_parser = parse_resolution)]
    resolution: Resolution,
    /// Frame rate of the built-in clip, e.g. 30 or 30000/1001.
    #[arg(long, default_value = "30", value_parser = parse_fps)]
    fps: FrameRate,
}

#[derive(ClapArgs, Debug)]
struct ClipArgs {
    #[command(flatten)]
    clip: ClipOpts,
    /// Output Y4M file, or - for stdout.
    #[arg(long)]
    output: PathBuf,
}

#[derive(ClapArgs, Debug)]
struct EncodeArgs {
    /// Input Y4M file, or - for stdin (e.g. `ffmpeg -i in.mp4 -f yuv4mpegpipe -pix_fmt yuv420p -`).
    /// Without it, the built-in clip is encoded (--frames, --resolution, --fps).
    #[arg(long)]
    input: Option<PathBuf>,
    #[command(flatten)]
    clip: ClipOpts,
    #[command(flatten)]
    codec: CodecOpts,
    /// Output H.264 Annex B file, or - for stdout.
    #[arg(long)]
    output: PathBuf,
}

#[derive(ClapArgs, Debug)]
struct InspectArgs {
    /// H.264 Annex B file, or - for stdin.
    #[arg(long)]
    input: PathBuf,
    /// Layers to classify frames into.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=8))]
    layers: u8,
    /// Frame rate, for the rates (Annex B carries no timing).
    #[arg(long, default_value = "30", value_parser = parse_fps)]
    fps: FrameRate,
    /// Also print one line per frame.
    #[arg(long)]
    frames: bool,
}

#[derive(ClapArgs, Debug)]
struct DecodeArgs {
    /// H.264 Annex B file, or - for stdin.
    #[arg(long)]
    input: PathBuf,
    /// Frame rate written into the Y4M header.
    #[arg(long, default_value = "30", value_parser = parse_fps)]
    fps: FrameRate,
    /// Output Y4M file, or - for stdout.
    #[arg(long)]
    output: PathBuf,
}

#[derive(ClapArgs, Debug)]
struct PsnrArgs {
    /// The original pictures (Y4M).
    #[arg(long)]
    reference: PathBuf,
    /// The decoded pictures (Y4M), frame for frame with the reference.
    #[arg(long)]
    decoded: PathBuf,
    /// The H.264 stream the reference was encoded into, to give each frame its layer
    /// (Q1/Q2/Q3); without it every frame counts as layer 1.
    #[arg(long)]
    stream: Option<PathBuf>,
    /// Layers of the stream.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=8))]
    layers: u8,
}

#[derive(ClapArgs, Debug)]
struct DropTestArgs {
    #[command(flatten)]
    clip: ClipOpts,
    #[command(flatten)]
    codec: CodecOpts,
    /// Probability that each LC is lost in the random-loss case (0 to 1).
    #[arg(long, default_value_t = 0.05)]
    loss: f64,
    /// Seed of the random loss.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn open_input(path: &Path) -> Result<Box<dyn BufRead + Send>, String> {
    if path == Path::new("-") {
        return Ok(Box::new(BufReader::new(std::io::stdin())));
    }
    let f = File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    Ok(Box::new(BufReader::new(f)))
}

fn open_output(path: &Path) -> Result<Box<dyn Write>, String> {
    if path == Path::new("-") {
        return Ok(Box::new(BufWriter::new(std::io::stdout())));
    }
    let f = File::create(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    Ok(Box::new(BufWriter::new(f)))
}

/// Per-layer frame and byte counts, printed as a table.
#[derive(Default)]
struct LayerTally {
    frames: Vec<u64>,
    bytes: Vec<u64>,
}

impl LayerTally {
    fn add(&mut self, layer: LayerId, bytes: usize) {
        let i = layer.index();
        if self.frames.len() <= i {
            self.frames.resize(i + 1, 0);
            self.bytes.resize(i + 1, 0);
        }
        self.frames[i] += 1;
        self.bytes[i] += bytes as u64;
    }

    fn print(&self, rate: FrameRate) {
        let total: u64 = self.frames.iter().sum();
        let micros = rate.frame_start_us(total).max(1);
        println!("{:<6} {:>8} {:>12} {:>10}", "layer", "frames", "bytes", "rate");
        for (i, (f, b)) in self.frames.iter().zip(&self.bytes).enumerate() {
            println!("L{:<5} {:>8} {:>12} {:>10}", i + 1, f, b, Kbps::from_bytes_over(*b, micros).to_string());
        }
        let all: u64 = self.bytes.iter().sum();
        println!("{:<6} {:>8} {:>12} {:>10}", "all", total, all, Kbps::from_bytes_over(all, micros).to_string());
    }
}

/// Progress on stderr every `every` frames.
fn progress(what: &str, n: u64, every: u64, started: Instant) {
    if n.is_multiple_of(every) {
        eprintln!("{what}: {n} frames ({:.1} s)", started.elapsed().as_secs_f64());
    }
}

pub fn run(args: Args) -> Result<(), String> {
    match args.command {
        VideoCommand::Clip(a) => clip_cmd(a),
        VideoCommand::Encode(a) => encode_cmd(a),
        VideoCommand::Inspect(a) => inspect_cmd(a),
        VideoCommand::Decode(a) => decode_cmd(a),
        VideoCommand::Psnr(a) => psnr_cmd(a),
        VideoCommand::DropTest(a) => drop_test_cmd(a),
    }
}

fn clip_cmd(a: ClipArgs) -> Result<(), String> {
    let c = &a.clip;
    let mut w = Y4mWriter::new(open_output(&a.output)?, c.resolution, c.fps).map_err(|e| e.to_string())?;
    let started = Instant::now();
    for (n, p) in clip::frames(c.resolution, c.frames).enumerate() {
        w.write(&p).map_err(|e| format!("writing {}: {e}", a.output.display()))?;
        progress("clip", n as u64 + 1, 100, started);
    }
    w.into_inner().flush().map_err(|e| e.to_string())?;
    eprintln!("wrote {} frames of {} at {}", c.frames, c.resolution, c.fps);
    Ok(())
}

fn encode_cmd(a: EncodeArgs) -> Result<(), String> {
    let mut out = open_output(&a.output)?;
    let mut tally = LayerTally::default();
    let started = Instant::now();
    let mut write = |enc: &mut Encoder, p: &layerp2p_codec::video::Picture, n: u64| -> Result<(), String> {
        let au = enc.encode(p).map_err(|e| e.to_string())?;
        tally.add(au.layer, au.len());
        out.write_all(&au.to_annexb()).map_err(|e| format!("writing {}: {e}", a.output.display()))?;
        progress("encode", n, 100, started);
        Ok(())
    };
    let rate = match &a.input {
        Some(path) => {
            let mut r = Y4mReader::new(open_input(path)?).map_err(|e| format!("{}: {e}", path.display()))?;
            let mut enc = Encoder::new(a.codec.config(r.resolution(), r.frame_rate())).map_err(|e| e.to_string())?;
            let mut n = 0;
            while let Some(p) = r.next_picture().map_err(|e| format!("{}: {e}", path.display()))? {
                n += 1;
                write(&mut enc, &p, n)?;
            }
            r.frame_rate()
        }
        None => {
            let c = &a.clip;
            let mut enc = Encoder::new(a.codec.config(c.resolution, c.fps)).map_err(|e| e.to_string())?;
            for (n, p) in clip::frames(c.resolution, c.frames).enumerate() {
                write(&mut enc, &p, n as u64 + 1)?;
            }
            c.fps
        }
    };
    out.flush().map_err(|e| e.to_string())?;
    // The table goes to stderr when the stream itself goes to stdout.
    if a.output == Path::new("-") {
        eprintln!("encoded {} frames", tally.frames.iter().sum::<u64>());
    } else {
        tally.print(rate);
    }
    Ok(())
}

fn inspect_cmd(a: InspectArgs) -> Result<(), String> {
    let mut r = AnnexBReader::new(open_input(&a.input)?, a.layers as usize);
    let mut tally = LayerTally::default();
    let mut idr = 0;
    let mut n = 0u64;
    while let Some(au) = r.next_unit().map_err(|e| format!("{}: frame {n}: {e}", a.input.display()))? {
        if a.frames {
            println!(
                "frame {n:>6}  {}  {:>7} bytes  {} units{}",
                au.layer,
                au.len(),
                au.units.len(),
                if au.idr { "  IDR" } else { "" }
            );
        }
        tally.add(au.layer, au.len());
        idr += u64::from(au.idr);
        n += 1;
    }
    println!("{n} frames, {idr} IDR, at {}:", a.fps);
    tally.print(a.fps);
    Ok(())
}

fn decode_cmd(a: DecodeArgs) -> Result<(), String> {
    let mut r = AnnexBReader::new(open_input(&a.input)?, 8);
    let mut dec = Decoder::new().map_err(|e| e.to_string())?;
    let mut writer: Option<Y4mWriter<Box<dyn Write>>> = None;
    let (mut frames, mut pictures) = (0u64, 0u64);
    let started = Instant::now();
    while let Some(au) = r.next_unit().map_err(|e| format!("{}: {e}", a.input.display()))? {
        frames += 1;
        let Some(p) = dec.decode(&au.to_annexb()).map_err(|e| e.to_string())? else { continue };
        let w = match &mut writer {
            Some(w) => w,
            None => writer
                .insert(Y4mWriter::new(open_output(&a.output)?, p.resolution(), a.fps).map_err(|e| e.to_string())?),
        };
        w.write(&p).map_err(|e| e.to_string())?;
        pictures += 1;
        progress("decode", frames, 100, started);
    }
    if let Some(w) = writer {
        w.into_inner().flush().map_err(|e| e.to_string())?;
    }
    eprintln!("decoded {pictures} pictures from {frames} frames");
    if pictures == 0 {
        return Err("no picture could be decoded".into());
    }
    Ok(())
}

fn psnr_cmd(a: PsnrArgs) -> Result<(), String> {
    let mut reference =
        Y4mReader::new(open_input(&a.reference)?).map_err(|e| format!("{}: {e}", a.reference.display()))?;
    let mut decoded = Y4mReader::new(open_input(&a.decoded)?).map_err(|e| format!("{}: {e}", a.decoded.display()))?;
    let mut layers: Box<dyn Iterator<Item = Result<LayerId, String>>> = match &a.stream {
        Some(path) => {
            let mut r = AnnexBReader::new(open_input(path)?, a.layers as usize);
            let path = path.display().to_string();
            Box::new(
                std::iter::from_fn(move || r.next_unit().map_err(|e| format!("{path}: {e}")).transpose())
                    .map(|u| u.map(|u| u.layer)),
            )
        }
        None => Box::new(std::iter::repeat(Ok(LayerId::BASE))),
    };
    let mut q = Quality::new(a.layers as usize);
    let mut n = 0u64;
    loop {
        let r = reference.next_picture().map_err(|e| format!("{}: {e}", a.reference.display()))?;
        let d = decoded.next_picture().map_err(|e| format!("{}: {e}", a.decoded.display()))?;
        let (Some(r), Some(d)) = (r, d) else { break };
        let layer = layers.next().unwrap_or(Ok(LayerId::BASE))?;
        let db = psnr(&r, &d).map_err(|e| e.to_string())?;
        q.add(layer, &r, &d, false).map_err(|e| e.to_string())?;
        n += 1;
        if n <= 3 || n.is_multiple_of(100) {
            eprintln!("frame {n}: {layer} {db:.2} dB");
        }
    }
    if n == 0 {
        return Err("no frame to compare".into());
    }
    println!("{n} frames: {q}");
    Ok(())
}

fn drop_test_cmd(a: DropTestArgs) -> Result<(), String> {
    if !(0.0..=1.0).contains(&a.loss) {
        return Err(format!("--loss {} is not a probability between 0 and 1", a.loss));
    }
    let c = &a.clip;
    if c.frames < 8 {
        return Err(format!("--frames {} is too short for a drop test: use at least 8", c.frames));
    }
    let cfg = a.codec.config(c.resolution, c.fps);
    eprintln!("encoding {} frames of the built-in clip at {} ...", c.frames, c.resolution);
    let started = Instant::now();
    let clip = TestClip::encode(cfg.clone(), c.frames).map_err(|e| e.to_string())?;
    eprintln!("encoded in {:.1} s", started.elapsed().as_secs_f64());
    let rates = clip.layer_rates();
    println!(
        "Built-in clip, {} frames {} at {}, QP {}, {} temporal layers, IDR every {} frames",
        c.frames, c.resolution, c.fps, cfg.qp, cfg.layers, cfg.intra_period
    );
    println!(
        "layer rates: {}  (full {})",
        rates.iter().enumerate().map(|(i, r)| format!("L{} {r}", i + 1)).collect::<Vec<_>>().join(", "),
        Kbps(rates.iter().map(|r| r.0).sum())
    );
    let mut outcomes = Vec::new();
    let losses = droptest::standard_losses(cfg.layers, a.loss, a.seed);
    let head = (1..=cfg.layers).map(|l| format!("{:>7}", format!("Q{l}"))).collect::<String>();
    println!("\n{:<28} {:>8} {:>8} {:>9}{head} {:>7}", "case", "LCs lost", "fr lost", "concealed", "Q");
    for loss in losses {
        eprintln!("scoring: {loss} ...");
        let o = droptest::run(&clip, loss).map_err(|e| e.to_string())?;
        let show = |m: Option<f64>| m.map_or(format!("{:>7}", "-"), |v| format!("{v:>7.2}"));
        let per_layer: String =
            (1..=cfg.layers as u8).map(|l| show(LayerId::new(l).and_then(|l| o.quality.layer(l)))).collect();
        println!(
            "{:<28} {:>8} {:>8} {:>9}{per_layer} {}",
            o.loss.to_string(),
            format!("{}/{}", o.lcs_lost, o.lcs),
            o.frames_lost,
            o.quality.concealed,
            show(o.quality.overall())
        );
        outcomes.push(o);
    }
    println!("\nPSNR is luma, in dB, averaged over frames; a lost frame shows the last decoded picture.");
    if let Some(path) = a.json {
        let json: Vec<_> = outcomes
            .iter()
            .map(|o| serde_json::json!({ "case": o.loss.to_string(), "lcs": o.lcs, "lcs_lost": o.lcs_lost, "frames_lost": o.frames_lost, "frames_partial": o.frames_partial, "quality": o.quality }))
            .collect();
        let text = serde_json::to_string_pretty(
            &serde_json::json!({ "layer_rates_kbps": rates.iter().map(|r| r.0).collect::<Vec<_>>(), "cases": json }),
        )
        .map_err(|e| e.to_string())?;
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

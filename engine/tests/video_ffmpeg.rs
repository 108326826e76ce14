//! Real video judged by a standard decoder: a clip ffmpeg generates is encoded into
//! three temporal layers, streamed by a seed (loopback UDP, the deployable roles) to a
//! free-rider and peers uploading 300, 700 and 1000 kbps, each writing what it plays
//! (`peer --output`); then ffmpeg decodes every output. Asserted: the access units
//! written decode, every NAL unit written is one the seed sent, whole, ffmpeg finds
//! nothing malformed, every contributor's PSNR (a frame not shown counts as the last
//! one shown, frozen) is well above the free-rider's, and PSNR rises with upload
//! among contributors, within a margin; with upload to spare (a 30 s lag), every
//! contributor plays the whole video and the free-rider does not. Printed, to see where
//! quality comes from: each node's summary (α per layer), what each viewer sent to
//! and got from each neighbour (who serves whom, the seed's share), and each
//! viewer's PSNR per second of the clip.
//!
//! ffmpeg must be on PATH (.ci/run installs it); without it the test says so and
//! passes, unless `CI` is set. `video_psnr_follows_upload_on_your_clip` (ignored) runs
//! the same on any clip: LAYERP2P_CLIP=path.y4m LAYERP2P_LAG_S=30. With
//! LAYERP2P_BY_SERVED set, viewers draw holders by served share (decision 0007);
//! LAYERP2P_KEEP keeps the outputs and ffmpeg's logs.

mod common;

use common::roles::{free_port, run_for};
use layerp2p_codec::Kbps;
use layerp2p_codec::MediaTime;
use layerp2p_codec::source::LcSource;
use layerp2p_codec::video::annexb::{AccessUnit, NalType};
use layerp2p_codec::video::encoder::{Encoder, EncoderConfig};
use layerp2p_codec::video::quality::psnr;
use layerp2p_codec::video::reassemble::nal_spans;
use layerp2p_codec::video::source::{
    EncodingFeed, PictureFeed, ReplayFeed, SourceError, ThreadedSource, UnitFeed, VideoSource,
};
use layerp2p_codec::video::y4m::Y4mReader;
use layerp2p_codec::video::{FrameRate, Picture};
use layerp2p_engine::runtime::playout::{Playout, PlayoutReport};
use layerp2p_engine::runtime::role::NodeSpec;
use layerp2p_engine::{PeerConfig, Policy};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Viewers' uploads, kbps: a free-rider, then the three contributors.
const UPLOADS: [u32; 4] = [0, 300, 700, 1000];

fn ffmpeg_available() -> bool {
    let found = Command::new("ffmpeg").arg("-version").output().is_ok_and(|o| o.status.success());
    assert!(found || std::env::var_os("CI").is_none(), "ffmpeg is missing: .ci/run installs it");
    if !found {
        eprintln!("ffmpeg is not installed: skipping the real-video test");
    }
    found
}

fn ffmpeg(args: &[&str]) -> std::process::Output {
    let out = Command::new("ffmpeg").args(["-hide_banner", "-nostdin", "-y"]).args(args).output().expect("ffmpeg runs");
    assert!(out.status.success(), "ffmpeg {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// What ffmpeg says of a malformed stream (issue #32 met each of these).
const MALFORMED: [&str; 6] = [
    "non-existing PPS",
    "non-existing SPS",
    "Frame num change",
    "decode_slice_header error",
    "Invalid NAL unit",
    "missing picture in access unit",
];

/// What one viewer's output gave.
#[derive(Debug)]
struct Judged {
    upload: u32,
    /// Access units in the output (one delimiter each).
    written: usize,
    /// Pictures ffmpeg decoded from them.
    decoded: usize,
    /// NAL units that are not byte for byte one the seed sent.
    foreign_nals: usize,
    /// ffmpeg lines saying the stream is malformed (a frame merged into another, a
    /// missing parameter set, a cut NAL unit), as opposed to data lost.
    malformed: usize,
    /// Pictures ffmpeg decoded with concealment (data lost).
    concealed: usize,
    /// Mean luma PSNR over the scored frames, dB.
    psnr: f64,
    /// The same from `SETTLED_SECS` on, past start-up.
    psnr_settled: f64,
}

/// Seconds of start-up left out of `Judged::psnr_settled`: before then nobody is
/// credited yet (the seed counts a pushed LC's spread three rounds on, neighbours
/// measure each other over rounds), so who gets what is chance.
const SETTLED_SECS: usize = 10;

#[derive(Debug)]
struct Pictures(std::vec::IntoIter<Picture>);

impl PictureFeed for Pictures {
    fn next_picture(&mut self) -> Result<Option<Picture>, SourceError> {
        Ok(self.0.next())
    }
}

/// A feed that keeps a copy of every access unit it hands out.
#[derive(Debug)]
struct Recorder<F> {
    inner: F,
    units: Arc<Mutex<Vec<AccessUnit>>>,
}

impl<F: UnitFeed> UnitFeed for Recorder<F> {
    fn next_unit(&mut self) -> Result<Option<AccessUnit>, SourceError> {
        let unit = self.inner.next_unit()?;
        if let Some(u) = &unit {
            self.units.lock().expect("recorded").push(u.clone());
        }
        Ok(unit)
    }

    fn hold_rate(&mut self, full: Kbps) {
        self.inner.hold_rate(full)
    }
}

struct Clip {
    rate: FrameRate,
    originals: Vec<Picture>,
    units: Vec<AccessUnit>,
}

fn load_clip(path: &Path, qp: u8) -> Clip {
    let mut reader = Y4mReader::new(std::io::BufReader::new(std::fs::File::open(path).expect("clip"))).expect("y4m");
    let (resolution, rate) = (reader.resolution(), reader.frame_rate());
    let mut originals = Vec::new();
    while let Some(p) = reader.next_picture().expect("picture") {
        originals.push(p);
    }
    // What `seed --input clip.y4m` encodes (its defaults but the QP), the QP held to
    // the plan as `y4m_source` does; recorded to know every unit the seed sent.
    let cfg = EncoderConfig { qp, layers: 3, intra_period: 32, ..EncoderConfig::new(resolution, rate) };
    let recorded = Arc::new(Mutex::new(Vec::new()));
    let feed = Recorder {
        inner: EncodingFeed {
            pictures: Pictures(originals.clone().into_iter()),
            encoder: Encoder::new(cfg).expect("encoder"),
            hold: None,
        },
        units: recorded.clone(),
    };
    let mut source = VideoSource::new(Box::new(feed), rate, 3, 32).expect("source");
    source.hold_plan();
    source.lcs_until(MediaTime(u64::MAX), &mut Vec::new());
    let units = std::mem::take(&mut *recorded.lock().expect("recorded"));
    Clip { rate, originals, units }
}

/// Streams `clip` from a seed uploading `seed_kbps` to the `UPLOADS` viewers at `lag`;
/// returns each viewer's output file and what its writer did.
fn stream(clip: &Clip, seed_kbps: u32, lag: Duration, dir: &Path) -> Vec<(PathBuf, PlayoutReport)> {
    let source =
        VideoSource::new(Box::new(ReplayFeed::new(clip.units.clone(), false)), clip.rate, 3, 32).expect("source");
    let plan = source.plan().clone();
    eprintln!("plan {plan:?}");
    let secs = (clip.originals.len() as f64 / clip.rate.as_f64()).ceil() as u64 + lag.as_secs() + 4;
    let tracker = free_port();
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let spec = |peer: PeerConfig, embedded_tracker, rng_seed| NodeSpec {
        peer,
        listen: loopback,
        shards: 1,
        embedded_tracker,
        first_core: 0,
        rng_seed,
    };
    let mut seed = PeerConfig::seed(Policy::LayerP2P, plan.clone(), Kbps(seed_kbps));
    seed.tracker = Some(tracker);
    seed.lag = lag;
    let seed = run_for(
        spec(seed, Some(tracker), 1),
        Some(Box::new(ThreadedSource::spawn(source).expect("reader"))),
        None,
        secs + 1,
    );
    std::thread::sleep(Duration::from_millis(300));
    let mut viewers = Vec::new();
    for (i, &upload) in UPLOADS.iter().enumerate() {
        let path = dir.join(format!("peer-{upload}.264"));
        let out = Box::new(std::io::BufWriter::new(std::fs::File::create(&path).expect("output")));
        let (playout, sink) = Playout::spawn(out).expect("writer");
        let mut pc = PeerConfig::peer(Policy::LayerP2P, plan.clone(), Kbps(upload));
        pc.tracker = Some(tracker);
        pc.lag = lag;
        if std::env::var_os("LAYERP2P_BY_SERVED").is_some() {
            pc.incentive.holder_choice = layerp2p_engine::HolderChoice::ByServed;
        }
        viewers.push((run_for(spec(pc, None, 10 + i as u64), None, Some(sink), secs), playout, path));
    }
    let mut paths = Vec::new();
    for (node, playout, path) in viewers {
        let summary = node.join().expect("viewer ran");
        let report = playout.finish().expect("output written");
        eprint!("{}", summary.text());
        eprintln!("  neighbours (bytes up/down): {:?}", summary.neighbours);
        eprintln!("output {}: {report:?}", path.display());
        paths.push((path, report));
    }
    eprint!("{}", seed.join().expect("seed ran").text());
    paths
}

/// Decodes `path` with ffmpeg and scores it against the clip from frame `from` on.
fn judge(clip: &Clip, upload: u32, path: &Path, from: usize) -> Judged {
    // Every slice the seed sent, to the frame it belongs to.
    let mut frame_of: HashMap<&[u8], usize> = HashMap::new();
    let mut known: std::collections::HashSet<&[u8]> = Default::default();
    for (n, au) in clip.units.iter().enumerate() {
        for unit in &au.units {
            for span in nal_spans(unit) {
                let nal = &unit[span];
                known.insert(nal);
                if nal.first().is_some_and(|b| matches!(b & 0x1F, 1 | 5)) {
                    frame_of.insert(nal, n);
                }
            }
        }
    }
    let data = std::fs::read(path).expect("output");
    // Frame number of each access unit written, from its first slice.
    let mut au_frames: Vec<Option<usize>> = Vec::new();
    let mut foreign_nals = 0;
    for span in nal_spans(&data) {
        let nal = &data[span];
        match nal.first().map(|b| NalType(b & 0x1F)) {
            Some(NalType::AUD) => au_frames.push(None),
            _ if !known.contains(nal) => foreign_nals += 1,
            _ => {
                if let (Some(slot @ None), Some(&n)) = (au_frames.last_mut(), frame_of.get(nal)) {
                    *slot = Some(n);
                }
            }
        }
    }
    let fps = clip.rate.as_f64();
    let yuv = path.with_extension("yuv");
    let rate = format!("{fps}");
    let out = ffmpeg(&[
        "-v",
        "info",
        "-f",
        "h264",
        "-framerate",
        &rate,
        "-i",
        path.to_str().expect("utf-8"),
        "-vf",
        "showinfo",
        "-fps_mode",
        "passthrough",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "yuv420p",
        yuv.to_str().expect("utf-8"),
    ]);
    let log = String::from_utf8_lossy(&out.stderr);
    let malformed = log.lines().filter(|l| MALFORMED.iter().any(|m| l.contains(m))).count();
    let concealed = log.lines().filter(|l| l.contains("corrupt decoded frame")).count();
    // Each decoded picture's access unit, from its timestamp.
    let shown_au: Vec<usize> = log
        .lines()
        .filter_map(|l| l.split("pts_time:").nth(1)?.split_whitespace().next()?.parse::<f64>().ok())
        .map(|t| (t * fps).round() as usize)
        .collect();
    let pictures = std::fs::read(&yuv).expect("decoded");
    let _ = std::fs::remove_file(&yuv);
    if std::env::var_os("LAYERP2P_KEEP").is_some() {
        std::fs::write(path.with_extension("log"), log.as_bytes()).expect("log");
    }
    let res = clip.originals[0].resolution();
    let size = clip.originals[0].as_bytes().len();
    assert_eq!(pictures.len(), shown_au.len() * size, "one showinfo line per picture");
    // The picture on screen at each source frame: the last decoded at or before it.
    let mut shown: Vec<Option<usize>> = vec![None; clip.originals.len()];
    for (k, &au) in shown_au.iter().enumerate() {
        if let Some(slot) = au_frames.get(au).copied().flatten().and_then(|n| shown.get_mut(n)) {
            *slot = Some(k);
        }
    }
    let gray = Picture::filled(res, 128);
    let mut on_screen: Option<Picture> = None;
    let (mut total, mut settled) = (0.0, 0.0);
    let settled_from = SETTLED_SECS * clip.rate.as_f64() as usize;
    let mut per_second = Vec::new();
    for (n, original) in clip.originals.iter().enumerate() {
        if let Some(k) = shown[n] {
            on_screen = Picture::from_i420(res, pictures[k * size..(k + 1) * size].to_vec());
        }
        let db = psnr(original, on_screen.as_ref().unwrap_or(&gray)).expect("same size").min(100.0);
        if n >= from {
            total += db;
        }
        if n >= settled_from {
            settled += db;
        }
        per_second.push(db);
    }
    let secs: Vec<String> = per_second
        .chunks(clip.rate.as_f64() as usize)
        .map(|c| format!("{:.0}", c.iter().sum::<f64>() / c.len() as f64))
        .collect();
    eprintln!("{upload} kbps, dB per second: {}", secs.join(" "));
    let scored = clip.originals.len().saturating_sub(from).max(1);
    Judged {
        upload,
        written: au_frames.len(),
        decoded: shown_au.len(),
        foreign_nals,
        malformed,
        concealed,
        psnr: total / scored as f64,
        psnr_settled: settled / clip.originals.len().saturating_sub(settled_from).max(1) as f64,
    }
}

fn run_and_judge(clip: &Clip, seed_kbps: u32, lag: Duration, dir: &Path) -> Vec<Judged> {
    let outputs = stream(clip, seed_kbps, lag, dir);
    // Scored from the second intra period on: every viewer has joined by then.
    let judged: Vec<Judged> =
        UPLOADS.iter().zip(&outputs).map(|(&upload, (path, _))| judge(clip, upload, path, 32)).collect();
    for (j, (_, report)) in judged.iter().zip(&outputs) {
        let skipped = report.frames_skipped;
        eprintln!(
            "{} kbps: {} access units written, {} skipped as undecodable (+{} before the first IDR), {} decoded ({} concealed), {} NAL units not sent, {} malformed, {:.2} dB ({:.2} dB from {SETTLED_SECS} s)",
            j.upload,
            j.written,
            skipped.reference_lost,
            skipped.before_start,
            j.decoded,
            j.concealed,
            j.foreign_nals,
            j.malformed,
            j.psnr,
            j.psnr_settled
        );
    }
    judged
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("layerp2p-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// The test pattern, `secs` long, generated by ffmpeg into `dir` and encoded at `qp`.
fn test_pattern(dir: &Path, secs: u32, qp: u8) -> Clip {
    let clip_path = dir.join("clip.y4m");
    let generate =
        format!("-v error -f lavfi -i testsrc2=size=640x360:rate=25 -t {secs} -pix_fmt yuv420p -f yuv4mpegpipe");
    let mut args: Vec<&str> = generate.split(' ').collect();
    args.push(clip_path.to_str().expect("utf-8"));
    ffmpeg(&args);
    load_clip(&clip_path, qp)
}

/// What every viewer's output must be whatever its upload: whole NAL units the seed
/// sent, nothing malformed, and at least 97 % of the access units written decoded,
/// even the free-rider's, which misses whole IDR and base frames: the writer skips
/// the frames predicted from them (ffmpeg would drop them as out of order, "no
/// picture ooo").
fn assert_player_clean(judged: &[Judged]) {
    for j in judged {
        assert!(j.written > 0, "{j:?}");
        assert_eq!(j.foreign_nals, 0, "every NAL unit written is one the seed sent, whole: {j:?}");
        assert_eq!(j.malformed, 0, "{j:?}");
        assert!(j.decoded as f64 >= 0.97 * j.written as f64, "{j:?}");
    }
}

fn remove_unless_kept(dir: &Path) {
    if std::env::var_os("LAYERP2P_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn ffmpeg_decodes_every_viewers_output_and_contributors_see_better_video() {
    if !ffmpeg_available() {
        return;
    }
    let dir = temp_dir("video-ffmpeg");
    // The test pattern at the length, 30 s: 640x360 at QP 26 is ~1.5 Mbps,
    // so a 2 Mbps seed and the viewers' 2 Mbps are short of the 6 Mbps four full-rate
    // viewers need. Shorter, the first seconds (nobody has a d(n,k) yet, the seed
    // splits alike) weigh as much as the rest.
    let clip = test_pattern(&dir, 30, 26);
    let judged = run_and_judge(&clip, 2000, Duration::from_secs(5), &dir);
    remove_unless_kept(&dir);
    assert_player_clean(&judged);
    let db: Vec<f64> = judged.iter().map(|j| j.psnr).collect();
    eprintln!("PSNR by upload 0/300/700/1000 kbps: {db:.2?}");
    assert!(db[1..].iter().all(|&c| c > db[0] + 8.0), "every contributor well above the free-rider: {db:?}");
    // Quality follows upload (issue #32: 1000 >= 700 >= 300 kbps, less 0.5 dB), past
    // start-up, when nobody is credited yet and who gets what is chance (one CI run:
    // 1000 kbps at 13-28 dB for 7 s, then 44-47 like 700 kbps, 2.3 dB below it over
    // the clip). The margin is CI's: a viewer's PSNR moves about 2 dB from run to run
    // (0007). Without the seed's spread credit (one run) the contributors were within
    // 1.1 dB of one another and 2.7-3.8 dB above the free-rider (decision 0015).
    let settled: Vec<f64> = judged.iter().map(|j| j.psnr_settled).collect();
    eprintln!("from {SETTLED_SECS} s: {settled:.2?}");
    assert!(
        settled[3] >= settled[2] - 2.0 && settled[2] >= settled[1] - 2.0,
        "PSNR from {SETTLED_SECS} s follows upload among contributors: {settled:?}"
    );
}

#[test]
fn with_upload_to_spare_contributors_play_every_layer_and_the_free_rider_does_not() {
    if !ffmpeg_available() {
        return;
    }
    let dir = temp_dir("video-spare");
    // 20 s at QP 30 (~1.1 Mbps) behind a 30 s lag: the seed's 2 Mbps and the viewers'
    // 2 Mbps cover the three contributors, so a work-conserving supplier would give
    // the free-rider the whole video too; suppliers with upload to spare keep the
    // upper layers for neighbours that upload (decision 0018).
    let clip = test_pattern(&dir, 20, 30);
    let judged = run_and_judge(&clip, 2000, Duration::from_secs(30), &dir);
    remove_unless_kept(&dir);
    assert_player_clean(&judged);
    let db: Vec<f64> = judged.iter().map(|j| j.psnr).collect();
    eprintln!("PSNR by upload 0/300/700/1000 kbps: {db:.2?}");
    assert!(db[1..].iter().all(|&c| c > db[0] + 5.0), "every contributor well above the free-rider: {db:?}");
    // Every contributor plays (nearly) everything: the issue's own 0.5 dB margin.
    assert!(db[3] >= db[2] - 0.5 && db[2] >= db[1] - 0.5, "PSNR follows upload among contributors: {db:?}");
}

#[test]
#[ignore = "minutes: a measurement on a clip of your own (LAYERP2P_CLIP, LAYERP2P_LAG_S, LAYERP2P_SEED_KBPS, LAYERP2P_QP)"]
fn video_psnr_follows_upload_on_your_clip() {
    assert!(ffmpeg_available(), "ffmpeg is needed");
    let var = |k: &str, d: u64| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
    let path = PathBuf::from(std::env::var("LAYERP2P_CLIP").expect("LAYERP2P_CLIP=clip.y4m"));
    let clip = load_clip(&path, var("LAYERP2P_QP", 30) as u8);
    let dir = temp_dir("video-measure");
    let judged = run_and_judge(
        &clip,
        var("LAYERP2P_SEED_KBPS", 2000) as u32,
        Duration::from_secs(var("LAYERP2P_LAG_S", 5)),
        &dir,
    );
    if std::env::var_os("LAYERP2P_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let line: Vec<String> = judged
        .iter()
        .map(|j| format!("{} kbps {:.2} dB ({:.2} from {SETTLED_SECS} s)", j.upload, j.psnr, j.psnr_settled))
        .collect();
    println!("{}", line.join(", "));
}

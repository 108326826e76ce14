//! Real video as an `LcSource`: a seed's ingest from the built-in clip, a Y4M file or
//! pipe (encoded here with OpenH264), or an H.264 Annex B file or pipe (classified,
//! not re-encoded). Owns pacing (frame n is released at its decode time n / fps,
//! which is also its media time) and the layer plan measured from a lookahead.
//!
//! A pipe is read as frames fall due, inside `lcs_until`; a driver that must not block
//! wraps the source in `ThreadedSource`, which reads ahead on its own thread.

use super::annexb::{AccessUnit, AnnexBError, AnnexBReader};
use super::picture::{FrameRate, Picture, Resolution};
use super::y4m::{Y4mError, Y4mReader};
use crate::chunk::{Lc, MediaTime};
use crate::layer::{Kbps, LayerPlan, PlanError};
use crate::packetize::{Frame, PacketizeError, Packetizer};
use crate::source::LcSource;
use std::collections::VecDeque;
use std::io::{BufRead, Read};

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Y4m(#[from] Y4mError),
    #[error("H.264 input: {0}")]
    AnnexB(#[from] AnnexBError),
    #[cfg(feature = "h264")]
    #[error(transparent)]
    Codec(#[from] super::CodecError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Packetize(#[from] PacketizeError),
    #[error("the input holds no frame")]
    Empty,
    #[error("input is neither Y4M (YUV4MPEG2 header) nor H.264 Annex B (00 00 01 start codes)")]
    UnknownFormat,
}

/// Where coded frames come from.
pub trait UnitFeed: Send + std::fmt::Debug {
    /// The next access unit in decode order; `None` at the end.
    fn next_unit(&mut self) -> Result<Option<AccessUnit>, SourceError>;

    /// The plan is announced at `full` kbps: a feed that encodes keeps to it if it
    /// can (others cannot change their content, and ignore it).
    fn hold_rate(&mut self, _full: Kbps) {}
}

/// Pictures to encode.
pub trait PictureFeed: Send + std::fmt::Debug {
    fn next_picture(&mut self) -> Result<Option<Picture>, SourceError>;
}

/// The built-in clip: endless, or `frames` long.
#[derive(Debug)]
pub struct ClipFeed {
    pub resolution: Resolution,
    pub next: u32,
    pub frames: Option<u32>,
}

impl PictureFeed for ClipFeed {
    fn next_picture(&mut self) -> Result<Option<Picture>, SourceError> {
        if self.frames.is_some_and(|f| self.next >= f) {
            return Ok(None);
        }
        let p = super::clip::frame(self.resolution, self.next);
        self.next = self.next.wrapping_add(1);
        Ok(Some(p))
    }
}

impl<R: BufRead + Send + std::fmt::Debug> PictureFeed for Y4mReader<R> {
    fn next_picture(&mut self) -> Result<Option<Picture>, SourceError> {
        Ok(Y4mReader::next_picture(self)?)
    }
}

/// Pictures encoded on the fly.
#[cfg(feature = "h264")]
#[derive(Debug)]
pub struct EncodingFeed<P> {
    pub pictures: P,
    pub encoder: super::encoder::Encoder,
    /// Hold the stream to the plan by the quantiser (`UnitFeed::hold_rate`).
    pub hold: Option<RateHold>,
}

/// Rate control over the live encoder: every intra period (an IDR boundary, where a
/// new encoder changes nothing a decoder can see but the QP) the rate of the period
/// just encoded is compared with the plan's full rate; above it the QP goes up by 2,
/// well below it (60 %) down by 1, never below the QP the user asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateHold {
    pub full: Kbps,
    pub min_qp: u8,
    bytes: u64,
    frames: u32,
}

#[cfg(feature = "h264")]
impl<P: PictureFeed> UnitFeed for EncodingFeed<P> {
    fn next_unit(&mut self) -> Result<Option<AccessUnit>, SourceError> {
        let Some(p) = self.pictures.next_picture()? else { return Ok(None) };
        let cfg = self.encoder.config().clone();
        if let Some(h) = self.hold.as_mut().filter(|h| h.frames >= cfg.intra_period) {
            let kbps = Kbps::from_bytes_over(h.bytes, cfg.rate.frame_start_us(h.frames as u64).max(1));
            let qp = if kbps > h.full {
                cfg.qp.saturating_add(2).min(51)
            } else if (kbps.0 as u64) * 10 < (h.full.0 as u64) * 6 {
                cfg.qp.saturating_sub(1).max(h.min_qp)
            } else {
                cfg.qp
            };
            if qp != cfg.qp {
                self.encoder = super::encoder::Encoder::new(super::encoder::EncoderConfig { qp, ..cfg })?;
            }
            (h.bytes, h.frames) = (0, 0);
        }
        let unit = self.encoder.encode(&p)?;
        if let Some(h) = self.hold.as_mut() {
            h.bytes += unit.len() as u64;
            h.frames += 1;
        }
        Ok(Some(unit))
    }

    fn hold_rate(&mut self, full: Kbps) {
        let frames = self.encoder.frames_encoded() as u32;
        let min_qp = self.encoder.config().qp;
        // Counted from the last IDR, so the QP only ever changes at one.
        let period = self.encoder.config().intra_period.max(1);
        self.hold = Some(RateHold { full, min_qp, bytes: 0, frames: frames % period });
    }
}

impl<R: Read + Send + std::fmt::Debug> UnitFeed for AnnexBReader<R> {
    fn next_unit(&mut self) -> Result<Option<AccessUnit>, SourceError> {
        Ok(AnnexBReader::next_unit(self)?)
    }
}

/// Access units already in memory, played once or looped.
#[derive(Debug)]
pub struct ReplayFeed {
    units: Vec<AccessUnit>,
    at: usize,
    looping: bool,
}

impl ReplayFeed {
    /// Looping restarts at the first unit, which should be an IDR.
    pub fn new(units: Vec<AccessUnit>, looping: bool) -> ReplayFeed {
        ReplayFeed { units, at: 0, looping }
    }
}

impl UnitFeed for ReplayFeed {
    fn next_unit(&mut self) -> Result<Option<AccessUnit>, SourceError> {
        if self.at >= self.units.len() {
            if !self.looping || self.units.is_empty() {
                return Ok(None);
            }
            self.at = 0;
        }
        self.at += 1;
        Ok(Some(self.units[self.at - 1].clone()))
    }
}

/// The plan announces each layer's measured rate plus this share, so that ordinary
/// variation of the content (an IDR more or less in a window) stays within it.
pub const PLAN_HEADROOM_PERCENT: u64 = 10;
/// Span of the sliding window the live rate is checked over, against the plan.
pub const RATE_WINDOW: std::time::Duration = std::time::Duration::from_secs(4);
/// A layer running this much above its planned rate over the window is reported.
pub const OVERRUN_PERCENT: u64 = 25;

/// The content ran well above the plan every node was given (the plan cannot change
/// without moving the channel): the swarm is asked for more than it was sized for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanOverrun {
    /// Frame the window ended at.
    pub frame: u32,
    pub measured: Vec<Kbps>,
    pub plan: Vec<Kbps>,
}

impl std::fmt::Display for PlanOverrun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |v: &[Kbps]| v.iter().map(|k| k.0.to_string()).collect::<Vec<_>>().join(",");
        write!(
            f,
            "video input runs above its plan: {} kbps per layer over the {} s to frame {}, against the announced {}. \
             The swarm is overloaded and viewers lose frames. Restart the seed with a stream that keeps its rate: \
             a higher --qp, or H.264 input encoded with a rate cap (x264/ffmpeg: -maxrate and -bufsize).",
            list(&self.measured),
            RATE_WINDOW.as_secs(),
            self.frame,
            list(&self.plan)
        )
    }
}

/// What makes an input stream poorly: found in the frames the plan is measured on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IngestWarning {
    /// Every frame is in the base layer (all I/P, no B frames and no temporal layers):
    /// a viewer cannot drop anything and keep the rest, so quality cannot follow upload.
    NoUpperLayers,
    /// NAL units larger than an LC: losing any of its LCs loses the whole slice.
    LongNalUnits { largest: usize, share_percent: u64 },
}

impl std::fmt::Display for IngestWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IngestWarning::NoUpperLayers => write!(
                f,
                "the input has no layers above the base (no B frames, no temporal layers): every viewer needs \
                 all of it. Encode with B frames as references (x264: --bframes 3 --b-pyramid normal; ffmpeg: \
                 -c:v libx264 -bf 3 -b_strategy 0 -x264-params b-pyramid=normal), or give Y4M and let the seed encode"
            ),
            IngestWarning::LongNalUnits { largest, share_percent } => write!(
                f,
                "{share_percent} % of the input's bytes are in NAL units longer than an LC (largest {largest} bytes): \
                 one lost LC loses the whole slice. Cap slices (x264: --slice-max-size 1150; ffmpeg: \
                 -x264-params slice-max-size=1150)"
            ),
        }
    }
}

/// Per-layer bytes of the frames released over the last `RATE_WINDOW`.
#[derive(Debug)]
struct RateWindow {
    frames: VecDeque<(usize, u64)>,
    bytes: Vec<u64>,
    span: usize,
    /// Frames since the last check.
    since_check: usize,
}

impl RateWindow {
    fn new(layers: usize, rate: FrameRate) -> RateWindow {
        let span = (RATE_WINDOW.as_secs_f64() * rate.as_f64()).ceil().max(1.0) as usize;
        RateWindow { frames: VecDeque::with_capacity(span + 1), bytes: vec![0; layers], span, since_check: 0 }
    }

    /// Adds a frame; once per full window, the rates over it.
    fn add(&mut self, layer: usize, len: u64, rate: FrameRate) -> Option<Vec<Kbps>> {
        self.frames.push_back((layer, len));
        self.bytes[layer] += len;
        if self.frames.len() > self.span
            && let Some((l, b)) = self.frames.pop_front()
        {
            self.bytes[l] -= b;
        }
        self.since_check += 1;
        if self.since_check < self.span || self.frames.len() < self.span {
            return None;
        }
        self.since_check = 0;
        let micros = rate.frame_start_us(self.span as u64).max(1);
        Some(self.bytes.iter().map(|&b| Kbps::from_bytes_over(b, micros)).collect())
    }
}

/// A live layered stream from a `UnitFeed`, paced at the frame rate.
#[derive(Debug)]
pub struct VideoSource {
    feed: Box<dyn UnitFeed>,
    rate: FrameRate,
    plan: LayerPlan,
    packetizer: Packetizer,
    lookahead: VecDeque<AccessUnit>,
    next: u32,
    ended: bool,
    error: Option<SourceError>,
    window: RateWindow,
    overrun: Option<PlanOverrun>,
    warnings: Vec<IngestWarning>,
}

impl VideoSource {
    /// Reads `lookahead` frames (at least one) to measure each layer's rate; the plan
    /// is that plus `PLAN_HEADROOM_PERCENT`. A layer absent from the lookahead gets
    /// 1 kbps. While it runs, the rate over a sliding `RATE_WINDOW` is checked against
    /// the plan (`take_overrun`).
    pub fn new(
        mut feed: Box<dyn UnitFeed>,
        rate: FrameRate,
        layers: usize,
        lookahead: usize,
    ) -> Result<VideoSource, SourceError> {
        let mut ahead = VecDeque::new();
        while ahead.len() < lookahead.max(1) {
            match feed.next_unit()? {
                Some(u) => ahead.push_back(u),
                None => break,
            }
        }
        if ahead.is_empty() {
            return Err(SourceError::Empty);
        }
        let layers = layers.clamp(1, crate::layer::MAX_LAYERS);
        let mut bytes = vec![0u64; layers];
        for u in &ahead {
            bytes[u.layer.index().min(layers - 1)] += u.len() as u64;
        }
        let micros = rate.frame_start_us(ahead.len() as u64).max(1);
        let with_headroom = |b: u64| b.saturating_mul(100 + PLAN_HEADROOM_PERCENT) / 100;
        let plan = LayerPlan::new(
            bytes.iter().map(|&b| Kbps(Kbps::from_bytes_over(with_headroom(b), micros).0.max(1))).collect(),
        )?;
        Ok(VideoSource {
            feed,
            rate,
            plan,
            packetizer: Packetizer::new(layers),
            next: 0,
            ended: false,
            error: None,
            window: RateWindow::new(layers, rate),
            overrun: None,
            warnings: ingest_warnings(&ahead, layers),
            lookahead: ahead,
        })
    }

    /// From now on the feed keeps its content within the plan if it encodes (Y4M
    /// input: the QP follows the rate), so the swarm gets what it was sized for.
    pub fn hold_plan(&mut self) {
        self.feed.hold_rate(self.plan.full_rate());
    }

    /// What the measured frames say about the input's fitness for layered streaming.
    pub fn warnings(&self) -> &[IngestWarning] {
        &self.warnings
    }

    /// The latest time the content ran `OVERRUN_PERCENT` above the plan over a
    /// window, once.
    pub fn take_overrun(&mut self) -> Option<PlanOverrun> {
        self.overrun.take()
    }

    pub fn frame_rate(&self) -> FrameRate {
        self.rate
    }

    /// Frames released so far.
    pub fn frames(&self) -> u32 {
        self.next
    }

    /// The input ended (or failed).
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Why the input stopped early, if it did.
    pub fn error(&self) -> Option<&SourceError> {
        self.error.as_ref()
    }

    fn next_unit(&mut self) -> Option<AccessUnit> {
        if let Some(u) = self.lookahead.pop_front() {
            return Some(u);
        }
        match self.feed.next_unit() {
            Ok(u) => u,
            Err(e) => {
                self.error = Some(e);
                None
            }
        }
    }
}

impl crate::source::LcSource for VideoSource {
    fn plan(&self) -> &LayerPlan {
        &self.plan
    }

    fn lcs_until(&mut self, until: MediaTime, out: &mut Vec<Lc>) {
        while !self.ended && self.rate.frame_start_us(self.next as u64) < until.0 {
            let Some(unit) = self.next_unit() else {
                self.ended = true;
                break;
            };
            let layer = unit.layer.index().min(self.window.bytes.len() - 1);
            if let Some(measured) = self.window.add(layer, unit.len() as u64, self.rate) {
                let plan = self.plan.rates();
                if measured.iter().zip(plan).any(|(m, p)| m.0 as u64 * 100 > p.0 as u64 * (100 + OVERRUN_PERCENT)) {
                    self.overrun = Some(PlanOverrun { frame: self.next, measured, plan: plan.to_vec() });
                }
            }
            let frame = Frame {
                number: self.next,
                layer: unit.layer,
                time: MediaTime(self.rate.frame_start_us(self.next as u64)),
                units: unit.units,
            };
            match self.packetizer.packetize(&frame) {
                Ok(lcs) => out.extend(lcs),
                Err(e) => {
                    self.error = Some(e.into());
                    self.ended = true;
                }
            }
            self.next = self.next.wrapping_add(1);
        }
    }
}

fn ingest_warnings(ahead: &VecDeque<AccessUnit>, layers: usize) -> Vec<IngestWarning> {
    let mut warnings = Vec::new();
    if layers > 1 && ahead.len() > 1 && ahead.iter().all(|u| u.layer.index() == 0) {
        warnings.push(IngestWarning::NoUpperLayers);
    }
    let units = ahead.iter().flat_map(|u| &u.units);
    let total: u64 = units.clone().map(|u| u.len() as u64).sum();
    let long: Vec<usize> = units.map(|u| u.len()).filter(|&n| n > crate::chunk::MAX_LC_PAYLOAD).collect();
    let long_bytes: u64 = long.iter().map(|&n| n as u64).sum();
    // A few long units (an IDR's) cost little; most of the stream in them is the problem.
    if long_bytes * 5 > total {
        warnings.push(IngestWarning::LongNalUnits {
            largest: long.iter().copied().max().unwrap_or(0),
            share_percent: long_bytes * 100 / total.max(1),
        });
    }
    warnings
}

/// The built-in clip encoded live: endless unless `frames` is set.
#[cfg(feature = "h264")]
pub fn clip_source(cfg: super::encoder::EncoderConfig, frames: Option<u32>) -> Result<VideoSource, SourceError> {
    let (rate, layers, lookahead) = (cfg.rate, cfg.layers, cfg.intra_period as usize);
    let feed = EncodingFeed {
        pictures: ClipFeed { resolution: cfg.resolution, next: 0, frames },
        encoder: super::encoder::Encoder::new(cfg)?,
        hold: None,
    };
    VideoSource::new(Box::new(feed), rate, layers, lookahead)
}

/// A Y4M input (file or pipe) encoded live with `qp`, `layers`, `intra_period`.
#[cfg(feature = "h264")]
pub fn y4m_source<R: BufRead + Send + std::fmt::Debug + 'static>(
    input: R,
    qp: u8,
    layers: usize,
    intra_period: u32,
) -> Result<VideoSource, SourceError> {
    let reader = Y4mReader::new(input)?;
    let rate = reader.frame_rate();
    let cfg = super::encoder::EncoderConfig { resolution: reader.resolution(), rate, qp, layers, intra_period };
    let feed = EncodingFeed { pictures: reader, encoder: super::encoder::Encoder::new(cfg)?, hold: None };
    let mut source = VideoSource::new(Box::new(feed), rate, layers, intra_period as usize)?;
    source.hold_plan();
    Ok(source)
}

/// An H.264 Annex B input (file or pipe), frames classified into `layers` layers,
/// paced at `rate` (Annex B carries no timing). The plan is measured over
/// `lookahead` frames.
pub fn annexb_source<R: Read + Send + std::fmt::Debug + 'static>(
    input: R,
    rate: FrameRate,
    layers: usize,
    lookahead: usize,
) -> Result<VideoSource, SourceError> {
    VideoSource::new(Box::new(AnnexBReader::new(input, layers)), rate, layers, lookahead)
}

/// Frames a `ThreadedSource` reads ahead of the caller at most.
pub const READ_AHEAD_FRAMES: usize = 256;

/// A `VideoSource` run on its own thread, a frame at a time up to
/// `READ_AHEAD_FRAMES` ahead, so a slow or blocking input (a live pipe) never stalls
/// the caller's `lcs_until`: frames not read yet simply come later.
#[derive(Debug)]
pub struct ThreadedSource {
    plan: LayerPlan,
    rx: std::sync::mpsc::Receiver<(MediaTime, Vec<Lc>)>,
    /// A frame received but not yet due.
    held: Option<(MediaTime, Vec<Lc>)>,
    ended: bool,
}

impl ThreadedSource {
    /// Starts the reading thread. When the input ends or fails, the thread stops; the
    /// failure is printed on stderr.
    pub fn spawn(mut source: VideoSource) -> std::io::Result<ThreadedSource> {
        let plan = source.plan.clone();
        let (tx, rx) = std::sync::mpsc::sync_channel(READ_AHEAD_FRAMES);
        std::thread::Builder::new().name("layerp2p-video-input".into()).spawn(move || {
            let mut lcs = Vec::new();
            loop {
                let time = MediaTime(source.rate.frame_start_us(source.next as u64));
                source.lcs_until(MediaTime(time.0 + 1), &mut lcs);
                if let Some(overrun) = source.take_overrun() {
                    eprintln!("{overrun}");
                }
                if source.ended() && lcs.is_empty() {
                    let played = source.rate.frame_start_us(source.next as u64) as f64 / 1e6;
                    match source.error() {
                        Some(e) => eprintln!("video input stopped after {} frames ({played:.1} s): {e}", source.next),
                        None => eprintln!(
                            "video input ended after {} frames ({played:.1} s of video): nothing more to stream",
                            source.next
                        ),
                    }
                    return;
                }
                // The receiver is gone: nobody wants more frames.
                if tx.send((time, std::mem::take(&mut lcs))).is_err() {
                    return;
                }
            }
        })?;
        Ok(ThreadedSource { plan, rx, held: None, ended: false })
    }

    /// The input ended and every frame has been handed out.
    pub fn ended(&self) -> bool {
        self.ended && self.held.is_none()
    }
}

impl crate::source::LcSource for ThreadedSource {
    fn plan(&self) -> &LayerPlan {
        &self.plan
    }

    fn lcs_until(&mut self, until: MediaTime, out: &mut Vec<Lc>) {
        loop {
            let next = match self.held.take() {
                Some(f) => f,
                None => match self.rx.try_recv() {
                    Ok(f) => f,
                    Err(std::sync::mpsc::TryRecvError::Empty) => return,
                    Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                        self.ended = true;
                        return;
                    }
                },
            };
            if next.0 >= until {
                self.held = Some(next);
                return;
            }
            out.extend(next.1);
        }
    }
}

/// A boxed byte input (file or stdin) that the feeds can own.
pub struct Input(pub Box<dyn BufRead + Send>);

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Input")
    }
}

impl Read for Input {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl BufRead for Input {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        self.0.fill_buf()
    }

    fn consume(&mut self, n: usize) {
        self.0.consume(n)
    }
}

/// How a seed turns its `--input` into LCs.
#[derive(Clone, Debug, PartialEq)]
pub struct InputOptions {
    /// Layers to produce (encoder temporal layers, or Annex B classification).
    pub layers: usize,
    /// Encoder quantiser for Y4M input.
    pub qp: u8,
    /// Frames between IDRs for Y4M input; also the plan's lookahead.
    pub intra_period: u32,
    /// Frame rate of Annex B input (Y4M carries its own).
    pub annexb_rate: FrameRate,
}

impl Default for InputOptions {
    fn default() -> InputOptions {
        InputOptions { layers: 3, qp: 30, intra_period: 64, annexb_rate: FrameRate::FPS_30 }
    }
}

/// What an input holds, from its first bytes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum InputFormat {
    Y4m,
    AnnexB,
}

/// Recognises Y4M (`YUV4MPEG2`) or Annex B (a start code after zero bytes).
pub fn sniff(input: &mut Input) -> Result<InputFormat, SourceError> {
    let head = input.fill_buf().map_err(|e| SourceError::AnnexB(e.into()))?;
    if head.starts_with(b"YUV4MPEG2") {
        return Ok(InputFormat::Y4m);
    }
    let zeros = head.iter().take_while(|&&b| b == 0).count();
    if zeros >= 2 && head.get(zeros) == Some(&1) {
        return Ok(InputFormat::AnnexB);
    }
    Err(SourceError::UnknownFormat)
}

/// A seed's source from a file or stdin holding Y4M (encoded here) or H.264 Annex B.
#[cfg(feature = "h264")]
pub fn input_source(mut input: Input, opts: &InputOptions) -> Result<VideoSource, SourceError> {
    match sniff(&mut input)? {
        InputFormat::Y4m => y4m_source(input, opts.qp, opts.layers, opts.intra_period),
        InputFormat::AnnexB => annexb_source(input, opts.annexb_rate, opts.layers, opts.intra_period as usize),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::LayerId;

    use bytes::Bytes;

    fn unit(layer: u8, len: usize) -> AccessUnit {
        AccessUnit {
            layer: LayerId::new(layer).expect("layer"),
            idr: layer == 1,
            units: vec![Bytes::from(vec![0x11; len])],
        }
    }

    #[test]
    fn paces_frames_at_decode_time_and_measures_the_plan() {
        // 1 s at 4 fps: layer 1 = 1000 B/s, layer 2 = 500, layer 3 = 1000.
        let units = vec![unit(1, 1000), unit(3, 500), unit(2, 500), unit(3, 500)];
        let rate = FrameRate::per_second(4).expect("fps");
        let mut src = VideoSource::new(Box::new(ReplayFeed::new(units, true)), rate, 3, 4).expect("source");
        // Measured 8, 4, 8 kbps; announced with 10 % headroom.
        assert_eq!(src.plan().rates(), &[Kbps(8), Kbps(4), Kbps(8)].map(|k| Kbps(k.0 * 11 / 10)));
        let mut out = Vec::new();
        src.lcs_until(MediaTime(500_000), &mut out);
        // Frames at 0 and 250 ms are due before 500 ms.
        assert_eq!(out.iter().map(|lc| lc.header.frame).collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(out[1].header.time, MediaTime(250_000));
        src.lcs_until(MediaTime(2_000_001), &mut out);
        // Looping: frames keep their count up across the loop.
        assert_eq!(out.last().map(|lc| lc.header.frame), Some(8));
        assert_eq!(out.last().map(|lc| lc.header.id.layer.get()), Some(1));
    }

    #[test]
    fn an_input_without_layers_or_with_long_slices_is_warned_about() {
        let rate = FrameRate::per_second(10).expect("fps");
        let source = |units: Vec<AccessUnit>| VideoSource::new(Box::new(ReplayFeed::new(units, false)), rate, 3, 8);
        let layered = source((0..8).map(|i| unit([1, 3, 2, 3][i % 4], 800)).collect()).expect("source");
        assert_eq!(layered.warnings(), &[]);
        let all_p = source((0..8).map(|_| unit(1, 800)).collect()).expect("source");
        assert_eq!(all_p.warnings(), &[IngestWarning::NoUpperLayers]);
        let long = source((0..8).map(|i| unit([1, 3, 2, 3][i % 4], 5000)).collect()).expect("source");
        assert_eq!(long.warnings(), &[IngestWarning::LongNalUnits { largest: 5000, share_percent: 100 }]);
        assert!(long.warnings()[0].to_string().contains("slice-max-size"));
    }

    #[test]
    fn content_above_the_plan_is_reported_over_a_sliding_window() {
        // The plan is measured on 4 quiet frames; then the base layer grows fourfold.
        let rate = FrameRate::per_second(10).expect("fps");
        let units: Vec<AccessUnit> =
            (0..100).map(|i| unit([1, 3, 2, 3][i % 4], if i < 40 { 100 } else { 400 })).collect();
        let mut src = VideoSource::new(Box::new(ReplayFeed::new(units, false)), rate, 3, 4).expect("source");
        let mut out = Vec::new();
        src.lcs_until(MediaTime(3_900_000), &mut out);
        assert_eq!(src.take_overrun(), None, "within the plan");
        src.lcs_until(MediaTime(u64::MAX), &mut out);
        let overrun = src.take_overrun().expect("reported");
        assert_eq!(overrun.plan, src.plan().rates());
        assert!(overrun.measured[0].0 >= 3 * overrun.plan[0].0, "{overrun}");
        assert!(overrun.to_string().contains("-maxrate"));
    }

    #[test]
    fn finite_input_ends_and_empty_input_is_refused() {
        let rate = FrameRate::per_second(10).expect("fps");
        let mut src =
            VideoSource::new(Box::new(ReplayFeed::new(vec![unit(1, 10)], false)), rate, 3, 8).expect("source");
        let mut out = Vec::new();
        src.lcs_until(MediaTime(10_000_000), &mut out);
        assert_eq!(out.len(), 1);
        assert!(src.ended() && src.error().is_none());
        assert!(matches!(
            VideoSource::new(Box::new(ReplayFeed::new(vec![], false)), rate, 3, 8),
            Err(SourceError::Empty)
        ));
        assert!(matches!(annexb_source(&b"junk"[..], rate, 3, 8), Err(SourceError::AnnexB(_))));
    }

    #[test]
    fn threaded_source_hands_out_the_same_frames_in_order() {
        let units: Vec<AccessUnit> = (0..40).map(|i| unit([1, 3, 2, 3][i % 4], 100 + i)).collect();
        let rate = FrameRate::per_second(10).expect("fps");
        let direct_src =
            || VideoSource::new(Box::new(ReplayFeed::new(units.clone(), false)), rate, 3, 8).expect("source");
        let mut direct = direct_src();
        let mut expect = Vec::new();
        direct.lcs_until(MediaTime(u64::MAX), &mut expect);
        let mut threaded = ThreadedSource::spawn(direct_src()).expect("thread");
        assert_eq!(threaded.plan(), direct.plan());
        let mut got = Vec::new();
        // Frames come no earlier than due: at 1.05 s, frames 0..=10 (0.0 .. 1.0 s).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while got.len() < 11 && std::time::Instant::now() < deadline {
            threaded.lcs_until(MediaTime(1_050_000), &mut got);
            std::thread::yield_now();
        }
        assert_eq!(got.len(), 11);
        while !threaded.ended() && std::time::Instant::now() < deadline {
            threaded.lcs_until(MediaTime(u64::MAX), &mut got);
            std::thread::yield_now();
        }
        assert!(threaded.ended());
        assert_eq!(got, expect);
    }

    #[test]
    fn sniffs_the_input_format() {
        let input = |b: &'static [u8]| Input(Box::new(b));
        assert_eq!(sniff(&mut input(b"YUV4MPEG2 W2 H2\n")).ok(), Some(InputFormat::Y4m));
        assert_eq!(sniff(&mut input(&[0, 0, 0, 1, 0x67])).ok(), Some(InputFormat::AnnexB));
        assert_eq!(sniff(&mut input(&[0, 0, 1, 0x67])).ok(), Some(InputFormat::AnnexB));
        assert!(matches!(sniff(&mut input(b"RIFF....")), Err(SourceError::UnknownFormat)));
        assert!(matches!(sniff(&mut input(b"")), Err(SourceError::UnknownFormat)));
    }

    /// QCIF pictures of noise whose amplitude grows from `from` to `to` over `n` frames.
    #[cfg(feature = "h264")]
    fn growing_noise(n: u32, from: u32, to: u32) -> Vec<Picture> {
        let mut x: u32 = 1;
        (0..n)
            .map(|i| {
                let amplitude = from + (to - from) * i / n;
                let mut p = Picture::filled(Resolution::QCIF, 128);
                let (y, _, _) = p.planes_mut();
                for v in y.iter_mut() {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    *v = (128 + (x >> 16) % (2 * amplitude + 1) - amplitude) as u8;
                }
                p
            })
            .collect()
    }

    #[cfg(feature = "h264")]
    #[derive(Debug)]
    struct Pictures(std::vec::IntoIter<Picture>);

    #[cfg(feature = "h264")]
    impl PictureFeed for Pictures {
        fn next_picture(&mut self) -> Result<Option<Picture>, SourceError> {
            Ok(self.0.next())
        }
    }

    #[cfg(feature = "h264")]
    #[test]
    fn a_held_encoder_keeps_growing_content_near_its_plan() {
        use crate::video::encoder::{Encoder, EncoderConfig};
        let rate = FrameRate::per_second(25).expect("fps");
        let cfg = EncoderConfig { qp: 30, intra_period: 16, ..EncoderConfig::new(Resolution::QCIF, rate) };
        // Rate of the last 32 frames, held or not, against the plan's full rate.
        let last_rate = |hold: bool| {
            let feed = EncodingFeed {
                pictures: Pictures(growing_noise(160, 12, 48).into_iter()),
                encoder: Encoder::new(cfg.clone()).expect("encoder"),
                hold: None,
            };
            let mut src = VideoSource::new(Box::new(feed), rate, 3, 16).expect("source");
            if hold {
                src.hold_plan();
            }
            let mut out = Vec::new();
            src.lcs_until(MediaTime(u64::MAX), &mut out);
            let tail: u64 = out.iter().filter(|lc| lc.header.frame >= 128).map(|lc| lc.payload.len() as u64).sum();
            (Kbps::from_bytes_over(tail, rate.frame_start_us(32)), src.plan().full_rate())
        };
        let (free, plan) = last_rate(false);
        let (held, _) = last_rate(true);
        assert!(free.0 > 2 * plan.0, "the content outgrows its plan: {free:?} against {plan:?}");
        assert!(held.0 * 2 < free.0 && held.0 * 10 < plan.0 * 16, "held: {held:?} against {plan:?} (free {free:?})");
    }

    #[cfg(feature = "h264")]
    #[test]
    fn y4m_input_is_encoded_into_three_layers() {
        use crate::video::picture::Resolution;
        use crate::video::y4m::Y4mWriter;
        let rate = FrameRate::per_second(30).expect("fps");
        let mut w = Y4mWriter::new(Vec::new(), Resolution::QCIF, rate).expect("header");
        for p in crate::video::clip::frames(Resolution::QCIF, 8) {
            w.write(&p).expect("frame");
        }
        let bytes: &'static [u8] = Box::leak(w.into_inner().into_boxed_slice());
        let opts = InputOptions { intra_period: 8, ..InputOptions::default() };
        let mut src = input_source(Input(Box::new(bytes)), &opts).expect("source");
        assert_eq!(src.plan().layers(), 3);
        let mut out = Vec::new();
        src.lcs_until(MediaTime(u64::MAX), &mut out);
        let layers: Vec<u8> = out.iter().filter(|lc| lc.header.part == 0).map(|lc| lc.header.id.layer.get()).collect();
        assert_eq!(layers, vec![1, 3, 2, 3, 1, 3, 2, 3]);
        assert!(src.ended() && src.error().is_none());
    }
}

//! Real video end to end over loopback UDP: the built-in clip, H.264-encoded with
//! three temporal layers, is fed from an `LcSource` into a seed; a tracker and three
//! viewers run on the glommio driver; one viewer's played LCs are reassembled into an
//! Annex B stream, which must decode, at good PSNR against the original clip. And the
//! deployable roles with real video and a channel key: a signed seed streaming the
//! clip, a viewer writing what it plays (`peer --output`), and a viewer with the wrong
//! key, which must find nobody and ban nobody.

mod common;

use common::roles::{free_port, run_for};
use glommio::LocalExecutorBuilder;
use layerp2p_codec::source::LcSource;
use layerp2p_codec::video::annexb::{AccessUnit, AnnexBReader};
use layerp2p_codec::video::decoder::Decoder;
use layerp2p_codec::video::droptest::TestClip;
use layerp2p_codec::video::encoder::EncoderConfig;
use layerp2p_codec::video::reassemble::{FrameState, OUTPUT_HOLD, Reassembler, StreamOutput};
use layerp2p_codec::video::score::Scorer;
use layerp2p_codec::video::source::{ReplayFeed, ThreadedSource, VideoSource, clip_source};
use layerp2p_codec::video::{FrameRate, Resolution};
use layerp2p_codec::{Kbps, MediaTime};
use layerp2p_engine::channel::channel_id;
use layerp2p_engine::integrity::ContentAuth;
use layerp2p_engine::runtime::driver::{Clock, drive};
use layerp2p_engine::runtime::playout::Playout;
use layerp2p_engine::runtime::role::NodeSpec;
use layerp2p_engine::udp;
use layerp2p_engine::{Event, Peer, PeerConfig, Policy, Tracker, TrackerConfig};
use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const FRAMES: u32 = 300; // 10 s at 30 fps
const RUN: Duration = Duration::from_secs(14);

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

#[test]
fn loopback_swarm_streams_real_video_that_decodes() {
    let rate = FrameRate::per_second(30).expect("fps");
    // An IDR every 32 frames (about 1 s), so a viewer can start soon after joining.
    let cfg = EncoderConfig { intra_period: 32, ..EncoderConfig::new(Resolution::QCIF, rate) };
    let clip = TestClip::encode(cfg, FRAMES).expect("encodes");
    let units: Vec<AccessUnit> = clip.units.clone();

    let (played, missed) = LocalExecutorBuilder::default()
        .spawn(move || async move {
            let source = VideoSource::new(Box::new(ReplayFeed::new(units, false)), rate, 3, 32).expect("source");
            let plan = source.plan().clone();
            let start = Instant::now();
            let clock = Clock::starting_at(start);
            let stop = Arc::new(AtomicBool::new(false));
            let mut tasks = Vec::new();

            let tracker_socket = udp::bind(loopback()).expect("bind");
            let tracker_addr = tracker_socket.local_addr().expect("addr");
            let tracker = Rc::new(RefCell::new(Tracker::new(TrackerConfig::default(), 1)));
            tasks.push(glommio::spawn_local(drive(tracker, tracker_socket, clock, stop.clone())));

            let lag = Duration::from_secs(3);
            let mut seed_cfg = PeerConfig::seed(Policy::LayerP2P, plan.clone(), Kbps(4000));
            seed_cfg.tracker = Some(tracker_addr);
            seed_cfg.lag = lag;
            let seed = Rc::new(RefCell::new(Peer::new(seed_cfg, 7, clock.now()).expect("seed")));
            // The seed's ingest: whatever the source has produced by now, as a live encoder.
            let (ingest_seed, ingest_stop) = (seed.clone(), stop.clone());
            let ingest = glommio::spawn_local(async move {
                let mut source = source;
                let mut buf = Vec::new();
                while !ingest_stop.load(Ordering::Relaxed) {
                    let now = clock.now();
                    source.lcs_until(MediaTime(now.0), &mut buf);
                    for lc in buf.drain(..) {
                        ingest_seed.borrow_mut().push_lc(now, lc).expect("window holds the lag");
                    }
                    glommio::timer::sleep(Duration::from_millis(20)).await;
                }
            });
            tasks.push(glommio::spawn_local(drive(seed, udp::bind(loopback()).expect("bind"), clock, stop.clone())));

            let mut viewers = Vec::new();
            for i in 0..3u64 {
                let mut pc = PeerConfig::peer(Policy::LayerP2P, plan.clone(), Kbps(1000));
                pc.tracker = Some(tracker_addr);
                pc.lag = lag;
                pc.startup = Duration::from_secs(1);
                pc.n_min = 2;
                pc.emit_playback = i == 0;
                let peer = Rc::new(RefCell::new(Peer::new(pc, 100 + i, clock.now()).expect("peer")));
                viewers.push(peer.clone());
                tasks.push(glommio::spawn_local(drive(
                    peer,
                    udp::bind(loopback()).expect("bind"),
                    clock,
                    stop.clone(),
                )));
            }

            // Collect viewer 0's playback while the swarm runs.
            let watcher = viewers[0].clone();
            let mut played = Vec::new();
            let mut missed = 0u64;
            while start.elapsed() < RUN {
                glommio::timer::sleep(Duration::from_millis(50)).await;
                while let Some(ev) = watcher.borrow_mut().poll_event() {
                    match ev {
                        Event::Played(lc) => played.push(lc),
                        Event::Missed(_) => missed += 1,
                        _ => {}
                    }
                }
            }
            stop.store(true, Ordering::Relaxed);
            ingest.await;
            for t in tasks {
                t.await;
            }
            (played, missed)
        })
        .expect("executor")
        .join()
        .expect("swarm ran");

    // `peer --output`: played LCs, in the order playback handed them over, become a stream.
    let mut output = StreamOutput::new(Vec::new());
    for lc in &played {
        output.played(lc).expect("in memory");
    }
    let (stream, _) = output.finish().expect("in memory");
    // The same LCs reassembled frame by frame, for scoring.
    let mut reassembler = Reassembler::new(OUTPUT_HOLD);
    let mut released = Vec::new();
    for lc in &played {
        reassembler.push(lc);
        released.extend(std::iter::from_fn(|| reassembler.pop()));
    }
    released.extend(reassembler.flush());
    let numbers: Vec<u32> = released.iter().map(|f| f.number).collect();
    assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "frames released in decode order without skipping");
    let complete = released.iter().filter(|f| f.state == FrameState::Complete).count();
    eprintln!("played {} LCs, missed {missed}, frames released {} ({complete} complete)", played.len(), released.len());
    // Viewer 0 joined at once and played from about `lag` on: most of 10 s of video.
    assert!(released.len() >= 150, "only {} frames played", released.len());
    assert!(complete as f64 >= 0.9 * released.len() as f64, "{complete} of {} frames complete", released.len());

    // The output stream decodes, frame for frame, from its first IDR on.
    let (units, pictures) = decode(&stream);
    assert!(units >= 120 && pictures as f64 >= 0.95 * units as f64, "{pictures} pictures from {units} frames");

    // PSNR against the original clip, from the first IDR played.
    let first = released.iter().position(|f| f.has_idr()).expect("an IDR was played");
    let mut scorer = Scorer::new(Resolution::QCIF, 3).expect("decoder");
    for f in &released[first..] {
        let n = f.number as usize;
        scorer.frame(Some(&f.data), clip.units[n].layer, &clip.originals[n]).expect("score");
    }
    let q = scorer.quality();
    eprintln!("viewer 0: {q}");
    assert!(q.overall().expect("frames") > 30.0, "{q}");
}

/// Decodes an Annex B stream a viewer wrote: (frames, pictures the decoder produced).
fn decode(stream: &[u8]) -> (usize, usize) {
    let mut reader = AnnexBReader::new(stream, 3);
    let mut decoder = Decoder::new().expect("decoder");
    let (mut units, mut pictures) = (0, 0);
    while let Some(au) = reader.next_unit().expect("output is valid Annex B") {
        units += 1;
        pictures += usize::from(decoder.decode(&au.to_annexb()).expect("decode").is_some());
    }
    (units, pictures)
}

#[test]
fn signed_clip_seed_feeds_a_viewer_output_and_a_wrong_key_viewer_finds_nobody() {
    let rate = FrameRate::per_second(30).expect("fps");
    let clip = EncoderConfig { intra_period: 32, ..EncoderConfig::new(Resolution::QCIF, rate) };
    let source = ThreadedSource::spawn(clip_source(clip, None).expect("clip")).expect("reader");
    let plan = source.plan().clone();
    let key = ContentAuth::signing_key([3; 32]);
    let wrong = ContentAuth::signing_key([4; 32]).verifying_key();
    let tracker = free_port();
    let spec = |pc: PeerConfig, embedded_tracker, rng_seed| NodeSpec {
        peer: pc,
        listen: loopback(),
        shards: 1,
        embedded_tracker,
        first_core: 0,
        rng_seed,
    };
    let member = |auth: ContentAuth| {
        let mut pc = PeerConfig::peer(Policy::LayerP2P, plan.clone(), Kbps(1000));
        pc.channel = channel_id(&plan, auth.verifying_key().as_ref());
        pc.content_auth = auth;
        pc.tracker = Some(tracker);
        pc.lag = Duration::from_secs(3);
        pc.startup = Duration::from_secs(1);
        pc
    };

    let mut seed = PeerConfig::seed(Policy::LayerP2P, plan.clone(), Kbps(3000));
    seed.channel = channel_id(&plan, Some(&key.verifying_key()));
    seed.content_auth = ContentAuth::Sign(key.clone());
    seed.tracker = Some(tracker);
    seed.lag = Duration::from_secs(3);
    let seed = run_for(spec(seed, Some(tracker), 1), Some(Box::new(source)), None, 13);
    std::thread::sleep(Duration::from_millis(300));
    let path = std::env::temp_dir().join(format!("layerp2p-output-{}.264", std::process::id()));
    let (playout, sink) = Playout::spawn(Box::new(std::fs::File::create(&path).expect("output file"))).expect("writer");
    let viewer = run_for(spec(member(ContentAuth::Verify(key.verifying_key())), None, 2), None, Some(sink), 12);
    let stranger = run_for(spec(member(ContentAuth::Verify(wrong)), None, 3), None, None, 12);

    let (viewer, stranger, seed) =
        (viewer.join().expect("viewer"), stranger.join().expect("stranger"), seed.join().expect("seed"));
    let report = playout.finish().expect("output written");
    let stream = std::fs::read(&path).expect("read output");
    let _ = std::fs::remove_file(&path);
    eprintln!("{}{}{}output: {report:?}", seed.text(), viewer.text(), stranger.text());

    // The viewer with the channel key wrote a stream that decodes from its first IDR on.
    let (units, pictures) = decode(&stream);
    assert!(units >= 90 && pictures as f64 >= 0.95 * units as f64, "{pictures} pictures from {units} frames");
    assert_eq!(report.lcs_dropped, 0);
    // The viewer with another key is in another channel: it got nothing, and nobody
    // banned anybody.
    assert_eq!((stranger.stats.lcs_down, stranger.stats.neighbours_banned), (0, 0), "{}", stranger.text());
    assert_eq!(viewer.stats.neighbours_banned + seed.stats.neighbours_banned, 0);
    assert_eq!(seed.tracker.as_ref().expect("embedded tracker").joins, 3, "seed, viewer and stranger registered");
}

/// The deterministic variant: the in-memory simulator with the real clip as the
/// seed's source; every viewer's playback log is scored against the original.
#[test]
fn simulated_swarm_with_real_video_scores_every_viewer() {
    use layerp2p_codec::video::droptest::score_played;
    use layerp2p_engine::sim::Swarm;
    use layerp2p_engine::sim::scenario::prototype;
    use layerp2p_engine::swarm::Mix;

    let rate = FrameRate::per_second(30).expect("fps");
    let cfg = EncoderConfig { intra_period: 32, ..EncoderConfig::new(Resolution::QCIF, rate) };
    let clip = TestClip::encode(cfg, 128).expect("encodes");
    let source = VideoSource::new(Box::new(ReplayFeed::new(clip.units.clone(), true)), rate, 3, 128).expect("source");
    let mut sc =
        prototype(Policy::LayerP2P, &Mix::underloaded(), 8, Duration::from_secs(5), Duration::from_secs(60), 3);
    sc.peer.plan = source.plan().clone();
    sc.peer.emit_playback = true;
    let mut swarm = Swarm::with_source(sc, Box::new(source)).expect("swarm");
    swarm.run_until(layerp2p_engine::Time::from_secs(60));
    let logs = swarm.take_playback();
    assert_eq!(logs.len(), 8, "every viewer logged its playback");
    let by_frame = clip.lcs_by_frame();
    for (_, class, log) in &logs {
        let q = score_played(&clip, &by_frame, log).expect("scores").expect("played");
        // Underloaded, a ~250 kbps stream: every viewer plays the 25-30 s from joining
        // to the end at full quality (30 s lag of a 60 s run).
        assert!(q.all.frames > 600, "class {class}: only {} frames", q.all.frames);
        assert!(q.overall().expect("frames") > 30.0, "class {class}: {q}");
    }
    let report = swarm.finish();
    assert!(report.classes.iter().all(|c| c.alpha_all > 0.95), "{}", report.table());
}

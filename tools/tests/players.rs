//! `peer --http` as a viewer uses it, from the binary on loopback: a seed streams an
//! H.264 clip ffmpeg made, a peer serves what it plays; ffprobe and ffmpeg open
//! `/stream.ts` mid-stream and decode frames while another client reads nothing;
//! `/status.json` moves; headless Chromium renders `/`.
//! Also: an address in use and a synthetic channel give clear errors.
//!
//! ffmpeg and chromium must be on PATH (.ci/run installs them); without them the test
//! says so and passes, unless `CI` is set. Every node is bounded by `--duration`
//! besides being killed on drop; every external tool runs under a deadline.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod common;

use common::{Node, free_tcp, free_udp, get, raw_http, strings};

const BIN: &str = env!("CARGO_BIN_EXE_layerp2p");

/// Runs `program` to completion, killed after `limit`.
fn run_bounded(program: &str, args: &[&str], limit: Duration) -> Output {
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} starts: {e}"));
    let pid = child.id();
    let (done, waited) = mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if waited.recv_timeout(limit).is_err() {
            // Still running past its deadline: end it (by its own pid only).
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
    });
    let out = child.wait_with_output().expect("waits");
    let _ = done.send(());
    let _ = watchdog.join();
    out
}

/// Whether `tool` runs; in CI it must.
fn available(tool: &str) -> bool {
    let found = Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success())
        || Command::new(tool).arg("-version").output().is_ok_and(|o| o.status.success());
    assert!(found || std::env::var_os("CI").is_none(), "{tool} is missing: .ci/run installs it");
    if !found {
        eprintln!("{tool} is not installed: skipping what needs it");
    }
    found
}

/// Starts the binary; stderr lines go to the returned channel (read on a thread so
/// the pipe never fills).
fn spawn(args: &[String]) -> (Node, mpsc::Receiver<String>) {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (Node(Some(child)), rx)
}

/// Polls `path` until it answers `status`, for at most `limit`.
fn wait_for(addr: SocketAddr, path: &str, status: u16, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        match get(addr, path) {
            Some((s, body)) if s == status => return body,
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    }
    panic!("{addr}{path} never answered {status}");
}

/// A seed of `video` flags with its own tracker on `tracker`, for `duration_s`.
fn seed(tracker: SocketAddr, video: &[&str], duration_s: &str) -> (Node, mpsc::Receiver<String>) {
    let tracker = tracker.to_string();
    let mut args = strings(&["seed", "--listen", "127.0.0.1:0", "--tracker-listen", &tracker, "--upload-kbps", "3000"]);
    args.extend(strings(video));
    args.extend(strings(&["--duration", duration_s]));
    spawn(&args)
}

/// The seed's `--plan`, from the line it logs at start.
fn seed_plan(lines: &mpsc::Receiver<String>) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Ok(line) = lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        if let Some(rest) = line.split_once("--plan ").map(|(_, r)| r) {
            return rest.split_whitespace().next().expect("a plan").to_string();
        }
    }
    panic!("the seed never printed its plan");
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("layerp2p-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// The peer's last status in `/status.json`.
fn last_status(addr: SocketAddr) -> serde_json::Value {
    let body = wait_for(addr, "/status.json", 200, Duration::from_secs(5));
    let v: serde_json::Value = serde_json::from_str(&body).expect("status.json is JSON");
    v["history"].as_array().and_then(|h| h.last()).cloned().unwrap_or(serde_json::Value::Null)
}

#[test]
fn players_decode_the_stream_and_the_status_page_renders() {
    if !available("ffmpeg") {
        return;
    }
    let dir = temp_dir("players");
    let clip = dir.join("clip.y4m");
    // 30 s of the test pattern; the seed encodes it live into 3 temporal layers of
    // H.264 (P frames only: decode order is presentation order), an IDR every 32 frames.
    let made = run_bounded(
        "ffmpeg",
        &[
            "-hide_banner",
            "-nostdin",
            "-y",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25",
            "-t",
            "30",
            "-pix_fmt",
            "yuv420p",
            "-f",
            "yuv4mpegpipe",
            clip.to_str().expect("utf-8"),
        ],
        Duration::from_secs(60),
    );
    assert!(made.status.success(), "ffmpeg made no clip: {}", String::from_utf8_lossy(&made.stderr));

    let tracker = free_udp();
    let http = free_tcp();
    let (_seed, seed_log) = seed(tracker, &["--input", clip.to_str().expect("utf-8"), "--intra-period", "32"], "40");
    let plan = seed_plan(&seed_log);
    let (_peer, _peer_log) = spawn(&strings(&[
        "peer",
        "--plan",
        &plan,
        "--tracker",
        &tracker.to_string(),
        "--listen",
        "127.0.0.1:0",
        "--upload-kbps",
        "700",
        "--lag",
        "2",
        "--http",
        &http.to_string(),
        "--duration",
        "40",
    ]));
    wait_for(http, "/status.json", 200, Duration::from_secs(20));
    assert_eq!(get(http, "/nowhere").map(|r| r.0), Some(404));
    assert_eq!(raw_http(http, b"NOT HTTP\r\n\r\n").map(|r| r.0), Some(400), "malformed request");
    assert_eq!(raw_http(http, b"POST /stream.ts HTTP/1.1\r\n\r\n").map(|r| r.0), Some(405));

    // A player that connects and never reads does not hold the others back (it is
    // dropped once PLAYER_BUFFER_BYTES behind: runtime::player's tests).
    let mut stalled = TcpStream::connect(http).expect("connects");
    stalled.write_all(b"GET /stream.ts HTTP/1.1\r\nHost: test\r\n\r\n").expect("request sent");

    let url = format!("http://{http}/stream.ts");
    let probe = run_bounded(
        "ffprobe",
        &["-v", "error", "-show_entries", "format=format_name:stream=codec_name,width,height", "-of", "compact", &url],
        Duration::from_secs(40),
    );
    let described = String::from_utf8_lossy(&probe.stdout);
    assert!(probe.status.success(), "ffprobe: {}", String::from_utf8_lossy(&probe.stderr));
    for want in ["codec_name=h264", "width=320", "height=240", "format_name=mpegts"] {
        assert!(described.contains(want), "ffprobe says {described}");
    }
    // Joining mid-stream: from the next IDR, with its parameter sets.
    let frames = 50;
    let decode = run_bounded(
        "ffmpeg",
        &["-nostdin", "-v", "error", "-i", &url, "-frames:v", "50", "-progress", "pipe:1", "-f", "null", "-"],
        Duration::from_secs(40),
    );
    let errors = String::from_utf8_lossy(&decode.stderr);
    assert!(decode.status.success(), "ffmpeg decoding /stream.ts: {errors}");
    for bad in ["non-existing PPS", "non-existing SPS", "no frame!", "Invalid NAL unit", "Packet corrupt"] {
        assert!(!errors.contains(bad), "a join at an IDR with its parameter sets decodes cleanly: {errors}");
    }
    let progress = String::from_utf8_lossy(&decode.stdout);
    let decoded: u64 =
        progress.lines().filter_map(|l| l.strip_prefix("frame=")?.trim().parse().ok()).max().unwrap_or(0);
    assert_eq!(decoded, frames, "frames decoded from /stream.ts: {progress}");

    let first = last_status(http);
    std::thread::sleep(Duration::from_secs(3));
    let second = last_status(http);
    let elapsed = |v: &serde_json::Value| v["elapsed_s"].as_f64().unwrap_or(0.0);
    assert!(elapsed(&second) > elapsed(&first), "status.json moves: {first} then {second}");
    let played: f64 = second["layer_kbps"].as_array().expect("layers").iter().filter_map(|v| v.as_f64()).sum();
    assert!(played > 50.0, "the peer plays the clip: {second}");
    let status: serde_json::Value =
        serde_json::from_str(&wait_for(http, "/status.json", 200, Duration::from_secs(5))).expect("JSON");
    assert_eq!(status["stream"], "h264");
    drop(stalled);

    if available("chromium") {
        render_page(http, &dir);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Headless Chromium: the page's script runs (the chart's lines are in the DOM) and a
/// screenshot is taken. `LAYERP2P_SCREENSHOT=path` keeps a copy (docs/img/).
fn render_page(http: SocketAddr, dir: &Path) {
    let url = format!("http://{http}/");
    let profile = dir.join("chromium-profile");
    let profile_flag = format!("--user-data-dir={}", profile.display());
    let common = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", &profile_flag];
    let mut dom_args = common.to_vec();
    dom_args.extend(["--virtual-time-budget=4000", "--dump-dom", &url]);
    let dom = run_bounded("chromium", &dom_args, Duration::from_secs(60));
    let dom_text = String::from_utf8_lossy(&dom.stdout);
    assert!(dom_text.contains("<polyline"), "the chart has lines: {dom_text}");
    assert!(dom_text.contains("layer 1"), "the legend names the layers");

    let png = dir.join("page.png");
    let shot_flag = format!("--screenshot={}", png.display());
    let mut shot_args = common.to_vec();
    shot_args.extend(["--window-size=1000,580", "--virtual-time-budget=4000", &shot_flag, &url]);
    let shot = run_bounded("chromium", &shot_args, Duration::from_secs(60));
    let bytes = std::fs::read(&png)
        .unwrap_or_else(|e| panic!("no screenshot ({e}): {}", String::from_utf8_lossy(&shot.stderr)));
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    assert!(bytes.len() > 10_000, "a page with text and a chart, not a blank one: {} bytes", bytes.len());
    if let Some(keep) = std::env::var_os("LAYERP2P_SCREENSHOT") {
        std::fs::copy(&png, keep).expect("screenshot kept");
    }
}

#[test]
fn http_address_in_use_is_a_clear_error() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("a port");
    let addr = taken.local_addr().expect("bound").to_string();
    let out = run_bounded(
        BIN,
        &[
            "peer",
            "--video",
            "simulation",
            "--tracker",
            "127.0.0.1:9",
            "--listen",
            "127.0.0.1:0",
            "--http",
            &addr,
            "--duration",
            "5",
        ],
        Duration::from_secs(20),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a taken --http address fails the peer");
    assert!(err.contains("--http") && err.contains(&addr) && err.contains("in use"), "{err}");
}

#[test]
fn a_synthetic_channel_refuses_the_stream_clearly() {
    let tracker = free_udp();
    let http = free_tcp();
    let (_seed, _seed_log) = seed(tracker, &["--video", "simulation"], "30");
    let (_peer, _peer_log) = spawn(&strings(&[
        "peer",
        "--video",
        "simulation",
        "--tracker",
        &tracker.to_string(),
        "--listen",
        "127.0.0.1:0",
        "--lag",
        "2",
        "--http",
        &http.to_string(),
        "--duration",
        "30",
    ]));
    let body = wait_for(http, "/stream.ts", 415, Duration::from_secs(25));
    assert!(body.contains("does not carry H.264"), "{body}");
    assert!(get(http, "/").is_some_and(|(s, b)| s == 200 && b.contains("<svg")), "the page still works");
}

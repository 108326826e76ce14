//! The release binary as an operator runs it, on loopback: metrics scraped and checked
//! by `promtool`, health, bad input to the HTTP port, a config file, SIGTERM.
//! Every node is bounded by `--duration` besides being killed on drop.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{Node, free_tcp, free_udp, get, raw_http, strings};

const BIN: &str = env!("CARGO_BIN_EXE_layerp2p");

fn spawn(args: &[String]) -> Node {
    let child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    Node(Some(child))
}

/// Waits until `addr` answers `path` with 200.
fn wait_ready(addr: SocketAddr, path: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Some((200, body)) = get(addr, path) {
            return body;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{addr}{path} never answered 200");
}

/// The value of the series whose line starts with `series` (name and labels).
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no series {series} in\n{text}"))
}

/// `promtool check metrics` on `text`; skipped (with a note) where promtool is not
/// installed, outside CI (.ci/run installs it).
fn promtool_check(text: &str) {
    let Ok(mut child) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        assert!(std::env::var_os("CI").is_none(), "promtool is missing in CI (.ci/run installs `prometheus`)");
        eprintln!("promtool not installed: exposition not validated");
        return;
    };
    child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write to promtool");
    let out = child.wait_with_output().expect("promtool runs");
    let report = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    // promtool exits 1 for lint problems too; only an unparsable exposition is fatal
    // here, and lint findings are reported so they can be fixed.
    assert!(out.status.success(), "promtool check metrics failed:\n{report}\n{text}");
}

#[test]
fn metrics_validate_move_and_survive_bad_requests() {
    let tracker = free_udp();
    let (seed_metrics, peer_metrics) = (free_tcp(), free_tcp());
    let seed = spawn(&strings(&[
        "seed",
        "--video",
        "simulation",
        "--listen",
        "127.0.0.1:0",
        "--tracker-listen",
        &tracker.to_string(),
        "--upload-kbps",
        "3000",
        "--metrics-listen",
        &seed_metrics.to_string(),
        "--duration",
        "40",
    ]));
    wait_ready(seed_metrics, "/healthz");
    let peer = spawn(&strings(&[
        "peer",
        "--video",
        "simulation",
        "--tracker",
        &tracker.to_string(),
        "--listen",
        "127.0.0.1:0",
        "--upload-kbps",
        "700",
        "--lag",
        "2",
        "--metrics-listen",
        &peer_metrics.to_string(),
        "--duration",
        "40",
    ]));
    assert_eq!(wait_ready(peer_metrics, "/healthz"), "ok\n");
    std::thread::sleep(Duration::from_secs(5));
    let first = wait_ready(peer_metrics, "/metrics");
    std::thread::sleep(Duration::from_secs(3));
    let second = wait_ready(peer_metrics, "/metrics");
    promtool_check(&second);
    let received = "layerp2p_lcs_received_total{role=\"peer\",";
    let base_played = "layerp2p_played_lcs_total{role=\"peer\",";
    let received_series = second.lines().find(|l| l.starts_with(received)).expect("lcs received").to_string();
    let series = received_series.rsplit_once(' ').expect("a value").0;
    assert!(value(&second, series) > value(&first, series), "LCs received do not move: {series}");
    assert!(second.lines().any(|l| l.starts_with(base_played) && l.contains("layer=\"3\"")), "per-layer playback");
    let seed_first = wait_ready(seed_metrics, "/metrics");
    std::thread::sleep(Duration::from_millis(1500));
    let seed_text = wait_ready(seed_metrics, "/metrics");
    promtool_check(&seed_text);
    let sent = "layerp2p_lcs_sent_total{role=\"seed\",";
    let sent_series = seed_text.lines().find(|l| l.starts_with(sent)).expect("lcs sent").rsplit_once(' ').expect("v").0;
    assert!(value(&seed_text, sent_series) > value(&seed_first, sent_series), "the seed's LCs sent do not move");
    assert!(seed_text.contains("layerp2p_tracker_peers{role=\"seed\""), "embedded tracker metrics:\n{seed_text}");
    assert!(!seed_text.contains("127.0.0.1"), "no series is labelled by a peer's address");
    dashboard_uses_only_exposed_metrics(&(second.clone() + &seed_text));

    // Bad input to the HTTP port: refused, never fatal.
    for bad in [&b"\x16\x03\x01\x02\x00garbage\r\n\r\n"[..], b"GET\r\n\r\n", b"POST /metrics HTTP/1.1\r\n\r\n"] {
        let status = raw_http(peer_metrics, bad).map(|(s, _)| s);
        assert!(matches!(status, Some(400 | 405)), "{:?} -> {status:?}", String::from_utf8_lossy(bad));
    }
    let huge = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(8_300));
    assert_eq!(raw_http(peer_metrics, huge.as_bytes()).map(|(s, _)| s), Some(431));
    // A client that connects and says nothing is timed out without blocking scrapes.
    let idle = TcpStream::connect(peer_metrics).expect("connect");
    assert_eq!(get(peer_metrics, "/nope").map(|(s, _)| s), Some(404));
    assert_eq!(get(peer_metrics, "/metrics").map(|(s, _)| s), Some(200));
    drop(idle);

    // SIGTERM: the peer drains and exits well within 5 s, with its summary.
    let pid = peer.pid();
    let started = Instant::now();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().expect("kill runs").success());
    let out = peer.finish();
    assert!(started.elapsed() < Duration::from_secs(5), "drain took {:?}", started.elapsed());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("LC data:"), "summary after the drain");
    drop(seed);
}

#[test]
fn metrics_address_in_use_is_a_clear_error() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let node = spawn(&strings(&[
        "tracker",
        "--listen",
        &free_udp().to_string(),
        "--metrics-listen",
        &addr.to_string(),
        "--duration",
        "5",
    ]));
    let out = node.finish();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains(&format!("--metrics-listen: cannot listen on {addr}")) && err.contains("in use"), "{err}");
}

#[test]
fn config_file_flags_override_and_unknown_keys_are_named() {
    let dir = std::env::temp_dir().join(format!("layerp2p-ops-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("relay.toml");
    std::fs::write(
        &path,
        "tracker = \"127.0.0.1:7700\"\nupload_kbps = 50000\nn-max = 3000\nmetrics-listen = \"127.0.0.1:9100\"\n",
    )
    .expect("write");
    let p = path.to_str().expect("utf-8");
    let out = Command::new(BIN)
        .args(["relay", "--config", p, "--upload-kbps", "60000", "--print-config"])
        .output()
        .expect("runs");
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for line in ["upload-kbps = 60000", "n-max = 3000", "metrics-listen = \"127.0.0.1:9100\"", "lag = 30"] {
        assert!(printed.lines().any(|l| l == line), "missing {line} in\n{printed}");
    }
    // What --print-config prints is a config file the relay accepts as it is.
    std::fs::write(&path, printed.as_bytes()).expect("write");
    let again = Command::new(BIN).args(["relay", "--config", p, "--print-config"]).output().expect("runs");
    assert_eq!(String::from_utf8_lossy(&again.stdout), printed);

    std::fs::write(&path, "tracker = \"127.0.0.1:7700\"\nupload_kbsp = 1\n").expect("write");
    let out = Command::new(BIN).args(["relay", "--config", p]).output().expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("unknown key `upload_kbsp`"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn logs_are_json_lines_filtered_by_rust_log() {
    let run = |filter: &str| {
        Command::new(BIN)
            .args(["tracker", "--listen", &free_udp().to_string(), "--duration", "1", "--log-format", "json"])
            .env("RUST_LOG", filter)
            .output()
            .expect("runs")
    };
    let out = run("info");
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let first = err.lines().next().expect("a log line");
    let line: serde_json::Value = serde_json::from_str(first).expect("a JSON log line");
    assert_eq!(line["level"], "INFO", "{first}");
    assert!(line["fields"]["message"].as_str().is_some_and(|m| m.contains("tracker listening")), "{first}");
    let quiet = run("warn");
    assert!(!String::from_utf8_lossy(&quiet.stderr).contains("tracker listening"), "RUST_LOG=warn drops info");
}

/// Every metric the Grafana dashboard queries is one the nodes expose.
fn dashboard_uses_only_exposed_metrics(exposed: &str) {
    let dashboard = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../packaging/grafana/layerp2p.json"))
        .expect("the dashboard");
    let json: serde_json::Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    let panels = json["panels"].as_array().expect("panels");
    let mut names = 0;
    for expr in
        panels.iter().flat_map(|p| p["targets"].as_array().into_iter().flatten()).filter_map(|t| t["expr"].as_str())
    {
        for word in
            expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|w| w.starts_with("layerp2p_"))
        {
            names += 1;
            assert!(
                exposed.lines().any(|l| l.starts_with(word)),
                "the dashboard queries {word}, which no node exposes"
            );
        }
    }
    assert!(names >= 20, "the dashboard queries {names} metrics");
}

#[test]
fn packaged_relay_config_is_accepted() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../packaging/relay.toml");
    let out = Command::new(BIN).args(["relay", "--config", path, "--print-config"]).output().expect("runs");
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(printed.lines().any(|l| l == "metrics-listen = \"127.0.0.1:9102\""), "{printed}");
}

//! The release binary as an operator runs it, on loopback: metrics scraped and checked
//! by `promtool`, health, bad input to the HTTP port, a config file, SIGTERM.
//! Every node is bounded by `--duration` besides being killed on drop.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Output, Stdio};
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
    // Its channels example, uncommented, is accepted too.
    let text = std::fs::read_to_string(path).expect("the example").replace("#! ", "").replace("#!", "");
    let dir = std::env::temp_dir().join(format!("layerp2p-packaged-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let channels = dir.join("relay.toml");
    std::fs::write(&channels, text).expect("write");
    let out =
        Command::new(BIN).args(["relay", "--config"]).arg(&channels).arg("--print-config").output().expect("runs");
    let printed = String::from_utf8_lossy(&out.stdout);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        printed.contains("\"id=news,listen=0.0.0.0:7702,n-max=1000,plan=290,230,100,upload-kbps=50000\""),
        "{printed}"
    );
}

/// The plans of the three channels: a channel is its plan and key, so these differ.
const CHANNEL_PLANS: [(&str, &str); 3] = [("a", "290,230,100"), ("b", "300,230,100"), ("c", "310,230,100")];

/// A relay config file with the channels `ids` (each on its own port in `ports`).
fn channels_config(tracker: SocketAddr, metrics: SocketAddr, ids: &[&str], ports: &[SocketAddr]) -> String {
    let mut text = format!(
        "tracker = \"{tracker}\"\nvideo = \"prototype\"\nupload-kbps = 3000\nn-max = 20\nlag = 6\n\
         metrics-listen = \"{metrics}\"\nduration = 60\n"
    );
    for (id, port) in ids.iter().zip(ports) {
        let plan = plan_of(id);
        text += &format!("\n[[channel]]\nid = \"{id}\"\nlisten = \"{port}\"\nplan = [{plan}]\n");
    }
    text
}

/// Waits until the relay has a neighbour (the seed: no viewer runs yet) on each channel.
fn wait_for_seed(metrics: SocketAddr, ids: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut text = String::new();
    while Instant::now() < deadline {
        text = wait_ready(metrics, "/metrics");
        if ids.iter().all(|id| channel_value(&text, "layerp2p_neighbours{role=\"relay\",", id) >= 1.0) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the relay never reached the seed on {ids:?}:\n{text}");
}

/// A viewer of the channel with `plan`, printing a JSON status a second.
fn viewer(tracker: SocketAddr, plan: &str, secs: u64) -> Node {
    spawn(&strings(&[
        "peer",
        "--tracker",
        &tracker.to_string(),
        "--plan",
        plan,
        "--listen",
        "127.0.0.1:0",
        "--upload-kbps",
        "700",
        "--lag",
        "6",
        "--json",
        "--duration",
        &secs.to_string(),
    ]))
}

/// A viewer's base-layer ratio in each second it counted, from its JSON status lines.
fn base_per_second(out: &Output) -> Vec<f64> {
    let base: Vec<(u64, u64)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| Some((v["played_lcs"][0].as_u64()?, v["missed_lcs"][0].as_u64()?)))
        .collect();
    base.windows(2)
        .map(|w| (w[1].0 - w[0].0, w[1].1 - w[0].1))
        .filter(|(played, missed)| played + missed > 0)
        .map(|(played, missed)| played as f64 / (played + missed) as f64)
        .collect()
}

/// The value of the one series that starts with `prefix` and has `channel="id"`.
fn channel_value(text: &str, prefix: &str, id: &str) -> f64 {
    let label = format!("channel=\"{id}\"");
    text.lines()
        .filter(|l| l.starts_with(prefix) && l.contains(&label))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum()
}

#[test]
fn one_relay_serves_three_channels_and_a_reload_adds_one_without_touching_the_others() {
    let dir = std::env::temp_dir().join(format!("layerp2p-channels-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let tracker = free_udp();
    let (seed_metrics, relay_metrics) = (free_tcp(), free_tcp());
    // One seed process with three inputs (synthetic, one plan each) and one tracker;
    // one neighbour per channel, which the relay takes before any viewer starts (an
    // auditing seed keeps a neighbour that serves its audits), so viewers need the relay.
    let mut seed_args = strings(&[
        "seed",
        "--video",
        "prototype",
        "--tracker-listen",
        &tracker.to_string(),
        "--upload-kbps",
        "2000",
        "--n-max",
        "1",
        "--lag",
        "6",
        "--metrics-listen",
        &seed_metrics.to_string(),
        "--duration",
        "60",
    ]);
    for (id, plan) in CHANNEL_PLANS {
        seed_args.extend(strings(&["--channel", &format!("id={id},listen={},plan={plan}", free_udp())]));
    }
    let seed = spawn(&seed_args);
    wait_ready(seed_metrics, "/healthz");

    let ports = [free_udp(), free_udp(), free_udp()];
    let path = dir.join("relay.toml");
    std::fs::write(&path, channels_config(tracker, relay_metrics, &["a", "b"], &ports)).expect("write");
    let relay = spawn(&strings(&["relay", "--config", path.to_str().expect("utf-8")]));
    wait_ready(relay_metrics, "/healthz");
    wait_for_seed(relay_metrics, &["a", "b"]);

    const VIEW_SECS: u64 = 40;
    const RELOAD_AFTER_SECS: u64 = 15;
    let viewers_ab: Vec<Node> = ["a", "a", "b", "b"].iter().map(|id| viewer(tracker, plan_of(id), VIEW_SECS)).collect();
    std::thread::sleep(Duration::from_secs(RELOAD_AFTER_SECS - 2));
    let before = wait_ready(relay_metrics, "/metrics");

    // A bad reload (a duplicate id) is refused and changes nothing; a good one adds c.
    let bad = channels_config(tracker, relay_metrics, &["a", "b", "a"], &ports);
    std::fs::write(&path, bad).expect("write");
    assert!(Command::new("kill").args(["-HUP", &relay.pid()]).status().expect("kill runs").success());
    std::thread::sleep(Duration::from_secs(2));
    std::fs::write(&path, channels_config(tracker, relay_metrics, &["a", "b", "c"], &ports)).expect("write");
    assert!(Command::new("kill").args(["-HUP", &relay.pid()]).status().expect("kill runs").success());
    wait_for_seed(relay_metrics, &["c"]);
    let viewers_c: Vec<Node> = (0..2).map(|_| viewer(tracker, plan_of("c"), VIEW_SECS - 16)).collect();

    let ab: Vec<Output> = viewers_ab.into_iter().map(Node::finish).collect();
    let c: Vec<Output> = viewers_c.into_iter().map(Node::finish).collect();
    let relay_text = wait_ready(relay_metrics, "/metrics");
    let seed_text = wait_ready(seed_metrics, "/metrics");
    promtool_check(&relay_text);
    promtool_check(&seed_text);
    let relay_err = String::from_utf8_lossy(&relay.finish().stderr).into_owned();
    drop(seed);
    let _ = std::fs::remove_dir_all(&dir);

    assert!(relay_err.contains("reload refused") && relay_err.contains("channel `a` is given twice"), "{relay_err}");
    let sent = "layerp2p_lcs_sent_total{role=\"relay\",";
    let received = "layerp2p_lcs_received_total{role=\"relay\",";
    for id in ["a", "b", "c"] {
        let served = channel_value(&relay_text, sent, id);
        eprintln!("relay channel {id}: {served} LCs sent");
        assert!(served > 0.0, "the relay served nothing on channel {id}:\n{relay_text}");
        assert!(channel_value(&seed_text, "layerp2p_lcs_sent_total{role=\"seed\",", id) > 0.0, "seed channel {id}");
    }
    for id in ["a", "b"] {
        // Counters that went on growing: channels a and b were not restarted by the reload.
        let (then, now) = (channel_value(&before, received, id), channel_value(&relay_text, received, id));
        assert!(then > 0.0 && now > then, "channel {id}: LCs received {then} before the reload, {now} after");
    }
    assert_eq!(channel_value(&before, sent, "c"), 0.0, "channel c only after the reload");
    for (name, outs, every_second) in [("a/b", &ab, true), ("c", &c, false)] {
        for out in outs {
            let seconds = base_per_second(out);
            let worst = seconds.iter().copied().fold(1.0, f64::min);
            let mean = seconds.iter().sum::<f64>() / seconds.len().max(1) as f64;
            eprintln!("viewer {name}: {} s counted, base layer mean {mean:.3}, worst second {worst:.3}", seconds.len());
            assert!(
                seconds.len() >= 10,
                "only {} seconds counted:\n{}",
                seconds.len(),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(mean >= 0.95, "viewer {name}: base layer {mean:.3}");
            if every_second {
                assert!(worst >= 0.95, "viewer {name}: a second with base layer {worst:.3} across the reload");
            }
        }
    }
}

fn plan_of(id: &str) -> &'static str {
    CHANNEL_PLANS.iter().find(|(c, _)| *c == id).expect("a known channel").1
}

//! A small HTTP/1.1 server for operators and local players: `GET` only, one response
//! per connection (`Connection: close`), on its own threads, off the data plane.
//!
//! Bounded against whatever connects: at most `MAX_CONNECTIONS` at once (more are
//! answered 503 and closed), a request head of at most `MAX_HEAD` bytes read within
//! `READ_TIMEOUT`, a write that stalls for `WRITE_TIMEOUT` ends the connection.
//! Anything malformed gets a 4xx and the connection closes; nothing a client sends
//! can panic the server. Routing is the caller's: a `Handler` maps a request to a
//! `Response`, either a whole body or a writer that streams until it returns.

use super::exposition::{CONTENT_TYPE, Exposition, Health};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Most connections served at once.
pub const MAX_CONNECTIONS: usize = 32;
/// Longest request head (request line and headers) accepted.
pub const MAX_HEAD: usize = 8 * 1024;
/// Time a client has to send its request head.
pub const READ_TIMEOUT: Duration = Duration::from_secs(2);
/// A write blocked this long ends the connection (a stalled player or scraper).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the accept loop looks at its stop flag.
const ACCEPT_POLL: Duration = Duration::from_millis(20);

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("cannot start the HTTP thread: {0}")]
    Thread(io::Error),
}

/// A parsed request: method and path (the query string is dropped).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub path: String,
}

/// Writes a streamed body until the client goes or the stream ends.
pub type BodyWriter = Box<dyn FnOnce(&mut dyn Write) -> io::Result<()> + Send>;

/// What a handler answers.
pub enum Response {
    Full {
        status: u16,
        content_type: &'static str,
        body: Vec<u8>,
    },
    /// A 200 whose body is written by `body` (no Content-Length: ends when it returns).
    Stream {
        content_type: &'static str,
        body: BodyWriter,
    },
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Response::Full { status, content_type, body } => {
                write!(f, "Full({status}, {content_type}, {} bytes)", body.len())
            }
            Response::Stream { content_type, .. } => write!(f, "Stream({content_type})"),
        }
    }
}

impl Response {
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        Response::Full { status, content_type: "text/plain; charset=utf-8", body: body.into().into_bytes() }
    }
}

pub trait Handler: Fn(&Request) -> Response + Send + Sync + 'static {}
impl<F: Fn(&Request) -> Response + Send + Sync + 'static> Handler for F {}

/// A running server; dropping it stops accepting (connections being served finish).
#[derive(Debug)]
pub struct HttpServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HttpServer {
    /// Listens on `addr` and serves every connection with `handler`.
    pub fn bind(addr: SocketAddr, handler: impl Handler) -> Result<HttpServer, HttpError> {
        let listener = TcpListener::bind(addr).map_err(|source| HttpError::Bind { addr, source })?;
        let bound = listener.local_addr().map_err(|source| HttpError::Bind { addr, source })?;
        listener.set_nonblocking(true).map_err(|source| HttpError::Bind { addr, source })?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handler = Arc::new(handler);
        let thread = std::thread::Builder::new()
            .name("layerp2p-http".into())
            .spawn(move || accept_loop(listener, handler, flag))
            .map_err(HttpError::Thread)?;
        Ok(HttpServer { addr: bound, stop, thread: Some(thread) })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop<H: Handler>(listener: TcpListener, handler: Arc<H>, stop: Arc<AtomicBool>) {
    let active = Arc::new(AtomicUsize::new(0));
    while !stop.load(Ordering::Relaxed) {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(ACCEPT_POLL);
                continue;
            }
            // A connection reset before accept, or out of fds: try again shortly.
            Err(_) => {
                std::thread::sleep(ACCEPT_POLL);
                continue;
            }
        };
        if active.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
            let mut stream = stream;
            let _ = stream.set_nonblocking(false);
            let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
            let _ = respond(&mut stream, Response::text(503, "too many connections\n"));
            continue;
        }
        active.fetch_add(1, Ordering::Relaxed);
        let (handler, done) = (handler.clone(), active.clone());
        let spawned = std::thread::Builder::new().name("layerp2p-http-conn".into()).spawn(move || {
            serve(stream, handler.as_ref());
            done.fetch_sub(1, Ordering::Relaxed);
        });
        if spawned.is_err() {
            active.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Serves one connection: one request, one response.
fn serve(mut stream: TcpStream, handler: &dyn Fn(&Request) -> Response) {
    let setup = stream
        .set_nonblocking(false)
        .and_then(|()| stream.set_read_timeout(Some(READ_TIMEOUT)))
        .and_then(|()| stream.set_write_timeout(Some(WRITE_TIMEOUT)));
    if setup.is_err() {
        return;
    }
    let response = match read_head(&mut stream) {
        Ok(head) => match parse_request(&head) {
            Ok(req) if req.method != "GET" && req.method != "HEAD" => Response::text(405, "only GET\n"),
            Ok(req) => handler(&req),
            Err(e) => Response::text(e.status(), format!("{e}\n")),
        },
        Err(e) => Response::text(e.status(), format!("{e}\n")),
    };
    let _ = respond(&mut stream, response);
}

/// Why a request was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("request head longer than {MAX_HEAD} bytes")]
    TooLong,
    #[error("no complete request head within the read timeout")]
    Incomplete,
    #[error("malformed request line")]
    Malformed,
    #[error("request head is not UTF-8")]
    NotText,
}

impl RequestError {
    fn status(&self) -> u16 {
        match self {
            RequestError::TooLong => 431,
            RequestError::Incomplete => 408,
            RequestError::Malformed | RequestError::NotText => 400,
        }
    }
}

/// Reads until the blank line that ends the head, at most `MAX_HEAD` bytes.
fn read_head(stream: &mut TcpStream) -> Result<Vec<u8>, RequestError> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + READ_TIMEOUT;
    loop {
        if head.len() > MAX_HEAD {
            return Err(RequestError::TooLong);
        }
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            return Ok(head);
        }
        if Instant::now() > deadline {
            return Err(RequestError::Incomplete);
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return Err(RequestError::Incomplete),
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
}

/// Parses the request line: `METHOD SP PATH SP HTTP/1.x`.
pub fn parse_request(head: &[u8]) -> Result<Request, RequestError> {
    let text = std::str::from_utf8(head).map_err(|_| RequestError::NotText)?;
    let line = text.lines().next().ok_or(RequestError::Malformed)?;
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(RequestError::Malformed);
    };
    let token = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_uppercase());
    if !token(method) || !target.starts_with('/') || !version.starts_with("HTTP/1.") {
        return Err(RequestError::Malformed);
    }
    let path = target.split('?').next().unwrap_or(target);
    Ok(Request { method: method.to_string(), path: path.to_string() })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        415 => "Unsupported Media Type",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

fn respond(stream: &mut TcpStream, response: Response) -> io::Result<()> {
    match response {
        Response::Full { status, content_type, body } => {
            let head = format!(
                "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
                reason(status),
                body.len()
            );
            stream.write_all(head.as_bytes())?;
            stream.write_all(&body)?;
            stream.flush()
        }
        Response::Stream { content_type, body } => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n"
            );
            stream.write_all(head.as_bytes())?;
            body(stream)
        }
    }
}

/// `/metrics` and `/healthz` of a node (or of every channel of a process).
pub fn metrics_routes<M: Exposition>(metrics: Arc<M>) -> impl Handler {
    move |req: &Request| match req.path.as_str() {
        "/metrics" => Response::Full { status: 200, content_type: CONTENT_TYPE, body: metrics.encode().into_bytes() },
        "/healthz" => match metrics.health(Instant::now()) {
            Health::Ok => Response::text(200, "ok\n"),
            Health::Draining => Response::text(503, "draining\n"),
            Health::Stalled { shard, since } => {
                Response::text(503, format!("stalled: shard {shard} silent for {:.1} s\n", since.as_secs_f64()))
            }
        },
        _ => Response::text(404, "not found: try /metrics or /healthz\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_line_is_checked() {
        let ok = parse_request(b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n").expect("valid");
        assert_eq!(ok, Request { method: "GET".into(), path: "/metrics".into() });
        for bad in [
            &b"GET\r\n\r\n"[..],
            b"GET /metrics\r\n\r\n",
            b"GET metrics HTTP/1.1\r\n\r\n",
            b"get /metrics HTTP/1.1\r\n\r\n",
            b"GET /a HTTP/1.1 extra\r\n\r\n",
            b"GET /a SPDY/3\r\n\r\n",
            b"\r\n\r\n",
        ] {
            assert_eq!(parse_request(bad), Err(RequestError::Malformed), "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(parse_request(b"GET /\xff HTTP/1.1\r\n\r\n"), Err(RequestError::NotText));
    }
}

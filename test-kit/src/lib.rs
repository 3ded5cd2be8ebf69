//! What the tests of every crate need alike, written once: a free port, and
//! an HTTP/1.1 request written by hand (any target and bytes, as an
//! attacker's client would send them, which no HTTP library will). Dev
//! only: no service depends on it.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A port free on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Sends one request to `addr` (`host:port`) as written, with
/// `Connection: close` and the body's length, and reads the answer to the
/// end: its status and body as text. Panics if the answer has no status.
pub async fn raw(addr: &str, method: &str, target: &str, body: &[u8], headers: &[(&str, &str)]) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    let mut req = format!(
        "{method} {target} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    stream.write_all(&bytes).await.expect("send the request");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.expect("read the answer");
    let text = String::from_utf8_lossy(&answer).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_string();
    (status, body)
}

/// A child process that is killed and reaped when this is dropped, so that
/// a failing test leaves nothing running.
pub struct ChildGuard(Option<std::process::Child>);

impl ChildGuard {
    pub fn new(child: std::process::Child) -> ChildGuard {
        ChildGuard(Some(child))
    }

    /// The process, unless it was killed here.
    pub fn child(&mut self) -> Option<&mut std::process::Child> {
        self.0.as_mut()
    }

    /// Kills and reaps it now (again: nothing).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.0.take() {
            c.kill().ok();
            c.wait().ok();
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A private, diskless redis-server on `port` (so a test can stop it, or
/// start it again on the same port), listening when returned; stopped when
/// dropped. Needs Debian's redis-server package.
pub struct PrivateRedis {
    pub port: u16,
    child: ChildGuard,
}

impl PrivateRedis {
    pub fn start(port: u16) -> PrivateRedis {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server (Debian's redis-server package) must be installed");
        for _ in 0..50 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        PrivateRedis {
            port,
            child: ChildGuard::new(child),
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops it now, as a crash would.
    pub fn kill(&mut self) {
        self.child.kill();
    }
}

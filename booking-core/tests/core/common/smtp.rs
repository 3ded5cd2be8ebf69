//! A real SMTP server for the mail tests: aiosmtpd (Debian's
//! python3-aiosmtpd, installed by deploy/local/test) in a child process,
//! keeping each message it receives as a file in a Maildir in a temporary
//! directory, as the local stack's does; and a small MIME reader for what
//! it kept.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;

pub struct MailServer {
    /// host:port, for an `smtp://` sink.
    pub addr: String,
    pub dir: PathBuf,
    child: Child,
}

/// A port nothing listens on (yet).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

impl MailServer {
    pub async fn start() -> MailServer {
        MailServer::start_on(free_port()).await
    }

    pub async fn start_on(port: u16) -> MailServer {
        let dir = std::env::temp_dir().join(format!("usher-maildir-{}", uuid::Uuid::now_v7()));
        // A Maildir's three folders: aiosmtpd makes them only for a
        // directory that does not exist yet.
        for sub in ["new", "cur", "tmp"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let addr = format!("127.0.0.1:{port}");
        // Debian's aiosmtpd command (its own /usr/bin/python3, whatever
        // python3 is first on the PATH).
        let child = Command::new("aiosmtpd")
            .args(["-n", "-l", &addr, "-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("aiosmtpd (apt-get install python3-aiosmtpd; deploy/local/test does)");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(&addr).await.is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "aiosmtpd did not listen on {addr}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        MailServer { addr, dir, child }
    }

    /// A private relay: STARTTLS required, then AUTH as `user`, with a
    /// certificate for 127.0.0.1 from a CA made here. Returns the CA's
    /// PEM file, for `notifications.smtp.ca_file`.
    pub async fn start_tls(user: &str, password: &str) -> (MailServer, PathBuf) {
        MailServer::start_tls_with(user, password, false).await
    }

    /// As `start_tls`; with `stall`, a wrong password is never answered.
    pub async fn start_tls_with(user: &str, password: &str, stall: bool) -> (MailServer, PathBuf) {
        let dir = std::env::temp_dir().join(format!("usher-maildir-{}", uuid::Uuid::now_v7()));
        for sub in ["new", "cur", "tmp"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let pki = dir.join("pki");
        std::fs::create_dir_all(&pki).unwrap();
        std::fs::write(
            pki.join("relay.ext"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        for args in [
            [
                &["req", "-x509"][..],
                &ec[..],
                &[
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.pem",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=usher-test-ca",
                ],
            ]
            .concat(),
            [
                &["req"][..],
                &ec[..],
                &["-keyout", "relay.key", "-out", "relay.csr", "-subj", "/CN=127.0.0.1"],
            ]
            .concat(),
            vec![
                "x509",
                "-req",
                "-in",
                "relay.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "relay.pem",
                "-days",
                "2",
                "-extfile",
                "relay.ext",
            ],
        ] {
            let out = Command::new("openssl")
                .args(&args)
                .current_dir(&pki)
                .output()
                .expect("openssl");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/core/fixtures/smtp_tls_server.py");
        // Debian's python3: the one aiosmtpd is installed for.
        let child = Command::new("/usr/bin/python3")
            .arg(script)
            .arg(port.to_string())
            .arg(&dir)
            .arg(pki.join("relay.pem"))
            .arg(pki.join("relay.key"))
            .args([user, password])
            .args(stall.then_some("stall"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("/usr/bin/python3 with aiosmtpd");
        let server = MailServer { addr, dir, child };
        server.listening().await;
        let ca = pki.join("ca.pem");
        (server, ca)
    }

    async fn listening(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(&self.addr).await.is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the SMTP server did not listen on {}",
                self.addr
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every message received so far, as it arrived.
    pub fn messages(&self) -> Vec<String> {
        let Ok(dir) = std::fs::read_dir(self.dir.join("new")) else {
            return vec![];
        };
        let mut all: Vec<String> = dir
            .filter_map(|f| std::fs::read_to_string(f.ok()?.path()).ok())
            .collect();
        all.sort();
        all
    }

    /// Waits for a message containing `needle` (15 s at most).
    pub async fn wait_for(&self, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(m) = self.messages().into_iter().find(|m| m.contains(needle)) {
                return m;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no message with {needle:?} arrived"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for MailServer {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

/// One leaf of a MIME message: its content type and decoded body.
#[derive(Debug)]
pub struct Part {
    pub content_type: String,
    pub disposition: String,
    pub body: Vec<u8>,
}

/// A message's header value (the first, unfolded), case-insensitive name.
pub fn header(block: &str, name: &str) -> Option<String> {
    let mut lines = block.lines().peekable();
    while let Some(line) = lines.next() {
        if line.is_empty() {
            return None;
        }
        if let Some((n, v)) = line.split_once(':')
            && n.eq_ignore_ascii_case(name)
        {
            let mut value = v.trim().to_string();
            while let Some(next) = lines.peek().filter(|l| l.starts_with([' ', '\t'])) {
                value.push(' ');
                value.push_str(next.trim());
                lines.next();
            }
            return Some(value);
        }
    }
    None
}

/// The leaves of a MIME message, multiparts opened, bodies decoded
/// (base64 and quoted-printable).
pub fn parts(message: &str) -> Vec<Part> {
    let message = message.replace("\r\n", "\n");
    let (head, body) = message.split_once("\n\n").unwrap_or((&message, ""));
    let content_type = header(head, "content-type").unwrap_or_else(|| "text/plain".into());
    if content_type.to_ascii_lowercase().starts_with("multipart/") {
        let boundary = content_type
            .split(';')
            .find_map(|p| p.trim().strip_prefix("boundary="))
            .map(|b| b.trim_matches('"').to_string())
            .expect("a boundary");
        let delimiter = format!("--{boundary}");
        let mut out = Vec::new();
        for chunk in body.split(&delimiter).skip(1) {
            if chunk.starts_with("--") {
                break;
            }
            out.extend(parts(chunk.trim_start_matches('\n')));
        }
        return out;
    }
    let encoding = header(head, "content-transfer-encoding")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let body = match encoding.as_str() {
        "base64" => base64::engine::general_purpose::STANDARD
            .decode(body.split_whitespace().collect::<String>())
            .expect("base64 body"),
        "quoted-printable" => quoted_printable(body),
        _ => body.trim_end_matches('\n').as_bytes().to_vec(),
    };
    vec![Part {
        content_type,
        disposition: header(head, "content-disposition").unwrap_or_default(),
        body,
    }]
}

fn quoted_printable(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for line in text.split('\n') {
        let (line, soft) = match line.strip_suffix('=') {
            Some(l) => (l, true),
            None => (line, false),
        };
        let b = line.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'='
                && let Some(h) = line.get(i + 1..i + 3)
                && let Ok(v) = u8::from_str_radix(h, 16)
            {
                out.push(v);
                i += 3;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        if !soft {
            out.push(b'\n');
        }
    }
    out
}

//! `ringwire serve` over TLS, with clients we did not write: curl, openssl s_client, and
//! tungstenite over rustls. Every test runs on both drivers.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use ringwire_runtime::tls::{ClientRoots, TlsClientOptions, client_config, connect_blocking};
use tungstenite::Message;

macro_rules! both_drivers {
    ($($name:ident),* $(,)?) => {
        mod uring { $( #[test] fn $name() { super::$name("uring") } )* }
        mod epoll { $( #[test] fn $name() { super::$name("epoll") } )* }
    };
}

both_drivers!(
    curl_https_with_cacert,
    openssl_shows_the_negotiated_alpn,
    wss_echo_with_tungstenite_over_rustls,
    sighup_reloads_while_a_connection_stays_open,
    garbage_instead_of_client_hello,
    self_signed_prints_the_served_fingerprint,
    stun_binding_over_tls,
);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A test CA with leaves written into a temp dir.
struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
    dir: PathBuf,
}

impl Pki {
    fn new(tag: &str) -> Self {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(DnType::CommonName, format!("ringwire serve CA {tag}"));
        let ca = CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap();
        let dir = std::env::temp_dir().join(format!(
            "ringwire-tls-serve-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        Pki { ca, dir }
    }

    /// Write a leaf for localhost to `<name>.pem` / `<name>.key`.
    fn leaf(&self, name: &str) -> (PathBuf, PathBuf) {
        let p = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".into()]).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.ca).unwrap();
        let (c, k) = (
            self.dir.join(format!("{name}.pem")),
            self.dir.join(format!("{name}.key")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }

    fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    fn client(&self) -> Arc<rustls::ClientConfig> {
        client_config(&TlsClientOptions {
            roots: ClientRoots::CaFile(self.ca()),
            ..Default::default()
        })
        .unwrap()
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

struct Server {
    child: Child,
    tls_port: u16,
    stdout: Vec<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(driver: &str, args: &[&str]) -> Server {
    // The ports are chosen before the server binds them, so another test's socket can take
    // one in between: a server that could not bind is started again on fresh ports.
    let mut last = String::new();
    for _ in 0..5 {
        match try_serve(driver, args) {
            Ok(s) => return s,
            Err(e) if e.contains("in use") => last = e,
            Err(e) => panic!("ringwire serve {args:?} exited before listening: {e}"),
        }
    }
    panic!("ringwire serve {args:?}: no free ports: {last}");
}

/// Start the server on fresh plain and TLS ports; its stderr if it exits before listening.
fn try_serve(driver: &str, args: &[&str]) -> Result<Server, String> {
    let (plain, tls_port) = (free_port(), free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringwire"))
        .args(["serve", "--threads", "2", "--driver", driver])
        .args(["--bind", &format!("127.0.0.1:{plain}")])
        .args(["--bind-tls", &format!("127.0.0.1:{tls_port}")])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut stdout = Vec::new();
    while let Some(Ok(l)) = lines.next() {
        let done = l.starts_with(&format!("listening on 127.0.0.1:{tls_port}"));
        stdout.push(l);
        if done {
            // Nobody reads stderr from here on: keep the child from blocking on a full pipe.
            let mut err = child.stderr.take().unwrap();
            std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
            return Ok(Server {
                child,
                tls_port,
                stdout,
            });
        }
    }
    let out = child.wait_with_output().unwrap();
    Err(format!(
        "{} {stdout:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    ))
}

fn cert_args<'a>(c: &'a Path, k: &'a Path) -> [&'a str; 4] {
    [
        "--tls-cert",
        c.to_str().unwrap(),
        "--tls-key",
        k.to_str().unwrap(),
    ]
}

fn curl_https_with_cacert(driver: &str) {
    let pki = Pki::new("curl");
    let (c, k) = pki.leaf("leaf");
    let s = serve(driver, &cert_args(&c, &k));
    let url = format!("https://localhost:{}/ringwire.js", s.tls_port);
    let out = Command::new("curl")
        .args([
            "-sS",
            "--fail",
            "--http1.1",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{ssl_verify_result}",
        ])
        .args(["--cacert", pki.ca().to_str().unwrap()])
        .args(["--resolve", &format!("localhost:{}:127.0.0.1", s.tls_port)])
        .arg(&url)
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(text, "200 0");
    // Keep-alive over TLS: two requests on one connection.
    let out = Command::new("curl")
        .args([
            "-sS",
            "--fail",
            "-o",
            "/dev/null",
            "-o",
            "/dev/null",
            "-w",
            "%{num_connects}\n",
        ])
        .args(["--cacert", pki.ca().to_str().unwrap()])
        .args(["--resolve", &format!("localhost:{}:127.0.0.1", s.tls_port)])
        .args([&url, &url])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().collect::<Vec<_>>(), vec!["1", "0"], "{text}");
    // Without the CA, curl refuses our certificate (exit 60).
    let out = Command::new("curl")
        .args(["-sS", "-o", "/dev/null"])
        .args(["--resolve", &format!("localhost:{}:127.0.0.1", s.tls_port)])
        .arg(&url)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(60));
}

fn s_client_alpn(port: u16) -> String {
    let mut child = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-alpn",
            "h2,http/1.1",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl runs");
    drop(child.stdin.take());
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let _ = child.wait();
    out.lines()
        .find(|l| l.contains("ALPN"))
        .unwrap_or("no ALPN line")
        .trim()
        .to_string()
}

fn openssl_shows_the_negotiated_alpn(driver: &str) {
    let s = serve(driver, &["--tls-self-signed"]);
    assert_eq!(s_client_alpn(s.tls_port), "ALPN protocol: http/1.1");
    drop(s);
    let s = serve(driver, &["--tls-self-signed", "--tls-alpn", "h2,http/1.1"]);
    assert_eq!(s_client_alpn(s.tls_port), "ALPN protocol: h2");
}

fn wss_client(
    pki: &Pki,
    port: u16,
) -> tungstenite::WebSocket<rustls::StreamOwned<rustls::ClientConnection, TcpStream>> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let tls = connect_blocking(pki.client(), "localhost", tcp).unwrap();
    let (ws, resp) = tungstenite::client(format!("wss://localhost:{port}/echo"), tls).unwrap();
    assert_eq!(resp.status(), 101);
    ws
}

fn wss_echo_with_tungstenite_over_rustls(driver: &str) {
    let pki = Pki::new("wss");
    let (c, k) = pki.leaf("leaf");
    let s = serve(driver, &cert_args(&c, &k));
    let mut ws = wss_client(&pki, s.tls_port);
    for i in 0..20 {
        ws.send(Message::text(format!("hello {i}"))).unwrap();
        assert_eq!(ws.read().unwrap(), Message::text(format!("hello {i}")));
    }
    let big: Vec<u8> = (0..300_000).map(|i| (i % 251) as u8).collect();
    ws.send(Message::binary(big.clone())).unwrap();
    assert_eq!(ws.read().unwrap(), Message::binary(big));
    ws.close(None).unwrap();
    loop {
        match ws.read() {
            Ok(Message::Close(f)) => {
                assert_eq!(f.map(|f| u16::from(f.code)), Some(1000));
            }
            Ok(_) => {}
            Err(tungstenite::Error::ConnectionClosed) => break,
            Err(e) => panic!("{e}"),
        }
    }
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

fn sighup_reloads_while_a_connection_stays_open(driver: &str) {
    let old = Pki::new("hup-old");
    let (c, k) = old.leaf("leaf");
    let s = serve(driver, &cert_args(&c, &k));
    let mut ws = wss_client(&old, s.tls_port);
    ws.send(Message::text("before")).unwrap();
    assert_eq!(ws.read().unwrap(), Message::text("before"));
    let new = Pki::new("hup-new");
    let (nc, nk) = new.leaf("fresh");
    std::fs::copy(&nc, &c).unwrap();
    std::fs::copy(&nk, &k).unwrap();
    // SAFETY: a signal to our own child.
    unsafe { libc_kill(s.child.id() as i32, 1) };
    let mut ok = false;
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(100));
        let tcp = TcpStream::connect(("127.0.0.1", s.tls_port)).unwrap();
        if connect_blocking(new.client(), "localhost", tcp).is_ok() {
            ok = true;
            break;
        }
    }
    assert!(ok, "the new certificate is served after SIGHUP");
    // The connection opened before the reload is still there.
    ws.send(Message::text("after")).unwrap();
    assert_eq!(ws.read().unwrap(), Message::text("after"));
    let mut ws2 = wss_client(&new, s.tls_port);
    ws2.send(Message::text("new")).unwrap();
    assert_eq!(ws2.read().unwrap(), Message::text("new"));
}

fn garbage_instead_of_client_hello(driver: &str) {
    let s = serve(driver, &["--tls-self-signed"]);
    for junk in [
        &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        &[0x16, 3, 1, 0, 4, 0xde, 0xad, 0xbe, 0xef][..],
    ] {
        let mut t = TcpStream::connect(("127.0.0.1", s.tls_port)).unwrap();
        t.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        t.write_all(junk).unwrap();
        let mut rest = Vec::new();
        let _ = t.read_to_end(&mut rest);
        assert!(rest.len() < 16, "at most an alert: {rest:?}");
    }
    // Still serving.
    let danger = client_config(&TlsClientOptions {
        danger_accept_invalid_certs: true,
        ..Default::default()
    })
    .unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", s.tls_port)).unwrap();
    let mut t = connect_blocking(danger, "localhost", tcp).unwrap();
    t.write_all(b"GET /ringwire.js HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut head = [0u8; 12];
    t.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
}

fn self_signed_prints_the_served_fingerprint(driver: &str) {
    let s = serve(driver, &["--tls-self-signed"]);
    let line = s
        .stdout
        .iter()
        .find(|l| l.starts_with("tls self-signed certificate sha256 fingerprint: "))
        .expect("fingerprint line")
        .clone();
    let printed = line.rsplit(' ').next().unwrap().to_string();
    let danger = client_config(&TlsClientOptions {
        danger_accept_invalid_certs: true,
        ..Default::default()
    })
    .unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", s.tls_port)).unwrap();
    let t = connect_blocking(danger, "localhost", tcp).unwrap();
    let der = t.conn.peer_certificates().unwrap()[0].to_vec();
    assert_eq!(ringwire::tls::fingerprint(&der), printed);
    // And it verifies for localhost when trusted.
    let dir = std::env::temp_dir().join(format!("ringwire-ss-{}-{driver}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pem = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        base64_lines(&der)
    );
    std::fs::write(dir.join("ss.pem"), pem).unwrap();
    let trusted = client_config(&TlsClientOptions {
        roots: ClientRoots::CaFile(dir.join("ss.pem")),
        ..Default::default()
    })
    .unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", s.tls_port)).unwrap();
    assert!(connect_blocking(trusted, "localhost", tcp).is_ok());
    let _ = std::fs::remove_dir_all(&dir);
}

fn base64_lines(der: &[u8]) -> String {
    use base64::Engine;
    let b = base64::engine::general_purpose::STANDARD.encode(der);
    b.as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn tls_configuration_errors_are_clear() {
    let bin = env!("CARGO_BIN_EXE_ringwire");
    let port = free_port();
    let cases: &[(&[&str], &str)] = &[
        (
            &["--bind-tls", &format!("127.0.0.1:{port}")],
            "needs tls_cert",
        ),
        (&["--tls-self-signed"], "no bind_tls"),
        (
            &[
                "--bind-tls",
                &format!("127.0.0.1:{port}"),
                "--tls-cert",
                "/nonexistent.pem",
                "--tls-key",
                "/nonexistent.key",
            ],
            "/nonexistent.pem",
        ),
        (
            &[
                "--bind-tls",
                &format!("127.0.0.1:{port}"),
                "--tls-self-signed",
                "--tls-client-auth",
                "required",
            ],
            "needs tls_client_ca",
        ),
    ];
    for (args, want) in cases {
        let out = Command::new(bin)
            .args(["serve", "--bind", &format!("127.0.0.1:{}", free_port())])
            .args(*args)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

fn stun_binding_over_tls(driver: &str) {
    let pki = Pki::new("stun");
    let (c, k) = pki.leaf("leaf");
    // Fresh STUN ports (free for UDP and TCP) on each attempt, for the same reason as serve's.
    let mut attempt = 0;
    let (_s, a2) = loop {
        let stun = ringwire::stun::same_port_for_udp_and_tcp("127.0.0.1:0".parse().unwrap())
            .unwrap()
            .port();
        let (a1, a2) = (
            format!("127.0.0.1:{stun}"),
            format!("127.0.0.1:{}", free_port()),
        );
        let mut args = cert_args(&c, &k).to_vec();
        args.extend(["--stun", &a1, "--stun-tls", &a2]);
        match try_serve(driver, &args) {
            Ok(s) => break (s, a2),
            Err(e) if e.contains("in use") && attempt < 4 => attempt += 1,
            Err(e) => panic!("ringwire serve exited before listening: {e}"),
        }
    };
    let client = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ringwire"))
            .args(["stun-client", "--tls", &a2])
            .args(extra)
            .output()
            .unwrap()
    };
    let ca = pki.ca();
    let out = client(&["--tls-ca", ca.to_str().unwrap(), "--tls-name", "localhost"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.starts_with("mapped-address: 127.0.0.1:"), "{text}");
    // The certificate is for localhost and 127.0.0.1, not for other names.
    let out = client(&[
        "--tls-ca",
        ca.to_str().unwrap(),
        "--tls-name",
        "example.com",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not valid for name"));
    // Mozilla roots do not know our CA.
    let out = client(&[]);
    assert!(!out.status.success());
}

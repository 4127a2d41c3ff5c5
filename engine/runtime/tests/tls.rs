//! TLS on the runtime, end to end with rustls clients: every test runs on both drivers.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, date_time_ymd,
};
use ringwire_runtime::tls::{
    CertSource, ClientAuth, ClientRoots, TlsAcceptor, TlsClientOptions, TlsServerOptions,
    client_config, connect_blocking,
};
use ringwire_runtime::{
    CloseReason, ConnCtx, CoreCtx, DriverChoice, Plugin, RuntimeConfig, ServerBuilder, ServerHandle,
};
use rustls::pki_types::ServerName;

macro_rules! both_drivers {
    ($($name:ident),* $(,)?) => {
        mod uring { $( #[test] fn $name() { super::$name(ringwire_runtime::DriverChoice::Uring) } )* }
        mod epoll { $( #[test] fn $name() { super::$name(ringwire_runtime::DriverChoice::Epoll) } )* }
    };
}

both_drivers!(
    echo_plain_and_tls_side_by_side,
    alpn_sni_and_info_reach_the_plugin,
    sessions_resume,
    sni_chooses_the_certificate,
    client_certificate_required,
    garbage_hello_closes_cleanly,
    handshake_deadline,
    handshake_cap_refuses_past_it,
    reload_keeps_open_connections,
    close_sends_close_notify,
    send_file_over_tls_is_read_and_encrypted,
);

/// A CA and what it signs, as PEM.
struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
    dir: PathBuf,
}

impl Pki {
    fn new(tag: &str) -> Self {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(DnType::CommonName, format!("ringwire test CA {tag}"));
        let ca = CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap();
        let dir = std::env::temp_dir().join(format!(
            "ringwire-tls-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        Pki { ca, dir }
    }

    /// A leaf for `names`, written to `<file>.pem` / `<file>.key`.
    fn leaf(&self, file: &str, names: &[&str], expired: bool) -> CertSource {
        let mut p = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
        if expired {
            p.not_before = date_time_ymd(2001, 1, 1);
            p.not_after = date_time_ymd(2002, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.ca).unwrap();
        let (c, k) = (
            self.dir.join(format!("{file}.pem")),
            self.dir.join(format!("{file}.key")),
        );
        std::fs::write(&c, cert.pem() + &self.ca.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        CertSource::Files { cert: c, key: k }
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    fn client(&self, alpn: &[&str]) -> Arc<rustls::ClientConfig> {
        client_config(&TlsClientOptions {
            roots: ClientRoots::CaFile(self.ca_file()),
            alpn: alpn.iter().map(|a| a.as_bytes().to_vec()).collect(),
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

/// Echoes; records what the TLS session looked like when each connection opened.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<String>>>);

struct Echo {
    seen: Seen,
    close_after: Option<usize>,
}

impl Plugin for Echo {
    type Conn = usize;
    fn on_open(&mut self, cx: &mut ConnCtx<'_>) -> Option<usize> {
        let line = match cx.tls() {
            Some(t) => format!(
                "tls alpn={} sni={} certs={} resumed={}",
                t.alpn()
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .unwrap_or_default(),
                t.sni().unwrap_or("-"),
                t.peer_certificates().map_or(0, |c| c.len()),
                t.resumed()
            ),
            None => "plain".to_string(),
        };
        self.seen.0.lock().unwrap().push(line);
        Some(0)
    }
    fn on_data(&mut self, n: &mut usize, cx: &mut ConnCtx<'_>, data: &mut [u8]) -> usize {
        let _ = cx.send(data.to_vec());
        *n += data.len();
        if self.close_after.is_some_and(|m| *n >= m) {
            cx.close();
        }
        data.len()
    }
    fn on_close(&mut self, _: usize, _: &mut CoreCtx<'_>, _: CloseReason) {}
}

fn cfg(driver: DriverChoice) -> RuntimeConfig {
    RuntimeConfig {
        driver,
        threads: 1,
        shutdown_timeout: Duration::from_secs(3),
        ..RuntimeConfig::default()
    }
}

fn opts(certs: Vec<CertSource>) -> TlsServerOptions {
    TlsServerOptions {
        certs,
        ..TlsServerOptions::default()
    }
}

/// A server with one plain and one TLS listener.
fn start(
    cfg: RuntimeConfig,
    acc: Arc<TlsAcceptor>,
    seen: Seen,
) -> (ServerHandle, SocketAddr, SocketAddr) {
    start_with(cfg, acc, seen, None)
}

fn start_with(
    cfg: RuntimeConfig,
    acc: Arc<TlsAcceptor>,
    seen: Seen,
    close_after: Option<usize>,
) -> (ServerHandle, SocketAddr, SocketAddr) {
    let mut b = ServerBuilder::new(cfg);
    b.tcp("127.0.0.1:0".parse().unwrap());
    b.tcp_tls("127.0.0.1:0".parse().unwrap(), acc);
    let s = b
        .start(move |_| Echo {
            seen: seen.clone(),
            close_after,
        })
        .expect("server starts");
    let (p, t) = (s.local_addrs()[0], s.local_addrs()[1]);
    (s, p, t)
}

fn tcp(a: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(a).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

fn tls(a: SocketAddr, cfg: Arc<rustls::ClientConfig>, host: &str) -> Tls {
    connect_blocking(cfg, host, tcp(a)).expect("handshake")
}

/// A read that retries EINTR (io_uring workers in this process can interrupt blocking reads).
fn read_retry(s: &mut TcpStream, b: &mut [u8]) -> std::io::Result<usize> {
    loop {
        match s.read(b) {
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

/// Counters as published (every 100 ms).
fn stats(srv: &ServerHandle) -> Vec<ringwire_runtime::CoreStats> {
    std::thread::sleep(Duration::from_millis(250));
    srv.stats()
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

fn echo_check(s: &mut impl ReadWrite, data: &[u8]) {
    for chunk in data.chunks(16 * 1024) {
        s.write_all(chunk).unwrap();
        s.flush().unwrap();
        let mut back = vec![0; chunk.len()];
        s.read_exact(&mut back).unwrap();
        assert!(back == chunk, "echo differs");
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

fn echo_plain_and_tls_side_by_side(d: DriverChoice) {
    let pki = Pki::new("echo");
    let acc = TlsAcceptor::new(opts(vec![pki.leaf("leaf", &["localhost"], false)])).unwrap();
    let seen = Seen::default();
    let (srv, plain, secure) = start(cfg(d), acc, seen.clone());
    let data = pattern(1 << 20);
    let mut p = tcp(plain);
    echo_check(&mut p, &data[..100_000]);
    let mut threads = Vec::new();
    for _ in 0..8 {
        let c = pki.client(&[]);
        let data = data.clone();
        threads.push(std::thread::spawn(move || {
            let mut s = tls(secure, c, "localhost");
            echo_check(&mut s, &data);
        }));
    }
    for t in threads {
        t.join().unwrap();
    }
    let st = stats(&srv);
    assert_eq!(st.iter().map(|s| s.tls_handshakes).sum::<u64>(), 8);
    assert_eq!(st.iter().map(|s| s.tls_failures).sum::<u64>(), 0);
    let seen = seen.0.lock().unwrap();
    assert_eq!(seen.iter().filter(|l| *l == "plain").count(), 1);
    assert_eq!(seen.iter().filter(|l| l.starts_with("tls")).count(), 8);
    srv.stop();
}

fn alpn_sni_and_info_reach_the_plugin(d: DriverChoice) {
    let pki = Pki::new("alpn");
    let mut o = opts(vec![pki.leaf("leaf", &["localhost"], false)]);
    o.alpn = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acc = TlsAcceptor::new(o).unwrap();
    let seen = Seen::default();
    let (srv, _, secure) = start(cfg(d), acc, seen.clone());
    let mut s = tls(secure, pki.client(&["http/1.1", "h2"]), "localhost");
    assert_eq!(
        s.conn.alpn_protocol(),
        Some(&b"h2"[..]),
        "server preference wins"
    );
    echo_check(&mut s, b"hello");
    let mut s = tls(secure, pki.client(&["http/1.1"]), "localhost");
    assert_eq!(s.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    echo_check(&mut s, b"hello");
    // No protocol in common: the handshake fails (no_application_protocol).
    let err = connect_blocking(pki.client(&["spdy/3"]), "localhost", tcp(secure));
    assert!(err.is_err());
    let seen = seen.0.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![
            "tls alpn=h2 sni=localhost certs=0 resumed=false",
            "tls alpn=http/1.1 sni=localhost certs=0 resumed=false"
        ]
    );
    srv.stop();
}

fn sessions_resume(d: DriverChoice) {
    let pki = Pki::new("resume");
    for tls12 in [false, true] {
        let acc = TlsAcceptor::new(opts(vec![pki.leaf("leaf", &["localhost"], false)])).unwrap();
        let seen = Seen::default();
        let (srv, _, secure) = start(cfg(d), acc, seen.clone());
        let mut ccfg = (*pki.client(&[])).clone();
        if tls12 {
            ccfg = rustls::ClientConfig::builder_with_provider(ringwire_runtime::tls::provider())
                .with_protocol_versions(&[&rustls::version::TLS12])
                .unwrap()
                .with_root_certificates(ringwire_runtime::tls::load_roots(&pki.ca_file()).unwrap())
                .with_no_client_auth();
        }
        let ccfg = Arc::new(ccfg);
        for round in 0..3 {
            let mut s = tls(secure, ccfg.clone(), "localhost");
            echo_check(&mut s, b"x");
            let kind = s.conn.handshake_kind();
            if round == 0 {
                assert_eq!(kind, Some(rustls::HandshakeKind::Full), "tls12={tls12}");
            } else {
                assert_eq!(
                    kind,
                    Some(rustls::HandshakeKind::Resumed),
                    "tls12={tls12} round {round}"
                );
            }
            s.conn.send_close_notify();
            let _ = s.flush();
        }
        let seen = seen.0.lock().unwrap().clone();
        assert!(seen[1].ends_with("resumed=true"), "{seen:?}");
        srv.stop();
    }
}

fn sni_chooses_the_certificate(d: DriverChoice) {
    let pki = Pki::new("sni");
    let a = pki.leaf("a", &["a.test"], false);
    let b = pki.leaf("b", &["b.test", "*.wild.test"], false);
    let acc = TlsAcceptor::new(opts(vec![a, b])).unwrap();
    let (srv, _, secure) = start(cfg(d), acc, Seen::default());
    for host in ["a.test", "b.test", "x.wild.test"] {
        let mut s = tls(secure, pki.client(&[]), host);
        echo_check(&mut s, host.as_bytes());
    }
    // An unknown name gets the default (a.test), which the client's hostname check refuses.
    let err = connect_blocking(pki.client(&[]), "c.test", tcp(secure))
        .err()
        .unwrap();
    assert!(err.to_string().contains("not valid for name"), "{err}");
    srv.stop();
}

fn client_certificate_required(d: DriverChoice) {
    let pki = Pki::new("mtls");
    let mut o = opts(vec![pki.leaf("srv", &["localhost"], false)]);
    o.client_auth = ClientAuth::Required(pki.ca_file());
    let acc = TlsAcceptor::new(o).unwrap();
    let seen = Seen::default();
    let (srv, _, secure) = start(cfg(d), acc, seen.clone());
    // Without a certificate: refused (TLS 1.3 reports it on the first read).
    let refused = match connect_blocking(pki.client(&[]), "localhost", tcp(secure)) {
        Err(_) => true,
        Ok(mut s) => {
            let _ = s.write_all(b"x");
            let _ = s.flush();
            let mut b = [0u8; 1];
            s.read(&mut b).is_err()
        }
    };
    assert!(refused);
    let with_cert = client_config(&TlsClientOptions {
        roots: ClientRoots::CaFile(pki.ca_file()),
        client_cert: Some(pki.leaf("client", &["client.test"], false)),
        ..Default::default()
    })
    .unwrap();
    let mut s = tls(secure, with_cert, "localhost");
    echo_check(&mut s, b"mtls");
    let seen = seen.0.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].contains("certs=2"), "{seen:?}");
    assert!(stats(&srv)[0].tls_failures >= 1);
    srv.stop();
}

fn garbage_hello_closes_cleanly(d: DriverChoice) {
    let pki = Pki::new("garbage");
    let acc = TlsAcceptor::new(opts(vec![pki.leaf("leaf", &["localhost"], false)])).unwrap();
    let (srv, _, secure) = start(cfg(d), acc, Seen::default());
    for junk in [
        &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        &[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5][..],
        &[0x16, 0x03, 0x03, 0xff, 0xff][..],
    ] {
        let mut s = tcp(secure);
        s.write_all(junk).unwrap();
        if junk.len() == 5 {
            // A record header announcing 65535 bytes: oversize, refused without waiting.
            s.write_all(&[0; 64]).unwrap();
        }
        let mut buf = Vec::new();
        let r = s.read_to_end(&mut buf);
        assert!(
            r.is_ok()
                || r.as_ref()
                    .is_err_and(|e| e.kind() == ErrorKind::ConnectionReset),
            "{r:?}"
        );
        // At most an alert came back.
        assert!(buf.len() < 16, "{buf:?}");
    }
    let mut s = tls(secure, pki.client(&[]), "localhost");
    echo_check(&mut s, b"still serving");
    assert!(stats(&srv)[0].tls_failures >= 3);
    srv.stop();
}

fn handshake_deadline(d: DriverChoice) {
    let pki = Pki::new("deadline");
    let acc = TlsAcceptor::new(opts(vec![pki.leaf("leaf", &["localhost"], false)])).unwrap();
    let mut c = cfg(d);
    c.tls_handshake_timeout = Duration::from_millis(300);
    let (srv, _, secure) = start(c, acc, Seen::default());
    let mut s = tcp(secure);
    s.write_all(&[0x16, 0x03, 0x01]).unwrap(); // a ClientHello that never finishes
    let t0 = Instant::now();
    let mut b = [0u8; 64];
    let r = read_retry(&mut s, &mut b);
    assert!(matches!(r, Ok(0)) || r.is_err(), "{r:?}");
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert_eq!(stats(&srv)[0].tls_failures, 1);
    srv.stop();
}

fn handshake_cap_refuses_past_it(d: DriverChoice) {
    let pki = Pki::new("cap");
    let acc = TlsAcceptor::new(opts(vec![pki.leaf("leaf", &["localhost"], false)])).unwrap();
    let mut c = cfg(d);
    c.tls_max_handshakes = 2;
    c.tls_handshake_timeout = Duration::from_millis(800);
    let (srv, _, secure) = start(c, acc, Seen::default());
    let mut established = tls(secure, pki.client(&[]), "localhost");
    // A round trip, so the server has seen the client's Finished (TLS 1.3 clients finish first).
    echo_check(&mut established, b"first");
    let idle: Vec<TcpStream> = (0..2).map(|_| tcp(secure)).collect();
    std::thread::sleep(Duration::from_millis(100));
    // The third handshake is refused at once.
    let mut third = tcp(secure);
    let t0 = Instant::now();
    let mut b = [0u8; 8];
    let r = read_retry(&mut third, &mut b);
    assert!(matches!(r, Ok(0)) || r.is_err(), "{r:?}");
    assert!(t0.elapsed() < Duration::from_millis(600));
    // Established connections are unaffected.
    echo_check(&mut established, b"unaffected");
    // Once the idle ones hit the deadline, handshakes are accepted again.
    std::thread::sleep(Duration::from_millis(1000));
    let mut s = tls(secure, pki.client(&[]), "localhost");
    echo_check(&mut s, b"again");
    drop(idle);
    assert!(stats(&srv)[0].tls_failures >= 3);
    srv.stop();
}

fn reload_keeps_open_connections(d: DriverChoice) {
    let old = Pki::new("reload-old");
    let src = old.leaf("leaf", &["localhost"], false);
    let acc = TlsAcceptor::new(opts(vec![src.clone()])).unwrap();
    let (srv, _, secure) = start(cfg(d), acc.clone(), Seen::default());
    let mut open = tls(secure, old.client(&[]), "localhost");
    echo_check(&mut open, b"before");
    // New CA, new certificate written over the same files.
    let new = Pki::new("reload-new");
    let CertSource::Files { cert, key } = &src else {
        unreachable!()
    };
    let fresh = new.leaf("fresh", &["localhost"], false);
    let CertSource::Files { cert: fc, key: fk } = &fresh else {
        unreachable!()
    };
    std::fs::copy(fc, cert).unwrap();
    std::fs::copy(fk, key).unwrap();
    acc.reload().unwrap();
    assert_eq!(acc.reloads(), 1);
    echo_check(&mut open, b"after reload, same connection");
    let mut s = tls(secure, new.client(&[]), "localhost");
    echo_check(&mut s, b"new certificate");
    assert!(connect_blocking(old.client(&[]), "localhost", tcp(secure)).is_err());
    // A broken file leaves the current configuration in place.
    std::fs::write(cert, "not a certificate").unwrap();
    assert!(acc.reload().is_err());
    let mut s = tls(secure, new.client(&[]), "localhost");
    echo_check(&mut s, b"still the new one");
    srv.stop();
}

fn close_sends_close_notify(d: DriverChoice) {
    let pki = Pki::new("notify");
    let acc = TlsAcceptor::new(opts(vec![pki.leaf("leaf", &["localhost"], false)])).unwrap();
    let (srv, _, secure) = start_with(cfg(d), acc, Seen::default(), Some(4));
    let mut s = tls(secure, pki.client(&[]), "localhost");
    s.write_all(b"bye!").unwrap();
    s.flush().unwrap();
    let mut got = Vec::new();
    // A clean TLS close: read_to_end ends with Ok, not UnexpectedEof.
    s.read_to_end(&mut got).expect("close_notify before FIN");
    assert_eq!(got, b"bye!");
    srv.stop();
}

/// Sends a file range between two markers on open, then closes.
struct FileOnOpen(Arc<std::fs::File>);
impl Plugin for FileOnOpen {
    type Conn = ();
    fn on_open(&mut self, cx: &mut ConnCtx<'_>) -> Option<()> {
        cx.send(&b"<"[..]).unwrap();
        cx.send_file(&self.0, 10, 300_000).unwrap();
        cx.send(&b">"[..]).unwrap();
        cx.close();
        Some(())
    }
    fn on_data(&mut self, _: &mut (), _: &mut ConnCtx<'_>, data: &mut [u8]) -> usize {
        data.len()
    }
}

fn send_file_over_tls_is_read_and_encrypted(d: DriverChoice) {
    let pki = Pki::new("sendfile");
    let data = pattern(400_000);
    let path = pki.dir.join("body.bin");
    std::fs::write(&path, &data).unwrap();
    let file = Arc::new(std::fs::File::open(&path).unwrap());
    let acc = TlsAcceptor::new(opts(vec![pki.leaf("leaf", &["localhost"], false)])).unwrap();
    let mut b = ServerBuilder::new(cfg(d));
    b.tcp_tls("127.0.0.1:0".parse().unwrap(), acc);
    let srv = b
        .start(move |_| FileOnOpen(file.clone()))
        .expect("server starts");
    let mut s = tls(srv.local_addrs()[0], pki.client(&[]), "localhost");
    let mut got = Vec::new();
    s.read_to_end(&mut got).expect("clean close");
    let mut want = b"<".to_vec();
    want.extend_from_slice(&data[10..300_010]);
    want.push(b'>');
    assert_eq!(got.len(), want.len());
    assert!(got == want, "bytes differ");
    // TLS cannot use sendfile: the range was read and encrypted in user space.
    assert_eq!(stats(&srv)[0].file_bytes_out, 0);
    srv.stop();
}

#[test]
fn client_refuses_wrong_host_and_expired_certificates() {
    let pki = Pki::new("client");
    let good = pki.leaf("good", &["localhost"], false);
    let expired = pki.leaf("expired", &["localhost"], true);
    for (src, host, want) in [
        (good.clone(), "wrong.example", "not valid for name"),
        (expired, "localhost", "expired"),
    ] {
        let acc = TlsAcceptor::new(opts(vec![src])).unwrap();
        let (srv, _, secure) = start(cfg(DriverChoice::Auto), acc, Seen::default());
        let err = connect_blocking(pki.client(&[]), host, tcp(secure))
            .err()
            .unwrap();
        assert!(err.to_string().to_lowercase().contains(want), "{err}");
        // The test-only switch accepts it (and says so in its name).
        let danger = client_config(&TlsClientOptions {
            danger_accept_invalid_certs: true,
            ..Default::default()
        })
        .unwrap();
        let mut s = tls(secure, danger, host);
        echo_check(&mut s, b"unverified");
        srv.stop();
    }
    // webpki roots do not know our CA.
    let acc = TlsAcceptor::new(opts(vec![good])).unwrap();
    let (srv, _, secure) = start(cfg(DriverChoice::Auto), acc, Seen::default());
    let web = client_config(&TlsClientOptions::default()).unwrap();
    let err = connect_blocking(web, "localhost", tcp(secure))
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("UnknownIssuer") || err.to_string().contains("unknown issuer"),
        "{err}"
    );
    srv.stop();
    let _ = ServerName::try_from("localhost").unwrap();
}

#[test]
fn bad_configuration_is_a_clear_error() {
    let pki = Pki::new("badcfg");
    let e = TlsAcceptor::new(opts(vec![])).unwrap_err();
    assert!(e.to_string().contains("no certificate"), "{e}");
    let missing = CertSource::Files {
        cert: pki.dir.join("nope.pem"),
        key: pki.dir.join("nope.key"),
    };
    let e = TlsAcceptor::new(opts(vec![missing])).unwrap_err();
    assert!(e.to_string().contains("nope.pem"), "{e}");
    // A key that does not match the certificate.
    let a = pki.leaf("a", &["a.test"], false);
    let b = pki.leaf("b", &["b.test"], false);
    let (CertSource::Files { cert, .. }, CertSource::Files { key, .. }) = (a, b) else {
        unreachable!()
    };
    let e = TlsAcceptor::new(opts(vec![CertSource::Files { cert, key }])).unwrap_err();
    assert!(e.to_string().to_lowercase().contains("key"), "{e}");
}

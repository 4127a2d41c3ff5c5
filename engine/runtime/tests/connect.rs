//! Outgoing connections (`CoreCtx::connect`, `connect_tls`) on both drivers: a relay plugin
//! that, told `CONNECT addr [tls-name]` on an inbound connection, opens an outgoing one, sends
//! a greeting through it and relays what comes back.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use ringwire_runtime::tls::{
    CertSource, ClientRoots, TlsAcceptor, TlsClientOptions, TlsServerOptions, client_config,
};
use ringwire_runtime::{
    CloseReason, ConnCtx, ConnId, CoreCtx, DriverChoice, Plugin, RuntimeConfig, ServerBuilder,
};

macro_rules! both_drivers {
    ($($name:ident),* $(,)?) => {
        mod uring { $( #[test] fn $name() { super::$name(ringwire_runtime::DriverChoice::Uring) } )* }
        mod epoll { $( #[test] fn $name() { super::$name(ringwire_runtime::DriverChoice::Epoll) } )* }
    };
}

both_drivers!(
    relay_through_outgoing_connection,
    refused_connect_is_reported,
    outgoing_tls_verifies_the_server,
    many_outgoing_connections,
    pause_and_resume_another_connection,
    connect_from_a_source_address,
);

enum Role {
    /// An inbound control connection (listener 0).
    Control(Vec<u8>),
    /// An echo connection (listeners 1 and 2).
    Echo,
    /// An outgoing connection relaying to this control connection.
    Out(ConnId),
}

struct Relay {
    tls: Arc<rustls::ClientConfig>,
    /// Outgoing connection -> the control connection that asked for it.
    pending: HashMap<ConnId, ConnId>,
    /// The last outgoing connection opened (for PAUSE / RESUME / SEND).
    last_out: Option<ConnId>,
    closed_out: usize,
}

impl Plugin for Relay {
    type Conn = Role;

    fn on_open(&mut self, cx: &mut ConnCtx<'_>) -> Option<Role> {
        if cx.is_outgoing() {
            let ctl = self.pending.remove(&cx.id())?;
            let _ = cx.send(&b"ping through\n"[..]);
            self.last_out = Some(cx.id());
            let msg = format!("OPEN {}\n", cx.is_tls());
            let _ = cx.send_to(ctl, msg.into_bytes());
            return Some(Role::Out(ctl));
        }
        Some(if cx.listener().0 == 0 {
            Role::Control(Vec::new())
        } else {
            Role::Echo
        })
    }

    fn on_data(&mut self, conn: &mut Role, cx: &mut ConnCtx<'_>, data: &mut [u8]) -> usize {
        match conn {
            Role::Echo => {
                let _ = cx.send(data.to_vec());
            }
            Role::Out(ctl) => {
                let mut v = b"DATA ".to_vec();
                v.extend_from_slice(data);
                let _ = cx.send_to(*ctl, v);
            }
            Role::Control(line) => {
                line.extend_from_slice(data);
                while let Some(nl) = line.iter().position(|&b| b == b'\n') {
                    let cmd = String::from_utf8_lossy(&line[..nl]).to_string();
                    line.drain(..=nl);
                    let mut parts = cmd.split_whitespace();
                    match (parts.next(), self.last_out) {
                        (Some("CONNECT"), _) => {}
                        (Some("ADDRS"), _) => {
                            let msg = format!("ADDRS {} {}\n", cx.local_addr(), cx.peer_addr());
                            let _ = cx.send(msg.into_bytes());
                            continue;
                        }
                        (Some("FROM"), _) => {
                            // FROM addr source-ip [tls-name]
                            let addr: SocketAddr = parts.next().unwrap().parse().unwrap();
                            let ip: std::net::IpAddr = parts.next().unwrap().parse().unwrap();
                            let from = SocketAddr::new(ip, 0);
                            let r = match parts.next() {
                                Some(name) => {
                                    cx.connect_tls_from(addr, from, self.tls.clone(), name)
                                }
                                None => cx.connect_from(addr, from),
                            };
                            match r {
                                Ok(id) => {
                                    self.pending.insert(id, cx.id());
                                }
                                Err(e) => {
                                    let msg = format!("ERR now {:?}\n", e.kind());
                                    let _ = cx.send(msg.into_bytes());
                                }
                            }
                            continue;
                        }
                        (Some("PAUSE"), Some(out)) => {
                            cx.pause_reading_of(out);
                            continue;
                        }
                        (Some("RESUME"), Some(out)) => {
                            cx.resume_reading_of(out);
                            continue;
                        }
                        (Some("SEND"), Some(out)) => {
                            let text = format!("{}\n", parts.next().unwrap_or(""));
                            let _ = cx.send_to(out, text.into_bytes());
                            continue;
                        }
                        _ => continue,
                    }
                    let addr: SocketAddr = parts.next().unwrap().parse().unwrap();
                    let r = match parts.next() {
                        Some(name) => cx.connect_tls(addr, self.tls.clone(), name),
                        None => cx.connect(addr),
                    };
                    match r {
                        Ok(id) => {
                            self.pending.insert(id, cx.id());
                        }
                        Err(e) => {
                            let _ = cx.send(format!("ERR now {:?}\n", e.kind()).into_bytes());
                        }
                    }
                }
            }
        }
        data.len()
    }

    fn on_connect_error(&mut self, cx: &mut CoreCtx<'_>, id: ConnId, err: std::io::Error) {
        if let Some(ctl) = self.pending.remove(&id) {
            let _ = cx.send_to(ctl, format!("ERR {:?}\n", err.kind()).into_bytes());
        }
    }

    fn on_close(&mut self, conn: Role, _cx: &mut CoreCtx<'_>, _r: CloseReason) {
        if matches!(conn, Role::Out(_)) {
            self.closed_out += 1;
        }
    }
}

struct Setup {
    srv: ringwire_runtime::ServerHandle,
    control: SocketAddr,
    echo: SocketAddr,
    echo_tls: SocketAddr,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn setup(d: DriverChoice, threads: usize) -> Setup {
    let dir = std::env::temp_dir().join(format!(
        "ringwire-connect-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["upstream.test".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    let acc = TlsAcceptor::new(TlsServerOptions {
        certs: vec![CertSource::Pem {
            cert: leaf.pem().into_bytes(),
            key: key.serialize_pem().into_bytes(),
        }],
        ..TlsServerOptions::default()
    })
    .unwrap();
    let tls = client_config(&TlsClientOptions {
        roots: ClientRoots::CaFile(dir.join("ca.pem")),
        ..Default::default()
    })
    .unwrap();
    let cfg = RuntimeConfig {
        driver: d,
        threads,
        connect_timeout: Duration::from_millis(1500),
        shutdown_timeout: Duration::from_secs(3),
        ..RuntimeConfig::default()
    };
    let mut b = ServerBuilder::new(cfg);
    b.tcp("127.0.0.1:0".parse().unwrap());
    b.tcp("127.0.0.1:0".parse().unwrap());
    b.tcp_tls("127.0.0.1:0".parse().unwrap(), acc);
    let srv = b
        .start(move |_| Relay {
            tls: tls.clone(),
            pending: HashMap::new(),
            last_out: None,
            closed_out: 0,
        })
        .unwrap();
    let a = srv.local_addrs();
    Setup {
        control: a[0],
        echo: a[1],
        echo_tls: a[2],
        srv,
        _dir: TempDir(dir),
    }
}

fn control(a: SocketAddr) -> (TcpStream, BufReader<TcpStream>) {
    let s = TcpStream::connect(a).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let r = BufReader::new(s.try_clone().unwrap());
    (s, r)
}

fn line(r: &mut BufReader<TcpStream>) -> String {
    let mut l = String::new();
    loop {
        match r.read_line(&mut l) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => panic!("{e}"),
            Ok(_) => return l.trim_end().to_string(),
        }
    }
}

fn relay_through_outgoing_connection(d: DriverChoice) {
    let s = setup(d, 2);
    // To our own echo listener, and to a std listener outside the engine.
    let outside = TcpListener::bind("127.0.0.1:0").unwrap();
    let oa = outside.local_addr().unwrap();
    let t = std::thread::spawn(move || {
        let (mut c, _) = outside.accept().unwrap();
        let mut b = [0u8; 13];
        c.read_exact(&mut b).unwrap();
        c.write_all(b"outside says hi\n").unwrap();
        b
    });
    let (mut w, mut r) = control(s.control);
    w.write_all(format!("CONNECT {}\n", s.echo).as_bytes())
        .unwrap();
    assert_eq!(line(&mut r), "OPEN false");
    assert_eq!(line(&mut r), "DATA ping through");
    w.write_all(format!("CONNECT {oa}\n").as_bytes()).unwrap();
    assert_eq!(line(&mut r), "OPEN false");
    assert_eq!(line(&mut r), "DATA outside says hi");
    assert_eq!(&t.join().unwrap(), b"ping through\n");
    s.srv.stop();
}

fn refused_connect_is_reported(d: DriverChoice) {
    let s = setup(d, 1);
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = closed.local_addr().unwrap();
    drop(closed);
    let (mut w, mut r) = control(s.control);
    w.write_all(format!("CONNECT {dead}\n").as_bytes()).unwrap();
    assert_eq!(line(&mut r), "ERR ConnectionRefused");
    // A black-hole address: unreachable at once, or the connect deadline (1.5 s).
    let t0 = Instant::now();
    w.write_all(b"CONNECT 192.0.2.1:9\n").unwrap();
    let l = line(&mut r);
    assert!(l.starts_with("ERR"), "{l}");
    assert!(t0.elapsed() < Duration::from_secs(5));
    // Still working afterwards, and nothing leaked: the connection count goes back to 1.
    w.write_all(format!("CONNECT {}\n", s.echo).as_bytes())
        .unwrap();
    assert_eq!(line(&mut r), "OPEN false");
    assert_eq!(line(&mut r), "DATA ping through");
    s.srv.stop();
}

fn outgoing_tls_verifies_the_server(d: DriverChoice) {
    let s = setup(d, 2);
    let (mut w, mut r) = control(s.control);
    w.write_all(format!("CONNECT {} upstream.test\n", s.echo_tls).as_bytes())
        .unwrap();
    assert_eq!(line(&mut r), "OPEN true");
    assert_eq!(line(&mut r), "DATA ping through");
    // The certificate is for upstream.test: another name fails the handshake.
    w.write_all(format!("CONNECT {} other.test\n", s.echo_tls).as_bytes())
        .unwrap();
    assert_eq!(line(&mut r), "ERR InvalidData");
    s.srv.stop();
}

fn many_outgoing_connections(d: DriverChoice) {
    let s = setup(d, 2);
    let (mut w, mut r) = control(s.control);
    let n = 200;
    let mut cmds = String::new();
    for i in 0..n {
        if i % 2 == 0 {
            cmds.push_str(&format!("CONNECT {}\n", s.echo));
        } else {
            cmds.push_str(&format!("CONNECT {} upstream.test\n", s.echo_tls));
        }
    }
    w.write_all(cmds.as_bytes()).unwrap();
    let (mut open, mut data) = (0, 0);
    for _ in 0..2 * n {
        let l = line(&mut r);
        if l.starts_with("OPEN") {
            open += 1;
        } else if l == "DATA ping through" {
            data += 1;
        } else {
            panic!("{l}");
        }
    }
    assert_eq!((open, data), (n, n));
    std::thread::sleep(Duration::from_millis(250));
    let st = s.srv.stats();
    assert_eq!(st.iter().map(|c| c.open).sum::<u64>(), 1 + 2 * n as u64);
    s.srv.stop();
}

fn pause_and_resume_another_connection(d: DriverChoice) {
    let s = setup(d, 1);
    let (mut w, mut r) = control(s.control);
    w.write_all(format!("CONNECT {}\n", s.echo).as_bytes())
        .unwrap();
    assert_eq!(line(&mut r), "OPEN false");
    assert_eq!(line(&mut r), "DATA ping through");
    // Paused from the control connection's callback: the echo waits in the socket.
    w.write_all(b"PAUSE\nSEND held\n").unwrap();
    r.get_ref()
        .set_read_timeout(Some(Duration::from_millis(400)))
        .unwrap();
    let mut probe = String::new();
    let got = r.read_line(&mut probe);
    assert!(got.is_err(), "nothing while paused, got {probe:?}");
    r.get_ref()
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    w.write_all(b"RESUME\n").unwrap();
    assert_eq!(line(&mut r), "DATA held");
    s.srv.stop();
}

fn connect_from_a_source_address(d: DriverChoice) {
    let s = setup(d, 2);
    let outside = TcpListener::bind("127.0.0.1:0").unwrap();
    let oa = outside.local_addr().unwrap();
    let t = std::thread::spawn(move || {
        let mut peers = Vec::new();
        for _ in 0..2 {
            let (mut c, peer) = outside.accept().unwrap();
            let mut b = [0u8; 13];
            c.read_exact(&mut b).unwrap();
            c.write_all(b"hi\n").unwrap();
            peers.push(peer.ip());
        }
        peers
    });
    let (mut w, mut r) = control(s.control);
    // The addresses of the control connection itself, as the engine reports them.
    w.write_all(b"ADDRS\n").unwrap();
    let me = w.local_addr().unwrap();
    assert_eq!(line(&mut r), format!("ADDRS {} {me}", s.control));
    for ip in ["127.0.0.3", "127.0.0.4"] {
        w.write_all(format!("FROM {oa} {ip}\n").as_bytes()).unwrap();
        assert_eq!(line(&mut r), "OPEN false");
        assert_eq!(line(&mut r), "DATA hi");
    }
    let peers = t.join().unwrap();
    assert_eq!(
        peers,
        [
            "127.0.0.3".parse::<std::net::IpAddr>().unwrap(),
            "127.0.0.4".parse().unwrap()
        ]
    );
    // Over TLS, through the engine's own TLS listener.
    w.write_all(format!("FROM {} 127.0.0.5 upstream.test\n", s.echo_tls).as_bytes())
        .unwrap();
    assert_eq!(line(&mut r), "OPEN true");
    assert_eq!(line(&mut r), "DATA ping through");
    // An address this host does not have is refused at once, and nothing is left open.
    w.write_all(format!("FROM {oa} 192.0.2.7\n").as_bytes())
        .unwrap();
    assert_eq!(line(&mut r), "ERR now AddrNotAvailable");
    s.srv.stop();
}

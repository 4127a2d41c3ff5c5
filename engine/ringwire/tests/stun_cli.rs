//! `ringwire serve --stun`, `ringwire stun-client` and `ringwire turn-client` as processes,
//! on both drivers.

mod common;

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

macro_rules! both_drivers {
    ($($name:ident),* $(,)?) => {
        mod uring { $( #[test] fn $name() { super::$name("uring") } )* }
        mod epoll { $( #[test] fn $name() { super::$name("epoll") } )* }
    };
}

both_drivers!(serve_stun_and_clients, serve_stun_from_toml);

/// Kills the server when the test ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start `ringwire serve ARGS` and return its first readiness line. A server that exits
/// before announcing itself fails the test with its stderr.
fn spawn_serve(args: &[&str]) -> (Server, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringwire"))
        .arg("serve")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    match lines.next() {
        Some(Ok(first)) => (Server(child), first),
        _ => {
            let out = child.wait_with_output().unwrap();
            panic!(
                "ringwire serve {args:?} exited before listening ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ringwire"))
        .args(args)
        .output()
        .unwrap()
}

fn free_port() -> u16 {
    let addr = ringwire::stun::same_port_for_udp_and_tcp("127.0.0.1:0".parse().unwrap()).unwrap();
    addr.port()
}

fn want_driver(driver: &str) -> String {
    std::env::var("RINGWIRE_DRIVER")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or(driver.into())
}

/// A UDP echo peer on loopback.
fn echo_peer() -> (std::net::SocketAddr, Arc<AtomicBool>) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    let addr = s.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let st = stop.clone();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        while !st.load(Ordering::Relaxed) {
            if let Ok((n, from)) = s.recv_from(&mut buf) {
                let _ = s.send_to(&buf[..n], from);
            }
        }
    });
    (addr, stop)
}

fn check_clients(port: u16) {
    let server = format!("127.0.0.1:{port}");
    for extra in [&[][..], &["--tcp"][..]] {
        let out = run(&[&["stun-client", server.as_str()][..], extra].concat());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text} {:?}", out);
        assert!(text.starts_with("mapped-address: 127.0.0.1:"), "{text}");
    }
    let (peer, stop) = echo_peer();
    let peer = peer.to_string();
    let out = run(&[
        "turn-client",
        "--server",
        &server,
        "--user",
        "u:p",
        "--realm",
        "r",
        "--peer",
        &peer,
        "--count",
        "50",
        "--size",
        "300",
    ]);
    stop.store(true, Ordering::Relaxed);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines = text.lines();
    let relayed = lines.next().unwrap();
    assert!(relayed.starts_with("relayed-address: 127.0.0.1:"), "{text}");
    let port: u16 = relayed.rsplit(':').next().unwrap().parse().unwrap();
    assert!((45000..=45999).contains(&port), "{relayed}");
    assert_eq!(lines.next(), Some("received: 50/50"));
}

fn serve_stun_and_clients(driver: &str) {
    // Port 0: the server picks a port free for both UDP and TCP itself, so no other test's
    // sockets can take it between choosing and binding.
    let (_server, line) = spawn_serve(&[
        "--threads",
        "2",
        "--driver",
        driver,
        "--stun",
        "127.0.0.1:0",
        "--turn-user",
        "u:p",
        "--realm",
        "r",
        "--turn-allow-loopback-peers",
        "--turn-relay-ports",
        "45000-45999",
    ]);
    let port = common::announced_port(&line);
    assert_ne!(port, 0);
    assert_eq!(
        line,
        format!(
            "listening on 127.0.0.1:{port} (driver={}, threads=2)",
            want_driver(driver)
        )
    );
    check_clients(port);
}

fn serve_stun_from_toml(driver: &str) {
    let dir =
        std::env::temp_dir().join(format!("ringwire-stun-cli-{}-{driver}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("stun.toml");
    std::fs::write(
        &f,
        format!(
            "threads = 1\ndriver = \"{driver}\"\nstun = [\"127.0.0.1:0\"]\n\
             turn_user = [\"u:p\"]\nrealm = \"r\"\nturn_allow_loopback_peers = true\n\
             turn_relay_ports = \"45000-45999\"\nturn_user_quota = 2\n"
        ),
    )
    .unwrap();
    let (_server, line) = spawn_serve(&["--config", f.to_str().unwrap()]);
    let port = common::announced_port(&line);
    assert!(line.ends_with(" threads=1)"), "{line}");
    check_clients(port);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_stun_options_are_clear_errors() {
    for (args, want) in [
        (
            &["--stun", "127.0.0.1:0", "--turn-relay-ports", "9-1"][..],
            "turn_relay_ports",
        ),
        (
            &["--stun", "127.0.0.1:0", "--turn-user", "nocolon"][..],
            "turn_user",
        ),
        (
            &["--stun", "0.0.0.0:0", "--turn-user", "u:p"][..],
            "turn_relay_ip",
        ),
    ] {
        let out = run(&[&["serve"][..], args].concat());
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

#[test]
fn stun_client_times_out_without_server() {
    // A port nobody answers on; 3 sends at 20/40 ms and a 16 x 20 ms final wait.
    let port = free_port();
    let out = run(&[
        "stun-client",
        &format!("127.0.0.1:{port}"),
        "--rto-ms",
        "20",
        "--max-transmissions",
        "3",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("timed out"));
}

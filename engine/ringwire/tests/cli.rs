//! The `ringwire` binary: readiness lines, echo, counters on SIGUSR1, graceful stop on SIGTERM,
//! config errors.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

fn serve_and_stop(driver: &str) {
    // Port 0 for both: the server binds ports nobody else can take first, and announces them.
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringwire"))
        .args(["serve", "--threads", "2", "--driver", driver])
        .args(["--bind", "127.0.0.1:0", "--tcp-echo", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let want = std::env::var("RINGWIRE_DRIVER")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or(driver.into());
    let mut announced = || {
        let line = lines.next().unwrap().unwrap();
        let port = common::announced_port(&line);
        assert_eq!(
            line,
            format!("listening on 127.0.0.1:{port} (driver={want}, threads=2)")
        );
        port
    };
    let (p1, p2) = (announced(), announced());
    assert_ne!(p1, p2);
    let mut s = TcpStream::connect(("127.0.0.1", p2)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"hello").unwrap();
    let mut b = [0u8; 5];
    s.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"hello");
    // SIGUSR1: a line of counters per core, then their sum. The cores publish them every
    // 100 ms, so ask until the sum shows the echo connection.
    let mut seen = None;
    for _ in 0..100 {
        // SAFETY: sending a signal to our own child process.
        unsafe { libc_kill(child.id() as i32, 10) };
        let rows: Vec<String> = (0..3).map(|_| lines.next().unwrap().unwrap()).collect();
        assert!(rows[0].starts_with("stats core=0 accepted="), "{rows:?}");
        assert!(rows[1].starts_with("stats core=1 accepted="), "{rows:?}");
        assert!(rows[2].starts_with("stats core=all accepted="), "{rows:?}");
        let all: std::collections::HashMap<&str, u64> = rows[2]
            .split(' ')
            .filter_map(|kv| kv.split_once('='))
            .filter_map(|(k, v)| Some((k, v.parse().ok()?)))
            .collect();
        if all["accepted"] == 1 && all["bytes_in"] == 5 {
            assert_eq!(all["open"], 1);
            assert_eq!(all["bytes_out"], 5);
            seen = Some(rows);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(seen.is_some(), "SIGUSR1 never showed the echo connection");
    // SIGTERM: the open connection is closed gracefully (EOF, not a reset) and the process exits 0.
    // SAFETY: sending a signal to our own child process.
    unsafe { libc_kill(child.id() as i32, 15) };
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

#[test]
fn uring_serve_prints_ready_lines_and_stops_on_sigterm() {
    serve_and_stop("uring");
}

#[test]
fn epoll_serve_prints_ready_lines_and_stops_on_sigterm() {
    serve_and_stop("epoll");
}

#[test]
fn bad_config_is_a_clear_error() {
    let dir = std::env::temp_dir().join(format!("ringwire-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("bad.toml");
    std::fs::write(&f, "driver = \"warp\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ringwire"))
        .args(["serve", "--config"])
        .arg(&f)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("driver"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_ringwire"))
        .args(["serve", "--bind", "not-an-addr"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

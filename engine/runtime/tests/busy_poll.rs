//! Busy poll ([`RuntimeConfig::busy_poll`]) on both drivers: `uring::name` and `epoll::name`
//! (with `RINGWIRE_DRIVER=epoll`, both run epoll). A test binary of its own: its servers
//! keep a core busy for a second or so, which would slow the timing-sensitive tests of
//! engine.rs running beside them.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use ringwire_runtime::{
    Bytes, ConnCtx, DriverChoice, Plugin, RuntimeConfig, ServerBuilder, ServerHandle,
};

macro_rules! both_drivers {
    ($($name:ident),* $(,)?) => {
        mod uring { $( #[test] fn $name() { super::$name(ringwire_runtime::DriverChoice::Uring) } )* }
        mod epoll { $( #[test] fn $name() { super::$name(ringwire_runtime::DriverChoice::Epoll) } )* }
    };
}

both_drivers!(busy_poll_catches_input_and_an_idle_core_sleeps);

fn cfg(driver: DriverChoice, threads: usize) -> RuntimeConfig {
    RuntimeConfig {
        driver,
        threads,
        shutdown_timeout: Duration::from_secs(5),
        ..RuntimeConfig::default()
    }
}

fn start<P: Plugin>(
    cfg: RuntimeConfig,
    f: impl Fn(usize) -> P + Send + Sync + 'static,
) -> (ServerHandle, SocketAddr) {
    let mut b = ServerBuilder::new(cfg);
    b.tcp("127.0.0.1:0".parse().unwrap());
    let s = b.start(f).expect("server starts");
    let a = s.local_addrs()[0];
    (s, a)
}

fn connect(a: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(a).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Write `data`, read as many bytes back.
fn roundtrip(s: &mut TcpStream, data: &[u8]) -> Vec<u8> {
    s.write_all(data).unwrap();
    let mut got = vec![0u8; data.len()];
    s.read_exact(&mut got).expect("echo arrives");
    got
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Sends back what it gets.
struct Echo;
impl Plugin for Echo {
    type Conn = ();
    fn on_open(&mut self, _cx: &mut ConnCtx<'_>) -> Option<()> {
        Some(())
    }
    fn on_data(&mut self, _: &mut (), cx: &mut ConnCtx<'_>, data: &mut [u8]) -> usize {
        let _ = cx.send(Bytes::copy_from_slice(data));
        data.len()
    }
}

/// Answers every byte it gets with the CPU time its core's thread has used so far (utime +
/// stime from /proc/thread-self/stat, in clock ticks), as decimal text and a newline.
struct CpuTime;
impl Plugin for CpuTime {
    type Conn = ();
    fn on_open(&mut self, _cx: &mut ConnCtx<'_>) -> Option<()> {
        Some(())
    }
    fn on_data(&mut self, _: &mut (), cx: &mut ConnCtx<'_>, data: &mut [u8]) -> usize {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        // Fields after the command name (which ends with the last ')'): utime and stime are
        // the 12th and 13th of them.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<u64> = rest
            .split(' ')
            .skip(11)
            .take(2)
            .map(|v| v.parse().unwrap())
            .collect();
        let _ = cx.send(format!("{}\n", f[0] + f[1]).into_bytes());
        data.len()
    }
}

/// Arms a timer of `.1`, and again each time it fires, `.0` times in all; then sends `t` and
/// closes.
struct ChainTimer(u32, Duration);
impl Plugin for ChainTimer {
    type Conn = ();
    fn on_open(&mut self, cx: &mut ConnCtx<'_>) -> Option<()> {
        cx.set_timer(self.1, 1);
        Some(())
    }
    fn on_data(&mut self, _: &mut (), _cx: &mut ConnCtx<'_>, data: &mut [u8]) -> usize {
        data.len()
    }
    fn on_timer(&mut self, _: &mut (), cx: &mut ConnCtx<'_>, n: u64) {
        if n < u64::from(self.0) {
            cx.set_timer(self.1, n + 1);
        } else {
            let _ = cx.send(b"t".to_vec());
            cx.close();
        }
    }
}

/// The CPU ticks a [`CpuTime`] server's core has used.
fn core_ticks(s: &mut TcpStream) -> u64 {
    s.write_all(b"?").unwrap();
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while b[0] != b'\n' {
        s.read_exact(&mut b).unwrap();
        line.push(b[0]);
    }
    std::str::from_utf8(&line).unwrap().trim().parse().unwrap()
}

/// Busy poll: input that arrives while a core polls is handled without the core going to
/// sleep (and counted), and a core with nothing to do stops polling and sleeps.
fn busy_poll_catches_input_and_an_idle_core_sleeps(d: DriverChoice) {
    // A poll long enough that the next message surely comes during it.
    let (server, addr) = start(
        RuntimeConfig {
            busy_poll: Duration::from_secs(1),
            ..cfg(d, 1)
        },
        |_| Echo,
    );
    let mut s = connect(addr);
    assert_eq!(roundtrip(&mut s, b"a"), b"a");
    std::thread::sleep(Duration::from_millis(150));
    let before = server.stats()[0].busy_polls;
    for i in 0..10u8 {
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(roundtrip(&mut s, &[i]), [i]);
    }
    // Most are counted; on a loaded machine, one that comes while the polling thread is
    // preempted past the poll's end is found by the wait after it instead.
    wait_for("busy polls counted", || {
        server.stats()[0].busy_polls >= before + 3
    });
    drop((s, server));
    // Timers fire on time while the core polls: the poll ends at the next timer, and the
    // wait after it is for what is left (a poll and then a whole wait would double each
    // delay: 20 timers of 10 ms one after the other would take 400 ms).
    let (_server, addr) = start(
        RuntimeConfig {
            busy_poll: Duration::from_secs(1),
            ..cfg(d, 1)
        },
        |_| ChainTimer(20, Duration::from_millis(10)),
    );
    let t = Instant::now();
    let mut got = String::new();
    connect(addr).read_to_string(&mut got).unwrap();
    let took = t.elapsed();
    assert_eq!(got, "t");
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_millis(330),
        "20 timers of 10 ms took {took:?}"
    );
    // Off (the default): none counted.
    let (server, addr) = start(cfg(d, 1), |_| Echo);
    let mut s = connect(addr);
    for i in 0..5u8 {
        assert_eq!(roundtrip(&mut s, &[i]), [i]);
    }
    std::thread::sleep(Duration::from_millis(250));
    assert_eq!(server.stats()[0].busy_polls, 0);
    drop((s, server));
    // A short poll: over a second with nothing to do (but the core's own 100 ms timers), the
    // core sleeps. Polling throughout would take most of that second of CPU time (100 ticks);
    // polling 2 ms after each timer, about 2.
    let (_server, addr) = start(
        RuntimeConfig {
            busy_poll: Duration::from_millis(2),
            ..cfg(d, 1)
        },
        |_| CpuTime,
    );
    let mut s = connect(addr);
    let t0 = core_ticks(&mut s);
    std::thread::sleep(Duration::from_secs(1));
    let used = core_ticks(&mut s) - t0;
    assert!(
        used < 30,
        "an idle core with a 2 ms busy poll used {used} ticks in 1 s"
    );
}

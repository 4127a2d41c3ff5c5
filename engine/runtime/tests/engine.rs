//! End-to-end tests of the runtime on real sockets. Every test runs on both drivers:
//! `uring::name` and `epoll::name` (with `RINGWIRE_DRIVER=epoll`, both run epoll).

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use ringwire_runtime::{
    BusMessage, Bytes, CloseReason, ConnCtx, ConnId, CoreCtx, DriverChoice, DriverKind,
    OverflowPolicy, Plugin, Rate, RuntimeConfig, SendError, ServerBuilder, ServerHandle, Throttle,
    UdpId,
};

/// Expand a test body `fn(DriverChoice)` into one test per driver.
macro_rules! both_drivers {
    ($($name:ident),* $(,)?) => {
        mod uring { $( #[test] fn $name() { super::$name(ringwire_runtime::DriverChoice::Uring) } )* }
        mod epoll { $( #[test] fn $name() { super::$name(ringwire_runtime::DriverChoice::Epoll) } )* }
    };
}

both_drivers!(
    echo_byte_exact_many_connections,
    echo_byte_exact_incremental_buffers,
    echo_large_messages,
    slow_reader_backpressure_refuse,
    slow_reader_overflow_close,
    peer_reset,
    half_close,
    timers_fire_in_order_and_cancel,
    cross_core_broadcast,
    graceful_shutdown_delivers_queued,
    max_connections_refused,
    tiny_buffers_enobufs,
    buffer_window_grows_and_shrinks,
    udp_echo,
    udp_bind_and_close_at_runtime,
    read_throttle,
    write_throttle,
    input_overflow_aborts,
    pause_and_resume_redelivers,
    stats_count,
    batch_wait_keeps_echo_and_timers,
    batch_wait_only_on_a_busy_core,
    fine_timer_tick,
    deadlines_fire_late_never_early_and_move,
);

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

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Send `data` from a writer thread while reading the same number of bytes back.
fn roundtrip(s: &mut TcpStream, data: &[u8]) -> Vec<u8> {
    let mut w = s.try_clone().unwrap();
    let owned = data.to_vec();
    let t = std::thread::spawn(move || w.write_all(&owned).unwrap());
    let mut got = vec![0u8; data.len()];
    s.read_exact(&mut got).expect("echo arrives");
    t.join().unwrap();
    got
}

// ---------------------------------------------------------------- plugins used by the tests

struct Echo;
impl Plugin for Echo {
    type Conn = ();
    fn on_open(&mut self, _cx: &mut ConnCtx<'_>) -> Option<()> {
        Some(())
    }
    fn on_data(&mut self, _: &mut (), cx: &mut ConnCtx<'_>, data: &mut [u8]) -> usize {
        match cx.send(Bytes::copy_from_slice(data)) {
            Ok(_) => data.len(),
            Err(SendError::Backpressure) => {
                cx.pause_reading();
                0
            }
            Err(_) => data.len(),
        }
    }
    fn on_drained(&mut self, _: &mut (), cx: &mut ConnCtx<'_>) {
        cx.resume_reading();
    }
}

type Reasons = Arc<Mutex<Vec<CloseReason>>>;

/// Echo that records why connections closed.
struct Recorder(Reasons);
impl Plugin for Recorder {
    type Conn = ();
    fn on_open(&mut self, _cx: &mut ConnCtx<'_>) -> Option<()> {
        Some(())
    }
    fn on_data(&mut self, _: &mut (), cx: &mut ConnCtx<'_>, data: &mut [u8]) -> usize {
        let _ = cx.send(Bytes::copy_from_slice(data));
        data.len()
    }
    fn on_close(&mut self, _: (), _cx: &mut CoreCtx<'_>, reason: CloseReason) {
        self.0.lock().unwrap().push(reason);
    }
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

// ---------------------------------------------------------------- the tests

fn echo_byte_exact_many_connections(d: DriverChoice) {
    echo_byte_exact_on(cfg(d, 2));
}

/// The same with io_uring's provided buffers consumed incrementally: receives share a few
/// large buffers (a record crosses a buffer's end now and then), and with a ring this small
/// (4 x 64 KiB) 200 connections run it dry now and then. Where the kernel cannot, the ring
/// is 16 buffers of 16 KiB that each receive takes whole. (epoll has no provided buffers.)
fn echo_byte_exact_incremental_buffers(d: DriverChoice) {
    echo_byte_exact_on(RuntimeConfig {
        recv_buffer_incremental: true,
        recv_buffers: 4,
        recv_buffer_size: 64 * 1024,
        ..cfg(d, 2)
    });
}

fn echo_byte_exact_on(c: RuntimeConfig) {
    let (server, addr) = start(c, |_| Echo);
    let sizes = [1usize, 2, 13, 100, 1000, 4096, 16_384, 65_537, 100_000];
    let threads: Vec<_> = (0..200)
        .map(|i| {
            std::thread::spawn(move || {
                let mut s = connect(addr);
                for (j, &n) in sizes.iter().enumerate() {
                    let data = pattern(n, (i * 7 + j) as u8);
                    assert!(
                        roundtrip(&mut s, &data) == data,
                        "conn {i} size {n} differs"
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    drop(server);
}

/// With io_uring's batch wait on (epoll ignores it), echoes stay byte-exact, a lone message is
/// answered (one completion is enough once the wait passed) and timers still fire in order.
fn batch_wait_keeps_echo_and_timers(d: DriverChoice) {
    let bcfg = |threads| RuntimeConfig {
        uring_batch_wait: Duration::from_micros(500),
        uring_batch_size: 16,
        uring_batch_busy: 0,
        ..cfg(d, threads)
    };
    let (server, addr) = start(bcfg(1), |_| Echo);
    let threads: Vec<_> = (0..50)
        .map(|i| {
            std::thread::spawn(move || {
                let mut s = connect(addr);
                for n in [1usize, 512, 16_384, 100_000] {
                    let data = pattern(n, i as u8);
                    assert!(roundtrip(&mut s, &data) == data, "conn {i} size {n}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // One connection, one byte at a time: nothing else arrives to fill a batch.
    let mut s = connect(addr);
    for i in 0..20u8 {
        assert_eq!(roundtrip(&mut s, &[i]), [i]);
    }
    drop(s);
    // Every turn waited for a batch (where the kernel can: Linux 6.12 added the min wait).
    wait_for("stats", || server.stats()[0].accepted == 51);
    std::thread::sleep(Duration::from_millis(150));
    let waits = server.stats()[0].batch_waits;
    // The driver that runs (RINGWIRE_DRIVER=epoll makes the `uring::` tests run epoll too).
    if server.driver() == DriverKind::Uring && kernel_at_least(6, 12) {
        assert!(waits > 0, "no batch wait counted");
    } else if server.driver() == DriverKind::Epoll {
        assert_eq!(waits, 0, "epoll has no batch wait");
    }
    drop(server);
    let (_server, addr) = start(bcfg(1), |_| Timers);
    let mut s = connect(addr);
    let mut got = String::new();
    s.read_to_string(&mut got).unwrap();
    assert_eq!(got, "21");
}

/// The default batch wait applies only after a busy turn: one connection echoing one byte at a
/// time never makes a turn wait for a batch, even with a wait long enough to stall it.
fn batch_wait_only_on_a_busy_core(d: DriverChoice) {
    let (server, addr) = start(
        RuntimeConfig {
            uring_batch_wait: Duration::from_millis(300),
            ..cfg(d, 1)
        },
        |_| Echo,
    );
    let mut s = connect(addr);
    let t = Instant::now();
    for i in 0..20u8 {
        assert_eq!(roundtrip(&mut s, &[i]), [i]);
    }
    let quiet = t.elapsed();
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(
        server.stats()[0].batch_waits,
        0,
        "a quiet core waited for a batch"
    );
    // 20 waits of 300 ms would take 6 s; generous for a loaded CI machine.
    assert!(quiet < Duration::from_secs(3), "20 echoes took {quiet:?}");
    // Many connections at once still get every byte back, whatever turns end up batched.
    let conns: Vec<TcpStream> = (0..64).map(|_| connect(addr)).collect();
    for (i, mut c) in conns.iter().enumerate() {
        c.write_all(&[i as u8; 100]).unwrap();
    }
    for (i, mut c) in conns.iter().enumerate() {
        let mut got = [0u8; 100];
        c.read_exact(&mut got).unwrap();
        assert_eq!(got, [i as u8; 100]);
    }
}

/// The running kernel is at least `major.minor` (from /proc/sys/kernel/osrelease).
fn kernel_at_least(major: u32, minor: u32) -> bool {
    let rel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut it = rel
        .trim()
        .split(['.', '-'])
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let v = (it.next().unwrap_or(0), it.next().unwrap_or(0));
    v >= (major, minor)
}

fn echo_large_messages(d: DriverChoice) {
    let (_server, addr) = start(cfg(d, 2), |_| Echo);
    let threads: Vec<_> = (0..8)
        .map(|i| {
            std::thread::spawn(move || {
                let mut s = connect(addr);
                let data = pattern(1 << 20, i as u8);
                assert!(roundtrip(&mut s, &data) == data);
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

/// Sends `total` bytes in 64 KiB chunks as fast as the out-queue limit allows, recording the
/// largest buffered figure and how many sends were refused.
struct Flood {
    total: usize,
    sent: usize,
    max_buffered: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
    limit: usize,
    policy: OverflowPolicy,
    reasons: Reasons,
}
impl Flood {
    fn pump(&mut self, cx: &mut ConnCtx<'_>) {
        let chunk = Bytes::from(pattern(64 * 1024, 9));
        while self.sent < self.total {
            let n = chunk.len().min(self.total - self.sent);
            match cx.send(chunk.slice(..n)) {
                Ok(b) => {
                    self.sent += n;
                    self.max_buffered.fetch_max(b, Ordering::SeqCst);
                }
                Err(SendError::Backpressure) => {
                    self.refused.fetch_add(1, Ordering::SeqCst);
                    return;
                }
                Err(_) => return,
            }
        }
        cx.close();
    }
}
impl Plugin for Flood {
    type Conn = ();
    fn on_open(&mut self, cx: &mut ConnCtx<'_>) -> Option<()> {
        cx.set_send_limit(self.limit, self.policy);
        Some(())
    }
    fn on_data(&mut self, _: &mut (), cx: &mut ConnCtx<'_>, data: &mut [u8]) -> usize {
        self.pump(cx);
        data.len()
    }
    fn on_drained(&mut self, _: &mut (), cx: &mut ConnCtx<'_>) {
        self.pump(cx);
    }
    fn on_close(&mut self, _: (), _cx: &mut CoreCtx<'_>, reason: CloseReason) {
        self.reasons.lock().unwrap().push(reason);
    }
}

fn slow_reader_backpressure_refuse(d: DriverChoice) {
    let max = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let reasons: Reasons = Arc::default();
    let (m, r, rs) = (max.clone(), refused.clone(), reasons.clone());
    let limit = 256 * 1024;
    let total = 16 << 20;
    let (_server, addr) = start(cfg(d, 1), move |_| Flood {
        total,
        sent: 0,
        max_buffered: m.clone(),
        refused: r.clone(),
        limit,
        policy: OverflowPolicy::Refuse,
        reasons: rs.clone(),
    });
    let mut s = connect(addr);
    s.write_all(b"go").unwrap();
    // Read slowly at first: the server must hold at most `limit` bytes meanwhile.
    let mut buf = vec![0u8; 4096];
    let mut got = 0usize;
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(2));
        got += s.read(&mut buf).unwrap();
    }
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    got += rest.len();
    assert_eq!(got, total, "every byte accepted by send() arrives");
    assert!(
        max.load(Ordering::SeqCst) <= limit,
        "buffered {} > limit {limit}",
        max.load(Ordering::SeqCst)
    );
    assert!(
        refused.load(Ordering::SeqCst) > 0,
        "the limit was reached at least once"
    );
    drop(s); // our FIN completes the server's graceful close
    wait_for("close", || !reasons.lock().unwrap().is_empty());
    assert_eq!(reasons.lock().unwrap()[0], CloseReason::Local);
}

fn slow_reader_overflow_close(d: DriverChoice) {
    let reasons: Reasons = Arc::default();
    let rs = reasons.clone();
    let (_server, addr) = start(cfg(d, 1), move |_| Flood {
        total: 64 << 20,
        sent: 0,
        max_buffered: Arc::default(),
        refused: Arc::default(),
        limit: 256 * 1024,
        policy: OverflowPolicy::Close,
        reasons: rs.clone(),
    });
    let mut s = connect(addr);
    s.write_all(b"go").unwrap();
    wait_for("abort", || !reasons.lock().unwrap().is_empty());
    assert_eq!(reasons.lock().unwrap()[0], CloseReason::Aborted);
    // The client sees fewer bytes than were attempted, then a reset or EOF.
    let mut n = 0usize;
    let mut buf = vec![0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    assert!(n < 64 << 20);
}

fn peer_reset(d: DriverChoice) {
    let reasons: Reasons = Arc::default();
    let rs = reasons.clone();
    let (_server, addr) = start(cfg(d, 1), move |_| Recorder(rs.clone()));
    let mut s = connect(addr);
    assert_eq!(roundtrip(&mut s, b"hello"), b"hello");
    socket2::SockRef::from(&s)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(s); // RST
    wait_for("close after reset", || !reasons.lock().unwrap().is_empty());
    let r = reasons.lock().unwrap()[0];
    assert!(
        matches!(
            r,
            CloseReason::Error(std::io::ErrorKind::ConnectionReset) | CloseReason::Peer
        ),
        "reason {r:?}"
    );
}

fn half_close(d: DriverChoice) {
    let reasons: Reasons = Arc::default();
    let rs = reasons.clone();
    let (_server, addr) = start(cfg(d, 1), move |_| Recorder(rs.clone()));
    let mut s = connect(addr);
    let data = pattern(300_000, 3);
    s.write_all(&data).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap(); // every echo, then the server's FIN
    assert!(got == data);
    wait_for("close", || !reasons.lock().unwrap().is_empty());
    assert_eq!(reasons.lock().unwrap()[0], CloseReason::Peer);
}

struct Timers;
impl Plugin for Timers {
    type Conn = ();
    fn on_open(&mut self, cx: &mut ConnCtx<'_>) -> Option<()> {
        cx.set_timer(Duration::from_millis(30), 1);
        cx.set_timer(Duration::from_millis(10), 2);
        let t = cx.set_timer(Duration::from_millis(20), 3);
        cx.cancel_timer(t);
        Some(())
    }
    fn on_data(&mut self, _: &mut (), _cx: &mut ConnCtx<'_>, data: &mut [u8]) -> usize {
        data.len()
    }
    fn on_timer(&mut self, _: &mut (), cx: &mut ConnCtx<'_>, token: u64) {
        let _ = cx.send(format!("{token}").into_bytes());
        if token == 1 {
            cx.close();
        }
    }
}

fn timers_fire_in_order_and_cancel(d: DriverChoice) {
    let (_server, addr) = start(cfg(d, 1), |_| Timers);
    let t0 = Instant::now();
    let mut s = connect(addr);
    let mut got = String::new();
    s.read_to_string(&mut got).unwrap();
    assert_eq!(got, "21");
    assert!(t0.elapsed() >= Duration::from_millis(30));
}

/// Ten timers 150 µs apart on a 50 µs tick: each must fire in its own tick, in order, and
/// never before its deadline (the wheel rounds deadlines up to the tick grid).
struct FineTimers {
    set_at: Option<Instant>,
    next: u64,
    report: String,
}
impl Plugin for FineTimers {
    type Conn = ();
    fn on_open(&mut self, cx: &mut ConnCtx<'_>) -> Option<()> {
        self.set_at = Some(Instant::now());
        for k in (1..=10u64).rev() {
            cx.set_timer(Duration::from_micros(150 * k), k);
        }
        Some(())
    }
    fn on_data(&mut self, _: &mut (), _cx: &mut ConnCtx<'_>, data: &mut [u8]) -> usize {
        data.len()
    }
    fn on_timer(&mut self, _: &mut (), cx: &mut ConnCtx<'_>, token: u64) {
        let waited = self.set_at.unwrap().elapsed();
        self.next += 1;
        if token != self.next {
            self.report += &format!("timer {token} fired as number {}; ", self.next);
        }
        if waited < Duration::from_micros(150 * token) {
            self.report += &format!("timer {token} fired early ({waited:?}); ");
        }
        if token == 10 {
            let r = if self.report.is_empty() {
                "ok"
            } else {
                &self.report
            };
            let _ = cx.send(r.to_string().into_bytes());
            cx.close();
        }
    }
}

fn fine_timer_tick(d: DriverChoice) {
    let c = RuntimeConfig {
        timer_tick: Duration::from_micros(50),
        ..cfg(d, 1)
    };
    let (_server, addr) = start(c, |_| FineTimers {
        set_at: None,
        next: 0,
        report: String::new(),
    });
    let mut s = connect(addr);
    let mut got = String::new();
    s.read_to_string(&mut got).unwrap();
    assert_eq!(got, "ok");
}

/// Commands, one per line: `s<ms>` arms the connection's deadline, `c` disarms it, `?` asks
/// whether one is armed. `on_deadline` answers `D` (or `EARLY <elapsed>` before its time).
struct Deadliner;
struct DeadlineConn {
    armed: Option<(Instant, Duration)>,
    line: Vec<u8>,
}
impl Plugin for Deadliner {
    type Conn = DeadlineConn;
    fn on_open(&mut self, _cx: &mut ConnCtx<'_>) -> Option<DeadlineConn> {
        Some(DeadlineConn {
            armed: None,
            line: Vec::new(),
        })
    }
    fn on_data(&mut self, c: &mut DeadlineConn, cx: &mut ConnCtx<'_>, data: &mut [u8]) -> usize {
        for &b in data.iter() {
            if b != b'\n' {
                c.line.push(b);
                continue;
            }
            let line = String::from_utf8(std::mem::take(&mut c.line)).unwrap();
            match line.as_bytes().first() {
                Some(b's') => {
                    let d = Duration::from_millis(line[1..].parse().unwrap());
                    c.armed = Some((Instant::now(), d));
                    cx.set_deadline(d);
                }
                Some(b'c') => {
                    c.armed = None;
                    cx.clear_deadline();
                }
                Some(b'?') => {
                    let a = if cx.deadline().is_some() { "A" } else { "N" };
                    let _ = cx.send(a.as_bytes().to_vec());
                }
                _ => panic!("bad command {line:?}"),
            }
        }
        data.len()
    }
    fn on_deadline(&mut self, c: &mut DeadlineConn, cx: &mut ConnCtx<'_>) {
        let answer = match c.armed.take() {
            Some((at, d)) if at.elapsed() >= d => "D".to_string(),
            Some((at, _)) => format!("EARLY {:?}", at.elapsed()),
            None => "UNARMED".to_string(),
        };
        let _ = cx.send(answer.into_bytes());
    }
}

fn read_some(s: &mut TcpStream, within: Duration) -> String {
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 64];
    loop {
        return match s.read(&mut buf) {
            Ok(n) => String::from_utf8_lossy(&buf[..n]).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                String::new()
            }
            Err(e) => panic!("read: {e}"),
        };
    }
}

fn deadlines_fire_late_never_early_and_move(d: DriverChoice) {
    let c = RuntimeConfig {
        deadline_tick: Duration::from_millis(20),
        ..cfg(d, 1)
    };
    let (_server, addr) = start(c, |_| Deadliner);
    // Fires once, after its time, within a tick or so.
    let mut a = connect(addr);
    let t0 = Instant::now();
    a.write_all(b"s100\n").unwrap();
    assert_eq!(read_some(&mut a, Duration::from_secs(5)), "D");
    let took = t0.elapsed();
    assert!(took >= Duration::from_millis(100), "{took:?}");
    a.write_all(b"?\n").unwrap();
    assert_eq!(
        read_some(&mut a, Duration::from_secs(5)),
        "N",
        "disarmed once fired"
    );
    // Disarmed: nothing fires. Moved later: fires at the new time only.
    a.write_all(b"s60\nc\n?\n").unwrap();
    assert_eq!(read_some(&mut a, Duration::from_secs(5)), "N");
    assert_eq!(read_some(&mut a, Duration::from_millis(250)), "");
    let t1 = Instant::now();
    a.write_all(b"s50\ns200\n").unwrap();
    assert_eq!(read_some(&mut a, Duration::from_secs(5)), "D");
    assert!(
        t1.elapsed() >= Duration::from_millis(200),
        "{:?}",
        t1.elapsed()
    );
    // A closed connection's deadline does not reach the next one in its slot.
    let mut b = connect(addr);
    b.write_all(b"s150\n").unwrap();
    b.write_all(b"?\n").unwrap();
    assert_eq!(read_some(&mut b, Duration::from_secs(5)), "A");
    drop(b);
    std::thread::sleep(Duration::from_millis(30));
    let mut c = connect(addr);
    c.write_all(b"?\n").unwrap();
    assert_eq!(read_some(&mut c, Duration::from_secs(5)), "N");
    assert_eq!(read_some(&mut c, Duration::from_millis(300)), "");
    // Many at once, in two groups: each connection hears once.
    let mut many: Vec<TcpStream> = (0..40).map(|_| connect(addr)).collect();
    for (i, s) in many.iter_mut().enumerate() {
        let ms = if i % 2 == 0 { 40 } else { 120 };
        s.write_all(format!("s{ms}\n").as_bytes()).unwrap();
    }
    for s in &mut many {
        assert_eq!(read_some(s, Duration::from_secs(5)), "D");
    }
}

/// On "B", broadcasts to every core; each core forwards the bus message to its connections and
/// records the payload's address (the same bytes everywhere: nothing copied per core).
struct Fanout {
    conns: Vec<ConnId>,
    ptrs: Arc<Mutex<Vec<(usize, usize)>>>,
}
impl Plugin for Fanout {
    type Conn = ();
    fn on_open(&mut self, cx: &mut ConnCtx<'_>) -> Option<()> {
        self.conns.push(cx.id());
        let core = cx.core() as u8;
        let _ = cx.send(vec![b'0' + core]);
        Some(())
    }
    fn on_data(&mut self, _: &mut (), cx: &mut ConnCtx<'_>, data: &mut [u8]) -> usize {
        if data.contains(&b'B') {
            cx.broadcast(7, Bytes::from_static(b"hello-all"));
        }
        data.len()
    }
    fn on_message(&mut self, cx: &mut CoreCtx<'_>, msg: &BusMessage) {
        assert_eq!(msg.tag, 7);
        self.ptrs
            .lock()
            .unwrap()
            .push((cx.core(), msg.data.as_ptr() as usize));
        for &id in &self.conns {
            let _ = cx.send_to(id, msg.data.clone());
        }
    }
    fn on_close(&mut self, _: (), cx: &mut CoreCtx<'_>, _r: CloseReason) {
        let live: Vec<ConnId> = self
            .conns
            .iter()
            .copied()
            .filter(|&c| cx.is_open(c))
            .collect();
        self.conns = live;
    }
}

fn cross_core_broadcast(d: DriverChoice) {
    let ptrs: Arc<Mutex<Vec<(usize, usize)>>> = Arc::default();
    let p = ptrs.clone();
    let (_server, addr) = start(cfg(d, 2), move |_| Fanout {
        conns: Vec::new(),
        ptrs: p.clone(),
    });
    // Open connections until both cores hold at least one (SO_REUSEPORT hashes by port).
    let mut conns = Vec::new();
    let mut seen = [false; 2];
    for _ in 0..200 {
        let mut s = connect(addr);
        let mut b = [0u8; 1];
        s.read_exact(&mut b).unwrap();
        seen[(b[0] - b'0') as usize] = true;
        conns.push(s);
        if seen[0] && seen[1] {
            break;
        }
    }
    assert!(seen[0] && seen[1], "connections on both cores");
    conns[0].write_all(b"B").unwrap();
    for s in conns.iter_mut() {
        let mut b = [0u8; 9];
        s.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"hello-all");
    }
    let ptrs = ptrs.lock().unwrap();
    assert_eq!(ptrs.len(), 2, "one delivery per core");
    assert_ne!(ptrs[0].0, ptrs[1].0);
    assert_eq!(ptrs[0].1, ptrs[1].1, "the same bytes reached every core");
}

/// On data, queues 8 MiB and tells the test it did.
struct BigReply(mpsc::Sender<()>);
impl Plugin for BigReply {
    type Conn = ();
    fn on_open(&mut self, _cx: &mut ConnCtx<'_>) -> Option<()> {
        Some(())
    }
    fn on_data(&mut self, _: &mut (), cx: &mut ConnCtx<'_>, data: &mut [u8]) -> usize {
        let chunk = Bytes::from(pattern(1 << 20, 5));
        for _ in 0..8 {
            cx.send(chunk.clone()).unwrap();
        }
        let _ = self.0.send(());
        data.len()
    }
}

fn graceful_shutdown_delivers_queued(d: DriverChoice) {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let (server, addr) = start(cfg(d, 1), move |_| BigReply(tx.lock().unwrap().clone()));
    let mut s = connect(addr);
    s.write_all(b"x").unwrap();
    rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let stopper = server.stopper();
    stopper.stop();
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    assert_eq!(
        got.len(),
        8 << 20,
        "everything queued before the stop is delivered"
    );
    assert!(got[..1 << 20] == pattern(1 << 20, 5)[..]);
    server.join();
    // The listener is closed.
    assert!(TcpStream::connect(addr).is_err());
}

fn max_connections_refused(d: DriverChoice) {
    let mut c = cfg(d, 2);
    c.max_connections = 3;
    let (server, addr) = start(c, |_| Echo);
    let mut ok: Vec<TcpStream> = (0..3).map(|_| connect(addr)).collect();
    for s in ok.iter_mut() {
        assert_eq!(roundtrip(s, b"ping"), b"ping");
    }
    let mut extra = connect(addr);
    let _ = extra.write_all(b"ping");
    let mut b = [0u8; 4];
    let r = extra.read(&mut b);
    assert!(
        matches!(r, Ok(0) | Err(_)),
        "the 4th connection is closed, got {r:?}"
    );
    assert_eq!(server.open_connections(), 3);
    wait_for("refusal counted", || {
        server.stats().iter().map(|s| s.refused).sum::<u64>() >= 1
    });
    // Closing one frees a place.
    drop(ok.pop());
    wait_for("a slot frees", || server.open_connections() == 2);
    let mut again = connect(addr);
    assert_eq!(roundtrip(&mut again, b"pong"), b"pong");
}

fn tiny_buffers_enobufs(d: DriverChoice) {
    let mut c = cfg(d, 1);
    c.recv_buffers = 2;
    c.recv_buffer_size = 64;
    let (server, addr) = start(c, |_| Echo);
    let threads: Vec<_> = (0..20)
        .map(|i| {
            std::thread::spawn(move || {
                let mut s = connect(addr);
                let data = pattern(200_000, i as u8);
                assert!(roundtrip(&mut s, &data) == data);
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    if server.driver() == ringwire_runtime::DriverKind::Uring {
        // Two 64-byte buffers for 20 busy connections: the ring must have run dry.
        wait_for("ENOBUFS counted", || server.stats()[0].recv_nobufs > 0);
    }
}

/// io_uring offers the kernel only a window of its provided buffers, refilled with the ones
/// given back last. Started at one buffer, it grows while many connections have data at
/// once (receives found none left), echoes stay byte-exact throughout, and it shrinks again
/// once one connection sends one small message at a time. (epoll has no provided buffers;
/// the echoes are checked all the same.)
fn buffer_window_grows_and_shrinks(d: DriverChoice) {
    let c = RuntimeConfig {
        recv_buffers: 64,
        recv_buffer_window: 1,
        recv_buffer_size: 4096,
        ..cfg(d, 1)
    };
    let (server, addr) = start(c, |_| Echo);
    let uring = server.driver() == DriverKind::Uring;
    let go = Arc::new(std::sync::Barrier::new(100));
    let threads: Vec<_> = (0..100)
        .map(|i| {
            let go = go.clone();
            std::thread::spawn(move || {
                let mut s = connect(addr);
                for round in 0..3u8 {
                    let data = pattern(20_000, (i as u8).wrapping_add(round));
                    go.wait();
                    assert!(roundtrip(&mut s, &data) == data, "conn {i} round {round}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    if uring {
        wait_for("the window grew", || {
            server.stats()[0].recv_buffer_window >= 8
        });
        let grown = server.stats()[0].recv_buffer_window;
        assert!(grown <= 64, "window {grown} past the 64 buffers");
        assert!(server.stats()[0].recv_nobufs > 0);
    }
    // Light traffic: each weighing (four rings' worth of buffers, 256) halves the window while
    // no loop turn takes more than a quarter of it.
    let mut s = connect(addr);
    let mut got = [0u8; 16];
    for i in 0..3000u32 {
        let msg = [(i % 251) as u8; 16];
        s.write_all(&msg).unwrap();
        s.read_exact(&mut got).unwrap();
        assert_eq!(got, msg);
    }
    if uring {
        wait_for("the window shrank", || {
            server.stats()[0].recv_buffer_window <= 4
        });
    }
}

struct UdpEcho;
impl Plugin for UdpEcho {
    type Conn = ();
    fn on_open(&mut self, _cx: &mut ConnCtx<'_>) -> Option<()> {
        None
    }
    fn on_data(&mut self, _: &mut (), _cx: &mut ConnCtx<'_>, data: &mut [u8]) -> usize {
        data.len()
    }
    fn on_datagram(
        &mut self,
        cx: &mut CoreCtx<'_>,
        sock: UdpId,
        from: SocketAddr,
        data: &mut [u8],
    ) {
        cx.send_datagram(sock, from, Bytes::copy_from_slice(data));
    }
}

fn udp_echo(d: DriverChoice) {
    let mut b = ServerBuilder::new(cfg(d, 2));
    b.udp("127.0.0.1:0".parse().unwrap());
    let server = b.start(|_| UdpEcho).unwrap();
    let addr = server.udp_addrs()[0];
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = vec![0u8; 4096];
    for n in [1usize, 20, 548, 1200, 2000] {
        let data = pattern(n, n as u8);
        c.send_to(&data, addr).unwrap();
        let (k, from) = c.recv_from(&mut buf).unwrap();
        assert_eq!(from, addr);
        assert!(buf[..k] == data[..]);
    }
    // Larger than udp_max_datagram (2048): dropped, counted.
    c.send_to(&pattern(3000, 1), addr).unwrap();
    c.send_to(b"after", addr).unwrap();
    let (k, _) = c.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..k], b"after");
    wait_for("drop counted", || {
        server
            .stats()
            .iter()
            .map(|s| s.datagrams_dropped)
            .sum::<u64>()
            >= 1
    });
}

fn read_throttle(d: DriverChoice) {
    let mut c = cfg(d, 1);
    c.throttle = Throttle {
        read: Some(Rate {
            bytes_per_sec: 400_000,
            burst: 40_000,
        }),
        write: None,
    };
    let (_server, addr) = start(c, |_| Echo);
    let mut s = connect(addr);
    let data = pattern(440_000, 1);
    let t0 = Instant::now();
    assert!(roundtrip(&mut s, &data) == data);
    // 400 kB beyond the burst at 400 kB/s: at least about a second.
    assert!(
        t0.elapsed() >= Duration::from_millis(900),
        "took {:?}",
        t0.elapsed()
    );
}

fn write_throttle(d: DriverChoice) {
    let mut c = cfg(d, 1);
    c.throttle = Throttle {
        read: None,
        write: Some(Rate {
            bytes_per_sec: 400_000,
            burst: 40_000,
        }),
    };
    let (_server, addr) = start(c, |_| Echo);
    let mut s = connect(addr);
    let data = pattern(440_000, 2);
    let t0 = Instant::now();
    assert!(roundtrip(&mut s, &data) == data);
    assert!(
        t0.elapsed() >= Duration::from_millis(900),
        "took {:?}",
        t0.elapsed()
    );
}

/// Consumes nothing, ever.
struct Hoarder(Reasons);
impl Plugin for Hoarder {
    type Conn = ();
    fn on_open(&mut self, _cx: &mut ConnCtx<'_>) -> Option<()> {
        Some(())
    }
    fn on_data(&mut self, _: &mut (), _cx: &mut ConnCtx<'_>, _data: &mut [u8]) -> usize {
        0
    }
    fn on_close(&mut self, _: (), _cx: &mut CoreCtx<'_>, reason: CloseReason) {
        self.0.lock().unwrap().push(reason);
    }
}

fn input_overflow_aborts(d: DriverChoice) {
    let mut c = cfg(d, 1);
    c.max_in_buffer = 64 * 1024;
    let reasons: Reasons = Arc::default();
    let rs = reasons.clone();
    let (_server, addr) = start(c, move |_| Hoarder(rs.clone()));
    let mut s = connect(addr);
    let _ = s.write_all(&pattern(64 * 1024 + 1, 0));
    wait_for("abort", || !reasons.lock().unwrap().is_empty());
    assert_eq!(reasons.lock().unwrap()[0], CloseReason::InputOverflow);
}

/// Takes input only in whole 10-byte records, pausing after each record until a timer fires.
struct Records;
impl Plugin for Records {
    type Conn = ();
    fn on_open(&mut self, _cx: &mut ConnCtx<'_>) -> Option<()> {
        Some(())
    }
    fn on_data(&mut self, _: &mut (), cx: &mut ConnCtx<'_>, data: &mut [u8]) -> usize {
        if data.len() < 10 {
            return 0;
        }
        let _ = cx.send(Bytes::copy_from_slice(&data[..10]));
        cx.pause_reading();
        cx.set_timer(Duration::from_millis(1), 0);
        10
    }
    fn on_timer(&mut self, _: &mut (), cx: &mut ConnCtx<'_>, _t: u64) {
        cx.resume_reading();
    }
}

fn pause_and_resume_redelivers(d: DriverChoice) {
    let (_server, addr) = start(cfg(d, 1), |_| Records);
    let mut s = connect(addr);
    // 20 records in one write: each is delivered after a resume, from the buffered input.
    let data = pattern(200, 4);
    assert!(roundtrip(&mut s, &data) == data);
}

fn stats_count(d: DriverChoice) {
    let (server, addr) = start(cfg(d, 1), |_| Echo);
    {
        let mut s = connect(addr);
        assert_eq!(roundtrip(&mut s, &pattern(1000, 0)).len(), 1000);
    }
    wait_for("stats", || {
        let st = server.stats();
        st[0].accepted == 1
            && st[0].closed == 1
            && st[0].bytes_in == 1000
            && st[0].bytes_out == 1000
    });
}

/// On the listener: "bind" opens a relay-like socket and answers its port; datagrams to a bound
/// socket are echoed with a prefix; "close:N" closes socket N.
struct UdpRelay;
impl Plugin for UdpRelay {
    type Conn = ();
    fn on_open(&mut self, _cx: &mut ConnCtx<'_>) -> Option<()> {
        None
    }
    fn on_data(&mut self, _: &mut (), _cx: &mut ConnCtx<'_>, data: &mut [u8]) -> usize {
        data.len()
    }
    fn on_datagram(
        &mut self,
        cx: &mut CoreCtx<'_>,
        sock: UdpId,
        from: SocketAddr,
        data: &mut [u8],
    ) {
        if sock.0 == 0 {
            if data == b"bind" {
                let (id, local) = cx.udp_bind("127.0.0.1:0".parse().unwrap()).unwrap();
                cx.send_datagram(
                    sock,
                    from,
                    format!("{} {}", id.0, local.port()).into_bytes(),
                );
            } else if let Some(n) = data.strip_prefix(b"close:") {
                let n: usize = std::str::from_utf8(n).unwrap().parse().unwrap();
                cx.udp_close(UdpId(n));
                cx.send_datagram(sock, from, b"closed".to_vec());
            }
        } else {
            let mut out = b"relay:".to_vec();
            out.extend_from_slice(data);
            cx.send_datagram(sock, from, out);
        }
    }
}

fn udp_bind_and_close_at_runtime(d: DriverChoice) {
    let mut b = ServerBuilder::new(cfg(d, 1));
    b.udp("127.0.0.1:0".parse().unwrap());
    let server = b.start(|_| UdpRelay).unwrap();
    let ctl = server.udp_addrs()[0];
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = vec![0u8; 2048];
    let mut ask = |msg: &[u8], to: SocketAddr| -> String {
        c.send_to(msg, to).unwrap();
        let (k, _) = c.recv_from(&mut buf).unwrap();
        String::from_utf8(buf[..k].to_vec()).unwrap()
    };
    for round in 0..3 {
        let r = ask(b"bind", ctl);
        let (id, port) = r.split_once(' ').unwrap();
        let relay: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        assert_eq!(ask(b"data", relay), "relay:data", "round {round}");
        assert_eq!(ask(format!("close:{id}").as_bytes(), ctl), "closed");
        // Closed: nothing answers there any more (the port is released).
        c.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let _ = c.send_to(b"late", relay);
        assert!(
            c.recv_from(&mut [0u8; 64]).is_err(),
            "closed socket answered"
        );
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    }
}

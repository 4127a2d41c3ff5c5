//! `ConnCtx::send_file`: file ranges in the out-queue, written with sendfile(2) on both drivers,
//! in order with queued bytes, through a slow reader, and with a file that ends too early.
//! Every test runs on both drivers (`uring::name`, `epoll::name`).

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ringwire_runtime::{
    Bytes, CloseReason, ConnCtx, CoreCtx, DriverChoice, Plugin, RuntimeConfig, SendError,
    ServerBuilder, ServerHandle,
};

macro_rules! both_drivers {
    ($($name:ident),* $(,)?) => {
        mod uring { $( #[test] fn $name() { super::$name(ringwire_runtime::DriverChoice::Uring) } )* }
        mod epoll { $( #[test] fn $name() { super::$name(ringwire_runtime::DriverChoice::Epoll) } )* }
    };
}

both_drivers!(
    bytes_and_file_ranges_keep_their_order,
    large_file_through_a_slow_reader,
    file_shorter_than_the_range_aborts,
    range_past_the_limit_is_refused,
);

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 12) as u8)
        .collect()
}

/// A temporary file holding `data` (removed when the returned guard drops).
struct TempFile(std::path::PathBuf, Arc<File>);
impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
fn temp_file(name: &str, data: &[u8]) -> TempFile {
    let p = std::env::temp_dir().join(format!(
        "ringwire-sendfile-{}-{name}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let mut f = File::create(&p).unwrap();
    f.write_all(data).unwrap();
    drop(f);
    let f = Arc::new(File::open(&p).unwrap());
    TempFile(p, f)
}

fn start<P: Plugin>(
    d: DriverChoice,
    max_out: usize,
    f: impl Fn(usize) -> P + Send + Sync + 'static,
) -> (ServerHandle, SocketAddr) {
    let cfg = RuntimeConfig {
        driver: d,
        threads: 1,
        max_out_buffer: max_out,
        shutdown_timeout: Duration::from_secs(5),
        ..RuntimeConfig::default()
    };
    let mut b = ServerBuilder::new(cfg);
    b.tcp("127.0.0.1:0".parse().unwrap());
    let s = b.start(f).expect("server starts");
    let a = s.local_addrs()[0];
    (s, a)
}

fn read_to_end(a: SocketAddr, delay: Duration) -> (Vec<u8>, std::io::Result<()>) {
    let mut s = TcpStream::connect(a).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    std::thread::sleep(delay);
    let mut v = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (v, Ok(())),
            Ok(n) => v.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return (v, Err(e)),
        }
    }
}

fn wait_file_bytes(srv: &ServerHandle, want: u64) {
    let t = Instant::now();
    loop {
        let got: u64 = srv.stats().iter().map(|s| s.file_bytes_out).sum();
        if got == want {
            return;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "file_bytes_out {got}, want {want}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

type Log = Arc<Mutex<Vec<String>>>;

/// Sends a script of bytes and file ranges on open, then closes.
struct Script {
    file: Arc<File>,
    steps: Vec<(Option<&'static [u8]>, u64, usize)>,
    log: Log,
}
impl Plugin for Script {
    type Conn = ();
    fn on_open(&mut self, cx: &mut ConnCtx<'_>) -> Option<()> {
        for (bytes, off, len) in &self.steps {
            let r = match bytes {
                Some(b) => cx.send(Bytes::from_static(b)),
                None => cx.send_file(&self.file, *off, *len),
            };
            if let Err(e) = r {
                self.log.lock().unwrap().push(format!("send: {e:?}"));
            }
        }
        cx.close();
        Some(())
    }
    fn on_data(&mut self, _: &mut (), _cx: &mut ConnCtx<'_>, data: &mut [u8]) -> usize {
        data.len()
    }
    fn on_close(&mut self, _: (), _cx: &mut CoreCtx<'_>, reason: CloseReason) {
        self.log.lock().unwrap().push(format!("close: {reason:?}"));
    }
}

fn bytes_and_file_ranges_keep_their_order(d: DriverChoice) {
    let data = pattern(20_000, 7);
    let tf = temp_file("order", &data);
    let log = Log::default();
    let (file, l) = (tf.1.clone(), log.clone());
    let (srv, a) = start(d, 1 << 20, move |_| Script {
        file: file.clone(),
        steps: vec![
            (Some(b"<"), 0, 0),
            (None, 0, 100),
            (Some(b">"), 0, 0),
            (None, 1000, 5000),
            (None, 19_990, 10),
            (Some(b"!"), 0, 0),
            (None, 5, 0),
        ],
        log: l.clone(),
    });
    let (got, r) = read_to_end(a, Duration::ZERO);
    r.unwrap();
    let mut want = b"<".to_vec();
    want.extend_from_slice(&data[..100]);
    want.extend_from_slice(b">");
    want.extend_from_slice(&data[1000..6000]);
    want.extend_from_slice(&data[19_990..]);
    want.extend_from_slice(b"!");
    assert_eq!(got.len(), want.len());
    assert!(got == want, "bytes differ");
    // Every file byte went through sendfile (stats are published after each loop turn).
    wait_file_bytes(&srv, 5110);
    srv.stop();
    assert!(log.lock().unwrap().iter().all(|l| !l.starts_with("send")));
}

/// Queues a big file in 1 MiB ranges as the queue drains.
struct Pieces {
    file: Arc<File>,
    len: usize,
}
struct PieceConn {
    next: usize,
}
impl Pieces {
    fn pump(&self, st: &mut PieceConn, cx: &mut ConnCtx<'_>) {
        while st.next < self.len && cx.buffered() < 2 << 20 {
            let n = (self.len - st.next).min(1 << 20);
            cx.send_file(&self.file, st.next as u64, n).expect("queued");
            st.next += n;
        }
        if st.next == self.len {
            cx.close();
        }
    }
}
impl Plugin for Pieces {
    type Conn = PieceConn;
    fn on_open(&mut self, cx: &mut ConnCtx<'_>) -> Option<PieceConn> {
        let mut st = PieceConn { next: 0 };
        self.pump(&mut st, cx);
        Some(st)
    }
    fn on_data(&mut self, _: &mut PieceConn, _cx: &mut ConnCtx<'_>, data: &mut [u8]) -> usize {
        data.len()
    }
    fn on_drained(&mut self, st: &mut PieceConn, cx: &mut ConnCtx<'_>) {
        self.pump(st, cx);
    }
}

fn large_file_through_a_slow_reader(d: DriverChoice) {
    let len = 24 << 20;
    let data = pattern(len, 3);
    let tf = temp_file("large", &data);
    let file = tf.1.clone();
    let (srv, a) = start(d, 4 << 20, move |_| Pieces {
        file: file.clone(),
        len,
    });
    // The reader starts late: the socket fills, sendfile sees EAGAIN and waits for writability.
    let readers: Vec<_> = (0..3)
        .map(|_| std::thread::spawn(move || read_to_end(a, Duration::from_millis(300))))
        .collect();
    for r in readers {
        let (got, res) = r.join().unwrap();
        res.unwrap();
        assert_eq!(got.len(), len);
        assert!(got == data, "bytes differ");
    }
    wait_file_bytes(&srv, 3 * len as u64);
    srv.stop();
}

fn file_shorter_than_the_range_aborts(d: DriverChoice) {
    let data = pattern(50_000, 9);
    let tf = temp_file("short", &data);
    let log = Log::default();
    let (file, l) = (tf.1.clone(), log.clone());
    let (srv, a) = start(d, 1 << 20, move |_| Script {
        file: file.clone(),
        // Promises 100 bytes more than the file has: the connection cannot keep its framing.
        steps: vec![(None, 0, 50_100), (Some(b"never"), 0, 0)],
        log: l.clone(),
    });
    let (got, _) = read_to_end(a, Duration::ZERO);
    assert_eq!(
        got, data,
        "the bytes the file had arrive, nothing after them"
    );
    let t = Instant::now();
    while log.lock().unwrap().is_empty() && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let l = log.lock().unwrap().clone();
    assert!(
        l.iter().any(|x| x.contains("UnexpectedEof")),
        "closed for the short file: {l:?}"
    );
    srv.stop();
}

/// Tries a range larger than the out-queue limit, then a fitting one.
struct TooBig {
    file: Arc<File>,
    result: Arc<Mutex<Option<SendError>>>,
}
impl Plugin for TooBig {
    type Conn = ();
    fn on_open(&mut self, cx: &mut ConnCtx<'_>) -> Option<()> {
        let e = cx.send_file(&self.file, 0, 70_000).err();
        *self.result.lock().unwrap() = e;
        cx.send_file(&self.file, 0, 1000).expect("a fitting range");
        cx.close();
        Some(())
    }
    fn on_data(&mut self, _: &mut (), _cx: &mut ConnCtx<'_>, data: &mut [u8]) -> usize {
        data.len()
    }
}

fn range_past_the_limit_is_refused(d: DriverChoice) {
    let data = pattern(100_000, 1);
    let tf = temp_file("limit", &data);
    let result = Arc::new(Mutex::new(None));
    let (file, r) = (tf.1.clone(), result.clone());
    let (srv, a) = start(d, 64 * 1024, move |_| TooBig {
        file: file.clone(),
        result: r.clone(),
    });
    let (got, res) = read_to_end(a, Duration::ZERO);
    res.unwrap();
    assert_eq!(got, data[..1000]);
    assert_eq!(*result.lock().unwrap(), Some(SendError::Backpressure));
    srv.stop();
}

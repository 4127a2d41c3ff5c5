//! A framed TCP server: messages end with "\r\n"; each one is answered in upper case.
//!
//! ```sh
//! cargo run --release -p ringwire --example line_server -- 127.0.0.1:7001
//! printf 'hello\r\nworld\r\n' | nc 127.0.0.1 7001
//! ```

use std::sync::Arc;

use ringwire::runtime::{ConnCtx, RuntimeConfig, ServerBuilder};
use ringwire::tcp::{Framed, Framing, TcpError, TcpHandler, TcpOptions};

struct Upper;

impl TcpHandler for Upper {
    fn on_message(&mut self, cx: &mut ConnCtx<'_>, msg: &mut [u8]) {
        msg.make_ascii_uppercase();
        let mut out = msg.to_vec();
        out.extend_from_slice(b"\r\n");
        let _ = cx.send(out);
    }
    fn on_error(&mut self, cx: &mut ConnCtx<'_>, err: TcpError) {
        let _ = cx.send(format!("error: {err:?}\r\n").into_bytes());
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7001".into())
        .parse()?;
    let opts = Arc::new(TcpOptions {
        framing: Framing::DelimiterAnywhere(b"\r\n".to_vec()),
        max_message: 64 * 1024,
    });
    let mut b = ServerBuilder::new(RuntimeConfig::default());
    b.tcp(addr);
    let server = b.start(move |_core| Framed::new(Upper, opts.clone()))?;
    println!(
        "line server on {} (driver={})",
        server.local_addrs()[0],
        server.driver()
    );
    server.join();
    Ok(())
}

//! A TCP echo server on the Ringwire runtime, one plugin per core.
//!
//! ```sh
//! cargo run --release -p ringwire --example echo -- 127.0.0.1:7000
//! ```

use ringwire::runtime::{RuntimeConfig, ServerBuilder};
use ringwire::tcp::Echo;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7000".into())
        .parse()?;
    let mut b = ServerBuilder::new(RuntimeConfig::default());
    b.tcp(addr);
    let server = b.start(|_core| Echo)?;
    println!(
        "echo on {} (driver={}, threads={})",
        server.local_addrs()[0],
        server.driver(),
        server.threads()
    );
    server.join();
    Ok(())
}

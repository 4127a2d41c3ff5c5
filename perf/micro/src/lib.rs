//! Nothing here: the benchmarks are in `benches/ws.rs` (`cargo bench`).

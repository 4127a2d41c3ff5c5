//! HTTP/1.1 request parsing: whole vs split feeding gives the same events, and nothing consumes
//! more than it was given (the oracle lives in the crate: `ringwire_http1::fuzz_check`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ringwire_http1::fuzz_check(data);
});

//! multipart/form-data parsing: whole, split and byte-wise feeding give the same parts and
//! result, and a body built around the input as file content parses back to the input (the
//! oracle lives in the crate: `ringwire_http1::multipart::fuzz_check`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ringwire_http1::multipart::fuzz_check(data);
});

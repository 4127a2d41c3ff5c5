//! STUN/TURN: parse → re-encode → parse equality, stream framing agreeing with the parsers,
//! consumed <= len (the oracle lives in the crate: `ringwire_stun::fuzz_check`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ringwire_stun::fuzz_check(data);
});

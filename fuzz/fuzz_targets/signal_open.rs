//! Opening a sealed signaling envelope relayed by the (untrusted) rendezvous
//! server. The key and associated data are fixed; the seeds are envelopes
//! sealed under them, so mutations exercise base64, length and tag checks.
#![no_main]

use ferry::signal::{self, Role};
use libfuzzer_sys::fuzz_target;

/// Same key and room as the seed generator (tests/decoders.rs).
const KEY: [u8; 32] = [7; 32];
const ROOM: &str = "00112233445566778899aabbccddeeff";

fuzz_target!(|data: &[u8]| {
    let Ok(sealed) = std::str::from_utf8(data) else {
        return;
    };
    let aad = signal::associated_data(ROOM, Role::Offerer);
    if let Ok(msg) = signal::open(&KEY, &aad, sealed) {
        // Only an envelope sealed under this key and room may open, and what
        // opens re-seals to something that opens the same.
        let resealed = signal::seal(&KEY, &aad, &msg);
        assert_eq!(signal::open(&KEY, &aad, &resealed).ok(), Some(msg));
    }
    let other = signal::associated_data(ROOM, Role::Answerer);
    let _ = signal::open(&KEY, &other, sealed);
});

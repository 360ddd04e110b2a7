//! The JSON inside signaling: frames from the rendezvous server
//! (`ServerMessage`), frames from clients (`ClientMessage`, which the server
//! parses), and the plaintext of an opened envelope (`SignalMessage`, which
//! AES-GCM keeps the fuzzer from reaching through `signal_open`).
//! The first byte picks the decoder.
#![no_main]

use ferry::signal::{ClientMessage, ServerMessage, SignalMessage};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, json)) = data.split_first() else {
        return;
    };
    match which % 3 {
        0 => round_trip::<ServerMessage>(json),
        1 => round_trip::<ClientMessage>(json),
        _ => round_trip::<SignalMessage>(json),
    }
});

fn round_trip<T>(json: &[u8])
where
    T: serde::de::DeserializeOwned + serde::Serialize + PartialEq + std::fmt::Debug,
{
    if let Ok(msg) = serde_json::from_slice::<T>(json) {
        let text = serde_json::to_vec(&msg).expect("a decoded message re-encodes");
        let again: T = serde_json::from_slice(&text).expect("a re-encoded message decodes");
        assert_eq!(again, msg);
    }
}

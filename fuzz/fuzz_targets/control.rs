//! Control messages (JSON on the `control` data channel) from the peer.
#![no_main]

use ferry::proto::Control;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = Control::decode(data) {
        assert_eq!(Control::decode(msg.encode().as_bytes()).ok(), Some(msg));
    }
});

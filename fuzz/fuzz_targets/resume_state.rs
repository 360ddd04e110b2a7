//! Resume state logs (`.NAME.ferry-state`), read back from disk after a crash
//! or from a directory someone else controls. The seeds use a 1 MiB block
//! size; the log is also parsed with the block size its own header names, so
//! mutated headers still reach the records.
#![no_main]

use ferry::files::resume;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = resume::parse(data, 1 << 20);
    if let Some(bs) = data.get(8..12) {
        let bs = u32::from_be_bytes([bs[0], bs[1], bs[2], bs[3]]);
        let blocks = resume::parse(data, bs);
        // One entry per block, in order.
        assert!(blocks.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(blocks.len() <= data.len() / 48);
    }
});

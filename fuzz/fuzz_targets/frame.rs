//! Binary data-channel frames (block header, block data, file end).
#![no_main]

use ferry::proto::wire::{self, Frame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // A frame that decodes is exactly the bytes ferry would encode for it.
    match Frame::decode(data) {
        Ok(Frame::Block {
            file,
            block,
            len,
            cv,
        }) => assert_eq!(wire::encode_block_header(file, block, len, &cv), data),
        Ok(Frame::Data(payload)) => {
            assert_eq!(data[0], wire::DATA_PREFIX);
            assert_eq!(&data[1..], payload);
        }
        Ok(Frame::FileEnd { file, size, root }) => {
            assert_eq!(wire::encode_file_end(file, size, &root), data)
        }
        Err(_) => {}
    }
});

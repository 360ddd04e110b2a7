//! Test vectors for the browser's BLAKE3 (`web/blake3.js`), computed with the
//! Rust `blake3` crate, the reference the JS must agree with.
//!
//! Input bytes are always `i % 251` for byte index `i` (the pattern of the
//! official BLAKE3 test vectors). The output has:
//!
//! * `hashes`: plain BLAKE3-256 of the first `len` bytes, for lengths around
//!   chunk and tree boundaries;
//! * `files`: files cut into blocks of `block_size` bytes the way ferry does it
//!   (`src/proto/hash.rs`): each block's non-root chaining value as the subtree
//!   starting at `i * block_size`, and the file's root hash (= `b3sum`);
//! * `subtrees`: non-root chaining values of `len` input bytes as the subtree
//!   at byte `offset`, including offsets past 4 TiB (chunk counters >= 2^32).
//!
//! Regenerate:
//!
//! ```text
//! cargo build --release --example blake3_vectors
//! target/release/examples/blake3_vectors > web/test/blake3-vectors.json
//! ```

use blake3::hazmat::{
    merge_subtrees_non_root, merge_subtrees_root, ChainingValue, HasherExt, Mode,
};
use serde_json::{json, Value};

const LENGTHS: &[usize] = &[
    0, 1, 1023, 1024, 1025, 2048, 2049, 3072, 3073, 4096, 4097, 5120, 5121, 6144, 6145, 7168, 7169,
    8192, 8193, 16384, 31744, 102400,
];

fn input(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn block_cv(offset: u64, data: &[u8]) -> ChainingValue {
    let mut hasher = blake3::Hasher::new();
    hasher.set_input_offset(offset);
    hasher.update(data);
    hasher.finalize_non_root()
}

/// Left subtree size in blocks: the largest power of two strictly below `n`.
fn left_len(n: usize) -> usize {
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

fn subtree(cvs: &[ChainingValue]) -> ChainingValue {
    if cvs.len() == 1 {
        return cvs[0];
    }
    let split = left_len(cvs.len());
    merge_subtrees_non_root(&subtree(&cvs[..split]), &subtree(&cvs[split..]), Mode::Hash)
}

fn file(name: &str, len: usize, block_size: usize) -> Value {
    let data = input(len);
    let cvs: Vec<ChainingValue> = data
        .chunks(block_size)
        .enumerate()
        .map(|(i, block)| block_cv((i * block_size) as u64, block))
        .collect();
    let root = match cvs.len() {
        0 => blake3::hash(b""),
        1 => blake3::hash(&data),
        n => {
            let split = left_len(n);
            merge_subtrees_root(&subtree(&cvs[..split]), &subtree(&cvs[split..]), Mode::Hash)
        }
    };
    // The block tree must give the same root as hashing the whole file.
    assert_eq!(root, blake3::hash(&data), "{name}: block tree root differs");
    json!({
        "name": name,
        "len": len,
        "block_size": block_size,
        "block_cvs": cvs.iter().map(|cv| hex(cv)).collect::<Vec<_>>(),
        "root": root.to_hex().to_string(),
    })
}

fn main() {
    let hashes: Vec<Value> = LENGTHS
        .iter()
        .map(|&len| json!({ "len": len, "hash": blake3::hash(&input(len)).to_hex().to_string() }))
        .collect();
    let files = vec![
        file(
            "5 blocks of 16 KiB, last one partial",
            4 * 16384 + 5000,
            16384,
        ),
        file("1 MiB + 17 in 64 KiB blocks", (1 << 20) + 17, 65536),
        file("one partial block of 16 KiB", 3000, 16384),
        file("3 full blocks of 16 KiB", 3 * 16384, 16384),
    ];
    // (offset, len): offsets are multiples of 1024 and `len` fits the subtree.
    let subtrees: Vec<Value> = [
        (0u64, 1usize),
        (0, 3 * 1024 + 1),
        (1024, 1024),
        (7 * 1024, 17),
        (8 * 1024, 5 * 1024 + 3),
        (((1u64 << 32) + 5) * 1024, 1024),
        ((1u64 << 32) * 1024, 3 * 65536 + 1),
        (3u64 << 50, 4 * 1024),
    ]
    .iter()
    .map(|&(offset, len)| {
        json!({ "offset": offset, "len": len, "cv": hex(&block_cv(offset, &input(len))) })
    })
    .collect();
    let out = json!({
        "input": "byte i is i % 251",
        "hashes": hashes,
        "files": files,
        "subtrees": subtrees,
    });
    println!("{}", serde_json::to_string_pretty(&out).unwrap());
}

//! BLAKE3 over fixed blocks.
//!
//! Every block of `block_size` bytes (a power of two, at least one BLAKE3 chunk)
//! starting at a multiple of `block_size` is a complete subtree of the file's
//! BLAKE3 tree. So each block can be verified on its own by its chaining value
//! (CV), and the file's root hash, the same value `b3sum` prints, is the merge of
//! the block CVs. Streaming can therefore start before a file is fully hashed.

use blake3::hazmat::{
    merge_subtrees_non_root, merge_subtrees_root, ChainingValue, HasherExt, Mode,
};

/// The chaining value of one block: what the sender announces and the receiver checks.
pub type Cv = ChainingValue;

/// Chaining value of `data`, the block that starts at byte `offset` of its file.
///
/// Callers guarantee `offset` is a multiple of the block size and `data` is not
/// empty and no longer than the block size (the decoder checks peer input).
pub fn block_cv(offset: u64, data: &[u8]) -> Cv {
    debug_assert!(!data.is_empty());
    debug_assert_eq!(offset % blake3::CHUNK_LEN as u64, 0);
    let mut hasher = blake3::Hasher::new();
    hasher.set_input_offset(offset);
    if data.len() >= 128 * 1024 {
        hasher.update_rayon(data);
    } else {
        hasher.update(data);
    }
    hasher.finalize_non_root()
}

/// Root hash of a file from its block CVs, in order.
///
/// A file of zero blocks is empty; a file of exactly one block has no parent
/// node, so its root must be computed from the data itself and passed in as
/// `single_block_root`.
pub fn root_from_cvs(cvs: &[Cv], single_block_root: Option<blake3::Hash>) -> Option<blake3::Hash> {
    match cvs.len() {
        0 => Some(blake3::hash(b"")),
        1 => single_block_root,
        n => {
            let split = left_len(n);
            let left = subtree_cv(&cvs[..split]);
            let right = subtree_cv(&cvs[split..]);
            Some(merge_subtrees_root(&left, &right, Mode::Hash))
        }
    }
}

/// The number of blocks in the left subtree of `n` blocks: the largest power of
/// two strictly below `n`. The tree is left-balanced, like BLAKE3's own.
fn left_len(n: usize) -> usize {
    debug_assert!(n >= 2);
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

fn subtree_cv(cvs: &[Cv]) -> Cv {
    if cvs.len() == 1 {
        return cvs[0];
    }
    let split = left_len(cvs.len());
    merge_subtrees_non_root(
        &subtree_cv(&cvs[..split]),
        &subtree_cv(&cvs[split..]),
        Mode::Hash,
    )
}

/// Root hash of a whole block-0 buffer when the file is that one block.
pub fn single_block_root(data: &[u8]) -> blake3::Hash {
    blake3::hash(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    fn root_by_blocks(input: &[u8], block: usize) -> blake3::Hash {
        let cvs: Vec<Cv> = input
            .chunks(block)
            .enumerate()
            .map(|(i, c)| block_cv((i * block) as u64, c))
            .collect();
        let single = (cvs.len() == 1).then(|| single_block_root(input));
        root_from_cvs(&cvs, single).unwrap()
    }

    #[test]
    fn merged_root_equals_plain_blake3() {
        let block = 16 * 1024;
        for len in [
            0,
            1,
            1024,
            block - 1,
            block,
            block + 1,
            2 * block,
            3 * block + 7,
            5 * block,
            7 * block + 1,
            8 * block,
            9 * block - 3,
            17 * block + 5,
        ] {
            let input = data(len);
            assert_eq!(
                root_by_blocks(&input, block),
                blake3::hash(&input),
                "len {len}"
            );
        }
    }

    #[test]
    fn left_len_is_largest_power_of_two_below() {
        assert_eq!(left_len(2), 1);
        assert_eq!(left_len(3), 2);
        assert_eq!(left_len(4), 2);
        assert_eq!(left_len(5), 4);
        assert_eq!(left_len(8), 4);
        assert_eq!(left_len(9), 8);
    }

    #[test]
    fn a_changed_byte_changes_the_block_cv() {
        let mut input = data(4096);
        let before = block_cv(0, &input);
        input[100] ^= 1;
        assert_ne!(before, block_cv(0, &input));
    }
}

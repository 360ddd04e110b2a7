//! Manifest validation: the offer (JSON, as in a `manifest` control message)
//! is checked before anything is written. An accepted manifest has only
//! tame paths and no entry below a file.
#![no_main]

use std::collections::HashSet;

use ferry::proto::manifest::{validate_path, EntryKind};
use ferry::proto::Manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(path) = std::str::from_utf8(data) {
        check_path(path);
    }
    let Ok(manifest) = serde_json::from_slice::<Manifest>(data) else {
        return;
    };
    if manifest.validate().is_err() {
        return;
    }
    // Drivers add up the sizes of every valid offer (progress, free space).
    let exact: u128 = manifest
        .entries
        .iter()
        .filter_map(|e| e.size)
        .map(u128::from)
        .sum();
    assert_eq!(u128::from(manifest.total_bytes()), exact);
    let mut files = HashSet::new();
    let mut folded = HashSet::new();
    for entry in &manifest.entries {
        check_path(&entry.path);
        assert!(
            folded.insert(entry.path.to_lowercase()),
            "case clash accepted"
        );
        if entry.kind == EntryKind::File {
            files.insert(entry.path.as_str());
        }
    }
    for entry in &manifest.entries {
        let mut parent = entry.path.as_str();
        while let Some((up, _)) = parent.rsplit_once('/') {
            assert!(
                !files.contains(up),
                "{:?} accepted below a file",
                entry.path
            );
            parent = up;
        }
    }
});

fn check_path(path: &str) {
    if let Ok(parts) = validate_path(path) {
        assert!(!path.starts_with('/'));
        assert_eq!(parts.join("/"), path);
        for part in parts {
            assert!(!part.is_empty() && part != "." && part != "..");
            assert!(!part.contains('\\') && !part.chars().any(char::is_control));
        }
    }
}

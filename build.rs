//! Embeds the browser client: every top-level file of `web/` that the page
//! loads (HTML, CSS, JavaScript, icons) becomes a static byte slice, so a plain
//! `cargo build` yields a binary that serves a working page, and a file added
//! to `web/` cannot be forgotten in a hand-kept list.

use std::fmt::Write as _;
use std::path::Path;

const SERVED: &[&str] = &["html", "css", "js", "svg", "png", "webmanifest"];

fn main() {
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
    println!("cargo:rerun-if-changed={}", web.display());
    let mut names: Vec<String> = std::fs::read_dir(&web)
        .expect("web/ is part of the source tree")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| {
            Path::new(n)
                .extension()
                .and_then(|x| x.to_str())
                .is_some_and(|x| SERVED.contains(&x))
        })
        .collect();
    names.sort();
    let mut out = String::from("/// (file name, contents) of every served file of web/.\n");
    out.push_str("pub static ASSETS: &[(&str, &[u8])] = &[\n");
    for name in &names {
        let path = web.join(name);
        println!("cargo:rerun-if-changed={}", path.display());
        let _ = writeln!(
            out,
            "    ({name:?}, include_bytes!({:?})),",
            path.display().to_string()
        );
    }
    out.push_str("];\n");
    let dest =
        Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("web_assets.rs");
    std::fs::write(dest, out).expect("OUT_DIR is writable");
}

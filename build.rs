// Embeds the default model from weights/ when all three files are present, so that
// `cargo install` users get it; a checkout without them still builds (and says so).
// It also names what it embeds for `--version` (DEEPSPARK_VERSION, DEEPSPARK_LONG_VERSION):
// the SHA-256 of each weights file, so a bug report says which model it is about, and a
// changed file gives a new name (cargo reruns this script when weights/ changes).
use sha2::{Digest, Sha256};
use std::path::Path;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(has_default_model)");
    println!("cargo::rustc-check-cfg=cfg(has_default_generator)");
    println!("cargo::rerun-if-changed=weights");
    let files = [
        "weights/config.json",
        "weights/model.safetensors",
        "weights/tokenizer.json",
    ];
    for f in files {
        println!("cargo::rerun-if-changed={f}");
    }
    let has_model = files.iter().all(|f| Path::new(f).is_file());
    if has_model {
        println!("cargo::rustc-cfg=has_default_model");
    }
    let generator = ["weights/generator.json", "weights/generator.safetensors"];
    for f in generator {
        println!("cargo::rerun-if-changed={f}");
    }
    let has_generator = generator.iter().all(|f| Path::new(f).is_file());
    if has_generator {
        println!("cargo::rustc-cfg=has_default_generator");
    }

    let package = env("CARGO_PKG_VERSION");
    let model = has_model.then(|| identity("weights/model.safetensors"));
    let generator = has_generator.then(|| identity("weights/generator.safetensors"));
    let short = match &model {
        Some(m) => format!("{package} (model sha256:{})", m.short),
        None => format!("{package} (no embedded model)"),
    };
    let describe = |what: &str, id: &Option<Identity>| match id {
        Some(id) => format!("{what}: {}", id.long),
        None => format!("{what}: none embedded (pass --model DIR)"),
    };
    let long = format!(
        "{short}\n{}\n{}",
        describe("model", &model),
        describe("generator", &generator)
    );
    println!("cargo::rustc-env=DEEPSPARK_VERSION={short}");
    // rustc-env takes one line: the newlines travel escaped and src/cli/mod.rs cannot unescape
    // a `&'static str` at compile time, so the long version is written to a file instead.
    let out = Path::new(&env("OUT_DIR")).join("long_version.txt");
    std::fs::write(&out, long).expect("OUT_DIR is writable during a build");
}

struct Identity {
    /// The first 12 hex digits of the SHA-256 (what `sha256sum` prints first).
    short: String,
    /// The path, the whole SHA-256, the format and the size.
    long: String,
}

fn identity(path: &str) -> Identity {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    let hex: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    Identity {
        short: hex[..12].to_string(),
        long: format!("{path} sha256:{hex} ({}, {} bytes)", format(&bytes), bytes.len()),
    }
}

/// "safetensors" when the file starts as one (an 8-byte little-endian header length that
/// fits the file, then a JSON object); the loader validates the rest at run time.
fn format(bytes: &[u8]) -> &'static str {
    let header = bytes
        .get(..8)
        .map(|n| u64::from_le_bytes(n.try_into().expect("a slice of 8 bytes")));
    match header {
        Some(n) if n <= bytes.len() as u64 - 8 && bytes.get(8) == Some(&b'{') => "safetensors",
        _ => "not safetensors",
    }
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("cargo sets {name} for build scripts"))
}

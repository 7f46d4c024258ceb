// Embeds the default model from weights/ when all three files are present, so that
// `cargo install` users get it; a checkout without them still builds (and says so).
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
    if files.iter().all(|f| std::path::Path::new(f).is_file()) {
        println!("cargo::rustc-cfg=has_default_model");
    }
    let generator = ["weights/generator.json", "weights/generator.safetensors"];
    for f in generator {
        println!("cargo::rerun-if-changed={f}");
    }
    if generator.iter().all(|f| std::path::Path::new(f).is_file()) {
        println!("cargo::rustc-cfg=has_default_generator");
    }
}

//! Rebuild when the web client is rebuilt, and say how to build it when it is missing.
fn main() {
    let dist = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web/dist");
    println!("cargo:rerun-if-changed={}", dist.display());
    if !dist.join("index.html").exists() {
        panic!("the web client is not built: run `make web` (or `npm ci && npm run build` in web/) first");
    }
}

//! Compiles the interposer (`interposer/kelpie_gamepad.c`: the pads' descriptors, and
//! `interposer/devfs.c`: the pads in listings of `/dev/input` and in `stat()`) into a shared library that the
//! crate embeds (`include_bytes!`) and writes into the session's runtime directory, so that
//! the binary carries it wherever it is installed.

fn main() {
    const SOURCES: [&str; 2] = ["interposer/kelpie_gamepad.c", "interposer/devfs.c"];
    for f in SOURCES.iter().chain(&["interposer/kelpie_gamepad.h"]) {
        println!("cargo:rerun-if-changed={f}");
    }
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let so = out.join("libkelpie_gamepad.so");
    let compiler = cc::Build::new().opt_level(2).pic(true).get_compiler();
    let status = compiler
        .to_command()
        .args(["-std=gnu11", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", "-o"])
        .arg(&so)
        .args(SOURCES)
        .arg("-ldl")
        .status()
        .expect("running the C compiler (install gcc: scripts/install-deps.sh does)");
    assert!(
        status.success(),
        "compiling the interposer (interposer/*.c) failed; see the compiler's messages above"
    );
}

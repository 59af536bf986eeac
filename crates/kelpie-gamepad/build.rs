//! Compiles the interposer (`interposer/kelpie_gamepad.c`) into a shared library that the
//! crate embeds (`include_bytes!`) and writes into the session's runtime directory, so that
//! the binary carries it wherever it is installed.

fn main() {
    println!("cargo:rerun-if-changed=interposer/kelpie_gamepad.c");
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let so = out.join("libkelpie_gamepad.so");
    let compiler = cc::Build::new().opt_level(2).pic(true).get_compiler();
    let status = compiler
        .to_command()
        .args(["-std=gnu11", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", "-o"])
        .arg(&so)
        .arg("interposer/kelpie_gamepad.c")
        .arg("-ldl")
        .status()
        .expect("running the C compiler (install gcc: scripts/install-deps.sh does)");
    assert!(
        status.success(),
        "compiling interposer/kelpie_gamepad.c failed; see the compiler's messages above"
    );
}

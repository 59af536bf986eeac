//! Compiles the bridge to libx264 (`csrc/x264.c`). Only x264's header is needed here: the
//! library itself is loaded when Kelpie starts, so a machine without it still runs Kelpie
//! with another encoder.

fn main() {
    println!("cargo:rerun-if-changed=csrc/x264.c");
    let include = pkg_config_include("x264");
    let header_found = include
        .iter()
        .chain(["/usr/include".to_string()].iter())
        .any(|d| std::path::Path::new(d).join("x264.h").exists());
    if !header_found {
        panic!(
            "x264.h not found: install the Debian package libx264-dev \
             (scripts/install-deps.sh does), then build again"
        );
    }
    let mut build = cc::Build::new();
    build.file("csrc/x264.c").warnings(true).extra_warnings(true).flag_if_supported("-std=c11");
    for dir in include {
        build.include(dir);
    }
    build.compile("kelpie_x264");
    println!("cargo:rustc-link-lib=dylib=dl");
}

/// Include directories `pkg-config` gives for `lib`, if it knows it.
fn pkg_config_include(lib: &str) -> Vec<String> {
    std::process::Command::new("pkg-config")
        .args(["--cflags-only-I", lib])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .filter_map(|f| f.strip_prefix("-I").map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#!/usr/bin/env bash
# Builds the fuzz targets with libFuzzer on STABLE Rust: the same flags `cargo fuzz build
# --sanitizer none` passes, given by hand (all are stable `-C` flags; RUSTC_BOOTSTRAP only
# covers the `--cfg fuzzing` check-cfg noise and any nightly-only flag a newer libfuzzer-sys
# might want). `--target` keeps the flags off build scripts and proc macros.
set -euo pipefail
cd "$(dirname "$0")"
TARGET="${FUZZ_TARGET_TRIPLE:-$(rustc -vV | sed -n 's/^host: //p')}"
export RUSTC_BOOTSTRAP=1
export RUSTFLAGS="${RUSTFLAGS:-} -Cpasses=sancov-module \
 -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
 -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares \
 --cfg fuzzing -Cforce-frame-pointers"
exec cargo build --release --locked --target "$TARGET" --bins "$@"

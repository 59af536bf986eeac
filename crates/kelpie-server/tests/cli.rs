//! The `kelpie` binary's answers to bad start-up conditions: one line that says what to do,
//! a non-zero exit, never a panic or a backtrace.

use std::process::{Command, Output};

fn kelpie(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kelpie"))
        .args(args)
        .env_remove("DISPLAY")
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("kelpie runs")
}

fn assert_clean_failure(out: &Output, expect: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "should fail: {stderr}");
    assert!(stderr.contains(expect), "stderr lacks '{expect}':\n{stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("stack backtrace"), "{stderr}");
    let error_lines: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(error_lines.len(), 1, "one error line:\n{stderr}");
}

#[test]
fn bad_flag_values_are_one_line_errors() {
    assert_clean_failure(&kelpie(&["--fps", "0"]), "--fps");
    assert_clean_failure(&kelpie(&["--size", "huge"]), "WIDTHxHEIGHT");
    assert_clean_failure(&kelpie(&["--listen", "nowhere"]), "--listen");
    assert_clean_failure(&kelpie(&["--auth", "maybe"]), "--auth");
}

#[test]
fn a_view_token_without_access_control_is_a_clear_error() {
    let out =
        kelpie(&["--auth", "none", "--view-token", "look", "--display", ":7391", "--listen", "127.0.0.1:0"]);
    assert_clean_failure(&out, "--view-token needs access control, but --auth none turns it off");
    let out = kelpie(&["--token", "a b", "--display", ":7391", "--listen", "127.0.0.1:0"]);
    assert_clean_failure(&out, "--token has characters a URL or cookie would change");
}

#[test]
fn network_path_mistakes_are_one_line_errors_that_say_what_to_write() {
    let out = kelpie(&["--ice-server", "turn://relay.example.com:3478"]);
    assert_clean_failure(&out, "write turn:relay.example.com:3478");
    // Checked at start, before any display is opened.
    let with = |more: &[&str]| kelpie(&[&["--display", ":7391", "--listen", "127.0.0.1:0"], more].concat());
    assert_clean_failure(&with(&["--ice-server", "turn:relay.example.com"]), "give --turn-secret");
    assert_clean_failure(&with(&["--ice-transport", "relay"]), "--ice-transport relay sends all media");
    assert_clean_failure(&with(&["--turn-secret", "s"]), "add --ice-server turn:");
}

#[test]
fn unreachable_display_is_a_clear_error() {
    let out = kelpie(&["--display", ":7391", "--listen", "127.0.0.1:0"]);
    assert_clean_failure(&out, "cannot open X display :7391");
}

#[test]
fn port_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = kelpie(&["--display", ":7391", "--listen", &addr]);
    assert_clean_failure(&out, "choose another address or port with --listen");
}

#[test]
fn unknown_encoder_is_a_clear_error_and_the_embedded_display_is_stopped() {
    let out = kelpie(&[
        "--listen",
        "127.0.0.1:0",
        "--size",
        "320x240",
        "--app",
        "sleep 61.4242",
        "--encoder",
        "nope",
    ]);
    assert_clean_failure(&out, "unknown encoder 'nope'");
    // The Xvfb it started is gone: no process of ours still runs `sleep 61.4242` on a display.
    let ps = Command::new("pgrep").args(["-f", "^sleep 61.4242$"]).output().unwrap();
    assert!(ps.stdout.is_empty(), "leftover children: {}", String::from_utf8_lossy(&ps.stdout));
}

#[test]
fn help_lists_every_environment_variable() {
    let out = kelpie(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for v in [
        "KELPIE_DISPLAY",
        "KELPIE_LISTEN",
        "KELPIE_UDP_PORT",
        "KELPIE_PUBLIC_IP",
        "KELPIE_TOKEN",
        "KELPIE_AUTH",
        "KELPIE_ENCODER",
        "KELPIE_FPS",
        "KELPIE_BITRATE",
    ] {
        assert!(help.contains(v), "{v} missing");
    }
}

#[test]
fn unusable_tls_and_socket_settings_are_one_line_errors() {
    let out = kelpie(&[
        "--display",
        ":7391",
        "--tls-cert",
        "/nonexistent/c.pem",
        "--tls-key",
        "/nonexistent/k.pem",
    ]);
    assert_clean_failure(&out, "cannot read the certificate /nonexistent/c.pem");
    let out = kelpie(&["--display", ":7391", "--tls", "self-signed", "--tls-cert", "/c", "--tls-key", "/k"]);
    assert_clean_failure(&out, "give one of them");
    let out = kelpie(&["--display", ":7391", "--listen", "unix:/nonexistent/kelpie.sock"]);
    assert_clean_failure(&out, "--public-ip");
    let out = kelpie(&[
        "--display",
        ":7391",
        "--listen",
        "unix:/nonexistent/kelpie.sock",
        "--public-ip",
        "192.0.2.1",
    ]);
    assert_clean_failure(
        &out,
        "cannot create a private directory for the socket beside /nonexistent/kelpie.sock",
    );
    assert_clean_failure(&kelpie(&["--listen", "unix:relative.sock"]), "absolute path");
}

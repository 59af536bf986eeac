//! Reloading real files on a short poll.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::*;

fn pair(name: &str) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap().self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// Replaces `path` at once, as certbot or a Kubernetes secret does.
fn put(path: &Path, text: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..200 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn changed_files_are_served_and_broken_ones_leave_the_old_pair() {
    let dir = std::env::temp_dir().join(format!("kelpie-tls-reload-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let (a_cert, a_key) = pair("a.example");
    put(&cert, &a_cert);
    put(&key, &a_key);
    let setup = TlsSetup::Files { cert: cert.clone(), key: key.clone() };
    let tls = Tls::start_polling(&setup, Duration::from_millis(40)).unwrap();
    let first = tls.identity();
    assert_eq!(first.names, ["a.example"]);

    let (b_cert, b_key) = pair("b.example");
    put(&key, &b_key);
    put(&cert, &b_cert);
    until("the new pair", || tls.identity().names == ["b.example"]).await;
    assert_eq!(tls.counters.reloads.load(Ordering::Relaxed), 1);
    let second = tls.identity();
    assert_ne!(second.fingerprint, first.fingerprint);

    // A certificate whose key is not beside it: logged, and the pair before stays.
    let (c_cert, _) = pair("c.example");
    put(&cert, &c_cert);
    until("the failed reload", || tls.counters.reload_failures.load(Ordering::Relaxed) == 1).await;
    assert_eq!(tls.identity().fingerprint, second.fingerprint);
    // Garbage as well.
    put(&cert, "not a certificate");
    until("the second failed reload", || tls.counters.reload_failures.load(Ordering::Relaxed) == 2).await;
    assert_eq!(tls.identity().fingerprint, second.fingerprint);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(tls.counters.reload_failures.load(Ordering::Relaxed), 2, "a broken pair is tried once");
    // Fixed: served.
    let (d_cert, d_key) = pair("d.example");
    put(&key, &d_key);
    put(&cert, &d_cert);
    until("the fixed pair", || tls.identity().names == ["d.example"]).await;

    let mut text = String::new();
    tls.write_metrics(&mut text);
    assert!(text.contains("kelpie_tls_reload_failures_total 2\n"), "{text}");
    assert!(text.contains("kelpie_tls_certificate_expiry_timestamp_seconds "), "{text}");

    // The watcher ends with the last user of the certificate.
    let weak = Arc::downgrade(&tls);
    drop((tls, first, second));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(weak.upgrade().is_none());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn unusable_files_at_start_are_a_clear_error() {
    let setup = TlsSetup::Files { cert: "/nonexistent/c.pem".into(), key: "/nonexistent/k.pem".into() };
    let e = Tls::start(&setup).unwrap_err();
    let chain = kelpie_media::error_chain(&e);
    assert!(
        chain.contains("--tls-cert /nonexistent/c.pem") && chain.contains("cannot read the certificate"),
        "{chain}"
    );
}

//! `kelpie`: serve an X11 desktop to browsers.

use std::process::ExitCode;

use clap::Parser as _;
use kelpie_desktop::runtime::RuntimeDir;
use kelpie_server::url_file::UrlFile;
use kelpie_server::{Config, Ended, Server};

fn main() -> ExitCode {
    // Before anything else (no threads yet): Kelpie's binary is also the keeper of each
    // program on its display, and, as PID 1, the init of its PID namespace.
    kelpie_desktop::keeper::run_if_keeper();
    kelpie_desktop::init::run_if_pid1();
    kelpie_desktop::keeper::enable();
    let config = Config::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log).unwrap_or_else(|e| {
        eprintln!("kelpie: bad --log value '{}': {e}; using info", config.log);
        tracing_subscriber::EnvFilter::new("info")
    });
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let private = match private_setup(&config) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("kelpie: error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kelpie: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let server = Server::start(&config, private).await?;
        let url = server.url();
        let _url_file = config.url_file.as_deref().map(|path| UrlFile::create(path, &url)).transpose()?;
        match server.certificate() {
            Some(cert) => {
                println!(
                    "Kelpie is serving {} at {url} (certificate SHA-256 {})",
                    server.state.source.display(),
                    cert.fingerprint_hex()
                );
                println!(
                    "The certificate's public key, SHA-256 in base64 (SPKI pin): {}",
                    cert.spki_base64()
                );
            }
            None => println!("Kelpie is serving {} at {url}", server.state.source.display()),
        }
        server.serve().await
    });
    match result {
        Ok(Ended::Stopped) => ExitCode::SUCCESS,
        Ok(Ended::AppExited(status)) => ExitCode::from(kelpie_desktop::exit_code(status)),
        Err(e) => {
            eprintln!("kelpie: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// What must happen while Kelpie is still one thread, because it changes the environment:
/// the embedded display's private directory, whose X authority every X client of Kelpie
/// finds through `XAUTHORITY` (x11rb reads it at each connection), and Kelpie's own
/// `KELPIE_*` settings (the tokens among them) taken out, so that nothing Kelpie starts
/// inherits them.
fn private_setup(config: &Config) -> anyhow::Result<Option<RuntimeDir>> {
    let runtime = match config.existing_display() {
        Some(served) => {
            if config.runtime_dir.is_some() {
                tracing::warn!("--runtime-dir is for the embedded display; {served} is served as it is");
            }
            None
        }
        None => Some(RuntimeDir::create(config.runtime_dir.as_deref())?),
    };
    let kelpie_vars: Vec<_> = std::env::vars_os()
        .map(|(k, _)| k)
        .filter(|k| k.as_encoded_bytes().starts_with(b"KELPIE_"))
        .collect();
    // SAFETY: no other thread exists yet: the async runtime starts after this, and nothing
    // before it (the keeper and init checks, clap, the log subscriber) starts threads.
    unsafe {
        if let Some(r) = &runtime {
            std::env::set_var("XAUTHORITY", r.x_authority().path());
        }
        for k in kelpie_vars {
            std::env::remove_var(k);
        }
    }
    Ok(runtime)
}

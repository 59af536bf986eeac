//! `kelpie`: serve an X11 desktop to browsers.

use std::process::ExitCode;

use clap::Parser as _;
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
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kelpie: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let server = Server::start(&config).await?;
        println!("Kelpie is serving {} at {}", server.state.source.display(), server.url());
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

//! `kelpie`: serve an X11 desktop to browsers.

use std::process::ExitCode;

use clap::Parser as _;
use kelpie_server::{Config, Server};

fn main() -> ExitCode {
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
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kelpie: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

// Every request allocates a few dozen small buffers; glibc's allocator spent about a tenth
// of the server's CPU on them (measured in BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let (filter, refused) = match EnvFilter::try_from_env("LICENSED_LOG") {
        Ok(filter) => (filter, None),
        Err(_) if std::env::var_os("LICENSED_LOG").is_none() => (EnvFilter::new("info"), None),
        Err(error) => (EnvFilter::new("info"), Some(error)),
    };
    // tokio-postgres logs every statement's parameters at debug: license keys, webhook
    // secrets, private keys as they are stored. They stay out of a `debug` log unless the
    // operator names that crate.
    let names_postgres = std::env::var("LICENSED_LOG").is_ok_and(|filter| {
        // A directive's target ends where its span filter or its level begins.
        (filter.split(',')).any(|directive| {
            let target = directive
                .trim()
                .split(['[', '='])
                .next()
                .unwrap_or_default();
            target == "tokio_postgres" || target.starts_with("tokio_postgres::")
        })
    });
    let filter = match names_postgres {
        true => filter,
        false => filter.add_directive("tokio_postgres=info".parse().expect("a valid directive")),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if let Some(error) = refused {
        tracing::warn!(%error, "LICENSED_LOG is not a valid filter; logging at info");
    }
    licensed::cli::run(licensed::cli::Cli::read()).await
}

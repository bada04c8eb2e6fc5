//! The command line: `serve`, `migrate`, `api-key create|list|revoke`,
//! `signing-key show|rotate`, `license-file verify`.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::http::HeaderName;
use clap::builder::BoolishValueParser;
use clap::{Args, CommandFactory, Parser, Subcommand};
use licensed_verify::{LicenseFile, PublicKey};
use tokio::net::TcpListener;

use crate::domain::auth::ApiKeySecret;
use crate::domain::delivery::RetrySchedule;
use crate::domain::ids::{ApiKeyId, BusinessName};
use crate::domain::signing::MasterKey;
use crate::domain::time::parse_wait;
use crate::http::{self, AppState, ServerSettings};
use crate::jobs;
use crate::jobs::dispatcher::DispatchOptions;
use crate::storage::keyring::{self, KeyringError};
use crate::storage::{self, OpenError, StorageOptions, Store};

/// The variables read without a flag of their own, as `--help` lists them.
const SERVE_VARIABLES: &str = "\
Environment variables without a flag:
  LICENSED_MASTER_KEY         32 bytes in standard base64 (openssl rand -base64 32) that
                              seal signing keys and webhook secrets in the database;
                              without it they are stored unencrypted
  LICENSED_BOOTSTRAP_API_KEY  the admin API key a new database is created with, instead
                              of a generated one
  LICENSED_LOG                log filter (default info), e.g. licensed=debug";

const MASTER_KEY_VARIABLE: &str = "\
Environment variable: LICENSED_MASTER_KEY, the key that seals the signing keys (as `serve`
is given it); needed once the database's keys are sealed.";

#[derive(Parser)]
#[command(name = "licensed", version, about = "A self-hosted license server",
          after_help = SERVE_VARIABLES)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API (migrations run at start).
    #[command(after_help = SERVE_VARIABLES)]
    Serve(ServeArgs),
    /// Apply database migrations and exit.
    Migrate(DatabaseArgs),
    /// Manage API keys.
    #[command(name = "api-key", subcommand)]
    ApiKey(ApiKeyCommand),
    /// Show or rotate a business's Ed25519 signing key.
    #[command(name = "signing-key", subcommand, after_help = MASTER_KEY_VARIABLE)]
    SigningKey(SigningKeyCommand),
    /// Check license and machine files offline.
    #[command(name = "license-file", subcommand)]
    LicenseFile(LicenseFileCommand),
}

#[derive(Subcommand)]
enum LicenseFileCommand {
    /// Verify a license or machine file offline and print its payload as JSON. Exit 0 when
    /// valid; 1 when not, the reason on stderr.
    Verify(VerifyFileArgs),
}

#[derive(Args)]
struct VerifyFileArgs {
    /// The license or machine file, as the server issued it.
    file: PathBuf,
    /// The business's public key (`signing-key show`): the path of a file holding it in
    /// hex or PEM or, when no file has that name, the hex or PEM text itself.
    // PEM text starts with `-----`, which clap would otherwise take for a flag.
    #[arg(long, value_name = "HEX_OR_PEM_FILE", allow_hyphen_values = true)]
    public_key: String,
    /// The license key: decrypts an encrypted file, and checks the file is for this key.
    /// From the environment, it stays out of the process list.
    #[arg(
        long,
        value_name = "KEY",
        env = "LICENSED_LICENSE_KEY",
        hide_env_values = true
    )]
    license_key: Option<String>,
    /// The machine's fingerprint, for a machine file: checks the file is for this machine,
    /// and decrypts it (with --license-key).
    #[arg(long, value_name = "FP")]
    fingerprint: Option<String>,
}

#[derive(Subcommand)]
enum SigningKeyCommand {
    /// Print the business's active public key: its id, then hex, then PEM.
    #[command(after_help = MASTER_KEY_VARIABLE)]
    Show(SigningKeyArgs),
    /// Make a new key the active one; the old public keys stay listed.
    #[command(after_help = MASTER_KEY_VARIABLE)]
    Rotate(SigningKeyArgs),
}

#[derive(Args)]
struct SigningKeyArgs {
    /// The business whose key this is (`default` for the first one).
    #[arg(long, value_parser = business_name)]
    business: String,
    #[command(flatten)]
    database: DatabaseArgs,
}

#[derive(Subcommand)]
enum ApiKeyCommand {
    /// Create an API key (and its business if new); prints the key as the last line.
    Create(CreateKeyArgs),
    /// List API keys: id, business, access, creation (never the secret).
    List(ListKeysArgs),
    /// Revoke an API key: requests that present it get 401 from then on.
    Revoke(RevokeKeyArgs),
}

#[derive(Args, Clone)]
struct DatabaseArgs {
    /// sqlite://PATH, sqlite::memory:, or postgres://USER@HOST/DB (or postgresql://).
    // `--help` would otherwise show the variable's value: the URL's password with it.
    #[arg(
        long,
        env = "LICENSED_DATABASE_URL",
        hide_env_values = true,
        default_value = "sqlite://licensed.db"
    )]
    database_url: String,
    /// How long a request may wait for the database before it fails with 503, in milliseconds.
    #[arg(long, env = "LICENSED_DATABASE_TIMEOUT_MS", default_value_t = 5000,
          value_parser = clap::value_parser!(u64).range(1..))]
    database_timeout_ms: u64,
    /// PostgreSQL connections per process.
    #[arg(long, env = "LICENSED_DATABASE_MAX_CONNECTIONS", default_value_t = 16,
          value_parser = clap::value_parser!(u32).range(1..))]
    database_max_connections: u32,
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "LICENSED_BIND", default_value = "127.0.0.1:8080",
          value_parser = listen_address)]
    bind: SocketAddr,
    /// Serve /metrics on this address instead of the main one.
    #[arg(long, env = "LICENSED_METRICS_BIND", value_parser = listen_address)]
    metrics_bind: Option<SocketAddr>,
    /// Requests per minute per client IP on /licenses/*, counted by this process (0:
    /// unlimited).
    #[arg(long, env = "LICENSED_PUBLIC_RATE_LIMIT", default_value_t = 600)]
    public_rate_limit: u32,
    /// Requests per minute per API key on the other routes, counted by this process (0:
    /// unlimited).
    #[arg(long, env = "LICENSED_API_KEY_RATE_LIMIT", default_value_t = 0)]
    api_key_rate_limit: u32,
    /// The longest a request may take, body upload included, before it fails (408 while its
    /// body is still arriving, else 503).
    #[arg(long, env = "LICENSED_REQUEST_TIMEOUT_MS", default_value_t = 30_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    request_timeout_ms: u64,
    /// Behind a reverse proxy: the header in which it names the client's address (such as
    /// X-Forwarded-For; the last address in it counts). Set it only if clients cannot
    /// reach the server except through that proxy, since a client could write the header.
    /// Not `Forwarded`, whose `for=` syntax is not read.
    #[arg(long, env = "LICENSED_CLIENT_IP_HEADER", value_parser = client_ip_header)]
    client_ip_header: Option<HeaderName>,
    /// Refuse webhook deliveries to loopback, private, link-local and unique-local
    /// addresses, checked on the address connected to (for untrusted tenants).
    #[arg(long, env = "LICENSED_WEBHOOK_DENY_PRIVATE", value_parser = BoolishValueParser::new())]
    webhook_deny_private: bool,
    /// The waits between a webhook message's attempts; the message fails when they are
    /// used up. Shorten it to watch retries happen (in tests, say).
    #[arg(long, env = "LICENSED_WEBHOOK_RETRY_SCHEDULE", default_value = "5s,5m,30m,2h,5h,10h,10h",
          value_parser = RetrySchedule::parse)]
    webhook_retry_schedule: RetrySchedule,
    /// How long a process holds an endpoint's deliveries without renewing its claim; on
    /// PostgreSQL a killed process's endpoints are taken over once it ends (on SQLite, a
    /// restarted server takes them back at once). Attempts time out after 15 s or a third
    /// of it, whichever is less.
    #[arg(long, env = "LICENSED_WEBHOOK_LEASE_SECONDS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(3..=3600))]
    webhook_lease_seconds: u64,
    /// Mark the console's cookies `Secure`, so that browsers send them over HTTPS only:
    /// set it when a proxy in front serves the console over TLS.
    #[arg(long, env = "LICENSED_CONSOLE_SECURE_COOKIE", value_parser = BoolishValueParser::new())]
    console_secure_cookie: bool,
    /// SQLite: write a copy of the database to this file when the server starts, and again
    /// --sqlite-backup-every after each copy, while it serves (the file is replaced whole,
    /// never left half written). The server holds its database alone, so this is how to
    /// back it up without stopping it.
    #[arg(long, env = "LICENSED_SQLITE_BACKUP", value_name = "PATH")]
    sqlite_backup: Option<PathBuf>,
    /// The wait from the end of one --sqlite-backup copy to the next: 30m, 1h, 24h, …
    /// [default: 1h]
    #[arg(long, env = "LICENSED_SQLITE_BACKUP_EVERY", value_name = "WAIT")]
    sqlite_backup_every: Option<String>,
    #[command(flatten)]
    database: DatabaseArgs,
}

/// `--business`: the name without the spaces around it, which `api-key list` could not
/// show apart from another business's name.
fn business_name(text: &str) -> Result<String, String> {
    Ok(text.trim().to_owned())
}

/// An address to listen on: an IP address and a port. A host name is not looked up,
/// since it may name several addresses, or another one tomorrow.
fn listen_address(text: &str) -> Result<SocketAddr, String> {
    text.parse().map_err(|_| {
        "expected an IP address and a port, such as 127.0.0.1:8080, 0.0.0.0:8080 or [::]:8080 (host names such as localhost are not looked up)".to_owned()
    })
}

/// The wait between two backups unless `--sqlite-backup-every` says otherwise.
const DEFAULT_BACKUP_INTERVAL: Duration = Duration::from_secs(3600);

/// The wait between two backups: at least a second. Read only with a backup to take:
/// typed without one, it is a mistake; from an environment shared with other settings
/// (servers on PostgreSQL, say), it is ignored with a warning, whatever its value.
fn backup_interval(args: &ServeArgs) -> Result<Duration, Failure> {
    let Some(text) = &args.sqlite_backup_every else {
        return Ok(DEFAULT_BACKUP_INTERVAL);
    };
    let typed = on_the_command_line("sqlite-backup-every");
    if args.sqlite_backup.is_none() {
        if typed {
            return Err(Failure::Usage(
                "--sqlite-backup-every applies only with --sqlite-backup".into(),
            ));
        }
        tracing::warn!(
            "ignoring LICENSED_SQLITE_BACKUP_EVERY: it applies only with LICENSED_SQLITE_BACKUP (--sqlite-backup)"
        );
        return Ok(DEFAULT_BACKUP_INTERVAL);
    }
    let source = match typed {
        true => "--sqlite-backup-every",
        false => "LICENSED_SQLITE_BACKUP_EVERY",
    };
    let refused =
        |why: String| Failure::Usage(format!("invalid value '{text}' for '{source}': {why}"));
    let every = parse_wait(text.trim()).map_err(refused)?;
    if every < Duration::from_secs(1) {
        return Err(refused(format!("`{text}` is shorter than a second")));
    }
    Ok(every)
}

#[derive(Args)]
struct CreateKeyArgs {
    /// The business the key belongs to; created if it does not exist.
    #[arg(long, value_parser = business_name)]
    business: String,
    /// The key may read but not write.
    #[arg(long)]
    read_only: bool,
    #[command(flatten)]
    database: DatabaseArgs,
}

#[derive(Args)]
struct ListKeysArgs {
    /// Only this business's keys.
    #[arg(long, value_parser = business_name)]
    business: Option<String>,
    #[command(flatten)]
    database: DatabaseArgs,
}

#[derive(Args)]
struct RevokeKeyArgs {
    /// The key's id (`key_…`), as `api-key list` shows it.
    id: String,
    #[command(flatten)]
    database: DatabaseArgs,
}

/// Environment variables this program reads: those of its flags, and these.
const OTHER_VARIABLES: [&str; 3] = [
    "LICENSED_BOOTSTRAP_API_KEY",
    "LICENSED_LOG",
    "LICENSED_MASTER_KEY",
];

/// Every flag of `command` and of its subcommands.
fn all_flags(command: &clap::Command) -> Vec<&clap::Arg> {
    (command.get_arguments())
        .chain(command.get_subcommands().flat_map(all_flags))
        .collect()
}

/// Whether `name` is a variable this program reads; any other `LICENSED_*` is probably a
/// typo.
fn is_known_variable(name: &str) -> bool {
    let command = Cli::command();
    OTHER_VARIABLES.contains(&name)
        || all_flags(&command)
            .iter()
            .any(|arg| arg.get_env().is_some_and(|env| env == name))
}

impl Cli {
    /// The process's command line and the environment variables behind its flags, as
    /// [`Parser::parse`] reads them; it exits with clap's message on an error. A bad value
    /// read from a variable is named by the variable, where clap names its flag
    /// (clap-rs/clap#5202) and the operator would look for the flag in vain.
    pub fn read() -> Self {
        Self::try_parse().unwrap_or_else(|error| name_the_variable(error).exit())
    }
}

fn name_the_variable(mut error: clap::Error) -> clap::Error {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if !matches!(
        error.kind(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation
    ) {
        return error;
    }
    // "--database-timeout-ms <DATABASE_TIMEOUT_MS>"
    let Some(ContextValue::String(flag)) = error.get(ContextKind::InvalidArg) else {
        return error;
    };
    let Some(long) = flag.strip_prefix("--").and_then(|f| f.split(' ').next()) else {
        return error;
    };
    let on_the_command_line = on_the_command_line(long);
    let command = Cli::command();
    let variable = (all_flags(&command).into_iter())
        .find(|arg| arg.get_long() == Some(long))
        .and_then(|arg| arg.get_env())
        .filter(|variable| std::env::var_os(variable).is_some());
    if let (false, Some(variable)) = (on_the_command_line, variable) {
        let named = variable.to_string_lossy().into_owned();
        error.insert(ContextKind::InvalidArg, ContextValue::String(named));
    }
    error
}

/// Whether `--long` was typed, rather than taken from its variable.
fn on_the_command_line(long: &str) -> bool {
    std::env::args_os().any(|arg| {
        arg.to_str().is_some_and(|arg| {
            arg.strip_prefix("--")
                .and_then(|arg| arg.strip_prefix(long))
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('='))
        })
    })
}

pub async fn run(cli: Cli) -> ExitCode {
    for (name, _) in std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v))) {
        if name.starts_with("LICENSED_") && !is_known_variable(&name) {
            tracing::warn!("ignoring unknown environment variable {name}");
        }
    }
    let result = match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Migrate(args) => open(&args, true).await.map(|_| {
            eprintln!("migrations applied");
        }),
        Command::ApiKey(ApiKeyCommand::Create(args)) => create_key(args).await,
        Command::ApiKey(ApiKeyCommand::List(args)) => list_keys(args).await,
        Command::ApiKey(ApiKeyCommand::Revoke(args)) => revoke_key(args).await,
        Command::SigningKey(SigningKeyCommand::Show(args)) => signing_key(args, false).await,
        Command::SigningKey(SigningKeyCommand::Rotate(args)) => signing_key(args, true).await,
        Command::LicenseFile(LicenseFileCommand::Verify(args)) => verify_license_file(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Runtime(message)) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// A header that names the client's address as a list of addresses.
fn client_ip_header(text: &str) -> Result<HeaderName, String> {
    let name = HeaderName::try_from(text).map_err(|e| e.to_string())?;
    if name == axum::http::header::FORWARDED {
        return Err(
            "`Forwarded` is not read (its `for=` syntax is not a list of addresses): \
             name a header such as X-Forwarded-For or X-Real-IP"
                .into(),
        );
    }
    Ok(name)
}

/// Writes a line of the command's output. A closed stdout (`| head -1`, say) is an
/// error rather than a panic: an API key's line may be lost with it.
fn say(line: std::fmt::Arguments) -> Result<(), Failure> {
    use std::io::Write;
    writeln!(std::io::stdout().lock(), "{line}")
        .map_err(|e| Failure::Runtime(format!("cannot write the output: {e}")))
}

enum Failure {
    /// Bad configuration: exit code 2, like a command-line error.
    Usage(String),
    Runtime(String),
}

impl From<OpenError> for Failure {
    fn from(error: OpenError) -> Self {
        match error {
            OpenError::UnknownScheme(_) => Failure::Usage(error.to_string()),
            OpenError::Failed(_) => Failure::Runtime(error.to_string()),
        }
    }
}

impl From<KeyringError> for Failure {
    fn from(error: KeyringError) -> Self {
        Failure::Runtime(error.to_string())
    }
}

/// The master key from `LICENSED_MASTER_KEY` (an environment variable only: a flag would
/// show it in the process list).
fn master_key() -> Result<Option<MasterKey>, Failure> {
    match std::env::var("LICENSED_MASTER_KEY") {
        Ok(text) if !text.trim().is_empty() => MasterKey::parse(&text)
            .map(Some)
            .map_err(|e| Failure::Usage(e.to_string())),
        _ => Ok(None),
    }
}

impl From<storage::StorageError> for Failure {
    fn from(error: storage::StorageError) -> Self {
        Failure::Runtime(error.to_string())
    }
}

/// Opens a database that has the schema already: a key created in a new file, made
/// because the server's `--database-url` was not given, or in a PostgreSQL database that
/// the URL names by mistake, would be a key the server never sees.
async fn open_existing(args: &DatabaseArgs) -> Result<Arc<dyn Store>, Failure> {
    if let Some(path) = storage::sqlite::missing_file(&args.database_url) {
        return Err(Failure::Runtime(format!(
            "there is no database at {}: pass the server's --database-url (or set \
             LICENSED_DATABASE_URL), or create it with `licensed migrate`",
            path.display()
        )));
    }
    open(args, false).await
}

/// Opens the database; with `create_schema`, gives one without the schema its schema.
async fn open(args: &DatabaseArgs, create_schema: bool) -> Result<Arc<dyn Store>, Failure> {
    let options = StorageOptions {
        url: args.database_url.clone(),
        timeout: Duration::from_millis(args.database_timeout_ms),
        max_connections: args.database_max_connections,
        create_schema,
    };
    Ok(storage::open(&options).await?)
}

async fn serve(args: ServeArgs) -> Result<(), Failure> {
    let mut signals = StopSignals::register()
        .map_err(|e| Failure::Runtime(format!("cannot watch signals: {e}")))?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        signals.next().await;
        tracing::info!(
            "shutting down: finishing the requests and webhook attempts in flight (a second signal stops now)"
        );
        let _ = stop.send(true);
        signals.next().await;
        tracing::warn!("stopping now, without waiting for requests in flight");
        std::process::exit(1);
    });
    let on_stop = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }
    };

    // The addresses are taken first: a port in use stops the start before the database
    // is touched, and before a new database's admin key is shown for nothing.
    let bind = |address: SocketAddr, flag: &'static str| async move {
        (TcpListener::bind(address).await)
            .map_err(|e| Failure::Runtime(format!("cannot listen on {address} ({flag}): {e}")))
    };
    // Port 0 asks for any free port: two such addresses are two ports.
    if args.metrics_bind == Some(args.bind) && args.bind.port() != 0 {
        return Err(Failure::Usage(format!(
            "--metrics-bind is the address of --bind ({}): leave it out to serve /metrics there",
            args.bind
        )));
    }
    // Read before the database is opened: a malformed key stops the start before a new
    // database's admin key is shown by a start that then fails.
    let master_key = master_key()?;
    let listener = bind(args.bind, "--bind").await?;
    let metrics = match args.metrics_bind {
        Some(address) => Some(bind(address, "--metrics-bind").await?),
        None => None,
    };
    // A backup that cannot be written stops the start, too.
    let backup_every = backup_interval(&args)?;
    if let Some(to) = &args.sqlite_backup {
        storage::sqlite::check_backup_path(&args.database.database_url, to)
            .map_err(Failure::Usage)?;
    }
    // Opening may wait, for another process's migrations say: a signal stops the wait.
    let store = tokio::select! {
        opened = open(&args.database, true) => opened?,
        () = on_stop() => {
            tracing::info!("stopped before serving");
            return Ok(());
        }
    };
    bootstrap(store.as_ref()).await?;
    keyring::prepare(store.as_ref(), master_key.as_ref()).await?;
    // Only once the keys opened without a master key: a sealed database stopped `serve`.
    if master_key.is_none() {
        tracing::warn!(
            "LICENSED_MASTER_KEY is not set: signing keys and webhook secrets are stored unencrypted in the database"
        );
    }
    let settings = ServerSettings {
        public_rate_limit: args.public_rate_limit,
        api_key_rate_limit: args.api_key_rate_limit,
        metrics_on_main: args.metrics_bind.is_none(),
        request_timeout: Duration::from_millis(args.request_timeout_ms),
        client_ip_header: args.client_ip_header,
        master_key,
        webhooks: DispatchOptions {
            schedule: args.webhook_retry_schedule,
            deny_private: args.webhook_deny_private,
            lease: Duration::from_secs(args.webhook_lease_seconds),
        },
        console_secure_cookie: args.console_secure_cookie,
    };
    let state = AppState::new(store, &settings)
        .await
        .map_err(|e| Failure::Runtime(format!("{e:#}")))?;
    let backups = (args.sqlite_backup)
        .map(|to| jobs::backup::spawn(to, backup_every, Arc::downgrade(&state.store)));
    if let Some(metrics) = metrics {
        let bound = metrics
            .local_addr()
            .map_err(|e| Failure::Runtime(e.to_string()))?;
        tracing::info!("metrics on http://{bound}/metrics");
        tokio::spawn(http::serve(
            metrics,
            http::metrics_router(state.clone(), &settings),
            on_stop(),
        ));
    }
    let address = listener
        .local_addr()
        .map_err(|e| Failure::Runtime(e.to_string()))?;
    tracing::info!("listening on http://{address}");
    // Webhook attempts in flight finish and are recorded beside the requests in flight:
    // an attempt's timeout, then the database's to record it, and a second for the rest.
    let stop_within = settings.webhooks.timeout()
        + Duration::from_millis(args.database.database_timeout_ms)
        + Duration::from_secs(1);
    let deliveries = async {
        on_stop().await;
        state.deliveries.stop(stop_within).await;
    };
    let (served, ()) = tokio::join!(
        http::serve(listener, http::router(state.clone(), &settings), on_stop()),
        deliveries
    );
    served.map_err(|e| Failure::Runtime(e.to_string()))?;
    if let Some(backups) = backups {
        backups.stop().await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// A chosen bootstrap key shorter than this is warned about (a base64 of 24 random bytes
/// has 32 characters).
const MIN_CHOSEN_KEY_CHARS: usize = 32;

/// On a database that has never been used, creates business `default` and its first
/// admin key, shown once on stderr.
async fn bootstrap(store: &dyn Store) -> Result<(), Failure> {
    let given = std::env::var("LICENSED_BOOTSTRAP_API_KEY")
        .ok()
        .filter(|k| !k.trim().is_empty());
    let key = match &given {
        Some(key) => ApiKeySecret::given(key.trim().to_owned()),
        None => ApiKeySecret::generate(),
    };
    if store.bootstrap(key.digest()).await? {
        if let Some(given) = &given {
            eprintln!(
                "Created business `default` with the admin API key from LICENSED_BOOTSTRAP_API_KEY."
            );
            // A generated key has 256 random bits; a chosen one only what its author gave it.
            if given.trim().chars().count() < MIN_CHOSEN_KEY_CHARS {
                tracing::warn!(
                    "LICENSED_BOOTSTRAP_API_KEY has fewer than {MIN_CHOSEN_KEY_CHARS} characters: \
                     an admin key should be long and random (`openssl rand -base64 32`); \
                     create one with `licensed api-key create` and revoke this one"
                );
            }
        } else {
            eprintln!(
                "Created business `default` with this admin API key (shown only once):\n{}",
                key.expose()
            );
        }
    } else if given.is_some() {
        tracing::warn!(
            "LICENSED_BOOTSTRAP_API_KEY is not used: it applies only on a new database's \
             first start (to add a key, run `licensed api-key create`)"
        );
    }
    Ok(())
}

async fn create_key(args: CreateKeyArgs) -> Result<(), Failure> {
    let name = BusinessName::parse(args.business)
        .map_err(|e| Failure::Usage(format!("--business {e}")))?;
    let store = open_existing(&args.database).await?;
    let business_id = store.ensure_business(&name).await?;
    let key = ApiKeySecret::generate();
    let id = store
        .create_api_key(&business_id, key.digest(), args.read_only)
        .await?;
    let access = access_name(args.read_only);
    let shown = say(format_args!(
        "Created {access} API key {id} for business `{name}` ({business_id}); it is shown only once:\n{}",
        key.expose()
    ));
    if let Err(Failure::Runtime(error)) = shown {
        // A key nobody saw cannot be used, and would stay valid unseen: it goes.
        let revoked = store.revoke_api_key(&id).await;
        let fate = match revoked {
            Ok(_) => format!("API key {id} was revoked, since it cannot be shown again"),
            Err(e) => format!("API key {id} was created and could not be revoked ({e}): revoke it"),
        };
        return Err(Failure::Runtime(format!("{error}; {fate}")));
    }
    shown
}

async fn signing_key(args: SigningKeyArgs, rotate: bool) -> Result<(), Failure> {
    let name = BusinessName::parse(args.business)
        .map_err(|e| Failure::Usage(format!("--business {e}")))?;
    let master = master_key()?;
    let store = open_existing(&args.database).await?;
    let business = store
        .business_id(&name)
        .await?
        .ok_or_else(|| Failure::Runtime(format!("there is no business named `{name}`")))?;
    keyring::check(store.as_ref(), master.as_ref()).await?;
    let key = if rotate {
        keyring::rotate(store.as_ref(), &business, master.as_ref()).await?
    } else {
        let keys = keyring::public_keys(store.as_ref(), &business, master.as_ref()).await?;
        keys.into_iter()
            .find(|k| k.active)
            .ok_or_else(|| Failure::Runtime("the business has no active signing key".into()))?
    };
    say(format_args!(
        "{}\n{}\n{}",
        key.id,
        key.hex,
        key.pem.trim_end()
    ))
    .map_err(|error| match error {
        Failure::Runtime(error) if rotate => Failure::Runtime(format!(
            "{error}; the signing key was rotated all the same: `licensed signing-key show` shows the new one"
        )),
        other => other,
    })
}

/// All checks are `licensed-verify`'s, the very code an app runs, so that a file this
/// accepts with the license key (and fingerprint) is one the app accepts too. Without the
/// key, what was not checked is said.
fn verify_license_file(args: VerifyFileArgs) -> Result<(), Failure> {
    let name = args.file.display();
    let text = std::fs::read_to_string(&args.file)
        .map_err(|e| Failure::Runtime(format!("cannot read license file {name}: {e}")))?;
    let key = public_key(&args.public_key)?;
    let invalid = |error| Failure::Runtime(format!("{name} is not valid: {}", reason(error)));
    let (contents, unchecked) = match &args.license_key {
        Some(license_key) => {
            let fingerprint = args.fingerprint.as_deref();
            let contents =
                licensed_verify::verify_license_file_now(&text, &key, license_key, fingerprint)
                    .map_err(invalid)?;
            (contents, "")
        }
        // Without the license key only a plain file can be read, and it is checked for its
        // signature and dates, not for whose key or machine it is.
        None => {
            let file = LicenseFile::parse(&text).map_err(invalid)?;
            file.verify(&key).map_err(invalid)?;
            if file.is_encrypted() {
                return Err(Failure::Runtime(format!(
                    "{name} is encrypted: pass --license-key (and --fingerprint for a \
                     machine file) to read it"
                )));
            }
            let contents = file.decrypt("", None).map_err(invalid)?;
            let payload = &contents.payload;
            if let Some(fingerprint) = args.fingerprint.as_deref() {
                (payload.check_machine(file.kind(), Some(fingerprint))).map_err(invalid)?;
            }
            payload.check_time(SystemTime::now()).map_err(invalid)?;
            let bound = payload
                .machine()
                .and_then(|m| m.attributes.fingerprint.as_ref());
            let unchecked = match (bound, &args.fingerprint) {
                (Some(_), None) => {
                    " (whose key and which machine it is for were not checked: pass --license-key and --fingerprint)"
                }
                _ => " (whose key it is for was not checked: pass --license-key)",
            };
            (contents, unchecked)
        }
    };
    // The payload as the server wrote it (not as the typed struct sees it), indented.
    let json: serde_json::Value = serde_json::from_str(&contents.json)
        .map_err(|e| Failure::Runtime(format!("{name}: {e}")))?;
    let pretty =
        serde_json::to_string_pretty(&json).map_err(|e| Failure::Runtime(e.to_string()))?;
    say(format_args!("{pretty}"))?;
    // The file holds until its own expiry, or the key's if that comes first.
    let payload = &contents.payload;
    let key_expiry = payload.data.attributes.expiry;
    let until = key_expiry.map_or(payload.meta.expiry, |k| k.min(payload.meta.expiry));
    eprintln!("valid until {until}{unchecked}");
    Ok(())
}

/// `--public-key`: the file by that name if there is one, else the argument is the key.
fn public_key(arg: &str) -> Result<PublicKey, Failure> {
    match std::fs::read_to_string(arg) {
        Ok(text) => PublicKey::parse(&text)
            .map_err(|e| Failure::Runtime(format!("public key file {arg}: {e}"))),
        Err(e) if e.kind() == ErrorKind::NotFound => PublicKey::parse(arg).map_err(|e| {
            Failure::Runtime(format!(
                "--public-key names no file, and is not a key in hex or PEM either ({e})"
            ))
        }),
        Err(e) => Err(Failure::Runtime(format!(
            "cannot read public key file {arg}: {e}"
        ))),
    }
}

/// The crate's message, with a hint where the fix is on this command line.
fn reason(error: licensed_verify::Error) -> String {
    use licensed_verify::Error;
    match error {
        Error::BadSignature => {
            format!("{error}: the file was changed, or signed by another key than --public-key")
        }
        Error::FingerprintRequired => format!("{error} (--fingerprint)"),
        _ => error.to_string(),
    }
}

/// What a key may do, as `api-key create` and `api-key list` print it.
fn access_name(read_only: bool) -> &'static str {
    if read_only { "read-only" } else { "read-write" }
}

async fn list_keys(args: ListKeysArgs) -> Result<(), Failure> {
    let store = open_existing(&args.database).await?;
    let keys = store.list_api_keys().await?;
    let rows: Vec<[String; 4]> = keys
        .into_iter()
        .filter(|key| args.business.as_ref().is_none_or(|b| *b == key.business))
        .map(|key| {
            let access = access_name(key.read_only).to_owned();
            [
                key.id.into_string(),
                key.business,
                access,
                key.created_at.to_string(),
            ]
        })
        .collect();
    let header = ["ID", "BUSINESS", "ACCESS", "CREATED"].map(str::to_owned);
    let widths: Vec<usize> = (0..3)
        .map(|column| {
            let cells = std::iter::once(&header).chain(&rows);
            cells.map(|row| row[column].len()).max().unwrap_or(0)
        })
        .collect();
    for row in std::iter::once(&header).chain(&rows) {
        say(format_args!(
            "{:w0$}  {:w1$}  {:w2$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        ))?;
    }
    Ok(())
}

async fn revoke_key(args: RevokeKeyArgs) -> Result<(), Failure> {
    let store = open_existing(&args.database).await?;
    if !store
        .revoke_api_key(&ApiKeyId::from(args.id.as_str()))
        .await?
    {
        return Err(Failure::Runtime(format!(
            "no API key has the id `{}`",
            args.id
        )));
    }
    eprintln!("Revoked API key {}.", args.id);
    Ok(())
}

/// SIGTERM and SIGINT (Ctrl-C), registered at once so that none is missed while the
/// server starts.
struct StopSignals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn register() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    /// The next of either signal.
    async fn next(&mut self) {
        tokio::select! {
            _ = self.terminate.recv() => {},
            _ = self.interrupt.recv() => {},
        }
    }
}

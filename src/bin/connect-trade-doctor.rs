//! `connect-trade-doctor`: checks what Connect Trade answers against our spec (feature `doctor`).
//!
//! ```text
//! CONNECT_TRADE_CLIENT_ID=… CONNECT_TRADE_CLIENT_SECRET=… \
//! CONNECT_TRADE_USER_ID=… CONNECT_TRADE_USER_SECRET=… \
//!     cargo run --features doctor --bin connect-trade-doctor -- --capture doctor-capture
//! ```
//!
//! Exit status: 0 nothing diverges, 1 something does, 2 it could not run.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use connect_trade::{
    PlatformCredentials, UserCredentials,
    doctor::{self, DoctorOptions},
};

const USAGE: &str = "\
usage: connect-trade-doctor [options]

Checks the answers of the Connect Trade API against spec/openapi.json (JSON Schema and the
generated types), and prints every divergence. Read-only by default: GET requests only.

Credentials come from the environment, as for the quickstart: CONNECT_TRADE_CLIENT_ID and
CONNECT_TRADE_CLIENT_SECRET (required), CONNECT_TRADE_USER_ID and CONNECT_TRADE_USER_SECRET
(to check a user's data), CONNECT_TRADE_BASE_URL. Secrets are never taken on the command line.

options:
  --base-url URL          the REST base URL (default https://api.connecttrade.com; the simulator's)
  --client-id ID          the platform's client id (instead of CONNECT_TRADE_CLIENT_ID)
  --user-id ID            the user's id (instead of CONNECT_TRADE_USER_ID; the secret stays in
                          CONNECT_TRADE_USER_SECRET)
  --capture DIR           write what was sent and received, redacted, into DIR (safe to share)
  --json                  print the report as JSON
  --pages N               read at most N pages of GET /orders (default 3)
  --page-size N           `limit` of each GET /orders page (default: the server's)
  --spec PATH             check against this OpenAPI document instead of the built-in spec
  --market-data CONNECTION_ID
                          opt-in probe: fetch the connection's market data token (this ENDS the
                          sessions on its previous token), then read a few quotes
  --symbol SYMBOL         the probe's symbol (default AAPL)
  --market-data-url URL   the market data stream (default wss://mdstream.connecttrade.com)
  --brokerage-stream      opt-in probe: read the brokerage stream (a new session REPLACES the
                          platform's running one)
  --brokerage-url URL     the brokerage stream (default wss://stream.connecttrade.com)
  --seconds N             how long each probe reads at most (default 10)
  --messages N            how many messages each probe reads at most (default 20)

exit status: 0 nothing diverges, 1 something diverges, 2 could not run
";

fn fail(message: &str) -> ExitCode {
    eprintln!("connect-trade-doctor: {message}");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut values: Vec<(String, String)> = Vec::new();
    let mut json = false;
    let mut brokerage_stream = false;
    let mut iter = args.into_iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "-h" | "--help" => {
                print!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            "--json" => json = true,
            "--brokerage-stream" => brokerage_stream = true,
            "--client-secret" | "--user-secret" => {
                return fail(&format!(
                    "{arg} is not accepted: secrets on the command line end up in shell \
                     history and process lists. Set CONNECT_TRADE_CLIENT_SECRET / \
                     CONNECT_TRADE_USER_SECRET instead."
                ));
            }
            "--base-url" | "--client-id" | "--user-id" | "--capture" | "--pages"
            | "--page-size" | "--spec" | "--market-data" | "--symbol" | "--market-data-url"
            | "--brokerage-url" | "--seconds" | "--messages" => match iter.next() {
                Some(value) => values.push((arg, value)),
                None => return fail(&format!("{arg} needs a value\n\n{USAGE}")),
            },
            other => return fail(&format!("unknown argument {other:?}\n\n{USAGE}")),
        }
    }
    let get = |name: &str| {
        values
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());

    let Some(client_id) = get("--client-id").or_else(|| env(PlatformCredentials::CLIENT_ID_VAR))
    else {
        return fail("no client id: set CONNECT_TRADE_CLIENT_ID (or pass --client-id)");
    };
    let Some(client_secret) = env(PlatformCredentials::CLIENT_SECRET_VAR) else {
        return fail("no client secret: set CONNECT_TRADE_CLIENT_SECRET");
    };
    let user = match (
        get("--user-id").or_else(|| env(UserCredentials::USER_ID_VAR)),
        env(UserCredentials::USER_SECRET_VAR),
    ) {
        (Some(id), Some(secret)) => Some(UserCredentials::new(id, secret)),
        (None, None) => None,
        (Some(_), None) => {
            return fail("a user id but no CONNECT_TRADE_USER_SECRET: set both or neither");
        }
        (None, Some(_)) => {
            return fail("CONNECT_TRADE_USER_SECRET but no user id: set CONNECT_TRADE_USER_ID");
        }
    };
    let base_url = get("--base-url")
        .or_else(|| env("CONNECT_TRADE_BASE_URL"))
        .unwrap_or_else(|| connect_trade::client::DEFAULT_BASE_URL.to_string());
    let mut options =
        DoctorOptions::new(base_url, PlatformCredentials::new(client_id, client_secret));
    options.user = user;
    options.brokerage_stream = brokerage_stream;
    options.capture_dir = get("--capture").map(PathBuf::from);
    options.market_data = get("--market-data");
    let number = |name: &str| -> Result<Option<u32>, String> {
        get(name)
            .map(|v| {
                v.parse::<u32>()
                    .map_err(|_| format!("{name} takes a number, not {v:?}"))
            })
            .transpose()
    };
    match (
        number("--pages"),
        number("--page-size"),
        number("--seconds"),
        number("--messages"),
    ) {
        (Ok(pages), Ok(size), Ok(seconds), Ok(messages)) => {
            if let Some(pages) = pages {
                options.order_pages = pages;
            }
            options.order_page_size = size;
            if let Some(seconds) = seconds {
                options.stream_duration = Duration::from_secs(u64::from(seconds));
            }
            if let Some(messages) = messages {
                options.stream_messages = messages;
            }
        }
        (Err(e), _, _, _) | (_, Err(e), _, _) | (_, _, Err(e), _) | (_, _, _, Err(e)) => {
            return fail(&e);
        }
    }
    if let Some(symbol) = get("--symbol") {
        options.market_data_symbol = symbol;
    }
    if let Some(url) = get("--market-data-url") {
        options.market_data_url = url;
    }
    if let Some(url) = get("--brokerage-url") {
        options.brokerage_url = url;
    }
    if let Some(path) = get("--spec") {
        match std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
        {
            Ok(spec) => options.spec = Some(spec),
            Err(e) => return fail(&format!("cannot read the spec {path}: {e}")),
        }
    }

    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}")),
    };
    let mut notices = std::io::stderr();
    match runtime.block_on(doctor::run(&options, &mut notices)) {
        Ok(report) => {
            if json {
                println!("{}", report.to_json());
            } else {
                print!("{}", report.to_human());
            }
            ExitCode::from(report.exit_code())
        }
        Err(error) => fail(&error.to_string()),
    }
}

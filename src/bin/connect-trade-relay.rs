//! `connect-trade-relay`: one relay instance (see `connect_trade::relay`). Run one per machine;
//! exactly one of them holds the Connect Trade brokerage session and publishes its updates to
//! NATS JetStream.
//!
//! ```text
//! CONNECT_TRADE_CLIENT_ID=… CONNECT_TRADE_CLIENT_SECRET=… \
//!     cargo run --features relay --bin connect-trade-relay -- --nats nats://127.0.0.1:4222
//! ```

use std::{process::ExitCode, time::Duration};

use connect_trade::{
    PlatformCredentials,
    relay::{Relay, RelayConfig, RelayEvent},
    stream::BROKERAGE_STREAM_URL,
};

const USAGE: &str = "\
connect-trade-relay: share one Connect Trade brokerage stream session through NATS JetStream

USAGE:
    connect-trade-relay --nats <URL> [OPTIONS]

OPTIONS:
    --nats <URL>          the NATS server (with JetStream), e.g. nats://127.0.0.1:4222
    --stream-url <URL>    the brokerage stream (default $CONNECT_TRADE_STREAM_URL, else
                          wss://stream.connecttrade.com)
    --instance <NAME>     this instance's name in the lease and logs (default relay-<pid>-…)
    --ttl <SECONDS>       the lease TTL (default 10; at least 1)
    --prefix <TOKEN>      the subject prefix (default connect-trade)
    -h, --help            this text

ENVIRONMENT:
    CONNECT_TRADE_CLIENT_ID, CONNECT_TRADE_CLIENT_SECRET   the platform credentials

Ctrl-C stops it, closing the session and releasing the lease at once.";

struct Args {
    nats: String,
    stream_url: Option<String>,
    instance: Option<String>,
    ttl: u64,
    prefix: Option<String>,
}

fn parse(mut argv: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut nats = None;
    let mut args = Args {
        nats: String::new(),
        stream_url: None,
        instance: None,
        ttl: 10,
        prefix: None,
    };
    while let Some(flag) = argv.next() {
        if flag == "-h" || flag == "--help" {
            return Ok(None);
        }
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (flag.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| argv.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match name.as_str() {
            "--nats" => nats = Some(value()?),
            "--stream-url" => args.stream_url = Some(value()?),
            "--instance" => args.instance = Some(value()?),
            "--prefix" => args.prefix = Some(value()?),
            "--ttl" => {
                let v = value()?;
                args.ttl =
                    v.parse::<u64>().ok().filter(|t| *t >= 1).ok_or_else(|| {
                        format!("--ttl: {v:?} is not a whole number of seconds ≥ 1")
                    })?;
            }
            other => return Err(format!("unknown option {other:?} (see --help)")),
        }
    }
    args.nats = nats.ok_or("--nats <URL> is required")?;
    Ok(Some(args))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("error: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let credentials = match PlatformCredentials::from_env() {
        Ok(Some(credentials)) => credentials,
        Ok(None) => {
            eprintln!(
                "error: set {} and {} to the platform credentials",
                PlatformCredentials::CLIENT_ID_VAR,
                PlatformCredentials::CLIENT_SECRET_VAR
            );
            return ExitCode::from(2);
        }
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    let stream_url = args
        .stream_url
        .or_else(|| std::env::var("CONNECT_TRADE_STREAM_URL").ok())
        .unwrap_or_else(|| BROKERAGE_STREAM_URL.to_string());
    let nats = match async_nats::connect(&args.nats).await {
        Ok(nats) => nats,
        Err(error) => {
            eprintln!("error: cannot connect to NATS at {}: {error}", args.nats);
            return ExitCode::FAILURE;
        }
    };
    let mut config = RelayConfig {
        ttl: Duration::from_secs(args.ttl),
        ..RelayConfig::default()
    };
    if let Some(prefix) = args.prefix {
        config.prefix = prefix;
    }
    let mut builder = Relay::builder(credentials, nats)
        .brokerage_url(stream_url.clone())
        .config(config);
    if let Some(instance) = args.instance {
        builder = builder.instance(instance);
    }
    let relay = builder.build();
    let me = relay.instance().to_string();
    println!(
        "{me}: relaying {stream_url} to NATS {} (lease TTL {} s)",
        args.nats, args.ttl
    );
    let mut events = relay.events();
    tokio::spawn({
        let me = me.clone();
        async move {
            while let Ok(event) = events.recv().await {
                let now = chrono::Utc::now().format("%H:%M:%S%.3f");
                match event {
                    RelayEvent::Standby { holder } => println!(
                        "{now} {me}: standing by; the holder is {}",
                        holder.as_deref().unwrap_or("unknown")
                    ),
                    RelayEvent::Acquired { fence } => {
                        println!("{now} {me}: took the lease (fencing token {fence})")
                    }
                    RelayEvent::Streaming { fence } => {
                        println!("{now} {me}: holder, streaming (fencing token {fence})")
                    }
                    RelayEvent::GapPublished(gap) => println!(
                        "{now} {me}: gap marker published ({:?}, {:?})",
                        gap.reason,
                        gap.duration()
                    ),
                    RelayEvent::SteppedDown { fence, reason } => {
                        println!("{now} {me}: stepped down (fencing token {fence}): {reason}")
                    }
                    RelayEvent::Released { fence } => {
                        println!("{now} {me}: released the lease (fencing token {fence})")
                    }
                    _ => {}
                }
            }
        }
    });
    let shutdown = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
        println!("stopping…");
    };
    match relay.run(shutdown).await {
        Ok(()) => {
            println!("{me}: stopped (a lease it held is released)");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

//! `connect-trade-sim`: a local Connect Trade (REST + both WebSockets) for manual use and for
//! SDKs in other languages.
//!
//! ```text
//! cargo run -p connect-trade-sim -- --port 8080
//! ```

use std::{process::ExitCode, time::Duration};

use connect_trade_sim::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, Simulator, Wire};

const USAGE: &str = "\
connect-trade-sim: a local Connect Trade (REST, brokerage stream, market data stream)

USAGE:
    connect-trade-sim [OPTIONS]

OPTIONS:
    --port <PORT>               REST port (default 8080; 0 = any free port)
    --brokerage-port <PORT>     brokerage stream port (default: REST port + 1, or free)
    --market-data-port <PORT>   market data stream port (default: REST port + 2, or free)
    --client-id <ID>            platform client id accepted (default sim-client-id)
    --client-secret <SECRET>    platform client secret accepted (default sim-client-secret)
    --seed <N>                  price seed (default 42)
    --speed <X>                 simulated seconds per real second (default 1)
    --wire <NAME>[,<NAME>]      wire variants to switch on (repeatable; default none):
                                orders-envelope, orders-minimal, created-204, token-plain,
                                no-welcome, no-authenticated, string-sequence,
                                error-message-only, extra-field, missing-field
    -h, --help                  this text

Stop with Ctrl-C.";

struct Args {
    port: u16,
    brokerage_port: Option<u16>,
    market_data_port: Option<u16>,
    client_id: String,
    client_secret: String,
    seed: u64,
    speed: f64,
    wire: Vec<Wire>,
}

fn parse(mut argv: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut args = Args {
        port: 8080,
        brokerage_port: None,
        market_data_port: None,
        client_id: DEFAULT_CLIENT_ID.to_string(),
        client_secret: DEFAULT_CLIENT_SECRET.to_string(),
        seed: 42,
        speed: 1.0,
        wire: Vec::new(),
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
        let number = |v: String, what: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{what}: {v:?} is not a number"))
        };
        let port = |v: String, what: &str| {
            v.parse::<u16>()
                .map_err(|_| format!("{what}: {v:?} is not a port"))
        };
        match name.as_str() {
            "--port" => args.port = port(value()?, "--port")?,
            "--brokerage-port" => args.brokerage_port = Some(port(value()?, "--brokerage-port")?),
            "--market-data-port" => {
                args.market_data_port = Some(port(value()?, "--market-data-port")?)
            }
            "--client-id" => args.client_id = value()?,
            "--client-secret" => args.client_secret = value()?,
            "--seed" => args.seed = number(value()?, "--seed")?,
            "--speed" => {
                let v = value()?;
                args.speed = v
                    .parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s > 0.0)
                    .ok_or_else(|| format!("--speed: {v:?} is not a positive number"))?;
            }
            "--wire" => {
                for name in value()?.split(',').filter(|n| !n.trim().is_empty()) {
                    let wire = name.parse::<Wire>().map_err(|e| format!("--wire: {e}"))?;
                    if !args.wire.contains(&wire) {
                        args.wire.push(wire);
                    }
                }
            }
            other => return Err(format!("unknown option {other:?} (see --help)")),
        }
    }
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
    let next = |offset: u16| {
        if args.port == 0 {
            0
        } else {
            args.port.saturating_add(offset)
        }
    };
    let mut builder = Simulator::builder();
    for wire in &args.wire {
        builder = builder.wire(*wire);
    }
    let sim = builder
        .credentials(args.client_id.clone(), args.client_secret.clone())
        .seed(args.seed)
        .speed(args.speed)
        .tick(Duration::from_secs(1))
        .rest_port(args.port)
        .brokerage_port(args.brokerage_port.unwrap_or_else(|| next(1)))
        .market_data_port(args.market_data_port.unwrap_or_else(|| next(2)))
        .start()
        .await;
    let sim = match sim {
        Ok(sim) => sim,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "Connect Trade simulator running (seed {}, speed {}x)",
        args.seed, args.speed
    );
    println!();
    println!("  REST API           {}", sim.rest_url());
    println!("  brokerage stream   {}", sim.brokerage_stream_url());
    println!("  market data stream {}", sim.market_data_url());
    println!();
    println!("  client-id          {}", args.client_id);
    // Printed on purpose: these are the simulator's own local credentials.
    println!("  client-secret      {}", args.client_secret);
    println!();
    println!("  symbols            {}", sim.symbols().join(" "));
    let wire = sim.wire();
    if !wire.is_empty() {
        let names: Vec<&str> = wire.iter().map(|w| w.name()).collect();
        println!("  wire variants      {}", names.join(" "));
    }
    println!();
    println!("  export CONNECT_TRADE_BASE_URL={}", sim.rest_url());
    println!("  export CONNECT_TRADE_CLIENT_ID={}", args.client_id);
    println!(
        "  export CONNECT_TRADE_CLIENT_SECRET={}",
        args.client_secret
    );
    println!();
    println!("Ctrl-C to stop.");
    if let Err(error) = tokio::signal::ctrl_c().await {
        eprintln!("error: cannot wait for Ctrl-C: {error}");
    }
    println!("stopping…");
    sim.shutdown().await;
    ExitCode::SUCCESS
}

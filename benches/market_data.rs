//! Decode-and-deliver throughput of quote messages through `MarketDataStream`, against a bare
//! tokio-tungstenite + serde_json loop reading the same frames from the same loopback server.
//!
//! Run by hand: `cargo bench --bench market_data`. Each iteration asks the server (with a
//! subscribe frame) for a batch of quotes and waits until all of them are decoded and
//! delivered. The stream runs with `Overflow::Backpressure`, so nothing is dropped.
//!
//! The bare loop decodes with serde's derive of `MarketDataMessage`, as a hand-written client
//! would; the stream decodes data messages straight into their type once their `type` is read,
//! which is faster. So the ratio loop also alternates a third loop, the bare one with the
//! stream's decoder (`ServerMessage::decode`), and prints the stream against it: what delivery
//! through the stream (the connection task, the queue, the hand-over) costs on its own.
//!
//! Profiled 2026-12-01: with a `String` per symbol, the hundreds of quotes a batch hands over at
//! once made glibc's allocator leave its per-thread cache; quotes now own no allocation
//! (`Symbol` is inline).

use std::{
    hint::black_box,
    time::{Duration, Instant},
};

use connect_trade::stream::{
    MarketDataEvent, MarketDataStream, Overflow, StreamConfig,
    protocol::{MarketDataMessage, MarketDataRequest, ServerMessage, Subscription},
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures::{SinkExt, StreamExt};
use tokio::{net::TcpListener, runtime::Runtime};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

const BATCH: usize = 10_000;

/// A quote as the server sends it.
fn quote_frame(i: usize) -> Utf8Bytes {
    let cents = 18_700 + (i % 500);
    serde_json::json!({
        "type": "quote",
        "symbol": "AAPL",
        "bid": format!("{}.{:02}", cents / 100, cents % 100),
        "bid_size": "300",
        "ask": format!("{}.{:02}", (cents + 1) / 100, (cents + 1) % 100),
        "ask_size": "100",
        "timestamp": "2025-01-02T15:04:05.123456Z"
    })
    .to_string()
    .into()
}

/// A loopback server: handshake, then a batch of quotes for every subscribe frame.
async fn start_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let frames: Vec<Utf8Bytes> = (0..BATCH).map(quote_frame).collect();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tcp.set_nodelay(true).unwrap();
            let frames = frames.clone();
            tokio::spawn(async move {
                let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
                ws.send(Message::text(r#"{"type":"welcome"}"#))
                    .await
                    .unwrap();
                ws.next().await; // authenticate
                ws.send(Message::text(r#"{"type":"authenticated"}"#))
                    .await
                    .unwrap();
                while let Some(Ok(message)) = ws.next().await {
                    if let Message::Text(text) = message
                        && text.as_str().contains("\"subscribe\"")
                    {
                        for frame in &frames {
                            ws.feed(Message::Text(frame.clone())).await.unwrap();
                        }
                        ws.flush().await.unwrap();
                    }
                }
            });
        }
    });
    url
}

type Bare =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The bare loop's own decoder: serde_json through the derive of `MarketDataMessage`.
fn derive_decode(text: &str) -> serde_json::Result<MarketDataMessage> {
    serde_json::from_str(text)
}

/// Reads one batch with the bare loop: tungstenite frames decoded by `decode`.
async fn bare_batch(
    ws: &mut Bare,
    subscribe: &str,
    decode: impl Fn(&str) -> serde_json::Result<MarketDataMessage>,
) {
    ws.send(Message::text(subscribe.to_string())).await.unwrap();
    let mut quotes = 0;
    while quotes < BATCH {
        if let Some(Ok(Message::Text(text))) = ws.next().await {
            let message = decode(text.as_str()).unwrap();
            if let MarketDataMessage::Quote(quote) = message {
                black_box(quote);
                quotes += 1;
            }
        }
    }
}

/// Reads one batch through `MarketDataStream`.
async fn stream_batch(stream: &mut MarketDataStream) {
    stream.subscribe(Subscription::quotes(["AAPL"])).unwrap();
    let mut quotes = 0;
    while quotes < BATCH {
        if let Some(MarketDataEvent::Quote(quote)) = stream.next().await {
            black_box(quote);
            quotes += 1;
        }
    }
}

fn bench_on(c: &mut Criterion, flavour: &str, runtime: Runtime) {
    let url = runtime.block_on(start_server());
    let subscribe = serde_json::to_string(&MarketDataRequest::Subscribe(Subscription::quotes([
        "AAPL",
    ])))
    .unwrap();

    let mut group = c.benchmark_group(format!("quotes_{flavour}"));
    group.throughput(Throughput::Elements(BATCH as u64));

    // Baseline: a bare tokio-tungstenite client decoding each frame with serde_json. Both
    // consumers run as tasks of the runtime (not on the `block_on` thread).
    let mut bare = Some(runtime.block_on(async {
        let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .unwrap();
        ws.next().await; // welcome
        ws.send(Message::text(r#"{"action":"authenticate","token":"t"}"#))
            .await
            .unwrap();
        ws.next().await; // authenticated
        ws
    }));
    group.bench_function("bare_tungstenite_serde_json", |b| {
        b.iter_custom(|iters| {
            let mut ws = bare.take().unwrap();
            let subscribe = subscribe.clone();
            let (ws, elapsed) = runtime
                .block_on(runtime.spawn(async move {
                    let started = Instant::now();
                    for _ in 0..iters {
                        bare_batch(&mut ws, &subscribe, derive_decode).await;
                    }
                    (ws, started.elapsed())
                }))
                .unwrap();
            bare = Some(ws);
            elapsed
        })
    });

    let mut stream = Some(runtime.block_on(async {
        MarketDataStream::with_token("t")
            .url(url.as_str())
            .config(StreamConfig::default().overflow(Overflow::Backpressure))
            .connect()
            .await
            .unwrap()
    }));
    group.bench_function("market_data_stream", |b| {
        b.iter_custom(|iters| {
            let mut md = stream.take().unwrap();
            let (md, elapsed) = runtime
                .block_on(runtime.spawn(async move {
                    let started = Instant::now();
                    for _ in 0..iters {
                        stream_batch(&mut md).await;
                    }
                    (md, started.elapsed())
                }))
                .unwrap();
            stream = Some(md);
            elapsed
        })
    });
    group.finish();

    // The ratio, measured robustly on a shared machine: alternate the loops batch by batch (so
    // all see the same background load) and take the median of the per-round ratios.
    let (mut ws, mut md) = (bare.take().unwrap(), stream.take().unwrap());
    let (ratios, delivery) = runtime
        .block_on(runtime.spawn(async move {
            let (mut ratios, mut delivery) = (Vec::new(), Vec::new());
            for _ in 0..40 {
                let started = Instant::now();
                bare_batch(&mut ws, &subscribe, derive_decode).await;
                let bare_time = started.elapsed().as_secs_f64();
                let started = Instant::now();
                stream_batch(&mut md).await;
                let stream_time = started.elapsed().as_secs_f64();
                let started = Instant::now();
                bare_batch(&mut ws, &subscribe, MarketDataMessage::decode).await;
                let same_decoder_time = started.elapsed().as_secs_f64();
                ratios.push(bare_time / stream_time);
                delivery.push(same_decoder_time / stream_time);
            }
            (ratios, delivery)
        }))
        .unwrap();
    report(flavour, "bare", ratios);
    report(flavour, "bare with the stream's decoder", delivery);
}

/// Prints the median and quartiles of per-round throughput ratios.
fn report(flavour: &str, against: &str, mut ratios: Vec<f64>) {
    ratios.sort_by(f64::total_cmp);
    let n = ratios.len();
    println!(
        "quotes_{flavour}: MarketDataStream / {against}, median of {n} alternating rounds: \
         {:.3} (quartiles {:.3} .. {:.3})",
        ratios[n / 2],
        ratios[n / 4],
        ratios[n * 3 / 4],
    );
}

fn bench(c: &mut Criterion) {
    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    bench_on(c, "multi_thread_2", multi);
    let single = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    bench_on(c, "current_thread", single);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = bench
}
criterion_main!(benches);

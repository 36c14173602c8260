//! Decode-and-deliver throughput of quote messages through `MarketDataStream`, against a bare
//! tokio-tungstenite + serde_json loop reading the same frames from the same loopback server.
//!
//! Run by hand: `cargo bench --bench market_data`. Each iteration asks the server (with a
//! subscribe frame) for a batch of quotes and waits until all of them are decoded and
//! delivered. The stream runs with `Overflow::Backpressure`, so nothing is dropped.

use std::{
    hint::black_box,
    time::{Duration, Instant},
};

use connect_trade::stream::{
    MarketDataEvent, MarketDataStream, Overflow, StreamConfig,
    protocol::{MarketDataMessage, Subscription},
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures::{SinkExt, StreamExt};
use tokio::net::TcpListener;
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
                    if let Message::Text(text) = message {
                        if text.as_str().contains("\"subscribe\"") {
                            for frame in &frames {
                                ws.feed(Message::Text(frame.clone())).await.unwrap();
                            }
                            ws.flush().await.unwrap();
                        }
                    }
                }
            });
        }
    });
    url
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let url = runtime.block_on(start_server());
    let subscribe = serde_json::to_string(
        &connect_trade::stream::protocol::MarketDataRequest::Subscribe(Subscription::quotes([
            "AAPL",
        ])),
    )
    .unwrap();

    let mut group = c.benchmark_group("quotes");
    group.throughput(Throughput::Elements(BATCH as u64));

    // Baseline: a bare tokio-tungstenite client decoding each frame with serde_json.
    let mut bare = runtime.block_on(async {
        let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .unwrap();
        ws.next().await; // welcome
        ws.send(Message::text(r#"{"action":"authenticate","token":"t"}"#))
            .await
            .unwrap();
        ws.next().await; // authenticated
        ws
    });
    group.bench_function("bare_tungstenite_serde_json", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let started = Instant::now();
                for _ in 0..iters {
                    bare.send(Message::text(subscribe.clone())).await.unwrap();
                    let mut quotes = 0;
                    while quotes < BATCH {
                        if let Some(Ok(Message::Text(text))) = bare.next().await {
                            let message: MarketDataMessage =
                                serde_json::from_str(text.as_str()).unwrap();
                            if let MarketDataMessage::Quote(quote) = message {
                                black_box(quote);
                                quotes += 1;
                            }
                        }
                    }
                }
                started.elapsed()
            })
        })
    });

    let mut stream = runtime.block_on(async {
        MarketDataStream::with_token("t")
            .url(url.as_str())
            .config(
                StreamConfig::default()
                    .overflow(Overflow::Backpressure)
                    .buffer(1024),
            )
            .connect()
            .await
            .unwrap()
    });
    group.bench_function("market_data_stream", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let started = Instant::now();
                for _ in 0..iters {
                    stream.subscribe(Subscription::quotes(["AAPL"])).unwrap();
                    let mut quotes = 0;
                    while quotes < BATCH {
                        if let Some(MarketDataEvent::Quote(quote)) = stream.next().await {
                            black_box(quote);
                            quotes += 1;
                        }
                    }
                }
                started.elapsed()
            })
        })
    });
    group.finish();
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

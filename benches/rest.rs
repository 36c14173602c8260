//! REST benchmarks (run by hand: `cargo bench --bench rest`).
//!
//! 1. Decoding a 500-order `GET /orders` page through the generated types vs a plain serde
//!    struct of the same shape decoding the same bytes.
//! 2. A whole `list_orders` call through the SDK (hooks, credentials, retries, tracing) vs the
//!    same request made with bare reqwest + serde_json, against the same loopback server.

#[path = "../tests/support/scripted.rs"]
mod scripted;

use std::time::Duration;

use chrono::{DateTime, Utc};
use connect_trade::{ConnectTrade, UserCredentials, paging::OrderPage};
use criterion::{Criterion, criterion_group, criterion_main};
use rust_decimal::Decimal;
use scripted::{Reply, Scripted};
use serde::Deserialize;

/// The same order, as a hand-written serde struct with the same field types.
#[derive(Deserialize)]
#[allow(dead_code)]
struct PlainOrder {
    order_id: String,
    cl_order_id: Option<String>,
    account_id: String,
    broker: Option<String>,
    symbol: Option<String>,
    instrument: Option<String>,
    side: Option<String>,
    order_type: Option<String>,
    order_tif: Option<String>,
    order_qty: Option<Decimal>,
    order_notional: Option<Decimal>,
    order_limit_price: Option<Decimal>,
    stop_price: Option<Decimal>,
    status: String,
    broker_status: Option<String>,
    #[serde(default)]
    fills: Vec<PlainFill>,
    filled_qty: Option<Decimal>,
    avg_fill_price: Option<Decimal>,
    created_at: Option<DateTime<Utc>>,
    updated_at: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct PlainFill {
    fill_id: String,
    time: Option<DateTime<Utc>>,
    quantity: Decimal,
    price: Decimal,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct PlainPage {
    orders: Vec<PlainOrder>,
    next_cursor: Option<String>,
    prev_cursor: Option<String>,
}

fn page_json(n: usize) -> String {
    let orders: Vec<_> = (0..n)
        .map(|i| {
            serde_json::json!({
                "order_id": format!("ord-{i}"), "cl_order_id": format!("cl-{i}"),
                "account_id": "acc-1", "broker": "ALPACA", "symbol": "AAPL", "instrument": "STK",
                "side": "BUY", "order_type": "LMT", "order_tif": "DAY", "order_qty": "100",
                "order_limit_price": format!("{}.{:02}", 150 + i % 50, i % 100),
                "status": "partially_filled", "broker_status": "partially_filled",
                "filled_qty": "40", "avg_fill_price": "150.123456789",
                "fills": [
                    {"fill_id": format!("f{i}a"), "time": "2025-10-01T14:30:00Z", "quantity": "15", "price": "150.12"},
                    {"fill_id": format!("f{i}b"), "time": "2025-10-01T14:30:01Z", "quantity": "25", "price": "150.125"}
                ],
                "created_at": "2025-10-01T14:29:59Z", "updated_at": "2025-10-01T14:30:01Z"
            })
        })
        .collect();
    serde_json::json!({"orders": orders, "next_cursor": null, "prev_cursor": null}).to_string()
}

fn decode(c: &mut Criterion) {
    let body = page_json(500);
    let mut group = c.benchmark_group("decode_500_orders");
    group.bench_function("generated_types", |b| {
        b.iter(|| {
            let page: OrderPage = serde_json::from_str(std::hint::black_box(&body)).unwrap();
            page.orders.len()
        })
    });
    group.bench_function("plain_serde_struct", |b| {
        b.iter(|| {
            let page: PlainPage = serde_json::from_str(std::hint::black_box(&body)).unwrap();
            page.orders.len()
        })
    });
    group.finish();
}

fn round_trip(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let body = page_json(500);
    let server = runtime.block_on(Scripted::start_unrecorded(vec![Reply::Json(
        200,
        vec![],
        body,
    )]));
    let sdk = ConnectTrade::builder()
        .client_id("bench")
        .client_secret("bench-secret")
        .base_url(&server.base_url)
        .build()
        .unwrap()
        .for_user(UserCredentials::new("u", "s"))
        .unwrap();
    let bare = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let url = format!("{}/orders", server.base_url);

    let mut group = c.benchmark_group("list_orders_500_loopback");
    group.bench_function("sdk", |b| {
        b.to_async(&runtime).iter(|| async {
            let page = sdk.list_orders().limit(500u32).send().await.unwrap();
            page.orders.len()
        })
    });
    group.bench_function("bare_reqwest_serde_json", |b| {
        b.to_async(&runtime).iter(|| async {
            let response = bare
                .get(&url)
                .query(&[("limit", "500")])
                .header("client-id", "bench")
                .header("client-secret", "bench-secret")
                .header("user-id", "u")
                .header("user-secret", "s")
                .header("accept", "application/json")
                .send()
                .await
                .unwrap();
            let bytes = response.bytes().await.unwrap();
            let page: OrderPage = serde_json::from_slice(&bytes).unwrap();
            page.orders.len()
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = decode, round_trip
}
criterion_main!(benches);

//! Updates applied per second to a platform-wide `Portfolio` holding 100,000 orders, against
//! the floor: a bare `HashMap` insert of the same decoded updates. Also prints the memory of
//! each (counted by a global allocator) before the timings.
//!
//! Run by hand: `cargo bench --bench portfolio`.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    collections::HashMap,
    hint::black_box,
    sync::{
        Arc,
        atomic::{AtomicIsize, Ordering},
    },
};

use connect_trade::{
    portfolio::{Portfolio, Update},
    rest::types::Order,
    stream::protocol::{BrokerageMessage, ServerMessage, UpdateMeta},
};
use criterion::{BatchSize, Criterion, criterion_group};
use serde_json::json;

/// Counts live heap bytes.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

const USERS: usize = 1_000;
const ORDERS: usize = 100_000;
const POSITIONS: usize = 10_000;

/// A realistic order message as the stream sends it (two fills, 9-decimal prices).
fn order_message(i: usize, sequence: u64, status: &str) -> String {
    json!({
        "type": "order", "user_id": format!("user-{}", i % USERS),
        "account_id": format!("acc-{}", i % USERS), "sequence": sequence,
        "timestamp": "2026-11-25T10:00:00Z",
        "data": {
            "order_id": format!("ord-{i:08}"), "cl_order_id": format!("cl-{i:08}"),
            "account_id": format!("acc-{}", i % USERS), "broker": "ALPACA",
            "symbol": "AAPL", "instrument": "STK", "side": "BUY", "order_type": "LMT",
            "order_tif": "DAY", "order_qty": "100", "order_limit_price": "187.123456789",
            "status": status, "broker_status": "partially_filled", "filled_qty": "2",
            "avg_fill_price": "187.1", "created_at": "2026-11-25T09:30:00Z",
            "updated_at": "2026-11-25T10:00:00Z",
            "fills": [
                {"fill_id": format!("f-{i}-1"), "quantity": "1", "price": "187.000000001",
                 "time": "2026-11-25T09:31:00Z"},
                {"fill_id": format!("f-{i}-2"), "quantity": "1", "price": "187.199999999",
                 "time": "2026-11-25T09:32:00Z"}
            ],
            "legs": []
        }
    })
    .to_string()
}

fn position_message(i: usize, sequence: u64) -> String {
    json!({
        "type": "position", "user_id": format!("user-{}", i % USERS),
        "account_id": format!("acc-{}", i % USERS), "sequence": sequence,
        "data": {"account_id": format!("acc-{}", i % USERS), "symbol": format!("SYM{i}"),
                 "quantity": "10", "last_price": "12.5", "unrealized_pl": "1.25",
                 "daily_pl": "0.5", "total_pl": "3"}
    })
    .to_string()
}

fn decode(text: &str) -> Update {
    Update::from_message(BrokerageMessage::decode(text).expect("message")).expect("update")
}

type Floor = HashMap<(String, String, String), Arc<Order>>;

fn floor_insert(map: &mut Floor, update: &Update) {
    if let Update::Order { meta, order } = update {
        map.insert(
            (
                meta.user_id.clone(),
                meta.account_id.clone(),
                order.order_id.clone(),
            ),
            order.clone(),
        );
    }
}

fn full_portfolio() -> Portfolio {
    portfolio_of(ORDERS)
}

fn portfolio_of(orders: usize) -> Portfolio {
    let portfolio = Portfolio::detached();
    for i in 0..orders {
        portfolio.apply(decode(&order_message(i, i as u64, "working")));
    }
    for i in 0..POSITIONS {
        portfolio.apply(decode(&position_message(i, (ORDERS + i) as u64)));
    }
    portfolio
}

fn report_memory() {
    let base = live();
    let updates: Vec<Update> = (0..ORDERS)
        .map(|i| decode(&order_message(i, i as u64, "working")))
        .collect();
    let decoded = live() - base;

    let base = live();
    let portfolio = full_portfolio();
    let portfolio_bytes = live() - base;

    let base = live();
    let orders_only = Portfolio::detached();
    for i in 0..ORDERS {
        orders_only.apply(decode(&order_message(i, i as u64, "working")));
    }
    let orders_only_bytes = live() - base;

    let base = live();
    let mut floor = Floor::new();
    for update in &updates {
        floor_insert(&mut floor, update);
    }
    drop(updates);
    let floor_bytes = live() - base + decoded; // the orders themselves now live in the map

    eprintln!("--- memory ({ORDERS} orders over {USERS} users, {POSITIONS} positions) ---");
    eprintln!(
        "decoded orders alone (Vec<Update>):   {:>8.1} MiB",
        mib(decoded)
    );
    eprintln!(
        "HashMap floor, orders:                {:>8.1} MiB",
        mib(floor_bytes)
    );
    eprintln!(
        "Portfolio, orders only:               {:>8.1} MiB",
        mib(orders_only_bytes)
    );
    eprintln!(
        "Portfolio, orders + positions:        {:>8.1} MiB ({:.0} B/order incl. data)",
        mib(portfolio_bytes),
        orders_only_bytes as f64 / ORDERS as f64
    );
    drop(portfolio);
}

fn mib(bytes: isize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn bench(c: &mut Criterion) {
    report_memory();
    // The updates of the timed loops: existing orders changing status, with a fresh sequence
    // each (so none is stale), decoded beforehand: the comparison is apply vs insert.
    let templates = |held: usize| -> Vec<Update> {
        (0..4096)
            .map(|k| {
                let i = (k * 7919) % held;
                let status = if k % 2 == 0 {
                    "partially_filled"
                } else {
                    "working"
                };
                decode(&order_message(i, 0, status))
            })
            .collect()
    };
    let with_sequence = |templates: &[Update], k: usize, sequence: u64| -> Update {
        let mut update = templates[k % templates.len()].clone();
        if let Update::Order { meta, .. } = &mut update {
            *meta = UpdateMeta {
                sequence: Some(sequence),
                ..meta.clone()
            };
        }
        update
    };

    let mut group = c.benchmark_group("apply one order update");
    group.throughput(criterion::Throughput::Elements(1));
    for held in [10_000, ORDERS] {
        let templates = templates(held);
        let portfolio = portfolio_of(held);
        let mut sequence = 1_000_000u64;
        let mut k = 0;
        group.bench_function(format!("Portfolio::apply, {held} orders held"), |b| {
            b.iter_batched(
                || {
                    sequence += 1;
                    k += 1;
                    with_sequence(&templates, k, sequence)
                },
                |update| black_box(portfolio.apply(update)),
                BatchSize::SmallInput,
            )
        });
        let mut floor = Floor::new();
        for i in 0..held {
            floor_insert(&mut floor, &decode(&order_message(i, i as u64, "working")));
        }
        let mut k = 0;
        group.bench_function(
            format!("HashMap::insert (floor), {held} orders held"),
            |b| {
                b.iter_batched(
                    || {
                        k += 1;
                        with_sequence(&templates, k, k as u64)
                    },
                    |update| floor_insert(&mut floor, black_box(&update)),
                    BatchSize::SmallInput,
                )
            },
        );
    }
    {
        let text = order_message(42, 1, "working");
        group.bench_function("decode one stream message (context)", |b| {
            b.iter(|| black_box(decode(black_box(&text))))
        });
    }
    group.finish();

    let portfolio = full_portfolio();
    let mut group = c.benchmark_group("read, 100k orders held");
    group.bench_function("snapshot of one user (100 orders, 10 positions)", |b| {
        b.iter(|| black_box(portfolio.user(black_box("user-7"))))
    });
    group.bench_function("count every order under one read", |b| {
        b.iter(|| {
            black_box(portfolio.read(|view| {
                view.users()
                    .map(|(_, book)| book.order_count())
                    .sum::<usize>()
            }))
        })
    });
    group.finish();
}

criterion_group!(benches, bench);

fn main() {
    benches();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
}

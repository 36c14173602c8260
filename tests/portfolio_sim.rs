//! The portfolio mirror and safe order submission against the simulator: many users, partial
//! fills, a brokerage stream dropped again and again, injected REST faults.

mod support_portfolio;

use std::time::Duration;

use chrono::Utc;
use connect_trade::{
    ConnectTrade, UserClient,
    client::RetryPolicy,
    codes::{BrokerCode, OrderSide, OrderStatus, OrderStatusFilter},
    orders::OrderBuilder,
    portfolio::{Change, OrderScope, Portfolio, fetch_orders, fetch_user_book},
    rest::types::PlaceOrderRequest,
    stream::{Backoff, BrokerageStream, Overflow, StreamConfig, protocol::Topic},
    workflows,
};
use connect_trade_sim::{PaperUser, RestFault, Simulator};
use rust_decimal::Decimal;
use support_portfolio::{book_differences, simulator};

/// Long enough for anything here; a hang fails instead of blocking the suite.
const PATIENCE: Duration = Duration::from_secs(30);

fn dec(text: &str) -> Decimal {
    text.parse().unwrap()
}

fn platform(sim: &Simulator) -> ConnectTrade {
    ConnectTrade::builder()
        .credentials(sim.credentials())
        .base_url(sim.rest_url())
        .retry_policy(fast_retries())
        .build()
        .unwrap()
}

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        max_retries: 8,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(10),
        max_retry_after: Duration::from_secs(1),
    }
}

fn market_buy(user: &PaperUser, cl: &str, symbol: &str, qty: &str) -> PlaceOrderRequest {
    OrderBuilder::equity(symbol, OrderSide::Buy)
        .account(&user.account_id, BrokerCode::Alpaca)
        .cl_order_id(cl)
        .quantity(qty)
        .market()
        .build()
        .expect("a valid market order")
}

/// Waits until the mirror of every user equals a fresh REST read, re-checking on each change.
async fn converged(portfolio: &Portfolio, users: &[UserClient]) {
    let mut changed = portfolio.subscribe();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let mut all_equal = true;
        for user in users {
            let fresh = fetch_user_book(user, &OrderScope::default()).await.unwrap();
            if !book_differences(portfolio.user(user.user_id()).as_ref(), &fresh).is_empty() {
                all_equal = false;
                break;
            }
        }
        if all_equal {
            return;
        }
        // Nothing to do but wait for the mirror to move (stream updates, a reconciliation).
        match tokio::time::timeout_at(deadline, changed.changed()).await {
            Ok(Ok(())) => {}
            _ => {
                for user in users {
                    let fresh = fetch_user_book(user, &OrderScope::default()).await.unwrap();
                    let differences =
                        book_differences(portfolio.user(user.user_id()).as_ref(), &fresh);
                    assert!(
                        differences.is_empty(),
                        "mirror of {} never converged to the REST state: {} differences, first: {:#?}",
                        user.user_id(),
                        differences.len(),
                        &differences[..differences.len().min(8)]
                    );
                }
                return;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_orders_with_partial_fills_and_ten_stream_drops_end_equal_to_rest() {
    let sim = simulator().await;
    let platform = platform(&sim);
    let symbols = ["F", "BAC", "AMD", "IBM"];
    let mut paper = Vec::new();
    for i in 0..4 {
        paper.push(
            sim.paper_user(&platform, &format!("user-{i}"), BrokerCode::Alpaca)
                .await
                .unwrap(),
        );
    }
    let clients: Vec<UserClient> = paper.iter().map(|p| p.client.clone()).collect();
    let portfolio = Portfolio::builder()
        .users(clients.clone())
        .load_retry(fast_retries())
        .build();
    let mut changes = portfolio.changes();

    let stream = BrokerageStream::for_platform(&platform)
        .url(sim.brokerage_stream_url())
        .config(
            StreamConfig::default()
                .backoff(Backoff {
                    initial: Duration::from_millis(5),
                    max: Duration::from_millis(50),
                    reset_after: Duration::from_millis(10),
                })
                .overflow(Overflow::Backpressure),
        )
        .subscribe([Topic::Orders, Topic::Positions, Topic::Balances])
        .connect()
        .await
        .unwrap();
    let follower = tokio::spawn({
        let p = portfolio.clone();
        async move { p.follow(stream).await }
    });

    // The first session loads every user.
    let mut loaded = 0;
    while loaded < paper.len() {
        match tokio::time::timeout(PATIENCE, changes.recv()).await {
            Ok(Ok(Change::Loaded { .. })) => loaded += 1,
            Ok(Ok(Change::LoadFailed { error, .. })) => panic!("load failed: {error}"),
            Ok(_) => {}
            Err(_) => panic!("the first load did not come"),
        }
    }

    let mut drops = 0;
    for i in 0..1000 {
        let user = &paper[i % paper.len()];
        let request = market_buy(user, &format!("cl-{i:04}"), symbols[(i / 4) % 4], "5");
        connect_trade::orders::place(&user.client, request)
            .await
            .unwrap();
        if i % 10 == 9 {
            sim.tick(); // fills 3 of 5, then the rest: partial fills all along
        }
        if i % 100 == 50 {
            sim.faults().drop_streams();
            drops += 1;
        }
    }
    for _ in 0..5 {
        sim.tick();
    }
    assert_eq!(drops, 10);

    converged(&portfolio, &clients).await;

    // The mirror's view of the day, cross-checked with the workflows.
    let mut orders = 0;
    let mut partial = 0;
    for user in &clients {
        let book = portfolio.user(user.user_id()).unwrap();
        orders += book.order_count();
        partial += book
            .orders()
            .filter(|o| o.status == OrderStatus::PartiallyFilled || o.fills.len() > 1)
            .count();
        let rest_partial = fetch_orders(
            user,
            OrderStatusFilter::PartiallyFilled,
            Utc::now()
                .date_naive()
                .and_hms_opt(0, 0, 0)
                .unwrap()
                .and_utc(),
        )
        .await
        .unwrap();
        assert_eq!(
            workflows::partially_filled_orders(&rest_partial)
                .unwrap()
                .len(),
            book.partially_filled_orders().unwrap().len()
        );
        // P&L is a mark (see `unmarked_position`): the same positions report it, the value
        // may have moved since the last fill.
        let rest_pl = workflows::total_unrealized_pl(
            &user.list_positions().send().await.unwrap().into_inner(),
        )
        .unwrap();
        let mirror_pl = book.unrealized_pl().unwrap();
        assert_eq!(
            (mirror_pl.reported, mirror_pl.missing),
            (rest_pl.reported, rest_pl.missing)
        );
    }
    assert_eq!(orders, 1000, "one order per cl_order_id, all mirrored");
    for user in &clients {
        let status = portfolio.status(user.user_id()).unwrap();
        // The first load, then one reconciliation per reconnect (fewer if two overlapped).
        assert!(status.loads >= 3, "{}: {status:?}", user.user_id());
        assert!(!status.stale && status.loaded);
        eprintln!("{}: {} loads", user.user_id(), status.loads);
    }
    assert!(partial > 0, "the run exercised partial fills");

    drop(follower);
}

#[tokio::test]
async fn placement_under_injected_rest_faults_makes_one_order_per_cl_order_id() {
    let sim = simulator().await;
    let platform = platform(&sim);
    let user = sim
        .paper_user(&platform, "faulty", BrokerCode::Alpaca)
        .await
        .unwrap();
    // One call in three fails (5xx), whatever it is: placements and look-ups alike.
    sim.faults().fail_share(0.33, RestFault::status(503), 11);
    let mut placed = Vec::new();
    for i in 0..60 {
        let status = if i % 2 == 0 { 500 } else { 503 };
        sim.faults().fail_next(1, RestFault::status(status));
        let request = market_buy(&user, &format!("f-{i}"), "AAPL", "1");
        match connect_trade::orders::place(&user.client, request).await {
            Ok(order) => placed.push(order),
            Err(e) => assert!(e.may_have_reached_server(), "{e}"),
        }
    }
    sim.faults().clear_rest();
    let day = fetch_orders(
        &user.client,
        OrderStatusFilter::All,
        Utc::now()
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc(),
    )
    .await
    .unwrap();
    for i in 0..60 {
        let cl = format!("f-{i}");
        let n = day
            .iter()
            .filter(|o| o.cl_order_id.as_deref() == Some(&cl))
            .count();
        assert!(n <= 1, "{cl} placed {n} times");
    }
    for order in &placed {
        assert!(day.iter().any(|o| o.order_id == order.order_id));
    }
    assert!(
        placed.len() >= 50,
        "most placements succeed: {}",
        placed.len()
    );
}

#[tokio::test]
async fn the_workflows_on_the_simulators_state() {
    let sim = simulator().await;
    let platform = platform(&sim);
    let user = sim
        .paper_user(&platform, "cook", BrokerCode::Alpaca)
        .await
        .unwrap();
    // 5 shares against 3 of liquidity per tick: each order fills 3 now, 2 on the next tick.
    for i in 0..3 {
        let request = market_buy(&user, &format!("w-{i}"), ["F", "BAC", "F"][i], "5");
        connect_trade::orders::place(&user.client, request)
            .await
            .unwrap();
    }
    let midnight = Utc::now()
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();

    // Partially filled orders with their fills.
    let partial = fetch_orders(&user.client, OrderStatusFilter::PartiallyFilled, midnight)
        .await
        .unwrap();
    let report = workflows::partially_filled_orders(&partial).unwrap();
    assert_eq!(report.len(), 3);
    for p in &report {
        assert_eq!(p.filled_quantity, dec("3"));
        assert_eq!(p.remaining_quantity, Some(dec("2")));
        assert_eq!(
            Some(p.average.unwrap().price),
            p.order.avg_fill_price.map(|d| d.normalize())
        );
    }

    sim.tick();
    let day = fetch_orders(&user.client, OrderStatusFilter::All, midnight)
        .await
        .unwrap();
    assert!(day.iter().all(|o| o.status == OrderStatus::Filled));
    // Average fill price per order equals the server's avg_fill_price; over both F orders it
    // is the volume-weighted average of all their fills.
    for order in &day {
        let average = workflows::average_fill_price(&order.fills)
            .unwrap()
            .unwrap();
        assert_eq!(average.quantity, dec("5"));
        assert_eq!(
            Some(average.price),
            order.avg_fill_price.map(|d| d.normalize())
        );
    }
    let f_orders: Vec<_> = day
        .iter()
        .filter(|o| o.symbol.as_deref() == Some("F"))
        .collect();
    let f_average = workflows::average_fill_price_of_orders(f_orders.iter().copied())
        .unwrap()
        .unwrap();
    assert_eq!(f_average.quantity, dec("10"));
    let positions = user
        .client
        .list_positions()
        .send()
        .await
        .unwrap()
        .into_inner();
    let f_position = positions.iter().find(|p| p.symbol == "F").unwrap();
    assert_eq!(f_position.quantity, dec("10"));
    assert_eq!(
        Some(f_average.price.round_dp(4)),
        f_position.average_price.map(|d| d.round_dp(4))
    );

    // Total unrealized P&L and the daily summary.
    let pl = workflows::total_unrealized_pl(&positions).unwrap();
    assert_eq!((pl.reported, pl.missing), (2, 0));
    let balances = user
        .client
        .list_balances()
        .send()
        .await
        .unwrap()
        .into_inner();
    let summary = workflows::daily_pl_summary(&balances, &positions).unwrap();
    assert_eq!(summary.cash.reported, 1);
    assert_eq!(summary.by_symbol.len(), 2);
    assert_eq!(
        summary.daily_pl.total,
        positions.iter().filter_map(|p| p.daily_pl).sum::<Decimal>()
    );
}

//! The whole REST journey against the simulator, under its default answers and under every
//! REST wire variant (alone and all together): user → connection → accounts → orders →
//! paging through 1,200 orders → portfolio → cancel → market data token → delete. The
//! safe-order and portfolio guarantees hold under each, and every answer conforms to the spec.

mod support_sim;

use std::collections::HashSet;

use chrono::{TimeZone, Utc};
use connect_trade::{
    ConnectTrade,
    client::RetryPolicy,
    codes::{OrderSide, OrderStatusFilter},
    orders::place as place_order_safely,
    portfolio::{OrderScope, fetch_orders, fetch_user_book},
};
use connect_trade_sim::{RestFault, Simulator, Wire};
use futures::TryStreamExt;
use support_sim::{assert_conforms, dec, equity, platform};

const ORDERS: usize = 1_200;

async fn sim_with(wires: &[Wire]) -> Simulator {
    let mut builder = Simulator::builder()
        .manual_clock()
        .start_time(Utc.with_ymd_and_hms(2026, 3, 2, 15, 0, 0).unwrap());
    for wire in wires {
        builder = builder.wire(*wire);
    }
    builder.start().await.expect("simulator starts")
}

async fn journey(wires: &[Wire]) {
    let label = format!("{wires:?}");
    let sim = sim_with(wires).await;
    // Retries on (fast), so that the safe placement may send again after looking up.
    let platform: ConnectTrade = ConnectTrade::builder()
        .credentials(sim.credentials())
        .base_url(sim.rest_url())
        .retry_policy(RetryPolicy {
            max_retries: 3,
            initial_backoff: std::time::Duration::from_millis(1),
            max_backoff: std::time::Duration::from_millis(5),
            max_retry_after: std::time::Duration::from_secs(1),
        })
        .build()
        .unwrap();

    // User and connection (201 under created-204), then accounts.
    let user = sim
        .paper_user(
            &platform,
            "journey",
            connect_trade::codes::BrokerCode::Alpaca,
        )
        .await
        .unwrap_or_else(|e| panic!("{label}: paper user: {e}"));
    let accounts = user
        .client
        .list_accounts()
        .send()
        .await
        .unwrap()
        .into_inner();
    assert!(
        accounts.iter().any(|a| a.account_id == user.account_id),
        "{label}"
    );

    // 1,200 resting orders, far below the market so they stay open.
    let limit = (sim.price("F").unwrap() * dec("0.5")).round_dp(2);
    for i in 0..ORDERS {
        let request = equity(&user, &format!("j{i}"), OrderSide::Buy, "F")
            .quantity("1")
            .limit(limit)
            .build()
            .expect("a valid limit order");
        user.client
            .place_order()
            .body(request)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{label}: order {i}: {e}"));
    }

    // Safe placement: a transient failure makes the SDK look the order up (through the
    // pager, past 1,200 orders) before sending again; the result is one order.
    let safe = equity(&user, "safe-1", OrderSide::Buy, "F")
        .quantity("1")
        .limit(limit)
        .build()
        .expect("a valid limit order");
    sim.faults().fail_next(1, RestFault::status(503));
    let placed = place_order_safely(&user.client, safe.clone())
        .await
        .unwrap_or_else(|e| panic!("{label}: safe order: {e}"));
    assert_eq!(placed.cl_order_id.as_deref(), Some("safe-1"), "{label}");
    // Sending it again is refused (409), not doubled.
    let again = user.client.place_order().body(safe).send().await;
    assert_eq!(
        again
            .map_err(connect_trade::Error::from)
            .err()
            .and_then(|e| e.status()),
        Some(409),
        "{label}"
    );

    // Paging through the whole history, each order once.
    let all: Vec<_> = user
        .client
        .list_orders_all(|q| q.status(OrderStatusFilter::All))
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("{label}: history: {e}"));
    let ids: HashSet<&str> = all.iter().map(|o| o.order_id.as_str()).collect();
    assert_eq!(all.len(), ORDERS + 1, "{label}");
    assert_eq!(ids.len(), ORDERS + 1, "{label}: an order came twice");
    let safe_copies = all
        .iter()
        .filter(|o| o.cl_order_id.as_deref() == Some("safe-1"))
        .count();
    assert_eq!(safe_copies, 1, "{label}");

    // Portfolio: the same orders, by the same pager.
    let open = fetch_orders(
        &user.client,
        OrderStatusFilter::Open,
        sim.now() - chrono::Duration::hours(1),
    )
    .await
    .unwrap_or_else(|e| panic!("{label}: open orders: {e}"));
    assert_eq!(open.len(), ORDERS + 1, "{label}");
    // (The book's own scope reads by this machine's clock, not the simulator's: the
    // simulated day is in the past, so its order reads are the pager's, checked above.)
    let book = fetch_user_book(&user.client, &OrderScope::default())
        .await
        .unwrap_or_else(|e| panic!("{label}: book: {e}"));
    assert!(book.account(&user.account_id).is_some(), "{label}");

    // Cancel (204 under created-204), and read it back.
    let victim = &all[0];
    user.client
        .cancel_order()
        .account_id(user.account_id.clone())
        .order_id(victim.order_id.clone())
        .send()
        .await
        .unwrap_or_else(|e| panic!("{label}: cancel: {e}"));
    let after = user
        .client
        .get_order()
        .account_id(user.account_id.clone())
        .order_id(victim.order_id.clone())
        .send()
        .await
        .unwrap()
        .into_inner();
    assert!(
        !after.status.is_open() || after.status.to_string().contains("cancel"),
        "{label}: {:?}",
        after.status
    );

    // The market data token, under either name.
    let token = user
        .client
        .get_market_data_token()
        .connection_id(user.connection_id.clone())
        .send()
        .await
        .unwrap_or_else(|e| panic!("{label}: token: {e}"))
        .into_inner();
    assert!(!token.access_token.expose().is_empty(), "{label}");
    assert_eq!(
        token.expires_at.is_none(),
        wires.contains(&Wire::TokenPlain),
        "{label}"
    );

    // Delete (204 under created-204).
    user.client
        .delete_connection()
        .connection_id(user.connection_id.clone())
        .send()
        .await
        .unwrap_or_else(|e| panic!("{label}: delete connection: {e}"));
    platform
        .delete_user()
        .user_id("journey")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{label}: delete user: {e}"));

    // Every answer of every variant still conforms to the spec.
    assert_conforms(&sim);
}

#[tokio::test]
async fn the_journey_under_the_default_answers() {
    journey(&[]).await;
}

#[tokio::test]
async fn the_journey_with_the_orders_envelope() {
    journey(&[Wire::OrdersEnvelope]).await;
}

#[tokio::test]
async fn the_journey_with_minimal_orders() {
    journey(&[Wire::OrdersMinimal]).await;
}

#[tokio::test]
async fn the_journey_with_created_and_no_content() {
    journey(&[Wire::Created204]).await;
}

#[tokio::test]
async fn the_journey_with_the_plain_token() {
    journey(&[Wire::TokenPlain]).await;
}

#[tokio::test]
async fn the_journey_with_every_rest_variant_at_once() {
    journey(&[
        Wire::OrdersEnvelope,
        Wire::OrdersMinimal,
        Wire::Created204,
        Wire::TokenPlain,
    ])
    .await;
}

/// Under the default answers `GET /orders` is a bare JSON array (the cookbook's shape), and
/// under `orders-envelope` the envelope with cursors.
#[tokio::test]
async fn the_default_orders_answer_is_a_bare_array_and_the_envelope_is_a_variant() {
    for (wires, bare) in [(&[][..], true), (&[Wire::OrdersEnvelope][..], false)] {
        let sim = sim_with(wires).await;
        let platform = platform(&sim);
        let user = sim
            .paper_user(&platform, "shape", connect_trade::codes::BrokerCode::Alpaca)
            .await
            .unwrap();
        let http = reqwest::Client::new();
        let body: serde_json::Value = http
            .get(format!(
                "{}/orders?status=all",
                sim.rest_url().trim_end_matches('/')
            ))
            .header("client-id", &sim.credentials().client_id)
            .header("client-secret", sim.credentials().client_secret.expose())
            .header("user-id", &user.credentials.user_id)
            .header("user-secret", user.credentials.user_secret.expose())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body.is_array(), bare, "{wires:?}: {body}");
    }
}

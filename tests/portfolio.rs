//! The portfolio mirror: updates, stale updates, snapshot races, reconciliation after a gap,
//! notifications and consistent reads, with synthetic stream events and a small fake REST
//! server (on `support::scripted`) whose reads can be held open to let updates race them.

mod support;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::{DateTime, TimeZone, Utc};
use connect_trade::{
    ConnectTrade, UserClient, UserCredentials,
    client::RetryPolicy,
    portfolio::{Applied, Change, FeedEvent, OrderScope, Portfolio, Update, fetch_user_book},
    stream::protocol::{BrokerageMessage, ServerMessage, UpdateMeta},
};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use support::scripted::{Reply, Scripted};
use tokio::sync::{Notify, mpsc};

// ---------------------------------------------------------------------------------------------
// Synthetic events
// ---------------------------------------------------------------------------------------------

fn at(second: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, second).unwrap()
}

fn order_value(id: &str, status: &str, fills: usize, updated: u32) -> Value {
    let fills: Vec<Value> = (0..fills)
        .map(|i| json!({"fill_id": format!("{id}-f{i}"), "quantity": "1", "price": "10.000000001"}))
        .collect();
    json!({
        "order_id": id, "cl_order_id": format!("cl-{id}"), "account_id": "acc-1",
        "symbol": "AAPL", "side": "BUY", "order_qty": "10", "status": status,
        "fills": fills, "legs": [], "updated_at": at(updated),
    })
}

fn meta(user: &str, sequence: Option<u64>, timestamp: Option<u32>) -> UpdateMeta {
    UpdateMeta {
        user_id: user.into(),
        account_id: "acc-1".into(),
        timestamp: timestamp.map(at),
        sequence,
    }
}

fn order_update(user: &str, id: &str, status: &str, fills: usize, updated: u32) -> Update {
    Update::Order {
        meta: meta(user, None, None),
        order: Arc::new(serde_json::from_value(order_value(id, status, fills, updated)).unwrap()),
    }
}

fn position_value(symbol: &str, quantity: &str, pl: Option<&str>) -> Value {
    json!({"account_id": "acc-1", "symbol": symbol, "quantity": quantity,
           "unrealized_pl": pl, "daily_pl": pl})
}

fn position_update(user: &str, symbol: &str, quantity: &str, seq: Option<u64>) -> Update {
    Update::Position {
        meta: meta(user, seq, None),
        position: Arc::new(
            serde_json::from_value(position_value(symbol, quantity, Some("1"))).unwrap(),
        ),
    }
}

fn balance_update(user: &str, cash: &str, ts: Option<u32>) -> Update {
    Update::Balance {
        meta: meta(user, None, ts),
        balance: Arc::new(
            serde_json::from_value(
                json!({"account_id": "acc-1", "cash": cash, "buying_power": cash}),
            )
            .unwrap(),
        ),
    }
}

#[test]
fn updates_decode_from_stream_messages() {
    let text = json!({
        "type": "order", "user_id": "u1", "account_id": "acc-1", "sequence": 7,
        "data": order_value("o1", "working", 0, 1),
    })
    .to_string();
    let update = Update::from_message(BrokerageMessage::decode(&text).unwrap()).unwrap();
    assert_eq!(update.user_id(), "u1");
    assert_eq!(update.meta().sequence, Some(7));
    let welcome = BrokerageMessage::decode(r#"{"type":"welcome"}"#).unwrap();
    assert_eq!(Update::from_message(welcome), None);
}

#[test]
fn orders_positions_and_balances_are_applied() {
    let p = Portfolio::detached();
    assert_eq!(
        p.apply(order_update("u1", "o1", "working", 0, 1)),
        Applied::Changed
    );
    assert_eq!(
        p.apply(position_update("u1", "AAPL", "10", None)),
        Applied::Changed
    );
    assert_eq!(
        p.apply(balance_update("u1", "100.5", None)),
        Applied::Changed
    );
    let book = p.user("u1").unwrap();
    assert_eq!(book.order_count(), 1);
    assert_eq!(book.position_count(), 1);
    assert_eq!(
        book.balances().next().unwrap().cash,
        Some(Decimal::new(1005, 1))
    );
    assert_eq!(
        p.order("u1", "acc-1", "o1").unwrap().status.as_str(),
        "working"
    );
    // The same state again is not a change.
    assert_eq!(
        p.apply(order_update("u1", "o1", "working", 0, 1)),
        Applied::Unchanged
    );
    assert_eq!(p.version(), 3);
}

#[test]
fn an_order_older_than_the_held_state_is_ignored() {
    let p = Portfolio::detached();
    p.apply(order_update("u1", "o1", "partially_filled", 2, 5));
    assert_eq!(
        p.apply(order_update("u1", "o1", "working", 0, 3)),
        Applied::Stale
    );
    assert_eq!(p.order("u1", "acc-1", "o1").unwrap().fills.len(), 2);
    assert_eq!(
        p.apply(order_update("u1", "o1", "filled", 10, 9)),
        Applied::Changed
    );
}

#[test]
fn without_timestamps_an_order_never_leaves_a_final_status_nor_loses_fills() {
    let p = Portfolio::detached();
    let mut filled: Value = order_value("o1", "filled", 3, 0);
    filled.as_object_mut().unwrap().remove("updated_at");
    let mut working = order_value("o1", "working", 1, 0);
    working.as_object_mut().unwrap().remove("updated_at");
    let update = |v: &Value| Update::Order {
        meta: meta("u1", None, None),
        order: Arc::new(serde_json::from_value(v.clone()).unwrap()),
    };
    p.apply(update(&filled));
    assert_eq!(p.apply(update(&working)), Applied::Stale);
    assert_eq!(
        p.order("u1", "acc-1", "o1").unwrap().status.as_str(),
        "filled"
    );
}

#[test]
fn positions_and_balances_compare_sequence_then_timestamp() {
    let p = Portfolio::detached();
    p.apply(position_update("u1", "AAPL", "10", Some(5)));
    assert_eq!(
        p.apply(position_update("u1", "AAPL", "7", Some(4))),
        Applied::Stale
    );
    assert_eq!(
        p.apply(position_update("u1", "AAPL", "12", Some(6))),
        Applied::Changed
    );
    p.apply(balance_update("u1", "100", Some(20)));
    assert_eq!(
        p.apply(balance_update("u1", "90", Some(10))),
        Applied::Stale
    );
    assert_eq!(
        p.apply(balance_update("u1", "95", Some(30))),
        Applied::Changed
    );
    let book = p.user("u1").unwrap();
    assert_eq!(book.positions().next().unwrap().quantity, Decimal::from(12));
    assert_eq!(
        book.balances().next().unwrap().cash,
        Some(Decimal::from(95))
    );
}

#[test]
fn a_position_of_quantity_zero_is_closed() {
    let p = Portfolio::detached();
    p.apply(position_update("u1", "AAPL", "10", None));
    assert_eq!(
        p.apply(position_update("u1", "AAPL", "0", None)),
        Applied::Changed
    );
    assert_eq!(p.user("u1").unwrap().position_count(), 0);
}

#[test]
fn a_single_user_portfolio_ignores_other_users() {
    let user = client_for("http://127.0.0.1:9", "alice");
    let p = Portfolio::for_user(user);
    assert_eq!(
        p.apply(order_update("bob", "o1", "working", 0, 1)),
        Applied::UnknownUser
    );
    assert_eq!(
        p.apply(order_update("alice", "o1", "working", 0, 1)),
        Applied::Changed
    );
    assert!(p.user("bob").is_none());
}

#[tokio::test]
async fn subscribers_are_notified_of_each_change() {
    let p = Portfolio::detached();
    let mut version = p.subscribe();
    let mut changes = p.changes();
    p.apply(order_update("u1", "o1", "working", 0, 1));
    version.changed().await.unwrap();
    assert_eq!(*version.borrow(), 1);
    assert_eq!(
        changes.recv().await.unwrap(),
        Change::Order {
            user_id: "u1".into(),
            account_id: "acc-1".into(),
            order_id: "o1".into()
        }
    );
}

#[test]
fn readers_never_see_a_half_applied_state() {
    // Every update adds one order and bumps the version by one: any consistent view has as
    // many orders as its version says, whatever the writer is doing at the time.
    let p = Portfolio::detached();
    let writer = {
        let p = p.clone();
        std::thread::spawn(move || {
            for i in 0..20_000 {
                p.apply(order_update("u1", &format!("o{i}"), "working", 0, 1));
            }
        })
    };
    let mut views = 0;
    while !writer.is_finished() || views == 0 {
        let (version, orders) = p.read(|view| {
            (
                view.version(),
                view.users()
                    .map(|(_, b)| b.order_count() as u64)
                    .sum::<u64>(),
            )
        });
        assert_eq!(version, orders);
        views += 1;
    }
    writer.join().unwrap();
    assert_eq!(p.user("u1").unwrap().order_count(), 20_000);
}

#[test]
fn the_workflows_run_on_a_users_book() {
    let p = Portfolio::detached();
    p.apply(order_update("u1", "o1", "partially_filled", 2, 1));
    p.apply(order_update("u1", "o2", "filled", 3, 1));
    p.apply(position_update("u1", "AAPL", "5", None));
    p.apply(Update::Position {
        meta: meta("u1", None, None),
        position: Arc::new(serde_json::from_value(position_value("MSFT", "1", None)).unwrap()),
    });
    let book = p.user("u1").unwrap();
    let pl = book.unrealized_pl().unwrap();
    assert_eq!((pl.total, pl.reported, pl.missing), (Decimal::ONE, 1, 1));
    assert_eq!(book.partially_filled_orders().unwrap().len(), 1);
    let avg = book.average_fill_price("AAPL", None).unwrap().unwrap();
    assert_eq!(avg.price, "10.000000001".parse::<Decimal>().unwrap());
    assert_eq!(avg.quantity, Decimal::from(5));
    assert_eq!(book.daily_pl_summary().unwrap().daily_pl.missing, 1);
    // The same through the portfolio's methods.
    assert_eq!(p.unrealized_pl("u1").unwrap().unwrap(), pl);
    assert_eq!(p.partially_filled_orders("u1").len(), 1);
    assert_eq!(
        p.average_fill_price("u1", "AAPL", None).unwrap().unwrap(),
        Some(avg)
    );
    assert_eq!(p.daily_pl_summary("u1").unwrap().unwrap().cash.reported, 0);
    assert!(p.unrealized_pl("nobody").is_none());
}

// ---------------------------------------------------------------------------------------------
// A fake REST server whose reads can be held open
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct RestState {
    orders: Vec<Value>,
    positions: Vec<Value>,
    balance: Value,
    /// When set, a `GET /orders` takes its answer when it arrives, says so, and waits.
    hold_orders: Option<(mpsc::UnboundedSender<()>, Arc<Notify>)>,
    requests: usize,
}

#[derive(Clone)]
struct FakeRest {
    state: Arc<Mutex<RestState>>,
    base_url: String,
}

impl FakeRest {
    async fn start() -> FakeRest {
        let state = Arc::new(Mutex::new(RestState {
            balance: json!({"account_id": "acc-1", "cash": "1000", "buying_power": "2000"}),
            ..RestState::default()
        }));
        let answering = state.clone();
        let server = Scripted::respond_with(move |request| {
            let fake = FakeRest {
                state: answering.clone(),
                base_url: String::new(),
            };
            async move { Reply::Json(200, Vec::new(), fake.answer(&request.target).await) }
        })
        .await;
        FakeRest {
            state,
            base_url: server.base_url,
        }
    }

    async fn answer(&self, target: &str) -> String {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let query: HashMap<String, String> = url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let (body, hold) = {
            let mut s = self.state.lock().unwrap();
            s.requests += 1;
            match path {
                "/accounts" => (json!([{"account_id": "acc-1", "broker": "ALPACA"}]), None),
                "/balances" => (json!([s.balance.clone()]), None),
                "/positions" => (json!(s.positions.clone()), None),
                "/orders" => {
                    let open_only = query.get("status").map(String::as_str) == Some("open");
                    let orders: Vec<Value> = s
                        .orders
                        .iter()
                        .filter(|o| {
                            !open_only
                                || matches!(
                                    o["status"].as_str(),
                                    Some("working" | "partially_filled")
                                )
                        })
                        .cloned()
                        .collect();
                    (
                        json!({"orders": orders, "next_cursor": null}),
                        s.hold_orders.clone(),
                    )
                }
                _ => (json!({"message": "no route"}), None),
            }
        };
        if let Some((arrived, release)) = hold {
            // Registered before saying so: the release cannot slip between the two.
            let notified = release.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let _ = arrived.send(());
            notified.await;
        }
        body.to_string()
    }

    fn set_order(&self, order: Value) {
        let mut s = self.state.lock().unwrap();
        let id = order["order_id"].clone();
        s.orders.retain(|o| o["order_id"] != id);
        s.orders.push(order);
    }
}

fn client_for(base_url: &str, user: &str) -> UserClient {
    ConnectTrade::builder()
        .client_id("cid")
        .client_secret("cs")
        .base_url(base_url)
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap()
        .for_user(UserCredentials::new(user, "secret"))
        .unwrap()
}

fn feed() -> (
    mpsc::UnboundedSender<FeedEvent>,
    impl futures::Stream<Item = FeedEvent> + Send + 'static,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let stream =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (e, rx)) });
    (tx, stream)
}

async fn loaded(changes: &mut tokio::sync::broadcast::Receiver<Change>) -> (String, usize, bool) {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), changes.recv()).await {
            Ok(Ok(Change::Loaded {
                user_id,
                corrected,
                current,
            })) => return (user_id, corrected, current),
            Ok(Ok(Change::LoadFailed { error, .. })) => panic!("load failed: {error}"),
            Ok(Ok(_)) => {}
            other => panic!("no Loaded change: {other:?}"),
        }
    }
}

#[tokio::test]
async fn the_snapshot_is_loaded_over_rest() {
    let rest = FakeRest::start().await;
    rest.set_order(order_value("o1", "working", 0, 1));
    rest.state.lock().unwrap().positions = vec![position_value("AAPL", "3", Some("1.5"))];
    let p = Portfolio::for_user(client_for(&rest.base_url, "alice"));
    p.load().await.unwrap();
    let book = p.user("alice").unwrap();
    assert_eq!(book.order_count(), 1);
    assert_eq!(
        book.account("acc-1").unwrap().account().unwrap().account_id,
        "acc-1"
    );
    assert_eq!(
        book.unrealized_pl().unwrap().total,
        "1.5".parse::<Decimal>().unwrap()
    );
    let status = p.status("alice").unwrap();
    assert!(status.loaded && !status.stale);
}

#[tokio::test]
async fn updates_racing_the_snapshot_are_neither_lost_nor_let_regress_it() {
    let rest = FakeRest::start().await;
    rest.set_order(order_value("o1", "working", 0, 1));
    rest.set_order(order_value("o3", "working", 0, 1));
    let (arrived_tx, mut arrived) = mpsc::unbounded_channel();
    let release = Arc::new(Notify::new());
    rest.state.lock().unwrap().hold_orders = Some((arrived_tx, release.clone()));
    // The server's state when the REST read happens: o3 already partially filled at t=5.
    rest.set_order(order_value("o3", "partially_filled", 1, 5));

    let p = Portfolio::for_user(client_for(&rest.base_url, "alice"));
    let load = tokio::spawn({
        let p = p.clone();
        async move { p.load().await }
    });
    // Both order reads (today's, open ones) have taken their answers.
    arrived.recv().await.unwrap();
    arrived.recv().await.unwrap();
    // Updates that arrive while the read is in flight:
    // o1 filled after the read (the read does not have it) …
    p.apply(order_update("alice", "o1", "filled", 10, 8));
    // … a new order o2 …
    p.apply(order_update("alice", "o2", "working", 0, 9));
    // … and a late, older update of o3 (t=3) that must not undo the read's t=5 state.
    p.apply(order_update("alice", "o3", "working", 0, 3));
    rest.state.lock().unwrap().hold_orders = None;
    release.notify_waiters();
    load.await.unwrap().unwrap();

    let book = p.user("alice").unwrap();
    assert_eq!(book.order("acc-1", "o1").unwrap().status.as_str(), "filled");
    assert!(book.order("acc-1", "o2").is_some());
    assert_eq!(
        book.order("acc-1", "o3").unwrap().status.as_str(),
        "partially_filled"
    );
    assert_eq!(book.order_count(), 3);
}

#[tokio::test]
async fn after_a_gap_the_mirror_reconciles_to_the_servers_state_and_says_so() {
    let rest = FakeRest::start().await;
    rest.set_order(order_value("o1", "working", 0, 1));
    rest.state.lock().unwrap().positions = vec![position_value("AAPL", "3", Some("1"))];
    let user = client_for(&rest.base_url, "alice");
    let p = Portfolio::builder()
        .user(user.clone())
        .load_retry(RetryPolicy::none())
        .build();
    p.load().await.unwrap();
    let mut changes = p.changes();
    let (tx, stream) = feed();
    let runner = tokio::spawn({
        let p = p.clone();
        async move { p.run(stream).await }
    });

    tx.send(order_update("alice", "o1", "partially_filled", 1, 2).into())
        .unwrap();
    tx.send(FeedEvent::Disconnected).unwrap();
    // During the gap the server changes and the stream says nothing.
    rest.set_order(order_value("o1", "filled", 10, 7));
    rest.set_order(order_value("o9", "working", 0, 8));
    rest.state.lock().unwrap().positions = vec![position_value("MSFT", "1", None)];
    rest.state.lock().unwrap().balance =
        json!({"account_id": "acc-1", "cash": "1", "buying_power": "1"});
    tx.send(FeedEvent::Reconnected).unwrap();

    // Stale first, then the reconciliation's report.
    let (user_id, corrected, current) = loaded(&mut changes).await;
    assert_eq!(user_id, "alice");
    // o1 changed, o9 added, AAPL removed, MSFT added, balance changed.
    assert_eq!(corrected, 5);
    assert!(current);
    let fresh = fetch_user_book(&user, &OrderScope::default())
        .await
        .unwrap();
    assert_eq!(
        p.user("alice").unwrap(),
        fresh,
        "mirror equals a fresh REST read"
    );
    assert!(!p.status("alice").unwrap().stale);

    drop(tx);
    runner.await.unwrap();
}

#[tokio::test]
async fn a_disconnect_marks_users_stale_until_reconciled() {
    let rest = FakeRest::start().await;
    let p = Portfolio::for_user(client_for(&rest.base_url, "alice"));
    p.load().await.unwrap();
    let mut changes = p.changes();
    p.mark_stale();
    assert_eq!(changes.recv().await.unwrap(), Change::Stale);
    assert!(p.status("alice").unwrap().stale);
    p.reconcile().await.unwrap();
    assert!(!p.status("alice").unwrap().stale);
}

#[tokio::test]
async fn a_failed_reconciliation_keeps_the_state_and_reports_the_error() {
    let p = Portfolio::builder()
        .user(client_for("http://127.0.0.1:9", "alice"))
        .load_retry(RetryPolicy::none())
        .build();
    p.apply(order_update("alice", "o1", "working", 0, 1));
    let mut changes = p.changes();
    assert!(p.load().await.is_err());
    assert!(matches!(
        changes.recv().await.unwrap(),
        Change::LoadFailed { .. }
    ));
    let status = p.status("alice").unwrap();
    assert!(!status.loaded && status.last_error.is_some());
    assert_eq!(p.user("alice").unwrap().order_count(), 1);
}

#[tokio::test]
async fn users_first_seen_on_the_stream_are_resolved_and_loaded() {
    let rest = FakeRest::start().await;
    rest.set_order(order_value("o1", "working", 0, 1));
    let base = rest.base_url.clone();
    let p = Portfolio::builder()
        .resolver(move |user_id: &str| (user_id != "mallory").then(|| client_for(&base, user_id)))
        .build();
    let mut changes = p.changes();
    let (tx, stream) = feed();
    let runner = tokio::spawn({
        let p = p.clone();
        async move { p.run(stream).await }
    });
    tx.send(order_update("bob", "o2", "working", 0, 2).into())
        .unwrap();
    tx.send(order_update("mallory", "o3", "working", 0, 2).into())
        .unwrap();
    let (user_id, _, _) = loaded(&mut changes).await;
    assert_eq!(user_id, "bob");
    drop(tx);
    runner.await.unwrap();
    let bob = p.user("bob").unwrap();
    // The REST read (o1) plus the update that revealed bob (o2), which the read also lacks.
    assert!(bob.order("acc-1", "o1").is_some());
    assert!(p.user("mallory").is_none());
    assert!(rest.state.lock().unwrap().requests >= 4);
}

#[tokio::test]
async fn lagging_behind_the_stream_triggers_a_reconciliation() {
    let rest = FakeRest::start().await;
    rest.set_order(order_value("o1", "working", 0, 1));
    let user = client_for(&rest.base_url, "alice");
    let p = Portfolio::for_user(user.clone());
    p.load().await.unwrap();
    let mut changes = p.changes();
    let (tx, stream) = feed();
    let runner = tokio::spawn({
        let p = p.clone();
        async move { p.run(stream).await }
    });
    // Updates dropped locally: the fill of o1 never reaches the mirror.
    rest.set_order(order_value("o1", "filled", 10, 5));
    tx.send(FeedEvent::Lagged).unwrap();
    // An update after the lag, racing the reconciliation's read, is kept too.
    tx.send(order_update("alice", "o2", "working", 0, 6).into())
        .unwrap();
    assert_eq!(changes.recv().await.unwrap(), Change::Stale);
    let (_, corrected, current) = loaded(&mut changes).await;
    assert!(corrected >= 1 && current);
    let book = p.user("alice").unwrap();
    assert_eq!(book.order("acc-1", "o1").unwrap().status.as_str(), "filled");
    assert!(book.order("acc-1", "o2").is_some());
    drop(tx);
    runner.await.unwrap();
}

#[tokio::test]
async fn marks_are_refreshed_by_periodic_reconciliation() {
    let rest = FakeRest::start().await;
    rest.state.lock().unwrap().positions = vec![position_value("AAPL", "3", Some("1"))];
    let p = Portfolio::builder()
        .user(client_for(&rest.base_url, "alice"))
        .reconcile_every(Duration::from_millis(20))
        .build();
    p.load().await.unwrap();
    let mut changes = p.changes();
    let (tx, stream) = feed();
    let runner = tokio::spawn({
        let p = p.clone();
        async move { p.run(stream).await }
    });
    // The price moves: the broker revalues the position, the stream says nothing.
    rest.state.lock().unwrap().positions = vec![position_value("AAPL", "3", Some("2.5"))];
    loop {
        let (_, corrected, _) = loaded(&mut changes).await;
        if corrected > 0 {
            break;
        }
    }
    let book = p.user("alice").unwrap();
    assert_eq!(
        book.unrealized_pl().unwrap().total,
        "2.5".parse::<Decimal>().unwrap()
    );
    drop(tx);
    runner.await.unwrap();
}

//! The SDK end to end against the simulator: every REST operation through `ConnectTrade` /
//! `UserClient`, the paper broker's order life cycles, and every response checked against
//! the spec's schemas.

mod support_sim;

use std::time::Duration;

use connect_trade::{
    ConnectTrade, Error, UserCredentials,
    client::RetryPolicy,
    codes::{
        BrokerCode, ConnectionType, Instrument, OrderSide, OrderStatus, OrderStatusFilter,
        OrderType, SortOrder, TimeInForce, TokenScope, TransactionType,
    },
    orders::{Leg, OrderBuilder, Strategy},
    rest::types::ModifyOrderRequest,
    symbology::OptionSymbol,
};
use connect_trade_sim::{RestFault, Simulator};
use rust_decimal::Decimal;
use support_sim::{
    alice, assert_conforms, dec, equity, market, option, platform, raw, refused, sim,
};

#[tokio::test]
async fn users_are_created_listed_refused_twice_and_deleted() {
    let sim = sim().await;
    let platform = platform(&sim);
    let created = platform
        .create_user()
        .body_map(|b| b.user_id("bob"))
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.user_id.as_deref(), Some("bob"));
    assert!(!created.user_secret.expose().is_empty());
    let users = platform.list_users().send().await.unwrap().into_inner();
    assert_eq!(
        users.iter().map(|u| u.user_id.as_str()).collect::<Vec<_>>(),
        ["bob"]
    );

    let (status, message) = refused(
        platform
            .create_user()
            .body_map(|b| b.user_id("bob"))
            .send()
            .await,
    );
    assert_eq!(status, 409);
    assert!(message.contains("bob"), "{message}");
    let (status, message) = refused(
        platform
            .create_user()
            .body_map(|b| b.user_id(""))
            .send()
            .await,
    );
    assert_eq!(
        (status, message.starts_with("user_id")),
        (400, true),
        "{message}"
    );

    platform.delete_user().user_id("bob").send().await.unwrap();
    assert!(
        platform
            .list_users()
            .send()
            .await
            .unwrap()
            .into_inner()
            .is_empty()
    );
    let (status, _) = refused(platform.delete_user().user_id("bob").send().await);
    assert_eq!(status, 404);
    assert_conforms(&sim);
}

#[tokio::test]
async fn credentials_are_enforced() {
    let sim = sim().await;
    let wrong = ConnectTrade::builder()
        .client_id("sim-client-id")
        .client_secret("not-the-secret")
        .base_url(sim.rest_url())
        .build()
        .unwrap();
    let (status, _) = refused(wrong.list_users().send().await);
    assert_eq!(status, 401);

    let platform = platform(&sim);
    let created = platform
        .create_user()
        .body_map(|b| b.user_id("carol"))
        .send()
        .await
        .unwrap()
        .into_inner();
    // A user-scoped operation without user credentials never leaves the client.
    assert!(matches!(
        platform.list_accounts().send().await.map_err(Error::from),
        Err(Error::MissingUserCredentials { .. })
    ));
    let impostor = platform
        .for_user(UserCredentials::new("carol", "guessed"))
        .unwrap();
    let (status, message) = refused(impostor.list_accounts().send().await);
    assert_eq!(status, 401, "{message}");
    let carol = platform
        .for_user(created.into_credentials("carol"))
        .unwrap();
    assert!(
        carol
            .list_accounts()
            .send()
            .await
            .unwrap()
            .into_inner()
            .is_empty()
    );
    // A user's pair with another platform's pair is refused too.
    let other = wrong.for_user(carol.credentials().clone()).unwrap();
    assert_eq!(refused(other.list_accounts().send().await).0, 401);
    assert_conforms(&sim);
}

#[tokio::test]
async fn oauth_flow_links_a_paper_account_or_redirects_with_an_error() {
    let sim = sim().await;
    let platform = platform(&sim);
    let created = platform
        .create_user()
        .body_map(|b| b.user_id("dave"))
        .send()
        .await
        .unwrap()
        .into_inner();
    let dave = platform.for_user(created.into_credentials("dave")).unwrap();
    let connect = |broker: Option<BrokerCode>, kind: ConnectionType| {
        dave.create_connection()
            .body_map(move |b| {
                b.connection_type(kind)
                    .broker(broker)
                    .redirect_url("https://app.example/cb?state=xyz")
            })
            .send()
    };

    // No broker preselected: the page offers the trading brokers; choosing one completes it.
    let request = connect(None, ConnectionType::Trade)
        .await
        .unwrap()
        .into_inner();
    assert!(request.connection_request_url.starts_with(sim.rest_url()));
    assert!(request.expires_at.is_some());
    let page = reqwest::get(&request.connection_request_url)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("?broker=ALPACA") && !page.contains("?broker=CHASE"),
        "{page}"
    );
    let landed = sim
        .authorize(
            &request.connection_request_url,
            Some(&BrokerCode::TradeStation),
        )
        .await
        .unwrap();
    assert_eq!(landed.host_str(), Some("app.example"));
    let query: Vec<(String, String)> = landed.query_pairs().into_owned().collect();
    assert_eq!(
        query[0],
        ("state".into(), "xyz".into()),
        "the redirect keeps the platform's own query"
    );
    let connection_id = query
        .iter()
        .find(|(k, _)| k == "connection_id")
        .map(|(_, v)| v.clone())
        .unwrap();

    let connections = dave.list_connections().send().await.unwrap().into_inner();
    assert_eq!(connections.len(), 1);
    assert_eq!(connections[0].connection_id, connection_id);
    assert_eq!(connections[0].broker, BrokerCode::TradeStation);
    assert_eq!(connections[0].connection_type, ConnectionType::Trade);
    let account_id = connections[0].accounts[0].account_id.clone();
    let accounts = dave
        .list_accounts()
        .connection_id(connection_id.clone())
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(accounts[0].account_id, account_id);
    assert_eq!(accounts[0].broker, Some(BrokerCode::TradeStation));
    assert!(
        dave.list_accounts()
            .broker(BrokerCode::Alpaca)
            .send()
            .await
            .unwrap()
            .into_inner()
            .is_empty()
    );

    // A used request cannot be replayed.
    let again = sim
        .authorize(&request.connection_request_url, Some(&BrokerCode::Alpaca))
        .await
        .unwrap();
    assert!(
        again
            .query_pairs()
            .any(|(k, v)| k == "error" && v == "invalid_request")
    );

    // A read-only bank cannot back a trade connection; an unknown code is no broker at all.
    for broker in [BrokerCode::Chase, BrokerCode::from_wire("NOPE")] {
        let request = connect(Some(broker.clone()), ConnectionType::Trade)
            .await
            .unwrap()
            .into_inner();
        let landed = sim
            .authorize(&request.connection_request_url, None)
            .await
            .unwrap();
        let pairs: Vec<(String, String)> = landed.query_pairs().into_owned().collect();
        assert!(
            pairs
                .iter()
                .any(|(k, v)| k == "error" && v == "unsupported_broker"),
            "{broker}: {landed}"
        );
        assert!(
            pairs
                .iter()
                .any(|(k, v)| k == "error_details" && v.contains(broker.as_str())),
            "{landed}"
        );
        assert!(!pairs.iter().any(|(k, _)| k == "connection_id"));
    }
    // ... but a bank backs a read-only connection, whose account cannot place orders.
    let request = connect(Some(BrokerCode::Chase), ConnectionType::Readonly)
        .await
        .unwrap()
        .into_inner();
    let landed = sim
        .authorize(&request.connection_request_url, None)
        .await
        .unwrap();
    assert!(landed.query_pairs().any(|(k, _)| k == "connection_id"));

    let (status, message) = refused(
        dave.create_connection()
            .body_map(|b| {
                b.connection_type(ConnectionType::Trade)
                    .redirect_url("not a url")
            })
            .send()
            .await,
    );
    assert_eq!(
        (status, message.starts_with("redirect_url")),
        (400, true),
        "{message}"
    );

    dave.delete_connection()
        .connection_id(connection_id.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        dave.list_connections()
            .send()
            .await
            .unwrap()
            .into_inner()
            .len(),
        1
    );
    assert_eq!(
        refused(
            dave.delete_connection()
                .connection_id(connection_id)
                .send()
                .await
        )
        .0,
        404
    );
    assert_eq!(
        refused(dave.list_balances().account_id(account_id).send().await).0,
        404
    );
    assert_conforms(&sim);
}

#[tokio::test]
async fn a_new_account_is_funded_and_recorded() {
    let sim = sim().await;
    let (_, alice) = alice(&sim).await;
    let balances = alice
        .client
        .list_balances()
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(balances.len(), 1);
    assert_eq!(balances[0].cash, Some(dec("100000")));
    assert_eq!(balances[0].buying_power, Some(dec("100000")));
    assert_eq!(balances[0].equity, Some(dec("100000")));
    let transactions = alice
        .client
        .list_transactions()
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(transactions.len(), 1);
    assert_eq!(transactions[0].type_, Some(TransactionType::Deposit));
    assert!(
        alice
            .client
            .list_positions()
            .send()
            .await
            .unwrap()
            .into_inner()
            .is_empty()
    );
    assert_conforms(&sim);
}

#[tokio::test]
async fn market_order_fills_at_the_ask_and_the_books_follow() {
    let sim = sim().await;
    let (_, alice) = alice(&sim).await;
    let mid = sim.price("AAPL").unwrap();
    let placed = alice
        .client
        .place_order()
        .body(market(&alice, "buy-1", OrderSide::Buy, "AAPL", "10"))
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(placed.status, OrderStatus::Filled);
    assert_eq!(placed.fills.len(), 1);
    let price = placed.fills[0].price;
    assert!(
        price > mid,
        "a buy pays the ask ({price}) above the mid ({mid})"
    );
    assert_eq!(placed.avg_fill_price, Some(price));
    assert_eq!(placed.filled_qty, Some(dec("10")));

    let fetched = alice
        .client
        .get_order()
        .account_id(&alice.account_id)
        .order_id(&placed.order_id)
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fetched, placed);

    let positions = alice
        .client
        .list_positions()
        .symbols("AAPL,MSFT")
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(positions.len(), 1);
    let p = &positions[0];
    assert_eq!(
        (p.symbol.as_str(), p.quantity, p.average_price),
        ("AAPL", dec("10"), Some(price))
    );
    let last = p.last_price.unwrap();
    assert_eq!(p.unrealized_pl, Some((last - price) * dec("10")));
    assert_eq!(p.market_value, Some(last * dec("10")));
    assert_eq!(
        p.daily_pl, p.unrealized_pl,
        "opened today: the day's P&L is the unrealized P&L"
    );
    assert_eq!(p.total_pl, p.unrealized_pl);

    let balance = &alice
        .client
        .list_balances()
        .account_id(&alice.account_id)
        .send()
        .await
        .unwrap()
        .into_inner()[0];
    let cash = dec("100000") - price * dec("10");
    assert_eq!(balance.cash, Some(cash));
    assert_eq!(balance.buying_power, Some(cash));
    assert_eq!(balance.equity, Some(cash + last * dec("10")));

    let buys: Vec<_> = alice
        .client
        .list_transactions()
        .send()
        .await
        .unwrap()
        .into_inner()
        .into_iter()
        .filter(|t| t.type_ == Some(TransactionType::Buy))
        .collect();
    assert_eq!(buys.len(), 1);
    assert_eq!(
        (buys[0].quantity, buys[0].price, buys[0].amount),
        (Some(dec("10")), Some(price), Some(-(price * dec("10"))))
    );

    // Selling closes the position and realizes the P&L.
    sim.advance(Duration::from_secs(30));
    let sold = alice
        .client
        .place_order()
        .body(market(&alice, "sell-1", OrderSide::Sell, "AAPL", "10"))
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(sold.status, OrderStatus::Filled);
    assert!(
        alice
            .client
            .list_positions()
            .send()
            .await
            .unwrap()
            .into_inner()
            .is_empty()
    );
    let balance = &alice
        .client
        .list_balances()
        .send()
        .await
        .unwrap()
        .into_inner()[0];
    assert_eq!(balance.cash, Some(cash + sold.fills[0].price * dec("10")));
    assert_conforms(&sim);
}

#[tokio::test]
async fn large_orders_fill_in_parts_over_ticks() {
    let sim = sim().await;
    let (_, alice) = alice(&sim).await;
    let placed = alice
        .client
        .place_order()
        .body(market(&alice, "big", OrderSide::Buy, "JPM", "250"))
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(placed.status, OrderStatus::PartiallyFilled);
    assert_eq!(placed.filled_qty, Some(dec("100")));
    sim.tick();
    sim.tick();
    let done = alice
        .client
        .get_order()
        .account_id(&alice.account_id)
        .order_id(&placed.order_id)
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.status, OrderStatus::Filled);
    let quantities: Vec<Decimal> = done.fills.iter().map(|f| f.quantity).collect();
    assert_eq!(quantities, [dec("100"), dec("100"), dec("50")]);
    let cost: Decimal = done.fills.iter().map(|f| f.price * f.quantity).sum();
    assert_eq!(done.avg_fill_price, Some((cost / dec("250")).round_dp(4)));
    let position = &alice
        .client
        .list_positions()
        .send()
        .await
        .unwrap()
        .into_inner()[0];
    assert_eq!(position.quantity, dec("250"));
    assert_conforms(&sim);
}

#[tokio::test]
async fn ioc_and_fok_never_rest() {
    let sim = sim().await;
    let (_, alice) = alice(&sim).await;
    let mut ioc = market(&alice, "ioc", OrderSide::Buy, "BAC", "150");
    ioc.order_tif = TimeInForce::Ioc;
    let ioc = alice
        .client
        .place_order()
        .body(ioc)
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (ioc.status, ioc.filled_qty),
        (OrderStatus::Cancelled, Some(dec("100")))
    );

    let mut fok = market(&alice, "fok-big", OrderSide::Buy, "BAC", "150");
    fok.order_tif = TimeInForce::Fok;
    let fok = alice
        .client
        .place_order()
        .body(fok)
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!((fok.status, fok.fills.len()), (OrderStatus::Cancelled, 0));

    let mut fok = market(&alice, "fok-small", OrderSide::Buy, "BAC", "100");
    fok.order_tif = TimeInForce::Fok;
    let fok = alice
        .client
        .place_order()
        .body(fok)
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fok.status, OrderStatus::Filled);

    // An IOC limit that does not cross is cancelled at once.
    let low = equity(&alice, "ioc-low", OrderSide::Buy, "BAC")
        .quantity("1")
        .limit("1.00")
        .time_in_force(TimeInForce::Ioc)
        .build()
        .unwrap();
    let low = alice
        .client
        .place_order()
        .body(low)
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!((low.status, low.fills.len()), (OrderStatus::Cancelled, 0));
    assert_conforms(&sim);
}

#[tokio::test]
async fn limit_and_stop_orders_wait_for_the_price() {
    // Minute ticks: the walk moves enough to cross a few cents within a few hundred ticks.
    let sim = Simulator::builder()
        .manual_clock()
        .tick(Duration::from_secs(60))
        .start_time(chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2026, 3, 2, 15, 0, 0).unwrap())
        .start()
        .await
        .unwrap();
    let (_, alice) = alice(&sim).await;
    let mid = sim.price("TSLA").unwrap();
    let gtc = |cl: &str| {
        equity(&alice, cl, OrderSide::Buy, "TSLA")
            .quantity("5")
            .time_in_force(TimeInForce::Gtc)
    };
    let limit = gtc("lmt").limit(mid - dec("0.05")).build().unwrap();
    let stop_price = mid + dec("0.05");
    let stop = gtc("stp").stop(stop_price).build().unwrap();
    let far = gtc("far")
        .limit((mid / dec("2")).round_dp(2))
        .build()
        .unwrap();
    let mut ids = Vec::new();
    for request in [limit, stop, far] {
        let placed = alice
            .client
            .place_order()
            .body(request)
            .send()
            .await
            .unwrap()
            .into_inner();
        assert_eq!(placed.status, OrderStatus::Working, "{placed:?}");
        ids.push(placed.order_id);
    }
    // Reserved for the resting buys: buying power drops, cash does not.
    let balance = &alice
        .client
        .list_balances()
        .send()
        .await
        .unwrap()
        .into_inner()[0];
    assert_eq!(balance.cash, Some(dec("100000")));
    assert!(balance.buying_power.unwrap() < dec("100000"));

    let get = |id: String| {
        alice
            .client
            .get_order()
            .account_id(&alice.account_id)
            .order_id(id)
            .send()
    };
    let mut filled = (false, false);
    for _ in 0..100 {
        sim.advance(Duration::from_secs(600));
        let l = get(ids[0].clone()).await.unwrap().into_inner();
        let s = get(ids[1].clone()).await.unwrap().into_inner();
        if l.status == OrderStatus::Filled {
            assert!(
                l.fills[0].price <= mid - dec("0.05"),
                "a buy limit fills at or below its limit"
            );
            filled.0 = true;
        }
        if s.status == OrderStatus::Filled {
            assert!(
                s.fills[0].price >= stop_price,
                "a buy stop fills once the ask reaches it"
            );
            filled.1 = true;
        }
        if filled.0 && filled.1 {
            break;
        }
    }
    assert_eq!(filled, (true, true), "the walk crossed both prices");
    let far = get(ids[2].clone()).await.unwrap().into_inner();
    assert_eq!(
        far.status,
        OrderStatus::Working,
        "half the price is never reached"
    );
    assert_conforms(&sim);
}

#[tokio::test]
async fn modify_replaces_and_cancel_goes_through_pending_cancel() {
    let sim = sim().await;
    let (_, alice) = alice(&sim).await;
    let mid = sim.price("NVDA").unwrap();
    let resting = equity(&alice, "rest-1", OrderSide::Buy, "NVDA")
        .quantity("10")
        .limit((mid * dec("0.5")).round_dp(2))
        .build()
        .unwrap();
    let old = alice
        .client
        .place_order()
        .body(resting)
        .send()
        .await
        .unwrap()
        .into_inner();

    let modify = |cl: &str, qty: &str| {
        ModifyOrderRequest::try_from(
            ModifyOrderRequest::builder()
                .broker(BrokerCode::Alpaca)
                .new_cl_order_id(cl.to_string())
                .order_limit_price(Some((mid * dec("0.6")).round_dp(2)))
                .order_qty(Some(dec(qty))),
        )
        .expect("every required field is given")
    };
    let new = alice
        .client
        .modify_order()
        .account_id(&alice.account_id)
        .order_id(&old.order_id)
        .body(modify("rest-2", "20"))
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_ne!(new.order_id, old.order_id);
    assert_eq!(
        (
            new.status.clone(),
            new.order_qty,
            new.cl_order_id.as_deref()
        ),
        (OrderStatus::Working, Some(dec("20")), Some("rest-2"))
    );
    assert_eq!(new.order_limit_price, Some((mid * dec("0.6")).round_dp(2)));
    let old = alice
        .client
        .get_order()
        .account_id(&alice.account_id)
        .order_id(&old.order_id)
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(old.status, OrderStatus::Replaced);
    assert_eq!(old.replaced_by.as_deref(), Some(new.order_id.as_str()));

    // A replaced order cannot be changed again; a cl_order_id cannot be reused today.
    let (status, _) = refused(
        alice
            .client
            .modify_order()
            .account_id(&alice.account_id)
            .order_id(&old.order_id)
            .body(modify("rest-3", "5"))
            .send()
            .await,
    );
    assert_eq!(status, 400);
    let (status, _) = refused(
        alice
            .client
            .modify_order()
            .account_id(&alice.account_id)
            .order_id(&new.order_id)
            .body(modify("rest-1", "5"))
            .send()
            .await,
    );
    assert_eq!(status, 409);

    alice
        .client
        .cancel_order()
        .account_id(&alice.account_id)
        .order_id(&new.order_id)
        .send()
        .await
        .unwrap();
    let pending = alice
        .client
        .get_order()
        .account_id(&alice.account_id)
        .order_id(&new.order_id)
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pending.status, OrderStatus::PendingCancel);
    sim.tick();
    let cancelled = alice
        .client
        .get_order()
        .account_id(&alice.account_id)
        .order_id(&new.order_id)
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cancelled.status, OrderStatus::Cancelled);
    let (status, message) = refused(
        alice
            .client
            .cancel_order()
            .account_id(&alice.account_id)
            .order_id(&new.order_id)
            .send()
            .await,
    );
    assert_eq!(status, 400, "{message}");
    assert_eq!(
        refused(
            alice
                .client
                .cancel_order()
                .account_id(&alice.account_id)
                .order_id("ord_nope")
                .send()
                .await
        )
        .0,
        404
    );
    assert_conforms(&sim);
}

#[tokio::test]
async fn day_orders_expire_at_the_close_and_gtc_orders_stay() {
    let sim = Simulator::builder()
        .manual_clock()
        .start_time(
            chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2026, 3, 2, 20, 59, 50).unwrap(),
        )
        .start()
        .await
        .unwrap();
    let (_, alice) = alice(&sim).await;
    let mid = sim.price("IBM").unwrap();
    let day = equity(&alice, "day", OrderSide::Buy, "IBM")
        .quantity("1")
        .limit((mid * dec("0.5")).round_dp(2))
        .build()
        .unwrap();
    let mut gtc = day.clone();
    gtc.cl_order_id = "gtc".into();
    gtc.order_tif = TimeInForce::Gtc;
    let day = alice
        .client
        .place_order()
        .body(day)
        .send()
        .await
        .unwrap()
        .into_inner();
    let gtc = alice
        .client
        .place_order()
        .body(gtc)
        .send()
        .await
        .unwrap()
        .into_inner();
    sim.advance(Duration::from_secs(20)); // past 21:00 UTC
    let get = |id: String| {
        alice
            .client
            .get_order()
            .account_id(&alice.account_id)
            .order_id(id)
            .send()
    };
    assert_eq!(
        get(day.order_id).await.unwrap().into_inner().status,
        OrderStatus::Expired
    );
    assert_eq!(
        get(gtc.order_id).await.unwrap().into_inner().status,
        OrderStatus::Working
    );
    assert_conforms(&sim);
}

#[tokio::test]
async fn rejections_carry_a_reason() {
    let sim = sim().await;
    let (_, alice) = alice(&sim).await;
    let unknown = alice
        .client
        .place_order()
        .body(market(&alice, "r1", OrderSide::Buy, "ZZZZ", "1"))
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(unknown.status, OrderStatus::Rejected);
    assert!(
        unknown
            .reject_reason
            .unwrap()
            .contains("unknown symbol ZZZZ")
    );

    let poor = alice
        .client
        .place_order()
        .body(market(&alice, "r2", OrderSide::Buy, "NFLX", "1000"))
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(poor.status, OrderStatus::Rejected);
    assert!(
        poor.reject_reason
            .unwrap()
            .contains("insufficient buying power")
    );

    let naked = alice
        .client
        .place_order()
        .body(market(&alice, "r3", OrderSide::Sell, "AAPL", "1"))
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(naked.status, OrderStatus::Rejected);
    assert!(
        naked
            .reject_reason
            .unwrap()
            .contains("insufficient position")
    );

    let short = alice
        .client
        .place_order()
        .body(market(&alice, "r4", OrderSide::SellShort, "AAPL", "1"))
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(short.status, OrderStatus::Filled, "SELL_SHORT may go short");
    assert_eq!(
        alice
            .client
            .list_positions()
            .send()
            .await
            .unwrap()
            .into_inner()[0]
            .quantity,
        dec("-1")
    );
    assert_conforms(&sim);
}

#[tokio::test]
async fn invalid_orders_are_refused_naming_the_field() {
    let sim = sim().await;
    let (platform, alice) = alice(&sim).await;
    let place = |request| alice.client.place_order().body(request).send();

    // What the builder refuses to build, the simulator refuses too: bodies made by hand.
    let mut no_limit = market(&alice, "v1", OrderSide::Buy, "AAPL", "1");
    no_limit.order_type = OrderType::Limit;
    let (status, message) = refused(place(no_limit).await);
    assert_eq!(
        (status, message.starts_with("order_limit_price")),
        (400, true),
        "{message}"
    );

    let mut no_stop = market(&alice, "v2", OrderSide::Buy, "AAPL", "1");
    no_stop.order_type = OrderType::StopLimit;
    no_stop.order_limit_price = Some(dec("1"));
    let (status, message) = refused(place(no_stop).await);
    assert_eq!(
        (status, message.starts_with("stop_price")),
        (400, true),
        "{message}"
    );

    let mut zero = market(&alice, "v3", OrderSide::Buy, "AAPL", "1");
    zero.order_qty = Some(Decimal::ZERO);
    let (status, message) = refused(place(zero).await);
    assert_eq!(
        (status, message.starts_with("order_qty")),
        (400, true),
        "{message}"
    );

    let mut wrong_broker = market(&alice, "v4", OrderSide::Buy, "AAPL", "1");
    wrong_broker.broker = BrokerCode::Webull;
    let (status, message) = refused(place(wrong_broker).await);
    assert_eq!(
        (status, message.starts_with("broker")),
        (400, true),
        "{message}"
    );

    let mut no_side = market(&alice, "v5", OrderSide::Buy, "AAPL", "1");
    no_side.side = None;
    let (status, message) = refused(place(no_side).await);
    assert_eq!(
        (status, message.starts_with("side")),
        (400, true),
        "{message}"
    );

    let mut elsewhere = market(&alice, "v6", OrderSide::Buy, "AAPL", "1");
    elsewhere.account_id = "acct_nope".into();
    assert_eq!(refused(place(elsewhere).await).0, 404);

    // A body that is not an order says what is missing.
    let raw = reqwest::Client::new()
        .post(format!("{}/orders", sim.rest_url()))
        .header("client-id", "sim-client-id")
        .header("client-secret", "sim-client-secret")
        .header("user-id", "alice")
        .header("user-secret", alice.credentials.user_secret.expose())
        .json(&serde_json::json!({"account_id": alice.account_id, "broker": "ALPACA"}))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    let body: serde_json::Value = raw.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("cl_order_id"),
        "{body}"
    );

    // The same cl_order_id twice in a day: 409, and the first order stands.
    let first = place(market(&alice, "dup", OrderSide::Buy, "AAPL", "1"))
        .await
        .unwrap()
        .into_inner();
    let (status, message) =
        refused(place(market(&alice, "dup", OrderSide::Buy, "AAPL", "1")).await);
    assert_eq!(status, 409, "{message}");
    assert_eq!(first.status, OrderStatus::Filled);

    // Someone else's account is not found, and a read-only account cannot trade.
    let bob = sim
        .paper_user(&platform, "bob", BrokerCode::Alpaca)
        .await
        .unwrap();
    let mut theirs = market(&alice, "v7", OrderSide::Buy, "AAPL", "1");
    theirs.account_id = bob.account_id.clone();
    assert_eq!(refused(place(theirs).await).0, 404);
    assert_eq!(
        refused(
            alice
                .client
                .get_order()
                .account_id(&bob.account_id)
                .order_id("x")
                .send()
                .await
        )
        .0,
        404
    );
    assert_conforms(&sim);
}

#[tokio::test]
async fn amounts_are_plain_decimals_of_at_most_nine_decimals_and_broker_codes_any_case() {
    let sim = sim().await;
    let (_, alice) = alice(&sim).await;
    let post = |body: serde_json::Value| raw(&sim, &alice, reqwest::Method::POST, "/orders", body);
    let base = |cl: &str| {
        serde_json::json!({
            "account_id": alice.account_id, "broker": "ALPACA", "cl_order_id": cl,
            "instrument": "STK", "order_tif": "DAY", "order_type": "LMT", "side": "BUY",
            "symbol": "AAPL", "order_qty": "1", "order_limit_price": "150",
        })
    };
    let with = |cl: &str, field: &str, value: serde_json::Value| {
        let mut body = base(cl);
        body[field] = value;
        body
    };
    let refused_naming = |(status, body): (u16, serde_json::Value), field: &str| {
        let message = body["message"].as_str().unwrap_or_default().to_string();
        assert_eq!(status, 400, "{body}");
        assert!(message.starts_with(field), "names {field}: {message}");
        message
    };

    // More than 9 decimals: refused, not rounded or filled.
    let message = refused_naming(
        post(with("a1", "order_qty", "0.0000000001".into())).await,
        "order_qty",
    );
    assert!(message.contains("10 decimals"), "{message}");
    refused_naming(
        post(with("a2", "order_limit_price", "150.0000000001".into())).await,
        "order_limit_price",
    );
    // Not plain decimal form: neither a string nor a JSON number in exponent form.
    let message = refused_naming(
        post(with("a3", "order_qty", "1e3".into())).await,
        "order_qty",
    );
    assert!(message.contains("\"1e3\""), "{message}");
    let number = base("a4")
        .to_string()
        .replace(r#""order_qty":"1""#, r#""order_qty":1e3"#);
    assert!(number.contains("1e3"), "{number}");
    let number = raw(&sim, &alice, reqwest::Method::POST, "/orders", number).await;
    refused_naming(number, "order_qty");
    let mut stop = with("a5", "order_type", "STPLMT".into());
    stop["stop_price"] = " 151".into();
    refused_naming(post(stop).await, "stop_price");

    // Legs: the field path names the leg.
    let legs = serde_json::json!({
        "account_id": alice.account_id, "broker": "ALPACA", "cl_order_id": "a6",
        "instrument": "MLEG_OPT", "order_tif": "DAY", "order_type": "LMT", "symbol": null,
        "order_qty": "1", "order_limit_price": "1.10",
        "legs": [
            {"action": "BUY_TO_OPEN", "ratio": "1", "symbol": "AAPL260320C00190000"},
            {"action": "SELL_TO_OPEN", "ratio": "1E0", "symbol": "AAPL260320C00200000"},
        ],
    });
    refused_naming(post(legs).await, "legs[1].ratio");
    assert!(
        alice
            .client
            .list_orders()
            .send()
            .await
            .unwrap()
            .into_inner()
            .orders
            .is_empty(),
        "nothing refused was placed"
    );

    // Exactly 9 decimals, and a broker code in any case (documented case-insensitive).
    let (status, order) = post(with("ok", "order_limit_price", "150.123456789".into())).await;
    assert!((200..300).contains(&status), "{order}");
    let (status, lower) = post(with("lower", "broker", "alpaca".into())).await;
    assert!((200..300).contains(&status), "{lower}");

    // Modify is as strict.
    let path = format!(
        "/accounts/{}/orders/{}",
        alice.account_id,
        order["order_id"].as_str().unwrap()
    );
    let patch = raw(
        &sim,
        &alice,
        reqwest::Method::PATCH,
        &path,
        serde_json::json!({"broker": "ALPACA", "new_cl_order_id": "m1", "order_limit_price": "1.5e2"}),
    )
    .await;
    refused_naming(patch, "order_limit_price");
}

#[tokio::test]
async fn notional_and_option_orders() {
    let sim = sim().await;
    let (_, alice) = alice(&sim).await;
    let notional = equity(&alice, "n1", OrderSide::Buy, "AMZN")
        .notional("1000")
        .market()
        .build()
        .unwrap();
    let placed = alice
        .client
        .place_order()
        .body(notional)
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(placed.status, OrderStatus::Filled);
    let cost = placed.fills[0].price * placed.filled_qty.unwrap();
    assert!(cost <= dec("1000") && cost > dec("999.5"), "{cost}");

    // One call option from the chain: 100 shares a contract.
    let expiry = {
        let mut day = sim.now().date_naive() + chrono::Duration::days(1);
        while chrono::Datelike::weekday(&day) != chrono::Weekday::Fri {
            day += chrono::Duration::days(1);
        }
        day
    };
    let call = format!("AAPL{}C00190000", expiry.format("%y%m%d"));
    let option = option(&alice, "o1", OrderSide::BuyToOpen, &call)
        .quantity("2")
        .market()
        .build()
        .unwrap();
    let before = alice
        .client
        .list_balances()
        .send()
        .await
        .unwrap()
        .into_inner()[0]
        .cash
        .unwrap();
    let placed = alice
        .client
        .place_order()
        .body(option)
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(placed.status, OrderStatus::Filled, "{placed:?}");
    let after = alice
        .client
        .list_balances()
        .send()
        .await
        .unwrap()
        .into_inner()[0]
        .cash
        .unwrap();
    assert_eq!(before - after, placed.fills[0].price * dec("200"));
    let positions = alice
        .client
        .list_positions()
        .symbols(call.clone())
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (positions[0].quantity, positions[0].instrument.clone()),
        (dec("2"), Some(Instrument::Option))
    );
    assert_conforms(&sim);
}

#[tokio::test]
async fn multi_leg_orders_fill_as_one() {
    let sim = sim().await;
    let (_, alice) = alice(&sim).await;
    let mut day = sim.now().date_naive() + chrono::Duration::days(1);
    while chrono::Datelike::weekday(&day) != chrono::Weekday::Fri {
        day += chrono::Duration::days(1);
    }
    let call = |strike: &str| -> OptionSymbol {
        format!("AAPL{}C00{strike}000", day.format("%y%m%d"))
            .parse()
            .unwrap()
    };
    // A bull call spread: buy the 185 call, sell the 195 call.
    let strategy = Strategy::custom([Leg::buy(call("185")), Leg::sell(call("195"))]).unwrap();
    let mut spread = OrderBuilder::multi_leg(strategy)
        .account(&alice.account_id, BrokerCode::Alpaca)
        .cl_order_id("spread")
        .quantity("3")
        .market()
        .build()
        .unwrap();
    let placed = alice
        .client
        .place_order()
        .body(spread.clone())
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(placed.status, OrderStatus::Filled, "{placed:?}");
    assert_eq!(placed.fills.len(), 1, "one fill for the whole spread");
    assert!(
        placed.fills[0].price > Decimal::ZERO,
        "a bull call spread is a debit"
    );
    let positions = alice
        .client
        .list_positions()
        .send()
        .await
        .unwrap()
        .into_inner();
    let quantities: Vec<(String, Decimal)> = positions
        .iter()
        .map(|p| (p.symbol.clone(), p.quantity))
        .collect();
    assert_eq!(
        quantities,
        [
            (spread.legs[0].symbol.clone(), dec("3")),
            (spread.legs[1].symbol.clone(), dec("-3"))
        ]
    );

    spread.cl_order_id = "spread-2".into();
    spread.legs.truncate(1);
    let (status, message) = refused(alice.client.place_order().body(spread).send().await);
    assert_eq!(
        (status, message.starts_with("legs")),
        (400, true),
        "{message}"
    );
    assert_conforms(&sim);
}

#[tokio::test]
async fn orders_page_with_cursors_and_filter() {
    // Cursors travel in the envelope: a wire variant (the default answer is a bare array).
    let sim = connect_trade_sim::Simulator::builder()
        .manual_clock()
        .start_time(chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2026, 3, 2, 15, 0, 0).unwrap())
        .wire(connect_trade_sim::Wire::OrdersEnvelope)
        .start()
        .await
        .unwrap();
    let (_, alice) = alice(&sim).await;
    let mid = sim.price("BAC").unwrap();
    for i in 0..7 {
        let resting = equity(&alice, &format!("p{i}"), OrderSide::Buy, "BAC")
            .quantity("1")
            .limit((mid * dec("0.5")).round_dp(2))
            .build()
            .unwrap();
        alice
            .client
            .place_order()
            .body(resting)
            .send()
            .await
            .unwrap();
    }
    alice
        .client
        .place_order()
        .body(market(&alice, "m", OrderSide::Buy, "F", "1"))
        .send()
        .await
        .unwrap();

    // No parameters: today's open orders, newest first.
    let open = alice
        .client
        .list_orders()
        .send()
        .await
        .unwrap()
        .into_inner();
    let cls: Vec<_> = open
        .orders
        .iter()
        .map(|o| o.cl_order_id.clone().unwrap())
        .collect();
    assert_eq!(cls, ["p6", "p5", "p4", "p3", "p2", "p1", "p0"]);
    assert_eq!(open.next_cursor, None);

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut request = alice
            .client
            .list_orders()
            .status(OrderStatusFilter::All)
            .sort(SortOrder::Asc)
            .limit(std::num::NonZeroU32::new(3).unwrap());
        if let Some(c) = cursor.take() {
            request = request.cursor(c);
        }
        let page = request.send().await.unwrap().into_inner();
        pages += 1;
        if pages > 1 {
            assert!(page.prev_cursor.is_some());
        }
        seen.extend(page.orders.into_iter().map(|o| o.cl_order_id.unwrap()));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ["p0", "p1", "p2", "p3", "p4", "p5", "p6", "m"]);

    let filled = alice
        .client
        .list_orders()
        .status(OrderStatusFilter::Filled)
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(filled.orders.len(), 1);
    let by_symbol = alice
        .client
        .list_orders()
        .status(OrderStatusFilter::All)
        .symbols("F,MSFT")
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_symbol.orders.len(), 1);
    let by_side = alice
        .client
        .list_orders()
        .status(OrderStatusFilter::All)
        .side(OrderSide::Sell)
        .send()
        .await
        .unwrap()
        .into_inner();
    assert!(by_side.orders.is_empty());
    let later = alice
        .client
        .list_orders()
        .status(OrderStatusFilter::All)
        .start_time(sim.now() + chrono::Duration::seconds(1))
        .send()
        .await
        .unwrap()
        .into_inner();
    assert!(later.orders.is_empty());

    let raw = |query: &str| {
        reqwest::Client::new()
            .get(format!("{}/orders?{query}", sim.rest_url()))
            .header("client-id", "sim-client-id")
            .header("client-secret", "sim-client-secret")
            .header("user-id", "alice")
            .header("user-secret", alice.credentials.user_secret.expose())
            .send()
    };
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("cursor=garbage", "cursor"),
        ("status=bogus", "status"),
        ("start_time=yesterday", "start_time"),
    ] {
        let response = raw(query).await.unwrap();
        assert_eq!(response.status(), 400, "{query}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert!(
            body["message"].as_str().unwrap().starts_with(field),
            "{query}: {body}"
        );
    }
    assert_conforms(&sim);
}

#[tokio::test]
async fn tokens_for_market_data_and_users() {
    let sim = sim().await;
    let (_, alice) = alice(&sim).await;
    let first = alice
        .client
        .get_market_data_token()
        .connection_id(&alice.connection_id)
        .send()
        .await
        .unwrap()
        .into_inner();
    let second = alice
        .client
        .get_market_data_token()
        .connection_id(&alice.connection_id)
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_ne!(
        first.access_token.expose(),
        second.access_token.expose(),
        "a new token replaces the old"
    );
    assert_eq!(
        second.expires_at,
        Some(sim.now() + chrono::Duration::hours(24))
    );
    assert_eq!(
        refused(
            alice
                .client
                .get_market_data_token()
                .connection_id("conn_nope")
                .send()
                .await
        )
        .0,
        404
    );

    let token = alice
        .client
        .create_user_token()
        .body_map(|b| b.scopes(vec![TokenScope::Read, TokenScope::Trade]))
        .send()
        .await
        .unwrap()
        .into_inner();
    assert!(!token.access_token.expose().is_empty());
    assert_eq!(
        token.expires_at,
        Some(sim.now() + chrono::Duration::hours(1))
    );
    let (status, message) = refused(
        alice
            .client
            .create_user_token()
            .body_map(|b| b.scopes(Vec::new()))
            .send()
            .await,
    );
    assert_eq!(
        (status, message.starts_with("scopes")),
        (400, true),
        "{message}"
    );
    assert_conforms(&sim);
}

#[tokio::test]
async fn gets_are_retried_under_injected_failures_and_posts_are_not() {
    let sim = sim().await;
    let quick = RetryPolicy {
        max_retries: 3,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(5),
        max_retry_after: Duration::from_secs(5),
    };
    let platform = ConnectTrade::builder()
        .credentials(sim.credentials())
        .base_url(sim.rest_url())
        .retry_policy(quick)
        .build()
        .unwrap();
    platform
        .create_user()
        .body_map(|b| b.user_id("erin"))
        .send()
        .await
        .unwrap();

    sim.faults().fail_next(2, RestFault::status(503));
    let before = sim.faults().rest_calls();
    let users = platform.list_users().send().await.unwrap().into_inner();
    assert_eq!(users.len(), 1);
    assert_eq!(
        sim.faults().rest_calls() - before,
        3,
        "two 503s, then the answer"
    );

    sim.faults()
        .fail_next(1, RestFault::rate_limited(Duration::ZERO));
    assert_eq!(
        platform
            .list_users()
            .send()
            .await
            .unwrap()
            .into_inner()
            .len(),
        1
    );

    sim.faults().fail_next(1, RestFault::status(503));
    let (status, _) = refused(
        platform
            .create_user()
            .body_map(|b| b.user_id("frank"))
            .send()
            .await,
    );
    assert_eq!(status, 503, "a POST is never retried blindly");
    assert_eq!(
        platform
            .list_users()
            .send()
            .await
            .unwrap()
            .into_inner()
            .len(),
        1
    );

    // A 429 asking for longer than the client accepts reaches the caller with its Retry-After.
    sim.faults()
        .fail_next(1, RestFault::rate_limited(Duration::from_secs(120)));
    match platform.list_users().send().await.map_err(Error::from) {
        Err(Error::RateLimited { retry_after, .. }) => {
            assert_eq!(retry_after, Some(Duration::from_secs(120)))
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }

    // Every k-th call, deterministically.
    let strict = support_sim::platform(&sim);
    sim.faults().fail_every(3, RestFault::status(500));
    let outcomes: Vec<bool> = futures::future::join_all((0..6).map(|_| strict.list_users().send()))
        .await
        .into_iter()
        .map(|r| r.is_ok())
        .collect();
    assert_eq!(outcomes.iter().filter(|ok| !**ok).count(), 2);
    sim.faults().clear_rest();
    assert!(strict.list_users().send().await.is_ok());
    assert_conforms(&sim);
}

#[tokio::test]
async fn same_seed_same_prices_and_fills() {
    async fn run() -> (Vec<Decimal>, Decimal) {
        let sim = sim().await;
        let (_, alice) = alice(&sim).await;
        let mut prices = Vec::new();
        for _ in 0..50 {
            sim.tick();
            prices.push(sim.price("META").unwrap());
        }
        let placed = alice
            .client
            .place_order()
            .body(market(&alice, "x", OrderSide::Buy, "META", "1"))
            .send()
            .await
            .unwrap()
            .into_inner();
        (prices, placed.fills[0].price)
    }
    let (a, b) = (run().await, run().await);
    assert_eq!(a, b);
    assert!(a.0.windows(2).any(|w| w[0] != w[1]), "prices move");
}

#[test]
fn the_schema_checker_catches_a_response_that_breaks_the_spec() {
    let spec = support_sim::schema::Spec::load();
    let schema = spec
        .response_schema("GET", "/accounts/{account_id}/orders/{order_id}", 200)
        .unwrap()
        .unwrap();
    let mut errors = Vec::new();
    let good = serde_json::json!({"order_id": "o", "account_id": "a", "status": "filled", "order_qty": "1.5", "fills": [{"fill_id": "f", "quantity": "1", "price": "2.00", "time": "2026-03-02T15:00:00Z"}]});
    spec.validate(&schema, &good, "$", &mut errors);
    assert!(errors.is_empty(), "{errors:?}");
    let bad = serde_json::json!({"order_id": 7, "status": "teleported", "order_qty": 1.5, "fills": [{"fill_id": "f", "quantity": "1", "price": "2.00", "time": "yesterday"}], "symbol": null, "side": null});
    spec.validate(&schema, &bad, "$", &mut errors);
    let text = errors.join("\n");
    for expected in [
        "$.order_id: expected string",
        "required property \"account_id\"",
        "teleported",
        "$.order_qty: expected string",
        "$.fills[0].time",
        "$.side: null",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert!(!text.contains("$.symbol"), "symbol is nullable");
    let error = spec
        .response_schema("GET", "/orders", 404)
        .unwrap()
        .unwrap();
    assert_eq!(error["$ref"], "#/components/schemas/Error");
    assert_eq!(
        spec.response_schema("DELETE", "/users/{user_id}", 200)
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn pnl_realized_on_a_partial_close_and_daily_pnl_restarts_at_midnight() {
    let sim = Simulator::builder()
        .manual_clock()
        .tick(Duration::from_secs(60))
        .start_time(chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2026, 3, 2, 22, 0, 0).unwrap())
        .start()
        .await
        .unwrap();
    let (_, alice) = alice(&sim).await;
    let bought = alice
        .client
        .place_order()
        .body(market(&alice, "b", OrderSide::Buy, "GOOGL", "10"))
        .send()
        .await
        .unwrap()
        .into_inner();
    let cost = bought.fills[0].price;
    sim.advance(Duration::from_secs(3600));
    let sold = alice
        .client
        .place_order()
        .body(market(&alice, "s", OrderSide::Sell, "GOOGL", "4"))
        .send()
        .await
        .unwrap()
        .into_inner();
    let realized = (sold.fills[0].price - cost) * dec("4");
    let p = alice
        .client
        .list_positions()
        .send()
        .await
        .unwrap()
        .into_inner()
        .remove(0);
    assert_eq!((p.quantity, p.average_price), (dec("6"), Some(cost)));
    let unrealized = (p.last_price.unwrap() - cost) * dec("6");
    assert_eq!(p.unrealized_pl, Some(unrealized));
    assert_eq!(p.total_pl, Some(unrealized + realized));
    assert_eq!(p.daily_pl, p.total_pl, "everything happened today");

    // Past midnight UTC the day's P&L starts again from the last price; the total stays.
    sim.advance(Duration::from_secs(3 * 3600));
    let p = alice
        .client
        .list_positions()
        .send()
        .await
        .unwrap()
        .into_inner()
        .remove(0);
    let last = p.last_price.unwrap();
    assert_eq!(p.total_pl, Some((last - cost) * dec("6") + realized));
    assert_ne!(p.daily_pl, p.total_pl);
    assert_conforms(&sim);
}

#[tokio::test]
async fn stop_limit_orders_trigger_then_wait_for_their_limit() {
    let sim = sim().await;
    let (_, alice) = alice(&sim).await;
    let mid = sim.price("AMD").unwrap();
    // Buy stop-limit: triggers at once (stop below the ask), but the limit is far below.
    let request = equity(&alice, "sl", OrderSide::Buy, "AMD")
        .quantity("1")
        .stop_limit(mid - dec("1"), (mid * dec("0.5")).round_dp(2))
        .build()
        .unwrap();
    let placed = alice
        .client
        .place_order()
        .body(request)
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (placed.status, placed.broker_status.as_deref()),
        (OrderStatus::Working, Some("triggered"))
    );
    // A sell stop-limit far below never triggers.
    alice
        .client
        .place_order()
        .body(market(&alice, "own", OrderSide::Buy, "AMD", "1"))
        .send()
        .await
        .unwrap();
    let request = equity(&alice, "sl2", OrderSide::Sell, "AMD")
        .quantity("1")
        .stop_limit(
            (mid * dec("0.5")).round_dp(2),
            (mid * dec("0.4")).round_dp(2),
        )
        .build()
        .unwrap();
    let resting = alice
        .client
        .place_order()
        .body(request)
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (resting.status, resting.broker_status.as_deref()),
        (OrderStatus::Working, Some("accepted"))
    );
    assert_conforms(&sim);
}

#[tokio::test]
async fn a_cl_order_id_is_unique_per_day_and_deleting_a_user_removes_everything() {
    let sim = sim().await;
    let (platform, alice) = alice(&sim).await;
    let place = |cl: &str| {
        alice
            .client
            .place_order()
            .body(market(&alice, cl, OrderSide::Buy, "F", "1"))
            .send()
    };
    place("daily").await.unwrap();
    assert_eq!(refused(place("daily").await).0, 409);
    sim.advance(Duration::from_secs(24 * 3600));
    assert_eq!(
        place("daily").await.unwrap().into_inner().status,
        OrderStatus::Filled,
        "a new day, a new key space"
    );

    platform
        .delete_user()
        .user_id("alice")
        .send()
        .await
        .unwrap();
    assert_eq!(
        refused(alice.client.list_accounts().send().await).0,
        401,
        "the old secret is gone with the user"
    );
    let again = sim
        .paper_user(&platform, "alice", BrokerCode::Alpaca)
        .await
        .unwrap();
    assert_ne!(again.account_id, alice.account_id);
    assert_eq!(
        again
            .client
            .list_connections()
            .send()
            .await
            .unwrap()
            .into_inner()
            .len(),
        1
    );
    assert_eq!(
        refused(
            again
                .client
                .list_orders()
                .account_id(&alice.account_id)
                .send()
                .await
        )
        .0,
        404
    );
    assert_conforms(&sim);
}

#[test]
fn the_simulator_can_be_shared_across_tasks() {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<Simulator>();
    shareable::<connect_trade_sim::Faults>();
}

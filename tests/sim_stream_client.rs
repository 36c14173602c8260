//! The SDK's stream clients (`BrokerageStream`, `MarketDataStream`) end to end against the
//! simulator: what a user sees, including reconnects under injected faults.

mod support_sim;

use std::{collections::BTreeSet, time::Duration};

use connect_trade::{
    codes::{OrderSide, OrderStatus, OrderType},
    rest::types::Order,
    stream::{
        Backoff, BrokerageEvent, BrokerageStream, ConnectionEvent, MarketDataEvent,
        MarketDataStream, StreamConfig, StreamError,
        protocol::{Subscription, Topic},
    },
};
use connect_trade_sim::Simulator;
use support_sim::{alice, order, platform};

/// A manual clock starting now: the market data client checks token expiry against the wall
/// clock, so simulated time must not start in the past here.
async fn sim() -> Simulator {
    Simulator::builder()
        .manual_clock()
        .start()
        .await
        .expect("simulator starts")
}

/// Long enough for anything the simulator does; a hang fails instead of blocking the suite.
const PATIENCE: Duration = Duration::from_secs(10);

/// Reconnects quickly, so the tests stay fast.
fn quick() -> StreamConfig {
    StreamConfig::default().backoff(Backoff {
        initial: Duration::from_millis(5),
        max: Duration::from_millis(20),
        reset_after: Duration::from_secs(30),
    })
}

async fn next_brokerage(stream: &mut BrokerageStream) -> BrokerageEvent {
    tokio::time::timeout(PATIENCE, stream.next())
        .await
        .expect("an event in time")
        .expect("the stream goes on")
}

async fn next_market(stream: &mut MarketDataStream) -> MarketDataEvent {
    tokio::time::timeout(PATIENCE, stream.next())
        .await
        .expect("an event in time")
        .expect("the stream goes on")
}

#[tokio::test]
async fn a_partial_fill_seen_through_the_brokerage_stream_ends_equal_to_rest() {
    let sim = sim().await;
    let (platform, alice) = alice(&sim).await;
    let mut stream = BrokerageStream::for_platform(&platform)
        .url(sim.brokerage_stream_url())
        .config(quick())
        .subscribe([Topic::Orders])
        .connect()
        .await
        .unwrap();
    loop {
        if let BrokerageEvent::Subscribed { topics } = next_brokerage(&mut stream).await {
            assert_eq!(topics, [Topic::Orders]);
            break;
        }
    }

    let placed = alice
        .client
        .place_order()
        .body(order(
            &alice,
            "big",
            OrderSide::Buy,
            OrderType::Market,
            "JPM",
            "250",
        ))
        .send()
        .await
        .unwrap()
        .into_inner();
    sim.tick();
    sim.tick();
    let mut seen: Vec<Order> = Vec::new();
    while seen.last().is_none_or(|o| o.status != OrderStatus::Filled) {
        match next_brokerage(&mut stream).await {
            BrokerageEvent::Order { meta, order } => {
                assert_eq!(
                    (meta.user_id.as_str(), meta.account_id.as_str()),
                    ("alice", alice.account_id.as_str())
                );
                seen.push(*order);
            }
            BrokerageEvent::Connection(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    let fills: Vec<usize> = seen
        .iter()
        .filter(|o| o.status == OrderStatus::PartiallyFilled)
        .map(|o| o.fills.len())
        .collect();
    assert_eq!(fills, [1, 2], "two partial fills before the last");
    let rest = alice
        .client
        .get_order()
        .account_id(&alice.account_id)
        .order_id(&placed.order_id)
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(seen.last().unwrap(), &rest);
}

#[tokio::test]
async fn the_brokerage_stream_reconnects_and_keeps_its_topics() {
    let sim = sim().await;
    let (platform, alice) = alice(&sim).await;
    let mut stream = BrokerageStream::for_platform(&platform)
        .url(sim.brokerage_stream_url())
        .config(quick())
        .subscribe([Topic::Orders, Topic::Balances])
        .connect()
        .await
        .unwrap();
    sim.faults().drop_streams();
    let mut topics = BTreeSet::new();
    let mut reconnected = false;
    while !(reconnected && topics.len() == 2) {
        match next_brokerage(&mut stream).await {
            BrokerageEvent::Connection(ConnectionEvent::Reconnected { .. }) => reconnected = true,
            BrokerageEvent::Subscribed { topics: now } if reconnected => topics.extend(now),
            _ => {}
        }
    }
    alice
        .client
        .place_order()
        .body(order(
            &alice,
            "after",
            OrderSide::Buy,
            OrderType::Market,
            "F",
            "1",
        ))
        .send()
        .await
        .unwrap();
    loop {
        if let BrokerageEvent::Order { order, .. } = next_brokerage(&mut stream).await {
            assert_eq!(order.cl_order_id.as_deref(), Some("after"));
            break;
        }
    }
}

#[tokio::test]
async fn a_second_brokerage_session_ends_the_first_without_a_reconnect_storm() {
    let sim = sim().await;
    let platform = platform(&sim);
    let connect = || {
        BrokerageStream::for_platform(&platform)
            .url(sim.brokerage_stream_url())
            .config(quick())
            .connect()
    };
    let mut first = connect().await.unwrap();
    let _second = connect().await.unwrap();
    loop {
        match next_brokerage(&mut first).await {
            BrokerageEvent::Connection(ConnectionEvent::Terminated(error)) => {
                assert!(
                    matches!(error, StreamError::SessionReplaced { .. }),
                    "{error:?}"
                );
                break;
            }
            BrokerageEvent::Connection(ConnectionEvent::Reconnected { .. }) => {
                panic!("a replaced session must not reconnect")
            }
            _ => {}
        }
    }
    assert!(
        tokio::time::timeout(PATIENCE, first.next())
            .await
            .unwrap()
            .is_none(),
        "Terminated is the last event"
    );
}

#[tokio::test]
async fn market_data_reconnects_under_injected_drops_with_no_subscription_lost() {
    let sim = sim().await;
    let (_, alice) = alice(&sim).await;
    let mut stream = MarketDataStream::for_connection(&alice.client, &alice.connection_id)
        .url(sim.market_data_url())
        .config(quick())
        .subscribe(Subscription::quotes(["AAPL"]))
        .connect()
        .await
        .unwrap();
    // One more, live.
    stream.subscribe(Subscription::quotes(["MSFT"])).unwrap();
    let mut subscribed = BTreeSet::new();
    while subscribed.len() < 2 {
        if let MarketDataEvent::Subscribed(s) = next_market(&mut stream).await {
            subscribed.extend(s.symbols);
        }
    }

    // Every connection now dies after 8 messages; tick until the stream has reconnected
    // three times, then stop the faults.
    sim.faults().drop_streams_every(8);
    let mut reconnects = 0;
    while reconnects < 3 {
        sim.tick();
        loop {
            match tokio::time::timeout(Duration::from_millis(50), stream.next()).await {
                Ok(Some(MarketDataEvent::Connection(ConnectionEvent::Reconnected { .. }))) => {
                    reconnects += 1
                }
                Ok(Some(MarketDataEvent::Connection(ConnectionEvent::Terminated(e)))) => {
                    panic!("terminated: {e}")
                }
                Ok(Some(_)) => continue,
                Ok(None) => panic!("the stream ended"),
                Err(_) => break, // drained what this tick produced
            }
        }
    }
    sim.faults().drop_streams_every(0);
    sim.faults().drop_streams();
    loop {
        if let MarketDataEvent::Connection(ConnectionEvent::Reconnected { .. }) =
            next_market(&mut stream).await
        {
            break;
        }
    }

    let subscriptions = stream.list_subscriptions().await.unwrap();
    let mut symbols: Vec<String> = subscriptions.into_iter().flat_map(|s| s.symbols).collect();
    symbols.sort();
    assert_eq!(symbols, ["AAPL", "MSFT"], "every subscription replayed");
    sim.tick();
    let mut quoted = BTreeSet::new();
    while quoted.len() < 2 {
        if let MarketDataEvent::Quote(q) = next_market(&mut stream).await {
            quoted.insert(q.symbol);
        }
    }
}

#[tokio::test]
async fn market_data_survives_a_malformed_frame() {
    let sim = sim().await;
    let (_, alice) = alice(&sim).await;
    let mut stream = MarketDataStream::for_connection(&alice.client, &alice.connection_id)
        .url(sim.market_data_url())
        .config(quick())
        .subscribe(Subscription::quotes(["SPY"]))
        .connect()
        .await
        .unwrap();
    loop {
        if let MarketDataEvent::Subscribed(_) = next_market(&mut stream).await {
            break;
        }
    }
    sim.faults().send_malformed_frame();
    loop {
        match next_market(&mut stream).await {
            MarketDataEvent::Error(_) => break,
            MarketDataEvent::Quote(_) => continue,
            other => panic!("expected an error event, got {other:?}"),
        }
    }
    sim.tick();
    loop {
        if let MarketDataEvent::Quote(q) = next_market(&mut stream).await {
            assert_eq!(q.symbol, "SPY");
            break;
        }
    }
}

//! The stream clients end to end against the simulator speaking each plausible variant of the
//! streams' wire format (`connect_trade_sim::Wire`): no welcome, no `authenticated` reply,
//! string sequences, errors with only a `message`, an extra field, a missing field. Under
//! each (and under none), the three things users rely on most:
//!
//! - brokerage updates seen through drops end equal to REST;
//! - market data for 250 symbols keeps every subscription across drops;
//! - an expired market data token is renewed and the data goes on.

mod support_sim;

use std::{collections::BTreeSet, time::Duration};

use connect_trade::{
    codes::{BrokerCode, OrderSide, OrderStatus},
    orders::OrderBuilder,
    rest::types::Order,
    stream::{
        Backoff, BrokerageEvent, BrokerageStream, ConnectionEvent, MarketDataEvent,
        MarketDataStream, StreamConfig, StreamError,
        protocol::{Subscription, Topic},
    },
};
use connect_trade_sim::{Simulator, SimulatorBuilder, Wire};
use support_sim::{alice, dec};

/// No variant (the simulator's default shapes), then each stream variant alone.
fn variants() -> Vec<Option<Wire>> {
    let mut all = vec![None];
    all.extend(Wire::STREAM.iter().copied().map(Some));
    all
}

fn name(wire: Option<Wire>) -> &'static str {
    wire.map_or("default", Wire::name)
}

async fn start(wire: Option<Wire>, builder: SimulatorBuilder) -> Simulator {
    let builder = builder.manual_clock();
    let builder = match wire {
        Some(wire) => builder.wire(wire),
        None => builder,
    };
    builder.start().await.expect("simulator starts")
}

/// Long enough for anything the simulator does; a hang fails instead of blocking the suite.
const PATIENCE: Duration = Duration::from_secs(10);

/// Quick reconnects and a short grace period, so the variants without a welcome or an
/// `authenticated` reply stay fast.
fn quick() -> StreamConfig {
    StreamConfig::default()
        .grace(Duration::from_millis(100))
        .backoff(Backoff {
            initial: Duration::from_millis(5),
            max: Duration::from_millis(20),
            reset_after: Duration::from_secs(30),
        })
}

async fn next_brokerage(stream: &mut BrokerageStream, wire: Option<Wire>) -> BrokerageEvent {
    tokio::time::timeout(PATIENCE, stream.next())
        .await
        .unwrap_or_else(|_| panic!("{}: an event in time", name(wire)))
        .unwrap_or_else(|| panic!("{}: the stream goes on", name(wire)))
}

async fn next_market(stream: &mut MarketDataStream, wire: Option<Wire>) -> MarketDataEvent {
    tokio::time::timeout(PATIENCE, stream.next())
        .await
        .unwrap_or_else(|_| panic!("{}: an event in time", name(wire)))
        .unwrap_or_else(|| panic!("{}: the stream goes on", name(wire)))
}

#[tokio::test]
async fn brokerage_updates_through_drops_end_equal_to_rest_under_every_variant() {
    for wire in variants() {
        let sim = start(wire, Simulator::builder()).await;
        let (platform, alice) = alice(&sim).await;
        let mut stream = BrokerageStream::for_platform(&platform)
            .url(sim.brokerage_stream_url())
            .config(quick())
            .subscribe([Topic::Orders])
            .connect()
            .await
            .unwrap_or_else(|e| panic!("{}: connect: {e}", name(wire)));
        loop {
            match next_brokerage(&mut stream, wire).await {
                BrokerageEvent::Connection(ConnectionEvent::Connected) => break,
                BrokerageEvent::Subscribed { .. } => {}
                other => panic!("{}: before Connected: {other:?}", name(wire)),
            }
        }

        let request = OrderBuilder::equity("JPM", OrderSide::Buy)
            .account(&alice.account_id, BrokerCode::Alpaca)
            .cl_order_id("big")
            .quantity(dec("250"))
            .market()
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
        // Two drops while the order is working; every update after the second reconnect
        // must still arrive.
        for _ in 0..2 {
            sim.faults().drop_streams();
            loop {
                match next_brokerage(&mut stream, wire).await {
                    BrokerageEvent::Connection(ConnectionEvent::Reconnected { .. }) => break,
                    BrokerageEvent::Connection(ConnectionEvent::Terminated(e)) => {
                        panic!("{}: terminated: {e}", name(wire))
                    }
                    _ => {}
                }
            }
        }
        assert_eq!(
            stream.subscriptions(),
            vec![Topic::Orders],
            "{}",
            name(wire)
        );
        let mut seen: Vec<Order> = Vec::new();
        while seen.last().is_none_or(|o| o.status != OrderStatus::Filled) {
            sim.tick();
            match next_brokerage(&mut stream, wire).await {
                BrokerageEvent::Order { meta, order } => {
                    assert_eq!(meta.account_id, alice.account_id, "{}", name(wire));
                    if wire != Some(Wire::MissingField) {
                        assert!(meta.sequence.is_some(), "{}: {meta:?}", name(wire));
                    }
                    seen.push(*order);
                }
                BrokerageEvent::Connection(ConnectionEvent::Terminated(e)) => {
                    panic!("{}: terminated: {e}", name(wire))
                }
                _ => {}
            }
        }
        let rest = alice
            .client
            .get_order()
            .account_id(&alice.account_id)
            .order_id(&placed.order_id)
            .send()
            .await
            .unwrap()
            .into_inner();
        assert_eq!(seen.last(), Some(&rest), "{}", name(wire));
        stream.close().await;
        sim.shutdown().await;
    }
}

#[tokio::test]
async fn market_data_for_250_symbols_keeps_every_subscription_across_drops_under_every_variant() {
    let symbols: Vec<String> = (0..250).map(|i| format!("W{i:03}")).collect();
    for wire in variants() {
        let mut builder = Simulator::builder();
        for symbol in &symbols {
            builder = builder.symbol(symbol.clone(), dec("100"));
        }
        let sim = start(wire, builder).await;
        let (_, alice) = alice(&sim).await;
        let mut stream = MarketDataStream::for_connection(&alice.client, &alice.connection_id)
            .url(sim.market_data_url())
            .config(quick())
            .subscribe(Subscription::quotes(symbols.clone()))
            .connect()
            .await
            .unwrap_or_else(|e| panic!("{}: connect: {e}", name(wire)));
        let mut drops = 0;
        // The quotes of the last session: every subscription answers with the current quote.
        let mut quoted = BTreeSet::new();
        loop {
            match next_market(&mut stream, wire).await {
                MarketDataEvent::Connection(
                    ConnectionEvent::Connected | ConnectionEvent::Reconnected { .. },
                ) => {
                    if drops == 2 {
                        break;
                    }
                    drops += 1;
                    sim.faults().drop_streams();
                }
                MarketDataEvent::Connection(ConnectionEvent::Reconnecting { .. }) => quoted.clear(),
                MarketDataEvent::Connection(ConnectionEvent::Terminated(e)) => {
                    panic!("{}: terminated: {e}", name(wire))
                }
                MarketDataEvent::Quote(quote) => {
                    quoted.insert(quote.symbol);
                }
                MarketDataEvent::Refused {
                    symbols, reason, ..
                } => {
                    panic!("{}: refused {symbols:?}: {reason:?}", name(wire))
                }
                _ => {}
            }
        }
        while quoted.len() < symbols.len() {
            sim.tick();
            match next_market(&mut stream, wire).await {
                MarketDataEvent::Quote(quote) => {
                    quoted.insert(quote.symbol);
                }
                MarketDataEvent::Connection(event) => {
                    panic!("{}: unexpected {event:?}", name(wire))
                }
                _ => {}
            }
        }
        assert_eq!(
            quoted.into_iter().collect::<Vec<_>>(),
            symbols,
            "{}",
            name(wire)
        );
        let kept: Vec<String> = stream
            .subscriptions()
            .into_iter()
            .flat_map(|s| s.symbols)
            .collect();
        assert_eq!(kept, symbols, "{}", name(wire));
        stream.close().await;
        sim.shutdown().await;
    }
}

#[tokio::test]
async fn an_expired_market_data_token_is_renewed_under_every_variant() {
    for wire in variants() {
        let sim = start(wire, Simulator::builder()).await;
        let (_, alice) = alice(&sim).await;
        let mut stream = MarketDataStream::for_connection(&alice.client, &alice.connection_id)
            .url(sim.market_data_url())
            .config(quick())
            .subscribe(Subscription::quotes(["AAPL"]))
            .connect()
            .await
            .unwrap_or_else(|e| panic!("{}: connect: {e}", name(wire)));
        loop {
            if let MarketDataEvent::Connection(ConnectionEvent::Connected) =
                next_market(&mut stream, wire).await
            {
                break;
            }
        }
        // A day later (simulated) the token has expired: the server says so at the next
        // tick, and the stream fetches a new one at once.
        sim.advance(Duration::from_secs(24 * 3600 + 60));
        sim.tick();
        let mut renewed = false;
        loop {
            match next_market(&mut stream, wire).await {
                MarketDataEvent::Connection(ConnectionEvent::Reconnecting {
                    delay,
                    reason,
                    ..
                }) => {
                    assert_eq!(delay, Duration::ZERO, "{}: {reason}", name(wire));
                    assert!(!matches!(reason, StreamError::Token { .. }), "{reason}");
                    renewed = true;
                }
                MarketDataEvent::Connection(ConnectionEvent::Reconnected { .. }) if renewed => {
                    break;
                }
                MarketDataEvent::Connection(ConnectionEvent::Terminated(e)) => {
                    panic!("{}: terminated: {e}", name(wire))
                }
                _ => {}
            }
        }
        sim.tick();
        loop {
            if let MarketDataEvent::Quote(quote) = next_market(&mut stream, wire).await {
                assert_eq!(quote.symbol, "AAPL");
                break;
            }
        }
        stream.close().await;
        sim.shutdown().await;
    }
}

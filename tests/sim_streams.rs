//! Both WebSockets of the simulator, driven by raw tokio-tungstenite clients speaking the
//! protocol types: what a stream client (ours or anyone's) can rely on.

mod support_sim;

use std::time::Duration;

use connect_trade::{
    codes::{OrderSide, OrderStatus},
    rest::types::{Balance, Order, Position},
    stream::protocol::{
        BarInterval, BrokerageMessage, BrokerageRequest, CLOSE_AUTH_FAILED, CLOSE_AUTH_TIMEOUT,
        CLOSE_SESSION_REPLACED, CLOSE_TOKEN_EXPIRED, Channel, ErrorCode, MarketDataMessage,
        MarketDataRequest, ServerMessage, Subscription, SubscriptionParams, Topic,
    },
};
use connect_trade_sim::{Simulator, Wire};
use futures::{SinkExt, StreamExt};
use serde::Serialize;
use serde_json::Value;
use support_sim::{alice, dec, market, sim, sim_under};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, tungstenite::Message};

/// Long enough for anything the simulator does; a hang fails instead of blocking the suite.
const PATIENCE: Duration = Duration::from_secs(10);

struct Raw {
    ws: WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>,
}

/// What came next on a connection.
#[derive(Debug)]
enum Frame {
    Text(String),
    Closed(Option<u16>),
    /// The connection ended without a close frame.
    Dropped,
}

impl Raw {
    async fn connect(url: &str) -> Raw {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("connect");
        Raw { ws }
    }

    async fn send(&mut self, request: &impl Serialize) {
        let text = serde_json::to_string(request).unwrap();
        self.ws.send(Message::text(text)).await.expect("send");
    }

    async fn frame(&mut self) -> Frame {
        loop {
            let next = tokio::time::timeout(PATIENCE, self.ws.next())
                .await
                .expect("a frame in time");
            return match next {
                Some(Ok(Message::Text(text))) => Frame::Text(text.to_string()),
                Some(Ok(Message::Close(frame))) => Frame::Closed(frame.map(|f| u16::from(f.code))),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => Frame::Dropped,
            };
        }
    }

    /// The next frame as JSON; `session` names the session in the panic if it ended.
    async fn json(&mut self, session: &str) -> Value {
        match self.frame().await {
            Frame::Text(text) => serde_json::from_str(&text).expect("JSON"),
            other => panic!("the {session} session ended: {other:?}"),
        }
    }

    async fn next<M: ServerMessage + std::fmt::Debug>(&mut self) -> M {
        match self.frame().await {
            Frame::Text(text) => {
                M::decode(&text).unwrap_or_else(|e| panic!("undecodable {text}: {e}"))
            }
            other => panic!("expected a message, got {other:?}"),
        }
    }

    /// Reads until the connection ends; returns the close code, if a close frame came.
    async fn end(&mut self) -> Frame {
        loop {
            match self.frame().await {
                Frame::Text(_) => continue,
                end => return end,
            }
        }
    }
}

async fn brokerage(sim: &Simulator, topics: Vec<Topic>) -> Raw {
    let mut raw = Raw::connect(sim.brokerage_stream_url()).await;
    assert!(matches!(raw.next().await, BrokerageMessage::Welcome { .. }));
    let credentials = sim.credentials();
    raw.send(&BrokerageRequest::Authenticate {
        client_id: credentials.client_id,
        client_secret: credentials.client_secret,
    })
    .await;
    assert_eq!(
        raw.next::<BrokerageMessage>().await,
        BrokerageMessage::Authenticated {}
    );
    raw.send(&BrokerageRequest::Subscribe {
        topics: topics.clone(),
    })
    .await;
    assert_eq!(
        raw.next::<BrokerageMessage>().await,
        BrokerageMessage::Subscribed { topics }
    );
    raw
}

async fn market_data(sim: &Simulator, token: &str) -> Raw {
    let mut raw = Raw::connect(sim.market_data_url()).await;
    assert!(matches!(
        raw.next().await,
        MarketDataMessage::Welcome { .. }
    ));
    raw.send(&MarketDataRequest::Authenticate {
        token: token.into(),
    })
    .await;
    assert!(matches!(
        raw.next().await,
        MarketDataMessage::Authenticated {
            expires_at: Some(_)
        }
    ));
    raw
}

fn subscription(channel: Channel, symbols: &[&str], params: SubscriptionParams) -> Subscription {
    Subscription {
        channel,
        symbols: symbols.iter().map(|s| s.to_string()).collect(),
        params,
    }
}

#[tokio::test]
async fn a_partial_fill_arrives_as_several_updates_ending_equal_to_rest() {
    let sim = sim().await;
    let (_, alice) = alice(&sim).await;
    let mut stream = brokerage(&sim, vec![Topic::Orders, Topic::Positions, Topic::Balances]).await;

    let placed = alice
        .client
        .place_order()
        .body(market(&alice, "big", OrderSide::Buy, "JPM", "250"))
        .send()
        .await
        .unwrap()
        .into_inner();
    sim.tick();
    sim.tick();

    let (mut orders, mut last_position, mut last_balance): (
        Vec<Order>,
        Option<Position>,
        Option<Balance>,
    ) = (Vec::new(), None, None);
    let mut sequence = 0;
    loop {
        let message: BrokerageMessage = stream.next().await;
        let meta = match &message {
            BrokerageMessage::Order { meta, .. }
            | BrokerageMessage::Position { meta, .. }
            | BrokerageMessage::Balance { meta, .. } => meta.clone(),
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(
            (meta.user_id.as_str(), meta.account_id.as_str()),
            ("alice", alice.account_id.as_str())
        );
        assert_eq!(
            meta.sequence,
            Some(sequence + 1),
            "sequence numbers grow by one"
        );
        sequence += 1;
        match message {
            BrokerageMessage::Order { data, .. } => orders.push(*data),
            BrokerageMessage::Position { data, .. } => last_position = Some(*data),
            BrokerageMessage::Balance { data, .. } => last_balance = Some(*data),
            _ => unreachable!(),
        }
        if orders
            .last()
            .is_some_and(|o| o.status == OrderStatus::Filled)
            && sequence >= 12
        {
            break;
        }
    }
    let statuses: Vec<(OrderStatus, usize)> = orders
        .iter()
        .map(|o| (o.status.clone(), o.fills.len()))
        .collect();
    assert_eq!(
        statuses,
        [
            (OrderStatus::Pending, 0),
            (OrderStatus::Working, 0),
            (OrderStatus::PartiallyFilled, 1),
            (OrderStatus::PartiallyFilled, 2),
            (OrderStatus::Filled, 3),
        ]
    );
    assert_eq!(
        sequence, 12,
        "5 order updates, 3 positions, 4 balances (resting, then each fill)"
    );
    let rest_order = alice
        .client
        .get_order()
        .account_id(&alice.account_id)
        .order_id(&placed.order_id)
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(orders.last().unwrap(), &rest_order);
    let rest_position = alice
        .client
        .list_positions()
        .send()
        .await
        .unwrap()
        .into_inner()
        .remove(0);
    assert_eq!(last_position.unwrap(), rest_position);
    let rest_balance = alice
        .client
        .list_balances()
        .send()
        .await
        .unwrap()
        .into_inner()
        .remove(0);
    assert_eq!(last_balance.unwrap(), rest_balance);
}

#[tokio::test]
async fn topics_filter_updates_and_unsubscribe_stops_them() {
    let sim = sim().await;
    let (_, alice) = alice(&sim).await;
    let mut stream = brokerage(&sim, vec![Topic::Balances]).await;
    alice
        .client
        .place_order()
        .body(market(&alice, "a", OrderSide::Buy, "F", "1"))
        .send()
        .await
        .unwrap();
    // Resting (buying power reserved), then filled (cash spent): only balances.
    assert!(matches!(
        stream.next().await,
        BrokerageMessage::Balance { .. }
    ));
    match stream.next().await {
        BrokerageMessage::Balance { data, .. } => assert!(data.cash < Some(dec("100000"))),
        other => panic!("expected a balance, got {other:?}"),
    }
    stream
        .send(&BrokerageRequest::Subscribe {
            topics: vec![Topic::Orders],
        })
        .await;
    assert_eq!(
        stream.next::<BrokerageMessage>().await,
        BrokerageMessage::Subscribed {
            topics: vec![Topic::Orders, Topic::Balances]
        }
    );
    stream
        .send(&BrokerageRequest::Unsubscribe {
            topics: vec![Topic::Balances],
        })
        .await;
    assert_eq!(
        stream.next::<BrokerageMessage>().await,
        BrokerageMessage::Unsubscribed {
            topics: vec![Topic::Orders]
        }
    );
    alice
        .client
        .place_order()
        .body(market(&alice, "b", OrderSide::Buy, "F", "1"))
        .send()
        .await
        .unwrap();
    for expected in [
        OrderStatus::Pending,
        OrderStatus::Working,
        OrderStatus::Filled,
    ] {
        match stream.next().await {
            BrokerageMessage::Order { data, .. } => assert_eq!(data.status, expected),
            other => panic!("expected an order update, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn brokerage_authentication_is_enforced_and_one_session_per_credentials() {
    let sim = Simulator::builder()
        .manual_clock()
        .auth_timeout(Duration::from_millis(200))
        .start()
        .await
        .unwrap();

    let mut early = Raw::connect(sim.brokerage_stream_url()).await;
    let _: BrokerageMessage = early.next().await;
    early
        .send(&BrokerageRequest::Subscribe {
            topics: vec![Topic::Orders],
        })
        .await;
    match early.next().await {
        BrokerageMessage::Error(e) => assert_eq!(e.code, ErrorCode::InvalidRequest),
        other => panic!("{other:?}"),
    }
    early.send(&serde_json::json!({"action": "dance"})).await;
    match early.next().await {
        BrokerageMessage::Error(e) => assert_eq!(e.code, ErrorCode::InvalidRequest),
        other => panic!("{other:?}"),
    }

    let mut wrong = Raw::connect(sim.brokerage_stream_url()).await;
    let _: BrokerageMessage = wrong.next().await;
    wrong
        .send(&BrokerageRequest::Authenticate {
            client_id: "sim-client-id".into(),
            client_secret: "nope".into(),
        })
        .await;
    match wrong.next().await {
        BrokerageMessage::Error(e) => assert_eq!(e.code, ErrorCode::AuthFailed),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        wrong.end().await,
        Frame::Closed(Some(CLOSE_AUTH_FAILED))
    ));

    // `early` never authenticated: the timeout closes it.
    match early.next().await {
        BrokerageMessage::Error(e) => assert_eq!(e.code, ErrorCode::AuthTimeout),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        early.end().await,
        Frame::Closed(Some(CLOSE_AUTH_TIMEOUT))
    ));

    let mut first = brokerage(&sim, vec![Topic::Orders]).await;
    let _second = brokerage(&sim, vec![Topic::Orders]).await;
    match first.next().await {
        BrokerageMessage::Error(e) => assert_eq!(e.code, ErrorCode::SessionReplaced),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        first.end().await,
        Frame::Closed(Some(CLOSE_SESSION_REPLACED))
    ));
}

#[tokio::test]
async fn market_data_serves_every_channel_from_the_same_prices() {
    let sim = sim().await;
    let (_, alice) = alice(&sim).await;
    let token = alice
        .client
        .get_market_data_token()
        .connection_id(&alice.connection_id)
        .send()
        .await
        .unwrap()
        .into_inner();
    let mut md = market_data(&sim, token.access_token.expose()).await;

    md.send(&MarketDataRequest::Subscribe(subscription(
        Channel::Quotes,
        &["aapl"],
        SubscriptionParams::default(),
    )))
    .await;
    assert!(matches!(md.next().await, MarketDataMessage::Subscribed(s) if s.symbols == ["AAPL"]));
    let quote = match md.next().await {
        MarketDataMessage::Quote(q) => q,
        other => panic!("{other:?}"),
    };
    let mid = sim.price("AAPL").unwrap();
    assert!(
        quote.bid.unwrap() < mid && mid < quote.ask.unwrap(),
        "{quote:?} around {mid}"
    );
    // The quote is the price orders fill at.
    let placed = alice
        .client
        .place_order()
        .body(market(&alice, "q", OrderSide::Buy, "AAPL", "1"))
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(Some(placed.fills[0].price), quote.ask);

    sim.tick();
    assert!(
        matches!(md.next().await, MarketDataMessage::Quote(q) if q.timestamp == Some(sim.now()))
    );

    let bars = SubscriptionParams {
        interval: Some(BarInterval::Minute1),
        backfill: Some(5),
        ..Default::default()
    };
    md.send(&MarketDataRequest::Subscribe(subscription(
        Channel::Bars,
        &["MSFT"],
        bars,
    )))
    .await;
    assert!(matches!(md.next().await, MarketDataMessage::Subscribed(_)));
    let mut starts = Vec::new();
    for _ in 0..5 {
        match md.next().await {
            MarketDataMessage::Bar(bar) => {
                assert!(
                    bar.backfill
                        && bar.low <= bar.open.min(bar.close)
                        && bar.high >= bar.open.max(bar.close),
                    "{bar:?}"
                );
                starts.push(bar.start);
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(
        starts
            .windows(2)
            .all(|w| w[1] - w[0] == chrono::Duration::minutes(1)),
        "oldest first, a minute apart"
    );

    md.send(&MarketDataRequest::Subscribe(subscription(
        Channel::Depth,
        &["MSFT"],
        SubscriptionParams {
            levels: Some(3),
            ..Default::default()
        },
    )))
    .await;
    assert!(matches!(md.next().await, MarketDataMessage::Subscribed(_)));
    match md.next().await {
        MarketDataMessage::Depth(book) => {
            assert_eq!((book.bids.len(), book.asks.len()), (3, 3));
            assert!(
                book.bids[0].price < book.asks[0].price && book.bids[1].price < book.bids[0].price
            );
        }
        other => panic!("{other:?}"),
    }

    md.send(&MarketDataRequest::Subscribe(subscription(
        Channel::OptionsChain,
        &["SPY"],
        SubscriptionParams {
            greeks: Some(true),
            ..Default::default()
        },
    )))
    .await;
    assert!(matches!(md.next().await, MarketDataMessage::Subscribed(_)));
    let mut contracts = Vec::new();
    for _ in 0..14 {
        match md.next().await {
            MarketDataMessage::OptionQuote(q) => contracts.push(q),
            other => panic!("{other:?}"),
        }
    }
    assert!(
        contracts
            .iter()
            .all(|c| c.underlying == "SPY" && c.greeks.is_some() && c.bid <= c.ask)
    );
    let call_deltas: Vec<_> = contracts
        .iter()
        .filter(|c| c.symbol.contains('C'))
        .map(|c| c.greeks.as_ref().unwrap().delta)
        .collect();
    assert!(
        call_deltas.windows(2).all(|w| w[0] >= w[1]),
        "call deltas fall as strikes rise: {call_deltas:?}"
    );

    md.send(&MarketDataRequest::Snapshot {
        request_id: "snap-1".into(),
        symbol: "IBM".into(),
        interval: BarInterval::Hour1,
        start: None,
        end: None,
        limit: Some(4),
    })
    .await;
    match md.next().await {
        MarketDataMessage::Snapshot {
            request_id,
            symbol,
            bars,
        } => assert_eq!(
            (request_id.as_str(), symbol.as_str(), bars.len()),
            ("snap-1", "IBM", 4)
        ),
        other => panic!("{other:?}"),
    }
    md.send(&MarketDataRequest::Snapshot {
        request_id: "snap-2".into(),
        symbol: "ZZZZ".into(),
        interval: BarInterval::Hour1,
        start: None,
        end: None,
        limit: None,
    })
    .await;
    match md.next().await {
        MarketDataMessage::Error(e) => assert_eq!(
            (e.code, e.request_id.as_deref()),
            (ErrorCode::InvalidRequest, Some("snap-2"))
        ),
        other => panic!("{other:?}"),
    }

    md.send(&MarketDataRequest::Unsubscribe {
        channel: Channel::Depth,
        symbols: vec!["MSFT".into()],
    })
    .await;
    assert!(matches!(
        md.next().await,
        MarketDataMessage::Unsubscribed { .. }
    ));
    md.send(&MarketDataRequest::ListSubscriptions {
        request_id: "list-1".into(),
    })
    .await;
    match md.next().await {
        MarketDataMessage::Subscriptions {
            request_id,
            subscriptions,
        } => {
            assert_eq!(request_id, "list-1");
            let channels: Vec<Channel> = subscriptions.iter().map(|s| s.channel.clone()).collect();
            assert_eq!(
                channels,
                [Channel::Quotes, Channel::Bars, Channel::OptionsChain]
            );
        }
        other => panic!("{other:?}"),
    }
    md.send(&MarketDataRequest::Subscribe(subscription(
        Channel::Trades,
        &["NOPE"],
        SubscriptionParams::default(),
    )))
    .await;
    assert!(
        matches!(md.next().await, MarketDataMessage::Error(e) if e.code == ErrorCode::InvalidRequest && e.message.contains("NOPE"))
    );
}

#[tokio::test]
async fn live_bars_and_trades_follow_the_clock() {
    let sim = sim().await;
    let (_, alice) = alice(&sim).await;
    let token = alice
        .client
        .get_market_data_token()
        .connection_id(&alice.connection_id)
        .send()
        .await
        .unwrap()
        .into_inner();
    let mut md = market_data(&sim, token.access_token.expose()).await;
    md.send(&MarketDataRequest::Subscribe(subscription(
        Channel::Bars,
        &["QQQ"],
        SubscriptionParams {
            interval: Some(BarInterval::Minute1),
            ..Default::default()
        },
    )))
    .await;
    assert!(matches!(md.next().await, MarketDataMessage::Subscribed(_)));
    md.send(&MarketDataRequest::Subscribe(subscription(
        Channel::Trades,
        &["QQQ"],
        SubscriptionParams::default(),
    )))
    .await;
    assert!(matches!(md.next().await, MarketDataMessage::Subscribed(_)));
    sim.advance(Duration::from_secs(60));
    // 60 ticks: a trade each, and one bar once the minute is complete.
    let (mut trades, mut bars) = (0, Vec::new());
    for _ in 0..61 {
        match md.next().await {
            MarketDataMessage::Trade(t) => {
                assert_eq!(t.symbol, "QQQ");
                trades += 1;
            }
            MarketDataMessage::Bar(bar) => bars.push(*bar),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(trades, 60);
    assert_eq!(bars.len(), 1);
    assert!(!bars[0].backfill);
    assert_eq!(bars[0].start, sim.now() - chrono::Duration::minutes(1));
}

#[tokio::test]
async fn market_data_tokens_are_checked_and_one_is_active_per_connection() {
    let sim = sim().await;
    let (_, alice) = alice(&sim).await;
    let mut bad = Raw::connect(sim.market_data_url()).await;
    let _: MarketDataMessage = bad.next().await;
    bad.send(&MarketDataRequest::Authenticate {
        token: "forged".into(),
    })
    .await;
    assert!(
        matches!(bad.next().await, MarketDataMessage::Error(e) if e.code == ErrorCode::AuthFailed)
    );
    assert!(matches!(
        bad.end().await,
        Frame::Closed(Some(CLOSE_AUTH_FAILED))
    ));

    let token = alice
        .client
        .get_market_data_token()
        .connection_id(&alice.connection_id)
        .send()
        .await
        .unwrap()
        .into_inner();
    let mut md = market_data(&sim, token.access_token.expose()).await;
    // A new token replaces the old one: its session ends.
    alice
        .client
        .get_market_data_token()
        .connection_id(&alice.connection_id)
        .send()
        .await
        .unwrap();
    assert!(
        matches!(md.next().await, MarketDataMessage::Error(e) if e.code == ErrorCode::TokenExpired)
    );
    assert!(matches!(
        md.end().await,
        Frame::Closed(Some(CLOSE_TOKEN_EXPIRED))
    ));

    // A token lives 24 hours of simulated time.
    let token = alice
        .client
        .get_market_data_token()
        .connection_id(&alice.connection_id)
        .send()
        .await
        .unwrap()
        .into_inner();
    let mut md = market_data(&sim, token.access_token.expose()).await;
    sim.advance(Duration::from_secs(24 * 3600));
    assert!(
        matches!(md.next().await, MarketDataMessage::Error(e) if e.code == ErrorCode::TokenExpired)
    );
    assert!(matches!(
        md.end().await,
        Frame::Closed(Some(CLOSE_TOKEN_EXPIRED))
    ));
}

#[tokio::test]
async fn injected_stream_faults() {
    let sim = sim().await;
    let (_, alice) = alice(&sim).await;
    let token = alice
        .client
        .get_market_data_token()
        .connection_id(&alice.connection_id)
        .send()
        .await
        .unwrap()
        .into_inner();

    // On demand: both streams drop without a close frame.
    let mut orders = brokerage(&sim, vec![Topic::Orders]).await;
    let mut md = market_data(&sim, token.access_token.expose()).await;
    sim.faults().drop_streams();
    assert!(matches!(orders.end().await, Frame::Dropped));
    assert!(matches!(md.end().await, Frame::Dropped));

    // A malformed frame: text that is not a message.
    let mut md = market_data(&sim, token.access_token.expose()).await;
    sim.faults().send_malformed_frame();
    match md.frame().await {
        Frame::Text(text) => assert!(MarketDataMessage::decode(&text).is_err(), "{text}"),
        other => panic!("{other:?}"),
    }

    // Every N messages: welcome, authenticated, subscribed, a quote, then the drop.
    sim.faults().drop_streams_every(4);
    let mut md = market_data(&sim, token.access_token.expose()).await;
    md.send(&MarketDataRequest::Subscribe(subscription(
        Channel::Quotes,
        &["AAPL"],
        SubscriptionParams::default(),
    )))
    .await;
    assert!(matches!(md.next().await, MarketDataMessage::Subscribed(_)));
    assert!(matches!(md.next().await, MarketDataMessage::Quote(_)));
    sim.tick();
    assert!(matches!(md.end().await, Frame::Dropped));
    sim.faults().drop_streams_every(0);

    // Silence: the socket stays open and nothing comes, until it ends.
    let mut md = market_data(&sim, token.access_token.expose()).await;
    md.send(&MarketDataRequest::Subscribe(subscription(
        Channel::Quotes,
        &["AAPL"],
        SubscriptionParams::default(),
    )))
    .await;
    assert!(matches!(md.next().await, MarketDataMessage::Subscribed(_)));
    assert!(matches!(md.next().await, MarketDataMessage::Quote(_)));
    sim.faults().set_silent(true);
    sim.tick();
    assert!(
        tokio::time::timeout(Duration::from_millis(150), md.ws.next())
            .await
            .is_err(),
        "silent"
    );
    sim.faults().set_silent(false);
    sim.tick();
    assert!(matches!(md.next().await, MarketDataMessage::Quote(_)));
}

/// Every raw frame of one brokerage session and one market data session under `wire`, as
/// JSON: authenticate without waiting for a welcome, subscribe, one bad subscription (an
/// error), one order's updates, one quote.
async fn frames_under(wire: Option<Wire>) -> (Vec<Value>, Vec<Value>) {
    let sim = sim_under(wire).await;
    let (_, alice) = alice(&sim).await;

    let mut raw = Raw::connect(sim.brokerage_stream_url()).await;
    let credentials = sim.credentials();
    raw.send(&BrokerageRequest::Authenticate {
        client_id: credentials.client_id,
        client_secret: credentials.client_secret,
    })
    .await;
    raw.send(&BrokerageRequest::Subscribe {
        topics: vec![Topic::Orders],
    })
    .await;
    raw.send(&serde_json::json!({"action": "subscribe", "topics": ["nonsense"]}))
        .await;
    let mut brokerage = Vec::new();
    let mut placed = false;
    loop {
        let value = raw.json("brokerage").await;
        let kind = value["type"].as_str().unwrap_or_default().to_string();
        brokerage.push(value);
        if kind == "error" && !placed {
            // Every reply to the requests came (the error answers the last one).
            alice
                .client
                .place_order()
                .body(market(&alice, "raw", OrderSide::Buy, "AAPL", "1"))
                .send()
                .await
                .unwrap();
            sim.tick();
            placed = true;
        }
        if kind == "order" {
            break;
        }
    }

    let token = alice
        .client
        .get_market_data_token()
        .connection_id(&alice.connection_id)
        .send()
        .await
        .unwrap()
        .into_inner();
    let mut raw = Raw::connect(sim.market_data_url()).await;
    raw.send(&MarketDataRequest::Authenticate {
        token: token.access_token.expose().into(),
    })
    .await;
    raw.send(&MarketDataRequest::Subscribe(Subscription::quotes([
        "AAPL",
    ])))
    .await;
    let mut market_data = Vec::new();
    loop {
        let value = raw.json("market data").await;
        let quote = value["type"] == "quote";
        market_data.push(value);
        if quote {
            break;
        }
    }
    sim.shutdown().await;
    (brokerage, market_data)
}

fn of_type<'a>(frames: &'a [Value], kind: &str) -> Vec<&'a Value> {
    frames.iter().filter(|f| f["type"] == kind).collect()
}

fn keys(frame: &Value) -> Vec<&str> {
    frame
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn each_stream_wire_variant_writes_what_it_names_and_nothing_else() {
    // The default shapes, which every variant below changes in exactly one respect.
    let (brokerage, market_data) = frames_under(None).await;
    for frames in [&brokerage, &market_data] {
        assert_eq!(of_type(frames, "welcome").len(), 1, "{frames:?}");
        assert!(of_type(frames, "welcome")[0]["message"].is_string());
        assert_eq!(of_type(frames, "authenticated").len(), 1, "{frames:?}");
        assert!(frames.iter().all(|f| f.get("sim_extra").is_none()));
    }
    let error = of_type(&brokerage, "error")[0];
    assert_eq!(error["code"], "invalid_request");
    let order = of_type(&brokerage, "order")[0];
    assert_eq!(order["user_id"], "alice");
    assert!(order["account_id"].is_string() && order["timestamp"].is_string());
    assert!(order["sequence"].is_u64(), "{order}");
    assert!(of_type(&market_data, "quote")[0]["timestamp"].is_string());

    for &wire in Wire::STREAM {
        let (brokerage, market_data) = frames_under(Some(wire)).await;
        let order = of_type(&brokerage, "order")[0];
        let error = of_type(&brokerage, "error")[0];
        let quote = of_type(&market_data, "quote")[0];
        for frames in [&brokerage, &market_data] {
            assert_eq!(
                of_type(frames, "welcome").len(),
                usize::from(wire != Wire::NoWelcome),
                "{wire}: {frames:?}"
            );
            assert_eq!(
                of_type(frames, "authenticated").len(),
                usize::from(wire != Wire::NoAuthenticated),
                "{wire}: {frames:?}"
            );
            assert_eq!(of_type(frames, "subscribed").len(), 1, "{wire}: {frames:?}");
            assert_eq!(
                frames.iter().all(|f| f["sim_extra"].is_object()),
                wire == Wire::ExtraField,
                "{wire}: {frames:?}"
            );
        }
        assert_eq!(
            order["data"]["sim_extra"].is_object(),
            wire == Wire::ExtraField,
            "{wire}"
        );
        match wire {
            Wire::StringSequence => assert_eq!(order["sequence"], "1", "{wire}"),
            _ => assert_eq!(order["sequence"], 1, "{wire}"),
        }
        match wire {
            Wire::ErrorMessageOnly => assert_eq!(keys(error), ["message", "type"], "{wire}"),
            Wire::ExtraField => assert_eq!(
                keys(error),
                ["code", "message", "sim_extra", "type"],
                "{wire}"
            ),
            _ => assert_eq!(keys(error), ["code", "message", "type"], "{wire}"),
        }
        let missing = wire == Wire::MissingField;
        for field in ["user_id", "account_id", "timestamp"] {
            assert_eq!(order.get(field).is_none(), missing, "{wire}: {field}");
        }
        assert_eq!(quote.get("timestamp").is_none(), missing, "{wire}");
        if wire != Wire::NoWelcome {
            let welcome = of_type(&brokerage, "welcome")[0];
            assert_eq!(welcome.get("message").is_none(), missing, "{wire}");
        }
        // Whatever the variant, our own decoder reads every frame as what it is.
        assert!(matches!(
            BrokerageMessage::decode(&order.to_string()),
            Ok(BrokerageMessage::Order { .. })
        ));
        assert!(matches!(
            MarketDataMessage::decode(&quote.to_string()),
            Ok(MarketDataMessage::Quote(_))
        ));
    }
}

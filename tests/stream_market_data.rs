//! The market data stream against a scripted local WebSocket server (and httpmock for the
//! token endpoint): frames, replay with parameters, request/response correlation and
//! timeouts, token fetching and renewal.

mod support_stream;

use std::{str::FromStr, time::Duration};

use connect_trade::{
    ConnectTrade, UserClient, UserCredentials,
    stream::{
        Backoff, ConnectionEvent, MarketDataEvent, MarketDataStream, SnapshotRequest, StreamConfig,
        StreamError,
        protocol::{BarInterval, Channel, Subscription, TradingSession},
    },
};
use httpmock::{Method::GET, MockServer};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use support_stream::{Conn, Server, within};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn dec(text: &str) -> Decimal {
    Decimal::from_str(text).unwrap()
}

/// Millisecond timings; generous handshake, grace and idle limits so only the tests about
/// them trip them (a test that waited for a grace period by accident would time out).
fn fast() -> StreamConfig {
    StreamConfig::default()
        .handshake_timeout(ms(20_000))
        .grace(ms(10_000))
        .ping_interval(ms(1000))
        .idle_timeout(ms(4000))
        .backoff(Backoff {
            initial: ms(1),
            max: ms(5),
            reset_after: Duration::from_secs(60),
        })
}

async fn next(stream: &mut MarketDataStream) -> MarketDataEvent {
    within("waiting for an event", stream.next())
        .await
        .expect("the stream ended early")
}

async fn expect_connected(stream: &mut MarketDataStream) {
    match next(stream).await {
        MarketDataEvent::Connection(ConnectionEvent::Connected) => {}
        other => panic!("expected connected, got {other:?}"),
    }
}

/// Connects with a fixed token, serving the handshake; returns the stream (`Connected`
/// consumed) and the connection.
async fn connected(server: &mut Server, config: StreamConfig) -> (MarketDataStream, Conn) {
    let connecting = tokio::spawn(
        MarketDataStream::with_token("tok-1")
            .url(server.url())
            .config(config)
            .connect(),
    );
    let mut conn = server.accept().await;
    conn.handshake().await;
    let mut stream = within("connect()", connecting).await.unwrap().unwrap();
    expect_connected(&mut stream).await;
    (stream, conn)
}

/// Answers a subscribe frame as the server does: `subscribed` with the same subscription.
async fn confirm(conn: &mut Conn, frame: &Value) {
    assert_eq!(frame["action"], "subscribe", "{frame}");
    let mut reply = frame.clone();
    reply.as_object_mut().unwrap().remove("action");
    reply["type"] = json!("subscribed");
    conn.send_json(reply).await;
}

/// Reads `n` subscribe frames and confirms each; returns them.
async fn serve_subscribes(conn: &mut Conn, n: usize) -> Vec<Value> {
    let mut frames = Vec::new();
    for _ in 0..n {
        let frame = conn.recv_json().await;
        confirm(conn, &frame).await;
        frames.push(frame);
    }
    frames
}

/// Skips `Subscribed` events up to the `Reconnected` (or `Connected`) event.
async fn expect_up(stream: &mut MarketDataStream) {
    loop {
        match next(stream).await {
            MarketDataEvent::Subscribed(_) => {}
            MarketDataEvent::Connection(
                ConnectionEvent::Connected | ConnectionEvent::Reconnected { .. },
            ) => return,
            other => panic!("expected subscribed, then (re)connected; got {other:?}"),
        }
    }
}

fn symbols(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("S{i:03}")).collect()
}

fn frame_symbols(frame: &Value) -> Vec<String> {
    serde_json::from_value(frame["symbols"].clone()).unwrap()
}

#[tokio::test]
async fn handshake_then_subscriptions_split_into_frames_of_100() {
    let mut server = Server::start().await;
    let connecting = tokio::spawn(
        MarketDataStream::with_token("tok-1")
            .url(server.url())
            .config(fast())
            .subscribe(Subscription::quotes(symbols(250)))
            .subscribe(Subscription::bars(["AAPL"], BarInterval::Minute1).backfill(30))
            .connect(),
    );
    let mut conn = server.accept().await;
    let auth = conn.welcome().await;
    assert_eq!(auth, json!({"action": "authenticate", "token": "tok-1"}));
    conn.send_json(json!({"type": "authenticated", "expires_at": "2030-01-01T00:00:00Z"}))
        .await;
    let mut stream = within("connect()", connecting).await.unwrap().unwrap();
    let frames = serve_subscribes(&mut conn, 4).await;
    let mut replayed = Vec::new();
    for frame in &frames[..3] {
        assert_eq!(frame["channel"], "quotes");
        replayed.extend(frame_symbols(frame));
        assert!(frame_symbols(frame).len() <= 100);
    }
    assert_eq!(
        replayed,
        symbols(250),
        "every symbol once, in frames of at most 100"
    );
    assert_eq!(
        frames[3],
        json!({"action": "subscribe", "channel": "bars", "symbols": ["AAPL"],
               "interval": "1m", "backfill": 30})
    );
    expect_up(&mut stream).await;

    // Live subscriptions of every channel, with their parameters.
    stream
        .subscribe(Subscription::trades(["AAPL"]).session(TradingSession::Regular))
        .unwrap();
    stream.subscribe(Subscription::depth(["SPY"], 10)).unwrap();
    stream
        .subscribe(Subscription::options_chain(["TSLA"]).greeks(true))
        .unwrap();
    assert_eq!(
        conn.recv_json().await,
        json!({"action": "subscribe", "channel": "trades", "symbols": ["AAPL"], "session": "regular"})
    );
    assert_eq!(
        conn.recv_json().await,
        json!({"action": "subscribe", "channel": "depth", "symbols": ["SPY"], "levels": 10})
    );
    assert_eq!(
        conn.recv_json().await,
        json!({"action": "subscribe", "channel": "options_chain", "symbols": ["TSLA"], "greeks": true})
    );
    stream.unsubscribe(Channel::Quotes, symbols(150)).unwrap();
    let first = conn.recv_json().await;
    let second = conn.recv_json().await;
    assert_eq!(first["action"], "unsubscribe");
    assert_eq!(frame_symbols(&first).len(), 100);
    assert_eq!(frame_symbols(&second).len(), 50);

    // Acknowledgements and every data type decode into their events.
    conn.send_json(
        json!({"type": "subscribed", "channel": "depth", "symbols": ["SPY"], "levels": 10}),
    )
    .await;
    conn.send_json(json!({"type": "unsubscribed", "channel": "quotes", "symbols": ["S000"]}))
        .await;
    conn.send_json(
        json!({"type": "trade", "symbol": "AAPL", "price": "187.5", "size": "10",
                          "session": "regular"}),
    )
    .await;
    conn.send_json(json!({"type": "depth", "symbol": "SPY",
                          "bids": [{"price": "600.01", "size": "5"}], "asks": []}))
        .await;
    conn.send_json(json!({"type": "option_quote", "underlying": "TSLA",
                          "symbol": "TSLA251031C00437500", "bid": "13.50",
                          "greeks": {"delta": "0.52", "gamma": "0.01", "theta": "-0.3", "vega": "0.2"}}))
        .await;
    match next(&mut stream).await {
        MarketDataEvent::Subscribed(subscription) => {
            assert_eq!(subscription, Subscription::depth(["SPY"], 10))
        }
        other => panic!("expected subscribed, got {other:?}"),
    }
    assert!(matches!(
        next(&mut stream).await,
        MarketDataEvent::Unsubscribed {
            channel: Channel::Quotes,
            ..
        }
    ));
    match next(&mut stream).await {
        MarketDataEvent::Trade(trade) => {
            assert_eq!(trade.price, dec("187.5"));
            assert_eq!(trade.session, Some(TradingSession::Regular));
        }
        other => panic!("expected a trade, got {other:?}"),
    }
    match next(&mut stream).await {
        MarketDataEvent::Depth(depth) => assert_eq!(depth.bids[0].price, dec("600.01")),
        other => panic!("expected depth, got {other:?}"),
    }
    match next(&mut stream).await {
        MarketDataEvent::OptionQuote(quote) => {
            assert_eq!(quote.bid, Some(dec("13.50")));
            assert_eq!(quote.greeks.unwrap().delta, dec("0.52"));
        }
        other => panic!("expected an option quote, got {other:?}"),
    }

    // Data is typed, with exact decimals.
    conn.send_json(json!({
        "type": "quote", "symbol": "AAPL", "bid": "187.123456789", "bid_size": "300",
        "ask": "187.13", "ask_size": "100", "timestamp": "2025-01-02T15:04:05Z",
        "exchange": "a field this SDK does not know"
    }))
    .await;
    conn.send_json(json!({
        "type": "bar", "symbol": "AAPL", "interval": "1m", "start": "2025-01-02T15:04:00Z",
        "open": "1.1", "high": "1.3", "low": "1.0", "close": "1.2", "volume": "1000",
        "backfill": true
    }))
    .await;
    match next(&mut stream).await {
        MarketDataEvent::Quote(quote) => {
            assert_eq!(quote.symbol, "AAPL");
            assert_eq!(quote.bid, Some(dec("187.123456789")));
            assert_eq!(quote.ask, Some(dec("187.13")));
        }
        other => panic!("expected a quote, got {other:?}"),
    }
    match next(&mut stream).await {
        MarketDataEvent::Bar(bar) => {
            assert!(bar.backfill);
            assert_eq!(bar.close, dec("1.2"));
        }
        other => panic!("expected a bar, got {other:?}"),
    }
}

#[tokio::test]
async fn replay_keeps_parameters_and_forgets_unsubscribed_symbols() {
    let mut server = Server::start().await;
    let (mut stream, mut conn) = connected(&mut server, fast()).await;
    stream
        .subscribe(Subscription::bars(["AAPL", "MSFT"], BarInterval::Minute1))
        .unwrap();
    stream
        .subscribe(Subscription::bars(["MSFT"], BarInterval::Minute5))
        .unwrap();
    stream
        .subscribe(Subscription::quotes(["AAPL", "NVDA"]))
        .unwrap();
    stream.unsubscribe(Channel::Quotes, ["AAPL"]).unwrap();
    for _ in 0..4 {
        conn.recv_json().await;
    }
    drop(conn);
    assert!(matches!(
        next(&mut stream).await,
        MarketDataEvent::Connection(ConnectionEvent::Reconnecting { .. })
    ));
    let mut conn = server.accept().await;
    assert_eq!(conn.handshake().await["token"], "tok-1");
    let frames = serve_subscribes(&mut conn, 3).await;
    assert_eq!(
        frames[0],
        json!({"action": "subscribe", "channel": "quotes", "symbols": ["NVDA"]})
    );
    // A symbol subscribed again takes the new parameters.
    assert_eq!(
        frames[1],
        json!({"action": "subscribe", "channel": "bars", "symbols": ["AAPL"], "interval": "1m"})
    );
    assert_eq!(
        frames[2],
        json!({"action": "subscribe", "channel": "bars", "symbols": ["MSFT"], "interval": "5m"})
    );
    // The same set, as the stream reports it.
    let mut expected = vec![
        Subscription::quotes(["NVDA"]),
        Subscription::bars(["AAPL"], BarInterval::Minute1),
        Subscription::bars(["MSFT"], BarInterval::Minute5),
    ];
    let mut reported = stream.subscriptions();
    let key = |s: &Subscription| serde_json::to_string(s).unwrap();
    expected.sort_by_key(key);
    reported.sort_by_key(key);
    assert_eq!(reported, expected);
    expect_up(&mut stream).await;
}

#[tokio::test]
async fn list_subscriptions_and_snapshot_are_matched_by_request_id() {
    let mut server = Server::start().await;
    let (stream, mut conn) = connected(&mut server, fast()).await;
    let handle = stream.handle();
    let list = tokio::spawn({
        let handle = handle.clone();
        async move { handle.list_subscriptions().await }
    });
    let snapshot = tokio::spawn(async move {
        handle
            .snapshot(SnapshotRequest::new("AAPL", BarInterval::Day1).limit(2))
            .await
    });
    let mut list_id = None;
    let mut snapshot_id = None;
    for _ in 0..2 {
        let request = conn.recv_json().await;
        let id = request["request_id"].as_str().unwrap().to_string();
        match request["action"].as_str().unwrap() {
            "list_subscriptions" => list_id = Some(id),
            "snapshot" => {
                assert_eq!(request["symbol"], "AAPL");
                assert_eq!(request["interval"], "1d");
                assert_eq!(request["limit"], 2);
                snapshot_id = Some(id)
            }
            other => panic!("unexpected request {other}"),
        }
    }
    let (list_id, snapshot_id) = (list_id.unwrap(), snapshot_id.unwrap());
    assert_ne!(list_id, snapshot_id);
    // Replies in the other order, with a quote in between.
    conn.send_json(json!({
        "type": "snapshot", "request_id": snapshot_id, "symbol": "AAPL",
        "bars": [{"symbol": "AAPL", "interval": "1d", "start": "2025-01-02T00:00:00Z",
                  "open": "1", "high": "2", "low": "0.5", "close": "1.5", "volume": "10"}]
    }))
    .await;
    conn.send_json(json!({"type": "quote", "symbol": "AAPL", "bid": "1"}))
        .await;
    conn.send_json(json!({
        "type": "subscriptions", "request_id": list_id,
        "subscriptions": [{"channel": "quotes", "symbols": ["AAPL"]}]
    }))
    .await;
    let bars = within("snapshot", snapshot).await.unwrap().unwrap();
    assert_eq!(bars.len(), 1);
    assert_eq!(bars[0].close, dec("1.5"));
    let subscriptions = within("list", list).await.unwrap().unwrap();
    assert_eq!(subscriptions, vec![Subscription::quotes(["AAPL"])]);
    drop(stream);
}

#[tokio::test]
async fn a_reply_that_never_comes_times_out_and_a_late_one_is_ignored() {
    let mut server = Server::start().await;
    let (mut stream, mut conn) = connected(&mut server, fast().request_timeout(ms(100))).await;
    let pending = stream.list_subscriptions();
    let (result, request) = tokio::join!(pending, conn.recv_json());
    match result {
        Err(StreamError::RequestTimeout { request, timeout }) => {
            assert_eq!(request, "list_subscriptions");
            assert_eq!(timeout, ms(100));
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    conn.send_json(json!({
        "type": "subscriptions", "request_id": request["request_id"], "subscriptions": []
    }))
    .await;
    conn.send_json(json!({"type": "quote", "symbol": "LATE"}))
        .await;
    match next(&mut stream).await {
        MarketDataEvent::Quote(quote) => assert_eq!(quote.symbol, "LATE"),
        other => panic!("the late reply should be dropped quietly, got {other:?}"),
    }
}

#[tokio::test]
async fn an_error_reply_fails_its_request_only() {
    let mut server = Server::start().await;
    let (mut stream, mut conn) = connected(&mut server, fast()).await;
    let request = SnapshotRequest::new("NOPE", BarInterval::Day1);
    let (result, _) = tokio::join!(stream.snapshot(request), async {
        let request = conn.recv_json().await;
        conn.send_json(json!({
            "type": "error", "code": "invalid_request", "message": "unknown symbol NOPE",
            "request_id": request["request_id"]
        }))
        .await;
    });
    match result {
        Err(StreamError::Server(error)) => {
            assert_eq!(error.code.as_str(), "invalid_request");
            assert_eq!(error.message, "unknown symbol NOPE");
        }
        other => panic!("expected the server's error, got {other:?}"),
    }
    conn.send_json(json!({"type": "quote", "symbol": "OK"}))
        .await;
    assert!(matches!(next(&mut stream).await, MarketDataEvent::Quote(_)));
}

#[tokio::test]
async fn a_request_survives_a_reconnect() {
    let mut server = Server::start().await;
    let (stream, conn) = connected(&mut server, fast()).await;
    let handle = stream.handle();
    let list = tokio::spawn(async move { handle.list_subscriptions().await });
    let mut conn = conn;
    let first = conn.recv_json().await;
    drop(conn);
    let mut conn = server.accept().await;
    conn.handshake().await;
    let again = conn.recv_json().await;
    assert_eq!(again, first, "the same request, same id, sent again");
    conn.send_json(json!({
        "type": "subscriptions", "request_id": again["request_id"], "subscriptions": []
    }))
    .await;
    assert_eq!(within("list", list).await.unwrap().unwrap(), vec![]);
}

#[tokio::test]
async fn an_expired_fixed_token_ends_the_stream() {
    let mut server = Server::start().await;
    let (mut stream, mut conn) = connected(&mut server, fast()).await;
    conn.send_json(json!({"type": "error", "code": "token_expired", "message": "expired"}))
        .await;
    match next(&mut stream).await {
        MarketDataEvent::Connection(ConnectionEvent::Terminated(
            error @ StreamError::TokenExpired { .. },
        )) => assert!(error.to_string().contains("for_connection")),
        other => panic!("expected termination, got {other:?}"),
    }
    assert!(within("end", stream.next()).await.is_none());
}

// ---------------------------------------------------------------------------------------------
// Tokens from GET /connections/{connection_id}/token
// ---------------------------------------------------------------------------------------------

fn user_client(rest: &MockServer) -> UserClient {
    ConnectTrade::builder()
        .client_id("c-1")
        .client_secret("c-secret")
        .base_url(rest.base_url())
        .build()
        .unwrap()
        .for_user(UserCredentials::new("u-1", "u-secret"))
        .unwrap()
}

async fn token_mock<'a>(
    rest: &'a MockServer,
    token: &str,
    lifetime: chrono::Duration,
) -> httpmock::Mock<'a> {
    let body = json!({"access_token": token, "expires_at": chrono::Utc::now() + lifetime});
    rest.mock_async(|when, then| {
        when.method(GET)
            .path("/connections/conn-1/token")
            .header("client-id", "c-1")
            .header("user-id", "u-1")
            .header("user-secret", "u-secret");
        then.status(200).json_body(body);
    })
    .await
}

#[tokio::test]
async fn a_token_is_fetched_and_fetched_again_when_the_server_says_it_expired() {
    let rest = MockServer::start_async().await;
    let mut server = Server::start().await;
    let first = token_mock(&rest, "tok-A", chrono::Duration::hours(24)).await;
    let user = user_client(&rest);
    let connecting = tokio::spawn(
        MarketDataStream::for_connection(&user, "conn-1")
            .url(server.url())
            .config(fast())
            .subscribe(Subscription::quotes(["AAPL"]))
            .connect(),
    );
    let mut conn = server.accept().await;
    assert_eq!(conn.handshake().await["token"], "tok-A");
    assert_eq!(serve_subscribes(&mut conn, 1).await[0]["channel"], "quotes");
    let mut stream = within("connect()", connecting).await.unwrap().unwrap();
    expect_up(&mut stream).await;
    assert_eq!(first.calls_async().await, 1);

    first.delete_async().await;
    let second = token_mock(&rest, "tok-B", chrono::Duration::hours(24)).await;
    conn.send_json(json!({"type": "error", "code": "token_expired", "message": "expired"}))
        .await;
    conn.close_with(4004, "token expired").await;
    match next(&mut stream).await {
        MarketDataEvent::Connection(ConnectionEvent::Reconnecting { delay, .. }) => {
            assert_eq!(delay, Duration::ZERO, "a new token needs no backoff")
        }
        other => panic!("expected reconnecting, got {other:?}"),
    }
    let mut conn = server.accept().await;
    assert_eq!(conn.handshake().await["token"], "tok-B");
    assert_eq!(serve_subscribes(&mut conn, 1).await[0]["channel"], "quotes");
    expect_up(&mut stream).await;
    assert_eq!(second.calls_async().await, 1);
}

#[tokio::test]
async fn a_token_is_renewed_before_it_expires() {
    let rest = MockServer::start_async().await;
    let mut server = Server::start().await;
    // Renewed at half its life here (the 5-minute margin is capped at half the lifetime).
    let first = token_mock(&rest, "tok-A", chrono::Duration::milliseconds(1200)).await;
    let user = user_client(&rest);
    let connecting = tokio::spawn(
        MarketDataStream::for_connection(&user, "conn-1")
            .url(server.url())
            .config(fast())
            .connect(),
    );
    let mut conn = server.accept().await;
    assert_eq!(conn.handshake().await["token"], "tok-A");
    let mut stream = within("connect()", connecting).await.unwrap().unwrap();
    expect_connected(&mut stream).await;
    first.delete_async().await;
    let second = token_mock(&rest, "tok-B", chrono::Duration::hours(24)).await;

    match next(&mut stream).await {
        MarketDataEvent::Connection(ConnectionEvent::Reconnecting {
            reason: StreamError::TokenRenewal,
            delay,
            ..
        }) => assert_eq!(delay, Duration::ZERO),
        other => panic!("expected a renewal, got {other:?}"),
    }
    let mut conn = server.accept().await;
    assert_eq!(conn.handshake().await["token"], "tok-B");
    assert!(matches!(
        next(&mut stream).await,
        MarketDataEvent::Connection(ConnectionEvent::Reconnected { .. })
    ));
    assert_eq!(second.calls_async().await, 1);
}

#[tokio::test]
async fn a_freshly_fetched_token_that_is_refused_is_terminal() {
    let rest = MockServer::start_async().await;
    let mut server = Server::start().await;
    let mock = token_mock(&rest, "tok-A", chrono::Duration::hours(24)).await;
    let user = user_client(&rest);
    let connecting = tokio::spawn(
        MarketDataStream::for_connection(&user, "conn-1")
            .url(server.url())
            .config(fast())
            .connect(),
    );
    let mut conn = server.accept().await;
    conn.welcome().await;
    conn.send_json(json!({"type": "error", "code": "auth_failed", "message": "not entitled"}))
        .await;
    let error = within("connect()", connecting).await.unwrap().unwrap_err();
    assert!(
        matches!(error, StreamError::AuthRejected { .. }),
        "{error:?}"
    );
    assert_eq!(mock.calls_async().await, 1, "no second token for a refusal");
}

#[tokio::test]
async fn a_failing_token_endpoint_fails_connect() {
    let rest = MockServer::start_async().await;
    let server = Server::start().await;
    rest.mock_async(|when, then| {
        when.method(GET).path("/connections/conn-1/token");
        then.status(404)
            .json_body(json!({"message": "no such connection"}));
    })
    .await;
    let error = MarketDataStream::for_connection(&user_client(&rest), "conn-1")
        .url(server.url())
        .config(fast())
        .connect()
        .await
        .unwrap_err();
    match &error {
        StreamError::Token {
            status,
            retryable,
            source,
        } => {
            assert_eq!(*status, Some(404));
            assert!(!retryable);
            // The REST error is kept, typed, as the source.
            assert_eq!(source.status(), Some(404));
            assert!(
                source.to_string().contains("no such connection"),
                "{source}"
            );
            let chained = std::error::Error::source(&error).expect("a source");
            assert!(chained.to_string().contains("no such connection"));
        }
        other => panic!("expected a token error, got {other:?}"),
    }
    assert!(error.is_terminal());
    // It converts into the crate's error.
    let error: connect_trade::Error = error.into();
    assert!(matches!(
        error,
        connect_trade::Error::Stream(StreamError::Token { .. })
    ));
}

#[tokio::test]
async fn a_token_expiry_in_the_past_by_our_clock_does_not_start_a_renewal_loop() {
    // Clocks disagree (or a simulator runs in the past): the token just issued says it
    // expired two days ago. The stream must use it, not fetch tokens in a loop.
    let rest = MockServer::start_async().await;
    let mut server = Server::start().await;
    let mock = token_mock(&rest, "tok-A", chrono::Duration::hours(-48)).await;
    let user = user_client(&rest);
    let connecting = tokio::spawn(
        MarketDataStream::for_connection(&user, "conn-1")
            .url(server.url())
            .config(fast())
            .subscribe(Subscription::quotes(["AAPL"]))
            .connect(),
    );
    let mut conn = server.accept().await;
    assert_eq!(conn.handshake().await["token"], "tok-A");
    assert_eq!(serve_subscribes(&mut conn, 1).await[0]["channel"], "quotes");
    let mut stream = within("connect()", connecting).await.unwrap().unwrap();
    expect_up(&mut stream).await;
    for bid in ["1", "2", "3"] {
        conn.send_json(json!({"type": "quote", "symbol": "AAPL", "bid": bid}))
            .await;
        match next(&mut stream).await {
            MarketDataEvent::Quote(quote) => assert_eq!(quote.bid.unwrap().to_string(), bid),
            other => panic!("expected the quote, got {other:?}"),
        }
    }
    assert_eq!(mock.calls_async().await, 1, "the token was fetched once");
}

// ---------------------------------------------------------------------------------------------
// A handshake that depends on nothing undocumented
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn no_welcome_and_no_reply_to_authenticate_still_subscribe_and_connect() {
    // What the documentation promises on this stream: neither a welcome nor a reply.
    let mut server = Server::start().await;
    let connecting = tokio::spawn(
        MarketDataStream::with_token("tok-1")
            .url(server.url())
            .config(fast().grace(ms(100)))
            .subscribe(Subscription::quotes(["AAPL"]))
            .connect(),
    );
    let mut conn = server.accept().await;
    assert_eq!(
        conn.recv_json().await,
        json!({"action": "authenticate", "token": "tok-1"})
    );
    // Silence, then the subscriptions come.
    let frames = serve_subscribes(&mut conn, 1).await;
    assert_eq!(frame_symbols(&frames[0]), ["AAPL"]);
    let mut stream = within("connect()", connecting).await.unwrap().unwrap();
    expect_up(&mut stream).await;
    conn.send_json(json!({"type": "quote", "symbol": "AAPL", "bid": "1"}))
        .await;
    assert!(matches!(next(&mut stream).await, MarketDataEvent::Quote(_)));
}

#[tokio::test]
async fn the_first_quote_proves_the_authentication() {
    // The grace period is longer than the test's patience: only the quote can end the wait.
    let mut server = Server::start().await;
    let connecting = tokio::spawn(
        MarketDataStream::with_token("tok-1")
            .url(server.url())
            .config(fast())
            .connect(),
    );
    let mut conn = server.accept().await;
    conn.welcome().await;
    conn.send_json(json!({"type": "quote", "symbol": "FIRST", "bid": "1"}))
        .await;
    let mut stream = within("connect()", connecting).await.unwrap().unwrap();
    match next(&mut stream).await {
        MarketDataEvent::Quote(quote) => assert_eq!(quote.symbol, "FIRST"),
        other => panic!("the first quote must not be lost, got {other:?}"),
    }
    expect_connected(&mut stream).await;
}

#[tokio::test]
async fn a_known_type_with_another_shape_is_delivered_whole() {
    let mut server = Server::start().await;
    let (mut stream, mut conn) = connected(&mut server, fast()).await;
    conn.send_json(json!({"type": "quote", "ticker": "AAPL", "bid": 187.5}))
        .await;
    match next(&mut stream).await {
        MarketDataEvent::Unknown(value) => assert_eq!(value["ticker"], "AAPL"),
        other => panic!("expected the quote whole, got {other:?}"),
    }
}

#[tokio::test]
async fn a_slow_consumer_loses_data_counted_in_place_but_never_what_it_must_see() {
    let mut server = Server::start().await;
    let (mut stream, mut conn) = connected(&mut server, fast().buffer(4)).await;
    let quote = |i: usize| json!({"type": "quote", "symbol": format!("S{i}"), "bid": "1.5"});
    let mut frames: Vec<String> = (0..50).map(|i| quote(i).to_string()).collect();
    frames.push(json!({"type": "error", "code": "internal", "message": "hiccup"}).to_string());
    frames.push(json!({"type": "bar", "symbol": "B", "interval": "1m", "open": "1", "high": "2", "low": "0.5", "close": "1.2", "volume": "10", "start": "2025-01-02T15:04:00Z"}).to_string());
    frames.extend((50..60).map(|i| quote(i).to_string()));
    conn.send_many(frames).await;
    conn.sync().await; // the client has read everything while nobody consumed
    for expected in 0..4 {
        match next(&mut stream).await {
            MarketDataEvent::Quote(quote) => assert_eq!(quote.symbol, format!("S{expected}")),
            other => panic!("expected quote {expected}, got {other:?}"),
        }
    }
    match next(&mut stream).await {
        MarketDataEvent::Lagged { dropped } => assert_eq!(dropped, 46),
        other => panic!("expected lagged, got {other:?}"),
    }
    match next(&mut stream).await {
        MarketDataEvent::Error(StreamError::Server(error)) => assert_eq!(error.message, "hiccup"),
        other => panic!("the error must not be dropped, got {other:?}"),
    }
    match next(&mut stream).await {
        MarketDataEvent::Lagged { dropped } => assert_eq!(dropped, 11),
        other => panic!("expected lagged after the error, got {other:?}"),
    }
    conn.send_json(quote(60)).await;
    match next(&mut stream).await {
        MarketDataEvent::Quote(quote) => assert_eq!(quote.symbol, "S60"),
        other => panic!("expected the next quote, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Replay keeps what the server accepted
// ---------------------------------------------------------------------------------------------

/// Answers subscribe frames as a server that refuses a frame holding any of `bad`, naming
/// them in its message when `name_them`.
async fn answer(conn: &mut Conn, frame: &Value, bad: &[&str], name_them: bool) {
    let refused: Vec<String> = frame_symbols(frame)
        .into_iter()
        .filter(|s| bad.contains(&s.as_str()))
        .collect();
    if refused.is_empty() {
        confirm(conn, frame).await;
    } else {
        let message = if name_them {
            format!("unknown symbols: {}", refused.join(", "))
        } else {
            "some symbols are not available to this connection".to_string()
        };
        conn.send_json(json!({"type": "error", "code": "invalid_request", "message": message}))
            .await;
    }
}

/// Answers the client's frames (refusing `bad`, named) while reading its events, until it is
/// (re)connected; returns the refused symbols it reported.
async fn serve_until_up(
    conn: &mut Conn,
    stream: &mut MarketDataStream,
    bad: &[&str],
) -> Vec<String> {
    let mut refused = Vec::new();
    loop {
        tokio::select! {
            frame = conn.recv_json() => answer(conn, &frame, bad, true).await,
            event = within("an event", stream.next()) => match event.expect("stream ended") {
                MarketDataEvent::Subscribed(_) => {}
                MarketDataEvent::Refused { channel, symbols, reason } => {
                    assert_eq!(channel, Channel::Quotes);
                    assert_eq!(reason.code.as_str(), "invalid_request");
                    refused.extend(symbols);
                }
                MarketDataEvent::Connection(
                    ConnectionEvent::Connected | ConnectionEvent::Reconnected { .. },
                ) => return refused,
                other => panic!("unexpected {other:?}"),
            }
        }
    }
}

#[tokio::test]
async fn a_refused_symbol_among_100_good_ones_leaves_the_set_and_the_100_survive_a_reconnect() {
    // The fault run: the refused symbol stayed wanted; after a reconnect the replay put it in
    // a frame with 99 good ones, the server refused that frame, and 99 symbols went quiet.
    let good = symbols(100);
    let mut all = good.clone();
    all.push("BAD".to_string());
    let mut server = Server::start().await;
    let connecting = tokio::spawn(
        MarketDataStream::with_token("tok-1")
            .url(server.url())
            .config(fast())
            .subscribe(Subscription::quotes(all))
            .connect(),
    );
    let mut conn = server.accept().await;
    conn.handshake().await;
    let mut stream = within("connect()", connecting).await.unwrap().unwrap();
    let refused = serve_until_up(&mut conn, &mut stream, &["BAD"]).await;
    assert_eq!(refused, ["BAD"], "the consumer is told");
    assert_eq!(
        stream.subscriptions(),
        vec![Subscription::quotes(good.clone())]
    );

    drop(conn);
    assert!(matches!(
        next(&mut stream).await,
        MarketDataEvent::Connection(ConnectionEvent::Reconnecting { .. })
    ));
    let mut conn = server.accept().await;
    conn.handshake().await;
    // Only what the server accepted is replayed: the 100 good symbols, in one frame.
    let frame = conn.recv_json().await;
    assert_eq!(frame_symbols(&frame), good);
    answer(&mut conn, &frame, &["BAD"], true).await;
    expect_up(&mut stream).await;
    conn.send_many(
        good.iter()
            .map(|s| json!({"type": "quote", "symbol": s, "bid": "1"}).to_string()),
    )
    .await;
    for symbol in &good {
        match next(&mut stream).await {
            MarketDataEvent::Quote(quote) => assert_eq!(&quote.symbol, symbol),
            other => panic!("expected a quote of {symbol}, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_refused_frame_is_sent_again_without_the_symbols_its_error_names() {
    let mut server = Server::start().await;
    let (mut stream, mut conn) = connected(&mut server, fast()).await;
    let mut wanted = symbols(99);
    wanted.insert(37, "BAD".to_string());
    stream.subscribe(Subscription::quotes(wanted)).unwrap();
    let frame = conn.recv_json().await;
    assert_eq!(frame_symbols(&frame).len(), 100);
    answer(&mut conn, &frame, &["BAD"], true).await;
    // One more frame: the 99 others.
    let again = conn.recv_json().await;
    assert_eq!(frame_symbols(&again), symbols(99));
    answer(&mut conn, &again, &["BAD"], true).await;
    match next(&mut stream).await {
        MarketDataEvent::Refused { symbols, .. } => assert_eq!(symbols, ["BAD"]),
        other => panic!("expected the refusal, got {other:?}"),
    }
    match next(&mut stream).await {
        MarketDataEvent::Subscribed(subscription) => assert_eq!(subscription.symbols.len(), 99),
        other => panic!("expected the 99, got {other:?}"),
    }
    assert_eq!(
        stream.subscriptions(),
        vec![Subscription::quotes(symbols(99))]
    );
}

#[tokio::test]
async fn a_refused_frame_whose_error_names_nothing_is_split_until_the_bad_symbol_is_alone() {
    let mut server = Server::start().await;
    let (mut stream, conn) = connected(&mut server, fast()).await;
    let mut wanted = symbols(99);
    wanted.insert(37, "BAD".to_string());
    stream.subscribe(Subscription::quotes(wanted)).unwrap();
    // The server answers every frame until the client goes away.
    let server_side = tokio::spawn(async move {
        let mut conn = conn;
        let mut frames = 0;
        while let Some(Ok(message)) = futures::StreamExt::next(&mut conn.ws).await {
            if let tokio_tungstenite::tungstenite::Message::Text(text) = message {
                let frame: Value = serde_json::from_str(text.as_str()).unwrap();
                answer(&mut conn, &frame, &["BAD"], false).await;
                frames += 1;
            }
        }
        frames
    });
    let mut confirmed = Vec::new();
    let refused = loop {
        match next(&mut stream).await {
            MarketDataEvent::Subscribed(subscription) => confirmed.extend(subscription.symbols),
            MarketDataEvent::Refused { symbols, .. } => break symbols,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(refused, ["BAD"]);
    // Every good symbol was confirmed by the time the bad one is alone (halves are sent
    // together and answered in order).
    confirmed.sort();
    assert_eq!(confirmed, symbols(99));
    assert_eq!(
        stream.subscriptions(),
        vec![Subscription::quotes(symbols(99))]
    );
    stream.close().await;
    let frames = within("server", server_side).await.unwrap();
    assert!(frames <= 1 + 2 * 7, "{frames} frames for 100 symbols");
}

// ---------------------------------------------------------------------------------------------
// No secret in errors
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_token_response_that_does_not_decode_is_not_quoted_in_the_error() {
    let rest = MockServer::start_async().await;
    let server = Server::start().await;
    rest.mock_async(|when, then| {
        when.method(GET).path("/connections/conn-1/token");
        then.status(200)
            .json_body(json!({"access_token": "tok-SECRET-123", "expires_at": "soon"}));
    })
    .await;
    let error = MarketDataStream::for_connection(&user_client(&rest), "conn-1")
        .url(server.url())
        .config(fast())
        .connect()
        .await
        .unwrap_err();
    // The REST error is the source, and neither it nor the stream error quotes the body.
    match &error {
        StreamError::Token { source, .. } => {
            assert!(
                matches!(**source, connect_trade::Error::Decode { .. }),
                "{source:?}"
            )
        }
        other => panic!("{other:?}"),
    }
    let mut texts = vec![format!("{error:?}")];
    let mut level: Option<&dyn std::error::Error> = Some(&error);
    while let Some(e) = level {
        texts.push(e.to_string());
        level = e.source();
    }
    assert!(texts.len() >= 2, "the REST error is the source: {texts:?}");
    for text in texts {
        assert!(!text.contains("tok-SECRET"), "{text}");
    }
}

#[tokio::test]
async fn a_message_above_the_size_limit_ends_the_connection_not_the_stream() {
    let mut server = Server::start().await;
    let (mut stream, mut conn) = connected(&mut server, fast().max_message_size(4096)).await;
    let big = "X".repeat(8192);
    conn.send_json(json!({"type": "quote", "symbol": big}))
        .await;
    match next(&mut stream).await {
        MarketDataEvent::Connection(ConnectionEvent::Reconnecting { reason, .. }) => {
            let text = reason.to_string();
            assert!(text.contains("too long") || text.contains("size"), "{text}");
        }
        other => panic!("expected a reconnect, got {other:?}"),
    }
    let mut conn = server.accept().await;
    conn.handshake().await;
    expect_up(&mut stream).await;
    conn.send_json(json!({"type": "quote", "symbol": "SMALL"}))
        .await;
    assert!(matches!(next(&mut stream).await, MarketDataEvent::Quote(_)));
}

//! The brokerage stream against a scripted local WebSocket server: handshake, reconnection,
//! resubscription, idle detection, lag, terminal errors, graceful close.

mod support_stream;

use std::{str::FromStr, time::Duration};

use connect_trade::{
    PlatformCredentials,
    stream::{
        Backoff, BrokerageEvent, BrokerageStream, ConnectionEvent, Overflow, StreamConfig,
        StreamError, protocol::Topic,
    },
};
use rust_decimal::Decimal;
use serde_json::json;
use support_stream::{Conn, Server, order_frame, within};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
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

fn credentials() -> PlatformCredentials {
    PlatformCredentials::new("client-1", "s3cret")
}

async fn next(stream: &mut BrokerageStream) -> BrokerageEvent {
    within("waiting for an event", stream.next())
        .await
        .expect("the stream ended early")
}

/// Reads `n` subscribe frames, each of one topic, and answers each as the server does (with
/// every topic subscribed so far). Returns the topics in the order received.
async fn serve_subscribes(conn: &mut Conn, n: usize) -> Vec<String> {
    let mut topics: Vec<String> = Vec::new();
    for _ in 0..n {
        let frame = conn.recv_json().await;
        assert_eq!(frame["action"], "subscribe", "{frame}");
        let these: Vec<String> = serde_json::from_value(frame["topics"].clone()).unwrap();
        assert_eq!(these.len(), 1, "one topic per frame: {frame}");
        topics.extend(these);
        conn.send_json(json!({"type": "subscribed", "topics": topics}))
            .await;
    }
    topics
}

/// Connects with `config`, serving the first handshake and subscriptions; returns the stream
/// (its `Connected` event consumed) and the connection.
async fn connected(
    server: &mut Server,
    config: StreamConfig,
    topics: &[Topic],
) -> (BrokerageStream, support_stream::Conn) {
    let connecting = tokio::spawn(
        BrokerageStream::builder(credentials())
            .url(server.url())
            .config(config)
            .subscribe(topics.to_vec())
            .connect(),
    );
    let mut conn = server.accept().await;
    conn.handshake().await;
    serve_subscribes(&mut conn, topics.len()).await;
    let mut stream = within("connect()", connecting).await.unwrap().unwrap();
    loop {
        match next(&mut stream).await {
            BrokerageEvent::Subscribed { .. } => {}
            BrokerageEvent::Connection(ConnectionEvent::Connected) => break,
            other => panic!("expected subscribed, then connected; got {other:?}"),
        }
    }
    (stream, conn)
}

fn order_sequence(event: &BrokerageEvent) -> u64 {
    match event {
        BrokerageEvent::Order { meta, .. } => meta.sequence.expect("sequence"),
        other => panic!("expected an order, got {other:?}"),
    }
}

#[tokio::test]
async fn handshake_waits_for_welcome_then_authenticates_then_subscribes() {
    let mut server = Server::start().await;
    let connecting = tokio::spawn(
        BrokerageStream::builder(credentials())
            .url(server.url())
            .config(fast())
            .subscribe([Topic::Positions, Topic::Orders])
            .connect(),
    );
    let mut conn = server.accept().await;
    // Nothing is sent before the welcome (within the grace period).
    assert!(
        tokio::time::timeout(ms(50), futures::StreamExt::next(&mut conn.ws))
            .await
            .is_err(),
        "the client spoke before the welcome"
    );
    let auth = conn.welcome().await;
    assert_eq!(
        auth,
        json!({"action": "authenticate", "client_id": "client-1", "client_secret": "s3cret"})
    );
    conn.send_json(json!({"type": "authenticated"})).await;
    // connect() returns once authenticated.
    let mut stream = within("connect()", connecting).await.unwrap().unwrap();
    // One topic per frame: a refused topic cannot take the others with it.
    assert_eq!(
        conn.recv_json().await,
        json!({"action": "subscribe", "topics": ["orders"]})
    );
    assert_eq!(
        conn.recv_json().await,
        json!({"action": "subscribe", "topics": ["positions"]})
    );
    conn.send_json(json!({"type": "subscribed", "topics": ["orders"]}))
        .await;
    conn.send_json(order_frame(7)).await;
    conn.send_json(json!({"type": "subscribed", "topics": ["orders", "positions"]}))
        .await;
    // Events come in the order received; `Connected` once every subscription is answered.
    match next(&mut stream).await {
        BrokerageEvent::Subscribed { topics } => assert_eq!(topics, vec![Topic::Orders]),
        other => panic!("expected subscribed, got {other:?}"),
    }
    match next(&mut stream).await {
        BrokerageEvent::Order { meta, order } => {
            assert_eq!(meta.user_id, "alice");
            assert_eq!(meta.account_id, "acc-1");
            assert_eq!(meta.sequence, Some(7));
            assert_eq!(order.order_id, "ord-7");
            assert_eq!(
                order.order_limit_price,
                Some(Decimal::from_str("187.25").unwrap())
            );
        }
        other => panic!("expected an order, got {other:?}"),
    }
    match next(&mut stream).await {
        BrokerageEvent::Subscribed { topics } => {
            assert_eq!(topics, vec![Topic::Orders, Topic::Positions])
        }
        other => panic!("expected subscribed, got {other:?}"),
    }
    assert!(matches!(
        next(&mut stream).await,
        BrokerageEvent::Connection(ConnectionEvent::Connected)
    ));
    assert_eq!(
        stream.subscriptions(),
        vec![Topic::Orders, Topic::Positions]
    );

    // Live changes go out at once, and the subscription set follows at once.
    stream.subscribe([Topic::Balances]).unwrap();
    assert_eq!(
        stream.subscriptions(),
        vec![Topic::Orders, Topic::Positions, Topic::Balances]
    );
    assert_eq!(
        conn.recv_json().await,
        json!({"action": "subscribe", "topics": ["balances"]})
    );
    stream.handle().unsubscribe([Topic::Positions]).unwrap();
    assert_eq!(stream.subscriptions(), vec![Topic::Orders, Topic::Balances]);
    assert_eq!(
        conn.recv_json().await,
        json!({"action": "unsubscribe", "topics": ["positions"]})
    );
}

#[tokio::test]
async fn without_a_welcome_the_client_authenticates_after_the_grace_period() {
    let mut server = Server::start().await;
    let connecting = tokio::spawn(
        BrokerageStream::builder(credentials())
            .url(server.url())
            .config(fast().grace(ms(100)))
            .subscribe([Topic::Orders])
            .connect(),
    );
    let mut conn = server.accept().await;
    // No welcome: the authenticate comes anyway.
    assert_eq!(conn.recv_json().await["action"], "authenticate");
    conn.send_json(json!({"type": "authenticated"})).await;
    let mut stream = within("connect()", connecting).await.unwrap().unwrap();
    serve_subscribes(&mut conn, 1).await;
    assert!(matches!(
        next(&mut stream).await,
        BrokerageEvent::Subscribed { .. }
    ));
    assert!(matches!(
        next(&mut stream).await,
        BrokerageEvent::Connection(ConnectionEvent::Connected)
    ));
}

#[tokio::test]
async fn the_first_update_proves_the_authentication() {
    // No `authenticated` reply, and a grace period longer than the test's patience: only the
    // update can end the wait.
    let mut server = Server::start().await;
    let connecting = tokio::spawn(
        BrokerageStream::builder(credentials())
            .url(server.url())
            .config(fast())
            .subscribe([Topic::Orders])
            .connect(),
    );
    let mut conn = server.accept().await;
    conn.welcome().await;
    conn.send_json(order_frame(1)).await;
    let mut stream = within("connect()", connecting).await.unwrap().unwrap();
    serve_subscribes(&mut conn, 1).await;
    assert_eq!(order_sequence(&next(&mut stream).await), 1);
    assert!(matches!(
        next(&mut stream).await,
        BrokerageEvent::Subscribed { .. }
    ));
    assert!(matches!(
        next(&mut stream).await,
        BrokerageEvent::Connection(ConnectionEvent::Connected)
    ));
}

#[tokio::test]
async fn an_error_with_only_a_message_answering_authenticate_is_a_refusal() {
    let mut server = Server::start().await;
    let connecting = tokio::spawn(
        BrokerageStream::builder(credentials())
            .url(server.url())
            .config(fast())
            .connect(),
    );
    let mut conn = server.accept().await;
    conn.welcome().await;
    conn.send_json(json!({"type": "error", "message": "invalid client credentials"}))
        .await;
    let error = within("connect()", connecting).await.unwrap().unwrap_err();
    match &error {
        StreamError::AuthRejected { message, .. } => {
            assert_eq!(message, "invalid client credentials")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(error.is_terminal());
}

#[tokio::test]
async fn refused_credentials_fail_connect_without_retrying() {
    let mut server = Server::start().await;
    let connecting = tokio::spawn(
        BrokerageStream::builder(credentials())
            .url(server.url())
            .config(fast())
            .connect(),
    );
    let mut conn = server.accept().await;
    conn.welcome().await;
    conn.send_json(json!({"type": "error", "code": "auth_failed", "message": "bad secret"}))
        .await;
    conn.close_with(4001, "auth failed").await;
    let error = within("connect()", connecting).await.unwrap().unwrap_err();
    assert!(
        matches!(&error, StreamError::AuthRejected { message, .. } if message == "bad secret"),
        "{error:?}"
    );
    assert!(error.is_terminal());
    // The message tells what to do, and no secret.
    let text = error.to_string();
    assert!(text.contains("Check the credentials"), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
}

#[tokio::test]
async fn credentials_refused_on_a_reconnect_end_the_stream() {
    let mut server = Server::start().await;
    let (mut stream, conn) = connected(&mut server, fast(), &[Topic::Orders]).await;
    drop(conn);
    assert!(matches!(
        next(&mut stream).await,
        BrokerageEvent::Connection(ConnectionEvent::Reconnecting { attempt: 1, .. })
    ));
    let mut conn = server.accept().await;
    conn.welcome().await;
    // A close code alone (no error message) is enough.
    conn.close_with(4001, "credentials revoked").await;
    match next(&mut stream).await {
        BrokerageEvent::Connection(ConnectionEvent::Terminated(StreamError::AuthRejected {
            message,
            ..
        })) => assert_eq!(message, "credentials revoked"),
        other => panic!("expected termination, got {other:?}"),
    }
    // The stream ended: no reconnection loop behind it.
    assert!(within("end", stream.next()).await.is_none());
    assert!(stream.subscribe([Topic::Balances]).is_err());
}

#[tokio::test]
async fn an_unanswered_authentication_is_accepted_after_a_quiet_grace_period() {
    let mut server = Server::start().await;
    let config = fast().grace(ms(100));
    let connecting = tokio::spawn(
        BrokerageStream::builder(credentials())
            .url(server.url())
            .config(config)
            .subscribe([Topic::Orders])
            .connect(),
    );
    // First connection: welcome, then silence after the authenticate; subscriptions follow
    // the quiet grace period, and `Connected` follows their answer.
    let mut conn = server.accept().await;
    assert_eq!(conn.welcome().await["action"], "authenticate");
    let mut stream = within("connect()", connecting).await.unwrap().unwrap();
    serve_subscribes(&mut conn, 1).await;
    assert!(matches!(
        next(&mut stream).await,
        BrokerageEvent::Subscribed { .. }
    ));
    assert!(matches!(
        next(&mut stream).await,
        BrokerageEvent::Connection(ConnectionEvent::Connected)
    ));
    drop(conn);
    assert!(matches!(
        next(&mut stream).await,
        BrokerageEvent::Connection(ConnectionEvent::Reconnecting { attempt: 1, .. })
    ));

    // Second: the server's own 30 s window ran out (auth_timeout): not terminal.
    let mut conn = server.accept().await;
    conn.welcome().await;
    conn.send_json(json!({"type": "error", "code": "auth_timeout", "message": "too slow"}))
        .await;
    match next(&mut stream).await {
        BrokerageEvent::Connection(ConnectionEvent::Reconnecting {
            attempt: 2,
            reason: StreamError::Server(error),
            ..
        }) => assert_eq!(error.code.as_str(), "auth_timeout"),
        other => panic!("expected a retry after auth_timeout, got {other:?}"),
    }

    // Third: served; subscriptions restored.
    let mut conn = server.accept().await;
    conn.handshake().await;
    assert_eq!(serve_subscribes(&mut conn, 1).await, ["orders"]);
    assert!(matches!(
        next(&mut stream).await,
        BrokerageEvent::Subscribed { .. }
    ));
    assert!(matches!(
        next(&mut stream).await,
        BrokerageEvent::Connection(ConnectionEvent::Reconnected { .. })
    ));
}

#[tokio::test]
async fn without_any_answer_to_the_subscriptions_connected_comes_after_the_grace_period() {
    let mut server = Server::start().await;
    let connecting = tokio::spawn(
        BrokerageStream::builder(credentials())
            .url(server.url())
            .config(fast().grace(ms(100)))
            .subscribe([Topic::Orders])
            .connect(),
    );
    let mut conn = server.accept().await;
    conn.handshake().await;
    assert_eq!(conn.recv_json().await["action"], "subscribe");
    let mut stream = within("connect()", connecting).await.unwrap().unwrap();
    assert!(matches!(
        next(&mut stream).await,
        BrokerageEvent::Connection(ConnectionEvent::Connected)
    ));
    conn.send_json(order_frame(1)).await;
    assert_eq!(order_sequence(&next(&mut stream).await), 1);
}

#[tokio::test]
async fn repeated_drops_mid_stream_restore_every_subscription() {
    let mut server = Server::start().await;
    let (mut stream, mut conn) = connected(&mut server, fast(), &[Topic::Orders]).await;
    // Subscribed live, after connecting: must be replayed too.
    stream
        .subscribe([Topic::Positions, Topic::Balances])
        .unwrap();
    for topic in ["positions", "balances"] {
        assert_eq!(
            conn.recv_json().await,
            json!({"action": "subscribe", "topics": [topic]})
        );
    }
    conn.send_json(json!({"type": "subscribed", "topics": ["orders", "positions", "balances"]}))
        .await;
    assert!(matches!(
        next(&mut stream).await,
        BrokerageEvent::Subscribed { .. }
    ));

    for round in 0..6u64 {
        let frames = (0..3).map(|i| order_frame(round * 10 + i).to_string());
        conn.send_many(frames).await;
        // Three ways a connection ends: reset, close frame "restarting", close "going away".
        match round % 3 {
            0 => drop(conn),
            1 => conn.close_with(1011, "restarting").await,
            _ => conn.close_with(1001, "going away").await,
        }
        for i in 0..3 {
            assert_eq!(order_sequence(&next(&mut stream).await), round * 10 + i);
        }
        match next(&mut stream).await {
            BrokerageEvent::Connection(ConnectionEvent::Reconnecting {
                attempt, delay, ..
            }) => {
                assert_eq!(
                    u64::from(attempt),
                    round + 1,
                    "attempts grow while sessions are short"
                );
                assert!(
                    delay <= ms(5),
                    "delay {delay:?} above the configured maximum"
                );
            }
            other => panic!("round {round}: expected reconnecting, got {other:?}"),
        }
        conn = server.accept().await;
        let auth = conn.handshake().await;
        assert_eq!(auth["client_id"], "client-1");
        assert_eq!(
            serve_subscribes(&mut conn, 3).await,
            ["orders", "positions", "balances"],
            "round {round}: subscriptions replayed"
        );
        for _ in 0..3 {
            assert!(matches!(
                next(&mut stream).await,
                BrokerageEvent::Subscribed { .. }
            ));
        }
        assert!(matches!(
            next(&mut stream).await,
            BrokerageEvent::Connection(ConnectionEvent::Reconnected { .. })
        ));
    }

    // An unsubscription is remembered too.
    stream.unsubscribe([Topic::Positions]).unwrap();
    assert_eq!(conn.recv_json().await["action"], "unsubscribe");
    drop(conn);
    conn = server.accept().await;
    conn.handshake().await;
    assert_eq!(serve_subscribes(&mut conn, 2).await, ["orders", "balances"]);
}

/// Answers subscribe frames as a server that refuses the topic `news`: the whole frame is
/// refused when it holds it.
async fn serve_refusing_news(conn: &mut Conn, frames: usize, subscribed: &mut Vec<String>) {
    for _ in 0..frames {
        let frame = conn.recv_json().await;
        assert_eq!(frame["action"], "subscribe", "{frame}");
        let topics: Vec<String> = serde_json::from_value(frame["topics"].clone()).unwrap();
        if topics.iter().any(|t| t == "news") {
            conn.send_json(json!({"type": "error", "code": "invalid_request",
                                  "message": "unknown topic \"news\""}))
                .await;
        } else {
            subscribed.extend(topics);
            conn.send_json(json!({"type": "subscribed", "topics": subscribed}))
                .await;
        }
    }
}

#[tokio::test]
async fn a_refused_topic_leaves_the_set_and_does_not_take_the_others_across_a_reconnect() {
    // The fault run: a topic the server refuses among the subscriptions; after a reconnect
    // every topic was replayed in one frame, the server refused it, and no update came again.
    let news = Topic::from("news");
    let mut server = Server::start().await;
    let connecting = tokio::spawn(
        BrokerageStream::builder(credentials())
            .url(server.url())
            .config(fast())
            .subscribe([Topic::Orders, news.clone(), Topic::Balances])
            .connect(),
    );
    let mut conn = server.accept().await;
    conn.handshake().await;
    let mut stream = within("connect()", connecting).await.unwrap().unwrap();
    let mut subscribed = Vec::new();
    serve_refusing_news(&mut conn, 3, &mut subscribed).await;
    assert_eq!(subscribed, ["orders", "balances"]);
    let mut refused = None;
    loop {
        match next(&mut stream).await {
            BrokerageEvent::Subscribed { .. } => {}
            BrokerageEvent::Refused { topics, reason } => {
                assert!(reason.message.contains("news"), "{reason:?}");
                refused = Some(topics);
            }
            BrokerageEvent::Connection(ConnectionEvent::Connected) => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(refused, Some(vec![news.clone()]), "the consumer is told");
    assert_eq!(stream.subscriptions(), vec![Topic::Orders, Topic::Balances]);

    drop(conn);
    assert!(matches!(
        next(&mut stream).await,
        BrokerageEvent::Connection(ConnectionEvent::Reconnecting { .. })
    ));
    let mut conn = server.accept().await;
    conn.handshake().await;
    // Only what the server accepted is replayed. An update that comes before the answers
    // is delivered before `Reconnected`: a REST read on `Reconnected` covers it.
    let mut subscribed = Vec::new();
    serve_refusing_news(&mut conn, 1, &mut subscribed).await;
    conn.send_json(order_frame(1)).await;
    serve_refusing_news(&mut conn, 1, &mut subscribed).await;
    assert_eq!(subscribed, ["orders", "balances"]);
    assert!(matches!(
        next(&mut stream).await,
        BrokerageEvent::Subscribed { .. }
    ));
    assert_eq!(order_sequence(&next(&mut stream).await), 1);
    assert!(matches!(
        next(&mut stream).await,
        BrokerageEvent::Subscribed { .. }
    ));
    assert!(matches!(
        next(&mut stream).await,
        BrokerageEvent::Connection(ConnectionEvent::Reconnected { .. })
    ));
    conn.send_json(order_frame(2)).await;
    assert_eq!(order_sequence(&next(&mut stream).await), 2);
}

#[tokio::test]
async fn a_silent_server_is_replaced_and_pings_restart() {
    let mut server = Server::start().await;
    let config = fast().ping_interval(ms(40)).idle_timeout(ms(150));
    let (mut stream, silent) = connected(&mut server, config, &[Topic::Orders]).await;
    // `silent` is never read: the client's pings get no pong.
    match next(&mut stream).await {
        BrokerageEvent::Connection(ConnectionEvent::Reconnecting {
            reason: StreamError::Idle(idle),
            ..
        }) => assert_eq!(idle, ms(150)),
        other => panic!("expected an idle reconnect, got {other:?}"),
    }
    let mut conn = server.accept().await;
    conn.handshake().await;
    serve_subscribes(&mut conn, 1).await;
    assert!(matches!(
        next(&mut stream).await,
        BrokerageEvent::Subscribed { .. }
    ));
    assert!(matches!(
        next(&mut stream).await,
        BrokerageEvent::Connection(ConnectionEvent::Reconnected { .. })
    ));
    // The new connection is pinged as well.
    loop {
        match conn.recv_raw().await {
            Some(tokio_tungstenite::tungstenite::Message::Ping(_)) => break,
            Some(_) => continue,
            None => panic!("connection ended"),
        }
    }
    drop(silent);
}

#[tokio::test]
async fn malformed_and_unknown_frames_do_not_end_the_stream() {
    let mut server = Server::start().await;
    let (mut stream, mut conn) = connected(&mut server, fast(), &[Topic::Orders]).await;
    conn.send_text("this is not json").await;
    conn.send_json(json!({"no_type": true})).await;
    // A known type whose body is not our shape: delivered whole, not dropped.
    conn.send_json(json!({"type": "order", "user_id": "u", "account_id": "a", "data": 42}))
        .await;
    conn.send_json(json!({"type": "margin_call", "user_id": "alice", "amount": "100.00"}))
        .await;
    conn.send_json(json!({"type": "error", "code": "rate_limited", "message": "slow down"}))
        .await;
    conn.send_json(order_frame(1)).await;

    for what in ["not JSON", "no type"] {
        match next(&mut stream).await {
            BrokerageEvent::Error(StreamError::Decode { excerpt, .. }) => {
                assert!(!excerpt.is_empty(), "{what}")
            }
            other => panic!("{what}: expected a decode error, got {other:?}"),
        }
    }
    match next(&mut stream).await {
        BrokerageEvent::Unknown(value) => assert_eq!(value["data"], 42),
        other => panic!("expected the odd order whole, got {other:?}"),
    }
    match next(&mut stream).await {
        BrokerageEvent::Unknown(value) => assert_eq!(value["type"], "margin_call"),
        other => panic!("expected unknown, got {other:?}"),
    }
    match next(&mut stream).await {
        BrokerageEvent::Error(StreamError::Server(error)) => {
            assert!(error.code.is_unknown());
            assert_eq!(error.message, "slow down");
        }
        other => panic!("expected a server error, got {other:?}"),
    }
    assert_eq!(order_sequence(&next(&mut stream).await), 1);
}

#[tokio::test]
async fn plausible_variations_of_the_messages_decode() {
    let mut server = Server::start().await;
    let (mut stream, mut conn) = connected(&mut server, fast(), &[Topic::Orders]).await;
    // A sequence as a string, no top-level account_id (the payload has it), no user_id.
    let mut update = order_frame(0);
    update["sequence"] = json!("42");
    update.as_object_mut().unwrap().remove("account_id");
    update.as_object_mut().unwrap().remove("user_id");
    conn.send_json(update).await;
    // An error with only a message.
    conn.send_json(json!({"type": "error", "message": "maintenance at 22:00"}))
        .await;
    match next(&mut stream).await {
        BrokerageEvent::Order { meta, order } => {
            assert_eq!(meta.sequence, Some(42));
            assert_eq!(meta.account_id, "acc-1");
            assert_eq!(meta.user_id, "");
            assert_eq!(order.order_id, "ord-0");
        }
        other => panic!("expected the order, got {other:?}"),
    }
    match next(&mut stream).await {
        BrokerageEvent::Error(error @ StreamError::Server(_)) => {
            assert_eq!(
                error.to_string(),
                "the server reported maintenance at 22:00"
            )
        }
        other => panic!("expected the server's error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_slow_consumer_sees_lagged_with_the_number_dropped() {
    let mut server = Server::start().await;
    let (mut stream, mut conn) = connected(&mut server, fast().buffer(4), &[]).await;
    conn.send_many((0..100).map(|i| order_frame(i).to_string()))
        .await;
    conn.sync().await; // the client has read all 100 while nobody consumed
    for expected in 0..4 {
        assert_eq!(order_sequence(&next(&mut stream).await), expected);
    }
    match next(&mut stream).await {
        BrokerageEvent::Lagged { dropped } => assert_eq!(dropped, 96),
        other => panic!("expected lagged, got {other:?}"),
    }
    conn.send_json(order_frame(100)).await;
    assert_eq!(order_sequence(&next(&mut stream).await), 100);
}

#[tokio::test]
async fn buffer_n_holds_at_most_n_events_counting_those_already_taken() {
    let mut server = Server::start().await;
    let (mut stream, mut conn) = connected(&mut server, fast().buffer(4), &[]).await;
    conn.send_many((0..4).map(|i| order_frame(i).to_string()))
        .await;
    conn.sync().await;
    // The consumer takes one event; three still wait, so one more fits, not four.
    assert_eq!(order_sequence(&next(&mut stream).await), 0);
    conn.send_many((4..14).map(|i| order_frame(i).to_string()))
        .await;
    conn.sync().await;
    for expected in 1..=4 {
        assert_eq!(order_sequence(&next(&mut stream).await), expected);
    }
    match next(&mut stream).await {
        BrokerageEvent::Lagged { dropped } => assert_eq!(dropped, 9),
        other => panic!("expected lagged, got {other:?}"),
    }
}

#[tokio::test]
async fn backpressure_mode_loses_nothing() {
    let mut server = Server::start().await;
    let config = fast().buffer(4).overflow(Overflow::Backpressure);
    let (mut stream, mut conn) = connected(&mut server, config, &[Topic::Orders]).await;
    conn.send_many((0..200).map(|i| order_frame(i).to_string()))
        .await;
    for expected in 0..200 {
        assert_eq!(order_sequence(&next(&mut stream).await), expected);
    }
}

#[tokio::test]
async fn a_replaced_session_is_terminal_and_says_so() {
    let mut server = Server::start().await;
    let (mut stream, mut conn) = connected(&mut server, fast(), &[Topic::Orders]).await;
    conn.send_json(json!({
        "type": "error", "code": "session_replaced",
        "message": "a new session started for client-1"
    }))
    .await;
    conn.close_with(4003, "session replaced").await;
    match next(&mut stream).await {
        BrokerageEvent::Connection(ConnectionEvent::Terminated(error)) => {
            assert!(matches!(error, StreamError::SessionReplaced { .. }));
            assert!(error.is_terminal());
            assert!(
                error
                    .to_string()
                    .contains("one active session per credential pair")
            );
        }
        other => panic!("expected termination, got {other:?}"),
    }
    assert!(within("end", stream.next()).await.is_none());
}

#[tokio::test]
async fn close_code_4003_alone_is_a_replaced_session() {
    let mut server = Server::start().await;
    let (mut stream, mut conn) = connected(&mut server, fast(), &[]).await;
    conn.close_with(4003, "replaced").await;
    assert!(matches!(
        next(&mut stream).await,
        BrokerageEvent::Connection(ConnectionEvent::Terminated(
            StreamError::SessionReplaced { .. }
        ))
    ));
    assert!(within("end", stream.next()).await.is_none());
}

#[tokio::test]
async fn close_is_graceful_and_final() {
    let mut server = Server::start().await;
    let (mut stream, mut conn) = connected(&mut server, fast(), &[Topic::Orders]).await;
    conn.send_json(order_frame(1)).await;
    conn.sync().await;
    let ((), code) = within("close", async {
        tokio::join!(stream.close(), conn.expect_close())
    })
    .await;
    assert_eq!(code, Some(1000));
    // Events received before the close are still delivered, then Closed, then the end.
    assert_eq!(order_sequence(&next(&mut stream).await), 1);
    assert!(matches!(
        next(&mut stream).await,
        BrokerageEvent::Connection(ConnectionEvent::Closed)
    ));
    assert!(within("end", stream.next()).await.is_none());
    assert!(matches!(
        stream.subscribe([Topic::Orders]),
        Err(StreamError::Closed)
    ));
    stream.close().await; // closing twice is harmless
}

#[tokio::test]
async fn dropping_the_stream_closes_the_connection() {
    let mut server = Server::start().await;
    let (stream, mut conn) = connected(&mut server, fast(), &[]).await;
    drop(stream);
    assert_eq!(conn.expect_close().await, Some(1000));
}

#[tokio::test]
async fn urls_and_unreachable_servers_fail_connect() {
    let builder = || BrokerageStream::builder(credentials()).config(fast());
    for url in [
        "ws://example.com",
        "https://stream.example.com",
        "not a url",
    ] {
        let error = builder().url(url).connect().await.unwrap_err();
        assert!(matches!(error, StreamError::Config(_)), "{url}: {error:?}");
    }
    // Nothing listens on this port any more.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let error = builder()
        .url(format!("ws://127.0.0.1:{port}"))
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(error, StreamError::Connect(_)), "{error:?}");
}

#[test]
fn debug_output_shows_no_secret() {
    let builder = BrokerageStream::builder(credentials());
    let text = format!("{builder:?}");
    assert!(!text.contains("s3cret"), "{text}");
}

#[tokio::test]
async fn close_is_not_blocked_by_a_stalled_consumer_in_backpressure_mode() {
    let mut server = Server::start().await;
    let config = fast().buffer(4).overflow(Overflow::Backpressure);
    let (mut stream, mut conn) = connected(&mut server, config, &[Topic::Orders]).await;
    conn.send_many((0..100).map(|i| order_frame(i).to_string()))
        .await;
    // The task has started delivering; with nobody reading it then waits for room. Closing
    // must still work.
    assert_eq!(order_sequence(&next(&mut stream).await), 0);
    let ((), code) = within("close", async {
        tokio::join!(stream.close(), conn.expect_close())
    })
    .await;
    assert_eq!(code, Some(1000));
    let mut last = None;
    while let Some(event) = within("draining", stream.next()).await {
        last = Some(event);
    }
    assert!(matches!(
        last,
        Some(BrokerageEvent::Connection(ConnectionEvent::Closed))
    ));
}

#[tokio::test]
async fn gives_up_after_the_configured_attempts() {
    let mut server = Server::start().await;
    let (mut stream, conn) = connected(&mut server, fast().max_attempts(2), &[Topic::Orders]).await;
    drop(conn);
    for attempt in 1..=2 {
        match next(&mut stream).await {
            BrokerageEvent::Connection(ConnectionEvent::Reconnecting { attempt: a, .. }) => {
                assert_eq!(a, attempt)
            }
            other => panic!("expected reconnecting, got {other:?}"),
        }
        drop(server.accept().await); // hangs up before the welcome
    }
    match next(&mut stream).await {
        BrokerageEvent::Connection(ConnectionEvent::Terminated(StreamError::GaveUp {
            attempts,
            last,
        })) => {
            assert_eq!(attempts, 2);
            assert!(matches!(*last, StreamError::Disconnected(_)), "{last:?}");
        }
        other => panic!("expected to give up, got {other:?}"),
    }
    assert!(within("end", stream.next()).await.is_none());
}

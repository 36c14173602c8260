//! Order submission that never doubles (`orders::place`, `OrderBuilder::send`,
//! `ModifyBuilder::send`, `orders::cancel`), against a scripted fake Connect Trade that can fail
//! before or after doing the work: 5xx, dropped connections, timeouts, 409, and look-ups that
//! fail with any status.
//!
//! The fake keeps real order state (one order per `cl_order_id` per account, 409 on reuse), so
//! every test can assert the one thing that matters: exactly one order exists.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use connect_trade::{
    ConnectTrade, Error, UserClient, UserCredentials,
    client::RetryPolicy,
    codes::{BrokerCode, OrderSide},
    error::OrderAction,
    orders::{self, OrderBuilder},
    rest::types::{Order, PlaceOrderRequest},
};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// What the fake does with one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    /// Do the work and answer normally.
    None,
    /// Answer 503 without doing the work.
    Status503Before,
    /// Do the work, then answer 503.
    Status503After,
    /// Do the work, then answer 500.
    Status500After,
    /// Close the connection without doing the work or answering.
    DropBefore,
    /// Do the work, then close the connection without answering.
    DropAfter,
    /// Do the work, then answer too late (the client times out).
    TimeoutAfter,
    /// Answer 429 without doing the work.
    RateLimited,
    /// Answer this status without doing the work.
    Status(u16),
}

#[derive(Default)]
struct FakeState {
    orders: Vec<Value>,
    faults: HashMap<&'static str, VecDeque<Fault>>,
    /// A fault for every request of a kind once its queue is empty.
    always: HashMap<&'static str, Fault>,
    log: Vec<(String, String, String)>,
}

#[derive(Clone)]
struct Fake {
    state: Arc<Mutex<FakeState>>,
    base_url: String,
}

/// The client's timeout in tests of answers that never come (`TimeoutAfter`); other tests
/// use a generous one, so that a loaded machine cannot turn a slow answer into a lost one.
const SHORT_TIMEOUT: Duration = Duration::from_millis(200);

impl Fake {
    async fn start() -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let fake = Fake {
            state: Arc::default(),
            base_url,
        };
        let server = fake.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let server = server.clone();
                tokio::spawn(async move { server.serve(socket).await });
            }
        });
        fake
    }

    /// A client whose retry policy allows 4 retries (the guard uses the client's policy).
    fn user(&self) -> UserClient {
        self.user_with(fast(4))
    }

    fn user_with(&self, policy: RetryPolicy) -> UserClient {
        self.user_timing_out(policy, Duration::from_secs(10))
    }

    fn user_timing_out(&self, policy: RetryPolicy, timeout: Duration) -> UserClient {
        ConnectTrade::builder()
            .client_id("cid")
            .client_secret("csecret")
            .base_url(&self.base_url)
            .timeout(timeout)
            .retry_policy(policy)
            .build()
            .unwrap()
            .for_user(UserCredentials::new("alice", "s3cret"))
            .unwrap()
    }

    /// Queues faults for the next requests of a kind: "POST", "PATCH", "DELETE", "LIST", "GET".
    fn faults(&self, kind: &'static str, faults: &[Fault]) {
        self.state
            .lock()
            .unwrap()
            .faults
            .entry(kind)
            .or_default()
            .extend(faults);
    }

    /// Fails every request of a kind with `fault` once its queue is used up.
    fn always(&self, kind: &'static str, fault: Fault) {
        self.state.lock().unwrap().always.insert(kind, fault);
    }

    fn clear_faults(&self) {
        let mut state = self.state.lock().unwrap();
        state.faults.clear();
        state.always.clear();
    }

    fn seed_orders(&self, account: &str, n: usize) {
        let mut state = self.state.lock().unwrap();
        for i in 0..n {
            let id = state.orders.len();
            state
                .orders
                .push(order_json(id, account, &format!("old-{i}"), "MSFT"));
        }
    }

    fn orders_with(&self, cl_order_id: &str) -> Vec<Value> {
        let state = self.state.lock().unwrap();
        state
            .orders
            .iter()
            .filter(|o| o["cl_order_id"] == cl_order_id)
            .cloned()
            .collect()
    }

    fn count(&self, method: &str, path_prefix: &str) -> usize {
        let state = self.state.lock().unwrap();
        state
            .log
            .iter()
            .filter(|(m, p, _)| m == method && p.starts_with(path_prefix))
            .count()
    }

    fn log(&self) -> Vec<(String, String, String)> {
        self.state.lock().unwrap().log.clone()
    }

    async fn serve(&self, mut socket: TcpStream) {
        let Some((method, target, body)) = read_request(&mut socket).await else {
            return;
        };
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let query: HashMap<String, String> = url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let kind = match (method.as_str(), path) {
            ("GET", "/orders") => "LIST",
            ("POST", _) => "POST",
            ("PATCH", _) => "PATCH",
            ("DELETE", _) => "DELETE",
            _ => "GET",
        };
        let fault = {
            let mut state = self.state.lock().unwrap();
            state
                .log
                .push((method.clone(), path.to_string(), body.clone()));
            let queued = state.faults.get_mut(kind).and_then(VecDeque::pop_front);
            queued
                .or_else(|| state.always.get(kind).copied())
                .unwrap_or(Fault::None)
        };
        let respond = |status: u16, body: Value| (status, body.to_string());
        let (status, text) = match fault {
            Fault::Status503Before => respond(503, json!({"message": "unavailable"})),
            Fault::RateLimited => respond(429, json!({"message": "slow down"})),
            Fault::Status(status) => respond(status, json!({"message": "refused"})),
            Fault::DropBefore => return,
            _ => {
                let (status, body) = self.handle(&method, path, &query, &body);
                match fault {
                    Fault::Status503After => respond(503, json!({"message": "unavailable"})),
                    Fault::Status500After => respond(500, json!({"message": "internal"})),
                    Fault::DropAfter => return,
                    Fault::TimeoutAfter => {
                        tokio::time::sleep(Duration::from_secs(60)).await;
                        (status, body)
                    }
                    _ => (status, body),
                }
            }
        };
        let reason = match status {
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not Found",
            408 => "Request Timeout",
            429 => "Too Many Requests",
            200 => "OK",
            204 => "No Content",
            _ => "Error",
        };
        let response = format!(
            "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
            text.len()
        );
        let _ = socket.write_all(response.as_bytes()).await;
        let _ = socket.shutdown().await;
    }

    /// The fake's business logic.
    fn handle(
        &self,
        method: &str,
        path: &str,
        query: &HashMap<String, String>,
        body: &str,
    ) -> (u16, String) {
        let mut state = self.state.lock().unwrap();
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let ok = |v: Value| (200, v.to_string());
        let err = |status: u16, m: &str| (status, json!({ "message": m }).to_string());
        match (method, segments.as_slice()) {
            ("POST", ["orders"]) => {
                let request: Value = serde_json::from_str(body).unwrap();
                let account = request["account_id"].as_str().unwrap();
                let cl = request["cl_order_id"].as_str().unwrap();
                if request["symbol"] == "REJECT" {
                    return err(400, "unknown symbol");
                }
                if state
                    .orders
                    .iter()
                    .any(|o| o["account_id"] == account && o["cl_order_id"] == cl)
                {
                    return err(409, "cl_order_id already exists");
                }
                let id = state.orders.len();
                let symbol = request["symbol"].as_str().unwrap_or("");
                let order = order_json(id, account, cl, symbol);
                state.orders.push(order.clone());
                ok(order)
            }
            ("GET", ["orders"]) => {
                assert_eq!(query.get("status").map(String::as_str), Some("all"));
                assert!(
                    query.contains_key("start_time"),
                    "look-ups are bounded in time"
                );
                let account = query.get("account_id").expect("look-ups name the account");
                let limit: usize = query.get("limit").map_or(50, |l| l.parse().unwrap());
                let start: usize = query.get("cursor").map_or(0, |c| c.parse().unwrap());
                let matching: Vec<&Value> = state
                    .orders
                    .iter()
                    .filter(|o| o["account_id"] == account.as_str())
                    .filter(|o| {
                        query
                            .get("symbols")
                            .is_none_or(|s| s.split(',').any(|s| o["symbol"] == s))
                    })
                    .collect();
                let page: Vec<&Value> = matching.iter().skip(start).take(limit).copied().collect();
                let next = (start + limit < matching.len()).then(|| (start + limit).to_string());
                ok(json!({"orders": page, "next_cursor": next}))
            }
            ("PATCH", ["accounts", account, "orders", order_id]) => {
                let request: Value = serde_json::from_str(body).unwrap();
                let new_cl = request["new_cl_order_id"].as_str().unwrap();
                if state
                    .orders
                    .iter()
                    .any(|o| o["account_id"] == *account && o["cl_order_id"] == new_cl)
                {
                    return err(409, "new_cl_order_id already exists");
                }
                let Some(old) = state.orders.iter_mut().find(|o| o["order_id"] == *order_id) else {
                    return err(404, "no such order");
                };
                if old["status"] != "working" {
                    return err(400, "order is not open");
                }
                old["status"] = json!("replaced");
                let symbol = old["symbol"].as_str().unwrap_or("").to_string();
                let id = state.orders.len();
                let order = order_json(id, account, new_cl, &symbol);
                state.orders.push(order.clone());
                ok(order)
            }
            ("DELETE", ["accounts", _, "orders", order_id]) => {
                let Some(order) = state.orders.iter_mut().find(|o| o["order_id"] == *order_id)
                else {
                    return err(404, "no such order");
                };
                if order["status"] != "working" {
                    return err(400, "order is not open");
                }
                order["status"] = json!("cancelled");
                (200, String::new())
            }
            ("GET", ["accounts", _, "orders", order_id]) => {
                match state.orders.iter().find(|o| o["order_id"] == *order_id) {
                    Some(order) => ok(order.clone()),
                    None => err(404, "no such order"),
                }
            }
            _ => err(404, "no such route"),
        }
    }
}

fn order_json(id: usize, account: &str, cl: &str, symbol: &str) -> Value {
    json!({
        "order_id": format!("ord-{id}"), "cl_order_id": cl, "account_id": account,
        "broker": "ALPACA", "instrument": "STK", "order_type": "LMT", "order_qty": "1",
        "order_limit_price": "10", "side": "BUY",
        "symbol": symbol, "status": "working", "fills": [], "legs": [],
        "created_at": chrono::Utc::now(),
    })
}

async fn read_request(socket: &mut TcpStream) -> Option<(String, String, String)> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
        if let Some(i) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
    let mut lines = head.lines();
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let target = first.next()?.to_string();
    let length: usize = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map_or(0, |(_, v)| v.trim().parse().unwrap_or(0));
    while buffer.len() < head_end + length {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buffer[head_end..head_end + length]).to_string();
    Some((method, target, body))
}

fn request(cl: &str) -> PlaceOrderRequest {
    serde_json::from_value(json!({
        "account_id": "acc-1", "cl_order_id": cl, "broker": "ALPACA", "side": "BUY",
        "order_qty": "1", "order_type": "MKT", "order_tif": "DAY", "instrument": "STK",
        "symbol": "MSFT", "legs": [],
    }))
    .unwrap()
}

fn fast(retries: u32) -> RetryPolicy {
    RetryPolicy {
        max_retries: retries,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(5),
        max_retry_after: Duration::from_secs(1),
    }
}

impl Fake {
    /// An open order `cl` in acc-1, as the server holds it.
    fn seed_one(&self, cl: &str) -> Order {
        let mut state = self.state.lock().unwrap();
        let order = order_json(state.orders.len(), "acc-1", cl, "MSFT");
        state.orders.push(order.clone());
        serde_json::from_value(order).unwrap()
    }

    fn order_by_id(&self, order_id: &str) -> Value {
        let state = self.state.lock().unwrap();
        state
            .orders
            .iter()
            .find(|o| o["order_id"] == order_id)
            .cloned()
            .unwrap()
    }
}

/// Places `cl` under `faults` and checks there is exactly one order, the one returned.
async fn place_under(post: &[Fault], list: &[Fault]) -> Fake {
    let fake = Fake::start().await;
    fake.seed_orders("acc-1", 3);
    fake.faults("POST", post);
    fake.faults("LIST", list);
    let order = orders::place(&fake.user(), request("cl-1"))
        .await
        .expect("placed");
    let existing = fake.orders_with("cl-1");
    assert_eq!(existing.len(), 1, "exactly one order for cl-1");
    assert_eq!(existing[0]["order_id"], order.order_id.as_str());
    // The same cl_order_id on every attempt.
    for (method, _, body) in fake.log() {
        if method == "POST" {
            assert_eq!(
                serde_json::from_str::<Value>(&body).unwrap()["cl_order_id"],
                "cl-1"
            );
        }
    }
    fake
}

#[tokio::test]
async fn a_clean_placement_sends_once_and_looks_nothing_up() {
    let fake = place_under(&[], &[]).await;
    assert_eq!(fake.count("POST", "/orders"), 1);
    assert_eq!(fake.count("GET", "/orders"), 0);
}

#[tokio::test]
async fn a_503_after_the_order_was_made_is_resolved_by_a_look_up_not_a_resend() {
    let fake = place_under(&[Fault::Status503After], &[]).await;
    assert_eq!(fake.count("POST", "/orders"), 1);
    assert_eq!(fake.count("GET", "/orders"), 1);
}

#[tokio::test]
async fn a_503_before_the_order_was_made_is_looked_up_then_sent_again() {
    let fake = place_under(&[Fault::Status503Before], &[]).await;
    assert_eq!(fake.count("POST", "/orders"), 2);
    assert_eq!(fake.count("GET", "/orders"), 1);
}

#[tokio::test]
async fn a_timeout_after_the_order_was_made_is_found() {
    let fake = Fake::start().await;
    fake.faults("POST", &[Fault::TimeoutAfter]);
    orders::place(
        &fake.user_timing_out(fast(4), SHORT_TIMEOUT),
        request("cl-1"),
    )
    .await
    .unwrap();
    assert_eq!(fake.orders_with("cl-1").len(), 1);
    assert_eq!(fake.count("POST", "/orders"), 1);
}

#[tokio::test]
async fn a_connection_dropped_after_sending_is_found() {
    let fake = place_under(&[Fault::DropAfter], &[]).await;
    assert_eq!(fake.count("POST", "/orders"), 1);
}

#[tokio::test]
async fn a_connection_dropped_before_processing_is_sent_again() {
    let fake = place_under(&[Fault::DropBefore, Fault::DropBefore], &[]).await;
    assert_eq!(fake.count("POST", "/orders"), 3);
}

#[tokio::test]
async fn a_failed_look_up_never_leads_to_a_resend() {
    // The order was made; the look-ups fail (more often than the client retries a GET).
    // Sending again in between would double it if the fake did not refuse it: the count of
    // POSTs proves nothing was re-sent blindly.
    let fake = place_under(&[Fault::Status503After], &[Fault::Status503Before; 7]).await;
    assert_eq!(fake.count("POST", "/orders"), 1);
    assert_eq!(fake.count("GET", "/orders"), 8);
}

#[tokio::test]
async fn the_builder_send_is_the_guarded_path() {
    // The README's way to place an order: the answer is lost, the order is found, not doubled.
    let fake = Fake::start().await;
    fake.faults("POST", &[Fault::DropAfter]);
    let order = OrderBuilder::equity("MSFT", OrderSide::Buy)
        .account("acc-1", BrokerCode::Alpaca)
        .quantity(1)
        .market()
        .cl_order_id("cl-b")
        .send(&fake.user())
        .await
        .unwrap();
    assert_eq!(order.cl_order_id.as_deref(), Some("cl-b"));
    assert_eq!(fake.orders_with("cl-b").len(), 1);
    assert_eq!(fake.count("POST", "/orders"), 1);
    assert_eq!(fake.count("GET", "/orders"), 1);
}

#[tokio::test]
async fn send_once_is_one_unguarded_post() {
    let fake = Fake::start().await;
    fake.faults("POST", &[Fault::DropAfter]);
    let err = OrderBuilder::equity("MSFT", OrderSide::Buy)
        .account("acc-1", BrokerCode::Alpaca)
        .quantity(1)
        .market()
        .cl_order_id("cl-once")
        .send_once(&fake.user())
        .await
        .unwrap_err();
    assert!(err.may_have_reached_server(), "{err}");
    assert!(!err.is_order_outcome_unknown());
    assert_eq!(fake.count("POST", "/orders"), 1);
    assert_eq!(fake.count("GET", "/orders"), 0, "nothing looked up");
}

#[tokio::test]
async fn a_409_for_an_existing_cl_order_id_returns_that_order() {
    let fake = Fake::start().await;
    let user = fake.user();
    let first = orders::place(&user, request("cl-dup")).await.unwrap();
    let again = orders::place(&user, request("cl-dup")).await.unwrap();
    assert_eq!(first.order_id, again.order_id);
    assert_eq!(fake.orders_with("cl-dup").len(), 1);
    assert_eq!(fake.count("POST", "/orders"), 2);
}

#[tokio::test]
async fn a_409_whose_look_up_fails_is_looked_up_again_not_resent() {
    let fake = Fake::start().await;
    let user = fake.user();
    let first = orders::place(&user, request("cl-409")).await.unwrap();
    // More failures than the client's own GET retries: the guard's look-up fails once.
    fake.faults("LIST", &[Fault::Status503Before; 5]);
    let again = orders::place(&user, request("cl-409")).await.unwrap();
    assert_eq!(first.order_id, again.order_id);
    assert_eq!(
        fake.count("POST", "/orders"),
        2,
        "the 409 was not followed by a resend"
    );
    assert_eq!(fake.orders_with("cl-409").len(), 1);
}

#[tokio::test]
async fn a_409_whose_look_up_is_refused_is_outcome_unknown() {
    let fake = Fake::start().await;
    let user = fake.user();
    orders::place(&user, request("cl-409b")).await.unwrap();
    fake.always("LIST", Fault::Status(403));
    let err = orders::place(&user, request("cl-409b")).await.unwrap_err();
    assert!(err.is_order_outcome_unknown(), "{err:?}");
    assert!(err.may_have_reached_server());
    assert_eq!(fake.count("POST", "/orders"), 2);
}

#[tokio::test]
async fn the_look_up_pages_through_a_busy_day() {
    let fake = Fake::start().await;
    fake.seed_orders("acc-1", 1200); // three pages of 500 before ours
    fake.faults("POST", &[Fault::Status503After]);
    let order = orders::place(&fake.user(), request("cl-late"))
        .await
        .unwrap();
    assert_eq!(order.cl_order_id.as_deref(), Some("cl-late"));
    assert_eq!(fake.count("GET", "/orders"), 3, "{:#?}", fake.log());
    assert_eq!(fake.orders_with("cl-late").len(), 1);
}

#[tokio::test]
async fn a_client_error_is_returned_at_once() {
    let fake = Fake::start().await;
    let mut bad = request("cl-bad");
    bad.symbol = Some("REJECT".into());
    let err = orders::place(&fake.user(), bad).await.unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert!(!err.may_have_reached_server());
    assert_eq!(fake.count("POST", "/orders"), 1);
    assert_eq!(fake.count("GET", "/orders"), 0);
}

#[tokio::test]
async fn a_rate_limit_is_waited_out_and_sent_again_without_a_look_up() {
    let fake = place_under(&[Fault::RateLimited], &[]).await;
    assert_eq!(fake.count("POST", "/orders"), 2);
    assert_eq!(fake.count("GET", "/orders"), 0);
}

#[tokio::test]
async fn when_every_attempt_may_have_reached_the_server_the_outcome_is_unknown() {
    let fake = Fake::start().await;
    fake.faults("POST", &[Fault::Status503Before; 3]);
    let err = orders::place(&fake.user_with(fast(2)), request("cl-x"))
        .await
        .unwrap_err();
    match &err {
        Error::OrderOutcomeUnknown {
            action,
            cl_order_id,
            order_id,
            last_error,
        } => {
            assert_eq!(*action, OrderAction::Place);
            assert_eq!(cl_order_id, "cl-x");
            assert_eq!(*order_id, None);
            assert_eq!(last_error.status(), Some(503));
        }
        other => panic!("{other:?}"),
    }
    assert!(err.may_have_reached_server());
    assert_eq!(fake.count("POST", "/orders"), 3, "bounded attempts");
    assert!(fake.orders_with("cl-x").is_empty());
}

#[tokio::test]
async fn when_no_attempt_reached_the_server_the_error_says_so() {
    let fake = Fake::start().await;
    fake.faults("POST", &[Fault::DropBefore; 3]);
    let err = orders::place(&fake.user_with(fast(0)), request("cl-y"))
        .await
        .unwrap_err();
    // A connection closed before any answer may still have reached the server: unknown.
    assert!(err.may_have_reached_server(), "{err}");
    // A refused connection certainly did not.
    let nobody = ConnectTrade::builder()
        .client_id("cid")
        .client_secret("cs")
        .base_url("http://127.0.0.1:9")
        .retry_policy(fast(1))
        .build()
        .unwrap()
        .for_user(UserCredentials::new("alice", "s"))
        .unwrap();
    let err = orders::place(&nobody, request("cl-z")).await.unwrap_err();
    assert!(!err.may_have_reached_server(), "{err:?}");
    assert!(!err.is_order_outcome_unknown());
}

#[tokio::test]
async fn an_empty_cl_order_id_is_refused_before_sending() {
    let fake = Fake::start().await;
    let err = orders::place(&fake.user(), request(" ")).await.unwrap_err();
    assert!(err.to_string().contains("cl_order_id"));
    assert!(fake.log().is_empty());
}

#[tokio::test]
async fn any_sequence_of_faults_leaves_at_most_one_order() {
    let faults = [
        Fault::None,
        Fault::Status503Before,
        Fault::Status503After,
        Fault::Status500After,
        Fault::DropBefore,
        Fault::DropAfter,
        Fault::RateLimited,
        Fault::Status(401),
        Fault::Status(404),
        Fault::TimeoutAfter,
    ];
    let fake = Fake::start().await;
    let user = fake.user_timing_out(fast(6), SHORT_TIMEOUT);
    let mut rng = fastrand::Rng::with_seed(7);
    for round in 0..40 {
        let cl = format!("cl-r{round}");
        let post: Vec<Fault> = (0..rng.usize(0..4))
            .map(|_| faults[rng.usize(0..faults.len() - 1 + usize::from(round % 8 == 0))])
            .collect();
        let list: Vec<Fault> = (0..rng.usize(0..6))
            .map(|_| faults[rng.usize(1..9)])
            .collect();
        fake.faults("POST", &post);
        fake.faults("LIST", &list);
        let result = orders::place(&user, request(&cl)).await;
        let existing = fake.orders_with(&cl);
        assert!(
            existing.len() <= 1,
            "round {round}: {post:?} {list:?} doubled the order"
        );
        match result {
            Ok(order) => {
                assert_eq!(existing.len(), 1, "round {round}: Ok but no order");
                assert_eq!(existing[0]["order_id"], order.order_id.as_str());
            }
            // An order exists: the error must not say otherwise.
            Err(e) if !existing.is_empty() => {
                assert!(e.is_order_outcome_unknown(), "round {round}: {e:?}")
            }
            Err(_) => {}
        }
        // Leftover faults must not leak into the next round.
        fake.clear_faults();
    }
}

/// How the answer to the order's own request is lost.
const LOST: [Fault; 4] = [
    Fault::Status503After,
    Fault::Status500After,
    Fault::DropAfter,
    Fault::TimeoutAfter,
];

/// How the look-up fails.
const LOOKUP: [Fault; 10] = [
    Fault::Status(401),
    Fault::Status(403),
    Fault::Status(404),
    Fault::Status(408),
    Fault::Status(429),
    Fault::Status(500),
    Fault::Status(502),
    Fault::Status(503),
    Fault::Status(504),
    Fault::DropBefore,
];

enum Kind {
    Unknown,
    Other,
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Place,
    Modify,
    Cancel,
}

/// One run: `op`'s answer is lost (`lost`), then the look-ups fail with `lookup`, always or
/// only once.
async fn lost_then_lookup_fails(op: Op, lost: Fault, lookup: Fault, always: bool) {
    let fake = Fake::start().await;
    let timeout = match lost {
        Fault::TimeoutAfter => SHORT_TIMEOUT,
        _ => Duration::from_secs(10),
    };
    let user = fake.user_timing_out(fast(2), timeout);
    let original = fake.seed_one("cl-orig");
    let kind = match op {
        Op::Place => "POST",
        Op::Modify => "PATCH",
        Op::Cancel => "DELETE",
    };
    fake.faults(kind, &[lost]);
    for kind in ["LIST", "GET"] {
        if always {
            fake.always(kind, lookup);
        } else {
            fake.faults(kind, &[lookup]);
        }
    }
    let case = format!("{op:?} after {lost:?}, look-up {lookup:?} (always: {always})");
    let (result, key) = match op {
        Op::Place => (
            orders::place(&user, request("cl-new")).await.map(Some),
            "cl-new",
        ),
        Op::Modify => (
            orders::modify(&original)
                .limit_price("10.5")
                .new_cl_order_id("cl-new")
                .send(&user)
                .await
                .map(Some),
            "cl-new",
        ),
        Op::Cancel => (
            orders::cancel(&user, &original).await.map(|()| None),
            "cl-orig",
        ),
    };
    fake.clear_faults();
    // Sent once (never again without a look-up that settled it), so exactly one order per
    // cl_order_id. (Under a short client timeout on a loaded machine the one request may
    // not even have reached the server: then there is none, and the outcome is unknown.)
    let reached = match op {
        Op::Place => fake.count("POST", "/orders"),
        Op::Modify => fake.count("PATCH", "/accounts"),
        Op::Cancel => fake.count("DELETE", "/accounts").min(1),
    };
    assert!(reached <= 1, "{case}: sent {reached} times");
    assert!(reached == 1 || lost == Fault::TimeoutAfter, "{case}");
    match op {
        Op::Place | Op::Modify => {
            assert_eq!(
                fake.orders_with(key).len(),
                reached,
                "{case}: one order for {key}"
            )
        }
        Op::Cancel if reached == 1 => assert_eq!(
            fake.order_by_id(&original.order_id)["status"],
            "cancelled",
            "{case}"
        ),
        Op::Cancel => {}
    }
    // The result is the order or "outcome unknown", never "not placed".
    let result_kind = match &result {
        Err(Error::OrderOutcomeUnknown { .. }) => Kind::Unknown,
        _ => Kind::Other,
    };
    match result {
        Ok(Some(order)) => {
            assert_eq!(reached, 1, "{case}");
            assert_eq!(order.cl_order_id.as_deref(), Some(key), "{case}");
            assert_eq!(
                fake.orders_with(key)[0]["order_id"],
                order.order_id.as_str(),
                "{case}"
            );
        }
        Ok(None) => {}
        Err(Error::OrderOutcomeUnknown {
            action,
            cl_order_id,
            ref last_error,
            ..
        }) => {
            assert_eq!(cl_order_id, key, "{case}");
            let expected = match op {
                Op::Place => OrderAction::Place,
                Op::Modify => OrderAction::Modify,
                Op::Cancel => OrderAction::Cancel,
            };
            assert_eq!(action, expected, "{case}");
            assert!(
                always || matches!(lookup, Fault::Status(401 | 403 | 404)),
                "{case}: a look-up that fails once is tried again ({last_error})"
            );
        }
        Err(other) => panic!("{case}: {other:?}"),
    }
    if always && !matches!(op, Op::Cancel) {
        // No look-up ever succeeded, so the SDK cannot have seen the order.
        assert!(
            matches!(result_kind, Kind::Unknown),
            "{case}: no look-up succeeded, yet the outcome was reported as known"
        );
    }
}

#[tokio::test]
async fn answer_lost_then_any_look_up_failure_is_the_order_or_outcome_unknown() {
    // 3 × 4 × 10 × 2 runs, each against its own server; one lost answer at a time, its 20
    // look-up variants side by side.
    for op in [Op::Place, Op::Modify, Op::Cancel] {
        for lost in LOST {
            let runs = LOOKUP.iter().flat_map(|&lookup| {
                [true, false].map(|always| lost_then_lookup_fails(op, lost, lookup, always))
            });
            futures::future::join_all(runs).await;
        }
    }
}

#[tokio::test]
async fn answer_lost_and_no_look_up_succeeds_is_outcome_unknown_with_the_cause() {
    for lookup in LOOKUP {
        let fake = Fake::start().await;
        fake.faults("POST", &[Fault::DropAfter]);
        fake.always("LIST", lookup);
        let err = orders::place(&fake.user_with(fast(1)), request("cl-u"))
            .await
            .unwrap_err();
        assert!(err.is_order_outcome_unknown(), "{lookup:?}: {err:?}");
        assert!(err.may_have_reached_server());
        // The look-up's error is the source, and the message does not repeat it.
        let source = std::error::Error::source(&err).expect("a source");
        assert!(!err.to_string().contains(&source.to_string()));
        assert!(err.to_string().contains("cl-u"), "{err}");
        assert_eq!(fake.orders_with("cl-u").len(), 1);
    }
}

#[tokio::test]
async fn a_modify_that_may_have_gone_through_is_looked_up_by_its_new_id() {
    let fake = Fake::start().await;
    let user = fake.user();
    let order = fake.seed_one("cl-m");
    fake.faults("PATCH", &[Fault::DropAfter]);
    let new = orders::modify(&order)
        .limit_price("10.5")
        .new_cl_order_id("cl-m2")
        .send(&user)
        .await
        .unwrap();
    assert_eq!(new.cl_order_id.as_deref(), Some("cl-m2"));
    assert_eq!(fake.count("PATCH", "/accounts"), 1, "not re-sent");
    assert_eq!(fake.orders_with("cl-m2").len(), 1);
}

#[tokio::test]
async fn a_modify_that_did_not_go_through_is_sent_again_with_the_same_new_id() {
    let fake = Fake::start().await;
    let user = fake.user();
    let order = fake.seed_one("cl-n");
    fake.faults("PATCH", &[Fault::Status503Before]);
    let new = orders::modify(&order)
        .quantity(2)
        .send(&user)
        .await
        .unwrap();
    assert_eq!(fake.count("PATCH", "/accounts"), 2);
    let keys: Vec<Value> = fake
        .log()
        .iter()
        .filter(|(m, _, _)| m == "PATCH")
        .map(|(_, _, body)| serde_json::from_str::<Value>(body).unwrap()["new_cl_order_id"].clone())
        .collect();
    assert_eq!(keys[0], keys[1], "the same generated new_cl_order_id");
    assert_eq!(new.cl_order_id.as_deref(), keys[0].as_str());
}

#[tokio::test]
async fn cancel_is_retried_and_a_refusal_after_it_went_through_is_success() {
    let fake = Fake::start().await;
    let user = fake.user_with(fast(3));
    let order = fake.seed_one("cl-c");
    // The first DELETE cancels but answers 503; the retry is refused (no longer open); the
    // order's status shows the cancel worked.
    fake.faults("DELETE", &[Fault::Status503After]);
    orders::cancel(&user, &order).await.unwrap();
    assert_eq!(fake.count("DELETE", "/accounts"), 2);
    assert_eq!(fake.orders_with("cl-c")[0]["status"], "cancelled");
}

#[tokio::test]
async fn cancelling_an_order_someone_else_filled_is_refused() {
    let fake = Fake::start().await;
    let user = fake.user();
    let order = fake.seed_one("cl-d");
    fake.state.lock().unwrap().orders[0]["status"] = json!("filled");
    let err = orders::cancel(&user, &order).await.unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert!(!err.may_have_reached_server());
}

#[tokio::test]
async fn with_httpmock_a_409_returns_the_order_found_by_cl_order_id() {
    let server = httpmock::MockServer::start_async().await;
    let post = server
        .mock_async(|when, then| {
            when.method("POST").path("/orders");
            then.status(409)
                .json_body(json!({"message": "cl_order_id already exists"}));
        })
        .await;
    let list = server
        .mock_async(|when, then| {
            when.method("GET")
                .path("/orders")
                .query_param("account_id", "acc-1")
                .query_param("status", "all")
                .query_param("symbols", "MSFT");
            then.status(200).json_body(json!({
                "orders": [order_json(1, "acc-1", "other", "MSFT"), order_json(2, "acc-1", "cl-h", "MSFT")],
                "next_cursor": null
            }));
        })
        .await;
    let user = ConnectTrade::builder()
        .client_id("cid")
        .client_secret("cs")
        .base_url(server.base_url())
        .build()
        .unwrap()
        .for_user(UserCredentials::new("alice", "s"))
        .unwrap();
    let order = orders::place(&user, request("cl-h")).await.unwrap();
    assert_eq!(order.order_id, "ord-2");
    post.assert_calls_async(1).await;
    list.assert_calls_async(1).await;
}

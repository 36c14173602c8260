//! Order submission that never doubles (`OrderBuilder::send`, `orders::place`,
//! `ModifyBuilder::send`, `orders::cancel`), against the simulator and its faults that strike
//! after the operation took effect: an answer of 5xx, a connection cut mid-answer, no answer
//! at all; and faults on the look-up, independent of the order's own request.

use std::time::Duration;

use connect_trade::{
    ConnectTrade, Error, UserClient,
    client::RetryPolicy,
    codes::{BrokerCode, OrderSide, OrderStatus, OrderStatusFilter, OrderType, TimeInForce},
    error::OrderAction,
    orders::{self, OrderBuilder},
    rest::types::{Order, PlaceOrderRequest},
};
use connect_trade_sim::{PaperUser, RestFault, Simulator};
use futures::TryStreamExt;
use serde_json::json;

const PLACE: &str = "POST /orders";
const LIST: &str = "GET /orders";
const MODIFY: &str = "PATCH /accounts/{account_id}/orders/{order_id}";
const CANCEL: &str = "DELETE /accounts/{account_id}/orders/{order_id}";
const GET_ORDER: &str = "GET /accounts/{account_id}/orders/{order_id}";

/// The client's timeout where an answer never comes; generous elsewhere, so that a loaded
/// machine cannot turn a slow answer into a lost one.
const SHORT_TIMEOUT: Duration = Duration::from_millis(300);
const LONG_TIMEOUT: Duration = Duration::from_secs(20);

fn fast(retries: u32) -> RetryPolicy {
    RetryPolicy {
        max_retries: retries,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(5),
        max_retry_after: Duration::from_secs(1),
    }
}

/// A simulator with a manual clock, started now (look-ups search from midnight UTC of today),
/// and a paper user whose client has `policy` and `timeout` (the guard uses the client's
/// policy).
async fn setup(policy: RetryPolicy, timeout: Duration) -> (Simulator, PaperUser) {
    let sim = Simulator::builder()
        .manual_clock()
        .start()
        .await
        .expect("simulator");
    let platform = ConnectTrade::builder()
        .credentials(sim.credentials())
        .base_url(sim.rest_url())
        .retry_policy(policy)
        .timeout(timeout)
        .build()
        .unwrap();
    let user = sim
        .paper_user(&platform, "alice", BrokerCode::Alpaca)
        .await
        .expect("paper user");
    (sim, user)
}

fn symbol(sim: &Simulator) -> String {
    sim.symbols().into_iter().next().expect("a symbol")
}

/// A limit buy far below the market: it stays open.
fn resting(sim: &Simulator, user: &PaperUser, cl: &str) -> PlaceOrderRequest {
    OrderBuilder::equity(symbol(sim).as_str(), OrderSide::Buy)
        .account(user.account_id.as_str(), BrokerCode::Alpaca)
        .quantity(1)
        .limit("1.00")
        .time_in_force(TimeInForce::Gtc)
        .cl_order_id(cl)
        .build()
        .unwrap()
}

/// Every order of the user's account with this `cl_order_id`, read with faults off.
async fn orders_with(sim: &Simulator, user: &PaperUser, cl: &str) -> Vec<Order> {
    sim.faults().clear_rest();
    user.client
        .list_orders_all(|q| {
            q.account_id(user.account_id.as_str())
                .status(OrderStatusFilter::All)
        })
        .try_filter(|o| futures::future::ready(o.cl_order_id.as_deref() == Some(cl)))
        .try_collect()
        .await
        .unwrap()
}

/// How many requests of `operation` the simulator answered (a call still hung is not
/// counted).
fn answered(sim: &Simulator, operation: &str) -> usize {
    sim.responses()
        .iter()
        .filter(|r| {
            r.route
                .as_deref()
                .map(|route| format!("{} {route}", r.method))
                == Some(operation.to_string())
        })
        .count()
}

#[tokio::test]
async fn a_clean_placement_sends_once_and_looks_nothing_up() {
    let (sim, user) = setup(fast(3), LONG_TIMEOUT).await;
    let order = orders::place(&user.client, resting(&sim, &user, "cl-1"))
        .await
        .unwrap();
    assert_eq!(order.cl_order_id.as_deref(), Some("cl-1"));
    assert_eq!(answered(&sim, PLACE), 1);
    assert_eq!(answered(&sim, LIST), 0);
}

#[tokio::test]
async fn the_builder_send_is_the_guarded_path() {
    // The README's way to place an order: placed, answer lost, found, not placed again.
    let (sim, user) = setup(fast(3), LONG_TIMEOUT).await;
    sim.faults()
        .fail_next_on(PLACE, 1, RestFault::cut().after_acting());
    let order = OrderBuilder::equity(symbol(&sim).as_str(), OrderSide::Buy)
        .account(user.account_id.as_str(), BrokerCode::Alpaca)
        .quantity(1)
        .limit("1.00")
        .cl_order_id("cl-b")
        .send(&user.client)
        .await
        .unwrap();
    assert_eq!(order.cl_order_id.as_deref(), Some("cl-b"));
    assert_eq!(answered(&sim, PLACE), 1, "not sent again");
    assert_eq!(answered(&sim, LIST), 1, "looked up once");
    assert_eq!(orders_with(&sim, &user, "cl-b").await.len(), 1);
}

#[tokio::test]
async fn send_once_is_one_unguarded_post() {
    let (sim, user) = setup(fast(3), LONG_TIMEOUT).await;
    sim.faults()
        .fail_next_on(PLACE, 1, RestFault::status(503).after_acting());
    let err = OrderBuilder::equity(symbol(&sim).as_str(), OrderSide::Buy)
        .account(user.account_id.as_str(), BrokerCode::Alpaca)
        .quantity(1)
        .limit("1.00")
        .cl_order_id("cl-once")
        .send_once(&user.client)
        .await
        .unwrap_err();
    assert!(err.may_have_reached_server(), "{err}");
    assert!(!err.is_order_outcome_unknown());
    assert_eq!(answered(&sim, LIST), 0, "nothing looked up");
    // It was placed, though: the error said it may have been.
    assert_eq!(orders_with(&sim, &user, "cl-once").await.len(), 1);
}

#[tokio::test]
async fn a_failure_before_acting_is_looked_up_then_sent_again_with_the_same_id() {
    for fault in [RestFault::status(503), RestFault::cut()] {
        let (sim, user) = setup(fast(3), LONG_TIMEOUT).await;
        sim.faults().fail_next_on(PLACE, 1, fault);
        let order = orders::place(&user.client, resting(&sim, &user, "cl-again"))
            .await
            .unwrap();
        assert_eq!(order.cl_order_id.as_deref(), Some("cl-again"));
        assert_eq!(answered(&sim, PLACE), 2, "{fault:?}");
        assert_eq!(
            answered(&sim, LIST),
            1,
            "{fault:?}: looked up before the resend"
        );
        assert_eq!(orders_with(&sim, &user, "cl-again").await.len(), 1);
    }
}

#[tokio::test]
async fn a_rate_limit_is_waited_out_and_sent_again_without_a_look_up() {
    let (sim, user) = setup(fast(3), LONG_TIMEOUT).await;
    sim.faults()
        .fail_next_on(PLACE, 1, RestFault::rate_limited(Duration::from_secs(0)));
    orders::place(&user.client, resting(&sim, &user, "cl-429"))
        .await
        .unwrap();
    assert_eq!(answered(&sim, PLACE), 2);
    assert_eq!(answered(&sim, LIST), 0);
}

#[tokio::test]
async fn a_409_for_an_existing_cl_order_id_returns_that_order() {
    let (sim, user) = setup(fast(3), LONG_TIMEOUT).await;
    let first = orders::place(&user.client, resting(&sim, &user, "cl-dup"))
        .await
        .unwrap();
    let again = orders::place(&user.client, resting(&sim, &user, "cl-dup"))
        .await
        .unwrap();
    assert_eq!(first.order_id, again.order_id);
    assert_eq!(answered(&sim, PLACE), 2);
    assert_eq!(orders_with(&sim, &user, "cl-dup").await.len(), 1);
}

#[tokio::test]
async fn a_409_whose_look_up_is_refused_is_outcome_unknown() {
    let (sim, user) = setup(fast(3), LONG_TIMEOUT).await;
    orders::place(&user.client, resting(&sim, &user, "cl-409"))
        .await
        .unwrap();
    sim.faults().fail_all_on(LIST, RestFault::status(403));
    let err = orders::place(&user.client, resting(&sim, &user, "cl-409"))
        .await
        .unwrap_err();
    assert!(err.is_order_outcome_unknown(), "{err:?}");
    assert!(err.may_have_reached_server());
}

#[tokio::test]
async fn a_client_error_is_returned_at_once() {
    let (sim, user) = setup(fast(3), LONG_TIMEOUT).await;
    let mut bad = resting(&sim, &user, "cl-bad");
    bad.symbol = Some("NOSUCH".into());
    let result = orders::place(&user.client, bad).await;
    // The simulator rejects unknown symbols with an order whose status is `rejected`, or
    // refuses them: either way nothing is retried or looked up.
    if let Err(err) = &result {
        assert!(!err.may_have_reached_server(), "{err}");
    }
    assert_eq!(answered(&sim, PLACE), 1);
    assert_eq!(answered(&sim, LIST), 0);
}

#[tokio::test]
async fn when_every_attempt_may_have_reached_the_server_the_outcome_is_unknown() {
    let (sim, user) = setup(fast(2), LONG_TIMEOUT).await;
    sim.faults().fail_all_on(PLACE, RestFault::status(503));
    let err = orders::place(&user.client, resting(&sim, &user, "cl-x"))
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
    assert_eq!(answered(&sim, PLACE), 3, "bounded attempts");
    assert!(orders_with(&sim, &user, "cl-x").await.is_empty());
}

#[tokio::test]
async fn when_no_attempt_could_reach_the_server_the_error_says_so() {
    // Nothing listens on port 9: every connection is refused.
    let nobody = ConnectTrade::builder()
        .client_id("cid")
        .client_secret("cs")
        .base_url("http://127.0.0.1:9")
        .retry_policy(fast(1))
        .build()
        .unwrap()
        .for_user(connect_trade::UserCredentials::new("alice", "s"))
        .unwrap();
    let request: PlaceOrderRequest = serde_json::from_value(json!({
        "account_id": "acc-1", "cl_order_id": "cl-z", "broker": "ALPACA", "side": "BUY",
        "order_qty": "1", "order_type": "MKT", "order_tif": "DAY", "instrument": "STK",
        "symbol": "MSFT", "legs": [],
    }))
    .unwrap();
    let err = orders::place(&nobody, request).await.unwrap_err();
    assert!(!err.may_have_reached_server(), "{err:?}");
    assert!(!err.is_order_outcome_unknown());
}

#[tokio::test]
async fn an_empty_cl_order_id_is_refused_before_sending() {
    let (sim, user) = setup(fast(3), LONG_TIMEOUT).await;
    let mut request = resting(&sim, &user, "cl-e");
    request.cl_order_id = " ".into();
    let err = orders::place(&user.client, request).await.unwrap_err();
    assert!(err.to_string().contains("cl_order_id"));
    assert_eq!(answered(&sim, PLACE), 0);
}

/// How the answer to the order's own request is lost: after it took effect.
fn lost_answers() -> [RestFault; 4] {
    [
        RestFault::status(503).after_acting(),
        RestFault::status(500).after_acting(),
        RestFault::cut().after_acting(),
        RestFault::never().after_acting(),
    ]
}

/// How the look-up fails.
fn lookup_failures() -> [RestFault; 10] {
    [
        RestFault::status(401),
        RestFault::status(403),
        RestFault::status(404),
        RestFault::status(408),
        RestFault::status(429),
        RestFault::status(500),
        RestFault::status(502),
        RestFault::status(503),
        RestFault::status(504),
        RestFault::cut(),
    ]
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    Place,
    Modify,
    Cancel,
}

/// Every combination for one operation, one after the other on one simulator: the answer is
/// lost after the operation took effect, then the look-ups fail (always, or once).
async fn lost_then_lookup_fails(op: Op) {
    let mut case_no = 0;
    for lost in lost_answers() {
        let timeout = if lost == RestFault::never().after_acting() {
            SHORT_TIMEOUT
        } else {
            LONG_TIMEOUT
        };
        let (sim, user) = setup(fast(2), timeout).await;
        for lookup in lookup_failures() {
            for always in [true, false] {
                case_no += 1;
                let case = format!("{op:?} after {lost:?}, look-up {lookup:?}, always: {always}");
                one_case(&sim, &user, op, lost, lookup, always, case_no, &case).await;
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn one_case(
    sim: &Simulator,
    user: &PaperUser,
    op: Op,
    lost: RestFault,
    lookup: RestFault,
    always: bool,
    case_no: usize,
    case: &str,
) {
    sim.faults().clear_rest();
    // An open order to modify or cancel, placed without faults.
    let original = orders::place(&user.client, resting(sim, user, &format!("orig-{case_no}")))
        .await
        .unwrap();
    let key = match op {
        Op::Cancel => format!("orig-{case_no}"),
        _ => format!("new-{case_no}"),
    };
    let (own, look) = match op {
        Op::Place => (PLACE, LIST),
        Op::Modify => (MODIFY, LIST),
        Op::Cancel => (CANCEL, GET_ORDER),
    };
    let sent_before = answered(sim, own);
    sim.faults().fail_next_on(own, 1, lost);
    if always {
        sim.faults().fail_all_on(look, lookup);
    } else {
        sim.faults().fail_next_on(look, 1, lookup);
    }
    let result = match op {
        Op::Place => orders::place(&user.client, resting(sim, user, &key))
            .await
            .map(Some),
        Op::Modify => orders::modify(&original)
            .limit_price("1.05")
            .new_cl_order_id(&key)
            .send(&user.client)
            .await
            .map(Some),
        Op::Cancel => orders::cancel(&user.client, &original).await.map(|()| None),
    };
    sim.faults().clear_rest();
    sim.faults().release_hung();
    // Never sent again without a look-up that settled it (a hung first call may not be
    // counted yet: at most one).
    let sent = answered(sim, own) - sent_before;
    if op != Op::Cancel {
        // (The client itself repeats a DELETE, which is idempotent.)
        assert!(sent <= 1, "{case}: sent {sent} times");
    }
    // The operation took effect exactly once.
    let now = orders_with(sim, user, &key).await;
    assert_eq!(now.len(), 1, "{case}: one order for {key}");
    if op == Op::Cancel {
        assert!(
            matches!(
                now[0].status,
                OrderStatus::Cancelled | OrderStatus::PendingCancel
            ),
            "{case}: {}",
            now[0].status
        );
    }
    // The result is the order, or "outcome unknown": never "not placed".
    match result {
        Ok(Some(order)) => {
            assert_eq!(order.cl_order_id.as_deref(), Some(key.as_str()), "{case}");
            assert_eq!(order.order_id, now[0].order_id, "{case}");
        }
        Ok(None) => {}
        Err(err @ Error::OrderOutcomeUnknown { .. }) => {
            let Error::OrderOutcomeUnknown {
                action,
                ref cl_order_id,
                ..
            } = err
            else {
                unreachable!()
            };
            assert_eq!(cl_order_id, &key, "{case}");
            let expected = match op {
                Op::Place => OrderAction::Place,
                Op::Modify => OrderAction::Modify,
                Op::Cancel => OrderAction::Cancel,
            };
            assert_eq!(action, expected, "{case}");
            assert!(err.may_have_reached_server(), "{case}");
            // A look-up that failed only once, in a way worth trying again, is tried again.
            assert!(
                always || matches!(lookup.status, 401 | 403 | 404),
                "{case}: {:?}",
                std::error::Error::source(&err)
            );
        }
        Err(other) => panic!("{case}: {other:?}"),
    }
    if always && op != Op::Cancel {
        assert!(
            answered(sim, look) > 0,
            "{case}: the outcome was reported without a look-up"
        );
    }
}

#[tokio::test]
async fn answer_lost_then_any_look_up_failure_gives_the_order_or_outcome_unknown() {
    // 3 operations × 4 lost answers × 10 look-up failures × (always, once).
    futures::join!(
        lost_then_lookup_fails(Op::Place),
        lost_then_lookup_fails(Op::Modify),
        lost_then_lookup_fails(Op::Cancel),
    );
}

#[tokio::test]
async fn answer_lost_and_no_look_up_succeeds_is_outcome_unknown_with_the_cause() {
    let (sim, user) = setup(fast(1), LONG_TIMEOUT).await;
    for (i, lookup) in lookup_failures().into_iter().enumerate() {
        let cl = format!("cl-u{i}");
        sim.faults()
            .fail_next_on(PLACE, 1, RestFault::cut().after_acting())
            .fail_all_on(LIST, lookup);
        let err = orders::place(&user.client, resting(&sim, &user, &cl))
            .await
            .unwrap_err();
        assert!(err.is_order_outcome_unknown(), "{lookup:?}: {err:?}");
        assert!(err.may_have_reached_server());
        // The look-up's error is the source, and the message does not repeat it.
        let source = std::error::Error::source(&err).expect("a source");
        assert!(!err.to_string().contains(&source.to_string()), "{err}");
        assert!(err.to_string().contains(&cl), "{err}");
        // It was placed, once: the error was right not to say "not placed".
        assert_eq!(orders_with(&sim, &user, &cl).await.len(), 1);
    }
}

#[tokio::test]
async fn any_sequence_of_faults_leaves_one_order_and_a_truthful_result() {
    let faults = [
        RestFault::status(503),
        RestFault::status(503).after_acting(),
        RestFault::status(500).after_acting(),
        RestFault::cut(),
        RestFault::cut().after_acting(),
        RestFault::status(429),
        RestFault::status(401),
        RestFault::status(404),
    ];
    let (sim, user) = setup(fast(6), LONG_TIMEOUT).await;
    let mut rng = fastrand::Rng::with_seed(7);
    for round in 0..40 {
        let cl = format!("cl-r{round}");
        let post: Vec<RestFault> = (0..rng.usize(0..4))
            .map(|_| faults[rng.usize(0..5)])
            .collect();
        let list: Vec<RestFault> = (0..rng.usize(0..6))
            .map(|_| faults[rng.usize(0..faults.len())])
            .collect();
        for &fault in &post {
            sim.faults().fail_next_on(PLACE, 1, fault);
        }
        for &fault in &list {
            sim.faults().fail_next_on(LIST, 1, fault);
        }
        let result = orders::place(&user.client, resting(&sim, &user, &cl)).await;
        let existing = orders_with(&sim, &user, &cl).await;
        match result {
            Ok(order) => {
                assert_eq!(existing.len(), 1, "round {round}: Ok but no order");
                assert_eq!(existing[0].order_id, order.order_id);
            }
            // An order exists: the error must not say otherwise.
            Err(e) if !existing.is_empty() => {
                assert!(
                    e.is_order_outcome_unknown(),
                    "round {round}: {post:?} {list:?}: {e:?}"
                )
            }
            Err(_) => {}
        }
    }
}

#[tokio::test]
async fn a_modify_that_did_not_go_through_is_sent_again_with_the_same_new_id() {
    let (sim, user) = setup(fast(3), LONG_TIMEOUT).await;
    let order = orders::place(&user.client, resting(&sim, &user, "cl-n"))
        .await
        .unwrap();
    sim.faults().fail_next_on(MODIFY, 1, RestFault::status(503));
    let new = orders::modify(&order)
        .limit_price("1.05")
        .send(&user.client)
        .await
        .unwrap();
    assert_eq!(answered(&sim, MODIFY), 2);
    let new_id = new.cl_order_id.clone().expect("a new cl_order_id");
    assert_eq!(orders_with(&sim, &user, &new_id).await.len(), 1);
}

#[tokio::test]
async fn a_cancel_whose_answer_was_lost_is_checked_not_failed() {
    let (sim, user) = setup(fast(3), LONG_TIMEOUT).await;
    let order = orders::place(&user.client, resting(&sim, &user, "cl-c"))
        .await
        .unwrap();
    sim.faults()
        .fail_next_on(CANCEL, 1, RestFault::status(500).after_acting());
    orders::cancel(&user.client, &order).await.unwrap();
    assert_eq!(answered(&sim, GET_ORDER), 1, "read before any resend");
    let now = orders_with(&sim, &user, "cl-c").await;
    assert!(matches!(
        now[0].status,
        OrderStatus::Cancelled | OrderStatus::PendingCancel
    ));
}

#[tokio::test]
async fn with_httpmock_a_409_returns_the_order_found_by_cl_order_id() {
    let server = httpmock::MockServer::start_async().await;
    let order = |id: &str, cl: &str| {
        json!({"order_id": id, "cl_order_id": cl, "account_id": "acc-1", "symbol": "MSFT",
               "status": "working", "order_type": OrderType::Market, "fills": [], "legs": []})
    };
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
                .query_param("symbols", "MSFT")
                .query_param_exists("start_time");
            then.status(200)
                .json_body(json!([order("ord-1", "other"), order("ord-2", "cl-h")]));
        })
        .await;
    let user: UserClient = ConnectTrade::builder()
        .client_id("cid")
        .client_secret("cs")
        .base_url(server.base_url())
        .build()
        .unwrap()
        .for_user(connect_trade::UserCredentials::new("alice", "s"))
        .unwrap();
    let request: PlaceOrderRequest = serde_json::from_value(json!({
        "account_id": "acc-1", "cl_order_id": "cl-h", "broker": "ALPACA", "side": "BUY",
        "order_qty": "1", "order_type": "MKT", "order_tif": "DAY", "instrument": "STK",
        "symbol": "MSFT", "legs": [],
    }))
    .unwrap();
    let found = orders::place(&user, request).await.unwrap();
    assert_eq!(found.order_id, "ord-2");
    post.assert_calls_async(1).await;
    list.assert_calls_async(1).await;
}

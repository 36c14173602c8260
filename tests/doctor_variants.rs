//! `connect-trade-doctor` against the simulator under each of its wire variants: it reports
//! exactly the divergences the variant introduces, and `cargo xtask spec learn` on the
//! captures of each run yields a spec under which those captures validate.
//!
//! Every run has both stream probes on. The expected divergences are written from each
//! variant's definition (`connect-trade-sim/src/wire.rs`) and from what `spec/openapi.json`
//! and the JSON Schemas of `stream::protocol` say, not from the doctor's output.
//!
//! Against the built-in spec, no REST variant diverges: the spec already knows both shapes of
//! every answer they change. So each REST variant is also held against a narrowed copy of the
//! spec (the spec as it would be without that knowledge): there the doctor reports what the
//! variant changes, and `spec learn` on the captures takes the spec back to one they validate
//! under, with a diff that names each change.
#![cfg(feature = "doctor")]

mod support_sim;

use std::{
    collections::BTreeSet,
    convert::Infallible,
    path::{Path, PathBuf},
    time::Duration,
};

use connect_trade::{
    codes::{BrokerCode, Instrument, OrderSide, OrderType, TimeInForce},
    doctor::{self, DoctorOptions, Report},
    rest::types::PlaceOrderRequest,
};
use connect_trade_sim::{PaperUser, Simulator, Wire};
use serde_json::{Value, json};

const MARKET_DATA: &str = "market data stream";
const BROKERAGE: &str = "brokerage stream";
/// The probes' grace ([`DoctorOptions::grace`]) in these runs.
const GRACE: Duration = Duration::from_millis(200);

/// A scratch directory of this test, empty.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "connect-trade-doctor-variants-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn order(user: &PaperUser, cl: &str, side: OrderSide, limit: Option<&str>) -> PlaceOrderRequest {
    PlaceOrderRequest::try_from(
        PlaceOrderRequest::builder()
            .account_id(user.account_id.clone())
            .broker(BrokerCode::Alpaca)
            .cl_order_id(cl.to_string())
            .instrument(Some(Instrument::Equity))
            .order_limit_price(limit.map(|l| l.parse().unwrap()))
            .order_qty(Some("1".parse().unwrap()))
            .order_tif(TimeInForce::Day)
            .order_type(if limit.is_some() {
                OrderType::Limit
            } else {
                OrderType::Market
            })
            .side(Some(side))
            .symbol(Some("AAPL".to_string())),
    )
    .expect("every required field is given")
}

/// A simulator under `wire` with a user who has a filled and an open order, so every read of
/// the doctor returns data.
async fn sim_with_history(wire: Option<Wire>) -> (Simulator, PaperUser) {
    let sim = support_sim::sim_under(wire).await;
    let platform = sim.client().expect("client");
    let user = sim
        .paper_user(&platform, "alice", BrokerCode::Alpaca)
        .await
        .expect("paper user");
    for (cl, limit) in [("history-mkt", None), ("history-lmt", Some("1.00"))] {
        user.client
            .place_order()
            .body(order(&user, cl, OrderSide::Buy, limit))
            .send()
            .await
            .expect("order placed");
    }
    sim.tick();
    (sim, user)
}

/// Keeps the simulator busy for as long as it is polled: buys and sells one share, ticking
/// after each, so the brokerage stream carries order, position and balance updates (every
/// cycle has each) and the market data stream a quote per tick. Run beside the doctor until
/// the doctor returns: whenever its probes read, updates are coming.
async fn activity(sim: &Simulator, user: &PaperUser) -> Infallible {
    for i in 0u64.. {
        for side in [OrderSide::Buy, OrderSide::Sell] {
            let cl = format!("activity-{i}-{side:?}");
            // A refusal (nothing to sell yet) is activity too: ignored.
            let _ = user
                .client
                .place_order()
                .body(order(user, &cl, side, None))
                .send()
                .await;
            sim.tick();
        }
    }
    unreachable!("the activity outlives the doctor")
}

/// One doctor run: its report and its capture directory.
struct Run {
    report: Report,
    notices: String,
    captures: PathBuf,
}

/// The doctor against a simulator under `wire`, both probes on, checking against `spec`
/// (the built-in spec when `None`), while [`activity`] runs.
async fn doctor_under(wire: Option<Wire>, spec: Option<Value>, name: &str) -> Run {
    let (sim, user) = sim_with_history(wire).await;
    let captures = scratch(name);
    let mut options = DoctorOptions::new(sim.rest_url(), sim.credentials());
    options.user = Some(user.credentials.clone());
    options.spec = spec;
    options.capture_dir = Some(captures.clone());
    options.market_data = Some(user.connection_id.clone());
    options.market_data_url = sim.market_data_url().to_string();
    options.brokerage_stream = true;
    options.brokerage_url = sim.brokerage_stream_url().to_string();
    // The probes end after 12 messages: with the activity running that takes milliseconds,
    // and any 12 consecutive brokerage updates hold an order, a position and a balance. The
    // durations are only upper bounds, reached when something is broken.
    options.stream_messages = 12;
    options.stream_duration = Duration::from_secs(20);
    options.flow_timeout = Duration::from_secs(20);
    options.grace = GRACE;
    let mut notices = Vec::new();
    let started = std::time::Instant::now();
    let report = tokio::select! {
        report = doctor::run(&options, &mut notices) => report.expect("the doctor runs"),
        never = activity(&sim, &user) => match never {},
    };
    // A missing `welcome` or `authenticated` costs the grace, never the flow timeout.
    assert!(
        started.elapsed() < options.flow_timeout,
        "{name}: {:?}",
        started.elapsed()
    );
    Run {
        report,
        notices: String::from_utf8(notices).expect("UTF-8 notices"),
        captures,
    }
}

/// Every divergence as its report line, counts folded: each divergence of a body or frame
/// that a variant introduces is in every object of its kind, so `N of N` is written `all`.
/// (A flow divergence is one per stream session.)
fn divergences(report: &Report) -> BTreeSet<String> {
    let mut lines = BTreeSet::new();
    for operation in &report.operations {
        for d in &operation.divergences {
            if d.check == "flow" {
                assert_eq!(d.count, 1, "{}", report.to_human());
                lines.insert(format!("{}: {}", operation.operation, d.message));
                continue;
            }
            assert_eq!(
                d.count,
                d.of,
                "{}: {} is not in every object of its kind\n{}",
                operation.operation,
                d.message,
                report.to_human()
            );
            let message = d
                .message
                .replace(&format!("in {} of {}", d.count, d.of), "in all");
            lines.insert(format!("{}: {message}", operation.operation));
        }
    }
    lines
}

/// What a variant introduces that the doctor, checking against the built-in spec, can see.
fn introduced(wire: Option<Wire>) -> BTreeSet<String> {
    let updates = ["order", "position", "balance"];
    let lines: Vec<String> = match wire {
        None => Vec::new(),
        // `OrderPage` is `oneOf` the bare array and the `{orders, next_cursor, prev_cursor}`
        // envelope: the envelope is one of the spec's shapes.
        Some(Wire::OrdersEnvelope) => Vec::new(),
        // `Order` requires only `order_id` and `account_id`, which the minimal orders keep.
        Some(Wire::OrdersMinimal) => Vec::new(),
        // Changes only the answers to POST and DELETE, which a read-only doctor never sends.
        Some(Wire::Created204) => Vec::new(),
        // `MarketDataToken` declares `token` as the token's other name, requires nothing, and
        // says a missing `expires_at` means the documented 24 hours.
        Some(Wire::TokenPlain) => Vec::new(),
        Some(Wire::NoWelcome) => [MARKET_DATA, BROKERAGE]
            .map(|stream| {
                format!(
                    "{stream}: no `welcome` after connecting (the flow starts with one); \
                     `authenticate` was sent after a {} ms grace, as the SDK does",
                    GRACE.as_millis()
                )
            })
            .to_vec(),
        Some(Wire::NoAuthenticated) => [MARKET_DATA, BROKERAGE]
            .map(|stream| {
                format!(
                    "{stream}: no `authenticated` reply to `authenticate`; the `subscribed` \
                     reply came, so it was accepted (the SDK takes the first reply as \
                     authentication)"
                )
            })
            .to_vec(),
        // `UpdateMeta.sequence` is an integer (`Option<u64>`) in the protocol's schema; the
        // SDK reads a string too, so only the schema check sees it.
        Some(Wire::StringSequence) => updates
            .iter()
            .map(|t| {
                format!(
                    "{BROKERAGE}: `BrokerageMessage[{t}].sequence`: a string of digits, the \
                     spec says an integer (in all)"
                )
            })
            .collect(),
        // The doctor sees no `error` frame in a healthy flow, and the protocol's
        // `StreamErrorMessage` defaults `code` and makes `request_id` optional: an error
        // with only `type` and `message` holds to its schema. Nothing to see.
        Some(Wire::ErrorMessageOnly) => Vec::new(),
        // `sim_extra` on every message of both streams, and in every update's `data`.
        Some(Wire::ExtraField) => {
            let mut lines = Vec::new();
            for t in ["welcome", "authenticated", "subscribed", "quote"] {
                lines.push(format!(
                    "{MARKET_DATA}: `MarketDataMessage[{t}].sim_extra`: not in the spec; objects"
                ));
            }
            for t in ["welcome", "authenticated", "subscribed"]
                .iter()
                .chain(&updates)
            {
                lines.push(format!(
                    "{BROKERAGE}: `BrokerageMessage[{t}].sim_extra`: not in the spec; objects"
                ));
            }
            for t in updates {
                lines.push(format!(
                    "{BROKERAGE}: `BrokerageMessage[{t}].data.sim_extra`: not in the spec; \
                     objects"
                ));
            }
            lines
        }
        // Every field it drops is optional in the protocol: `UpdateMeta`'s `user_id`,
        // `account_id` and `timestamp` are `#[serde(default)]`, so are the quote's
        // `timestamp` and the welcome's `message`.
        Some(Wire::MissingField) => Vec::new(),
        Some(other) => panic!("no expectation written for {other}"),
    };
    lines.into_iter().collect()
}

fn capture_files(dir: &Path) -> Vec<(PathBuf, Value)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("the capture directory")
        .map(|e| e.expect("an entry").path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("a capture file");
            let value = serde_json::from_str(&text).expect("a capture is JSON");
            (path, value)
        })
        .collect()
}

/// What each capture file shows against `spec`: REST captures against its schemas, stream
/// captures against the protocol's.
fn capture_findings(spec: &Value, dir: &Path) -> (Vec<String>, BTreeSet<String>) {
    let mut rest = Vec::new();
    let mut streams = BTreeSet::new();
    for (path, capture) in capture_files(dir) {
        let found = doctor::check_capture(spec, &capture)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if capture["kind"] == "stream" {
            streams.extend(found);
        } else {
            rest.extend(found.into_iter().map(|f| {
                format!(
                    "{}: {f}",
                    path.file_name().unwrap_or_default().to_string_lossy()
                )
            }));
        }
    }
    (rest, streams)
}

/// The stream divergences of a report in `check_capture`'s form (`path: kind (…)`).
fn stream_divergences(report: &Report) -> BTreeSet<String> {
    report
        .operations
        .iter()
        .filter(|o| o.operation == MARKET_DATA || o.operation == BROKERAGE)
        .flat_map(|o| o.divergences.iter())
        .filter(|d| d.check == "schema")
        .map(|d| {
            format!(
                "{}: {} (spec: {}; seen: {})",
                d.path, d.kind, d.spec, d.seen
            )
        })
        .collect()
}

/// A scratch copy of `spec` (and of `spec/PROVENANCE.md`) for `spec learn` to change.
fn spec_copy(name: &str, spec: &Value) -> (PathBuf, PathBuf) {
    let work = scratch(name);
    std::fs::create_dir_all(&work).unwrap();
    let path = work.join("openapi.json");
    std::fs::write(&path, serde_json::to_string_pretty(spec).unwrap()).unwrap();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/spec/PROVENANCE.md"),
        work.join("PROVENANCE.md"),
    )
    .unwrap();
    (work, path)
}

fn learn(captures: &Path, spec_path: &Path) -> (xtask::learn::LearnOutcome, String) {
    let outcome = xtask::learn::learn(&xtask::learn::LearnOptions::new(
        vec![captures.to_path_buf()],
        spec_path.to_path_buf(),
    ))
    .expect("spec learn runs");
    let rendered = xtask::learn::render(&outcome, spec_path);
    (outcome, rendered)
}

fn built_in_spec() -> Value {
    serde_json::from_str(doctor::BUILT_IN_SPEC).expect("the built-in spec is JSON")
}

/// The doctor under `wire` against the built-in spec reports exactly what the variant
/// introduces; the capture shows the same; `spec learn` on it changes nothing (the spec
/// already validates every REST capture, and stream frames are the protocol's business).
async fn holds(wire: Option<Wire>) {
    let name = wire.map_or("default", Wire::name);
    let run = doctor_under(wire, None, name).await;
    let report = &run.report;
    for notice in [
        doctor::READ_ONLY_NOTICE,
        doctor::MARKET_DATA_CONSEQUENCE,
        doctor::BROKERAGE_STREAM_CONSEQUENCE,
    ] {
        assert!(run.notices.contains(notice), "{}", run.notices);
    }
    // Both probes ran through the flow and read: 3 frames of the flow at least, and
    // updates (quotes) after it.
    for stream in [MARKET_DATA, BROKERAGE] {
        let probe = report
            .operations
            .iter()
            .find(|o| o.operation == stream)
            .unwrap_or_else(|| panic!("{name}: no {stream} in\n{}", report.to_human()));
        assert!(probe.requests >= 12, "{name}: {}", report.to_human());
    }
    assert_eq!(
        divergences(report),
        introduced(wire),
        "{name}:\n{}",
        report.to_human()
    );
    assert_eq!(
        report.exit_code(),
        u8::from(!introduced(wire).is_empty()),
        "{name}"
    );

    // The capture shows what the doctor saw.
    let spec = built_in_spec();
    let (rest, streams) = capture_findings(&spec, &run.captures);
    assert_eq!(rest, Vec::<String>::new(), "{name}");
    assert_eq!(streams, stream_divergences(report), "{name}");

    // Nothing for `spec learn` to change.
    let (work, spec_path) = spec_copy(&format!("{name}-spec"), &spec);
    let before = std::fs::read(&spec_path).unwrap();
    let (outcome, rendered) = learn(&run.captures, &spec_path);
    assert!(outcome.captures >= 8, "{name}: {rendered}");
    assert!(outcome.learned.is_empty(), "{name}: {rendered}");
    assert!(outcome.not_learned.is_empty(), "{name}: {rendered}");
    assert!(outcome.changes.is_empty(), "{name}: {rendered}");
    assert!(rendered.contains("Nothing to learn"), "{name}: {rendered}");
    assert_eq!(std::fs::read(&spec_path).unwrap(), before, "{name}");
    std::fs::remove_dir_all(&run.captures).ok();
    std::fs::remove_dir_all(&work).ok();
}

#[tokio::test]
async fn default_wire() {
    holds(None).await;
}

#[tokio::test]
async fn orders_envelope() {
    holds(Some(Wire::OrdersEnvelope)).await;
}

#[tokio::test]
async fn orders_minimal() {
    holds(Some(Wire::OrdersMinimal)).await;
}

#[tokio::test]
async fn created_204() {
    holds(Some(Wire::Created204)).await;
}

#[tokio::test]
async fn token_plain() {
    holds(Some(Wire::TokenPlain)).await;
}

#[tokio::test]
async fn no_welcome() {
    holds(Some(Wire::NoWelcome)).await;
}

#[tokio::test]
async fn no_authenticated() {
    holds(Some(Wire::NoAuthenticated)).await;
}

#[tokio::test]
async fn string_sequence() {
    holds(Some(Wire::StringSequence)).await;
}

#[tokio::test]
async fn error_message_only() {
    holds(Some(Wire::ErrorMessageOnly)).await;
}

#[tokio::test]
async fn extra_field() {
    holds(Some(Wire::ExtraField)).await;
}

#[tokio::test]
async fn missing_field() {
    holds(Some(Wire::MissingField)).await;
}

#[test]
fn every_variant_has_a_test_here() {
    // Adding a variant without an expectation fails here (and in `introduced`).
    assert_eq!(
        Wire::ALL.iter().map(|w| w.name()).collect::<Vec<_>>(),
        [
            "orders-envelope",
            "orders-minimal",
            "created-204",
            "token-plain",
            "no-welcome",
            "no-authenticated",
            "string-sequence",
            "error-message-only",
            "extra-field",
            "missing-field",
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// The REST variants against a spec without the knowledge that covers them
// ---------------------------------------------------------------------------------------------

/// The spec as it would be if `GET /orders` were only the bare array the cookbook reads.
fn spec_without_envelope() -> Value {
    let mut spec = built_in_spec();
    let page = &mut spec["components"]["schemas"]["OrderPage"];
    let array = page["oneOf"][0].clone();
    assert_eq!(array["type"], "array", "OrderPage's first branch: {page}");
    *page = array;
    spec
}

/// The fields a full order always carries and [`Wire::OrdersMinimal`] drops: the
/// non-nullable scalars of `Order` outside the cookbook's fields.
const FULL_ORDER_FIELDS: [&str; 4] = ["broker", "instrument", "order_tif", "updated_at"];

/// The spec as it would be if it required every field a full order carries.
fn spec_requiring_full_orders() -> Value {
    let mut spec = built_in_spec();
    let required = spec["components"]["schemas"]["Order"]["required"]
        .as_array_mut()
        .expect("Order.required");
    required.extend(FULL_ORDER_FIELDS.map(Value::from));
    spec
}

/// The spec as it would be with only the documented name of the token, and its expiry
/// required.
fn spec_with_documented_token() -> Value {
    let mut spec = built_in_spec();
    let token = &mut spec["components"]["schemas"]["MarketDataToken"];
    let properties = token["properties"].as_object_mut().expect("properties");
    assert!(properties.remove("token").is_some(), "{token}");
    token["required"] = json!(["access_token", "expires_at"]);
    spec
}

/// Under `wire`, against `narrowed`: the default wire diverges from nothing (the narrowing
/// takes out only what the variant changes), the variant diverges exactly in `expected`;
/// `spec learn` on the variant's captures makes each of `changes` (location, start of the
/// message), its diff names each of `named`, and every capture validates under the learned
/// spec; learning again changes nothing.
async fn learned(
    wire: Wire,
    narrowed: Value,
    expected: &[String],
    changes: &[(&str, &str)],
    named: &[&str],
) {
    let name = format!("{}-narrowed", wire.name());
    let default = doctor_under(None, Some(narrowed.clone()), &format!("{name}-default")).await;
    assert_eq!(
        divergences(&default.report),
        BTreeSet::new(),
        "{name}, default wire:\n{}",
        default.report.to_human()
    );
    std::fs::remove_dir_all(&default.captures).ok();

    let run = doctor_under(Some(wire), Some(narrowed.clone()), &name).await;
    assert_eq!(
        divergences(&run.report),
        expected.iter().cloned().collect::<BTreeSet<_>>(),
        "{name}:\n{}",
        run.report.to_human()
    );
    let (rest, _) = capture_findings(&narrowed, &run.captures);
    assert!(!rest.is_empty(), "{name}: the captures diverge");

    let (work, spec_path) = spec_copy(&format!("{name}-spec"), &narrowed);
    let (outcome, rendered) = learn(&run.captures, &spec_path);
    let made: Vec<(&str, &str)> = outcome
        .learned
        .iter()
        .map(|l| (l.location.as_str(), l.message.as_str()))
        .collect();
    assert_eq!(made.len(), changes.len(), "{name}: {rendered}");
    for (location, message) in changes {
        assert!(
            made.iter()
                .any(|(l, m)| l == location && m.starts_with(message)),
            "{name}: no {location}: {message}… in\n{rendered}"
        );
    }
    assert!(outcome.not_learned.is_empty(), "{name}: {rendered}");
    let diff: Vec<&str> = outcome
        .changes
        .iter()
        .map(|c| c.location.as_str())
        .collect();
    for what in named {
        assert!(
            diff.iter().any(|l| l.contains(what)),
            "{name}: the diff does not name {what}: {diff:#?}\n{rendered}"
        );
    }
    assert!(
        rendered.contains("Differences from the previous spec"),
        "{rendered}"
    );
    let provenance = std::fs::read_to_string(work.join("PROVENANCE.md")).unwrap();
    for (location, _) in changes {
        assert!(
            provenance.contains(&format!("`{location}`")),
            "{name}: {location} not recorded as observed"
        );
    }

    // The captures validate under the learned spec.
    let learned_spec: Value =
        serde_json::from_str(&std::fs::read_to_string(&spec_path).unwrap()).unwrap();
    let (rest, _) = capture_findings(&learned_spec, &run.captures);
    assert_eq!(rest, Vec::<String>::new(), "{name}: {rendered}");
    let (again, rendered) = learn(&run.captures, &spec_path);
    assert!(again.learned.is_empty(), "{name}: {rendered}");
    std::fs::remove_dir_all(&run.captures).ok();
    std::fs::remove_dir_all(&work).ok();
}

#[tokio::test]
async fn orders_envelope_against_a_spec_of_bare_arrays() {
    learned(
        Wire::OrdersEnvelope,
        spec_without_envelope(),
        &["GET /orders: body is an object, the spec says an array (OrderPage)".into()],
        &[(
            "#/paths/~1orders/get/responses/2XX/content/application~1json/schema",
            "an object seen where the spec says an array: the observed shape is taken",
        )],
        &["GET /orders"],
    )
    .await;
}

#[tokio::test]
async fn orders_minimal_against_a_spec_requiring_full_orders() {
    let mut expected = Vec::new();
    for operation in [
        "GET /orders",
        "GET /accounts/{account_id}/orders/{order_id}",
    ] {
        for field in FULL_ORDER_FIELDS {
            expected.push(format!(
                "{operation}: `Order.{field}` missing in all Order objects (the spec requires it)"
            ));
        }
    }
    let made: Vec<String> = FULL_ORDER_FIELDS
        .iter()
        .map(|f| format!("`{f}` made optional"))
        .collect();
    let learned_changes: Vec<(&str, &str)> = made
        .iter()
        .map(|m| ("#/components/schemas/Order/required", m.as_str()))
        .collect();
    learned(
        Wire::OrdersMinimal,
        spec_requiring_full_orders(),
        &expected,
        &learned_changes,
        &["Order"],
    )
    .await;
}

#[tokio::test]
async fn token_plain_against_a_spec_of_the_documented_token() {
    let operation = "GET /connections/{connection_id}/token";
    learned(
        Wire::TokenPlain,
        spec_with_documented_token(),
        &[
            format!(
                "{operation}: `MarketDataToken.access_token` missing in all MarketDataToken \
                 objects (the spec requires it)"
            ),
            format!(
                "{operation}: `MarketDataToken.expires_at` missing in all MarketDataToken \
                 objects (the spec requires it)"
            ),
            format!("{operation}: `MarketDataToken.token`: not in the spec; strings"),
        ],
        &[
            (
                "#/components/schemas/MarketDataToken/required",
                "`access_token` made optional",
            ),
            (
                "#/components/schemas/MarketDataToken/required",
                "`expires_at` made optional",
            ),
            (
                "#/components/schemas/MarketDataToken/properties/token",
                "`token` added (",
            ),
        ],
        &["MarketDataToken"],
    )
    .await;
}

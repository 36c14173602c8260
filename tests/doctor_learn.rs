//! The doctor against a server that diverges from the spec, and `cargo xtask spec learn` on
//! its captures. The server is hand-made (httpmock): a bare-array `GET /orders` whose orders
//! lack `status` and carry an `order_status` the spec does not know, and a position whose
//! quantity is a JSON number. (The simulator's wire variants, once on main, add the same
//! checks against the simulator.)
#![cfg(feature = "doctor")]

use std::path::PathBuf;

use connect_trade::{
    PlatformCredentials, UserCredentials,
    doctor::{self, DoctorOptions, Report},
};
use httpmock::prelude::*;
use serde_json::{Value, json};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "connect-trade-doctor-learn-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn order(id: &str, status: &str) -> Value {
    json!({
        "order_id": id,
        "account_id": "acct-77120",
        "order_status": status,
        "symbol": "AAPL",
        "order_qty": "2",
        "filled_qty": "2",
        "created_at": "2026-03-02T15:00:00Z",
    })
}

/// A server that answers every read of the doctor, diverging on orders and positions.
async fn divergent_server() -> MockServer {
    let server = MockServer::start_async().await;
    let answers = [
        ("/users", json!([{"user_id": "alice-7"}])),
        (
            "/connections",
            json!([{"connection_id": "conn-51", "broker": "ALPACA", "connection_type": "trade"}]),
        ),
        (
            "/accounts",
            json!([{"account_id": "acct-77120", "account_number": "PA3381992"}]),
        ),
        (
            "/balances",
            json!([{"account_id": "acct-77120", "cash": "100.00"}]),
        ),
        (
            "/positions",
            json!({"positions": [{"symbol": "AAPL", "quantity": 10}], "as_of": "2026-03-02T15:00:00Z"}),
        ),
        (
            "/orders",
            json!([
                order("ord-1", "filled"),
                order("ord-2", "filled"),
                order("ord-3", "new")
            ]),
        ),
        (
            "/accounts/acct-77120/orders/ord-1",
            order("ord-1", "filled"),
        ),
        ("/transactions", json!([])),
    ];
    for (path, body) in answers {
        server
            .mock_async(|when, then| {
                when.method(GET).path(path);
                then.status(200)
                    .header("x-request-id", "req-1")
                    .header("x-ratelimit-remaining", "99")
                    .json_body(body.clone());
            })
            .await;
    }
    server
}

fn options(server: &MockServer) -> DoctorOptions {
    let mut options = DoctorOptions::new(
        server.base_url(),
        PlatformCredentials::new("client-8812", "client-secret-xyz"),
    );
    options.user = Some(UserCredentials::new("alice-7", "user-secret-abc"));
    options
}

async fn run(options: &DoctorOptions) -> Report {
    let mut notices = Vec::new();
    doctor::run(options, &mut notices)
        .await
        .expect("doctor runs")
}

#[tokio::test]
async fn divergences_are_reported_per_operation_aggregated() {
    let server = divergent_server().await;
    let report = run(&options(&server)).await;
    assert_eq!(report.exit_code(), 1);
    let lines = report.lines();
    let schema_lines: Vec<&String> = lines
        .iter()
        .filter(|l| !l.contains("generated types"))
        .collect();
    assert_eq!(
        schema_lines,
        [
            "GET /positions: body is an object, the spec says an array (body)",
            "GET /orders: `Order.order_status`: not in the spec; strings; values seen: \"filled\", \"new\"",
            "GET /accounts/{account_id}/orders/{order_id}: `Order.order_status`: not in the spec; strings; values seen: \"filled\"",
        ],
        "{}",
        report.to_human()
    );
    // Through the generated types too.
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("GET /positions: generated types: ")),
        "{lines:#?}"
    );
    let positions = &report.operations[4];
    assert_eq!(positions.headers["x-request-id"], "req-1");
    assert_eq!(positions.headers["x-ratelimit-remaining"], "99");
    let json: Value = serde_json::from_str(&report.to_json()).unwrap();
    let orders = json["operations"][5]["divergences"].as_array().unwrap();
    assert!(
        orders.iter().any(|d| d["path"] == "Order.order_status"),
        "{orders:#?}"
    );
}

#[tokio::test]
async fn learn_turns_the_captures_into_a_spec_they_validate_under() {
    let server = divergent_server().await;
    let captures = scratch("captures");
    let mut options = options(&server);
    options.capture_dir = Some(captures.clone());
    run(&options).await;

    // Redacted: no id, account number or secret of the run.
    for entry in std::fs::read_dir(&captures).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for secret in [
            "acct-77120",
            "PA3381992",
            "ord-1",
            "ord-2",
            "conn-51",
            "alice-7",
            "client-8812",
            "client-secret-xyz",
            "user-secret-abc",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }

    let work = scratch("spec");
    let root = env!("CARGO_MANIFEST_DIR");
    let spec_path = work.join("openapi.json");
    std::fs::copy(format!("{root}/spec/openapi.json"), &spec_path).unwrap();
    std::fs::copy(
        format!("{root}/spec/PROVENANCE.md"),
        work.join("PROVENANCE.md"),
    )
    .unwrap();
    let outcome = xtask::learn::learn(&xtask::learn::LearnOptions::new(
        vec![captures.clone()],
        spec_path.clone(),
    ))
    .expect("learn");
    let report = xtask::learn::render(&outcome, &spec_path);
    let locations: Vec<(&str, &str)> = outcome
        .learned
        .iter()
        .map(|l| (l.location.as_str(), l.message.as_str()))
        .collect();
    assert!(
        locations.contains(&(
            "#/paths/~1positions/get/responses/2XX/content/application~1json/schema",
            "an object seen where the spec says an array: the observed shape is taken"
        )),
        "{report}"
    );
    assert!(
        locations.iter().any(
            |(l, m)| *l == "#/components/schemas/Order/properties/order_status"
                && m.starts_with("`order_status` added (string)")
        ),
        "{report}"
    );
    // A number where money is a decimal string is a person's decision, not learned.
    assert!(
        outcome
            .not_learned
            .iter()
            .any(|n| n.starts_with("#/components/schemas/Position/properties/quantity")),
        "{report}"
    );
    // The diff names the changes.
    let diff: Vec<String> = outcome.changes.iter().map(|c| c.location.clone()).collect();
    assert!(
        diff.iter().any(|l| l.contains("GET /positions")),
        "{diff:#?}"
    );
    assert!(
        diff.iter().any(|l| l.contains("Order.order_status")),
        "{diff:#?}"
    );
    assert!(
        report.contains("Differences from the previous spec"),
        "{report}"
    );

    // Recorded as observed, with the capture's hash.
    let provenance = std::fs::read_to_string(work.join("PROVENANCE.md")).unwrap();
    let observed = provenance
        .split("<!-- observed:start -->")
        .nth(1)
        .expect("observed section");
    assert!(
        observed.contains("`#/components/schemas/Order/properties/order_status`"),
        "{observed}"
    );
    assert!(observed.contains("SHA-256 `"), "{observed}");

    // Every capture validates under the learned spec, but for the unlearned quantity.
    let learned: Value =
        serde_json::from_str(&std::fs::read_to_string(&spec_path).unwrap()).unwrap();
    let mut remaining = Vec::new();
    for entry in std::fs::read_dir(&captures).unwrap() {
        let capture: Value =
            serde_json::from_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap()).unwrap();
        remaining.extend(doctor::check_capture(&learned, &capture).unwrap());
    }
    assert_eq!(
        remaining,
        ["Position.quantity: type (spec: a decimal string; seen: integer)"]
    );

    // Learning again from the same captures changes nothing more.
    let again = xtask::learn::learn(&xtask::learn::LearnOptions::new(
        vec![captures.clone()],
        spec_path.clone(),
    ))
    .expect("learn again");
    assert!(again.learned.is_empty(), "{:?}", again.learned);
    std::fs::remove_dir_all(&captures).ok();
    std::fs::remove_dir_all(&work).ok();
}

#[test]
fn learn_infers_types_from_the_values_seen() {
    use xtask::learn::infer;
    assert_eq!(
        infer("price", &[json!("1.25"), json!("3")]),
        json!({"type": "string", "format": "decimal"})
    );
    assert_eq!(
        infer("filled_at", &[json!("2026-03-02T15:00:00Z"), Value::Null]),
        json!({"type": "string", "format": "date-time", "nullable": true})
    );
    assert_eq!(
        infer("trade_date", &[json!("2026-03-02")]),
        json!({"type": "string", "format": "date"})
    );
    assert_eq!(
        infer("refresh_token", &[json!("abc")]),
        json!({"type": "string", "format": "password"})
    );
    assert_eq!(
        infer("venue_id", &[json!("123")]),
        json!({"type": "string"})
    );
    assert_eq!(
        infer("count", &[json!(1), json!(2)]),
        json!({"type": "integer"})
    );
}

#[test]
fn stream_frames_are_held_to_the_protocol_schemas() {
    let capture = json!({
        "kind": "stream",
        "stream": "brokerage",
        "frames": [
            {"direction": "received", "message": {"type": "welcome", "message": "hi"}},
            {"direction": "sent", "message": {"action": "authenticate", "client_id": "x", "client_secret": "REDACTED"}},
            {"direction": "received", "message": {"type": "authenticated"}},
            {"direction": "received", "message": {
                "type": "order", "user_id": "u1", "account_id": "a1", "sequence": "7",
                "venue": "XNAS",
                "data": {"order_id": "o1", "account_id": "a1", "status": "filled", "extra": true}
            }},
        ]
    });
    let spec: Value = serde_json::from_str(doctor::BUILT_IN_SPEC).unwrap();
    let mut found = doctor::check_capture(&spec, &capture).unwrap();
    found.sort();
    assert_eq!(
        found,
        [
            "BrokerageMessage[order].data.extra: not-in-spec (spec: not in the spec; seen: boolean)",
            "BrokerageMessage[order].sequence: type (spec: an integer; seen: a string of digits)",
            "BrokerageMessage[order].venue: not-in-spec (spec: not in the spec; seen: string)",
        ]
    );
    let clean = json!({"kind": "stream", "stream": "market-data", "frames": [
        {"direction": "received", "message": {"type": "welcome"}},
        {"direction": "received", "message": {"type": "quote", "symbol": "AAPL", "bid": "1.00", "ask": "1.01",
            "bid_size": "100", "ask_size": "100", "timestamp": "2026-03-02T15:00:02Z"}},
    ]});
    assert_eq!(
        doctor::check_capture(&spec, &clean).unwrap(),
        Vec::<String>::new()
    );
}

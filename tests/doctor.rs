//! `connect-trade-doctor` against the simulator: nothing diverges on the default wire, only
//! GETs are sent, and the capture holds no secret, id or account number of the run.
#![cfg(feature = "doctor")]

use std::path::{Path, PathBuf};

use chrono::{TimeZone, Utc};
use connect_trade::{
    codes::{BrokerCode, Instrument, OrderSide, OrderType, TimeInForce},
    doctor::{self, DoctorOptions, Report},
    rest::types::PlaceOrderRequest,
};
use connect_trade_sim::{PaperUser, Simulator};

/// A scratch directory of this test, empty.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "connect-trade-doctor-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A simulator with a user who has a filled and an open order, so every read returns data.
async fn sim_with_history() -> (Simulator, PaperUser) {
    let sim = Simulator::builder()
        .manual_clock()
        .start_time(Utc.with_ymd_and_hms(2026, 3, 2, 15, 0, 0).unwrap())
        .start()
        .await
        .expect("simulator starts");
    let platform = sim.client().expect("client");
    let user = sim
        .paper_user(&platform, "alice", BrokerCode::Alpaca)
        .await
        .expect("paper user");
    for (cl, order_type, limit) in [
        ("doctor-mkt-1", OrderType::Market, None),
        (
            "doctor-lmt-1",
            OrderType::Limit,
            Some("1.00".parse().unwrap()),
        ),
    ] {
        let body = PlaceOrderRequest::try_from(
            PlaceOrderRequest::builder()
                .account_id(user.account_id.clone())
                .broker(BrokerCode::Alpaca)
                .cl_order_id(cl.to_string())
                .instrument(Some(Instrument::Equity))
                .order_limit_price(limit)
                .order_qty(Some("2".parse().unwrap()))
                .order_tif(TimeInForce::Day)
                .order_type(order_type)
                .side(Some(OrderSide::Buy))
                .symbol(Some("AAPL".to_string())),
        )
        .expect("every required field is given");
        user.client
            .place_order()
            .body(body)
            .send()
            .await
            .expect("order placed");
    }
    sim.tick();
    sim.tick();
    (sim, user)
}

fn options(sim: &Simulator, user: &PaperUser) -> DoctorOptions {
    let mut options = DoctorOptions::new(sim.rest_url(), sim.credentials());
    options.user = Some(user.credentials.clone());
    options
}

async fn run(options: &DoctorOptions) -> (Report, String) {
    let mut notices = Vec::new();
    let report = doctor::run(options, &mut notices)
        .await
        .expect("doctor runs");
    (report, String::from_utf8(notices).unwrap())
}

#[tokio::test]
async fn on_the_default_wire_nothing_diverges() {
    let (sim, user) = sim_with_history().await;
    let (report, notices) = run(&options(&sim, &user)).await;
    assert!(notices.contains("Read-only"), "{notices}");
    assert_eq!(
        report.lines(),
        Vec::<String>::new(),
        "{}",
        report.to_human()
    );
    assert_eq!(report.exit_code(), 0);
    let operations: Vec<&str> = report
        .operations
        .iter()
        .map(|o| o.operation.as_str())
        .collect();
    assert_eq!(
        operations,
        [
            "GET /users",
            "GET /connections",
            "GET /accounts",
            "GET /balances",
            "GET /positions",
            "GET /orders",
            "GET /accounts/{account_id}/orders/{order_id}",
            "GET /transactions",
        ]
    );
    assert!(report.to_human().contains("Nothing diverges"));
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["divergences"], 0);
    assert_eq!(json["read_only"], true);
}

#[tokio::test]
async fn only_get_requests_are_sent() {
    let (sim, user) = sim_with_history().await;
    let before = sim.responses().len();
    let (report, _) = run(&options(&sim, &user)).await;
    assert!(report.read_only);
    let sent: Vec<(String, String)> = sim.responses()[before..]
        .iter()
        .map(|r| (r.method.clone(), r.route.clone().unwrap_or_default()))
        .collect();
    assert!(sent.len() >= 8, "{sent:?}");
    for (method, route) in &sent {
        assert_eq!(method, "GET", "the doctor sent {method} {route}");
    }
    let routes: std::collections::BTreeSet<&str> = sent.iter().map(|(_, r)| r.as_str()).collect();
    assert_eq!(
        routes.into_iter().collect::<Vec<_>>(),
        [
            "/accounts",
            "/accounts/{account_id}/orders/{order_id}",
            "/balances",
            "/connections",
            "/orders",
            "/positions",
            "/transactions",
            "/users",
        ]
    );
}

fn files_under(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("capture dir") {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            let text = std::fs::read_to_string(&path).unwrap();
            out.push((path, text));
        }
    }
    out
}

/// Every id-like and secret value the simulator's responses and the run's credentials hold.
fn identifiers(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, child) in map {
                let sensitive = key == "id"
                    || key.ends_with("_id")
                    || key.ends_with("_number")
                    || key.contains("secret")
                    || key.contains("token")
                    || key.contains("cursor");
                match child {
                    serde_json::Value::String(s) if sensitive && !s.is_empty() => {
                        out.push(s.clone())
                    }
                    serde_json::Value::Number(n) if sensitive => out.push(n.to_string()),
                    other => identifiers(other, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| identifiers(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_capture_holds_no_secret_id_or_account_number_of_the_run() {
    let (sim, user) = sim_with_history().await;
    let dir = scratch("capture");
    let mut options = options(&sim, &user);
    options.capture_dir = Some(dir.clone());
    options.market_data = Some(user.connection_id.clone());
    options.market_data_url = sim.market_data_url().to_string();
    options.brokerage_stream = true;
    options.brokerage_url = sim.brokerage_stream_url().to_string();
    options.stream_duration = std::time::Duration::from_millis(300);
    let (report, notices) = run(&options).await;
    assert!(
        notices.contains(doctor::MARKET_DATA_CONSEQUENCE),
        "{notices}"
    );
    assert!(
        notices.contains(doctor::BROKERAGE_STREAM_CONSEQUENCE),
        "{notices}"
    );
    assert!(!report.read_only);
    // The probes ran, their frames held to the protocol's JSON Schemas: nothing diverges.
    for stream in ["market data stream", "brokerage stream"] {
        let probe = report
            .operations
            .iter()
            .find(|o| o.operation == stream)
            .unwrap_or_else(|| panic!("no {stream} in {}", report.to_human()));
        assert!(probe.requests >= 3, "{}", report.to_human());
    }
    assert_eq!(
        report.lines(),
        Vec::<String>::new(),
        "{}",
        report.to_human()
    );
    assert!(
        report
            .operations
            .iter()
            .any(|o| o.operation == "GET /connections/{connection_id}/token")
    );

    let platform = sim.credentials();
    let mut secrets = vec![
        platform.client_id.clone(),
        platform.client_secret.expose().to_string(),
        user.credentials.user_id.clone(),
        user.credentials.user_secret.expose().to_string(),
        user.connection_id.clone(),
        user.account_id.clone(),
    ];
    for response in sim.responses() {
        if let Some(body) = &response.body {
            identifiers(body, &mut secrets);
        }
    }
    secrets.sort();
    secrets.dedup();
    assert!(secrets.len() > 8, "{secrets:?}");
    let files = files_under(&dir);
    assert!(files.len() >= 10, "{} files", files.len());
    for (path, text) in &files {
        for secret in &secrets {
            assert!(
                !text.contains(secret.as_str()),
                "{} holds {secret:?}",
                path.display()
            );
        }
    }
    // Relations survive: the order read singly is an order of the list, under one placeholder.
    let single = files
        .iter()
        .find(|(p, _)| p.to_string_lossy().contains("get_order"))
        .expect("a get_order capture");
    let single: serde_json::Value = serde_json::from_str(&single.1).unwrap();
    let order_id = single["response"]["body"]["order_id"]
        .as_str()
        .unwrap()
        .to_string();
    let account_id = single["response"]["body"]["account_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(order_id.len(), "ord_000000".len().max(order_id.len()));
    assert!(
        single["request"]["url"]
            .as_str()
            .unwrap()
            .contains(&order_id)
    );
    assert!(
        single["request"]["url"]
            .as_str()
            .unwrap()
            .contains(&account_id)
    );
    let accounts = files
        .iter()
        .find(|(p, _)| p.to_string_lossy().contains("list_accounts"))
        .unwrap();
    assert!(accounts.1.contains(&account_id));
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_exits_0_on_the_simulator_and_2_when_it_cannot_run() {
    let (sim, user) = sim_with_history().await;
    let platform = sim.credentials();
    let credentials = [
        ("CONNECT_TRADE_CLIENT_ID", platform.client_id.clone()),
        (
            "CONNECT_TRADE_CLIENT_SECRET",
            platform.client_secret.expose().to_string(),
        ),
        ("CONNECT_TRADE_USER_ID", user.credentials.user_id.clone()),
        (
            "CONNECT_TRADE_USER_SECRET",
            user.credentials.user_secret.expose().to_string(),
        ),
    ];
    // The simulator serves from the runtime's other worker while this one waits.
    let run = |args: &[&str], env: &[(&str, String)]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_connect-trade-doctor"))
            .args(args)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .expect("the doctor runs")
    };
    let url = sim.rest_url().to_string();
    let ok = tokio::task::block_in_place(|| run(&["--base-url", &url, "--json"], &credentials));
    let stderr = String::from_utf8_lossy(&ok.stderr);
    assert_eq!(ok.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("Read-only"), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&ok.stdout).expect("--json is JSON");
    assert_eq!(report["divergences"], 0);

    let no_credentials = run(&["--base-url", &url], &[]);
    assert_eq!(no_credentials.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_credentials.stderr).contains("CONNECT_TRADE_CLIENT_ID"));

    let not_a_number = run(&["--messages", "many"], &credentials);
    assert_eq!(not_a_number.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&not_a_number.stderr).contains("--messages takes a number"),
        "{}",
        String::from_utf8_lossy(&not_a_number.stderr)
    );

    let secret_flag = run(&["--client-secret", "s3cr3t"], &credentials);
    assert_eq!(secret_flag.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&secret_flag.stderr).contains("not accepted"));

    let wrong = [
        ("CONNECT_TRADE_CLIENT_ID", "nobody".to_string()),
        ("CONNECT_TRADE_CLIENT_SECRET", "wrong".to_string()),
    ];
    let refused = tokio::task::block_in_place(|| run(&["--base-url", &url], &wrong));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("refused"), "{stderr}");
}

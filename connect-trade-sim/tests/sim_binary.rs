//! The `connect-trade-sim` binary: prints its URLs and credentials, serves, stops on Ctrl-C.
#![cfg(unix)]

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
};

#[test]
fn the_binary_serves_and_stops_cleanly_on_ctrl_c() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_connect-trade-sim"))
        .args([
            "--port",
            "0",
            "--client-id",
            "bin-id",
            "--client-secret",
            "bin-secret",
            "--wire",
            "no-welcome,orders-envelope",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the binary");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let done = line.contains("Ctrl-C");
        printed.push(line);
        if done {
            break;
        }
    }
    let field = |name: &str| {
        printed
            .iter()
            .find(|l| l.trim_start().starts_with(name))
            .and_then(|l| l.split_whitespace().last())
            .unwrap_or_else(|| panic!("no {name} in {printed:#?}"))
            .to_string()
    };
    let rest = field("REST API");
    assert!(rest.starts_with("http://127.0.0.1:"));
    assert!(field("brokerage stream").starts_with("ws://127.0.0.1:"));
    assert!(field("market data stream").starts_with("ws://127.0.0.1:"));
    assert_eq!(field("client-id"), "bin-id");
    assert_eq!(field("client-secret"), "bin-secret");
    let wire = printed
        .iter()
        .find(|l| l.trim_start().starts_with("wire variants"))
        .unwrap_or_else(|| panic!("no wire variants in {printed:#?}"));
    assert!(
        wire.ends_with("orders-envelope no-welcome"),
        "both variants on, in Wire::ALL order: {wire}"
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = runtime.block_on(async {
        let client = reqwest::Client::new();
        let ok = client
            .get(format!("{rest}/users"))
            .header("client-id", "bin-id")
            .header("client-secret", "bin-secret")
            .send()
            .await
            .unwrap();
        let refused = client
            .get(format!("{rest}/users"))
            .header("client-id", "sim-client-id")
            .header("client-secret", "sim-client-secret")
            .send()
            .await
            .unwrap();
        (ok.status().as_u16(), refused.status().as_u16())
    });
    assert_eq!(
        status,
        (200, 401),
        "only the configured credentials are accepted"
    );

    let interrupted = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "Ctrl-C stops it cleanly: {exit:?}");
    let rest_of_output: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(
        rest_of_output.iter().any(|l| l.contains("stopping")),
        "{rest_of_output:?}"
    );
}

#[test]
fn bad_arguments_are_explained() {
    let output = Command::new(env!("CARGO_BIN_EXE_connect-trade-sim"))
        .args(["--port", "eighty"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--port") && stderr.contains("eighty"),
        "{stderr}"
    );
    let help = Command::new(env!("CARGO_BIN_EXE_connect-trade-sim"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("--market-data-port"));
}

#[test]
fn an_unknown_wire_variant_is_refused_with_the_valid_names() {
    let output = Command::new(env!("CARGO_BIN_EXE_connect-trade-sim"))
        .args(["--wire", "orders-envelope,no-welcom"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--wire") && stderr.contains("\"no-welcom\""),
        "{stderr}"
    );
    for wire in connect_trade_sim::Wire::ALL {
        assert!(stderr.contains(wire.name()), "{stderr}");
    }
}

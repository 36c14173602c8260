//! The `connect-trade-sim` binary takes its client secret from `CONNECT_TRADE_SIM_CLIENT_SECRET`
//! as well as from `--client-secret` (the flag wins), and does not print one from the
//! environment.
#![cfg(unix)]

use std::{
    io::{BufRead, BufReader, Lines},
    process::{Child, ChildStdout, Command, Stdio},
};

/// The running binary and the rest of its output (kept open: it prints when it stops).
struct Running {
    child: Child,
    output: Lines<BufReader<ChildStdout>>,
}

/// Starts the binary; returns it with what it printed up to its "Ctrl-C" line.
fn start(args: &[&str], env_secret: &str) -> (Running, Vec<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_connect-trade-sim"))
        .args(["--port", "0"])
        .args(args)
        .env("CONNECT_TRADE_SIM_CLIENT_SECRET", env_secret)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the binary");
    let mut printed = Vec::new();
    let mut output = BufReader::new(child.stdout.take().unwrap()).lines();
    for line in output.by_ref() {
        let line = line.unwrap();
        let done = line.contains("Ctrl-C");
        printed.push(line);
        if done {
            break;
        }
    }
    (Running { child, output }, printed)
}

fn rest_url(printed: &[String]) -> String {
    printed
        .iter()
        .find(|l| l.trim_start().starts_with("REST API"))
        .and_then(|l| l.split_whitespace().last())
        .unwrap_or_else(|| panic!("no REST API in {printed:#?}"))
        .to_string()
}

/// The statuses of `GET /users` with each secret.
fn statuses(rest: &str, secrets: &[&str]) -> Vec<u16> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::new();
        let mut out = Vec::new();
        for secret in secrets {
            let response = client
                .get(format!("{rest}/users"))
                .header("client-id", "sim-client-id")
                .header("client-secret", *secret)
                .send()
                .await
                .unwrap();
            out.push(response.status().as_u16());
        }
        out
    })
}

fn stop(mut running: Running) {
    let interrupted = Command::new("kill")
        .args(["-INT", &running.child.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    let rest: Vec<String> = running.output.by_ref().map_while(Result::ok).collect();
    assert!(running.child.wait().unwrap().success(), "{rest:?}");
}

#[test]
fn the_secret_comes_from_the_environment_and_is_not_printed() {
    let (child, printed) = start(&[], "env-secret-7f3a");
    let rest = rest_url(&printed);
    let text = printed.join("\n");
    assert!(!text.contains("env-secret-7f3a"), "{text}");
    assert!(text.contains("$CONNECT_TRADE_SIM_CLIENT_SECRET"), "{text}");
    assert_eq!(
        statuses(&rest, &["env-secret-7f3a", "sim-client-secret"]),
        [200, 401]
    );
    stop(child);
}

#[test]
fn the_flag_wins_over_the_environment() {
    let (child, printed) = start(&["--client-secret", "flag-secret"], "env-secret-7f3a");
    let rest = rest_url(&printed);
    assert_eq!(
        statuses(&rest, &["flag-secret", "env-secret-7f3a"]),
        [200, 401]
    );
    stop(child);
}

//! The drill: the day Connect Trade's real document arrives.
//!
//! For each plausible upstream document in `tests/fixtures/upstream/`, the refresh runs into a
//! scratch copy of the workspace (`target/drill/repo`), then, there, `cargo check --workspace
//! --all-targets` and the quickstart journey (`cargo run --example quickstart`, against the
//! simulator) must both pass, and the generated Rust API may change only where the document
//! really differs from ours (pinned per document below).
//!
//! Each drill rebuilds the workspace crates (not their dependencies: the scratch copy shares
//! this workspace's target directory), so they are `#[ignore]`d in `cargo test`; `.ci/run` and
//! the daily `.github/workflows/upstream-spec.yml` run them, or by hand:
//!
//! ```text
//! cargo test -p xtask --test drill -- --ignored --test-threads 1
//! ```

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
    sync::Mutex,
};

use xtask::{
    diff::{Change, Severity},
    load::Source,
    refresh::{RefreshOptions, refresh},
};

/// One drill at a time: they share the scratch copy and the target directory.
static SCRATCH: Mutex<()> = Mutex::new(());

/// A framework-generated OpenAPI 3.1 document: `anyOf`-null optionals, inline enums titled by
/// field, operation ids like `place_order_orders_post`, request schemas named `PlaceOrder`,
/// credential headers as parameters, 422 validation errors. It lacks five fields we inferred,
/// the `FUT` instrument, and has a new order status.
#[test]
#[ignore = "builds a scratch copy of the workspace: run by .ci/run and the upstream-spec workflow (see the module docs)"]
fn framework_generated_3_1_document() {
    drill(
        "framework-3.1.json",
        &Expected {
            kept_fields: &[
                "Balance.maintenance_margin",
                "MarketDataToken.token",
                "Order.replaced_by",
                "Order.updated_at",
                "Position.daily_pl",
                "Transaction.settlement_date",
            ],
            kept_optional: KEPT_OPTIONAL,
            breaking: &["Instrument"],
            surface_removed: &[],
            // HTTPValidationError and its parts: `loc` items are strings or integers.
            surface_added_mention: &["HttpValidationError", "ValidationError", "LocationItem"],
            fields_added: &[],
        },
    );
}

/// A hand-written OpenAPI 3.0 YAML document: every name different (camelCase operation ids and
/// path parameters, `OrderRequest`, `Holding`, `Side`, security schemes `UserId`, …) and an
/// envelope-less `GET /orders` answering a bare array with no cursor.
#[test]
#[ignore = "builds a scratch copy of the workspace: run by .ci/run and the upstream-spec workflow (see the module docs)"]
fn hand_written_3_0_document_with_bare_order_list() {
    drill(
        "handwritten-3.0.yaml",
        &Expected {
            kept_fields: &[
                "Account.account_type",
                "MarketDataToken.token",
                "Order.broker_status",
            ],
            kept_optional: KEPT_OPTIONAL,
            breaking: &[],
            surface_removed: &[],
            surface_added_mention: &[],
            fields_added: &[],
        },
    );
}

/// Our own names, plus operations, schemas, an enum and an enum value we do not know, and a
/// new optional field in every response type and in the order requests (the simulator, the
/// order builders, the tests and the examples, which build them, still build).
#[test]
#[ignore = "builds a scratch copy of the workspace: run by .ci/run and the upstream-spec workflow (see the module docs)"]
fn document_with_extra_operations() {
    drill(
        "extra-operations.json",
        &Expected {
            // Our own names, as of before the token's second name (`token`, issue 10).
            kept_fields: &["MarketDataToken.token"],
            kept_optional: KEPT_OPTIONAL,
            breaking: &[],
            surface_removed: &[],
            surface_added_mention: &[
                "CreateWatchlist",
                "DeleteWatchlist",
                "GetQuotes",
                "ListWatchlists",
                "Quote",
                "QuoteSession",
                "Watchlist",
                "create_watchlist",
                "delete_watchlist",
                "get_quotes",
                "list_watchlists",
                "getQuotes",
                "listWatchlists",
                "createWatchlist",
                "deleteWatchlist",
            ],
            fields_added: &[
                "Account.opened_at",
                "Balance.pending_cash",
                "Connection.created_at",
                "ConnectionAccount.account_type",
                "ConnectionRequest.connection_id",
                "CreatedUser.created_at",
                "Error.code",
                "Fill.venue",
                "ModifyOrderRequest.extended_hours",
                "Order.exchange",
                "PlaceOrderRequest.extended_hours",
                "Position.cost_basis",
                "Transaction.currency",
                "User.email",
                "UserToken.token_type",
            ],
        },
    );
}

/// Every fixture requires the fields our spec leaves optional on purpose (issue 10): the
/// refresh keeps them optional, so the Rust API does not change.
const KEPT_OPTIONAL: &[&str] = &[
    "CreatedUser.user_id",
    "MarketDataToken.access_token",
    "Order.status",
    "Transaction.account_id",
    "Transaction.transaction_id",
];

struct Expected {
    /// `Schema.field`s reported `field-kept`.
    kept_fields: &'static [&'static str],
    /// `Schema.field`s upstream requires that `spec/names.toml` [optional] keeps optional
    /// (reported `field-kept-optional`).
    kept_optional: &'static [&'static str],
    /// Locations of the breaking changes (the real ones of that document).
    breaking: &'static [&'static str],
    /// Lines of the generated API surface that may disappear.
    surface_removed: &'static [&'static str],
    /// Every new line of the generated API surface mentions one of these (the document's new
    /// operations and types); changed lines of existing items are not allowed.
    surface_added_mention: &'static [&'static str],
    /// `Schema.field`s the document adds: their field and builder setter are new lines too.
    fields_added: &'static [&'static str],
}

fn drill(fixture: &str, expected: &Expected) {
    let _one_at_a_time = SCRATCH.lock().unwrap_or_else(|e| e.into_inner());
    let root = xtask::workspace_root().expect("the workspace is found");
    let scratch = root.join("target/drill/repo");
    copy_workspace(&root, &scratch);

    let fixture_path = root.join("xtask/tests/fixtures/upstream").join(fixture);
    let options = RefreshOptions::new(Source::Path(fixture_path), &scratch);
    let outcome = refresh(&options).unwrap_or_else(|e| panic!("refresh of {fixture}: {e}"));
    let report = xtask::diff::render_human(&outcome.changes);
    println!("{report}");

    // The report: renames absorbed, inferred fields kept, only the real breaking changes.
    let kept: BTreeSet<&str> = outcome
        .changes
        .iter()
        .filter(|c| c.rule == "field-kept")
        .map(|c| c.location.as_str())
        .collect();
    assert_eq!(
        kept,
        expected.kept_fields.iter().copied().collect(),
        "{report}"
    );
    let kept_optional: BTreeSet<&str> = outcome
        .changes
        .iter()
        .filter(|c| c.rule == "field-kept-optional")
        .map(|c| c.location.as_str())
        .collect();
    assert_eq!(
        kept_optional,
        expected.kept_optional.iter().copied().collect(),
        "{report}"
    );
    let breaking: BTreeSet<&str> = outcome
        .changes
        .iter()
        .filter(|c| c.severity == Severity::Breaking)
        .map(|c: &Change| c.location.as_str())
        .collect();
    assert_eq!(
        breaking,
        expected.breaking.iter().copied().collect(),
        "{report}"
    );

    // The generated API: nothing of ours disappears or changes; new lines are the new things.
    let before = surface_of(&root.join("spec/openapi.json"));
    let after = surface_of(&scratch.join("spec/openapi.json"));
    let removed: Vec<&str> = before.difference(&after).map(String::as_str).collect();
    let added: Vec<&str> = after.difference(&before).map(String::as_str).collect();
    assert_eq!(
        removed, expected.surface_removed,
        "removed from the surface"
    );
    let unexpected: Vec<&&str> = added
        .iter()
        .filter(|line| {
            !expected
                .surface_added_mention
                .iter()
                .any(|m| line.contains(m))
                && !expected.fields_added.iter().any(|added| {
                    let (schema, field) = added.split_once('.').unwrap_or_default();
                    line.starts_with(&format!("field types::{schema}.{field}: "))
                        || line.starts_with(&format!("method types::builder::{schema}::{field}<"))
                })
        })
        .collect();
    assert!(
        unexpected.is_empty(),
        "surface lines added that are not the document's new things: {unexpected:#?}"
    );

    // The crate, the simulator and everything else still build; the quickstart still runs.
    cargo(
        &scratch,
        &["check", "--workspace", "--all-targets", "--quiet"],
    );
    cargo(&scratch, &["run", "--quiet", "--example", "quickstart"]);
}

fn surface_of(spec: &Path) -> BTreeSet<String> {
    let doc = xtask::load::read_spec(spec).expect("spec loads");
    let code = xtask::generate::generate(&doc).expect("spec generates");
    xtask::rust_surface::rust_surface(&code)
        .expect("generated code parses")
        .lines()
        .map(str::to_string)
        .collect()
}

fn cargo(dir: &Path, args: &[&str]) {
    let target = xtask::workspace_root()
        .expect("the workspace is found")
        .join("target");
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", &target)
        // The copy's crates are built once per drill: no incremental caches (gigabytes).
        .env("CARGO_INCREMENTAL", "0");
    for (key, _) in std::env::vars() {
        if key.starts_with("CONNECT_TRADE_") {
            command.env_remove(key);
        }
    }
    let output = command.output().expect("cargo runs");
    assert!(
        output.status.success(),
        "cargo {} failed in {}:\n{}\n{}",
        args.join(" "),
        dir.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Copies the workspace's files (not `target/`, not `.git`) to `to`, replacing what was there.
///
/// Cargo names the artifacts of a workspace crate after its path *relative to the workspace
/// root*, so the copy's crates would share (and overwrite) this workspace's artifacts in the
/// shared target directory. Their versions get build metadata (`0.1.0+drill`, which every
/// version requirement still matches) so they get artifacts of their own; dependencies are
/// still shared.
fn copy_workspace(from: &Path, to: &Path) {
    if to.exists() {
        std::fs::remove_dir_all(to).expect("clear the scratch copy");
    }
    copy_dir(from, to);
    for manifest in [
        "Cargo.toml",
        "connect-trade-sim/Cargo.toml",
        "xtask/Cargo.toml",
    ] {
        let path = to.join(manifest);
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let mut in_package = false;
        let mut done = false;
        let lines: Vec<String> = text
            .lines()
            .map(|line| {
                if line.starts_with('[') {
                    in_package = line.trim() == "[package]";
                }
                match line.strip_prefix("version = \"") {
                    Some(rest) if in_package && !done => {
                        done = true;
                        format!("version = \"{}+drill\"", rest.trim_end_matches('"'))
                    }
                    _ => line.to_string(),
                }
            })
            .collect();
        std::fs::write(&path, lines.join("\n") + "\n").expect("write a scratch manifest");
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create a scratch directory");
    for entry in std::fs::read_dir(from).expect("read the workspace") {
        let entry = entry.expect("read a directory entry");
        let name = entry.file_name();
        if name == "target" || name == ".git" {
            continue;
        }
        let path: PathBuf = entry.path();
        let kind = entry.file_type().expect("file type");
        if kind.is_dir() {
            copy_dir(&path, &to.join(&name));
        } else if kind.is_file() {
            std::fs::copy(&path, to.join(&name)).expect("copy a file");
        }
    }
}

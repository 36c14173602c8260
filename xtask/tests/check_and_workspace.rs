//! `spec check`, `spec diff --markdown` (local files and a loopback server), and finding the
//! workspace from the current directory at run time.

use std::{
    io::{Read, Write},
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Command, Output},
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn our_spec() -> PathBuf {
    xtask::workspace_root()
        .expect("tests run inside the workspace")
        .join("spec/openapi.json")
}

fn xtask_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run xtask")
}

fn xtask(args: &[&str]) -> Output {
    xtask_in(Path::new(env!("CARGO_MANIFEST_DIR")), args)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `path` normalized as `spec refresh` writes it.
fn normalized_text(path: &Path) -> String {
    let raw = xtask::load::read_spec(path).unwrap();
    xtask::json::to_canonical_string(&xtask::normalize::normalize(&raw).document)
}

/// Serves `responses` (status, body) to successive connections on loopback; returns the URL.
fn serve(responses: Vec<(u16, Vec<u8>)>) -> (String, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://127.0.0.1:{}/openapi.json",
        listener.local_addr().unwrap().port()
    );
    let server = std::thread::spawn(move || {
        for (status, body) in responses {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request).unwrap();
            let head = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            stream.write_all(head.as_bytes()).unwrap();
            stream.write_all(&body).unwrap();
        }
    });
    (url, server)
}

/// A scratch workspace: `Cargo.toml` with `[workspace]`, and `spec/openapi.json` holding the
/// 3.1 fixture normalized (a surface different from ours).
fn scratch_workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Cargo.toml"), "[workspace]\nmembers = []\n").unwrap();
    std::fs::create_dir_all(dir.path().join("spec")).unwrap();
    std::fs::create_dir_all(dir.path().join("deep/er")).unwrap();
    std::fs::write(
        dir.path().join("spec/openapi.json"),
        normalized_text(&fixture("openapi-3.1.yaml")),
    )
    .unwrap();
    dir
}

#[test]
fn the_workspace_is_the_one_holding_the_current_directory() {
    let ws = scratch_workspace();
    let ours_before = std::fs::read(our_spec()).unwrap();

    // `surface` from a subdirectory reads the scratch workspace's spec, not ours.
    let surface = xtask_in(&ws.path().join("deep/er"), &["spec", "surface"]);
    assert!(surface.status.success(), "{}", text(&surface.stderr));
    let expected = xtask::surface::spec_surface(
        &xtask::load::read_spec(&ws.path().join("spec/openapi.json")).unwrap(),
    );
    assert_eq!(text(&surface.stdout), expected);

    // `refresh` writes the scratch workspace's spec and record, and leaves ours alone.
    let refresh = xtask_in(
        &ws.path().join("deep"),
        &[
            "spec",
            "refresh",
            "--from",
            fixture("default-responses.json").to_str().unwrap(),
        ],
    );
    assert!(refresh.status.success(), "{}", text(&refresh.stderr));
    // Normalized, with what the previous spec had and the new one lacks kept (issue 17; the
    // scratch workspace has no spec/names.toml, so nothing is renamed).
    let previous =
        xtask::normalize::normalize(&xtask::load::read_spec(&fixture("openapi-3.1.yaml")).unwrap())
            .document;
    let mut expected = xtask::normalize::normalize(
        &xtask::load::read_spec(&fixture("default-responses.json")).unwrap(),
    )
    .document;
    let names = xtask::names::Names::default();
    xtask::names::apply(&mut expected, &names, &previous);
    xtask::names::keep_missing(&mut expected, &previous, &names);
    assert_eq!(
        std::fs::read_to_string(ws.path().join("spec/openapi.json")).unwrap(),
        xtask::json::to_canonical_string(&xtask::json::sorted(&expected))
    );
    assert!(ws.path().join("spec/SOURCE.md").exists());
    assert_eq!(std::fs::read(our_spec()).unwrap(), ours_before);

    assert_eq!(
        xtask::find_workspace_root(&ws.path().join("deep/er")).as_deref(),
        Some(ws.path())
    );
}

#[test]
fn outside_any_workspace_the_xtask_says_so_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // A Cargo workspace without spec/ is not ours either.
    std::fs::write(dir.path().join("Cargo.toml"), "[workspace]\n").unwrap();
    assert_eq!(xtask::find_workspace_root(dir.path()), None);
    let refresh = xtask_in(
        dir.path(),
        &[
            "spec",
            "refresh",
            "--from",
            fixture("default-responses.json").to_str().unwrap(),
        ],
    );
    assert_eq!(refresh.status.code(), Some(1));
    assert!(
        text(&refresh.stderr).contains("no connect-trade workspace"),
        "{}",
        text(&refresh.stderr)
    );
    let entries: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(entries.len(), 1, "only Cargo.toml");
    let check = xtask_in(dir.path(), &["spec", "check", "--from", "/dev/null"]);
    assert_eq!(check.status.code(), Some(2));
}

#[test]
fn check_against_local_files() {
    let ws = scratch_workspace();
    let pinned = ws.path().join("spec/openapi.json");
    let pinned_arg = pinned.to_str().unwrap();

    // Upstream normalizes to exactly the pinned spec: 0, nothing written.
    let equal = xtask(&[
        "spec",
        "check",
        "--from",
        fixture("openapi-3.1.yaml").to_str().unwrap(),
        "--spec",
        pinned_arg,
    ]);
    assert_eq!(equal.status.code(), Some(0), "{}", text(&equal.stderr));
    assert!(text(&equal.stdout).contains("up to date"));

    // Upstream is our (larger) spec: 1, with the diff report (Markdown when asked).
    let before = std::fs::read(&pinned).unwrap();
    let differs = xtask(&[
        "spec",
        "check",
        "--from",
        our_spec().to_str().unwrap(),
        "--spec",
        pinned_arg,
        "--markdown",
    ]);
    assert_eq!(differs.status.code(), Some(1), "{}", text(&differs.stderr));
    let report = text(&differs.stdout);
    assert!(report.starts_with("## Upstream API changes"), "{report}");
    assert!(
        report.contains("| `operation-added` | `POST /orders` |"),
        "{report}"
    );
    assert_eq!(std::fs::read(&pinned).unwrap(), before, "check wrote");

    // Cannot tell: upstream missing or not OpenAPI, or no pinned spec.
    for (from, spec) in [
        ("/nonexistent/openapi.json", pinned_arg),
        (fixture("../../Cargo.toml").to_str().unwrap(), pinned_arg),
        (
            fixture("openapi-3.1.yaml").to_str().unwrap(),
            "/nonexistent/pinned.json",
        ),
    ] {
        let output = xtask(&["spec", "check", "--from", from, "--spec", spec]);
        assert_eq!(output.status.code(), Some(2), "{from} {spec}");
        assert!(text(&output.stderr).contains("cannot tell"));
    }
}

#[test]
fn check_against_a_loopback_server() {
    let ws = scratch_workspace();
    let pinned = ws.path().join("spec/openapi.json");
    let same = std::fs::read(fixture("openapi-3.1.yaml")).unwrap();
    let other = std::fs::read(fixture("default-responses.json")).unwrap();
    let (url, server) = serve(vec![
        (200, same),
        (200, other),
        (503, b"{\"message\":\"down\"}".to_vec()),
    ]);
    let check = || {
        xtask(&[
            "spec",
            "check",
            "--from",
            &url,
            "--spec",
            pinned.to_str().unwrap(),
        ])
    };
    assert_eq!(check().status.code(), Some(0));
    let differs = check();
    assert_eq!(differs.status.code(), Some(1));
    assert!(text(&differs.stdout).contains("run `cargo xtask spec refresh`"));
    let down = check();
    assert_eq!(down.status.code(), Some(2));
    assert!(text(&down.stderr).contains("503"), "{}", text(&down.stderr));
    server.join().unwrap();
}

#[test]
fn diff_markdown_from_files_and_a_loopback_server() {
    let spec = our_spec();
    let fixture = fixture("openapi-3.1.yaml");
    let breaking = xtask(&[
        "spec",
        "diff",
        spec.to_str().unwrap(),
        fixture.to_str().unwrap(),
        "--markdown",
    ]);
    assert_eq!(breaking.status.code(), Some(1));
    let report = text(&breaking.stdout);
    assert!(
        report.starts_with("## Upstream API changes\n\n**Breaking**"),
        "{report}"
    );
    assert!(report.contains("### Breaking changes"));
    assert!(
        report.contains("| `operation-removed` | `POST /orders` |"),
        "{report}"
    );
    assert!(report.contains("### Rules\n\n- `operation-removed`: breaking"));

    // OLD from a URL: the fixture served is the same document, so nothing differs.
    let (url, server) = serve(vec![(200, std::fs::read(&fixture).unwrap())]);
    let same = xtask(&[
        "spec",
        "diff",
        &url,
        fixture.to_str().unwrap(),
        "--markdown",
    ]);
    assert_eq!(same.status.code(), Some(0), "{}", text(&same.stderr));
    assert_eq!(
        text(&same.stdout),
        "## Upstream API changes\n\nNo differences in the API surface.\n"
    );
    server.join().unwrap();

    assert_eq!(
        xtask(&["spec", "diff", "a", "b", "--json", "--markdown"])
            .status
            .code(),
        Some(2)
    );
}

/// A scratch copy of our `spec/` (the spec and its naming file) refreshed from `fixture`: the
/// pinned spec is then a document in upstream's names, prepared into ours.
fn refreshed_from(upstream: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = xtask::workspace_root().unwrap();
    for file in ["openapi.json", "names.toml"] {
        std::fs::copy(root.join("spec").join(file), dir.path().join(file)).unwrap();
    }
    let spec = dir.path().join("openapi.json");
    let refresh = xtask(&[
        "spec",
        "refresh",
        "--from",
        upstream.to_str().unwrap(),
        "--spec",
        spec.to_str().unwrap(),
        "--record",
        dir.path().join("SOURCE.md").to_str().unwrap(),
    ]);
    assert!(refresh.status.success(), "{}", text(&refresh.stderr));
    dir
}

/// `spec check` goes through the naming file as `refresh` does: upstream in its own names
/// (`getOrders`, `OrderRequest`, `accountId`, …) that refreshes to exactly the pinned spec is
/// up to date (0), though normalizing it alone gives another document; a real change in it is
/// reported (1) without repeating the renames the pinned spec already records.
#[test]
fn check_applies_the_naming_file() {
    let upstream = fixture("upstream/handwritten-3.0.yaml");
    let dir = refreshed_from(&upstream);
    let spec = dir.path().join("openapi.json");
    let pinned = std::fs::read_to_string(&spec).unwrap();
    assert_ne!(normalized_text(&upstream), pinned, "the names differ");

    let equal = xtask(&[
        "spec",
        "check",
        "--from",
        upstream.to_str().unwrap(),
        "--spec",
        spec.to_str().unwrap(),
    ]);
    assert_eq!(
        equal.status.code(),
        Some(0),
        "{}{}",
        text(&equal.stdout),
        text(&equal.stderr)
    );
    assert!(text(&equal.stdout).contains("up to date"));

    // Upstream adds a field to its `Holding` (our `Position`), and an operation.
    let mut changed = xtask::load::read_spec(&upstream).unwrap();
    changed["components"]["schemas"]["Holding"]["properties"]["exchange"] =
        serde_json::json!({ "type": "string" });
    changed["paths"]["/markets"] = changed["paths"]["/accounts"].clone();
    changed["paths"]["/markets"]["get"]["operationId"] = serde_json::json!("getMarkets");
    let changed_path = dir.path().join("changed.json");
    std::fs::write(&changed_path, changed.to_string()).unwrap();
    let differs = xtask(&[
        "spec",
        "check",
        "--from",
        changed_path.to_str().unwrap(),
        "--spec",
        spec.to_str().unwrap(),
    ]);
    assert_eq!(differs.status.code(), Some(1), "{}", text(&differs.stderr));
    let report = text(&differs.stdout);
    assert!(report.contains("Position.exchange"), "{report}");
    // Only news: not the renames, the bare order list or the cursor the pinned spec records.
    for old_news in ["name-absorbed", "response-kept", "parameter-kept"] {
        assert!(!report.contains(old_news), "{old_news}: {report}");
    }
    // What the naming file cannot place is in the report, and its rule in the Markdown rules.
    assert!(
        report.contains("[name-unplaced] GET /markets: operation `getMarkets`"),
        "{report}"
    );
    let markdown = xtask(&[
        "spec",
        "check",
        "--from",
        changed_path.to_str().unwrap(),
        "--spec",
        spec.to_str().unwrap(),
        "--markdown",
    ]);
    let markdown = text(&markdown.stdout);
    assert!(
        markdown.contains("- `name-unplaced`: non-breaking"),
        "{markdown}"
    );
    assert_eq!(
        std::fs::read_to_string(&spec).unwrap(),
        pinned,
        "check wrote"
    );
}

//! The `xtask` binary end to end: refresh never damages the spec, diff's exit codes.

use std::{
    io::{Read, Write},
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use serde_json::Value;

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

fn xtask(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .output()
        .expect("run xtask")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A temporary copy of our spec, and where its record would go.
struct Workspace {
    _dir: tempfile::TempDir,
    spec: PathBuf,
    record: PathBuf,
}

impl Workspace {
    fn new() -> Workspace {
        let dir = tempfile::tempdir().unwrap();
        let spec = dir.path().join("openapi.json");
        std::fs::copy(our_spec(), &spec).unwrap();
        let record = dir.path().join("SOURCE.md");
        Workspace {
            _dir: dir,
            spec,
            record,
        }
    }

    fn refresh(&self, from: &str) -> Output {
        xtask(&[
            "spec",
            "refresh",
            "--from",
            from,
            "--spec",
            self.spec.to_str().unwrap(),
            "--record",
            self.record.to_str().unwrap(),
        ])
    }

    fn assert_untouched(&self) {
        assert_eq!(
            std::fs::read(&self.spec).unwrap(),
            std::fs::read(our_spec()).unwrap(),
            "the spec was modified"
        );
        assert!(!self.record.exists(), "a record was written");
        let leftovers: Vec<_> = std::fs::read_dir(self.spec.parent().unwrap())
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().contains("tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}

/// A loopback port nothing listens on: bound, then closed.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[test]
fn unreachable_source_fails_clearly_and_leaves_the_spec_untouched() {
    let ws = Workspace::new();
    let url = format!("http://127.0.0.1:{}/openapi.json", closed_port());
    let output = ws.refresh(&url);
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(&format!("could not fetch {url}")),
        "{stderr}"
    );
    assert!(stderr.contains("spec left untouched"), "{stderr}");
    ws.assert_untouched();
}

#[test]
fn missing_path_and_invalid_documents_leave_the_spec_untouched() {
    let ws = Workspace::new();
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.yaml");
    std::fs::write(&garbage, "openapi: [unclosed").unwrap();
    let swagger = dir.path().join("swagger.json");
    std::fs::write(&swagger, r#"{"swagger": "2.0", "info": {}, "paths": {}}"#).unwrap();
    for (source, expected) in [
        (dir.path().join("absent.json"), "could not fetch"),
        (garbage, "not a usable OpenAPI document"),
        (swagger, "Swagger 2.0"),
        // Normalizes, but progenitor still rejects it (a $ref to a missing schema).
        (fixture("dangling-ref.json"), "progenitor rejects"),
    ] {
        let output = ws.refresh(source.to_str().unwrap());
        assert_eq!(output.status.code(), Some(1), "{}", source.display());
        let stderr = text(&output.stderr);
        assert!(stderr.contains(expected), "{}: {stderr}", source.display());
        ws.assert_untouched();
    }
}

#[test]
fn refresh_from_a_path_writes_the_normalized_spec_and_the_record() {
    let ws = Workspace::new();
    let source = fixture("openapi-3.1.yaml");
    let output = ws.refresh(source.to_str().unwrap());
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{}", text(&output.stderr));

    // Normalized, given the names of the naming file beside the spec (none here: the values of
    // upstream's enums still find ours in the previous spec), with what it lacks of ours kept.
    let written = std::fs::read_to_string(&ws.spec).unwrap();
    let raw = xtask::load::read_spec(&source).unwrap();
    let previous = xtask::normalize::normalize(&xtask::load::read_spec(&our_spec()).unwrap());
    let names = xtask::names::Names::read(&ws.spec.with_file_name("names.toml")).unwrap();
    let mut expected = xtask::normalize::normalize(&raw).document;
    xtask::names::apply(&mut expected, &names, &previous.document);
    xtask::names::keep_missing(&mut expected, &previous.document, &names);
    let expected = xtask::json::to_canonical_string(&xtask::json::sorted(&expected));
    assert_eq!(written, expected);
    let spec: serde_json::Value = serde_json::from_str(&written).unwrap();
    assert_eq!(
        spec["components"]["schemas"]["Instrument"]["x-upstream-name"], "Kind",
        "upstream's one-value enum takes our name"
    );

    let record = std::fs::read_to_string(&ws.record).unwrap();
    let sha = xtask::load::sha256_hex(&std::fs::read(&source).unwrap());
    assert!(
        record.contains(&format!("| raw document SHA-256 | `{sha}` |")),
        "{record}"
    );
    assert!(record.contains(&format!("| source | {} |", source.display())));
    assert!(record.contains("| raw OpenAPI version | 3.1.0 |"));
    assert!(record.contains("retrieved (UTC)"));
    assert!(
        record.contains("`const` converted"),
        "normalization report missing"
    );

    assert!(stdout.contains("Normalization report"), "{stdout}");

    // Same input, byte-identical output; and nothing breaking left to diff (only the note that
    // this scratch workspace has no spec/names.toml to name upstream's operations).
    let again = ws.refresh(source.to_str().unwrap());
    assert!(again.status.success());
    assert_eq!(std::fs::read_to_string(&ws.spec).unwrap(), written);
    let again = text(&again.stdout);
    assert!(!again.contains("Breaking changes"), "{again}");
    assert!(
        !again.contains("Non-breaking changes (") || again.contains("[name-unplaced]"),
        "{again}"
    );
}

#[test]
fn refresh_from_a_url_fetches_over_http() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let body = std::fs::read(fixture("default-responses.json")).unwrap();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut request = [0u8; 4096];
        let n = stream.read(&mut request).unwrap();
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(&body).unwrap();
        String::from_utf8_lossy(&request[..n]).into_owned()
    });
    let ws = Workspace::new();
    let url = format!("http://127.0.0.1:{port}/openapi.json");
    let output = ws.refresh(&url);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let request = server.join().unwrap();
    assert!(
        request.starts_with("GET /openapi.json HTTP/1.1"),
        "{request}"
    );
    let spec: Value = serde_json::from_str(&std::fs::read_to_string(&ws.spec).unwrap()).unwrap();
    assert!(
        spec["paths"]["/users"]["get"]["responses"]
            .get("default")
            .is_none()
    );
    assert!(std::fs::read_to_string(&ws.record).unwrap().contains(&url));
}

#[test]
fn diff_exit_status_says_whether_anything_breaks() {
    let spec = our_spec();
    let same = xtask(&[
        "spec",
        "diff",
        spec.to_str().unwrap(),
        spec.to_str().unwrap(),
    ]);
    assert_eq!(same.status.code(), Some(0));
    assert!(text(&same.stdout).contains("No differences"));

    // Our spec against the 3.1 fixture: operations removed, so breaking; --json is parseable.
    let fixture = fixture("openapi-3.1.yaml");
    let breaking = xtask(&[
        "spec",
        "diff",
        spec.to_str().unwrap(),
        fixture.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(breaking.status.code(), Some(1));
    let json: Value = serde_json::from_slice(&breaking.stdout).unwrap();
    let changes = json["changes"].as_array().unwrap();
    assert!(changes.iter().any(|c| c["rule"] == "operation-removed"
        && c["severity"] == "breaking"
        && c["location"] == "POST /orders"));
    for change in changes {
        let keys: Vec<&String> = change.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["detail", "location", "rule", "severity"]);
    }

    // The other way round only adds: nothing breaking.
    let added = xtask(&[
        "spec",
        "diff",
        fixture.to_str().unwrap(),
        fixture.to_str().unwrap(),
    ]);
    assert_eq!(added.status.code(), Some(0));

    let missing = xtask(&[
        "spec",
        "diff",
        spec.to_str().unwrap(),
        "/nonexistent/spec.json",
    ]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(text(&missing.stderr).contains("cannot compare"));
}

#[test]
fn surface_prints_the_spec_surface() {
    let output = xtask(&["spec", "surface"]);
    assert!(output.status.success());
    let doc = xtask::load::read_spec(&our_spec()).unwrap();
    assert_eq!(text(&output.stdout), xtask::surface::spec_surface(&doc));
    assert!(text(&output.stdout).contains(
        "operation list_orders: GET /orders security=client_id+client_secret+user_id+user_secret"
    ));
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(xtask(&["spec", "diff", "only-one"]).status.code(), Some(2));
    assert_eq!(
        xtask(&["spec", "refresh", "--frm", "x"]).status.code(),
        Some(2)
    );
    assert_eq!(xtask(&["nothing"]).status.code(), Some(2));
}

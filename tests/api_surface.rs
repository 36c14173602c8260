//! The API surface, snapshotted: a change to `spec/openapi.json` or to the generated code that
//! nobody reviewed fails here. After `cargo xtask spec refresh`, review the new snapshots with
//! `cargo insta review` (or `INSTA_UPDATE=always cargo test --test api_surface` and read the
//! diff), then commit them together with the spec.

/// Every operation, parameter, body, schema field and enum value of the spec.
#[test]
fn spec_surface() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/spec/openapi.json");
    let doc = xtask::load::read_spec(path.as_ref()).expect("spec/openapi.json loads");
    insta::assert_snapshot!(xtask::surface::spec_surface(&doc));
}

/// Every public item of the generated `connect_trade::rest` module: types, fields, enum
/// variants, client methods and builder setters.
#[test]
fn rust_surface() {
    let generated = include_str!(concat!(env!("OUT_DIR"), "/rest.rs"));
    let surface = xtask::rust_surface::rust_surface(generated).expect("generated code parses");
    insta::assert_snapshot!(surface);
}

/// `cargo xtask spec refresh` checks a new spec with the generation settings of `build.rs`: if
/// the two drifted apart, a spec the xtask accepts could still fail the build.
#[test]
fn xtask_generates_what_build_rs_generates() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/spec/openapi.json");
    let doc = xtask::load::read_spec(path.as_ref()).expect("spec/openapi.json loads");
    let from_xtask = xtask::generate::generate(&doc).expect("the spec generates");
    let from_build = include_str!(concat!(env!("OUT_DIR"), "/rest.rs"));
    let surface = |code: &str| xtask::rust_surface::rust_surface(code).expect("parses");
    // build.rs appends its security table (two constants) to the generated code.
    let build_surface: String = surface(from_build)
        .lines()
        .filter(|line| !line.ends_with("_OPERATIONS: &[&str]"))
        .map(|line| format!("{line}\n"))
        .collect();
    let xtask_surface = surface(&from_xtask);
    let differing: Vec<String> = diff_lines(&xtask_surface, &build_surface);
    assert!(differing.is_empty(), "xtask vs build.rs: {differing:#?}");
}

fn diff_lines(left: &str, right: &str) -> Vec<String> {
    let (l, r): (Vec<&str>, Vec<&str>) = (left.lines().collect(), right.lines().collect());
    let mut out: Vec<String> = l
        .iter()
        .filter(|x| !r.contains(x))
        .map(|x| format!("xtask only: {x}"))
        .collect();
    out.extend(
        r.iter()
            .filter(|x| !l.contains(x))
            .map(|x| format!("build.rs only: {x}")),
    );
    out
}

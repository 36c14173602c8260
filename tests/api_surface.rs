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

//! The progenitor settings the SDK is generated with: the one definition shared by `build.rs`
//! (which includes this file with `#[path]`; it lives inside the SDK package so the published crate builds) and the xtask's generation check, so the two can
//! never generate differently.

use progenitor::{GenerationSettings, HooksMode, InterfaceStyle, TagStyle, TypeImpl};
use serde_json::Value;

/// The generation settings for the document `doc`.
///
/// - Builder-style methods, so a new optional parameter upstream does not break callers.
/// - Hooks are required: `src/client.rs` injects the credentials and retries.
/// - `{type: string, format: decimal}` → `rust_decimal::Decimal`; `format: password` →
///   `crate::credentials::Secret` (redacted in Debug and Display).
/// - Every string enum of the spec is replaced by the hand-written open enum of the same name
///   in `src/codes.rs`, which keeps unknown values instead of failing to decode them. A new
///   enum upstream therefore fails the build until it is added there: never a closed enum.
pub fn settings(doc: &Value) -> GenerationSettings {
    let mut settings = GenerationSettings::new();
    settings
        .with_interface(InterfaceStyle::Builder)
        .with_tag(TagStyle::Merged)
        .with_hooks(HooksMode::Expected)
        .with_inner_type(quote::quote!(crate::client::Inner))
        .with_derive("PartialEq")
        .with_derive("schemars::JsonSchema")
        .with_conversion(
            string_format("decimal"),
            "rust_decimal::Decimal",
            [TypeImpl::Display, TypeImpl::FromStr].into_iter(),
        )
        .with_conversion(
            string_format("password"),
            "crate::credentials::Secret",
            std::iter::empty(),
        );
    // `GET /orders` answers a bare array or an envelope (the sources disagree): the page is
    // decoded by the hand-written `OrderPage`, which accepts both shapes.
    settings.with_replacement("OrderPage", "crate::paging::OrderPage", std::iter::empty());
    for name in string_enums(doc) {
        settings.with_replacement(
            &name,
            format!("crate::codes::{name}"),
            [TypeImpl::Display, TypeImpl::FromStr].into_iter(),
        );
    }
    settings
}

fn string_format(format: &str) -> schemars08::schema::SchemaObject {
    schemars08::schema::SchemaObject {
        instance_type: Some(schemars08::schema::InstanceType::String.into()),
        format: Some(format.to_string()),
        ..Default::default()
    }
}

/// The names of the component schemas that are string enums.
pub fn string_enums(doc: &Value) -> Vec<String> {
    doc.pointer("/components/schemas")
        .and_then(Value::as_object)
        .map(|schemas| {
            schemas
                .iter()
                .filter(|(_, s)| s.get("enum").is_some() && s["type"] == "string")
                .map(|(name, _)| name.clone())
                .collect()
        })
        .unwrap_or_default()
}

//! Checking that a document generates with progenitor, with the settings of `build.rs`.
//!
//! Keep the settings here in step with `build.rs`: `tests/api_surface.rs` in the main crate
//! fails when the two generate different public surfaces.

use progenitor::{GenerationSettings, Generator, HooksMode, InterfaceStyle, TagStyle, TypeImpl};
use serde_json::Value;

use crate::Error;

/// Generates the client code of `doc` as `build.rs` does, and returns it (unformatted tokens
/// as text). Errors — and progenitor's panics, which it uses for some unsupported shapes —
/// become [`Error::Generate`].
pub fn generate(doc: &Value) -> Result<String, Error> {
    let spec: openapiv3::OpenAPI = serde_json::from_value(doc.clone())
        .map_err(|e| Error::Generate(format!("not an OpenAPI 3.0 document: {e}")))?;
    let enums = string_enums(doc);
    let run = move || -> Result<String, String> {
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
        for name in &enums {
            settings.with_replacement(
                name,
                format!("crate::codes::{name}"),
                [TypeImpl::Display, TypeImpl::FromStr].into_iter(),
            );
        }
        let mut generator = Generator::new(&settings);
        generator
            .generate_tokens(&spec)
            .map(|tokens| tokens.to_string())
            .map_err(|e| e.to_string())
    };
    // progenitor asserts (panics) on some shapes, e.g. two success responses: report those as
    // errors too, without the default panic message on stderr.
    let previous_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let outcome = std::panic::catch_unwind(run);
    std::panic::set_hook(previous_hook);
    match outcome {
        Ok(Ok(code)) => Ok(code),
        Ok(Err(message)) => Err(Error::Generate(message)),
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "progenitor panicked".into());
            Err(Error::Generate(format!("progenitor panicked: {message}")))
        }
    }
}

fn string_format(format: &str) -> schemars08::schema::SchemaObject {
    schemars08::schema::SchemaObject {
        instance_type: Some(schemars08::schema::InstanceType::String.into()),
        format: Some(format.to_string()),
        ..Default::default()
    }
}

/// The names of the component schemas that are string enums (`build.rs` replaces each with
/// the hand-written open enum `crate::codes::<Name>`).
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

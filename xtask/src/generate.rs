//! Checking that a document generates with progenitor, with the settings of `build.rs`.
//!
//! The settings are `crate::generation`, the same file `build.rs` includes.

use progenitor::Generator;
use serde_json::Value;

use crate::Error;

/// Generates the client code of `doc` as `build.rs` does, and returns it (unformatted tokens
/// as text). Errors — and progenitor's panics, which it uses for some unsupported shapes —
/// become [`Error::Generate`].
pub fn generate(doc: &Value) -> Result<String, Error> {
    let spec: openapiv3::OpenAPI = serde_json::from_value(doc.clone())
        .map_err(|e| Error::Generate(format!("not an OpenAPI 3.0 document: {e}")))?;
    let settings = crate::generation::settings(doc);
    let run = move || -> Result<String, String> {
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

/// The names of the component schemas that are string enums (`build.rs` replaces each with
/// the open enum `crate::codes::<Name>` it generates).
pub use crate::generation::string_enums;

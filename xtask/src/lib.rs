//! Tracking the upstream Connect Trade OpenAPI document.
//!
//! - [`load`]: fetch (URL or path) and parse (JSON or YAML) a document, and check it is OpenAPI.
//! - [`normalize`]: reshape any OpenAPI 3.0/3.1 document into the conventions of our
//!   `spec/openapi.json` (what progenitor compiles), deterministically.
//! - [`generate`]: check that a document generates with the settings of `build.rs`.
//! - [`surface`]: the API surface of a spec as stable, sorted text.
//! - [`diff`]: every difference between two specs, classified breaking or non-breaking.
//! - [`rust_surface`]: the public items of generated Rust code, as stable text (syn, stable Rust).
//! - [`refresh`]: the whole `cargo xtask spec refresh` flow.
#![warn(missing_docs)]

pub mod diff;
pub mod generate;
#[path = "../../codegen/generation.rs"]
pub mod generation;
pub mod json;
pub mod learn;
pub mod load;
pub mod normalize;
pub mod refresh;
pub mod rust_surface;
pub mod surface;

mod error;

pub use error::Error;

/// The root of the workspace (the parent of the `xtask` crate).
pub fn workspace_root() -> std::path::PathBuf {
    let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().unwrap_or(here).to_path_buf()
}

//! Tracking the upstream Connect Trade OpenAPI document.
//!
//! - [`load`]: fetch (URL or path) and parse (JSON or YAML) a document, and check it is OpenAPI.
//! - [`normalize`]: reshape any OpenAPI 3.0/3.1 document into the conventions of our
//!   `spec/openapi.json` (what progenitor compiles), deterministically.
//! - [`names`]: our stable names over upstream's (`spec/names.toml`), and what upstream lacks
//!   kept until the next major.
//! - [`open_enums`]: the open enums `build.rs` generates for the spec's string enums.
//! - [`generate`]: check that a document generates with the settings of `build.rs`.
//! - [`surface`]: the API surface of a spec as stable, sorted text.
//! - [`diff`]: every difference between two specs, classified breaking or non-breaking.
//! - [`rust_surface`]: the public items of generated Rust code, as stable text (syn, stable Rust).
//! - [`refresh`]: the whole `cargo xtask spec refresh` flow.
//! - [`check`]: whether upstream still equals the pinned spec (`cargo xtask spec check`).
//! - [`markdown`]: the diff report as Markdown (`cargo xtask spec diff --markdown`).
#![warn(missing_docs)]

pub mod check;
pub mod diff;
pub mod generate;
#[path = "../../codegen/generation.rs"]
pub mod generation;
pub mod json;
pub mod load;
pub mod markdown;
pub mod names;
pub mod normalize;
#[path = "../../codegen/open_enums.rs"]
pub mod open_enums;
pub mod refresh;
pub mod rust_surface;
pub mod surface;

mod error;

pub use error::Error;

/// The root of the connect-trade workspace holding `start`: the nearest directory at or above
/// `start` whose `Cargo.toml` declares a `[workspace]` and which has a `spec/` directory.
///
/// Found at run time, never from where the xtask was compiled: with a shared
/// `CARGO_TARGET_DIR`, one clone's xtask binary must not write into another clone's `spec/`.
pub fn find_workspace_root(start: &std::path::Path) -> Option<std::path::PathBuf> {
    start.ancestors().find_map(|dir| {
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).ok()?;
        let declares_workspace = manifest.lines().any(|line| line.trim() == "[workspace]");
        (declares_workspace && dir.join("spec").is_dir()).then(|| dir.to_path_buf())
    })
}

/// The root of the workspace holding the current directory (see [`find_workspace_root`]).
pub fn workspace_root() -> Result<std::path::PathBuf, Error> {
    let cwd = std::env::current_dir().map_err(|source| Error::Io {
        path: ".".into(),
        source,
    })?;
    find_workspace_root(&cwd).ok_or(Error::NoWorkspace(cwd))
}

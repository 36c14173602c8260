//! `cargo xtask spec check`: does upstream still equal the pinned spec? Writes nothing.

use std::path::Path;

use crate::{
    Error,
    diff::Change,
    json::to_canonical_string,
    load::{self, Source},
    names::Names,
    refresh::{prepare, previous_document},
};

/// What the comparison found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Upstream, prepared as `spec refresh` would write it, is byte for byte the pinned spec.
    Equal,
    /// Upstream differs: the classified changes from the pinned spec to upstream, with what the
    /// naming file absorbed or could not place and what would be kept (empty when only text the
    /// API surface does not show changed, e.g. a description).
    Differs(Vec<Change>),
}

/// Fetches `source`, prepares it exactly as `spec refresh` does (normalized, in our names from
/// the `names.toml` beside `pinned`, what upstream lacks kept: [`crate::refresh::prepare`]),
/// and compares it with the spec at `pinned`. So a document in upstream's own names that
/// refreshes to exactly the pinned spec is [`Outcome::Equal`]. Any error (unreachable source,
/// not OpenAPI, unreadable pinned spec or naming file) means the answer is unknown.
pub fn check(source: &Source, pinned: &Path) -> Result<Outcome, Error> {
    let pinned_text = std::fs::read_to_string(pinned).map_err(|source| Error::Io {
        path: pinned.to_path_buf(),
        source,
    })?;
    // The pinned spec must parse: an unreadable one cannot tell anything.
    load::parse_document(pinned_text.as_bytes(), &pinned.display().to_string())?;
    let names = Names::read(&pinned.with_file_name("names.toml"))?;
    let raw = load::fetch(source)?;
    let upstream = load::parse_document(&raw, &source.to_string())?;
    let prepared = prepare(&upstream, &names, &previous_document(Some(&pinned_text)));
    if to_canonical_string(&prepared.document) == pinned_text {
        return Ok(Outcome::Equal);
    }
    Ok(Outcome::Differs(prepared.changes))
}

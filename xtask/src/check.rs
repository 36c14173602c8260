//! `cargo xtask spec check`: does upstream still equal the pinned spec? Writes nothing.

use std::path::Path;

use crate::{
    Error,
    diff::{Change, diff},
    json::to_canonical_string,
    load::{self, Source},
    normalize::normalize,
};

/// What the comparison found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Upstream, normalized as `spec refresh` would write it, is byte for byte the pinned spec.
    Equal,
    /// Upstream differs: the classified changes from the pinned spec to upstream (empty when
    /// only text the API surface does not show changed, e.g. a description).
    Differs(Vec<Change>),
}

/// Fetches `source`, normalizes it the way `spec refresh` does, and compares it with the spec
/// at `pinned`. Any error (unreachable source, not OpenAPI, unreadable pinned spec) means the
/// answer is unknown.
pub fn check(source: &Source, pinned: &Path) -> Result<Outcome, Error> {
    let pinned_text = std::fs::read_to_string(pinned).map_err(|source| Error::Io {
        path: pinned.to_path_buf(),
        source,
    })?;
    let pinned_doc = load::parse_document(pinned_text.as_bytes(), &pinned.display().to_string())?;
    let raw = load::fetch(source)?;
    let upstream = normalize(&load::parse_document(&raw, &source.to_string())?).document;
    if to_canonical_string(&upstream) == pinned_text {
        return Ok(Outcome::Equal);
    }
    Ok(Outcome::Differs(diff(
        &normalize(&pinned_doc).document,
        &upstream,
    )))
}

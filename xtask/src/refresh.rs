//! `cargo xtask spec refresh`: fetch, normalize, name (`spec/names.toml`), keep, check, write,
//! record, diff.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::{
    Error,
    diff::{Change, diff},
    generate::generate,
    json::to_canonical_string,
    load::{self, Source},
    names::{self, Names},
    normalize::{Note, normalize},
};

/// What to refresh from and where to write.
#[derive(Debug, Clone)]
pub struct RefreshOptions {
    /// Where the upstream document is.
    pub source: Source,
    /// The spec to replace (`spec/openapi.json`).
    pub spec_path: PathBuf,
    /// The refresh record (`spec/SOURCE.md`).
    pub record_path: PathBuf,
    /// Our stable names (`spec/names.toml`; a missing file names nothing).
    pub names_path: PathBuf,
}

impl RefreshOptions {
    /// The spec and record of the workspace at `root`, refreshed from `source`.
    pub fn new(source: Source, root: &Path) -> RefreshOptions {
        let spec = root.join("spec");
        RefreshOptions {
            source,
            spec_path: spec.join("openapi.json"),
            record_path: spec.join("SOURCE.md"),
            names_path: spec.join("names.toml"),
        }
    }
}

/// What a successful refresh did.
#[derive(Debug, Clone)]
pub struct RefreshOutcome {
    /// SHA-256 of the raw document, as recorded.
    pub sha256: String,
    /// What normalization changed or wants checked.
    pub notes: Vec<Note>,
    /// The differences from the previous spec, with what the naming file absorbed or could not
    /// place and what was kept (rules of [`crate::names::RULES`]).
    pub changes: Vec<Change>,
    /// Whether the spec file's bytes changed.
    pub spec_changed: bool,
}

/// An upstream document as `spec refresh` writes it: normalized, in our names, with what the
/// previous spec had and upstream lacks kept.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The document to pin (keys sorted).
    pub document: Value,
    /// What normalization changed or wants checked.
    pub notes: Vec<Note>,
    /// The differences from the previous spec, with what the naming file absorbed or could not
    /// place and what was kept, sorted.
    pub changes: Vec<Change>,
}

/// The previous spec, normalized, from its text (an empty document when there is none or it
/// does not parse).
pub fn previous_document(text: Option<&str>) -> Value {
    text.and_then(|t| load::parse_document(t.as_bytes(), "the previous spec").ok())
        .map(|doc| normalize(&doc).document)
        .unwrap_or_else(|| json!({ "openapi": "3.0.3", "info": {}, "paths": {} }))
}

/// The one path from an upstream document to the spec we pin, shared by `spec refresh` and
/// `spec check`: normalize, our names over upstream's (`names`), what upstream lacks kept,
/// our deliberately optional fields kept optional, then the diff from `previous` (normalized).
pub fn prepare(document: &Value, names: &Names, previous: &Value) -> Prepared {
    let mut normalized = normalize(document);
    let mut naming = names::apply(&mut normalized.document, names, previous);
    naming.extend(names::keep_missing(
        &mut normalized.document,
        previous,
        names,
    ));
    naming.extend(names::keep_optional(
        &mut normalized.document,
        previous,
        names,
    ));
    let document = crate::json::sorted(&normalized.document);
    let mut changes = diff(previous, &document);
    changes.extend(naming);
    changes.sort();
    changes.dedup();
    Prepared {
        document,
        notes: normalized.notes,
        changes,
    }
}

/// Fetches `options.source`, prepares it ([`prepare`]), checks that it generates, then writes
/// the spec and the record. On any error nothing is written.
pub fn refresh(options: &RefreshOptions) -> Result<RefreshOutcome, Error> {
    let raw = load::fetch(&options.source)?;
    let source_name = options.source.to_string();
    let document = load::parse_document(&raw, &source_name)?;
    let names = Names::read(&options.names_path)?;
    let previous_text = std::fs::read_to_string(&options.spec_path).ok();
    let previous = previous_document(previous_text.as_deref());
    let prepared = prepare(&document, &names, &previous);

    generate(&prepared.document)?;
    let text = to_canonical_string(&prepared.document);

    let sha256 = load::sha256_hex(&raw);
    let record = record_text(&RecordFields {
        source: &source_name,
        retrieved: &chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        sha256: &sha256,
        size: raw.len(),
        raw_version: document["openapi"].as_str().unwrap_or("?"),
        spec_sha256: &load::sha256_hex(text.as_bytes()),
        notes: &prepared.notes,
    });
    write_atomically(&[
        (&options.spec_path, text.as_bytes()),
        (&options.record_path, record.as_bytes()),
    ])?;
    Ok(RefreshOutcome {
        sha256,
        notes: prepared.notes,
        changes: prepared.changes,
        spec_changed: previous_text.as_deref() != Some(text.as_str()),
    })
}

struct RecordFields<'a> {
    source: &'a str,
    retrieved: &'a str,
    sha256: &'a str,
    size: usize,
    raw_version: &'a str,
    spec_sha256: &'a str,
    notes: &'a [Note],
}

fn record_text(fields: &RecordFields<'_>) -> String {
    let mut text = format!(
        "# Source of spec/openapi.json\n\n\
         Written by `cargo xtask spec refresh`: do not edit by hand. `spec/PROVENANCE.md` says \
         where each part of the spec comes from; this file records the last refresh.\n\n\
         | what | value |\n|---|---|\n\
         | source | {} |\n\
         | retrieved (UTC) | {} |\n\
         | raw document SHA-256 | `{}` |\n\
         | raw document size | {} bytes |\n\
         | raw OpenAPI version | {} |\n\
         | spec/openapi.json SHA-256 | `{}` |\n\n\
         ## Normalization report\n\n",
        fields.source,
        fields.retrieved,
        fields.sha256,
        fields.size,
        fields.raw_version,
        fields.spec_sha256,
    );
    if fields.notes.is_empty() {
        text.push_str("Nothing to change: the document was already in our conventions.\n");
    }
    for note in fields.notes {
        text.push_str(&format!("- `{}`: {}\n", note.location, note.message));
    }
    text
}

/// Writes every file to a temporary sibling first, then renames them all into place.
pub(crate) fn write_atomically(files: &[(&Path, &[u8])]) -> Result<(), Error> {
    let mut temporaries = Vec::new();
    for (path, bytes) in files {
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(".refresh-tmp");
        let temporary = path.with_file_name(name);
        if let Err(source) = std::fs::write(&temporary, bytes) {
            for (t, _) in &temporaries {
                let _ = std::fs::remove_file(t);
            }
            return Err(Error::Io {
                path: temporary,
                source,
            });
        }
        temporaries.push((temporary, *path));
    }
    for (temporary, path) in temporaries {
        std::fs::rename(&temporary, path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
    }
    Ok(())
}

use std::path::PathBuf;

/// What went wrong in an xtask command. Every message says what to do next where it can.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The source could not be fetched or read.
    #[error("could not fetch {source_name}: {message}")]
    Fetch {
        /// The URL or path asked for.
        source_name: String,
        /// Why it failed.
        message: String,
    },
    /// The bytes are neither JSON nor YAML, or not an OpenAPI 3 document.
    #[error("{source_name} is not a usable OpenAPI document: {message}")]
    Invalid {
        /// The URL or path the document came from.
        source_name: String,
        /// What is wrong with it.
        message: String,
    },
    /// The normalized document is still rejected by progenitor.
    #[error(
        "progenitor rejects the normalized document: {0}\n\
         (extend xtask/src/normalize.rs so the document generates, or fix the source)"
    )]
    Generate(String),
    /// A local file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// No connect-trade workspace at or above the current directory.
    #[error(
        "no connect-trade workspace at or above {}: run the xtask inside a clone (a directory \
         whose Cargo.toml has [workspace] and which holds spec/), or pass --spec",
        .0.display()
    )]
    NoWorkspace(PathBuf),
}

//! Fetching and parsing a document, and checking that it is OpenAPI 3.

use std::{path::PathBuf, time::Duration};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::Error;

/// Where upstream publishes its OpenAPI document.
pub const DEFAULT_URL: &str = "https://connecttrade.com/openapi.json";

/// Where a document comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// An `http://` or `https://` URL.
    Url(String),
    /// A local file.
    Path(PathBuf),
}

impl Source {
    /// `http(s)://…` is a URL, `file://…` and anything else a path.
    pub fn parse(text: &str) -> Source {
        if text.starts_with("http://") || text.starts_with("https://") {
            Source::Url(text.to_string())
        } else {
            Source::Path(PathBuf::from(text.strip_prefix("file://").unwrap_or(text)))
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Url(url) => f.write_str(url),
            Source::Path(path) => write!(f, "{}", path.display()),
        }
    }
}

/// The raw bytes of the document at `source`. A URL must answer 2xx within 30 seconds.
pub fn fetch(source: &Source) -> Result<Vec<u8>, Error> {
    let fail = |message: String| Error::Fetch {
        source_name: source.to_string(),
        message,
    };
    match source {
        Source::Path(path) => std::fs::read(path).map_err(|e| fail(e.to_string())),
        Source::Url(url) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| fail(format!("cannot start a runtime: {e}")))?;
            runtime.block_on(async {
                let client = reqwest::Client::builder()
                    .connect_timeout(Duration::from_secs(10))
                    .timeout(Duration::from_secs(30))
                    .user_agent(concat!("connect-trade-xtask/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .map_err(|e| fail(format!("cannot build an HTTP client: {e}")))?;
                let response = client.get(url).send().await.map_err(|e| {
                    fail(format!(
                        "{} (is the network reachable? pass --from PATH to use a downloaded copy)",
                        error_chain(&e)
                    ))
                })?;
                let status = response.status();
                if !status.is_success() {
                    return Err(fail(format!("the server answered HTTP {status}")));
                }
                let body = response
                    .bytes()
                    .await
                    .map_err(|e| fail(format!("reading the body: {}", error_chain(&e))))?;
                Ok(body.to_vec())
            })
        }
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

/// Parses JSON, or YAML when it is not JSON, and checks that the result is an OpenAPI 3.0 or
/// 3.1 document (`openapi: 3.x`, an `info` object, and `paths` unless 3.1).
pub fn parse_document(bytes: &[u8], source_name: &str) -> Result<Value, Error> {
    let invalid = |message: String| Error::Invalid {
        source_name: source_name.to_string(),
        message,
    };
    let value: Value = match serde_json::from_slice(bytes) {
        Ok(value) => value,
        Err(json_error) => serde_norway::from_slice(bytes).map_err(|yaml_error| {
            invalid(format!(
                "neither JSON ({json_error}) nor YAML ({yaml_error})"
            ))
        })?,
    };
    check_openapi(&value).map_err(invalid)?;
    Ok(value)
}

/// `Ok` when `doc` looks like an OpenAPI 3.0 or 3.1 document; otherwise what is wrong.
pub fn check_openapi(doc: &Value) -> Result<(), String> {
    let Some(map) = doc.as_object() else {
        return Err("the top level is not an object".into());
    };
    if map.contains_key("swagger") {
        return Err("Swagger 2.0 is not supported: convert it to OpenAPI 3 first".into());
    }
    let version = match map.get("openapi") {
        Some(Value::String(v)) => v.as_str(),
        Some(_) => return Err("`openapi` is not a string".into()),
        None => return Err("no `openapi` version field".into()),
    };
    if !(version.starts_with("3.0") || version.starts_with("3.1")) {
        return Err(format!(
            "OpenAPI {version} is not supported (3.0 or 3.1 only)"
        ));
    }
    if !map.get("info").is_some_and(Value::is_object) {
        return Err("no `info` object".into());
    }
    match map.get("paths") {
        Some(Value::Object(_)) => Ok(()),
        Some(_) => Err("`paths` is not an object".into()),
        None if version.starts_with("3.1") => Ok(()),
        None => Err("no `paths` object".into()),
    }
}

/// Reads and parses a local spec file (JSON or YAML).
pub fn read_spec(path: &std::path::Path) -> Result<Value, Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_document(&bytes, &path.display().to_string())
}

/// Lower-case hexadecimal SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

//! The end of the OAuth flow: reading the URL the user's browser landed on.
//!
//! `POST /connections` returns a `connection_request_url`; the user opens it, picks a broker,
//! logs in and is sent to the `redirect_url` the platform gave, with either
//! `connection_id=…` (success) or `error=…` and `error_details=…` (failure) as query
//! parameters. [`connection_id_from_redirect`] turns that URL into the new connection's id or
//! a typed error.
//!
//! ```
//! use connect_trade::oauth::{connection_id_from_redirect, RedirectError};
//!
//! let id = connection_id_from_redirect("https://app.example.com/done?connection_id=conn_123")?;
//! assert_eq!(id, "conn_123");
//!
//! let failed = connection_id_from_redirect(
//!     "https://app.example.com/done?error=access_denied&error_details=User%20cancelled",
//! );
//! match failed {
//!     Err(RedirectError::Failed { error, error_details }) => {
//!         assert_eq!(error, "access_denied");
//!         assert_eq!(error_details.as_deref(), Some("User cancelled"));
//!     }
//!     other => panic!("unexpected {other:?}"),
//! }
//! # Ok::<(), RedirectError>(())
//! ```
//!
//! When the redirect never arrives at all, the cause is almost always the `redirect_url`
//! itself (not reachable from the browser: localhost, not deployed, plain HTTP, firewall). The
//! documentation's trick to isolate it: use `https://www.google.com` as `redirect_url`, finish
//! the flow, and paste the URL the browser shows into [`connection_id_from_redirect`].

use url::Url;

/// Why a redirect URL did not yield a connection id.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RedirectError {
    /// The OAuth flow failed: Connect Trade sent `error` (and usually `error_details`).
    #[error("the connection was not created: {error}{}", details_suffix(.error_details))]
    Failed {
        /// The `error` parameter.
        error: String,
        /// The `error_details` parameter, if present.
        error_details: Option<String>,
    },
    /// The URL carries neither `connection_id` nor `error`: it is not the end of the OAuth
    /// flow (or a proxy dropped the query string).
    #[error(
        "the URL has neither a `connection_id` nor an `error` parameter; expected the URL the \
         browser landed on after the OAuth flow, e.g. https://your.app/callback?connection_id=…"
    )]
    NoResult,
    /// `connection_id` is present but empty.
    #[error("the URL's `connection_id` parameter is empty")]
    EmptyConnectionId,
    /// `connection_id` cannot be an id in a request path (`.`, `..`, a `/` or `\`, a control
    /// character): used as one, it would address another resource.
    #[error(
        "the URL's `connection_id` parameter {0}: not a connection id (was the redirect URL \
         tampered with?)"
    )]
    InvalidConnectionId(&'static str),
    /// The text is not a URL.
    #[error("not a URL: {0}")]
    InvalidUrl(String),
}

fn details_suffix(details: &Option<String>) -> String {
    details
        .as_ref()
        .map(|d| format!(" ({d})"))
        .unwrap_or_default()
}

/// The outcome parameters found in a redirect URL.
fn outcome_params(url: &Url) -> (Option<String>, Option<String>, Option<String>) {
    let mut connection_id = None;
    let mut error = None;
    let mut error_details = None;
    // The query is where Connect Trade puts them; a fragment (`#…`) is read too, in case a
    // single-page app's router moved them there. The query wins.
    let fragment_pairs = url
        .fragment()
        // `#connection_id=…` or a hash route `#/done?connection_id=…`.
        .map(|f| f.split_once('?').map_or(f, |(_, params)| params))
        .map(|f| url::form_urlencoded::parse(f.as_bytes()))
        .into_iter()
        .flatten();
    for (key, value) in url.query_pairs().chain(fragment_pairs) {
        let slot = match key.as_ref() {
            "connection_id" => &mut connection_id,
            "error" => &mut error,
            "error_details" => &mut error_details,
            _ => continue,
        };
        if slot.is_none() {
            *slot = Some(value.into_owned());
        }
    }
    (connection_id, error, error_details)
}

/// Reads the URL the browser landed on after the OAuth flow: the new `connection_id`, or the
/// flow's `error` and `error_details` as [`RedirectError::Failed`].
///
/// Accepts an absolute URL or just its query (`?connection_id=…`). An `error` wins over a
/// `connection_id` if both are present.
pub fn connection_id_from_redirect(redirect: &str) -> Result<String, RedirectError> {
    let trimmed = redirect.trim();
    let url = match Url::parse(trimmed) {
        Ok(url) => url,
        Err(url::ParseError::RelativeUrlWithoutBase) => Url::parse("https://redirect.invalid/")
            .and_then(|base| base.join(trimmed))
            .map_err(|e| RedirectError::InvalidUrl(e.to_string()))?,
        Err(e) => return Err(RedirectError::InvalidUrl(e.to_string())),
    };
    connection_id_from_redirect_url(&url)
}

/// [`connection_id_from_redirect`] for an already parsed URL.
pub fn connection_id_from_redirect_url(url: &Url) -> Result<String, RedirectError> {
    match outcome_params(url) {
        (_, Some(error), error_details) => Err(RedirectError::Failed {
            error,
            error_details,
        }),
        (Some(id), None, _) if id.trim().is_empty() => Err(RedirectError::EmptyConnectionId),
        (Some(id), None, _) => match crate::client::path_id_problem(&id) {
            Some(problem) => Err(RedirectError::InvalidConnectionId(problem)),
            None => Ok(id),
        },
        // Details without an error code: still a failure, and the details say why.
        (None, None, Some(details)) => Err(RedirectError::Failed {
            error: "unspecified".to_string(),
            error_details: Some(details),
        }),
        (None, None, None) => Err(RedirectError::NoResult),
    }
}

//! What can go wrong on a stream.

use std::{sync::Arc, time::Duration};

use super::protocol::{ErrorCode, StreamErrorMessage};

/// Why a stream failed, reconnected, or refused a call.
///
/// Some errors end the stream ([`StreamError::is_terminal`]): the last event is then
/// `ConnectionEvent::Terminated` with the error, and the stream ends. The others are
/// reported as `Error` events (a frame that could not be decoded, an `error` message from
/// the server) or as the reason of a `ConnectionEvent::Reconnecting`, and the stream goes on.
///
/// Converts into [`crate::Error::Stream`] with `?` (the error itself, not its text).
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// The server refused the credentials or the token. Terminal: reconnecting with the same
    /// credentials would only be refused again.
    #[error(
        "authentication refused by the server ({code}): {message}. Check the credentials \
         (or the market data token); the stream does not retry with the same ones"
    )]
    AuthRejected {
        /// The server's code (`auth_failed`, or the close code as text).
        code: ErrorCode,
        /// The server's text.
        message: String,
    },

    /// Another session started with the same credentials and the server ended this one.
    /// Terminal: Connect Trade allows one session per credential pair, and reconnecting
    /// would end the other session in turn.
    #[error(
        "session replaced: another connection with the same credentials took over ({message}). \
         Connect Trade allows one active session per credential pair; this stream stops \
         instead of fighting the other one"
    )]
    SessionReplaced {
        /// The server's text.
        message: String,
    },

    /// The market data token expired and the stream cannot get another (it was built from a
    /// fixed token). Terminal.
    #[error(
        "the market data token expired ({message}); build the stream with \
         `MarketDataStream::for_connection` to have tokens fetched and renewed automatically"
    )]
    TokenExpired {
        /// The server's text.
        message: String,
    },

    /// `GET /connections/{connection_id}/token` failed. Terminal unless `retryable`. The REST
    /// error is the [`source`](std::error::Error::source).
    #[error("could not get a market data token")]
    Token {
        /// The REST error.
        source: Arc<crate::Error>,
        /// The HTTP status, if the server answered.
        status: Option<u16>,
        /// Whether trying again later may succeed (transport failure, 429, 5xx).
        retryable: bool,
    },

    /// Not an error: the stream reconnects on purpose to use a renewed market data token
    /// before the current one expires (the reason of that `Reconnecting` event).
    #[error("renewing the market data token before it expires")]
    TokenRenewal,

    /// The server sent an `error` message that does not end the stream.
    #[error("the server reported {}", describe(.0))]
    Server(StreamErrorMessage),

    /// A frame could not be decoded. The frame is skipped and the stream goes on.
    #[error("could not decode a server message ({error}); it starts with {excerpt:?}")]
    Decode {
        /// What the decoder said.
        error: String,
        /// The start of the frame.
        excerpt: String,
    },

    /// Connecting (TCP, TLS or the WebSocket upgrade) failed.
    #[error("could not connect: {0}")]
    Connect(String),

    /// The connection broke or the server closed it.
    #[error("connection lost: {0}")]
    Disconnected(String),

    /// Connecting, the welcome or the authentication reply took longer than the handshake
    /// timeout.
    #[error("handshake timed out while {0}")]
    HandshakeTimeout(String),

    /// Nothing arrived (not even a pong) for the idle timeout: the connection was presumed
    /// dead and replaced.
    #[error("nothing received for {0:?}: the connection looked dead")]
    Idle(Duration),

    /// A request (`list_subscriptions`, `snapshot`) got no reply in time.
    #[error("no reply to `{request}` within {timeout:?}")]
    RequestTimeout {
        /// Which request.
        request: &'static str,
        /// How long it waited.
        timeout: Duration,
    },

    /// A reply of the wrong type came back with the request's id.
    #[error("unexpected reply to `{request}`: {got}")]
    UnexpectedReply {
        /// Which request.
        request: &'static str,
        /// What came back (its `type`).
        got: String,
    },

    /// The stream was closed (by `close()`, or after a terminal error); the call did nothing.
    #[error("the stream is closed")]
    Closed,

    /// The configured maximum of reconnection attempts was reached. Terminal.
    #[error("gave up after {attempts} reconnection attempts; last error: {last}")]
    GaveUp {
        /// How many attempts were made.
        attempts: u32,
        /// The last attempt's error.
        last: Box<StreamError>,
    },

    /// The stream is misconfigured (URL, options). Nothing was sent.
    #[error("stream configuration error: {0}")]
    Config(String),
}

impl StreamError {
    /// Whether this error ends the stream for good (no reconnection).
    pub fn is_terminal(&self) -> bool {
        match self {
            StreamError::AuthRejected { .. }
            | StreamError::SessionReplaced { .. }
            | StreamError::TokenExpired { .. }
            | StreamError::Closed
            | StreamError::GaveUp { .. }
            | StreamError::Config(_) => true,
            StreamError::Token { retryable, .. } => !retryable,
            _ => false,
        }
    }

    /// A failure of the token request, keeping the REST error as its source. Neither quotes
    /// the response body: the body of `GET /connections/{connection_id}/token` is the token
    /// (a secret-bearing operation, whose bodies the REST errors never quote), and this error
    /// travels on into `Reconnecting` reasons and logs.
    pub(crate) fn token(error: crate::Error) -> StreamError {
        StreamError::Token {
            status: error.status(),
            retryable: error.is_retryable(),
            source: Arc::new(error),
        }
    }
}

impl From<crate::Error> for StreamError {
    /// A REST error met by a stream: a configuration error stays one, anything else is a
    /// failure to get a market data token.
    fn from(error: crate::Error) -> Self {
        match error {
            crate::Error::Config(message) => StreamError::Config(message),
            other => StreamError::token(other),
        }
    }
}

fn describe(error: &StreamErrorMessage) -> String {
    if error.code.as_str().is_empty() {
        error.message.clone()
    } else {
        format!("{}: {}", error.code, error.message)
    }
}

/// Whether an `error` answering `authenticate` refuses it (terminal): anything but a failure
/// on the server's side (`internal`) or its own timeout.
pub(crate) fn refuses_authentication(error: &StreamErrorMessage) -> bool {
    !matches!(error.code, ErrorCode::Internal | ErrorCode::AuthTimeout)
}

/// Whether an `error` (without a `request_id` of ours) answers a subscribe frame: the
/// request was refused (`invalid_request`, or no code at all). Other codes are reported and
/// refuse nothing.
pub(crate) fn refuses_request(error: &StreamErrorMessage) -> bool {
    error.request_id.is_none()
        && (error.code == ErrorCode::InvalidRequest || error.code.as_str().is_empty())
}

/// At most this many characters of an undecodable frame are kept.
const EXCERPT_CHARS: usize = 200;

pub(crate) fn decode_error(text: &str, error: &serde_json::Error) -> StreamError {
    let mut excerpt: String = text.chars().take(EXCERPT_CHARS).collect();
    if text.len() > excerpt.len() {
        excerpt.push('…');
    }
    StreamError::Decode {
        error: error.to_string(),
        excerpt,
    }
}

/// What an `error` message from the server means for the connection.
pub(crate) enum ErrorClass {
    /// Credentials or token refused.
    AuthRejected,
    /// Another session took over.
    SessionReplaced,
    /// The market data token expired.
    TokenExpired,
    /// The server gave up waiting for authentication: reconnect.
    AuthTimeout,
    /// Anything else: report it and go on.
    Report,
}

pub(crate) fn classify(error: &StreamErrorMessage) -> ErrorClass {
    match error.code {
        ErrorCode::AuthFailed => ErrorClass::AuthRejected,
        ErrorCode::SessionReplaced => ErrorClass::SessionReplaced,
        ErrorCode::TokenExpired => ErrorClass::TokenExpired,
        ErrorCode::AuthTimeout => ErrorClass::AuthTimeout,
        _ => ErrorClass::Report,
    }
}

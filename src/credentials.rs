//! Credentials: the platform's pair and an end user's pair.
//!
//! Secrets are wrapped in [`Secret`], whose `Debug` and `Display` print `<redacted>`; the only
//! way to read one is [`Secret::expose`], used where the secret goes on the wire.

use std::fmt;

use crate::error::Error;

/// A secret string (client secret, user secret, token). Never printed.
///
/// ```
/// use connect_trade::Secret;
/// let secret = Secret::from("s3cr3t");
/// assert_eq!(format!("{secret:?} {secret}"), "Secret(<redacted>) <redacted>");
/// assert_eq!(secret.expose(), "s3cr3t");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Box<str>);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into().into_boxed_str())
    }

    /// The secret itself, for putting it on the wire. Do not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret::new(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret::new(value)
    }
}

/// The platform's credentials (`client-id`, `client-secret`), sent on every request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlatformCredentials {
    /// The platform's client id (an identifier, not a secret).
    pub client_id: String,
    /// The platform's client secret.
    pub client_secret: Secret,
}

impl PlatformCredentials {
    /// The environment variable read for the client id.
    pub const CLIENT_ID_VAR: &'static str = "CONNECT_TRADE_CLIENT_ID";
    /// The environment variable read for the client secret.
    pub const CLIENT_SECRET_VAR: &'static str = "CONNECT_TRADE_CLIENT_SECRET";

    /// Credentials from their two parts.
    pub fn new(client_id: impl Into<String>, client_secret: impl Into<Secret>) -> Self {
        PlatformCredentials {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
        }
    }

    /// Reads `CONNECT_TRADE_CLIENT_ID` and `CONNECT_TRADE_CLIENT_SECRET`.
    ///
    /// Returns `Ok(None)` when neither is set, and an error naming the missing one when only
    /// one is.
    pub fn from_env() -> Result<Option<Self>, Error> {
        match env_pair(Self::CLIENT_ID_VAR, Self::CLIENT_SECRET_VAR)? {
            Some((id, secret)) => Ok(Some(PlatformCredentials::new(id, secret))),
            None => Ok(None),
        }
    }
}

/// One end user's credentials (`user-id`, `user-secret`), sent on user-scoped requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserCredentials {
    /// The user's id, as chosen by the platform.
    pub user_id: String,
    /// The user's secret, returned once by `POST /users`.
    pub user_secret: Secret,
}

impl UserCredentials {
    /// The environment variable read for the user id.
    pub const USER_ID_VAR: &'static str = "CONNECT_TRADE_USER_ID";
    /// The environment variable read for the user secret.
    pub const USER_SECRET_VAR: &'static str = "CONNECT_TRADE_USER_SECRET";

    /// Credentials from their two parts.
    pub fn new(user_id: impl Into<String>, user_secret: impl Into<Secret>) -> Self {
        UserCredentials {
            user_id: user_id.into(),
            user_secret: user_secret.into(),
        }
    }

    /// Reads `CONNECT_TRADE_USER_ID` and `CONNECT_TRADE_USER_SECRET`; `Ok(None)` when neither
    /// is set, an error naming the missing one when only one is.
    pub fn from_env() -> Result<Option<Self>, Error> {
        match env_pair(Self::USER_ID_VAR, Self::USER_SECRET_VAR)? {
            Some((id, secret)) => Ok(Some(UserCredentials::new(id, secret))),
            None => Ok(None),
        }
    }
}

impl From<crate::rest::types::CreatedUser> for UserCredentials {
    fn from(user: crate::rest::types::CreatedUser) -> Self {
        UserCredentials::new(user.user_id, user.user_secret)
    }
}

fn env_pair(id_var: &str, secret_var: &str) -> Result<Option<(String, String)>, Error> {
    let get = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    match (get(id_var), get(secret_var)) {
        (Some(id), Some(secret)) => Ok(Some((id, secret))),
        (None, None) => Ok(None),
        (Some(_), None) => Err(Error::Config(format!(
            "{id_var} is set but {secret_var} is not: set both or neither"
        ))),
        (None, Some(_)) => Err(Error::Config(format!(
            "{secret_var} is set but {id_var} is not: set both or neither"
        ))),
    }
}

impl serde::Serialize for Secret {
    /// Serializes the secret itself: serialization is for the wire (the simulator, stream
    /// authentication), never for logs.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret::from)
    }
}

#[cfg(feature = "schemars")]
#[cfg_attr(docsrs, doc(cfg(feature = "schemars")))]
impl schemars::JsonSchema for Secret {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("Secret")
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "format": "password"})
    }
}

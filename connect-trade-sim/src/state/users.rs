//! Users, their connections (with the OAuth page that creates them) and tokens.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use connect_trade::client::MarketDataToken;
use connect_trade::{
    codes::{BrokerCode, ConnectionType, TokenScope, TransactionType},
    credentials::Secret,
    rest::types::{
        Connection, ConnectionAccount, ConnectionRequest, CreateConnectionRequest, CreatedUser,
        Transaction, User, UserToken,
    },
};

use super::{
    ApiError, ApiResult, Authorize, Control, Payload, State, accounts::AccountRec, broker_name,
};

pub(super) struct UserRec {
    pub(super) secret: String,
    pub(super) created_at: DateTime<Utc>,
}

pub(super) struct ConnRequest {
    pub(super) user_id: String,
    pub(super) connection_type: ConnectionType,
    pub(super) broker: Option<BrokerCode>,
    pub(super) redirect_url: String,
    pub(super) expires_at: DateTime<Utc>,
    pub(super) used: bool,
}

pub(super) struct ConnRec {
    pub(super) user_id: String,
    pub(super) broker: BrokerCode,
    pub(super) connection_type: ConnectionType,
    pub(super) accounts: Vec<String>,
    pub(super) token: Option<String>,
}

pub(crate) struct TokenRec {
    pub expires_at: DateTime<Utc>,
}

impl State {
    // ---------------------------------------------------------------------------------------
    // Authentication
    // ---------------------------------------------------------------------------------------

    /// Checks a user's pair.
    pub(crate) fn check_user(&self, user_id: &str, secret: &str) -> ApiResult<()> {
        match self.users.get(user_id) {
            Some(user) if user.secret == secret => Ok(()),
            _ => Err(ApiError::unauthorized(
                "unknown user-id or wrong user-secret: use the secret POST /users returned",
            )),
        }
    }

    /// A market data token's owner, if the token is valid now.
    pub(crate) fn token(&self, token: &str) -> Option<&TokenRec> {
        self.tokens.get(token)
    }

    // ---------------------------------------------------------------------------------------
    // Users
    // ---------------------------------------------------------------------------------------

    pub(crate) fn create_user(&mut self, user_id: &str) -> ApiResult<CreatedUser> {
        if user_id.trim().is_empty() {
            return Err(ApiError::invalid("user_id", "must not be empty"));
        }
        if user_id.len() > 128 || user_id.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(ApiError::invalid(
                "user_id",
                "at most 128 characters, no spaces or control characters",
            ));
        }
        if self.users.contains_key(user_id) {
            return Err(ApiError::conflict(format!(
                "user {user_id:?} already exists"
            )));
        }
        let secret = self.random("us_sim_", 32);
        self.users.insert(
            user_id.to_string(),
            UserRec {
                secret: secret.clone(),
                created_at: self.now,
            },
        );
        Ok(rest_type!(CreatedUser {
            user_id: Some(user_id.to_string()),
            user_secret: Secret::from(secret),
        }))
    }

    pub(crate) fn list_users(&self) -> Vec<User> {
        self.users
            .iter()
            .map(|(id, user)| {
                rest_type!(User {
                    user_id: id.clone(),
                    created_at: Some(user.created_at),
                })
            })
            .collect()
    }

    pub(crate) fn delete_user(&mut self, user_id: &str) -> ApiResult<()> {
        if self.users.remove(user_id).is_none() {
            return Err(ApiError::not_found(format!("user {user_id:?}")));
        }
        let connections: Vec<String> = self
            .connections
            .iter()
            .filter(|(_, c)| c.user_id == user_id)
            .map(|(id, _)| id.clone())
            .collect();
        for id in connections {
            self.remove_connection(&id);
        }
        self.requests.retain(|_, r| r.user_id != user_id);
        Ok(())
    }

    // ---------------------------------------------------------------------------------------
    // Connections
    // ---------------------------------------------------------------------------------------

    pub(crate) fn create_connection(
        &mut self,
        user_id: &str,
        request: CreateConnectionRequest,
    ) -> ApiResult<ConnectionRequest> {
        if request.connection_type.is_unknown() {
            return Err(ApiError::invalid(
                "connection_type",
                format!(
                    "{:?} is not one of trade, readonly, market_data",
                    request.connection_type.as_str()
                ),
            ));
        }
        match url::Url::parse(&request.redirect_url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => {}
            _ => {
                return Err(ApiError::invalid(
                    "redirect_url",
                    "must be an absolute http(s) URL",
                ));
            }
        }
        let id = self.random("cr_", 24);
        let expires_at = self.now + ChronoDuration::hours(1);
        self.requests.insert(
            id.clone(),
            ConnRequest {
                user_id: user_id.to_string(),
                connection_type: request.connection_type,
                broker: request.broker,
                redirect_url: request.redirect_url,
                expires_at,
                used: false,
            },
        );
        Ok(rest_type!(ConnectionRequest {
            connection_request_url: format!("{}/oauth/authorize/{id}", self.rest_url),
            expires_at: Some(expires_at),
        }))
    }

    /// The OAuth page: completes the flow when a broker is known.
    pub(crate) fn authorize(
        &mut self,
        request_id: &str,
        chosen: Option<&str>,
    ) -> ApiResult<Authorize> {
        let now = self.now;
        let Some(request) = self.requests.get_mut(request_id) else {
            return Err(ApiError::not_found(format!(
                "connection request {request_id:?}"
            )));
        };
        let redirect = |query: &[(&str, &str)], base: &str| -> String {
            match url::Url::parse(base) {
                Ok(mut url) => {
                    url.query_pairs_mut().extend_pairs(query);
                    url.to_string()
                }
                Err(_) => base.to_string(),
            }
        };
        if request.used || request.expires_at < now {
            let why = if request.used {
                "this connection request was already used"
            } else {
                "this connection request expired"
            };
            return Ok(Authorize::Redirect(redirect(
                &[("error", "invalid_request"), ("error_details", why)],
                &request.redirect_url,
            )));
        }
        let broker = match (&request.broker, chosen) {
            (Some(preset), _) => preset.clone(),
            (None, Some(code)) => BrokerCode::from_wire(code),
            (None, None) => {
                let trade = request.connection_type == ConnectionType::Trade;
                return Ok(Authorize::ChooseBroker(
                    BrokerCode::KNOWN
                        .iter()
                        .filter(|b| !trade || b.supports_trading())
                        .cloned()
                        .collect(),
                ));
            }
        };
        let refusal = if broker.is_unknown() {
            Some(format!(
                "{} is not a broker Connect Trade supports",
                broker.as_str()
            ))
        } else if request.connection_type == ConnectionType::Trade && !broker.supports_trading() {
            Some(format!(
                "{} supports read-only connections only, not trade",
                broker.as_str()
            ))
        } else {
            None
        };
        request.used = true;
        let redirect_url = request.redirect_url.clone();
        if let Some(details) = refusal {
            return Ok(Authorize::Redirect(redirect(
                &[("error", "unsupported_broker"), ("error_details", &details)],
                &redirect_url,
            )));
        }
        let user_id = request.user_id.clone();
        let connection_type = request.connection_type.clone();
        let connection_id = self.id("conn");
        let account_id = self.id("acct");
        let number = format!("PA{:08}", self.rng.u32(0..100_000_000));
        self.accounts.insert(
            account_id.clone(),
            AccountRec {
                user_id: user_id.clone(),
                connection_id: connection_id.clone(),
                broker: broker.clone(),
                number,
                cash: self.starting_cash,
                positions: BTreeMap::new(),
                cl_ids: HashSet::new(),
            },
        );
        self.connections.insert(
            connection_id.clone(),
            ConnRec {
                user_id: user_id.clone(),
                broker,
                connection_type,
                accounts: vec![account_id.clone()],
                token: None,
            },
        );
        let txn = self.id("txn");
        self.transactions.push(rest_type!(Transaction {
            account_id: Some(account_id.clone()),
            amount: Some(self.starting_cash),
            description: Some("Initial deposit of the paper account".to_string()),
            price: None,
            quantity: None,
            settlement_date: Some(self.now.date_naive()),
            symbol: None,
            trade_date: Some(self.now.date_naive()),
            transaction_id: Some(txn),
            type_: Some(TransactionType::Deposit),
        }));
        let balance = self.balance(&account_id);
        if let Some(balance) = balance {
            self.emit(&user_id, &account_id, Payload::Balance(Box::new(balance)));
        }
        Ok(Authorize::Redirect(redirect(
            &[("connection_id", &connection_id)],
            &redirect_url,
        )))
    }

    pub(super) fn connection_of(&self, user_id: &str, connection_id: &str) -> ApiResult<&ConnRec> {
        self.connections
            .get(connection_id)
            .filter(|c| c.user_id == user_id)
            .ok_or_else(|| ApiError::not_found(format!("connection {connection_id:?}")))
    }

    pub(crate) fn list_connections(&self, user_id: &str) -> Vec<Connection> {
        self.connections
            .iter()
            .filter(|(_, c)| c.user_id == user_id)
            .map(|(id, c)| {
                rest_type!(Connection {
                    accounts: c
                        .accounts
                        .iter()
                        .filter_map(|a| {
                            let account = self.accounts.get(a)?;
                            Some(rest_type!(ConnectionAccount {
                                account_id: a.clone(),
                                account_number: Some(account.number.clone()),
                                institution_name: Some(broker_name(&account.broker).to_string()),
                            }))
                        })
                        .collect::<Vec<_>>(),
                    broker: c.broker.clone(),
                    connection_id: id.clone(),
                    connection_type: c.connection_type.clone(),
                    status: Some("active".to_string()),
                })
            })
            .collect()
    }

    pub(super) fn remove_connection(&mut self, connection_id: &str) {
        let Some(connection) = self.connections.remove(connection_id) else {
            return;
        };
        if let Some(token) = connection.token {
            self.tokens.remove(&token);
            let _ = self.control.send(Control::TokenRevoked(token));
        }
        for account in &connection.accounts {
            self.accounts.remove(account);
        }
        let accounts: HashSet<&String> = connection.accounts.iter().collect();
        self.orders
            .retain(|o| !accounts.contains(&o.wire.account_id));
        self.order_index = self
            .orders
            .iter()
            .enumerate()
            .map(|(i, o)| (o.wire.order_id.clone(), i))
            .collect();
        self.transactions
            .retain(|t| !t.account_id.as_ref().is_some_and(|a| accounts.contains(a)));
    }

    pub(crate) fn delete_connection(
        &mut self,
        user_id: &str,
        connection_id: &str,
    ) -> ApiResult<()> {
        self.connection_of(user_id, connection_id)?;
        self.remove_connection(connection_id);
        Ok(())
    }

    pub(crate) fn market_data_token(
        &mut self,
        user_id: &str,
        connection_id: &str,
    ) -> ApiResult<MarketDataToken> {
        self.connection_of(user_id, connection_id)?;
        let token = self.random("mdt_", 40);
        let expires_at = self.now + ChronoDuration::hours(24);
        let old = self
            .connections
            .get_mut(connection_id)
            .and_then(|c| c.token.replace(token.clone()));
        if let Some(old) = old {
            self.tokens.remove(&old);
            let _ = self.control.send(Control::TokenRevoked(old));
        }
        self.tokens.insert(token.clone(), TokenRec { expires_at });
        Ok(MarketDataToken {
            access_token: Secret::from(token),
            expires_at: Some(expires_at),
        })
    }

    pub(crate) fn user_token(&mut self, scopes: &[TokenScope]) -> ApiResult<UserToken> {
        if scopes.is_empty() {
            return Err(ApiError::invalid(
                "scopes",
                "give [\"read\"] or [\"read\", \"trade\"]",
            ));
        }
        if let Some(bad) = scopes.iter().find(|s| s.is_unknown()) {
            return Err(ApiError::invalid(
                "scopes",
                format!("{:?} is not one of read, trade", bad.as_str()),
            ));
        }
        Ok(rest_type!(UserToken {
            access_token: Secret::from(self.random("ut_sim_", 48)),
            expires_at: Some(self.now + ChronoDuration::hours(1)),
        }))
    }
}

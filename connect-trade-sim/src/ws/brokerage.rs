//! The brokerage stream: authenticate with the platform credentials, subscribe to topics,
//! receive every order, position and balance change of the platform's users, numbered.

use std::collections::BTreeSet;

use tokio::sync::broadcast;

use super::session::{Conn, Flow, Protocol, send_authenticated, send_error};
use crate::{
    Shared,
    state::{Control, Event, Payload},
};
use connect_trade::stream::protocol::{
    BrokerageMessage, BrokerageRequest, CLOSE_AUTH_FAILED, CLOSE_SESSION_REPLACED, ErrorCode,
    StreamErrorMessage, Topic, UpdateMeta,
};

/// One brokerage session.
pub(crate) struct Brokerage {
    events: broadcast::Receiver<Event>,
    authenticated: bool,
    topics: BTreeSet<Topic>,
    /// The `sequence` of the last update sent.
    sequence: u64,
}

impl Brokerage {
    pub(crate) fn new(shared: &Shared) -> Self {
        Brokerage {
            events: shared.events.subscribe(),
            authenticated: false,
            topics: BTreeSet::new(),
            sequence: 0,
        }
    }
}

impl Protocol for Brokerage {
    const NAME: &'static str = "brokerage stream";
    type Request = BrokerageRequest;
    type Message = BrokerageMessage;
    type Feed = Event;

    fn welcome(text: String) -> BrokerageMessage {
        BrokerageMessage::Welcome {
            message: Some(text),
        }
    }

    fn wrap_error(error: StreamErrorMessage) -> BrokerageMessage {
        BrokerageMessage::Error(error)
    }

    fn is_authenticate(request: &BrokerageRequest) -> bool {
        matches!(request, BrokerageRequest::Authenticate { .. })
    }

    fn authenticated(&self) -> bool {
        self.authenticated
    }

    fn feed(&mut self) -> &mut broadcast::Receiver<Event> {
        &mut self.events
    }

    async fn request(&mut self, conn: &mut Conn, request: BrokerageRequest) -> Flow {
        match request {
            BrokerageRequest::Authenticate {
                client_id,
                client_secret,
            } => {
                let config = &conn.shared.config;
                if client_id != config.client_id
                    || client_secret.expose() != config.client_secret.expose()
                {
                    send_error::<Self>(
                        conn,
                        ErrorCode::AuthFailed,
                        "unknown client_id or wrong client_secret",
                        None,
                    )
                    .await?;
                    return conn.close(CLOSE_AUTH_FAILED, "authentication failed").await;
                }
                if !self.authenticated {
                    self.authenticated = true;
                    let _ = conn
                        .shared
                        .control
                        .send(Control::BrokerageReplaced { by: conn.id });
                    // Updates count from the authentication on.
                    self.events = self.events.resubscribe();
                }
                send_authenticated(conn, &BrokerageMessage::Authenticated {}).await
            }
            BrokerageRequest::Subscribe { topics: wanted } => {
                if let Some(bad) = wanted.iter().find(|t| t.is_unknown()) {
                    let message = format!(
                        "unknown topic {:?}: use orders, positions, balances",
                        bad.as_str()
                    );
                    send_error::<Self>(conn, ErrorCode::InvalidRequest, message, None).await
                } else {
                    self.topics.extend(wanted);
                    conn.send(&BrokerageMessage::Subscribed {
                        topics: self.topics.iter().cloned().collect(),
                    })
                    .await
                }
            }
            BrokerageRequest::Unsubscribe { topics: unwanted } => {
                for topic in &unwanted {
                    self.topics.remove(topic);
                }
                conn.send(&BrokerageMessage::Unsubscribed {
                    topics: self.topics.iter().cloned().collect(),
                })
                .await
            }
        }
    }

    async fn forward(&mut self, conn: &mut Conn, item: Result<Event, u64>) -> Flow {
        match item {
            Ok(event) => match update(event, &self.topics, &mut self.sequence) {
                Some(message) => conn.send(&message).await,
                None => Ok(()),
            },
            Err(missed) => {
                let message = format!("{missed} updates were lost: reload the state from REST");
                send_error::<Self>(conn, ErrorCode::Internal, message, None).await
            }
        }
    }

    async fn control(&mut self, conn: &mut Conn, control: Control) -> Flow {
        if let Control::BrokerageReplaced { by } = control
            && self.authenticated
            && by != conn.id
        {
            send_error::<Self>(
                conn,
                ErrorCode::SessionReplaced,
                "another session authenticated with these credentials",
                None,
            )
            .await?;
            return conn.close(CLOSE_SESSION_REPLACED, "session replaced").await;
        }
        Ok(())
    }
}

/// The update an event makes for a session subscribed to `topics`, numbered: `sequence`
/// counts the updates sent to this session (1, 2, …).
fn update(event: Event, topics: &BTreeSet<Topic>, sequence: &mut u64) -> Option<BrokerageMessage> {
    let topic = match &event.payload {
        Payload::Order(_) => Topic::Orders,
        Payload::Position(_) => Topic::Positions,
        Payload::Balance(_) => Topic::Balances,
    };
    if !topics.contains(&topic) {
        return None;
    }
    *sequence += 1;
    let meta = UpdateMeta {
        user_id: event.user_id,
        account_id: event.account_id,
        timestamp: Some(event.timestamp),
        sequence: Some(*sequence),
    };
    Some(match event.payload {
        Payload::Order(data) => BrokerageMessage::Order { meta, data },
        Payload::Position(data) => BrokerageMessage::Position { meta, data },
        Payload::Balance(data) => BrokerageMessage::Balance { meta, data },
    })
}

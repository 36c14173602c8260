//! The two WebSocket servers, speaking exactly `connect_trade::stream::protocol`.
//!
//! - [`session`]: what both servers share: the connection with its faults, the
//!   authentication deadline, parsing requests, errors, control messages and closing.
//! - [`brokerage`]: the brokerage stream (topics, updates with their sequence numbers).
//! - [`market_data`]: the market data stream (subscriptions, what each tick sends).

mod brokerage;
mod market_data;
mod session;

use std::sync::Arc;

use tokio::{net::TcpListener, sync::watch};

use crate::Shared;
use session::Conn;

/// Which server.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Kind {
    Brokerage,
    MarketData,
}

/// Accepts connections until shutdown; each one runs its session on its own task.
pub(crate) async fn serve(
    kind: Kind,
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let sessions = shutdown.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((tcp, _)) = accepted else { continue };
                let (shared, shutdown) = (shared.clone(), sessions.clone());
                tokio::spawn(async move {
                    let Ok(ws) = tokio_tungstenite::accept_async(tcp).await else { return };
                    let mut conn = Conn::new(ws, shared, shutdown);
                    let _ = match kind {
                        Kind::Brokerage => {
                            let protocol = brokerage::Brokerage::new(&conn.shared);
                            session::run(&mut conn, protocol).await
                        }
                        Kind::MarketData => {
                            let protocol = market_data::MarketData::new(&conn.shared);
                            session::run(&mut conn, protocol).await
                        }
                    };
                });
            }
            _ = shutdown.wait_for(|s| *s) => break,
        }
    }
}

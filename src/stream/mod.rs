//! The two WebSocket streams: brokerage updates and market data.

pub mod protocol;

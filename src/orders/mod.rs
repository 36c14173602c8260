//! Order builders that validate an order before it is sent.

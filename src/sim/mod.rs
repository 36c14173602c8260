//! A local Connect Trade: REST and both WebSockets over a simulated paper broker.

//! gantry's benchmarks: load generators written against the public API (REST and WebSocket),
//! a server child per run (this binary, started again as `serve-child`), and the peers from
//! `shared/peers/` measured in the same run. See `docs/benchmarks.md`.

pub mod api;
pub mod chart;
pub mod child;
pub mod error;
pub mod handlers;
pub mod machine;
pub mod peers;
pub mod report;
pub mod scenarios;
pub mod server;
pub mod stats;
pub mod ws;

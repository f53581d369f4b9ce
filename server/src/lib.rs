//! The gantry server: storage, job engine, git handlers, HTTP API and WebSocket endpoint.

#![forbid(unsafe_code)]

pub mod api;
pub mod app;
pub mod auth;
pub mod clock;
pub mod dashboard;
pub mod engine;
pub mod git_jobs;
pub mod limits;
pub mod projector;
pub mod server;
pub mod storage;
pub mod test_support;
pub mod validate;
pub mod webhook;
pub mod ws;

//! End-to-end scenarios for the git engine on real repositories in temp dirs. One test binary
//! (faster to link than one per file); one module per operation.

mod support;

mod cancel;
mod demo;
mod register;
mod reparent;
mod restack;
mod states;
mod sync;

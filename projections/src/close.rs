//! Why an [`crate::Outbox`] was closed, and the WebSocket close code that says so to the client.
//!
//! The codes come from [`gantry_types::ws::close_code`], so clients can tell "reconnect and
//! resume" from "terminal" without parsing text.

use gantry_types::ws::close_code;

/// The reason a connection's outbox was closed. The server turns it into a close frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// The send queue overflowed its byte bound: the client read too slowly. Resumable.
    SlowConsumer,
    /// The server is shutting down. Resumable.
    GoingAway,
    /// The peer did not answer heartbeats in time. Resumable.
    HeartbeatTimeout,
    /// The token was revoked or lost its rights. Terminal.
    TokenRevoked,
    /// The client broke the protocol beyond what an `error` frame can answer. Terminal.
    ProtocolViolation,
}

impl CloseReason {
    /// The WebSocket close code for this reason.
    pub fn code(self) -> u16 {
        match self {
            Self::SlowConsumer => close_code::SLOW_CONSUMER,
            Self::GoingAway => close_code::GOING_AWAY,
            Self::HeartbeatTimeout => close_code::HEARTBEAT_TIMEOUT,
            Self::TokenRevoked => close_code::TOKEN_REVOKED,
            Self::ProtocolViolation => close_code::PROTOCOL_VIOLATION,
        }
    }

    /// A short human-readable reason for the close frame (well under the 123-byte limit).
    pub fn message(self) -> &'static str {
        match self {
            Self::SlowConsumer => "send queue overflow: read faster, then resume with since",
            Self::GoingAway => "server going away: reconnect and resume",
            Self::HeartbeatTimeout => "heartbeat timeout: reconnect and resume",
            Self::TokenRevoked => "token revoked",
            Self::ProtocolViolation => "protocol violation",
        }
    }

    /// Whether the client should reconnect and resume after this close.
    pub fn is_resumable(self) -> bool {
        close_code::is_resumable(self.code())
    }
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_the_contract_and_resumability() {
        assert_eq!(CloseReason::SlowConsumer.code(), 4000);
        assert_eq!(CloseReason::GoingAway.code(), 4001);
        assert_eq!(CloseReason::HeartbeatTimeout.code(), 4002);
        assert_eq!(CloseReason::TokenRevoked.code(), 4100);
        assert_eq!(CloseReason::ProtocolViolation.code(), 4101);
        assert!(CloseReason::SlowConsumer.is_resumable());
        assert!(!CloseReason::TokenRevoked.is_resumable());
        for r in [
            CloseReason::SlowConsumer,
            CloseReason::GoingAway,
            CloseReason::HeartbeatTimeout,
            CloseReason::TokenRevoked,
            CloseReason::ProtocolViolation,
        ] {
            assert!(r.message().len() <= 123);
        }
    }
}

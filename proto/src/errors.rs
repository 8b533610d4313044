//! Error text for clients of the agent API (the controller and `couchestor-agent health`):
//! TLS and transport failures hide the useful part in an error's sources.

use std::error::Error as StdError;

/// An error and its causes, joined with ": " (a cause already quoted is not repeated).
pub fn error_chain(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// A gRPC status as `Code: message: causes`, with a hint when the connection was closed
/// right after the handshake (how a refused client certificate shows under TLS 1.3).
pub fn describe_status(status: &tonic::Status) -> String {
    let mut text = format!("{:?}: {}", status.code(), status.message());
    if let Some(source) = status.source() {
        text.push_str(": ");
        text.push_str(&error_chain(source));
    }
    if text.contains("connection closed") || text.contains("connection reset") {
        text.push_str(" (the agent may have refused this client certificate: see its log)");
    }
    text
}

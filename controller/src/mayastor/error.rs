//! Errors of the Mayastor REST client.

use reqwest::StatusCode;

use super::model::{ErrorKind, RestJsonError};

/// Longest excerpt of a response body kept in an error.
const BODY_EXCERPT: usize = 2048;

/// A failed Mayastor REST call. Every variant names the endpoint (operation id, method and path).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The base URL cannot be used.
    #[error("invalid Mayastor base URL {url:?}: {reason}")]
    InvalidBaseUrl {
        /// The URL as given.
        url: String,
        /// Why it is rejected.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error("building the Mayastor HTTP client failed")]
    Client(#[source] reqwest::Error),
    /// No HTTP answer (connection refused, timeout, body read error, ...).
    #[error("{operation} ({endpoint}): request failed")]
    Transport {
        /// Upstream operation id, e.g. `put_volume_replica_count`.
        operation: &'static str,
        /// Method and path, e.g. `PUT /v0/volumes/…/replica_count/3`.
        endpoint: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with a non-success HTTP status.
    #[error("{operation} ({endpoint}): HTTP {status}: {}", describe(rest.as_deref(), body))]
    Api {
        /// Upstream operation id.
        operation: &'static str,
        /// Method and path.
        endpoint: String,
        /// HTTP status.
        status: StatusCode,
        /// The `RestJsonError` body, when the body is one.
        rest: Option<Box<RestJsonError>>,
        /// The raw body (truncated).
        body: String,
    },
    /// A success answer whose body is not the expected JSON.
    #[error("{operation} ({endpoint}): cannot decode the response body {body:?}")]
    Decode {
        /// Upstream operation id.
        operation: &'static str,
        /// Method and path.
        endpoint: String,
        /// The raw body (truncated).
        body: String,
        /// The decoding error.
        #[source]
        source: serde_json::Error,
    },
    /// The server broke the protocol (e.g. a paging token that does not advance).
    #[error("{operation} ({endpoint}): {reason}")]
    Protocol {
        /// Upstream operation id.
        operation: &'static str,
        /// Method and path.
        endpoint: String,
        /// What went wrong.
        reason: String,
    },
}

impl Error {
    /// HTTP status of an [`Error::Api`].
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The server's `RestJsonError`, when it sent one.
    pub fn rest_error(&self) -> Option<&RestJsonError> {
        match self {
            Self::Api { rest, .. } => rest.as_deref(),
            _ => None,
        }
    }

    /// The server's error kind, when it sent a `RestJsonError`.
    pub fn kind(&self) -> Option<&ErrorKind> {
        self.rest_error().map(|rest| &rest.kind)
    }

    /// True for a 404 answer.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(StatusCode::NOT_FOUND)
    }
}

fn describe(rest: Option<&RestJsonError>, body: &str) -> String {
    match rest {
        Some(rest) => format!("{}: {} ({})", rest.kind, rest.details, rest.message),
        None if body.is_empty() => "<empty body>".to_owned(),
        None => body.to_owned(),
    }
}

/// Keeps at most [`BODY_EXCERPT`] bytes of a body, cut on a character boundary.
pub(super) fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    if text.len() <= BODY_EXCERPT {
        return text.into_owned();
    }
    let mut end = BODY_EXCERPT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

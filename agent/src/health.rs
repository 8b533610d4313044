//! `couchestor-agent health`: asks a running agent for its `GetHealth` report over mutual
//! TLS. Also the check table shared with `couchestor-agent check`.

pub mod check;

use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use couchestor_proto::agent::v1::node_agent_client::NodeAgentClient;
use couchestor_proto::agent::v1::{GetHealthRequest, HealthReport};
use serde::Serialize;
use tonic::transport::{Endpoint, Uri};

use crate::tls;

/// Exit status: the agent reports itself healthy.
pub const EXIT_HEALTHY: u8 = 0;
/// Exit status: the agent answered and reports a failed check.
pub const EXIT_UNHEALTHY: u8 = 1;
/// Exit status: no answer (bad endpoint or TLS files, connection or handshake refused,
/// timeout, RPC error).
pub const EXIT_UNREACHABLE: u8 = 2;

/// Arguments of `health`.
#[derive(Args, Debug, Clone)]
pub struct HealthArgs {
    /// Agent to ask, e.g. https://10.0.0.5:9443.
    #[arg(long, value_name = "URL")]
    pub endpoint: String,
    /// PEM CA certificate the agent's server certificate must be issued by.
    #[arg(long, value_name = "FILE")]
    pub ca: PathBuf,
    /// PEM client certificate to present.
    #[arg(long, value_name = "FILE")]
    pub cert: PathBuf,
    /// PEM private key of --cert.
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// Name the server certificate must carry (default: the endpoint's host).
    #[arg(long, value_name = "NAME")]
    pub server_name: Option<String>,
    /// Seconds to wait for the connection and for the answer.
    #[arg(long, value_name = "SECONDS", default_value = "5", value_parser = crate::server::parse_interval)]
    pub timeout: Duration,
}

/// Outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    /// Passed.
    Ok,
    /// Works, but needs attention soon.
    Warn,
    /// Failed.
    Fail,
}

impl Status {
    /// `OK`, `WARN` or `FAIL`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::Warn => "WARN",
            Self::Fail => "FAIL",
        }
    }
}

/// One line of a check table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckRow {
    /// What was checked.
    pub name: String,
    /// Outcome.
    pub status: Status,
    /// Details (names the file or directory involved).
    pub detail: String,
}

/// Writes `rows` as aligned columns under a `CHECK STATUS DETAIL` header.
pub fn write_table(out: &mut impl Write, rows: &[CheckRow]) -> io::Result<()> {
    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(0).max(5);
    writeln!(out, "{:<width$}  {:<6}  DETAIL", "CHECK", "STATUS")?;
    for row in rows {
        writeln!(
            out,
            "{:<width$}  {:<6}  {}",
            row.name,
            row.status.as_str(),
            row.detail
        )?;
    }
    Ok(())
}

pub use couchestor_proto::errors::{describe_status, error_chain};

/// Calls `GetHealth` on the agent at `args.endpoint`; `Err` says why it is unreachable.
pub async fn query(args: &HealthArgs) -> Result<HealthReport, String> {
    let uri: Uri = args
        .endpoint
        .parse()
        .map_err(|e| format!("invalid endpoint {:?}: {e}", args.endpoint))?;
    if uri.scheme_str() != Some("https") {
        return Err(format!(
            "endpoint {:?} must start with https://",
            args.endpoint
        ));
    }
    let host = uri.host().unwrap_or_default();
    let server_name = match &args.server_name {
        Some(name) => name.clone(),
        None => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
    };
    let tls = tls::client_config(&args.ca, &args.cert, &args.key, &server_name)
        .map_err(|e| e.to_string())?;
    let channel = Endpoint::from(uri)
        .tls_config(tls)
        .map_err(|e| error_chain(&e))?
        .connect_timeout(args.timeout)
        .timeout(args.timeout)
        .connect()
        .await
        .map_err(|e| format!("cannot connect: {}", error_chain(&e)))?;
    let report = NodeAgentClient::new(channel)
        .get_health(GetHealthRequest {})
        .await
        .map_err(|status| format!("GetHealth failed: {}", describe_status(&status)))?;
    Ok(report.into_inner())
}

/// Runs `health`: prints the report to `out` and returns the exit status.
pub fn run(args: &HealthArgs, out: &mut impl Write) -> io::Result<u8> {
    let answer = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
        .and_then(|runtime| runtime.block_on(query(args)));
    let report = match answer {
        Ok(report) => report,
        Err(why) => {
            eprintln!("couchestor-agent: {} unreachable: {why}", args.endpoint);
            return Ok(EXIT_UNREACHABLE);
        }
    };
    let verdict = if report.healthy {
        "healthy"
    } else {
        "UNHEALTHY"
    };
    writeln!(out, "agent {}: {verdict}", args.endpoint)?;
    let rows: Vec<CheckRow> = report
        .checks
        .iter()
        .map(|c| CheckRow {
            name: c.name.clone(),
            status: if c.ok { Status::Ok } else { Status::Fail },
            detail: c.detail.clone(),
        })
        .collect();
    write_table(out, &rows)?;
    out.flush()?;
    Ok(if report.healthy {
        EXIT_HEALTHY
    } else {
        EXIT_UNHEALTHY
    })
}

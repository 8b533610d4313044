//! The fixed newstyle handshake (server side): options `NBD_OPT_EXPORT_NAME`, `NBD_OPT_GO`,
//! `NBD_OPT_INFO`, `NBD_OPT_LIST`, `NBD_OPT_ABORT` and `NBD_OPT_STRUCTURED_REPLY`; every
//! other option (TLS, meta contexts, extended headers) is answered with `NBD_REP_ERR_UNSUP`.
//!
//! Structured replies are accepted because qemu (7.2) mis-reads a *simple* reply to a read
//! that it clipped at the end of an export whose size is not a multiple of 512: it reads
//! its whole padded buffer from the socket. With structured replies it reads exactly the
//! chunk's length.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::proto::*;

/// What the handshake advertises about the single export.
#[derive(Debug, Clone)]
pub struct ExportInfo {
    /// Export name; the empty name (the default export) also selects it.
    pub name: String,
    /// Human-readable description (`NBD_INFO_DESCRIPTION`).
    pub description: String,
    /// Size in bytes.
    pub size: u64,
    /// Transmission flags.
    pub flags: u16,
}

/// Most options one connection may send before it is closed.
pub const MAX_OPTIONS: usize = 64;

/// How a successful handshake ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The client chose the export: transmission starts.
    Transmission {
        /// Whether the client negotiated structured replies.
        structured: bool,
    },
    /// The client ended the handshake with `NBD_OPT_ABORT` (e.g. after `NBD_OPT_LIST`).
    Aborted,
}

/// Why a handshake failed; the connection is then closed.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The connection failed or closed early.
    #[error("connection closed or failed during the handshake: {0}")]
    Io(#[from] std::io::Error),
    /// The client's flags are not the fixed newstyle ones.
    #[error(
        "client flags {0:#x} are not the fixed newstyle handshake's (unknown bits or no NBD_FLAG_C_FIXED_NEWSTYLE)"
    )]
    ClientFlags(u32),
    /// An option does not start with `IHAVEOPT`.
    #[error("bad option magic {0:#018x} (expected IHAVEOPT)")]
    OptionMagic(u64),
    /// An option's payload is larger than [`MAX_OPTION_LEN`].
    #[error("{option} carries {len} bytes, more than the {MAX_OPTION_LEN} accepted")]
    OptionTooLong {
        /// The option's name.
        option: String,
        /// Its announced length.
        len: u32,
    },
    /// `NBD_OPT_EXPORT_NAME` named an export that does not exist (the protocol has no error
    /// reply for it: the connection is closed).
    #[error("NBD_OPT_EXPORT_NAME asked for unknown export {0:?}")]
    UnknownExport(String),
    /// More than [`MAX_OPTIONS`] options.
    #[error("more than {MAX_OPTIONS} options without choosing an export")]
    TooManyOptions,
}

/// Runs the server side of the handshake on `s`.
pub async fn negotiate<S>(s: &mut S, export: &ExportInfo) -> Result<Outcome, HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut hello = Vec::with_capacity(18);
    hello.extend_from_slice(&NBDMAGIC.to_be_bytes());
    hello.extend_from_slice(&IHAVEOPT.to_be_bytes());
    hello.extend_from_slice(&(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES).to_be_bytes());
    s.write_all(&hello).await?;
    s.flush().await?;

    let client_flags = s.read_u32().await?;
    let known = FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES;
    if client_flags & !known != 0 || client_flags & FLAG_C_FIXED_NEWSTYLE == 0 {
        return Err(HandshakeError::ClientFlags(client_flags));
    }
    let no_zeroes = client_flags & FLAG_C_NO_ZEROES != 0;
    let mut structured = false;

    for _ in 0..MAX_OPTIONS {
        let magic = s.read_u64().await?;
        if magic != IHAVEOPT {
            return Err(HandshakeError::OptionMagic(magic));
        }
        let option = s.read_u32().await?;
        let len = s.read_u32().await?;
        if len > MAX_OPTION_LEN {
            return Err(HandshakeError::OptionTooLong {
                option: option_name(option),
                len,
            });
        }
        let mut data = vec![0u8; len as usize];
        s.read_exact(&mut data).await?;
        tracing::debug!("NBD option {} ({len} bytes)", option_name(option));
        match option {
            OPT_EXPORT_NAME => {
                let name = String::from_utf8_lossy(&data).into_owned();
                if !selects(export, &name) {
                    return Err(HandshakeError::UnknownExport(name));
                }
                let mut reply = Vec::with_capacity(10 + 124);
                reply.extend_from_slice(&export.size.to_be_bytes());
                reply.extend_from_slice(&export.flags.to_be_bytes());
                if !no_zeroes {
                    reply.extend_from_slice(&[0u8; 124]);
                }
                s.write_all(&reply).await?;
                s.flush().await?;
                return Ok(Outcome::Transmission { structured });
            }
            OPT_ABORT => {
                // The client may close without reading the acknowledgement.
                if let Err(e) = write_option_reply(s, option, REP_ACK, &[]).await {
                    tracing::debug!("NBD_OPT_ABORT acknowledgement not delivered: {e}");
                } else if let Err(e) = s.flush().await {
                    tracing::debug!("NBD_OPT_ABORT acknowledgement not delivered: {e}");
                }
                return Ok(Outcome::Aborted);
            }
            OPT_LIST => {
                if len != 0 {
                    let msg = format!("NBD_OPT_LIST takes no data, got {len} bytes");
                    write_option_reply(s, option, REP_ERR_INVALID, msg.as_bytes()).await?;
                } else {
                    let name = export.name.as_bytes();
                    let mut entry = Vec::with_capacity(4 + name.len());
                    entry.extend_from_slice(&(name.len() as u32).to_be_bytes());
                    entry.extend_from_slice(name);
                    entry.extend_from_slice(export.description.as_bytes());
                    write_option_reply(s, option, REP_SERVER, &entry).await?;
                    write_option_reply(s, option, REP_ACK, &[]).await?;
                }
            }
            OPT_INFO | OPT_GO => {
                if info(s, option, &data, export).await? && option == OPT_GO {
                    s.flush().await?;
                    return Ok(Outcome::Transmission { structured });
                }
            }
            OPT_STRUCTURED_REPLY if len != 0 => {
                let msg = format!("NBD_OPT_STRUCTURED_REPLY takes no data, got {len} bytes");
                write_option_reply(s, option, REP_ERR_INVALID, msg.as_bytes()).await?;
            }
            OPT_STRUCTURED_REPLY => {
                structured = true;
                write_option_reply(s, option, REP_ACK, &[]).await?;
            }
            _ => {
                let msg = format!("{} is not supported by this server", option_name(option));
                write_option_reply(s, option, REP_ERR_UNSUP, msg.as_bytes()).await?;
            }
        }
        s.flush().await?;
    }
    Err(HandshakeError::TooManyOptions)
}

/// True if `name` selects the export (its own name, or the empty default name).
fn selects(export: &ExportInfo, name: &str) -> bool {
    name.is_empty() || name == export.name
}

/// Parses an `NBD_OPT_INFO` / `NBD_OPT_GO` payload: name length, name, number of
/// information requests, requests.
fn parse_info(data: &[u8]) -> Result<(String, Vec<u16>), String> {
    let Some(head) = data.get(..4) else {
        return Err(format!("payload of {} bytes is too short", data.len()));
    };
    let name_len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let Some(name) = data.get(4..4 + name_len) else {
        return Err(format!(
            "name length {name_len} runs past the {}-byte payload",
            data.len()
        ));
    };
    let rest = &data[4 + name_len..];
    let Some(count) = rest.get(..2) else {
        return Err("the number of information requests is missing".into());
    };
    let count = u16::from_be_bytes([count[0], count[1]]) as usize;
    let requests = &rest[2..];
    if requests.len() != 2 * count {
        return Err(format!(
            "{count} information requests announced, {} bytes of them sent",
            requests.len()
        ));
    }
    let requests = requests
        .chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect();
    Ok((String::from_utf8_lossy(name).into_owned(), requests))
}

/// Answers `NBD_OPT_INFO` / `NBD_OPT_GO`; returns whether the export was described (and
/// acknowledged).
async fn info<S>(
    s: &mut S,
    option: u32,
    data: &[u8],
    export: &ExportInfo,
) -> Result<bool, HandshakeError>
where
    S: AsyncWrite + Unpin,
{
    let (name, requests) = match parse_info(data) {
        Ok(parsed) => parsed,
        Err(why) => {
            let msg = format!("malformed {}: {why}", option_name(option));
            write_option_reply(s, option, REP_ERR_INVALID, msg.as_bytes()).await?;
            return Ok(false);
        }
    };
    if !selects(export, &name) {
        let msg = format!(
            "no export named {name:?} (this server exports {:?})",
            export.name
        );
        write_option_reply(s, option, REP_ERR_UNKNOWN, msg.as_bytes()).await?;
        return Ok(false);
    }
    let mut payload = Vec::with_capacity(12);
    payload.extend_from_slice(&INFO_EXPORT.to_be_bytes());
    payload.extend_from_slice(&export.size.to_be_bytes());
    payload.extend_from_slice(&export.flags.to_be_bytes());
    write_option_reply(s, option, REP_INFO, &payload).await?;
    if requests.contains(&INFO_NAME) {
        let mut payload = INFO_NAME.to_be_bytes().to_vec();
        payload.extend_from_slice(export.name.as_bytes());
        write_option_reply(s, option, REP_INFO, &payload).await?;
    }
    if requests.contains(&INFO_DESCRIPTION) {
        let mut payload = INFO_DESCRIPTION.to_be_bytes().to_vec();
        payload.extend_from_slice(export.description.as_bytes());
        write_option_reply(s, option, REP_INFO, &payload).await?;
    }
    // Block sizes are always sent: any byte range may be read, up to the request limit.
    let mut payload = INFO_BLOCK_SIZE.to_be_bytes().to_vec();
    payload.extend_from_slice(&MIN_BLOCK.to_be_bytes());
    payload.extend_from_slice(&PREFERRED_BLOCK.to_be_bytes());
    payload.extend_from_slice(&MAX_REQUEST_LEN.to_be_bytes());
    write_option_reply(s, option, REP_INFO, &payload).await?;
    write_option_reply(s, option, REP_ACK, &[]).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_payloads_are_parsed_and_checked() {
        let mut data = 3u32.to_be_bytes().to_vec();
        data.extend_from_slice(b"vol");
        data.extend_from_slice(&2u16.to_be_bytes());
        data.extend_from_slice(&INFO_NAME.to_be_bytes());
        data.extend_from_slice(&INFO_BLOCK_SIZE.to_be_bytes());
        assert_eq!(
            parse_info(&data),
            Ok(("vol".to_string(), vec![INFO_NAME, INFO_BLOCK_SIZE]))
        );
        assert!(parse_info(&data[..data.len() - 1]).is_err());
        assert!(parse_info(&data[..2]).is_err());
        assert!(parse_info(&[0, 0, 0, 9, b'a']).is_err());
    }
}

//! Wire constants and framing of the NBD protocol (fixed newstyle handshake, simple
//! replies), after the upstream specification `doc/proto.md` of NetworkBlockDevice/nbd.
//! Every integer on the wire is big-endian.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// `NBDMAGIC`, first 8 bytes the server sends.
pub const NBDMAGIC: u64 = 0x4e42_444d_4147_4943;
/// `IHAVEOPT`: second 8 bytes the server sends, and the magic of every client option.
pub const IHAVEOPT: u64 = 0x4948_4156_454f_5054;
/// Magic of every option reply.
pub const REPLY_MAGIC: u64 = 0x0003_e889_0455_65a9;
/// Magic of every transmission request.
pub const REQUEST_MAGIC: u32 = 0x2560_9513;
/// Magic of a simple reply.
pub const SIMPLE_REPLY_MAGIC: u32 = 0x6744_6698;
/// Magic of a structured reply chunk.
pub const STRUCTURED_REPLY_MAGIC: u32 = 0x668e_33ef;

/// Structured reply flag: the last chunk of the reply.
pub const REPLY_FLAG_DONE: u16 = 1 << 0;
/// Structured reply chunk: no payload.
pub const REPLY_TYPE_NONE: u16 = 0;
/// Structured reply chunk: an offset, then data.
pub const REPLY_TYPE_OFFSET_DATA: u16 = 1;
/// Structured reply chunk: an error (errno, message length, message).
pub const REPLY_TYPE_ERROR: u16 = (1 << 15) | 1;

/// Handshake flag: the server speaks the fixed newstyle handshake.
pub const FLAG_FIXED_NEWSTYLE: u16 = 1 << 0;
/// Handshake flag: the 124 zero bytes after `NBD_OPT_EXPORT_NAME` may be left out.
pub const FLAG_NO_ZEROES: u16 = 1 << 1;
/// Client flag: the client speaks the fixed newstyle handshake.
pub const FLAG_C_FIXED_NEWSTYLE: u32 = 1 << 0;
/// Client flag: the client does not want the 124 zero bytes.
pub const FLAG_C_NO_ZEROES: u32 = 1 << 1;

/// Transmission flag: the other flags are valid.
pub const TFLAG_HAS_FLAGS: u16 = 1 << 0;
/// Transmission flag: the export is read-only.
pub const TFLAG_READ_ONLY: u16 = 1 << 1;
/// Transmission flag: `NBD_CMD_FLUSH` is accepted.
pub const TFLAG_SEND_FLUSH: u16 = 1 << 2;
/// Transmission flag: several connections see the same data (true of a read-only export).
pub const TFLAG_CAN_MULTI_CONN: u16 = 1 << 8;

/// Option: choose the export by name; no reply but the export's size and flags.
pub const OPT_EXPORT_NAME: u32 = 1;
/// Option: end the handshake.
pub const OPT_ABORT: u32 = 2;
/// Option: list the exports.
pub const OPT_LIST: u32 = 3;
/// Option: upgrade to TLS (not supported).
pub const OPT_STARTTLS: u32 = 5;
/// Option: describe an export.
pub const OPT_INFO: u32 = 6;
/// Option: describe an export and enter transmission.
pub const OPT_GO: u32 = 7;
/// Option: structured replies (not supported).
pub const OPT_STRUCTURED_REPLY: u32 = 8;

/// Reply: the option succeeded (or the list ended).
pub const REP_ACK: u32 = 1;
/// Reply: one export of `NBD_OPT_LIST`.
pub const REP_SERVER: u32 = 2;
/// Reply: one piece of information about an export.
pub const REP_INFO: u32 = 3;
/// Error reply bit.
const REP_FLAG_ERROR: u32 = 1 << 31;
/// Error reply: the option is not supported.
pub const REP_ERR_UNSUP: u32 = REP_FLAG_ERROR | 1;
/// Error reply: the option is malformed.
pub const REP_ERR_INVALID: u32 = REP_FLAG_ERROR | 3;
/// Error reply: no export of that name.
pub const REP_ERR_UNKNOWN: u32 = REP_FLAG_ERROR | 6;

/// Information type: size and transmission flags.
pub const INFO_EXPORT: u16 = 0;
/// Information type: the export's name.
pub const INFO_NAME: u16 = 1;
/// Information type: a description.
pub const INFO_DESCRIPTION: u16 = 2;
/// Information type: minimum, preferred and maximum block sizes.
pub const INFO_BLOCK_SIZE: u16 = 3;

/// Command: read.
pub const CMD_READ: u16 = 0;
/// Command: write (refused: the export is read-only).
pub const CMD_WRITE: u16 = 1;
/// Command: disconnect.
pub const CMD_DISC: u16 = 2;
/// Command: flush.
pub const CMD_FLUSH: u16 = 3;
/// Command: trim (refused).
pub const CMD_TRIM: u16 = 4;
/// Command: write zeroes (refused).
pub const CMD_WRITE_ZEROES: u16 = 6;

/// Error: operation not permitted (writes to a read-only export).
pub const EPERM: u32 = 1;
/// Error: input/output error (the archive could not be read).
pub const EIO: u32 = 5;
/// Error: invalid argument (a range beyond the end, a request too large).
pub const EINVAL: u32 = 22;
/// Error: not supported (an unknown command).
pub const ENOTSUP: u32 = 95;

/// Largest option payload accepted during the handshake.
pub const MAX_OPTION_LEN: u32 = 64 * 1024;
/// Largest request length served (the spec's recommended maximum block size, 32 MiB).
pub const MAX_REQUEST_LEN: u32 = 32 << 20;
/// Smallest block size advertised.
pub const MIN_BLOCK: u32 = 1;
/// Preferred block size advertised.
pub const PREFERRED_BLOCK: u32 = 1 << 20;

/// A transmission request (its header; a write's payload follows it on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// Command flags.
    pub flags: u16,
    /// Command type (`CMD_*`).
    pub kind: u16,
    /// Opaque cookie the reply echoes.
    pub cookie: u64,
    /// Byte offset.
    pub offset: u64,
    /// Byte length.
    pub length: u32,
}

/// Why a request header could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The connection failed or closed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The header does not start with the request magic.
    #[error("bad request magic {0:#010x} (expected {REQUEST_MAGIC:#010x})")]
    BadMagic(u32),
}

/// Reads one request header (28 bytes).
pub async fn read_request<R: AsyncRead + Unpin>(r: &mut R) -> Result<Request, FrameError> {
    let mut b = [0u8; 28];
    r.read_exact(&mut b).await?;
    let be32 = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let be16 = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
    let be64 = |i: usize| {
        let mut x = [0u8; 8];
        x.copy_from_slice(&b[i..i + 8]);
        u64::from_be_bytes(x)
    };
    let magic = be32(0);
    if magic != REQUEST_MAGIC {
        return Err(FrameError::BadMagic(magic));
    }
    Ok(Request {
        flags: be16(4),
        kind: be16(6),
        cookie: be64(8),
        offset: be64(16),
        length: be32(24),
    })
}

/// The 16-byte header of a simple reply.
pub fn simple_reply(error: u32, cookie: u64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..4].copy_from_slice(&SIMPLE_REPLY_MAGIC.to_be_bytes());
    b[4..8].copy_from_slice(&error.to_be_bytes());
    b[8..].copy_from_slice(&cookie.to_be_bytes());
    b
}

/// The 20-byte header of one structured reply chunk carrying `length` payload bytes.
pub fn structured_reply(flags: u16, kind: u16, cookie: u64, length: u32) -> [u8; 20] {
    let mut b = [0u8; 20];
    b[..4].copy_from_slice(&STRUCTURED_REPLY_MAGIC.to_be_bytes());
    b[4..6].copy_from_slice(&flags.to_be_bytes());
    b[6..8].copy_from_slice(&kind.to_be_bytes());
    b[8..16].copy_from_slice(&cookie.to_be_bytes());
    b[16..].copy_from_slice(&length.to_be_bytes());
    b
}

/// Writes one option reply: magic, option, reply type, length, data.
pub async fn write_option_reply<W: AsyncWrite + Unpin>(
    w: &mut W,
    option: u32,
    reply: u32,
    data: &[u8],
) -> std::io::Result<()> {
    let len = u32::try_from(data.len())
        .map_err(|_| std::io::Error::other("option reply longer than 4 GiB"))?;
    let mut b = Vec::with_capacity(20 + data.len());
    b.extend_from_slice(&REPLY_MAGIC.to_be_bytes());
    b.extend_from_slice(&option.to_be_bytes());
    b.extend_from_slice(&reply.to_be_bytes());
    b.extend_from_slice(&len.to_be_bytes());
    b.extend_from_slice(data);
    w.write_all(&b).await
}

/// The name of a command, for logs.
pub fn command_name(kind: u16) -> &'static str {
    match kind {
        CMD_READ => "READ",
        CMD_WRITE => "WRITE",
        CMD_DISC => "DISC",
        CMD_FLUSH => "FLUSH",
        CMD_TRIM => "TRIM",
        5 => "CACHE",
        CMD_WRITE_ZEROES => "WRITE_ZEROES",
        7 => "BLOCK_STATUS",
        8 => "RESIZE",
        _ => "unknown",
    }
}

/// The name of an option, for logs.
pub fn option_name(option: u32) -> String {
    match option {
        OPT_EXPORT_NAME => "NBD_OPT_EXPORT_NAME".into(),
        OPT_ABORT => "NBD_OPT_ABORT".into(),
        OPT_LIST => "NBD_OPT_LIST".into(),
        OPT_STARTTLS => "NBD_OPT_STARTTLS".into(),
        OPT_INFO => "NBD_OPT_INFO".into(),
        OPT_GO => "NBD_OPT_GO".into(),
        OPT_STRUCTURED_REPLY => "NBD_OPT_STRUCTURED_REPLY".into(),
        9 => "NBD_OPT_LIST_META_CONTEXT".into(),
        10 => "NBD_OPT_SET_META_CONTEXT".into(),
        11 => "NBD_OPT_EXTENDED_HEADERS".into(),
        other => format!("option {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magics_spell_their_names() {
        assert_eq!(&NBDMAGIC.to_be_bytes(), b"NBDMAGIC");
        assert_eq!(&IHAVEOPT.to_be_bytes(), b"IHAVEOPT");
    }

    #[tokio::test]
    async fn request_headers_round_trip() {
        let mut wire = Vec::new();
        wire.extend_from_slice(&REQUEST_MAGIC.to_be_bytes());
        wire.extend_from_slice(&1u16.to_be_bytes());
        wire.extend_from_slice(&CMD_READ.to_be_bytes());
        wire.extend_from_slice(&0xdead_beefu64.to_be_bytes());
        wire.extend_from_slice(&4096u64.to_be_bytes());
        wire.extend_from_slice(&512u32.to_be_bytes());
        let req = read_request(&mut wire.as_slice()).await.unwrap();
        assert_eq!(
            req,
            Request {
                flags: 1,
                kind: CMD_READ,
                cookie: 0xdead_beef,
                offset: 4096,
                length: 512
            }
        );
        wire[0] = 0;
        let err = read_request(&mut wire.as_slice()).await.unwrap_err();
        assert!(err.to_string().starts_with("bad request magic"), "{err}");
    }
}

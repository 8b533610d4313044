//! Parser for the block-layer statistics file `/sys/block/<dev>/stat`.
//!
//! The format is a kernel ABI documented in `Documentation/block/stat.rst`: one line of
//! whitespace-separated unsigned decimal counters. Kernels before 4.18 print 11 fields,
//! 4.18 added four discard fields (15) and 5.5 two flush fields (17). Fields the kernel
//! may append later are ignored; a count that matches none of the documented layouts is
//! an error.

use serde::Serialize;

/// Names of the documented fields, in file order, for error messages.
const FIELD_NAMES: [&str; 17] = [
    "read I/Os",
    "read merges",
    "read sectors",
    "read ticks",
    "write I/Os",
    "write merges",
    "write sectors",
    "write ticks",
    "in_flight",
    "io_ticks",
    "time_in_queue",
    "discard I/Os",
    "discard merges",
    "discard sectors",
    "discard ticks",
    "flush I/Os",
    "flush ticks",
];

/// Discard counters (fields 12-15, kernel 4.18 and later).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DiscardCounters {
    /// Discard requests completed.
    pub ios: u64,
    /// Discard requests merged with a queued request.
    pub merges: u64,
    /// 512-byte sectors discarded.
    pub sectors: u64,
    /// Milliseconds spent waiting for discard requests.
    pub ticks_ms: u64,
}

/// Flush counters (fields 16-17, kernel 5.5 and later).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FlushCounters {
    /// Flush requests completed.
    pub ios: u64,
    /// Milliseconds spent waiting for flush requests.
    pub ticks_ms: u64,
}

/// One reading of a device's cumulative I/O counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct IoCounters {
    /// Read requests completed.
    pub read_ios: u64,
    /// Read requests merged with a queued request.
    pub read_merges: u64,
    /// 512-byte sectors read.
    pub read_sectors: u64,
    /// Milliseconds spent waiting for read requests (summed over requests).
    pub read_ticks_ms: u64,
    /// Write requests completed.
    pub write_ios: u64,
    /// Write requests merged with a queued request.
    pub write_merges: u64,
    /// 512-byte sectors written.
    pub write_sectors: u64,
    /// Milliseconds spent waiting for write requests (summed over requests).
    pub write_ticks_ms: u64,
    /// Requests issued to the driver but not yet completed (instantaneous, not cumulative).
    pub in_flight: u64,
    /// Milliseconds during which the device had at least one request in flight.
    pub io_ticks_ms: u64,
    /// Milliseconds requests spent in flight, weighted by the number in flight.
    pub time_in_queue_ms: u64,
    /// Discard counters, when the kernel reports them.
    pub discard: Option<DiscardCounters>,
    /// Flush counters, when the kernel reports them.
    pub flush: Option<FlushCounters>,
}

impl IoCounters {
    /// The cumulative (monotonic) counters, for detecting a reset between two readings.
    /// `in_flight` is a gauge and is left out.
    pub fn cumulative(&self) -> Vec<u64> {
        let mut values = vec![
            self.read_ios,
            self.read_merges,
            self.read_sectors,
            self.read_ticks_ms,
            self.write_ios,
            self.write_merges,
            self.write_sectors,
            self.write_ticks_ms,
            self.io_ticks_ms,
            self.time_in_queue_ms,
        ];
        if let Some(d) = self.discard {
            values.extend([d.ios, d.merges, d.sectors, d.ticks_ms]);
        }
        if let Some(f) = self.flush {
            values.extend([f.ios, f.ticks_ms]);
        }
        values
    }
}

/// Why a `stat` line could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatFormatError {
    /// The number of fields matches none of the documented layouts.
    #[error("expected 11, 15 or at least 17 fields, found {0}")]
    FieldCount(usize),
    /// A field is not an unsigned decimal integer.
    #[error("field {position} ({name}) is not an unsigned integer: {value:?}")]
    BadField {
        /// 1-based position in the line.
        position: usize,
        /// Documented name of the field.
        name: &'static str,
        /// The offending text.
        value: String,
    },
}

/// Parses the content of a `stat` file.
pub fn parse_stat(content: &str) -> Result<IoCounters, StatFormatError> {
    let fields: Vec<&str> = content.split_ascii_whitespace().collect();
    let count = fields.len();
    if !(count == 11 || count == 15 || count >= 17) {
        return Err(StatFormatError::FieldCount(count));
    }
    let mut values = [0u64; 17];
    for (index, (slot, text)) in values.iter_mut().zip(&fields).enumerate() {
        *slot = text.parse().map_err(|_| StatFormatError::BadField {
            position: index + 1,
            name: FIELD_NAMES[index],
            value: (*text).to_owned(),
        })?;
    }
    let v = values;
    Ok(IoCounters {
        read_ios: v[0],
        read_merges: v[1],
        read_sectors: v[2],
        read_ticks_ms: v[3],
        write_ios: v[4],
        write_merges: v[5],
        write_sectors: v[6],
        write_ticks_ms: v[7],
        in_flight: v[8],
        io_ticks_ms: v[9],
        time_in_queue_ms: v[10],
        discard: (count >= 15).then_some(DiscardCounters {
            ios: v[11],
            merges: v[12],
            sectors: v[13],
            ticks_ms: v[14],
        }),
        flush: (count >= 17).then_some(FlushCounters {
            ios: v[15],
            ticks_ms: v[16],
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // A real line from a virtio disk on kernel 6.x (17 fields, right-aligned with spaces).
    const LINE_17: &str = "  310163    11019 10473018  1215667    33926   136754 28988896   128945        0    58076  1348510    15064       52 10310688     3820      797       78\n";

    #[test]
    fn parses_seventeen_fields() {
        let c = parse_stat(LINE_17).unwrap();
        assert_eq!(c.read_ios, 310_163);
        assert_eq!(c.read_merges, 11_019);
        assert_eq!(c.read_sectors, 10_473_018);
        assert_eq!(c.read_ticks_ms, 1_215_667);
        assert_eq!(c.write_ios, 33_926);
        assert_eq!(c.write_merges, 136_754);
        assert_eq!(c.write_sectors, 28_988_896);
        assert_eq!(c.write_ticks_ms, 128_945);
        assert_eq!(c.in_flight, 0);
        assert_eq!(c.io_ticks_ms, 58_076);
        assert_eq!(c.time_in_queue_ms, 1_348_510);
        let d = c.discard.unwrap();
        assert_eq!(
            (d.ios, d.merges, d.sectors, d.ticks_ms),
            (15_064, 52, 10_310_688, 3_820)
        );
        let f = c.flush.unwrap();
        assert_eq!((f.ios, f.ticks_ms), (797, 78));
    }

    #[test]
    fn parses_eleven_and_fifteen_fields() {
        let c = parse_stat("1 2 3 4 5 6 7 8 9 10 11\n").unwrap();
        assert_eq!((c.read_ios, c.time_in_queue_ms), (1, 11));
        assert_eq!((c.discard, c.flush), (None, None));
        let c = parse_stat("1 2 3 4 5 6 7 8 9 10 11 12 13 14 15").unwrap();
        assert_eq!(c.discard.unwrap().ticks_ms, 15);
        assert_eq!(c.flush, None);
    }

    #[test]
    fn ignores_fields_appended_by_future_kernels() {
        let c = parse_stat("1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19").unwrap();
        assert_eq!(
            c.flush.unwrap(),
            FlushCounters {
                ios: 16,
                ticks_ms: 17
            }
        );
    }

    #[test]
    fn rejects_undocumented_field_counts() {
        assert_eq!(parse_stat(""), Err(StatFormatError::FieldCount(0)));
        assert_eq!(
            parse_stat("1 2 3 4 5 6 7 8 9 10"),
            Err(StatFormatError::FieldCount(10))
        );
        assert_eq!(
            parse_stat("1 2 3 4 5 6 7 8 9 10 11 12"),
            Err(StatFormatError::FieldCount(12))
        );
        assert_eq!(
            parse_stat("1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16"),
            Err(StatFormatError::FieldCount(16))
        );
    }

    #[test]
    fn rejects_non_numeric_and_negative_fields() {
        let err = parse_stat("1 2 x3 4 5 6 7 8 9 10 11").unwrap_err();
        assert_eq!(
            err.to_string(),
            "field 3 (read sectors) is not an unsigned integer: \"x3\""
        );
        let err = parse_stat("1 2 3 4 5 6 7 8 -1 10 11").unwrap_err();
        assert!(matches!(
            err,
            StatFormatError::BadField {
                position: 9,
                name: "in_flight",
                ..
            }
        ));
    }

    #[test]
    fn cumulative_excludes_in_flight() {
        let c = parse_stat("1 2 3 4 5 6 7 8 99 10 11").unwrap();
        assert_eq!(c.cumulative(), vec![1, 2, 3, 4, 5, 6, 7, 8, 10, 11]);
    }
}

//! Rendering of device reports as a table or JSON.

use std::io::{self, Write};

use couchestor_agent::report::DeviceReport;

/// Bytes in the MB of the table's rMB/s and wMB/s (iostat -m divides kB by 1024).
const MB: f64 = 1024.0 * 1024.0;

/// Writes reports as one pretty-printed JSON array.
pub fn write_json(out: &mut impl Write, reports: &[DeviceReport]) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, reports)?;
    writeln!(out)
}

/// Writes reports as a JSON array on a single line (JSON lines, for --watch).
pub fn write_json_line(out: &mut impl Write, reports: &[DeviceReport]) -> io::Result<()> {
    serde_json::to_writer(&mut *out, reports)?;
    writeln!(out)
}

/// Human-readable size in binary units, e.g. `931.5G`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["K", "M", "G", "T", "P", "E"];
    if bytes < 1024 {
        return format!("{bytes}B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1}{}", UNITS[unit])
}

/// Writes reports as aligned columns, like `iostat -x`.
pub fn write_table(out: &mut impl Write, reports: &[DeviceReport]) -> io::Result<()> {
    let name_width = reports
        .iter()
        .map(|r| r.name.len())
        .max()
        .unwrap_or(0)
        .max(4);
    writeln!(
        out,
        "{:<name_width$} {:<8} {:>3} {:>7} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8} {:>6} {:>7}",
        "NAME",
        "KIND",
        "ROT",
        "SIZE",
        "r/s",
        "w/s",
        "rMB/s",
        "wMB/s",
        "r_await",
        "w_await",
        "%util",
        "aqu-sz"
    )?;
    for r in reports {
        writeln!(
            out,
            "{:<name_width$} {:<8} {:>3} {:>7} {:>9.2} {:>9.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>6.2} {:>7.2}",
            r.name,
            r.kind.as_str(),
            u8::from(r.rotational),
            human_size(r.size_bytes),
            r.read_iops,
            r.write_iops,
            r.read_bytes_per_sec / MB,
            r.write_bytes_per_sec / MB,
            r.read_latency_ms,
            r.write_latency_ms,
            r.utilization * 100.0,
            r.queue_depth,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_use_binary_units() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(1023), "1023B");
        assert_eq!(human_size(1 << 30), "1.0G");
        assert_eq!(human_size(1_000_204_886_016), "931.5G");
        assert_eq!(human_size(4_000_787_030_016), "3.6T");
    }
}

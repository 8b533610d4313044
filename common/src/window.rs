//! Migration windows: a cron schedule (UTC) that opens the window, and how long it stays open.

use croner::Cron;
use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::storagepolicy::MigrationWindow;

/// A parsed migration window.
#[derive(Clone, Debug)]
pub struct Window {
    cron: Cron,
    open_secs: i64,
}

/// A schedule that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("migrationWindow.schedule {schedule:?} is not a valid 5-field cron expression: {message}")]
pub struct WindowError {
    schedule: String,
    message: String,
}

impl Window {
    /// Parses the policy's window.
    pub fn new(w: &MigrationWindow) -> Result<Self, WindowError> {
        let cron: Cron =
            w.schedule
                .parse()
                .map_err(|e: croner::errors::CronError| WindowError {
                    schedule: w.schedule.clone(),
                    message: e.to_string(),
                })?;
        Ok(Self {
            cron,
            open_secs: std::time::Duration::from(w.duration).as_secs() as i64,
        })
    }

    /// Whether the window is open at `now` (Unix seconds): the latest opening at or before
    /// `now` is less than the window's duration ago.
    pub fn is_open(&self, now: i64) -> bool {
        let Ok(ts) = Timestamp::from_second(now) else {
            return false;
        };
        let now_z = ts.to_zoned(TimeZone::UTC);
        self.cron
            .find_previous_occurrence(&now_z, true)
            .is_ok_and(|opened| now - opened.timestamp().as_second() < self.open_secs)
    }

    /// The next opening strictly after `now`, as Unix seconds.
    pub fn next_open(&self, now: i64) -> Option<i64> {
        let now_z = Timestamp::from_second(now).ok()?.to_zoned(TimeZone::UTC);
        self.cron
            .find_next_occurrence(&now_z, false)
            .ok()
            .map(|z| z.timestamp().as_second())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(schedule: &str, dur: &str) -> Result<Window, WindowError> {
        Window::new(&MigrationWindow {
            schedule: schedule.into(),
            duration: dur.parse().unwrap(),
        })
    }

    fn at(s: &str) -> i64 {
        s.parse::<Timestamp>().unwrap().as_second()
    }

    #[test]
    fn nightly_window_opens_and_closes() {
        let w = window("0 22 * * *", "4h").unwrap();
        assert!(!w.is_open(at("2026-11-23T21:59:59Z")));
        assert!(w.is_open(at("2026-11-23T22:00:00Z")));
        assert!(w.is_open(at("2026-11-24T01:59:59Z")), "spans midnight");
        assert!(!w.is_open(at("2026-11-24T02:00:00Z")));
        assert_eq!(
            w.next_open(at("2026-11-24T02:00:00Z")),
            Some(at("2026-11-24T22:00:00Z"))
        );
    }

    #[test]
    fn weekend_only_window() {
        let w = window("0 0 * * SAT", "48h").unwrap();
        assert!(w.is_open(at("2026-11-29T12:00:00Z")), "Sunday noon");
        assert!(!w.is_open(at("2026-11-30T00:00:00Z")), "Monday");
    }

    #[test]
    fn a_bad_schedule_names_itself() {
        let e = window("61 * * * *", "1h").unwrap_err().to_string();
        assert!(
            e.contains("\"61 * * * *\"") && e.contains("not a valid"),
            "{e}"
        );
    }
}

//! Local wall-clock time for "queue done ≈ 14:32", through `jiff`: the host finds the system's
//! zone once with [`TimeZone::try_system`] (`TZ`, else `/etc/localtime`, else the platform's own
//! setting; read in Rust, not through the C library's `localtime_r`, which `time` refuses once a
//! process has a second thread, and a tray app always has one), and hands it to the
//! [`TrayModel`](crate::TrayModel). Where no zone can be found, times are shown in UTC and say so.

use jiff::tz::TimeZone;
use jiff::Timestamp;
use time::{OffsetDateTime, UtcOffset};

/// "14:32" in `zone` (its offset at that instant, daylight saving time included); without one,
/// in UTC and saying so: "14:32 UTC".
pub fn wall_clock(at: OffsetDateTime, zone: Option<&TimeZone>) -> String {
    match local(at, zone) {
        Some(local) => format!("{:02}:{:02}", local.hour(), local.minute()),
        None => {
            let utc = at.to_offset(UtcOffset::UTC);
            format!("{:02}:{:02} UTC", utc.hour(), utc.minute())
        }
    }
}

/// `at` in `zone` (its offset at that instant); `None` without a zone.
pub fn local(at: OffsetDateTime, zone: Option<&TimeZone>) -> Option<OffsetDateTime> {
    let zone = zone?;
    let ms = i64::try_from(at.unix_timestamp_nanos().div_euclid(1_000_000)).ok()?;
    let offset = zone.to_offset(Timestamp::from_millisecond(ms).ok()?);
    let offset = UtcOffset::from_whole_seconds(offset.seconds()).ok()?;
    Some(at.to_offset(offset))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::tz::{self, Offset};
    use time::macros::datetime;

    #[test]
    fn the_clock_reads_hours_and_minutes_in_the_zone_or_says_utc() {
        let at = datetime!(2025-07-01 12:32:59 UTC);
        assert_eq!(
            wall_clock(at, Some(&TimeZone::fixed(tz::offset(2)))),
            "14:32"
        );
        assert_eq!(wall_clock(at, Some(&TimeZone::UTC)), "12:32");
        assert_eq!(wall_clock(at, None), "12:32 UTC");
        let india = TimeZone::fixed(Offset::from_seconds(5 * 3600 + 30 * 60).unwrap());
        assert_eq!(
            wall_clock(datetime!(2025-07-01 23:05 UTC), Some(&india)),
            "04:35",
            "past midnight"
        );
        assert_eq!(
            wall_clock(datetime!(2025-07-01 12:32 +02:00), None),
            "10:32 UTC",
            "an instant given in another offset is told in UTC"
        );
    }

    #[test]
    fn a_posix_rule_tells_summer_and_winter_time_apart() {
        let berlin = TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").unwrap();
        let clock = |at| wall_clock(at, Some(&berlin));
        assert_eq!(clock(datetime!(2025-01-15 12:00 UTC)), "13:00");
        assert_eq!(clock(datetime!(2025-07-15 12:00 UTC)), "14:00");
        // 2025-03-30 02:00 CET is 01:00 UTC; 2025-10-26 03:00 CEST is 01:00 UTC.
        assert_eq!(clock(datetime!(2025-03-30 00:59 UTC)), "01:59");
        assert_eq!(clock(datetime!(2025-03-30 01:00 UTC)), "03:00");
        assert_eq!(clock(datetime!(2025-10-26 00:59 UTC)), "02:59");
        assert_eq!(clock(datetime!(2025-10-26 01:00 UTC)), "02:00");

        let sydney = TimeZone::posix("AEST-10AEDT,M10.1.0,M4.1.0/3").unwrap();
        assert_eq!(
            wall_clock(datetime!(2025-01-01 00:00 UTC), Some(&sydney)),
            "11:00",
            "southern summer spans the new year"
        );
        assert_eq!(
            wall_clock(datetime!(2025-07-01 00:00 UTC), Some(&sydney)),
            "10:00"
        );

        let new_york = TimeZone::posix("EST5EDT,M3.2.0,M11.1.0").unwrap();
        assert_eq!(
            wall_clock(datetime!(2025-07-01 12:00 UTC), Some(&new_york)),
            "08:00"
        );
        assert_eq!(
            wall_clock(datetime!(2025-12-01 12:00 UTC), Some(&new_york)),
            "07:00"
        );
    }

    /// Reads the machine's IANA database (`/usr/share/zoneinfo`, or the platform's own), which a
    /// build machine need not have: run with `--ignored` where it is installed, where a missing
    /// database fails instead of passing unseen.
    #[test]
    #[ignore = "needs the system's time zone database (tzdata)"]
    fn the_systems_zone_database_is_used_where_there_is_one() {
        let berlin =
            TimeZone::get("Europe/Berlin").expect("a time zone database with Europe/Berlin");
        let clock = |at| wall_clock(at, Some(&berlin));
        assert_eq!(clock(datetime!(1990-07-01 12:00 UTC)), "14:00");
        assert_eq!(clock(datetime!(2025-01-15 12:00 UTC)), "13:00");
        assert_eq!(clock(datetime!(2025-03-30 01:00 UTC)), "03:00");
        assert_eq!(clock(datetime!(2060-07-01 12:00 UTC)), "14:00");
    }
}

//! Local wall-clock time for "queue done ≈ 14:32": the system's time zone read from its TZif
//! file (`TZ`, else `/etc/localtime`), with the file's rule for the years after its last
//! transition. `time`'s own `current_local_offset` gives up once a process has a second thread
//! (it would call `localtime_r`, which may race a `setenv`), and a tray app always has one.
//! Where no zone can be read (no such file, e.g. on Windows), times are shown in UTC and say so.

use std::path::Path;
use time::{Date, Month, OffsetDateTime, UtcOffset};

/// A time zone: the UTC offset at any instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalZone {
    /// (first UTC second it applies, offset in seconds east of UTC), ascending.
    transitions: Vec<(i64, i32)>,
    /// Before the first transition.
    initial: i32,
    /// From the last transition on (the TZif footer), or always when there are none.
    rule: Option<Rule>,
}

impl LocalZone {
    /// The zone this process runs in: `TZ` when set (a zone name, a file, or a POSIX rule such
    /// as `CET-1CEST,M3.5.0,M10.5.0/3`), else `/etc/localtime`. `None` when neither can be read.
    pub fn system() -> Option<Self> {
        match std::env::var("TZ") {
            Ok(tz) => Self::named(&tz),
            Err(_) => Self::from_file(Path::new("/etc/localtime")),
        }
    }

    /// `TZ`'s value: empty is UTC; otherwise a zone file by name or path, else a POSIX rule.
    fn named(tz: &str) -> Option<Self> {
        let name = tz.strip_prefix(':').unwrap_or(tz);
        if name.is_empty() {
            return Some(Self::fixed(UtcOffset::UTC));
        }
        let file = if name.starts_with('/') {
            Self::from_file(Path::new(name))
        } else if name.split('/').any(|part| part == "..") {
            None
        } else {
            let dir = std::env::var("TZDIR").unwrap_or_else(|_| "/usr/share/zoneinfo".to_owned());
            Self::from_file(&Path::new(&dir).join(name))
        };
        file.or_else(|| Self::posix(name))
    }

    fn from_file(path: &Path) -> Option<Self> {
        Self::from_tzif(&std::fs::read(path).ok()?)
    }

    /// One offset, always.
    pub fn fixed(offset: UtcOffset) -> Self {
        Self {
            transitions: Vec::new(),
            initial: offset.whole_seconds(),
            rule: None,
        }
    }

    /// A POSIX `TZ` rule: `std offset [dst [offset] [,start[/time],end[/time]]]`.
    pub fn posix(rule: &str) -> Option<Self> {
        let rule = Rule::parse(rule)?;
        Some(Self {
            transitions: Vec::new(),
            initial: rule.std,
            rule: Some(rule),
        })
    }

    /// A TZif file (RFC 8536), version 1 or later; from version 2 on, its 64-bit data and its
    /// footer rule.
    pub fn from_tzif(bytes: &[u8]) -> Option<Self> {
        let v1 = Header::read(bytes)?;
        let data = bytes.get(HEADER_LEN..)?;
        if v1.version < b'2' {
            let (transitions, initial, _) = v1.block(data, 4)?;
            return Some(Self {
                transitions,
                initial,
                rule: None,
            });
        }
        let rest = data.get(v1.block_len(4)..)?;
        let v2 = Header::read(rest)?;
        let data = rest.get(HEADER_LEN..)?;
        let (transitions, initial, used) = v2.block(data, 8)?;
        // The footer: "\n" rule "\n"; an empty rule says nothing about later times.
        let footer = data.get(used..).and_then(|f| f.strip_prefix(b"\n"));
        let rule = footer
            .and_then(|f| f.split(|&b| b == b'\n').next())
            .and_then(|f| std::str::from_utf8(f).ok())
            .filter(|f| !f.is_empty())
            .and_then(Rule::parse);
        Some(Self {
            transitions,
            initial,
            rule,
        })
    }

    /// The zone's offset at an instant.
    pub fn offset_at(&self, at: OffsetDateTime) -> UtcOffset {
        let t = at.unix_timestamp();
        let passed = self.transitions.partition_point(|(start, _)| *start <= t);
        let seconds = match &self.rule {
            Some(rule) if passed == self.transitions.len() => rule.offset_at(t),
            _ if passed == 0 => self.initial,
            _ => self.transitions[passed - 1].1,
        };
        UtcOffset::from_whole_seconds(seconds).unwrap_or(UtcOffset::UTC)
    }
}

/// "14:32" in the given offset (the local zone's at that instant); without one, in UTC and
/// saying so: "14:32 UTC".
pub fn wall_clock(at: OffsetDateTime, offset: Option<UtcOffset>) -> String {
    let local = at.to_offset(offset.unwrap_or(UtcOffset::UTC));
    let hm = format!("{:02}:{:02}", local.hour(), local.minute());
    if offset.is_some() {
        hm
    } else {
        format!("{hm} UTC")
    }
}

const HEADER_LEN: usize = 44;

/// A TZif header's version and counts.
struct Header {
    version: u8,
    isutcnt: usize,
    isstdcnt: usize,
    leapcnt: usize,
    timecnt: usize,
    typecnt: usize,
    charcnt: usize,
}

impl Header {
    fn read(b: &[u8]) -> Option<Self> {
        if b.get(..4)? != b"TZif" {
            return None;
        }
        let count = |i: usize| -> Option<usize> {
            let at = 20 + 4 * i;
            let raw: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
            usize::try_from(u32::from_be_bytes(raw)).ok()
        };
        Some(Self {
            version: *b.get(4)?,
            isutcnt: count(0)?,
            isstdcnt: count(1)?,
            leapcnt: count(2)?,
            timecnt: count(3)?,
            typecnt: count(4)?,
            charcnt: count(5)?,
        })
    }

    /// The data block's length, with `time_size`-byte times (4 in version 1, 8 after).
    fn block_len(&self, time_size: usize) -> usize {
        self.timecnt * (time_size + 1)
            + self.typecnt * 6
            + self.charcnt
            + self.leapcnt * (time_size + 4)
            + self.isstdcnt
            + self.isutcnt
    }

    /// The transitions with the offset each starts, the offset before them (type 0) and the
    /// block's length.
    #[allow(clippy::type_complexity)]
    fn block(&self, data: &[u8], time_size: usize) -> Option<(Vec<(i64, i32)>, i32, usize)> {
        if self.typecnt == 0 {
            return None;
        }
        let times = data.get(..self.timecnt * time_size)?;
        let indices = data.get(times.len()..times.len() + self.timecnt)?;
        let types_at = times.len() + indices.len();
        let types = data.get(types_at..types_at + self.typecnt * 6)?;
        let offset_of = |t: usize| -> Option<i32> {
            let raw: [u8; 4] = types.get(t * 6..t * 6 + 4)?.try_into().ok()?;
            Some(i32::from_be_bytes(raw))
        };
        let mut transitions = Vec::with_capacity(self.timecnt);
        for (i, &index) in indices.iter().enumerate() {
            let raw = &times[i * time_size..(i + 1) * time_size];
            let at = if time_size == 8 {
                i64::from_be_bytes(raw.try_into().ok()?)
            } else {
                i64::from(i32::from_be_bytes(raw.try_into().ok()?))
            };
            transitions.push((at, offset_of(usize::from(index))?));
        }
        Some((transitions, offset_of(0)?, self.block_len(time_size)))
    }
}

/// A POSIX `TZ` rule: standard offset, and daylight saving time with when it starts and ends.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    /// Seconds east of UTC.
    std: i32,
    dst: Option<Dst>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Dst {
    offset: i32,
    /// The day, and the local (standard) time of day in seconds, it starts…
    start: (Day, i32),
    /// …and the day and local (daylight) time it ends.
    end: (Day, i32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Day {
    /// `Jn`: 1–365, February 29 never counted.
    Julian(u16),
    /// `n`: 0–365, February 29 counted in leap years.
    Ordinal(u16),
    /// `Mm.w.d`: weekday `d` (0 = Sunday) of week `w` (1–5, 5 = the last) of month `m`.
    MonthWeek { month: Month, week: u8, weekday: u8 },
}

impl Rule {
    fn parse(s: &str) -> Option<Self> {
        let mut p = Parser(s.as_bytes());
        p.name()?;
        // POSIX offsets are hours west of Greenwich.
        let std = -p.time()?;
        if p.0.is_empty() {
            return Some(Self { std, dst: None });
        }
        p.name()?;
        let offset = match p.0.first() {
            Some(b) if b.is_ascii_digit() || *b == b'+' || *b == b'-' => -p.time()?,
            _ => std + 3600,
        };
        let (start, end) = if p.eat(b',') {
            let start = p.day_time()?;
            if !p.eat(b',') {
                return None;
            }
            (start, p.day_time()?)
        } else {
            // The US rule, POSIX's default when only the names are given.
            let m = |month, week| Day::MonthWeek {
                month,
                week,
                weekday: 0,
            };
            ((m(Month::March, 2), 7200), (m(Month::November, 1), 7200))
        };
        p.0.is_empty().then_some(Self {
            std,
            dst: Some(Dst { offset, start, end }),
        })
    }

    fn offset_at(&self, t: i64) -> i32 {
        let Some(dst) = &self.dst else {
            return self.std;
        };
        let year = OffsetDateTime::from_unix_timestamp(t).map_or(1970, |d| d.year());
        let (Some(start), Some(end)) = (dst.start.0.date(year), dst.end.0.date(year)) else {
            return self.std;
        };
        let at = |date: Date, time: i32, offset: i32| {
            date.midnight().assume_utc().unix_timestamp() + i64::from(time) - i64::from(offset)
        };
        let start = at(start, dst.start.1, self.std);
        let end = at(end, dst.end.1, dst.offset);
        // Southern zones keep daylight time across the new year.
        let daylight = if start < end {
            (start..end).contains(&t)
        } else {
            !(end..start).contains(&t)
        };
        if daylight {
            dst.offset
        } else {
            self.std
        }
    }
}

impl Day {
    fn date(self, year: i32) -> Option<Date> {
        match self {
            Self::Julian(n) => {
                let leap_day = time::util::is_leap_year(year) && n >= 60;
                Date::from_ordinal_date(year, n + u16::from(leap_day)).ok()
            }
            Self::Ordinal(n) => Date::from_ordinal_date(year, n + 1).ok(),
            Self::MonthWeek {
                month,
                week,
                weekday,
            } => {
                let first = Date::from_calendar_date(year, month, 1).ok()?;
                let first_weekday = first.weekday().number_days_from_sunday();
                let mut day = 1 + (weekday + 7 - first_weekday) % 7 + (week - 1) * 7;
                while day > month.length(year) {
                    day -= 7;
                }
                first.replace_day(day).ok()
            }
        }
    }
}

/// Reads a POSIX `TZ` rule from the front.
struct Parser<'a>(&'a [u8]);

impl Parser<'_> {
    fn eat(&mut self, b: u8) -> bool {
        match self.0.split_first() {
            Some((first, rest)) if *first == b => {
                self.0 = rest;
                true
            }
            _ => false,
        }
    }

    /// A zone abbreviation: letters ("CET"), or anything in angle brackets ("<+03>").
    fn name(&mut self) -> Option<()> {
        let len = if self.eat(b'<') {
            let len = self.0.iter().position(|&b| b == b'>')?;
            self.0 = &self.0[len + 1..];
            len
        } else {
            let len = self
                .0
                .iter()
                .take_while(|b| b.is_ascii_alphabetic())
                .count();
            self.0 = &self.0[len..];
            len
        };
        (len > 0).then_some(())
    }

    fn number(&mut self) -> Option<u32> {
        let len = self.0.iter().take_while(|b| b.is_ascii_digit()).count();
        if len == 0 || len > 3 {
            return None;
        }
        let n = std::str::from_utf8(&self.0[..len]).ok()?.parse().ok()?;
        self.0 = &self.0[len..];
        Some(n)
    }

    /// `[+-]hh[:mm[:ss]]` in seconds.
    fn time(&mut self) -> Option<i32> {
        let sign = if self.eat(b'-') {
            -1
        } else {
            self.eat(b'+');
            1
        };
        let mut seconds = self.number()? * 3600;
        for unit in [60, 1] {
            if !self.eat(b':') {
                break;
            }
            seconds += self.number()? * unit;
        }
        Some(sign * i32::try_from(seconds).ok()?)
    }

    /// A rule's `date[/time]`, the time 02:00 unless given.
    fn day_time(&mut self) -> Option<(Day, i32)> {
        let day = if self.eat(b'J') {
            Day::Julian(
                u16::try_from(self.number()?)
                    .ok()
                    .filter(|n| (1..=365).contains(n))?,
            )
        } else if self.eat(b'M') {
            let month = Month::try_from(u8::try_from(self.number()?).ok()?).ok()?;
            let mut next = || -> Option<u8> {
                if !self.eat(b'.') {
                    return None;
                }
                u8::try_from(self.number()?).ok()
            };
            let week = next().filter(|w| (1..=5).contains(w))?;
            let weekday = next().filter(|d| *d <= 6)?;
            Day::MonthWeek {
                month,
                week,
                weekday,
            }
        } else {
            Day::Ordinal(u16::try_from(self.number()?).ok().filter(|n| *n <= 365)?)
        };
        let time = if self.eat(b'/') { self.time()? } else { 7200 };
        Some((day, time))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn offset_hours(zone: &LocalZone, at: OffsetDateTime) -> f64 {
        f64::from(zone.offset_at(at).whole_seconds()) / 3600.0
    }

    #[test]
    fn the_clock_reads_hours_and_minutes_in_the_offset_or_says_utc() {
        let at = datetime!(2025-07-01 12:32:59 UTC);
        assert_eq!(
            wall_clock(at, Some(UtcOffset::from_hms(2, 0, 0).unwrap())),
            "14:32"
        );
        assert_eq!(wall_clock(at, Some(UtcOffset::UTC)), "12:32");
        assert_eq!(wall_clock(at, None), "12:32 UTC");
        assert_eq!(
            wall_clock(
                datetime!(2025-07-01 23:05 UTC),
                Some(UtcOffset::from_hms(5, 30, 0).unwrap())
            ),
            "04:35",
            "past midnight"
        );
    }

    #[test]
    fn a_posix_rule_switches_to_daylight_time_on_its_days() {
        let berlin = LocalZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").unwrap();
        assert_eq!(offset_hours(&berlin, datetime!(2025-01-15 12:00 UTC)), 1.0);
        assert_eq!(offset_hours(&berlin, datetime!(2025-07-15 12:00 UTC)), 2.0);
        // 2025-03-30 02:00 CET is 01:00 UTC; 2025-10-26 03:00 CEST is 01:00 UTC.
        assert_eq!(offset_hours(&berlin, datetime!(2025-03-30 00:59 UTC)), 1.0);
        assert_eq!(offset_hours(&berlin, datetime!(2025-03-30 01:00 UTC)), 2.0);
        assert_eq!(offset_hours(&berlin, datetime!(2025-10-26 00:59 UTC)), 2.0);
        assert_eq!(offset_hours(&berlin, datetime!(2025-10-26 01:00 UTC)), 1.0);

        let sydney = LocalZone::posix("AEST-10AEDT,M10.1.0,M4.1.0/3").unwrap();
        assert_eq!(offset_hours(&sydney, datetime!(2025-01-01 00:00 UTC)), 11.0);
        assert_eq!(offset_hours(&sydney, datetime!(2025-07-01 00:00 UTC)), 10.0);

        let new_york = LocalZone::posix("EST5EDT").unwrap();
        assert_eq!(
            offset_hours(&new_york, datetime!(2025-07-01 12:00 UTC)),
            -4.0
        );
        assert_eq!(
            offset_hours(&new_york, datetime!(2025-12-01 12:00 UTC)),
            -5.0
        );

        let india = LocalZone::posix("IST-5:30").unwrap();
        assert_eq!(offset_hours(&india, datetime!(2025-07-01 12:00 UTC)), 5.5);
        let quoted = LocalZone::posix("<+03>-3").unwrap();
        assert_eq!(offset_hours(&quoted, datetime!(2025-07-01 12:00 UTC)), 3.0);

        for bad in [
            "",
            "CET",
            "CET-1CEST,M3.5.0",
            "CET-1CEST,M13.5.0,M10.5.0",
            "1CET",
        ] {
            assert_eq!(LocalZone::posix(bad), None, "{bad:?}");
        }
    }

    /// A version 2 TZif file: one transition to +02:00 at 2000-01-01, and a footer.
    fn tzif(footer: &str) -> Vec<u8> {
        let header = |timecnt: u32, typecnt: u32, charcnt: u32| {
            let mut h = b"TZif2".to_vec();
            h.extend([0; 15]);
            for n in [0, 0, 0, timecnt, typecnt, charcnt] {
                h.extend(u32::to_be_bytes(n));
            }
            h
        };
        let ttinfo = |utoff: i32, idx: u8| {
            let mut t = i32::to_be_bytes(utoff).to_vec();
            t.extend([0, idx]);
            t
        };
        let types = [ttinfo(3600, 0), ttinfo(7200, 2)].concat();
        let chars = b"A\0B\0";
        let mut f = header(1, 2, 4);
        f.extend(i32::to_be_bytes(946_684_800));
        f.push(1);
        f.extend(&types);
        f.extend(chars);
        f.extend(header(1, 2, 4));
        f.extend(i64::to_be_bytes(946_684_800));
        f.push(1);
        f.extend(&types);
        f.extend(chars);
        f.extend(format!("\n{footer}\n").bytes());
        f
    }

    #[test]
    fn a_tzif_file_gives_its_transitions_then_its_footer_rule() {
        let zone = LocalZone::from_tzif(&tzif("<+03>-3")).unwrap();
        assert_eq!(offset_hours(&zone, datetime!(1999-12-31 23:59 UTC)), 1.0);
        assert_eq!(
            offset_hours(&zone, datetime!(2000-01-01 00:00 UTC)),
            3.0,
            "the footer rules after the last transition"
        );
        let no_footer = LocalZone::from_tzif(&tzif("")).unwrap();
        assert_eq!(
            offset_hours(&no_footer, datetime!(2020-01-01 00:00 UTC)),
            2.0
        );
        assert_eq!(LocalZone::from_tzif(b"TZif2 too short"), None);
        assert_eq!(
            LocalZone::from_tzif(b"not a zone file at all, not at all!!!!!!!!!!!"),
            None
        );
    }

    #[test]
    fn the_systems_zone_files_read_where_there_are_any() {
        let Ok(bytes) = std::fs::read("/usr/share/zoneinfo/Europe/Berlin") else {
            eprintln!("no zoneinfo here; skipped");
            return;
        };
        let berlin = LocalZone::from_tzif(&bytes).unwrap();
        assert_eq!(offset_hours(&berlin, datetime!(1990-07-01 12:00 UTC)), 2.0);
        assert_eq!(offset_hours(&berlin, datetime!(2025-01-15 12:00 UTC)), 1.0);
        assert_eq!(offset_hours(&berlin, datetime!(2060-07-01 12:00 UTC)), 2.0);
        assert_eq!(LocalZone::named(":Europe/Berlin"), Some(berlin));
        assert_eq!(
            LocalZone::named("Nowhere/Atlantis-2"),
            LocalZone::posix("Nowhere/Atlantis-2")
        );
        assert_eq!(LocalZone::named(""), Some(LocalZone::fixed(UtcOffset::UTC)));
    }
}

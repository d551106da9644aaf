//! Cron schedules of cron services: 5-field cron (UTC), the `@hourly`-style nicknames and
//! `@every <duration>`. Parsed in one place so the control plane refuses exactly what the agent
//! could not run.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};

/// A parsed schedule. Serializes as the text it was parsed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    text: String,
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Every { seconds: u64 },
    Cron(Box<CronFields>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct CronFields {
    minute: u64, // bit set of allowed values
    hour: u64,
    dom: u64,
    month: u64,
    dow: u64,
    dom_star: bool,
    dow_star: bool,
}

/// The shortest interval `@every` accepts.
pub const MIN_EVERY_SECONDS: u64 = 1;
/// The longest interval `@every` accepts: 3650 days (about ten years; `@yearly` is the usual
/// way to run once a year). Keeps run times far from overflowing.
pub const MAX_EVERY_SECONDS: u64 = 3650 * 86_400;

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

impl Schedule {
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let fail = |why: String| format!("schedule {text:?} is invalid: {why}");
        if let Some(rest) = t.strip_prefix("@every") {
            let rest = rest.trim();
            if rest.is_empty() {
                return Err(fail(
                    "write a duration after @every, such as @every 2m".into(),
                ));
            }
            let seconds = parse_duration(rest).map_err(fail)?;
            if seconds < MIN_EVERY_SECONDS {
                return Err(fail(format!(
                    "the interval must be at least {MIN_EVERY_SECONDS}s"
                )));
            }
            if seconds > MAX_EVERY_SECONDS {
                return Err(fail(format!(
                    "the interval must be at most {}d",
                    MAX_EVERY_SECONDS / 86_400
                )));
            }
            return Ok(Self {
                text: t.to_string(),
                kind: Kind::Every { seconds },
            });
        }
        let expanded = match t.to_ascii_lowercase().as_str() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            other if other.starts_with('@') => {
                return Err(fail(
                    "unknown nickname; use @yearly, @monthly, @weekly, @daily, @hourly or @every <duration>".into(),
                ));
            }
            _ => t,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(fail(format!(
                "it has {} fields; cron needs 5: minute hour day-of-month month day-of-week",
                fields.len()
            )));
        }
        let minute = parse_field(fields[0], "minute", 0, 59, &[]).map_err(fail)?;
        let hour = parse_field(fields[1], "hour", 0, 23, &[]).map_err(fail)?;
        let dom = parse_field(fields[2], "day-of-month", 1, 31, &[]).map_err(fail)?;
        let month = parse_field(fields[3], "month", 1, 12, &MONTHS).map_err(fail)?;
        let mut dow = parse_field(fields[4], "day-of-week", 0, 7, &DAYS).map_err(fail)?;
        if dow & (1 << 7) != 0 {
            dow = (dow | 1) & !(1 << 7); // 7 is Sunday too
        }
        let cron = CronFields {
            minute,
            hour,
            dom,
            month,
            dow,
            dom_star: fields[2] == "*",
            dow_star: fields[4] == "*",
        };
        Ok(Self {
            text: t.to_string(),
            kind: Kind::Cron(Box::new(cron)),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The first time strictly after `after_ms` (Unix milliseconds, UTC) at which the schedule
    /// fires. For `@every`, runs are aligned to multiples of the interval since the epoch.
    /// `None` when it never fires (`0 0 30 2 *`) or not before the end of `i64` time.
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        match &self.kind {
            Kind::Every { seconds } => {
                let step = i64::try_from(*seconds).ok()?.checked_mul(1000)?;
                (after_ms.div_euclid(step) + 1).checked_mul(step)
            }
            Kind::Cron(c) => c.next_after(after_ms),
        }
    }
}

impl CronFields {
    fn day_matches(&self, days: i64) -> bool {
        let (_, m, d) = civil_from_days(days);
        if self.month & (1 << m) == 0 {
            return false;
        }
        let wd = (days + 4).rem_euclid(7) as u32; // 1970-01-01 was a Thursday
        let dom_ok = self.dom & (1 << d) != 0;
        let dow_ok = self.dow & (1 << wd) != 0;
        // Classic cron: when both fields are restricted, either one matching is enough.
        match (self.dom_star, self.dow_star) {
            (true, true) => true,
            (true, false) => dow_ok,
            (false, true) => dom_ok,
            (false, false) => dom_ok || dow_ok,
        }
    }

    fn next_after(&self, after_ms: i64) -> Option<i64> {
        let start_min = after_ms.div_euclid(60_000) + 1;
        let first_day = start_min.div_euclid(1440);
        // A valid pattern fires at least once in any 8 years (Feb 29 on a given weekday included).
        for day in first_day..first_day + 366 * 8 {
            if !self.day_matches(day) {
                continue;
            }
            let from = if day == first_day {
                start_min.rem_euclid(1440)
            } else {
                0
            };
            for minute_of_day in from..1440 {
                let (h, m) = (minute_of_day / 60, minute_of_day % 60);
                if self.hour & (1 << h) != 0 && self.minute & (1 << m) != 0 {
                    return day
                        .checked_mul(1440)?
                        .checked_add(minute_of_day)?
                        .checked_mul(60_000);
                }
            }
        }
        None
    }
}

fn parse_value(s: &str, what: &str, lo: u32, hi: u32, names: &[&str]) -> Result<u32, String> {
    if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
        // Names count from the field's lowest value: months from 1, days from 0.
        return Ok(i as u32 + lo);
    }
    let v: u32 = s
        .parse()
        .map_err(|_| format!("{what} {s:?} is not a number"))?;
    if v < lo || v > hi {
        return Err(format!("{what} {v} is out of range {lo}-{hi}"));
    }
    Ok(v)
}

fn parse_field(field: &str, what: &str, lo: u32, hi: u32, names: &[&str]) -> Result<u64, String> {
    let mut bits = 0u64;
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s
                    .parse()
                    .map_err(|_| format!("{what} step {s:?} is not a number"))?;
                if step == 0 {
                    return Err(format!("{what} step must be at least 1"));
                }
                (r, step)
            }
            None => (part, 1),
        };
        let (a, b) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (
                parse_value(a, what, lo, hi, names)?,
                parse_value(b, what, lo, hi, names)?,
            );
            if a > b {
                return Err(format!("{what} range {range} goes backwards"));
            }
            (a, b)
        } else {
            let a = parse_value(range, what, lo, hi, names)?;
            // "5/15" means from 5 to the end, every 15.
            (a, if step > 1 { hi } else { a })
        };
        // `b` is at most 59 and `step` at least 1, so this runs at most 60 times; a step
        // beyond the range (`0/4000000000`) ends it instead of overflowing.
        let mut v = a;
        while v <= b {
            bits |= 1 << v;
            match v.checked_add(step) {
                Some(next) => v = next,
                None => break,
            }
        }
    }
    Ok(bits)
}

/// Parses durations such as `30s`, `2m`, `1h30m`, `1d`.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let mut total = 0u64;
    let mut digits = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => {
                return Err(format!(
                    "duration {s:?} has an unknown unit {c:?}; use s, m, h or d"
                ));
            }
        };
        if digits.is_empty() {
            return Err(format!("duration {s:?} needs a number before {c:?}"));
        }
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("duration {s:?} is too large"))?;
        total = total.saturating_add(n.saturating_mul(unit));
        digits.clear();
    }
    if !digits.is_empty() {
        return Err(format!(
            "duration {s:?} needs a unit after {digits}; use s, m, h or d (such as 2m)"
        ));
    }
    if total == 0 {
        return Err(format!("duration {s:?} is zero"));
    }
    Ok(total)
}

/// (year, month 1-12, day 1-31) of a count of days since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for Schedule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for Schedule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Schedule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Schedule::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
#[path = "schedule/tests.rs"]
mod tests;

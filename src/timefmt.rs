//! Timestamps on the wire: ISO-8601 in UTC with milliseconds, as JavaScript's
//! `Date.prototype.toISOString` writes them.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serializer;

pub fn iso8601<S: Serializer>(time: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&time.to_rfc3339_opts(SecondsFormat::Millis, true))
}

//! How timestamps are written in bootrig's JSON files: RFC 3339 in UTC with
//! millisecond precision (`2026-11-24T10:15:00.123Z`). Any RFC 3339 offset
//! is accepted when reading.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serializer};

/// Formats `t` the way bootrig writes it.
pub fn format(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub(crate) fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(t))
}

pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    let s = String::deserialize(d)?;
    DateTime::parse_from_rfc3339(&s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            serde::de::Error::custom(format_args!("invalid RFC 3339 timestamp {s:?}: {e}"))
        })
}

/// The same for `Option<DateTime<Utc>>` (`null` when absent).
pub(crate) mod option {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(
        t: &Option<DateTime<Utc>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => super::serialize(t, s),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<DateTime<Utc>>, D::Error> {
        #[derive(Deserialize)]
        struct W(#[serde(deserialize_with = "super::deserialize")] DateTime<Utc>);
        Ok(Option::<W>::deserialize(d)?.map(|W(t)| t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn millisecond_utc_and_offsets_accepted() {
        let t = Utc.with_ymd_and_hms(2026, 11, 24, 10, 15, 0).unwrap()
            + chrono::Duration::microseconds(123_456);
        assert_eq!(format(&t), "2026-11-24T10:15:00.123Z");
        #[derive(Deserialize)]
        struct T(#[serde(deserialize_with = "deserialize")] DateTime<Utc>);
        let T(p) = serde_json::from_str("\"2026-11-24T11:15:00+01:00\"").unwrap();
        assert_eq!(p, Utc.with_ymd_and_hms(2026, 11, 24, 10, 15, 0).unwrap());
        assert!(serde_json::from_str::<T>("\"yesterday\"").is_err());
    }
}

//! The server's clock: the timestamps it stores and the day its rules are judged on.

use chrono::NaiveDate;

/// Now, as stored in the database: RFC 3339 in UTC with milliseconds.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Today in UTC: grants end, notifications fall due and approvals are dated by it.
pub fn today() -> NaiveDate {
    chrono::Utc::now().date_naive()
}

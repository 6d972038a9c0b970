//! The JSON of the controller's HTTP API, as the controller writes it and its clients read it.
//!
//! The progress route is wire-compatible with a cloud federation service's "Querying Federation
//! Enabling Progress" API, the list route with its "ListFederationStatus" API. Absent values are
//! omitted, never null. The OpenAPI document's schemas are derived from these types.
//!
//! Readers are lenient where the writer is strict: a part of a job the controller always writes
//! (its metadata, its status) may be missing when a client reads it, and means "nothing said".

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use jiff::Timestamp;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// How often a live stream says it is alive (a `: heartbeat` comment) when nothing changes.
pub const HEARTBEAT: Duration = Duration::from_secs(15);

/// `kind` of every job the progress route answers.
pub const JOB_KIND: &str = "Job";
/// `apiVersion` of every job the progress route answers.
pub const JOB_API_VERSION: &str = "v3";
/// `spec.type` of the job that enables federation.
pub const ENABLE_JOB: &str = "CreateFederationContainer";
/// `spec.type` of the teardown shown while an enablement is being deleted.
pub const TEARDOWN_JOB: &str = "DeleteFederation";

/// `2023-07-31 13:16:20.715779 +0000 UTC`: UTC, the fraction without trailing zeros, as Go's
/// `time.Time.String()` prints it.
pub fn go_time(ts: Timestamp) -> String {
    let mut text = String::with_capacity(40);
    push_go_time(&mut text, ts);
    text
}

/// Appends [`go_time`]'s text to `out`. Every progress answer writes one, so the digits are
/// written by hand: `strftime` took about 3,600 instructions a call (callgrind).
pub fn push_go_time(out: &mut String, ts: Timestamp) {
    let nanos = ts.subsec_nanosecond();
    let civil = jiff::tz::Offset::UTC.to_datetime(ts);
    let year = civil.year();
    if nanos < 0 || !(0..=9999).contains(&year) {
        // Before 1970 or outside four-digit years: rare enough for the general path.
        out.push_str(&go_time_by_strftime(ts));
        return;
    }
    push_digits(out, year.unsigned_abs().into(), 4);
    let fields = [
        ('-', civil.month()),
        ('-', civil.day()),
        (' ', civil.hour()),
        (':', civil.minute()),
        (':', civil.second()),
    ];
    for (separator, value) in fields {
        out.push(separator);
        push_digits(out, value.unsigned_abs().into(), 2);
    }
    if nanos != 0 {
        let (mut fraction, mut width) = (nanos.unsigned_abs(), 9);
        while fraction % 10 == 0 {
            fraction /= 10;
            width -= 1;
        }
        out.push('.');
        push_digits(out, fraction, width);
    }
    out.push_str(" +0000 UTC");
}

/// `value`'s last `width` decimal digits, zero-padded.
fn push_digits(out: &mut String, value: u32, width: u32) {
    for place in (0..width).rev() {
        out.push(char::from(b'0' + (value / 10_u32.pow(place) % 10) as u8));
    }
}

fn go_time_by_strftime(ts: Timestamp) -> String {
    let base = ts.strftime("%Y-%m-%d %H:%M:%S").to_string();
    let nanos = ts.subsec_nanosecond();
    if nanos == 0 {
        format!("{base} +0000 UTC")
    } else {
        let fraction = format!("{nanos:09}");
        format!("{base}.{} +0000 UTC", fraction.trim_end_matches('0'))
    }
}

/// Parses `2023-07-31 13:16:20.715779 +0000 UTC`, as [`go_time`] writes it.
pub fn parse_go_time(text: &str) -> Result<Timestamp, jiff::Error> {
    let without_zone_name = text.strip_suffix(" UTC").unwrap_or(text);
    jiff::fmt::strtime::parse("%Y-%m-%d %H:%M:%S%.f %z", without_zone_name)?.to_timestamp()
}

/// `2026-01-15T08:00:00Z`: RFC 3339, UTC, whole seconds.
pub fn rfc3339_seconds(ts: Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A time of the progress route, written as Go writes times ([`go_time`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GoTime(pub Timestamp);

impl From<Timestamp> for GoTime {
    fn from(ts: Timestamp) -> Self {
        GoTime(ts)
    }
}

impl fmt::Display for GoTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&go_time(self.0))
    }
}

impl Serialize for GoTime {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for GoTime {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_go_time(&text)
            .map(GoTime)
            .map_err(|e| serde::de::Error::custom(format!("time {text:?}: {e}")))
    }
}

impl JsonSchema for GoTime {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "GoTime".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "UTC, `YYYY-MM-DD HH:MM:SS[.fraction] +0000 UTC`",
            "example": "2023-07-31 13:16:20.715779 +0000 UTC",
        })
    }
}

/// A job of the progress route: the enablement's job (or its teardown), or one of its subjobs.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "Job")]
pub struct ProgressJob {
    /// Always `Job` ([`JOB_KIND`]).
    #[serde(default)]
    #[schemars(extend("enum" = [JOB_KIND]))]
    pub kind: String,
    /// Always `v3` ([`JOB_API_VERSION`]).
    #[serde(default)]
    #[schemars(extend("enum" = [JOB_API_VERSION]))]
    pub api_version: String,
    #[serde(default)]
    pub metadata: JobMetadata,
    pub spec: JobSpec,
    #[serde(default)]
    pub status: JobStatus,
}

#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[schemars(inline)]
pub struct JobMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<GoTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_timestamp: Option<GoTime>,
    #[serde(default)]
    pub annotations: Annotations,
}

#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[schemars(inline)]
pub struct Annotations {
    /// The server's clock when it answered (running durations count up to it): UTC,
    /// `YYYY-MM-DD HH:MM:SS[.fraction] +0000 UTC`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_timestamp: Option<GoTime>,
}

#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
#[schemars(inline)]
pub struct JobSpec {
    /// `CreateFederationContainer` or `DeleteFederation`; a subjob's type.
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(
        rename = "federationUID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub federation_uid: Option<String>,
    #[serde(
        rename = "resourceID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub resource_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extend_param: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_jobs: Option<Vec<ProgressJob>>,
}

#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[schemars(inline)]
pub struct JobStatus {
    /// A job's phase; a subjob's is one of the first four.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["Pending", "Running", "Success", "Failed", "Deleting"]))]
    pub phase: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<GoTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<GoTime>,
}

/// The data of a `deleted` event of the progress route's stream: the enablement is gone.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct DeletedJob {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
}

/// One item of the federation status list.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FederationItem {
    pub platform_uuid: String,
    pub platform_name: String,
    pub product_type: String,
    #[schemars(extend("enum" = ["federated", "federating", "failed", "unfederating"]))]
    pub status: String,
    #[schemars(extend("enum" = ["healthy", "unhealthy", "unknown"]))]
    pub health_status: String,
    pub federation: Federation,
}

#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
#[schemars(inline)]
pub struct Federation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sso_config_uuid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sso_config_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sso_client_uuid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
    pub platform_uuid: String,
    pub product_type: String,
    /// JSON-encoded extendParam of CreateNetworkResource (`"{}"` when none).
    pub metadata: String,
    #[schemars(extend("enum" = ["success", "running", "pending", "failed", "deleting"]))]
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub federated_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub updated_at: Option<String>,
}

/// The page the list route answers.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
pub struct FederationList {
    pub items: Vec<FederationItem>,
    pub total: usize,
    pub limit: usize,
    pub offset: usize,
}

/// Every error of the federation routes: `{"error_code": "FED.…", "error_msg": "…"}`.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[schemars(rename = "Error")]
pub struct ErrorBody {
    pub error_code: String,
    pub error_msg: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(text: &str) -> Timestamp {
        text.parse().expect("timestamp")
    }

    #[test]
    fn go_time_drops_trailing_zeros_of_the_fraction() {
        assert_eq!(
            go_time(ts("2023-07-31T13:16:20.715779Z")),
            "2023-07-31 13:16:20.715779 +0000 UTC"
        );
        assert_eq!(
            go_time(ts("2026-01-15T08:00:00Z")),
            "2026-01-15 08:00:00 +0000 UTC"
        );
    }

    #[test]
    fn go_time_writes_what_strftime_writes_across_the_whole_range() {
        let (min, max) = (Timestamp::MIN.as_second(), Timestamp::MAX.as_second());
        // A fixed walk (no randomness) whose odd steps vary every field and the fraction's
        // width, then the edges of the range and 1970.
        let mut second = min;
        let mut nanos: i64 = 0;
        let mut checked = 0;
        while second < max {
            nanos = (nanos * 31 + 7_919) % 1_000_000_000;
            for nanos in [0, nanos, nanos - nanos % 1000, nanos - nanos % 1_000_000] {
                let Ok(ts) = Timestamp::new(second, nanos as i32) else {
                    continue;
                };
                assert_eq!(go_time(ts), go_time_by_strftime(ts), "{ts:?}");
                checked += 1;
            }
            second = second.saturating_add(30_011_749);
        }
        for ts in [Timestamp::MIN, Timestamp::MAX, Timestamp::UNIX_EPOCH] {
            assert_eq!(go_time(ts), go_time_by_strftime(ts), "{ts:?}");
        }
        assert!(checked > 50_000, "{checked}");
    }

    #[test]
    fn go_times_parse_with_and_without_a_fraction() {
        assert_eq!(
            parse_go_time("2023-07-31 13:16:20.715779 +0000 UTC").ok(),
            Some(ts("2023-07-31T13:16:20.715779Z"))
        );
        assert_eq!(
            parse_go_time("2026-01-15 08:00:00 +0000 UTC").ok(),
            Some(ts("2026-01-15T08:00:00Z"))
        );
        assert!(parse_go_time("2026-01-15T08:00:00Z").is_err());
    }

    #[test]
    fn go_time_is_the_inverse_of_what_the_progress_route_writes() {
        for text in [
            "2026-01-15T08:00:00Z",
            "2026-01-15T08:00:00.1Z",
            "2023-07-31T13:16:20.715779Z",
        ] {
            assert_eq!(parse_go_time(&go_time(ts(text))).ok(), Some(ts(text)));
            let json = serde_json::to_string(&GoTime(ts(text))).expect("json");
            let back: GoTime = serde_json::from_str(&json).expect("parses");
            assert_eq!(back.0, ts(text));
        }
    }

    #[test]
    fn a_time_in_another_format_is_an_error_that_quotes_it() {
        let error = serde_json::from_str::<GoTime>(r#""2026-01-15T08:00:00Z""#)
            .expect_err("RFC 3339 is not Go's format");
        assert!(
            error.to_string().contains("2026-01-15T08:00:00Z"),
            "{error}"
        );
    }
}

//! A Prometheus range-query answer (`/api/v1/query_range`) read in one pass into per-volume
//! samples.
//!
//! The answer is deserialised straight into the [`Series`] the heat is computed from: of each
//! series' labels only [`PV_LABEL`] is kept, every other label is skipped without being stored,
//! and each point's quoted value is parsed as it is read. prometheus-http-query's response
//! types buffer the whole answer as a generic tree first (they are internally tagged enums with
//! `#[serde(flatten)]`): fetching and parsing one 100,000-series answer peaked at 590 MiB of
//! heap with them and at 124 MiB with this reader (docs/benchmarks.md, `--bench heat_query`).
//! [`parse_reader`] reads the answer from a stream as it arrives, so that the body is not held
//! whole either; [`parse`] reads a body already in memory (e.g. a short error answer).

use std::collections::HashMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};

use crate::heat::Sample;

/// Label carrying the PV name in the heat query's answer.
pub const PV_LABEL: &str = "pv_name";

/// Per-PV IOPS samples from one answer.
pub type Series = HashMap<String, Vec<Sample>>;

/// What is wrong with an answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AnswerError {
    /// Prometheus reported an error (`"status": "error"`), e.g. a PromQL syntax error or a
    /// query timeout.
    #[error("Prometheus reported {kind}: {message}")]
    Prometheus {
        /// `errorType`, e.g. `bad_data`, `timeout`, `execution`.
        kind: String,
        /// `error`, Prometheus's message.
        message: String,
    },
    /// The query's result is not a range vector (the expression yields a scalar or a string).
    #[error("Prometheus answered a range query with a {0} result, not a matrix")]
    NotAMatrix(String),
    /// The body is not a Prometheus API answer (not JSON, a field missing or of the wrong
    /// type, a value that is not a number).
    #[error("unreadable Prometheus answer: {0}")]
    Malformed(String),
    /// Reading the answer failed part-way (connection reset, client timeout): a transport
    /// failure, not a bad answer.
    #[error("reading the answer: {0}")]
    Read(String),
}

/// The series of a range-query answer, keyed by [`PV_LABEL`]. Series without that label are
/// left out (they cannot be matched to a volume); a later series for the same PV replaces an
/// earlier one.
pub fn parse(body: &[u8]) -> Result<Series, AnswerError> {
    serde_json::from_slice(body)
        .map_err(|e| AnswerError::Malformed(e.to_string()))
        .and_then(Answer::into_series)
}

/// [`parse`], reading the answer from `reader` as it arrives (buffered here), so that the
/// body is never held whole: at 100,000 volumes it is ~90 MB, more than the series built from
/// it. A failure of the reader itself is [`AnswerError::Read`].
pub fn parse_reader(reader: impl std::io::Read) -> Result<Series, AnswerError> {
    let reader = std::io::BufReader::with_capacity(64 << 10, reader);
    serde_json::from_reader(reader)
        .map_err(|e| match e.classify() {
            serde_json::error::Category::Io => AnswerError::Read(e.to_string()),
            _ => AnswerError::Malformed(e.to_string()),
        })
        .and_then(Answer::into_series)
}

impl Answer {
    /// The series of a successful matrix answer, or what is wrong with it.
    fn into_series(self) -> Result<Series, AnswerError> {
        if self.status != "success" {
            return Err(AnswerError::Prometheus {
                kind: self.error_type.unwrap_or_else(|| self.status.clone()),
                message: self.error.unwrap_or_default(),
            });
        }
        let Some(data) = self.data else {
            return Err(AnswerError::Malformed(
                "no `data` in a successful answer".into(),
            ));
        };
        match data {
            Data::Matrix(series) => Ok(series),
            Data::Other(kind) => Err(AnswerError::NotAMatrix(kind)),
        }
    }
}

/// The envelope every Prometheus API answer shares.
#[derive(Deserialize)]
struct Answer {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

/// `data` of a query answer: the series of a matrix, or the kind of any other result.
enum Data {
    Matrix(Series),
    Other(String),
}

impl<'de> Deserialize<'de> for Data {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(DataVisitor)
    }
}

struct DataVisitor;

impl<'de> Visitor<'de> for DataVisitor {
    type Value = Data;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object with `resultType` and `result`")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Data, A::Error> {
        let mut kind: Option<String> = None;
        let mut series = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "resultType" => kind = Some(map.next_value()?),
                // Prometheus writes `resultType` first; the result is read by its kind.
                "result" => match kind.as_deref() {
                    Some("matrix") => {
                        let vectors = map.next_value::<Vec<Vector>>()?;
                        series = Some(
                            vectors
                                .into_iter()
                                .filter_map(Vector::into_pv_samples)
                                .collect(),
                        );
                    }
                    Some(_) => {
                        map.next_value::<IgnoredAny>()?;
                    }
                    None => return Err(de::Error::custom("`result` before `resultType`")),
                },
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let kind = kind.ok_or_else(|| de::Error::missing_field("resultType"))?;
        match (kind.as_str(), series) {
            ("matrix", Some(series)) => Ok(Data::Matrix(series)),
            ("matrix", None) => Err(de::Error::missing_field("result")),
            _ => Ok(Data::Other(kind)),
        }
    }
}

/// One series of a matrix.
#[derive(Deserialize)]
struct Vector {
    #[serde(default)]
    metric: Metric,
    /// `[unix_seconds, "value"]` pairs.
    #[serde(default)]
    values: Vec<(f64, Quoted)>,
}

impl Vector {
    /// Its PV and samples; `None` without [`PV_LABEL`]. (The points become samples in place:
    /// both are 16 bytes, so the vector's buffer is reused.)
    fn into_pv_samples(self) -> Option<(String, Vec<Sample>)> {
        let pv = self.metric.pv?;
        let samples = self
            .values
            .into_iter()
            .map(|(at, Quoted(iops))| Sample {
                at: at as i64,
                iops,
            })
            .collect();
        Some((pv, samples))
    }
}

/// The one label kept; serde skips the others without storing them.
#[derive(Default, Deserialize)]
struct Metric {
    #[serde(rename = "pv_name")]
    pv: Option<String>,
}

/// A sample value: Prometheus quotes it (`"12.5"`, `"NaN"`, `"+Inf"`).
struct Quoted(f64);

impl<'de> Deserialize<'de> for Quoted {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Quoted;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number in a JSON string")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Quoted, E> {
                s.parse().map(Quoted).map_err(|_| {
                    E::invalid_value(de::Unexpected::Str(s), &"a number in a JSON string")
                })
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(result: &str) -> String {
        format!(r#"{{"status":"success","data":{{"resultType":"matrix","result":{result}}}}}"#)
    }

    #[test]
    fn keeps_every_pv_series_and_only_the_pv_label() {
        let body = matrix(
            r#"[{"metric":{"node":"n1","pv_name":"pv-a","op":"read"},"values":[[1700000000,"1.5"],[1700000060.25,"NaN"]]},
                {"metric":{"pv_name":"pv-b"},"values":[[1700000000,"+Inf"]]},
                {"metric":{"job":"no-pv"},"values":[[1700000000,"9"]]}]"#,
        );
        let series = parse(body.as_bytes()).expect("a matrix");
        assert_eq!(series.len(), 2, "the series without pv_name is left out");
        let a = &series["pv-a"];
        assert_eq!(a.len(), 2);
        assert_eq!((a[0].at, a[0].iops), (1_700_000_000, 1.5));
        assert_eq!(a[1].at, 1_700_000_060);
        assert!(a[1].iops.is_nan());
        assert_eq!(series["pv-b"][0].iops, f64::INFINITY);
    }

    #[test]
    fn the_reader_and_the_slice_give_the_same_answers_and_errors() {
        let bodies = [
            matrix(
                r#"[{"metric":{"pv_name":"pv-a"},"values":[[1,"1.5"],[61,"2"]]},{"metric":{},"values":[]}]"#,
            ),
            matrix("[]"),
            r#"{"status":"error","errorType":"timeout","error":"query timed out"}"#.into(),
            r#"{"status":"success","data":{"resultType":"scalar","result":[1,"3"]}}"#.into(),
            matrix(r#"[{"metric":{"pv_name":"a"},"values":[[1,"fast"]]}]"#),
            "<html>".into(),
        ];
        for body in bodies {
            assert_eq!(
                parse_reader(body.as_bytes()),
                parse(body.as_bytes()),
                "{body}"
            );
        }
    }

    /// A reader that hands out `data`, then fails as a reset connection does.
    struct CutShort<'a>(&'a [u8]);

    impl std::io::Read for CutShort<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0.is_empty() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "connection reset by peer",
                ));
            }
            let n = buf.len().min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn an_answer_cut_short_is_a_read_failure_not_a_bad_answer() {
        let body = matrix(r#"[{"metric":{"pv_name":"pv-a"},"values":[[1,"1.5"]]}]"#);
        let err = parse_reader(CutShort(&body.as_bytes()[..40])).expect_err("cut short");
        let AnswerError::Read(m) = &err else {
            panic!("{err:?}");
        };
        assert!(m.contains("connection reset by peer"), "{m}");
        assert!(err.to_string().starts_with("reading the answer: "), "{err}");
    }

    #[test]
    fn an_empty_matrix_is_no_series_not_an_error() {
        assert!(parse(matrix("[]").as_bytes()).expect("matrix").is_empty());
    }

    #[test]
    fn a_prometheus_error_names_its_type_and_message() {
        let body = br#"{"status":"error","errorType":"bad_data","error":"parse error at char 5"}"#;
        let err = parse(body).expect_err("an error answer");
        assert_eq!(
            err,
            AnswerError::Prometheus {
                kind: "bad_data".into(),
                message: "parse error at char 5".into()
            }
        );
        assert_eq!(
            err.to_string(),
            "Prometheus reported bad_data: parse error at char 5"
        );
    }

    #[test]
    fn a_scalar_or_vector_result_is_not_a_matrix() {
        let scalar =
            br#"{"status":"success","data":{"resultType":"scalar","result":[1700000000,"3"]}}"#;
        assert_eq!(
            parse(scalar).expect_err("scalar"),
            AnswerError::NotAMatrix("scalar".into())
        );
        let vector = br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"pv_name":"a"},"value":[1,"2"]}]}}"#;
        assert_eq!(
            parse(vector).expect_err("vector"),
            AnswerError::NotAMatrix("vector".into())
        );
    }

    #[test]
    fn bad_bodies_are_malformed_with_the_reason() {
        let word = matrix(r#"[{"metric":{"pv_name":"a"},"values":[[1,"fast"]]}]"#);
        let unquoted = matrix(r#"[{"metric":{"pv_name":"a"},"values":[[1,2]]}]"#);
        let cases: [(&[u8], &str); 5] = [
            (b"<html>502 Bad Gateway</html>", "expected value"),
            (br#"{"status":"success"}"#, "no `data`"),
            (
                word.as_bytes(),
                "invalid value: string \"fast\", expected a number in a JSON string",
            ),
            (
                unquoted.as_bytes(),
                "invalid type: integer `2`, expected a number in a JSON string",
            ),
            (
                br#"{"status":"success","data":{"result":[],"resultType":"matrix"}}"#,
                "`result` before `resultType`",
            ),
        ];
        for (body, reason) in cases {
            let err = parse(body).expect_err("malformed");
            let AnswerError::Malformed(m) = &err else {
                panic!("{err:?} for {}", String::from_utf8_lossy(body));
            };
            assert!(m.contains(reason), "{m:?} should name {reason:?}");
        }
    }
}

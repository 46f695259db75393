//! InfluxDB line protocol: encoding [`MetricSample`]s and a strict parser for files of it.
//!
//! Data model: one measurement per metric, tag `server`, field `value`, millisecond timestamps:
//! `cpu_usage,server=web-server-01 value=45.2 1705314465000`. The parser also accepts other
//! shapes (telegraf's `cpu,host=a usage_user=1.5`): a field `value` becomes the metric named
//! after the measurement, any other numeric field becomes `{measurement}_{field}`; the server is
//! the `server` tag, else `host`, else `instance`.

use crate::MetricSample;

/// A line that is not valid line protocol; names where and what.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{origin}:{line}: {field}: {message}")]
pub struct LineProtocolError {
    /// File name or other origin.
    pub origin: String,
    /// 1-based line number.
    pub line: usize,
    /// The part of the line at fault (`measurement`, `tag set`, `field "x"`, `timestamp`).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// Counts of what parsing skipped, reported to the user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParseReport {
    /// Lines read (including comments and blanks).
    pub lines: usize,
    /// Samples produced.
    pub samples: usize,
    /// String and boolean fields skipped (not metrics).
    pub non_numeric_fields: usize,
    /// Lines without a server/host/instance tag (server set to `unknown`).
    pub missing_server_tag: usize,
}

fn escape(text: &str, specials: &[char]) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if specials.contains(&c) || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Encode one sample with a millisecond timestamp (write with `precision=ms`).
pub fn encode(s: &MetricSample) -> String {
    let mut line = String::with_capacity(64);
    encode_into(s, &mut line);
    line
}

/// Append one encoded sample (no newline) to `out`.
pub fn encode_into(s: &MetricSample, out: &mut String) {
    use std::fmt::Write;
    out.push_str(&escape(&s.metric, &[',', ' ']));
    out.push_str(",server=");
    out.push_str(&escape(&s.server, &[',', '=', ' ']));
    // `{:?}` prints the shortest representation that round-trips exactly.
    let _ = write!(out, " value={:?} {}", s.value, s.timestamp_ms);
}

/// Append one anomaly score point (no newline): measurement `aiops_anomaly_score`, tags
/// `server`, `metric` (the row's top contributor) and `model`, field `value`, ms timestamp.
pub fn encode_score_into(timestamp_ms: i64, server: &str, metric: &str, model: &str, score: f64, out: &mut String) {
    use std::fmt::Write;
    let tag = |v: &str| escape(v, &[',', '=', ' ']);
    let _ = write!(
        out,
        "aiops_anomaly_score,server={},metric={},model={} value={score:?} {timestamp_ms}",
        tag(server),
        tag(metric),
        tag(model)
    );
}

/// Append a forecast (one line per step, each ending in a newline): measurement
/// `aiops_forecast`, tags `server`, `metric` and `model`, fields `point`, `lower_80`,
/// `upper_80`, `lower_95`, `upper_95`, at the time each step forecasts (`from_ms` + k × `step_ms`,
/// k = 1…). A later forecast of the same time overwrites the earlier one (InfluxDB keeps one
/// point per series and time), so a chart shows the newest forecast of every future row.
pub fn encode_forecast_into(
    from_ms: i64,
    step_ms: i64,
    key: (&str, &str, &str),
    forecast: &crate::models::forecasters::Forecast,
    out: &mut String,
) {
    use std::fmt::Write;
    let tag = |v: &str| escape(v, &[',', '=', ' ']);
    let (server, metric, model) = (tag(key.0), tag(key.1), tag(key.2));
    for (k, p) in forecast.point.iter().enumerate() {
        let (l80, u80, l95, u95) = (forecast.lower_80[k], forecast.upper_80[k], forecast.lower_95[k], forecast.upper_95[k]);
        if ![*p, l80, u80, l95, u95].iter().all(|v| v.is_finite()) {
            continue;
        }
        let t = from_ms + (k as i64 + 1) * step_ms;
        let _ = writeln!(
            out,
            "aiops_forecast,server={server},metric={metric},model={model} point={p:?},lower_80={l80:?},upper_80={u80:?},lower_95={l95:?},upper_95={u95:?} {t}"
        );
    }
}

/// Split `text` at unescaped `sep` outside double quotes.
fn split_unescaped(text: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut escaped, mut quoted) = (0, false, false);
    for (i, c) in text.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            parts.push(&text[start..i]);
            start = i + c.len_utf8();
        }
    }
    parts.push(&text[start..]);
    parts
}

fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Parse a whole document of line protocol. `precision_ms_per_unit`: timestamps are multiplied
/// by it and divided by `divisor` to get milliseconds (ns input: `parse(.., 1, 1_000_000)`).
pub fn parse(text: &str, origin: &str, divisor: i64) -> Result<(Vec<MetricSample>, ParseReport), LineProtocolError> {
    let mut out = Vec::new();
    let mut report = ParseReport::default();
    for (i, raw) in text.lines().enumerate() {
        report.lines += 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        parse_line(line, origin, i + 1, divisor, &mut out, &mut report)?;
    }
    report.samples = out.len();
    Ok((out, report))
}

fn parse_line(
    line: &str,
    origin: &str,
    lineno: usize,
    divisor: i64,
    out: &mut Vec<MetricSample>,
    report: &mut ParseReport,
) -> Result<(), LineProtocolError> {
    let err =
        |field: &str, message: String| LineProtocolError { origin: origin.to_string(), line: lineno, field: field.to_string(), message };
    let parts = split_unescaped(line, ' ');
    let parts: Vec<&str> = parts.into_iter().filter(|p| !p.is_empty()).collect();
    if parts.len() < 2 || parts.len() > 3 {
        return Err(err("line", format!("expected `measurement[,tags] fields [timestamp]`, got {} parts", parts.len())));
    }
    let mut key = split_unescaped(parts[0], ',').into_iter();
    let measurement = unescape(key.next().unwrap_or(""));
    if measurement.is_empty() {
        return Err(err("measurement", "empty measurement name".into()));
    }
    let mut server = None;
    for tag in key {
        let kv = split_unescaped(tag, '=');
        if kv.len() != 2 || kv[0].is_empty() || kv[1].is_empty() {
            return Err(err("tag set", format!("tag `{tag}` is not key=value")));
        }
        let k = unescape(kv[0]);
        if k == "server" || (server.is_none() && (k == "host" || k == "instance")) {
            server = Some(unescape(kv[1]));
        }
    }
    let timestamp_ms = match parts.get(2) {
        Some(ts) => ts.parse::<i64>().map_err(|e| err("timestamp", format!("`{ts}`: {e}")))? / divisor,
        None => crate::now_ms(),
    };
    let server = server.unwrap_or_else(|| {
        report.missing_server_tag += 1;
        "unknown".to_string()
    });
    for field in split_unescaped(parts[1], ',') {
        let kv = split_unescaped(field, '=');
        if kv.len() != 2 || kv[0].is_empty() {
            return Err(err("field set", format!("field `{field}` is not key=value")));
        }
        let name = unescape(kv[0]);
        let raw = kv[1];
        let value = if raw.starts_with('"') {
            if raw.len() < 2 || !raw.ends_with('"') {
                return Err(err(&format!("field \"{name}\""), format!("unterminated string {raw}")));
            }
            report.non_numeric_fields += 1;
            continue;
        } else if matches!(raw, "t" | "T" | "true" | "True" | "TRUE" | "f" | "F" | "false" | "False" | "FALSE") {
            report.non_numeric_fields += 1;
            continue;
        } else if let Some(int) = raw.strip_suffix('i').or_else(|| raw.strip_suffix('u')) {
            int.parse::<i64>().map_err(|e| err(&format!("field \"{name}\""), format!("`{raw}`: {e}")))? as f64
        } else {
            let v = raw.parse::<f64>().map_err(|e| err(&format!("field \"{name}\""), format!("`{raw}`: {e}")))?;
            if !v.is_finite() {
                return Err(err(&format!("field \"{name}\""), format!("`{raw}` is not a finite number")));
            }
            v
        };
        let metric = if name == "value" { measurement.clone() } else { format!("{measurement}_{name}") };
        out.push(MetricSample { timestamp_ms, server: server.clone(), metric, value });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn telegraf_style_and_escapes() {
        let text = "# comment\ncpu,host=a\\ b usage_user=1.5,usage_idle=98i,state=\"ok\" 1000000000\n";
        let (s, r) = parse(text, "x.lp", 1_000_000).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0], MetricSample::new(1000, "a b", "cpu_usage_user", 1.5));
        assert_eq!(s[1].value, 98.0);
        assert_eq!(r.non_numeric_fields, 1);
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let e = parse("cpu,server=a value=1 1\ncpu,server=a value=abc 2\n", "data.lp", 1).unwrap_err();
        assert_eq!((e.origin.as_str(), e.line), ("data.lp", 2));
        assert!(e.to_string().contains("field \"value\"") && e.to_string().contains("abc"), "{e}");
        let e = parse("cpu,server value=1 1", "d.lp", 1).unwrap_err();
        assert_eq!(e.field, "tag set");
        let e = parse("cpu,server=a value=1 12x", "d.lp", 1).unwrap_err();
        assert_eq!(e.field, "timestamp");
        let e = parse("cpu,server=a value=NaN 1", "d.lp", 1).unwrap_err();
        assert!(e.message.contains("finite"));
    }

    #[test]
    fn forecasts_are_one_line_per_step_at_the_times_forecast() {
        let f = crate::models::forecasters::Forecast {
            point: vec![1.0, 2.0, f64::NAN],
            lower_80: vec![0.5, 1.5, 0.0],
            upper_80: vec![1.5, 2.5, 0.0],
            lower_95: vec![0.0, 1.0, 0.0],
            upper_95: vec![2.0, 3.0, 0.0],
        };
        let mut out = String::new();
        encode_forecast_into(1_000, 60_000, ("web 1", "cpu_usage", "auto"), &f, &mut out);
        assert_eq!(
            out,
            "aiops_forecast,server=web\\ 1,metric=cpu_usage,model=auto point=1.0,lower_80=0.5,upper_80=1.5,lower_95=0.0,upper_95=2.0 61000\n\
             aiops_forecast,server=web\\ 1,metric=cpu_usage,model=auto point=2.0,lower_80=1.5,upper_80=2.5,lower_95=1.0,upper_95=3.0 121000\n",
            "a step that is not finite is left out"
        );
    }

    proptest! {
        #[test]
        fn encode_then_parse_round_trips(
            metric in "[a-z][a-z_ ,=]{0,12}",
            server in "[a-zA-Z0-9][a-zA-Z0-9 ,=\\-]{0,12}",
            value in -1e12f64..1e12,
            ts in 0i64..4_000_000_000_000,
        ) {
            let s = MetricSample::new(ts, server.trim_end(), metric.trim_end(), value);
            prop_assume!(!s.server.is_empty() && !s.metric.is_empty());
            let (back, _) = parse(&encode(&s), "p", 1).unwrap();
            prop_assert_eq!(back, vec![s]);
        }
    }
}

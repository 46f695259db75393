//! The one CSV reader of file inputs, shared by the runtime's replay source and every workbench
//! loader (metric files, NAB results, SMD matrices): the `csv` crate (RFC 4180 quoting, CRLF),
//! a UTF-8 byte-order mark dropped, blank lines skipped, cells trimmed. Every error names the
//! file, the 1-based line and the field.
//!
//! ```
//! # let dir = std::env::temp_dir().join(format!("csv-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir).unwrap();
//! # let path = dir.join("cpu.csv");
//! std::fs::write(&path, "\u{feff}timestamp,\"cpu, %\"\n2024-01-15T10:00:00+02:00,45.5\n").unwrap();
//! let mut csv = runtime::csv_file::CsvReader::open(&path, true).unwrap();
//! let cpu = csv.column("cpu, %").unwrap();
//! let row = csv.next_row().unwrap().unwrap();
//! assert_eq!((row.line, row.timestamp_ms(0).unwrap(), row.number(cpu).unwrap()), (2, 1_705_305_600_000, Some(45.5)));
//! ```

use std::path::Path;
use std::sync::Arc;

/// A malformed file, line or cell.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.display())]
pub struct CsvError {
    /// The file.
    pub path: String,
    /// 1-based line (0: the whole file).
    pub line: usize,
    /// Column name, or `header` / `line` / `file`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl CsvError {
    fn display(&self) -> String {
        match self.line {
            0 => format!("{}: {}", self.path, self.message),
            n => format!("{}:{n}: field `{}`: {}", self.path, self.field, self.message),
        }
    }
}

/// Parse a numeric cell: empty, `NaN` and `null` are `None`; anything else must be a number.
pub fn parse_number(cell: &str) -> Result<Option<f64>, String> {
    let c = cell.trim();
    if c.is_empty() || c.eq_ignore_ascii_case("nan") || c.eq_ignore_ascii_case("null") {
        return Ok(None);
    }
    c.parse::<f64>().map(Some).map_err(|_| format!("`{c}` is not a number"))
}

/// A CSV file read row by row.
pub struct CsvReader {
    path: String,
    header: Vec<String>,
    bytes: Arc<[u8]>,
    inner: csv::Reader<std::io::Cursor<Arc<[u8]>>>,
    record: csv::StringRecord,
    /// Width every row must have: the header's, or (headerless) the first row's.
    width: Option<usize>,
    /// Line numbers: the csv crate's skip blank lines uncounted, so lines are counted here,
    /// `line` being the 1-based line at byte `counted_to`.
    counted_to: usize,
    line: usize,
}

impl std::fmt::Debug for CsvReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsvReader").field("path", &self.path).field("header", &self.header).finish_non_exhaustive()
    }
}

impl CsvReader {
    /// Open `path`; with `has_header` its first non-blank line names the columns (an empty file
    /// is then an error).
    pub fn open(path: &Path, has_header: bool) -> Result<Self, CsvError> {
        let name = path.display().to_string();
        let mut bytes =
            std::fs::read(path).map_err(|e| CsvError { path: name.clone(), line: 0, field: "file".into(), message: e.to_string() })?;
        if bytes.starts_with(b"\xef\xbb\xbf") {
            bytes.drain(..3);
        }
        let bytes: Arc<[u8]> = bytes.into();
        let inner = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(std::io::Cursor::new(Arc::clone(&bytes)));
        let mut reader =
            Self { path: name, header: Vec::new(), bytes, inner, record: csv::StringRecord::new(), width: None, counted_to: 0, line: 1 };
        if has_header {
            if !reader.read_record()? {
                return Err(reader.error(1, "header", "empty file"));
            }
            let header: Vec<String> = reader.record.iter().map(str::to_string).collect();
            reader.width = Some(header.len());
            reader.header = header;
        }
        Ok(reader)
    }

    /// The file, as given.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Column names (empty for a headerless file).
    pub fn header(&self) -> &[String] {
        &self.header
    }

    /// Index of a named column, or an error naming the columns there are.
    pub fn column(&self, name: &str) -> Result<usize, CsvError> {
        self.find(name).ok_or_else(|| self.error(1, "header", format!("no `{name}` column in {:?}", self.header)))
    }

    /// Index of a named column, if present.
    pub fn find(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }

    /// An error at `line` of this file.
    pub fn error(&self, line: usize, field: &str, message: impl Into<String>) -> CsvError {
        CsvError { path: self.path.clone(), line, field: field.into(), message: message.into() }
    }

    /// The next non-blank row, checked to have as many fields as the header (or, headerless,
    /// as the first row); `None` at the end of the file.
    pub fn next_row(&mut self) -> Result<Option<CsvRow<'_>>, CsvError> {
        if !self.read_record()? {
            return Ok(None);
        }
        let line = self.line();
        let n = self.record.len();
        match self.width {
            Some(w) if w != n => {
                let what = if self.header.is_empty() { "earlier rows have" } else { "header has" };
                return Err(self.error(line, "line", format!("{n} fields, {what} {w}")));
            }
            None => self.width = Some(n),
            Some(_) => {}
        }
        Ok(Some(CsvRow { line, record: &self.record, reader: self }))
    }

    /// Read the next record that is not blank (a lone empty field).
    fn read_record(&mut self) -> Result<bool, CsvError> {
        loop {
            match self.inner.read_record(&mut self.record) {
                Ok(false) => return Ok(false),
                Ok(true) if self.record.len() == 1 && self.record[0].is_empty() => {}
                Ok(true) => return Ok(true),
                Err(e) => {
                    let line = e.position().map_or(self.line, |p| self.line_at(p.byte() as usize));
                    return Err(self.error(line, "line", e.to_string()));
                }
            }
        }
    }

    /// The line of the current record: its position, past the blank lines before it.
    fn line(&mut self) -> usize {
        let at = self.record.position().map_or(self.counted_to, |p| p.byte() as usize);
        let start = at + self.bytes.get(at..).unwrap_or_default().iter().take_while(|b| matches!(b, b'\r' | b'\n')).count();
        self.line_at(start)
    }

    /// 1-based line of byte `at` (not before the last one asked for).
    fn line_at(&mut self, at: usize) -> usize {
        let at = at.clamp(self.counted_to, self.bytes.len());
        self.line += self.bytes[self.counted_to..at].iter().filter(|b| **b == b'\n').count();
        self.counted_to = at;
        self.line
    }
}

/// One row of a [`CsvReader`].
#[derive(Debug)]
pub struct CsvRow<'a> {
    /// Its 1-based line in the file.
    pub line: usize,
    record: &'a csv::StringRecord,
    reader: &'a CsvReader,
}

impl CsvRow<'_> {
    /// Number of fields.
    pub fn len(&self) -> usize {
        self.record.len()
    }

    /// No fields at all.
    pub fn is_empty(&self) -> bool {
        self.record.is_empty()
    }

    /// The trimmed cell of column `i` (empty past the end).
    pub fn cell(&self, i: usize) -> &str {
        self.record.get(i).unwrap_or("")
    }

    /// The name errors give column `i`: its header, or `m01`, `m02` … in a headerless file.
    pub fn field_name(&self, i: usize) -> String {
        self.reader.header.get(i).cloned().unwrap_or_else(|| format!("m{:02}", i + 1))
    }

    /// An error at this row.
    pub fn error(&self, field: &str, message: impl Into<String>) -> CsvError {
        self.reader.error(self.line, field, message)
    }

    /// Column `i` as a number ([`parse_number`]: empty / `NaN` / `null` are `None`).
    pub fn number(&self, i: usize) -> Result<Option<f64>, CsvError> {
        parse_number(self.cell(i)).map_err(|m| self.error(&self.field_name(i), m))
    }

    /// Column `i` as a timestamp ([`crate::parse_timestamp_ms`]), in epoch milliseconds.
    pub fn timestamp_ms(&self, i: usize) -> Result<i64, CsvError> {
        let cell = self.cell(i);
        crate::parse_timestamp_ms(cell).ok_or_else(|| self.error(&self.field_name(i), format!("`{cell}` is not a timestamp")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn file(name: &str, body: &[u8]) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("runtime-csv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, body).unwrap();
        path
    }

    type Rows = Vec<(usize, Vec<String>)>;

    fn rows(path: &Path, header: bool) -> Result<(Vec<String>, Rows), CsvError> {
        let mut r = CsvReader::open(path, header)?;
        let header = r.header().to_vec();
        let mut out = Vec::new();
        while let Some(row) = r.next_row()? {
            out.push((row.line, (0..row.len()).map(|i| row.cell(i).to_string()).collect()));
        }
        Ok((header, out))
    }

    #[test]
    fn quotes_bom_crlf_and_blank_lines() {
        let p = file("q.csv", b"\xef\xbb\xbftimestamp ,\"a,b\"\r\n\r\n2024-01-01 00:00:00,\"x \"\"y\"\"\"\r\n\n 1704067260 ,2\n");
        let (header, rows) = rows(&p, true).unwrap();
        assert_eq!(header, ["timestamp", "a,b"]);
        assert_eq!(rows, [(3, vec!["2024-01-01 00:00:00".to_string(), "x \"y\"".into()]), (5, vec!["1704067260".into(), "2".into()])]);
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let p = file("bad.csv", b"timestamp,value\n2024-01-01 00:00:00,1\n\n2024-01-01 00:01:00,x1\n2024-01-01 00:02:00,1,2\n");
        let mut r = CsvReader::open(&p, true).unwrap();
        assert_eq!(r.column("nope").unwrap_err().message, "no `nope` column in [\"timestamp\", \"value\"]");
        let v = r.column("value").unwrap();
        assert_eq!(r.next_row().unwrap().unwrap().number(v), Ok(Some(1.0)));
        let e = r.next_row().unwrap().unwrap().number(v).unwrap_err();
        assert!(e.to_string().ends_with("bad.csv:4: field `value`: `x1` is not a number"), "{e}");
        let e = r.next_row().unwrap_err();
        assert_eq!((e.line, e.field.as_str(), e.message.as_str()), (5, "line", "3 fields, header has 2"));
        let e = CsvReader::open(&file("empty.csv", b"\n\n"), true).unwrap_err();
        assert_eq!((e.line, e.field.as_str(), e.message.as_str()), (1, "header", "empty file"));
        let e = CsvReader::open(&p.with_file_name("missing.csv"), true).unwrap_err();
        assert!(e.path.ends_with("missing.csv") && e.field == "file", "{e}");
        assert!(e.to_string().ends_with("missing.csv: No such file or directory (os error 2)"), "{e}");
        let p = file("ts.csv", b"timestamp\n2024-02-31 00:00:00\n");
        let mut r = CsvReader::open(&p, true).unwrap();
        let e = r.next_row().unwrap().unwrap().timestamp_ms(0).unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (2, "timestamp"), "an impossible date is an error");
    }

    #[test]
    fn headerless_rows_keep_the_first_width() {
        let p = file("m.txt", b"1,2,3\n4,5,6\n7,8\n");
        let mut r = CsvReader::open(&p, false).unwrap();
        assert!(r.header().is_empty());
        let row = r.next_row().unwrap().unwrap();
        assert_eq!((row.field_name(2), row.number(2)), ("m03".to_string(), Ok(Some(3.0))));
        r.next_row().unwrap().unwrap();
        assert_eq!(r.next_row().unwrap_err().message, "2 fields, earlier rows have 3");
    }

    #[test]
    fn invalid_utf8_is_an_error_naming_the_line() {
        let p = file("u.csv", b"timestamp,v\n2024-01-01 00:00:00,1\n2024-01-01 00:01:00,\xff\xfe\n");
        let e = rows(&p, true).unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (3, "line"), "{e}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn arbitrary_bytes_give_rows_or_an_error(bytes in proptest::collection::vec(any::<u8>(), 0..256), header in any::<bool>()) {
            let p = file("fuzz.csv", &bytes);
            if let Ok(mut r) = CsvReader::open(&p, header) {
                while let Ok(Some(row)) = r.next_row() {
                    let _ = (row.number(0), row.timestamp_ms(row.len().saturating_sub(1)));
                }
            }
        }
    }
}

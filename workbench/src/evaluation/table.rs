//! A results table rendered once, for the terminal (aligned columns) and for Markdown (the
//! reports, and their HTML): the evaluation's NAB, SMD and simulator tables and the sweep
//! leaderboard all go through it.
//!
//! ```
//! use workbench::evaluation::table::TextTable;
//! let mut t = TextTable::new(&["machine", "ROC-AUC"]);
//! t.row(vec!["machine-1-1".into(), "0.903".into()]);
//! assert_eq!(t.render(true), "| machine | ROC-AUC |\n|---|---:|\n| machine-1-1 | 0.903 |\n");
//! assert_eq!(t.render(false), "machine      ROC-AUC\nmachine-1-1    0.903\n");
//! ```

/// Rows under a header; columns of figures are right-aligned, the others (names, text)
/// left-aligned.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TextTable {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl TextTable {
    /// An empty table with these column names.
    pub fn new(header: &[&str]) -> Self {
        Self { header: header.iter().map(|h| h.to_string()).collect(), rows: Vec::new() }
    }

    /// Append a row (missing cells are blank, extra ones dropped).
    pub fn row(&mut self, mut cells: Vec<String>) {
        cells.resize(self.header.len(), String::new());
        self.rows.push(cells);
    }

    /// Whether every cell of column `i` is a number (or blank).
    fn numeric(&self, i: usize) -> bool {
        !self.rows.is_empty() && self.rows.iter().all(|r| r[i].is_empty() || r[i].parse::<f64>().is_ok())
    }

    /// Markdown (`markdown`) or aligned plain text, one line per row, each ending in a newline.
    pub fn render(&self, markdown: bool) -> String {
        let mut out = String::new();
        let numeric: Vec<bool> = (0..self.header.len()).map(|i| self.numeric(i)).collect();
        if markdown {
            out.push_str(&format!("| {} |\n|", self.header.join(" | ")));
            for &n in &numeric {
                out.push_str(if n { "---:|" } else { "---|" });
            }
            out.push('\n');
            for r in &self.rows {
                out.push_str(&format!("| {} |\n", r.join(" | ")));
            }
            return out;
        }
        let width = |i: usize| {
            std::iter::once(&self.header[i]).chain(self.rows.iter().map(|r| &r[i])).map(|c| c.chars().count()).max().unwrap_or(0)
        };
        let widths: Vec<usize> = (0..self.header.len()).map(width).collect();
        for r in std::iter::once(&self.header).chain(&self.rows) {
            let cells: Vec<String> = r
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(i, (c, &w))| if numeric[i] { format!("{c:>w$}") } else { format!("{c:<w$}") })
                .collect();
            out.push_str(cells.join("  ").trim_end());
            out.push('\n');
        }
        out
    }
}

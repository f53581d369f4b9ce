//! Results: a printed table per scenario, and the same data as JSON (`--json FILE`), together
//! with the machine and its load before and after, so a figure is never read without them.

use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::error::{BenchError, BenchResult};
use crate::machine::{LoadAvg, Machine};

/// A table: headers and rows of cells, printed aligned (markdown-compatible).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Table {
    pub title: String,
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(title: impl Into<String>, headers: &[&str]) -> Table {
        Table {
            title: title.into(),
            headers: headers.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as markdown with padded columns.
    pub fn render(&self) -> String {
        let cols = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(cols) {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let padded: Vec<String> = (0..cols)
                .map(|i| {
                    let cell = cells.get(i).map_or("", String::as_str);
                    format!("{cell:>w$}", w = widths[i])
                })
                .collect();
            format!("| {} |", padded.join(" | "))
        };
        let mut out = String::new();
        if !self.title.is_empty() {
            out.push_str(&format!("### {}\n\n", self.title));
        }
        out.push_str(&line(&self.headers));
        out.push('\n');
        let rule: Vec<String> = widths
            .iter()
            .map(|w| format!("{}:", "-".repeat(w + 1)))
            .collect();
        out.push_str(&format!("|{}|\n", rule.join("|")));
        for row in &self.rows {
            out.push_str(&line(row));
            out.push('\n');
        }
        out
    }
}

/// One scenario's results as written to JSON.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub scenario: String,
    pub started_at: String,
    pub machine: Machine,
    pub load_before: LoadAvg,
    pub load_after: LoadAvg,
    pub params: Value,
    pub tables: Vec<Table>,
    /// Raw per-configuration results.
    pub results: Vec<Value>,
    pub notes: Vec<String>,
}

impl Report {
    pub fn begin(scenario: &str, params: Value) -> Report {
        Report {
            scenario: scenario.to_owned(),
            started_at: chrono::Utc::now().to_rfc3339(),
            machine: Machine::read(),
            load_before: LoadAvg::read(),
            load_after: LoadAvg::default(),
            params,
            tables: Vec::new(),
            results: Vec::new(),
            notes: Vec::new(),
        }
    }

    pub fn result(&mut self, value: impl Serialize) {
        self.results
            .push(serde_json::to_value(value).unwrap_or(Value::Null));
    }

    pub fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// Records the end load, prints the tables and notes, and writes JSON if asked.
    pub fn finish(mut self, json: Option<&Path>) -> BenchResult<Report> {
        self.load_after = LoadAvg::read();
        println!(
            "\n## {} ({} cores, {}; load before {} / after {})\n",
            self.scenario, self.machine.nproc, self.machine.cpu, self.load_before, self.load_after
        );
        for table in &self.tables {
            println!("{}", table.render());
        }
        for note in &self.notes {
            println!("- {note}");
        }
        if let Some(path) = json {
            let text = serde_json::to_string_pretty(&self)?;
            std::fs::write(path, text)
                .map_err(BenchError::io(format!("writing {}", path.display())))?;
            println!("\nwrote {}", path.display());
        }
        Ok(self)
    }
}

/// Formats milliseconds with two decimals.
pub fn ms(v: f64) -> String {
    format!("{v:.2}")
}

/// Formats a count with thousands separators.
pub fn count(v: f64) -> String {
    let n = v.round() as i64;
    let digits = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_render_as_markdown() {
        let mut t = Table::new("", &["a", "bb"]);
        t.row(vec!["1".into(), "22".into()]);
        let text = t.render();
        assert!(text.starts_with("| a | bb |\n|--:|---:|\n|"), "{text}");
        assert_eq!(count(1234567.0), "1,234,567");
        assert_eq!(count(12.0), "12");
    }
}

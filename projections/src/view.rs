//! A topic's current rows, kept as serialised JSON text ordered by key.
//!
//! Rows are stored as the text already written into diff frames: that is what snapshots need,
//! and it is several times smaller than a `serde_json::Value` tree.

use std::collections::BTreeMap;

/// The rows of one topic: row key -> row JSON text.
#[derive(Debug, Default)]
pub(crate) struct TopicView {
    rows: BTreeMap<Box<str>, Box<str>>,
    /// Sum of the row texts' lengths (sizes snapshot buffers exactly).
    rows_bytes: usize,
}

impl TopicView {
    /// Insert or replace a row.
    pub(crate) fn upsert(&mut self, key: &str, row: String) {
        let row = row.into_boxed_str();
        self.rows_bytes += row.len();
        if let Some(slot) = self.rows.get_mut(key) {
            self.rows_bytes -= slot.len();
            *slot = row;
        } else {
            self.rows.insert(key.into(), row);
        }
    }

    /// Remove a row; removing an absent key is a no-op.
    pub(crate) fn remove(&mut self, key: &str) {
        if let Some(old) = self.rows.remove(key) {
            self.rows_bytes -= old.len();
        }
    }

    /// The row texts, ordered by key.
    pub(crate) fn rows(&self) -> impl ExactSizeIterator<Item = &str> {
        self.rows.values().map(|row| &**row)
    }

    /// Sum of the row texts' lengths.
    pub(crate) fn rows_bytes(&self) -> usize {
        self.rows_bytes
    }

    /// Number of rows.
    pub(crate) fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the view has no rows.
    pub(crate) fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upsert_replace_remove_keep_order_and_size() {
        let mut v = TopicView::default();
        v.upsert("b", "{\"k\":\"b\"}".into());
        v.upsert("a", "1".into());
        v.upsert("b", "22".into());
        assert_eq!(v.rows().collect::<Vec<_>>(), ["1", "22"]);
        assert_eq!(v.rows_bytes(), 3);
        v.remove("a");
        v.remove("zz");
        assert_eq!(v.len(), 1);
        assert_eq!(v.rows_bytes(), 2);
        v.remove("b");
        assert!(v.is_empty());
        assert_eq!(v.rows_bytes(), 0);
    }
}

//! Counters that many requests increment (download counts), written in batches: while one
//! write is in flight, further increments accumulate in memory, and the next write carries
//! all of them in one statement. Under light load every increment is written at once (a
//! batch of one); under load the number of writes no longer grows with the request rate.
//!
//! The request that finds no write in flight becomes the writer: it runs [`Tally::take`] in
//! a loop (as background work the host keeps alive, e.g. Vercel's `waitUntil`) until
//! nothing is pending, so no increment is left behind in an idle instance.

use std::collections::HashMap;
use std::sync::Mutex;

/// Pending increments per key, and whether a writer is running.
#[derive(Debug, Default)]
pub struct Tally {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    pending: HashMap<i64, i64>,
    writing: bool,
}

impl Tally {
    /// Adds one to `key`. Returns `true` when the caller must start the writer (none runs).
    pub fn add(&self, key: i64) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        *s.pending.entry(key).or_insert(0) += 1;
        !std::mem::replace(&mut s.writing, true)
    }

    /// For the writer: everything pending, as `(keys, increments)` in key order (so
    /// concurrent writers of several instances lock rows in the same order). Empty when
    /// nothing is pending, which also ends the writer's turn (the next [`Tally::add`] starts
    /// a new one).
    pub fn take(&self) -> (Vec<i64>, Vec<i64>) {
        let mut pairs: Vec<(i64, i64)> = {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if s.pending.is_empty() {
                s.writing = false;
            }
            s.pending.drain().collect()
        };
        pairs.sort_unstable();
        pairs.into_iter().unzip()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn increments_accumulate_while_a_writer_runs_and_the_writer_ends_when_drained() {
        let t = Tally::default();
        assert!(t.add(7), "the first increment starts the writer");
        assert!(!t.add(7), "a writer is running");
        assert!(!t.add(9));
        assert_eq!(t.take(), (vec![7, 9], vec![2, 1]));
        assert!(
            !t.add(9),
            "still the same writer's turn until it finds nothing"
        );
        assert_eq!(t.take(), (vec![9], vec![1]));
        assert_eq!(t.take(), (vec![], vec![]), "drained: the writer stops");
        assert!(t.add(1), "the next increment starts a new writer");
    }
}

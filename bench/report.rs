//! The table: one row per figure with the Hub's number, the floor measured in the same run,
//! their ratio, the budget and whether it holds.

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub figure: String,
    pub hub: String,
    pub floor: String,
    pub ratio: String,
    pub budget: String,
    /// `None`: no budget line (reported for context).
    pub pass: Option<bool>,
}

pub fn markdown(rows: &[Row]) -> String {
    let mut out = String::from(
        "| Figure | Hub | Floor | Ratio | Budget | Result |\n|---|---:|---:|---:|---|---|\n",
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            r.figure,
            r.hub,
            r.floor,
            r.ratio,
            r.budget,
            match r.pass {
                Some(true) => "pass",
                Some(false) => "**FAIL**",
                None => "—",
            }
        ));
    }
    out
}

pub fn rps(v: f64) -> String {
    format!("{}/s", thousands(v))
}

/// `v` rounded, with thousands separated: 21,799.
pub fn thousands(v: f64) -> String {
    let s = (v.round() as u64).to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn ms(v: f64) -> String {
    if v.is_nan() {
        "—".into()
    } else if v < 10.0 {
        format!("{v:.2} ms")
    } else {
        format!("{v:.1} ms")
    }
}

pub fn us(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2} µs")
    } else {
        format!("{v:.1} µs")
    }
}

pub fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

pub fn ratio(hub: f64, floor: f64) -> String {
    if floor > 0.0 && hub.is_finite() && floor.is_finite() {
        format!("{:.2}×", hub / floor)
    } else {
        "—".into()
    }
}

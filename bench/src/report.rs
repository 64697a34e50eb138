//! How a run is reported: the scenario table (and the attack table when the attacks ran) as
//! aligned text, the JSON summary, and the verdict that makes `mediator-load` exit non-zero
//! when a scenario failed.

use crate::standard::Summary;
use anyhow::{bail, Context, Result};
use std::path::Path;

fn fmt_num(v: f64) -> String {
    if v.is_nan() {
        "-".into()
    } else if v.abs() >= 1000.0 {
        let s = format!("{:.0}", v);
        let (sign, digits) = s.strip_prefix('-').map_or(("", s.as_str()), |d| ("-", d));
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        format!("{sign}{out}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else if v.abs() >= 0.1 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

/// The summary table as text (and the attack table, if the attacks ran).
pub fn table(sum: &Summary) -> String {
    let attacks = sum.attacks.as_ref().map(crate::attacks::table);
    match attacks {
        Some(a) if sum.rows.is_empty() => a,
        Some(a) => format!("{}\n{a}", scenario_table(sum)),
        None => scenario_table(sum),
    }
}

fn scenario_table(sum: &Summary) -> String {
    let header = ["scenario", "mediatord", "baseline", "", "ratio", "target"];
    let mut rows: Vec<[String; 6]> = vec![header.map(String::from)];
    for r in &sum.rows {
        rows.push([
            r.scenario.clone(),
            fmt_num(r.mediatord),
            fmt_num(r.baseline),
            r.baseline_name.clone(),
            if r.ratio.is_nan() {
                "-".into()
            } else {
                format!("{:.2}", r.ratio)
            },
            r.target.clone(),
        ]);
    }
    let rows: Vec<Vec<String>> = rows.into_iter().map(Vec::from).collect();
    text_table(&rows, &[1, 2, 4])
}

/// Renders `rows` (the first is the header, underlined) as aligned text columns two spaces
/// apart; the columns in `right` are right-aligned.
pub fn text_table(rows: &[Vec<String>], right: &[usize]) -> String {
    let cols = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..cols)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for (k, r) in rows.iter().enumerate() {
        let cells: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(c, v)| {
                if right.contains(&c) {
                    format!("{v:>w$}", w = widths[c])
                } else {
                    format!("{v:<w$}", w = widths[c])
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
        if k == 0 {
            out.push_str(&"-".repeat(widths.iter().sum::<usize>() + 2 * cols.saturating_sub(1)));
            out.push('\n');
        }
    }
    out
}

/// Writes the JSON summary to `path` or stdout.
pub fn write_json(sum: &Summary, path: Option<&Path>) -> Result<()> {
    let json = serde_json::to_string_pretty(sum)?;
    match path {
        Some(p) => std::fs::write(p, json).with_context(|| format!("writing {}", p.display()))?,
        None => println!("{json}"),
    }
    Ok(())
}

/// Fails when a smoke run found problems.
pub fn verdict(sum: &Summary) -> Result<()> {
    if sum.failures.is_empty() {
        return Ok(());
    }
    for f in &sum.failures {
        eprintln!("FAILED: {f}");
    }
    bail!("{} failure(s)", sum.failures.len())
}

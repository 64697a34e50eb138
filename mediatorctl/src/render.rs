//! How a command's output is printed, in the format the caller chose with `--output`: a boxed
//! table for people (fitted to the terminal), plain tab-separated lines for `cut` and `awk`, or
//! JSON. Each command builds one [`Output`] (its rows of cells, or a few lines of text, and its
//! JSON value) and this module alone decides how it looks, so the three formats cannot drift
//! apart. Table format may shorten long hex keys to fit; plain and JSON never shorten anything.

use clap::ValueEnum;
use comfy_table::{
    presets::UTF8_FULL_CONDENSED, ColumnConstraint, ContentArrangement, Table, Width,
};
use serde_json::Value;
use std::fmt::Write as _;

/// How output is printed (`--output`; `--json` is `--output json`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Boxed tables for people, fitted to the terminal (or to COLUMNS); long keys may be
    /// shortened to fit. The default, also when stdout is not a terminal.
    #[default]
    Table,
    /// Tab-separated values: one header line, then one line per row; nothing shortened, no
    /// summary line.
    Plain,
    /// Ids as strings, counts as numbers, times as Unix seconds, keys in full hex.
    Json,
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Format::Table => "table",
            Format::Plain => "plain",
            Format::Json => "json",
        })
    }
}

/// Hex characters a key keeps when a table shortens it to fit (then followed by `…`): 64 bits,
/// enough to tell keys apart by eye and to find the full one with `grep`.
pub const SHORT_KEY_CHARS: usize = 16;
/// The narrowest width tables are fitted to, whatever COLUMNS says: narrower, most columns
/// would be one character wide.
pub const MIN_TABLE_WIDTH: u16 = 20;
/// In a table that must be narrowed, each column keeps its longest word up to this many
/// characters (a date's day, `2024-05-01`, is 10) before single-word columns (ids, numbers,
/// keys) are kept whole.
pub const MIN_WRAPPED_COLUMN: usize = 10;
/// The environment variable that sets the width tables are fitted to, terminal or not.
pub const COLUMNS_ENV: &str = "COLUMNS";
/// Spaces around a cell's content (one on each side in comfy-table's presets); comfy-table
/// counts them in a column's width.
const CELL_PADDING: usize = 2;
/// What ends a shortened key.
const ELLIPSIS: char = '…';

/// One cell of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    /// Shown as it is (control characters escaped).
    Text(String),
    /// A hex key: shortened to [`SHORT_KEY_CHARS`] in a table that would not fit otherwise.
    Key(String),
}

impl From<String> for Cell {
    fn from(s: String) -> Cell {
        Cell::Text(s)
    }
}

impl From<&str> for Cell {
    fn from(s: &str) -> Cell {
        Cell::Text(s.to_string())
    }
}

impl Cell {
    /// A key's cell, from its bytes.
    pub fn key(bytes: &[u8]) -> Cell {
        Cell::Key(hex::encode(bytes))
    }

    /// The cell's text in table format, shortened when `shorten` and it is a long key.
    fn for_table(&self, shorten: bool) -> String {
        match self {
            Cell::Key(k) if shorten && k.chars().count() > SHORT_KEY_CHARS + 1 => {
                let mut s: String = k.chars().take(SHORT_KEY_CHARS).collect();
                s.push(ELLIPSIS);
                s
            }
            Cell::Key(s) | Cell::Text(s) => escape(s, false),
        }
    }

    /// The cell's text in plain format: whole, on one field.
    fn for_plain(&self) -> String {
        match self {
            Cell::Key(s) | Cell::Text(s) => escape(s, true),
        }
    }
}

/// Rows under a header.
#[derive(Debug, Clone, Default)]
pub struct Grid {
    header: Vec<String>,
    rows: Vec<Vec<Cell>>,
}

impl Grid {
    /// An empty grid with these column names.
    pub fn new(header: &[&str]) -> Grid {
        Grid {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (as many cells as the header has names).
    pub fn row(&mut self, cells: Vec<Cell>) -> &mut Grid {
        debug_assert_eq!(cells.len(), self.header.len(), "row of {:?}", self.header);
        self.rows.push(cells);
        self
    }
}

/// What table and plain formats print.
#[derive(Debug, Clone)]
pub enum View {
    /// A few lines of text, the same in both formats.
    Text(String),
    /// A table; in table format followed by `summary` ("3 of 10 chats"), which plain format
    /// leaves out so that every line after the header is a row.
    Table { grid: Grid, summary: Option<String> },
}

/// One command's output.
#[derive(Debug, Clone)]
pub struct Output {
    pub view: View,
    pub json: Value,
}

impl Output {
    /// Output that is a few lines of text (or JSON).
    pub fn text(text: impl Into<String>, json: Value) -> Output {
        Output {
            view: View::Text(text.into()),
            json,
        }
    }

    /// Output that is a table, with an optional summary line under it in table format.
    pub fn table(grid: Grid, summary: Option<String>, json: Value) -> Output {
        Output {
            view: View::Table { grid, summary },
            json,
        }
    }

    /// The output as printed in `format`, ending with a newline; tables are fitted to `width`
    /// columns when it is given (see [`table_width`]).
    pub fn render(&self, format: Format, width: Option<u16>) -> serde_json::Result<String> {
        let mut s = match (format, &self.view) {
            (Format::Json, _) => serde_json::to_string_pretty(&self.json)?,
            (_, View::Text(t)) => t.clone(),
            (Format::Plain, View::Table { grid, .. }) => plain(grid),
            (Format::Table, View::Table { grid, summary }) => {
                let mut s = boxed(grid, width);
                if let Some(line) = summary {
                    s.push('\n');
                    s.push_str(line);
                }
                s
            }
        };
        if !s.ends_with('\n') {
            s.push('\n');
        }
        Ok(s)
    }
}

/// The width tables are fitted to: COLUMNS when it holds a positive number, else the
/// terminal's when stdout is one, else none (tables as wide as their content, as they always
/// were in pipes and files). Never below [`MIN_TABLE_WIDTH`].
pub fn table_width() -> Option<u16> {
    let columns = std::env::var(COLUMNS_ENV).ok();
    // comfy-table asks the terminal (its `tty` feature) only when stdout is one.
    width_from(columns.as_deref(), Table::new().width())
}

/// [`table_width`] from the value of COLUMNS and the terminal's width.
fn width_from(columns: Option<&str>, terminal: Option<u16>) -> Option<u16> {
    columns
        .and_then(|c| c.trim().parse::<u16>().ok())
        .filter(|w| *w > 0)
        .or(terminal)
        .map(|w| w.max(MIN_TABLE_WIDTH))
}

/// A comfy-table of `grid`, keys shortened when `shorten`. It never looks at the terminal
/// itself: the width is ours to decide.
fn comfy(grid: &Grid, shorten: bool) -> Table {
    let mut t = Table::new();
    t.force_no_tty()
        .load_preset(UTF8_FULL_CONDENSED)
        .set_header(grid.header.clone());
    for r in &grid.rows {
        t.add_row(r.iter().map(|c| c.for_table(shorten)).collect::<Vec<_>>());
    }
    t
}

/// The widest line of `s`, in characters.
fn widest(s: &str) -> usize {
    s.lines().map(|l| l.chars().count()).max().unwrap_or(0)
}

/// Table format: the grid in a box, as wide as its content when no width is given or when it
/// fits. Otherwise keys are shortened and, if the table is still too wide, comfy-table wraps it
/// to `width` within the lower bounds of [`lower_bounds`].
fn boxed(grid: &Grid, width: Option<u16>) -> String {
    let full = comfy(grid, false).to_string();
    let width = match width {
        Some(w) if widest(&full) > usize::from(w) => w,
        _ => return full,
    };
    let mut t = comfy(grid, true);
    let short = t.to_string();
    if widest(&short) <= usize::from(width) {
        return short;
    }
    for (i, w) in lower_bounds(grid, usize::from(width)) {
        if let Some(c) = t.column_mut(i) {
            let w = u16::try_from(w).unwrap_or(u16::MAX);
            c.set_constraint(ColumnConstraint::LowerBoundary(Width::Fixed(w)));
        }
    }
    t.set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(width);
    t.to_string()
}

/// A column's shape for fitting: whether no cell has a space in it (ids, numbers, keys,
/// yes/no), and its longest word (header included).
struct Shape {
    single_word: bool,
    longest_word: usize,
}

/// Lower bounds (column, width with padding) for a table of `width` characters that does
/// not fit: every column keeps its longest word up to [`MIN_WRAPPED_COLUMN`] characters, and
/// single-word columns are kept whole, the cheapest first, while the total fits. Without room
/// even for that, only the narrow single-word columns (numbers, flags) are kept whole.
fn lower_bounds(grid: &Grid, width: usize) -> Vec<(usize, usize)> {
    let n = grid.header.len();
    let shapes: Vec<Shape> = (0..n)
        .map(|i| {
            let cells: Vec<String> = grid.rows.iter().map(|r| r[i].for_table(true)).collect();
            let words = cells
                .iter()
                .chain(std::iter::once(&grid.header[i]))
                .flat_map(|c| c.split_whitespace().map(|w| w.chars().count()));
            Shape {
                single_word: !cells.iter().any(|c| c.contains(char::is_whitespace)),
                longest_word: words.max().unwrap_or(0),
            }
        })
        .collect();
    let whole = |s: &Shape| s.longest_word + CELL_PADDING;
    // The borders, one more than the columns.
    let frame = n + 1;
    let mut bounds: Vec<usize> = shapes
        .iter()
        .map(|s| s.longest_word.min(MIN_WRAPPED_COLUMN) + CELL_PADDING)
        .collect();
    let mut total = frame + bounds.iter().sum::<usize>();
    if total > width {
        // Every other column keeps at least one character.
        let mut used = frame + n * (1 + CELL_PADDING);
        let mut narrow = Vec::new();
        for (i, s) in shapes.iter().enumerate() {
            if s.single_word && s.longest_word <= MIN_WRAPPED_COLUMN {
                let extra = s.longest_word.saturating_sub(1);
                if used + extra <= width {
                    used += extra;
                    narrow.push((i, whole(s)));
                }
            }
        }
        return narrow;
    }
    let mut single: Vec<usize> = (0..n).filter(|&i| shapes[i].single_word).collect();
    single.sort_by_key(|&i| whole(&shapes[i]) - bounds[i]);
    for i in single {
        let extra = whole(&shapes[i]) - bounds[i];
        if total + extra <= width {
            total += extra;
            bounds[i] = whole(&shapes[i]);
        }
    }
    bounds.into_iter().enumerate().collect()
}

/// Plain format: the header line, then one line per row, fields separated by tabs.
fn plain(grid: &Grid) -> String {
    let mut s = grid.header.join("\t");
    for r in &grid.rows {
        s.push('\n');
        let fields: Vec<String> = r.iter().map(Cell::for_plain).collect();
        s.push_str(&fields.join("\t"));
    }
    s
}

/// `s` with control characters written as escapes (`\t`, `\n`, `\r`, else `\xHH`), so that a
/// chat's name can neither drive the terminal nor, in plain format, split a field or a line;
/// with `plain`, backslashes are doubled too so that every value reads back unambiguously.
fn escape(s: &str, plain: bool) -> String {
    if !s.chars().any(|c| c.is_control() || (plain && c == '\\')) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\\' if plain => out.push_str("\\\\"),
            // Every control character (C0, DEL, C1) is below U+00A0: two hex digits.
            c if c.is_control() => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A chats-list-like grid: eight columns, two 64-hex keys per row; 200 columns wide in
    /// full.
    fn wide() -> Grid {
        let mut g = Grid::new(&[
            "id",
            "name",
            "owner",
            "created",
            "members",
            "messages",
            "last activity",
            "online",
        ]);
        for i in 0..3u8 {
            g.row(vec![
                "7428281637285620551".into(),
                "a chat with quite a long name indeed".into(),
                Cell::key(&[0xa0 + i; 32]),
                "2023-11-14 22:13:20Z".into(),
                "12".into(),
                "3456".into(),
                "2024-01-02 03:04:05Z".into(),
                "1".into(),
            ]);
        }
        g
    }

    #[test]
    fn tables_fit_the_width_they_are_given() {
        let out = Output::table(wide(), Some("3 of 3 chats".into()), json!([]));
        let full = out.render(Format::Table, None).unwrap();
        assert!(widest(&full) > 120, "{full}");
        assert!(full.contains(&"a2".repeat(32)), "{full}");
        for width in [80u16, 100, 60] {
            let text = out.render(Format::Table, Some(width)).unwrap();
            for line in text.lines() {
                assert!(
                    line.chars().count() <= usize::from(width),
                    "{} > {width}: {line}\n{text}",
                    line.chars().count()
                );
            }
            assert!(
                !text.contains(&"a1".repeat(9)),
                "keys are shortened: {text}"
            );
            assert!(text.ends_with("3 of 3 chats\n"), "{text}");
        }
        // With room for them, ids, keys and dates stay whole; the name wraps.
        let text = out.render(Format::Table, Some(140)).unwrap();
        assert!(widest(&text) <= 140, "{text}");
        for whole in [
            "7428281637285620551",
            "a1a1a1a1a1a1a1a1…",
            "2024-01-02 03:04:05Z",
        ] {
            assert!(text.contains(whole), "{whole} is whole: {text}");
        }
        assert!(
            !text.contains("a chat with quite a long name indeed"),
            "{text}"
        );
        // Short of room, numbers stay whole and dates break between day and time.
        for width in [100, 80] {
            let text = out.render(Format::Table, Some(width)).unwrap();
            assert!(
                text.contains("┆ 3456 ") && text.contains("┆ members ┆"),
                "{text}"
            );
            if width == 100 {
                assert!(
                    text.contains("┆ 2024-01-02 ") && text.contains("┆ 03:04:05Z "),
                    "{text}"
                );
            }
        }
        // A table that fits keeps its keys whole.
        let mut narrow = Grid::new(&["key", "role"]);
        narrow.row(vec![Cell::key(&[0xcd; 32]), "owner".into()]);
        let text = Output::table(narrow, None, json!([]))
            .render(Format::Table, Some(80))
            .unwrap();
        assert!(text.contains(&"cd".repeat(32)), "{text}");
    }

    #[test]
    fn plain_is_one_line_per_row_and_never_shortened() {
        let mut g = wide();
        g.row(vec![
            "1".into(),
            "tab\there\nnew line \\ \u{1b}[31mred".into(),
            Cell::key(&[0xff; 32]),
            "never".into(),
            "0".into(),
            "0".into(),
            "never".into(),
            "0".into(),
        ]);
        let text = Output::table(g, Some("4 chats".into()), json!([]))
            .render(Format::Plain, Some(40))
            .unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert_eq!(
            lines[0],
            "id\tname\towner\tcreated\tmembers\tmessages\tlast activity\tonline"
        );
        for l in &lines {
            assert_eq!(l.split('\t').count(), 8, "{l}");
            assert!(!l.contains('│') && !l.contains('…'), "{l}");
        }
        let last: Vec<&str> = lines[4].split('\t').collect();
        assert_eq!(last[1], "tab\\there\\nnew line \\\\ \\x1b[31mred");
        assert_eq!(last[2], "ff".repeat(32));
        assert!(!text.contains("4 chats"));
    }

    #[test]
    fn control_characters_never_reach_the_terminal() {
        let mut g = Grid::new(&["name"]);
        g.row(vec!["a\u{1b}]0;owned\u{7}\u{9b}b\\c".into()]);
        let text = Output::table(g, None, json!([]))
            .render(Format::Table, None)
            .unwrap();
        assert!(!text.chars().any(|c| c.is_control() && c != '\n'), "{text}");
        assert!(text.contains("a\\x1b]0;owned\\x07\\x9bb\\c"), "{text}");
    }

    #[test]
    fn text_and_json_views() {
        let out = Output::text("banned: done", json!({ "changed": true }));
        assert_eq!(
            out.render(Format::Table, Some(20)).unwrap(),
            "banned: done\n"
        );
        assert_eq!(out.render(Format::Plain, None).unwrap(), "banned: done\n");
        let j: Value = serde_json::from_str(&out.render(Format::Json, None).unwrap()).unwrap();
        assert_eq!(j, json!({ "changed": true }));
    }

    #[test]
    fn width_comes_from_columns_then_the_terminal() {
        assert_eq!(width_from(None, None), None);
        assert_eq!(width_from(None, Some(132)), Some(132));
        assert_eq!(width_from(Some("80"), Some(132)), Some(80));
        assert_eq!(width_from(Some(" 100 "), None), Some(100));
        assert_eq!(width_from(Some("5"), None), Some(MIN_TABLE_WIDTH));
        for bad in ["", "0", "wide", "-3", "99999999"] {
            assert_eq!(width_from(Some(bad), Some(90)), Some(90), "{bad:?}");
            assert_eq!(width_from(Some(bad), None), None, "{bad:?}");
        }
    }
}

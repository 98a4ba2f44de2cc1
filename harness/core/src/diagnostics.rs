//! Problems in the TOML files isobench reads (scenarios, endpoints files, pricing tables):
//! what is wrong, where (file, line, column and the field's dotted path), and what would be
//! accepted instead. One shape so that every file's errors read alike:
//!
//! ```text
//! invalid scenario s.toml (1 problem)
//!   s.toml:17:6: field `tier[1].id`: unknown tier `shard-ec2`
//!       accepted: `silo-ec2`, `shared-ec2`, ...
//! ```
//!
//! Checks name fields by path while they run ([`Checker`]); the paths are turned into lines and
//! columns afterwards, from the spans `toml_edit` keeps ([`locate_all`]), so that validation
//! code never handles spans.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;

/// One thing wrong with a file, located in it when possible.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// Dotted path of the field, e.g. `tier[1].instance_type`; empty when none applies.
    pub field: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
    /// What would be accepted instead.
    pub accepted: Option<String>,
}

impl Problem {
    /// A problem not yet located; an empty `accepted` means none is said.
    pub fn new(field: impl Into<String>, message: impl Into<String>, accepted: impl Into<String>) -> Problem {
        let accepted = accepted.into();
        Problem {
            field: field.into(),
            line: None,
            column: None,
            message: message.into(),
            accepted: (!accepted.is_empty()).then_some(accepted),
        }
    }

    /// The problem at byte `offset` of `src`.
    pub fn at_offset(mut self, src: &str, offset: usize) -> Problem {
        let (line, column) = line_col(src, offset);
        self.line = Some(line);
        self.column = Some(column);
        self
    }

    /// What follows the file's name: `[:line[:column]][: field `f`]: message`.
    pub fn fmt_after_file(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        if !self.field.is_empty() {
            write!(f, ": field `{}`", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Everything wrong with one file: `invalid {what} {file} (n problems)`, then one located line
/// per problem with what would be accepted.
#[derive(Debug, Clone, thiserror::Error)]
pub struct InvalidFile {
    /// What the file is, e.g. `scenario`, `endpoints file`.
    pub what: &'static str,
    pub file: PathBuf,
    pub problems: Vec<Problem>,
}

impl fmt::Display for InvalidFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        let s = if n == 1 { "" } else { "s" };
        write!(f, "invalid {} {} ({n} problem{s})", self.what, self.file.display())?;
        for p in &self.problems {
            write!(f, "\n  {}", self.file.display())?;
            p.fmt_after_file(f)?;
            if let Some(a) = &p.accepted {
                write!(f, "\n      accepted: {a}")?;
            }
        }
        Ok(())
    }
}

/// Collects problems during validation, each with the path of its field.
#[derive(Debug, Default)]
pub struct Checker {
    pub problems: Vec<Problem>,
}

impl Checker {
    pub fn fail(&mut self, field: impl Into<String>, message: impl Into<String>, accepted: impl Into<String>) {
        self.problems.push(Problem::new(field, message, accepted));
    }

    pub fn check(&mut self, ok: bool, field: &str, message: impl Into<String>, accepted: &str) {
        if !ok {
            self.fail(field, message, accepted);
        }
    }

    /// Deserialises `table[key]` as `T`, recording a problem at `at(key)` if it does not fit:
    /// `Some(None)` when the key is absent, `None` when it did not fit.
    pub fn section<T: serde::de::DeserializeOwned>(
        &mut self,
        table: &toml::Table,
        key: &str,
        at: &dyn Fn(&str) -> String,
        accepted: &str,
    ) -> Option<Option<T>> {
        let Some(v) = table.get(key) else { return Some(None) };
        match v.clone().try_into() {
            Ok(t) => Some(Some(t)),
            Err(e) => {
                self.fail(at(key), e.message().trim().to_string(), accepted);
                None
            }
        }
    }

    /// `Ok` when nothing was found, else every problem located in `src`.
    pub fn finish(mut self, src: &str, what: &'static str, file: PathBuf) -> Result<(), InvalidFile> {
        if self.problems.is_empty() {
            return Ok(());
        }
        locate_all(src, &mut self.problems);
        Err(InvalidFile { what, file, problems: self.problems })
    }
}

/// The 1-based line and column (in characters) of byte `offset` of `src`.
pub fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let before = &src[..offset.min(src.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map_or(before.chars().count(), |i| before[i + 1..].chars().count()) + 1;
    (line, col)
}

/// A TOML parser's error as a problem: located, with the key written on its line as the field.
pub fn syntax_problem(src: &str, e: &toml::de::Error) -> Problem {
    let problem = Problem::new(field_at(src, e.span()), e.message(), "");
    match e.span() {
        Some(span) => problem.at_offset(src, span.start),
        None => problem,
    }
}

/// The key written on the line of a syntax error, if any, to name the field.
fn field_at(src: &str, span: Option<Range<usize>>) -> String {
    let Some(span) = span else { return String::new() };
    let start = src[..span.start.min(src.len())].rfind('\n').map_or(0, |i| i + 1);
    let line = src[start..].lines().next().unwrap_or("");
    match line.split_once('=') {
        Some((k, _)) => k.trim().to_string(),
        None => String::new(),
    }
}

/// Locates every problem by its field path; a field that is absent (a default) is located at
/// its nearest written parent, and one with no written parent (a missing top-level table) at
/// the start of the file, as the TOML parser locates a missing field.
pub fn locate_all(src: &str, problems: &mut [Problem]) {
    let doc = toml_edit::Document::parse(src.to_string()).ok();
    for p in problems.iter_mut() {
        let mut path = p.field.as_str();
        let mut span = None;
        while let Some(doc) = &doc {
            span = locate(doc, path);
            match path.rfind(['.', '[']) {
                Some(i) if span.is_none() => path = &path[..i],
                _ => break,
            }
        }
        let (l, c) = line_col(src, span.map_or(0, |s| s.start));
        p.line = Some(l);
        p.column = Some(c);
    }
}

enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

fn parse_path(path: &str) -> Vec<Seg<'_>> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (key, rest) = part.split_once('[').unwrap_or((part, ""));
        if !key.is_empty() {
            out.push(Seg::Key(key));
        }
        for idx in rest.split('[') {
            if let Ok(i) = idx.trim_end_matches(']').parse() {
                out.push(Seg::Index(i));
            }
        }
    }
    out
}

/// The byte span that best matches `path` in the source: the deepest part found.
fn locate(doc: &toml_edit::Document<String>, path: &str) -> Option<Range<usize>> {
    use toml_edit::{Item, Value};
    let mut item: Option<&Item> = Some(doc.as_item());
    let mut table: Option<&toml_edit::Table> = None;
    let mut best = None;
    for seg in parse_path(path) {
        match seg {
            Seg::Key(k) => {
                let found = match (table.take(), item) {
                    (Some(t), _) => t.get_key_value(k),
                    (None, Some(it)) => it.as_table_like().and_then(|t| t.get_key_value(k)),
                    (None, None) => None,
                };
                let (key, it) = found?;
                best = key.span().or_else(|| it.span()).or(best);
                item = Some(it);
            }
            Seg::Index(i) => match item {
                Some(Item::ArrayOfTables(a)) => {
                    let t = a.get(i)?;
                    best = t.span().or(best);
                    table = Some(t);
                    item = None;
                }
                Some(Item::Value(Value::Array(a))) => {
                    best = a.get(i).and_then(|v| v.span()).or(best);
                    return best;
                }
                _ => return best,
            },
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_columns_count_characters_from_one() {
        assert_eq!(line_col("a = 1\nbé = 2\n", 0), (1, 1));
        assert_eq!(line_col("a = 1\nbé = 2\n", "a = 1\nbé".len()), (2, 3));
    }

    #[test]
    fn absent_fields_are_located_at_their_parent() {
        let src = "[run]\nrate = 1\n\n[[tier]]\nid = \"a\"\n[[tier]]\nid = \"b\"\n";
        let mut p = [Problem::new("tier[1].memory", "m", ""), Problem::new("run.rate", "m", "x")];
        locate_all(src, &mut p);
        assert_eq!((p[0].line, p[1].line), (Some(6), Some(2)));
        let mut missing = [Problem::new("tier", "the scenario names no tier", "")];
        locate_all(src.replace("[[tier]]", "[[tear]]").as_str(), &mut missing);
        assert_eq!((missing[0].line, missing[0].column), (Some(1), Some(1)));
        let e = InvalidFile { what: "thing", file: "t.toml".into(), problems: p.to_vec() };
        assert_eq!(
            e.to_string(),
            "invalid thing t.toml (2 problems)\n  t.toml:6:1: field `tier[1].memory`: m\n  t.toml:2:1: field `run.rate`: m\n      accepted: x"
        );
    }
}

//! User-facing errors: a message, where it is (`file:line:column` with the
//! source line), and a `hint:` when the fix is knowable.

use claw_provider::Diagnostic;
use std::fmt;
use std::ops::Range;
use std::path::Path;

/// A place in a source file.
#[derive(Debug, Clone, PartialEq)]
pub struct Loc {
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub line_text: String,
    pub len: usize,
}

impl Loc {
    /// Computes line and column (1-based, in characters) of `span` in `src`.
    pub fn from_span(file: &Path, src: &str, span: Range<usize>) -> Loc {
        let start = span.start.min(src.len());
        let before = &src[..start];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let col = src[line_start..start].chars().count() + 1;
        let line_end = src[start..]
            .find('\n')
            .map(|i| start + i)
            .unwrap_or(src.len());
        let line_text = src[line_start..line_end].trim_end_matches('\r').to_string();
        let end = span.end.clamp(start, line_end.max(start));
        let len = src[start..end].chars().count().max(1);
        Loc {
            file: file.display().to_string(),
            line,
            col,
            line_text,
            len,
        }
    }
}

/// One error (or warning) for the user.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub message: String,
    pub loc: Option<Loc>,
    pub detail: Option<String>,
    pub hint: Option<String>,
    pub warning: bool,
}

impl Problem {
    pub fn new(message: impl Into<String>) -> Problem {
        Problem {
            message: message.into(),
            loc: None,
            detail: None,
            hint: None,
            warning: false,
        }
    }
    pub fn at(mut self, loc: Option<Loc>) -> Problem {
        self.loc = loc;
        self
    }
    pub fn hint(mut self, h: impl Into<String>) -> Problem {
        self.hint = Some(h.into());
        self
    }
    pub fn detail(mut self, d: impl Into<String>) -> Problem {
        self.detail = Some(d.into());
        self
    }
    pub fn from_diag(d: &Diagnostic, loc: Option<Loc>) -> Problem {
        let message = match &d.address {
            Some(a) if !d.summary.contains(a.as_str()) => format!("{a}: {}", d.summary),
            _ => d.summary.clone(),
        };
        Problem {
            message,
            loc,
            detail: d.detail.clone(),
            hint: d.hint.clone(),
            warning: !d.is_error(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.warning { "warning" } else { "error" };
        write!(f, "{kind}: {}", self.message)?;
        if let Some(l) = &self.loc {
            let n = l.line.to_string();
            let pad = " ".repeat(n.len());
            write!(f, "\n{pad}--> {}:{}:{}", l.file, l.line, l.col)?;
            write!(f, "\n{pad} |\n{n} | {}", l.line_text)?;
            let prefix: String = l
                .line_text
                .chars()
                .take(l.col - 1)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            write!(f, "\n{pad} | {prefix}{}", "^".repeat(l.len.min(80)))?;
        }
        if let Some(d) = &self.detail {
            for line in d.lines() {
                write!(f, "\n  {line}")?;
            }
        }
        if let Some(h) = &self.hint {
            write!(f, "\nhint: {h}")?;
        }
        Ok(())
    }
}

/// The crate's error: one or more problems (the exit code is `main.rs`'s).
#[derive(Debug, Clone)]
pub struct Error {
    pub problems: Vec<Problem>,
}

impl Error {
    pub fn one(p: Problem) -> Error {
        Error { problems: vec![p] }
    }
    pub fn msg(m: impl Into<String>) -> Error {
        Error::one(Problem::new(m))
    }
    pub fn many(problems: Vec<Problem>) -> Error {
        Error { problems }
    }
}

impl From<Problem> for Error {
    fn from(p: Problem) -> Error {
        Error::one(p)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The closest candidate to `word` (for "did you mean" hints).
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(s, _)| *s > 0.75)
        .max_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loc_counts_lines_and_columns() {
        let src = "a = 1\nbb = \"x\"\n";
        let l = Loc::from_span(Path::new("c.toml"), src, 6..8);
        assert_eq!((l.line, l.col, l.len), (2, 1, 2));
        assert_eq!(l.line_text, "bb = \"x\"");
        let p = Problem::new("unknown key `bb`")
            .at(Some(l))
            .hint("did you mean `b`?");
        let s = p.to_string();
        assert!(s.contains("--> c.toml:2:1"), "{s}");
        assert!(s.ends_with("hint: did you mean `b`?"), "{s}");
    }

    #[test]
    fn closest_suggests() {
        assert_eq!(
            closest("contnet", ["content", "path", "mode"]),
            Some("content")
        );
        assert_eq!(closest("zzz", ["content", "path"]), None);
    }
}

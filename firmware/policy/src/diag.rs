//! Diagnostics that point at the offending place in the policy file.

use std::fmt;
use std::ops::Range;

/// Whether a diagnostic stops the policy from loading.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The policy is refused.
    Error,
    /// The policy loads, but probably does not say what its author meant.
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// One finding about a policy file, located by 1-based line and column.
///
/// `line` and `column` are 0 when the finding is about the file as a whole (it could
/// not be read, say); it then displays as `file: error: message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl Diagnostic {
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}: {}", self.file, self.severity, self.message)
        } else {
            let (file, line, col, sev) = (&self.file, self.line, self.column, self.severity);
            write!(f, "{file}:{line}:{col}: {sev}: {}", self.message)
        }
    }
}

/// A policy that was refused: every error found (not just the first), and the warnings
/// found along the way, in file order. Displays one diagnostic per line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", display_lines(.diagnostics))]
pub struct PolicyError {
    pub diagnostics: Vec<Diagnostic>,
}

impl PolicyError {
    /// The diagnostics that made the policy fail (warnings left out).
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| d.is_error())
    }
}

fn display_lines(diagnostics: &[Diagnostic]) -> String {
    let lines: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
    lines.join("\n")
}

/// Collects diagnostics while validating, turning byte offsets into line:column.
pub(crate) struct Diags<'a> {
    text: &'a str,
    file: &'a str,
    line_starts: Vec<usize>,
    found: Vec<(usize, Severity, String)>,
}

impl<'a> Diags<'a> {
    pub(crate) fn new(text: &'a str, file: &'a str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Diags {
            text,
            file,
            line_starts,
            found: Vec::new(),
        }
    }

    pub(crate) fn error(&mut self, span: &Range<usize>, message: impl Into<String>) {
        self.found
            .push((span.start, Severity::Error, message.into()));
    }

    pub(crate) fn warn(&mut self, span: &Range<usize>, message: impl Into<String>) {
        self.found
            .push((span.start, Severity::Warning, message.into()));
    }

    pub(crate) fn has_errors(&self) -> bool {
        self.found.iter().any(|(_, s, _)| *s == Severity::Error)
    }

    /// 1-based line of a byte offset (for `Rule::line` and friends).
    pub(crate) fn line(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|&s| s <= offset)
    }

    fn position(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.line(offset);
        let column = self.text[self.line_starts[line - 1]..offset]
            .chars()
            .count()
            + 1;
        (line, column)
    }

    /// All diagnostics in file order (a stable sort keeps same-place findings in the
    /// order they were found).
    pub(crate) fn finish(mut self) -> Vec<Diagnostic> {
        self.found.sort_by_key(|(offset, _, _)| *offset);
        let found = std::mem::take(&mut self.found);
        found
            .into_iter()
            .map(|(offset, severity, message)| {
                let (line, column) = self.position(offset);
                let file = self.file.to_string();
                Diagnostic {
                    severity,
                    file,
                    line,
                    column,
                    message,
                }
            })
            .collect()
    }
}

use std::fmt;
use std::path::{Path, PathBuf};

/// Where in a pipeline's files something is: 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceLocation {
    pub file: PathBuf,
    pub line: u64,
    pub column: u64,
}

impl fmt::Display for SourceLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.file.display())
        } else {
            write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
        }
    }
}

/// A pipeline that cannot be read: the message, where, and the offending line quoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub location: SourceLocation,
    pub message: String,
    /// The text of the offending line, empty when the file could not be read at all.
    pub source_line: String,
}

impl ParseError {
    pub(crate) fn new(
        file: &Path,
        sql: &str,
        line: u64,
        column: u64,
        message: impl Into<String>,
    ) -> Self {
        let source_line = line
            .checked_sub(1)
            .and_then(|index| sql.lines().nth(index as usize))
            .unwrap_or_default()
            .to_string();
        ParseError {
            location: SourceLocation {
                file: file.to_path_buf(),
                line,
                column,
            },
            message: message.into(),
            source_line,
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)?;
        if !self.source_line.is_empty() {
            let gutter = self.location.line.to_string();
            let caret_at = (self.location.column as usize).saturating_sub(1);
            write!(
                f,
                "\n {gutter} | {}\n {} | {}^",
                self.source_line,
                " ".repeat(gutter.len()),
                " ".repeat(caret_at)
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for ParseError {}

pub type Result<T, E = ParseError> = std::result::Result<T, E>;

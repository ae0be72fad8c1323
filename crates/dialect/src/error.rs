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

/// The most of a line an error quotes: a generated pipeline may hold lines of megabytes.
const QUOTED_CHARS: usize = 120;

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)?;
        if !self.source_line.is_empty() {
            let gutter = self.location.line.to_string();
            let caret_at = (self.location.column as usize).saturating_sub(1);
            let (quoted, caret_at) = around(&self.source_line, caret_at);
            write!(
                f,
                "\n {gutter} | {quoted}\n {} | {}^",
                " ".repeat(gutter.len()),
                " ".repeat(caret_at)
            )?;
        }
        Ok(())
    }
}

/// At most [`QUOTED_CHARS`] of `line` around the character `at`, with `...` where cut, and
/// where `at` falls in them.
fn around(line: &str, at: usize) -> (String, usize) {
    let length = line.chars().count();
    if length <= QUOTED_CHARS {
        return (line.to_string(), at);
    }
    let start = at
        .saturating_sub(QUOTED_CHARS / 2)
        .min(length - QUOTED_CHARS);
    let end = start + QUOTED_CHARS;
    let mut quoted: String = line.chars().skip(start).take(QUOTED_CHARS).collect();
    let mut caret_at = at - start;
    if start > 0 {
        quoted.insert_str(0, "...");
        caret_at += 3;
    }
    if end < length {
        quoted.push_str("...");
    }
    (quoted, caret_at)
}

impl std::error::Error for ParseError {}

pub type Result<T, E = ParseError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::around;

    #[test]
    fn long_lines_are_quoted_around_the_column() {
        let line: String = (0..300)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        let (quoted, caret) = around(&line, 200);
        assert_eq!(quoted.chars().count(), 126);
        assert!(quoted.starts_with("...") && quoted.ends_with("..."));
        assert_eq!(quoted.chars().nth(caret), line.chars().nth(200));
        let (quoted, caret) = around(&line, 5);
        assert_eq!(
            (quoted.chars().nth(caret), quoted.ends_with("...")),
            (Some('f'), true)
        );
        let (quoted, caret) = around(&line, 299);
        assert!(quoted.starts_with("...") && !quoted.ends_with("..."));
        assert_eq!(
            quoted.chars().nth(caret),
            Some(line.chars().last().unwrap())
        );
        assert_eq!(around("short", 2), ("short".to_string(), 2));
        // Characters, not bytes.
        let wide = "é".repeat(200);
        let (quoted, caret) = around(&wide, 150);
        assert_eq!((quoted.chars().count(), caret), (123, 73));
    }
}

//! A pipeline: one file's statements with its INCLUDEs resolved, in order.

use std::path::{Path, PathBuf};

use crate::error::{ParseError, Result, SourceLocation};
use crate::parser::{LocatedStatement, parse_sql};
use crate::statement::{CreateFeatureGroup, Statement};

/// The statements of a pipeline file and of the files it includes, in the order they run.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub path: PathBuf,
    pub statements: Vec<PipelineStatement>,
}

/// A statement with the file and position it comes from. Never an `INCLUDE`.
#[derive(Debug, Clone)]
pub struct PipelineStatement {
    pub statement: Statement,
    pub location: SourceLocation,
}

impl Pipeline {
    pub fn feature_groups(&self) -> impl Iterator<Item = (&CreateFeatureGroup, &SourceLocation)> {
        self.statements.iter().filter_map(|s| match &s.statement {
            Statement::CreateFeatureGroup(group) => Some((group.as_ref(), &s.location)),
            _ => None,
        })
    }
}

/// Reads and parses a pipeline file, following `INCLUDE`s relative to the including file.
/// A file that includes itself, directly or through others, is an error.
/// The largest pipeline or included file: 16 MiB of SQL.
pub const MAX_FILE_BYTES: u64 = 16 << 20;

pub fn load_pipeline(path: &Path) -> Result<Pipeline> {
    let mut statements = Vec::new();
    let mut stack = Vec::new();
    load_file(path, None, &mut stack, &mut statements)?;
    Ok(Pipeline {
        path: path.to_path_buf(),
        statements,
    })
}

fn load_file(
    path: &Path,
    included_at: Option<&ParseError>,
    stack: &mut Vec<PathBuf>,
    out: &mut Vec<PipelineStatement>,
) -> Result<()> {
    let read_error = |message: String| match included_at {
        Some(at) => ParseError {
            message,
            ..at.clone()
        },
        None => ParseError {
            location: SourceLocation {
                file: path.to_path_buf(),
                line: 0,
                column: 0,
            },
            message,
            source_line: String::new(),
        },
    };
    let canonical = path.canonicalize().map_err(|e| {
        read_error(format!(
            "cannot read pipeline file '{}': {e}",
            path.display()
        ))
    })?;
    if let Some(first) = stack.iter().position(|p| *p == canonical) {
        let cycle: Vec<String> = stack[first..]
            .iter()
            .chain([&canonical])
            .map(|p| p.display().to_string())
            .collect();
        return Err(read_error(format!("include cycle: {}", cycle.join(" -> "))));
    }
    // Only regular files of a pipeline's size: INCLUDE '/dev/zero' would read until memory
    // runs out, and a FIFO would block until a writer came.
    let metadata = std::fs::metadata(&canonical).map_err(|e| {
        read_error(format!(
            "cannot read pipeline file '{}': {e}",
            path.display()
        ))
    })?;
    if !metadata.is_file() {
        return Err(read_error(format!(
            "'{}' is not a regular file: a pipeline includes only SQL files",
            path.display()
        )));
    }
    if metadata.len() > MAX_FILE_BYTES {
        return Err(read_error(format!(
            "pipeline file '{}' holds {} bytes, more than the {MAX_FILE_BYTES} a pipeline file \
             may hold: is it SQL?",
            path.display(),
            metadata.len()
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| {
        read_error(format!(
            "cannot read pipeline file '{}': {e}",
            path.display()
        ))
    })?;
    // Editors on Windows start UTF-8 files with a byte order mark; it is not SQL.
    let sql = text.strip_prefix('\u{feff}').unwrap_or(&text).to_string();
    stack.push(canonical);
    for LocatedStatement {
        statement,
        line,
        column,
    } in parse_sql(path, &sql)?
    {
        match statement {
            Statement::Include(include) => {
                let target = path
                    .parent()
                    .unwrap_or_else(|| Path::new(""))
                    .join(&include.path);
                let at = ParseError::new(path, &sql, line, column, String::new());
                load_file(&target, Some(&at), stack, out)?;
            }
            statement => out.push(PipelineStatement {
                statement,
                location: SourceLocation {
                    file: path.to_path_buf(),
                    line,
                    column,
                },
            }),
        }
    }
    stack.pop();
    Ok(())
}

//! The point-in-time (as-of) join behind training sets: a sort-based operator that streams
//! both sides once, so memory stays bounded whatever their sizes.

mod exec;
mod matcher;
#[cfg(test)]
mod tests;

pub use exec::{AsOfJoinColumns, AsOfJoinExec};

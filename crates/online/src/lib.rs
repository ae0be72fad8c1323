//! Online stores of the latest feature values: the trait, and the embedded SQLite store

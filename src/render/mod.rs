//! Writers for a finished [`Review`](crate::review::Review): terminal and JSON.
pub mod json;
pub mod sanitize;
pub mod terminal;

//! Writers for a finished [`Review`](crate::review::Review): terminal, JSON, SARIF,
//! GitHub workflow commands and a Markdown PR comment.
pub mod github;
pub mod json;
pub mod markdown;
pub mod sanitize;
pub mod sarif;
pub mod terminal;

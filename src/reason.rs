//! Why a verdict is what it is: a [`Reason`] is one fact (what kind of code changed, what the
//! repository's history says, what a rule or a model found) with the evidence a reviewer can
//! check. Every stage that finds one makes it with these types; `review` gathers them and
//! `render` shows them. Nothing here decides anything.

use serde::Serialize;

/// A fact that says why a verdict is what it is: JSON `reasons` entries, shown in every
/// format. Only what was computed; a language model's text is marked as such.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reason {
    pub kind: ReasonKind,
    pub text: String,
    /// What a reviewer can check it against: full commit ids for history facts.
    pub evidence: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReasonKind {
    /// What kind of code the change touches, and how much.
    Change,
    /// Where the model's score stands among the repository's own commits.
    Model,
    /// The change's size against the repository's commits.
    Size,
    /// What the repository's history says about the touched code.
    History,
    /// What the parse found.
    Syntax,
    /// A rule (e.g. bidirectional-override characters).
    Rule,
    /// A language model's comment (`--lm`): model output, never the verdict's cause.
    LanguageModel,
}

impl ReasonKind {
    /// The kind as the JSON names it (and the reports show it).
    pub fn label(self) -> &'static str {
        match self {
            ReasonKind::Change => "change",
            ReasonKind::Model => "model",
            ReasonKind::Size => "size",
            ReasonKind::History => "history",
            ReasonKind::Syntax => "syntax",
            ReasonKind::Rule => "rule",
            ReasonKind::LanguageModel => "language-model",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_the_json_names() {
        use ReasonKind::*;
        for k in [Change, Model, Size, History, Syntax, Rule, LanguageModel] {
            assert_eq!(serde_json::to_value(k).unwrap(), k.label());
        }
    }
}

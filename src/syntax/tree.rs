//! One side of a file read through its tree-sitter grammar: which lines hold code and
//! which only comments or docstrings, the code tokens in order (for telling a reformat from
//! a change), the spans of test code inside a source file, the definitions (functions,
//! methods, classes) a hunk can sit in, and the first syntax error; and, over a whole file,
//! the names it declares, uses and exports and the members its types describe ([`outline`],
//! what a suggestion must not break).
//!
//! Bounded: files over [`MAX_BYTES`] are not parsed, a parse that runs past [`TIME_LIMIT`]
//! is stopped, and the tree is walked with a cursor, never by recursion, so a deeply nested
//! file cannot overflow the stack. It does not decide a hunk's kind (`mod.rs` does, from two
//! sides) and knows no language without a grammar here (`grammar`).

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};
use tree_sitter::{Language, Node, ParseOptions, Parser, TreeCursor};

/// Files larger than this are read by the heuristics instead.
pub const MAX_BYTES: usize = 1 << 20;
/// A parse that takes longer than this is stopped (the heuristics read the file instead).
pub const TIME_LIMIT: Duration = Duration::from_millis(500);

/// Why a side was not parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotParsed {
    NoGrammar,
    TooLarge,
    Timeout,
}

/// A function, method, class or other definition a hunk may sit in; lines are 1-based.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Def {
    pub kind: &'static str,
    pub name: String,
    pub start: u32,
    pub end: u32,
}

/// What the parse of one side says, line by line (rows are 0-based here).
#[derive(Debug, Clone, Default)]
pub struct SideTree {
    /// The code tokens in order, each with the rows it spans (a string literal may span several).
    pub tokens: Vec<(u32, u32, String)>,
    /// Python: the indentation of each row that starts with code (it is syntax there).
    pub indents: Vec<(u32, usize)>,
    /// Row spans (inclusive) of test code: test modules and test functions.
    pub tests: Vec<(u32, u32)>,
    pub defs: Vec<Def>,
    /// The first syntax error: its 1-based line and what the parser saw there.
    pub error: Option<(u32, String)>,
}

impl SideTree {
    /// The code tokens that touch any of `rows` (sorted), with Python's indentation of those rows.
    pub fn tokens_on(&self, rows: &[u32]) -> Vec<String> {
        let touches = |a: u32, b: u32| {
            let i = rows.partition_point(|&r| r < a);
            rows.get(i).is_some_and(|&r| r <= b)
        };
        let mut out: Vec<String> = Vec::new();
        let mut indents = self.indents.iter().filter(|(r, _)| touches(*r, *r)).peekable();
        for (a, b, t) in &self.tokens {
            while let Some((r, n)) = indents.peek() {
                if *r > *a {
                    break;
                }
                out.push(format!("\u{1f}indent {n}"));
                indents.next();
            }
            if touches(*a, *b) {
                out.push(t.clone());
            }
        }
        out
    }

    /// Whether every one of `rows` lies in test code.
    pub fn all_tests(&self, rows: &[u32]) -> bool {
        !rows.is_empty() && rows.iter().all(|r| self.tests.iter().any(|(a, b)| a <= r && r <= b))
    }

    /// The innermost definition around 1-based `line`.
    pub fn around(&self, line: u32) -> Option<&Def> {
        self.defs
            .iter()
            .filter(|d| d.start <= line && line <= d.end)
            .min_by_key(|d| d.end - d.start)
    }
}

/// The grammar for a file, by its language and (for TSX) its extension.
pub fn grammar(path: &str, language: Option<&str>) -> Option<Language> {
    Some(match language? {
        "rust" => tree_sitter_rust::LANGUAGE.into(),
        "python" => tree_sitter_python::LANGUAGE.into(),
        "java" => tree_sitter_java::LANGUAGE.into(),
        "javascript" => tree_sitter_javascript::LANGUAGE.into(),
        "typescript" if path.ends_with(".tsx") => tree_sitter_typescript::LANGUAGE_TSX.into(),
        "typescript" => tree_sitter_typescript::LANGUAGE_TYPESCRIPT.into(),
        "go" => tree_sitter_go::LANGUAGE.into(),
        "c" => tree_sitter_c::LANGUAGE.into(),
        "cpp" => tree_sitter_cpp::LANGUAGE.into(),
        _ => return None,
    })
}

/// Parses `text` as `language` and reads the parts of the tree that touch `rows` (0-based,
/// sorted): the tokens, tests and definitions there. The whole file is parsed (a part alone
/// would not parse), but only the nodes over those rows are walked.
pub fn parse(path: &str, language: Option<&str>, text: &str, rows: &[u32]) -> Result<SideTree, NotParsed> {
    let tree = tree_of(path, language, text)?;
    Ok(read(tree.root_node(), text.as_bytes(), language.unwrap_or(""), rows))
}

/// Parses `text` as `language` and reads, over the whole file, whether it has a syntax error
/// and its [`Names`].
pub fn outline(path: &str, language: Option<&str>, text: &str) -> Result<(bool, Names), NotParsed> {
    let tree = tree_of(path, language, text)?;
    let root = tree.root_node();
    Ok((
        first_error(root, text.as_bytes(), language.unwrap_or("")).is_some(),
        names(root, text.as_bytes(), language.unwrap_or("")),
    ))
}

/// The tree of `text` under its grammar, bounded by [`MAX_BYTES`] and [`TIME_LIMIT`].
fn tree_of(path: &str, language: Option<&str>, text: &str) -> Result<tree_sitter::Tree, NotParsed> {
    let grammar = grammar(path, language).ok_or(NotParsed::NoGrammar)?;
    if text.len() > MAX_BYTES {
        return Err(NotParsed::TooLarge);
    }
    let mut parser = Parser::new();
    // A grammar of another ABI than the library's: say so as having no grammar.
    parser.set_language(&grammar).map_err(|_| NotParsed::NoGrammar)?;
    let start = Instant::now();
    let mut stop = |_: &tree_sitter::ParseState| {
        if start.elapsed() > TIME_LIMIT {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    };
    let bytes = text.as_bytes();
    let mut input = |at: usize, _| bytes.get(at..).unwrap_or(&[]);
    let options = ParseOptions::new().progress_callback(&mut stop);
    parser
        .parse_with_options(&mut input, None, Some(options))
        .ok_or(NotParsed::Timeout)
}

fn read(root: Node, src: &[u8], language: &str, rows: &[u32]) -> SideTree {
    let mut out = SideTree::default();
    let mut cursor = root.walk();
    let mut last_indent_row = None;
    let touches = |n: Node| {
        let (a, b) = (n.start_position().row as u32, n.end_position().row as u32);
        let i = rows.partition_point(|&r| r < a);
        rows.get(i).is_some_and(|&r| r <= b)
    };
    loop {
        let node = cursor.node();
        let descend = touches(node) && visit(node, src, language, &mut out, &mut last_indent_row);
        if !advance(&mut cursor, descend) {
            break;
        }
    }
    if root.has_error() {
        out.error = first_error(root, src, language);
    }
    out
}

/// Moves to the next node in document order: into the node's children when `descend`,
/// else past its subtree; false at the end.
fn advance(cursor: &mut TreeCursor, descend: bool) -> bool {
    (descend && cursor.goto_first_child()) || next(cursor)
}

/// Moves to the next node in document order after a subtree; false at the end.
fn next(cursor: &mut TreeCursor) -> bool {
    loop {
        if cursor.goto_next_sibling() {
            return true;
        }
        if !cursor.goto_parent() {
            return false;
        }
    }
}

/// Records what `node` says; returns whether its children are worth reading.
fn visit(node: Node, src: &[u8], language: &str, out: &mut SideTree, last_indent_row: &mut Option<u32>) -> bool {
    let kind = node.kind();
    if kind.contains("comment") || is_docstring(node, language) {
        return false;
    }
    if let Some(def) = definition(node, src, language) {
        out.defs.push(def);
    }
    if is_test(node, src, language) {
        out.tests
            .push((node.start_position().row as u32, node.end_position().row as u32));
    }
    let atom = is_string(kind);
    if atom || node.child_count() == 0 {
        let text = node.utf8_text(src).unwrap_or("");
        if !text.is_empty() {
            let (a, b) = (node.start_position(), node.end_position());
            if language == "python" && *last_indent_row != Some(a.row as u32) {
                out.indents.push((a.row as u32, a.column));
                *last_indent_row = Some(a.row as u32);
            }
            out.tokens.push((a.row as u32, b.row as u32, text.to_string()));
        }
        return false;
    }
    true
}

fn is_string(kind: &str) -> bool {
    kind.ends_with("string")
        || kind.ends_with("string_literal")
        || kind == "char_literal"
        || kind == "rune_literal"
        || kind == "character_literal"
        || kind == "template_string"
        || kind == "text_block"
}

/// A Python statement that is only a string: a docstring, documentation rather than code.
fn is_docstring(node: Node, language: &str) -> bool {
    language == "python"
        && node.kind() == "expression_statement"
        && node.named_child_count() == 1
        && node
            .named_child(0)
            .is_some_and(|c| matches!(c.kind(), "string" | "concatenated_string"))
}

/// The attributes, annotations or decorators written just before `node`.
fn preceding_attributes(node: Node, src: &[u8]) -> String {
    let mut text = String::new();
    let mut at = node.prev_named_sibling();
    while let Some(p) = at {
        match p.kind() {
            "attribute_item" => text.push_str(p.utf8_text(src).unwrap_or("")),
            k if k.contains("comment") => {}
            _ => break,
        }
        at = p.prev_named_sibling();
    }
    text
}

/// Test code inside a file by its language's conventions: Rust `#[cfg(test)]` modules and
/// `#[test]` functions, Python `test_*` functions and `Test*` classes, Java `@Test` methods,
/// JavaScript/TypeScript `describe`/`it`/`test` blocks, Go `Test*`/`Benchmark*`/`Fuzz*` functions.
fn is_test(node: Node, src: &[u8], language: &str) -> bool {
    let name = || {
        node.child_by_field_name("name")
            .and_then(|n| n.utf8_text(src).ok())
            .unwrap_or("")
    };
    match (language, node.kind()) {
        ("rust", "mod_item") => preceding_attributes(node, src).replace(' ', "").contains("cfg(test)"),
        ("rust", "function_item") => {
            let attrs = preceding_attributes(node, src);
            attrs.contains("test]") || attrs.contains("::test")
        }
        ("python", "function_definition") => name().starts_with("test"),
        ("python", "class_definition") => name().starts_with("Test"),
        ("java", "method_declaration") => node
            .child(0)
            .filter(|m| m.kind() == "modifiers")
            .and_then(|m| m.utf8_text(src).ok())
            .is_some_and(|m| m.contains("@Test") || m.contains("@ParameterizedTest") || m.contains("@RepeatedTest")),
        ("javascript" | "typescript", "call_expression") => node
            .child_by_field_name("function")
            .and_then(|f| f.utf8_text(src).ok())
            .is_some_and(|f| matches!(f, "describe" | "it" | "test")),
        ("go", "function_declaration") => {
            let n = name();
            ["Test", "Benchmark", "Fuzz"].iter().any(|p| n.starts_with(p))
        }
        _ => false,
    }
}

/// `node` as a definition a hunk can sit in, with its name.
fn definition(node: Node, src: &[u8], language: &str) -> Option<Def> {
    let inside = |kinds: &[&str]| {
        let mut p = node.parent();
        while let Some(n) = p {
            if kinds.contains(&n.kind()) {
                return true;
            }
            p = n.parent();
        }
        false
    };
    let field = |f: &str| node.child_by_field_name(f);
    let (kind, name): (&'static str, Option<Node>) = match (language, node.kind()) {
        ("rust", "function_item") if inside(&["impl_item", "trait_item"]) => ("method", field("name")),
        ("rust", "function_item") => ("function", field("name")),
        ("rust", "impl_item") => ("impl", field("type")),
        ("rust", "trait_item") => ("trait", field("name")),
        ("rust", "struct_item") => ("struct", field("name")),
        ("rust", "enum_item") => ("enum", field("name")),
        ("rust", "mod_item") if field("body").is_some() => ("module", field("name")),
        ("python", "function_definition") if inside(&["class_definition"]) => ("method", field("name")),
        ("python", "function_definition") => ("function", field("name")),
        ("python", "class_definition") => ("class", field("name")),
        ("java", "method_declaration") => ("method", field("name")),
        ("java", "constructor_declaration") => ("constructor", field("name")),
        ("java", "class_declaration" | "record_declaration") => ("class", field("name")),
        ("java", "interface_declaration") => ("interface", field("name")),
        ("java", "enum_declaration") => ("enum", field("name")),
        ("javascript" | "typescript", "function_declaration" | "generator_function_declaration") => {
            ("function", field("name"))
        }
        ("javascript" | "typescript", "method_definition") => ("method", field("name")),
        ("javascript" | "typescript", "class_declaration" | "class") if field("name").is_some() => {
            ("class", field("name"))
        }
        ("typescript", "interface_declaration") => ("interface", field("name")),
        ("javascript" | "typescript", "variable_declarator")
            if field("value").is_some_and(|v| is_function(v.kind())) =>
        {
            ("function", field("name"))
        }
        ("javascript" | "typescript", "pair") if field("value").is_some_and(|v| is_function(v.kind())) => {
            ("method", field("key"))
        }
        ("javascript" | "typescript", "assignment_expression")
            if field("right").is_some_and(|v| is_function(v.kind())) =>
        {
            ("function", field("left"))
        }
        ("go", "function_declaration") => ("function", field("name")),
        ("go", "method_declaration") => ("method", field("name")),
        ("go", "type_spec") => ("type", field("name")),
        ("c" | "cpp", "function_definition") if inside(&["class_specifier", "struct_specifier"]) => {
            ("method", declared_name(node))
        }
        ("c" | "cpp", "function_definition") => ("function", declared_name(node)),
        ("c" | "cpp", "struct_specifier") if field("body").is_some() => ("struct", field("name")),
        ("cpp", "class_specifier") if field("body").is_some() => ("class", field("name")),
        ("cpp", "namespace_definition") => ("namespace", field("name")),
        _ => return None,
    };
    let name: String = name?
        .utf8_text(src)
        .ok()?
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let name: String = name.chars().filter(|c| !c.is_control()).take(120).collect();
    Some(Def {
        kind,
        name,
        start: node.start_position().row as u32 + 1,
        end: node.end_position().row as u32 + 1,
    })
}

fn is_function(kind: &str) -> bool {
    matches!(
        kind,
        "arrow_function" | "function_expression" | "function" | "generator_function"
    )
}

/// The name a C/C++ function definition declares: down its `declarator` fields to the identifier.
fn declared_name(node: Node) -> Option<Node> {
    let mut at = node.child_by_field_name("declarator")?;
    for _ in 0..16 {
        match at.kind() {
            "identifier" | "field_identifier" | "qualified_identifier" | "destructor_name" | "operator_name" => {
                return Some(at);
            }
            _ => at = at.child_by_field_name("declarator")?,
        }
    }
    None
}

/// The names one side of a file declares and how often each identifier occurs in it, over
/// the whole file: what tells an edit that removes a declaration the code still uses
/// (`super::breaks`). Declarations are read the same way in every grammar: the name of a
/// function, method, type, field, variable, parameter or constant, or of a TypeScript
/// signature (a `name`, `declarator`,
/// `pattern` field that is an identifier, a Python assignment's or Go `:=`'s left side), and
/// the last name an import brings in. Names a grammar hides elsewhere (macros, `for` or
/// `with` targets, glob imports) are not known to be declared, so they are never reported.
/// `exported` holds what a JavaScript or TypeScript module exports by name (`export { a, b as
/// c }`, `export function f`, `export const x`, `export default`: `default`); `members` counts
/// what a TypeScript type describes: its signatures (call, construct, method, property,
/// index) and the members of its unions.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Names {
    pub declared: HashMap<String, usize>,
    pub used: HashMap<String, usize>,
    pub exported: HashMap<String, usize>,
    pub members: usize,
}

fn names(root: Node, src: &[u8], language: &str) -> Names {
    let mut out = Names::default();
    let mut buf = String::new();
    let mut cursor = root.walk();
    loop {
        let node = cursor.node();
        let kind = node.kind();
        if node.child_count() == 0 && kind.contains("identifier") {
            count(&mut out.used, node, src, language, &mut buf);
        }
        for name in declared(node) {
            count(&mut out.declared, name, src, language, &mut buf);
        }
        for name in exported(node) {
            count(&mut out.exported, name, src, language, &mut buf);
        }
        out.members += members(node);
        let descend = !kind.contains("comment");
        if !advance(&mut cursor, descend) {
            break;
        }
    }
    out
}

/// Counts identifier `node` in `map` under its key: its text, after a `.` for a member's name
/// (a field or method named after a `.`, or declared as one), so that `c.engine.trusted` does
/// not count as a use of a local `trusted`, nor a local as a field's declaration. Go's and
/// Python's blank `_` names nothing. `buf` is scratch space, so that a name already counted
/// costs no allocation.
fn count(map: &mut HashMap<String, usize>, node: Node, src: &[u8], language: &str, buf: &mut String) {
    let Ok(text) = node.utf8_text(src) else { return };
    if text == "_" {
        return;
    }
    // Python's attributes are plain identifiers; only their parent tells (and finding a
    // node's parent walks down from the root, so only Python asks).
    let python_attribute = language == "python"
        && node
            .parent()
            .filter(|p| p.kind() == "attribute")
            .and_then(|p| p.child_by_field_name("attribute"))
            .is_some_and(|a| a.id() == node.id());
    let member = matches!(node.kind(), "field_identifier" | "property_identifier") || python_attribute;
    let key = if member {
        buf.clear();
        buf.push('.');
        buf.push_str(text);
        buf.as_str()
    } else {
        text
    };
    match map.get_mut(key) {
        Some(n) => *n += 1,
        None => {
            map.insert(key.to_string(), 1);
        }
    }
}

/// The names a JavaScript/TypeScript destructuring pattern binds (`{ a, b: c, d = 1, ...e }`,
/// `[f, g]`), down `depth` levels of nested patterns; not the keys it reads or the defaults.
fn pattern_names<'a>(node: Node<'a>, depth: u8, out: &mut Vec<Node<'a>>) {
    if depth == 0 {
        return;
    }
    let mut cursor = node.walk();
    for c in node.named_children(&mut cursor) {
        let bound = match c.kind() {
            "pair_pattern" => c.child_by_field_name("value"),
            "object_assignment_pattern" | "assignment_pattern" => c.child_by_field_name("left"),
            "rest_pattern" => c.named_child(0),
            _ => Some(c),
        };
        match bound {
            Some(b) if matches!(b.kind(), "identifier" | "shorthand_property_identifier_pattern") => out.push(b),
            Some(b) if matches!(b.kind(), "object_pattern" | "array_pattern") => pattern_names(b, depth - 1, out),
            _ => {}
        }
    }
}

/// The names a JavaScript/TypeScript `export` names (see [`Names`]): a specifier's alias, else
/// its name; a declaration's names; the keyword of `export default` (counted as `default`).
fn exported(node: Node) -> Vec<Node> {
    let mut out = Vec::new();
    match node.kind() {
        "export_specifier" => {
            out.extend(
                node.child_by_field_name("alias")
                    .or_else(|| node.child_by_field_name("name")),
            );
        }
        "export_statement" => {
            if let Some(d) = node.child_by_field_name("declaration") {
                if d.kind() == "lexical_declaration" || d.kind() == "variable_declaration" {
                    let mut cursor = d.walk();
                    for v in d.named_children(&mut cursor) {
                        out.extend(v.child_by_field_name("name").filter(|n| n.kind() == "identifier"));
                    }
                } else {
                    out.extend(d.child_by_field_name("name"));
                }
            }
            let mut cursor = node.walk();
            out.extend(node.children(&mut cursor).find(|c| c.kind() == "default"));
        }
        _ => {}
    }
    out
}

/// How many members of a TypeScript type `node` adds (see [`Names`]): 1 for a signature,
/// and for a union, each of its alternatives that is not itself a union.
fn members(node: Node) -> usize {
    match node.kind() {
        "call_signature" | "construct_signature" | "method_signature" | "property_signature" | "index_signature" => 1,
        "union_type" => {
            let mut cursor = node.walk();
            node.named_children(&mut cursor)
                .filter(|c| c.kind() != "union_type")
                .count()
        }
        _ => 0,
    }
}

/// The identifier nodes `node` declares (see [`Names`]); not Rust's `extern crate`, which
/// since the 2018 edition a crate's paths do not need.
fn declared(node: Node) -> Vec<Node> {
    let kind = node.kind();
    let is_name = |n: &Node| n.child_count() == 0 && n.kind().contains("identifier");
    let mut out = Vec::new();
    let declaring = [
        "_declaration",
        "_declarator",
        "_definition",
        "_item",
        "_spec",
        "_signature",
        "parameter",
    ]
    .iter()
    .any(|end| kind.ends_with(end))
        && kind != "extern_crate_declaration";
    if declaring {
        for field in ["name", "declarator", "pattern", "left"] {
            let mut cursor = node.walk();
            for child in node.children_by_field_name(field, &mut cursor) {
                match child {
                    c if is_name(&c) => out.push(c),
                    // JavaScript's and TypeScript's `const { a, b: c, ...d } = o`, `[e, f] = l`.
                    c if matches!(c.kind(), "object_pattern" | "array_pattern") => pattern_names(c, 8, &mut out),
                    // Go's `a, b := ...`.
                    c if c.kind() == "expression_list" => {
                        let mut inner = c.walk();
                        out.extend(c.named_children(&mut inner).filter(is_name));
                    }
                    // C's `*p`, `a[4]`, `f(int)`: down the declarators to the name.
                    c if field == "declarator"
                        && c.kind().ends_with("_declarator")
                        && c.kind() != "init_declarator" =>
                    {
                        let mut at = c;
                        for _ in 0..16 {
                            match at.child_by_field_name("declarator") {
                                Some(d) if is_name(&d) => {
                                    out.push(d);
                                    break;
                                }
                                Some(d) if d.kind().ends_with("_declarator") => at = d,
                                _ => break,
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    match kind {
        // Python: a name assigned, a parameter without a default or type.
        "assignment" => out.extend(node.child_by_field_name("left").filter(is_name)),
        "parameters" => {
            let mut cursor = node.walk();
            out.extend(node.named_children(&mut cursor).filter(is_name));
        }
        "typed_parameter" => out.extend(node.named_child(0).filter(is_name)),
        // The last name an import brings in (Java, Python, JavaScript/TypeScript, Rust).
        "import_declaration"
        | "import_statement"
        | "import_from_statement"
        | "import_specifier"
        | "import_clause"
        | "namespace_import"
        | "use_declaration"
        | "aliased_import"
        | "use_as_clause" => {
            let mut last = None;
            let mut cursor = node.walk();
            loop {
                let n = cursor.node();
                if is_name(&n) {
                    last = Some(n);
                }
                // A cursor made from `node` stays inside it.
                if !advance(&mut cursor, true) {
                    break;
                }
            }
            out.extend(last);
        }
        _ => {}
    }
    out
}

/// Where the tree first shows an error or a missing token, and what is there. Rust's
/// `try!` (the 2015 edition's macro; `try` is a keyword to the grammar) is not an error.
fn first_error(root: Node, src: &[u8], language: &str) -> Option<(u32, String)> {
    let mut cursor = root.walk();
    loop {
        let node = cursor.node();
        if node.is_missing() {
            let what = format!("missing `{}`", node.kind());
            return Some((node.start_position().row as u32 + 1, what));
        }
        let text = node.utf8_text(src).unwrap_or("");
        let old_try = language == "rust" && text.starts_with("try!");
        if node.is_error() && !old_try {
            let near: String = text
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .chars()
                .take(40)
                .collect();
            return Some((node.start_position().row as u32 + 1, format!("unexpected `{near}`")));
        }
        let descend = node.has_error() && !old_try;
        if !advance(&mut cursor, descend) {
            return None;
        }
    }
}

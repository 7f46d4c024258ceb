//! The parsed reading, language by language: a comment-only change and a reformat are no
//! change of code, a change inside a test module or test function of a source file is test
//! code, the context names the enclosing function, and a syntax error the change brings is
//! found (and one the old side already had, or a C preprocessor's, is not).

use super::*;
use crate::diff::{FileStatus, OldNew};

/// The change from `old` to `new` at `path` as the git stage would give it (3 lines of context).
fn change(path: &str, old: &str, new: &str) -> FileDiff {
    let diff = similar::TextDiff::from_lines(old, new);
    let text = diff.unified_diff().context_radius(3).to_string();
    let mut hunks = Vec::new();
    let mut header: Option<String> = None;
    let mut body: Vec<&str> = Vec::new();
    for line in text.lines() {
        if line.starts_with("@@") {
            if let Some(h) = header.take() {
                hunks.push(Hunk::parse(&h, &body.join("\n")).unwrap());
            }
            header = Some(line.to_string());
            body.clear();
        } else if !line.starts_with("\\") {
            body.push(line);
        }
    }
    if let Some(h) = header {
        hunks.push(Hunk::parse(&h, &body.join("\n")).unwrap());
    }
    FileDiff {
        path: OldNew {
            old: Some(path.into()),
            new: Some(path.into()),
        },
        status: FileStatus::Modified,
        mode: OldNew {
            old: Some(0o100644),
            new: Some(0o100644),
        },
        language: crate::diff::language_of(path),
        hunks,
        skip: None,
    }
}

fn read_change(path: &str, old: &str, new: &str) -> FileSyntax {
    let f = change(path, old, new);
    assert!(!f.hunks.is_empty(), "no hunks for {path}");
    let texts = OldNew {
        old: Some(old.to_string()),
        new: Some(new.to_string()),
    };
    read(std::slice::from_ref(&f), &[texts]).remove(0)
}

fn kinds(path: &str, old: &str, new: &str) -> Vec<Kind> {
    let s = read_change(path, old, new);
    assert_eq!(s.parse, Parse::Parsed, "{path} should parse");
    s.hunks
}

/// One program per language: (path, old text, a comment changed, a reformat, a code change
/// in the function `compute`, a change inside test code, test code's first line).
struct Case {
    path: &'static str,
    old: &'static str,
    comment: (&'static str, &'static str),
    reformat: (&'static str, &'static str),
    code: (&'static str, &'static str),
    test: (&'static str, &'static str),
}

const CASES: &[Case] = &[
    Case {
        path: "src/lib.rs",
        old: "/// Adds.\nfn compute(a: i32) -> i32 {\n    let b = a + 1; // one\n    b * 2\n}\n\n#[cfg(test)]\nmod tests {\n    #[test]\n    fn t() {\n        assert_eq!(super::compute(1), 4);\n    }\n}\n",
        comment: ("let b = a + 1; // one", "let b = a + 1; // plus one"),
        reformat: ("let b = a + 1;", "let b=a+1;"),
        code: ("let b = a + 1;", "let b = a + 2;"),
        test: ("compute(1), 4)", "compute(2), 6)"),
    },
    Case {
        path: "pkg/calc.py",
        old: "def compute(a):\n    \"\"\"Adds one.\"\"\"\n    b = a + 1  # one\n    return b * 2\n\n\ndef test_compute():\n    assert compute(1) == 4\n",
        comment: ("\"\"\"Adds one.\"\"\"", "\"\"\"Adds one, then doubles.\"\"\""),
        reformat: ("b = a + 1", "b = a+1"),
        code: ("b = a + 1", "b = a + 2"),
        test: ("compute(1) == 4", "compute(2) == 6"),
    },
    Case {
        path: "src/main/java/Calc.java",
        old: "class Calc {\n    /** Adds. */\n    int compute(int a) {\n        int b = a + 1; // one\n        return b * 2;\n    }\n\n    @Test\n    void works() {\n        assertEquals(4, compute(1));\n    }\n}\n",
        comment: ("// one", "// plus one"),
        reformat: ("int b = a + 1;", "int b = a+1;"),
        code: ("int b = a + 1;", "int b = a + 2;"),
        test: ("assertEquals(4, compute(1));", "assertEquals(6, compute(2));"),
    },
    Case {
        path: "lib/calc.js",
        old: "// Adds.\nfunction compute(a) {\n  const b = a + 1; // one\n  return b * 2;\n}\n\ndescribe('compute', () => {\n  it('adds', () => {\n    expect(compute(1)).toBe(4);\n  });\n});\n",
        comment: ("// one", "// plus one"),
        reformat: ("const b = a + 1;", "const b = a+1;"),
        code: ("const b = a + 1;", "const b = a + 2;"),
        test: ("expect(compute(1)).toBe(4);", "expect(compute(2)).toBe(6);"),
    },
    Case {
        path: "src/calc.ts",
        old: "// Adds.\nexport function compute(a: number): number {\n  const b: number = a + 1; // one\n  return b * 2;\n}\n\ntest('adds', () => {\n  expect(compute(1)).toBe(4);\n});\n",
        comment: ("// one", "// plus one"),
        reformat: ("const b: number = a + 1;", "const b: number = a+1;"),
        code: ("const b: number = a + 1;", "const b: number = a + 2;"),
        test: ("expect(compute(1)).toBe(4);", "expect(compute(2)).toBe(6);"),
    },
    Case {
        path: "calc.go",
        old: "package calc\n\n// Compute adds.\nfunc compute(a int) int {\n\tb := a + 1 // one\n\treturn b * 2\n}\n\nfunc TestCompute(t *testing.T) {\n\tif compute(1) != 4 {\n\t\tt.Fail()\n\t}\n}\n",
        comment: ("// one", "// plus one"),
        reformat: ("b := a + 1", "b := a+1"),
        code: ("b := a + 1", "b := a + 2"),
        test: ("compute(1) != 4", "compute(2) != 6"),
    },
    Case {
        path: "lib/calc.c",
        old: "/* Adds. */\nint compute(int a)\n{\n  int b = a + 1; /* one */\n  return b * 2;\n}\n",
        comment: ("/* one */", "/* plus one */"),
        reformat: ("int b = a + 1;", "int b = a+1;"),
        code: ("int b = a + 1;", "int b = a + 2;"),
        test: ("", ""),
    },
    Case {
        path: "src/calc.cpp",
        old: "// Adds.\nnamespace calc {\nint compute(int a) {\n  int b = a + 1; // one\n  return b * 2;\n}\n}\n",
        comment: ("// one", "// plus one"),
        reformat: ("int b = a + 1;", "int b = a+1;"),
        code: ("int b = a + 1;", "int b = a + 2;"),
        test: ("", ""),
    },
];

fn edited(old: &str, (from, to): (&str, &str)) -> String {
    assert!(old.contains(from), "{from:?} not in the program");
    old.replacen(from, to, 1)
}

#[test]
fn a_comment_change_and_a_reformat_are_no_change_of_code_in_each_language() {
    for c in CASES {
        assert_eq!(
            kinds(c.path, c.old, &edited(c.old, c.comment)),
            vec![Kind::Comments],
            "{}",
            c.path
        );
        assert_eq!(
            kinds(c.path, c.old, &edited(c.old, c.reformat)),
            vec![Kind::Reformat],
            "{}",
            c.path
        );
        assert_eq!(
            kinds(c.path, c.old, &edited(c.old, c.code)),
            vec![Kind::Code],
            "{}",
            c.path
        );
    }
}

#[test]
fn a_change_inside_test_code_of_a_source_file_is_test_code() {
    for c in CASES.iter().filter(|c| !c.test.0.is_empty()) {
        let s = read_change(c.path, c.old, &edited(c.old, c.test));
        assert_eq!(s.role, Role::Source, "{}", c.path);
        assert_eq!(s.hunks, vec![Kind::Test], "{}", c.path);
        assert!(!s.is_production(0), "{}", c.path);
    }
}

#[test]
fn the_context_names_the_enclosing_function() {
    for c in CASES {
        let s = read_change(c.path, c.old, &edited(c.old, c.code));
        let ctx = s.contexts[0]
            .as_ref()
            .unwrap_or_else(|| panic!("no context in {}", c.path));
        assert_eq!(ctx.name, "compute", "{}", c.path);
        let expected = if c.path.ends_with(".java") {
            "method"
        } else {
            "function"
        };
        assert_eq!(ctx.kind, expected, "{}", c.path);
        let line = c.old.lines().position(|l| l.contains(c.code.0)).unwrap() as u32 + 1;
        assert!(
            ctx.start < line && line <= ctx.end,
            "{}: {ctx:?} around line {line}",
            c.path
        );
    }
    // A method of a Python class, and a Rust method in an impl.
    let py = "class A:\n    def run(self):\n        return 1\n";
    let s = read_change("a.py", py, &py.replace("return 1", "return 2"));
    assert_eq!(
        s.contexts[0].as_ref().map(|c| (c.kind, c.name.as_str())),
        Some(("method", "run"))
    );
    let rs = "struct A;\nimpl A {\n    fn run(&self) -> u8 {\n        1\n    }\n}\n";
    let s = read_change("a.rs", rs, &rs.replace("        1\n", "        2\n"));
    assert_eq!(
        s.contexts[0].as_ref().map(|c| (c.kind, c.name.as_str())),
        Some(("method", "run"))
    );
}

#[test]
fn a_syntax_error_the_change_brings_is_found() {
    let cases = [
        ("a.rs", "fn f() {\n    g(1);\n}\n", "fn f() {\n    g(1;\n}\n"),
        ("a.py", "def f():\n    return g(1)\n", "def f():\n    return g(1\n"),
        (
            "A.java",
            "class A {\n  void f() {\n    g(1);\n  }\n}\n",
            "class A {\n  void f() {\n    g(1;\n  }\n}\n",
        ),
        (
            "a.js",
            "function f() {\n  if (a) {\n    g(1);\n  }\n}\n",
            "function f() {\n  if (a {\n    g(1);\n  }\n}\n",
        ),
        (
            "a.go",
            "package a\n\nfunc f() {\n\tg(1)\n}\n",
            "package a\n\nfunc f() {\n\tg(1\n}\n",
        ),
    ];
    for (path, old, new) in cases {
        let s = read_change(path, old, new);
        assert_eq!(s.parse, Parse::ParseError, "{path}");
        let e = s.error.as_ref().unwrap_or_else(|| panic!("no error found in {path}"));
        assert_eq!(e.hunk, 0, "{path}");
        assert!(e.line >= 2 && e.line <= 4, "{path}: {e:?}");
        // The same text on both sides: the error is not the change's.
        let s = read_change(path, new, &format!("{new}\n"));
        assert_eq!(s.error, None, "{path}: the old side had the error already");
    }
    // C is read before its preprocessor: what looks like an error there is not a finding.
    let old = "int f(void) {\n  return g(1);\n}\n";
    let s = read_change("a.c", old, &old.replace("g(1)", "g(1"));
    assert_eq!(s.error, None);
}

#[test]
fn a_file_without_a_grammar_or_its_text_falls_back_and_says_why() {
    let f = change("run.sh", "echo a\n", "echo b\n");
    let s = read(std::slice::from_ref(&f), &[]).remove(0);
    assert_eq!((s.parse, s.hunks.clone()), (Parse::NoGrammar, vec![Kind::Code]));
    let f = change("a.rs", "fn f() {}\n", "fn f() { g() }\n");
    let s = read(std::slice::from_ref(&f), &[]).remove(0);
    assert_eq!((s.parse, s.hunks.clone()), (Parse::NoText, vec![Kind::Code]));
    assert_eq!(s.contexts, vec![None]);
}

#[test]
fn hostile_files_fall_back_without_a_panic() {
    // Too large for the parser: the heuristics read it.
    let big = "let x = 1;\n".repeat(tree::MAX_BYTES / 10);
    let old = format!("fn f() {{\n{big}}}\n");
    let new = old.replacen("let x = 1;", "let x = 2;", 1);
    let s = read_change("a.rs", &old, &new);
    assert_eq!((s.parse, s.hunks.clone()), (Parse::TooLarge, vec![Kind::Code]));
    // Deep nesting: read by a cursor, not by recursion.
    let deep = format!("fn f() {{ let x = {}1{}; }}\n", "(".repeat(20_000), ")".repeat(20_000));
    let s = read_change("a.rs", &deep, &deep.replace("let x", "let y"));
    assert_eq!(s.hunks, vec![Kind::Code]);
    // Bytes that are no language at all.
    let junk: String = (0..5_000u32)
        .map(|i| char::from_u32(33 + (i * 7919) % 90).unwrap())
        .collect();
    let s = read_change("a.py", &junk, &format!("{junk}x"));
    assert_eq!(s.hunks.len(), 1);
}

/// `breaks` on the edit of `old` by `(from, to)` at `path`.
fn breaks_after(path: &str, old: &str, (from, to): (&str, &str)) -> Option<String> {
    let language = crate::diff::language_of(path);
    let new = edited(old, (from, to));
    breaks(
        &outline(path, language, old).unwrap(),
        &outline(path, language, &new).unwrap(),
    )
}

#[test]
fn an_edit_that_deletes_a_declaration_the_file_still_uses_breaks_it_in_each_language() {
    // The regression: suggestions deleted a field, a variable or an import the rest of the file
    // reads (kafka's `private final ProducerSupplier producerSupplier;`), which cannot compile.
    let java = "import java.util.List;\nclass A {\n    private final int count;\n    A(int n) {\n        this.count = n;\n        List<Integer> l = null;\n    }\n    int twice() {\n        int t = count * 2;\n        return t;\n    }\n}\n";
    let rust = "use std::io::Read;\nfn f(r: &mut dyn Read) -> usize {\n    let n = 4;\n    let mut b = vec![0; n];\n    r.read(&mut b).unwrap_or(n)\n}\n";
    let go = "package a\n\nfunc f() int {\n\tx := 3\n\ty := 4\n\treturn x + y\n}\n";
    let py = "import os\n\ndef f(path):\n    base = os.path.dirname(path)\n    return base\n";
    let js = "import { join } from 'path';\nconst root = '/';\nfunction f(a) {\n  return join(root, a);\n}\n";
    let c = "int f(int a) {\n    int b = a * 2;\n    return b + 1;\n}\n";
    let ts = "interface E {\n  code: string;\n  cause?: Error;\n}\nfunction f(e: E) {\n  return e.cause;\n}\n";
    // A TypeScript declaration file's declarations are read by other files.
    let dts =
        "export interface E {\n  code: string;\n  cause?: Error;\n}\nexport function getAdapter(name: string): E;\n";
    let header = "struct s;\nint f(int a);\nint g(void);\n";
    for (path, old, edit, name) in [
        ("index.d.ts", dts, ("  cause?: Error;\n", ""), "cause"),
        (
            "index.d.cts",
            dts,
            ("export function getAdapter(name: string): E;\n", ""),
            "getAdapter",
        ),
    ] {
        let want = format!("`{name}` no longer declared, in a file other files read it from");
        assert_eq!(breaks_after(path, old, edit), Some(want), "{path}: {edit:?}");
    }
    // The same deletion where the file is its own reader: nothing uses it. A C header's stale
    // prototype is a deletion real fixes make (jq's `int jvp_number_is_nan(jv);`).
    assert_eq!(breaks_after("a.ts", dts, ("  cause?: Error;\n", "")), None);
    assert_eq!(breaks_after("a.h", header, ("int g(void);\n", "")), None);
    let strukt = "struct S {\n    n: u8,\n}\nimpl S {\n    fn get(&self) -> u8 {\n        self.n\n    }\n}\n";
    // A local whose name a field shares (gin's `trustedCIDRs, _ := ...` beside
    // `c.engine.trustedCIDRs`), and a crate the 2018 edition needs no `extern crate` for.
    // gin's also had a `for _, cidr := range`: Go's blank `_` names nothing.
    let member = "package a\n\nfunc f(c *C) bool {\n\ttrusted, _ := c.prepare()\n\tc.trusted = trusted\n\tfor _, r := range c.trusted {\n\t\t_ = r\n\t}\n\treturn c.trusted != nil\n}\n";
    let krate = "extern crate ignore;\n\nuse ignore::Walk;\n\nfn f(w: Walk) -> Walk {\n    w\n}\n";
    for (path, old, edit, name) in [
        ("A.java", java, ("    private final int count;\n", ""), "count"),
        ("A.java", java, ("        int t = count * 2;\n", ""), "t"),
        ("A.java", java, ("import java.util.List;\n", ""), "List"),
        ("a.rs", rust, ("    let n = 4;\n", ""), "n"),
        ("a.rs", rust, ("use std::io::Read;\n", ""), "Read"),
        ("a.go", go, ("\tx := 3\n", ""), "x"),
        ("a.py", py, ("    base = os.path.dirname(path)\n", ""), "base"),
        ("a.py", py, ("import os\n", ""), "os"),
        ("a.py", py, ("def f(path):", "def f():"), "path"),
        ("a.js", js, ("const root = '/';\n", ""), "root"),
        ("a.js", js, ("import { join } from 'path';\n", ""), "join"),
        ("a.c", c, ("    int b = a * 2;\n", ""), "b"),
        ("a.c", c, ("int f(int a) {", "int f(void) {"), "a"),
        ("a.rs", strukt, ("    n: u8,\n", ""), "n"),
        ("a.ts", ts, ("  cause?: Error;\n", ""), "cause"),
    ] {
        let why = breaks_after(path, old, edit);
        assert_eq!(
            why.as_deref(),
            Some(format!("`{name}` used but no longer declared").as_str()),
            "{path}: {edit:?}"
        );
    }
    // Edits that leave every used name declared: a statement deleted, an unused declaration
    // deleted, a declaration renamed with its uses, a value changed.
    for (path, old, edit) in [
        ("A.java", java, ("        List<Integer> l = null;\n", "")),
        ("A.java", java, ("        this.count = n;\n", "")),
        ("a.rs", rust, ("n = 4", "n = 5")),
        (
            "a.go",
            go,
            (
                "\tx := 3\n\ty := 4\n\treturn x + y\n",
                "\tz := 3\n\ty := 4\n\treturn z + y\n",
            ),
        ),
        ("a.py", py, ("    return base\n", "    return path\n")),
        ("a.c", c, ("    return b + 1;\n", "    return 1;\n")),
        (
            "a.go",
            member,
            ("\ttrusted, _ := c.prepare()\n\tc.trusted = trusted\n", ""),
        ),
        ("a.rs", krate, ("extern crate ignore;\n", "")),
    ] {
        assert_eq!(breaks_after(path, old, edit), None, "{path}: {edit:?}");
    }
    // A syntax error where the file parsed breaks it too; C and C++ are not judged on that.
    assert_eq!(
        breaks_after("a.rs", rust, ("let n = 4;", "let n = 4")).as_deref(),
        Some("a syntax error")
    );
    assert_eq!(breaks_after("a.c", c, ("return b + 1;", "return b + 1")), None);
    // No grammar, no outline: nothing to judge by.
    assert_eq!(outline("a.txt", None, "x"), None);
}

#[test]
fn an_edit_that_stops_a_module_exporting_a_name_or_narrows_a_declaration_file_breaks_it() {
    // The regressions, on axios: suggestions deleted `AxiosHeaders,` from index.js's export
    // list, a call signature from index.d.ts's `AxiosInstance`, and `| 'stream'` from its
    // `ResponseType` union. Other modules import or call what these describe.
    let module = "import Axios from './lib/Axios.js';\nimport AxiosHeaders from './lib/AxiosHeaders.js';\nconst axios = new Axios();\nexport function create() {\n  return axios;\n}\nexport const VERSION = '1.0';\nexport {\n  axios as default,\n  Axios,\n  AxiosHeaders,\n};\n";
    for (path, edit, name) in [
        ("index.js", ("  AxiosHeaders,\n", ""), "AxiosHeaders"),
        ("index.ts", ("  axios as default,\n", ""), "default"),
        ("index.mjs", ("export function create", "function create"), "create"),
        ("index.js", ("export const VERSION", "const VERSION"), "VERSION"),
    ] {
        let want = format!("`{name}` no longer exported: other modules may import it");
        assert_eq!(breaks_after(path, module, edit), Some(want), "{path}: {edit:?}");
    }
    let dts = "export interface AxiosInstance {\n  (config: AxiosRequestConfig): AxiosPromise;\n  (url: string, config?: AxiosRequestConfig): AxiosPromise;\n  defaults: AxiosDefaults;\n}\nexport type ResponseType =\n  | 'arraybuffer'\n  | 'json'\n  | 'stream';\n";
    let narrowed = Some("removes a signature or a union's member from a declaration file".to_string());
    for edit in [
        ("  (config: AxiosRequestConfig): AxiosPromise;\n", ""),
        ("  | 'json'\n", ""),
        ("\n  | 'stream';", ";"),
    ] {
        assert_eq!(breaks_after("index.d.ts", dts, edit), narrowed, "{edit:?}");
        // The same edit in a module that is its own reader.
        assert_eq!(breaks_after("types.ts", dts, edit), None, "{edit:?}");
    }
    // axios's index.js destructures what it exports: a name taken out of the pattern is no
    // longer declared, and the export list still names it. A key renamed binds the same name.
    let unwrapped = "import axios from './lib/axios.js';\nconst {\n  Axios,\n  AxiosHeaders,\n  formToJSON: toJSON,\n  ...rest\n} = axios;\nconst [first, { second }] = rest.list;\nexport {\n  axios as default,\n  Axios,\n  AxiosHeaders,\n  toJSON,\n  first,\n  second,\n};\n";
    for (edit, name) in [
        (("  AxiosHeaders,\n", ""), "AxiosHeaders"),
        (("  formToJSON: toJSON,\n", ""), "toJSON"),
        (("[first, {", "[{"), "first"),
        (("{ second }", "{}"), "second"),
    ] {
        let want = format!("`{name}` used but no longer declared");
        assert_eq!(breaks_after("index.js", unwrapped, edit), Some(want), "{edit:?}");
    }
    assert_eq!(
        breaks_after("index.js", unwrapped, ("formToJSON:", "toFormJSON:")),
        None
    );
    // What keeps the exports and the API's shape: an export renamed inside, a type changed, a
    // statement deleted, a name exported another way.
    for (path, old, edit) in [
        ("index.js", module, ("return axios;", "return new Axios();")),
        (
            "index.js",
            module,
            ("  AxiosHeaders,\n};", "};\nexport { AxiosHeaders };"),
        ),
        (
            "index.d.ts",
            dts,
            ("config?: AxiosRequestConfig", "config: AxiosRequestConfig"),
        ),
        ("index.d.ts", dts, ("| 'json'", "| 'text'")),
    ] {
        assert_eq!(breaks_after(path, old, edit), None, "{path}: {edit:?}");
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Arbitrary texts in every grammar's language: no panic, one kind and one context per hunk.
    #[test]
    fn any_text_is_read_without_a_panic(
        pick in 0usize..9,
        old in "[ -~\n\t{}()\\[\\]\"'/*#]{0,300}",
        new in "[ -~\n\t{}()\\[\\]\"'/*#]{0,300}",
    ) {
        let path = ["a.rs", "a.py", "A.java", "a.js", "a.ts", "a.tsx", "a.go", "a.c", "a.cpp"][pick];
        let f = change(path, &old, &new);
        let texts = OldNew { old: Some(old.clone()), new: Some(new.clone()) };
        let s = read(std::slice::from_ref(&f), &[texts]).remove(0);
        proptest::prop_assert_eq!(s.hunks.len(), f.hunks.len());
        proptest::prop_assert_eq!(s.contexts.len(), f.hunks.len());
        for c in s.contexts.iter().flatten() {
            proptest::prop_assert!(c.start <= c.end);
        }
    }
}

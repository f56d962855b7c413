//! YAML (and JSON, which is YAML) into a small tree that remembers where each node was written.
//!
//! Built from `saphyr-parser` events. Scalars are resolved with the YAML 1.2 core schema, as
//! JSON-compatible values. Aliases share their anchor's subtree instead of copying it; the
//! expansion they cause (node count and nesting depth) is bounded so alias bombs and deep
//! nesting stay cheap and cannot exhaust the stack of whoever walks the tree later.

use saphyr_parser::{Event, Parser, ScalarStyle, ScanError, Span, Tag};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

/// Nesting limit (counting through aliases), the same as serde_json's recursion limit.
pub(crate) const MAX_DEPTH: u32 = 128;
/// How many nodes aliases (and merge keys) may add to one document.
pub(crate) const MAX_ALIAS_NODES: u64 = 1_000_000;

/// A 1-based line and column (columns count characters).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Pos {
    pub line: usize,
    pub column: usize,
}

#[derive(Clone, Debug)]
pub(crate) struct Node<'a> {
    pub pos: Pos,
    pub value: Value<'a>,
}

#[derive(Clone, Debug)]
pub(crate) enum Value<'a> {
    Null,
    Bool(bool),
    Int(i64),
    /// Integers above `i64::MAX`.
    UInt(u64),
    Float(f64),
    Str(Cow<'a, str>),
    Seq(Vec<Node<'a>>),
    Map(Vec<Entry<'a>>),
    /// An anchored node, shared by its definition and every alias to it.
    Shared(Rc<Node<'a>>),
}

#[derive(Clone, Debug)]
pub(crate) struct Entry<'a> {
    pub key: Cow<'a, str>,
    pub key_pos: Pos,
    pub value: Node<'a>,
}

impl<'a> Node<'a> {
    /// Follows aliases to the node they stand for.
    pub fn resolved(&self) -> &Node<'a> {
        let mut node = self;
        while let Value::Shared(target) = &node.value {
            node = target;
        }
        node
    }

    pub fn entry(&self, key: &str) -> Option<&Entry<'a>> {
        match &self.resolved().value {
            Value::Map(entries) => entries.iter().find(|e| e.key == key),
            _ => None,
        }
    }

    pub fn get(&self, key: &str) -> Option<&Node<'a>> {
        self.entry(key).map(|e| &e.value)
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.resolved().value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn is_collection(&self) -> bool {
        matches!(self.resolved().value, Value::Seq(_) | Value::Map(_))
    }
}

/// A piece of a stream that holds whole documents, and how many lines precede it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Piece {
    pub start: usize,
    pub end: usize,
    pub first_line: usize,
}

/// Splits a stream before each `---` that starts a new document and after each `...`, so that a
/// syntax error costs one document, not the rest of the stream. YAML forbids these markers at
/// the start of a line inside any node, so the split never cuts one; a misjudged line only
/// leaves two documents in one piece, which still parses.
pub(crate) fn split_documents(text: &str) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let (mut start, mut first_line, mut has_content) = (0, 0, false);
    let (mut offset, mut line_no) = (0, 0);
    for line in text.split_inclusive('\n') {
        if is_marker(line, "---") {
            if has_content {
                pieces.push(Piece {
                    start,
                    end: offset,
                    first_line,
                });
                (start, first_line) = (offset, line_no);
            }
            has_content = true;
        } else if is_marker(line, "...") {
            let end = offset + line.len();
            pieces.push(Piece {
                start,
                end,
                first_line,
            });
            (start, first_line, has_content) = (end, line_no + 1, false);
        } else if !is_ignorable(line) {
            has_content = true;
        }
        offset += line.len();
        line_no += 1 + lone_carriage_returns(line);
    }
    if start < text.len() {
        pieces.push(Piece {
            start,
            end: text.len(),
            first_line,
        });
    }
    pieces
}

/// YAML also breaks lines at a `\r` alone; the parser counts those, so we must too.
fn lone_carriage_returns(line: &str) -> usize {
    let bytes = line.as_bytes();
    bytes
        .iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'\r' && bytes.get(i + 1) != Some(&b'\n'))
        .count()
}

fn is_marker(line: &str, marker: &str) -> bool {
    line.strip_prefix(marker)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\r', '\n']))
}

/// Blank lines, comments and directives do not make a document.
fn is_ignorable(line: &str) -> bool {
    let trimmed = line.trim_start();
    trimmed.is_empty() || trimmed.starts_with('#') || line.starts_with('%')
}

/// A problem that makes one YAML document unusable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct YamlError {
    pub pos: Pos,
    pub message: String,
}

/// The root mapping's `kind` and `apiVersion`, as far as read.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RootSoFar<'r> {
    pub kind: Option<&'r str>,
    pub api_version: Option<&'r str>,
}

/// Receives what a piece holds, in order.
pub(crate) trait Sink<'a> {
    /// An item of the root mapping's `items` list, offered as soon as it is complete so that a
    /// huge `kind: List` need not be held whole. Returning the item keeps it in the tree.
    fn item(&mut self, item: Node<'a>, root: RootSoFar<'_>) -> Option<Node<'a>>;

    /// A finished document, or the error that discarded it. Empty documents are skipped.
    fn document(&mut self, document: Result<Node<'a>, YamlError>);
}

/// A closure takes whole documents only.
impl<'a, F: FnMut(Result<Node<'a>, YamlError>)> Sink<'a> for F {
    fn item(&mut self, item: Node<'a>, _root: RootSoFar<'_>) -> Option<Node<'a>> {
        Some(item)
    }

    fn document(&mut self, document: Result<Node<'a>, YamlError>) {
        self(document);
    }
}

/// Parses one piece into `sink`.
pub(crate) fn parse_piece<'a>(text: &'a str, first_line: usize, sink: &mut impl Sink<'a>) {
    let mut parser = Parser::new_from_str(text);
    let mut doc = DocBuilder::new(first_line, sink);
    while let Some(event) = parser.next_event() {
        match event {
            Ok((event, span)) => doc.on_event(event, span),
            Err(err) => {
                let mut err = scan_error(&err, first_line);
                // At the end of input the parser points past the last line.
                err.pos = err.pos.min(end_of(text, first_line));
                doc.sink.document(Err(err));
                return;
            }
        }
    }
}

/// The position just after the last character of `text`.
fn end_of(text: &str, first_line: usize) -> Pos {
    let last = text.rfind(['\n', '\r']).map_or(0, |i| i + 1);
    let breaks = text.matches('\n').count()
        + text
            .split_inclusive('\n')
            .map(lone_carriage_returns)
            .sum::<usize>();
    Pos {
        line: first_line + breaks + 1,
        column: text[last..].chars().count() + 1,
    }
}

fn scan_error(err: &ScanError, first_line: usize) -> YamlError {
    let mark = err.marker();
    YamlError {
        pos: Pos {
            line: mark.line() + first_line,
            column: mark.col() + 1,
        },
        message: format!("YAML syntax error: {}", err.info()),
    }
}

struct Anchor<'a> {
    node: Rc<Node<'a>>,
    size: u64,
    height: u32,
}

/// A collection being built; `size` and `height` cover its children, aliases expanded.
struct Frame<'a> {
    pos: Pos,
    anchor: usize,
    size: u64,
    height: u32,
    kind: FrameKind<'a>,
}

enum FrameKind<'a> {
    Seq(Vec<Node<'a>>),
    Map {
        entries: Vec<Entry<'a>>,
        key: Option<PendingKey<'a>>,
        merges: Vec<Node<'a>>,
    },
}

enum PendingKey<'a> {
    Key(Cow<'a, str>, Pos),
    /// `<<`: the value is merged into this mapping (YAML 1.1 merge keys, which kubectl accepts).
    Merge,
}

struct DocBuilder<'a, 's, S> {
    sink: &'s mut S,
    first_line: usize,
    frames: Vec<Frame<'a>>,
    anchors: HashMap<usize, Anchor<'a>>,
    alias_nodes: u64,
    root: Option<Node<'a>>,
    /// Set once the document is known to be bad; its remaining events are ignored.
    failed: bool,
}

impl<'a, 's, S: Sink<'a>> DocBuilder<'a, 's, S> {
    fn new(first_line: usize, sink: &'s mut S) -> Self {
        Self {
            sink,
            first_line,
            frames: Vec::new(),
            anchors: HashMap::new(),
            alias_nodes: 0,
            root: None,
            failed: false,
        }
    }

    fn pos(&self, span: &Span) -> Pos {
        Pos {
            line: span.start.line() + self.first_line,
            column: span.start.col() + 1,
        }
    }

    /// Hands a document (or its error) to the sink when it ends or fails.
    fn on_event(&mut self, event: Event<'a>, span: Span) {
        if let Event::DocumentStart(_) = event {
            return self.reset();
        }
        if let Event::DocumentEnd = event {
            let failed = std::mem::replace(&mut self.failed, false);
            let root = self.root.take();
            self.reset();
            if let Some(root) = root
                && !failed
                && !matches!(root.value, Value::Null)
            {
                self.sink.document(Ok(root));
            }
            return;
        }
        if self.failed {
            return;
        }
        let pos = self.pos(&span);
        if let Err(err) = self.apply(event, pos) {
            self.failed = true;
            self.frames.clear();
            self.anchors.clear();
            self.sink.document(Err(err));
        }
    }

    fn reset(&mut self) {
        self.frames.clear();
        self.anchors.clear();
        self.alias_nodes = 0;
        self.root = None;
    }

    fn apply(&mut self, event: Event<'a>, pos: Pos) -> Result<(), YamlError> {
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                if self.expects_key() {
                    let key = if style == ScalarStyle::Plain && tag.is_none() && text == "<<" {
                        PendingKey::Merge
                    } else {
                        PendingKey::Key(text.clone(), pos)
                    };
                    if anchor != 0 {
                        let node = Node {
                            pos,
                            value: Value::Str(text),
                        };
                        self.anchor(anchor, node, 1, 1);
                    }
                    self.set_key(key);
                    return Ok(());
                }
                let value = resolve_scalar(text, style, tag.as_deref());
                self.complete(Node { pos, value }, 1, 1, anchor)
                    .map_err(|message| YamlError { pos, message })
            }
            Event::SequenceStart(anchor, _) => self.open(pos, anchor, FrameKind::Seq(Vec::new())),
            Event::MappingStart(anchor, _) => self.open(
                pos,
                anchor,
                FrameKind::Map {
                    entries: Vec::new(),
                    key: None,
                    merges: Vec::new(),
                },
            ),
            Event::SequenceEnd | Event::MappingEnd => self.close(pos),
            Event::Alias(id) => self
                .alias(id, pos)
                .map_err(|message| YamlError { pos, message }),
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart(_)
            | Event::DocumentEnd => Ok(()),
        }
    }

    fn expects_key(&self) -> bool {
        matches!(
            self.frames.last(),
            Some(Frame {
                kind: FrameKind::Map { key: None, .. },
                ..
            })
        )
    }

    fn set_key(&mut self, pending: PendingKey<'a>) {
        if let Some(Frame {
            kind: FrameKind::Map { key, .. },
            ..
        }) = self.frames.last_mut()
        {
            *key = Some(pending);
        }
    }

    fn open(&mut self, pos: Pos, anchor: usize, kind: FrameKind<'a>) -> Result<(), YamlError> {
        if self.frames.len() as u32 >= MAX_DEPTH {
            let message = format!("nesting deeper than {MAX_DEPTH} levels");
            return Err(YamlError { pos, message });
        }
        self.frames.push(Frame {
            pos,
            anchor,
            size: 0,
            height: 0,
            kind,
        });
        Ok(())
    }

    fn close(&mut self, end: Pos) -> Result<(), YamlError> {
        let Some(frame) = self.frames.pop() else {
            return Ok(());
        };
        let (size, height) = (frame.size + 1, frame.height + 1);
        let value = match frame.kind {
            FrameKind::Seq(items) => Value::Seq(items),
            FrameKind::Map {
                mut entries,
                merges,
                ..
            } => {
                check_duplicate_keys(&entries)?;
                // The merged sources were counted as this mapping's children already.
                for source in merges {
                    merge_into(&mut entries, source)
                        .map_err(|message| YamlError { pos: end, message })?;
                }
                Value::Map(entries)
            }
        };
        let node = Node {
            pos: frame.pos,
            value,
        };
        self.complete(node, size, height, frame.anchor)
            .map_err(|message| YamlError { pos: end, message })
    }

    fn alias(&mut self, id: usize, pos: Pos) -> Result<(), String> {
        let Some(anchor) = self.anchors.get(&id) else {
            return Err("alias to an unknown anchor".to_string());
        };
        let (target, size, height) = (Rc::clone(&anchor.node), anchor.size, anchor.height);
        if self.expects_key() {
            let Value::Str(text) = &target.value else {
                return Err("an alias used as a mapping key must name a string".to_string());
            };
            self.set_key(PendingKey::Key(text.clone(), pos));
            return Ok(());
        }
        self.alias_nodes = self.alias_nodes.saturating_add(size);
        if self.alias_nodes > MAX_ALIAS_NODES {
            return Err(format!(
                "aliases expand to more than {MAX_ALIAS_NODES} nodes (alias bomb?)"
            ));
        }
        let node = Node {
            pos,
            value: Value::Shared(target),
        };
        self.complete(node, size, height, 0)
    }

    fn anchor(&mut self, id: usize, node: Node<'a>, size: u64, height: u32) -> Rc<Node<'a>> {
        let node = Rc::new(node);
        let anchor = Anchor {
            node: Rc::clone(&node),
            size,
            height,
        };
        self.anchors.insert(id, anchor);
        node
    }

    /// Adds a finished node to its parent (or makes it the root).
    fn complete(
        &mut self,
        node: Node<'a>,
        size: u64,
        height: u32,
        anchor: usize,
    ) -> Result<(), String> {
        if self.frames.len() as u32 + height > MAX_DEPTH {
            return Err(format!(
                "nesting deeper than {MAX_DEPTH} levels (aliases included)"
            ));
        }
        let node = if anchor == 0 {
            node
        } else {
            let pos = node.pos;
            let shared = self.anchor(anchor, node, size, height);
            Node {
                pos,
                value: Value::Shared(shared),
            }
        };
        let node = match self.offer_item(node) {
            Some(node) => node,
            None => return Ok(()),
        };
        let Some(parent) = self.frames.last_mut() else {
            self.root = Some(node);
            return Ok(());
        };
        parent.size = parent.size.saturating_add(size);
        parent.height = parent.height.max(height);
        match &mut parent.kind {
            FrameKind::Seq(items) => items.push(node),
            FrameKind::Map {
                entries,
                key,
                merges,
            } => match key.take() {
                Some(PendingKey::Key(key, key_pos)) => entries.push(Entry {
                    key,
                    key_pos,
                    value: node,
                }),
                Some(PendingKey::Merge) => merges.push(node),
                None => return Err("mapping keys must be scalars".to_string()),
            },
        }
        Ok(())
    }
}

impl<'a, S: Sink<'a>> DocBuilder<'a, '_, S> {
    /// Offers `node` to the sink if it is an item of the root's `items` (an unanchored list, so
    /// no alias can need it later). Returns it unless the sink took it.
    fn offer_item(&mut self, node: Node<'a>) -> Option<Node<'a>> {
        let [root, list] = &self.frames[..] else {
            return Some(node);
        };
        let (FrameKind::Map { entries, key, .. }, FrameKind::Seq(_)) = (&root.kind, &list.kind)
        else {
            return Some(node);
        };
        if list.anchor != 0 || !matches!(key, Some(PendingKey::Key(k, _)) if k == "items") {
            return Some(node);
        }
        let text = |name: &str| {
            entries
                .iter()
                .find(|e| e.key == name)
                .and_then(|e| e.value.as_str())
        };
        let root = RootSoFar {
            kind: text("kind"),
            api_version: text("apiVersion"),
        };
        self.sink.item(node, root)
    }
}

/// Upstream decoding (sigs.k8s.io/yaml, strict field validation) rejects duplicate keys.
fn check_duplicate_keys(entries: &[Entry<'_>]) -> Result<(), YamlError> {
    let duplicate = if entries.len() <= 8 {
        entries
            .iter()
            .enumerate()
            .find(|(i, e)| entries[..*i].iter().any(|f| f.key == e.key))
            .map(|(_, e)| e)
    } else {
        let mut sorted: Vec<&Entry<'_>> = entries.iter().collect();
        sorted.sort_by(|a, b| a.key.cmp(&b.key).then(a.key_pos.cmp(&b.key_pos)));
        sorted
            .windows(2)
            .find(|w| w[0].key == w[1].key)
            .map(|w| w[1])
    };
    match duplicate {
        Some(e) => Err(YamlError {
            pos: e.key_pos,
            message: format!("duplicate mapping key `{}`", e.key),
        }),
        None => Ok(()),
    }
}

/// Merges `source` (a mapping or a sequence of mappings) into `entries`; keys already present
/// win, and earlier mappings win over later ones.
fn merge_into<'a>(entries: &mut Vec<Entry<'a>>, source: Node<'a>) -> Result<(), String> {
    let source = source.resolved();
    let maps: Vec<&Node<'a>> = match &source.value {
        Value::Map(_) => vec![source],
        Value::Seq(items) => items.iter().map(Node::resolved).collect(),
        _ => {
            return Err(
                "the value of a merge key (<<) must be a mapping or a list of mappings".into(),
            );
        }
    };
    let mut present: HashSet<Cow<'a, str>> = entries.iter().map(|e| e.key.clone()).collect();
    for map in maps {
        let Value::Map(more) = &map.value else {
            return Err("a merge key (<<) list may only hold mappings".into());
        };
        for entry in more {
            if present.insert(entry.key.clone()) {
                entries.push(entry.clone());
            }
        }
    }
    Ok(())
}

/// The YAML 1.2 core schema: what a plain scalar means.
fn resolve_scalar<'a>(text: Cow<'a, str>, style: ScalarStyle, tag: Option<&Tag>) -> Value<'a> {
    let core_tag = tag.filter(|t| t.is_yaml_core_schema() || t.handle == "!!");
    if style != ScalarStyle::Plain || core_tag.is_some_and(|t| t.suffix == "str") {
        return Value::Str(text);
    }
    match &*text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Value::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Value::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Value::Float(f64::NAN),
        _ => {}
    }
    number(&text).unwrap_or(Value::Str(text))
}

fn number(text: &str) -> Option<Value<'static>> {
    if let Some(hex) = text.strip_prefix("0x") {
        return radix(hex, 16);
    }
    if let Some(oct) = text.strip_prefix("0o") {
        return radix(oct, 8);
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(i) = text.parse::<i64>() {
            return Some(Value::Int(i));
        }
        if let Ok(u) = text.parse::<u64>() {
            return Some(Value::UInt(u));
        }
        return text.parse::<f64>().ok().map(Value::Float);
    }
    if is_core_float(digits) {
        return text.parse::<f64>().ok().map(Value::Float);
    }
    None
}

fn radix(digits: &str, radix: u32) -> Option<Value<'static>> {
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    match i64::from_str_radix(digits, radix) {
        Ok(i) => Some(Value::Int(i)),
        Err(_) => u64::from_str_radix(digits, radix).ok().map(Value::UInt),
    }
}

/// `(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`, the sign already removed.
fn is_core_float(text: &str) -> bool {
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(i) => (&text[..i], Some(&text[i + 1..])),
        None => (text, None),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((int, frac)) => (int, Some(frac)),
        None => (mantissa, None),
    };
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match frac {
        Some(frac) => all_digits(int) && all_digits(frac) && !(int.is_empty() && frac.is_empty()),
        None => !int.is_empty() && all_digits(int),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && all_digits(e)
    });
    mantissa_ok && exponent_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Vec<Result<Node<'_>, YamlError>> {
        let mut docs = Vec::new();
        for piece in split_documents(text) {
            parse_piece(&text[piece.start..piece.end], piece.first_line, &mut |d| {
                docs.push(d)
            });
        }
        docs
    }

    fn one(text: &str) -> Node<'_> {
        let mut docs = parse(text);
        assert_eq!(docs.len(), 1, "{docs:?}");
        docs.remove(0).expect("document parses")
    }

    #[test]
    fn plain_scalars_follow_the_core_schema() {
        let table: &[(&str, &str)] = &[
            ("~", "Null"),
            ("null", "Null"),
            ("true", "Bool(true)"),
            ("False", "Bool(false)"),
            ("yes", "Str(\"yes\")"),
            ("80", "Int(80)"),
            ("-3", "Int(-3)"),
            ("+3", "Int(3)"),
            ("0x1F", "Int(31)"),
            ("0o17", "Int(15)"),
            ("18446744073709551615", "UInt(18446744073709551615)"),
            ("1e400", "Float(inf)"),
            ("99999999999999999999999", "Float(1e23)"),
            ("1.5", "Float(1.5)"),
            (".5", "Float(0.5)"),
            ("1e3", "Float(1000.0)"),
            ("-.inf", "Float(-inf)"),
            ("1.2.3", "Str(\"1.2.3\")"),
            ("10.0.0.0/8", "Str(\"10.0.0.0/8\")"),
            ("'80'", "Str(\"80\")"),
            ("!!str 80", "Str(\"80\")"),
            ("0x", "Str(\"0x\")"),
            ("e3", "Str(\"e3\")"),
            (".", "Str(\".\")"),
        ];
        for (text, expected) in table {
            let doc = format!("k: {text}\n");
            let root = one(&doc);
            let got = format!("{:?}", root.get("k").expect("k").value);
            assert_eq!(&got, expected, "{text}");
        }
    }

    #[test]
    fn positions_are_one_based_and_follow_pieces() {
        let text = "a: 1\n---\n# comment\nb:\n  c: [x, y]\n";
        let docs = parse(text);
        assert_eq!(docs.len(), 2);
        let second = docs[1].as_ref().expect("ok");
        let b = second.entry("b").expect("b");
        assert_eq!(b.key_pos, Pos { line: 4, column: 1 });
        let c = b.value.entry("c").expect("c");
        assert_eq!(c.key_pos, Pos { line: 5, column: 3 });
        let Value::Seq(items) = &c.value.value else {
            panic!("sequence expected")
        };
        assert_eq!(
            items[1].pos,
            Pos {
                line: 5,
                column: 10
            }
        );
    }

    #[test]
    fn split_keeps_directives_and_empty_documents_harmless() {
        let text = "%YAML 1.2\n---\na: 1\n...\n%YAML 1.2\n---\nb: 2\n---\n---\nc: 3\n";
        let pieces = split_documents(text);
        assert_eq!(
            pieces.iter().map(|p| p.first_line).collect::<Vec<_>>(),
            vec![0, 4, 7, 8]
        );
        let docs = parse(text);
        let keys: Vec<String> = docs
            .iter()
            .map(|d| match &d.as_ref().expect("ok").value {
                Value::Map(e) => e[0].key.to_string(),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(keys, ["a", "b", "c"]);
    }

    #[test]
    fn a_syntax_error_costs_only_its_document() {
        let text = "a: 1\n---\nb: [1, 2\nc: d: e\n---\nd: 4\n";
        let docs = parse(text);
        assert_eq!(docs.len(), 3);
        assert!(docs[0].is_ok() && docs[2].is_ok());
        let err = docs[1].as_ref().expect_err("broken");
        assert!(err.message.starts_with("YAML syntax error"), "{err:?}");
        assert!((3..=5).contains(&err.pos.line), "{err:?}");
    }

    #[test]
    fn aliases_share_and_merge_keys_merge() {
        let root = one("base: &b {x: 1, y: 2}\nuse: *b\nmerged:\n  <<: *b\n  y: 3\n");
        assert!(matches!(
            root.get("use").expect("use").value,
            Value::Shared(_)
        ));
        let merged = root.get("merged").expect("merged");
        let as_int = |n: &Node<'_>| match n.resolved().value {
            Value::Int(i) => i,
            _ => -1,
        };
        assert_eq!(as_int(merged.get("x").expect("x")), 1);
        assert_eq!(as_int(merged.get("y").expect("y")), 3);
    }

    #[test]
    fn structural_problems_fail_the_document() {
        let bomb = {
            let mut s = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
            for i in 1..10 {
                let p = i - 1;
                s.push_str(&format!(
                    "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
                ));
            }
            s
        };
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let deep_alias = {
            let mut s = format!("a0: &a0 {}{}\n", "[".repeat(100), "]".repeat(100));
            s.push_str(&format!(
                "a1: &a1 {}*a0{}\n",
                "[".repeat(30),
                "]".repeat(30)
            ));
            s
        };
        let table = [
            (bomb.as_str(), "alias bomb"),
            (deep.as_str(), "nesting deeper"),
            (deep_alias.as_str(), "aliases included"),
            ("a: 1\nb: 2\na: 3\n", "duplicate mapping key `a`"),
            ("? [a]\n: 1\n", "mapping keys must be scalars"),
            ("a: *nope\n", "YAML syntax error"),
            ("<<: 3\n", "merge key"),
        ];
        for (text, expected) in table {
            let docs = parse(text);
            assert_eq!(docs.len(), 1, "{expected}: {docs:?}");
            let err = docs[0].as_ref().expect_err(expected);
            assert!(err.message.contains(expected), "{}: {err:?}", expected);
        }
    }
}

//! Parser for Go templates, a port of Go's text/template/parse/parse.go (same errors, same tree).

use std::collections::HashMap;

use super::ast::{Arg, Branch, Command, List, Node, NumberConst, Pipe};
use super::lex::{lex, Item, ItemType};

/// Deepest nesting of actions and parentheses accepted; Go has no limit, but its stacks grow.
const MAX_NESTING: usize = 200;

/// A parse error, already worded as Go words it (`template: :1: ...`).
#[derive(Debug)]
pub(super) struct ParseError(pub String);

type Result<T> = std::result::Result<T, ParseError>;

/// What `textOrAction` can yield: a node, or the `{{end}}` / `{{else}}` closing a list.
enum Parsed {
    Node(Node),
    End,
    Else,
}

/// Parser state that each `{{define}}`d tree has for itself.
#[derive(Default)]
struct TreeState {
    vars: Vec<String>,
    range_depth: usize,
}

struct Parser<'f> {
    name: String,
    items: Vec<Item>,
    idx: usize,
    frontier: usize,
    action_line: usize,
    nesting: usize,
    is_func: &'f dyn Fn(&str) -> bool,
    tree: TreeState,
    trees: HashMap<String, List>,
}

/// Parses `text` into its main tree (named `name`) and the trees it defines.
pub(super) fn parse(
    name: &str,
    text: &str,
    is_func: &dyn Fn(&str) -> bool,
) -> Result<HashMap<String, List>> {
    let mut p = Parser {
        name: name.to_string(),
        items: lex(text),
        idx: 0,
        frontier: 0,
        action_line: 0,
        nesting: 0,
        is_func,
        tree: TreeState {
            vars: vec!["$".into()],
            range_depth: 0,
        },
        trees: HashMap::new(),
    };
    let root = p.parse_root()?;
    p.add(name.to_string(), root)?;
    Ok(p.trees)
}

/// Go's `IsEmptyTree`: only whitespace text.
fn is_empty_tree(list: &List) -> bool {
    list.iter()
        .all(|n| matches!(n, Node::Text(t) if t.trim().is_empty()))
}

impl Parser<'_> {
    fn item(&mut self, i: usize) -> Item {
        let i = i.min(self.items.len() - 1);
        self.frontier = self.frontier.max(i);
        self.items[i].clone()
    }

    fn next(&mut self) -> Item {
        let i = self.idx.min(self.items.len() - 1);
        self.idx = i + 1;
        self.item(i)
    }

    fn backup(&mut self) {
        self.idx -= 1;
    }

    fn peek(&mut self) -> Item {
        self.item(self.idx)
    }

    fn next_non_space(&mut self) -> Item {
        loop {
            let t = self.next();
            if t.typ != ItemType::Space {
                return t;
            }
        }
    }

    fn peek_non_space(&mut self) -> Item {
        let t = self.next_non_space();
        self.backup();
        t
    }

    fn errorf<T>(&self, msg: impl Into<String>) -> Result<T> {
        let line = self.items[self.frontier.min(self.items.len() - 1)].line;
        Err(ParseError(format!(
            "template: {}:{}: {}",
            self.name,
            line,
            msg.into()
        )))
    }

    fn expect(&mut self, expected: ItemType, context: &str) -> Result<Item> {
        let t = self.next_non_space();
        if t.typ != expected {
            return self.unexpected(&t, context);
        }
        Ok(t)
    }

    fn unexpected<T>(&self, token: &Item, context: &str) -> Result<T> {
        if token.typ == ItemType::Error {
            let mut extra = String::new();
            if self.action_line != 0 && self.action_line != token.line {
                extra = format!(" in action started at {}:{}", self.name, self.action_line);
                if token.val.ends_with(" action") {
                    extra = extra[" in action".len()..].to_string();
                }
            }
            return self.errorf(format!("{token}{extra}"));
        }
        self.errorf(format!("unexpected {token} in {context}"))
    }

    fn enter(&mut self) -> Result<()> {
        self.nesting += 1;
        if self.nesting > MAX_NESTING {
            return self.errorf(format!("template nesting exceeds {MAX_NESTING} levels"));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.nesting -= 1;
    }

    fn add(&mut self, name: String, root: List) -> Result<()> {
        match self.trees.get(&name) {
            Some(old) if !is_empty_tree(old) => {
                if !is_empty_tree(&root) {
                    return self.errorf(format!(
                        "template: multiple definition of template {}",
                        crate::gofmt::quote(&name)
                    ));
                }
            }
            _ => {
                self.trees.insert(name, root);
            }
        }
        Ok(())
    }

    /// The top level: like `item_list`, but also parses `{{define}}` and runs to EOF.
    fn parse_root(&mut self) -> Result<List> {
        let mut root = List::new();
        while self.peek().typ != ItemType::Eof {
            if self.peek().typ == ItemType::LeftDelim {
                let save = self.idx;
                self.next();
                if self.next_non_space().typ == ItemType::Define {
                    self.parse_definition()?;
                    continue;
                }
                self.idx = save;
            }
            match self.text_or_action()? {
                Parsed::Node(n) => root.push(n),
                Parsed::End => return self.errorf("unexpected {{end}}"),
                Parsed::Else => return self.errorf("unexpected {{else}}"),
            }
        }
        Ok(root)
    }

    /// `{{define "name"}} ... {{end}}`; the `define` keyword has been read.
    fn parse_definition(&mut self) -> Result<()> {
        const CONTEXT: &str = "define clause";
        let tok = self.next_non_space();
        if tok.typ != ItemType::String && tok.typ != ItemType::RawString {
            return self.unexpected(&tok, CONTEXT);
        }
        let name = self.unquote(&tok.val)?;
        self.expect(ItemType::RightDelim, CONTEXT)?;
        let saved = std::mem::replace(
            &mut self.tree,
            TreeState {
                vars: vec!["$".into()],
                range_depth: 0,
            },
        );
        let (root, end) = self.item_list()?;
        self.tree = saved;
        if !matches!(end, Parsed::End) {
            return self.errorf(format!("unexpected {} in {CONTEXT}", parsed_str(&end)));
        }
        self.add(name, root)
    }

    /// `textOrAction*`, up to and including a closing `{{end}}` or `{{else}}`.
    fn item_list(&mut self) -> Result<(List, Parsed)> {
        self.enter()?;
        let mut list = List::new();
        while self.peek_non_space().typ != ItemType::Eof {
            match self.text_or_action()? {
                Parsed::Node(n) => list.push(n),
                closing => {
                    self.leave();
                    return Ok((list, closing));
                }
            }
        }
        self.errorf("unexpected EOF")
    }

    fn text_or_action(&mut self) -> Result<Parsed> {
        let tok = self.next_non_space();
        match tok.typ {
            ItemType::Text => Ok(Parsed::Node(Node::Text(tok.val))),
            ItemType::LeftDelim => {
                self.action_line = tok.line;
                let r = self.action();
                self.action_line = 0;
                r
            }
            _ => self.unexpected(&tok, "input"),
        }
    }

    /// The inside of `{{ ... }}`: a control keyword or a pipeline.
    fn action(&mut self) -> Result<Parsed> {
        let tok = self.next_non_space();
        match tok.typ {
            ItemType::Block => return self.block_control().map(Parsed::Node),
            ItemType::Break | ItemType::Continue => {
                let word = if tok.typ == ItemType::Break {
                    "break"
                } else {
                    "continue"
                };
                let t = self.next_non_space();
                if t.typ != ItemType::RightDelim {
                    return self.unexpected(&t, &format!("{{{{{word}}}}}"));
                }
                if self.tree.range_depth == 0 {
                    return self.errorf(format!("{{{{{word}}}}} outside {{{{range}}}}"));
                }
                let node = if tok.typ == ItemType::Break {
                    Node::Break(tok.pos)
                } else {
                    Node::Continue(tok.pos)
                };
                return Ok(Parsed::Node(node));
            }
            ItemType::Else => {
                // "{{else if" and "{{else with": leave the keyword for parse_control.
                let peek = self.peek_non_space();
                if peek.typ != ItemType::If && peek.typ != ItemType::With {
                    self.expect(ItemType::RightDelim, "else")?;
                }
                return Ok(Parsed::Else);
            }
            ItemType::End => {
                self.expect(ItemType::RightDelim, "end")?;
                return Ok(Parsed::End);
            }
            ItemType::If => return self.parse_control("if").map(|b| Parsed::Node(Node::If(b))),
            ItemType::Range => {
                return self
                    .parse_control("range")
                    .map(|b| Parsed::Node(Node::Range(b)))
            }
            ItemType::With => {
                return self
                    .parse_control("with")
                    .map(|b| Parsed::Node(Node::With(b)))
            }
            ItemType::Template => return self.template_control().map(Parsed::Node),
            _ => {}
        }
        self.backup();
        let pos = self.peek().pos;
        let pipe = self.pipeline("command", ItemType::RightDelim)?;
        Ok(Parsed::Node(Node::Action { pos, pipe }))
    }

    fn parse_control(&mut self, context: &str) -> Result<Branch> {
        let vars = self.tree.vars.len();
        let pipe = self.pipeline(context, ItemType::RightDelim)?;
        if context == "range" {
            self.tree.range_depth += 1;
        }
        let (list, next) = self.item_list()?;
        if context == "range" {
            self.tree.range_depth -= 1;
        }
        let mut else_list = None;
        if matches!(next, Parsed::Else) {
            let peek = self.peek().typ;
            if context == "if" && peek == ItemType::If {
                self.next();
                else_list = Some(vec![Node::If(self.parse_control("if")?)]);
            } else if context == "with" && peek == ItemType::With {
                self.next();
                else_list = Some(vec![Node::With(self.parse_control("with")?)]);
            } else {
                let (list, next) = self.item_list()?;
                if !matches!(next, Parsed::End) {
                    return self.errorf(format!("expected end; found {}", parsed_str(&next)));
                }
                else_list = Some(list);
            }
        }
        self.tree.vars.truncate(vars);
        Ok(Branch {
            pipe,
            list,
            else_list,
        })
    }

    /// `{{block "name" pipeline}} ... {{end}}`: defines the template and executes it.
    fn block_control(&mut self) -> Result<Node> {
        const CONTEXT: &str = "block clause";
        let tok = self.next_non_space();
        let name = self.parse_template_name(&tok, CONTEXT)?;
        let pipe = self.pipeline(CONTEXT, ItemType::RightDelim)?;
        let saved = std::mem::replace(
            &mut self.tree,
            TreeState {
                vars: vec!["$".into()],
                range_depth: 0,
            },
        );
        let (root, end) = self.item_list()?;
        self.tree = saved;
        if !matches!(end, Parsed::End) {
            return self.errorf(format!("unexpected {} in {CONTEXT}", parsed_str(&end)));
        }
        self.add(name.clone(), root)?;
        Ok(Node::Template {
            pos: tok.pos,
            name,
            pipe: Some(pipe),
        })
    }

    fn template_control(&mut self) -> Result<Node> {
        const CONTEXT: &str = "template clause";
        let tok = self.next_non_space();
        let name = self.parse_template_name(&tok, CONTEXT)?;
        let mut pipe = None;
        if self.next_non_space().typ != ItemType::RightDelim {
            self.backup();
            pipe = Some(self.pipeline(CONTEXT, ItemType::RightDelim)?);
        }
        Ok(Node::Template {
            pos: tok.pos,
            name,
            pipe,
        })
    }

    fn parse_template_name(&mut self, tok: &Item, context: &str) -> Result<String> {
        match tok.typ {
            ItemType::String | ItemType::RawString => self.unquote(&tok.val),
            _ => self.unexpected(tok, context),
        }
    }

    /// `declarations? command ('|' command)*`, up to `end`.
    fn pipeline(&mut self, context: &str, end: ItemType) -> Result<Pipe> {
        self.enter()?;
        let pos = self.peek_non_space().pos;
        let mut pipe = Pipe {
            pos,
            is_assign: false,
            decl: Vec::new(),
            cmds: Vec::new(),
        };
        loop {
            let v = self.peek_non_space();
            if v.typ != ItemType::Variable {
                break;
            }
            let save = self.idx;
            self.next();
            let next = self.peek_non_space();
            if next.typ == ItemType::Assign || next.typ == ItemType::Declare {
                pipe.is_assign = next.typ == ItemType::Assign;
                self.next_non_space();
                pipe.decl.push(v.val.clone());
                self.tree.vars.push(v.val);
                break;
            }
            if next.typ == ItemType::Char && next.val == "," {
                self.next_non_space();
                pipe.decl.push(v.val.clone());
                self.tree.vars.push(v.val);
                if context == "range" && pipe.decl.len() < 2 {
                    match self.peek_non_space().typ {
                        ItemType::Variable | ItemType::RightDelim | ItemType::RightParen => {
                            continue
                        }
                        _ => return self.errorf("range can only initialize variables"),
                    }
                }
                return self.errorf(format!("too many declarations in {context}"));
            }
            // A plain variable operand such as "$x foo": put it back.
            self.idx = save;
            break;
        }
        loop {
            let tok = self.next_non_space();
            if tok.typ == end {
                self.check_pipeline(&pipe, context)?;
                self.leave();
                return Ok(pipe);
            }
            use ItemType::*;
            match tok.typ {
                Bool | CharConstant | Complex | Dot | Field | Identifier | Number | Nil
                | RawString | String | Variable | LeftParen => {
                    self.backup();
                    let cmd = self.command()?;
                    pipe.cmds.push(cmd);
                }
                _ => return self.unexpected(&tok, context),
            }
        }
    }

    fn check_pipeline(&self, pipe: &Pipe, context: &str) -> Result<()> {
        if pipe.cmds.is_empty() {
            return self.errorf(format!("missing value for {context}"));
        }
        for (i, c) in pipe.cmds.iter().enumerate().skip(1) {
            if matches!(
                c.args[0],
                Arg::Bool { .. }
                    | Arg::Dot(_)
                    | Arg::Nil(_)
                    | Arg::Number { .. }
                    | Arg::String { .. }
            ) {
                return self.errorf(format!(
                    "non executable command in pipeline stage {}",
                    i + 1
                ));
            }
        }
        Ok(())
    }

    /// `operand (space operand)*`, up to a pipe, right delimiter or right paren.
    fn command(&mut self) -> Result<Command> {
        let pos = self.peek_non_space().pos;
        let mut cmd = Command {
            pos,
            args: Vec::new(),
        };
        loop {
            self.peek_non_space();
            if let Some(op) = self.operand()? {
                cmd.args.push(op);
            }
            let tok = self.next();
            match tok.typ {
                ItemType::Space => continue,
                ItemType::RightDelim | ItemType::RightParen => self.backup(),
                ItemType::Pipe => {}
                _ => return self.unexpected(&tok, "operand"),
            }
            break;
        }
        if cmd.args.is_empty() {
            return self.errorf("empty command");
        }
        Ok(cmd)
    }

    /// `term .Field*`.
    fn operand(&mut self) -> Result<Option<Arg>> {
        let Some(node) = self.term()? else {
            return Ok(None);
        };
        if self.peek().typ != ItemType::Field {
            return Ok(Some(node));
        }
        let pos = self.peek().pos;
        let mut fields = Vec::new();
        while self.peek().typ == ItemType::Field {
            fields.push(self.next().val[1..].to_string());
        }
        Ok(Some(match node {
            Arg::Field { mut idents, .. } => {
                idents.extend(fields);
                Arg::Field { pos, idents }
            }
            Arg::Variable { mut idents, .. } => {
                idents.extend(fields);
                Arg::Variable { pos, idents }
            }
            Arg::Bool { .. }
            | Arg::String { .. }
            | Arg::Number { .. }
            | Arg::Nil(_)
            | Arg::Dot(_) => {
                return self.errorf(format!(
                    "unexpected . after term {}",
                    crate::gofmt::quote(&node.to_string())
                ));
            }
            node => Arg::Chain {
                pos,
                node: Box::new(node),
                fields,
            },
        }))
    }

    fn term(&mut self) -> Result<Option<Arg>> {
        let tok = self.next_non_space();
        let pos = tok.pos;
        Ok(Some(match tok.typ {
            ItemType::Identifier => {
                if !(self.is_func)(&tok.val) {
                    return self.errorf(format!(
                        "function {} not defined",
                        crate::gofmt::quote(&tok.val)
                    ));
                }
                Arg::Identifier { pos, name: tok.val }
            }
            ItemType::Dot => Arg::Dot(pos),
            ItemType::Nil => Arg::Nil(pos),
            ItemType::Variable => {
                let idents: Vec<String> = tok.val.split('.').map(str::to_string).collect();
                if !self.tree.vars.iter().any(|v| *v == idents[0]) {
                    return self.errorf(format!(
                        "undefined variable {}",
                        crate::gofmt::quote(&idents[0])
                    ));
                }
                Arg::Variable { pos, idents }
            }
            ItemType::Field => Arg::Field {
                pos,
                idents: tok.val[1..].split('.').map(str::to_string).collect(),
            },
            ItemType::Bool => Arg::Bool {
                pos,
                value: tok.val == "true",
            },
            ItemType::CharConstant | ItemType::Complex | ItemType::Number => Arg::Number {
                pos,
                num: self.number(&tok)?,
            },
            ItemType::LeftParen => {
                let pipe = self.pipeline("parenthesized pipeline", ItemType::RightParen)?;
                Arg::Pipe(Box::new(pipe))
            }
            ItemType::String | ItemType::RawString => {
                let text = self.unquote(&tok.val)?;
                Arg::String {
                    pos,
                    quoted: tok.val,
                    text,
                }
            }
            _ => {
                self.backup();
                return Ok(None);
            }
        }))
    }

    fn unquote(&self, s: &str) -> Result<String> {
        unquote(s).map_or_else(|| self.errorf("invalid syntax"), Ok)
    }

    /// Go's `newNumber`: every reading of the constant that is valid.
    fn number(&self, tok: &Item) -> Result<NumberConst> {
        let text = tok.val.clone();
        let mut n = NumberConst {
            text: text.clone(),
            ..Default::default()
        };
        if tok.typ == ItemType::CharConstant {
            let Some(c) = unquote_char_constant(&text) else {
                return self.errorf(format!("malformed character constant: {text}"));
            };
            n.is_int = true;
            n.int = c as i64;
            n.is_uint = true;
            n.is_float = true;
            n.float = c as u32 as f64;
            return Ok(n);
        }
        if tok.typ == ItemType::Complex || text.ends_with('i') {
            n.is_complex = true;
            return Ok(n);
        }
        if let Some(v) = parse_go_int(&text) {
            if let Ok(i) = i64::try_from(v) {
                n.is_int = true;
                n.int = i;
            }
            if v >= 0 && v <= u64::MAX as i128 {
                n.is_uint = true;
            }
        }
        if n.is_int {
            n.is_float = true;
            n.float = n.int as f64;
        } else if n.is_uint {
            n.is_float = true;
            n.float = parse_go_int(&text).unwrap_or(0) as f64;
        } else if let Some(f) = parse_go_float(&text) {
            if !text.contains(['.', 'e', 'E', 'p', 'P']) {
                return self.errorf(format!("integer overflow: {}", crate::gofmt::quote(&text)));
            }
            n.is_float = true;
            n.float = f;
            if f.fract() == 0.0 && f >= i64::MIN as f64 && f < i64::MAX as f64 {
                n.is_int = true;
                n.int = f as i64;
            }
            if f.fract() == 0.0 && f >= 0.0 && f < u64::MAX as f64 {
                n.is_uint = true;
            }
        }
        if !n.is_int && !n.is_uint && !n.is_float {
            return self.errorf(format!(
                "illegal number syntax: {}",
                crate::gofmt::quote(&text)
            ));
        }
        Ok(n)
    }
}

fn parsed_str(p: &Parsed) -> String {
    match p {
        Parsed::Node(n) => n.to_string(),
        Parsed::End => "{{end}}".into(),
        Parsed::Else => "{{else}}".into(),
    }
}

/// Go's `underscoreOK`: underscores only between digits or after a base prefix.
fn underscore_ok(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let b = s.as_bytes();
    let mut saw = b'^';
    let mut i = 0;
    let mut hex = false;
    if b.len() >= 2 && b[0] == b'0' && matches!(b[1].to_ascii_lowercase(), b'b' | b'o' | b'x') {
        i = 2;
        saw = b'0';
        hex = b[1].eq_ignore_ascii_case(&b'x');
    }
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_digit() || hex && c.is_ascii_hexdigit() {
            saw = b'0';
        } else if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
        } else {
            if saw == b'_' {
                return false;
            }
            saw = b'!';
        }
        i += 1;
    }
    saw != b'_'
}

/// `strconv.ParseInt(s, 0, 64)` without the range check: sign, base prefix, underscores.
fn parse_go_int(s: &str) -> Option<i128> {
    if s.contains('_') && !underscore_ok(s) {
        return None;
    }
    let clean: String = s.chars().filter(|&c| c != '_').collect();
    let (neg, body) = match clean.as_bytes().first() {
        Some(b'-') => (true, &clean[1..]),
        Some(b'+') => (false, &clean[1..]),
        _ => (false, &clean[..]),
    };
    let lower = body.to_ascii_lowercase();
    let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, &lower[..])
    };
    if digits.is_empty() || digits.starts_with(['+', '-']) {
        return None;
    }
    let v = u128::from_str_radix(digits, radix).ok()?;
    if v > u64::MAX as u128 {
        return None;
    }
    let v = v as i128;
    Some(if neg { -v } else { v })
}

/// `strconv.ParseFloat` for decimal literals.
fn parse_go_float(s: &str) -> Option<f64> {
    if s.contains('_') || s.to_ascii_lowercase().contains(['x', 'n', 'i']) {
        return None;
    }
    s.parse::<f64>().ok().filter(|f| f.is_finite())
}

/// Decodes one escape or character at the start of `s` (Go's `strconv.UnquoteChar`).
fn unquote_char(s: &str, quote: char) -> Option<(char, &str)> {
    let mut chars = s.chars();
    let c = chars.next()?;
    if c == quote && (quote == '\'' || quote == '"') {
        return None;
    }
    if c != '\\' {
        return Some((c, chars.as_str()));
    }
    let e = chars.next()?;
    let rest = chars.as_str();
    let hex = |n: usize| -> Option<(char, &str)> {
        let digits = rest.get(..n)?;
        let v = u32::from_str_radix(digits, 16).ok()?;
        if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        Some((char::from_u32(v)?, &rest[n..]))
    };
    Some(match e {
        'a' => ('\x07', rest),
        'b' => ('\x08', rest),
        'f' => ('\x0c', rest),
        'n' => ('\n', rest),
        'r' => ('\r', rest),
        't' => ('\t', rest),
        'v' => ('\x0b', rest),
        'x' => hex(2)?,
        'u' => hex(4)?,
        'U' => hex(8)?,
        '0'..='7' => {
            let digits = s.get(1..4)?;
            if !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
                return None;
            }
            let v = u32::from_str_radix(digits, 8).ok()?;
            if v > 255 {
                return None;
            }
            (char::from_u32(v)?, &s[4..])
        }
        '\\' => ('\\', rest),
        '\'' | '"' if e == quote => (e, rest),
        _ => return None,
    })
}

/// Go's `strconv.Unquote` for "...", `...` and '...' literals.
pub(super) fn unquote(s: &str) -> Option<String> {
    let quote = s.chars().next()?;
    if s.len() < 2 || !s.ends_with(quote) {
        return None;
    }
    let inner = &s[1..s.len() - 1];
    match quote {
        '`' => {
            if inner.contains('`') {
                return None;
            }
            Some(inner.replace('\r', ""))
        }
        '"' | '\'' => {
            let mut out = String::new();
            let mut rest = inner;
            while !rest.is_empty() {
                let (c, tail) = unquote_char(rest, quote)?;
                out.push(c);
                rest = tail;
                if quote == '\'' && !rest.is_empty() {
                    return None;
                }
            }
            if quote == '\'' && out.chars().count() != 1 {
                return None;
            }
            Some(out)
        }
        _ => None,
    }
}

fn unquote_char_constant(text: &str) -> Option<char> {
    let inner = text.strip_prefix('\'')?;
    let (c, tail) = unquote_char(inner, '\'')?;
    (tail == "'").then_some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        let is_func = |n: &str| matches!(n, "json" | "len" | "printf");
        match parse("", text, &is_func) {
            Ok(_) => "ok".into(),
            Err(e) => e.0,
        }
    }

    #[test]
    fn go_parse_errors() {
        assert_eq!(err("{{.ID}} {{json .Spec}}"), "ok");
        assert_eq!(
            err("{{foo .X}}"),
            r#"template: :1: function "foo" not defined"#
        );
        assert_eq!(err("{{.X"), "template: :1: unclosed action");
        assert_eq!(err("{{end}}"), "template: :1: unexpected {{end}}");
        assert_eq!(err("{{if .X}}a"), "template: :1: unexpected EOF");
        assert_eq!(err("{{$x}}"), r#"template: :1: undefined variable "$x""#);
        assert_eq!(
            err("{{.X | 3}}"),
            "template: :1: non executable command in pipeline stage 2"
        );
        assert_eq!(err("{{}}"), "template: :1: missing value for command");
        assert_eq!(
            err("{{break}}"),
            "template: :1: {{break}} outside {{range}}"
        );
        assert_eq!(
            err("a\n{{.X}}\n{{if}}"),
            "template: :3: missing value for if"
        );
        assert_eq!(err("{{range $i, $v := .X}}{{$i}}{{$v}}{{end}}"), "ok");
        assert_eq!(err("{{if .A}}a{{else if .B}}b{{else}}c{{end}}"), "ok");
        assert_eq!(
            err("{{with $x := .A}}{{$x}}{{end}}{{$x}}"),
            r#"template: :1: undefined variable "$x""#
        );
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let text = format!("{{{{{}.X{}}}}}", "(".repeat(5000), ")".repeat(5000));
        assert!(err(&text).contains("nesting"), "{}", err(&text));
    }

    #[test]
    fn unquote_like_go() {
        assert_eq!(unquote(r#""a\tb\u00e9\x41""#).as_deref(), Some("a\tbéA"));
        assert_eq!(unquote("`a\\n`").as_deref(), Some("a\\n"));
        assert_eq!(unquote(r#""\'""#), None);
        assert_eq!(parse_go_int("0x1F"), Some(31));
        assert_eq!(parse_go_int("-017"), Some(-15));
        assert_eq!(parse_go_int("1_000"), Some(1000));
        assert_eq!(parse_go_int("1__0"), None);
    }
}

//! Executes a parsed template over a value, following Go's text/template/exec.go step by step.

use std::collections::HashMap;
use std::fmt::Display;

use serde_json::{Map, Value as JsonValue};

use super::ast::{Arg, Branch, Command, List, Node, NumberConst, Pipe};
use super::funcs::{self, lookup, Func, FuncSet, Param};
use crate::gofmt::{print_value, quote};
use crate::value::{float_val, json_type_name, Val, ROW_TYPE};

/// Deepest `{{template}}` recursion; Go allows 100000 on its growable stacks.
const MAX_EXEC_DEPTH: usize = 100;

/// An execution error, worded as Go words it (`template: :1:2: executing "" at <.X>: ...`).
#[derive(Debug)]
pub(super) struct ExecError(pub String);

type R<T> = Result<T, ExecError>;

/// The node being evaluated, for error messages.
#[derive(Clone, Copy)]
enum At<'a> {
    Node(&'a Node),
    Pipe(&'a Pipe),
    Cmd(&'a Command),
    Arg(&'a Arg),
}

/// How a list ended: normally, or by `{{break}}` / `{{continue}}`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flow {
    Normal,
    Break,
    Continue,
}

/// A borrowed position in the data while walking a field chain.
#[derive(Clone, Copy)]
enum Cursor<'v> {
    Invalid,
    Json(&'v JsonValue),
    Row(&'v Map<String, JsonValue>),
}

impl<'v> Cursor<'v> {
    fn of(v: &'v Val) -> Cursor<'v> {
        match v {
            Val::Invalid => Cursor::Invalid,
            Val::Json(j) => Cursor::Json(j),
            Val::Row(m) => Cursor::Row(m),
        }
    }

    fn to_val(self) -> Val {
        match self {
            Cursor::Invalid => Val::Invalid,
            Cursor::Json(j) => Val::Json(j.clone()),
            Cursor::Row(m) => Val::Row(m.clone()),
        }
    }
}

struct Exec<'a, 'o> {
    trees: &'a HashMap<String, List>,
    text: &'a str,
    funcs: FuncSet,
    out: &'o mut String,
    vars: Vec<(String, Val)>,
    depth: usize,
    name: &'a str,
    at: Option<At<'a>>,
}

/// Runs template `name` of `trees` (parsed from `text`) over `data`, appending to `out`.
/// On error, `out` keeps what was written before it, as Go's writer does.
pub(super) fn execute(
    trees: &HashMap<String, List>,
    text: &str,
    name: &str,
    data: &Val,
    funcs: FuncSet,
    out: &mut String,
) -> R<()> {
    let Some(root) = trees.get(name) else {
        return Err(ExecError(format!(
            "template: {name}: {} is an incomplete or empty template",
            quote(name)
        )));
    };
    let mut st = Exec {
        trees,
        text,
        funcs,
        out,
        vars: vec![("$".to_string(), data.clone())],
        depth: 0,
        name,
        at: None,
    };
    st.walk_list(data, root).map(|_| ())
}

/// Go's `ErrorContext`: `line:byte-in-line` of a position.
fn location(text: &str, pos: usize) -> (usize, usize) {
    let before = &text[..pos.min(text.len())];
    let line = 1 + before.matches('\n').count();
    let col = match before.rfind('\n') {
        Some(nl) => pos - (nl + 1),
        None => pos,
    };
    (line, col)
}

fn is_hex_int(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() > 2 && b[0] == b'0' && (b[1] == b'x' || b[1] == b'X') && !s.contains(['p', 'P'])
}

impl<'a> Exec<'a, '_> {
    fn error(&self, msg: impl Display) -> ExecError {
        let Some(at) = self.at else {
            return ExecError(format!("template: {}: {msg}", self.name));
        };
        let (pos, context) = match at {
            At::Node(n) => (n.pos(), n.to_string()),
            At::Pipe(p) => (p.pos, p.to_string()),
            At::Cmd(c) => (c.pos, c.to_string()),
            At::Arg(a) => (a.pos(), a.to_string()),
        };
        let (line, col) = location(self.text, pos);
        ExecError(format!(
            "template: :{line}:{col}: executing {} at <{context}>: {msg}",
            quote(self.name)
        ))
    }

    fn var_index(&self, name: &str) -> R<usize> {
        self.vars
            .iter()
            .rposition(|(n, _)| n == name)
            .ok_or_else(|| self.error(format!("undefined variable: {name}")))
    }

    fn set_var(&mut self, name: &str, value: Val) -> R<()> {
        let i = self.var_index(name)?;
        self.vars[i].1 = value;
        Ok(())
    }

    fn set_top_var(&mut self, n: usize, value: Val) {
        let i = self.vars.len() - n;
        self.vars[i].1 = value;
    }

    fn walk_list(&mut self, dot: &Val, list: &'a List) -> R<Flow> {
        for node in list {
            let flow = self.walk(dot, node)?;
            if flow != Flow::Normal {
                return Ok(flow);
            }
        }
        Ok(Flow::Normal)
    }

    fn walk(&mut self, dot: &Val, node: &'a Node) -> R<Flow> {
        self.at = Some(At::Node(node));
        match node {
            Node::Text(t) => self.out.push_str(t),
            Node::Action { pipe, .. } => {
                // Variables declared here persist until the enclosing {{end}}.
                let val = self.eval_pipeline(dot, pipe)?;
                if pipe.decl.is_empty() {
                    self.at = Some(At::Node(node));
                    self.out.push_str(&print_value(&val));
                }
            }
            Node::If(b) => return self.walk_if_or_with(false, dot, b),
            Node::With(b) => return self.walk_if_or_with(true, dot, b),
            Node::Range(b) => return self.walk_range(dot, node, b),
            Node::Template { name, pipe, .. } => {
                self.walk_template(dot, node, name, pipe.as_ref())?
            }
            Node::Break(_) => return Ok(Flow::Break),
            Node::Continue(_) => return Ok(Flow::Continue),
        }
        Ok(Flow::Normal)
    }

    fn walk_if_or_with(&mut self, with: bool, dot: &Val, b: &'a Branch) -> R<Flow> {
        let mark = self.vars.len();
        let val = self.eval_pipeline(dot, &b.pipe)?;
        let flow = if val.is_true() {
            if with {
                self.walk_list(&val, &b.list)?
            } else {
                self.walk_list(dot, &b.list)?
            }
        } else if let Some(else_list) = &b.else_list {
            self.walk_list(dot, else_list)?
        } else {
            Flow::Normal
        };
        self.vars.truncate(mark);
        Ok(flow)
    }

    fn walk_range(&mut self, dot: &Val, node: &'a Node, b: &'a Branch) -> R<Flow> {
        self.at = Some(At::Node(node));
        let mark0 = self.vars.len();
        let val = self.eval_pipeline(dot, &b.pipe)?;
        let mark = self.vars.len();
        let items: Vec<(Val, Val)> = match &val {
            Val::Json(JsonValue::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, e)| (Val::int(i as i64), Val::Json(e.clone())))
                .collect(),
            Val::Json(JsonValue::Object(m)) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                keys.into_iter()
                    .map(|k| (Val::string(k.clone()), Val::Json(m[k].clone())))
                    .collect()
            }
            Val::Json(JsonValue::Number(n)) if n.is_i64() || n.is_u64() => {
                if b.pipe.decl.len() > 1 {
                    return Err(self.error(format!(
                        "can't use {} to iterate over more than one variable",
                        print_value(&val)
                    )));
                }
                let n = n.as_i64().unwrap_or(i64::MAX);
                (0..n.max(0)).map(|i| (Val::int(i), Val::int(i))).collect()
            }
            Val::Invalid => Vec::new(),
            other => {
                return Err(self.error(format!("range can't iterate over {}", print_value(other))))
            }
        };
        let ran = !items.is_empty();
        let decl = &b.pipe.decl;
        for (index, elem) in items {
            if !decl.is_empty() {
                if b.pipe.is_assign {
                    let v = if decl.len() > 1 {
                        index.clone()
                    } else {
                        elem.clone()
                    };
                    self.set_var(&decl[0], v)?;
                } else {
                    self.set_top_var(1, elem.clone());
                }
            }
            if decl.len() > 1 {
                if b.pipe.is_assign {
                    self.set_var(&decl[1], elem.clone())?;
                } else {
                    self.set_top_var(2, index);
                }
            }
            let flow = self.walk_list(&elem, &b.list)?;
            self.vars.truncate(mark);
            if flow == Flow::Break {
                break;
            }
        }
        let mut flow = Flow::Normal;
        if !ran {
            if let Some(else_list) = &b.else_list {
                flow = self.walk_list(dot, else_list)?;
            }
        }
        self.vars.truncate(mark0);
        Ok(flow)
    }

    fn walk_template(
        &mut self,
        dot: &Val,
        node: &'a Node,
        name: &'a str,
        pipe: Option<&'a Pipe>,
    ) -> R<()> {
        self.at = Some(At::Node(node));
        let trees = self.trees;
        let Some(tree) = trees.get(name) else {
            return Err(self.error(format!("template {} not defined", quote(name))));
        };
        if self.depth >= MAX_EXEC_DEPTH {
            return Err(self.error(format!(
                "exceeded maximum template depth ({MAX_EXEC_DEPTH})"
            )));
        }
        let new_dot = match pipe {
            Some(p) => self.eval_pipeline(dot, p)?,
            None => Val::Invalid,
        };
        // No dynamic scoping: the invoked template sees only `$`.
        let saved_vars =
            std::mem::replace(&mut self.vars, vec![("$".to_string(), new_dot.clone())]);
        let saved_name = std::mem::replace(&mut self.name, name);
        self.depth += 1;
        let r = self.walk_list(&new_dot, tree);
        self.depth -= 1;
        self.name = saved_name;
        self.vars = saved_vars;
        r.map(|_| ())
    }

    fn eval_pipeline(&mut self, dot: &Val, pipe: &'a Pipe) -> R<Val> {
        self.at = Some(At::Pipe(pipe));
        let mut value: Option<Val> = None;
        for cmd in &pipe.cmds {
            // The previous stage's value is this stage's final argument.
            value = Some(self.eval_command(dot, cmd, value)?.dig());
        }
        let value = value.unwrap_or(Val::Invalid);
        for v in &pipe.decl {
            if pipe.is_assign {
                self.set_var(v, value.clone())?;
            } else {
                self.vars.push((v.clone(), value.clone()));
            }
        }
        Ok(value)
    }

    fn not_a_function(&self, args: &[Arg], fin: &Option<Val>) -> R<()> {
        if args.len() > 1 || fin.is_some() {
            return Err(self.error(format!("can't give argument to non-function {}", args[0])));
        }
        Ok(())
    }

    fn eval_command(&mut self, dot: &Val, cmd: &'a Command, fin: Option<Val>) -> R<Val> {
        let first = &cmd.args[0];
        match first {
            Arg::Field { idents, .. } => {
                if let Some(v) = self.row_method(dot, idents, &cmd.args, &fin)? {
                    return Ok(v);
                }
                return self.eval_field_node(dot, first, idents, &cmd.args, &fin);
            }
            Arg::Chain { node, fields, .. } => {
                return self.eval_chain_node(dot, first, node, fields, &cmd.args, &fin)
            }
            Arg::Identifier { name, .. } => {
                return self.eval_function(dot, first, name, At::Cmd(cmd), &cmd.args[1..], fin);
            }
            Arg::Pipe(p) => {
                self.not_a_function(&cmd.args, &fin)?;
                return self.eval_pipeline(dot, p);
            }
            Arg::Variable { idents, .. } => {
                return self.eval_variable_node(first, idents, &cmd.args, &fin)
            }
            _ => {}
        }
        self.at = Some(At::Arg(first));
        self.not_a_function(&cmd.args, &fin)?;
        match first {
            Arg::Bool { value, .. } => Ok(Val::bool(*value)),
            Arg::Dot(_) => Ok(dot.clone()),
            Arg::Nil(_) => Err(self.error("nil is not a command")),
            Arg::Number { num, .. } => self.ideal_constant(first, num),
            Arg::String { text, .. } => Ok(Val::string(text.clone())),
            _ => Err(self.error(format!(
                "can't evaluate command {}",
                quote(&first.to_string())
            ))),
        }
    }

    /// A number constant with no type context: Go picks int or float64 from its syntax.
    fn ideal_constant(&mut self, node: &'a Arg, num: &NumberConst) -> R<Val> {
        self.at = Some(At::Arg(node));
        let text = &num.text;
        if num.is_complex {
            return Err(self.error(format!("complex constant {text} is not supported")));
        }
        if num.is_float
            && !is_hex_int(text)
            && !text.starts_with('\'')
            && text.contains(['.', 'e', 'E', 'p', 'P'])
        {
            return Ok(float_val(num.float));
        }
        if num.is_int {
            return Ok(Val::int(num.int));
        }
        if num.is_uint {
            return Err(self.error(format!("{text} overflows int")));
        }
        Ok(Val::Invalid)
    }

    /// A docker list row's one-argument method, such as network ls's `.Label "k"`: the row
    /// holds it as `"Label()"`, a map from argument to result ("" when absent).
    fn row_method(
        &mut self,
        dot: &Val,
        idents: &[String],
        args: &'a [Arg],
        fin: &Option<Val>,
    ) -> R<Option<Val>> {
        let (Val::Row(m), [name]) = (dot, idents) else {
            return Ok(None);
        };
        let Some(JsonValue::Object(results)) = m.get(&format!("{name}()")) else {
            return Ok(None);
        };
        let nargs = args.len().saturating_sub(1) + usize::from(fin.is_some());
        if nargs != 1 {
            return Err(self.error(format!(
                "wrong number of args for {name}: want 1 got {nargs}"
            )));
        }
        let arg = match fin {
            Some(v) => v.clone(),
            None => self.eval_arg(dot, Param::Str, &args[1])?,
        };
        let key = arg.as_str().unwrap_or_default();
        let result = results.get(key).and_then(JsonValue::as_str).unwrap_or("");
        Ok(Some(Val::string(result)))
    }

    fn eval_field_node(
        &mut self,
        dot: &Val,
        node: &'a Arg,
        idents: &[String],
        args: &[Arg],
        fin: &Option<Val>,
    ) -> R<Val> {
        self.at = Some(At::Arg(node));
        self.field_chain(Cursor::of(dot), idents, args, fin)
    }

    fn eval_chain_node(
        &mut self,
        dot: &Val,
        node: &'a Arg,
        inner: &'a Arg,
        fields: &[String],
        args: &[Arg],
        fin: &Option<Val>,
    ) -> R<Val> {
        self.at = Some(At::Arg(node));
        if matches!(inner, Arg::Nil(_)) {
            return Err(self.error(format!("indirection through explicit nil in {node}")));
        }
        let receiver = self.eval_arg(dot, Param::Any, inner)?;
        self.field_chain(Cursor::of(&receiver), fields, args, fin)
    }

    fn eval_variable_node(
        &mut self,
        node: &'a Arg,
        idents: &[String],
        args: &[Arg],
        fin: &Option<Val>,
    ) -> R<Val> {
        self.at = Some(At::Arg(node));
        let i = self.var_index(&idents[0])?;
        if idents.len() == 1 {
            self.not_a_function(args, fin)?;
            return Ok(self.vars[i].1.clone());
        }
        self.field_chain(Cursor::of(&self.vars[i].1), &idents[1..], args, fin)
    }

    /// `.X.Y.Z` from `receiver`; only the last field may receive arguments.
    fn field_chain(
        &self,
        receiver: Cursor<'_>,
        idents: &[String],
        args: &[Arg],
        fin: &Option<Val>,
    ) -> R<Val> {
        let mut cur = receiver;
        for (i, name) in idents.iter().enumerate() {
            let nargs = if i + 1 == idents.len() {
                args.len().saturating_sub(1) + usize::from(fin.is_some())
            } else {
                0
            };
            cur = self.field(cur, name, nargs)?;
        }
        Ok(cur.to_val())
    }

    fn field<'v>(&self, receiver: Cursor<'v>, name: &str, nargs: usize) -> R<Cursor<'v>> {
        match receiver {
            // A missing key yields the invalid value, and so do its fields.
            Cursor::Invalid => Ok(Cursor::Invalid),
            Cursor::Json(JsonValue::Null) => {
                Err(self.error(format!("nil pointer evaluating interface {{}}.{name}")))
            }
            Cursor::Json(JsonValue::Object(m)) => {
                if nargs > 0 {
                    return Err(self.error(format!("{name} is not a method but has arguments")));
                }
                Ok(m.get(name).map_or(Cursor::Invalid, Cursor::Json))
            }
            Cursor::Row(m) => match m.get(name) {
                Some(_) if nargs > 0 => Err(self.error(format!(
                    "wrong number of args for {name}: want 0 got {nargs}"
                ))),
                Some(v) => Ok(Cursor::Json(v)),
                None => Err(self.error(format!("can't evaluate field {name} in type {ROW_TYPE}"))),
            },
            Cursor::Json(other) => Err(self.error(format!(
                "can't evaluate field {name} in type {}",
                json_type_name(other)
            ))),
        }
    }

    fn eval_function(
        &mut self,
        dot: &Val,
        node: &'a Arg,
        name: &str,
        call_at: At<'a>,
        args: &'a [Arg],
        fin: Option<Val>,
    ) -> R<Val> {
        self.at = Some(At::Arg(node));
        let Some(func) = lookup(name, self.funcs) else {
            return Err(self.error(format!("{} is not a defined function", quote(name))));
        };
        self.eval_call(dot, &func, call_at, name, args, fin)
    }

    fn eval_call(
        &mut self,
        dot: &Val,
        func: &Func,
        call_at: At<'a>,
        name: &str,
        args: &'a [Arg],
        fin: Option<Val>,
    ) -> R<Val> {
        let num_in = args.len() + usize::from(fin.is_some());
        let nfixed = func.fixed.len();
        match func.variadic {
            Some(_) if num_in < nfixed => {
                return Err(self.error(format!(
                    "wrong number of args for {name}: want at least {nfixed} got {}",
                    args.len()
                )));
            }
            None if num_in != nfixed => {
                return Err(self.error(format!(
                    "wrong number of args for {name}: want {nfixed} got {num_in}"
                )));
            }
            _ => {}
        }
        let param = |i: usize| {
            if i < nfixed {
                func.fixed[i]
            } else {
                func.variadic.unwrap_or(Param::Any)
            }
        };
        if name == "and" || name == "or" {
            // Short-circuit: stop at the first argument that decides the result.
            let mut v = Val::Invalid;
            for arg in args {
                v = self.eval_arg(dot, Param::Value, arg)?;
                if v.is_true() == (name == "or") {
                    return Ok(v);
                }
            }
            if let Some(fin) = fin {
                v = self.validate_type(fin, Param::Value)?;
            }
            return Ok(v);
        }
        let mut argv = Vec::with_capacity(num_in);
        for (i, arg) in args.iter().enumerate() {
            argv.push(self.eval_arg(dot, param(i), arg)?);
        }
        if let Some(fin) = fin {
            argv.push(self.validate_type(fin, param(num_in - 1))?);
        }
        (func.call)(&argv).map_err(|e| {
            self.at = Some(call_at);
            self.error(format!("error calling {name}: {e}"))
        })
    }

    fn eval_arg(&mut self, dot: &Val, param: Param, node: &'a Arg) -> R<Val> {
        self.at = Some(At::Arg(node));
        let v = match node {
            Arg::Dot(_) => dot.clone(),
            Arg::Nil(_) => {
                if param.can_be_nil() {
                    return Ok(Val::Invalid);
                }
                return Err(self.error(format!("cannot assign nil to {}", param.go_name())));
            }
            Arg::Field { idents, .. } => self.eval_field_node(dot, node, idents, &[], &None)?,
            Arg::Variable { idents, .. } => self.eval_variable_node(node, idents, &[], &None)?,
            Arg::Pipe(p) => self.eval_pipeline(dot, p)?,
            Arg::Identifier { name, .. } => {
                self.eval_function(dot, node, name, At::Arg(node), &[], None)?
            }
            Arg::Chain {
                node: inner,
                fields,
                ..
            } => self.eval_chain_node(dot, node, inner, fields, &[], &None)?,
            Arg::Bool { value, .. } => match param {
                Param::Any | Param::Value => return Ok(Val::bool(*value)),
                Param::Str => return Err(self.error(format!("expected string; found {node}"))),
                Param::Int => return Err(self.error(format!("expected integer; found {node}"))),
                Param::StrSlice => {
                    return Err(self.error(format!("can't handle {node} for arg of type []string")))
                }
            },
            Arg::Number { num, .. } => match param {
                Param::Any | Param::Value => return self.ideal_constant(node, num),
                Param::Int if num.is_int => return Ok(Val::int(num.int)),
                Param::Int => return Err(self.error(format!("expected integer; found {node}"))),
                Param::Str => return Err(self.error(format!("expected string; found {node}"))),
                Param::StrSlice => {
                    return Err(self.error(format!("can't handle {node} for arg of type []string")))
                }
            },
            Arg::String { text, .. } => match param {
                Param::Any | Param::Value | Param::Str => return Ok(Val::string(text.clone())),
                Param::Int => return Err(self.error(format!("expected integer; found {node}"))),
                Param::StrSlice => {
                    return Err(self.error(format!("can't handle {node} for arg of type []string")))
                }
            },
        };
        self.validate_type(v, param)
    }

    /// Go's `validateType`: the value must be assignable to the parameter.
    fn validate_type(&self, v: Val, param: Param) -> R<Val> {
        if v == Val::Invalid {
            if param.can_be_nil() {
                return Ok(v);
            }
            return Err(self.error(format!("invalid value; expected {}", param.go_name())));
        }
        let ok = match param {
            Param::Any | Param::Value => true,
            Param::Str => v.as_str().is_some(),
            Param::Int => funcs::is_int(&v),
            Param::StrSlice => funcs::is_str_slice(&v),
        };
        if ok {
            Ok(v)
        } else {
            Err(self.error(format!(
                "wrong type for value; expected {}; got {}",
                param.go_name(),
                v.type_name()
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::location;

    #[test]
    fn locations_are_line_and_byte_in_line() {
        assert_eq!(location("{{.A}}", 2), (1, 2));
        assert_eq!(location("x\n{{.A}}", 4), (2, 2));
    }
}

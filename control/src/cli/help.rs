//! `--help` as docker prints it, rendered from the clap command tree: docker-cli's cobra
//! usage template (cli/cobra.go: `Usage:  ...`, the description, `Aliases:`, `Options:`,
//! the command lists, `Global Options:`, the footer) and pflag's flag table
//! (FlagUsagesWrapped: `  -d, --detach   help`, the value's type name, `(default ...)`,
//! wrapped to the terminal).
//!
//! What a flag shows comes from its clap declaration: its help text, its type name (a
//! lower-case `value_name` such as `filter`, `port` or `bytes`; `duration` for a flag
//! whose help gives duration units, as all of docker's do; else one guessed from its
//! parser as pflag names Go's types) and its default (a clap default value; a flag whose
//! default docker states but clap does not hold says it in its help text).

use std::any::TypeId;

use clap::{Arg, ArgAction, Command};

/// The commands docker lists under `Common Commands:` at the top (its `category-top`
/// annotation), in docker's order.
const COMMON: &[&str] = &["exec", "version", "info"];

/// The commands docker lists under `Swarm Commands:` at the top (its `swarm`
/// annotation).
const SWARM: &[&str] = &["config", "node", "secret", "service", "stack", "swarm"];

/// Commands reachable by more than one path, which docker's help names together under
/// `Aliases:` (its `aliases` annotation).
const SAME_COMMAND: &[&[&str]] = &[&["system info", "info"]];

/// docker-cli's help of `--format` for the commands that print tables (`ls`).
pub const FORMAT_HELP: &str = "Format output using a custom template:
'table':            Print output in table format with column headers (default)
'table TEMPLATE':   Print output in table format using the given Go template
'json':             Print in JSON format
'TEMPLATE':         Print output using the given Go template.
Refer to https://docs.docker.com/go/formatting/ for more information about formatting output with templates";

/// docker-cli's help of `--format` for the commands that print objects (`inspect`).
pub const INSPECT_FORMAT_HELP: &str = "Format output using a custom template:
'json':             Print in JSON format
'TEMPLATE':         Print output using the given Go template.
Refer to https://docs.docker.com/go/formatting/ for more information about formatting output with templates";

/// cobra's minimum width of a command's name in the command lists.
const MIN_NAME_PADDING: usize = 11;

/// What to print, where, and the status to exit with.
#[derive(Debug, PartialEq, Eq)]
pub struct HelpOutput {
    pub text: String,
    pub to_stderr: bool,
    pub code: i32,
}

impl HelpOutput {
    pub fn print(&self) {
        if self.to_stderr {
            eprint!("{}", self.text);
        } else {
            print!("{}", self.text);
        }
    }
}

/// pflag's words when the deprecated `-h` asked for help (printed before the help).
const SHORT_HELP_DEPRECATED: &str = "Flag shorthand -h has been deprecated, use --help\n";

/// The help a failed parse of `argv` (program name first) stands for: `--help` or `-h`
/// (to stdout) or a command group without its command, or the top without any (to
/// stderr, as docker's ShowHelp), all with status 0. `None` for a real failure.
pub fn for_parse_error(root: &Command, argv: &[String], err: &clap::Error) -> Option<HelpOutput> {
    use clap::error::ErrorKind;
    let to_stderr = match err.kind() {
        ErrorKind::DisplayHelp => false,
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => true,
        _ => return None,
    };
    let mut root = root.clone();
    root.build();
    let (cmd, path) = super::usage::command_at(&root, argv);
    let mut text = render(&root, cmd, &path, terminal_width());
    if !to_stderr && asked_with_short_h(argv) {
        text.insert_str(0, SHORT_HELP_DEPRECATED);
    }
    Some(HelpOutput {
        text,
        to_stderr,
        code: 0,
    })
}

/// `shoal help [COMMAND...]` (cobra's help command): the help of the command named, or
/// docker's `unknown help topic` (status 1). `None` when `argv` is no help command.
pub fn for_help_command(root: &Command, argv: &[String]) -> Option<HelpOutput> {
    let mut root = root.clone();
    root.build();
    let mut words = words_after_command(&root, argv);
    if words.next().map(String::as_str) != Some("help") {
        return None;
    }
    let mut cmd = &root;
    let mut path = vec![root.get_name()];
    let topic: Vec<&String> = words.filter(|w| !w.starts_with('-')).collect();
    for (i, word) in topic.iter().enumerate() {
        match cmd
            .find_subcommand(word.as_str())
            .filter(|c| !c.is_hide_set() && c.get_name() != "help")
        {
            Some(sub) => {
                cmd = sub;
                path.push(sub.get_name());
            }
            None => {
                let rest: Vec<&str> = topic[i..].iter().map(|w| w.as_str()).collect();
                return Some(HelpOutput {
                    text: format!("unknown help topic: {}\n", rest.join(" ")),
                    to_stderr: true,
                    code: 1,
                });
            }
        }
    }
    Some(HelpOutput {
        text: render(&root, cmd, &path, terminal_width()),
        to_stderr: false,
        code: 0,
    })
}

/// The words of `argv` after the top's own flags (and their values).
fn words_after_command<'a>(root: &Command, argv: &'a [String]) -> impl Iterator<Item = &'a String> {
    let mut args = argv.iter().skip(1).peekable();
    while let Some(a) = args.peek() {
        let Some(flag) = a.strip_prefix('-').filter(|f| !f.is_empty()) else {
            break;
        };
        let takes = if let Some(long) = flag.strip_prefix('-') {
            !long.contains('=')
                && root
                    .get_arguments()
                    .find(|f| f.get_long() == Some(long))
                    .is_some_and(takes_value)
        } else {
            flag.chars().last().is_some_and(|c| {
                root.get_arguments()
                    .find(|f| f.get_short() == Some(c))
                    .is_some_and(takes_value)
            })
        };
        args.next();
        if takes {
            args.next();
        }
    }
    args
}

fn takes_value(arg: &Arg) -> bool {
    arg.get_action().takes_values() && !arg.is_require_equals_set()
}

/// Whether help was asked for with `-h` (alone or in a group of shorthands) rather than
/// `--help`.
fn asked_with_short_h(argv: &[String]) -> bool {
    argv.iter()
        .skip(1)
        .take_while(|a| *a != "--")
        .any(|a| !a.starts_with("--") && a.starts_with('-') && a[1..].contains('h'))
}

/// The help of the command at `path` (names from the top), printed to stdout without a
/// parse error (`swarm update` without a flag, as docker's pflag.ErrHelp).
pub fn print_help(path: &[&str]) {
    let mut root = super::usage::cli_root();
    root.build();
    let mut cmd = &root;
    let mut names = vec![root.get_name()];
    for name in path {
        match cmd.find_subcommand(name) {
            Some(sub) => {
                cmd = sub;
                names.push(sub.get_name());
            }
            None => break,
        }
    }
    print!("{}", render(&root, cmd, &names, terminal_width()));
}

/// docker's terminal width for help: stdin's, else 80.
fn terminal_width() -> usize {
    let mut ws = nix::libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize into the struct we own.
    let ok = unsafe { nix::libc::ioctl(0, nix::libc::TIOCGWINSZ, &mut ws) } == 0;
    if ok && ws.ws_col > 0 {
        usize::from(ws.ws_col)
    } else {
        80
    }
}

/// The help of `cmd`, found at `path` (`["shoal", "service", "scale"]`) under `root` (built),
/// for a terminal `width` columns wide: docker-cli's usage template.
pub fn render(root: &Command, cmd: &Command, path: &[&str], width: usize) -> String {
    let is_root = path.len() <= 1;
    let bin = root.get_name();
    let path_text = path.join(" ");
    let cols = width.saturating_sub(1);
    let flags = visible_flags(cmd, is_root);
    let subs: Vec<&Command> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
        .collect();

    let mut out = String::from("Usage:");
    if subs.is_empty() {
        out += &format!("  {}", super::usage::use_line(cmd, &path_text));
    } else {
        let options = if flags.is_empty() { "" } else { " [OPTIONS]" };
        out += &format!("  {path_text}{options} COMMAND");
    }
    out += "\n\n";
    out += about(cmd).trim();

    let command = path.get(1..).unwrap_or_default().join(" ");
    let aliases = SAME_COMMAND
        .iter()
        .find(|same| same.contains(&command.as_str()));
    if let Some(same) = aliases {
        let named: Vec<String> = same.iter().map(|c| format!("{bin} {c}")).collect();
        out += &format!("\n\nAliases:\n  {}", named.join(", "));
    } else if cmd.get_all_aliases().next().is_some() {
        let parent = &path_text[..path_text.len() - cmd.get_name().len()];
        let mut named = vec![path_text.clone()];
        named.extend(cmd.get_all_aliases().map(|a| format!("{parent}{a}")));
        out += &format!("\n\nAliases:\n  {}", named.join(", "));
    }

    if !is_root && !flags.is_empty() {
        out += "\n\nOptions:\n";
        out += flag_table(&flags, cols).trim_end();
    }

    let padding = cmd
        .get_subcommands()
        .map(|s| s.get_name().len())
        .max()
        .unwrap_or(0)
        .max(MIN_NAME_PADDING);
    let list = |title: &str, cmds: &[&Command]| -> String {
        if cmds.is_empty() {
            return String::new();
        }
        let mut s = format!("\n\n{title}:");
        for c in cmds {
            s += &format!(
                "\n  {:<width$}{}",
                c.get_name(),
                about(c).trim(),
                width = padding + 1
            );
        }
        s
    };
    let has_subs = |c: &Command| c.get_subcommands().any(|s| s.get_name() != "help");
    let mut sorted = subs.clone();
    sorted.sort_by_key(|c| c.get_name());
    if is_root {
        let common: Vec<&Command> = COMMON
            .iter()
            .filter_map(|n| subs.iter().find(|c| c.get_name() == *n).copied())
            .collect();
        let swarm = |c: &Command| SWARM.contains(&c.get_name());
        let management: Vec<&Command> = sorted
            .iter()
            .filter(|c| has_subs(c) && !swarm(c))
            .copied()
            .collect();
        let orchestration: Vec<&Command> = sorted
            .iter()
            .filter(|c| has_subs(c) && swarm(c))
            .copied()
            .collect();
        let operations: Vec<&Command> = sorted
            .iter()
            .filter(|c| !has_subs(c) && !COMMON.contains(&c.get_name()))
            .copied()
            .collect();
        out += &list("Common Commands", &common);
        out += &list("Management Commands", &management);
        out += &list("Swarm Commands", &orchestration);
        out += &list("Commands", &operations);
        if !flags.is_empty() {
            out += "\n\nGlobal Options:\n";
            out += flag_table(&flags, cols).trim_end();
        }
    } else {
        let management: Vec<&Command> = sorted.iter().filter(|c| has_subs(c)).copied().collect();
        let operations: Vec<&Command> = sorted.iter().filter(|c| !has_subs(c)).copied().collect();
        out += &list("Management Commands", &management);
        out += &list("Commands", &operations);
    }
    if !subs.is_empty() {
        out += &format!("\n\nRun '{path_text} COMMAND --help' for more information on a command.");
    }
    out.push('\n');
    out
}

/// What the help of `root` and of every command under it leaves out, each rendered on
/// the way: a command without a description (`shoal lab`), a flag without a help text
/// (`shoal lab up --name`).
pub fn undocumented(root: &Command) -> Vec<String> {
    fn walk(root: &Command, cmd: &Command, path: &mut Vec<String>, out: &mut Vec<String>) {
        let names: Vec<&str> = path.iter().map(String::as_str).collect();
        let text = render(root, cmd, &names, 80);
        debug_assert!(text.starts_with("Usage:  "), "{text}");
        if about(cmd).trim().is_empty() {
            out.push(names.join(" "));
        }
        for flag in visible_flags(cmd, names.len() == 1) {
            if flag
                .get_help()
                .is_none_or(|h| h.to_string().trim().is_empty())
            {
                out.push(format!("{} --{}", names.join(" "), flag_name(flag)));
            }
        }
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            path.push(sub.get_name().to_string());
            walk(root, sub, path, out);
            path.pop();
        }
    }
    let mut root = root.clone();
    root.build();
    let mut out = Vec::new();
    walk(
        &root,
        &root,
        &mut vec![root.get_name().to_string()],
        &mut out,
    );
    out
}

/// A command's description: its long one if it has one, else its short one (cobra's
/// `.Long`, `.Short`).
fn about(cmd: &Command) -> String {
    cmd.get_long_about()
        .or(cmd.get_about())
        .map(|s| s.to_string())
        .unwrap_or_default()
}

/// The flags a command's help lists, sorted by name as pflag sorts them: not the help
/// flag (docker hides it), not hidden ones, not positionals, and under the top not the
/// top's global ones.
fn visible_flags(cmd: &Command, is_root: bool) -> Vec<&Arg> {
    let mut flags: Vec<&Arg> = cmd
        .get_arguments()
        .filter(|a| {
            !a.is_positional()
                && !a.is_hide_set()
                && a.get_id() != "help"
                && (is_root || !a.is_global_set())
        })
        .collect();
    flags.sort_by_key(|a| flag_name(a));
    flags
}

fn flag_name(arg: &Arg) -> String {
    arg.get_long()
        .map(str::to_string)
        .unwrap_or_else(|| arg.get_id().to_string())
}

fn is_bool(arg: &Arg) -> bool {
    matches!(
        arg.get_action(),
        ArgAction::SetTrue | ArgAction::SetFalse | ArgAction::Help | ArgAction::Version
    ) || arg.get_value_parser().type_id() == TypeId::of::<bool>()
}

/// The type name pflag shows after a flag: a lower-case value name the declaration
/// gave, else Go's name for the parsed type (`int` for Go's int64 as pflag has it),
/// `list` for a repeatable flag, nothing for a boolean.
pub(crate) fn type_name(arg: &Arg) -> String {
    if let Some(name) = arg.get_value_names().and_then(|v| v.first()) {
        if name.starts_with(|c: char| c.is_ascii_lowercase()) && name.as_str() != "true|false" {
            return name.to_string();
        }
    }
    if is_bool(arg) {
        return String::new();
    }
    let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
    if help.contains("(ns|us|ms|s|m|h)") || help.contains("(ms|s|m|h)") {
        return "duration".into();
    }
    if matches!(arg.get_action(), ArgAction::Append) {
        return "list".into();
    }
    let id = arg.get_value_parser().type_id();
    let named: &[(TypeId, &str)] = &[
        (TypeId::of::<i64>(), "int"),
        (TypeId::of::<i32>(), "int32"),
        (TypeId::of::<isize>(), "int"),
        (TypeId::of::<u64>(), "uint"),
        (TypeId::of::<usize>(), "uint"),
        (TypeId::of::<u32>(), "uint32"),
        (TypeId::of::<u16>(), "uint16"),
        (TypeId::of::<u8>(), "uint8"),
        (TypeId::of::<f64>(), "float"),
        (TypeId::of::<f32>(), "float32"),
    ];
    named
        .iter()
        .find(|(t, _)| id == *t)
        .map_or("string", |(_, n)| n)
        .to_string()
}

/// pflag's `(default ...)` of a flag: its clap default unless hidden or Go's zero value,
/// quoted for a string; a boolean's only when `true`.
fn default_text(arg: &Arg, type_name: &str) -> Option<String> {
    let values: Vec<String> = arg
        .get_default_values()
        .iter()
        .map(|v| v.to_string_lossy().into_owned())
        .collect();
    if is_bool(arg) {
        return (values.first().map(String::as_str) == Some("true"))
            .then(|| "(default true)".to_string());
    }
    if arg.is_hide_default_value_set() || values.is_empty() {
        return None;
    }
    let value = values.join(",");
    if matches!(value.as_str(), "" | "0" | "0s" | "[]" | "false" | "<nil>") {
        return None;
    }
    Some(if type_name == "string" {
        format!("(default {})", super::usage::go_quote(&value))
    } else {
        format!("(default {value})")
    })
}

/// pflag's FlagUsagesWrapped: one line per flag, the help texts lined up after the
/// longest flag and wrapped to `cols` columns.
fn flag_table(flags: &[&Arg], cols: usize) -> String {
    let mut lines: Vec<(String, String)> = Vec::new();
    for arg in flags {
        let mut line = match (arg.get_short(), arg.get_long()) {
            (Some(s), Some(l)) => format!("  -{s}, --{l}"),
            (None, Some(l)) => format!("      --{l}"),
            (Some(s), None) => format!("  -{s}"),
            (None, None) => format!("      --{}", arg.get_id()),
        };
        let type_name = type_name(arg);
        if !type_name.is_empty() {
            line += &format!(" {type_name}");
        }
        let mut usage = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
        if let Some(default) = default_text(arg, &type_name) {
            usage += " ";
            usage += &default;
        }
        lines.push((line, usage));
    }
    let maxlen = lines.iter().map(|(l, _)| l.len() + 1).max().unwrap_or(0);
    let mut out = String::new();
    for (line, usage) in lines {
        let spacing = " ".repeat(maxlen - line.len());
        out += &format!("{line} {spacing} {}\n", wrap(maxlen + 2, cols, &usage));
    }
    out
}

/// pflag's wrapN: `s` split on whitespace into a first part of up to `i` bytes and the
/// rest, going `slop` over when that takes all of it.
fn wrap_n(i: usize, slop: usize, s: &str) -> (&str, &str) {
    if i + slop > s.len() {
        return (s, "");
    }
    let head = &s.as_bytes()[..i];
    let w = match head.iter().rposition(|b| matches!(b, b' ' | b'\t' | b'\n')) {
        Some(w) if w > 0 => w,
        _ => return (s, ""),
    };
    if let Some(nl) = head.iter().rposition(|b| *b == b'\n') {
        if nl > 0 && nl < w {
            return (&s[..nl], &s[nl + 1..]);
        }
    }
    (&s[..w], &s[w + 1..])
}

/// pflag's wrap: `s` wrapped to `w` columns with the lines after the first indented by
/// `i` (0 columns: no wrapping).
fn wrap(i: usize, w: usize, s: &str) -> String {
    let mut indent = i;
    if w == 0 {
        return s.replace('\n', &format!("\n{}", " ".repeat(indent)));
    }
    let mut room = w as isize - indent as isize;
    let mut r = String::new();
    if room < 24 {
        indent = 16;
        room = w as isize - 16;
        r = format!("\n{}", " ".repeat(indent));
    }
    if room < 24 {
        return s.replace('\n', &r);
    }
    let slop = 5;
    let room = (room - slop as isize) as usize;
    let pad = format!("\n{}", " ".repeat(indent));
    let (first, mut rest) = wrap_n(room, slop, s);
    r += &first.replace('\n', &pad);
    while !rest.is_empty() {
        let (line, more) = wrap_n(room, slop, rest);
        r += &pad;
        r += &line.replace('\n', &pad);
        rest = more;
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The help `shoal PATH --help` prints on an 80-column terminal.
    fn help(path: &[&str]) -> String {
        let mut root = crate::cli::usage::cli_root();
        root.build();
        let mut cmd = &root;
        let mut names = vec!["shoal"];
        for name in path {
            cmd = cmd.find_subcommand(name).expect("a command");
            names.push(cmd.get_name());
        }
        render(&root, cmd, &names, 80)
    }

    fn argv(args: &[&str]) -> Vec<String> {
        std::iter::once("shoal")
            .chain(args.iter().copied())
            .map(String::from)
            .collect()
    }

    /// What `shoal ARGS` prints as help, if it does.
    fn asked(args: &[&str]) -> Option<HelpOutput> {
        let root = crate::cli::usage::cli_root();
        let argv = argv(args);
        if let Some(h) = for_help_command(&root, &argv) {
            return Some(h);
        }
        let err = root.clone().try_get_matches_from(&argv).err()?;
        for_parse_error(&root, &argv, &err)
    }

    /// docker's `service scale --help` word for word: the usage line with two spaces,
    /// the description, the flag with its shorthand, wrapped as pflag wraps.
    #[test]
    fn service_scale_help_is_dockers() {
        assert_eq!(
            help(&["service", "scale"]),
            "Usage:  shoal service scale SERVICE=REPLICAS [SERVICE=REPLICAS...]

Scale one or multiple replicated services

Options:
  -d, --detach   Exit immediately instead of waiting for the service to
                 converge
"
        );
    }

    /// `node ls`: aliases, a `filter` flag, docker's multi-line `--format` help.
    #[test]
    fn node_ls_help_is_dockers() {
        assert_eq!(
            help(&["node", "ls"]),
            "Usage:  shoal node ls [OPTIONS]

List nodes in the swarm

Aliases:
  shoal node ls, shoal node list

Options:
  -f, --filter filter   Filter output based on conditions provided
      --format string   Format output using a custom template:
                        'table':            Print output in table format
                        with column headers (default)
                        'table TEMPLATE':   Print output in table format
                        using the given Go template
                        'json':             Print in JSON format
                        'TEMPLATE':         Print output using the given
                        Go template.
                        Refer to https://docs.docker.com/go/formatting/
                        for more information about formatting output with
                        templates
  -q, --quiet           Only display IDs
"
        );
    }

    /// `swarm init`: docker's type names (duration, node-addr, ipNetSlice, uint32, int)
    /// and defaults; the flags Shoal lacks (`--data-path-addr`, `--external-ca`,
    /// `--max-snapshots`, `--snapshot-interval`) are the only lines docker has more.
    #[test]
    fn swarm_init_help_is_dockers() {
        assert_eq!(
            help(&["swarm", "init"]),
            r#"Usage:  shoal swarm init [OPTIONS]

Initialize a swarm

Options:
      --advertise-addr string                  Advertised address
                                               (format:
                                               "<ip|interface>[:port]")
      --autolock                               Enable manager autolocking
                                               (requiring an unlock key
                                               to start a stopped manager)
      --availability string                    Availability of the node
                                               ("active", "pause",
                                               "drain") (default "active")
      --cert-expiry duration                   Validity period for node
                                               certificates
                                               (ns|us|ms|s|m|h) (default
                                               2160h0m0s)
      --data-path-port uint32                  Port number to use for
                                               data path traffic (1024 -
                                               49151). If no value is set
                                               or is set to 0, the
                                               default port (4789) is used.
      --default-addr-pool ipNetSlice           default address pool in
                                               CIDR format (default [])
      --default-addr-pool-mask-length uint32   default address pool
                                               subnet mask length (default 24)
      --dispatcher-heartbeat duration          Dispatcher heartbeat
                                               period (ns|us|ms|s|m|h)
                                               (default 5s)
      --force-new-cluster                      Force create a new cluster
                                               from current state
      --listen-addr node-addr                  Listen address (format:
                                               "<ip|interface>[:port]")
                                               (default 0.0.0.0:2377)
      --task-history-limit int                 Task history retention
                                               limit (default 5)
"#
        );
    }

    /// `stack deploy`: a `strings` flag, a boolean whose default is true, a clap
    /// default shown quoted.
    #[test]
    fn stack_deploy_help_is_dockers() {
        assert_eq!(
            help(&["stack", "deploy"]),
            r#"Usage:  shoal stack deploy [OPTIONS] STACK

Deploy a new stack or update an existing stack

Aliases:
  shoal stack deploy, shoal stack up

Options:
  -c, --compose-file strings   Path to a Compose file, or "-" to read
                               from stdin
  -d, --detach                 Exit immediately instead of waiting for
                               the stack services to converge (default true)
      --prune                  Prune services that are no longer referenced
  -q, --quiet                  Suppress progress output
      --resolve-image string   Query the registry to resolve image digest
                               and supported platforms ("always",
                               "changed", "never") (default "always")
      --with-registry-auth     Send registry authentication details to
                               Swarm agents
"#
        );
    }

    /// `network create`: docker's layout for the flags Shoal has (its driver is
    /// `overlay`, its subnet and gateway one each).
    #[test]
    fn network_create_help_is_dockers() {
        assert_eq!(
            help(&["network", "create"]),
            r#"Usage:  shoal network create [OPTIONS] NETWORK

Create a network

Options:
      --attachable       Enable manual container attachment
  -d, --driver string    Driver to manage the Network (default "overlay")
      --gateway string   IPv4 Gateway for the master subnet
      --internal         Restrict external access to the network
      --label list       Set metadata on a network
  -o, --opt map          Set driver specific options (default map[])
      --subnet string    Subnet in CIDR format that represents a network
                         segment
"#
        );
    }

    /// A command group: `COMMAND` in the usage line, its commands sorted, the footer;
    /// `system info` and `info` are one command, named together as docker names them.
    #[test]
    fn groups_and_aliases_are_dockers() {
        assert_eq!(
            help(&["service"]),
            "Usage:  shoal service COMMAND

Manage Swarm services

Commands:
  create      Create a new service
  inspect     Display detailed information on one or more services
  logs        Fetch the logs of a service or task
  ls          List services
  ps          List the tasks of one or more services
  rm          Remove one or more services
  rollback    Revert changes to a service's configuration
  scale       Scale one or multiple replicated services
  update      Update a service

Run 'shoal service COMMAND --help' for more information on a command.
"
        );
        assert!(
            help(&["system", "info"]).contains("\n\nAliases:\n  shoal system info, shoal info\n\n")
        );
        assert!(help(&["info"]).contains("\n\nAliases:\n  shoal system info, shoal info\n\n"));
        assert!(help(&["stack", "rm"])
            .contains("\n\nAliases:\n  shoal stack rm, shoal stack remove, shoal stack down\n"));
    }

    /// The defaults docker's `service create` shows are not shown by `service update`,
    /// which shares the flags.
    #[test]
    fn create_shows_dockers_defaults_update_does_not() {
        let create = help(&["service", "create"]);
        assert!(create.contains("      --update-parallelism uint            Maximum number of tasks\n                                           updated simultaneously (0 to\n                                           update all at once) (default 1)\n"), "{create}");
        assert!(
            create
                .contains("      --stop-grace-period duration         Time to wait before force\n"),
            "{create}"
        );
        assert!(
            create.contains("      --limit-memory bytes                 Limit Memory\n"),
            "{create}"
        );
        let update = help(&["service", "update"]);
        assert!(!update.contains("(default 1)"), "{update}");
        assert!(
            update.contains(
                "      --publish-add port                   Add or update a published port\n"
            ),
            "{update}"
        );
    }

    /// Every command's help renders, and every flag it shows has a help text.
    #[test]
    fn every_command_has_help_for_every_flag() {
        let root = crate::cli::usage::cli_root().about("the binary's");
        assert_eq!(undocumented(&root), Vec::<String>::new());
        let bare = Command::new("shoal")
            .about("x")
            .subcommand(Command::new("sub").arg(Arg::new("flag").long("flag")));
        assert_eq!(undocumented(&bare), ["shoal sub", "shoal sub --flag"]);
    }

    /// pflag's wrapping: to the columns left after the flag column, a few over rather
    /// than leave a short last word, and under the flag column when it is too wide.
    #[test]
    fn wrapping_is_pflags() {
        assert_eq!(wrap(17, 79, "short"), "short");
        assert_eq!(
            wrap(
                17,
                79,
                "Exit immediately instead of waiting for the service to converge"
            ),
            "Exit immediately instead of waiting for the service to\n                 converge"
        );
        // Five characters of slop keep "all" on the line.
        assert_eq!(
            wrap(10, 40, "aaaa bbbb cccc dddd eeee all"),
            "aaaa bbbb cccc dddd eeee all"
        );
        // Fewer than 24 columns left: the text starts on its own line, 16 in.
        assert_eq!(wrap(60, 79, "a b"), format!("\n{}a b", " ".repeat(16)));
        assert_eq!(wrap(17, 0, "a\nb"), format!("a\n{}b", " ".repeat(17)));
    }

    /// `--help` prints to stdout; `-h` first says it is deprecated, as pflag does; a
    /// group alone prints its help to stderr; all with status 0.
    #[test]
    fn help_is_asked_for_as_in_docker() {
        let scale = help(&["service", "scale"]);
        assert_eq!(
            asked(&["service", "scale", "--help"]),
            Some(HelpOutput {
                text: scale.clone(),
                to_stderr: false,
                code: 0
            })
        );
        assert_eq!(
            asked(&["-H", "x", "service", "scale", "-h"]).unwrap().text,
            format!("Flag shorthand -h has been deprecated, use --help\n{scale}")
        );
        assert_eq!(
            asked(&["service"]),
            Some(HelpOutput {
                text: help(&["service"]),
                to_stderr: true,
                code: 0
            })
        );
        assert!(asked(&["service", "scale", "web=2"]).is_none());
    }

    /// `shoal help [COMMAND...]`: cobra's help command, and its words for a topic that
    /// is no command.
    #[test]
    fn help_command_is_dockers() {
        assert_eq!(
            asked(&["help", "service", "scale"]).unwrap().text,
            help(&["service", "scale"])
        );
        assert_eq!(
            asked(&["-H", "/run/x.sock", "help", "node", "ls"])
                .unwrap()
                .text,
            help(&["node", "ls"])
        );
        assert_eq!(
            asked(&["help", "service", "bogus"]),
            Some(HelpOutput {
                text: "unknown help topic: bogus\n".into(),
                to_stderr: true,
                code: 1
            })
        );
        // `help` is no word under a command: docker's unknown command.
        let root = crate::cli::usage::cli_root();
        let argv = argv(&["service", "help"]);
        let err = root.clone().try_get_matches_from(&argv).unwrap_err();
        assert!(for_parse_error(&root, &argv, &err).is_none());
        assert_eq!(
            crate::cli::usage::usage_failure(&root, &argv, &err).unwrap().message,
            "shoal: unknown command: shoal service help\n\nUsage:  shoal service\n\nRun 'shoal service --help' for more information"
        );
    }
}

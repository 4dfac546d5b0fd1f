//! Usage errors as docker prints them, in place of clap's: pflag's words for a bad flag
//! (exit 125, through docker-cli's FlagErrorFunc), docker-cli's cli/required.go words for
//! a wrong number of arguments and cobra's for an unknown command or a required flag
//! (exit 1: those are plain errors in docker).

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Arg, Command};

/// What a failed parse prints (to stderr) and the exit status it ends with.
#[derive(Debug, PartialEq, Eq)]
pub struct UsageFailure {
    pub message: String,
    pub code: i32,
}

/// docker's status for a flag error (cli.StatusError from FlagErrorFunc).
const FLAG_ERROR: i32 = 125;

/// The docker words for a clap parse error of `argv` (program name first) against `root`,
/// or `None` for what is no failure (`--help`, `--version`, a group's help for a missing
/// subcommand, which docker prints with status 0): clap prints those itself.
pub fn usage_failure(root: &Command, argv: &[String], err: &clap::Error) -> Option<UsageFailure> {
    let mut root = root.clone();
    root.build();
    let (cmd, path) = command_at(&root, argv);
    let bin = root.get_name().to_string();
    let path = path.join(" ");
    let arg_text = |kind| match err.get(kind) {
        Some(ContextValue::String(s)) => s.clone(),
        Some(ContextValue::Strings(v)) => v.first().cloned().unwrap_or_default(),
        _ => String::new(),
    };
    let flag_error = |text: String| UsageFailure {
        message: format!(
            "{text}\n\nUsage:  {}\n\nRun '{path} --help' for more information",
            use_line(cmd, &path)
        ),
        code: FLAG_ERROR,
    };
    let plain = |message: String| UsageFailure { message, code: 1 };
    Some(match err.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => return None,
        ErrorKind::UnknownArgument => {
            let token = arg_text(ContextKind::InvalidArg);
            match token.strip_prefix('-') {
                Some(rest) if !rest.is_empty() => flag_error(unknown_flag(&token, argv)),
                _ => plain(arguments_error(cmd, &bin, &path)),
            }
        }
        ErrorKind::MissingRequiredArgument => {
            let missing = match err.get(ContextKind::InvalidArg) {
                Some(ContextValue::Strings(v)) => v.clone(),
                _ => Vec::new(),
            };
            let flags: Vec<String> = missing
                .iter()
                .filter_map(|m| m.strip_prefix("--"))
                .map(|m| m.split([' ', '=']).next().unwrap_or(m).to_string())
                .collect();
            if flags.is_empty() {
                plain(arguments_error(cmd, &bin, &path))
            } else {
                // cobra's ValidateRequiredFlags.
                plain(format!(
                    "required flag(s) \"{}\" not set",
                    flags.join("\", \"")
                ))
            }
        }
        ErrorKind::InvalidSubcommand | ErrorKind::MissingSubcommand => {
            let word = arg_text(ContextKind::InvalidSubcommand);
            plain(unknown_command(cmd, &bin, &path, &word))
        }
        ErrorKind::InvalidValue | ErrorKind::ValueValidation => {
            let value = arg_text(ContextKind::InvalidValue);
            let named = arg_text(ContextKind::InvalidArg);
            let flag = find_flag(cmd, &named);
            if value.is_empty() && err.kind() == ErrorKind::InvalidValue {
                // clap's "a value is required": pflag's words.
                return Some(flag_error(needs_argument(flag, &named, argv)));
            }
            let reason = invalid_value_reason(err, flag, &value);
            match flag {
                Some(flag) => flag_error(format!(
                    "invalid argument {} for \"{}\" flag: {reason}",
                    go_quote(&value),
                    pflag_name(flag)
                )),
                // A positional's value: docker checks those when the command runs.
                None => plain(reason),
            }
        }
        _ => flag_error(clap_first_line(err)),
    })
}

/// A flag value the command refused when it ran (`invalid argument "5" for
/// "--update-delay" flag: ...`, pflag's words, as the service flags' parsers give them):
/// docker refuses those while parsing, as flag errors. `None` for any other error.
pub fn flag_value_failure(argv: &[String], message: &str) -> Option<UsageFailure> {
    let flag_error = message.starts_with("invalid argument \"")
        && message.contains("\" for \"")
        && message.contains("\" flag: ");
    if !flag_error {
        return None;
    }
    let root = cli_root();
    let (cmd, path) = command_at(&root, argv);
    let path = path.join(" ");
    Some(UsageFailure {
        message: format!(
            "{message}\n\nUsage:  {}\n\nRun '{path} --help' for more information",
            use_line(cmd, &path)
        ),
        code: FLAG_ERROR,
    })
}

/// The `shoal` command tree of the control plane's commands (the binary adds `lab`),
/// with pflag's boolean flags, for a command that needs its own declaration.
pub(crate) fn cli_root() -> Command {
    super::pflag::bool_flags(
        <crate::cli::Command as clap::Subcommand>::augment_subcommands(
            Command::new("shoal").disable_help_subcommand(true).arg(
                Arg::new("host")
                    .short('H')
                    .long("host")
                    .value_name("list")
                    .help("Daemon socket to connect to")
                    .action(clap::ArgAction::Set),
            ),
        ),
    )
}

/// The deepest subcommand `argv` names, and its path from the root (`shoal service
/// create`). Flags before and between the names are stepped over, with their values.
pub(crate) fn command_at<'a>(root: &'a Command, argv: &[String]) -> (&'a Command, Vec<&'a str>) {
    let mut cmd = root;
    let mut path = vec![root.get_name()];
    let mut args = argv.iter().skip(1);
    while let Some(a) = args.next() {
        if a == "--" {
            break;
        }
        if let Some(long) = a.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, _)) => (n, true),
                None => (long, false),
            };
            let takes = cmd
                .get_arguments()
                .find(|f| f.get_long() == Some(name))
                .is_some_and(takes_value);
            if takes && !inline {
                args.next();
            }
        } else if let Some(shorts) = a.strip_prefix('-').filter(|s| !s.is_empty()) {
            for (i, c) in shorts.char_indices() {
                let takes = cmd
                    .get_arguments()
                    .find(|f| f.get_short() == Some(c))
                    .is_some_and(takes_value);
                if takes {
                    if i + c.len_utf8() == shorts.len() {
                        args.next();
                    }
                    break;
                }
            }
        } else {
            match cmd.find_subcommand(a) {
                Some(sub) => {
                    cmd = sub;
                    path.push(sub.get_name());
                }
                None => break,
            }
        }
    }
    (cmd, path)
}

/// Whether the next argument can be the flag's value: not for a boolean flag, whose
/// value comes only after `=`.
fn takes_value(arg: &Arg) -> bool {
    arg.get_action().takes_values() && !arg.is_require_equals_set()
}

/// cobra's UseLine: the command's path and docker's `Use` arguments.
pub(crate) fn use_line(cmd: &Command, path: &str) -> String {
    let command = path.split_once(' ').map_or("", |(_, rest)| rest);
    match docker_use(command) {
        Some("") => path.to_string(),
        Some(args) => format!("{path} {args}"),
        None => format!("{path}{}", derived_use(cmd)),
    }
}

/// docker-cli's `Use` arguments of each command shoal shares with docker.
fn docker_use(command: &str) -> Option<&'static str> {
    Some(match command {
        "" => "[OPTIONS] COMMAND [ARG...]",
        "swarm" | "node" | "network" | "service" | "secret" | "config" | "system" => "",
        "stack" => "[OPTIONS]",
        "swarm init" | "swarm leave" | "swarm update" | "swarm unlock-key" | "swarm ca" => {
            "[OPTIONS]"
        }
        "swarm join" => "[OPTIONS] HOST:PORT",
        "swarm join-token" => "[OPTIONS] (worker|manager)",
        "node demote" | "node promote" => "NODE [NODE...]",
        "node inspect" => "[OPTIONS] self|NODE [NODE...]",
        "node ps" => "[OPTIONS] [NODE...]",
        "node rm" => "[OPTIONS] NODE [NODE...]",
        "node update" => "[OPTIONS] NODE",
        "network create" => "[OPTIONS] NETWORK",
        "network inspect" => "[OPTIONS] NETWORK [NETWORK...]",
        "network rm" => "NETWORK [NETWORK...]",
        "service create" => "[OPTIONS] IMAGE [COMMAND] [ARG...]",
        "service inspect" => "[OPTIONS] SERVICE [SERVICE...]",
        "service logs" => "[OPTIONS] SERVICE|TASK",
        "service ps" => "[OPTIONS] SERVICE [SERVICE...]",
        "service rm" => "SERVICE [SERVICE...]",
        "service rollback" | "service update" => "[OPTIONS] SERVICE",
        "service scale" => "SERVICE=REPLICAS [SERVICE=REPLICAS...]",
        "stack deploy" | "stack ps" | "stack services" => "[OPTIONS] STACK",
        "stack rm" => "[OPTIONS] STACK [STACK...]",
        "secret create" => "[OPTIONS] SECRET [file|-]",
        "secret inspect" => "[OPTIONS] SECRET [SECRET...]",
        "secret rm" => "SECRET [SECRET...]",
        "config create" => "[OPTIONS] CONFIG file|-",
        "config inspect" => "[OPTIONS] CONFIG [CONFIG...]",
        "config rm" => "CONFIG [CONFIG...]",
        "inspect" => "[OPTIONS] NAME|ID [NAME|ID...]",
        "exec" => "[OPTIONS] TASK COMMAND [ARG...]",
        "version" | "info" | "system info" => "[OPTIONS]",
        c if c.ends_with(" ls") || c.ends_with(" prune") => "[OPTIONS]",
        _ => return None,
    })
}

/// A `Use` in docker's style for a command docker does not have: `[OPTIONS]` when it has
/// flags, then its arguments (`NAME`, `[NAME]`, `NAME [NAME...]`).
fn derived_use(cmd: &Command) -> String {
    let mut out = String::new();
    if cmd.get_subcommands().next().is_some() {
        return " COMMAND".into();
    }
    if cmd
        .get_arguments()
        .any(|a| !a.is_positional() && !a.is_global_set() && a.get_id() != "help")
    {
        out.push_str(" [OPTIONS]");
    }
    for a in cmd.get_positionals() {
        let name = a
            .get_value_names()
            .and_then(|v| v.first())
            .map_or_else(|| a.get_id().as_str().to_uppercase(), |n| n.to_string());
        let many = a.get_num_args().is_some_and(|r| r.max_values() > 1);
        out.push(' ');
        out.push_str(&match (a.is_required_set(), many) {
            (true, false) => name,
            (true, true) => format!("{name} [{name}...]"),
            (false, false) => format!("[{name}]"),
            (false, true) => format!("[{name}...]"),
        });
    }
    out
}

/// How many arguments a command takes, as docker-cli's cli/required.go checks them.
#[derive(Debug, PartialEq, Eq)]
enum ArgCount {
    None,
    AtLeast(usize),
    Exactly(usize),
    Between(usize, usize),
}

fn arg_count(cmd: &Command) -> ArgCount {
    let (mut min, mut max) = (0usize, 0usize);
    for a in cmd.get_positionals() {
        let range = a.get_num_args().unwrap_or_default();
        if a.is_required_set() {
            min += range.min_values().max(1);
        }
        max = max.saturating_add(range.max_values());
    }
    match (min, max) {
        (_, 0) => ArgCount::None,
        (min, usize::MAX) => ArgCount::AtLeast(min),
        (min, max) if min == max => ArgCount::Exactly(min),
        (min, max) => ArgCount::Between(min, max),
    }
}

/// docker-cli's NoArgs / RequiresMinArgs / ExactArgs / RequiresRangeArgs messages.
fn arguments_error(cmd: &Command, bin: &str, path: &str) -> String {
    let plural = |n: usize| if n == 1 { "argument" } else { "arguments" };
    let use_line = use_line(cmd, path);
    match arg_count(cmd) {
        ArgCount::None => format!(
            "{bin}: '{path}' accepts no arguments\n\nUsage:  {use_line}\n\nRun '{path} --help' for more information"
        ),
        ArgCount::AtLeast(n) => format!(
            "{bin}: '{path}' requires at least {n} {}\n\nUsage:  {use_line}\n\nSee '{path} --help' for more information",
            plural(n)
        ),
        ArgCount::Exactly(n) => format!(
            "{bin}: '{path}' requires {n} {}\n\nUsage:  {use_line}\n\nRun '{path} --help' for more information",
            plural(n)
        ),
        ArgCount::Between(min, max) => format!(
            "{bin}: '{path}' requires at least {min} and at most {max} {}\n\nUsage:  {use_line}\n\nRun '{path} --help' for more information",
            plural(max)
        ),
    }
}

/// docker's words for a word that is no subcommand: the root's RunE, or NoArgs of a
/// command group.
fn unknown_command(cmd: &Command, bin: &str, path: &str, word: &str) -> String {
    if path == bin {
        format!("{bin}: unknown command: {bin} {word}\n\nRun '{bin} --help' for more information")
    } else {
        format!(
            "{bin}: unknown command: {path} {word}\n\nUsage:  {}\n\nRun '{path} --help' for more information",
            use_line(cmd, path)
        )
    }
}

/// pflag's words for a flag the command does not have.
fn unknown_flag(token: &str, argv: &[String]) -> String {
    let name = token.split('=').next().unwrap_or(token);
    if name.starts_with("--") {
        return format!("unknown flag: {name}");
    }
    let c = name.chars().nth(1).unwrap_or('-');
    // pflag names the whole group the shorthand was in (`-xv`).
    let group = argv
        .iter()
        .skip(1)
        .find(|a| !a.starts_with("--") && a.starts_with('-') && a[1..].contains(c))
        .map_or(name, String::as_str);
    format!("unknown shorthand flag: '{c}' in {group}")
}

/// pflag's words for a flag given last with no value: by the name it was given as.
fn needs_argument(flag: Option<&Arg>, named: &str, argv: &[String]) -> String {
    let word = named.split([' ', '=', '[']).next().unwrap_or(named);
    let last = argv.last().map_or("", String::as_str);
    let short = flag.and_then(Arg::get_short).or_else(|| {
        word.strip_prefix('-')
            .filter(|w| !w.starts_with('-'))
            .and_then(|w| w.chars().next())
    });
    match short {
        Some(c) if !last.starts_with("--") && last.starts_with('-') && last[1..].contains(c) => {
            format!("flag needs an argument: '{c}' in {last}")
        }
        _ => format!("flag needs an argument: {word}"),
    }
}

/// The flag clap names in an error (`--replicas <REPLICAS>`, `-n <N>`,
/// `--force[=<true|false>]`), if it is one.
fn find_flag<'a>(cmd: &'a Command, named: &str) -> Option<&'a Arg> {
    let word = named.split([' ', '=', '[']).next()?;
    if let Some(long) = word.strip_prefix("--") {
        return cmd.get_arguments().find(|a| a.get_long() == Some(long));
    }
    let short = word.strip_prefix('-')?.chars().next()?;
    cmd.get_arguments().find(|a| a.get_short() == Some(short))
}

/// pflag's name of a flag in errors: `-f, --force` with a shorthand, else `--name`.
fn pflag_name(flag: &Arg) -> String {
    match (flag.get_short(), flag.get_long()) {
        (Some(s), Some(l)) => format!("-{s}, --{l}"),
        (None, Some(l)) => format!("--{l}"),
        (Some(s), None) => format!("-{s}"),
        (None, None) => flag.get_id().to_string(),
    }
}

/// Why a value was refused: Go's strconv words for a number flag, the parser's own words
/// otherwise (shoal's parsers already use Go's), and pflag's for a choice not allowed.
fn invalid_value_reason(err: &clap::Error, flag: Option<&Arg>, value: &str) -> String {
    use std::any::TypeId;
    use std::error::Error;
    if let Some(flag) = flag {
        let id = flag.get_value_parser().type_id();
        let unsigned = [
            TypeId::of::<u8>(),
            TypeId::of::<u16>(),
            TypeId::of::<u32>(),
            TypeId::of::<u64>(),
            TypeId::of::<usize>(),
        ]
        .iter()
        .any(|t| id == *t);
        let signed = [
            TypeId::of::<i8>(),
            TypeId::of::<i16>(),
            TypeId::of::<i32>(),
            TypeId::of::<i64>(),
            TypeId::of::<isize>(),
        ]
        .iter()
        .any(|t| id == *t);
        // clap's own integer parsers refuse with a ParseIntError or a range ("300 is not
        // in 0..=255"); a parser of shoal's that gives an integer has its own words.
        let clap_refused = err.source().is_some_and(|s| {
            s.downcast_ref::<std::num::ParseIntError>().is_some()
                || s.to_string().contains(" is not in ")
        });
        if (unsigned || signed) && clap_refused {
            let func = if unsigned { "ParseUint" } else { "ParseInt" };
            let digits = value.strip_prefix(['+', '-']).unwrap_or(value);
            let number = !digits.is_empty()
                && digits.bytes().all(|b| b.is_ascii_digit())
                && !(unsigned && value.starts_with(['+', '-']));
            let why = if number {
                "value out of range"
            } else {
                "invalid syntax"
            };
            return format!("strconv.{func}: parsing {}: {why}", go_quote(value));
        }
    }
    if let Some(s) = err.source() {
        return s.to_string();
    }
    if err.kind() == ErrorKind::InvalidValue {
        let valid: Vec<String> = match err.get(ContextKind::ValidValue) {
            Some(ContextValue::Strings(v)) => v.clone(),
            _ => Vec::new(),
        };
        return format!("must be one of {}", valid.join(", "));
    }
    clap_first_line(err)
}

/// clap's own message, first line, without its `error: ` label.
fn clap_first_line(err: &clap::Error) -> String {
    let text = err.render().to_string();
    let line = text.lines().next().unwrap_or_default();
    line.strip_prefix("error: ").unwrap_or(line).to_string()
}

/// Go's `%q` of a string, for the printable text flags carry.
pub(crate) fn go_quote(s: &str) -> String {
    format!("{s:?}")
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

    use super::*;

    #[derive(Parser, Debug)]
    #[command(name = "shoal")]
    struct Cli {
        #[arg(short = 'H', long = "host")]
        host: Option<String>,
        #[command(subcommand)]
        command: Top,
    }

    #[derive(Subcommand, Debug)]
    enum Top {
        #[command(flatten)]
        Cluster(crate::cli::Command),
    }

    fn fail(args: &[&str]) -> Option<UsageFailure> {
        let argv: Vec<String> = ["shoal"]
            .iter()
            .chain(args)
            .map(|s| s.to_string())
            .collect();
        let root = crate::cli::pflag::bool_flags(Cli::command());
        let err = root
            .clone()
            .try_get_matches_from(&argv)
            .and_then(|m| Cli::from_arg_matches(&m))
            .err()?;
        usage_failure(&root, &argv, &err)
    }

    fn message(args: &[&str]) -> (String, i32) {
        let f = fail(args).expect("a usage failure");
        (f.message, f.code)
    }

    /// A flag the command lacks: pflag's words, docker's usage line, status 125.
    #[test]
    fn unknown_flags_are_refused_in_pflag_words() {
        assert_eq!(
            message(&["service", "create", "--foo", "demo:1"]),
            (
                "unknown flag: --foo\n\nUsage:  shoal service create [OPTIONS] IMAGE [COMMAND] [ARG...]\n\nRun 'shoal service create --help' for more information".into(),
                125
            )
        );
        assert_eq!(
            message(&["-H", "x", "node", "ls", "--bogus=1"]).0,
            "unknown flag: --bogus\n\nUsage:  shoal node ls [OPTIONS]\n\nRun 'shoal node ls --help' for more information"
        );
        assert_eq!(
            message(&["service", "ls", "-qz"]),
            (
                "unknown shorthand flag: 'z' in -qz\n\nUsage:  shoal service ls [OPTIONS]\n\nRun 'shoal service ls --help' for more information".into(),
                125
            )
        );
    }

    /// Too few or too many arguments: docker-cli's cli/required.go words, status 1.
    #[test]
    fn argument_counts_are_refused_in_docker_cli_words() {
        assert_eq!(
            message(&["service", "create"]),
            (
                "shoal: 'shoal service create' requires at least 1 argument\n\nUsage:  shoal service create [OPTIONS] IMAGE [COMMAND] [ARG...]\n\nSee 'shoal service create --help' for more information".into(),
                1
            )
        );
        assert_eq!(
            message(&["service", "update"]).0,
            "shoal: 'shoal service update' requires 1 argument\n\nUsage:  shoal service update [OPTIONS] SERVICE\n\nRun 'shoal service update --help' for more information"
        );
        assert_eq!(
            message(&["service", "update", "a", "b"]).0,
            "shoal: 'shoal service update' requires 1 argument\n\nUsage:  shoal service update [OPTIONS] SERVICE\n\nRun 'shoal service update --help' for more information"
        );
        assert_eq!(
            message(&["node", "ls", "extra"]),
            (
                "shoal: 'shoal node ls' accepts no arguments\n\nUsage:  shoal node ls [OPTIONS]\n\nRun 'shoal node ls --help' for more information".into(),
                1
            )
        );
        assert_eq!(
            message(&["exec", "web.1"]).0,
            "shoal: 'shoal exec' requires at least 2 arguments\n\nUsage:  shoal exec [OPTIONS] TASK COMMAND [ARG...]\n\nSee 'shoal exec --help' for more information"
        );
    }

    /// A bad value for a typed flag: pflag's `invalid argument` with Go's reason, 125.
    #[test]
    fn bad_flag_values_are_refused_in_pflag_words() {
        assert_eq!(
            message(&["swarm", "init", "--data-path-port", "abc"]),
            (
                "invalid argument \"abc\" for \"--data-path-port\" flag: strconv.ParseUint: parsing \"abc\": invalid syntax\n\nUsage:  shoal swarm init [OPTIONS]\n\nRun 'shoal swarm init --help' for more information".into(),
                125
            )
        );
        assert_eq!(
            message(&["node", "ls", "-qf"]).0,
            "flag needs an argument: 'f' in -qf\n\nUsage:  shoal node ls [OPTIONS]\n\nRun 'shoal node ls --help' for more information"
        );
        assert_eq!(
            message(&["swarm", "init", "--data-path-port", "70000"]).0,
            "invalid argument \"70000\" for \"--data-path-port\" flag: strconv.ParseUint: parsing \"70000\": value out of range\n\nUsage:  shoal swarm init [OPTIONS]\n\nRun 'shoal swarm init --help' for more information"
        );
        assert_eq!(
            message(&["service", "logs", "--tail"]).0,
            "flag needs an argument: --tail\n\nUsage:  shoal service logs [OPTIONS] SERVICE|TASK\n\nRun 'shoal service logs --help' for more information"
        );
        assert_eq!(
            message(&["swarm", "update", "--dispatcher-heartbeat", "5"]).0,
            "invalid argument \"5\" for \"--dispatcher-heartbeat\" flag: time: missing unit in duration \"5\"\n\nUsage:  shoal swarm update [OPTIONS]\n\nRun 'shoal swarm update --help' for more information"
        );
        assert_eq!(
            message(&["swarm", "join", "--token"]).0,
            "flag needs an argument: --token\n\nUsage:  shoal swarm join [OPTIONS] HOST:PORT\n\nRun 'shoal swarm join --help' for more information"
        );
    }

    /// A boolean flag takes Go's ParseBool spellings after `=`; any other value is
    /// refused in pflag's words, under the name it has in docker's help (`-d, --detach`).
    #[test]
    fn bad_bool_values_are_refused_in_pflag_words() {
        assert_eq!(
            message(&["service", "update", "--force=x", "web"]),
            (
                "invalid argument \"x\" for \"--force\" flag: strconv.ParseBool: parsing \"x\": invalid syntax\n\nUsage:  shoal service update [OPTIONS] SERVICE\n\nRun 'shoal service update --help' for more information".into(),
                125
            )
        );
        assert_eq!(
            message(&["service", "create", "-d=yes", "demo:1"]).0,
            "invalid argument \"yes\" for \"-d, --detach\" flag: strconv.ParseBool: parsing \"yes\": invalid syntax\n\nUsage:  shoal service create [OPTIONS] IMAGE [COMMAND] [ARG...]\n\nRun 'shoal service create --help' for more information"
        );
        assert_eq!(
            message(&["node", "rm", "--force=", "vm2"]).0,
            "invalid argument \"\" for \"-f, --force\" flag: strconv.ParseBool: parsing \"\": invalid syntax\n\nUsage:  shoal node rm [OPTIONS] NODE [NODE...]\n\nRun 'shoal node rm --help' for more information"
        );
        // A flag whose absence matters (an `Option<bool>`) takes the same values.
        assert_eq!(
            message(&["service", "update", "--read-only=yes", "web"]).0,
            "invalid argument \"yes\" for \"--read-only\" flag: strconv.ParseBool: parsing \"yes\": invalid syntax\n\nUsage:  shoal service update [OPTIONS] SERVICE\n\nRun 'shoal service update --help' for more information"
        );
        for ok in [
            &["service", "update", "--force=true", "web"][..],
            &["service", "update", "--read-only=0", "-t=T", "web"],
            &["service", "update", "--force=0", "--detach=False", "web"],
            &["service", "create", "-d=1", "-q=false", "demo:1"],
            &["service", "rm", "web"],
            &["stack", "deploy", "-d=false", "-c", "x.yml", "s"],
            &["swarm", "leave", "--force=T"],
        ] {
            assert!(fail(ok).is_none(), "{ok:?}");
        }
    }

    /// docker-cli's typed resource flags (opts.NanoCPUs, opts.MemBytes) refuse a bad value
    /// while parsing: pflag's words with the type's reason, the usage, status 125.
    #[test]
    fn resource_flags_are_refused_while_parsing() {
        let usage = "\n\nUsage:  shoal service create [OPTIONS] IMAGE [COMMAND] [ARG...]\n\nRun 'shoal service create --help' for more information";
        for (flag, value, why) in [
            (
                "--limit-cpu",
                "abc",
                "failed to parse abc as a rational number",
            ),
            ("--reserve-cpu", "1/3", "value is too precise"),
            ("--limit-memory", "abc", "invalid size: 'abc'"),
            ("--reserve-memory", "1x", "invalid suffix: 'x'"),
            ("--limit-memory", "-1", "invalid size: '-1'"),
        ] {
            assert_eq!(
                message(&["service", "create", flag, value, "busybox"]),
                (
                    format!("invalid argument \"{value}\" for \"{flag}\" flag: {why}{usage}"),
                    125
                ),
                "{flag} {value}"
            );
        }
        assert_eq!(
            message(&["service", "update", "--limit-cpu", "x", "web"]).0,
            "invalid argument \"x\" for \"--limit-cpu\" flag: failed to parse x as a rational number\n\nUsage:  shoal service update [OPTIONS] SERVICE\n\nRun 'shoal service update --help' for more information"
        );
        assert!(fail(&["service", "create", "--limit-cpu=-1", "busybox"]).is_none());
    }

    /// A flag value refused when the command ran is a flag error all the same.
    #[test]
    fn flag_values_refused_later_are_flag_errors() {
        let argv: Vec<String> = [
            "shoal",
            "-H",
            "x",
            "service",
            "update",
            "--update-delay",
            "5",
            "web",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let refused = "invalid argument \"5\" for \"--update-delay\" flag: time: missing unit in duration \"5\"";
        assert_eq!(
            flag_value_failure(&argv, refused),
            Some(UsageFailure {
                message: format!("{refused}\n\nUsage:  shoal service update [OPTIONS] SERVICE\n\nRun 'shoal service update --help' for more information"),
                code: 125
            })
        );
        assert_eq!(flag_value_failure(&argv, "service web not found"), None);
    }

    /// A word that is no command: cobra's words, status 1.
    #[test]
    fn unknown_commands_are_refused_in_docker_words() {
        assert_eq!(
            message(&["service", "frob"]),
            (
                "shoal: unknown command: shoal service frob\n\nUsage:  shoal service\n\nRun 'shoal service --help' for more information".into(),
                1
            )
        );
        assert_eq!(
            message(&["frob"]),
            (
                "shoal: unknown command: shoal frob\n\nRun 'shoal --help' for more information"
                    .into(),
                1
            )
        );
    }

    /// `--help` and a bare command group are no failures: clap prints them, status 0.
    #[test]
    fn help_is_no_failure() {
        assert_eq!(fail(&["service", "create", "--help"]), None);
        assert_eq!(fail(&["service"]), None);
    }
}

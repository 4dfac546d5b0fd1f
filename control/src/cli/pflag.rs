//! Boolean flags as docker's flag parser (spf13/pflag) takes them, applied to every
//! command at once: `--force`, `--force=true`, `--force=0`, `-d=false`, `-qd`, the
//! value only after `=` (so `--force true` is the flag and an argument), Go's
//! strconv.ParseBool words for any other value, and the last one given wins.

use clap::builder::ValueParser;
use clap::{ArgAction, Command};

/// Go's strconv.ParseBool, with its error as pflag prints it after `invalid argument
/// "x" for "--force" flag: `.
pub fn parse_go_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!("strconv.ParseBool: parsing {s:?}: invalid syntax")),
    }
}

/// `cmd` and all its subcommands with every boolean flag turned into pflag's: a value
/// optional, given only with `=`, `true` when absent, parsed as Go's ParseBool. A
/// `bool` field (clap's `SetTrue`) keeps the default it had (`false` unless it set
/// one); an `Option<bool>` field (for a flag whose absence matters) stays `None` when
/// the flag is not given. So no command declares more than `#[arg(long)] force: bool`.
pub fn bool_flags(cmd: Command) -> Command {
    let cmd = cmd.mut_args(|arg| {
        let on_off = matches!(arg.get_action(), ArgAction::SetTrue);
        let optional = matches!(arg.get_action(), ArgAction::Set)
            && arg.get_value_parser().type_id() == std::any::TypeId::of::<bool>();
        if arg.is_positional() || !(on_off || optional) {
            return arg;
        }
        let id = arg.get_id().clone();
        let arg = if on_off {
            let on = arg.get_default_values().first().and_then(|v| v.to_str()) == Some("true");
            arg.action(ArgAction::Set)
                .default_value(if on { "true" } else { "false" })
                .hide_default_value(true)
        } else {
            arg
        };
        arg.num_args(0..=1)
            .require_equals(true)
            .default_missing_value("true")
            .value_parser(ValueParser::new(parse_go_bool))
            .value_name("true|false")
            .overrides_with(id)
    });
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    names
        .iter()
        .fold(cmd, |cmd, name| cmd.mut_subcommand(name, bool_flags))
}

#[cfg(test)]
mod tests {
    use clap::{Arg, FromArgMatches, Parser};

    use super::*;

    /// Every spelling Go's ParseBool takes, and its words for any other.
    #[test]
    fn values_are_gos_parse_bool() {
        for t in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(parse_go_bool(t), Ok(true), "{t}");
        }
        for f in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(parse_go_bool(f), Ok(false), "{f}");
        }
        for bad in ["x", "yes", "tRUE", "", " true", "2"] {
            assert_eq!(
                parse_go_bool(bad).unwrap_err(),
                format!("strconv.ParseBool: parsing {bad:?}: invalid syntax")
            );
        }
    }

    #[derive(Parser, Debug)]
    #[command(name = "t")]
    struct Flags {
        #[arg(short, long)]
        detach: bool,
        #[arg(short, long)]
        quiet: bool,
        #[arg(long)]
        force: bool,
        #[arg(long, default_value_t = true)]
        on: bool,
        #[arg(long)]
        read_only: Option<bool>,
        words: Vec<String>,
    }

    fn parse(args: &[&str]) -> Result<Flags, clap::error::ErrorKind> {
        let cmd = bool_flags(<Flags as clap::CommandFactory>::command());
        let argv = std::iter::once("t").chain(args.iter().copied());
        let m = cmd.try_get_matches_from(argv).map_err(|e| e.kind())?;
        Flags::from_arg_matches(&m).map_err(|e| e.kind())
    }

    /// The forms pflag takes: bare, `=value` in Go's spellings, in a group of
    /// shorthands, repeated (last wins); a value after a space is an argument. An
    /// `Option<bool>` flag is `None` when not given.
    #[test]
    fn bool_flags_take_pflags_forms() {
        let f = parse(&[]).unwrap();
        assert!(!f.detach && !f.quiet && !f.force && f.on && f.read_only.is_none());
        let f = parse(&["--force", "-d"]).unwrap();
        assert!(f.force && f.detach && !f.quiet);
        for t in ["--force=true", "--force=1", "--force=T", "--force=True"] {
            assert!(parse(&[t]).unwrap().force, "{t}");
        }
        for f in ["--force=false", "--force=0", "--force=F", "--force=FALSE"] {
            assert!(!parse(&[f]).unwrap().force, "{f}");
        }
        assert!(parse(&["-d=true"]).unwrap().detach);
        assert!(!parse(&["-d=0"]).unwrap().detach);
        assert!(!parse(&["--detach=false"]).unwrap().detach);
        let f = parse(&["-qd"]).unwrap();
        assert!(f.quiet && f.detach);
        let f = parse(&["-dq=false"]).unwrap();
        assert!(f.detach && !f.quiet);
        assert!(!parse(&["--on=false"]).unwrap().on);
        assert_eq!(parse(&["--read-only"]).unwrap().read_only, Some(true));
        assert_eq!(parse(&["--read-only=F"]).unwrap().read_only, Some(false));
        assert_eq!(
            parse(&["--read-only=no"]).unwrap_err(),
            clap::error::ErrorKind::ValueValidation
        );
        assert!(parse(&["--on"]).unwrap().on);
        assert!(!parse(&["--force", "--force=false"]).unwrap().force);
        assert!(parse(&["--force=false", "--force"]).unwrap().force);
        let f = parse(&["--force", "true"]).unwrap();
        assert!(f.force);
        assert_eq!(f.words, ["true"]);
        assert_eq!(
            parse(&["--force=x"]).unwrap_err(),
            clap::error::ErrorKind::ValueValidation
        );
        assert_eq!(
            parse(&["--force="]).unwrap_err(),
            clap::error::ErrorKind::ValueValidation
        );
    }

    /// Flags that take values, counts and positionals are left as they are.
    #[test]
    fn only_on_off_flags_change() {
        let cmd = bool_flags(
            Command::new("t")
                .arg(Arg::new("name").long("name"))
                .arg(Arg::new("v").short('v').action(ArgAction::Count))
                .subcommand(
                    Command::new("sub").arg(Arg::new("all").long("all").action(ArgAction::SetTrue)),
                ),
        );
        let m = cmd
            .clone()
            .try_get_matches_from(["t", "--name", "x", "-vv", "sub", "--all=false"])
            .unwrap();
        assert_eq!(m.get_one::<String>("name").unwrap(), "x");
        assert_eq!(m.get_count("v"), 2);
        let sub = m.subcommand_matches("sub").unwrap();
        assert_eq!(sub.get_one::<bool>("all"), Some(&false));
    }
}

//! The configuration file: `/etc/dockershim/config.toml` and the `*.toml`
//! drop-ins of the `config.d` directory beside it, as one more source of the
//! flags' values.
//!
//! A key is a long flag name of [`Config`] (`network-plugin = "cni"`), so the
//! file needs no schema of its own and cannot drift from the flags. The
//! precedence is: built-in default < main file < drop-ins (in file-name
//! order) < environment variables < command-line flags. It is built on
//! clap's [`ValueSource`]: the command line is parsed once (with the
//! environment), and every flag that got its value only from its default
//! takes the files' value instead. The files' values are handed to clap as
//! `--flag=value` arguments in front of the real ones and everything is
//! parsed again, so a value from a file goes through the same parser as one
//! from the command line and means the same.
//!
//! Each value is checked when its file is read (the key, its TOML type, and
//! the flag's parser), so that an error names the file and line it came from.
//! The main file named by `--config` must exist; the default one may be
//! missing. A missing `config.d` is no error either.

use std::any::TypeId;
use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, CommandFactory, FromArgMatches};

use crate::config::{Command, Config, ConfigCommand};

/// The main configuration file when `--config` is not given.
pub const DEFAULT_PATH: &str = crate::config::DEFAULT_CONFIG_FILE;

/// The drop-in directory's name, beside the main file.
pub const DROP_IN_DIR: &str = "config.d";

/// Flags that are no settings: they choose the file itself, ask for a
/// one-off action, or are an old spelling kept for command lines only
/// (`--log-json`; a file says `log-format = "json"`).
const NOT_KEYS: &[&str] = &[
    "config",
    "print-config",
    "buildinfo",
    "help",
    "version",
    "log-json",
];

/// Where a value came from: a file, and the line when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The file.
    pub path: PathBuf,
    /// 1-based line number.
    pub line: Option<usize>,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}", self.path.display()),
            None => write!(f, "{}", self.path.display()),
        }
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line was refused, or asked for `--help` or `--version`:
    /// [`clap::Error::exit`] prints it as clap always did.
    #[error(transparent)]
    Cli(#[from] clap::Error),
    // The I/O errors are part of the message rather than a source: the
    // binary prints the message alone, and a source would repeat it.
    /// A configuration file could not be read.
    #[error("{}: cannot read the configuration file: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The drop-in directory exists but could not be listed.
    #[error("{}: cannot list the drop-in directory: {error}", path.display())]
    ReadDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// A file is not valid TOML.
    #[error("{origin}: {message}")]
    Syntax {
        /// The file and line.
        origin: Origin,
        /// The TOML parser's message.
        message: String,
    },
    /// A key that is no flag's name.
    #[error("{origin}: unknown key {key:?}")]
    UnknownKey {
        /// The file and line.
        origin: Origin,
        /// The key.
        key: String,
    },
    /// A value of the wrong TOML type.
    #[error("{origin}: key {key:?} must be {expected}, not {found}")]
    WrongType {
        /// The file and line.
        origin: Origin,
        /// The key.
        key: String,
        /// What it must be.
        expected: &'static str,
        /// What it is.
        found: &'static str,
    },
    /// A value of the right type that the flag refuses.
    #[error("{origin}: key {key:?}: {message}")]
    BadValue {
        /// The file and line.
        origin: Origin,
        /// The key.
        key: String,
        /// Why.
        message: String,
    },
    /// A value cannot be written as TOML (a path that is not UTF-8).
    #[error("{key:?} cannot be printed: its value is not UTF-8")]
    NotUtf8 {
        /// The key.
        key: String,
    },
}

/// The TOML type a flag's value takes in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    Integer,
    String,
    List,
}

impl Kind {
    fn of(arg: &Arg) -> Kind {
        if matches!(arg.get_action(), ArgAction::Append) || arg.get_value_delimiter().is_some() {
            return Kind::List;
        }
        if matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse) {
            return Kind::Bool;
        }
        let id = arg.get_value_parser().type_id();
        if id == TypeId::of::<bool>() {
            Kind::Bool
        } else if [
            TypeId::of::<u8>(),
            TypeId::of::<u16>(),
            TypeId::of::<u32>(),
            TypeId::of::<u64>(),
            TypeId::of::<usize>(),
            TypeId::of::<i8>(),
            TypeId::of::<i16>(),
            TypeId::of::<i32>(),
            TypeId::of::<i64>(),
            TypeId::of::<isize>(),
        ]
        .iter()
        .any(|t| id == *t)
        {
            Kind::Integer
        } else {
            // Paths, addresses, durations and enums are written as strings.
            Kind::String
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Bool => "a boolean",
            Kind::Integer => "an integer",
            Kind::String => "a string",
            Kind::List => "an array of strings",
        }
    }
}

/// The flags a file may set, in their declaration order.
fn settings(cmd: &clap::Command) -> impl Iterator<Item = (&str, &Arg)> {
    cmd.get_arguments().filter_map(|arg| {
        let long = arg.get_long()?;
        (!NOT_KEYS.contains(&long)).then_some((long, arg))
    })
}

/// One key of a file, already turned into command-line arguments.
#[derive(Debug, Clone)]
struct Setting {
    args: Vec<OsString>,
}

/// The configuration, merged from every source, and what is needed to
/// print it.
#[derive(Debug)]
pub struct Loaded {
    /// The effective configuration.
    pub config: Config,
    /// The files read, in the order they were applied.
    pub files: Vec<PathBuf>,
    matches: ArgMatches,
}

/// Parses the command line (with the environment) and the configuration
/// files it points at.
pub fn load<I, T>(args: I) -> Result<Loaded, Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    load_with_default(args, Path::new(DEFAULT_PATH))
}

/// [`load`] with another default main file, for tests.
fn load_with_default<I, T>(args: I, default_path: &Path) -> Result<Loaded, Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let cmd = Config::command();
    let first = cmd.clone().try_get_matches_from(&args)?;
    // Build information is for finding out what is installed, which a broken
    // file should not get in the way of.
    // Nor of the manual page and completions, which need no settings.
    if first.get_flag("buildinfo") || matches!(first.subcommand_name(), Some("man" | "completion"))
    {
        let config = Config::from_arg_matches(&first)?;
        return Ok(Loaded {
            config,
            files: Vec::new(),
            matches: first,
        });
    }
    let explicit = matches!(
        first.value_source("config_path"),
        Some(ValueSource::CommandLine | ValueSource::EnvVariable)
    );
    let main = match first.get_one::<PathBuf>("config_path") {
        Some(path) if explicit => path.clone(),
        _ => default_path.to_path_buf(),
    };
    let files = files(&main, explicit)?;
    let mut merged: BTreeMap<String, Setting> = BTreeMap::new();
    for path in &files {
        let text = std::fs::read_to_string(path).map_err(|error| Error::Read {
            path: path.clone(),
            error,
        })?;
        read_layer(path, &text, &cmd, &mut merged)?;
    }

    let program = args
        .first()
        .cloned()
        .unwrap_or_else(|| OsString::from("dockershim"));
    let mut argv = vec![program];
    for (long, arg) in settings(&cmd) {
        let Some(setting) = merged.get(long) else {
            continue;
        };
        let from_user = matches!(
            first.value_source(arg.get_id().as_str()),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        );
        if !from_user {
            argv.extend(setting.args.iter().cloned());
        }
    }
    argv.extend(args.iter().skip(1).cloned());
    let matches = cmd.try_get_matches_from(argv)?;
    let config = Config::from_arg_matches(&matches)?;
    Ok(Loaded {
        config,
        files,
        matches,
    })
}

/// The files to read, in order: the main file (unless it is the default and
/// missing), then the drop-ins in file-name order.
fn files(main: &Path, explicit: bool) -> Result<Vec<PathBuf>, Error> {
    let mut files = Vec::new();
    match std::fs::metadata(main) {
        Ok(_) => files.push(main.to_path_buf()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound && !explicit => {}
        Err(error) => {
            return Err(Error::Read {
                path: main.to_path_buf(),
                error,
            });
        }
    }
    let dir = main
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join(DROP_IN_DIR);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(files),
        Err(error) => return Err(Error::ReadDir { path: dir, error }),
    };
    let mut drop_ins = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|error| Error::ReadDir {
            path: dir.clone(),
            error,
        })?;
        let path = entry.path();
        // Only *.toml: dpkg's .dpkg-old and .dpkg-dist copies and editors'
        // backups lie beside them and must not count.
        if path.extension() == Some(OsStr::new("toml")) && path.is_file() {
            drop_ins.push(path);
        }
    }
    drop_ins.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    files.extend(drop_ins);
    Ok(files)
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map_or(0, |before| before.matches('\n').count())
        + 1
}

/// Checks one file and lays its keys over `merged`.
fn read_layer(
    path: &Path,
    text: &str,
    cmd: &clap::Command,
    merged: &mut BTreeMap<String, Setting>,
) -> Result<(), Error> {
    let origin = |offset: usize| Origin {
        path: path.to_path_buf(),
        line: Some(line_of(text, offset)),
    };
    let table: BTreeMap<toml::Spanned<String>, toml::Spanned<toml::Value>> =
        toml::from_str(text).map_err(|err| Error::Syntax {
            origin: Origin {
                path: path.to_path_buf(),
                line: err.span().map(|span| line_of(text, span.start)),
            },
            message: err.message().trim_end().to_owned(),
        })?;
    // In the order of the file, so that the first bad line is the one named.
    let mut entries: Vec<_> = table.into_iter().collect();
    entries.sort_by_key(|(key, _)| key.span().start);
    for (key, value) in entries {
        let key_origin = origin(key.span().start);
        let name = key.into_inner();
        let Some((long, arg)) = settings(cmd).find(|(long, _)| *long == name) else {
            return Err(Error::UnknownKey {
                origin: key_origin,
                key: name,
            });
        };
        let args = to_args(long, arg, value.get_ref()).map_err(|problem| match problem {
            Problem::Type { expected } => Error::WrongType {
                origin: key_origin.clone(),
                key: name.clone(),
                expected,
                found: value.get_ref().type_str(),
            },
            Problem::Value(message) => Error::BadValue {
                origin: key_origin.clone(),
                key: name.clone(),
                message,
            },
        })?;
        check(arg, &args).map_err(|message| Error::BadValue {
            origin: key_origin,
            key: name.clone(),
            message,
        })?;
        merged.insert(name, Setting { args });
    }
    Ok(())
}

/// What is wrong with one value.
enum Problem {
    Type { expected: &'static str },
    Value(String),
}

/// A file's value as the command-line arguments that say the same.
fn to_args(long: &str, arg: &Arg, value: &toml::Value) -> Result<Vec<OsString>, Problem> {
    let kind = Kind::of(arg);
    let wrong = || Problem::Type {
        expected: kind.name(),
    };
    let flag = |v: &str| OsString::from(format!("--{long}={v}"));
    match (kind, value) {
        (Kind::Bool, toml::Value::Boolean(b)) => {
            if matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse) {
                let on = matches!(arg.get_action(), ArgAction::SetTrue) == *b;
                Ok(if on {
                    vec![OsString::from(format!("--{long}"))]
                } else {
                    Vec::new()
                })
            } else {
                Ok(vec![flag(&b.to_string())])
            }
        }
        (Kind::Integer, toml::Value::Integer(i)) => Ok(vec![flag(&i.to_string())]),
        (Kind::String, toml::Value::String(s)) => Ok(vec![flag(s)]),
        (Kind::List, toml::Value::Array(items)) => {
            if items.is_empty() {
                // A repeated flag with no default is empty when not given;
                // a list with a default cannot be emptied by flags either.
                if arg.get_value_delimiter().is_none() && arg.get_default_values().is_empty() {
                    return Ok(Vec::new());
                }
                return Err(Problem::Value("the list must not be empty".into()));
            }
            let mut args = Vec::with_capacity(items.len());
            for item in items {
                let toml::Value::String(s) = item else {
                    return Err(wrong());
                };
                // The flag splits its value at the delimiter; an item holding
                // one would silently become two.
                if let Some(delimiter) = arg.get_value_delimiter()
                    && s.contains(delimiter)
                {
                    return Err(Problem::Value(format!(
                        "{s:?}: an item cannot hold {delimiter:?}"
                    )));
                }
                args.push(flag(s));
            }
            Ok(args)
        }
        _ => Err(wrong()),
    }
}

/// Runs the flag's own parser over the arguments, without the environment
/// (which is not the file's to answer for).
fn check(arg: &Arg, args: &[OsString]) -> Result<(), String> {
    let probe = clap::Command::new("dockershim")
        .no_binary_name(true)
        .disable_help_flag(true)
        .disable_version_flag(true)
        .arg(arg.clone().env(None::<&'static str>));
    probe
        .try_get_matches_from(args)
        .map(drop)
        .map_err(|err| clap_message(&err))
}

/// A clap error as one line, without its "error: " and the advice to try
/// `--help`, which are about command lines.
fn clap_message(err: &clap::Error) -> String {
    let text = err.render().to_string();
    let text = text.strip_prefix("error: ").unwrap_or(&text);
    let text = text
        .split("\n\nFor more information")
        .next()
        .unwrap_or(text);
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Loaded {
    /// Whether `config dump` or `--print-config` was asked for.
    pub fn wants_dump(&self) -> bool {
        self.config.print_config
            || matches!(
                self.config.command,
                Some(Command::Config(ConfigCommand::Dump))
            )
    }

    /// The effective configuration as a configuration file: every setting,
    /// with the value it has after all sources were merged, so that reading
    /// it back (with no other file, environment variable or flag) gives the
    /// same configuration.
    pub fn dump(&self) -> Result<String, Error> {
        let mut out = String::from(
            "# dockershim's effective configuration: built-in defaults, configuration\n\
             # files, environment variables and flags merged.\n",
        );
        for path in &self.files {
            out.push_str(&format!("# read: {}\n", path.display()));
        }
        let cmd = Config::command();
        for (long, arg) in settings(&cmd) {
            let id = arg.get_id().as_str();
            let Some(raw) = self.matches.get_raw(id) else {
                out.push_str(&format!("# {long} is unset\n"));
                continue;
            };
            let mut values = Vec::new();
            for value in raw {
                let value = value.to_str().ok_or_else(|| Error::NotUtf8 {
                    key: long.to_owned(),
                })?;
                values.push(value.to_owned());
            }
            let value = match Kind::of(arg) {
                Kind::List => {
                    toml::Value::Array(values.into_iter().map(toml::Value::String).collect())
                }
                kind => {
                    let one = values.into_iter().next().unwrap_or_default();
                    scalar(kind, one, long, &self.config)
                }
            };
            out.push_str(&format!("{long} = {value}\n"));
        }
        Ok(out)
    }
}

/// One value for [`Loaded::dump`], in its TOML type.
fn scalar(kind: Kind, raw: String, long: &str, config: &Config) -> toml::Value {
    // --log-json is no key; what it means is written as log-format.
    if long == "log-format" && config.log_json {
        return toml::Value::String("json".into());
    }
    match kind {
        // The parser took these values already, so they parse again; were it
        // not so, the string would still be a readable, and refused, value.
        Kind::Integer => raw
            .parse::<i64>()
            .map_or(toml::Value::String(raw), toml::Value::Integer),
        Kind::Bool => raw
            .parse::<bool>()
            .map_or(toml::Value::String(raw), toml::Value::Boolean),
        Kind::String | Kind::List => toml::Value::String(raw),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::LogFormat;

    /// A directory holding `config.toml` and `config.d/`.
    struct Dir(tempfile::TempDir);

    impl Dir {
        fn new(main: Option<&str>) -> Dir {
            let dir = Dir(tempfile::tempdir().unwrap());
            if let Some(text) = main {
                std::fs::write(dir.main(), text).unwrap();
            }
            dir
        }

        fn main(&self) -> PathBuf {
            self.0.path().join("config.toml")
        }

        fn drop_in(&self, name: &str, text: &str) -> PathBuf {
            let dir = self.0.path().join(DROP_IN_DIR);
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            path
        }

        /// Loads with this directory's file as the default one.
        fn load(&self, args: &[&str]) -> Result<Loaded, Error> {
            let mut all = vec!["dockershim"];
            all.extend_from_slice(args);
            load_with_default(all, &self.main())
        }
    }

    #[test]
    fn a_missing_default_file_is_no_configuration() {
        let dir = Dir::new(None);
        let loaded = dir.load(&[]).unwrap();
        assert!(loaded.files.is_empty());
        assert_eq!(loaded.config.streaming_max_sessions, 1000);
        assert_eq!(loaded.config.network_plugin, None);
    }

    #[test]
    fn a_missing_named_file_is_an_error() {
        let dir = Dir::new(None);
        let path = dir.main();
        let err = dir.load(&["--config", path.to_str().unwrap()]).unwrap_err();
        assert!(matches!(err, Error::Read { .. }), "{err}");
        assert!(
            err.to_string()
                .starts_with(&format!("{}: ", path.display()))
        );
    }

    #[test]
    fn files_set_flags_and_drop_ins_win_in_name_order() {
        let dir = Dir::new(Some(
            "docker-endpoint = \"unix:///run/docker.sock\"\n\
             network-plugin = \"cni\"\n\
             streaming-max-sessions = 500\n\
             docker-log-driver = \"json-file\"\n",
        ));
        dir.drop_in("20-late.toml", "streaming-max-sessions = 20\n");
        dir.drop_in(
            "10-early.toml",
            "streaming-max-sessions = 10\npod-cidr = \"10.0.0.0/24\"\n",
        );
        dir.drop_in("30-ignored.toml.dpkg-old", "no-such-key = 1\n");
        let loaded = dir.load(&[]).unwrap();
        let config = &loaded.config;
        assert_eq!(config.docker_endpoint, "unix:///run/docker.sock");
        assert_eq!(config.network_plugin.as_deref(), Some("cni"));
        assert_eq!(config.streaming_max_sessions, 20);
        assert_eq!(config.pod_cidr, "10.0.0.0/24");
        assert_eq!(config.docker_log_driver.as_deref(), Some("json-file"));
        assert_eq!(loaded.files.len(), 3);
        assert!(loaded.files[1].ends_with("config.d/10-early.toml"));
        assert!(loaded.files[2].ends_with("config.d/20-late.toml"));
    }

    #[test]
    fn drop_ins_are_read_without_a_main_file() {
        let dir = Dir::new(None);
        dir.drop_in("10-net.toml", "network-plugin = \"\"\n");
        let loaded = dir.load(&[]).unwrap();
        assert_eq!(loaded.config.network_plugin.as_deref(), Some(""));
    }

    #[test]
    fn flags_win_over_files() {
        let dir = Dir::new(Some(
            "streaming-max-sessions = 500\ncni-bin-dir = [\"/x\"]\nipv6-dual-stack = true\n",
        ));
        dir.drop_in("10.toml", "log-format = \"json\"\n");
        let loaded = dir
            .load(&[
                "--streaming-max-sessions",
                "7",
                "--cni-bin-dir=/a,/b",
                "--ipv6-dual-stack=false",
            ])
            .unwrap();
        let config = &loaded.config;
        assert_eq!(config.streaming_max_sessions, 7);
        assert_eq!(
            config.cni_bin_dir,
            [PathBuf::from("/a"), PathBuf::from("/b")]
        );
        assert!(!config.ipv6_dual_stack);
        // A key no flag overrides still applies.
        assert_eq!(config.log_format(), LogFormat::Json);
    }

    #[test]
    fn list_flags_take_arrays() {
        let dir = Dir::new(Some(
            "cni-bin-dir = [\"/opt/cni/bin\", \"/usr/libexec/cni\"]\n",
        ));
        let loaded = dir.load(&[]).unwrap();
        assert_eq!(
            loaded.config.cni_bin_dir,
            [
                PathBuf::from("/opt/cni/bin"),
                PathBuf::from("/usr/libexec/cni")
            ]
        );
        let dir = Dir::new(Some("\ncni-bin-dir = \"/opt/cni/bin\"\n"));
        let err = dir.load(&[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{}:2: key \"cni-bin-dir\" must be an array of strings, not string",
                dir.main().display()
            )
        );
        let dir = Dir::new(Some("cni-bin-dir = [\"/a,/b\"]\n"));
        assert!(matches!(dir.load(&[]), Err(Error::BadValue { .. })));
        let dir = Dir::new(Some("cni-bin-dir = []\n"));
        assert!(matches!(dir.load(&[]), Err(Error::BadValue { .. })));
    }

    #[test]
    fn unknown_keys_are_named_with_file_and_line() {
        let dir = Dir::new(Some("network-plugin = \"cni\"\n"));
        let path = dir.drop_in(
            "10-net.toml",
            "# a comment\npod-cidr = \"10.0.0.0/24\"\nnetwrk-plugin = \"cni\"\n",
        );
        let err = dir.load(&[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{}:3: unknown key \"netwrk-plugin\"", path.display())
        );
        // Flags that are no settings are no keys either.
        for key in ["config = \"/x\"", "buildinfo = true", "log-json = true"] {
            let dir = Dir::new(Some(key));
            assert!(
                matches!(dir.load(&[]), Err(Error::UnknownKey { .. })),
                "{key}"
            );
        }
        // Tables are no flags.
        let dir = Dir::new(Some("[network]\nplugin = \"cni\"\n"));
        assert!(matches!(dir.load(&[]), Err(Error::UnknownKey { .. })));
    }

    #[test]
    fn wrong_types_are_named_with_file_and_line() {
        let dir = Dir::new(Some("pod-cidr = \"\"\nstreaming-max-sessions = \"500\"\n"));
        let err = dir.load(&[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{}:2: key \"streaming-max-sessions\" must be an integer, not string",
                dir.main().display()
            )
        );
        let dir = Dir::new(Some("docker-endpoint = 2375\n"));
        assert!(matches!(dir.load(&[]), Err(Error::WrongType { .. })));
        let dir = Dir::new(Some("ipv6-dual-stack = \"yes\"\n"));
        assert!(matches!(dir.load(&[]), Err(Error::WrongType { .. })));
    }

    #[test]
    fn values_the_flag_refuses_are_named_with_file_and_line() {
        let dir = Dir::new(Some("\n\ndocker-log-driver = \"sys log\"\n"));
        let err = dir.load(&[]).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with(&format!(
                "{}:3: key \"docker-log-driver\": ",
                dir.main().display()
            )),
            "{text}"
        );
        assert!(text.contains("sys log"), "{text}");
        let dir = Dir::new(Some("streaming-max-sessions = -1\n"));
        assert!(matches!(dir.load(&[]), Err(Error::BadValue { .. })));
        let dir = Dir::new(Some("image-pull-progress-deadline = \"soon\"\n"));
        assert!(matches!(dir.load(&[]), Err(Error::BadValue { .. })));
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let dir = Dir::new(Some("pod-cidr = \"\"\nnetwork-plugin = cni\n"));
        let err = dir.load(&[]).unwrap_err();
        assert!(matches!(err, Error::Syntax { .. }), "{err}");
        assert!(
            err.to_string()
                .starts_with(&format!("{}:2: ", dir.main().display())),
            "{err}"
        );
    }

    #[test]
    fn buildinfo_does_not_read_files() {
        let dir = Dir::new(Some("nonsense"));
        assert!(dir.load(&["--buildinfo"]).unwrap().config.buildinfo);
    }

    #[test]
    fn the_dump_reads_back_as_the_same_configuration() {
        let dir = Dir::new(Some(
            "network-plugin = \"cni\"\ncni-bin-dir = [\"/a\", \"/b\"]\n\
             sandbox-oom-score-adj = -500\nimage-pull-progress-deadline = \"2m\"\n",
        ));
        dir.drop_in("10.toml", "ipv6-dual-stack = true\n");
        let loaded = dir
            .load(&[
                "--docker-log-max-size",
                "5m",
                "--log-json",
                "config",
                "dump",
            ])
            .unwrap();
        assert!(loaded.wants_dump());
        let dump = loaded.dump().unwrap();
        assert!(dump.contains("\nnetwork-plugin = \"cni\"\n"), "{dump}");
        assert!(
            dump.contains("\ncni-bin-dir = [\"/a\", \"/b\"]\n"),
            "{dump}"
        );
        assert!(dump.contains("\nsandbox-oom-score-adj = -500\n"), "{dump}");
        assert!(dump.contains("\nstreaming-max-sessions = 1000\n"), "{dump}");
        assert!(dump.contains("\nipv6-dual-stack = true\n"), "{dump}");
        assert!(dump.contains("\nlog-format = \"json\"\n"), "{dump}");
        assert!(dump.contains("\n# metrics-bind-addr is unset\n"), "{dump}");

        let again = Dir::new(Some(&dump));
        let reloaded = again.load(&[]).unwrap();
        assert_eq!(
            reloaded.dump().unwrap().lines().skip(3).collect::<Vec<_>>(),
            dump.lines().skip(4).collect::<Vec<_>>()
        );
        assert_eq!(
            format!("{:?}", reloaded.config.clone()),
            format!(
                "{:?}",
                Config {
                    config_path: reloaded.config.config_path.clone(),
                    print_config: false,
                    log_json: false,
                    log_format: LogFormat::Json,
                    command: None,
                    ..loaded.config
                }
            )
        );
    }

    #[test]
    fn print_config_asks_for_the_dump() {
        let dir = Dir::new(None);
        assert!(dir.load(&["--print-config"]).unwrap().wants_dump());
        assert!(!dir.load(&[]).unwrap().wants_dump());
    }

    #[test]
    fn the_shipped_example_names_every_key_with_its_default() {
        // deploy/config.toml, with its `# key = value` lines uncommented.
        let example = include_str!("../deploy/config.toml");
        let uncommented: String = example
            .lines()
            .filter_map(|line| line.strip_prefix("# "))
            .filter(|line| {
                line.split_once(" = ").is_some_and(|(key, _)| {
                    key.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                })
            })
            .map(|line| format!("{line}\n"))
            .collect();
        let dir = Dir::new(Some(&uncommented));
        let loaded = dir.load(&[]).unwrap();
        let cmd = Config::command();
        for (long, _) in settings(&cmd) {
            assert!(
                uncommented.contains(&format!("\n{long} = "))
                    || uncommented.starts_with(&format!("{long} = ")),
                "deploy/config.toml lacks {long}"
            );
        }
        // The keys without a default show an example value instead.
        let defaults = <Config as clap::Parser>::parse_from(["dockershim"]);
        assert_eq!(
            format!("{:?}", loaded.config),
            format!(
                "{:?}",
                Config {
                    config_path: loaded.config.config_path.clone(),
                    network_plugin: loaded.config.network_plugin.clone(),
                    docker_log_driver: loaded.config.docker_log_driver.clone(),
                    metrics_bind_addr: loaded.config.metrics_bind_addr.clone(),
                    ..defaults
                }
            )
        );
    }

    #[test]
    fn every_flag_has_a_kind_that_matches_its_default() {
        // A new flag whose default does not read back in the TOML type the
        // file gives it would make the dump unreadable.
        let cmd = Config::command();
        for (long, arg) in settings(&cmd) {
            for default in arg.get_default_values() {
                let default = default.to_str().unwrap();
                match Kind::of(arg) {
                    Kind::Integer => assert!(default.parse::<i64>().is_ok(), "{long}"),
                    Kind::Bool => assert!(default.parse::<bool>().is_ok(), "{long}"),
                    Kind::String | Kind::List => {}
                }
            }
        }
    }
}

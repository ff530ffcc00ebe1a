//! The shim's own log: level filter, format, and when to colour it.
//!
//! The log goes to stderr. ANSI colour helps a person at a terminal and
//! nobody else: in a file, a pipe or journald the escapes are noise that
//! every reader has to strip. So text is coloured only when stderr is a
//! terminal, and never when `NO_COLOR` is set to a non-empty value (the
//! <https://no-color.org> convention) or `JOURNAL_STREAM` is set (systemd
//! sets it for a service whose output goes to the journal). JSON is never
//! coloured.

use std::ffi::OsStr;
use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Whether text logs get ANSI colour, from the facts that decide it:
/// whether the log's stream is a terminal, and the values of `NO_COLOR`
/// and `JOURNAL_STREAM` (`None` when unset).
pub fn use_colour(
    is_terminal: bool,
    no_color: Option<&OsStr>,
    journal_stream: Option<&OsStr>,
) -> bool {
    // An empty NO_COLOR does not count, as no-color.org says.
    let no_color = no_color.is_some_and(|v| !v.is_empty());
    is_terminal && !no_color && journal_stream.is_none()
}

/// The `--log-level` value as a tracing filter. cri-dockerd's (logrus)
/// level names, which its unit files carry, map onto tracing's.
pub fn filter(level: &str) -> Result<EnvFilter, String> {
    let tracing_level = match level {
        "panic" | "fatal" => "error",
        "warning" => "warn",
        other => other,
    };
    EnvFilter::try_new(tracing_level).map_err(|e| format!("invalid --log-level {level:?}: {e}"))
}

/// Installs the process's log subscriber, writing to stderr.
pub fn init(level: &str, format: LogFormat) -> Result<(), String> {
    let filter = filter(level)?;
    let colour = use_colour(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
        std::env::var_os("JOURNAL_STREAM").as_deref(),
    );
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => logs.with_ansi(colour).try_init(),
        // Event fields (message included) at the top level next to
        // timestamp, level and target, and the spans the event is in, as
        // log shippers index them; no colour, which JSON has no place for.
        LogFormat::Json => logs
            .json()
            .with_ansi(false)
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(true)
            .try_init(),
    };
    installed.map_err(|e| format!("cannot install the logger: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(value: &str) -> Option<&OsStr> {
        Some(OsStr::new(value))
    }

    #[test]
    fn colour_only_on_a_terminal() {
        assert!(use_colour(true, None, None));
        assert!(!use_colour(false, None, None));
    }

    #[test]
    fn no_color_turns_colour_off_unless_empty() {
        assert!(!use_colour(true, os("1"), None));
        assert!(!use_colour(true, os("0"), None), "any non-empty value");
        assert!(use_colour(true, os(""), None));
    }

    #[test]
    fn journald_never_gets_colour() {
        assert!(!use_colour(true, None, os("8:12345")));
        assert!(!use_colour(true, None, os("")), "set, even if empty");
        assert!(!use_colour(false, None, os("8:12345")));
    }

    #[test]
    fn cri_dockerd_level_names_are_taken() {
        for level in [
            "panic",
            "fatal",
            "error",
            "warning",
            "info",
            "debug",
            "trace",
            "dockershim=debug,bollard=info",
        ] {
            assert!(filter(level).is_ok(), "{level}");
        }
        assert!(filter("dockershim=loud").is_err());
    }
}

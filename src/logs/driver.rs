//! Which Docker log driver application containers get.
//!
//! The CRI log file is written from Docker's copy of a container's output,
//! so the driver must be one Docker can read back: from its own files
//! (`local`, `json-file`, `journald`) or, for every other driver, from the
//! dual-logging cache Docker keeps beside it (20.10 and later, on unless the
//! daemon's log options say `cache-disabled`). A node whose daemon ships
//! container logs somewhere (journald, syslog, gelf, fluentd, ...) keeps
//! that shipping. A node whose daemon keeps them in files only gets the
//! shim's `local` copy instead, bounded by its size flags: Docker's defaults
//! bound nothing, and the kubelet's rotation only bounds the CRI file.

use std::collections::HashMap;

use bollard::models::HostConfigLogConfig;

/// The daemon drivers that ship nothing anywhere: their output stays in
/// Docker's files (or, for `none`, nowhere), so the shim's own bounded
/// `local` copy takes their place.
const NOT_SHIPPING: &[&str] = &["json-file", "local", "none", ""];

/// Drivers that rotate by `max-size` and `max-file`.
const FILE_DRIVERS: &[&str] = &["json-file", "local"];

/// The log settings of application containers, from the flags and the
/// daemon's default driver.
#[derive(Debug, Clone, PartialEq)]
pub struct LogDriverChoice {
    /// What containers are created with; `None` leaves the daemon's driver
    /// and options in place.
    pub log_config: Option<HostConfigLogConfig>,
    /// The driver containers end up with, for the start-up log.
    pub driver: String,
}

/// The flags' part of the choice.
#[derive(Debug, Clone, Copy)]
pub struct LogFlags<'a> {
    /// `--docker-log-driver`, if given.
    pub driver: Option<&'a str>,
    /// `--docker-log-opt`, each `key=value`.
    pub opts: &'a [String],
    /// `--docker-log-max-size`.
    pub max_size: &'a str,
    /// `--docker-log-max-files`.
    pub max_files: u32,
}

/// Chooses the driver: the one the flags name, with their options (and the
/// size bounds for the file drivers unless the options set them); else the
/// daemon's own when it ships logs somewhere; else `local`, bounded.
pub fn choose(flags: LogFlags<'_>, daemon_driver: &str) -> Result<LogDriverChoice, String> {
    let mut options = HashMap::new();
    for opt in flags.opts {
        let (key, value) = opt
            .split_once('=')
            .ok_or_else(|| format!("--docker-log-opt {opt:?} is not key=value"))?;
        options.insert(key.to_string(), value.to_string());
    }
    let driver = match flags.driver {
        Some(driver) => driver,
        None if !options.is_empty() => {
            return Err(
                "--docker-log-opt needs --docker-log-driver: the options of the daemon's own driver are the daemon's (daemon.json log-opts)"
                    .into(),
            );
        }
        None if !NOT_SHIPPING.contains(&daemon_driver) => {
            return Ok(LogDriverChoice {
                log_config: None,
                driver: daemon_driver.to_string(),
            });
        }
        None => "local",
    };
    if FILE_DRIVERS.contains(&driver) {
        options
            .entry("max-size".to_string())
            .or_insert_with(|| flags.max_size.to_string());
        options
            .entry("max-file".to_string())
            .or_insert_with(|| flags.max_files.to_string());
    }
    Ok(LogDriverChoice {
        log_config: Some(HostConfigLogConfig {
            typ: Some(driver.to_string()),
            config: Some(options),
        }),
        driver: driver.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags<'a>(driver: Option<&'a str>, opts: &'a [String]) -> LogFlags<'a> {
        LogFlags {
            driver,
            opts,
            max_size: "10m",
            max_files: 2,
        }
    }

    fn config(choice: &LogDriverChoice) -> (String, HashMap<String, String>) {
        let config = choice.log_config.clone().expect("a log config");
        (
            config.typ.unwrap_or_default(),
            config.config.unwrap_or_default(),
        )
    }

    #[test]
    fn a_daemon_that_ships_logs_keeps_its_driver_and_options() {
        for daemon in ["syslog", "gelf", "journald", "fluentd", "splunk"] {
            let choice = choose(flags(None, &[]), daemon).unwrap();
            assert_eq!(choice.log_config, None, "{daemon}");
            assert_eq!(choice.driver, daemon);
        }
    }

    #[test]
    fn a_daemon_that_keeps_files_gets_the_bounded_local_copy() {
        for daemon in ["json-file", "local", "none", ""] {
            let choice = choose(flags(None, &[]), daemon).unwrap();
            let (driver, options) = config(&choice);
            assert_eq!(driver, "local", "{daemon}");
            assert_eq!(options["max-size"], "10m");
            assert_eq!(options["max-file"], "2");
        }
    }

    #[test]
    fn a_driver_named_by_the_flags_takes_their_options() {
        let opts = vec![
            "syslog-address=udp://127.0.0.1:514".to_string(),
            "tag={{.Name}}".to_string(),
        ];
        let choice = choose(flags(Some("syslog"), &opts), "json-file").unwrap();
        let (driver, options) = config(&choice);
        assert_eq!(driver, "syslog");
        assert_eq!(
            options,
            HashMap::from([
                ("syslog-address".into(), "udp://127.0.0.1:514".into()),
                ("tag".into(), "{{.Name}}".into()),
            ])
        );

        // The file drivers get the size bounds unless the options set them.
        let opts = vec!["max-size=1g".to_string(), "compress=false".to_string()];
        let choice = choose(flags(Some("json-file"), &opts), "syslog").unwrap();
        let (driver, options) = config(&choice);
        assert_eq!(driver, "json-file");
        assert_eq!(options["max-size"], "1g");
        assert_eq!(options["max-file"], "2");
        assert_eq!(options["compress"], "false");
    }

    #[test]
    fn options_without_a_driver_are_refused() {
        let opts = vec!["max-size=1g".to_string()];
        let err = choose(flags(None, &opts), "syslog").unwrap_err();
        assert!(err.contains("--docker-log-driver"), "{err}");
    }
}

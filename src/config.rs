//! Command-line configuration.
//!
//! Flags keep cri-dockerd's names where the meaning is the same, so a node's
//! existing unit file or kubelet setup carries over. The same settings can
//! come from a configuration file, which the `config_file` module layers
//! under the environment and the flags (it builds on these definitions, so
//! this module names nothing of it).

use std::path::PathBuf;

use clap::Parser;

/// Default CRI endpoint: where the kubelet and crictl looked for dockershim.
pub const DEFAULT_ENDPOINT: &str = "unix:///var/run/dockershim.sock";
/// Default Docker Engine endpoint.
pub const DEFAULT_DOCKER_ENDPOINT: &str = "unix:///var/run/docker.sock";
/// The main configuration file when `--config` is not given.
pub const DEFAULT_CONFIG_FILE: &str = "/etc/dockershim/config.toml";
/// Default pod infra image; the shim's built-in one is used when it cannot be
/// found or pulled.
pub const DEFAULT_PAUSE_IMAGE: &str = "registry.k8s.io/pause:3.10";

/// A Kubernetes CRI v1 runtime that runs pods on Docker Engine.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "dockershim",
    version = crate::build_info::LONG_VERSION,
    about,
    disable_help_subcommand = true
)]
pub struct Config {
    /// Configuration file (TOML, keys are the long flag names); the `*.toml`
    /// files of the `config.d` directory beside it are read after it, in
    /// name order. The default file may be missing; a named one may not.
    /// Environment variables and flags win over both.
    #[arg(long = "config", value_name = "PATH", default_value = DEFAULT_CONFIG_FILE)]
    pub config_path: PathBuf,

    /// Print the effective configuration (files, environment and flags
    /// merged) as a configuration file and exit; the same as `config dump`.
    #[arg(long)]
    pub print_config: bool,

    /// Where to serve CRI: `unix:///path` or `fd://` (systemd socket activation).
    #[arg(long, env = "DOCKERSHIM_ENDPOINT", default_value = DEFAULT_ENDPOINT)]
    pub container_runtime_endpoint: String,

    /// Docker Engine endpoint: `unix:///path` or `tcp://host:port`.
    #[arg(long, env = "DOCKER_HOST", default_value = DEFAULT_DOCKER_ENDPOINT)]
    pub docker_endpoint: String,

    /// Image of the pod infra (pause) container. When it is neither present
    /// nor pullable, the shim imports its own built-in pause image.
    #[arg(long, default_value = DEFAULT_PAUSE_IMAGE)]
    pub pod_infra_container_image: String,

    /// How long to try pulling the pod infra image before falling back to
    /// the built-in one, in seconds.
    #[arg(long, default_value_t = 30)]
    pub pod_infra_pull_timeout: u64,

    /// Directory for the shim's own state.
    #[arg(
        long = "cri-dockerd-root-directory",
        default_value = "/var/lib/dockershim"
    )]
    pub root_directory: PathBuf,

    /// oom_score_adj of pause containers, so the OOM killer spares them. Used
    /// only when the host lets the shim lower scores (CAP_SYS_RESOURCE).
    #[arg(long, default_value_t = -998, allow_hyphen_values = true)]
    pub sandbox_oom_score_adj: i64,

    /// Docker log driver of application containers: any driver the engine
    /// has (`local`, `json-file`, `journald`, `syslog`, `gelf`, `fluentd`,
    /// ...). Unset: the daemon's own driver and its options when they ship
    /// logs somewhere (anything but `json-file`, `local` and `none`), else
    /// `local`. The CRI log file is written from Docker's copy: the driver's
    /// own files, or its dual-logging cache.
    #[arg(long, value_parser = parse_log_driver)]
    pub docker_log_driver: Option<String>,

    /// An option of the log driver, `key=value` (Docker's `--log-opt`);
    /// repeat the flag for more. Only with `--docker-log-driver`.
    #[arg(long = "docker-log-opt", value_name = "KEY=VALUE", value_parser = parse_log_opt)]
    pub docker_log_opts: Vec<String>,

    /// Size at which Docker rotates its own copy of a container's output
    /// (the source of the CRI log file), e.g. `10m`, with the `local` and
    /// `json-file` drivers.
    #[arg(long, default_value = "10m")]
    pub docker_log_max_size: String,

    /// Files Docker keeps of its own copy of a container's output, with the
    /// `local` and `json-file` drivers.
    #[arg(long, default_value_t = 2)]
    pub docker_log_max_files: u32,

    /// Address of the streaming server (exec, attach, port-forward). The
    /// kubelet on the same node proxies to it, so loopback is the default;
    /// port 0 picks a free port.
    /// An IP alone (as cri-dockerd takes it) means a free port on it.
    #[arg(long, default_value = "127.0.0.1:0", value_parser = parse_bind_addr)]
    pub streaming_bind_addr: std::net::SocketAddr,

    /// Close a streaming session after this many seconds without traffic;
    /// 0 never closes one, as in the kubelet.
    #[arg(long, default_value_t = 4 * 60 * 60)]
    pub streaming_idle_timeout: u64,

    /// Most streaming sessions open at once.
    #[arg(long, default_value_t = 1000)]
    pub streaming_max_sessions: usize,

    /// Most streaming sessions open at once for any one pod, so that one
    /// tenant cannot take all of `--streaming-max-sessions`; 0 means no
    /// limit of its own.
    #[arg(long, default_value_t = 100)]
    pub streaming_max_sessions_per_pod: usize,

    /// Pod networking: `cni`, or `""` (also `no-op`, `docker`) for Docker's
    /// own bridge. Unset: `cni` when `--cni-conf-dir` exists, else Docker's
    /// bridge.
    #[arg(long)]
    pub network_plugin: Option<String>,

    /// Where CNI network configurations are read from.
    #[arg(long, default_value = "/etc/cni/net.d")]
    pub cni_conf_dir: PathBuf,

    /// Directories searched for CNI plugin binaries, comma-separated.
    /// Debian's `containernetworking-plugins` installs into /usr/lib/cni.
    #[arg(
        long,
        default_value = "/opt/cni/bin,/usr/lib/cni",
        value_delimiter = ','
    )]
    pub cni_bin_dir: Vec<PathBuf>,

    /// Where CNI results are cached (libcni's layout, shared with
    /// cri-dockerd).
    #[arg(long, default_value = "/var/lib/cni/cache")]
    pub cni_cache_dir: PathBuf,

    /// Time limit of one CNI plugin call, in seconds.
    #[arg(long, default_value_t = 220)]
    pub cni_plugin_timeout: u64,

    /// Pod network MTU. With CNI the MTU belongs in the network
    /// configuration; this flag is accepted for cri-dockerd compatibility and
    /// only logged.
    #[arg(long, default_value_t = 0)]
    pub network_plugin_mtu: u32,

    /// Hairpin mode. With CNI it belongs in the bridge plugin's
    /// configuration (`hairpinMode`); accepted for cri-dockerd compatibility
    /// and only logged.
    #[arg(long, default_value = "promiscuous-bridge")]
    pub hairpin_mode: String,

    /// The node's pod CIDR, passed to CNI plugins as `ipRanges` until the
    /// kubelet sends one with UpdateRuntimeConfig.
    #[arg(long, default_value = "")]
    pub pod_cidr: String,

    /// Serve Prometheus metrics at `http://<addr>/metrics`; off when unset.
    /// A bare port (`9102`) listens on loopback only.
    #[arg(long)]
    pub metrics_bind_addr: Option<String>,

    /// Cancel an image pull that makes no progress for this long (Go
    /// duration, e.g. `1m0s`, `90s`); 0 never cancels. Layers being
    /// extracted are not held to it.
    #[arg(long, default_value = "1m0s", value_parser = parse_go_duration)]
    pub image_pull_progress_deadline: std::time::Duration,

    /// Bound on each Docker request that answers promptly (Go duration); 0
    /// keeps the default of 2 minutes. Stops, pulls and streams have their
    /// own bounds.
    #[arg(long, default_value = "0s", value_parser = parse_go_duration)]
    pub runtime_request_timeout: std::time::Duration,

    /// Accepted for cri-dockerd's unit files: dual-stack pods always report
    /// their IPv4 and IPv6 addresses here, so there is nothing to turn on.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = clap::ArgAction::Set)]
    pub ipv6_dual_stack: bool,

    /// Cgroup to move the shim's own process into at start (e.g.
    /// `/system.slice/dockershim.service` or `/runtime`), so its use of CPU
    /// and memory is accounted apart from the pods'.
    #[arg(long, default_value = "")]
    pub runtime_cgroups: String,

    /// Print the build information and exit.
    #[arg(long, alias = "info")]
    pub buildinfo: bool,

    /// Log level (error, warn, info, debug, trace) or a tracing filter.
    #[arg(long, env = "DOCKERSHIM_LOG", default_value = "info")]
    pub log_level: String,

    /// Format of the shim's own log on stderr: `text` (coloured only on a
    /// terminal, and never with `NO_COLOR` or under journald) or `json`
    /// (one object a line, for log shippers).
    #[arg(
        long,
        env = "DOCKERSHIM_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,

    /// The same as `--log-format json`; kept for command lines that still
    /// carry it.
    #[arg(long, hide = true)]
    pub log_json: bool,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands: one-off actions instead of serving CRI.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// The configuration file.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print the manual page (roff, section 8) and exit.
    Man,
    /// Print the completion script of a shell and exit.
    Completion {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// `dockershim config ...`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration (files, environment and flags
    /// merged) as a configuration file and exit. Flags go before `config`.
    Dump,
}

/// A Docker log driver's name: a plugin's may hold `/`, `:` and `.`.
fn parse_log_driver(value: &str) -> Result<String, String> {
    let fine = |c: char| c.is_ascii_alphanumeric() || "-_./:".contains(c);
    if value.is_empty() || !value.chars().all(fine) {
        return Err(format!("{value:?} is not a log driver's name"));
    }
    Ok(value.to_string())
}

/// A log driver option, `key=value` with a non-empty key.
fn parse_log_opt(value: &str) -> Result<String, String> {
    match value.split_once('=') {
        Some((key, _)) if !key.is_empty() && !key.contains(char::is_whitespace) => {
            Ok(value.to_string())
        }
        _ => Err(format!("{value:?} is not key=value")),
    }
}

/// `ip:port`, or an IP alone (port 0: a free one), as cri-dockerd takes
/// `--streaming-bind-addr`.
fn parse_bind_addr(value: &str) -> Result<std::net::SocketAddr, String> {
    if let Ok(addr) = value.parse() {
        return Ok(addr);
    }
    let ip = value.trim_start_matches('[').trim_end_matches(']');
    ip.parse::<std::net::IpAddr>()
        .map(|ip| std::net::SocketAddr::new(ip, 0))
        .map_err(|_| format!("{value:?} is neither an IP address nor ip:port"))
}

/// A Go duration (`time.ParseDuration`): a sequence of decimal numbers, each
/// with a unit of ns, us (µs), ms, s, m or h, e.g. `1m0s`, `1.5h`, `300ms`;
/// a bare `0` is zero.
pub fn parse_go_duration(value: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("{value:?} is not a duration like 1m0s, 90s or 500ms");
    if value == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    let mut rest = value;
    let mut total = 0f64;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let number: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += number * seconds;
        rest = &rest[unit_len..];
    }
    std::time::Duration::try_from_secs_f64(total).map_err(|_| bad())
}

/// How pods get their network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkPlugin {
    /// CNI plugins.
    Cni,
    /// Docker's default bridge, with host ports as Docker port bindings.
    Docker,
}

impl Config {
    /// The network plugin in use, from `--network-plugin` (or its default).
    pub fn network_plugin(&self) -> Result<NetworkPlugin, String> {
        match self.network_plugin.as_deref() {
            None => Ok(if self.cni_conf_dir.is_dir() {
                NetworkPlugin::Cni
            } else {
                NetworkPlugin::Docker
            }),
            Some("cni") => Ok(NetworkPlugin::Cni),
            Some("" | "no-op" | "docker") => Ok(NetworkPlugin::Docker),
            Some("kubenet") => Err(
                "--network-plugin=kubenet is not supported: configure the bridge and host-local CNI plugins instead"
                    .into(),
            ),
            Some(other) => Err(format!(
                "--network-plugin={other:?} is unknown: use cni, or \"\" for Docker's bridge"
            )),
        }
    }
}

/// Format of the shim's own log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object a line.
    Json,
}

impl Config {
    /// The log format in effect: `--log-json` wins, as it can only have
    /// been given on purpose.
    pub fn log_format(&self) -> LogFormat {
        if self.log_json {
            LogFormat::Json
        } else {
            self.log_format
        }
    }
}

/// Where the CRI server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// A Unix socket path the shim creates.
    Unix(PathBuf),
    /// The socket systemd passes (LISTEN_FDS).
    Systemd,
}

impl Config {
    /// Parses `--container-runtime-endpoint`.
    pub fn listen(&self) -> Result<Listen, String> {
        let endpoint = self.container_runtime_endpoint.as_str();
        if endpoint == "fd://" || endpoint.starts_with("fd://") {
            return Ok(Listen::Systemd);
        }
        let path = endpoint.strip_prefix("unix://").unwrap_or(endpoint);
        if !path.starts_with('/') {
            return Err(format!(
                "--container-runtime-endpoint {endpoint:?}: use unix:///absolute/path or fd://"
            ));
        }
        Ok(Listen::Unix(PathBuf::from(path)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_historic_dockershim_endpoint() {
        let config = Config::parse_from(["dockershim"]);
        assert_eq!(
            config.listen(),
            Ok(Listen::Unix(PathBuf::from("/var/run/dockershim.sock")))
        );
        assert_eq!(config.pod_infra_container_image, DEFAULT_PAUSE_IMAGE);
        assert_eq!(config.sandbox_oom_score_adj, -998);
    }

    #[test]
    fn endpoints_are_parsed() {
        let parse = |e: &str| {
            Config::parse_from(["dockershim", "--container-runtime-endpoint", e]).listen()
        };
        assert_eq!(parse("fd://"), Ok(Listen::Systemd));
        assert_eq!(parse("/run/x.sock"), Ok(Listen::Unix("/run/x.sock".into())));
        assert!(parse("tcp://0.0.0.0:1").is_err());
    }

    #[test]
    fn cri_dockerd_flags_are_accepted() {
        let config = Config::parse_from([
            "dockershim",
            "--container-runtime-endpoint",
            "fd://",
            "--ipv6-dual-stack",
            "--image-pull-progress-deadline",
            "2m30s",
            "--runtime-request-timeout",
            "1m",
            "--runtime-cgroups",
            "/runtime",
            "--streaming-bind-addr",
            "127.0.0.1",
        ]);
        assert!(config.ipv6_dual_stack);
        assert_eq!(
            config.image_pull_progress_deadline,
            std::time::Duration::from_secs(150)
        );
        assert_eq!(
            config.runtime_request_timeout,
            std::time::Duration::from_secs(60)
        );
        assert_eq!(config.runtime_cgroups, "/runtime");
        assert_eq!(config.streaming_bind_addr, "127.0.0.1:0".parse().unwrap());
        let config = Config::parse_from(["dockershim", "--ipv6-dual-stack=false"]);
        assert!(!config.ipv6_dual_stack);
        assert_eq!(
            config.image_pull_progress_deadline,
            std::time::Duration::from_secs(60)
        );
        assert!(Config::parse_from(["dockershim", "--info"]).buildinfo);
        assert!(
            Config::try_parse_from(["dockershim", "--streaming-bind-addr", "localhost:1"]).is_err()
        );
    }

    #[test]
    fn version_names_the_commit_and_build_date() {
        use clap::CommandFactory;
        let version = Config::command().render_version();
        assert!(
            version.starts_with(&format!(
                "dockershim {} (commit {}, built {})",
                crate::build_info::VERSION,
                crate::build_info::COMMIT,
                crate::build_info::BUILD_DATE
            )),
            "{version}"
        );
    }

    #[test]
    fn log_format_is_text_unless_asked_for_json() {
        let format = |args: &[&str]| {
            let mut all = vec!["dockershim"];
            all.extend_from_slice(args);
            Config::try_parse_from(all).map(|c| c.log_format())
        };
        assert_eq!(format(&[]).ok(), Some(LogFormat::Text));
        assert_eq!(
            format(&["--log-format", "json"]).ok(),
            Some(LogFormat::Json)
        );
        assert_eq!(format(&["--log-format=text"]).ok(), Some(LogFormat::Text));
        assert_eq!(format(&["--log-json"]).ok(), Some(LogFormat::Json));
        assert!(format(&["--log-format", "logfmt"]).is_err());
    }

    #[test]
    fn go_durations_are_parsed() {
        use std::time::Duration;
        assert_eq!(parse_go_duration("1m0s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_go_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_go_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_go_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(parse_go_duration("1h2m3s"), Ok(Duration::from_secs(3723)));
        for bad in ["", "5", "1x", "m", "-1s", "1.2.3s"] {
            assert!(parse_go_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn network_plugins_are_parsed() {
        let parse = |args: &[&str]| {
            let mut all = vec!["dockershim", "--cni-conf-dir", "/nonexistent/cni"];
            all.extend_from_slice(args);
            Config::parse_from(all).network_plugin()
        };
        assert_eq!(parse(&[]), Ok(NetworkPlugin::Docker));
        assert_eq!(parse(&["--network-plugin", "cni"]), Ok(NetworkPlugin::Cni));
        assert_eq!(parse(&["--network-plugin", ""]), Ok(NetworkPlugin::Docker));
        assert!(parse(&["--network-plugin", "kubenet"]).is_err());
        let config = Config::parse_from(["dockershim", "--cni-bin-dir", "/a,/b"]);
        assert_eq!(
            config.cni_bin_dir,
            [PathBuf::from("/a"), PathBuf::from("/b")]
        );
    }
}

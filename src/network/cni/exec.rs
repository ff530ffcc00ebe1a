//! Running one CNI plugin binary: finding it in the bin dirs, the `CNI_*`
//! environment, config on stdin, result or error JSON on stdout, and the
//! per-call timeout.

use std::io;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, Command};

use super::bin_dirs::{find_plugin, join_dirs};
use super::{CniError, CniSettings};

/// ETXTBSY: the binary is still open for writing somewhere, typically
/// because a concurrent fork inherited the writer's descriptor while a
/// plugin was being installed. It clears within milliseconds.
const TEXT_FILE_BUSY: i32 = 26;
const SPAWN_ATTEMPTS: u32 = 5;

/// A CNI command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CniCommand {
    Add,
    Del,
    Check,
}

impl CniCommand {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::Add => "ADD",
            Self::Del => "DEL",
            Self::Check => "CHECK",
        }
    }
}

/// The per-invocation arguments passed in the environment.
#[derive(Debug, Clone, Copy)]
pub(super) struct Invocation<'a> {
    pub command: CniCommand,
    pub container_id: &'a str,
    /// `None` sends an empty `CNI_NETNS`, which the spec allows for DEL.
    pub netns: Option<&'a Path>,
    pub ifname: &'a str,
    pub args: &'a [(String, String)],
}

/// The error object a failing plugin prints on stdout.
#[derive(Debug, Deserialize)]
struct ErrorJson {
    #[serde(default)]
    code: Option<u32>,
    #[serde(default)]
    msg: Option<String>,
    #[serde(default)]
    details: Option<String>,
}

/// `CNI_ARGS` form: `k=v;k=v`.
pub(super) fn cni_args(args: &[(String, String)]) -> String {
    args.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(";")
}

/// Runs a plugin and returns its stdout on success.
pub(super) async fn run_plugin(
    settings: &CniSettings,
    plugin_type: &str,
    inv: &Invocation<'_>,
    stdin: &[u8],
) -> Result<Vec<u8>, CniError> {
    let command = inv.command.as_str();
    let path = find_plugin(plugin_type, &settings.bin_dirs).ok_or_else(|| CniError::Io {
        context: format!(
            "find cni plugin {plugin_type:?} in {}",
            join_dirs(&settings.bin_dirs).to_string_lossy()
        ),
        source: io::Error::from(io::ErrorKind::NotFound),
    })?;

    let mut cmd = Command::new(&path);
    cmd.env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", inv.container_id)
        .env(
            "CNI_NETNS",
            inv.netns
                .map(|p| p.as_os_str().to_owned())
                .unwrap_or_default(),
        )
        .env("CNI_IFNAME", inv.ifname)
        .env("CNI_ARGS", cni_args(inv.args))
        .env("CNI_PATH", join_dirs(&settings.bin_dirs))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Dropping the wait on timeout (or cancellation) must not leave the
        // plugin running unsupervised.
        .kill_on_drop(true);

    tracing::debug!(
        plugin = plugin_type,
        command,
        container_id = inv.container_id,
        "running cni plugin"
    );
    let child = spawn(&mut cmd, &path).await?;
    let output = tokio::time::timeout(settings.plugin_timeout, communicate(child, stdin))
        .await
        .map_err(|_| CniError::Timeout {
            plugin: plugin_type.to_owned(),
            command: command.to_owned(),
            after: settings.plugin_timeout,
        })?
        .map_err(|source| CniError::Io {
            context: format!("run cni plugin {} ({command})", path.display()),
            source,
        })?;

    let stderr = String::from_utf8_lossy(&output.stderr);
    let stderr = stderr.trim();
    if !stderr.is_empty() {
        tracing::debug!(plugin = plugin_type, command, stderr, "cni plugin stderr");
    }
    if output.status.success() {
        return Ok(output.stdout);
    }
    Err(plugin_error(plugin_type, command, &output, stderr))
}

async fn spawn(cmd: &mut Command, path: &Path) -> Result<Child, CniError> {
    let mut attempt = 1;
    loop {
        match cmd.spawn() {
            Ok(child) => return Ok(child),
            Err(e) if e.raw_os_error() == Some(TEXT_FILE_BUSY) && attempt < SPAWN_ATTEMPTS => {
                tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt))).await;
                attempt += 1;
            }
            Err(source) => {
                return Err(CniError::Io {
                    context: format!("start cni plugin {}", path.display()),
                    source,
                });
            }
        }
    }
}

/// Feeds stdin while collecting stdout/stderr, so neither side can block the
/// other on a full pipe.
async fn communicate(mut child: Child, stdin: &[u8]) -> io::Result<Output> {
    let pipe = child.stdin.take();
    let feed = async move {
        let Some(mut pipe) = pipe else {
            return Ok(());
        };
        // A plugin may exit without reading its config (e.g. on a usage
        // error); its exit status tells the story, not the broken pipe.
        match pipe.write_all(stdin).await {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
            other => other,
        }
        // Dropping the pipe sends EOF.
    };
    let (fed, output) = tokio::join!(feed, child.wait_with_output());
    let output = output?;
    fed?;
    Ok(output)
}

fn plugin_error(plugin: &str, command: &str, output: &Output, stderr: &str) -> CniError {
    let parsed = serde_json::from_slice::<ErrorJson>(&output.stdout)
        .ok()
        .filter(|e| e.code.is_some() || e.msg.is_some());
    if let Some(e) = parsed {
        return CniError::Plugin {
            plugin: plugin.to_owned(),
            command: command.to_owned(),
            code: e.code.unwrap_or(0),
            msg: e.msg.unwrap_or_default(),
            details: e.details.unwrap_or_default(),
        };
    }
    // No CNI error object: report what the process did instead. Code 0 is
    // not a CNI error code, so callers can tell this case apart.
    let status = match output.status.code() {
        Some(code) => format!("exit status {code}"),
        None => format!("{}", output.status),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let msg = if !stderr.is_empty() {
        stderr.to_owned()
    } else if !stdout.trim().is_empty() {
        stdout.trim().to_owned()
    } else {
        format!("plugin failed with {status} and no error message")
    };
    CniError::Plugin {
        plugin: plugin.to_owned(),
        command: command.to_owned(),
        code: 0,
        msg,
        details: status,
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn setup(script: &str, timeout: Duration) -> (tempfile::TempDir, CniSettings) {
        let tmp = tempfile::tempdir().unwrap();
        let bin = tmp.path().join("bin");
        fs::create_dir(&bin).unwrap();
        let path = bin.join("fake");
        fs::write(&path, format!("#!/bin/sh\n{script}\n")).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        let settings = CniSettings {
            conf_dir: tmp.path().join("net.d"),
            bin_dirs: vec![tmp.path().join("empty"), bin],
            cache_dir: tmp.path().join("cache"),
            plugin_timeout: timeout,
        };
        (tmp, settings)
    }

    fn inv(command: CniCommand) -> Invocation<'static> {
        Invocation {
            command,
            container_id: "c1",
            netns: None,
            ifname: "eth0",
            args: &[],
        }
    }

    #[tokio::test]
    async fn error_json_becomes_plugin_error() {
        let (_tmp, s) = setup(
            r#"cat >/dev/null; echo '{"cniVersion":"1.0.0","code":7,"msg":"bad config","details":"field x"}'; exit 1"#,
            Duration::from_secs(10),
        );
        let err = run_plugin(&s, "fake", &inv(CniCommand::Add), b"{}")
            .await
            .unwrap_err();
        match err {
            CniError::Plugin {
                plugin,
                command,
                code,
                msg,
                details,
            } => {
                assert_eq!((plugin.as_str(), command.as_str()), ("fake", "ADD"));
                assert_eq!(
                    (code, msg.as_str(), details.as_str()),
                    (7, "bad config", "field x")
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn failure_without_json_reports_status_and_stderr() {
        let (_tmp, s) = setup("echo '  boom  ' >&2; exit 3", Duration::from_secs(10));
        let err = run_plugin(&s, "fake", &inv(CniCommand::Del), &[b'x'; 200_000])
            .await
            .unwrap_err();
        match err {
            CniError::Plugin {
                code, msg, details, ..
            } => {
                assert_eq!(
                    (code, msg.as_str(), details.as_str()),
                    (0, "boom", "exit status 3")
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn missing_binary_is_not_found() {
        let (_tmp, s) = setup("exit 0", Duration::from_secs(10));
        let err = run_plugin(&s, "nope", &inv(CniCommand::Add), b"{}")
            .await
            .unwrap_err();
        assert!(
            matches!(&err, CniError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn timeout_kills_the_plugin() {
        let tmp_pid = tempfile::tempdir().unwrap();
        let pid_file = tmp_pid.path().join("pid");
        // exec so the recorded pid is the sleeping process itself.
        let (_tmp, s) = setup(
            &format!("echo $$ > {}; exec sleep 30", pid_file.display()),
            Duration::from_millis(300),
        );
        let started = std::time::Instant::now();
        let err = run_plugin(&s, "fake", &inv(CniCommand::Add), b"{}")
            .await
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(10));
        match &err {
            CniError::Timeout {
                plugin,
                command,
                after,
            } => {
                assert_eq!((plugin.as_str(), command.as_str()), ("fake", "ADD"));
                assert_eq!(*after, Duration::from_millis(300));
            }
            other => panic!("{other:?}"),
        }
        let pid = fs::read_to_string(&pid_file).unwrap().trim().to_owned();
        let stat = format!("/proc/{pid}/stat");
        // SIGKILL is asynchronous; the process is dead once it is a zombie or
        // has been reaped.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let state = fs::read_to_string(&stat)
                .ok()
                .and_then(|s| s.rsplit(") ").next().map(|r| r.chars().next()))
                .flatten();
            if matches!(state, None | Some('Z') | Some('X')) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "plugin {pid} still running: {state:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[test]
    fn cni_args_form() {
        let args = vec![
            ("IgnoreUnknown".to_owned(), "1".to_owned()),
            ("K8S_POD_NAME".to_owned(), "web".to_owned()),
        ];
        assert_eq!(cni_args(&args), "IgnoreUnknown=1;K8S_POD_NAME=web");
        assert_eq!(cni_args(&[]), "");
    }
}

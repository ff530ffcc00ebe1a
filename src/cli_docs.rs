//! The manual page and the shell completions, generated from the
//! command-line definitions ([`Config`]) so that they cannot drift from the
//! flags: `dockershim man` and `dockershim completion <shell>` print them,
//! and the package and release builds install what they print.

use clap::CommandFactory;

use crate::build_info;
use crate::config::Config;

/// What the page says besides the flags: how the packaged service runs and
/// the files it reads (roff).
const SERVICE_AND_FILES: &str = r#".SH SERVICE
As packaged, dockershim runs as \fBdockershim.service\fR, activated by
\fBdockershim.socket\fR (\fI/run/dockershim.sock\fR); extra flags go into
\fBDOCKERSHIM_OPTS\fR in \fI/etc/default/dockershim\fR. It accepts the flags
of cri-dockerd. Settings can also go into the configuration file, whose keys
are the long flag names without the dashes in front; \fBdockershim config
dump\fR prints the configuration in effect.
.SH FILES
.TP
.I /etc/dockershim/config.toml
the configuration file; flags and environment variables win over it
.TP
.I /etc/dockershim/config.d/*.toml
drop-ins, read after config.toml in file-name order
.TP
.I /etc/default/dockershim
flags for the service (\fBDOCKERSHIM_OPTS\fR)
.TP
.I /usr/share/doc/dockershim/
README.md and docs/: configuration, operations (switching from cri-dockerd),
compatibility, logs
.SH SEE ALSO
.BR systemctl (1),
.BR crictl (1),
.BR dockerd (8)
"#;

/// The manual page (section 8, roff), dated by the build.
pub fn man_page() -> std::io::Result<Vec<u8>> {
    let date = build_info::BUILD_DATE
        .get(..10)
        .unwrap_or(build_info::BUILD_DATE);
    let man = clap_mangen::Man::new(Config::command())
        .section("8")
        .date(date)
        .source(format!("dockershim {}", build_info::VERSION))
        .manual("System Administration");
    let mut page = Vec::new();
    man.render(&mut page)?;
    // The service and files go before the version, the page's last section.
    let at = page
        .windows(12)
        .position(|w| w == b"\n.SH VERSION")
        .map_or(page.len(), |at| at + 1);
    page.splice(at..at, SERVICE_AND_FILES.bytes());
    Ok(page)
}

/// The completion script of `shell`.
pub fn completion(shell: clap_complete::Shell) -> Vec<u8> {
    // Generated into memory: clap_complete panics when its writer fails.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Config::command(), "dockershim", &mut script);
    script
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_man_page_lists_every_flag_and_the_files() {
        let page = String::from_utf8(man_page().unwrap()).unwrap();
        assert!(page.contains(".TH dockershim 8 "), "{}", &page[..200]);
        for arg in Config::command().get_arguments() {
            if arg.is_hide_set() {
                continue;
            }
            if let Some(long) = arg.get_long() {
                // roff escapes the dashes.
                assert!(
                    page.contains(&format!("\\-\\-{}", long.replace('-', "\\-"))),
                    "--{long} missing"
                );
            }
        }
        let files = page.find(".SH FILES").expect("a FILES section");
        assert!(page[files..].contains("/etc/dockershim/config.toml"));
        assert!(files < page.find(".SH VERSION").expect("a VERSION section"));
        assert!(page.contains(".SH SUBCOMMANDS"));
    }

    #[test]
    fn completions_know_the_flags_in_every_shell() {
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
        ] {
            let script = String::from_utf8(completion(shell)).unwrap();
            for flag in ["docker-endpoint", "network-plugin", "docker-log-opt"] {
                assert!(script.contains(flag), "{shell}: {flag} missing");
            }
        }
    }
}

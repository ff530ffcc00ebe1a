//! A container's security context in Docker's terms: seccomp, AppArmor and
//! SELinux options, no-new-privileges, devices and the stop signal.

use bollard::models::DeviceMapping;

use crate::api::security_profile::ProfileType;
use crate::api::{
    Device, LinuxContainerSecurityContext, NamespaceMode, NamespaceOption, SecurityProfile, Signal,
};
use crate::error::{Error, Result};

/// Refuses namespace modes the CRI does not define, before they could be
/// read as the default.
pub fn check_namespace_options(namespaces: &NamespaceOption) -> Result<()> {
    let modes = [
        ("network", namespaces.network),
        ("pid", namespaces.pid),
        ("ipc", namespaces.ipc),
    ]
    .into_iter()
    .chain(
        namespaces
            .userns_options
            .as_ref()
            .map(|u| ("userns", u.mode)),
    );
    for (which, mode) in modes {
        if NamespaceMode::try_from(mode).is_err() {
            return Err(Error::InvalidArgument(format!(
                "namespace_options.{which} {mode} is not a namespace mode (POD, CONTAINER, NODE, TARGET)"
            )));
        }
    }
    Ok(())
}

/// Docker `SecurityOpt` entries for a container. The deprecated string
/// profile fields still count when the structured ones are absent: older
/// kubelets and crictl send them.
#[allow(deprecated)]
pub fn security_opts(security: &LinuxContainerSecurityContext) -> Result<Vec<String>> {
    let mut opts = Vec::new();
    if security.no_new_privs {
        opts.push("no-new-privileges".to_string());
    }
    // A privileged container runs without seccomp and AppArmor confinement
    // in Docker anyway; asking for profiles would only be ignored.
    if !security.privileged {
        if let Some(seccomp) =
            seccomp_opt(security.seccomp.as_ref(), &security.seccomp_profile_path)?
        {
            opts.push(seccomp);
        }
        if let Some(apparmor) =
            apparmor_opt(security.apparmor.as_ref(), &security.apparmor_profile)?
        {
            opts.push(apparmor);
        }
    }
    if let Some(selinux) = &security.selinux_options {
        for (key, value) in [
            ("user", &selinux.user),
            ("role", &selinux.role),
            ("type", &selinux.r#type),
            ("level", &selinux.level),
        ] {
            if !value.is_empty() {
                opts.push(format!("label={key}:{value}"));
            }
        }
    }
    Ok(opts)
}

/// The seccomp option: Docker's default profile for RuntimeDefault, none for
/// Unconfined, the node's profile file (inlined, as Docker's API takes it)
/// for Localhost. An unset profile is unconfined, as the kubelet means it.
fn seccomp_opt(profile: Option<&SecurityProfile>, deprecated_path: &str) -> Result<Option<String>> {
    let (kind, localhost) = profile_kind(profile, deprecated_path, |path| match path {
        "runtime/default" | "docker/default" => ProfileType::RuntimeDefault,
        _ => ProfileType::Unconfined,
    });
    match kind {
        ProfileType::RuntimeDefault => Ok(None),
        ProfileType::Unconfined => Ok(Some("seccomp=unconfined".to_string())),
        ProfileType::Localhost => {
            let json = std::fs::read_to_string(&localhost).map_err(|e| {
                Error::InvalidArgument(format!("seccomp profile {localhost:?} cannot be read: {e}"))
            })?;
            serde_json::from_str::<serde_json::Value>(&json).map_err(|e| {
                Error::InvalidArgument(format!("seccomp profile {localhost:?} is not JSON: {e}"))
            })?;
            Ok(Some(format!("seccomp={json}")))
        }
    }
}

/// The AppArmor option: Docker's default profile for RuntimeDefault (or
/// unset), `unconfined`, or a profile loaded on the node by name.
fn apparmor_opt(profile: Option<&SecurityProfile>, deprecated: &str) -> Result<Option<String>> {
    let (kind, name) = profile_kind(profile, deprecated, |name| match name {
        "unconfined" => ProfileType::Unconfined,
        _ => ProfileType::RuntimeDefault,
    });
    match kind {
        ProfileType::RuntimeDefault => Ok(None),
        ProfileType::Unconfined => Ok(Some("apparmor=unconfined".to_string())),
        ProfileType::Localhost if name.is_empty() => Err(Error::InvalidArgument(
            "AppArmor Localhost profile needs localhost_ref".into(),
        )),
        ProfileType::Localhost => Ok(Some(format!("apparmor={name}"))),
    }
}

/// The profile asked for: the structured field when set, else the
/// deprecated string (`localhost/<ref>`, or a keyword `keyword` reads).
fn profile_kind(
    profile: Option<&SecurityProfile>,
    deprecated: &str,
    keyword: impl Fn(&str) -> ProfileType,
) -> (ProfileType, String) {
    match profile {
        Some(p) => (
            ProfileType::try_from(p.profile_type).unwrap_or(ProfileType::RuntimeDefault),
            p.localhost_ref.clone(),
        ),
        None => match deprecated.strip_prefix("localhost/") {
            Some(reference) => (ProfileType::Localhost, reference.to_string()),
            None => (keyword(deprecated), String::new()),
        },
    }
}

/// Host devices for the container.
pub fn devices(devices: &[Device]) -> Result<Vec<DeviceMapping>> {
    devices
        .iter()
        .map(|d| {
            if d.host_path.is_empty() {
                return Err(Error::InvalidArgument(format!(
                    "device for {:?} has no host_path",
                    d.container_path
                )));
            }
            let permissions = if d.permissions.is_empty() {
                "rwm"
            } else {
                d.permissions.as_str()
            };
            if !permissions.chars().all(|c| "rwm".contains(c)) {
                return Err(Error::InvalidArgument(format!(
                    "device {:?}: permissions {permissions:?} must be made of r, w and m",
                    d.host_path
                )));
            }
            let container_path = if d.container_path.is_empty() {
                &d.host_path
            } else {
                &d.container_path
            };
            Ok(DeviceMapping {
                path_on_host: Some(d.host_path.clone()),
                path_in_container: Some(container_path.clone()),
                cgroup_permissions: Some(permissions.to_string()),
            })
        })
        .collect()
}

/// Docker's `StopSignal` for a CRI signal; `None` keeps the image's.
pub fn stop_signal(signal: i32) -> Option<String> {
    match Signal::try_from(signal) {
        Ok(Signal::RuntimeDefault) | Err(_) => None,
        Ok(signal) => signal
            .as_str_name()
            .strip_prefix("SIGNAL_")
            .map(str::to_string),
    }
}

/// The CRI signal for Docker's `StopSignal` (a name like `SIGTERM`).
pub fn signal_from_docker(name: Option<&str>) -> i32 {
    name.and_then(|n| {
        let full = if n.starts_with("SIG") {
            n.to_string()
        } else {
            format!("SIG{n}")
        };
        Signal::from_str_name(&format!("SIGNAL_{full}"))
    })
    .map_or(Signal::RuntimeDefault as i32, |s| s as i32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::SeLinuxOption;

    fn profile(kind: ProfileType, localhost: &str) -> Option<SecurityProfile> {
        Some(SecurityProfile {
            profile_type: kind as i32,
            localhost_ref: localhost.into(),
        })
    }

    #[test]
    fn seccomp_profiles() {
        assert_eq!(
            seccomp_opt(profile(ProfileType::RuntimeDefault, "").as_ref(), "").unwrap(),
            None
        );
        assert_eq!(
            seccomp_opt(profile(ProfileType::Unconfined, "").as_ref(), "")
                .unwrap()
                .as_deref(),
            Some("seccomp=unconfined")
        );
        assert_eq!(
            seccomp_opt(None, "").unwrap().as_deref(),
            Some("seccomp=unconfined")
        );
        assert_eq!(seccomp_opt(None, "runtime/default").unwrap(), None);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("profile.json");
        std::fs::write(&file, r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#).unwrap();
        let inline = seccomp_opt(
            profile(ProfileType::Localhost, file.to_str().unwrap()).as_ref(),
            "",
        )
        .unwrap();
        assert_eq!(
            inline.as_deref(),
            Some(r#"seccomp={"defaultAction":"SCMP_ACT_ALLOW"}"#)
        );
        assert!(
            seccomp_opt(
                profile(ProfileType::Localhost, "/no/such/file").as_ref(),
                ""
            )
            .is_err()
        );
    }

    #[test]
    fn apparmor_selinux_and_no_new_privs() {
        let security = LinuxContainerSecurityContext {
            no_new_privs: true,
            apparmor: profile(ProfileType::Localhost, "my-profile"),
            seccomp: profile(ProfileType::RuntimeDefault, ""),
            selinux_options: Some(SeLinuxOption {
                user: "system_u".into(),
                r#type: "container_t".into(),
                level: "s0:c1,c2".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            security_opts(&security).unwrap(),
            vec![
                "no-new-privileges",
                "apparmor=my-profile",
                "label=user:system_u",
                "label=type:container_t",
                "label=level:s0:c1,c2"
            ]
        );
        let privileged = LinuxContainerSecurityContext {
            privileged: true,
            ..Default::default()
        };
        assert!(security_opts(&privileged).unwrap().is_empty());
        assert_eq!(
            apparmor_opt(None, "unconfined").unwrap().as_deref(),
            Some("apparmor=unconfined")
        );
        assert!(apparmor_opt(profile(ProfileType::Localhost, "").as_ref(), "").is_err());
    }

    #[test]
    fn devices_and_signals() {
        let mapped = devices(&[Device {
            container_path: "/dev/xnull".into(),
            host_path: "/dev/null".into(),
            permissions: "rw".into(),
        }])
        .unwrap();
        assert_eq!(mapped[0].path_in_container.as_deref(), Some("/dev/xnull"));
        assert_eq!(mapped[0].cgroup_permissions.as_deref(), Some("rw"));
        assert!(
            devices(&[Device {
                host_path: "/dev/null".into(),
                permissions: "x".into(),
                ..Default::default()
            }])
            .is_err()
        );
        assert_eq!(
            stop_signal(Signal::Sigusr1 as i32).as_deref(),
            Some("SIGUSR1")
        );
        assert_eq!(stop_signal(Signal::RuntimeDefault as i32), None);
        assert_eq!(signal_from_docker(Some("SIGQUIT")), Signal::Sigquit as i32);
        assert_eq!(signal_from_docker(Some("QUIT")), Signal::Sigquit as i32);
        assert_eq!(signal_from_docker(None), Signal::RuntimeDefault as i32);
    }
}

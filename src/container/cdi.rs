//! CDI devices of a container: the names the CRI gives in `cdi_devices` and
//! in `cdi.k8s.io/*` annotations, checked and merged into the one Docker
//! device request (driver `cdi`) that makes the engine inject them.
//!
//! The annotations are read as containerd and CRI-O read them: every key
//! with the prefix `cdi.k8s.io/` counts, whatever follows it, and its value
//! is a comma-separated list of fully-qualified device names
//! (`vendor.com/class=name`). Only the container's own annotations count;
//! the pod sandbox's are not applied to its containers (nor to the pause
//! container), as in containerd and CRI-O.

use bollard::models::DeviceRequest;

use crate::api::ContainerConfig;
use crate::docker::DockerError;
use crate::engine::CdiSupport;
use crate::error::{Error, Result};

/// The prefix of the annotation keys that request CDI devices.
pub const ANNOTATION_PREFIX: &str = "cdi.k8s.io/";

/// The CDI devices the container asks for: those of `cdi_devices` in their
/// order, then those of the annotations by key and in each value's order,
/// each once. A name that is not fully qualified is INVALID_ARGUMENT.
pub fn requested(config: &ContainerConfig) -> Result<Vec<String>> {
    let mut devices: Vec<String> = Vec::new();
    let mut add = |name: &str| {
        if !devices.iter().any(|d| d == name) {
            devices.push(name.to_string());
        }
    };
    for (i, device) in config.cdi_devices.iter().enumerate() {
        check_name(&device.name).map_err(|why| {
            Error::InvalidArgument(format!(
                "cdi_devices[{i}].name {:?} is not a fully-qualified CDI device name (vendor.com/class=name): {why}",
                device.name
            ))
        })?;
        add(&device.name);
    }
    // Sorted, so that the request (and what Docker injects first) does not
    // depend on the map's order.
    let mut annotated: Vec<(&String, &String)> = config
        .annotations
        .iter()
        .filter(|(key, _)| key.starts_with(ANNOTATION_PREFIX))
        .collect();
    annotated.sort();
    for (key, value) in annotated {
        for name in value.split(',') {
            check_name(name).map_err(|why| {
                Error::InvalidArgument(format!(
                    "annotation {key:?}: value {value:?} is not a comma-separated list of fully-qualified CDI device names (vendor.com/class=name): {name:?}: {why}"
                ))
            })?;
            add(name);
        }
    }
    Ok(devices)
}

/// The Docker device request for the container's CDI devices, `None` when
/// it asks for none. Refused with FAILED_PRECONDITION, saying what to turn
/// on, when the engine cannot inject them.
pub fn device_requests(
    config: &ContainerConfig,
    support: &CdiSupport,
) -> Result<Option<Vec<DeviceRequest>>> {
    let devices = requested(config)?;
    if devices.is_empty() {
        return Ok(None);
    }
    match support {
        CdiSupport::Unsupported => {
            return Err(Error::FailedPrecondition(format!(
                "CDI devices {devices:?} need Docker Engine 25 or newer (API 1.44) with CDI on; this Docker speaks an older API: upgrade Docker and turn CDI on (see docs/operations.md)"
            )));
        }
        CdiSupport::Off => {
            return Err(Error::FailedPrecondition(format!(
                "CDI devices {devices:?} need CDI on in Docker, which reports no CDI spec directory: set \"features\": {{\"cdi\": true}} in Docker's daemon.json (Docker 25 to 27; 28 has it on unless turned off) with \"cdi-spec-dirs\" not empty, restart Docker, then dockershim"
            )));
        }
        CdiSupport::On(_) | CdiSupport::Unreported => {}
    }
    Ok(Some(vec![DeviceRequest {
        driver: Some("cdi".into()),
        device_ids: Some(devices),
        ..Default::default()
    }]))
}

/// Docker's error when it cannot inject a CDI device the container asks for
/// (no spec in its spec directories names it: Docker finds out at start),
/// said as FAILED_PRECONDITION naming the spec directories; other errors
/// are given back as they are.
pub fn injection_error(
    cid: &str,
    err: DockerError,
    support: &CdiSupport,
) -> std::result::Result<Error, DockerError> {
    match err {
        DockerError::Api { message, .. } if message.contains("CDI device injection failed") => {
            let dirs = match support {
                CdiSupport::On(dirs) => format!("{dirs:?}"),
                _ => "(Docker does not say)".to_string(),
            };
            Ok(Error::FailedPrecondition(format!(
                "start container {cid}: Docker cannot inject a CDI device it asks for; is the device's CDI spec in one of Docker's spec directories {dirs}? Docker said: {message}"
            )))
        }
        other => Err(other),
    }
}

/// Checks a fully-qualified CDI device name, `vendor/class=name`: vendor
/// and class start with a letter, end with a letter or digit and hold
/// letters, digits, `_`, `-` and `.`; the name starts and ends with a
/// letter or digit and may also hold `:`. The same rules as the CDI
/// project's parser, so that what containerd accepts is accepted here.
fn check_name(device: &str) -> std::result::Result<(), String> {
    let (kind, name) = device
        .split_once('=')
        .ok_or_else(|| "no '=' before the device name".to_string())?;
    let (vendor, class) = kind
        .split_once('/')
        .ok_or_else(|| "no '/' between vendor and class".to_string())?;
    check_part("vendor", vendor, |c| c.is_ascii_alphabetic(), "_-.")?;
    check_part("class", class, |c| c.is_ascii_alphabetic(), "_-.")?;
    check_part("device name", name, |c| c.is_ascii_alphanumeric(), "_-.:")
}

/// One part of a device name: not empty, a first character `first`
/// accepts, a letter or digit last, and letters, digits or `inner` between.
fn check_part(
    what: &str,
    part: &str,
    first: impl Fn(char) -> bool,
    inner: &str,
) -> std::result::Result<(), String> {
    let mut chars = part.chars();
    let Some(head) = chars.next() else {
        return Err(format!("empty {what}"));
    };
    if !first(head) {
        return Err(format!("{what} {part:?} starts with {head:?}"));
    }
    if part
        .chars()
        .last()
        .is_some_and(|c| !c.is_ascii_alphanumeric())
    {
        return Err(format!(
            "{what} {part:?} does not end with a letter or digit"
        ));
    }
    if let Some(bad) = chars.find(|c| !c.is_ascii_alphanumeric() && !inner.contains(*c)) {
        return Err(format!("{what} {part:?} holds {bad:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::CdiDevice;
    use std::collections::HashMap;

    fn config(field: &[&str], annotations: &[(&str, &str)]) -> ContainerConfig {
        ContainerConfig {
            cdi_devices: field
                .iter()
                .map(|n| CdiDevice {
                    name: n.to_string(),
                })
                .collect(),
            annotations: annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>(),
            ..Default::default()
        }
    }

    fn on() -> CdiSupport {
        CdiSupport::On(vec!["/etc/cdi".into()])
    }

    #[test]
    fn field_and_annotations_merge_in_a_stable_order_each_once() {
        let cfg = config(
            &["nvidia.com/gpu=0", "vendor.com/net=eth1"],
            &[
                ("cdi.k8s.io/z-plugin", "nvidia.com/gpu=1,nvidia.com/gpu=0"),
                ("cdi.k8s.io/a-plugin", "example.com/fpga=card:0"),
                ("io.kubernetes.container.hash", "not=a/device"),
            ],
        );
        assert_eq!(
            requested(&cfg).unwrap(),
            [
                "nvidia.com/gpu=0",
                "vendor.com/net=eth1",
                "example.com/fpga=card:0",
                "nvidia.com/gpu=1",
            ]
        );
        let requests = device_requests(&cfg, &on()).unwrap().unwrap();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].driver.as_deref(), Some("cdi"));
        assert_eq!(requests[0].device_ids.as_ref().unwrap().len(), 4);
        assert_eq!(device_requests(&config(&[], &[]), &on()).unwrap(), None);
    }

    #[test]
    fn a_bad_annotation_is_invalid_argument_naming_key_and_value() {
        for value in [
            "gpu0",
            "",
            "nvidia.com/gpu=0,",
            "nvidia.com/gpu=0, nvidia.com/gpu=1",
            "nvidia.com/=0",
            "1vendor.com/gpu=0",
            "vendor.com/gpu=-0",
            "vendor.com/gpu=0/1",
            "vendor.com/gpu-=0",
        ] {
            let cfg = config(&[], &[("cdi.k8s.io/plugin_dev", value)]);
            let err = requested(&cfg).unwrap_err();
            assert!(
                matches!(&err, Error::InvalidArgument(m)
                    if m.contains("\"cdi.k8s.io/plugin_dev\"") && m.contains(&format!("{value:?}"))),
                "{value:?}: {err}"
            );
        }
        let err = requested(&config(&["gpu0"], &[])).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidArgument(m) if m.contains("cdi_devices[0]")),
            "{err}"
        );
    }

    #[test]
    fn names_the_cdi_parser_accepts_are_accepted() {
        for name in [
            "nvidia.com/gpu=all",
            "k8s.device-plugin.nvidia.com/gpu=GPU-7ee58073-0c3b-4c4e",
            "a/b=c",
            "Vendor_1.io/class.x=dev:0.1",
        ] {
            assert_eq!(check_name(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn engines_that_cannot_inject_are_refused_saying_what_to_turn_on() {
        let cfg = config(&[], &[("cdi.k8s.io/x", "vendor.com/gpu=0")]);
        let old = device_requests(&cfg, &CdiSupport::Unsupported).unwrap_err();
        assert!(
            matches!(&old, Error::FailedPrecondition(m) if m.contains("1.44") && m.contains("vendor.com/gpu=0")),
            "{old}"
        );
        let off = device_requests(&cfg, &CdiSupport::Off).unwrap_err();
        assert!(
            matches!(&off, Error::FailedPrecondition(m) if m.contains("\"cdi\": true")),
            "{off}"
        );
        assert!(device_requests(&cfg, &CdiSupport::Unreported).is_ok());
        // Nothing asked, nothing refused.
        assert_eq!(
            device_requests(&config(&[], &[]), &CdiSupport::Off).unwrap(),
            None
        );
    }

    #[test]
    fn dockers_injection_failure_names_the_device_and_the_spec_dirs() {
        let err = DockerError::Api {
            status: 500,
            message: "CDI device injection failed: unresolvable CDI devices vendor.com/gpu=9"
                .into(),
        };
        let said = injection_error("c1", err, &on()).unwrap();
        assert_eq!(said.code(), tonic::Code::FailedPrecondition);
        let text = said.to_string();
        assert!(
            text.contains("vendor.com/gpu=9") && text.contains("/etc/cdi"),
            "{text}"
        );
        let other = DockerError::Api {
            status: 500,
            message: "something else".into(),
        };
        assert!(injection_error("c1", other, &on()).is_err());
    }
}

//! CNI ADD results as plugins print them, in every spec version's shape
//! (0.1.0/0.2.0 `ip4`/`ip6`, 0.3.0 to 1.1.0 `interfaces`/`ips`).
//!
//! Checks: no panic; the pod's addresses are result addresses, each once,
//! IPv4 before IPv6 among those of one rank; a result converted to another
//! version for `prevResult` still parses, says the version it was converted
//! to, and keeps its addresses when it was already of the 0.3.0 shape (an
//! older one keeps only addresses it had).

#![no_main]

use std::collections::HashSet;

use dockershim::network::cni::fuzzing::convert_result;
use dockershim::network::cni::{CniResult, IpConfig};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// The versions a plugin's config may ask its `prevResult` in.
const TARGETS: [&str; 6] = ["0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

fn addresses(ips: &[IpConfig]) -> Vec<(std::net::IpAddr, u8)> {
    ips.iter().map(|ip| (ip.address, ip.prefix_len)).collect()
}

/// `major.minor.patch` of a declared version.
fn version(v: &str) -> Option<(u64, u64, u64)> {
    let mut parts = v.split('.').map(|p| p.parse::<u64>().ok());
    let version = (parts.next()??, parts.next()??, parts.next()??);
    parts.next().is_none().then_some(version)
}

fuzz_target!(|data: &[u8]| {
    let Ok(result) = CniResult::from_slice(data) else {
        return;
    };

    let pod_ips = result.pod_ips();
    let unique: HashSet<_> = pod_ips.iter().collect();
    assert_eq!(unique.len(), pod_ips.len(), "pod address listed twice");
    let all: HashSet<_> = result.ips.iter().map(|ip| ip.address).collect();
    assert_eq!(
        unique,
        all.iter().collect(),
        "pod addresses are not the result's"
    );

    // A result declared older than 0.3.0 is converted from its ip4/ip6 keys
    // only, as libcni reads such a result; its addresses may shrink but not
    // grow. (The shim fills in a missing version before this, as libcni.)
    let shape_030 = version(&result.cni_version).is_some_and(|v| v >= (0, 3, 0));
    for target in TARGETS {
        let converted = convert_result(&result.raw, target);
        if converted == result.raw {
            continue;
        }
        assert_eq!(
            converted.get("cniVersion").and_then(Value::as_str),
            Some(target)
        );
        let again = CniResult::from_value(converted)
            .unwrap_or_else(|e| panic!("result converted to {target} does not parse: {e}"));
        if shape_030 {
            assert_eq!(addresses(&again.ips), addresses(&result.ips));
        } else {
            let before = addresses(&result.ips);
            assert!(addresses(&again.ips).iter().all(|a| before.contains(a)));
        }
    }
});

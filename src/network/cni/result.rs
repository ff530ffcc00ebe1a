//! CNI ADD results: a typed view of the addresses and interfaces a result
//! reports, over the raw JSON kept for chaining and caching, plus conversion
//! of a result to another spec version for use as `prevResult`.
//!
//! Every result format is read: 0.1.0/0.2.0 (`ip4`/`ip6`) and
//! 0.3.0 to 1.1.0 (`interfaces`, `ips`).

use std::net::IpAddr;

use serde_json::{Map, Value};

use super::CniError;
use super::config::parse_version;

/// The final result of an ADD, as a plugin chain reported it.
#[derive(Debug, Clone, PartialEq)]
pub struct CniResult {
    /// Spec version the result is written in.
    pub cni_version: String,
    /// Addresses assigned, from `ips` (or `ip4`/`ip6` in 0.2.0 results).
    pub ips: Vec<IpConfig>,
    /// Interfaces created; empty in 0.2.0 results.
    pub interfaces: Vec<Interface>,
    /// The result exactly as the plugin printed it (with `cniVersion` filled
    /// in when the plugin left it out); this is what is cached and chained.
    pub raw: Value,
}

/// One address of a result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpConfig {
    /// The address itself.
    pub address: IpAddr,
    /// Prefix length of the address's subnet.
    pub prefix_len: u8,
    /// Gateway, if the plugin reported one.
    pub gateway: Option<IpAddr>,
    /// Index into [`CniResult::interfaces`] of the interface holding it.
    pub interface: Option<usize>,
}

/// One interface of a result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// Interface name (e.g. `eth0`, or the host side of a veth).
    pub name: String,
    /// Hardware address, if reported.
    pub mac: Option<String>,
    /// Netns path when the interface is inside the container; absent for
    /// host-side interfaces.
    pub sandbox: Option<String>,
}

impl CniResult {
    /// Parses a result from its JSON bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, CniError> {
        let raw: Value = serde_json::from_slice(bytes)
            .map_err(|e| CniError::Invalid(format!("result is not valid JSON: {e}")))?;
        Self::from_value(raw)
    }

    /// Parses a result from JSON already decoded.
    pub fn from_value(raw: Value) -> Result<Self, CniError> {
        let obj = raw
            .as_object()
            .ok_or_else(|| CniError::Invalid("result is not a JSON object".into()))?;
        // The spec says an absent version means 0.1.0.
        let cni_version = obj
            .get("cniVersion")
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
            .unwrap_or("0.1.0")
            .to_owned();

        let mut interfaces = Vec::new();
        for (i, iface) in array_field(obj, "interfaces")?.iter().enumerate() {
            interfaces.push(parse_interface(iface).map_err(|e| invalid_at("interfaces", i, &e))?);
        }

        let mut ips = Vec::new();
        for (i, ip) in array_field(obj, "ips")?.iter().enumerate() {
            ips.push(parse_ip(ip).map_err(|e| invalid_at("ips", i, &e))?);
        }
        // Accept the legacy keys regardless of the declared version: some old
        // plugins print 0.2.0-shaped results under a newer version string.
        for key in ["ip4", "ip6"] {
            if let Some(legacy) = obj.get(key).filter(|v| !v.is_null()) {
                ips.push(
                    parse_legacy_ip(legacy)
                        .map_err(|e| CniError::Invalid(format!("{key}: {e}")))?,
                );
            }
        }

        Ok(Self {
            cni_version,
            ips,
            interfaces,
            raw,
        })
    }

    /// The pod's addresses, without prefix: those on a container-side
    /// interface first, IPv4 before IPv6 within each group, each once.
    pub fn pod_ips(&self) -> Vec<IpAddr> {
        let mut ranked: Vec<(bool, bool, IpAddr)> = self
            .ips
            .iter()
            .map(|ip| {
                let in_sandbox = ip
                    .interface
                    .and_then(|i| self.interfaces.get(i))
                    .is_some_and(|iface| iface.sandbox.is_some());
                (!in_sandbox, ip.address.is_ipv6(), ip.address)
            })
            .collect();
        // Stable sort: plugins list the primary address first, keep that.
        ranked.sort_by_key(|&(host_side, v6, _)| (host_side, v6));
        let mut out: Vec<IpAddr> = Vec::with_capacity(ranked.len());
        for (_, _, addr) in ranked {
            if !out.contains(&addr) {
                out.push(addr);
            }
        }
        out
    }
}

fn invalid_at(field: &str, index: usize, msg: &str) -> CniError {
    CniError::Invalid(format!("{field}[{index}]: {msg}"))
}

fn array_field<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<&'a [Value], CniError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(CniError::Invalid(format!(
            "result field {key} is not an array"
        ))),
    }
}

fn parse_interface(v: &Value) -> Result<Interface, String> {
    let obj = v.as_object().ok_or("not an object")?;
    let text = |key: &str| {
        obj.get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    Ok(Interface {
        name: text("name").ok_or("missing name")?,
        mac: text("mac"),
        sandbox: text("sandbox"),
    })
}

fn parse_ip(v: &Value) -> Result<IpConfig, String> {
    let obj = v.as_object().ok_or("not an object")?;
    let address = obj
        .get("address")
        .and_then(Value::as_str)
        .ok_or("missing address")?;
    let (address, prefix_len) = parse_cidr(address)?;
    let interface = match obj.get("interface") {
        None | Some(Value::Null) => None,
        Some(n) => Some(
            n.as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or("interface is not an index")?,
        ),
    };
    Ok(IpConfig {
        address,
        prefix_len,
        gateway: parse_gateway(obj)?,
        interface,
    })
}

fn parse_legacy_ip(v: &Value) -> Result<IpConfig, String> {
    let obj = v.as_object().ok_or("not an object")?;
    let ip = obj.get("ip").and_then(Value::as_str).ok_or("missing ip")?;
    let (address, prefix_len) = parse_cidr(ip)?;
    Ok(IpConfig {
        address,
        prefix_len,
        gateway: parse_gateway(obj)?,
        interface: None,
    })
}

fn parse_gateway(obj: &Map<String, Value>) -> Result<Option<IpAddr>, String> {
    match obj.get("gateway").and_then(Value::as_str) {
        None | Some("") => Ok(None),
        Some(gw) => gw
            .parse()
            .map(Some)
            .map_err(|_| format!("invalid gateway {gw:?}")),
    }
}

/// Splits `10.1.0.5/16` into address and prefix length.
pub(super) fn parse_cidr(s: &str) -> Result<(IpAddr, u8), String> {
    let (addr, prefix) = s
        .split_once('/')
        .ok_or_else(|| format!("address {s:?} has no prefix length"))?;
    let addr: IpAddr = addr.parse().map_err(|_| format!("invalid address {s:?}"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix: u8 = prefix
        .parse()
        .ok()
        .filter(|p| *p <= max)
        .ok_or_else(|| format!("invalid prefix length in {s:?}"))?;
    Ok((addr, prefix))
}

/// Rewrites a raw result into spec version `target` (0.3.0 or later), so a
/// plugin gets `prevResult` in the version of its own config, as libcni does.
/// Results already in `target`, or targets before 0.3.0 (which have no
/// `prevResult`), are returned unchanged.
pub(super) fn convert(raw: &Value, target: &str) -> Value {
    let Some(obj) = raw.as_object() else {
        return raw.clone();
    };
    let from = obj
        .get("cniVersion")
        .and_then(Value::as_str)
        .unwrap_or("0.1.0");
    let (Some(from_v), Some(target_v)) = (parse_version(from), parse_version(target)) else {
        return raw.clone();
    };
    if from == target || target_v < (0, 3, 0) {
        return raw.clone();
    }
    // 1.0.0 dropped the per-address "version" field that 0.3.x/0.4.0 require.
    let with_family = target_v < (1, 0, 0);
    let mut out = if from_v < (0, 3, 0) {
        from_legacy(obj, with_family)
    } else {
        let mut out = obj.clone();
        if let Some(Value::Array(ips)) = out.get_mut("ips") {
            for ip in ips.iter_mut().filter_map(Value::as_object_mut) {
                set_family(ip, with_family);
            }
        }
        out
    };
    out.insert("cniVersion".into(), Value::String(target.to_owned()));
    Value::Object(out)
}

fn from_legacy(obj: &Map<String, Value>, with_family: bool) -> Map<String, Value> {
    let mut ips = Vec::new();
    let mut routes = Vec::new();
    for key in ["ip4", "ip6"] {
        let Some(legacy) = obj.get(key).and_then(Value::as_object) else {
            continue;
        };
        let mut ip = Map::new();
        if let Some(addr) = legacy.get("ip") {
            ip.insert("address".into(), addr.clone());
        }
        if let Some(gw) = legacy.get("gateway") {
            ip.insert("gateway".into(), gw.clone());
        }
        set_family(&mut ip, with_family);
        ips.push(Value::Object(ip));
        if let Some(Value::Array(r)) = legacy.get("routes") {
            routes.extend(r.iter().cloned());
        }
    }
    let mut out = Map::new();
    if !ips.is_empty() {
        out.insert("ips".into(), Value::Array(ips));
    }
    if !routes.is_empty() {
        out.insert("routes".into(), Value::Array(routes));
    }
    if let Some(dns) = obj.get("dns") {
        out.insert("dns".into(), dns.clone());
    }
    out
}

fn set_family(ip: &mut Map<String, Value>, with_family: bool) {
    if !with_family {
        ip.remove("version");
        return;
    }
    if ip.contains_key("version") {
        return;
    }
    let family = ip
        .get("address")
        .and_then(Value::as_str)
        .and_then(|a| parse_cidr(a).ok())
        .map(|(addr, _)| if addr.is_ipv4() { "4" } else { "6" });
    if let Some(family) = family {
        ip.insert("version".into(), Value::String(family.into()));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn pod_ips_v1_dual_stack_prefers_sandbox_and_ipv4() {
        let r = CniResult::from_value(json!({
            "cniVersion": "1.0.0",
            "interfaces": [
                {"name": "cni0", "mac": "aa:aa:aa:aa:aa:aa"},
                {"name": "veth1", "mac": "bb:bb:bb:bb:bb:bb"},
                {"name": "eth0", "mac": "cc:cc:cc:cc:cc:cc", "sandbox": "/proc/42/ns/net"}
            ],
            "ips": [
                {"address": "fd00::1/64", "interface": 0},
                {"address": "fd00::5/64", "gateway": "fd00::1", "interface": 2},
                {"address": "10.1.0.1/16", "interface": 0},
                {"address": "10.1.0.5/16", "gateway": "10.1.0.1", "interface": 2},
                {"address": "10.1.0.5/16", "interface": 2}
            ],
            "routes": [{"dst": "0.0.0.0/0"}],
            "dns": {}
        }))
        .unwrap();
        assert_eq!(r.cni_version, "1.0.0");
        assert_eq!(r.interfaces.len(), 3);
        assert_eq!(r.interfaces[2].sandbox.as_deref(), Some("/proc/42/ns/net"));
        assert_eq!(r.ips[1].gateway, Some("fd00::1".parse().unwrap()));
        assert_eq!(r.ips[1].prefix_len, 64);
        assert_eq!(
            r.pod_ips(),
            ips(&["10.1.0.5", "fd00::5", "10.1.0.1", "fd00::1"])
        );
    }

    #[test]
    fn pod_ips_without_interface_indexes_keeps_order_v4_first() {
        let r = CniResult::from_slice(
            br#"{"cniVersion":"0.4.0","ips":[{"version":"6","address":"2001:db8::2/64"},{"version":"4","address":"192.168.1.2/24"}]}"#,
        )
        .unwrap();
        assert_eq!(r.pod_ips(), ips(&["192.168.1.2", "2001:db8::2"]));
    }

    #[test]
    fn pod_ips_legacy_0_2_0() {
        let r = CniResult::from_value(json!({
            "cniVersion": "0.2.0",
            "ip6": {"ip": "fd00:10::7/64", "gateway": "fd00:10::1"},
            "ip4": {"ip": "10.22.0.7/16", "gateway": "10.22.0.1", "routes": [{"dst": "0.0.0.0/0"}]},
            "dns": {}
        }))
        .unwrap();
        assert_eq!(r.pod_ips(), ips(&["10.22.0.7", "fd00:10::7"]));
        assert!(r.interfaces.is_empty());
        assert_eq!(r.ips[0].gateway, Some("10.22.0.1".parse().unwrap()));
    }

    #[test]
    fn missing_version_means_0_1_0_and_bad_results_are_invalid() {
        let r = CniResult::from_value(json!({"ip4": {"ip": "10.0.0.2/8"}})).unwrap();
        assert_eq!(r.cni_version, "0.1.0");
        for bad in [
            json!([]),
            json!({"ips": [{"address": "10.0.0.2"}]}),
            json!({"ips": [{"address": "10.0.0.2/33"}]}),
            json!({"ips": [{"address": "10.0.0.2/8", "interface": -1}]}),
            json!({"ips": {}}),
            json!({"interfaces": [{"mac": "x"}]}),
        ] {
            assert!(
                matches!(
                    CniResult::from_value(bad.clone()),
                    Err(CniError::Invalid(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn convert_between_versions() {
        let v1 = json!({"cniVersion": "1.0.0", "ips": [{"address": "10.1.0.5/16"}, {"address": "fd00::5/64"}]});
        let v04 = convert(&v1, "0.4.0");
        assert_eq!(
            v04,
            json!({"cniVersion": "0.4.0", "ips": [
                {"address": "10.1.0.5/16", "version": "4"},
                {"address": "fd00::5/64", "version": "6"}
            ]})
        );
        assert_eq!(convert(&v04, "1.0.0"), v1);
        assert_eq!(convert(&v1, "1.0.0"), v1);

        let legacy = json!({"cniVersion": "0.2.0",
            "ip4": {"ip": "10.22.0.7/16", "gateway": "10.22.0.1", "routes": [{"dst": "0.0.0.0/0"}]},
            "dns": {"nameservers": ["10.22.0.1"]}});
        assert_eq!(
            convert(&legacy, "1.0.0"),
            json!({"cniVersion": "1.0.0",
                "ips": [{"address": "10.22.0.7/16", "gateway": "10.22.0.1"}],
                "routes": [{"dst": "0.0.0.0/0"}],
                "dns": {"nameservers": ["10.22.0.1"]}})
        );
        // No prevResult exists before 0.3.0, so nothing is converted down.
        assert_eq!(convert(&v1, "0.2.0"), v1);
    }
}

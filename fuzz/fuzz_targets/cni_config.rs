//! CNI network configuration files (`.conf`, `.conflist`, `.json`) from the
//! node's config directory, written by whatever installed the network.
//!
//! Checks: no panic; `from_bytes` agrees with the list or single-plugin
//! parser its `plugins` key selects; a single plugin config wrapped into a
//! list parses again, as a list, to the same network.

#![no_main]

use std::path::Path;

use dockershim::network::cni::NetworkConfigList;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let source = Path::new("fuzz.conf");
    let any = NetworkConfigList::from_bytes(data, source);
    let list = NetworkConfigList::from_list_bytes(data, source);
    let conf = NetworkConfigList::from_conf_bytes(data, source);

    let is_list = serde_json::from_slice::<Value>(data)
        .ok()
        .and_then(|v| v.as_object().map(|o| o.contains_key("plugins")))
        .unwrap_or(false);
    let chosen = if is_list { &list } else { &conf };
    assert_eq!(any.as_ref().ok(), chosen.as_ref().ok());

    if let Ok(conf) = conf {
        let relisted = NetworkConfigList::from_list_bytes(&conf.bytes, source)
            .expect("a wrapped plugin config parses as a list");
        assert_eq!(relisted.name, conf.name);
        assert_eq!(relisted.cni_version, conf.cni_version);
        assert_eq!(relisted.plugins, conf.plugins);
    }
});

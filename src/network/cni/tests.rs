//! Tests of whole operations against shell-script fake plugins that record
//! their environment and stdin, plus one smoke test of the real plugins when
//! the machine has them.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use super::cache::tests::GO_CACHE_SAMPLE;
use super::*;

/// A private set of dirs: config, two bin dirs, cache, and a log dir the
/// fake plugins write to.
struct Fixture {
    _tmp: tempfile::TempDir,
    settings: CniSettings,
    log: PathBuf,
    netns: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let settings = CniSettings {
            conf_dir: root.join("net.d"),
            bin_dirs: vec![root.join("bin1"), root.join("bin2")],
            cache_dir: root.join("cache"),
            plugin_timeout: Duration::from_secs(20),
        };
        let log = root.join("log");
        for d in [
            &settings.conf_dir,
            &settings.bin_dirs[0],
            &settings.bin_dirs[1],
            &log,
        ] {
            fs::create_dir_all(d).unwrap();
        }
        // Fakes never enter it; it only has to be a path that exists.
        let netns = root.join("netns");
        fs::write(&netns, "").unwrap();
        Self {
            _tmp: tmp,
            settings,
            log,
            netns,
        }
    }

    fn cni(&self) -> Cni {
        Cni::new(self.settings.clone())
    }

    /// Installs a plugin that records its stdin and environment, logs the
    /// call, prints `<log>/<name>.result` on ADD, then runs `tail`.
    fn plugin(&self, name: &str, tail: &str) {
        let log = self.log.display();
        let script = format!(
            r#"#!/bin/sh
log='{log}'
cat > "$log/{name}.$CNI_COMMAND.stdin"
{{
  echo "CNI_COMMAND=$CNI_COMMAND"
  echo "CNI_CONTAINERID=$CNI_CONTAINERID"
  echo "CNI_NETNS=${{CNI_NETNS-<unset>}}"
  echo "CNI_IFNAME=$CNI_IFNAME"
  echo "CNI_ARGS=$CNI_ARGS"
  echo "CNI_PATH=$CNI_PATH"
  echo "PATH=$PATH"
}} > "$log/{name}.$CNI_COMMAND.env"
echo "{name} $CNI_COMMAND" >> "$log/calls"
if [ "$CNI_COMMAND" = ADD ] && [ -f "$log/{name}.result" ]; then cat "$log/{name}.result"; fi
{tail}
"#
        );
        // The second bin dir, so the search must go past the first.
        let path = self.settings.bin_dirs[1].join(name);
        fs::write(&path, script).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn result(&self, name: &str, result: &Value) {
        fs::write(self.log.join(format!("{name}.result")), result.to_string()).unwrap();
    }

    fn calls(&self) -> Vec<String> {
        fs::read_to_string(self.log.join("calls"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn clear_calls(&self) {
        let _ = fs::remove_file(self.log.join("calls"));
    }

    fn stdin(&self, name: &str, command: &str) -> Value {
        let path = self.log.join(format!("{name}.{command}.stdin"));
        serde_json::from_slice(&fs::read(&path).unwrap()).unwrap()
    }

    fn env(&self, name: &str, command: &str) -> BTreeMap<String, String> {
        fs::read_to_string(self.log.join(format!("{name}.{command}.env")))
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    fn runtime_conf(&self, container_id: &str) -> RuntimeConf {
        RuntimeConf {
            container_id: container_id.into(),
            netns: Some(self.netns.clone()),
            ifname: "eth0".into(),
            args: vec![
                ("IgnoreUnknown".into(), "1".into()),
                ("K8S_POD_NAMESPACE".into(), "default".into()),
                ("K8S_POD_NAME".into(), "web-0".into()),
            ],
            capability_args: json!({
                "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": ""}],
                "bandwidth": {"ingressRate": 1000, "ingressBurst": 2147483647},
            })
            .as_object()
            .unwrap()
            .clone(),
        }
    }

    fn cache_file(&self, net: &str, cid: &str, ifname: &str) -> PathBuf {
        self.settings
            .cache_dir
            .join("results")
            .join(format!("{net}-{cid}-{ifname}"))
    }
}

fn list(version: &str) -> NetworkConfigList {
    let text = json!({
        "cniVersion": version,
        "name": "testnet",
        "plugins": [
            {"type": "fake-a", "mtu": 1400,
             "capabilities": {"portMappings": true, "bandwidth": false}},
            {"type": "fake-b", "capabilities": {"bandwidth": true}}
        ]
    })
    .to_string();
    NetworkConfigList::from_list_bytes(text.as_bytes(), Path::new("test")).unwrap()
}

fn result_a() -> Value {
    // No cniVersion: the client must fill in the config's.
    json!({"interfaces": [{"name": "eth0", "sandbox": "/x"}],
           "ips": [{"address": "10.1.0.5/16", "interface": 0}]})
}

fn result_b(version: &str) -> Value {
    json!({"cniVersion": version,
           "interfaces": [{"name": "veth1"}, {"name": "eth0", "sandbox": "/x"}],
           "ips": [{"address": "fd00::5/64", "interface": 1}, {"address": "10.1.0.5/16", "interface": 1}]})
}

fn setup_ab(f: &Fixture, version: &str) {
    f.plugin("fake-a", "");
    f.plugin("fake-b", "");
    f.result("fake-a", &result_a());
    f.result("fake-b", &result_b(version));
}

#[tokio::test]
async fn add_runs_in_order_with_env_derived_config_and_chaining() {
    let f = Fixture::new();
    setup_ab(&f, "1.0.0");
    let net = list("1.0.0");
    let shim = f.runtime_conf("c0ffee");
    let result = f.cni().add(&net, &shim).await.unwrap();

    assert_eq!(f.calls(), ["fake-a ADD", "fake-b ADD"]);
    let path = format!(
        "{}:{}",
        f.settings.bin_dirs[0].display(),
        f.settings.bin_dirs[1].display()
    );
    let env = f.env("fake-a", "ADD");
    let expect = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "c0ffee"),
        ("CNI_NETNS", f.netns.to_str().unwrap()),
        ("CNI_IFNAME", "eth0"),
        (
            "CNI_ARGS",
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0",
        ),
        ("CNI_PATH", path.as_str()),
    ];
    for (k, v) in expect {
        assert_eq!(env[k], v, "{k}");
    }
    // The rest of the environment is inherited.
    assert_eq!(env["PATH"], std::env::var("PATH").unwrap_or_default());

    assert_eq!(
        f.stdin("fake-a", "ADD"),
        json!({"type": "fake-a", "mtu": 1400, "cniVersion": "1.0.0", "name": "testnet",
               "runtimeConfig": {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": ""}]}})
    );
    let mut chained = result_a();
    chained["cniVersion"] = json!("1.0.0");
    assert_eq!(
        f.stdin("fake-b", "ADD"),
        json!({"type": "fake-b", "cniVersion": "1.0.0", "name": "testnet",
               "runtimeConfig": {"bandwidth": {"ingressRate": 1000, "ingressBurst": 2147483647}},
               "prevResult": chained})
    );

    assert_eq!(result.raw, result_b("1.0.0"));
    let ips: Vec<std::net::IpAddr> = vec!["10.1.0.5".parse().unwrap(), "fd00::5".parse().unwrap()];
    assert_eq!(result.pod_ips(), ips);

    // Cached in libcni's form.
    let file: Value =
        serde_json::from_slice(&fs::read(f.cache_file("testnet", "c0ffee", "eth0")).unwrap())
            .unwrap();
    assert_eq!(file["kind"], "cniCacheV1");
    assert_eq!(file["containerId"], "c0ffee");
    assert_eq!(file["networkName"], "testnet");
    assert_eq!(file["ifName"], "eth0");
    assert_eq!(file["netns"], f.netns.to_str().unwrap());
    assert_eq!(file["cniArgs"][2], json!(["K8S_POD_NAME", "web-0"]));
    assert_eq!(
        file["capabilityArgs"],
        Value::Object(shim.capability_args.clone())
    );
    assert_eq!(file["result"], result_b("1.0.0"));
    let cached = f
        .cni()
        .cached("testnet", "c0ffee", "eth0")
        .unwrap()
        .unwrap();
    assert_eq!(cached.config, net.bytes);
    assert_eq!(cached.result.as_ref(), Some(&result));
    assert_eq!(
        f.cni().cached_for_container("c0ffee").unwrap(),
        vec![cached]
    );
    assert!(f.cni().cached_for_container("c0ffe").unwrap().is_empty());
}

#[tokio::test]
async fn del_runs_in_reverse_with_cached_result_and_drops_cache() {
    let f = Fixture::new();
    setup_ab(&f, "1.0.0");
    let net = list("1.0.0");
    let cni = f.cni();
    let mut shim = f.runtime_conf("pod1");
    cni.add(&net, &shim).await.unwrap();
    f.clear_calls();

    // A stopped sandbox has no netns any more.
    shim.netns = None;
    cni.del(&net, &shim).await.unwrap();
    assert_eq!(f.calls(), ["fake-b DEL", "fake-a DEL"]);
    let env = f.env("fake-a", "DEL");
    assert_eq!(env["CNI_COMMAND"], "DEL");
    assert_eq!(env["CNI_NETNS"], "", "set but empty");
    let stdin = f.stdin("fake-a", "DEL");
    assert_eq!(stdin["prevResult"], result_b("1.0.0"));
    assert_eq!(stdin["runtimeConfig"]["portMappings"][0]["hostPort"], 8080);
    assert!(stdin.get("capabilities").is_none());
    assert!(!f.cache_file("testnet", "pod1", "eth0").exists());

    // Again: nothing cached, no prevResult, still fine.
    f.clear_calls();
    cni.del(&net, &shim).await.unwrap();
    assert_eq!(f.calls(), ["fake-b DEL", "fake-a DEL"]);
    assert!(f.stdin("fake-b", "DEL").get("prevResult").is_none());
}

#[tokio::test]
async fn older_versions_limit_chaining_and_cached_prev_result() {
    let f = Fixture::new();
    setup_ab(&f, "0.3.1");
    let cni = f.cni();
    let shim = f.runtime_conf("pod2");

    // 0.3.x chains ADD results, but DEL gets no prevResult before 0.4.0.
    let net = list("0.3.1");
    cni.add(&net, &shim).await.unwrap();
    assert!(f.stdin("fake-b", "ADD").get("prevResult").is_some());
    cni.del(&net, &shim).await.unwrap();
    assert!(f.stdin("fake-a", "DEL").get("prevResult").is_none());
    assert!(!f.cache_file("testnet", "pod2", "eth0").exists());

    // 0.2.0 has no chaining at all.
    f.result(
        "fake-b",
        &json!({"cniVersion": "0.2.0", "ip4": {"ip": "10.9.0.2/24"}}),
    );
    let net = list("0.2.0");
    let result = cni.add(&net, &shim).await.unwrap();
    assert!(f.stdin("fake-b", "ADD").get("prevResult").is_none());
    assert_eq!(
        result.pod_ips(),
        vec!["10.9.0.2".parse::<std::net::IpAddr>().unwrap()]
    );
}

#[tokio::test]
async fn del_cached_uses_a_go_libcni_cache_entry_alone() {
    let f = Fixture::new();
    f.plugin("bridge", "");
    f.plugin("portmap", "");
    let cid = "4f1c2b3a9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a";
    let path = f.cache_file("k8s-pod-network", cid, "eth0");
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, GO_CACHE_SAMPLE).unwrap();
    // The config that made the attachment is gone.
    assert!(matches!(
        load_network(&f.settings),
        Err(CniError::NoConfig(_))
    ));

    let cni = f.cni();
    let found = cni.cached_for_container(cid).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].network_name, "k8s-pod-network");

    assert!(
        cni.del_cached("k8s-pod-network", cid, "eth0", None)
            .await
            .unwrap()
    );
    assert_eq!(f.calls(), ["portmap DEL", "bridge DEL"]);
    let env = f.env("portmap", "DEL");
    assert_eq!(env["CNI_CONTAINERID"], cid);
    assert_eq!(env["CNI_NETNS"], "");
    assert_eq!(env["CNI_IFNAME"], "eth0");
    assert_eq!(
        env["CNI_ARGS"],
        format!(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID={cid}"
        )
    );
    let go: Value = serde_json::from_str(GO_CACHE_SAMPLE).unwrap();
    assert_eq!(
        f.stdin("portmap", "DEL"),
        json!({"type": "portmap", "cniVersion": "0.4.0", "name": "k8s-pod-network",
               "runtimeConfig": {"portMappings": go["capabilityArgs"]["portMappings"]},
               "prevResult": go["result"]})
    );
    let bridge = f.stdin("bridge", "DEL");
    assert_eq!(bridge["ipam"]["ranges"][0][0]["subnet"], "10.244.0.0/24");
    assert_eq!(bridge["prevResult"], go["result"]);
    assert!(bridge.get("runtimeConfig").is_none());

    assert!(!path.exists());
    assert!(
        !cni.del_cached("k8s-pod-network", cid, "eth0", None)
            .await
            .unwrap()
    );
    assert_eq!(f.calls().len(), 2);

    // With the live netns supplied by the caller.
    fs::write(&path, GO_CACHE_SAMPLE).unwrap();
    assert!(
        cni.del_cached("k8s-pod-network", cid, "eth0", Some(&f.netns))
            .await
            .unwrap()
    );
    assert_eq!(
        f.env("bridge", "DEL")["CNI_NETNS"],
        f.netns.to_str().unwrap()
    );
    assert!(!path.exists());
}

#[tokio::test]
async fn cancelled_lock_wait_leaves_no_lock_entry() {
    let f = Fixture::new();
    let cni = f.cni();
    let held = cni.lock_container("busy").await;
    let waited = tokio::time::timeout(Duration::from_millis(20), cni.lock_container("busy")).await;
    assert!(waited.is_err());
    drop(held);
    assert!(cni.locks.lock().unwrap().is_empty());
}

#[tokio::test]
async fn check_uses_cached_result_and_respects_version_and_disable_check() {
    let f = Fixture::new();
    setup_ab(&f, "1.0.0");
    let cni = f.cni();
    let shim = f.runtime_conf("pod3");
    let net = list("1.0.0");
    cni.add(&net, &shim).await.unwrap();
    f.clear_calls();

    cni.check(&net, &shim).await.unwrap();
    assert_eq!(f.calls(), ["fake-a CHECK", "fake-b CHECK"]);
    assert_eq!(f.stdin("fake-a", "CHECK")["prevResult"], result_b("1.0.0"));

    f.clear_calls();
    let mut disabled = net.clone();
    disabled.disable_check = true;
    cni.check(&disabled, &shim).await.unwrap();
    cni.check(&list("0.3.1"), &shim).await.unwrap();
    assert!(f.calls().is_empty());
}

#[tokio::test]
async fn plugin_error_stops_add_and_caches_nothing() {
    let f = Fixture::new();
    f.plugin("fake-a", "");
    f.result("fake-a", &result_a());
    f.plugin(
        "fake-b",
        r#"echo '{"cniVersion":"1.0.0","code":11,"msg":"try again later","details":"ipam busy"}'; exit 1"#,
    );
    let err = f
        .cni()
        .add(&list("1.0.0"), &f.runtime_conf("pod4"))
        .await
        .unwrap_err();
    match &err {
        CniError::Plugin {
            plugin,
            command,
            code,
            msg,
            details,
        } => {
            assert_eq!(
                (plugin.as_str(), command.as_str(), *code),
                ("fake-b", "ADD", 11)
            );
            assert_eq!(
                (msg.as_str(), details.as_str()),
                ("try again later", "ipam busy")
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "cni plugin fake-b failed (ADD): try again later (code 11: ipam busy)"
    );
    assert!(!f.cache_file("testnet", "pod4", "eth0").exists());
}

#[tokio::test]
async fn bad_add_output_is_invalid() {
    let f = Fixture::new();
    f.plugin("fake-a", "echo '[1]'");
    f.plugin("fake-b", "");
    let err = f
        .cni()
        .add(&list("1.0.0"), &f.runtime_conf("pod5"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CniError::Invalid(m) if m.contains("fake-a") && m.contains("not a JSON object")),
        "{err:?}"
    );
    // fake-b prints nothing at all.
    f.plugin("fake-a", "");
    f.result("fake-a", &result_a());
    let err = f
        .cni()
        .add(&list("1.0.0"), &f.runtime_conf("pod5"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CniError::Invalid(m) if m.contains("printed no ADD result")),
        "{err:?}"
    );
}

#[tokio::test]
async fn invalid_runtime_conf_is_rejected_before_running_plugins() {
    let f = Fixture::new();
    setup_ab(&f, "1.0.0");
    let cni = f.cni();
    let net = list("1.0.0");
    let good = f.runtime_conf("abc");
    let mut bad = Vec::new();
    for id in ["", "-abc", "_abc", "a/b", "a b", "a:b", "../x"] {
        bad.push(RuntimeConf {
            container_id: id.into(),
            ..good.clone()
        });
    }
    for ifname in [
        "",
        ".",
        "..",
        "eth/0",
        "eth 0",
        "eth:0",
        "abcdefghijklmnop",
        "eth\t",
    ] {
        bad.push(RuntimeConf {
            ifname: ifname.into(),
            ..good.clone()
        });
    }
    bad.push(RuntimeConf {
        netns: None,
        ..good.clone()
    });
    bad.push(RuntimeConf {
        args: vec![("K=X".into(), "v".into())],
        ..good.clone()
    });
    bad.push(RuntimeConf {
        args: vec![("K".into(), "a;b".into())],
        ..good.clone()
    });
    for shim in &bad {
        let err = cni.add(&net, shim).await.unwrap_err();
        assert!(matches!(err, CniError::Invalid(_)), "{shim:?}: {err:?}");
    }
    // Fifteen bytes and the allowed punctuation are fine.
    let ok = RuntimeConf {
        container_id: "A1_b.c-d".into(),
        ifname: "abcdefghijklmno".into(),
        ..good
    };
    cni.add(&net, &ok).await.unwrap();
    assert_eq!(f.calls().len(), 2);
    assert!(matches!(
        cni.cached("a/b", "abc", "eth0"),
        Err(CniError::Invalid(_))
    ));
    assert!(matches!(
        cni.cached_for_container("../x"),
        Err(CniError::Invalid(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_on_one_container_never_overlap() {
    let f = Fixture::new();
    let log = f.log.display().to_string();
    // mkdir is atomic: a second concurrent run would find the marker.
    let busy = format!(
        "mkdir '{log}/busy' 2>/dev/null || echo overlap >> '{log}/overlap'; sleep 0.2; rmdir '{log}/busy'"
    );
    f.plugin("fake-a", &busy);
    f.plugin("fake-b", "");
    f.result("fake-a", &result_a());
    f.result("fake-b", &result_b("1.0.0"));
    let cni = f.cni();
    let net = list("1.0.0");
    let shim = f.runtime_conf("same");
    let (a, b, c) = tokio::join!(
        cni.add(&net, &shim),
        cni.del(&net, &shim),
        cni.add(&net, &shim)
    );
    a.unwrap();
    b.unwrap();
    c.unwrap();
    assert!(!f.log.join("overlap").exists());
    assert_eq!(f.calls().len(), 6);
    // The lock table does not keep entries for idle containers.
    assert!(cni.locks.lock().unwrap().is_empty());
}

#[tokio::test]
async fn real_plugins_if_installed() {
    let dir = Path::new("/usr/lib/cni");
    if !dir.join("loopback").is_file() {
        eprintln!("skipping: no {}/loopback", dir.display());
        return;
    }
    let f = Fixture::new();
    let settings = CniSettings {
        bin_dirs: vec![dir.to_path_buf()],
        ..f.settings.clone()
    };
    fs::write(
        settings.conf_dir.join("10-bridge.conflist"),
        r#"{"cniVersion":"1.0.0","name":"real","plugins":[
            {"type":"bridge","bridge":"cni-test0","ipam":{"type":"host-local","subnet":"10.250.0.0/24"}},
            {"type":"portmap","capabilities":{"portMappings":true}}]}"#,
    )
    .unwrap();
    let net = load_network(&settings).unwrap();
    assert_eq!(net.name, "real");

    let cni = Cni::new(settings);
    // With no netns, loopback's DEL has nothing to do: no privileges or
    // namespaces needed.
    let shim = RuntimeConf {
        container_id: "realtest".into(),
        ifname: "lo".into(),
        ..RuntimeConf::default()
    };
    cni.del(&loopback_network(), &shim).await.unwrap();
}

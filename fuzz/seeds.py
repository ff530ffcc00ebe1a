#!/usr/bin/env python3
"""Writes the seed corpus, fuzz/corpus/<target>/, from the examples below.

The seeds are real protocol samples in their wire form: SPDY/3.1 frames
with header blocks compressed as a spdystream client does (one zlib stream
per direction, SPDY's preset dictionary, a sync flush per block), the
channel messages kubectl and the kubelet send, Docker's multiplexed
output, CRI log lines as containerd, conmon and the shim write them, CNI
results and configs in the reference plugins' formats, libcni cache files
and image references. Rerun after changing an example:
python3 fuzz/seeds.py (it replaces the corpus directories).
"""

import base64
import json
import re
import shutil
import struct
import zlib
from pathlib import Path

FUZZ = Path(__file__).resolve().parent
REPO = FUZZ.parent


def spdy_dictionary():
    """SPDY/3's preset dictionary, built from the word list in compress.rs."""
    src = (REPO / "src/streaming/spdy/frame/compress.rs").read_text()
    words = re.search(r"DICTIONARY_WORDS: &\[&str\] = &\[(.*?)\];", src, re.S).group(1)
    tail = re.search(r"DICTIONARY_TAIL: &str = concat!\((.*?)\);", src, re.S).group(1)
    out = b""
    for w in re.findall(r'"((?:[^"\\]|\\.)*)"', words):
        out += struct.pack(">I", len(w)) + w.encode()
    for t in re.findall(r'"((?:[^"\\]|\\.)*)"', tail):
        out += t.encode()
    assert len(out) == 1423, len(out)
    return out


class Spdy:
    """One direction of a SPDY/3.1 connection: frames with a shared zlib context."""

    def __init__(self):
        self.z = zlib.compressobj(9, zlib.DEFLATED, 15, 9, zlib.Z_DEFAULT_STRATEGY, spdy_dictionary())

    def headers(self, pairs):
        plain = struct.pack(">I", len(pairs))
        for name, value in pairs:
            plain += struct.pack(">I", len(name)) + name.encode()
            plain += struct.pack(">I", len(value)) + value.encode()
        return self.z.compress(plain) + self.z.flush(zlib.Z_SYNC_FLUSH)

    @staticmethod
    def control(kind, flags, body):
        return struct.pack(">HHB", 0x8003, kind, flags) + len(body).to_bytes(3, "big") + body

    def syn_stream(self, sid, pairs, fin=False):
        body = struct.pack(">IIBB", sid, 0, 0, 0) + self.headers(pairs)
        return self.control(1, 1 if fin else 0, body)

    def syn_reply(self, sid, pairs):
        return self.control(2, 0, struct.pack(">I", sid) + self.headers(pairs))

    @staticmethod
    def data(sid, payload, fin=False):
        return struct.pack(">IB", sid, 1 if fin else 0) + len(payload).to_bytes(3, "big") + payload


def spdy_seeds():
    seeds = {}
    c = Spdy()
    # kubectl exec -i -t (v4.channel.k8s.io): error, stdin, stdout, resize.
    exec_session = (
        c.syn_stream(1, [("streamtype", "error")])
        + c.syn_stream(3, [("streamtype", "stdin")])
        + c.syn_stream(5, [("streamtype", "stdout")])
        + c.syn_stream(7, [("streamtype", "resize")])
        + Spdy.data(7, b'{"Width":80,"Height":24}')
        + Spdy.data(3, b"ls -l\n")
        + Spdy.data(3, b"", fin=True)
    )
    seeds["exec_session"] = exec_session
    c = Spdy()
    # kubectl port-forward: an error and a data stream per connection.
    seeds["port_forward"] = (
        c.syn_stream(1, [("streamtype", "error"), ("port", "8080"), ("requestid", "0")])
        + c.syn_stream(3, [("streamtype", "data"), ("port", "8080"), ("requestid", "0")])
        + Spdy.data(3, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    )
    c = Spdy()
    seeds["syn_reply"] = c.syn_reply(1, [("status", "200"), ("version", "HTTP/1.1")])
    seeds["control_frames"] = (
        Spdy.control(4, 0, struct.pack(">III", 1, 7, 0x10000))  # SETTINGS initial window
        + Spdy.control(6, 0, struct.pack(">I", 1))  # PING
        + Spdy.control(9, 0, struct.pack(">II", 1, 0x8000))  # WINDOW_UPDATE
        + Spdy.control(3, 0, struct.pack(">II", 3, 5))  # RST_STREAM CANCEL
        + Spdy.control(7, 0, struct.pack(">II", 7, 0))  # GOAWAY OK
    )
    c = Spdy()
    seeds["headers_frame"] = c.syn_stream(1, [("streamtype", "stdout")]) + Spdy.control(
        8, 1, struct.pack(">I", 1) + c.headers([("x-done", "1")])
    )
    return seeds


def b64(data):
    return base64.b64encode(data).decode()


def ws_seeds():
    # Byte 0: bit 0 base64 protocol, bit 1 text message, bits 2.. the split
    # step for the resize decoder; then the message.
    resize = b'{"Width":80,"Height":24}'
    return {
        "stdin_binary": b"\x00" + b"\x00ls -l\n",
        "resize_binary": b"\x00" + b"\x04" + resize,
        "resize_twice_split": bytes([4 * 7]) + b"\x04" + resize + b'{"Width":120,"Height":40}',
        "close_stdin_v5": b"\x00" + b"\xff\x00",
        "stdin_base64": b"\x03" + ("0" + b64(b"ls -l\n")).encode(),
        "resize_base64": b"\x03" + ("4" + b64(resize)).encode(),
        "portforward_data": b"\x00" + b"\x00" + b"GET / HTTP/1.1\r\n\r\n",
        "portforward_base64": b"\x03" + ("0" + b64(b"\x90\x1f")).encode(),
    }


def docker_frame(kind, payload):
    return bytes([kind, 0, 0, 0]) + struct.pack(">I", len(payload)) + payload


def docker_seeds():
    # Byte 0: the read size (1 + byte % 16); then the stream.
    return {
        "exec_output": b"\x03"
        + docker_frame(1, b"total 0\n")
        + docker_frame(2, b"ls: cannot access 'x': No such file or directory\n")
        + docker_frame(1, b"\x01\x02binary"),
        "stdin_echo": b"\x07" + docker_frame(0, b"echo hi\n") + docker_frame(1, b"hi\n"),
        "logs_with_timestamps": b"\x0f"
        + docker_frame(1, b"2026-11-26T21:35:40.292383669Z hello\n")
        + docker_frame(2, b"2026-11-26T21:35:41.000000001Z oops\n"),
        "empty_frame": b"\x00" + docker_frame(1, b""),
    }


LOG_LINES = {
    "shim_full": b"2026-11-26T21:35:40.292383669Z stdout F hello world\n",
    "containerd_trimmed": b"2026-11-26T21:35:40.29238Z stderr P partial line",
    "conmon_offset": b"2026-11-26T22:35:40.292383669+01:00 stdout F from conmon\n",
    "extra_tags": b"2026-11-26T21:35:40Z stdout F:x:y tagged\n",
    "empty_content": b"2026-11-26T21:35:40.000000000Z stderr F \n",
    "docker_timestamp": b"2026-11-26T21:35:40.292383669Z hello from docker\n",
    "leap_second": b"2016-12-31T23:59:60.5Z stdout F leap\n",
}


def tail_seeds():
    lines = [
        b"2026-11-26T21:35:40.292383669Z stdout F first\n",
        b"2026-11-26T21:35:41.000000000Z stderr P part of a long ",
        b"\n",
        b"2026-11-26T21:35:42.123456789Z stdout F last\n",
    ]
    return {
        "three_lines": b"".join(lines[:2]) + b"line\n" + lines[3],
        "torn_tail": lines[0] + lines[3] + b"2026-11-26T21:35:43.0Z stdout F torn",
        "garbage_after": lines[0] + b"\x00\x00\x00 not a log line\n" + b"\n",
        "single_line": lines[3],
        "no_newline": b"2026-11-26T21:35:40Z stdout F never finished",
    }


RESULTS = {
    # bridge + host-local, 1.0.0 (reference plugins v1.x).
    "bridge_1_0_0": {
        "cniVersion": "1.0.0",
        "interfaces": [
            {"name": "cni0", "mac": "6a:1f:0e:34:22:11"},
            {"name": "veth8d2c1e7a", "mac": "f2:5a:9c:11:3b:7e"},
            {"name": "eth0", "mac": "8e:41:d2:0a:77:19", "sandbox": "/var/run/netns/cni-1234"},
        ],
        "ips": [{"interface": 2, "address": "10.244.0.17/24", "gateway": "10.244.0.1"}],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dns": {},
    },
    # 0.4.0 with the per-address version field, dual stack.
    "dual_stack_0_4_0": {
        "cniVersion": "0.4.0",
        "interfaces": [{"name": "eth0", "mac": "8e:41:d2:0a:77:19", "sandbox": "/proc/42/ns/net"}],
        "ips": [
            {"version": "6", "interface": 0, "address": "fd00:10:244::11/64", "gateway": "fd00:10:244::1"},
            {"version": "4", "interface": 0, "address": "10.244.0.17/24", "gateway": "10.244.0.1"},
        ],
        "dns": {"nameservers": ["10.96.0.10"]},
    },
    # 0.2.0: ip4/ip6, no interfaces.
    "legacy_0_2_0": {
        "cniVersion": "0.2.0",
        "ip4": {"ip": "10.1.0.5/16", "gateway": "10.1.0.1", "routes": [{"dst": "0.0.0.0/0"}]},
        "ip6": {"ip": "2001:db8::5/64"},
        "dns": {},
    },
    "no_version": {"ip4": {"ip": "192.168.1.2/24"}},
}

CONFIGS = {
    "bridge_portmap_0_4_0.conflist": {
        "cniVersion": "0.4.0",
        "name": "k8s-pod-network",
        "plugins": [
            {
                "type": "bridge",
                "bridge": "cni0",
                "isGateway": True,
                "ipMasq": True,
                "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.0.0/24"}]], "routes": [{"dst": "0.0.0.0/0"}]},
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    },
    "bridge_1_0_0.conflist": {
        "cniVersion": "1.0.0",
        "name": "bridge",
        "disableCheck": "true",
        "plugins": [
            {"type": "bridge", "bridge": "cni0", "ipam": {"type": "host-local", "subnet": "10.22.0.0/16"}},
            {"type": "firewall"},
            {"type": "bandwidth", "capabilities": {"bandwidth": True}},
        ],
    },
    "versions_1_1_0.conflist": {
        "cniVersions": ["0.4.0", "1.0.0", "1.1.0", "9.9.9"],
        "name": "multi",
        "plugins": [{"type": "loopback"}],
    },
    "bridge_0_3_1.conf": {
        "cniVersion": "0.3.1",
        "name": "mynet",
        "type": "bridge",
        "bridge": "cni0",
        "ipam": {"type": "host-local", "subnet": "10.22.0.0/16"},
    },
}


def cache_seeds():
    cid = "4f1c2b3a9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a"
    conflist = json.dumps(CONFIGS["bridge_portmap_0_4_0.conflist"], indent=2).encode() + b"\n"
    go = {
        "kind": "cniCacheV1",
        "containerId": cid,
        "config": b64(conflist),
        "ifName": "eth0",
        "networkName": "k8s-pod-network",
        "netns": "/proc/4194304/ns/net",
        "cniArgs": [["IgnoreUnknown", "1"], ["K8S_POD_NAMESPACE", "default"], ["K8S_POD_NAME", "web-0"]],
        "capabilityArgs": {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": ""}]},
        "result": RESULTS["dual_stack_0_4_0"],
    }
    minimal = {
        "kind": "cniCacheV1",
        "containerId": cid,
        "config": None,
        "ifName": "eth0",
        "networkName": "cni-loopback",
    }
    return {
        "libcni_portmap": json.dumps(go, separators=(",", ":")).encode(),
        "minimal_null_config": json.dumps(minimal).encode(),
        "wrapped_config": json.dumps(dict(go, config=b64(conflist)[:40] + "\n" + b64(conflist)[40:], result=RESULTS["bridge_1_0_0"])).encode(),
    }


REFERENCES = {
    "short": "busybox",
    "tagged": "registry.k8s.io/pause:3.10",
    "normalised": "docker.io/library/busybox:latest",
    "digest": "localhost:5000/app@sha256:" + "ab" * 32,
    "tag_and_digest": "gcr.io/google-containers/busybox:1.27.2@sha256:" + "0f" * 32,
    "port_and_path": "127.0.0.1:5055/test/image:v1",
    "docker_repo_tag": "quay.io/coreos/etcd:v3.5.0",
}


def header_budget_seeds():
    """spdy_header_budget: three bytes of limits (budget / 16 - 4, longest
    value, read size), then frames; some blocks are only NUL separators."""
    seeds = {}
    for name, wire in spdy_seeds().items():
        seeds[name] = bytes([0x20, 0x40, 0x05]) + wire
    c = Spdy()
    nuls = "\0".join([""] * 200)
    seeds["nul_values"] = bytes([0x08, 0x10, 0x07]) + c.syn_stream(
        1, [("streamtype", "error"), ("port", "80"), ("requestid", "1" + nuls)]
    )
    c = Spdy()
    seeds["long_value"] = bytes([0xFF, 0x08, 0x01]) + c.syn_stream(
        1, [("streamtype", "data"), ("requestid", "x" * 40)]
    )
    return seeds


def tty_seeds():
    ts = b"2026-11-26T21:35:40.292383669Z "
    trimmed = b"2026-11-26T21:35:41.5Z "
    piece = b"x" * (16 * 1024)
    return {
        "lines": b"\x07" + ts + b"hello\n" + trimmed + b"world\r\n",
        "docker_cut": b"\x40" + ts + piece + trimmed + b"tail\n",
        "run_without_timestamp": b"\x01" + ts + piece + b"not a timestamp " + piece,
        "unterminated": b"\xff" + ts + b"no newline at the end",
        "garbage_line": b"\x03" + b"garbage without a stamp\n" + ts + b"after\n",
    }


def main():
    corpus = {
        "tty_log": tty_seeds(),
        "spdy_frame": spdy_seeds(),
        "spdy_header_budget": header_budget_seeds(),
        "ws_channel": ws_seeds(),
        "docker_stream": docker_seeds(),
        "cri_log": LOG_LINES,
        "cri_log_tail": tail_seeds(),
        "cni_result": {k: json.dumps(v).encode() for k, v in RESULTS.items()},
        "cni_cache": cache_seeds(),
        "cni_config": {k: json.dumps(v, indent=2).encode() for k, v in CONFIGS.items()},
        "image_reference": {k: v.encode() for k, v in REFERENCES.items()},
    }
    for target, seeds in corpus.items():
        d = FUZZ / "corpus" / target
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        for name, data in seeds.items():
            (d / name).write_bytes(data)
    print(sum(len(s) for s in corpus.values()), "seeds")


if __name__ == "__main__":
    main()

//! Network interface counters from `/proc/<pid>/net/dev`.
//!
//! That file shows the interfaces of the network namespace the process lives
//! in, so reading it for any process of a pod (the sandbox's pause process)
//! gives the pod's counters without entering the namespace. Its format:
//!
//! ```text
//! Inter-|   Receive                                                |  Transmit
//!  face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
//!     lo:   67972   28163    0    0    0     0          0         0    67972   28163    0    0    0     0       0          0
//!   eth0:232667494   8335    0    0    0     0          0         0   451019    5370    0    0    0     0       0          0
//! ```
//!
//! The name is right-aligned and may touch the first number, so lines are split
//! at the colon (interface names cannot contain one).

use std::io;

/// Counters of one interface.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterfaceCounters {
    /// Interface name (`eth0`, `lo`, ...).
    pub name: String,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Bytes transmitted.
    pub tx_bytes: u64,
    /// Transmit errors.
    pub tx_errors: u64,
    /// Packets received.
    pub rx_packets: u64,
    /// Packets transmitted.
    pub tx_packets: u64,
    /// Received packets dropped.
    pub rx_dropped: u64,
    /// Transmitted packets dropped.
    pub tx_dropped: u64,
}

/// Every interface (including `lo`; the caller filters) in the network
/// namespace of process `pid`.
pub fn net_dev_of_pid(pid: u32) -> io::Result<Vec<InterfaceCounters>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/dev"))?;
    Ok(parse_net_dev(&text))
}

/// Parses the text of a `net/dev` file. The two header lines, and any line
/// without a name and sixteen numbers, are skipped.
pub fn parse_net_dev(text: &str) -> Vec<InterfaceCounters> {
    text.lines().filter_map(parse_line).collect()
}

/// Receive: bytes packets errs drop fifo frame compressed multicast;
/// transmit: bytes packets errs drop fifo colls carrier compressed.
fn parse_line(line: &str) -> Option<InterfaceCounters> {
    let (name, counters) = line.split_once(':')?;
    let name = name.trim();
    if name.is_empty() || name.contains(char::is_whitespace) {
        return None;
    }
    let mut n = [0u64; 16];
    let mut fields = counters.split_ascii_whitespace();
    for slot in &mut n {
        *slot = fields.next()?.parse().ok()?;
    }
    Some(InterfaceCounters {
        name: name.to_owned(),
        rx_bytes: n[0],
        rx_packets: n[1],
        rx_errors: n[2],
        rx_dropped: n[3],
        tx_bytes: n[8],
        tx_packets: n[9],
        tx_errors: n[10],
        tx_dropped: n[11],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NET_DEV: &str = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:   67972     281    0    0    0     0          0         0    67972     281    0    0    0     0       0          0
  eth0:12345678901   8335    2    3    0     0          0         7   451019    5370    4    5    0     0       0          0
veth1234567:1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16
";

    #[test]
    fn parses_all_interfaces_after_headers() {
        let got = parse_net_dev(NET_DEV);
        assert_eq!(got.len(), 3);
        assert_eq!(
            got[0],
            InterfaceCounters {
                name: "lo".into(),
                rx_bytes: 67972,
                rx_packets: 281,
                tx_bytes: 67972,
                tx_packets: 281,
                ..Default::default()
            }
        );
        assert_eq!(
            got[1],
            InterfaceCounters {
                name: "eth0".into(),
                rx_bytes: 12_345_678_901,
                rx_packets: 8335,
                rx_errors: 2,
                rx_dropped: 3,
                tx_bytes: 451_019,
                tx_packets: 5370,
                tx_errors: 4,
                tx_dropped: 5,
            }
        );
        assert_eq!(
            got[2],
            InterfaceCounters {
                name: "veth1234567".into(),
                rx_bytes: 1,
                rx_packets: 2,
                rx_errors: 3,
                rx_dropped: 4,
                tx_bytes: 9,
                tx_packets: 10,
                tx_errors: 11,
                tx_dropped: 12,
            }
        );
    }

    #[test]
    fn skips_malformed_lines() {
        let text = "eth0: 1 2 3\n: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\nno colon here\n\
                    eth1: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 x\n";
        assert!(parse_net_dev(text).is_empty());
        assert!(parse_net_dev("").is_empty());
    }

    #[test]
    fn live_own_namespace_has_loopback() {
        let got = net_dev_of_pid(std::process::id()).unwrap();
        assert!(got.iter().any(|i| i.name == "lo"), "{got:?}");
    }
}

//! Pressure stall information: the `*.pressure` files a cgroup of the
//! unified hierarchy keeps (`cpu.pressure`, `memory.pressure`,
//! `io.pressure`), and how to read one.

use std::collections::HashMap;

/// Pressure stall information (the unified hierarchy's) per resource.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Pressure {
    pub cpu: Option<Psi>,
    pub memory: Option<Psi>,
    pub io: Option<Psi>,
}

/// Stalls on one resource, one `*.pressure` file.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Psi {
    /// Some task waited (`some`).
    pub some: Option<PsiLine>,
    /// All tasks stalled at once (`full`; for CPU only from Linux 5.13).
    pub full: Option<PsiLine>,
}

/// One line of a `*.pressure` file.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PsiLine {
    /// Cumulative stall time, microseconds.
    pub total_us: u64,
    /// Share of time stalled (percent) over the last 10 s, 60 s and 300 s.
    pub avg10: f64,
    pub avg60: f64,
    pub avg300: f64,
}

/// A `*.pressure` file: `some avg10=.. avg60=.. avg300=.. total=N` and the
/// same for `full`, totals in microseconds. A line missing a field or with
/// one garbled is left out whole.
pub(super) fn parse_psi(text: &str) -> Psi {
    let line = |kind: &str| {
        text.lines().find_map(|line| {
            let mut it = line.split_ascii_whitespace();
            if it.next()? != kind {
                return None;
            }
            let fields: HashMap<&str, &str> = it.filter_map(|f| f.split_once('=')).collect();
            let avg = |key: &str| {
                fields
                    .get(key)?
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite())
            };
            Some(PsiLine {
                total_us: fields.get("total")?.parse().ok()?,
                avg10: avg("avg10")?,
                avg60: avg("avg60")?,
                avg300: avg("avg300")?,
            })
        })
    };
    Psi {
        some: line("some"),
        full: line("full"),
    }
}

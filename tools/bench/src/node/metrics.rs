//! The kubelet's Prometheus histograms, read from its `/metrics` text:
//! bucket counts per label value, differences between two scrapes (so a
//! figure covers one window of the run), and the mean (`_sum / _count`) and
//! quantiles (linear interpolation inside the bucket, as Prometheus'
//! `histogram_quantile` does) of what happened in between.

use std::collections::BTreeMap;

/// One histogram series: cumulative bucket counts by upper bound, in the
/// order of the text (ascending), the sum and the count.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Histogram {
    pub buckets: Vec<(f64, f64)>,
    pub sum: f64,
    pub count: f64,
}

impl Histogram {
    /// What was observed between `before` and `self` (a later scrape of the
    /// same series). Buckets missing from `before` count from zero.
    pub fn since(&self, before: &Histogram) -> Histogram {
        let earlier = |le: f64| {
            before
                .buckets
                .iter()
                .find(|(b, _)| *b == le)
                .map(|(_, c)| *c)
                .unwrap_or(0.0)
        };
        Histogram {
            buckets: self
                .buckets
                .iter()
                .map(|&(le, c)| (le, (c - earlier(le)).max(0.0)))
                .collect(),
            sum: (self.sum - before.sum).max(0.0),
            count: (self.count - before.count).max(0.0),
        }
    }

    pub fn mean(&self) -> Option<f64> {
        (self.count > 0.0).then(|| self.sum / self.count)
    }

    /// The `q` quantile (0..1), interpolated linearly inside its bucket;
    /// a quantile in the `+Inf` bucket is the highest finite bound.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count <= 0.0 {
            return None;
        }
        let rank = q * self.count;
        let mut lower = 0.0;
        let mut below = 0.0;
        for &(le, cumulative) in &self.buckets {
            if cumulative >= rank {
                if le.is_infinite() {
                    return Some(lower);
                }
                let inside = cumulative - below;
                if inside <= 0.0 {
                    return Some(le);
                }
                return Some(lower + (le - lower) * (rank - below) / inside);
            }
            if le.is_finite() {
                lower = le;
            }
            below = cumulative;
        }
        Some(lower)
    }
}

/// Every series of histogram `name` in a scrape, keyed by the value of
/// `label` (empty when the series has no such label). Series with other
/// labels besides are added together.
pub fn histograms(text: &str, name: &str, label: &str) -> BTreeMap<String, Histogram> {
    let mut out: BTreeMap<String, Histogram> = BTreeMap::new();
    let bucket = format!("{name}_bucket");
    let sum = format!("{name}_sum");
    let count = format!("{name}_count");
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let (metric, labels) = match series.split_once('{') {
            Some((m, rest)) => (m, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let key = label_value(labels, label).unwrap_or_default();
        let entry = if metric == bucket {
            let Some(le) = label_value(labels, "le").and_then(|le| parse_bound(&le)) else {
                continue;
            };
            let h = out.entry(key).or_default();
            match h.buckets.iter_mut().find(|(b, _)| *b == le) {
                Some((_, c)) => *c += value,
                None => h.buckets.push((le, value)),
            }
            continue;
        } else if metric == sum {
            &mut out.entry(key).or_default().sum
        } else if metric == count {
            &mut out.entry(key).or_default().count
        } else {
            continue;
        };
        *entry += value;
    }
    for h in out.values_mut() {
        h.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    out
}

/// The value of a counter or gauge without labels (or the sum over them).
pub fn scalar(text: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines() {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let metric = series.split_once('{').map_or(series, |(m, _)| m);
        if metric == name
            && let Ok(v) = value.parse::<f64>()
        {
            found = Some(found.unwrap_or(0.0) + v);
        }
    }
    found
}

fn parse_bound(le: &str) -> Option<f64> {
    if le == "+Inf" {
        Some(f64::INFINITY)
    } else {
        le.parse().ok()
    }
}

/// The value of `name="..."` in a Prometheus label list (no escaped quotes
/// in the labels read here).
fn label_value(labels: &str, name: &str) -> Option<String> {
    let needle = format!("{name}=\"");
    let mut rest = labels;
    while let Some(at) = rest.find(&needle) {
        // Only at a label's start: `le` must not match `handle`.
        let at_start = at == 0 || rest[..at].ends_with(',');
        let after = &rest[at + needle.len()..];
        if at_start {
            return after.split_once('"').map(|(v, _)| v.to_string());
        }
        rest = after;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP x
kubelet_runtime_operations_duration_seconds_bucket{operation_type="exec_sync",le="0.005"} 0
kubelet_runtime_operations_duration_seconds_bucket{operation_type="exec_sync",le="0.0125"} 50
kubelet_runtime_operations_duration_seconds_bucket{operation_type="exec_sync",le="0.03125"} 100
kubelet_runtime_operations_duration_seconds_bucket{operation_type="exec_sync",le="+Inf"} 100
kubelet_runtime_operations_duration_seconds_sum{operation_type="exec_sync"} 1.5
kubelet_runtime_operations_duration_seconds_count{operation_type="exec_sync"} 100
kubelet_pleg_relist_duration_seconds_bucket{le="0.005"} 3
kubelet_pleg_relist_duration_seconds_bucket{le="+Inf"} 4
kubelet_pleg_relist_duration_seconds_sum 0.1
kubelet_pleg_relist_duration_seconds_count 4
"#;

    #[test]
    fn reads_and_interpolates() {
        let ops = histograms(
            TEXT,
            "kubelet_runtime_operations_duration_seconds",
            "operation_type",
        );
        let exec = &ops["exec_sync"];
        assert_eq!(exec.count, 100.0);
        assert_eq!(exec.mean(), Some(0.015));
        // The 50th observation is the top of the 0.005..0.0125 bucket.
        assert!((exec.quantile(0.5).unwrap() - 0.0125).abs() < 1e-9);
        // The 99th: 49/50 of the way through 0.0125..0.03125.
        let p99 = exec.quantile(0.99).unwrap();
        assert!((p99 - (0.0125 + 0.01875 * 49.0 / 50.0)).abs() < 1e-9);
        let relist = &histograms(TEXT, "kubelet_pleg_relist_duration_seconds", "x")[""];
        assert_eq!(relist.quantile(0.99), Some(0.005));
    }

    #[test]
    fn differences_cover_the_window() {
        let ops = histograms(
            TEXT,
            "kubelet_runtime_operations_duration_seconds",
            "operation_type",
        );
        let exec = &ops["exec_sync"];
        let none = exec.since(exec);
        assert_eq!(none.count, 0.0);
        assert_eq!(none.quantile(0.5), None);
        let all = exec.since(&Histogram::default());
        assert_eq!(&all, exec);
    }

    #[test]
    fn label_must_start_a_label() {
        assert_eq!(label_value(r#"handle="a",le="1""#, "le"), Some("1".into()));
        assert_eq!(label_value(r#"handle="a""#, "le"), None);
    }
}

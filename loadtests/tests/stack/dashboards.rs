//! The SRE's dashboards and rules name only what the services export: every
//! query of deploy/grafana/dashboards and every rule of
//! deploy/prometheus/usher-rules.yml is read for the metric names (and the
//! labels it groups by) and checked against what a running edge and core
//! really serve on their metrics endpoints, after a little traffic. A panel
//! left naming a renamed metric would draw nothing in an on-sale.

use std::collections::{BTreeMap, BTreeSet};

use crate::common::*;
use serde_json::Value;

/// Families a metrics page serves (histograms with their series' suffixes)
/// and the label names seen on each family's samples.
fn exported(text: &str, into: &mut BTreeMap<String, BTreeSet<String>>) {
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
                continue;
            };
            into.entry(name.to_owned()).or_default();
            if kind == "histogram" {
                for suffix in ["_bucket", "_sum", "_count"] {
                    into.entry(format!("{name}{suffix}")).or_default();
                }
            }
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            let name_end = line.find(['{', ' ']).unwrap_or(line.len());
            let labels = into.entry(line[..name_end].to_owned()).or_default();
            if let (Some(open), Some(close)) = (line.find('{'), line.find('}')) {
                for pair in line[open + 1..close].split(',') {
                    if let Some((label, _)) = pair.split_once('=') {
                        labels.insert(label.trim().to_owned());
                    }
                }
            }
        }
    }
}

/// Operators, modifiers and aggregations (`sum by (x) (...)` puts a word
/// between the aggregation and its bracket).
const KEYWORDS: [&str; 25] = [
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "inf",
    "nan",
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "group",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
];

/// A PromQL expression's metric names, and the labels it groups or joins
/// by. Label matchers, ranges and strings are skipped; a name followed by
/// `(` is a function.
fn read_promql(expr: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let chars: Vec<char> = expr.chars().collect();
    let (mut names, mut labels) = (BTreeSet::new(), BTreeSet::new());
    let mut i = 0;
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut last_word = String::new();
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' => {
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    i += 1;
                }
                i += 1;
            }
            '{' | '[' => {
                // To the closing bracket, over quoted values (a route
                // template has braces of its own).
                let close = if c == '{' { '}' } else { ']' };
                let mut quoted = false;
                while i < chars.len() && (quoted || chars[i] != close) {
                    match chars[i] {
                        '\\' if quoted => i += 1,
                        '"' => quoted = !quoted,
                        _ => {}
                    }
                    i += 1;
                }
                i += 1;
            }
            '(' if ["by", "without", "on", "ignoring", "group_left", "group_right"].contains(&last_word.as_str()) => {
                let start = i + 1;
                while i < chars.len() && chars[i] != ')' {
                    i += 1;
                }
                let inside: String = chars[start..i.min(chars.len())].iter().collect();
                labels.extend(inside.split(',').map(|l| l.trim().to_owned()).filter(|l| !l.is_empty()));
                last_word.clear();
                i += 1;
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < chars.len() && word(chars[i]) {
                    i += 1;
                }
                let w: String = chars[start..i].iter().collect();
                let mut j = i;
                while j < chars.len() && chars[j].is_whitespace() {
                    j += 1;
                }
                let call = j < chars.len() && chars[j] == '(';
                if !call && !KEYWORDS.contains(&w.to_ascii_lowercase().as_str()) {
                    names.insert(w.clone());
                }
                last_word = w;
            }
            c if c.is_ascii_digit() || c == '.' => {
                // A number (1e3 and 0.25 included): not a name.
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    (names, labels)
}

/// Metrics of the engines' own exporters (Patroni, Redis, PostgreSQL), which
/// the rules may name but our services do not serve.
fn from_engines(name: &str) -> bool {
    ["patroni_", "redis_", "pg_"].iter().any(|p| name.starts_with(p))
}

/// Labels Prometheus adds to every scraped series, and histograms' bound.
const ADDED_LABELS: [&str; 3] = ["instance", "job", "le"];

/// Checks one query's metric names, the labels it groups by and the labels
/// its legend names (`legend`: which the query must keep).
fn check_query(
    place: &str,
    expr: &str,
    legend: &[String],
    exports: &BTreeMap<String, BTreeSet<String>>,
    recorded: &BTreeSet<String>,
    problems: &mut Vec<String>,
) {
    let (names, mut labels) = read_promql(expr);
    for label in legend {
        if labels.is_empty() || labels.contains(label) {
            continue;
        }
        problems.push(format!("{place}: legend names {label}, which the query drops"));
    }
    if labels.is_empty() {
        labels.extend(legend.iter().cloned());
    }
    if names.is_empty() {
        problems.push(format!("{place}: no metric in {expr:?}"));
    }
    let mut seen_labels = BTreeSet::new();
    let mut all_sampled = true;
    for name in &names {
        if recorded.contains(name) || from_engines(name) {
            all_sampled = false;
            continue;
        }
        match exports.get(name) {
            None => problems.push(format!("{place}: {name} is not exported by the edge or the core")),
            Some(l) if l.is_empty() => all_sampled = false,
            Some(l) => seen_labels.extend(l.iter().cloned()),
        }
    }
    // A label grouped by must be on the series, where they are known.
    if all_sampled {
        for label in labels {
            if !seen_labels.contains(&label) && !ADDED_LABELS.contains(&label.as_str()) {
                problems.push(format!("{place}: no series of {names:?} has the label {label}"));
            }
        }
    }
}

#[test]
fn promql_is_read_for_names_and_grouping_labels() {
    let (names, labels) = read_promql(
        r#"histogram_quantile(0.99, sum by (le, route) (rate(usher_core_http_request_seconds_bucket{route="/v1/x",le="0.25"}[5m]))) / 1e3 > bool usher:hold_slow_ratio:rate5m and on (event) up"#,
    );
    assert_eq!(
        names,
        BTreeSet::from([
            "usher_core_http_request_seconds_bucket".to_owned(),
            "usher:hold_slow_ratio:rate5m".to_owned(),
            "up".to_owned()
        ])
    );
    assert_eq!(labels, BTreeSet::from(["le".into(), "route".into(), "event".into()]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_and_rule_names_what_the_services_export() {
    let stack = start().await;
    // A little traffic first, so that families with labels have series.
    let http = reqwest::Client::new();
    for path in ["/v1/events?q=london", "/", "/v1/events/999999999", "/queue/999/status"] {
        http.get(format!("{}{path}", stack.edge_base)).send().await.unwrap();
    }
    let mut exports = BTreeMap::new();
    for url in [format!("{}/metrics", stack.admin_base), stack.core_metrics.clone()] {
        let text = http.get(&url).send().await.unwrap().text().await.unwrap();
        assert!(text.contains("# TYPE"), "{url}: {text}");
        exported(&text, &mut exports);
    }
    assert!(exports.contains_key("usher_queue_length") && exports.contains_key("usher_core_db_up"));

    let rules_text = std::fs::read_to_string(root().join("deploy/prometheus/usher-rules.yml")).unwrap();
    let recorded: BTreeSet<String> = rules_text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- record:"))
        .map(|n| n.trim().to_owned())
        .collect();
    assert!(recorded.len() >= 5, "{recorded:?}");
    let mut problems = Vec::new();

    // The rules' expressions (YAML block scalars or one line).
    let mut lines = rules_text.lines().peekable();
    let mut n = 0;
    while let Some(line) = lines.next() {
        let Some(rest) = line.trim().strip_prefix("expr:") else {
            continue;
        };
        let mut expr = rest.trim().to_owned();
        if expr == "|" {
            expr.clear();
            let indent = line.len() - line.trim_start().len();
            while let Some(next) = lines.peek() {
                if next.trim().is_empty() || next.len() - next.trim_start().len() <= indent {
                    break;
                }
                expr.push_str(next.trim());
                expr.push(' ');
                lines.next();
            }
        }
        n += 1;
        check_query(&format!("rule {n}"), &expr, &[], &exports, &recorded, &mut problems);
    }
    assert!(n >= 10, "read only {n} rule expressions");

    let dir = root().join("deploy/grafana/dashboards");
    let mut uids = BTreeSet::new();
    let mut queries = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let dashboard: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            uids.insert(dashboard["uid"].as_str().unwrap().to_owned()),
            "{name}: uid used twice"
        );
        let mut ids = BTreeSet::new();
        for panel in dashboard["panels"].as_array().unwrap() {
            let title = panel["title"].as_str().unwrap_or("?");
            assert!(ids.insert(panel["id"].as_u64().unwrap()), "{name}: panel id used twice");
            assert_eq!(
                panel["datasource"]["uid"], "usher-prometheus",
                "{name}/{title}: not the provisioned data source"
            );
            for target in panel["targets"].as_array().unwrap() {
                let expr = target["expr"].as_str().unwrap();
                queries += 1;
                let legend: Vec<String> = target["legendFormat"]
                    .as_str()
                    .unwrap_or("")
                    .split("{{")
                    .skip(1)
                    .map(|part| part.split("}}").next().unwrap_or("").trim().to_owned())
                    .collect();
                let place = format!("{name}/{title}");
                check_query(&place, expr, &legend, &exports, &recorded, &mut problems);
            }
        }
        for var in dashboard["templating"]["list"].as_array().unwrap() {
            if let Some(q) = var["query"].as_str() {
                let metric = q.trim_start_matches("label_values(").split(',').next().unwrap_or("");
                assert!(
                    exports.contains_key(metric),
                    "{name}: variable {q} reads {metric}, not exported"
                );
            }
        }
    }
    assert!(
        uids.len() >= 3 && queries >= 40,
        "{} dashboards, {queries} queries",
        uids.len()
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    stack.stop().await.unwrap();
}

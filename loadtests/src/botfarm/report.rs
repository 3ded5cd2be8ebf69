//! The Markdown report of a farm's runs: the set-up, a summary table of
//! both runs side by side, the goals' verdict, and per run the bots by
//! kind, how attempts and fans ended, the fans the defences touched and
//! the edge's counters.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::outcome::{BotKind, BotOut, FarmRun};
use super::scenario::FarmScenario;

fn pct(n: usize, of: usize) -> String {
    if of == 0 {
        "-".into()
    } else {
        format!("{:.2}%", n as f64 * 100.0 / of as f64)
    }
}

/// The Markdown report of both runs.
pub fn report(sc: &FarmScenario, on: &FarmRun, off: Option<&FarmRun>, command: &str) -> String {
    let mut s = String::new();
    let runs: Vec<&FarmRun> = std::iter::once(on).chain(off).collect();
    let _ = writeln!(s, "# Bot farm: {}\n", sc.name);
    let _ = writeln!(s, "{}\n", sc.description);
    let _ = writeln!(s, "Command: `{command}`\n");
    let b = &sc.bots;
    let _ = writeln!(
        s,
        "{} fans ({} on {} shared /24s, the rest one /24 each) arriving over {} s; {} bot join attempts \
         ({} per bot client) from {} /24s of {} addresses, over {} s; {} seats, at most {} per account and card; \
         the farm has {} accounts, {} cards, {} solver thread(s) and solves puzzles up to {} bits. \
         Admission starts {} s after the room opens, {} a minute. The bot model is in \
         `loadtests/scenarios/botfarm.toml`.\n",
        sc.fans.count,
        sc.fans.shared_networks * sc.fans.per_shared_network,
        sc.fans.shared_networks,
        sc.fans.arrive_secs,
        b.attempts,
        b.joins_per_client,
        b.networks,
        b.addresses_per_network,
        b.arrive_secs,
        sc.venue.generated_seats(),
        sc.sale.max_seats_per_fan,
        b.accounts,
        b.cards,
        b.solver_threads,
        b.max_solve_bits,
        sc.sale.on_sale_after_secs,
        sc.admission.admit_per_minute,
    );
    let head: Vec<&str> = runs
        .iter()
        .map(|r| if r.defences { "defences on" } else { "defences off" })
        .collect();
    let _ = writeln!(
        s,
        "## Summary\n\n| | {} |\n|---|{}",
        head.join(" | "),
        "---|".repeat(runs.len())
    );
    let row = |s: &mut String, name: &str, f: &dyn Fn(&FarmRun) -> String| {
        let cells: Vec<String> = runs.iter().map(|r| f(r)).collect();
        let _ = writeln!(s, "| {name} | {} |", cells.join(" | "));
    };
    row(&mut s, "seats sold (of those best available offers)", &|r| {
        format!("{} of {}", r.sold, r.seats)
    });
    row(&mut s, "seats bought by bots", &|r| {
        format!("{} ({:.2}%)", r.bot_seats, r.bot_share() * 100.0)
    });
    row(&mut s, "seats bought by fans", &|r| format!("{}", r.sold - r.bot_seats));
    row(&mut s, "fans who bought", &|r| {
        format!("{}", r.fans.iter().filter(|f| f.seats > 0).count())
    });
    row(&mut s, "fans challenged harder", &|r| {
        let n = r.fans.iter().filter(|f| f.harder).count();
        format!("{n} ({})", pct(n, r.fans.len()))
    });
    row(&mut s, "fans deferred", &|r| {
        let n = r.fans.iter().filter(|f| f.deferred).count();
        format!("{n} ({})", pct(n, r.fans.len()))
    });
    row(&mut s, "fans blocked", &|r| {
        let n = r.fans.iter().filter(|f| f.blocked).count();
        format!("{n} ({})", pct(n, r.fans.len()))
    });
    row(&mut s, "fans wrongly challenged (any of the three)", &|r| {
        format!(
            "{} ({})",
            r.fan_false_positives(),
            pct(r.fan_false_positives(), r.fans.len())
        )
    });
    row(&mut s, "sold out after the on-sale", &|r| {
        r.sold_out_secs.map_or("not sold out".into(), |t| format!("{t:.1} s"))
    });
    row(&mut s, "puzzles the farm solved (hashes)", &|r| {
        format!("{} ({:.1} M)", r.farm_solves, r.farm_hashes as f64 / 1e6)
    });
    row(&mut s, "seats sold twice", &|r| format!("{}", r.oversold));
    row(&mut s, "charge problems", &|r| format!("{}", r.charge_problems.len()));
    row(&mut s, "run time (stack included)", &|r| {
        format!("{:.0} s", r.elapsed_secs)
    });
    let missed = on.missed_goals(&sc.goals);
    let _ = writeln!(
        s,
        "\nGoals with defences on (bots under {:.1}% of seats, fans wrongly challenged under {:.1}%): {}\n",
        sc.goals.max_bot_share * 100.0,
        sc.goals.max_fan_false_positives * 100.0,
        if missed.is_empty() {
            "met.".to_owned()
        } else {
            format!("**missed**: {}.", missed.join("; "))
        }
    );
    for r in &runs {
        let _ = writeln!(
            s,
            "## Bots by kind, defences {}\n\n| kind | attempts | blocked | deferred | refused | got places | places taken back | admitted | bought | seats |\n|---|---|---|---|---|---|---|---|---|---|",
            if r.defences { "on" } else { "off" }
        );
        let mut by: BTreeMap<BotKind, Vec<&BotOut>> = BTreeMap::new();
        for o in &r.bots {
            by.entry(o.kind).or_default().push(o);
        }
        for (kind, v) in &by {
            let c = |f: &dyn Fn(&BotOut) -> bool| v.iter().filter(|o| f(o)).count();
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                kind.name(),
                v.len(),
                c(&|o| o.blocked),
                c(&|o| o.deferred),
                c(&|o| !o.place && !o.blocked),
                c(&|o| o.place),
                c(&|o| o.lost_place),
                c(&|o| o.admitted),
                c(&|o| o.seats > 0),
                v.iter().map(|o| o.seats).sum::<u32>(),
            );
        }
        let mut ends: BTreeMap<(&str, &str), usize> = BTreeMap::new();
        for o in &r.bots {
            *ends.entry((o.kind.name(), o.end.as_str())).or_default() += 1;
        }
        let _ = writeln!(s, "\nHow bot attempts ended:\n");
        for ((kind, end), n) in &ends {
            let _ = writeln!(s, "- {kind}: {end}: {n}");
        }
        if r.defences {
            let through: Vec<String> = r
                .bots
                .iter()
                .filter(|o| o.seats > 0)
                .map(|o| {
                    format!(
                        "- {} client {} on {}: place at {} ms, {} seats; the edge last blocked or deferred that address at {}",
                        o.kind.name(),
                        o.client,
                        o.addr,
                        o.placed_ms.map_or("-".into(), |t| t.to_string()),
                        o.seats,
                        r.refused_at.get(&o.addr).map_or("no time (never)".into(), |t| format!("{t} ms")),
                    )
                })
                .collect();
            if !through.is_empty() {
                let _ = writeln!(s, "\nBots that bought seats:\n\n{}", through.join("\n"));
            }
        }
        let mut fan_ends: BTreeMap<&str, usize> = BTreeMap::new();
        for f in &r.fans {
            *fan_ends.entry(f.end.as_str()).or_default() += 1;
        }
        let _ = writeln!(s, "\nHow fans ended:\n");
        for (end, n) in &fan_ends {
            let _ = writeln!(s, "- {end}: {n}");
        }
        let touched: Vec<String> = r
            .fans
            .iter()
            .filter(|f| f.false_positive())
            .take(20)
            .map(|f| {
                format!(
                    "fan {}{}: max {} bits{}{}",
                    f.id,
                    if f.shared_network { " (shared network)" } else { "" },
                    f.max_bits,
                    if f.deferred { ", deferred" } else { "" },
                    if f.blocked { ", blocked" } else { "" }
                )
            })
            .collect();
        if !touched.is_empty() {
            let _ = writeln!(s, "\nFans the defences touched (first 20): {}", touched.join("; "));
        }
        let _ = writeln!(s, "\nThe edge's counters:\n\n```");
        for m in &r.metrics {
            let _ = writeln!(s, "{m}");
        }
        let _ = writeln!(s, "```\n");
        let v = r.violations();
        if !v.is_empty() {
            let _ = writeln!(s, "**Invariants broken**: {}\n", v.join("; "));
        }
    }
    s
}

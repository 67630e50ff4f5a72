//! What recording usage statistics costs the hot routes (issue 19): the updater and the
//! latest lookup with `ATLAS_STATS=on` against the same functions with it off, on the same
//! machine in the same run, interleaved (off, on, three times; medians compared) so a drift
//! of the machine's state falls on both. Clients send ids (`?clientId=`, from a pool of a thousand), so every request
//! also feeds the distinct-client sketches.

use super::lookups::{Measured, measure};
use super::*;

/// Throughput with recording on, at least this share of off's.
const MIN_ON_OFF_RATIO: f64 = 0.97;
/// p99 with recording on, at most this multiple of off's (plus a tenth of a millisecond of
/// timer resolution).
const MAX_P99_RATIO: f64 = 1.10;

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

pub(crate) fn usage(ctx: &mut Ctx, rows: &mut Vec<Row>) -> Result<(), String> {
    let mut latest_paths = Vec::new();
    let mut updater_paths = Vec::new();
    let mut client = 0;
    for p in 1..=seed::PRODUCTS {
        for (os, arch) in seed::PLATFORMS {
            for current in ["1.0.0", "1.5.3", "1.8.19", seed::STABLE_VERSION] {
                client = (client + 7) % 1000;
                updater_paths.push(format!(
                    "/api/v1/updater/product-{p}/{os}/{arch}/{current}?clientId=client-{client}"
                ));
                latest_paths.push(format!(
                    "/api/v1/releases/product-{p}/latest/{os}/{arch}?clientId=client-{client}"
                ));
            }
        }
    }
    shuffle(&mut latest_paths, 0x51_7cc1_b727_220a);
    shuffle(&mut updater_paths, 0x0952_4a6c_b36d_e2f1);

    for (name, paths) in [
        ("updater", &updater_paths),
        ("releases_latest", &latest_paths),
    ] {
        let mut runs: Vec<(bool, Measured)> = Vec::new();
        for round in 0..3 {
            for on in [false, true] {
                let mut env = ctx.function_env(&ctx.direct_url(), "none");
                env.push(("ATLAS_STATS".into(), if on { "on" } else { "off" }.into()));
                let label = format!(
                    "`{name}`, statistics {} (round {})",
                    if on { "on" } else { "off" },
                    round + 1
                );
                log(&label);
                runs.push((on, measure(ctx, &label, name, &env, paths)?));
            }
        }
        let pick = |on: bool, f: fn(&Measured) -> f64| {
            let mut v: Vec<f64> = runs
                .iter()
                .filter(|(o, _)| *o == on)
                .map(|(_, m)| f(m))
                .collect();
            median(&mut v)
        };
        let (off_rps, on_rps) = (
            pick(false, |m| m.load.per_second),
            pick(true, |m| m.load.per_second),
        );
        let (off_p99, on_p99) = (
            pick(false, |m| m.load.p99_ms),
            pick(true, |m| m.load.p99_ms),
        );
        let (off_cpu, on_cpu) = (
            pick(false, |m| m.cpu_us_per_request),
            pick(true, |m| m.cpu_us_per_request),
        );
        rows.push(Row {
            figure: format!("`{name}`: throughput with statistics on (floor: off, same run)"),
            hub: rps(on_rps),
            floor: rps(off_rps),
            ratio: ratio(on_rps, off_rps),
            budget: format!("≥ {MIN_ON_OFF_RATIO}× off"),
            pass: Some(on_rps >= MIN_ON_OFF_RATIO * off_rps),
        });
        rows.push(Row {
            figure: format!("`{name}`: p99 with statistics on (floor: off)"),
            hub: ms(on_p99),
            floor: ms(off_p99),
            ratio: ratio(on_p99, off_p99),
            budget: format!("≤ {MAX_P99_RATIO}× off"),
            pass: Some(on_p99 <= MAX_P99_RATIO * off_p99 + 0.1),
        });
        rows.push(Row {
            figure: format!("`{name}`: CPU per request with statistics on (floor: off)"),
            hub: us(on_cpu),
            floor: us(off_cpu),
            ratio: ratio(on_cpu, off_cpu),
            budget: "—".into(),
            pass: None,
        });
    }
    Ok(())
}

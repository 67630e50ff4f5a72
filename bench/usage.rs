//! What recording usage statistics costs the hot routes (issue 19): the updater and the
//! latest lookup with `ATLAS_STATS=on` against the same function with it off. A pair of
//! functions is started (one on, one off) and loaded in turn in short rounds (A B, then B A),
//! compared round by round, so a drift of the machine falls on both; then the pair is
//! restarted, the other one first, four times. Identical 8-second runs on this shared 2-core
//! machine differed by 5–10%, as much as the effect being measured (docs/benchmark.md), and
//! two processes of one binary differ by themselves; loading both at once was no steadier
//! (the two fought over the cores). A control first: off against off, which shows what the
//! method itself reads as a difference; the run fails when that is over
//! [`MAX_CONTROL_SKEW`]. Clients send ids (`?clientId=`, from a pool of a thousand), so every
//! request also feeds the distinct-client sketches.

use super::*;

/// Throughput with recording on, at least this share of off's.
const MIN_ON_OFF_RATIO: f64 = 0.97;
/// p99 with recording on, at most this multiple of off's (plus a tenth of a millisecond of
/// timer resolution).
const MAX_P99_RATIO: f64 = 1.10;
/// Off against off: a larger difference in throughput means the run cannot tell 3%.
const MAX_CONTROL_SKEW: f64 = 0.03;
/// Measured rounds for on against off, and for the control.
/// Pairs of functions started for on against off, and for the control; each pair is loaded
/// for [`ROUNDS_PER_PAIR`] rounds. Two processes of the same binary differ by themselves (the
/// control read 0.91–0.95× between the first-started and the second over eight rounds), so
/// the pairs are restarted, in turn started in either order.
const PAIRS: usize = 4;
const CONTROL_PAIRS: usize = 2;
const ROUNDS_PER_PAIR: usize = 2;

/// What one function served over the measured rounds.
#[derive(Default)]
struct Side {
    requests: u64,
    p99s: Vec<f64>,
    cpu_seconds: f64,
    /// Requests per second in each round.
    rates: Vec<f64>,
}

impl Side {
    fn per_second(&self) -> f64 {
        self.rates.iter().sum::<f64>() / self.rates.len() as f64
    }
    fn p99(&self) -> f64 {
        median(&mut self.p99s.clone())
    }
    fn cpu_us_per_request(&self) -> f64 {
        self.cpu_seconds * 1e6 / self.requests.max(1) as f64
    }
    /// Throughput against `other`'s: the median of the rounds' ratios (each round loads both
    /// back to back), so a round where the machine stalled counts as one round, whichever
    /// side it hit.
    fn ratio_to(&self, other: &Side) -> f64 {
        let mut ratios: Vec<f64> = self
            .rates
            .iter()
            .zip(&other.rates)
            .map(|(a, b)| a / b)
            .collect();
        median(&mut ratios)
    }
}

/// [`side_by_side`] for `pairs` pairs, the second of each two started first.
fn compare(
    ctx: &mut Ctx,
    name: &str,
    paths: &[String],
    stats: [bool; 2],
    pairs: usize,
    seconds: u32,
) -> Result<[Side; 2], String> {
    let mut sides = [Side::default(), Side::default()];
    for pair in 0..pairs {
        let flipped = pair % 2 == 1;
        let order = if flipped { [stats[1], stats[0]] } else { stats };
        let [a, b] = side_by_side(ctx, name, paths, order, ROUNDS_PER_PAIR, seconds)?;
        let (first, second) = if flipped { (b, a) } else { (a, b) };
        for (side, got) in sides.iter_mut().zip([first, second]) {
            side.requests += got.requests;
            side.rates.extend(got.rates);
            side.p99s.extend(got.p99s);
            side.cpu_seconds += got.cpu_seconds;
        }
    }
    Ok(sides)
}

/// Starts `name` twice (statistics as in `stats`, in that order) and loads them in turn for
/// `rounds` of `seconds` each, the order swapped every round.
fn side_by_side(
    ctx: &mut Ctx,
    name: &str,
    paths: &[String],
    stats: [bool; 2],
    rounds: usize,
    seconds: u32,
) -> Result<[Side; 2], String> {
    let label = |on: bool| if on { "on" } else { "off" };
    let mut functions = Vec::new();
    for on in stats {
        let mut env = ctx.function_env(&ctx.direct_url(), "none");
        env.push(("ATLAS_STATS".into(), label(on).into()));
        let f = ctx.start(name, &env)?;
        preflight(&f, paths)?;
        functions.push(f);
    }
    let run = |ctx: &mut Ctx, i: usize, what: &str, seconds: u32| {
        let target = format!("`{name}`, statistics {} ({what})", label(stats[i]));
        let url = functions[i].url();
        ctx.wrk(
            &target,
            &url,
            &Requests::Get(paths),
            CONNECTIONS,
            2,
            seconds,
        )
    };
    for i in 0..2 {
        run(ctx, i, "warm-up", WARMUP_SECS)?;
    }
    let mut sides = [Side::default(), Side::default()];
    for round in 1..=rounds {
        // A B, then B A: a drift of the machine during a round falls on both alike.
        let order = if round % 2 == 1 { [0, 1] } else { [1, 0] };
        for i in order {
            let before = functions[i].cpu_seconds()?;
            let r = run(ctx, i, &format!("round {round}"), seconds)?;
            let side = &mut sides[i];
            side.requests += r.requests;
            side.rates.push(r.per_second);
            side.p99s.push(r.p99_ms);
            side.cpu_seconds += functions[i].cpu_seconds()? - before;
        }
    }
    for f in functions {
        f.stop();
    }
    Ok(sides)
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
        log(&format!("`{name}`: control, statistics off against off"));
        let seconds = (ctx.settings.seconds / 2).max(2);
        let [a, b] = compare(ctx, name, paths, [false, false], CONTROL_PAIRS, seconds)?;
        let skew = a.ratio_to(&b);
        rows.push(Row {
            figure: format!("`{name}`: control, statistics off against off (throughput)"),
            hub: rps(a.per_second()),
            floor: rps(b.per_second()),
            ratio: format!("{skew:.2}×"),
            budget: format!("within {MAX_CONTROL_SKEW} of 1×"),
            pass: Some((skew - 1.0).abs() <= MAX_CONTROL_SKEW),
        });

        log(&format!("`{name}`: statistics off against on"));
        let [off, on] = compare(ctx, name, paths, [false, true], PAIRS, seconds)?;
        let throughput = on.ratio_to(&off);
        rows.push(Row {
            figure: format!("`{name}`: throughput with statistics on (floor: off, same run)"),
            hub: rps(on.per_second()),
            floor: rps(off.per_second()),
            ratio: format!("{throughput:.2}×"),
            budget: format!("≥ {MIN_ON_OFF_RATIO}× off"),
            pass: Some(throughput >= MIN_ON_OFF_RATIO),
        });
        rows.push(Row {
            figure: format!("`{name}`: p99 with statistics on (floor: off; median of rounds)"),
            hub: ms(on.p99()),
            floor: ms(off.p99()),
            ratio: ratio(on.p99(), off.p99()),
            budget: format!("≤ {MAX_P99_RATIO}× off"),
            pass: Some(on.p99() <= MAX_P99_RATIO * off.p99() + 0.1),
        });
        rows.push(Row {
            figure: format!("`{name}`: CPU per request with statistics on (floor: off)"),
            hub: us(on.cpu_us_per_request()),
            floor: us(off.cpu_us_per_request()),
            ratio: ratio(on.cpu_us_per_request(), off.cpu_us_per_request()),
            budget: "—".into(),
            pass: None,
        });
    }
    Ok(())
}

//! What recording usage statistics costs the hot routes (issue 19): the updater and the
//! latest lookup with `ATLAS_STATS=on` against the same function with it off.
//!
//! First, and decisive, what recording adds to a request's cost
//! ([`MAX_RECORDING_SHARE`]), from two figures this shared 2-core machine does not move
//! (throughput moves 10% from one 2-second round to the next, whether the function and the
//! load generator are pinned to cores of their own or not):
//! - the instructions a request executes, counted by callgrind, on against off
//!   ([`instructions`]). A function saturating its core serves requests at the rate its CPU
//!   time allows, so the added share of instructions estimates the added share of CPU time
//!   (an estimate, not a bound: the kernel's part, about 40% and the same either way, is
//!   not counted, and SHA-256 runs without its CPU extensions under valgrind);
//! - the CPU time of one statistics write, the function's and PostgreSQL's
//!   ([`write_cost`]), shared by the requests of the ten seconds between writes at the
//!   throughput measured below.
//!
//! Then throughput and p99 under load. A pair of functions is started (one on, one off) and
//! loaded in turn in short rounds (A B, then B A), compared round by round, so a drift of
//! the machine falls on both; then the pair is restarted, the other one first, four times.
//! Identical 8-second runs on this machine differed by 5–10%, as much as the effect being
//! measured (docs/benchmark.md), and two processes of one binary differ by themselves;
//! loading both at once was no steadier (the two fought over the cores). A control comes
//! first: off against off, which shows what the method itself reads as a difference. Each
//! ratio is the mean of the rounds' ratios with its 95% interval ([`Interval`]), judged only
//! when the whole interval is on one side of its budget: a run that cannot tell says so,
//! and a recording that clearly costs more than 3% fails. Clients send ids
//! (`?clientId=`, from a pool of a thousand), so every request also feeds the
//! distinct-client sketches.

use super::*;

/// Throughput with recording on, at least this share of off's.
const MIN_ON_OFF_RATIO: f64 = 0.97;
/// p99 with recording on, at most this multiple of off's.
const MAX_P99_RATIO: f64 = 1.10;
/// What recording may cost a request in all (its own instructions and its share of the
/// writes), as a share of what the request costs with recording off.
const MAX_RECORDING_SHARE: f64 = 0.03;
/// Seconds of load counted under callgrind (600–700 requests a second there).
const CALLGRIND_SECS: u32 = 12;
/// The Hub's default `ATLAS_STATS_WRITE_SECS`: a busy instance writes this often.
const DEFAULT_WRITE_SECS: f64 = 10.0;
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
    /// Throughput against `other`'s, round by round (each round loads both back to back,
    /// so a drift of the machine falls on both), averaged per pair of processes.
    fn rate_ratios(&self, other: &Side) -> Interval {
        Interval::of(per_pair(&self.rates, &other.rates))
    }
    /// p99 against `other`'s, the same way.
    fn p99_ratios(&self, other: &Side) -> Interval {
        Interval::of(per_pair(&self.p99s, &other.p99s))
    }
}

/// The rounds' ratios `a / b`, averaged over each pair's rounds: two processes of one binary
/// differ by themselves, so the rounds of one pair are not independent samples; the pairs
/// are.
fn per_pair<'a>(a: &'a [f64], b: &'a [f64]) -> impl Iterator<Item = f64> + 'a {
    a.chunks(ROUNDS_PER_PAIR)
        .zip(b.chunks(ROUNDS_PER_PAIR))
        .map(|(a, b)| a.iter().zip(b).map(|(a, b)| a / b).sum::<f64>() / a.len() as f64)
}

fn label(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

/// Instructions `name` executes per request (statistics `on` or off), counted by callgrind:
/// the same count however busy the machine is, where throughput on this one moves 10% from
/// one round to the next. Counting starts after a warm-up (`callgrind_control -i on`) and
/// ends with a dump after the load, so start-up is left out; the statistics writer's work
/// in between is in. Only user-space instructions are counted: the kernel's share of a
/// request (about 40% of its CPU time here, the same with recording on or off) is not,
/// which makes the ratio read high; under valgrind SHA-256 runs without the SHA extensions
/// (a quarter of the updater's count), which makes it read low. Valgrind also runs one
/// thread at a time, which is how a function instance runs anyway (one thread).
fn instructions(ctx: &mut Ctx, name: &str, paths: &[String], on: bool) -> Result<f64, String> {
    let out = ctx.work.join(format!("callgrind-{name}-{}.out", label(on)));
    let wrapper = [
        "valgrind".to_owned(),
        "--tool=callgrind".to_owned(),
        "--instr-atstart=no".to_owned(),
        format!("--callgrind-out-file={}", out.display()),
    ];
    let mut env = ctx.function_env(&ctx.direct_url(), "none");
    env.push(("ATLAS_STATS".into(), label(on).into()));
    // Writes are held off (the first, at once, falls in the warm-up): under callgrind a
    // write every 10 s would be shared by some 7,000 requests instead of 200,000 and more,
    // and weigh thirty times what it does. [`write_cost`] times them at full speed.
    env.push(("ATLAS_STATS_WRITE_SECS".into(), "300".into()));
    let f = ctx.start_under(&wrapper, name, &env)?;
    // The start line comes before the listener under valgrind's slower start.
    let deadline = Instant::now() + Duration::from_secs(60);
    while http::request(&f.authority(), "GET", "/_vercel/ping", &[], &[]).is_err() {
        if Instant::now() > deadline {
            return Err(format!("{name} under callgrind never answered"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    preflight(&f, paths)?;
    let target = format!("`{name}` under callgrind, statistics {}", label(on));
    let requests = Requests::Get(paths);
    ctx.wrk(&format!("{target} (warm-up)"), &f.url(), &requests, 8, 1, 3)?;
    callgrind_control("-i", "on", f.pid())?;
    let r = ctx.wrk(&target, &f.url(), &requests, 8, 1, CALLGRIND_SECS)?;
    callgrind_control("-d", "", f.pid())?;
    // The first dump is `<out>.1`; callgrind_control returns once it is written.
    let dump = format!("{}.1", out.display());
    let text = std::fs::read_to_string(&dump).map_err(|e| format!("{dump}: {e}"))?;
    f.stop();
    let total: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("totals:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("{dump}: no totals line"))?;
    if r.requests == 0 || total == 0.0 {
        return Err(format!(
            "{target}: nothing counted ({} requests)",
            r.requests
        ));
    }
    let per_request = total / r.requests as f64;
    log(&format!(
        "{target}: {} instructions per request",
        thousands(per_request)
    ));
    Ok(per_request)
}

/// CPU time one statistics write takes, in seconds (the median of three), the function's
/// and PostgreSQL's together: a function that writes every second is warmed up, and each
/// round waits out any write pending, asks every path once (so the next write carries every
/// row and sketch a ten-second write would), then times the one write that follows by the
/// CPU clocks of the function's threads and the database's processes (nothing else runs
/// in them meanwhile).
fn write_cost(ctx: &mut Ctx, name: &str, paths: &[String]) -> Result<f64, String> {
    let pid_file = ctx.work.join("pg").join("postmaster.pid");
    let postmaster: u32 = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|t| t.lines().next().and_then(|l| l.trim().parse().ok()))
        .ok_or_else(|| format!("{}: no postmaster pid", pid_file.display()))?;
    let mut env = ctx.function_env(&ctx.direct_url(), "none");
    env.push(("ATLAS_STATS".into(), "on".into()));
    env.push(("ATLAS_STATS_WRITE_SECS".into(), "1".into()));
    let f = ctx.start(name, &env)?;
    preflight(&f, paths)?;
    let target = format!("`{name}`, writing every second (warm-up)");
    ctx.wrk(&target, &f.url(), &Requests::Get(paths), CONNECTIONS, 2, 2)?;
    let mut costs = Vec::new();
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(1200));
        for p in paths {
            http::request(&f.authority(), "GET", p, &[], &[])
                .map_err(|e| format!("{name} {p}: {e}"))?;
        }
        let pids = |f: &Function| [vec![f.pid()], procs::postgres_pids(postmaster)].concat();
        let before = procs::cpu_ns_by_thread(&pids(&f))?;
        std::thread::sleep(Duration::from_millis(1500));
        let after = procs::cpu_ns_by_thread(&pids(&f))?;
        costs.push(procs::cpu_ns_between(&before, &after) as f64 / 1e9);
    }
    f.stop();
    let cost = median(&mut costs);
    log(&format!(
        "`{name}`: one statistics write takes {} of CPU (function and PostgreSQL)",
        ms(cost * 1e3)
    ));
    Ok(cost)
}

fn callgrind_control(option: &str, value: &str, pid: u32) -> Result<(), String> {
    let out = std::process::Command::new("callgrind_control")
        .arg(option)
        .args((!value.is_empty()).then_some(value))
        .arg(pid.to_string())
        .output()
        .map_err(|e| format!("callgrind_control: {e} (apt-get install valgrind)"))?;
    if !out.status.success() {
        return Err(format!(
            "callgrind_control {option} {value}: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

/// A ratio measured pair by pair: the mean and its 95% confidence interval (Student's t),
/// which is what one run can say on a machine whose rounds move 10% apart.
struct Interval {
    mean: f64,
    low: f64,
    high: f64,
}

impl Interval {
    fn of(ratios: impl Iterator<Item = f64>) -> Interval {
        let ratios: Vec<f64> = ratios.collect();
        let n = ratios.len() as f64;
        let mean = ratios.iter().sum::<f64>() / n;
        let variance = ratios.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1.0);
        let half = t95(ratios.len().saturating_sub(1)) * (variance / n).sqrt();
        Interval {
            mean,
            low: mean - half,
            high: mean + half,
        }
    }

    fn show(&self) -> String {
        format!("{:.2}× ({:.2}–{:.2})", self.mean, self.low, self.high)
    }

    /// Judged only when the whole interval is on one side of `floor`: `None` when the run
    /// cannot tell.
    fn at_least(&self, floor: f64) -> Option<bool> {
        (self.low >= floor || self.high < floor).then_some(self.low >= floor)
    }

    /// [`Interval::at_least`] for a ceiling.
    fn at_most(&self, ceiling: f64) -> Option<bool> {
        (self.high <= ceiling || self.low > ceiling).then_some(self.high <= ceiling)
    }
}

/// The two-sided 95% quantile of Student's t for `df` degrees of freedom (rounded up
/// between the tabled ones, so the interval errs wide).
fn t95(df: usize) -> f64 {
    const TABLE: [f64; 10] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    ];
    match df {
        0 => f64::INFINITY,
        1..=10 => TABLE[df - 1],
        11..=20 => 2.201,
        21..=30 => 2.080,
        _ => 2.042,
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
        log(&format!(
            "`{name}`: instructions per request, statistics off and on"
        ));
        // Twice off: what two processes of one binary read apart (hash seeds, ids and
        // timers differ), the count's own noise.
        let control_instructions = instructions(ctx, name, paths, false)?;
        let off_instructions = instructions(ctx, name, paths, false)?;
        let on_instructions = instructions(ctx, name, paths, true)?;
        let write_seconds = write_cost(ctx, name, paths)?;

        log(&format!("`{name}`: control, statistics off against off"));
        let seconds = (ctx.settings.seconds / 2).max(2);
        let [a, b] = compare(ctx, name, paths, [false, false], CONTROL_PAIRS, seconds)?;
        rows.push(Row {
            figure: format!(
                "`{name}`: control, statistics off against off (throughput; ratio: mean of pairs, \
                 95% interval)"
            ),
            hub: rps(a.per_second()),
            floor: rps(b.per_second()),
            ratio: a.rate_ratios(&b).show(),
            budget: "—".into(),
            pass: None,
        });

        log(&format!("`{name}`: statistics off against on"));
        let [off, on] = compare(ctx, name, paths, [false, true], PAIRS, seconds)?;
        let throughput = on.rate_ratios(&off);
        rows.push(Row {
            figure: format!("`{name}`: throughput with statistics on (floor: off, same run)"),
            hub: rps(on.per_second()),
            floor: rps(off.per_second()),
            ratio: throughput.show(),
            budget: format!("≥ {MIN_ON_OFF_RATIO}× off, judged when the interval is on one side"),
            pass: throughput.at_least(MIN_ON_OFF_RATIO),
        });
        let p99 = on.p99_ratios(&off);
        rows.push(Row {
            figure: format!(
                "`{name}`: p99 with statistics on (floor: off; figures: medians of rounds)"
            ),
            hub: ms(on.p99()),
            floor: ms(off.p99()),
            ratio: p99.show(),
            budget: format!("≤ {MAX_P99_RATIO}× off, judged when the interval is on one side"),
            pass: p99.at_most(MAX_P99_RATIO),
        });
        // Recording's cost per request: its own instructions, and its share of a write
        // every ten seconds at the throughput just measured, against the CPU a request
        // costs with recording off.
        let request_share = on_instructions / off_instructions - 1.0;
        let requests_per_write = on.per_second() * DEFAULT_WRITE_SECS;
        let write_share = write_seconds * 1e6 / requests_per_write / off.cpu_us_per_request();
        let share = request_share + write_share;
        rows.push(Row {
            figure: format!("`{name}`: control, instructions per request off against off"),
            hub: thousands(control_instructions),
            floor: thousands(off_instructions),
            ratio: format!("{:.3}×", control_instructions / off_instructions),
            budget: "—".into(),
            pass: None,
        });
        rows.push(Row {
            figure: format!(
                "`{name}`: instructions per request with statistics on, writes held off \
                 (floor: off; callgrind)"
            ),
            hub: thousands(on_instructions),
            floor: thousands(off_instructions),
            ratio: format!("{:.3}×", on_instructions / off_instructions),
            budget: "—".into(),
            pass: None,
        });
        rows.push(Row {
            figure: format!(
                "`{name}`: CPU per statistics write, every {DEFAULT_WRITE_SECS} s (floor: \
                 CPU per request off; ratio: share per request at the throughput above)"
            ),
            hub: ms(write_seconds * 1e3),
            floor: us(off.cpu_us_per_request()),
            ratio: format!("{:.2}%", write_share * 100.0),
            budget: "—".into(),
            pass: None,
        });
        rows.push(Row {
            figure: format!("`{name}`: recording's cost per request in all (the two above)"),
            hub: format!("{:.2}%", share * 100.0),
            floor: "—".into(),
            ratio: "—".into(),
            budget: format!("≤ {}%", MAX_RECORDING_SHARE * 100.0),
            pass: Some(share <= MAX_RECORDING_SHARE),
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

//! `atlas-hub release stats`: a product's usage as a table (or the Hub's JSON): downloads,
//! update checks, latest lookups and distinct clients by day, version, platform or channel,
//! then the installed base on the last day and each channel's rollout adoption.

use serde_json::Value;

use super::admin::AdminArgs;
use super::hub::ClientError;
use super::table::Table;

/// `release stats`.
#[derive(clap::Args)]
pub struct StatsArgs {
    #[command(flatten)]
    admin: AdminArgs,
    /// The product.
    #[arg(long)]
    product: String,
    /// First day: `30d` (days back from today, the default), or a date `YYYY-MM-DD`.
    #[arg(long, default_value = "30d")]
    since: String,
    /// Last day, `YYYY-MM-DD` (default: today).
    #[arg(long)]
    until: Option<String>,
    /// Rows by day, version, platform or channel.
    #[arg(long, default_value = "day", value_parser = ["day", "version", "platform", "channel"])]
    by: String,
    /// Print the Hub's JSON instead of tables.
    #[arg(long)]
    json: bool,
}

/// `30d` → the date 29 days before today (30 days, today included); a date as given.
fn since(value: &str) -> Result<String, ClientError> {
    if let Some(days) = value.strip_suffix('d') {
        let days: i64 = days
            .parse()
            .ok()
            .filter(|d| (1..=3660).contains(d))
            .ok_or_else(|| {
                ClientError::Usage(format!(
                    "--since {value:?}: give days such as 30d, or YYYY-MM-DD"
                ))
            })?;
        let day = time::OffsetDateTime::now_utc().date() - time::Duration::days(days - 1);
        return Ok(day.to_string());
    }
    Ok(value.to_owned())
}

fn int(v: &Value) -> String {
    v.as_i64().map_or_else(|| "-".to_owned(), |n| n.to_string())
}

fn percent(v: &Value) -> String {
    v.as_f64()
        .map_or_else(|| "-".to_owned(), |f| format!("{:.1}%", f * 100.0))
}

/// Runs `release stats`.
pub async fn run(a: StatsArgs) -> Result<(), String> {
    stats(a).await.map_err(String::from)
}

async fn stats(a: StatsArgs) -> Result<(), ClientError> {
    let mut query = format!("?since={}&by={}", since(&a.since)?, a.by);
    if let Some(until) = &a.until {
        query.push_str(&format!("&until={until}"));
    }
    let product = a.product.clone();
    let by = a.by.clone();
    let json = a.json;
    let hub = a.admin.hub()?;
    let path = format!(
        "/api/v1/admin/stats/{}{query}",
        percent_encoding::utf8_percent_encode(&product, percent_encoding::NON_ALPHANUMERIC)
    );
    let report = hub
        .get_json(&path, &format!("read {product}'s statistics"))
        .await?;
    if json {
        println!("{report}");
        return Ok(());
    }
    println!(
        "{product} from {} to {}",
        report["since"].as_str().unwrap_or("?"),
        report["until"].as_str().unwrap_or("?")
    );
    let mut t = Table::new(&[
        &by.to_uppercase(),
        "DOWNLOADS",
        "UPDATE CHECKS",
        "LATEST LOOKUPS",
        "CLIENTS",
    ]);
    let rows = report["rows"].as_array().cloned().unwrap_or_default();
    for r in rows.iter().chain(std::iter::once(&report["totals"])) {
        t.row(vec![
            r["key"].as_str().unwrap_or("").to_owned(),
            int(&r["downloads"]),
            int(&r["updateChecks"]),
            int(&r["latestLookups"]),
            r["distinctClients"]
                .as_u64()
                .map_or_else(|| "-".to_owned(), |n| format!("~{n}")),
        ]);
    }
    print!("{}", t.render());

    if let Some(last) = report["installedBase"].as_array().and_then(|d| d.last()) {
        println!(
            "\ninstalled base on {} (~{} clients reporting a version)",
            last["day"].as_str().unwrap_or("?"),
            int(&last["clients"])
        );
        let mut t = Table::new(&["VERSION", "CLIENTS", "SHARE"]);
        for v in last["versions"].as_array().into_iter().flatten() {
            t.row(vec![
                v["version"].as_str().unwrap_or("").to_owned(),
                format!("~{}", int(&v["clients"])),
                percent(&v["share"]),
            ]);
        }
        print!("{}", t.render());
    }
    let rollouts = report["rollouts"].as_array().cloned().unwrap_or_default();
    if !rollouts.is_empty() {
        println!("\nrollouts");
        let mut t = Table::new(&[
            "CHANNEL", "VERSION", "ROLLOUT", "OFFERED", "ADOPTED", "ADOPTION",
        ]);
        for r in &rollouts {
            t.row(vec![
                r["channel"].as_str().unwrap_or("").to_owned(),
                r["version"].as_str().unwrap_or("").to_owned(),
                format!("{}%", int(&r["rolloutPercent"])),
                format!("~{}", int(&r["offered"])),
                format!("~{}", int(&r["adopted"])),
                percent(&r["adoption"]),
            ]);
        }
        print!("{}", t.render());
    }
    eprintln!("\n{}", report["counted"].as_str().unwrap_or(""));
    Ok(())
}

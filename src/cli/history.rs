//! `rumor log` and `rumor report`: who changed what, and the fleet's
//! security state on one page. They parse arguments, call
//! [`crate::ops::history`] / [`crate::ops::report`] and print.

use std::path::PathBuf;

use clap::Args;

use super::fleet::FleetArg;
use crate::device;
use crate::error::Error;
use crate::fleet::Fleet;
use crate::ops;

/// `rumor log`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    rumor log pidgeon-1                 every secret's history: created, rotated, by whom, why\n  \
    rumor log pidgeon-1 wifi.pass       one secret; equal fingerprints mean equal values\n  \
    rumor log pidgeon-1 --json          the same for scripts\n\n\
    Values are never shown, only the first 12 hex digits of their SHA-256.")]
pub(crate) struct LogArgs {
    /// The device.
    pub device: String,
    /// Only this secret (a workspace name like wifi.pass).
    pub secret: Option<String>,
    /// Print JSON for scripts.
    #[arg(long)]
    pub json: bool,
}

/// `rumor log`.
pub(crate) fn log(arg: &FleetArg, args: LogArgs) -> Result<(), Error> {
    let fleet = Fleet::open(&arg.dir()?)?;
    device::check_id_in(&fleet, &args.device)?;
    let o = ops::open_fleet(fleet)?;
    let changes = ops::history::log(&o, &args.device, args.secret.as_deref())?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&changes).unwrap_or_default()
        );
        return Ok(());
    }
    println!(
        "{:<20}  {:<24} {:<11} {:<12}  {:<20}  BY",
        "WHEN", "SECRET", "ACTION", "FINGERPRINT", "WHY"
    );
    for c in &changes {
        let (why, by) = match &c.provenance {
            Some(p) => (p.reason.as_str(), p.operator.as_str()),
            None => ("unknown", "unknown"),
        };
        println!(
            "{:<20}  {:<24} {:<11} {:<12}  {:<20}  {by}",
            c.at.replace('T', " ").trim_end_matches('Z'),
            c.secret,
            c.action.word(),
            c.fingerprint.as_deref().unwrap_or("-"),
            why,
        );
    }
    if changes.is_empty() {
        eprintln!(
            "rumor: {}: no history in the store; run `rumor new {}`",
            args.device, args.device
        );
    }
    Ok(())
}

/// `rumor report`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    rumor report                        report.html: expiry, secret ages, drift, keys, retired devices, changes\n  \
    rumor report -o public/index.html   where CI publishes it\n  \
    rumor report --json | jq .drift     the same data for scripts\n\n\
    The page is one self-contained file (inline CSS and SVG, no script, nothing fetched)\n\
    and holds no secret value.")]
pub(crate) struct ReportArgs {
    /// Where to write the page.
    #[arg(short, long, value_name = "PATH", default_value = "report.html")]
    pub output: PathBuf,
    /// Certificates expiring within this many days are flagged (as `check --days`).
    #[arg(long, default_value_t = 30)]
    pub days: u32,
    /// Print the report's data as JSON to stdout instead of writing the page.
    #[arg(long)]
    pub json: bool,
    /// Leave git out: no drift against git (for a fleet that is not a git
    /// repository).
    #[arg(long)]
    pub no_git: bool,
    /// How many of the latest changes to show.
    #[arg(long, value_name = "N", default_value_t = 30)]
    pub changes: usize,
    /// Secrets the profile marks renew are overdue when older than this.
    #[arg(long, value_name = "DAYS", default_value_t = 180)]
    pub max_age: u32,
    /// Describe the fleet as of this date (YYYY-MM-DD, UTC) instead of
    /// now: what will have expired by the next maintenance window.
    #[arg(long, value_name = "DATE")]
    pub at: Option<String>,
}

/// `rumor report`.
pub(crate) fn report(arg: &FleetArg, args: ReportArgs) -> Result<(), Error> {
    let now = match &args.at {
        Some(date) => {
            let format = time::macros::format_description!("[year]-[month]-[day]");
            time::Date::parse(date, &format)
                .map_err(|_| {
                    Error::Usage(format!(
                        "--at \"{}\" is not a date like 2027-01-31",
                        date.escape_default()
                    ))
                })?
                .midnight()
                .assume_utc()
        }
        None => time::OffsetDateTime::now_utc(),
    };
    let o = ops::open(&arg.dir()?)?;
    let options = ops::report::ReportOptions {
        days: args.days,
        max_age: args.max_age,
        git: !args.no_git,
        changes: args.changes,
        now,
    };
    let report = ops::report::build(&o, &options)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
        return Ok(());
    }
    let page = ops::report::html::render(&report);
    crate::fsutil::write_atomic(&args.output, page.as_bytes(), 0o644)
        .map_err(|e| Error::io(&args.output, &e))?;
    eprintln!(
        "rumor: wrote {} ({} devices, {} problems)",
        args.output.display(),
        report.devices.len(),
        report.problems()
    );
    Ok(())
}

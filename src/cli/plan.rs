//! `rumor plan` and `rumor retire`: they parse their arguments, call
//! [`crate::ops::plan`] and [`crate::ops::retire`], and print.

use clap::Args;

use super::fleet::FleetArg;
use crate::error::Error;
use crate::fleet::Fleet;
use crate::ops::{self, plan::DevicePlan, NewDevice};

/// `rumor plan`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    rumor plan --all                       what `rumor new --all` would do\n  \
    rumor plan pidgeon-7                   a new device: its address, secrets, files and store entries\n  \
    rumor plan --all --renew               what `rumor renew --all` would rotate\n  \
    rumor plan pidgeon-1 --secret wifi.pass --json\n  \
    rumor plan --all --expiring 30; [ $? -eq 2 ] && echo changes pending\n\n\
    Exit status: 0 nothing would change, 2 something would (as terraform plan -detailed-exitcode), \
    3 to 6 an error as for any command.")]
pub(crate) struct PlanArgs {
    /// Device ids.
    #[arg(value_name = "DEVICE", required_unless_present = "all")]
    pub devices: Vec<String>,
    /// Every device of the fleet that is not retired.
    #[arg(long, conflicts_with = "devices")]
    pub all: bool,
    /// Plan `rumor renew` (what the profile marks renew) instead of `rumor new`.
    #[arg(long)]
    pub renew: bool,
    /// Plan `rumor renew --secret NAME` (repeatable).
    #[arg(long = "secret", value_name = "NAME")]
    pub secrets: Vec<String>,
    /// Plan `rumor renew --expiring DAYS`.
    #[arg(long, value_name = "DAYS")]
    pub expiring: Option<u32>,
    /// Plan `rumor new --reuse-retired`.
    #[arg(long, conflicts_with_all = ["renew", "secrets", "expiring"])]
    pub reuse_retired: bool,
    /// Print JSON for scripts.
    #[arg(long)]
    pub json: bool,
}

/// `rumor retire`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    rumor retire pidgeon-3 --reason \"stolen from site 12\"\n  \
    rumor retire pidgeon-3 --dry-run       what it would write and remove\n  \
    git add -A && git commit -m \"retire pidgeon-3\"\n\n\
    The lighthouse includes revocations/nebula-blocklist.yaml (pki.blocklist); PostgreSQL \
    clients use revocations/postgres.crl. Secrets the device shared with others are listed: \
    rotate them (rumor plan shows them as due).")]
pub(crate) struct RetireArgs {
    /// Device ids.
    #[arg(value_name = "DEVICE", required = true)]
    pub devices: Vec<String>,
    /// Why, kept in devices/<id>.toml and the store.
    #[arg(long, value_name = "TEXT", default_value = "")]
    pub reason: String,
    /// Print what would change and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print JSON for scripts.
    #[arg(long)]
    pub json: bool,
}

/// Prints plans (stdout) and turns "something would change" into exit 2.
pub(crate) fn print(plans: &[DevicePlan], json: bool) -> Result<(), Error> {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(plans).unwrap_or_default()
        );
    } else {
        print!("{}", ops::plan::render(plans));
    }
    let changing = plans.iter().filter(|p| p.changes_anything()).count();
    if changing == 0 {
        eprintln!("rumor: plan: no changes in {} devices", plans.len());
        return Ok(());
    }
    Err(Error::Pending(format!(
        "plan: {changing} of {} devices would change",
        plans.len()
    )))
}

/// `rumor plan`.
pub(crate) fn plan(arg: &FleetArg, args: PlanArgs) -> Result<(), Error> {
    let fleet = Fleet::open(&arg.dir()?)?;
    let ids = super::fleet::targets(&fleet, args.all, &args.devices)?;
    let command = if args.renew || !args.secrets.is_empty() || args.expiring.is_some() {
        ops::plan::Command::Renew {
            secrets: args.secrets.clone(),
            expiring: args.expiring,
        }
    } else {
        ops::plan::Command::New
    };
    let new = NewDevice {
        reuse_retired: args.reuse_retired,
        ..NewDevice::default()
    };
    let o = ops::plan::open_read_only(fleet)?;
    let plans = ops::plan::plan(&o, &ids, &command, &new)?;
    print(&plans, args.json)
}

/// `rumor retire`.
pub(crate) fn retire(arg: &FleetArg, args: RetireArgs) -> Result<(), Error> {
    let fleet = Fleet::open(&arg.dir()?)?;
    for id in &args.devices {
        crate::device::check_id_in(&fleet, id)?;
    }
    let o = if args.dry_run {
        ops::plan::open_read_only(fleet)?
    } else {
        ops::open_fleet(fleet)?
    };
    let done = ops::retire::retire(&o, &args.devices, &args.reason, args.dry_run)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&done).unwrap_or_default()
        );
    } else {
        let would = if args.dry_run { "would " } else { "" };
        for r in &done {
            let state = if r.already { " (already retired)" } else { "" };
            println!("{}: retired at {}{state}", r.device, r.retired.at);
            if let Some(fp) = &r.nebula_fingerprint {
                println!("  nebula fingerprint {fp}");
            }
            for serial in &r.revoked_serials {
                println!("  revoked certificate serial {serial}");
            }
            for f in &r.files {
                println!("  {would}{} {}", f.change, f.path);
            }
            for s in &r.store_writes {
                println!("  {would}store {s}");
            }
            for (other, names) in &r.shared {
                println!(
                    "  shared with {other}: {} (rotate: rumor plan {other} shows them as due)",
                    names.join(", ")
                );
            }
        }
    }
    let shared: usize = done.iter().map(|r| r.shared.len()).sum();
    if shared > 0 {
        eprintln!(
            "rumor: warning: {shared} devices still use secrets a retired device knew; rotate them"
        );
    }
    if args.dry_run
        && done
            .iter()
            .any(|r| !r.files.is_empty() || !r.store_writes.is_empty())
    {
        return Err(Error::Pending(format!(
            "retire --dry-run: {} devices would change",
            done.iter()
                .filter(|r| !r.files.is_empty() || !r.store_writes.is_empty())
                .count()
        )));
    }
    Ok(())
}

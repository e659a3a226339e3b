//! Fleet commands that read: `get`, `list`, `spec` and `check`.

use std::path::Path;

use clap::Args;
use serde_json::json;

use super::fleet::FleetArg;
use crate::device;
use crate::error::Error;
use crate::fleet::Fleet;
use crate::ops::{self, Opened};

/// `rumor get`.
#[derive(Args, Debug)]
pub(crate) struct GetArgs {
    /// The device.
    pub device: String,
    /// The stored name, e.g. age.key or cloud.api-key.hash.
    pub name: String,
}

/// `rumor list`.
#[derive(Args, Debug)]
pub(crate) struct ListArgs {
    /// Print JSON for scripts.
    #[arg(long)]
    pub json: bool,
}

/// `rumor spec`.
#[derive(Args, Debug)]
pub(crate) struct SpecArgs {
    /// The device.
    pub device: String,
}

/// `rumor check`.
#[derive(Args, Debug)]
pub(crate) struct CheckArgs {
    /// Devices to check (default: all).
    #[arg(value_name = "DEVICE")]
    pub devices: Vec<String>,
    /// Certificates must stay valid for this many days.
    #[arg(long, default_value_t = 30)]
    pub days: u32,
    /// Print JSON for scripts.
    #[arg(long)]
    pub json: bool,
}

/// `rumor get`.
pub(crate) fn get(arg: &FleetArg, args: GetArgs) -> Result<(), Error> {
    let fleet = Fleet::open(&arg.dir()?)?;
    device::check_id_in(&fleet, &args.device)?;
    let o = ops::open_fleet(fleet)?;
    device::load(&o.fleet, &args.device)?;
    let path = format!("{}/current", o.fleet.device_path(&args.device));
    let current = o.handle.read(&path)?.ok_or_else(|| {
        Error::Input(format!(
            "{} is not provisioned: nothing at \"{path}\" in {}; run `rumor new {}`",
            args.device,
            o.handle.describe(),
            args.device
        ))
    })?;
    let value = current.data.get(&args.name).ok_or_else(|| {
        let names: Vec<&str> = current.data.keys().map(String::as_str).collect();
        Error::Input(format!(
            "{} has no \"{}\"; stored names: {}",
            args.device,
            args.name,
            names.join(", ")
        ))
    })?;
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(value.as_bytes())
        .and_then(|_| out.write_all(b"\n"))
        .map_err(|e| Error::io(Path::new("<stdout>"), &e))
}

/// `rumor spec`.
pub(crate) fn spec(arg: &FleetArg, args: SpecArgs) -> Result<(), Error> {
    let fleet = Fleet::open(&arg.dir()?)?;
    device::check_id_in(&fleet, &args.device)?;
    let device = device::load(&fleet, &args.device)?;
    let (_, text) = device::spec(&fleet, &args.device, &device)?;
    print!("{text}");
    Ok(())
}

/// `rumor list`.
pub(crate) fn list(arg: &FleetArg, args: ListArgs) -> Result<(), Error> {
    let o = ops::open(&arg.dir()?)?;
    let now = time::OffsetDateTime::now_utc();
    let mut rows = Vec::new();
    for id in device::ids(&o.fleet)? {
        let device = device::load(&o.fleet, &id)?;
        let oldest = ops::check::oldest_secret(&o, &id)?;
        let age_days = oldest.map(|t| (now - t).whole_days());
        let retired = ops::retire::retired(&o, &id, &device)?;
        rows.push(json!({ "device": id, "name": device.name, "ip": device.ip, "provisioned": oldest.is_some(), "oldest_secret_days": age_days, "retired": retired }));
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).unwrap_or_default()
        );
    } else {
        println!("{:<24} {:<16} OLDEST SECRET", "DEVICE", "IP");
        let (retired, active): (Vec<_>, Vec<_>) =
            rows.iter().partition(|r| !r["retired"].is_null());
        for row in active {
            let age = match row["oldest_secret_days"].as_i64() {
                Some(d) => format!("{d} days"),
                None => "not provisioned".into(),
            };
            println!(
                "{:<24} {:<16} {age}",
                row["device"].as_str().unwrap_or(""),
                row["ip"].as_str().unwrap_or("")
            );
        }
        if !retired.is_empty() {
            println!("\nRETIRED (address reserved)");
            for row in retired {
                let r = &row["retired"];
                let reason = r["reason"].as_str().unwrap_or("");
                println!(
                    "{:<24} {:<16} retired {}{}",
                    row["device"].as_str().unwrap_or(""),
                    row["ip"].as_str().unwrap_or(""),
                    r["at"].as_str().unwrap_or(""),
                    if reason.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", reason.escape_default())
                    }
                );
            }
        }
    }
    Ok(())
}

/// `rumor check`.
pub(crate) fn check(arg: &FleetArg, args: CheckArgs) -> Result<(), Error> {
    let fleet = Fleet::open(&arg.dir()?)?;
    let identities = ops::admin_identities(true)?;
    let handle = fleet.store(&identities)?;
    let owners = device::owners(&fleet)?;
    let o = Opened {
        fleet,
        identities,
        handle,
        owners,
    };
    let ids = if args.devices.is_empty() {
        ops::active_ids(&o.fleet)?
    } else {
        args.devices.clone()
    };
    let mut report = Vec::new();
    let mut problems_total = 0;
    // Every entry of the embedded store must carry the store key's
    // signature, also those no device reads.
    if let Some(local) = o.handle.local() {
        let problems: Vec<String> = local
            .verify_all()
            .into_iter()
            .chain(crate::admins::store_mismatch(&o.fleet, &o.identities))
            .collect();
        problems_total += problems.len();
        if !problems.is_empty() {
            report.push(json!({ "device": "store", "ok": false, "problems": problems }));
        }
    }
    // The devices are checked on the pool (read-only, each its own store
    // reads), and reported in order.
    let checked = ops::for_each(&ids, &|_, _| {}, |id| {
        Ok(ops::check::device(&o, id, args.days))
    });
    for (id, problems) in ids.iter().zip(checked) {
        let problems = problems.unwrap_or_else(|e| vec![e.to_string()]);
        problems_total += problems.len();
        report.push(json!({ "device": id, "ok": problems.is_empty(), "problems": problems }));
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        for row in &report {
            for p in row["problems"].as_array().into_iter().flatten() {
                println!(
                    "{}: {}",
                    row["device"].as_str().unwrap_or(""),
                    p.as_str().unwrap_or("")
                );
            }
        }
        if problems_total == 0 {
            let noun = if ids.len() == 1 { "device" } else { "devices" };
            eprintln!("rumor: {} {noun} ok", ids.len());
        }
    }
    if problems_total > 0 {
        return Err(Error::Integrity(format!(
            "{problems_total} problems in {} devices",
            report.iter().filter(|r| r["ok"] == false).count()
        )));
    }
    Ok(())
}

//! The report as one self-contained HTML page: inline CSS and SVG, no
//! script, no font, image or link fetched from anywhere. Every string is
//! escaped: device names and reasons come from git, which anyone who can
//! push writes.

use std::fmt::Write;

use super::{Cert, Report};

/// Escapes text for HTML content and attribute values.
pub(crate) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1300px}\
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ccc}\
table{border-collapse:collapse;font-size:.85em}td,th{border:1px solid #ddd;padding:3px 6px;text-align:left;vertical-align:top}\
th{background:#f4f4f4}.expired,.bad{background:#f8d7da}.expiring,.warn{background:#fff3cd}.ok{background:#e8f5e9}\
.mono{font-family:ui-monospace,monospace}.summary span{display:inline-block;margin-right:1.5em}\
.none{color:#666;font-style:italic}";

/// The page.
pub(crate) fn render(r: &Report) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\
         <title>rumor report: {}</title><style>{STYLE}</style></head><body>\n",
        esc(&r.fleet)
    );
    let _ = write!(
        h,
        "<h1>Fleet security report</h1>\n<p class=\"summary\"><span>fleet <b>{}</b></span><span>store <b>{}</b></span><span>as of <b>{}</b></span><span>{} devices</span><span><b>{}</b> problems</span></p>\n",
        esc(&r.fleet),
        esc(&r.store),
        esc(&r.at),
        r.devices.len(),
        r.problems()
    );
    certificates(&mut h, r);
    secrets(&mut h, r);
    drift(&mut h, r);
    access(&mut h, r);
    retired(&mut h, r);
    changes(&mut h, r);
    h.push_str("</body></html>\n");
    h
}

fn certificates(h: &mut String, r: &Report) {
    let _ = write!(
        h,
        "<h2 id=\"certificates\">Certificate expiry</h2>\n<p>Flagged: expired, or expiring within {} days (<code>rumor check --days {}</code>). Rotate with <code>rumor renew --all --expiring {}</code>.</p>\n",
        r.days, r.days, r.days
    );
    if r.certificates.is_empty() {
        h.push_str("<p class=\"none\">No certificates in the store.</p>\n");
        return;
    }
    timeline(h, r);
    h.push_str("<table><tr><th>device</th><th>certificate</th><th>kind</th><th>CA</th><th>expires</th><th>days left</th><th>state</th></tr>\n");
    let mut certs: Vec<&Cert> = r.certificates.iter().collect();
    certs.sort_by_key(|c| c.days_left);
    for c in certs {
        let _ = writeln!(
            h,
            "<tr class=\"{}\"><td>{}</td><td class=\"mono\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&c.state),
            esc(&c.device),
            esc(&c.name),
            esc(&c.kind),
            esc(&c.ca),
            esc(&c.not_after),
            c.days_left,
            esc(&c.state)
        );
    }
    h.push_str("</table>\n");
}

/// An inline SVG: one bar per certificate from now to its expiry, the
/// threshold marked.
fn timeline(h: &mut String, r: &Report) {
    let before = 60.0_f64;
    let after = f64::from(r.days.saturating_mul(4).max(400));
    let (left, width, row) = (260.0_f64, 900.0_f64, 16.0_f64);
    let x = |days: f64| left + (days.clamp(-before, after) + before) / (before + after) * width;
    let height = 40.0 + row * r.certificates.len() as f64;
    let _ = writeln!(
        h,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{height}\" font-size=\"11\" role=\"img\" aria-label=\"certificate expiry timeline\">",
        w = left + width + 20.0
    );
    let now = x(0.0);
    let threshold = x(f64::from(r.days));
    let _ = write!(
        h,
        "<line x1=\"{now}\" y1=\"14\" x2=\"{now}\" y2=\"{height}\" stroke=\"#333\"/><text x=\"{now}\" y=\"10\" text-anchor=\"middle\">now</text>\n\
         <line x1=\"{threshold}\" y1=\"14\" x2=\"{threshold}\" y2=\"{height}\" stroke=\"#c00\" stroke-dasharray=\"4 3\"/><text x=\"{threshold}\" y=\"10\" fill=\"#c00\" text-anchor=\"start\">--days {}</text>\n",
        r.days
    );
    for (i, c) in r.certificates.iter().enumerate() {
        let y = 24.0 + row * i as f64;
        let colour = match c.state.as_str() {
            "expired" => "#d9534f",
            "expiring" => "#f0ad4e",
            _ => "#5cb85c",
        };
        let end = x(c.days_left as f64);
        let (from, to) = if end < now { (end, now) } else { (now, end) };
        let _ = writeln!(
            h,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{} {}</text><rect x=\"{from}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{colour}\"><title>{} {}: {} ({} days)</title></rect>",
            left - 6.0,
            y + 10.0,
            esc(&c.device),
            esc(&c.name),
            y + 2.0,
            (to - from).max(2.0),
            row - 4.0,
            esc(&c.device),
            esc(&c.name),
            esc(&c.not_after),
            c.days_left
        );
    }
    h.push_str("</svg>\n");
}

fn secrets(h: &mut String, r: &Report) {
    let _ = write!(
        h,
        "<h2 id=\"secrets\">Secret age and rotation policy</h2>\n<p><i>renew</i>: rotated by <code>rumor renew</code>, overdue after {} days; <i>certificate</i>: by <code>renew --expiring</code>; <i>kept</i>: only with <code>renew --secret NAME</code>. Ages come from the store's history.</p>\n",
        r.max_age_days
    );
    if r.secrets.is_empty() {
        h.push_str("<p class=\"none\">No provisioned device.</p>\n");
        return;
    }
    h.push_str("<table><tr><th>secret</th><th>policy</th><th>devices</th><th>oldest (days)</th><th>newest (days)</th><th>overdue</th></tr>\n");
    let days = |d: Option<i64>| d.map_or("unknown".to_owned(), |d| d.to_string());
    for s in &r.secrets {
        let class = if s.overdue.is_empty() { "" } else { "bad" };
        let _ = writeln!(
            h,
            "<tr class=\"{class}\"><td class=\"mono\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&s.secret),
            esc(&s.policy),
            s.devices,
            days(s.oldest_days),
            days(s.newest_days),
            esc(&s.overdue.join(", "))
        );
    }
    h.push_str("</table>\n");
}

fn drift(h: &mut String, r: &Report) {
    let _ = write!(
        h,
        "<h2 id=\"drift\">Drift</h2>\n<p>Device files against the store (<code>rumor check</code>), and the fleet's files against git at <span class=\"mono\">{}</span> (its index: a change staged but not committed is not seen).</p>\n",
        esc(&r.drift.git)
    );
    if r.drift.items.is_empty() {
        h.push_str("<p class=\"none\">No drift.</p>\n");
        return;
    }
    h.push_str("<table><tr><th>device</th><th>file</th><th>state</th><th>detail</th></tr>\n");
    for d in &r.drift.items {
        let state = match d.kind.as_str() {
            "differs-from-store" => "differs from the store",
            "store-newer-than-git" => "store newer than git",
            "not-committed" => "not committed",
            "untracked" => "not committed (untracked)",
            "deleted-not-committed" => "deleted, not committed",
            _ => "check",
        };
        let _ = writeln!(
            h,
            "<tr class=\"warn\"><td>{}</td><td class=\"mono\">{}</td><td>{}</td><td>{}</td></tr>",
            esc(d.device.as_deref().unwrap_or("")),
            esc(&d.file),
            state,
            esc(&d.detail)
        );
    }
    h.push_str("</table>\n");
}

fn access(h: &mut String, r: &Report) {
    h.push_str("<h2 id=\"keys\">Which keys open which files</h2>\n");
    if r.access.files.is_empty() {
        h.push_str("<p class=\"none\">No device files.</p>\n");
        return;
    }
    h.push_str("<table><tr><th>device file</th>");
    for (i, a) in r.access.admins.iter().enumerate() {
        let _ = write!(
            h,
            "<th title=\"{}\">admin {} <span class=\"mono\">{}…</span></th>",
            esc(a),
            i + 1,
            esc(&a.chars().take(14).collect::<String>())
        );
    }
    h.push_str("<th>device key</th><th>other recipients</th></tr>\n");
    let mark = |b: bool| {
        if b {
            "<td class=\"ok\">yes</td>"
        } else {
            "<td class=\"bad\">no</td>"
        }
    };
    for f in &r.access.files {
        let _ = write!(h, "<tr><td class=\"mono\">{}</td>", esc(&f.file));
        if let Some(e) = &f.error {
            let _ = writeln!(
                h,
                "<td class=\"bad\" colspan=\"{}\">{}</td></tr>",
                r.access.admins.len() + 2,
                esc(e)
            );
            continue;
        }
        for a in &f.admins {
            h.push_str(mark(*a));
        }
        match f.device_key {
            Some(b) => h.push_str(mark(b)),
            None => h.push_str("<td>no key stored</td>"),
        }
        let class = if f.unknown.is_empty() { "" } else { "bad" };
        let _ = writeln!(
            h,
            "<td class=\"mono {class}\">{}</td></tr>",
            esc(&f.unknown.join(", "))
        );
    }
    h.push_str("</table>\n");
}

fn retired(h: &mut String, r: &Report) {
    h.push_str("<h2 id=\"retired\">Retired devices and revocations</h2>\n");
    let rt = &r.retired;
    if rt.devices.is_empty() {
        h.push_str("<p class=\"none\">No retired device.</p>\n");
    } else {
        h.push_str("<table><tr><th>device</th><th>retired</th><th>reason</th><th>certificate</th><th>fingerprint / serial</th><th>revoked</th></tr>\n");
        for d in &rt.devices {
            let rows = d.certificates.len().max(1);
            let _ = write!(
                h,
                "<tr><td rowspan=\"{rows}\">{} (retired)</td><td rowspan=\"{rows}\">{}</td><td rowspan=\"{rows}\">{}</td>",
                esc(&d.id),
                esc(&d.at),
                esc(&d.reason)
            );
            if d.certificates.is_empty() {
                h.push_str(
                    "<td colspan=\"3\" class=\"none\">no certificate in the store</td></tr>\n",
                );
            }
            for (i, c) in d.certificates.iter().enumerate() {
                if i > 0 {
                    h.push_str("<tr>");
                }
                let _ = writeln!(
                    h,
                    "<td class=\"mono\">{}</td><td class=\"mono\">{}</td><td class=\"{}\">{}</td></tr>",
                    esc(&c.name),
                    esc(&c.id),
                    if c.revoked { "ok" } else { "bad" },
                    if c.revoked { "revoked" } else { "NOT revoked" }
                );
            }
        }
        h.push_str("</table>\n");
    }
    let _ = writeln!(
        h,
        "<p>Published: <span class=\"mono\">{}</span> lists {} Nebula fingerprints; <span class=\"mono\">{}</span> revokes {} serials.</p>",
        crate::device::NEBULA_BLOCKLIST,
        rt.nebula_blocklist.len(),
        crate::device::POSTGRES_CRL,
        rt.crl_serials.len()
    );
    for p in &rt.problems {
        let _ = writeln!(h, "<p class=\"bad\">{}</p>", esc(p));
    }
}

fn changes(h: &mut String, r: &Report) {
    h.push_str("<h2 id=\"changes\">Latest changes</h2>\n<p>From the store's history (<code>rumor log &lt;device&gt;</code>); values appear only as the first 12 hex digits of their SHA-256.</p>\n");
    if r.changes.is_empty() {
        h.push_str("<p class=\"none\">No history.</p>\n");
        return;
    }
    h.push_str("<table><tr><th>when</th><th>device</th><th>secret</th><th>action</th><th>why</th><th>fingerprint</th><th>by</th></tr>\n");
    for c in &r.changes {
        let (by, why) = match &c.provenance {
            Some(p) => (p.operator.as_str(), p.reason.as_str()),
            None => ("unknown", "unknown"),
        };
        // The version path is `<device path>/<stamp>`: its parent's name
        // is the device.
        let device = c.version.rsplit('/').nth(1).unwrap_or("");
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td title=\"{}\">{}</td><td class=\"mono\">{}</td><td>{}</td><td>{}</td><td class=\"mono\">{}</td><td class=\"mono\">{}</td></tr>",
            esc(&c.at),
            esc(&c.version),
            esc(device),
            esc(&c.secret),
            c.action.word(),
            esc(why),
            esc(c.fingerprint.as_deref().unwrap_or("-")),
            esc(by)
        );
    }
    h.push_str("</table>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(
            esc("<script>\"a\"&'b'</script>\u{1b}"),
            "&lt;script&gt;&quot;a&quot;&amp;&#39;b&#39;&lt;/script&gt;\u{fffd}"
        );
    }
}

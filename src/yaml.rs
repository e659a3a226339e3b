//! A guard for YAML input, spec files and SOPS files alike: libyaml's
//! scanner takes quadratic time on long runs of `[` or `{` (a 10 MB file
//! would hang), and serde stops at 128 levels anyway, so deeper flow
//! nesting is refused before parsing.

/// The deepest flow nesting taken.
pub(crate) const MAX_FLOW_DEPTH: usize = 256;

/// Counts `[`/`{` against `]`/`}` (quoting ignored, so it over-counts only
/// for brackets inside strings); on too deep a nesting, the line.
pub(crate) fn check_flow_depth(text: &str) -> Result<(), usize> {
    let mut depth = 0usize;
    for (at, byte) in text.bytes().enumerate() {
        match byte {
            b'[' | b'{' => depth += 1,
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        if depth > MAX_FLOW_DEPTH {
            return Err(text[..at].matches('\n').count() + 1);
        }
    }
    Ok(())
}

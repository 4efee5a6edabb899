//! Keeping secrets out of error text: some Redis error replies echo their arguments.

/// Replaces every run of 24+ alphanumeric characters (a password or a hash that an error
/// reply echoes, e.g. `ACL SETUSER u <pw` → "modifier '<pw'") with `<redacted>`.
pub(crate) fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() >= 24 {
            out.push_str("<redacted>");
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

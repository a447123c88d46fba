//! Crash points for the durability tests: with the `fault-injection` feature, a process
//! whose `PERFHOOK_FAULT` names a point aborts there. Without the feature they compile to
//! nothing, so the shipped binary carries none of it.

/// Aborts the process when `PERFHOOK_FAULT` names `point`.
#[cfg(feature = "fault-injection")]
pub(crate) fn point(point: &str) {
    static CHOSEN: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let chosen = CHOSEN.get_or_init(|| std::env::var("PERFHOOK_FAULT").ok());
    if chosen.as_deref() == Some(point) {
        eprintln!("perfhook: fault injection: aborting at {point}");
        std::process::abort();
    }
}

/// Does nothing: built without the `fault-injection` feature.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub(crate) fn point(_point: &str) {}

//! The ready line: which path traces, and what records lack and why.

use std::net::SocketAddr;

use super::{
    CapturePath, Options,
    features::{FeatureError, FeatureId, feature},
};

/// What the ready line reports, borrowed from a [`super::Capture`].
pub(super) struct Status<'a> {
    pub path: CapturePath,
    /// fentry tried and not used.
    pub fentry_unavailable: Option<&'a FeatureError>,
    /// Each feature's error, if it is not in use.
    pub oom_control: Option<&'a FeatureError>,
    pub candidates: Option<&'a FeatureError>,
    pub reclaim: Option<&'a FeatureError>,
    pub aftermath: Option<&'a FeatureError>,
    pub sigkills: Option<&'a FeatureError>,
    pub options: &'a Options,
    pub unresolved: &'a [&'static str],
}

impl Status<'_> {
    pub fn line(&self, metrics: Option<SocketAddr>) -> String {
        let mut ready = format!(
            "oomtrace: ready: oom:mark_victim attached via {}",
            self.path.name()
        );
        let mut note = |id: FeatureId, why: Option<&FeatureError>| {
            if let Some(why) = why {
                ready.push_str(&format!(" ({}: {why})", feature(id).missing));
            }
        };
        // On the tracepoint path the tp_btf features are absent by design.
        if self.path != CapturePath::Tracepoint {
            note(FeatureId::Fentry, self.fentry_unavailable);
            note(FeatureId::StackSearch, self.oom_control);
            // Without the OOM context there is no domain to walk: said once.
            if self.oom_control.is_none() {
                note(FeatureId::Candidates, self.candidates);
            }
            note(FeatureId::Reclaim, self.reclaim);
            note(FeatureId::Aftermath, self.aftermath);
        }
        // Asked for by flag: say so on every path when it cannot be done.
        if self.options.sigkill {
            note(FeatureId::Sigkill, self.sigkills);
        }
        if self.options.pressure_ns > 0
            && self.path == CapturePath::Tracepoint
            && let Some(why) = self.reclaim
        {
            ready.push_str(&format!(" (no --pressure warnings: reclaim {why})"));
        }
        if let Some(addr) = metrics {
            ready.push_str(&format!(" (metrics on http://{addr}/metrics)"));
        }
        if !self.unresolved.is_empty() {
            ready.push_str(&format!(
                " (not on this kernel, reported as null: {})",
                self.unresolved.join(", ")
            ));
        }
        ready
    }
}

#[cfg(test)]
mod tests {
    //! The expected lines are the wording main.rs printed before the ready
    //! line moved here, which the kernel tests and users grep.
    use super::*;

    const OPTIONS: Options = Options {
        ring_buffer_bytes: 1 << 20,
        pressure_ns: 0,
        sigkill: false,
    };

    fn status<'a>(path: CapturePath, options: &'a Options) -> Status<'a> {
        Status {
            path,
            fentry_unavailable: None,
            oom_control: None,
            candidates: None,
            reclaim: None,
            aftermath: None,
            sigkills: None,
            options,
            unresolved: &[],
        }
    }

    #[test]
    fn everything_attached_is_the_bare_line() {
        assert_eq!(
            status(CapturePath::Fentry, &OPTIONS).line(None),
            "oomtrace: ready: oom:mark_victim attached via fentry"
        );
    }

    #[test]
    fn each_missing_tp_btf_feature_says_why_in_order() {
        let eperm = FeatureError::Unavailable("EPERM".to_string());
        let missing = FeatureError::Unavailable("gone".to_string());
        let status = Status {
            fentry_unavailable: Some(&eperm),
            oom_control: Some(&missing),
            candidates: None,
            reclaim: Some(&missing),
            aftermath: Some(&missing),
            ..status(CapturePath::TpBtf, &OPTIONS)
        };
        assert_eq!(
            status.line(None),
            "oomtrace: ready: oom:mark_victim attached via tp_btf \
             (fentry unavailable, OOM context from the stack: EPERM) \
             (OOM killer context unavailable: gone) (reclaim history unavailable: gone) \
             (victim exits not followed: gone)"
        );
    }

    #[test]
    fn the_tracepoint_path_names_only_what_a_flag_asked_for() {
        let options = Options {
            pressure_ns: 1,
            sigkill: true,
            ..OPTIONS
        };
        let not_used = FeatureError::NotUsed("not used by the tracepoint path");
        let sigkill = FeatureError::NotUsed("not on the tracepoint path");
        let status = Status {
            oom_control: Some(&not_used),
            candidates: None,
            reclaim: Some(&not_used),
            aftermath: Some(&not_used),
            sigkills: Some(&sigkill),
            unresolved: &["task_struct.cgroups"],
            ..status(CapturePath::Tracepoint, &options)
        };
        let metrics = "127.0.0.1:9090".parse().ok();
        assert_eq!(
            status.line(metrics),
            "oomtrace: ready: oom:mark_victim attached via tracepoint \
             (SIGKILLs not traced: not on the tracepoint path) \
             (no --pressure warnings: reclaim not used by the tracepoint path) \
             (metrics on http://127.0.0.1:9090/metrics) \
             (not on this kernel, reported as null: task_struct.cgroups)"
        );
    }

    #[test]
    fn an_unasked_sigkill_is_not_mentioned() {
        let not_asked = FeatureError::NotUsed("not asked for (--sigkill)");
        let status = Status {
            sigkills: Some(&not_asked),
            ..status(CapturePath::TpBtf, &OPTIONS)
        };
        assert_eq!(
            status.line(None),
            "oomtrace: ready: oom:mark_victim attached via tp_btf"
        );
    }
}

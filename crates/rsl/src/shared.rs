//! What a replica's threads share: the status they publish, the view callers wait on, the
//! counters and histograms, and whether the replica has stopped. Data only: it imports none
//! of the thread modules.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use crate::metrics::Histograms;
use crate::status::{Counters, Status, View};

/// Where a replica's parts are shared between threads.
pub(crate) struct Shared {
    pub(crate) status: Mutex<Status>,
    /// Role, primary and ballot, published on every change so callers can await them.
    pub(crate) view: tokio::sync::watch::Sender<View>,
    pub(crate) counters: Counters,
    pub(crate) histograms: Histograms,
    /// More metrics text (the transport's counters), rendered on each scrape.
    pub(crate) extra_metrics: Mutex<Option<Box<dyn Fn() -> String + Send + Sync>>>,
    pub(crate) stopped: AtomicBool,
    pub(crate) executed: AtomicU64,
}

impl Shared {
    /// A replica's shared state before its threads start; `executed` is the slot its
    /// checkpoint covers.
    pub(crate) fn new(id: u32, executed: u64) -> Shared {
        Shared {
            status: Mutex::new(Status::starting(id)),
            view: tokio::sync::watch::Sender::new(View::default()),
            counters: Counters::default(),
            histograms: Histograms::default(),
            extra_metrics: Mutex::new(None),
            stopped: AtomicBool::new(false),
            executed: AtomicU64::new(executed),
        }
    }

    pub(crate) fn status(&self) -> Status {
        let mut status = self.status.lock().expect("status lock").clone();
        status.executed = self.executed.load(Ordering::Acquire);
        // The full status is published once per tick; what is executed is chosen, so the
        // commit point is at least the live executed slot.
        status.committed = status.committed.max(status.executed);
        status.counters = self.counters.snapshot();
        status
    }

    pub(crate) fn is_running(&self) -> bool {
        !self.stopped.load(Ordering::Acquire)
    }

    /// The replica's metrics in the Prometheus text format.
    pub(crate) fn metrics_text(&self) -> String {
        let extra = self.extra_metrics.lock().expect("metrics lock").as_ref().map(|f| f());
        crate::metrics::render(&self.status(), &self.histograms, extra.as_deref())
    }
}

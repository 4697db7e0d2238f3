//! Prometheus metrics at `/metrics`: requests and latency by action and result code, and the
//! core's key-cache size and misses (hits are key uses minus misses: the core does not count
//! them, see `ehsm_core::CacheStats`).

use std::sync::OnceLock;
use std::time::Duration;

use axum::extract::State;
use ehsm_proto::Action;
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::state::AppState;

/// One recorder per process (the `metrics` facade is global).
fn handle() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
                ])
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            Some(handle)
        })
        .as_ref()
}

/// Installs the recorder; called once at start-up so that the first request is counted.
pub(crate) fn init() {
    let _ = handle();
}

/// The codes the service answers with; other codes (none today) take the slow path.
const CODES: [u16; 4] = [200, 400, 404, 500];
/// Every action, and "none" for requests that named no known action.
const LABELS: usize = Action::ALL.len() + 1;

/// The handles of one action's series, each registered on first use. The `counter!` macro with
/// runtime labels looks its series up in the registry (hashing the labels) on every call, which
/// showed in the profile of a busy server; a handle is one atomic add. Registering lazily keeps
/// `/metrics` free of series that never counted anything.
#[derive(Default)]
struct Series {
    duration: OnceLock<Histogram>,
    requests: [OnceLock<Counter>; CODES.len()],
}

fn series(index: usize) -> &'static Series {
    static SERIES: OnceLock<[Series; LABELS]> = OnceLock::new();
    &SERIES.get_or_init(|| std::array::from_fn(|_| Series::default()))[index]
}

pub(crate) fn record(action: Option<Action>, code: u16, elapsed: Duration) {
    let label = action.map_or("none", Action::as_str);
    // `Action` is a field-less enum declared in the order of `Action::ALL`; "none" comes last.
    let series = series(action.map_or(Action::ALL.len(), |a| a as usize));
    series
        .duration
        .get_or_init(|| metrics::histogram!("ehsm_request_duration_seconds", "action" => label))
        .record(elapsed.as_secs_f64());
    let new_counter =
        || metrics::counter!("ehsm_requests_total", "action" => label, "code" => code.to_string());
    match CODES.iter().position(|&c| c == code) {
        Some(i) => series.requests[i].get_or_init(new_counter).increment(1),
        None => new_counter().increment(1),
    }
}

pub(crate) async fn render(State(state): State<AppState>) -> String {
    let stats = state.core.cache_stats();
    metrics::gauge!("ehsm_key_cache_entries").set(stats.entries as f64);
    metrics::counter!("ehsm_key_cache_misses_total").absolute(stats.misses);
    handle().map(PrometheusHandle::render).unwrap_or_default()
}

//! Prometheus metrics at `/metrics`: requests and latency by action and result code, and the
//! core's key-cache size and misses (hits are key uses minus misses: the core does not count
//! them, see `ehsm_core::CacheStats`).

use std::sync::OnceLock;
use std::time::Duration;

use axum::extract::State;
use ehsm_proto::Action;
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

pub(crate) fn record(action: Option<Action>, code: u16, elapsed: Duration) {
    let action = action.map_or("none", Action::as_str);
    metrics::counter!("ehsm_requests_total", "action" => action, "code" => code.to_string())
        .increment(1);
    metrics::histogram!("ehsm_request_duration_seconds", "action" => action)
        .record(elapsed.as_secs_f64());
}

pub(crate) async fn render(State(state): State<AppState>) -> String {
    let stats = state.core.cache_stats();
    metrics::gauge!("ehsm_key_cache_entries").set(stats.entries as f64);
    metrics::counter!("ehsm_key_cache_misses_total").absolute(stats.misses);
    handle().map(PrometheusHandle::render).unwrap_or_default()
}

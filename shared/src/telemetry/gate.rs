//! The one filter in front of both layers: every span at INFO or above
//! (so traces are whole and a warning inside a request still carries the
//! request's fields and trace id, whatever the log level), and the events
//! the log filter lets through. One global filter rather than a filter per
//! layer: per-layer filters decided spans differently from one run to the
//! next under many threads, and a span one layer missed lost its trace.

use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Level, Metadata, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

pub(super) struct Gate {
    /// The log filter (`log.filter` or `RUST_LOG`).
    pub(super) events: EnvFilter,
}

fn traced_span(meta: &Metadata<'_>) -> bool {
    meta.is_span() && *meta.level() <= Level::INFO
}

impl<S> Layer<S> for Gate
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        if traced_span(meta) {
            Interest::always()
        } else {
            <EnvFilter as Layer<S>>::register_callsite(&self.events, meta)
        }
    }

    fn enabled(&self, meta: &Metadata<'_>, ctx: Context<'_, S>) -> bool {
        traced_span(meta) || <EnvFilter as Layer<S>>::enabled(&self.events, meta, ctx)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        let events = <EnvFilter as Layer<S>>::max_level_hint(&self.events).unwrap_or(LevelFilter::TRACE);
        Some(events.max(LevelFilter::INFO))
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        <EnvFilter as Layer<S>>::on_new_span(&self.events, attrs, id, ctx);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        <EnvFilter as Layer<S>>::on_record(&self.events, id, values, ctx);
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        <EnvFilter as Layer<S>>::on_enter(&self.events, id, ctx);
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        <EnvFilter as Layer<S>>::on_exit(&self.events, id, ctx);
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        <EnvFilter as Layer<S>>::on_close(&self.events, id, ctx);
    }
}

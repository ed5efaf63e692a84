"""Metrics for the validation gate, the sparklines and the evidence bundle.

`source.MetricsSource` is the protocol; `prometheus.PrometheusSource` and
`simsource.SimMetricsSource` implement it; `presets` says what each quantity is per engine;
`baseline` captures the last-known-good window; `series` keeps live series for sparklines.
Modules are imported on demand, so importing this package costs nothing.
"""

"""Drift monitoring, Prometheus rules and Grafana dashboards."""

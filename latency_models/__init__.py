"""Per-layer latency features and per-board scikit-learn latency models."""

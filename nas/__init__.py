"""Hardware-aware neural architecture search driven by learned latency models and exact peak memory."""

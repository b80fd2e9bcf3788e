"""Measurement of models and artifacts: size, MACs, sparsity, metric and latency through ORT."""

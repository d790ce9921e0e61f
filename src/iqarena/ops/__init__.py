"""Shared numerics with MATLAB parity: colour conversions, filters, resizing, pyramids, statistics."""

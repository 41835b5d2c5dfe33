"""The ekuiper-sdk benchmark against the official SDK: ``python -m benchmarks``."""

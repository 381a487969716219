"""Benchmarks run by ``python -m reprolib bench <name>``; each module offers ``run_benchmark``
(returns a JSON-serialisable dict) and ``main(argv) -> int`` (parses flags, prints the JSON).
"""

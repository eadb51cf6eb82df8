"""Benchmarks of dmuc (issue 5): run each as C{python -m bench.<name>}."""

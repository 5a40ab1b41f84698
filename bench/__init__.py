"""qmon benchmarks: ``python -m bench`` runs them all and prints figure, target, pass/fail."""

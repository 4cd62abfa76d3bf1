"""The synthetic municipality: a deterministic population for the demo, the simulators and the
benchmarks. Only synthetic people: CPR numbers fail modulus 11 (see hub.domain.cpr)."""

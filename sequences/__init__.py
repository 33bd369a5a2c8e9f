"""Sequences: what to apply (pulses, reads, sweeps) as plain data and generators, runnable on
any backend."""

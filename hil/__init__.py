"""memristor-hil: on-line training, characterisation and rehearsal of 1T1R memristor benches."""

__version__ = "0.1.0"

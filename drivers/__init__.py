"""Instrument drivers: one module per instrument family (SCPI over pyvisa, serial over
pyserial). No physics here."""

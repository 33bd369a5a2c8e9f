"""Instrument drivers: one module per instrument family (SCPI over pyvisa, serial over
pyserial). No physics here.

* :mod:`drivers.scpi` — SCPI base (``SCPIInstrument``, declarative ``Control`` settings).
* :mod:`drivers.pulsegen` — ``PulseGenerator`` behaviour; models :class:`Keysight33500B`
  (:mod:`drivers.keysight33500`) and :class:`Keysight81160A` (:mod:`drivers.keysight81160`).
* :mod:`drivers.smu` — ``SourceMeter`` behaviour; models :class:`Keithley2450`
  (:mod:`drivers.keithley2450`) and :class:`KeysightB2900` (:mod:`drivers.keysightb2900`).
* :mod:`drivers.mcu` — the multiplexer MCU link (``MuxController``) and the protocol's framing
  and route definitions (``docs/mcu-protocol.md``).
* :mod:`drivers.errors` — typed errors, all naming the instrument.
"""

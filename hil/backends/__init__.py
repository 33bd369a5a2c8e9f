"""Backends: the swap point between what the trainer wants and what the bench does.

:mod:`~hil.backends.base` is the interface, :mod:`~hil.backends.factory` picks the implementation a
bench file names: :mod:`~hil.backends.sim` (numpy physics) or :mod:`~hil.backends.instruments`
behind :mod:`~hil.backends.sequencer` (drivers and transports); :mod:`~hil.backends.dryrun` clocks
a rehearsal. Nothing here imports the CLI, training, characterisation or studies.
"""

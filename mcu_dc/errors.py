"""Errors a user sees.

Every error mcu_dc raises on bad input is an :class:`McuDcError` whose message is one
paragraph: what is wrong (layer, file, byte offset, board budget and overshoot) and what
to do about it. The CLI prints the message and exits non-zero; it never prints a
traceback for these.
"""

from __future__ import annotations


class McuDcError(Exception):
    """Base class: a problem with the user's input or environment, with a fix to try."""

    exit_code = 2


class ConfigError(McuDcError):
    """A setting is out of range or inconsistent."""


class ModelError(McuDcError):
    """The PyTorch model cannot be compressed or deployed as given."""


class DataError(McuDcError):
    """A dataset is missing, corrupt or of the wrong shape."""


class FormatError(McuDcError):
    """A .mcudc file (or model blob) is malformed, truncated, corrupt or too new."""


class BoardError(McuDcError):
    """A board file is malformed or a board is unknown."""


class BuildError(McuDcError):
    """A compiler, linker or other build tool failed."""


class FitError(McuDcError):
    """The firmware does not fit the board's flash or RAM."""

    exit_code = 3


class DeviceError(McuDcError):
    """The device (real or emulated) did not answer as the protocol requires."""


class MismatchError(McuDcError):
    """The device's outputs differ from the simulator's."""

    exit_code = 4

"""The one error hierarchy: every user-facing failure is a HwbenchError with a message that names
the input, says what is wrong with it and, where it can, what to do."""


class HwbenchError(Exception):
    """A failure the user can act on; the CLI prints it in one line and exits non-zero."""


class ModelError(HwbenchError):
    """A model file that cannot be read, or that hwbench does not support."""


class BoardError(HwbenchError):
    """A board that does not exist or whose description is invalid."""


class PlanError(HwbenchError):
    """A model the plan compiler cannot lower, or a plan the runtime refuses."""

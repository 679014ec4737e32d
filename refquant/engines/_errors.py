"""Engine adapter exceptions."""


class EngineUnavailable(RuntimeError):
    """The engine's package is not installed (or cannot be loaded) here."""


class EngineUnsupported(ValueError):
    """The engine cannot run this op with these inputs/attributes (a limit of the engine or of
    the mapping from the ONNX op onto it)."""

"""Java, which pycocoevalcap's PTB tokenizer, METEOR and SPICE all run on.

Java is the one dependency pip cannot install, so its absence is an expected state, not a crash:
each Java tool reports why it could not answer with a ``JavaToolError`` and the caller scores what
it still can. The lookup goes through PATH because that is how pycocoevalcap itself starts
``java``; asking anything else (JAVA_HOME, say) could find a Java that pycocoevalcap then cannot.
"""

from __future__ import annotations

import shutil

from pipeline.errors import CapcacheError


class JavaToolError(CapcacheError):
    """A Java tool gave no usable answer; the message is the one-line reason shown to the user."""


def stderr_reason(stderr: bytes, default: str) -> str:
    """The first non-empty line a JVM wrote to stderr: where Java puts the exception or VM error."""
    lines = (line.strip() for line in stderr.decode("utf-8", "replace").splitlines())
    return next((line for line in lines if line), default)


def require_java() -> str:
    """The java that pycocoevalcap's own ``Popen(["java", ...])`` calls will start."""
    java = shutil.which("java")
    if java is None:
        raise JavaToolError("Java not found on PATH (install a Java runtime, e.g. `apt-get install default-jre`)")
    return java

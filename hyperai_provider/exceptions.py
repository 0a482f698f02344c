"""One exceptions module, split by whose fault it is.

Every error carries a short ``headline`` (what went wrong) and a ``hint`` (what to do), so the CLI, the
operators and the web UI can show the same words.
"""

from __future__ import annotations


class HyperAIError(Exception):
    """Base class of every error this provider raises on purpose."""

    def __init__(self, headline: str, hint: str | None = None) -> None:
        self.headline = headline
        self.hint = hint
        super().__init__(f"{headline} {hint}" if hint else headline)


class ConfigurationError(HyperAIError):
    """The user asked for something invalid (bad name, unknown compute type, bad path, ...)."""


class NotFoundError(ConfigurationError):
    """A gear, execution, dataset or version that does not exist (or that the caller may not see)."""


class ConflictError(HyperAIError):
    """The request is valid, but the current state forbids it (running execution, layer in use, ...)."""


class QuotaExceededError(ConflictError):
    """A storage or disk quota would be (or was) exceeded."""


class StorageError(HyperAIError):
    """The storage root could not be written (full disk, no permission): nothing half-written is kept."""

    @classmethod
    def from_os_error(cls, error: OSError, doing: str) -> StorageError:
        import errno

        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            return cls(
                f"The storage root is full: {doing} failed ({error.strerror}); nothing partial was kept.",
                "Free space (`hyperai storage`, `hyperai delete`, `hyperai dataset version delete`) and retry.",
            )
        return cls(f"{doing} failed: {error.strerror or error}.", "Check the storage root's disk and permissions.")


class EngineError(HyperAIError):
    """The Docker engine is missing, unreachable, or lacks a capability (GPU runtime, CPUs, memory)."""


class ImageNotFoundError(ConfigurationError):
    """The runtime image is neither local nor pullable."""


class ExecutionFailedError(HyperAIError):
    """An execution ran and did not succeed: carries its id, exit code, reason and last log lines."""

    def __init__(
        self,
        execution_id: str,
        reason: str,
        exit_code: int | None = None,
        last_lines: list[str] | None = None,
    ) -> None:
        self.execution_id = execution_id
        self.reason = reason
        self.exit_code = exit_code
        self.last_lines = list(last_lines or [])
        tail = "\n".join(f"  | {line}" for line in self.last_lines)
        headline = f"Execution {execution_id} failed: {reason}"
        if exit_code is not None and f"code {exit_code}" not in reason:
            headline += f" (exit code {exit_code})"
        super().__init__(headline, f"Last log lines:\n{tail}" if tail else None)


class ExecutionTerminatedError(ExecutionFailedError):
    """The execution was stopped before its command ended."""

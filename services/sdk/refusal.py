"""The hub's error report, as a partner reads it: the code as an `ErrorCode`, what to fix."""

from dataclasses import dataclass

from liaison.schemas.codes import CodeInfo, ErrorCode, info
from liaison.schemas.messages.system import ErrorReport


@dataclass(frozen=True, slots=True)
class Refusal:
    """The hub refused one of your messages (or some of its recipients), and why.

    ``code`` is an `ErrorCode` for every code this SDK knows; a newer hub may send a code this
    SDK does not know yet, which stays a plain int (its hundreds digit still names the band).
    """

    code: ErrorCode | int
    name: str
    reason: str
    retryable: bool
    field_path: str | None
    ref_distribution_id: str | None
    ref_type: str | None
    refused_recipients: tuple[str, ...]

    @classmethod
    def from_report(cls, report: ErrorReport) -> "Refusal":
        """The typed view of an ``error.report`` body."""
        try:
            code: ErrorCode | int = ErrorCode(report.code)
        except ValueError:
            code = report.code
        return cls(
            code=code,
            name=report.name,
            reason=report.reason,
            retryable=report.retryable,
            field_path=report.field_path,
            ref_distribution_id=report.ref_distribution_id,
            ref_type=report.ref_type,
            refused_recipients=tuple(report.refused_recipients),
        )

    @property
    def info(self) -> CodeInfo | None:
        """The catalogue entry (meaning, band, retryable) for a known code."""
        return info(self.code) if isinstance(self.code, ErrorCode) else None

    @property
    def partial(self) -> bool:
        """Whether the message still reached some recipients and only these were refused."""
        return bool(self.refused_recipients) and self.reason.startswith("delivered to")

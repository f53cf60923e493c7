"""Coverage-guided fuzzing of the hub's decision: every input gets a decision, never an exception.

`make fuzz` runs this under atheris (libFuzzer for Python) for FUZZ_SECONDS. The first bytes of
each input choose the AMQP properties (user_id, routing key, content type), the rest is the
message body; the seed corpus is every contract example plus pathological JSON, and the
dictionary holds the contract's field names, types and addresses, so mutations reach deep into
the router. A failure leaves the crashing input under ``-artifact_prefix`` and exits non-zero.

    python tests/schemas/fuzz_decide.py [-max_total_time=S] [-runs=N] [libFuzzer flags] [CORPUS]
"""

import gc
import json
import sys
import types
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import msgspec

from liaison.directory.index import DirectoryIndex, compile_directory, load_directory
from liaison.directory.model import SignaturePolicy
from liaison.hub.decisions import Delivery, Refusal
from liaison.hub.reports import error_report, report_id
from liaison.hub.router import Router
from liaison.schemas.catalogue import MESSAGE_TYPES
from liaison.schemas.codes import Delivered, ErrorCode, info
from liaison.schemas.envelope import decode_envelope
from liaison.schemas.generate import GENERATED_DIR
from liaison.schemas.probe import PROBE_ID_MAX, PROBE_TYPE_MAX, probe

REPO = Path(__file__).resolve().parents[2]
DIRECTORY = REPO / "deploy" / "directory.toml"
#: The hub's real limit is 256 KiB; a smaller one lets the fuzzer reach the size check too.
MAX_MESSAGE_BYTES = 64 * 1024
_USERS = (None, "mag", "unmas", "dpko", "minusca", "liaison-hub", "nobody", "")
_CONTENT_TYPES = (
    None,
    "application/json",
    "application/json; charset=utf-8",
    "APPLICATION/JSON",
    "text/plain",
    "",
)
_ROUTING_KEYS = ("mag", "unmas", "nobody", "")
_NOW = datetime(2026, 1, 1, tzinfo=UTC)


def make_router(directory: DirectoryIndex | None = None) -> Router:
    """A router over the sample directory, as the hub builds one, except that unsigned
    messages pass (``signatures = "when_present"``): the fuzzer explores what follows the
    signature check, which a fuzzed body could never pass."""
    if directory is None:
        sample = load_directory(DIRECTORY).directory
        orgs = [
            msgspec.structs.replace(o, signatures=SignaturePolicy.WHEN_PRESENT)
            for o in sample.organisations
        ]
        directory = compile_directory(msgspec.structs.replace(sample, organisations=orgs))
    return Router(directory, max_message_bytes=MAX_MESSAGE_BYTES)


def properties(header: int) -> tuple[str | None, str, str | None]:
    """(user_id, routing key, content type) chosen by one input byte."""
    return (
        _USERS[header % len(_USERS)],
        _ROUTING_KEYS[(header // len(_USERS)) % len(_ROUTING_KEYS)],
        _CONTENT_TYPES[(header // 7) % len(_CONTENT_TYPES)],
    )


def check(router: Router, data: bytes) -> None:
    """Decide one fuzz input; raise AssertionError if the decision breaks a promise."""
    if not data:
        return
    user_id, routing_key, content_type = properties(data[0])
    body = data[1:]
    decision = router.decide(
        body, user_id=user_id, routing_key=routing_key, content_type=content_type
    )
    if isinstance(decision, Refusal):
        assert decision.code in ErrorCode, decision
        # A whole refusal delivers nothing; a code that can deliver to the rest says "delivered
        # to" only when it did, and a broker refusal (unknown) never comes from the router.
        assert info(decision.code).delivered is not Delivered.UNKNOWN, decision
        assert not decision.reason.startswith("delivered to"), decision
        if decision.reply_to is not None:
            # The answer must be sendable: the hub's own report passes the contract.
            report = error_report(decision, report=report_id(decision, body), now=_NOW)
            decode_envelope(report)
    else:
        assert isinstance(decision, Delivery), decision
        assert decision.recipients, decision
        if decision.partial is not None:
            assert decision.partial.refused_recipients, decision
            assert decision.partial.refused_addresses, decision
            assert info(decision.partial.code).delivered is Delivered.THE_REST, decision
            assert decision.partial.reason.startswith("delivered to"), decision
    # The hub's poison fallback reads the same bytes with the lenient probe.
    distribution_id, message_type = probe(body)
    assert distribution_id is None or 0 < len(distribution_id) <= PROBE_ID_MAX
    assert message_type is None or 0 < len(message_type) <= PROBE_TYPE_MAX


def seeds() -> list[bytes]:
    """Seed inputs: every example under each property choice, and pathological documents."""
    examples = [
        (GENERATED_DIR / "examples" / f"{name}.json").read_bytes() for name in MESSAGE_TYPES
    ]
    deep = b"[" * 1_000 + b"]" * 1_000
    ack = examples[list(MESSAGE_TYPES).index("ack")]
    odd = [
        deep,
        b'{"a":' * 1_000 + b"1" + b"}" * 1_000,
        ack.replace(b'"body": {', b'"body": {"x": ' + deep + b",", 1),
        b"\xef\xbb\xbf" + ack,
        ack.replace(b'"sender": "', b'"sender": "\\ud800', 1),
        b'{"distribution_id": NaN, "x": 1e999, "y": ' + b"9" * 400 + b"}",
    ]
    return [bytes([header]) + doc for doc in examples + odd for header in (1, 9, 65)]


def dictionary() -> list[str]:
    """libFuzzer dictionary lines: contract tokens, quoted and escaped."""
    example = json.loads((GENERATED_DIR / "examples" / "hazard.alert.json").read_text())
    words = {*example, *example["body"], *MESSAGE_TYPES, "org:unmas", "group:icg-ma"}
    words |= {"role:troop-contributor", "mission:minusca", "flash", "strictly_confidential"}
    words |= {"ref_sender", "ref_distribution_id", "level", "accepted", "mag", "unmas"}
    tokens = [json.dumps(w) for w in sorted(words)]
    tokens += ['"\\ud800"', "NaN", "1e999", "[[[[", "{}", "[]", ":", ",", "null", "true"]
    return [json.dumps(t) for t in tokens]


def _liaison_functions() -> list[types.FunctionType]:
    """Every Python function loaded from Liaison's modules or this harness."""
    return [
        obj
        for obj in gc.get_objects()
        if isinstance(obj, types.FunctionType)
        and obj.__module__ is not None
        and (obj.__module__ == __name__ or obj.__module__.partition(".")[0] == "liaison")
    ]


def main(argv: list[str]) -> None:
    """Run atheris over a corpus directory (the first non-flag argument) seeded with seeds()."""
    import atheris  # only `make fuzz` installs it; the suite imports the rest of this module

    flags = [arg for arg in argv[1:] if arg.startswith("-")]
    corpus = Path(next((arg for arg in argv[1:] if not arg.startswith("-")), "var/fuzz/corpus"))
    # libFuzzer adds what it finds to the corpus, so a later run starts where this one ended.
    corpus.mkdir(parents=True, exist_ok=True)
    for number, seed in enumerate(seeds()):
        (corpus / f"seed-{number:03d}").write_bytes(seed)
    words = corpus.parent / "contract.dict"
    words.write_text("\n".join(dictionary()) + "\n")
    router = make_router()
    # Coverage of Liaison's own code guides the fuzzer: instrumenting every function loaded
    # (atheris.instrument_all, the standard library's and every dependency's) took 42 s of a
    # 50 s smoke run before the first input.
    functions = _liaison_functions()
    for function in functions:
        atheris.instrument_func(function)
    print(f"INFO: Instrumenting {len(functions)} functions of Liaison", file=sys.stderr)
    atheris.Setup(
        [argv[0], f"-dict={words}", "-max_len=8192", *flags, str(corpus)], partial(check, router)
    )
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)

"""The pipe protocol between the session and its forked children: messages
framed by a 4-byte little-endian length, and the reporting hook calls a child
makes, encoded to be replayed in the session."""

from __future__ import annotations

import importlib
import json
import marshal
import os
import struct
import warnings
from typing import Any, Callable, Mapping

import pytest


def send(fd: int, payload: bytes) -> None:
    """Write one framed message to fd (all of it)."""
    data = struct.pack("<I", len(payload)) + payload
    while data:
        done = os.write(fd, data)
        data = data[done:]


def receive_all(fd: int) -> list[bytes]:
    """Every whole message until end of file (a message cut short is dropped)."""
    chunks = []
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    data = b"".join(chunks)
    messages = []
    while len(data) >= 4:
        (n,) = struct.unpack("<I", data[:4])
        if len(data) < 4 + n:
            break
        messages.append(data[4:4 + n])
        data = data[4 + n:]
    return messages


def read_message(fd: int) -> bytes | None:
    """One framed message (see send), or None at end of file."""
    def exactly(n: int) -> bytes | None:
        data = b""
        while len(data) < n:
            chunk = os.read(fd, n - len(data))
            if not chunk:
                return None
            data += chunk
        return data
    head = exactly(4)
    if head is None:
        return None
    return exactly(struct.unpack("<I", head)[0])


# -- the reporting hooks, called in a child and replayed in the session -------

# What a test run tells pytest and its plugins: in a forked child these calls
# go to the session, which replays them, instead of reaching the child's own
# plugins (whose terminal output and counts would be lost with the child).
REPORTING_HOOKS = ("pytest_runtest_logstart", "pytest_runtest_logreport",
                   "pytest_runtest_logfinish", "pytest_warning_recorded")


def dumps(message: dict) -> bytes:
    """A message for send: marshal, with values marshal cannot write (a
    user property holding an object) written as their repr."""
    try:
        return marshal.dumps(message)
    except ValueError:
        return marshal.dumps(json.loads(json.dumps(message, default=repr)))


def encode_call(config: pytest.Config, hook_name: str, kwargs: Mapping[str, Any]) -> dict:
    """One call of a reporting hook as a message (reports serialized by
    pytest's own pytest_report_to_serializable, as pytest-xdist does)."""
    if hook_name == "pytest_runtest_logreport":
        report = kwargs["report"]
        return {"hook": hook_name,
                "report": config.hook.pytest_report_to_serializable(config=config, report=report)}
    if hook_name == "pytest_warning_recorded":
        warning = kwargs["warning_message"]
        category = warning.category
        return {"hook": hook_name, "when": kwargs["when"], "nodeid": kwargs["nodeid"],
                "location": kwargs.get("location"),
                "warning": {"message": str(warning.message),
                            "category": (category.__module__, category.__qualname__),
                            "filename": warning.filename, "lineno": warning.lineno,
                            "line": warning.line}}
    return {"hook": hook_name, "nodeid": kwargs["nodeid"], "location": tuple(kwargs["location"])}


def decode_call(config: pytest.Config, message: dict) -> tuple[str, dict[str, Any]]:
    """The hook name and keyword arguments of a message of encode_call."""
    hook_name = message["hook"]
    if hook_name == "pytest_runtest_logreport":
        data = message["report"]
        report = config.hook.pytest_report_from_serializable(config=config, data=data)
        context = getattr(report, "context", None)
        if context is not None and "_subtest.context" in data:
            # A subtest's parameters are repr'd when made: pytest's reading
            # them back repr's them a second time (i='2' for i=2).
            object.__setattr__(context, "kwargs", data["_subtest.context"]["kwargs"])
        return hook_name, {"report": report}
    if hook_name == "pytest_warning_recorded":
        return hook_name, {"warning_message": _warning_message(message["warning"]),
                           "when": message["when"], "nodeid": message["nodeid"],
                           "location": message["location"]}
    return hook_name, {"nodeid": message["nodeid"], "location": tuple(message["location"])}


def _warning_message(data: dict) -> warnings.WarningMessage:
    """The warning of encode_call again, of its own category when that
    imports and takes one message argument (Warning's text otherwise)."""
    category: type[Warning] = UserWarning
    text = data["message"]
    module_name, qualname = data["category"]
    try:
        found: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            found = getattr(found, part)
        if isinstance(found, type) and issubclass(found, Warning):
            category = found
    except Exception:     # a warning class the session cannot import: keep the text
        pass
    try:
        message: Warning = category(text)
    except Exception:
        message = Warning(text)
    return warnings.WarningMessage(message, category, data["filename"], data["lineno"],
                                   line=data["line"])


def forward_reporting_hooks(config: pytest.Config, send: Callable[[bytes], None],
                            keep: Callable[[object], bool]) -> None:
    """In a forked child: send every call of REPORTING_HOOKS to the session
    instead of running it here, except in the plugins keep() accepts.

    A call report is first shown to pytest_report_teststatus here, where the
    plugins that change its outcome by their state keep that state (pytest's
    subtests: a test with a failed subtest fails).
    """
    def before(hook_name: str, hook_impls: Any, kwargs: Mapping[str, Any]) -> None:
        if hook_name not in REPORTING_HOOKS:
            return
        if hook_name == "pytest_runtest_logreport":
            config.hook.pytest_report_teststatus(report=kwargs["report"], config=config)
        send(dumps(encode_call(config, hook_name, kwargs)))
        # pluggy hands each call a fresh list of implementations: trimming
        # it leaves this call to the kept plugins only.
        hook_impls[:] = [impl for impl in hook_impls if keep(impl.plugin)]

    config.pluginmanager.add_hookcall_monitoring(before, lambda *args: None)

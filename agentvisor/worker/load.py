"""Load an agent file: import it by path, find and build its agent, explain failures in one line.

The file's directory goes first on ``sys.path`` (sibling modules import), the
file is imported as a module, then ``create_agent()`` (sync or async, called
once per worker process, inside its event loop) or the module-level
``agent`` is adapted with ``as_agent``. Every failure is an
``AgentLoadError`` whose ``line`` is the one line the worker prints on
stderr before exiting with status 2, e.g.
``agentvisor: cannot load agent from weather.py: SyntaxError at line 12: invalid syntax``.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import sys
from collections.abc import Awaitable, Callable
from types import ModuleType, TracebackType

from agentvisor.agent.adapters import as_agent
from agentvisor.agent.types import Agent

EXIT_LOAD_ERROR = 2


class AgentLoadError(Exception):
    def __init__(self, path: str, cause: str) -> None:
        super().__init__(f"cannot load agent from {path}: {cause}")
        self.path = path
        self.cause = cause

    @property
    def line(self) -> str:
        return f"agentvisor: {self}"


def _line_in(path: str, traceback: TracebackType | None) -> int | None:
    """The line of ``path`` deepest in ``traceback`` (where the agent file was when it failed)."""
    line = None
    while traceback is not None:
        if os.path.abspath(traceback.tb_frame.f_code.co_filename) == path:
            line = traceback.tb_lineno
        traceback = traceback.tb_next
    return line


def _exception_cause(error: BaseException, path: str) -> str:
    """``ValueError at line 7: bad value``, naming another file when the error is there."""
    name = type(error).__name__
    if isinstance(error, SyntaxError):
        message = error.msg
        where = f"line {error.lineno}" if error.lineno is not None else "an unknown line"
        if error.filename and os.path.abspath(error.filename) != path:
            where = f"{os.path.basename(error.filename)} {where}"
        return f"{name} at {where}: {message}"
    line = _line_in(path, error.__traceback__)
    text = str(error) if not isinstance(error, SystemExit) else f"exit({error.code!r}) called"
    where = f" at line {line}" if line is not None else ""
    return f"{name}{where}: {text}" if text else f"{name}{where}"


def _module_name(path: str) -> str:
    stem = os.path.splitext(os.path.basename(path))[0]
    if stem.isidentifier() and stem not in sys.modules:
        return stem
    return "agentvisor_agent_" + "".join(c if c.isalnum() else "_" for c in stem)


def load_module(path: str) -> ModuleType:
    """Import the agent file at ``path`` (its directory first on ``sys.path``)."""
    absolute = os.path.abspath(path)
    if not os.path.exists(absolute):
        raise AgentLoadError(path, "file not found")
    if os.path.isdir(absolute):
        raise AgentLoadError(path, "is a directory, not a Python file")
    directory = os.path.dirname(absolute)
    if not sys.path or sys.path[0] != directory:
        sys.path.insert(0, directory)
    name = _module_name(absolute)
    spec = importlib.util.spec_from_file_location(name, absolute)
    if spec is None or spec.loader is None:
        raise AgentLoadError(path, "not a Python file (expected a .py file)")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as error:
        del sys.modules[name]
        raise AgentLoadError(path, _exception_cause(error, absolute)) from error
    return module


AgentFactory = Callable[[], Awaitable[Agent]]


def agent_factory(module: ModuleType, path: str) -> AgentFactory:
    """How to get the module's agent, checked before any event loop runs.

    A module-level ``agent`` is adapted now; ``create_agent`` (sync or async)
    is called by the returned factory, once, inside the worker's event loop.
    """
    absolute = str(getattr(module, "__file__", None) or path)
    factory = getattr(module, "create_agent", None)
    if factory is None:
        if not hasattr(module, "agent"):
            raise AgentLoadError(path, "defines neither create_agent() nor agent")
        agent = _adapt(module.agent, path, "agent")

        async def existing() -> Agent:
            return agent

        return existing
    if not callable(factory):
        raise AgentLoadError(path, f"create_agent is a {type(factory).__name__}, not a function")

    async def create() -> Agent:
        try:
            obj = factory()
            if inspect.isawaitable(obj):
                obj = await obj
        except Exception as error:
            raise AgentLoadError(
                path, "create_agent() raised " + _exception_cause(error, absolute)
            ) from error
        return _adapt(obj, path, "create_agent() result")

    return create


def _adapt(obj: object, path: str, what: str) -> Agent:
    try:
        return as_agent(obj)
    except TypeError as error:
        raise AgentLoadError(path, f"{what}: {error}") from error

"""Where a database task runs: a one-off ECS task in production, a local process for the
demo, CodeBuild jobs inside the VPC, and tests. Both take the same command and env."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Protocol

from pipeline.aws.ecs import OneOffTasks, ServiceState, TaskOutcome

STOP_GRACE_S = 30  # between SIGTERM and SIGKILL, as ECS's default stopTimeout


class TaskExecutor(Protocol):
    def run(self, command: list[str], env: dict[str, str]) -> TaskOutcome: ...

    def describe(self, command: list[str], env: dict[str, str] | None = None) -> list[str]:
        """The AWS calls run() would make (for --dry-run); `env`: what the run adds to the
        task's environment beyond dbroll's own DBROLL_RUN_ID, DBROLL_IMAGE, DBROLL_TASK."""
        ...


class LocalTaskExecutor:
    """Runs the command as a local process (`dbroll ...` runs this installation's CLI).

    Its output lines go to `on_line` as they arrive (stdout and stderr merged)."""

    def __init__(
        self,
        *,
        timeout: float = 600,
        base_env: dict[str, str] | None = None,
        on_line: Callable[[str], None] | None = None,
    ) -> None:
        self.timeout = timeout
        self.base_env = base_env
        self.on_line = on_line

    def describe(self, command: list[str], env: dict[str, str] | None = None) -> list[str]:
        return [f"(no AWS call) run `{_env_words(env)}{' '.join(command)}` as a local process"]

    def run(self, command: list[str], env: dict[str, str]) -> TaskOutcome:
        argv = (
            [sys.executable, "-m", "pipeline", *command[1:]]
            if command[:1] == ["dbroll"]
            else list(command)
        )
        full_env = {**(self.base_env if self.base_env is not None else os.environ), **env}
        p = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
            env=full_env,
        )
        timed_out = threading.Event()

        def stop() -> None:  # as ECS stops a task: SIGTERM, then SIGKILL if it lingers
            timed_out.set()
            p.terminate()
            try:
                p.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                p.kill()

        timer = threading.Timer(self.timeout, stop)
        timer.daemon = True
        timer.start()
        lines: list[str] = []
        try:
            assert p.stdout is not None
            for line in p.stdout:
                line = line.rstrip("\n")
                lines.append(line)
                if self.on_line is not None:
                    self.on_line(line)
            code = p.wait()
        except KeyboardInterrupt:  # Ctrl-C, or SIGTERM: the task stops with its caller
            for line in _stop_child(p):
                if self.on_line is not None:
                    self.on_line(line)
            raise
        finally:
            timer.cancel()
        if timed_out.is_set():
            return TaskOutcome(
                "local",
                None,
                "Timeout",
                f"did not finish in {self.timeout:g} s",
                "local",
                tuple(lines),
            )
        return TaskOutcome(
            "local", code, "EssentialContainerExited", f"exited with {code}", "local", tuple(lines)
        )


def _stop_child(p: subprocess.Popen) -> list[str]:
    """Stop the task process the way ECS stops a task: SIGTERM (a dbroll in it interrupts its
    statements and records where it stopped), SIGKILL after STOP_GRACE_S. Returns the lines
    it wrote meanwhile (what it stopped, its error)."""
    if p.poll() is None:
        p.terminate()
    try:
        out, _ = p.communicate(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate()
    return (out or "").splitlines()


class EcsTaskExecutor:
    """Runs the command as a one-off task in the service's cluster and network."""

    def __init__(
        self,
        tasks: OneOffTasks,
        state: ServiceState,
        *,
        container: str,
        task_definition: str | None = None,
        timeout: float = 600,
        delay: float = 6,
        on_line: Callable[[str], None] | None = None,
    ) -> None:
        self.on_line = on_line
        self.tasks = tasks
        self.state = state
        self.container = container
        self.task_definition = task_definition
        self.timeout = timeout
        self.delay = delay

    def describe(self, command: list[str], env: dict[str, str] | None = None) -> list[str]:
        from pipeline.aws.ecs import _network_and_capacity

        st = self.state
        where = " ".join(f"{k}={v!r}" for k, v in _network_and_capacity(st.raw).items())
        td = self.task_definition or st.task_definition
        return [
            (
                f"ecs:RunTask cluster={st.cluster} taskDefinition={td} container={self.container} "
                f"command={' '.join(command)!r} " + _env_words(env, "environment+=") + where
            ).rstrip(),
            f"ecs:DescribeTasks every {self.delay:g} s until STOPPED (at most {self.timeout:g} s)",
            f"logs:GetLogEvents of the task's awslogs stream ({self.container})",
        ]

    def run(self, command: list[str], env: dict[str, str]) -> TaskOutcome:
        return self.tasks.run(
            self.state,
            container=self.container,
            command=command,
            env=env,
            task_definition=self.task_definition,
            timeout=self.timeout,
            delay=self.delay,
            on_line=self.on_line,
        )


def _env_words(env: dict[str, str] | None, prefix: str = "") -> str:
    """`K=V ` for each extra variable, for --dry-run's description of a run."""
    return "".join(f"{prefix}{k}={v} " for k, v in sorted((env or {}).items()))


__all__ = ["EcsTaskExecutor", "LocalTaskExecutor", "TaskExecutor", "TaskOutcome"]

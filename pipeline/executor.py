"""Where a database task runs: a one-off ECS task in production, a local process for the
demo, CodeBuild jobs inside the VPC, and tests. Both take the same command and env."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Protocol

from pipeline.aws.ecs import OneOffTasks, ServiceState, TaskOutcome


class TaskExecutor(Protocol):
    def run(self, command: list[str], env: dict[str, str]) -> TaskOutcome: ...


class LocalTaskExecutor:
    """Runs the command as a local process (`dbroll ...` runs this installation's CLI)."""

    def __init__(self, *, timeout: float = 600, base_env: dict[str, str] | None = None) -> None:
        self.timeout = timeout
        self.base_env = base_env

    def run(self, command: list[str], env: dict[str, str]) -> TaskOutcome:
        argv = (
            [sys.executable, "-m", "pipeline", *command[1:]]
            if command[:1] == ["dbroll"]
            else list(command)
        )
        full_env = {**(self.base_env if self.base_env is not None else os.environ), **env}
        try:
            p = subprocess.run(
                argv, capture_output=True, text=True, env=full_env, timeout=self.timeout
            )
        except subprocess.TimeoutExpired as e:
            out = e.stderr or b""
            text = out.decode(errors="replace") if isinstance(out, bytes) else out
            return TaskOutcome(
                "local",
                None,
                "Timeout",
                f"did not finish in {self.timeout:g} s",
                "local",
                tuple(text.splitlines()),
            )
        lines = tuple((p.stdout + p.stderr).splitlines())
        return TaskOutcome(
            "local",
            p.returncode,
            "EssentialContainerExited",
            f"exited with {p.returncode}",
            "local",
            lines,
        )


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
    ) -> None:
        self.tasks = tasks
        self.state = state
        self.container = container
        self.task_definition = task_definition
        self.timeout = timeout
        self.delay = delay

    def run(self, command: list[str], env: dict[str, str]) -> TaskOutcome:
        return self.tasks.run(
            self.state,
            container=self.container,
            command=command,
            env=env,
            task_definition=self.task_definition,
            timeout=self.timeout,
            delay=self.delay,
        )


__all__ = ["EcsTaskExecutor", "LocalTaskExecutor", "TaskExecutor", "TaskOutcome"]

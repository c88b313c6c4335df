"""The hospital tasks: name -> how to read, split, train and judge."""

from __future__ import annotations

from client.tasks.base import Arrays, Prepared, Task
from client.tasks.ecg import EcgAnomaly, EcgArrhythmia, EcgArrhythmiaAami
from client.tasks.icu import IcuDeterioration, IcuLengthOfStay
from client.tasks.signals import SignalAnomaly
from shared_models.errors import ConfigError

TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        EcgArrhythmia(),
        EcgArrhythmiaAami(),
        EcgAnomaly(),
        SignalAnomaly(),
        IcuDeterioration(),
        IcuLengthOfStay(),
    )
}


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise ConfigError(
            f"unknown task {name!r}; known tasks: {', '.join(TASKS)}"
        ) from None


__all__ = ["TASKS", "Arrays", "Prepared", "Task", "get_task"]

"""The models the playground has loaded in the server process: at most `keep` of them (the least recently used
leaves first), each loaded once however many requests ask for it at the same moment, each with a lock so that one
generation at a time runs on it (decoding two streams on one model would only halve each one's speed)."""

from __future__ import annotations

import gc
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

KEEP = 2  # models kept loaded; a third request evicts the least recently used


@dataclass
class LoadedModel:
    """One loaded target (`ftkit.targets.ModelTarget`) and what the playground reports about it."""

    key: tuple[str, str]
    target: Any
    lock: threading.Lock = field(default_factory=threading.Lock)
    last: dict[str, Any] | None = None  # the latest generation: {tokens, finish: done|stopped|error}

    def describe(self) -> dict[str, Any]:
        """The JSON the models list shows."""
        return {
            "run": self.key[0],
            "which": self.key[1],
            "label": self.target.label,
            "use_cache": bool(self.target.use_cache),
            "busy": self.lock.locked(),
            "last": self.last,
        }


class ModelCache:
    """Loaded models by key (run id, tuned|base), least recently used first."""

    def __init__(self, keep: int = KEEP):
        self.keep = keep
        self._models: OrderedDict[tuple[str, str], LoadedModel] = OrderedDict()
        self._guard = threading.Lock()
        self._loading: dict[tuple[str, str], threading.Lock] = {}

    def get(self, key: tuple[str, str], load: Callable[[], Any]) -> LoadedModel:
        """The model for `key`, loaded with `load()` when it is not kept (blocking: call it from a thread)."""
        with self._guard:
            found = self._kept(key)
            if found is not None:
                return found
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:  # a second request for the same model waits for the first load instead of loading again
            with self._guard:
                found = self._kept(key)
                if found is not None:
                    return found
            loaded = LoadedModel(key, load())
            with self._guard:
                self._models[key] = loaded
                evicted = []
                while len(self._models) > self.keep:
                    evicted.append(self._models.popitem(last=False)[1])
                self._loading.pop(key, None)
        if evicted:
            del evicted
            gc.collect()  # a generation still running on an evicted model keeps it until it ends
        return loaded

    def _kept(self, key: tuple[str, str]) -> LoadedModel | None:
        found = self._models.get(key)
        if found is not None:
            self._models.move_to_end(key)
        return found

    def describe(self) -> list[dict[str, Any]]:
        """The kept models, most recently used first."""
        with self._guard:
            return [loaded.describe() for loaded in reversed(self._models.values())]

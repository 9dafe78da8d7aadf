"""The playground's model cache: at most `keep` models, the least recently used leaving first, and one load per
model however many requests ask for it at once."""

from __future__ import annotations

import threading
from types import SimpleNamespace

from ftkit.ui.model_cache import ModelCache


def model(name: str) -> SimpleNamespace:
    return SimpleNamespace(label=name, use_cache=True)


def test_the_least_recently_used_model_leaves_when_a_third_loads():
    cache = ModelCache(keep=2)
    loads: list[str] = []

    def loader(name: str):
        return lambda: loads.append(name) or model(name)

    a = cache.get(("a", "tuned"), loader("a"))
    cache.get(("b", "tuned"), loader("b"))
    assert cache.get(("a", "tuned"), loader("a")) is a  # kept, not loaded again; now the most recent
    cache.get(("c", "base"), loader("c"))
    assert [(m["run"], m["which"]) for m in cache.describe()] == [("c", "base"), ("a", "tuned")]
    cache.get(("b", "tuned"), loader("b"))  # b had left: loaded again
    assert loads == ["a", "b", "c", "b"]


def test_requests_arriving_together_load_the_model_once():
    cache = ModelCache()
    release = threading.Event()
    loads: list[int] = []

    def slow_load():
        loads.append(1)
        release.wait(30)
        return model("x")

    results: list = []
    threads = [threading.Thread(target=lambda: results.append(cache.get(("x", "tuned"), slow_load)))
               for _ in range(4)]  # fmt: skip
    for thread in threads:
        thread.start()
    while not loads:  # the first load has begun; the others now find it loading (or loaded)
        threading.Event().wait(0.01)
    release.set()
    for thread in threads:
        thread.join(30)
    assert len(loads) == 1 and len(results) == 4 and all(result is results[0] for result in results)

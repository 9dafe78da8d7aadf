"""Freeze tuning names the model's closest modules when a requested one does not exist."""

from __future__ import annotations

import pytest

from ftkit.errors import MethodError
from ftkit.methods.freeze import FreezeMethod, FreezeOptions


def test_an_unknown_module_lists_the_closest_names(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with pytest.raises(MethodError) as caught:
        FreezeMethod().prepare(model, FreezeOptions(layers=0, modules=["lm_hed"]), "causal_lm")
    assert caught.value.message == "freeze: no module named `lm_hed` in this model"
    assert caught.value.hint == "closest names: lm_head"
